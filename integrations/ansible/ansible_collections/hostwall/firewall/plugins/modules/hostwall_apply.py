#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hostwall developers
# Apache License 2.0 (see LICENSE at the root of the hostwall repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hostwall_apply
short_description: Plan and apply hostwall's configuration to the kernel
description:
  - Runs C(hostwall plan) against the kernel's live ruleset and, when it has
    changes, applies exactly that plan (C(hostwall apply PLANFILE)) as one
    atomic transaction, recorded as a new generation.
  - C(changed) is true exactly when the plan had changes. Check mode only
    plans. Diff mode shows the plan text.
  - If the kernel changes between plan and apply (the hostwall agent applied
    the same files, say), the module plans again, up to three times; it
    reports what it applied itself.
  - With I(confirm_timeout), the change is a trial. After the apply, the
    action plugin drops the connection to the host, opens a new one and
    confirms from it. If the new configuration cuts the controller off, the
    confirmation never arrives and the host itself restores the previous
    generation when the timeout runs out; the task then fails.
version_added: 0.1.0
options:
  config_dir:
    description: hostwall's configuration directory.
    type: path
    default: /etc/hostwall
  state_dir:
    description: Where hostwall keeps generations. Default hostwall's own (C(/var/lib/hostwall)).
    type: path
  run_dir:
    description: hostwall's lock, pending trial and agent socket. Default hostwall's own (C(/run/hostwall)).
    type: path
  netns:
    description: Act inside the named network namespace (C(/run/netns/NAME)).
    type: str
  host_name:
    description: This host's name for C(node) selectors. Default the configuration's C(host) block, then the hostname.
    type: str
  confirm_timeout:
    description:
      - Apply on trial and confirm from a new connection; unless confirmed
        within this time (seconds, or a duration such as C(2m)), the host
        rolls back. Keep it longer than a reconnection takes.
    type: str
  force:
    description:
      - Apply even though hostwall's lockout check refuses (a change that
        would drop a new SSH connection like the current one, or no failsafe
        SSH port). Combine with I(confirm_timeout).
    type: bool
    default: false
  binary:
    description: The hostwall executable. Default C(hostwall) on C(PATH).
    type: path
  _confirm:
    description: Internal, set by the action plugin. Confirm the trial instead of applying.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Plans only; C(changed) tells whether apply would change the kernel.
  diff_mode:
    support: full
    details: The plan text, as C(hostwall plan) prints it.
author:
  - hostwall developers
'''

EXAMPLES = r'''
- name: Apply the policy files
  hostwall.firewall.hostwall_apply:

- name: Apply on trial; the host rolls back unless a new connection confirms within 2 minutes
  hostwall.firewall.hostwall_apply:
    confirm_timeout: 2m

- name: What would change (check mode)
  hostwall.firewall.hostwall_apply:
  check_mode: true
  diff: true
'''

RETURN = r'''
plan:
  description: The plan as C(hostwall plan) prints it (the one applied, if it was applied).
  returned: always
  type: str
  sample: "Plan: 3 to add, 0 to change, 0 to destroy."
plan_json:
  description: The same plan as C(hostwall plan --json) prints it.
  returned: always
  type: dict
generation:
  description: The generation the apply recorded.
  returned: when applied
  type: int
trial:
  description: Whether the apply is a trial waiting for confirmation (the action plugin confirms it).
  returned: when applied
  type: bool
confirmed:
  description: Whether the trial was confirmed from a new connection.
  returned: with confirm_timeout, when applied
  type: bool
'''

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.hostwall.firewall.plugins.module_utils.hostwall import binary, duration, global_args

# Exit codes of the CLI contract.
PLAN_CHANGES = 2
APPLY_ROLLED_BACK = 3  # also confirm's, for a trial already rolled back
APPLY_STALE = 4


def plan(module, hw, planfile):
    """hostwall plan; returns (has_changes, text, plan_json)."""
    args = [hw] + global_args(module) + ['plan', '--detailed-exitcode', '-o', planfile]
    rc, out, err = module.run_command(args)
    if rc not in (0, PLAN_CHANGES):
        module.fail_json(msg='hostwall plan failed:\n%s' % (err.strip() or out.strip()), rc=rc, stdout=out, stderr=err, cmd=args)
    with open(planfile) as f:
        return rc == PLAN_CHANGES, out, json.load(f)['plan']


def confirm(module, hw):
    args = [hw] + global_args(module) + ['confirm']
    rc, out, err = module.run_command(args)
    if rc == APPLY_ROLLED_BACK:
        module.fail_json(msg='the trial was rolled back before it could be confirmed:\n%s' % err.strip(),
                         rc=rc, stdout=out, stderr=err, changed=True, confirmed=False)
    if rc != 0:
        module.fail_json(msg='hostwall confirm failed:\n%s' % (err.strip() or out.strip()), rc=rc, stdout=out, stderr=err)
    module.exit_json(changed=True, confirmed=True, stdout=out)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_dir=dict(type='path', default='/etc/hostwall'),
            state_dir=dict(type='path'),
            run_dir=dict(type='path'),
            netns=dict(type='str'),
            host_name=dict(type='str'),
            confirm_timeout=dict(type='str'),
            force=dict(type='bool', default=False),
            binary=dict(type='path'),
            _confirm=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    hw = binary(module)
    if module.params['_confirm']:
        confirm(module, hw)
    trial = module.params['confirm_timeout']
    if trial is not None and duration(trial) == '0s':
        trial = None

    planfile = os.path.join(module.tmpdir, 'plan.json')
    for attempt in range(3):
        changed, text, plan_json = plan(module, hw, planfile)
        result = dict(changed=changed, plan=text, plan_json=plan_json)
        if module._diff:
            result['diff'] = dict(prepared=text)
        if not changed or module.check_mode:
            module.exit_json(**result)

        args = [hw] + global_args(module) + ['apply', '--auto-approve']
        if trial:
            args += ['--confirm-timeout', duration(trial), '--wait=false']
        if module.params['force']:
            args.append('--force')
        rc, out, err = module.run_command(args + [planfile])
        if rc == APPLY_STALE:
            continue  # the kernel or the files changed since the plan: plan again
        if rc != 0:
            module.fail_json(msg='hostwall apply failed; the kernel keeps the ruleset it had:\n%s' % (err.strip() or out.strip()),
                             rc=rc, stdout=out, stderr=err, cmd=args, plan=text, plan_json=plan_json)
        m = re.search(r'Generation (\d+)\.', out)
        result['generation'] = int(m.group(1)) if m else None
        result['trial'] = bool(trial)
        result['stdout'] = out
        module.exit_json(**result)
    module.fail_json(msg='hostwall apply: the kernel or the configuration kept changing between plan and apply (3 attempts); is another tool changing table inet hostwall?')


if __name__ == '__main__':
    main()
