#!/usr/bin/env bash
# Issue 5 on loopback: softphones (sipp, package sip-tester) register at the UA side of nodes of a
# 4-node overlay, over UDP and TCP; every user is then found from another node (`p2psip locate`),
# unregistration removes the users from the overlay, and a node stopped with SIGTERM takes its
# users' entries with it. Bounded in time; every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: ua_register_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
USERS=${USERS:-20}
BASE=${BASE_PORT:-$((22000 + ($$ % 100) * 40))}
NODES=4
WORK=$(mktemp -d)
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 40); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
command -v sipp >/dev/null || { echo "sipp not installed (package sip-tester)"; exit 1; }

listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
ua() { echo "127.0.0.1:$((BASE + 20 + $1))"; }
node_id() { "$P2PSIP" status --json --control "$(control "$1")" | sed -n 's/.*"node_id":"\([0-9a-f]*\)".*/\1/p'; }

for i in $(seq 0 $((NODES - 1))); do
  boot=()
  [ "$i" -gt 0 ] && boot=(--bootstrap "$(listen 0)")
  "$P2PSIP" node --listen "$(listen "$i")" --control "$(control "$i")" --ua-listen "$(ua "$i")" \
    --stabilize-interval 0.5 --t1-ms 50 --overlay ua.test "${boot[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
  sleep 0.1
done
start=$SECONDS
until "$P2PSIP" ring-check --quiet $(for i in $(seq 0 $((NODES - 1))); do control "$i"; done) >"$WORK/ring" 2>&1; do
  [ $((SECONDS - start)) -lt 30 ] || { echo "no ring after 30 s:"; cat "$WORK/ring"; exit 1; }
  sleep 0.5
done
echo "ring of $NODES nodes correct after $((SECONDS - start)) s"

# run_sipp NAME SCENARIO NODE TRANSPORT PREFIX: every one of $USERS calls must succeed.
run_sipp() {
  local name=$1 scenario=$2 node=$3 transport=$4 prefix=$5
  local dir="$WORK/$name"
  mkdir -p "$dir"
  local rc=0
  (cd "$dir" && timeout 60 sipp -sf "$HERE/sipp/$scenario" -s ua.test -key prefix "$prefix" "$(ua "$node")" \
      -t "$transport" -m "$USERS" -r 50 -l 10 -timeout 50s -timeout_error -nostdin -trace_err -trace_stat \
      -stf stats.csv >sipp.out 2>&1) || rc=$?
  local header stats ok
  header=$(head -n 1 "$dir/stats.csv")
  stats=$(tail -n 1 "$dir/stats.csv")
  ok=$(echo "$stats" | cut -d';' -f"$(echo "$header" | tr ';' '\n' | grep -n -x 'SuccessfulCall(C)' | cut -d: -f1)")
  if [ "$rc" -ne 0 ] || [ "$ok" != "$USERS" ]; then
    echo "sipp $name: exit $rc, $ok of $USERS successful"; cat "$dir"/*errors.log 2>/dev/null | head -20
    tail -n 20 "$dir/sipp.out"; exit 1
  fi
  echo "sipp $name: $ok of $USERS successful"
}

# locate_all PREFIX NODE-ID-OR-none FROM: every PREFIX<n> is (or, with none, is not) registered
# through that node, seen from node FROM.
locate_all() {
  local prefix=$1 want=$2 from=$3
  for n in $(seq 1 "$USERS"); do
    local rc=0
    "$P2PSIP" locate "sip:$prefix$n@ua.test" --control "$(control "$from")" >"$WORK/locate" 2>&1 || rc=$?
    if [ "$want" = none ]; then
      [ "$rc" -eq 1 ] || { echo "sip:$prefix$n@ua.test still registered:"; cat "$WORK/locate"; exit 1; }
    else
      [ "$rc" -eq 0 ] && grep -q "via node $want " "$WORK/locate" \
        || { echo "sip:$prefix$n@ua.test not found through node $want:"; cat "$WORK/locate"; exit 1; }
    fi
  done
  echo "$USERS users $prefix<n>: $([ "$want" = none ] && echo "registered nowhere" || echo "found through node $want") (seen from node $from)"
}

id1=$(node_id 1)
id2=$(node_id 2)
run_sipp register-udp register.xml 1 u1 udp
run_sipp register-tcp register.xml 2 t1 tcp
locate_all udp "$id1" 3
locate_all tcp "$id2" 0
"$P2PSIP" status --control "$(control 1)" | grep -q "^softphones  $(ua 1), $USERS users, $USERS bindings" \
  || { echo "node 1's status does not count the users:"; "$P2PSIP" status --control "$(control 1)"; exit 1; }

run_sipp unregister-udp unregister.xml 1 u1 udp
locate_all udp none 3

# A node that leaves takes its users' entries with it (callers then get 404, not a silent node).
kill -TERM "${PIDS[2]}"
rc=0
timeout 10 tail --pid="${PIDS[2]}" -f /dev/null || rc=$?
[ "$rc" -eq 0 ] || { echo "node 2 did not exit within 10 s of SIGTERM"; exit 1; }
locate_all tcp none 0
echo "ua_register_test: passed"
