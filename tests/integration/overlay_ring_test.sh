#!/usr/bin/env bash
# Issue 3's integration test on loopback: 24 `p2psip node` processes form one ring; 1000 random
# put/get pairs succeed; 8 nodes are killed with SIGKILL (every third node in ring order, so that
# no record loses all three copies); within a bounded number of stabilization rounds the ring is
# correct again, every record is still retrievable and new lookups succeed. Everything is bounded
# in time, and every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: overlay_ring_test.sh PATH/TO/p2psip}
NODES=${NODES:-24}
RECORDS=${RECORDS:-1000}
KILL=${KILL:-8}
TRANSPORT=${TRANSPORT:-udp}  # overlay links: udp, or tcp (every message over a connection)
BASE=${BASE_PORT:-$((21000 + ($$ % 200) * 50))}
WORK=$(mktemp -d)
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 25 + $1))"; }
all_controls() { for i in $(seq 0 $((NODES - 1))); do [ -n "${DEAD[$i]:-}" ] || control "$i"; done; }
declare -A DEAD=()

# wait_ring SECONDS: until ring-check passes on the live nodes, or fail.
wait_ring() {
  local limit=$1 start=$SECONDS
  while ! "$P2PSIP" ring-check --quiet --timeout 2 $(all_controls) >"$WORK/ring.out" 2>&1; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      echo "ring not correct after ${limit}s:"; cat "$WORK/ring.out"
      # The nodes named with a problem: their view of the ring, and what their logs last said.
      awk 'NF > 3 && $1 ~ /^[0-9]+$/ {print $3}' "$WORK/ring.out" | while read -r c; do
        echo "status of $c:"; "$P2PSIP" status --control "$c" --timeout 2 || true
        for i in $(seq 0 $((NODES - 1))); do
          [ "$(control "$i")" = "$c" ] && { echo "node $i log (last 20 lines):"; tail -n 20 "$WORK/node$i.log"; }
        done
      done
      for i in $(seq 0 $((NODES - 1))); do
        if [ -z "${DEAD[$i]:-}" ] && ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
          echo "node $i is not running; its log:"; tail -n 40 "$WORK/node$i.log"
        fi
      done
      exit 1
    fi
    sleep 1
  done
  echo "ring correct after $((SECONDS - start))s: $(tail -n 1 "$WORK/ring.out")"
}

echo "starting $NODES nodes on 127.0.0.1:$BASE (overlay links over $TRANSPORT).."
for i in $(seq 0 $((NODES - 1))); do
  boot=()
  [ "$i" -gt 0 ] && boot=(--bootstrap "$(listen $((RANDOM % i)))")
  "$P2PSIP" node --dev --listen "$(listen "$i")" --control "$(control "$i")" --stabilize-interval 1 --t1-ms 50 \
    --overlay ring-test --overlay-transport "$TRANSPORT" --ua-listen off "${boot[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
  sleep 0.1
done
wait_ring 60

# What every survivor is doing: alive or not, its CPU use, its view of the ring, its log's tail.
# Printed when a phase takes far longer than it should, so that a stuck node names itself.
dump_nodes() {
  for i in $(seq 0 $((NODES - 1))); do
    [ -n "${DEAD[$i]:-}" ] && continue
    echo "--- node $i ($(control "$i")): $(ps -o stat=,pcpu=,etime= -p "${PIDS[$i]}" 2>/dev/null || echo 'not running')"
    "$P2PSIP" status --control "$(control "$i")" --timeout 2 2>&1 | head -n 12 || true
    tail -n 8 "$WORK/node$i.log"
  done
}

# The bulk of the records goes through the nodes' control API (what `p2psip put` and `get` send)
# from one process: a thousand CLI processes per phase cost more than the overlay work on a slow
# machine. kv.py prints one line per slow request and fails on a stall, naming where it stuck.
cat >"$WORK/kv.py" <<'PY'
import json, random, sys, time, urllib.error, urllib.parse, urllib.request
mode, expected, controls = sys.argv[1], sys.argv[2], sys.argv[3].split()
def call(control, method, path, body=None):
    req = urllib.request.Request("http://" + control + path, data=body, method=method)
    t0 = time.monotonic()
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    except Exception as e:
        status, text = 0, str(e)
    took = time.monotonic() - t0
    if took >= 2:
        print(f"slow: {method} {path} through {control} took {took:.1f}s: {status} {text[:200]}", flush=True)
    return status, text, took
start, slow, missing = time.monotonic(), 0, 0
def watch(took):
    global slow
    slow += took >= 2
    if slow >= 10 or time.monotonic() - start >= 240:
        print(f"stalled: {slow} slow requests, {time.monotonic() - start:.0f}s so far", flush=True)
        sys.exit(2)
if mode == "put":
    with open(expected, "w") as out:
        for k in range(1, int(sys.argv[4]) + 1):
            key, value = f"key-{k}", f"value-{k}-{random.randrange(32768)}"
            q = urllib.parse.urlencode({"key": key, "lifetime": 3600})
            status, text, took = call(random.choice(controls), "POST", "/put?" + q, value.encode())
            watch(took)
            if status != 200:
                print(f"put {key} failed: {status} {text}"); sys.exit(1)
            status, text, took = call(random.choice(controls), "GET", "/get?" + urllib.parse.urlencode({"key": key}))
            watch(took)
            got = json.loads(text).get("value") if status == 200 else None
            if got != value:
                print(f"get {key}: {status} {got!r}, expected {value!r}"); sys.exit(1)
            out.write(f"{key} {value}\n")
else:
    for line in open(expected):
        key, value = line.split()
        status, text, took = call(random.choice(controls), "GET", "/get?" + urllib.parse.urlencode({"key": key}))
        watch(took)
        got = json.loads(text).get("value") if status == 200 else None
        if got != value:
            print(f"{key}: {status} {got!r}, expected {value!r}"); missing += 1
    print(f"fetched in {time.monotonic() - start:.0f}s")
    if missing:
        print(f"{missing} records lost or wrong after the failures"); sys.exit(1)
PY

echo "putting $RECORDS records through random nodes.."
python3 "$WORK/kv.py" put "$WORK/expected" "$(all_controls)" "$RECORDS" || { dump_nodes; exit 1; }
echo "$RECORDS put/get pairs succeeded"

# Kill every third node in ring order.
mapfile -t order < <("$P2PSIP" ring-check $(all_controls) | awk 'NF >= 3 && $1 ~ /^[0-9]+$/ {print $3}')
killed=0
for pos in $(seq 0 3 $(( ${#order[@]} - 1 ))); do
  [ "$killed" -ge "$KILL" ] && break
  for i in $(seq 0 $((NODES - 1))); do
    if [ "$(control "$i")" = "${order[$pos]}" ]; then
      kill -KILL "${PIDS[$i]}"; wait "${PIDS[$i]}" 2>/dev/null || true
      DEAD[$i]=1; killed=$((killed + 1))
    fi
  done
done
echo "killed $killed nodes with SIGKILL (every third in ring order)"
# A dead next hop is detected by the hop timeout (11*T1 = 0.55 s; Timer F is 3.2 s): the ring is
# correct again after about 5 s. Allow 30 stabilization rounds (1 s each) in all.
wait_ring 30

echo "fetching every record again through the survivors.."
python3 "$WORK/kv.py" get "$WORK/expected" "$(all_controls)" || { dump_nodes; exit 1; }
echo "all $RECORDS records retrievable after the failures"

live=($(all_controls))
for k in $(seq 1 50); do
  "$P2PSIP" lookup "fresh-$k" --control "${live[$((RANDOM % ${#live[@]}))]}" >/dev/null || { echo "lookup fresh-$k failed"; exit 1; }
done
echo "50 new lookups succeeded"

# Graceful stop: every survivor leaves and exits 0 within a few seconds.
for i in $(seq 0 $((NODES - 1))); do [ -n "${DEAD[$i]:-}" ] || kill -TERM "${PIDS[$i]}"; done
for i in $(seq 0 $((NODES - 1))); do
  [ -n "${DEAD[$i]:-}" ] && continue
  rc=0
  timeout 10 tail --pid="${PIDS[$i]}" -f /dev/null || { echo "node $i did not exit within 10 s of SIGTERM"; exit 1; }
  wait "${PIDS[$i]}" || rc=$?
  [ "$rc" -eq 0 ] || { echo "node $i exited $rc on SIGTERM"; tail -n 5 "$WORK/node$i.log"; exit 1; }
done
PIDS=()
echo "overlay ring test: passed"
