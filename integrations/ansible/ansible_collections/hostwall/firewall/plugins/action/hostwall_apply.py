# -*- coding: utf-8 -*-
# Copyright: hostwall developers
# Apache License 2.0 (see LICENSE at the root of the hostwall repository)
"""Action plugin of hostwall.firewall.hostwall_apply: confirm a trial from a
new connection.

The module applies the change on trial (hostwall apply --confirm-timeout):
a guard on the host restores the previous generation unless hostwall
confirm arrives in time. The connection the apply ran over survives on
connection tracking whatever the new rules say, so it proves nothing; this
plugin resets it (for ssh: closes the ControlPersist master) and confirms
over a new one. If the new rules cut the controller off, no new connection
gets through, nothing confirms, and the host rolls itself back.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import time

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = 'hostwall.firewall.hostwall_apply'


def seconds(value):
    """confirm_timeout in seconds: 90, '90s', '2m', '1m30s'."""
    value = str(value).strip()
    if re.match(r'^[0-9]+$', value):
        return int(value)
    total, units = 0.0, {'h': 3600, 'm': 60, 's': 1, 'ms': 0.001}
    parts = re.findall(r'([0-9.]+)(h|ms|m|s)', value)
    if not parts or ''.join(n + u for n, u in parts) != value:
        raise AnsibleActionFail('confirm_timeout %r: use seconds (90) or a duration (90s, 2m)' % value)
    for n, u in parts:
        total += float(n) * units[u]
    return total


class ActionModule(ActionBase):

    _VALID_ARGS = frozenset(('config_dir', 'state_dir', 'run_dir', 'netns', 'host_name',
                             'confirm_timeout', 'force', 'binary'))

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        timeout = seconds(args['confirm_timeout']) if args.get('confirm_timeout') not in (None, '') else 0

        result.update(self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars))
        if result.get('failed') or not result.get('trial'):
            return result

        # Confirm from a new connection, until the host's own deadline.
        deadline = time.monotonic() + timeout
        try:
            self._connection.reset()
            display.vv('hostwall_apply: connection reset; confirming generation %s from a new one' % result.get('generation'))
        except AttributeError:
            display.warning('the connection plugin cannot reset its connection; the confirmation may ride on the old one')
        confirm_args = dict(args, _confirm=True)
        confirm_args.pop('confirm_timeout', None)
        confirm_args.pop('force', None)
        last = None
        while True:
            try:
                confirmed = self._execute_module(module_name=MODULE, module_args=confirm_args, task_vars=task_vars)
                break
            except AnsibleConnectionFailure as e:
                last = e
                if time.monotonic() >= deadline:
                    confirmed = None
                    break
                time.sleep(1)
        self._remove_tmp_path(self._connection._shell.tmpdir)

        if confirmed is None:
            result['failed'] = True
            result['confirmed'] = False
            result['msg'] = ('applied generation %s on trial, but no new connection reached the host within %s (%s); '
                             'unless confirmed, the host restores the previous generation at the deadline'
                             % (result.get('generation'), args['confirm_timeout'], last))
            return result
        result['confirmed'] = bool(confirmed.get('confirmed'))
        if confirmed.get('failed'):
            result['failed'] = True
            result['msg'] = confirmed.get('msg')
        return result
