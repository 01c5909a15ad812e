#!/usr/bin/env bash
# The overlay behind NATs (issue 24), in the namespace lab: two public peers, and two nodes behind
# each of full cone, port-restricted cone, symmetric and UDP-blocked NATs (each its own router), and
# one behind an address-restricted cone; every router is first checked with coturn's
# turnutils_natdiscovery. Every node starts with the default role (auto) and ICE links on: the public
# ones join the ring; the cone-NATed ones join it too, under their reflexive addresses, reached over
# ICE links (libnice) that Attaches set up, with two flows to relay peers for their phones; the
# symmetric and UDP-blocked ones become clients with two flows to the relay peers.
#  - Each node puts a record and reads every other node's (11 x 11); the ring holds the public and
#    cone-NATed peers in Node-ID order and no client; every flow is active at two relays, which count
#    them; every node's status says how it is reached (directly, by Attach, or through which relay
#    peers) and how each link goes (direct, ice-direct, ice-relayed, flow).
#  - A sipp phone registers at every node; for each pair of NAT types among public, full cone,
#    port-restricted, symmetric and UDP-blocked (15 pairs, and the address-restricted node with two
#    of them), a phone at one calls the phone at the other through INVITE, 200, ACK and BYE.
#  - A relay peer killed with SIGKILL: every NATed node still reads through the ring or its other
#    flow, is still called through it, and finds the dead flow failed.
# Bounded in time; the lab removes every namespace, process and nftables table on the way out,
# failure included.
set -euo pipefail
P2PSIP=${1:?usage: overlay_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
SIPP_DIR=$HERE/../integration/sipp
source "$HERE/natlab.sh"
command -v sipp >/dev/null || lab_die "needs sipp (package sip-tester)"
lab_begin

# NAME X TYPE: the node NAME behind router X.
SITES=("fa 1 full-cone" "fb 2 full-cone" "aa 3 addr-restricted" "ra 4 port-restricted" "rb 5 port-restricted"
  "sa 6 symmetric" "sb 7 symmetric" "ua 8 udp-blocked" "ub 9 udp-blocked")
CONE=(fa fb aa ra rb)     # peers behind cone NATs, reached by Attach
CLIENTS=()                # every NATed node: each keeps two flows to the relay peers (for its phones)
lab_stun
lab_public p1 21
lab_public p2 22
for s in "${SITES[@]}"; do
  read -r name x type <<<"$s"
  lab_site "$name" "$x" "$type"
  lab_verify_nat "$name" "$type" || exit 1
  CLIENTS+=("$name")
done
NAMES=(p1 p2 "${CLIENTS[@]}")
export LAB_UA=127.0.0.1:5060
lab_node p1 198.51.100.21
lab_node p2 198.51.100.22 198.51.100.21
for s in "${SITES[@]}"; do
  read -r name x _ <<<"$s"
  lab_node "$name" "10.0.$x.2" 198.51.100.21 198.51.100.22
done

json() { lab_ctl "$1" status --json 2>/dev/null || true; }
show() {
  for n in "${NAMES[@]}"; do
    echo "--- $n"; lab_ctl "$n" status || true; tail -n 15 "$WORK/$n.log"
  done
}
# Every node settled: the public ones joined with a successor, the clients with two active flows,
# their phones reached through the two relays (their entries will name them).
settled() {
  local n="$1" j
  j=$(json "$n")
  [ -n "$j" ] || return 1
  python3 -c '
import json, sys
s = json.loads(sys.argv[1]); n = s["nat"]
name = sys.argv[2]
if name.startswith("p"):
    ok = n["role"] == "peer" and s["joined"] and len(s["successors"]) > 0
else:
    flows = [f for f in n["flows"] if f["state"] == "active"]
    ok = len(flows) == 2 and len({f["relay"] for f in flows}) == 2 and len(n["reached"]["via"]) == 2
    if name in sys.argv[3].split():
        ok = ok and n["role"] == "peer" and s["joined"] and n["reached"]["how"] == "attach"
    else:
        ok = ok and n["role"] == "client" and n["reached"]["how"] == "relay"
sys.exit(0 if ok else 1)' "$j" "$n" "${CONE[*]}"
}
# The UDP-blocked nodes decide when their STUN transactions time out (39.5 s).
deadline=$((SECONDS + 120))
for n in "${NAMES[@]}"; do
  until settled "$n"; do
    if [ $SECONDS -ge $deadline ]; then echo "$n did not settle within 120 s"; show; exit 1; fi
    sleep 1
  done
  echo "$n settled after ${SECONDS}s"
done

# The ring is the public and the cone-NATed peers, in Node-ID order: nobody lists a private address
# or a client. Each node's status says how it is reached and how its links go: the public peers
# directly, the cone-NATed ones by Attach over ICE links, the clients by flows to their relays.
ALL_JSON=$WORK/all-status.json
# ring_settled: every status taken afresh, checked (the last check's complaint in $WORK/ring.err).
ring_settled() {
{
  echo "{"
  for n in "${NAMES[@]}"; do echo "\"$n\": $(json "$n"),"; done
  echo "\"-\": null}"
} >"$ALL_JSON"
python3 - "$ALL_JSON" "${CONE[*]}" >"$WORK/ring.out" 2>"$WORK/ring.err" <<'PY'
import json, sys
st = json.load(open(sys.argv[1])); st.pop("-")
cone = sys.argv[2].split()
peers = {n: s for n, s in st.items() if n.startswith("p") or n in cone}
clients = {n: s for n, s in st.items() if n not in peers}
ring = sorted(peers, key=lambda n: st[n]["node_id"])
client_ids = {s["node_id"] for s in clients.values()}
for i, n in enumerate(ring):
    s = st[n]; nat = s["nat"]
    succ = [p["id"] for p in s["successors"]]; pred = [p["id"] for p in s["predecessors"]]
    want_succ = st[ring[(i + 1) % len(ring)]]["node_id"]; want_pred = st[ring[i - 1]]["node_id"]
    if not succ or succ[0] != want_succ or not pred or pred[0] != want_pred:
        sys.exit(f"{n}: successor {succ[:1]} predecessor {pred[:1]}, expected {want_succ} and {want_pred}")
    addrs = [p["addr"] for p in s["predecessors"] + s["successors"]]
    bad = [a for a in addrs if not a.startswith("198.51.100.")]
    if bad: sys.exit(f"{n} lists private addresses {bad}")
    listed = client_ids.intersection(pred + succ)
    if listed: sys.exit(f"{n} lists clients {listed}")
    hows = sorted({l["how"] for l in nat["links"] if l["peer"] in pred[:1] + succ[:1]})
    if n in cone:
        if nat["reached"]["how"] != "attach" or not set(hows) <= {"ice-direct", "ice-relayed"}:
            sys.exit(f"{n}: reached {nat['reached']}, links to its neighbours {hows}")
        print(n, "in the ring at", s["listen"], "reached by Attach; neighbours over", hows,
              "; phones through", " ".join(nat["reached"]["via"]))
    else:
        if nat["reached"]["how"] != "direct" or not set(hows) <= {"direct", "ice-direct", "ice-relayed"}:
            sys.exit(f"{n}: reached {nat['reached']}, links to its neighbours {hows}")
        print(n, "in the ring, reached directly; neighbours", hows, "; relays for", nat["relay"]["clients"], "flows")
for n, s in clients.items():
    nat = s["nat"]
    hows = sorted({l["how"] for l in nat["links"]})
    relays = sorted(l["addr"] for l in nat["links"])
    if nat["role"] != "client" or hows != ["flow"] or relays != ["198.51.100.21:5070", "198.51.100.22:5070"]:
        sys.exit(f"{n}: {nat['role']} {nat['links']}")
    print(n, "a client, reached through", " ".join(nat["reached"]["via"]))
print("ring of", len(ring), "peers in Node-ID order:", " ".join(ring))
PY
}
# Stabilization settles the last pointers (a predecessor learned one round late) within seconds.
until ring_settled; do
  if [ $SECONDS -ge $((deadline + 60)) ]; then cat "$WORK/ring.out" "$WORK/ring.err"; show; exit 1; fi
  sleep 1
done
cat "$WORK/ring.out"
clients=0
for n in p1 p2; do
  clients=$((clients + $(json "$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nat"]["relay"]["clients"])')))
done
[ "$clients" -eq 18 ] || { echo "the relays hold $clients flows, expected 18 (two per NATed node)"; show; exit 1; }

# Each node puts a record; each reads every other's.
for n in "${NAMES[@]}"; do
  lab_ctl "$n" put "key-$n" "value from $n" >/dev/null || { echo "put at $n failed"; show; exit 1; }
done
for reader in "${NAMES[@]}"; do
  for writer in "${NAMES[@]}"; do
    got=$(lab_ctl "$reader" get "key-$writer") || { echo "$reader could not get key-$writer"; show; exit 1; }
    [ "$got" = "value from $writer" ] || { echo "$reader read '$got' for key-$writer"; show; exit 1; }
  done
done
echo "every node read every other node's record (${#NAMES[@]} x ${#NAMES[@]})"

# ---- calls ------------------------------------------------------------------------------------
# sipp_in NAME LABEL ARGS...: sipp in NAME's namespace against its node's phone side, bounded in
# time; its output in $WORK/LABEL.out, its exit status the function's.
sipp_in() {
  local name=$1 label=$2
  shift 2
  lab_exec "$name" timeout 90 sipp -s natlab -nostdin -timeout 60s -timeout_error -trace_err \
    -error_file "$WORK/$label.err" "$@" >"$WORK/$label.out" 2>&1
}
# The callee phone at each node: user NAME1 (sipp's register.xml: prefix and call number).
for n in "${NAMES[@]}"; do
  sipp_in "$n" "reg-$n" -sf "$SIPP_DIR/register.xml" -key prefix "$n" -m 1 -p 5090 127.0.0.1:5060 ||
    { echo "the phone at $n could not register"; cat "$WORK/reg-$n.out" "$WORK/reg-$n.err" 2>/dev/null | tail -20; show; exit 1; }
done
echo "a phone registered at each of the ${#NAMES[@]} nodes"

# The pairs: for types T[i] <= T[j], a phone at CALLER[T[i]] calls the one at CALLEE[T[j]]; same
# types go between the two nodes behind two different routers of that type.
TYPES=(public full-cone port-restricted symmetric udp-blocked)
declare -A CALLER=([public]=p2 [full-cone]=fa [port-restricted]=ra [symmetric]=sa [udp-blocked]=ua)
declare -A CALLEE=([public]=p1 [full-cone]=fb [port-restricted]=rb [symmetric]=sb [udp-blocked]=ub)
PAIRS=()
for i in "${!TYPES[@]}"; do
  for j in "${!TYPES[@]}"; do
    [ "$i" -le "$j" ] && PAIRS+=("${CALLER[${TYPES[$i]}]} ${CALLEE[${TYPES[$j]}]}")
  done
done
PAIRS+=("aa p1" "sa aa")  # address-restricted, calling out and called
declare -A EXPECTED=()
for pair in "${PAIRS[@]}"; do
  read -r _ callee <<<"$pair"
  EXPECTED[$callee]=$((${EXPECTED[$callee]:-0} + 1))
done
# start_callees: every callee's phone answers its expected number of calls in the background.
declare -A UAS=()
start_callees() {
  local n
  for n in "${!EXPECTED[@]}"; do
    LAB_NS[uas-$n]=${LAB_NS[$n]}
    lab_spawn "uas-$n" "$WORK/uas-$n.out" timeout 200 sipp -sf "$SIPP_DIR/call_uas.xml" -nostdin -m "${EXPECTED[$n]}" \
      -p 5090 -timeout 180s -timeout_error -trace_err -error_file "$WORK/uas-$n.err"
    UAS[$n]=${LAB_PID[uas-$n]}
  done
  for n in "${!EXPECTED[@]}"; do  # until each phone listens, for at most 5 s
    for _ in $(seq 100); do lab_exec "$n" ss -Hlun "sport = :5090" | grep -q . && break; sleep 0.05; done
  done
}
# wait_callees: every callee's phone answered all its calls (sipp exits 0 after -m calls).
wait_callees() {
  local n rc
  for n in "${!UAS[@]}"; do
    rc=0
    wait "${UAS[$n]}" || rc=$?
    [ "$rc" -eq 0 ] || { echo "the phone at $n: exit $rc"; tail -n 20 "$WORK/uas-$n.out"; cat "$WORK/uas-$n.err" 2>/dev/null | head -20; exit 1; }
  done
  UAS=()
}
start_callees
for pair in "${PAIRS[@]}"; do
  read -r caller callee <<<"$pair"
  t0=$SECONDS
  sipp_in "$caller" "call-$caller-$callee" -sf "$SIPP_DIR/call_uac.xml" -key callee "${callee}1" -m 1 -p 5091 \
    127.0.0.1:5060 || { echo "call $caller -> $callee failed"; tail -n 30 "$WORK/call-$caller-$callee.out";
    cat "$WORK/call-$caller-$callee.err" 2>/dev/null | head -40; show; exit 1; }
  echo "call $caller -> $callee: 200, ACK, BYE ($((SECONDS - t0))s)"
done
wait_callees
echo "${#PAIRS[@]} calls across every pair of NAT types set up and ended"
relayed=0
for n in p1 p2; do
  relayed=$((relayed + $(json "$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nat"]["relay"]["calls_relayed"])')))
done
echo "the relay peers took $relayed requests down their clients' flows"
[ "$relayed" -gt 0 ] || { echo "no call went through a relay peer"; exit 1; }

# ---- a relay peer dies ----------------------------------------------------------------------------
# A relay killed with SIGKILL: its clients' flows are TLS connections (the overlay authenticates its
# peers), which its kernel closes; each client's flow to it has failed at once (RFC 5626 §4.4.1), and
# its operations and calls go through its other flow.
kill -KILL "${LAB_PID[p1]}"
killed_at=$SECONDS
NAMES=(p2 "${CLIENTS[@]}")
for n in "${CLIENTS[@]}"; do
  got=$(LAB_CTL_TIMEOUT=20 lab_ctl "$n" get key-p2) || { echo "$n could not read through its other relay"; show; exit 1; }
  [ "$got" = "value from p2" ] || { echo "$n read '$got' after p1 died"; exit 1; }
done
echo "every NATed node still reads after p1 was killed ($((SECONDS - killed_at))s)"
# The ring closes around p1: p2 and the cone-NATed peers, in Node-ID order, over their links.
ring_closed() {
  local n
  for n in p2 "${CONE[@]}"; do echo "$(json "$n")"; done | python3 -c '
import json, sys
st = [json.loads(line) for line in sys.stdin if line.strip()]
if len(st) != int(sys.argv[1]): sys.exit(1)
ids = sorted(s["node_id"] for s in st)
for s in st:
    i = ids.index(s["node_id"])
    if not s["successors"] or s["successors"][0]["id"] != ids[(i + 1) % len(ids)]: sys.exit(1)' $((1 + ${#CONE[@]}))
}
until ring_closed; do
  if [ $((SECONDS - killed_at)) -ge 60 ]; then echo "the ring did not close around p1 within 60 s"; show; exit 1; fi
  sleep 1
done
echo "the ring closed around p1: p2 and the ${#CONE[@]} cone-NATed peers in Node-ID order ($((SECONDS - killed_at))s)"
# And is still called: a phone at p2 calls the phone at each NATed node, through its relay at p2.
EXPECTED=()
for n in "${CLIENTS[@]}"; do EXPECTED[$n]=1; done
start_callees
for n in "${CLIENTS[@]}"; do
  sipp_in p2 "after-$n" -sf "$SIPP_DIR/call_uac.xml" -key callee "${n}1" -m 1 -p 5091 127.0.0.1:5060 ||
    { echo "call p2 -> $n failed after p1 died"; tail -n 30 "$WORK/after-$n.out"; show; exit 1; }
done
wait_callees
echo "every NATed node's phone is still called after p1 was killed ($((SECONDS - killed_at))s)"
failed_flow() {  # the client's flow to p1 is no longer active
  json "$1" | python3 -c '
import json, sys
flows = json.load(sys.stdin)["nat"]["flows"]
sys.exit(0 if all(f["state"] != "active" or f["relay"] != "198.51.100.21:5070" for f in flows) else 1)'
}
for n in "${CLIENTS[@]}"; do
  until failed_flow "$n"; do
    if [ $((SECONDS - killed_at)) -ge 60 ]; then echo "$n still holds a flow to the dead relay"; show; exit 1; fi
    sleep 1
  done
done
echo "every NATed node found its flow to the dead relay failed within $((SECONDS - killed_at))s"
