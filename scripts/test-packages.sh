#!/usr/bin/env bash
# make test-packages: builds the packages twice (two versions), checks them
# with lintian and rpmlint, installs the .deb for real in a throwaway Debian
# root (debootstrap; dpkg runs the maintainer scripts in a chroot), upgrades
# it with an edited conffile, removes and purges it, and installs the .rpm
# into a temporary root with rpm, and has the Ansible role (check mode) and
# the Puppet class (--noop) see that they would install the .deb. Needs
# root; outside CI it skips without.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  if [ -n "${HOSTWALL_REQUIRE_ROOT_TESTS:-}" ]; then echo "FAIL: test-packages needs root" >&2; exit 1; fi
  echo "SKIP: test-packages needs root (debootstrap, chroot, rpm --root)"; exit 0
fi
need=()
for t in lintian:lintian rpm:rpm rpmlint:rpmlint debootstrap:debootstrap systemd-analyze:systemd; do
  command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
pass() { echo "ok: $*"; }
check() { # description, command...
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

v1=0.1.0~pkgtest1 v2=0.1.0~pkgtest2
for v in $v1 $v2; do make -s package VERSION=$v >/dev/null; done
deb1=dist/hostwall_${v1}_amd64.deb deb2=dist/hostwall_${v2}_amd64.deb
rpm1=dist/hostwall-${v1}.x86_64.rpm rpm2=dist/hostwall-${v2}.x86_64.rpm
check "both packages built for two versions" test -s "$deb1" -a -s "$deb2" -a -s "$rpm1" -a -s "$rpm2"

# --- lint ---------------------------------------------------------------
out=$(lintian --tag-display-limit 0 "$deb2" 2>&1 | grep -v 'running with root privileges' || true)
check "lintian reports nothing${out:+: $out}" test -z "$out"
out=$(rpmlint -r packaging/hostwall.rpmlintrc "$rpm2" 2>&1 || true)
check "rpmlint reports no error" grep -q ' 0 errors' <<<"$out"
grep -E ': E: ' <<<"$out" >&2 || true

# --- .deb in a Debian root ------------------------------------------------
cache=/var/cache/hostwall-tests/bookworm-minbase.tar.gz
if [ ! -s "$cache" ]; then
  echo "debootstrap bookworm (once; cached in $cache)"
  mkdir -p "$(dirname "$cache")" "$work/boot"
  debootstrap --variant=minbase --include=procps bookworm "$work/boot" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { cat "$work/debootstrap.log" >&2; exit 1; }
  tar -C "$work/boot" -czf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$work/boot"
fi
root=$work/root
mkdir -p "$root" && tar -C "$root" -xzf "$cache"
cp "$deb1" "$root/tmp/v1.deb" && cp "$deb2" "$root/tmp/v2.deb"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@" </dev/null; }

check "dpkg -i installs version 1 (maintainer scripts run, no systemd running)" in_root dpkg -i /tmp/v1.deb
check "hostwall version prints the package version" grep -qx "hostwall $v1" <(in_root hostwall version)
check "hostwall validate accepts the default configuration" in_root hostwall validate
check "the default configuration enforces nothing (0 host endpoints)" grep -q "0 host endpoints" <(in_root hostwall validate)
check "the service is enabled offline" test -L "$root/etc/systemd/system/multi-user.target.wants/hostwall.service"
check "/etc/hostwall/hostwall.hcl is a conffile" grep -qx " /etc/hostwall/hostwall.hcl [0-9a-f]*" <(in_root dpkg-query -W -f='${Conffiles}\n' hostwall)
check "man pages and completions are installed" test -s "$root/usr/share/man/man8/hostwall.8.gz" -a -s "$root/usr/share/man/man8/hostwall-apply.8.gz" \
  -a -s "$root/usr/share/bash-completion/completions/hostwall" -a -s "$root/usr/share/zsh/vendor-completions/_hostwall" \
  -a -s "$root/usr/share/fish/vendor_completions.d/hostwall.fish"
check "the binary is mode 0755" test "$(stat -c %a "$root/usr/bin/hostwall")" = 755
out=$(systemd-analyze verify --man=no --root="$root" "$root/lib/systemd/system/hostwall.service" 2>&1 || echo "exit $?")
check "systemd-analyze verify of the installed unit prints nothing${out:+: $out}" test -z "$out"

echo '# edited by the operator' >>"$root/etc/hostwall/hostwall.hcl"
mkdir -p "$root/var/lib/hostwall/generations/1" # as an agent would leave it
check "dpkg -i upgrades to version 2" in_root dpkg -i /tmp/v2.deb
check "the upgrade runs version 2" grep -qx "hostwall $v2" <(in_root hostwall version)
check "the upgrade keeps the edited conffile" grep -q 'edited by the operator' "$root/etc/hostwall/hostwall.hcl"
check "the upgrade keeps the generations" test -d "$root/var/lib/hostwall/generations/1"
check "dpkg -r removes the package" in_root dpkg -r hostwall
check "remove takes the binary" test ! -e "$root/usr/bin/hostwall"
check "remove keeps the conffile and the generations" test -f "$root/etc/hostwall/hostwall.hcl" -a -d "$root/var/lib/hostwall"
check "dpkg -P purges the package" in_root dpkg -P hostwall
check "purge removes the conffile and the state directory" test ! -e "$root/etc/hostwall/hostwall.hcl" -a ! -e "$root/var/lib/hostwall"
check "purge leaves no enablement behind" test ! -e "$root/etc/systemd/system/multi-user.target.wants/hostwall.service"

# --- .rpm into a temporary root -------------------------------------------
rr=$work/rpmroot
mkdir -p "$rr"
rpm --root "$rr" --initdb
# --nodeps: the root holds no other packages; --noscripts: it has no shell.
check "rpm -i installs version 1" rpm --root "$rr" -i --nodeps --noscripts "$rpm1"
check "rpm lists the binary, the unit, the conffile, man pages and completions" bash -c "
  l=\$(rpm --root '$rr' -ql hostwall)
  for f in /usr/bin/hostwall /usr/lib/systemd/system/hostwall.service /etc/hostwall/hostwall.hcl \
           /usr/share/man/man8/hostwall.8.gz /usr/share/bash-completion/completions/hostwall \
           /usr/share/licenses/hostwall/copyright /usr/share/doc/hostwall/examples/quickstart/policies.hcl; do
    grep -qx \"\$f\" <<<\"\$l\" || { echo missing \$f; exit 1; }
  done"
check "modes: binary 0755, unit and conffile 0644" test "$(stat -c %a "$rr/usr/bin/hostwall") $(stat -c %a "$rr/usr/lib/systemd/system/hostwall.service") $(stat -c %a "$rr/etc/hostwall/hostwall.hcl")" = "755 644 644"
check "/etc/hostwall/hostwall.hcl is %config(noreplace)" grep -qx "cn /etc/hostwall/hostwall.hcl" \
  <(rpm --root "$rr" -q --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' hostwall)
check "man pages are %doc" grep -qx /usr/share/man/man8/hostwall.8.gz <(rpm --root "$rr" -qd hostwall)
check "the rpm's binary runs and prints version 1" grep -qx "hostwall $v1" <("$rr/usr/bin/hostwall" version)
echo '# edited by the operator' >>"$rr/etc/hostwall/hostwall.hcl"
check "rpm -U upgrades to version 2" rpm --root "$rr" -U --nodeps --noscripts "$rpm2"
check "the upgrade keeps the edited conffile" grep -q 'edited by the operator' "$rr/etc/hostwall/hostwall.hcl"
check "rpm -e erases it, saving the edited conffile as .rpmsave" bash -c "rpm --root '$rr' -e --nodeps --noscripts hostwall && test -f '$rr/etc/hostwall/hostwall.hcl.rpmsave' -a ! -e '$rr/usr/bin/hostwall'"

# --- the integrations install it (check mode and --noop) -------------------
# The Ansible role and the Puppet class install hostwall from a package file
# when told where it is. Installing it on this machine is out of the
# question, so they run in check mode / --noop here: each must see that
# installing the .deb would change the system, and change nothing.
ns=hwpkg-$$
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -m 755 "$work/etc"
installed_before=$(dpkg-query -W -f '${Status} ${Version}' hostwall 2>/dev/null || true)
cat >"$work/role.json" <<JSON
{"hostwall_package": "$PWD/$deb2", "hostwall_config_dir": "$work/etc", "hostwall_state_dir": "$work/state",
 "hostwall_run_dir": "$work/run", "hostwall_netns": "$ns", "hostwall_binary": "$PWD/bin/hostwall",
 "hostwall_manage_service": false, "hostwall_policies": []}
JSON
out=$(ANSIBLE_COLLECTIONS_PATH=$PWD/integrations/ansible ANSIBLE_NOCOLOR=1 ANSIBLE_PYTHON_INTERPRETER=/usr/bin/python3 \
  ansible-playbook -i localhost, -c local --check -e "@$work/role.json" integrations/ansible/tests/site.yml 2>&1) || true
if [ -z "$installed_before" ]; then
  check "the Ansible role in check mode would install the .deb" \
    bash -c 'grep -A1 "Install the .deb\]" <<<"$1" | grep -q "^changed:" || { echo "$1" >&2; exit 1; }' _ "$out"
fi
check "the Ansible role in check mode failed nothing" grep -qE 'localhost +: ok=[0-9]+ +changed=[0-9]+ +unreachable=0 +failed=0' <<<"$out"
out=$(FACTER_hw_config_dir=$work/etc FACTER_hw_state_dir=$work/state FACTER_hw_run_dir=$work/run FACTER_hw_netns=$ns \
  FACTER_hw_binary=$PWD/bin/hostwall FACTER_hw_package=$PWD/$deb2 \
  puppet apply --noop --color=false --modulepath integrations/puppet --vardir "$work/puppet" integrations/puppet/tests/package.pp 2>&1) || true
if [ -z "$installed_before" ]; then
  check "puppet --noop would install the .deb" \
    bash -c 'grep -q "Package\[hostwall\]/ensure: current_value .purged., should be .present. (noop)" <<<"$1" || { echo "$1" >&2; exit 1; }' _ "$out"
fi
check "neither changed what dpkg has installed" test "$(dpkg-query -W -f '${Status} ${Version}' hostwall 2>/dev/null || true)" = "$installed_before"

rm -f "$deb1" "$deb2" "$rpm1" "$rpm2"
if [ $failed -ne 0 ]; then echo "test-packages: FAILED" >&2; exit 1; fi
echo "test-packages: all passed"
