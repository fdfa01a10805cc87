#!/usr/bin/env bash
# Installs the Debian packages a make target needs, when missing: only
# those (make demo waits for no Ansible, Puppet or iperf3, nor for an apt
# lock they would take).
#   scripts/deps.sh demo    nftables, iproute2
#   scripts/deps.sh test    what every test runs (the default)
#   scripts/deps.sh bench   what make bench runs
set -euo pipefail
target=${1:-test}
need=()
command -v nft >/dev/null || need+=(nftables)
command -v ip >/dev/null || need+=(iproute2)
case $target in
demo) ;;
test | bench)
  command -v conntrack >/dev/null || need+=(conntrack)
  command -v systemd-analyze >/dev/null || need+=(systemd)
  ;;&
test)
  # The Ansible and Puppet integrations' tests (integrations/) run the
  # real tools, and the trial test reaches a namespace over SSH.
  command -v ansible-playbook >/dev/null || need+=(ansible-core)
  command -v puppet >/dev/null || need+=(puppet)
  command -v ssh >/dev/null || need+=(openssh-client)
  # The metrics' tests scrape with a real Prometheus and node_exporter.
  command -v prometheus >/dev/null || need+=(prometheus)
  command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
  command -v curl >/dev/null || need+=(curl)
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)
  # Domain names in policies: a real DNS server in a test namespace.
  command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
  # The etcd fleet: a real etcd cluster on loopback, written with etcdctl.
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v etcdctl >/dev/null || need+=(etcd-client)
  ;;
bench)
  command -v iperf3 >/dev/null || need+=(iperf3) # W5
  command -v etcd >/dev/null || need+=(etcd-server) # bench/fleet
  command -v etcdctl >/dev/null || need+=(etcd-client)
  ;;
*)
  echo "scripts/deps.sh: unknown target $target (demo, test or bench)" >&2
  exit 2
  ;;
esac
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${need[*]} — run as root, or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]}"
  # Never start a service on this machine while installing (openssh-server
  # would start sshd): the tests start their own, inside namespaces.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
  fi
  trap 'if [ -n "$made_policy" ]; then rm -f "$policy"; fi' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go mod download
