#!/usr/bin/env bash
# TURN servers the overlay announces (issue 24; RFC 6940 §9's TURN-SERVICE), in the namespace lab.
# coturn runs at 198.51.100.31 with a REST secret (--use-auth-secret --static-auth-secret); one
# public node, p1, is given that server and secret and announces it (--turn-service on). The other
# nodes get no TURN setting at all: a second public peer, a peer behind a port-restricted cone NAT and
# a client behind a symmetric NAT (each router checked first with turnutils_natdiscovery).
#  - Each of them finds the server in the overlay (a Find to a random key), gets credentials from p1
#    (the password sealed for it), and its status names the server and p1.
#  - The credentials work at coturn: a node behind a second port-restricted NAT joins later, the
#    peers that answer its Attaches gather relayed candidates, and coturn's own log shows allocations
#    that succeeded for users "EXPIRY:NODE-ID" of nodes that were never given a TURN setting.
#  - The secret is in no node's log or status.
# Bounded in time; the lab removes every namespace, process and nftables table on the way out,
# failure included.
set -euo pipefail
P2PSIP=${1:?usage: turn_service_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/natlab.sh"
lab_begin

SECRET="natlab-rest-secret-$$"
printf '%s\n' "$SECRET" >"$WORK/turn-secret"
lab_stun  # the routers' checks
lab_public ts 31
COTURN_LOG=$WORK/coturn-rest.log
lab_spawn ts "$COTURN_LOG" turnserver -n --listening-ip=198.51.100.31 --relay-ip=198.51.100.31 \
  --listening-port=3478 --no-tls --no-dtls --no-cli --log-file=stdout --simple-log -v --no-software-attribute \
  --realm=natlab.test --use-auth-secret --static-auth-secret="$SECRET"
for _ in $(seq 1 50); do
  ip netns exec "$LAB-ts" ss -uln 2>/dev/null | grep -q '198.51.100.31:3478' && break
  sleep 0.1
done
ip netns exec "$LAB-ts" ss -uln | grep -q '198.51.100.31:3478' || lab_die "coturn (REST secret) did not start"

lab_public p1 21
lab_public p2 22
for s in "ra 4 port-restricted" "sa 6 symmetric" "rb 5 port-restricted"; do
  read -r name x type <<<"$s"
  lab_site "$name" "$x" "$type"
  lab_verify_nat "$name" "$type" || exit 1
done

LAB_NODE_ARGS="--turn turn:198.51.100.31:3478 --turn-secret-file $WORK/turn-secret --turn-service on" \
  lab_node p1 198.51.100.21
lab_node p2 198.51.100.22 198.51.100.21
lab_node ra 10.0.4.2 198.51.100.21 198.51.100.22
lab_node sa 10.0.6.2 198.51.100.21 198.51.100.22

json() { lab_ctl "$1" status --json 2>/dev/null || true; }
show() {
  for n in p1 p2 ra sa rb; do
    echo "--- $n"; lab_ctl "$n" status 2>/dev/null || true; tail -n 15 "$WORK/$n.log" 2>/dev/null || true
  done
  echo "--- coturn"; tail -n 30 "$COTURN_LOG"
}
node_id() { json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])'; }
# NAME uses 198.51.100.31:3478, announced by node $2 (and, for NAME p1, announces it).
using_turn() {
  local j
  j=$(json "$1")
  [ -n "$j" ] || return 1
  python3 -c '
import json, sys
s = json.loads(sys.argv[1]); t = s["nat"].get("turn_service")
if t is None: sys.exit(1)
if sys.argv[2] == "p1":
    ok = t["announcing"] and t["announced"] == "198.51.100.31:3478" and t["entries_stored"] >= 1
else:
    u = t.get("using")
    ok = u is not None and u["server"] == "198.51.100.31:3478" and u["from"] == sys.argv[3]
sys.exit(0 if ok else 1)' "$j" "$1" "${P1_ID:-}"
}
deadline=$((SECONDS + 90))
until using_turn p1; do
  if [ $SECONDS -ge $deadline ]; then echo "p1 does not announce its TURN server"; show; exit 1; fi
  sleep 1
done
P1_ID=$(node_id p1)
for n in p2 ra sa; do
  until using_turn "$n"; do
    if [ $SECONDS -ge $deadline ]; then echo "$n found no TURN server in the overlay"; show; exit 1; fi
    sleep 1
  done
  echo "$n: relayed candidates through 198.51.100.31:3478, announced by p1 (${SECONDS}s)"
  lab_ctl "$n" status | grep '^ *turn' || true
done
json p1 | python3 -c '
import json, sys
t = json.load(sys.stdin)["nat"]["turn_service"]
print("p1 announces", t["announced"], "in", t["entries_stored"], "entries;", t["credentials_given"], "credentials given")
if t["credentials_given"] < 3: sys.exit("fewer than three nodes were given credentials")'

# A node joins later: the peers that answer its Attaches open ICE agents now, each with the TURN
# server it found, and allocate on it with the credentials it was given.
lab_node rb 10.0.5.2 198.51.100.21 198.51.100.22
ids=$(for n in p2 ra sa; do node_id "$n"; done | tr '\n' ' ')
allocated() {
  python3 - "$COTURN_LOG" "$ids" <<'PY'
import re, sys
log = open(sys.argv[1], errors="replace").read()
ids = set(sys.argv[2].split())
users = set(re.findall(r"user <(\d+):([0-9a-f]{32})>: incoming packet ALLOCATE processed, success", log))
found = sorted(i for _, i in users if i in ids)
if not found: sys.exit(1)
print("coturn allocated relays for", len(found), "node(s) given no TURN setting:", " ".join(f[:8] for f in found))
PY
}
deadline=$((SECONDS + 60))
until allocated; do
  if [ $SECONDS -ge $deadline ]; then
    echo "coturn shows no allocation for a node that found its server in the overlay"; show; exit 1
  fi
  sleep 1
done
# coturn refused none of the credentials handed out through the overlay (401 with a user named).
if grep -qE "user <[0-9]+:[0-9a-f]{32}>: .*error 401" "$COTURN_LOG"; then
  echo "coturn refused credentials handed out through the overlay:"
  grep -E "user <[0-9]+:[0-9a-f]{32}>: .*error 401" "$COTURN_LOG" | head -5
  exit 1
fi
for n in p1 p2 ra sa rb; do
  if grep -qF "$SECRET" "$WORK/$n.log" || json "$n" | grep -qF "$SECRET"; then
    echo "$n shows the TURN secret"; exit 1
  fi
done
echo "turn-service: every node without a TURN setting found p1's in the overlay, and coturn took their credentials"
