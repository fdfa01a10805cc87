#!/usr/bin/env bash
# make bench: hostwall against `nft -f` of the same ruleset, side by side in
# one run, medians of RUNS (default 5), inside throwaway network namespaces.
#   W1 full apply from files: ~10k policy rules + a 100k-CIDR nets_file
#   W2 one CIDR changed in that list: hostwall apply vs nft -f of the change
#   W3 no-op hostwall plan on W1's state (and with --refresh: the full read;
#      and a no-op apply)
#   the same 100k networks inline in HCL: hostwall validate (load and compile)
#   the steps of W1, timed in-process (bench/phases)
#   W4, W6 the agent on W1's files and on the quickstart example (bench/agent)
#   W5 the data plane: no ruleset, hostwall's, a linear list (bench/dataplane)
# Prints Markdown tables, the last one every target (docs/performance.md
# keeps the latest).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "make bench creates network namespaces: run it as root" >&2; exit 1; }
runs=${RUNS:-5} rules=${RULES:-10000} cidrs=${CIDRS:-100000}
bin=bin/hostwall
prefix=hwbench
. bench/lib.sh
cfg=$work/cfg
go run ./bench/gen -out "$cfg" -rules "$rules" -cidrs "$cidrs"
export HOSTWALL_STATE_DIR=$work/state HOSTWALL_RUN_DIR=$work/run
unset SSH_CONNECTION
apply_in() { "$bin" apply -c "$cfg" --netns "$1" --auto-approve --confirm-timeout 0 >/dev/null 2>&1; }

inline=$work/inline
go run ./bench/gen -out "$inline" -rules "$rules" -cidrs "$cidrs" -inline
w1h=() w1n=() w2h=() w2n=() w3=() w3r=() w3a=() vi=() vf=()
for i in $(seq "$runs"); do
  # W1: every policy file loaded (hostwall keeps no decoding of them
  # between commands).
  newns ns
  t=$(date +%s%N); apply_in "$ns"; w1h+=("$(ms "$t")")
  ip netns exec "$ns" nft list table inet hostwall >"$work/table.nft"
  newns nsn
  t=$(date +%s%N); ip netns exec "$nsn" nft -f "$work/table.nft"; w1n+=("$(ms "$t")")

  t=$(date +%s%N); "$bin" plan -c "$cfg" --netns "$ns" --detailed-exitcode >/dev/null 2>&1 || { echo "W3: plan not empty" >&2; exit 1; }; w3+=("$(ms "$t")")
  t=$(date +%s%N); "$bin" plan -c "$cfg" --netns "$ns" --detailed-exitcode --refresh >/dev/null 2>&1 || { echo "W3: plan --refresh not empty" >&2; exit 1; }; w3r+=("$(ms "$t")")
  t=$(date +%s%N); apply_in "$ns"; w3a+=("$(ms "$t")")

  # W2: the first network of the list replaced by another.
  set=$(awk '/^\tset /{name=$2} /10\.0\.0\.0\/30/{print name; exit}' "$work/table.nft")
  sed -i '1s|.*|11.0.0.0/30|' "$cfg/blocklist.txt"
  t=$(date +%s%N); apply_in "$ns"; w2h+=("$(ms "$t")")
  printf 'delete element inet hostwall %s { 10.0.0.0/30 }\nadd element inet hostwall %s { 11.0.0.0/30 }\n' "$set" "$set" >"$work/change.nft"
  t=$(date +%s%N); ip netns exec "$nsn" nft -f "$work/change.nft"; w2n+=("$(ms "$t")")
  if ! "$bin" plan -c "$cfg" --netns "$ns" --detailed-exitcode >/dev/null 2>&1; then echo "W2: hostwall did not converge" >&2; exit 1; fi
  sed -i '1s|.*|10.0.0.0/30|' "$cfg/blocklist.txt"
  t=$(date +%s%N); "$bin" validate -c "$inline" >/dev/null 2>&1; vi+=("$(ms "$t")")
  t=$(date +%s%N); "$bin" validate -c "$cfg" >/dev/null 2>&1; vf+=("$(ms "$t")")
  ip netns del "$ns"; ip netns del "$nsn"
done
m() { echo "$@" | median; }
a=$(m "${w1h[@]}") b=$(m "${w1n[@]}") c=$(m "${w2h[@]}") d=$(m "${w2n[@]}") e=$(m "${w3[@]}") f=$(m "${w3r[@]}") fa=$(m "${w3a[@]}")
g=$(m "${vi[@]}") h=$(m "${vf[@]}")
cat <<TABLE
| workload | hostwall (median of $runs) | nft -f | ratio | target |
|---|---|---|---|---|
| W1 full apply: $rules rules + $cidrs CIDRs from files | $a ms | $b ms | $(ratio "$a" "$b") | ≤ 0.8× |
| W2 one CIDR changed in the $cidrs-line file, apply end to end | $c ms | $d ms | $(ratio "$c" "$d") | ≤ 0.1× |
| W3 no-op plan on W1's state | $e ms | — | — | ≤ 200 ms |
| W3 with --refresh (compile and full read) | $f ms | — | — | — |
| no-op apply on W1's state | $fa ms | — | — | — |
| load and compile, $cidrs networks inline in HCL (validate) | $g ms | — | — | ≤ 2000 ms |
| load and compile, the same from a nets_file (validate) | $h ms | — | — | — |

runs: W1 hostwall ${w1h[*]}; nft ${w1n[*]}; W2 hostwall ${w2h[*]}; nft ${w2n[*]}; W3 ${w3[*]}; W3 --refresh ${w3r[*]}; no-op apply ${w3a[*]}; inline ${vi[*]}; nets_file ${vf[*]} (ms)
TABLE

# Where W1's time goes.
echo
go run ./bench/phases -config "$cfg"

# W4 and W6: the agent (RUNS×4 saves each).
small=$work/small
mkdir -m 755 "$small" && cp examples/quickstart/*.hcl "$small"/
echo
echo "W4, W6 — the agent on W1's files ($rules rules, $cidrs networks):"
go run ./bench/agent -bin "$bin" -config "$cfg" -runs $((runs * 4)) | tee "$work/agent.txt" | sed 's/^/    /'
echo "W4, W6 — the agent on examples/quickstart:"
go run ./bench/agent -bin "$bin" -config "$small" -runs $((runs * 4)) -settle 2s | sed 's/^/    /'

# W5: the data plane.
echo
go run ./bench/dataplane -bin "$bin" -runs "$runs" | tee "$work/dataplane.txt"

# Every target in one table, from the runs above.
p50=$(sed -n 's/^W4 save → commit.* p50 \([0-9]*\) ms.*/\1/p' "$work/agent.txt")
rss=$(sed -n 's/^W6 RSS \([0-9]*\) MB.*/\1/p' "$work/agent.txt")
idle=$(sed -n 's/.*: CPU \([0-9]*\) ms, \([0-9]*\) context switches.*/\1 ms CPU, \2 switches/p' "$work/agent.txt")
w5=$(awk -F'|' '/^\| \(b\)/ {gsub(/ /, "", $4); gsub(/ /, "", $6); print "UDP " $4 ", TCP " $6}' "$work/dataplane.txt")
ok() { awk -v x="$1" -v y="$2" 'BEGIN {print (x <= y) ? "met" : "MISSED"}'; }
w5ok=$(awk -F'|' '/^\| \(b\)/ {u=$4; t=$6; gsub(/[ ×]/, "", u); gsub(/[ ×]/, "", t); print (u >= 0.8 && t >= 0.8) ? "met" : "MISSED"}' "$work/dataplane.txt")
w6ok=MISSED
if [ "$(ok "$rss" 60)" = met ] && grep -q ': CPU 0 ms, 0 context switches' "$work/agent.txt"; then w6ok=met; fi
echo
cat <<TABLE
| target | this run | |
|---|---|---|
| W1 ≤ 0.8× nft -f | $(ratio "$a" "$b") ($a ms against $b) | $(ok "$(awk -v x="$a" -v y="$b" 'BEGIN {print x/y}')" 0.8) |
| W2 ≤ 0.1× nft -f | $(ratio "$c" "$d") ($c ms against $d) | $(ok "$(awk -v x="$c" -v y="$d" 'BEGIN {print x/y}')" 0.1) |
| W3 ≤ 200 ms | $e ms | $(ok "$e" 200) |
| W4 ≤ 50 ms p50 | $p50 ms | $(ok "$p50" 50) |
| W5 (b) ≥ 0.8× (a) | $w5 | $w5ok |
| W6 ≤ 60 MB, no polling while idle | $rss MB; idle 10 s: $idle | $w6ok |
| $cidrs inline networks load ≤ 2 s | $g ms | $(ok "$g" 2000) |
TABLE
