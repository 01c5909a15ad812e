#!/usr/bin/env bash
# Issue 4: the simulator runs the same node core as `p2psip node`, so the same overlay must behave
# the same in both. 32 real nodes join on loopback and sit idle, then 200 fixed lookups run; the
# simulator replays that scenario with the real nodes' ids, join times and lookups. Checked:
# the hop-count distributions (mean within 10%, every bucket within 0.10) and the messages sent
# per node (mean over the idle window and over the whole run within 10%). TRANSPORT=tcp runs the
# overlay links over TCP in both (--overlay-transport tcp, network.transport = "tcp"). Bounded in
# time; every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: sim_faithfulness_test.sh PATH/TO/p2psip}
NODES=32
LOOKUPS=200
STABILIZE=2
TRANSPORT=${TRANSPORT:-udp}
# Below 32768: the kernel hands out ports from 32768 up to outgoing connections (ip_local_port_range).
BASE=${BASE_PORT:-$((24000 + ($$ % 100) * 80))}
WORK=$(mktemp -d)
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 40 + $1))"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$T0" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# Messages sent by every node (datagrams and TCP messages), in start order, one line.
snapshot() {
  for i in $(seq 0 $((NODES - 1))); do
    "$P2PSIP" status --control "$(control "$i")" --json |
      sed -n 's/.*"datagrams_out":\([0-9]*\),"stream_messages_out":\([0-9]*\).*/\1 \2/p' | awk '{ print $1 + $2 }'
  done | paste -sd' '
}
wait_until() {  # wait_until SECONDS-after-T0
  local left
  left=$(awk -v t="$1" -v e="$(elapsed)" 'BEGIN { d = t - e; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$left"
}

echo "starting $NODES nodes on 127.0.0.1:$BASE, one every 0.25 s, overlay links over $TRANSPORT.."
T0=$(now)
for i in $(seq 0 $((NODES - 1))); do
  wait_until "$(awk -v i="$i" 'BEGIN { print i * 0.25 }')"
  boot=()
  [ "$i" -gt 0 ] && boot=(--bootstrap "$(listen 0)")
  "$P2PSIP" node --dev --listen "$(listen "$i")" --control "$(control "$i")" --stabilize-interval "$STABILIZE" \
    --overlay faithful --overlay-transport "$TRANSPORT" --ua-listen off "${boot[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
done
for _ in $(seq 1 60); do
  "$P2PSIP" ring-check --quiet --timeout 2 $(for i in $(seq 0 $((NODES - 1))); do control "$i"; done) \
    >"$WORK/ring.out" 2>&1 && break
  sleep 1
done
tail -n 1 "$WORK/ring.out"
for i in $(seq 0 $((NODES - 1))); do
  "$P2PSIP" status --control "$(control "$i")" --json | sed -n 's/^{"node_id":"\([0-9a-f]*\)".*/\1/p'
done >"$WORK/ids.txt"
[ "$(wc -l <"$WORK/ids.txt")" -eq "$NODES" ] || { echo "could not read every node id"; exit 1; }

# Idle window: 40 s to 70 s after the first node started (fingers have settled by then).
wait_until 40
idle_from=$(snapshot)
wait_until 70
idle_to=$(snapshot)

echo "running $LOOKUPS lookups from 75 s.."
wait_until 75
: >"$WORK/script.txt"
: >"$WORK/real_hops.txt"
for k in $(seq 0 $((LOOKUPS - 1))); do
  from=$((k % NODES))
  at=$(elapsed)
  echo "$at $from lookup key-$k" >>"$WORK/script.txt"
  "$P2PSIP" lookup "key-$k" --control "$(control "$from")" --json | sed -n 's/.*"hops":\([0-9]*\).*/\1/p' \
    >>"$WORK/real_hops.txt"
done
[ "$(wc -l <"$WORK/real_hops.txt")" -eq "$LOOKUPS" ] || { echo "some lookups gave no hop count"; exit 1; }
end=$(awk -v e="$(elapsed)" 'BEGIN { printf "%d", e + 5 }')
wait_until "$end"
final=$(snapshot)

echo "simulating the same overlay for $end s.."
cat >"$WORK/scenario.toml" <<TOML
nodes = $NODES
duration = $end
join_rate = 4
interval = 10
overlay = "faithful"
node_ids_file = "ids.txt"
[network]
propagation_ms = 0
access_ms = 0.05
transport = "$TRANSPORT"
[chord]
stabilize = $STABILIZE
[workload]
lookups_per_s = 0
script_file = "script.txt"
TOML
"$P2PSIP" sim "$WORK/scenario.toml" --quiet --no-plots --out "$WORK/sim" >/dev/null
grep -q '"ring_errors_at_end": 0,' "$WORK/sim/summary.json" || { echo "simulated ring not correct"; exit 1; }

# The simulator's hop counts per lookup come out as a histogram.
awk '{ h[$1]++ } END { for (k in h) print k "," h[k] }' "$WORK/real_hops.txt" | sort -n >"$WORK/real_hist.csv"
tail -n +2 "$WORK/sim/hops.csv" >"$WORK/sim_hist.csv"
# Per-node messages: idle window from the sim's per-interval totals; whole run from nodes.csv.
sim_idle=$(awk -F, 'NR > 1 && $1 > 40 && $1 <= 70 { m += $8 } END { print m }' "$WORK/sim/timeseries.csv")
sim_total=$(awk -F, 'NR > 1 { print $7 }' "$WORK/sim/nodes.csv" | paste -sd' ')

awk -v nodes="$NODES" -v lookups="$LOOKUPS" -v idle_from="$idle_from" -v idle_to="$idle_to" -v final="$final" \
  -v sim_idle="$sim_idle" -v sim_total="$sim_total" -v work="$WORK" '
function within(a, b, tol) { return (a > b ? a - b : b - a) <= tol * b }
BEGIN {
  ok = 1
  while ((getline line < (work "/real_hist.csv")) > 0) { split(line, f, ","); real[f[1]] = f[2]; if (f[1] > top) top = f[1] }
  while ((getline line < (work "/sim_hist.csv")) > 0) { split(line, f, ","); sim[f[1]] = f[2]; if (f[1] > top) top = f[1] }
  for (h = 0; h <= top; h++) { rn += real[h]; sn += sim[h]; rs += h * real[h]; ss += h * sim[h] }
  printf "hops       real mean %.3f over %d lookups, sim mean %.3f over %d\n", rs / rn, rn, ss / sn, sn
  if (sn != lookups || !within(ss / sn, rs / rn, 0.10)) { print "FAIL: mean hops differ by more than 10%"; ok = 0 }
  for (h = 0; h <= top; h++) {
    d = real[h] / rn - sim[h] / sn
    printf "  %2d hops: real %.3f sim %.3f\n", h, real[h] / rn, sim[h] / sn
    if (d > 0.10 || d < -0.10) { printf "FAIL: %d-hop share differs by %.3f\n", h, d; ok = 0 }
  }
  split(idle_from, a, " "); split(idle_to, b, " "); split(final, c, " "); split(sim_total, s, " ")
  for (i = 1; i <= nodes; i++) { ri += b[i] - a[i]; rt += c[i]; st += s[i]; dev = (s[i] - c[i]) / c[i]; if (dev < 0) dev = -dev; if (dev > worst) worst = dev }
  printf "idle       real %.2f, sim %.2f messages per node per second (40-70 s)\n", ri / nodes / 30, sim_idle / nodes / 30
  printf "whole run  real %.1f, sim %.1f messages per node; largest per-node difference %.1f%%\n", rt / nodes, st / nodes, worst * 100
  if (!within(sim_idle, ri, 0.10)) { print "FAIL: idle message rates differ by more than 10%"; ok = 0 }
  if (!within(st, rt, 0.10)) { print "FAIL: messages per node over the run differ by more than 10%"; ok = 0 }
  exit !ok
}'
echo "simulator and real nodes agree"
