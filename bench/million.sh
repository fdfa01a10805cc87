#!/usr/bin/env bash
# bench/million.sh: a million networks (issue 23's targets 3 and 4, not met
# yet: see docs/performance.md). Generates 2,000 rules and a 1,000,000-line
# nets_file (bench/gen), then times, inside throwaway network namespaces:
# validate; a full apply against nft -f of the same table; a no-op plan; a
# full read (plan --refresh) against nft's own (nft list); then the agent:
# its memory, a one-line change of the list saved after another table
# changed (to the generation recorded, beyond the debounce), and a no-op
# plan and apply after another table changed while it runs. About five
# minutes, most of it the two full reads. Run as root: make build first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/million.sh creates network namespaces: run it as root" >&2; exit 1; }
bin=${BIN:-bin/hostwall}
prefix=hwmillion
. bench/lib.sh
cfg=$work/cfg
go run ./bench/gen -out "$cfg" -rules 2000 -cidrs 1000000
export HOSTWALL_STATE_DIR=$work/state HOSTWALL_RUN_DIR=$work/run
unset SSH_CONNECTION
newns ns
newns nsn
timed() { local t; t=$(date +%s%N); "$@" >/dev/null 2>&1; ms "$t"; }
echo "validate: $(timed "$bin" validate -c "$cfg") ms"
a=$(timed "$bin" apply -c "$cfg" --netns "$ns" --auto-approve --confirm-timeout 0)
ip netns exec "$ns" nft list table inet hostwall >"$work/table.nft"
n=$(timed ip netns exec "$nsn" nft -f "$work/table.nft")
echo "full apply: hostwall $a ms, nft -f $n ms ($(ratio "$a" "$n"))"
echo "no-op plan: $(timed "$bin" plan -c "$cfg" --netns "$ns" --detailed-exitcode) ms"
echo "full read: plan --refresh $(timed "$bin" plan -c "$cfg" --netns "$ns" --refresh) ms, nft list table $(timed ip netns exec "$ns" nft list table inet hostwall) ms"
log=$work/agent.log
"$bin" agent -c "$cfg" --netns "$ns" --log-format json >"$log" 2>&1 &
agent=$!
trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null; cleanup' EXIT
alive() { kill -0 "$agent" 2>/dev/null || { echo "the agent stopped; its log: $(tail -3 "$log")" >&2; exit 1; }; }
until grep -q '"applied"' "$log"; do alive; sleep 0.2; done # polling the agent's log for its first apply
current() { cat "$HOSTWALL_STATE_DIR/current" 2>/dev/null || echo 0; }
lat=()
for i in 1 2 3 4 5; do
  ip netns exec "$ns" nft add table ip busy$i
  g=$(current)
  sed -i "1s|.*|11.0.$i.0/30|" "$cfg/blocklist.txt"
  t=$(date +%s%N)
  until [ "$(current)" != "$g" ]; do alive; sleep 0.01; done # polling the state directory for the agent's generation
  lat+=("$(( $(ms "$t") - 200 ))")
done
echo "agent: one-line change after another table changed, to the generation recorded beyond the debounce: ${lat[*]} ms (median $(echo "${lat[@]}" | median)); RSS $(awk '/VmRSS/ {print int($2/1024)}' /proc/$agent/status) MB, peak $(awk '/VmHWM/ {print int($2/1024)}' /proc/$agent/status) MB"
ip netns exec "$ns" nft add table ip busyz
echo "agent running, another table changed: no-op plan $(timed "$bin" plan -c "$cfg" --netns "$ns" --detailed-exitcode) ms"
ip netns exec "$ns" nft add table ip busyy
echo "agent running, another table changed: no-op apply $(timed "$bin" apply -c "$cfg" --netns "$ns" --auto-approve --confirm-timeout 0) ms"
