# @summary hostwall: its configuration directory, package, agent, and the
#   apply that runs only when `hostwall plan --detailed-exitcode` has changes.
#
# Policy files come from hostwall::policy resources (or any file resource in
# $config_dir). They are validated with `hostwall validate` before they
# replace a file. `puppet apply --noop` reports pending changes and changes
# nothing, in files or in the kernel.
#
# @param config_dir  hostwall's configuration directory.
# @param state_dir   where generations are kept (undef: hostwall's default, /var/lib/hostwall).
# @param run_dir     lock, pending trial and agent socket (undef: /run/hostwall).
# @param netns       act inside the named network namespace (/run/netns/NAME).
# @param host_name   this host's name for node selectors (undef: the host block, then the hostname).
# @param purge       remove policy files (*.hcl, *.yaml, *.yml) of $config_dir that no resource
#                    manages; other files (nets_file lists) are left alone.
# @param manage_package  install the hostwall package.
# @param package_ensure  the package's ensure.
# @param package_source  a .deb or .rpm file to install from (undef: the configured repositories).
# @param manage_service  enable and run the hostwall agent (systemd).
# @param binary      the hostwall executable.
# @param force       apply even if hostwall's lockout check refuses (a change that would drop a
#                    new SSH connection like the one puppet runs in, or no failsafe SSH port).
class hostwall (
  String $config_dir = '/etc/hostwall',
  Optional[String] $state_dir = undef,
  Optional[String] $run_dir = undef,
  Optional[String] $netns = undef,
  Optional[String] $host_name = undef,
  Boolean $purge = false,
  Boolean $manage_package = true,
  String $package_ensure = 'installed',
  Optional[String] $package_source = undef,
  Boolean $manage_service = true,
  String $binary = '/usr/bin/hostwall',
  Boolean $force = false,
) {
  $flags = [
    '--no-color', '--config', $config_dir,
    $state_dir ? { undef => [], default => ['--state-dir', $state_dir] },
    $run_dir ? { undef => [], default => ['--run-dir', $run_dir] },
    $netns ? { undef => [], default => ['--netns', $netns] },
    $host_name ? { undef => [], default => ['--host-name', $host_name] },
  ].flatten
  # The command line every hostwall call starts with (shell-quoted).
  $command = shellquote([$binary] + $flags)

  if $manage_package {
    $provider = $package_source ? {
      undef      => undef,
      /\.deb\z/  => 'dpkg',
      /\.rpm\z/  => 'rpm',
      default    => fail("hostwall: package_source ${package_source} is neither a .deb nor a .rpm"),
    }
    package { 'hostwall':
      ensure   => $package_ensure,
      source   => $package_source,
      provider => $provider,
      before   => [File[$config_dir], Exec['hostwall apply']],
    }
  }

  file { $config_dir:
    ensure => directory,
    owner  => 'root',
    group  => 'root',
    mode   => '0755',
  }

  if $purge {
    # tidy leaves alone the files other resources manage.
    tidy { 'hostwall purge':
      path    => $config_dir,
      recurse => 1,
      matches => ['*.hcl', '*.yaml', '*.yml'],
      require => File[$config_dir],
      before  => Exec['hostwall apply'],
    }
  }

  $force_flag = $force ? { true => ' --force', default => '' }
  exec { 'hostwall apply':
    command   => "${command} apply --auto-approve${force_flag}",
    unless    => "${command} plan --detailed-exitcode",
    provider  => 'shell',
    logoutput => true,
    require   => File[$config_dir],
  }

  if $manage_service {
    service { 'hostwall':
      ensure  => running,
      enable  => true,
      require => Exec['hostwall apply'],
    }
  }
}
