#!/usr/bin/env bash
# ICE links through every NAT pair (issue 24), in the namespace lab: the node's link logic
# (nat/ice_links.hpp) on its libnice agent (node/runtime/nice_ice.hpp), one side in each of two lab
# hosts, run by tests/natlab/ice_probe with the Attach carried in files. coturn (198.51.100.2) is
# both the STUN server and the TURN server (long-term credentials; over TCP from the UDP-blocked
# hosts). Two public hosts and two hosts behind each of full cone, port-restricted cone, symmetric
# and UDP-blocked NATs, one behind an address-restricted cone, each router checked first with
# turnutils_natdiscovery. For each pair of the five types (15 pairs) and the address-restricted
# host with each type (5 more), the link must come up, carry a ping and its pong, and have the
# disposition RFC 4787 predicts (tests/natlab/dispositions.txt, which the simulator's model must find
# too): relayed (TURN) when either side's UDP is blocked, or both map per destination (symmetric), or
# one maps per destination and the other filters by port (symmetric x port-restricted); direct
# otherwise. And one pair that needs a relay, tried without TURN: no link, the verdict within 10 s.
# RUNS=N repeats every pair (bench/natlab_ice.sh: 20, with NETEM_MS=50); TABLE=FILE writes one
# line per run. Bounded: every probe has a time-out; the lab removes every namespace, process and
# nftables table on the way out, failure included.
set -euo pipefail
PROBE=${1:?usage: ice_test.sh PATH/TO/ice_probe}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/natlab.sh"
RUNS=${RUNS:-1}
NETEM_MS=${NETEM_MS:-0}
lab_begin

SITES=("fa 1 full-cone" "fb 2 full-cone" "aa 3 addr-restricted" "ra 4 port-restricted" "rb 5 port-restricted"
  "sa 6 symmetric" "sb 7 symmetric" "ua 8 udp-blocked" "ub 9 udp-blocked")
declare -A TYPE ADDR
lab_stun
lab_public p1 21
lab_public p2 22
TYPE[p1]=public TYPE[p2]=public ADDR[p1]=198.51.100.21 ADDR[p2]=198.51.100.22
for s in "${SITES[@]}"; do
  read -r name x type <<<"$s"
  lab_site "$name" "$x" "$type"
  lab_verify_nat "$name" "$type" || exit 1
  TYPE[$name]=$type
  ADDR[$name]=10.0.$x.2
done
if [ "$NETEM_MS" -gt 0 ]; then
  for n in p1 p2 fa fb aa ra rb sa sb ua ub; do lab_netem "$n" "$NETEM_MS"; done
fi
printf '%s' "$LAB_TURN_PASSWORD" >"$WORK/turn-password"

# What RFC 4787 predicts for a pair of kinds (tests/natlab/dispositions.txt, which the simulator's
# NAT model is held to as well): $3 is "turn" or "noturn".
predict() {
  local a=$1 b=$2 turn=$3 line
  line=$(awk -v a="$a" -v b="$b" '!/^#/ && (($1 == a && $2 == b) || ($1 == b && $2 == a)) {print; exit}' \
    "$HERE/dispositions.txt")
  [ -n "$line" ] || lab_die "no disposition for $a $b"
  set -- $line
  if [ "$turn" = turn ]; then echo "$3"; else echo "$4"; fi
}

probe_args() {
  local n=$1 turn=$2
  local args=(--bind "${ADDR[$n]}" --stun 198.51.100.2:3478 --timeout 20)
  if [ "$turn" = turn ]; then
    args+=(--turn 198.51.100.2:3478 --turn-user "$LAB_TURN_USER" --turn-password-file "$WORK/turn-password")
    [ "${TYPE[$n]}" = udp-blocked ] && args+=(--turn-tcp)
  fi
  echo "${args[@]}"
}

PAIRS=("p1 p2" "p1 fa" "p1 ra" "p1 sa" "p1 ua" "fa fb" "fa ra" "fa sa" "fa ua" "ra rb" "ra sa" "ra ua" "sa sb"
  "sa ua" "ua ub" "aa p1" "aa fa" "aa ra" "aa sa" "aa ua" "sa sb noturn")
failures=0
table=${TABLE:-$WORK/table}
: >"$table"
printf '%-34s %-8s %-8s %-14s %s\n' "pair" "expected" "got" "pair types" "setup ms"
for run in $(seq 1 "$RUNS"); do
  for pair in "${PAIRS[@]}"; do
    read -r a b turn <<<"$pair"
    turn=${turn:-turn}
    dir="$WORK/ice-$a-$b-$turn-$run"
    mkdir -p "$dir"
    # shellcheck disable=SC2046
    lab_exec "$b" "$PROBE" --side answer --dir "$dir" $(probe_args "$b" "$turn") >"$dir/answer.json" 2>"$dir/answer.log" &
    answer_pid=$!
    # shellcheck disable=SC2046
    lab_exec "$a" "$PROBE" --side offer --dir "$dir" $(probe_args "$a" "$turn") >"$dir/offer.json" 2>"$dir/offer.log" || true
    wait "$answer_pid" || true
    # Without TURN a pair that needs a relay has no link: its verdict must come within 10 s.
    expected=$(predict "${TYPE[$a]}" "${TYPE[$b]}" "$turn")
    verdict=$(python3 - "$dir/offer.json" "$expected" <<'EOF'
import json, sys
try:
    j = json.loads(open(sys.argv[1]).read())
except Exception:
    print("no-output - -"); sys.exit(0)
if not j.get("exchanged"):
    print("no-link - %s" % j.get("verdict_ms", "-")); sys.exit(0)
got = "relayed" if j["relayed"] else "direct"
print("%s %s-%s %s" % (got, j["local"], j["remote"], j["setup_ms"]))
EOF
)
    read -r got types ms <<<"$verdict"
    label="$a(${TYPE[$a]}) - $b(${TYPE[$b]})"
    [ "$turn" = noturn ] && label="$label no TURN"
    if [ "$got" = no-link ] && [ "$expected" = no-link ] && { [ "$ms" = - ] || [ "$ms" -gt 10500 ]; }; then
      got="late-verdict"
    fi
    printf '%-34s %-8s %-8s %-14s %s\n' "$label" "$expected" "$got" "$types" "$ms"
    tag=${TYPE[$a]}
    [ "$turn" = noturn ] && tag="$tag,no-turn"
    echo "$run $tag ${TYPE[$b]} $expected $got $types $ms" >>"$table"
    if [ "$got" != "$expected" ]; then
      failures=$((failures + 1))
      echo "--- $label: expected $expected, got $got"
      tail -n 20 "$dir/offer.log" "$dir/answer.log" || true
    fi
  done
done
if [ "$failures" -gt 0 ]; then
  echo "ice: $failures of $((RUNS * ${#PAIRS[@]})) runs without the predicted link"
  exit 1
fi
echo "ice: all $((RUNS * ${#PAIRS[@]})) runs linked with the predicted disposition"
