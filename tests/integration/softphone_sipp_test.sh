#!/usr/bin/env bash
# Issue 5 on loopback, with sipp (package sip-tester) as the softphones, on a 4-node overlay:
#  - registration at the UA sides over UDP and TCP; every user found from another node (`p2psip locate`);
#  - calls INVITE/180/200/ACK/BYE from a phone at one node to a phone registered at another, the
#    ACK and BYE following the Record-Route path; a ringing call cancelled; a call to an unknown
#    user answered 404; a MESSAGE delivered;
#  - unregistration removes users from the overlay, and a node stopped with SIGTERM takes its
#    users' entries with it.
# Bounded in calls and time; every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: softphone_sipp_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
USERS=${USERS:-20}
CALLS=${CALLS:-10}
BASE=${BASE_PORT:-$((22000 + ($$ % 100) * 40))}
NODES=4
WORK=$(mktemp -d)
declare -a PIDS=()
UAS_PID=""
cleanup() {
  [ -z "$UAS_PID" ] || kill -KILL "$UAS_PID" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 40); do
    alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" -eq 0 ] && break
    sleep 0.1
  done
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
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
  "$P2PSIP" node --dev --listen "$(listen "$i")" --control "$(control "$i")" --ua-listen "$(ua "$i")" \
    --stabilize-interval 0.5 --t1-ms 50 --overlay ua.test --log-level "${LOG_LEVEL:-info}" "${boot[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
  sleep 0.1
done
start=$SECONDS
until "$P2PSIP" ring-check --quiet $(for i in $(seq 0 $((NODES - 1))); do control "$i"; done) >"$WORK/ring" 2>&1; do
  [ $((SECONDS - start)) -lt 30 ] || { echo "no ring after 30 s:"; cat "$WORK/ring"; exit 1; }
  sleep 0.5
done
echo "ring of $NODES nodes correct after $((SECONDS - start)) s"

# sipp_check NAME COUNT: the sipp run in $WORK/NAME (exit status in its rc file) had COUNT
# successful calls and exited 0.
sipp_check() {
  local name=$1 count=$2 dir="$WORK/$1"
  local rc header stats ok
  rc=$(cat "$dir/rc")
  header=$(head -n 1 "$dir/stats.csv" 2>/dev/null)
  stats=$(tail -n 1 "$dir/stats.csv" 2>/dev/null)
  ok=$(echo "$stats" | cut -d';' -f"$(echo "$header" | tr ';' '\n' | grep -n -x 'SuccessfulCall(C)' | cut -d: -f1)")
  if [ "$rc" -ne 0 ] || [ "$ok" != "$count" ]; then
    echo "sipp $name: exit $rc, $ok of $count successful"; cat "$dir"/*errors.log 2>/dev/null | head -30
    tail -n 20 "$dir/sipp.out"; exit 1
  fi
  echo "sipp $name: $ok of $count successful"
}

# sipp_run NAME SCENARIO COUNT ARGS...: runs sipp in $WORK/NAME for COUNT calls (bounded in time).
sipp_run() {
  local name=$1 scenario=$2 count=$3
  shift 3
  local dir="$WORK/$name"
  mkdir -p "$dir"
  local rc=0
  (cd "$dir" && timeout 60 sipp -sf "$HERE/sipp/$scenario" -s ua.test -m "$count" -r 20 -l 10 -timeout 50s \
      -timeout_error -nostdin -trace_err -trace_stat -stf stats.csv "$@" >sipp.out 2>&1) || rc=$?
  echo "$rc" >"$dir/rc"
}

# run_sipp NAME SCENARIO NODE TRANSPORT PREFIX: every one of $USERS registrations must succeed.
run_sipp() {
  sipp_run "$1" "$2" "$USERS" -key prefix "$5" -t "$4" "$(ua "$3")"
  sipp_check "$1" "$USERS"
}

# callee_at NAME NODE PORT UAS-SCENARIO COUNT [TRANSPORT]: registers sip:NAME@ua.test from
# 127.0.0.1:PORT at NODE's UA side (as NAME1: sipp's call number), then answers there with
# UAS-SCENARIO in the background, over TRANSPORT (sipp's u1, the default, or t1).
callee_at() {
  local name=$1 node=$2 port=$3 scenario=$4 count=$5 transport=${6:-u1}
  sipp_run "reg-$name" register.xml 1 -key prefix "$name" -p "$port" -t "$transport" "$(ua "$node")"
  sipp_check "reg-$name" 1
  sipp_run "uas-$name" "$scenario" "$count" -p "$port" -t "$transport" &
  UAS_PID=$!
  # Until the phone listens (sipp has bound its port), for at most 5 s.
  local proto=u
  [ "$transport" = t1 ] && proto=t
  for _ in $(seq 100); do ss -Hl"$proto"n "sport = :$port" | grep -q . && break; sleep 0.05; done
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

# Calls: caller at node 0, callee registered at node 2.
callee_at bob 2 $((BASE + 30)) call_uas.xml "$CALLS"
sipp_run calls call_uac.xml "$CALLS" -key callee bob1 "$(ua 0)"
wait "$UAS_PID" || true
sipp_check calls "$CALLS"
sipp_check uas-bob "$CALLS"
# The ACKs and BYEs took the Record-Route path: through node 2 as well, not around it.
"$P2PSIP" status --json --control "$(control 2)" | grep -q '"acks_forwarded":'"$CALLS"',' \
  || { echo "node 2 did not forward the $CALLS ACKs:"; "$P2PSIP" status --json --control "$(control 2)"; exit 1; }
# The same over TCP between the phones and their nodes (caller at node 3, callee at node 1).
callee_at tcpbob 1 $((BASE + 33)) call_uas.xml 5 t1
sipp_run calls-tcp call_uac.xml 5 -key callee tcpbob1 -t t1 "$(ua 3)"
wait "$UAS_PID" || true
sipp_check calls-tcp 5
sipp_check uas-tcpbob 5
# A ringing call cancelled: caller at node 1, callee at node 3.
callee_at carol 3 $((BASE + 31)) ring_uas.xml 3
sipp_run cancel cancel_uac.xml 3 -key callee carol1 "$(ua 1)"
wait "$UAS_PID" || true
sipp_check cancel 3
sipp_check uas-carol 3
# A user registered nowhere.
sipp_run notfound notfound_uac.xml 3 -key callee nobody "$(ua 0)"
sipp_check notfound 3
# A MESSAGE to a user at another node.
callee_at dave 1 $((BASE + 32)) message_uas.xml 5
sipp_run message message_uac.xml 5 -key callee dave1 "$(ua 3)"
wait "$UAS_PID" || true
sipp_check message 5
sipp_check uas-dave 5
"$P2PSIP" status --json --control "$(control 0)" | grep -q '"calls_answered":'"$CALLS"',' \
  || { echo "node 0 does not count $CALLS answered calls:"; "$P2PSIP" status --json --control "$(control 0)"; exit 1; }

run_sipp unregister-udp unregister.xml 1 u1 udp
locate_all udp none 3

# A node that leaves takes its users' entries with it (callers then get 404, not a silent node).
kill -TERM "${PIDS[2]}"
rc=0
timeout 10 tail --pid="${PIDS[2]}" -f /dev/null || rc=$?
[ "$rc" -eq 0 ] || { echo "node 2 did not exit within 10 s of SIGTERM"; exit 1; }
locate_all tcp none 0
echo "softphone_sipp_test: passed"
