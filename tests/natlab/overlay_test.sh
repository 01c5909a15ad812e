#!/usr/bin/env bash
# The overlay behind NATs (issue 24), in the namespace lab: two public peers, and one node behind
# each kind of NAT (full cone, address-restricted, port-restricted, symmetric, and one that lets no
# UDP out, whose client keeps its flows over TCP),
# each NAT first checked with coturn's turnutils_natdiscovery. Every node starts with the default
# role (auto): the public ones join the ring, the NATed ones find they are NATed and become clients
# with two flows to the relay peers. Then every node puts a record and reads every other node's;
# the ring holds the public peers only (no private address anywhere in it); each client's flows are
# active at two different relays, and the relays count them. Bounded in time; the lab removes every
# namespace, process and nftables table on the way out, failure included.
set -euo pipefail
P2PSIP=${1:?usage: overlay_test.sh PATH/TO/p2psip}
source "$(cd "$(dirname "$0")" && pwd)/natlab.sh"
lab_begin

SITES=("1 full-cone" "2 addr-restricted" "3 port-restricted" "4 symmetric" "5 udp-blocked")
lab_stun
lab_public p1 21
lab_public p2 22
for s in "${SITES[@]}"; do
  read -r x type <<<"$s"
  lab_site "h$x" "$x" "$type"
  lab_verify_nat "h$x" "$type" || exit 1
done
NAMES=(p1 p2 h1 h2 h3 h4 h5)
lab_node p1 198.51.100.21
lab_node p2 198.51.100.22 198.51.100.21
for s in "${SITES[@]}"; do
  read -r x _ <<<"$s"
  lab_node "h$x" "10.0.$x.2" 198.51.100.21 198.51.100.22
done

json() { lab_ctl "$1" status --json 2>/dev/null || true; }
show() {
  for n in "${NAMES[@]}"; do
    echo "--- $n"; lab_ctl "$n" status || true; tail -n 15 "$WORK/$n.log"
  done
}
# Every node settled: the public ones joined with a successor, the clients with two active flows.
settled() {
  local n="$1" j
  j=$(json "$n")
  [ -n "$j" ] || return 1
  python3 -c '
import json, sys
s = json.loads(sys.argv[1]); n = s["nat"]
if sys.argv[2].startswith("p"):
    ok = n["role"] == "peer" and s["joined"] and len(s["successors"]) > 0
else:
    flows = [f for f in n["flows"] if f["state"] == "active"]
    ok = n["role"] == "client" and len(flows) == 2 and len({f["relay"] for f in flows}) == 2
sys.exit(0 if ok else 1)' "$j" "$n"
}
# The UDP-blocked node decides when its STUN transactions time out (39.5 s).
deadline=$((SECONDS + 120))
for n in "${NAMES[@]}"; do
  until settled "$n"; do
    if [ $SECONDS -ge $deadline ]; then echo "$n did not settle within 120 s"; show; exit 1; fi
    sleep 1
  done
  echo "$n settled after ${SECONDS}s"
done

# The ring is the two public peers: nobody lists a private address, nobody lists a client.
for n in p1 p2; do
  j=$(json "$n")
  python3 -c '
import json, sys
s = json.loads(sys.argv[1])
addrs = [p["addr"] for p in s["predecessors"] + s["successors"]]
bad = [a for a in addrs if not a.startswith("198.51.100.")]
if bad: print(sys.argv[2], "lists", bad); sys.exit(1)
relay = s["nat"]["relay"]
print(sys.argv[2], "relays for", relay["clients"], "clients")' "$j" "$n" || { show; exit 1; }
done
clients=0
for n in p1 p2; do
  clients=$((clients + $(json "$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["nat"]["relay"]["clients"])')))
done
[ "$clients" -eq 10 ] || { echo "the relays hold $clients client flows, expected 10 (two per client)"; show; exit 1; }

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
echo "every node read every other node's record (7 x 7)"

# A relay killed with SIGKILL: each client's operations go through its other flow at once, and the
# flow to the dead relay is found failed by its keep-alive (UDP: at most 29 s + 39.5 s; TCP: at the
# next probe, 95-120 s, which finds the connection refused).
kill -KILL "${LAB_PID[p1]}"
killed_at=$SECONDS
for n in h1 h2 h3 h4 h5; do
  # The first try may go to the dead relay: the hop time-out (5.5 s) moves it to the other.
  got=$(LAB_CTL_TIMEOUT=20 lab_ctl "$n" get key-p2) || { echo "$n could not read through its other relay"; show; exit 1; }
  [ "$got" = "value from p2" ] || { echo "$n read '$got' after p1 died"; exit 1; }
done
echo "every client still reads after p1 was killed ($((SECONDS - killed_at))s)"
failed_flow() {  # the client's flow to p1 is no longer active
  json "$1" | python3 -c '
import json, sys
flows = json.load(sys.stdin)["nat"]["flows"]
sys.exit(0 if all(f["state"] != "active" or f["relay"] != "198.51.100.21:5070" for f in flows) else 1)'
}
for n in h1 h2 h3 h4 h5; do
  until failed_flow "$n"; do
    # UDP flows: a keep-alive within 29 s, and its STUN transaction times out after 39.5 s. TCP:
    # the broken connection, or the probe's transaction.
    if [ $((SECONDS - killed_at)) -ge 160 ]; then echo "$n still holds a flow to the dead relay"; show; exit 1; fi
    sleep 1
  done
done
echo "every client found its flow to the dead relay failed within $((SECONDS - killed_at))s"
