#!/usr/bin/env bash
# The quick start: examples/quickstart planned and applied inside a throwaway
# network namespace, so the host's own firewall is never touched.
set -euo pipefail
bin=${1:-bin/hostwall}
if [ "$(id -u)" -ne 0 ]; then
  echo "make demo creates a network namespace: run it as root" >&2
  exit 1
fi
ns=hostwall-demo-$$ cli=hostwall-demo-cli-$$
# Generations, the lock and trials go to throwaway directories too.
tmp=$(mktemp -d)
export HOSTWALL_STATE_DIR=$tmp/state HOSTWALL_RUN_DIR=$tmp/run
cleanup() {
  [ -z "${follower:-}" ] || kill "$follower" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  ip netns del "$cli" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
# The example protects eth0; give the namespace one.
ip -n "$ns" link add eth0 type veth peer name eth0-peer
ip -n "$ns" link set eth0 up

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
# A root-owned copy: run as root, hostwall loads only files that root owns
# and nobody else can write, and a clone may belong to someone else.
cfg=$tmp/quickstart
mkdir "$cfg" && cp examples/quickstart/*.hcl "$cfg"/
step "$bin" validate -c "$cfg"
step "$bin" plan -c "$cfg" --netns "$ns"
step "$bin" apply -c "$cfg" --netns "$ns" --auto-approve --confirm-timeout 0
step "$bin" plan -c "$cfg" --netns "$ns"
step "$bin" show --netns "$ns"
# explain evaluates the configuration for one packet and says why:
step "$bin" explain -c "$cfg" --iface eth0 --in --proto tcp --src 203.0.113.20 --dport 9100
step "$bin" explain -c "$cfg" --iface eth0 --in --proto tcp --src 192.0.2.99 --dport 9100
step "$bin" explain -c "$cfg" --iface eth0 --in --proto tcp --src 192.0.2.99 --dport 22
step "$bin" explain -c "$cfg" --iface lo --in --proto udp --dport 53
printf '\n\033[1m# the same table as the nft tool lists it:\033[0m\n'
ip netns exec "$ns" nft list table inet hostwall
# What the ruleset drops, as it happens: a client namespace on eth0's other
# end, from an untrusted address, knocks on the metrics port.
ip netns add "$cli"
ip -n "$ns" link set eth0-peer netns "$cli"
ip -n "$ns" addr add 192.0.2.10/24 dev eth0
ip -n "$cli" addr add 192.0.2.99/24 dev eth0-peer
ip -n "$cli" link set eth0-peer up
printf '\n\033[1m$ %s drops --follow --netns %s\033[0m   (while 192.0.2.99 tries port 9100)\n' "$bin" "$ns"
"$bin" drops --follow --netns "$ns" > "$tmp/drops" 2> "$tmp/drops.err" &
follower=$!
for _ in $(seq 50); do grep -q Listening "$tmp/drops.err" && break; sleep 0.1; done
ip netns exec "$cli" timeout 2 bash -c 'exec 3<>/dev/tcp/192.0.2.10/9100' 2>/dev/null || true
for _ in $(seq 50); do [ -s "$tmp/drops" ] && break; sleep 0.1; done
kill "$follower" && wait "$follower" 2>/dev/null || true
follower=
head -1 "$tmp/drops"
[ -s "$tmp/drops" ] || { echo "no drop was shown" >&2; cat "$tmp/drops.err" >&2; exit 1; }
# A change on trial: rolled back unless confirmed (from a new connection).
trial=$tmp/trial
mkdir "$trial"
cp "$cfg"/*.hcl "$trial"/
sed -i 's/ports = \[80, 443\]/ports = [80, 443, 8443]/' "$trial"/policies.hcl
step "$bin" apply -c "$trial" --netns "$ns" --auto-approve --confirm-timeout 1m --wait=false
step "$bin" status --netns "$ns"
step "$bin" confirm --netns "$ns"
step "$bin" generations
printf '\nDemo done; namespace %s is removed now. The host ruleset was never touched.\n' "$ns"
