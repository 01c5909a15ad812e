#!/usr/bin/env bash
# How many SIP messages a relay peer forwards to and from its clients per second of its own CPU
# (issue 24's benchmark: goal at least 5 000 messages/s on one core). In the namespace lab
# (tests/natlab): a relay peer p1 (and p2, the client's second relay), a public caller node p3 that
# relays for no one, and a client behind a full-cone NAT whose phone (sipp's call_uas.xml) answers.
# A sipp caller at p3 places CALLS calls at RATE calls/s to the client's phone; each goes to p1
# (the first relay in the client's entry), down the TLS flow, and back: INVITE, 180, 200, ACK, BYE
# and its 200 cross the relay, six messages a call. The relay's CPU time (user + system, from
# /proc) over the run gives messages per CPU second; its counters confirm what it relayed. Needs root.
#   bash bench/natlab_relay.sh [build/bin/p2psip]        CALLS=3000 RATE=150 by default
set -euo pipefail
P2PSIP=$(realpath "${1:-build/bin/p2psip}")
CALLS=${CALLS:-3000}
RATE=${RATE:-150}
HERE=$(cd "$(dirname "$0")/.." && pwd)
SIPP_DIR=$HERE/tests/integration/sipp
source "$HERE/tests/natlab/natlab.sh"
command -v sipp >/dev/null || lab_die "needs sipp (package sip-tester)"
lab_begin
lab_public p1 21
lab_public p2 22
lab_public p3 23
lab_site h1 1 full-cone
export LAB_UA=127.0.0.1:5060
# No per-peer request limit in the way: the caller's node sends every call to p1.
LAB_NODE_ARGS="--peer-rate 1000000 --peer-burst 1000000" lab_node p1 198.51.100.21
LAB_NODE_ARGS="--peer-rate 1000000 --peer-burst 1000000" lab_node p2 198.51.100.22 198.51.100.21
LAB_NODE_ARGS="--relay-max-clients 0" lab_node p3 198.51.100.23 198.51.100.21
joined() { lab_ctl "$1" status --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["joined"] else 1)' 2>/dev/null; }
for n in p2 p3; do  # the relays in the ring first: a relay still joining sends the client elsewhere
  for _ in $(seq 1 60); do joined "$n" && break; sleep 0.5; done
done
lab_node h1 10.0.1.2 198.51.100.21 198.51.100.22
ready() {
  lab_ctl h1 status --json 2>/dev/null | python3 -c '
import json, sys
n = json.load(sys.stdin)["nat"]
sys.exit(0 if len(n["reached"]["via"]) == 2 and "198.51.100.21" in n["reached"]["via"][0] else 1)' 2>/dev/null
}
for _ in $(seq 1 90); do ready && break; sleep 1; done
ready || { echo "the client's flows did not come up with p1 first"; tail "$WORK/h1.log"; exit 1; }
lab_exec h1 timeout 20 sipp -s natlab -nostdin -sf "$SIPP_DIR/register.xml" -key prefix bob -m 1 -p 5090 \
  127.0.0.1:5060 >"$WORK/reg.out" 2>&1 || { echo "the phone could not register"; exit 1; }
LAB_NS[uas]=${LAB_NS[h1]}
lab_spawn uas "$WORK/uas.out" timeout 600 sipp -sf "$SIPP_DIR/call_uas.xml" -nostdin -m "$CALLS" -p 5090
sleep 1
relay_pid=${LAB_PID[p1]}
cpu() { awk '{print $14 + $15}' "/proc/$relay_pid/stat"; }  # clock ticks, user + system
relayed() { lab_ctl p1 status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["nat"]["relay"]["calls_relayed"])'; }
ticks=$(getconf CLK_TCK)
cpu0=$(cpu)
relayed0=$(relayed)
t0=$(date +%s.%N)
rc=0
lab_exec p3 timeout 600 sipp -s natlab -nostdin -sf "$SIPP_DIR/call_uac.xml" -key callee bob1 -m "$CALLS" -r "$RATE" \
  -l 2000 -p 5091 -trace_stat -stf "$WORK/uac.csv" 127.0.0.1:5060 >"$WORK/uac.out" 2>&1 || rc=$?
t1=$(date +%s.%N)
cpu1=$(cpu)
relayed1=$(relayed)
ok=$(tail -n 1 "$WORK/uac.csv" | cut -d';' -f"$(head -n 1 "$WORK/uac.csv" | tr ';' '\n' | grep -n -x 'SuccessfulCall(C)' | cut -d: -f1)")
python3 - "$CALLS" "$ok" "$rc" "$((cpu1 - cpu0))" "$ticks" "$t0" "$t1" "$((relayed1 - relayed0))" <<'P'
import sys
calls, ok, rc, dticks, hz, t0, t1, relayed = sys.argv[1:]
calls, ok, rc, dticks, hz, relayed = int(calls), int(ok or 0), int(rc), int(dticks), int(hz), int(relayed)
wall = float(t1) - float(t0)
cpu_s = dticks / hz
msgs = 6 * ok
print(f"calls: {ok} of {calls} answered and ended (sipp exit {rc}) in {wall:.1f} s")
print(f"requests the relay took down the flow (INVITE and BYE per call): {relayed}")
print(f"relay CPU: {cpu_s:.2f} s for {msgs} messages forwarded (6 per call)")
if cpu_s > 0:
    print(f"relay throughput: {msgs / cpu_s:,.0f} messages per CPU second (goal: >= 5 000 on one core); "
          f"{msgs / wall:,.0f} messages/s offered")
P
