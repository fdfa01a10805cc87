# The class installing hostwall from a package file (make test-packages runs
# it with --noop; the facts name the package and a namespace of its own).
class { 'hostwall':
  config_dir     => $facts['hw_config_dir'],
  state_dir      => $facts['hw_state_dir'],
  run_dir        => $facts['hw_run_dir'],
  netns          => $facts['hw_netns'],
  binary         => $facts['hw_binary'],
  manage_package => true,
  package_source => $facts['hw_package'],
  manage_service => false,
}
