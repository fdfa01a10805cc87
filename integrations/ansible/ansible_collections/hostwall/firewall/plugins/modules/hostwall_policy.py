#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: hostwall developers
# Apache License 2.0 (see LICENSE at the root of the hostwall repository)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: hostwall_policy
short_description: Write or remove one hostwall policy file, validated first
description:
  - Writes C(content) to C(config_dir)/C(name).hcl (or C(.yaml)), or removes
    that policy file.
  - Before anything is written or removed, C(hostwall validate) checks the
    whole configuration directory as it would be after the change
    (C(--replace)/C(--remove)); an invalid result fails the task, prints
    hostwall's C(file:line:col) diagnostics and writes nothing.
  - Writing a file does not change the firewall. Run
    M(hostwall.firewall.hostwall_apply) afterwards (or let the hostwall agent
    pick the change up).
  - A policy file of the same name in the other format (C(web.yaml) when
    writing C(web.hcl)) is removed in the same change, so a policy never
    exists twice.
version_added: 0.1.0
options:
  name:
    description:
      - The policy file's name without extension. Letters, digits, C(.),
        C(_) and C(-); not starting with a dot.
    type: str
    required: true
  content:
    description: The file's contents. Required with I(state=present).
    type: str
  format:
    description: C(hcl) writes C(NAME.hcl), C(yaml) writes C(NAME.yaml) (native or Calico v3 YAML).
    type: str
    choices: [hcl, yaml]
    default: hcl
  state:
    description: Whether the policy file exists. I(state=absent) removes C(NAME.hcl), C(NAME.yaml) and C(NAME.yml).
    type: str
    choices: [present, absent]
    default: present
  config_dir:
    description: hostwall's configuration directory.
    type: path
    default: /etc/hostwall
  binary:
    description: The hostwall executable. Default C(hostwall) on C(PATH).
    type: path
attributes:
  check_mode:
    support: full
    details: Validates, reports the change and writes nothing.
  diff_mode:
    support: full
    details: The file's contents before and after.
notes:
  - Files are written C(0644) (hostwall refuses, as root, files that others could write).
author:
  - hostwall developers
'''

EXAMPLES = r'''
- name: Let the web servers take HTTPS
  hostwall.firewall.hostwall_policy:
    name: web
    content: |
      policy "web" {
        selector = "role == 'web'"
        ingress {
          action   = "allow"
          protocol = "tcp"
          destination { ports = [443] }
        }
      }
  notify: apply hostwall

- name: A Calico GlobalNetworkPolicy as exported by calicoctl
  hostwall.firewall.hostwall_policy:
    name: allow-dns
    format: yaml
    content: "{{ lookup('file', 'allow-dns.yaml') }}"

- name: Retire a policy
  hostwall.firewall.hostwall_policy:
    name: legacy
    state: absent
'''

RETURN = r'''
path:
  description: The policy file written (or, with I(state=absent), the first one removed).
  returned: always
  type: str
  sample: /etc/hostwall/web.hcl
removed:
  description: Policy files removed (the other format's file, or every file with I(state=absent)).
  returned: always
  type: list
  elements: str
validation:
  description: What C(hostwall validate) printed about the configuration as it would be.
  returned: when validated
  type: str
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native

from ansible_collections.hostwall.firewall.plugins.module_utils.hostwall import (
    EXTENSIONS, NAME_RE, POLICY_EXTENSIONS, binary)


def read(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except (IOError, OSError):
        return None


def validate(module, config_dir, replace, remove):
    """hostwall validate of config_dir as it would be; fails the task when invalid."""
    args = [binary(module), '--no-color', '--config', config_dir, 'validate']
    for name, path in replace:
        args += ['--replace', '%s=%s' % (name, path)]
    for name in remove:
        args += ['--remove', name]
    rc, out, err = module.run_command(args)
    if rc != 0:
        module.fail_json(
            msg='hostwall validate refused the configuration as it would be after this change; nothing was written:\n%s' % (err.strip() or out.strip()),
            rc=rc, stdout=out, stderr=err, cmd=args)
    return out.strip()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            content=dict(type='str'),
            format=dict(type='str', choices=['hcl', 'yaml'], default='hcl'),
            state=dict(type='str', choices=['present', 'absent'], default='present'),
            config_dir=dict(type='path', default='/etc/hostwall'),
            binary=dict(type='path'),
        ),
        required_if=[('state', 'present', ('content',))],
        supports_check_mode=True,
    )
    p = module.params
    name, config_dir = p['name'], p['config_dir']
    if not NAME_RE.match(name):
        module.fail_json(msg='name %r: use letters, digits, ".", "_" and "-", not starting with a dot' % name)
    if name.endswith(POLICY_EXTENSIONS):
        module.fail_json(msg='name %r: give the name without extension; format chooses .hcl or .yaml' % name)

    target = None
    if p['state'] == 'present':
        target = name + EXTENSIONS[p['format']][0]
    existing = [name + ext for ext in POLICY_EXTENSIONS if os.path.lexists(os.path.join(config_dir, name + ext))]
    remove = [f for f in existing if f != target]

    before = read(os.path.join(config_dir, target)) if target else None
    after = to_bytes(p['content']) if target else None
    result = dict(changed=False, path=os.path.join(config_dir, target or (existing[0] if existing else name + '.hcl')), removed=[])

    if (target is None or before == after) and not remove:
        module.exit_json(**result)

    result['changed'] = True
    result['removed'] = [os.path.join(config_dir, f) for f in remove]
    if module._diff:
        diffs = []
        if target:
            diffs.append(dict(before_header=result['path'], after_header=result['path'],
                              before=to_native(before) if before is not None else '', after=to_native(after)))
        for f in remove:
            path = os.path.join(config_dir, f)
            diffs.append(dict(before_header=path, after_header=path + ' (removed)',
                              before=to_native(read(path) or b''), after=''))
        result['diff'] = diffs

    # Validate the directory as it would be. A directory that does not exist
    # yet is validated as an empty one.
    validate_dir = config_dir
    if not os.path.isdir(config_dir):
        validate_dir = os.path.join(module.tmpdir, 'empty-config')
        os.mkdir(validate_dir, 0o755)
    tmp = None
    replace = []
    if target:
        tmp = os.path.join(module.tmpdir, 'policy' + os.path.splitext(target)[1])
        with open(tmp, 'wb') as f:
            f.write(after)
        os.chmod(tmp, 0o644)
        replace.append((target, tmp))
    result['validation'] = validate(module, validate_dir, replace, remove)

    if module.check_mode:
        module.exit_json(**result)

    if target:
        if not os.path.isdir(config_dir):
            os.makedirs(config_dir, 0o755)
        dest = os.path.join(config_dir, target)
        module.atomic_move(tmp, dest)
        os.chmod(dest, 0o644)
    for f in remove:
        os.unlink(os.path.join(config_dir, f))
    module.exit_json(**result)


if __name__ == '__main__':
    main()
