#!/usr/bin/env bash
# Overlay benchmark on loopback (not part of ctest). Two phases:
#  1. idle: N nodes with the default 30 s stabilization interval form a ring; after it settles, the
#     bytes each node sends over IDLE_S seconds give the idle maintenance traffic; /proc gives RSS.
#  2. churn: N nodes with a CHURN_INTERVAL_S stabilization interval; every CHURN_EVERY_S seconds one
#     random node is killed with SIGKILL and a new one joins, while lookups run from random nodes.
#     Reports lookup success, latency p50/p99 and hop counts.
# Usage: bench/overlay_bench.sh [N] ; environment: IDLE_S, CHURN_S, CHURN_EVERY_S, CHURN_INTERVAL_S,
# CHURN_T1_MS, LOOKUPS, BUILD.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}
IDLE_S=${IDLE_S:-120}
CHURN_S=${CHURN_S:-120}
CHURN_EVERY_S=${CHURN_EVERY_S:-5}
CHURN_INTERVAL_S=${CHURN_INTERVAL_S:-2}
LOOKUPS=${LOOKUPS:-1000}
P2PSIP=${BUILD:-build}/bin/p2psip
BASE=${BASE_PORT:-31000}
WORK=$(mktemp -d)
declare -A PID=()
cleanup() { for p in "${PID[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
[ -x "$P2PSIP" ] || { echo "build p2psip first (cmake --build build)"; exit 1; }
[ "$N" -le 400 ] || { echo "at most 400 nodes on this machine"; exit 1; }

listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 1000 + $1))"; }
T1_MS=500
start() {  # start INDEX INTERVAL [BOOT]
  local boot=()
  [ -n "${3:-}" ] && boot=(--bootstrap "$(listen "$3")")
  "$P2PSIP" node --dev --listen "$(listen "$1")" --control "$(control "$1")" --stabilize-interval "$2" \
    --t1-ms "$T1_MS" --overlay bench --ua-listen off "${boot[@]}" >"$WORK/node$1.log" 2>&1 &
  PID[$1]=$!
}
controls() { for i in "${!PID[@]}"; do control "$i"; done; }
json() { sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p" <<<"$1"; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR==0) {print "-"; exit} i=int(NR*p/100+0.999); if (i<1) i=1; print a[i]}'; }
stop_all() {
  for i in "${!PID[@]}"; do kill -TERM "${PID[$i]}" 2>/dev/null || true; done
  for i in "${!PID[@]}"; do wait "${PID[$i]}" 2>/dev/null || true; done
  PID=()
}
wait_ring() {
  local limit=$1 start=$SECONDS
  until "$P2PSIP" ring-check --quiet $(controls) >"$WORK/ring" 2>&1; do
    [ $((SECONDS - start)) -lt "$limit" ] || { echo "ring not correct after ${limit}s: $(tail -n1 "$WORK/ring")"; return 1; }
    sleep 2
  done
  echo "  ring of $N correct after $((SECONDS - start)) s"
}

echo "== phase 1: $N nodes, stabilization every 30 s, idle traffic over ${IDLE_S} s"
start 0 30
sleep 0.3
for i in $(seq 1 $((N - 1))); do start "$i" 30 $((RANDOM % i)); sleep 0.05; done
wait_ring 600
sleep 35  # one full round after the ring is correct: fingers and replicas settle
declare -A before=()
for i in "${!PID[@]}"; do before[$i]=$(json "$("$P2PSIP" status --json --control "$(control "$i")")" bytes_out); done
sleep "$IDLE_S"
total=0
for i in "${!PID[@]}"; do
  after=$(json "$("$P2PSIP" status --json --control "$(control "$i")")" bytes_out)
  total=$((total + after - before[$i]))
done
rss=$(for i in "${!PID[@]}"; do awk '/VmRSS/ {print $2}' "/proc/${PID[$i]}/status"; done)
echo "  idle maintenance: $(awk -v t="$total" -v n="$N" -v s="$IDLE_S" 'BEGIN {printf "%.1f", t/n/s}') bytes/s sent per node"
echo "  node RSS: mean $(awk '{s+=$1} END {printf "%.1f", s/NR/1024}' <<<"$rss") MiB, max $(sort -n <<<"$rss" | tail -n1 | awk '{printf "%.1f", $1/1024}') MiB"
stop_all

# Under churn a request to a dead peer is detected after Timer F = 64*T1; T1 = 100 ms keeps that at
# 6.4 s, inside the client's 10 s patience.
T1_MS=${CHURN_T1_MS:-100}
echo "== phase 2: $N nodes, stabilization every ${CHURN_INTERVAL_S} s, T1 ${T1_MS} ms, one node replaced every ${CHURN_EVERY_S} s for ${CHURN_S} s, up to $LOOKUPS lookups"
start 0 "$CHURN_INTERVAL_S"
sleep 0.3
for i in $(seq 1 $((N - 1))); do start "$i" "$CHURN_INTERVAL_S" $((RANDOM % i)); sleep 0.05; done
wait_ring 300
next=$N
end=$((SECONDS + CHURN_S))
last_churn=$SECONDS
ok=0; failed=0; done_lookups=0
: >"$WORK/lat"; : >"$WORK/hops"
while [ "$SECONDS" -lt "$end" ] && [ "$done_lookups" -lt "$LOOKUPS" ]; do
  if [ $((SECONDS - last_churn)) -ge "$CHURN_EVERY_S" ]; then
    keys=("${!PID[@]}")
    victim=${keys[$((RANDOM % ${#keys[@]}))]}
    if [ "$victim" -ne 0 ]; then
      kill -KILL "${PID[$victim]}"; wait "${PID[$victim]}" 2>/dev/null || true; unset "PID[$victim]"
    fi
    keys=("${!PID[@]}")
    start "$next" "$CHURN_INTERVAL_S" "${keys[$((RANDOM % ${#keys[@]}))]}"
    next=$((next + 1)); last_churn=$SECONDS
  fi
  keys=("${!PID[@]}")
  from=${keys[$((RANDOM % ${#keys[@]}))]}
  if out=$("$P2PSIP" lookup "bench-$RANDOM-$done_lookups" --json --timeout 10 --control "$(control "$from")" 2>/dev/null); then
    ok=$((ok + 1)); json "$out" latency_ms >>"$WORK/lat"; json "$out" hops >>"$WORK/hops"
  else
    failed=$((failed + 1))
  fi
  done_lookups=$((done_lookups + 1))
done
echo "  lookups: $ok ok, $failed failed ($(awk -v o="$ok" -v f="$failed" 'BEGIN {printf "%.2f", 100*o/(o+f)}')% success), $((next - N)) nodes replaced"
echo "  latency ms: p50 $(pct 50 <"$WORK/lat"), p99 $(pct 99 <"$WORK/lat")"
echo "  hops: mean $(awk '{s+=$1} END {printf "%.2f", s/NR}' "$WORK/hops"), p50 $(pct 50 <"$WORK/hops"), p99 $(pct 99 <"$WORK/hops") (log2 N = $(awk -v n="$N" 'BEGIN {printf "%.2f", log(n)/log(2)}'))"
stop_all
