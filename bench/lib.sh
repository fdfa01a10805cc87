# bench/lib.sh: what bench/run.sh and bench/compare.sh share. Source it from
# the checkout's root with prefix set to the namespaces' name prefix; it
# makes $work, and removes it and every namespace newns made on exit.
work=$(mktemp -d)
nss=()
churn_pid=
cleanup() { calm || true; for n in "${nss[@]}"; do ip netns del "$n" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
newns() { # sets the variable named $1 to a new namespace with an eth0
  local name=$prefix-$$-${#nss[@]}
  ip netns add "$name" && ip -n "$name" link add eth0 type veth peer name p0
  nss+=("$name"); printf -v "$1" %s "$name"
}
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); } # since the date +%s%N in $1
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v x="$1" -v y="$2" 'BEGIN {printf "%.2f×", x/y}'; }
# busy NS RATE: another program (bench/churn) changes a table of its own
# in namespace NS RATE times a second until calm, which sets churned to
# how many transactions it committed (not in a $(…): the subshell could
# not wait for it).
busy() {
  [ -x "$work/churn" ] || go build -o "$work/churn" ./bench/churn
  "$work/churn" -netns "$1" -rate "$2" >"$work/churn.out" &
  churn_pid=$!
}
calm() {
  [ -n "$churn_pid" ] || return 0
  kill -TERM "$churn_pid" 2>/dev/null || true
  wait "$churn_pid" || { echo "bench/churn failed" >&2; return 1; }
  churn_pid=
  churned=$(cat "$work/churn.out")
}
# handwritten BIN CFG OUT: the ruleset of CFG as a hand-written nft file
# holds it, for nft -f's side of the comparisons: hostwall's table with
# every list one set (--shard-min above any list's size), as nft lists it.
# hostwall shards sets of 32,768 networks and more, and nft changes an
# element of a 1,600-network slot set faster than one of a 100,000-network
# set (it reads the set first): nobody shards a hand-written file.
handwritten() {
  local n
  newns n
  HOSTWALL_STATE_DIR=$work/handwritten/state HOSTWALL_RUN_DIR=$work/handwritten/run \
    "$1" apply -c "$2" --netns "$n" --auto-approve --confirm-timeout 0 --shard-min 2000000000 >/dev/null
  ip netns exec "$n" nft list table inet hostwall >"$3"
  ip netns del "$n"
}
