# The module as a fleet would use it. The test (integrations/puppet_test.go)
# sets these facts through FACTER_* variables: a configuration directory,
# state and run directories and a network namespace of its own, and the
# files holding the policies' contents (one used as a source, one read
# into content).
class { 'hostwall':
  config_dir     => $facts['hw_config_dir'],
  state_dir      => $facts['hw_state_dir'],
  run_dir        => $facts['hw_run_dir'],
  netns          => $facts['hw_netns'],
  host_name      => 'web-1',
  binary         => $facts['hw_binary'],
  purge          => $facts['hw_purge'] == 'true',
  manage_package => false,
  manage_service => false,
}

hostwall::policy { 'host':
  source => $facts['hw_host_policy'],
}

hostwall::policy { 'web':
  ensure  => $facts['hw_web_ensure'] ? { undef => 'present', default => $facts['hw_web_ensure'] },
  content => file($facts['hw_web_policy']),
}
