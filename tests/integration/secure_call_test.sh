#!/usr/bin/env bash
# Issue 6 end to end, as the README walks a new user through it: an overlay CA, two nodes and two
# users enrolled, passwords set; the nodes run with TLS links and signed records, and phones log in
# with digest authentication (sipp: MD5, which the nodes offer first here). Alice registers at one
# node, Bob at the other; Alice calls Bob; the call is set up, answered and hung up. On the way:
# a wrong password is challenged again, a REGISTER for the other user with Alice's password is
# refused 403, a call without credentials is challenged 407, and nothing between the nodes went
# unauthenticated. Bounded in time; every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: secure_call_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${BASE_PORT:-$((23000 + ($$ % 100) * 30))}
WORK=$(mktemp -d)
declare -a PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
command -v sipp >/dev/null || { echo "sipp not installed (package sip-tester)"; exit 1; }
cd "$WORK"
ok() { "$@" >out 2>&1 || { echo "failed: $*"; cat out; exit 1; }; }
listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
ua() { echo "127.0.0.1:$((BASE + 20 + $1))"; }
status() { "$P2PSIP" status --json --control "$(control "$1")"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }

# Enrollment: the CA, two nodes, two users (each node holds its own user's identity), passwords.
ok "$P2PSIP" ca init --overlay secure.test --out ca
ok "$P2PSIP" ca issue --ca ca --node --out node0
ok "$P2PSIP" ca issue --ca ca --node --out node1
mkdir -p users0 users1
ok "$P2PSIP" ca issue --ca ca --user alice --out users0/alice
ok "$P2PSIP" ca issue --ca ca --user bob --out users1/bob
echo "alice-password" | "$P2PSIP" identity password users0/alice >out 2>&1 || { cat out; exit 1; }
echo "correct horse battery" >bob.pw
ok "$P2PSIP" identity password users1/bob --password-file bob.pw
[ "$(stat -c %a users0/alice/digest)" = 600 ] || { echo "the digest file is not private"; exit 1; }
grep -q "alice-password" users0/alice/digest && { echo "the password itself was written"; exit 1; }
# A password too short is refused with a clear message.
if echo "short" | "$P2PSIP" identity password users0/alice >out 2>&1; then echo "a short password was taken"; exit 1; fi
grep -q "at least 8 characters" out || { cat out; exit 1; }

# Phones off this host must log in: a node whose users have no password refuses to serve them.
mkdir -p users-nopw
ok "$P2PSIP" ca issue --ca ca --user carol --out users-nopw/carol
if "$P2PSIP" node --identity node0 --trust ca/ca.crt --users users-nopw --ua-listen 192.0.2.1:5060 \
  --listen "$(listen 5)" --control "$(control 5)" >out 2>&1; then
  echo "a node served phones off loopback without passwords"; exit 1
fi
grep -q "no user in --users has a password" out || { cat out; exit 1; }

for n in 0 1; do
  boot=()
  [ "$n" -eq 1 ] && boot=(--bootstrap "$(listen 0)")
  "$P2PSIP" node --identity "node$n" --trust ca/ca.crt --users "users$n" --overlay-transport tls \
    --listen "$(listen "$n")" --control "$(control "$n")" --ua-listen "$(ua "$n")" --ua-digest \
    --ua-digest-algorithms MD5,SHA-256 --stabilize-interval 0.5 --t1-ms 100 "${boot[@]}" >"node$n.log" 2>&1 &
  PIDS[$n]=$!
  sleep 0.3
done
start=$SECONDS
until "$P2PSIP" ring-check --quiet "$(control 0)" "$(control 1)" >ring 2>&1; do
  [ $((SECONDS - start)) -lt 30 ] || { echo "no ring after 30 s:"; cat ring; tail node*.log; exit 1; }
  sleep 0.5
done
grep -q "log in with the user's password" node0.log || { echo "no softphone settings with a login"; cat node0.log; exit 1; }

# sipp_run NAME NODE SCENARIO ARGS...: one call of SCENARIO against NODE's UA side; its exit status.
sipp_run() {
  local name=$1 node=$2 scenario=$3
  shift 3
  mkdir -p "$name"
  (cd "$name" && timeout 30 sipp -sf "$HERE/sipp/$scenario" -s secure.test "$(ua "$node")" -m 1 -i 127.0.0.1 \
    -timeout 20s -timeout_error -trace_err ${TRACE:+-trace_msg} "$@" >/dev/null 2>&1)
}
alice_port=$((BASE + 25))
bob_port=$((BASE + 26))
sipp_run alice-wrong 0 register_auth.xml -key user alice -au alice -ap not-her-password -auth_uri secure.test \
  -p "$alice_port" && { echo "a wrong password registered"; exit 1; }
sipp_run alice 0 register_auth.xml -key user alice -au alice -ap alice-password -auth_uri secure.test -p "$alice_port" ||
  { echo "alice could not register"; cat alice/*errors.log 2>/dev/null; tail node0.log; exit 1; }
sipp_run bob 1 register_auth.xml -key user bob -au bob -ap "correct horse battery" -auth_uri secure.test -p "$bob_port" ||
  { echo "bob could not register"; cat bob/*errors.log 2>/dev/null; tail node1.log; exit 1; }
# Alice's password is not Bob's: node 1 serves Bob only, and her credentials do not register him.
sipp_run alice-as-bob 1 register_auth.xml -key user bob -au alice -ap alice-password -auth_uri secure.test \
  -p "$((BASE + 27))" && { echo "alice's credentials registered bob"; exit 1; }
"$P2PSIP" locate sip:bob@secure.test --control "$(control 0)" >locate 2>&1 || { echo "bob not found from node 0"; cat locate; exit 1; }
echo "alice and bob logged in at their nodes; a wrong password and another user's were refused"

# Bob's phone answers at the address he registered; Alice calls him, logging in at her node's proxy.
mkdir -p bob-uas
(cd bob-uas && timeout 40 sipp -sf "$HERE/sipp/call_uas.xml" -i 127.0.0.1 -p "$bob_port" -m 1 -timeout 30s \
  -trace_err >/dev/null 2>&1) &
UAS=$!
PIDS+=("$UAS")
for _ in $(seq 100); do ss -Hlun "sport = :$bob_port" | grep -q . && break; sleep 0.05; done  # bob's phone listens
sipp_run call 0 call_uac_auth.xml -key user alice -key callee bob -au alice -ap alice-password \
  -auth_uri bob@secure.test -p "$alice_port" || { echo "the call failed"; cat call/*errors.log 2>/dev/null; tail node0.log node1.log; exit 1; }
wait "$UAS" || { echo "bob's phone did not complete the call"; cat bob-uas/*errors.log 2>/dev/null; exit 1; }
echo "alice called bob across the overlay: set up, answered, hung up"

s0=$(status 0)
s1=$(status 1)
[ "$(echo "$s0" | field "['ua']['challenges']")" -ge 2 ] || { echo "node 0 challenged nothing"; echo "$s0"; exit 1; }
[ "$(echo "$s0" | field "['ua']['auth_refused']")" -ge 1 ] || { echo "node 0 refused no credentials"; exit 1; }
[ "$(echo "$s1" | field "['ua']['auth_refused']")" -ge 1 ] || { echo "node 1 refused no credentials"; exit 1; }
for s in "$s0" "$s1"; do
  [ "$(echo "$s" | field "['security']['tls_links_accepted']")" -ge 1 ] || { echo "no TLS link"; echo "$s"; exit 1; }
  [ "$(echo "$s" | field "['security']['unauthenticated']")" -eq 0 ] || { echo "unauthenticated overlay traffic"; exit 1; }
  [ "$(echo "$s" | field "['messages']['datagrams_out']")" -eq 0 ] || { echo "a TLS node sent datagrams"; exit 1; }
done
[ "$(echo "$s0" | field "['security']['signatures_checked']")" -ge 1 ] ||
  { echo "node 0 verified no record signature (bob's entry)"; echo "$s0"; exit 1; }
echo "secure call test: passed"
