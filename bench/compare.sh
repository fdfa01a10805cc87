#!/usr/bin/env bash
# bench/compare.sh OLD NEW: two hostwall binaries side by side, and nft -f,
# on W1 (a full apply into a fresh namespace, cold), W2 (one CIDR of the
# 100k-line file changed, apply end to end), a cold validate of W1's files
# and W3, a no-op plan on W1's state without an agent, after another table
# changed and while another program changes one CHURN (20) times a second
# (it reads the whole table: nothing else tells what the other program
# did), interleaved round by round so that the machine's drift hits both
# alike; medians of RUNS (default 9).
# How docs/performance.md measures one change against the build before it:
#   git worktree add /tmp/before HEAD~1 && (cd /tmp/before && make build)
#   make build && bench/compare.sh /tmp/before/bin/hostwall bin/hostwall
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "bench/compare.sh creates network namespaces: run it as root" >&2; exit 1; }
[ $# -eq 2 ] || { echo "usage: bench/compare.sh OLD-BINARY NEW-BINARY" >&2; exit 2; }
old=$(realpath "$1") new=$(realpath "$2")
runs=${RUNS:-9} rules=${RULES:-10000} cidrs=${CIDRS:-100000}
prefix=hwcmp
. bench/lib.sh
cfg=$work/cfg
go run ./bench/gen -out "$cfg" -rules "$rules" -cidrs "$cidrs"
unset SSH_CONNECTION
churn=${CHURN:-20}
declare -A bin=([old]=$old [new]=$new) w1 w2 w3 w3b v ns
apply() { # apply old|new NAMESPACE: the binary's own state and run directories
  HOSTWALL_STATE_DIR=$work/$1/state HOSTWALL_RUN_DIR=$work/$1/run "${bin[$1]}" apply -c "$cfg" --netns "$2" \
    --auto-approve --confirm-timeout 0 >/dev/null 2>&1
}
noop() { # noop old|new NAMESPACE: a plan that must find nothing to do
  HOSTWALL_STATE_DIR=$work/$1/state HOSTWALL_RUN_DIR=$work/$1/run "${bin[$1]}" plan -c "$cfg" --netns "$2" \
    --detailed-exitcode >/dev/null 2>&1 || { echo "$1: W3 plan not empty" >&2; exit 1; }
}
cold() { # an older build keeps its decoding of the policy files in the run
  rm -f "$work/$1/run/"cache-* # directory: removed, as a reboot does
}
handwritten "$new" "$cfg" "$work/table.nft" # nft -f's ruleset
n1=() n2=()
for i in $(seq "$runs"); do
  order="old new"; [ $((i % 2)) = 0 ] && order="new old"
  for b in $order; do
    cold "$b"
    t=$(date +%s%N)
    HOSTWALL_STATE_DIR=$work/$b/state HOSTWALL_RUN_DIR=$work/$b/run "${bin[$b]}" validate -c "$cfg" >/dev/null 2>&1
    v[$b]+="$(ms "$t") "
  done
  for b in $order; do
    cold "$b"
    newns fresh; ns[$b]=$fresh
    t=$(date +%s%N); apply "$b" "$fresh"; w1[$b]+="$(ms "$t") "
  done
  newns nsn
  t=$(date +%s%N); ip netns exec "$nsn" nft -f "$work/table.nft"; n1+=("$(ms "$t")")
  set=$(awk '/^\tset /{name=$2} /10\.0\.0\.0\/30/{print name; exit}' "$work/table.nft")
  sed -i '1s|.*|11.0.0.0/30|' "$cfg/blocklist.txt"
  for b in $order; do
    t=$(date +%s%N); apply "$b" "${ns[$b]}"; w2[$b]+="$(ms "$t") "
  done
  printf 'delete element inet hostwall %s { 10.0.0.0/30 }\nadd element inet hostwall %s { 11.0.0.0/30 }\n' "$set" "$set" >"$work/change.nft"
  t=$(date +%s%N); ip netns exec "$nsn" nft -f "$work/change.nft"; n2+=("$(ms "$t")")
  for b in old new; do
    HOSTWALL_STATE_DIR=$work/$b/state HOSTWALL_RUN_DIR=$work/$b/run "${bin[$b]}" plan -c "$cfg" --netns "${ns[$b]}" \
      --refresh --detailed-exitcode >/dev/null 2>&1 || { echo "$b: W2 did not converge" >&2; exit 1; }
  done
  for b in $order; do
    ip netns exec "${ns[$b]}" nft add table ip other
    t=$(date +%s%N); noop "$b" "${ns[$b]}"; w3[$b]+="$(ms "$t") "
    busy "${ns[$b]}" "$churn"
    t=$(date +%s%N); noop "$b" "${ns[$b]}"; w3b[$b]+="$(ms "$t") "
    calm
  done
  sed -i '1s|.*|10.0.0.0/30|' "$cfg/blocklist.txt"
  for n in "${ns[@]}" "$nsn"; do ip netns del "$n"; done
  nss=()
done
N1=$(echo "${n1[*]}" | median) N2=$(echo "${n2[*]}" | median)
echo "| binary | W1 (median of $runs) | W1 / nft -f | W2 | W2 / nft -f | validate W1's files | W3 after another table changed | W3, another table changed ${churn}×/s |"
echo "|---|---|---|---|---|---|---|---|"
for b in old new; do
  a=$(echo "${w1[$b]}" | median) c=$(echo "${w2[$b]}" | median) e=$(echo "${v[$b]}" | median)
  f=$(echo "${w3[$b]}" | median) g=$(echo "${w3b[$b]}" | median)
  echo "| $b ${bin[$b]} | $a ms | $(ratio "$a" "$N1") | $c ms | $(ratio "$c" "$N2") | $e ms | $f ms | $g ms |"
done
echo "| nft -f | $N1 ms | | $N2 ms | | | | |"
echo
echo "runs (ms): W1 old ${w1[old]}; new ${w1[new]}; nft ${n1[*]}; W2 old ${w2[old]}; new ${w2[new]}; nft ${n2[*]}; validate old ${v[old]}; new ${v[new]}; W3 old ${w3[old]}; new ${w3[new]}; W3 busy old ${w3b[old]}; new ${w3b[new]}"
