#!/usr/bin/env bash
# Issue 6's authenticated peers with real processes on loopback: an overlay CA enrolls three nodes;
# two run their links over TLS (mutual certificate authentication), the third over UDP with every
# message signed, and all three form one ring and store and fetch records. A node enrolled by
# another overlay's CA is refused at the TLS handshake and over signed UDP alike (437, logged), and
# never appears in any node's successor or predecessor list. A TLS client without a certificate is refused by OpenSSL's
# own s_client. Bounded in time; every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: tls_overlay_test.sh PATH/TO/p2psip}
BASE=${BASE_PORT:-$((25000 + ($$ % 100) * 20))}
WORK=$(mktemp -d)
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
cd "$WORK"
ok() { "$@" >out 2>&1 || { echo "failed: $*"; cat out; exit 1; }; }
listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
# start N DIR TRANSPORT [BOOTSTRAP-INDEX]: a node enrolled with the identity in DIR.
start() {
  local n=$1 dir=$2 transport=$3 boot=()
  [ $# -ge 4 ] && boot=(--bootstrap "$(listen "$4")")
  "$P2PSIP" node --identity "$dir" --trust "$dir/ca.crt" --overlay-transport "$transport" --listen "$(listen "$n")" \
    --control "$(control "$n")" --ua-listen off --stabilize-interval 1 --t1-ms 100 "${boot[@]}" >"node$n.log" 2>&1 &
  PIDS[$n]=$!
}
status() { "$P2PSIP" status --json --control "$(control "$1")"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
# wait_ring SECONDS NODE...: until ring-check passes on those nodes.
wait_ring() {
  local limit=$1 start=$SECONDS controls=()
  shift
  for n in "$@"; do controls+=("$(control "$n")"); done
  until "$P2PSIP" ring-check --quiet --timeout 2 "${controls[@]}" >ring.out 2>&1; do
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      echo "ring of $* not correct after ${limit}s:"; cat ring.out; tail -n 20 node*.log; exit 1
    fi
    sleep 1
  done
}

ok "$P2PSIP" ca init --overlay tls.test --out ca
for n in 0 1 2; do ok "$P2PSIP" ca issue --ca ca --node --out "node$n"; done
ok "$P2PSIP" ca init --overlay tls.test --out foreign-ca  # same overlay name, another root
ok "$P2PSIP" ca issue --ca foreign-ca --node --out stranger

start 0 node0 tls
sleep 0.5
start 1 node1 tls 0
wait_ring 30 0 1
ok "$P2PSIP" put over-tls hello --control "$(control 1)"
[ "$("$P2PSIP" get over-tls --control "$(control 0)")" = hello ] || { echo "get over TLS failed"; exit 1; }
s0=$(status 0)
[ "$(echo "$s0" | field "['security']['tls_links_accepted']")" -ge 1 ] || { echo "no TLS link accepted"; echo "$s0"; exit 1; }
[ "$(echo "$s0" | field "['security']['messages_signed']")" -eq 0 ] || { echo "messages signed one by one over TLS"; exit 1; }
[ "$(echo "$s0" | field "['messages']['datagrams_out']")" -eq 0 ] || { echo "a TLS node sent datagrams"; exit 1; }
echo "two nodes over TLS: ring correct, record stored and fetched"

# The third node's links are UDP, every message signed: it joins the TLS nodes' ring.
start 2 node2 udp 0
wait_ring 30 0 1 2
ok "$P2PSIP" put over-udp world --control "$(control 2)"
[ "$("$P2PSIP" get over-udp --control "$(control 0)")" = world ] || { echo "get across transports failed"; exit 1; }
[ "$(status 2 | field "['security']['messages_verified']")" -ge 1 ] || { echo "node 2 verified no message"; exit 1; }
echo "a signed-UDP node joined the TLS ring"

# A node of another CA, over TLS and over UDP: refused both ways, never in anyone's table.
start 3 stranger tls 0
start 4 stranger udp 1
# Until both strangers have been refused (the positive signal), then check that neither joined.
start_wait=$SECONDS
until grep -q "TLS peer's certificate refused" node0.log &&
  grep -q "437 Unsupported Credential (certificate not issued by the overlay root)" node1.log node0.log; do
  [ $((SECONDS - start_wait)) -lt 30 ] || { echo "the strangers were not refused within 30 s"; tail node0.log node1.log; exit 1; }
  sleep 0.2
done
for n in 3 4; do
  [ "$(status "$n" | field "['joined']")" = False ] || { echo "the stranger's node $n joined"; exit 1; }
done
grep -q "TLS peer's certificate refused" node0.log || { echo "node 0 did not log the refused TLS peer"; cat node0.log; exit 1; }
grep -q "437 Unsupported Credential (certificate not issued by the overlay root)" node1.log node0.log ||
  { echo "no 437 logged for the stranger"; tail node0.log node1.log; exit 1; }
[ "$(status 0 | field "['security']['tls_links_refused']")" -ge 1 ] || { echo "no TLS link counted as refused"; exit 1; }
stranger_id=$(sed -n 's/.*p2psip node \([0-9a-f]\{32\}\) .*/\1/p' node3.log | head -n 1)
[ -n "$stranger_id" ] || { echo "no Node-ID in the stranger's log"; cat node3.log; exit 1; }
for n in 0 1 2; do
  if status "$n" | grep -q "$stranger_id"; then echo "node $n lists the stranger $stranger_id"; exit 1; fi
done
wait_ring 10 0 1 2
echo "another CA's node refused over TLS and UDP, in no successor or predecessor list"

# OpenSSL's own client, with no certificate: the node requires one.
echo | timeout 5 openssl s_client -connect "$(listen 0)" -tls1_3 -quiet >s_client.out 2>&1 || true
grep -q "alert certificate required" s_client.out ||
  { echo "a TLS client without a certificate was not refused"; cat s_client.out; exit 1; }
echo "a client without a certificate is refused (alert: certificate required)"

for n in 0 1 2 3 4; do kill -TERM "${PIDS[$n]}" 2>/dev/null || true; done
for n in 0 1 2 3 4; do timeout 10 tail --pid="${PIDS[$n]}" -f /dev/null || { echo "node $n did not stop"; exit 1; }; done
PIDS=()
echo "tls overlay test: passed"
