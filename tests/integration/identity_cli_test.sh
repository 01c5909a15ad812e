#!/usr/bin/env bash
# Issue 6's enrollment from the command line: an overlay CA, two nodes and two users enrolled (from
# requests and with keys made by the CA), one user name per key, refusals with clear messages, and
# the certificates checked by OpenSSL's own `openssl verify` as well as by `p2psip identity show`.
# Files only (no network); everything in a temporary directory.
set -euo pipefail
P2PSIP=${1:?usage: identity_cli_test.sh PATH/TO/p2psip}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
expect_fail() {  # expect_fail CODE TEXT CMD...: the command exits CODE and says TEXT
  local code=$1 text=$2
  shift 2
  local rc=0
  "$@" >out 2>&1 || rc=$?
  [ "$rc" -eq "$code" ] || { echo "expected exit $code from: $*; got $rc"; cat out; exit 1; }
  grep -q -- "$text" out || { echo "expected '$text' from: $*"; cat out; exit 1; }
}
ok() { "$@" >out 2>&1 || { echo "failed: $*"; cat out; exit 1; }; }

ok "$P2PSIP" ca init --overlay demo.test --out ca
[ "$(stat -c %a ca/ca.key)" = 600 ] || { echo "ca.key is not private"; exit 1; }
expect_fail 1 "already holds a CA" "$P2PSIP" ca init --overlay demo.test --out ca
expect_fail 2 "not a valid overlay name" "$P2PSIP" ca init --overlay "two words" --out ca2

# Node 1 makes its own key and request; the CA signs it. Node 2's key is made by the CA.
ok "$P2PSIP" identity new --overlay demo.test --node --out node1
id1=$(sed -n 's/^node \([0-9a-f]\{32\}\): key.*/\1/p' out)
[ -n "$id1" ] || { echo "identity new printed no Node-ID"; cat out; exit 1; }
ok "$P2PSIP" ca issue --ca ca --csr node1/request.csr --out node1
grep -q "issued node $id1 " out || { echo "the CA did not issue node $id1 (the id of the request's key)"; cat out; exit 1; }
ok "$P2PSIP" ca issue --ca ca --node --out node2
[ "$(stat -c %a node2/key.pem)" = 600 ] || { echo "node2/key.pem is not private"; exit 1; }

# Two users; a second key for alice is refused, the same key again (renewal) is not.
ok "$P2PSIP" identity new --overlay demo.test --user alice --out alice
ok "$P2PSIP" ca issue --ca ca --csr alice/request.csr --out alice
ok "$P2PSIP" ca issue --ca ca --user bob --out bob
expect_fail 1 "sip:alice@demo.test was already issued to another key" "$P2PSIP" ca issue --ca ca --user alice --out alice2
ok "$P2PSIP" identity new --overlay demo.test --user alice --out mallory
expect_fail 1 "already issued to another key" "$P2PSIP" ca issue --ca ca --csr mallory/request.csr --out mallory
ok "$P2PSIP" ca issue --ca ca --csr alice/request.csr --out alice
[ "$(grep -c $'\tuser\t' ca/issued.tsv)" -eq 3 ] || { echo "issued.tsv should list 3 user certificates:"; cat ca/issued.tsv; exit 1; }
[ "$(grep -c $'\tnode\t' ca/issued.tsv)" -eq 2 ] || { echo "issued.tsv should list 2 node certificates:"; cat ca/issued.tsv; exit 1; }

# Many users at once (a test bed, a benchmark): each with its own directory and key; issuing them
# again would give the same names other keys, and is refused.
ok "$P2PSIP" ca issue --ca ca --user load --count 3 --out many
for k in 1 2 3; do [ -f "many/load$k/key.pem" ] && [ -f "many/load$k/cert.pem" ] || { echo "many/load$k missing"; exit 1; }; done
openssl verify -CAfile ca/ca.crt many/load3/cert.pem >/dev/null || { echo "openssl refused many/load3"; exit 1; }
expect_fail 1 "sip:load1@demo.test was already issued to another key" "$P2PSIP" ca issue --ca ca --user load --count 3 --out many2
expect_fail 2 "excludes --csr" "$P2PSIP" ca issue --ca ca --csr alice/request.csr --count 2 --out x

# Requests the CA must refuse: another overlay's, a tampered one, a user request passed as a node's.
ok "$P2PSIP" identity new --overlay other.test --node --out foreign
expect_fail 1 "asks to join overlay other.test" "$P2PSIP" ca issue --ca ca --csr foreign/request.csr --out foreign
# (one base64 character of the key or signature changed: 'A' becomes 'B', anything else 'A')
awk 'NR == 3 { c = substr($0, 20, 1); $0 = substr($0, 1, 19) (c == "A" ? "B" : "A") substr($0, 21) } { print }' \
  node1/request.csr >tampered.csr
cmp -s node1/request.csr tampered.csr && { echo "the tampered request is unchanged"; exit 1; }
expect_fail 1 "tampered.csr" "$P2PSIP" ca issue --ca ca --csr tampered.csr --out tampered
expect_fail 1 "is a user request" "$P2PSIP" ca issue --ca ca --node --csr alice/request.csr --out x
expect_fail 2 "not a valid user name" "$P2PSIP" ca issue --ca ca --user "al ice" --out x
expect_fail 1 "nowhere/ca.key" "$P2PSIP" ca issue --ca nowhere --node --out x

# OpenSSL itself accepts what the CA issued; p2psip's own check agrees, and names the identity.
openssl verify -CAfile ca/ca.crt node1/cert.pem node2/cert.pem alice/cert.pem bob/cert.pem >out 2>&1 \
  || { echo "openssl verify refused:"; cat out; exit 1; }
openssl x509 -in node1/cert.pem -noout -ext subjectAltName | grep -q "URI:reload://$id1@demo.test/" \
  || { echo "node1's certificate does not carry reload://$id1@demo.test/"; exit 1; }
ok "$P2PSIP" identity show node1 --trust ca/ca.crt
grep -q "^node $id1" out && grep -q "valid now under" out || { echo "identity show:"; cat out; exit 1; }
ok "$P2PSIP" identity show alice/cert.pem --trust node1/ca.crt
grep -q "^user sip:alice@demo.test" out || { echo "identity show:"; cat out; exit 1; }

# A certificate from another CA of the same overlay name, and a self-signed one, are refused.
ok "$P2PSIP" ca init --overlay demo.test --out rogue
ok "$P2PSIP" ca issue --ca rogue --node --out impostor
expect_fail 1 "REFUSED: certificate not issued by the overlay root" "$P2PSIP" identity show impostor --trust ca/ca.crt
ok "$P2PSIP" identity new --overlay demo.test --node --self-signed --out dev
grep -q "self-signed (development mode" out || { echo "identity new --self-signed:"; cat out; exit 1; }
expect_fail 1 "REFUSED" "$P2PSIP" identity show dev --trust ca/ca.crt
expect_fail 2 "node identities only" "$P2PSIP" identity new --overlay demo.test --user carol --self-signed --out c
expect_fail 1 "an identity is already there" "$P2PSIP" identity new --overlay demo.test --node --out node1

for sub in "ca" "ca init" "ca issue" "identity" "identity new" "identity show"; do
  # shellcheck disable=SC2086
  "$P2PSIP" $sub --help >/dev/null || { echo "p2psip $sub --help failed"; exit 1; }
done
echo "identity_cli_test: a CA, 2 nodes and 2 users enrolled; every refusal as expected; openssl verify agrees"
