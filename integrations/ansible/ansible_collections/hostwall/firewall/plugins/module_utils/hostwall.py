# -*- coding: utf-8 -*-
# Copyright: hostwall developers
# Apache License 2.0 (see LICENSE at the root of the hostwall repository)
"""Shared by the hostwall modules: how to find and call the hostwall CLI.

The modules only use the CLI contract of hostwall (DESIGN §10): validate,
plan --detailed-exitcode -o, apply PLANFILE, confirm. Exit codes are part of
that contract: plan 0 no changes / 2 changes, apply 3 trial rolled back /
4 saved plan stale, confirm 3 already rolled back.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re

# Extensions the hostwall loader reads as policy files, by format.
EXTENSIONS = {'hcl': ('.hcl',), 'yaml': ('.yaml', '.yml')}
POLICY_EXTENSIONS = ('.hcl', '.yaml', '.yml')

NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')


def binary(module):
    """The hostwall executable: the binary option, else hostwall on PATH."""
    path = module.params.get('binary')
    if path:
        if not os.access(path, os.X_OK):
            module.fail_json(msg='binary %s is not an executable file' % path)
        return path
    return module.get_bin_path('hostwall', required=True, opt_dirs=['/usr/bin', '/usr/local/bin'])


def global_args(module):
    """hostwall's global flags from the module's options."""
    p = module.params
    args = ['--no-color', '--config', p['config_dir']]
    for opt, flag in (('state_dir', '--state-dir'), ('run_dir', '--run-dir'),
                      ('netns', '--netns'), ('host_name', '--host-name')):
        if p.get(opt):
            args += [flag, p[opt]]
    return args


def duration(value):
    """A confirm_timeout as hostwall reads it: 90 (seconds), '90s', '2m'."""
    value = str(value).strip()
    if re.match(r'^[0-9]+$', value):
        return value + 's'
    return value
