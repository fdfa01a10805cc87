# @summary One hostwall policy file, $hostwall::config_dir/$title.hcl (or .yaml).
#
# Before the file is replaced, `hostwall validate --replace` checks the whole
# configuration directory as it would be with the new contents; an invalid
# policy fails this resource (with hostwall's file:line:col diagnostics),
# leaves the file as it was, and skips the apply. Removing a file is
# validated the same way (`--remove`).
#
# @param ensure   present or absent.
# @param content  the file's contents.
# @param source   where to copy the file from (instead of content).
# @param format   hcl writes $title.hcl, yaml writes $title.yaml (native or Calico v3 YAML).
define hostwall::policy (
  Enum['present', 'absent'] $ensure = 'present',
  Optional[String] $content = undef,
  Optional[String] $source = undef,
  Enum['hcl', 'yaml'] $format = 'hcl',
) {
  include hostwall

  unless $title =~ /\A[A-Za-z0-9][A-Za-z0-9_.-]*\z/ {
    fail("hostwall::policy ${title}: use letters, digits, '.', '_' and '-', not starting with a dot")
  }
  if $ensure == 'present' and ($content == undef) == ($source == undef) {
    fail("hostwall::policy ${title}: give exactly one of content and source")
  }
  $name_in_dir = "${title}.${format}"
  $path = "${hostwall::config_dir}/${name_in_dir}"

  if $ensure == 'present' {
    file { $path:
      ensure       => file,
      content      => $content,
      source       => $source,
      owner        => 'root',
      group        => 'root',
      mode         => '0644',
      validate_cmd => "${hostwall::command} validate --replace ${shellquote("${name_in_dir}=%")}",
      require      => File[$hostwall::config_dir],
      before       => Exec['hostwall apply'],
    }
  } else {
    exec { "hostwall validate without ${name_in_dir}":
      command  => "${hostwall::command} validate --remove ${shellquote($name_in_dir)}",
      onlyif   => "test -e ${shellquote($path)}",
      provider => 'shell',
      require  => File[$hostwall::config_dir],
    }
    -> file { $path:
      ensure => absent,
      before => Exec['hostwall apply'],
    }
  }
}
