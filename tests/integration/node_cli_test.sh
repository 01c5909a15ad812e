#!/usr/bin/env bash
# The node's command line as a user meets it: a TOML --config with the same keys as the flags,
# clear errors for bad flags, status/put/get/lookup against a running node, exit codes, and a
# graceful exit on SIGTERM. Loopback only; every process is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: node_cli_test.sh PATH/TO/p2psip}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
BASE=$((23000 + ($$ % 300) * 10))
expect_fail() {  # expect_fail CODE TEXT CMD...: the command exits CODE and says TEXT
  local code=$1 text=$2
  shift 2
  local rc=0
  "$@" >"$WORK/out" 2>&1 || rc=$?
  [ "$rc" -eq "$code" ] || { echo "expected exit $code from: $*; got $rc"; cat "$WORK/out"; exit 1; }
  grep -q -- "$text" "$WORK/out" || { echo "expected '$text' from: $*"; cat "$WORK/out"; exit 1; }
}

expect_fail 2 "is not ADDR:PORT" "$P2PSIP" node --listen nonsense
expect_fail 2 "must be a loopback" "$P2PSIP" node --control 192.0.2.1:8070
expect_fail 2 "--stabilize-interval must be" "$P2PSIP" node --stabilize-interval 0
expect_fail 2 "--log-level must be" "$P2PSIP" node --log-level loud
expect_fail 2 "--ua-listen 5060 is not ADDR:PORT" "$P2PSIP" node --ua-listen 5060
# Phones off this host must log in: not in development mode, not without passwords.
expect_fail 2 "development mode serves phones on this host only" "$P2PSIP" node --dev --ua-listen 192.0.2.1:5060
expect_fail 2 "development mode serves phones on this host only" "$P2PSIP" node --dev --ua-digest
expect_fail 2 "is not a list of SHA-256 and MD5" "$P2PSIP" node --dev --ua-digest-algorithms SHA-1
expect_fail 2 "need 1 <= --min-expires <= --max-expires" "$P2PSIP" node --min-expires 100 --max-expires 50
expect_fail 2 "--peer-burst >= 1" "$P2PSIP" node --dev --peer-burst 0
expect_fail 2 "--max-records-per-owner >= 1" "$P2PSIP" node --dev --max-records-per-owner 0
expect_fail 1 "cannot connect to the node's control port" "$P2PSIP" status --control "127.0.0.1:$((BASE + 9))"
# Identity: enrolled (--identity and --trust) or development mode (--dev), never silently neither.
expect_fail 2 "or --dev for development mode" "$P2PSIP" node --listen "127.0.0.1:$BASE" --control "127.0.0.1:$((BASE + 1))"
expect_fail 2 "--identity DIR and --trust CAFILE go together" "$P2PSIP" node --identity "$WORK/none"
expect_fail 2 "exclude each other" "$P2PSIP" node --dev --identity "$WORK/none" --trust "$WORK/none.crt"
expect_fail 2 "$WORK/none.crt" "$P2PSIP" node --identity "$WORK/none" --trust "$WORK/none.crt"

cat >"$WORK/a.toml" <<TOML
dev = true
overlay = "cli.test"
listen = "127.0.0.1:$BASE"
control = "127.0.0.1:$((BASE + 1))"
stabilize-interval = 1
t1-ms = 50
data-dir = "$WORK/a"
ua-listen = "127.0.0.1:$((BASE + 4))"
TOML
cat >"$WORK/b.toml" <<TOML
dev = true
overlay = "cli.test"
listen = "127.0.0.1:$((BASE + 2))"
control = "127.0.0.1:$((BASE + 3))"
bootstrap = ["127.0.0.1:$((BASE + 7))", "127.0.0.1:$BASE"]
stabilize-interval = 1
t1-ms = 50
ua-listen = "off"
TOML
"$P2PSIP" node --config "$WORK/a.toml" >"$WORK/a.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q "started a new overlay" "$WORK/a.log" && break; sleep 0.1; done
grep -q "started a new overlay 'cli.test' on udp+tcp+tls 127.0.0.1:$BASE (links over udp, every message signed)" "$WORK/a.log" || { cat "$WORK/a.log"; exit 1; }
grep -q "^softphone settings: domain (realm) cli.test; registrar and outbound proxy 127.0.0.1:$((BASE + 4)) " "$WORK/a.log" \
  || { echo "no softphone settings printed:"; cat "$WORK/a.log"; exit 1; }
# A write to a connection its peer reset must not kill the node: SIGPIPE (13) is ignored.
sigign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/${PIDS[-1]}/status")
(( (16#$sigign >> 12) & 1 )) || { echo "the node does not ignore SIGPIPE (SigIgn $sigign)"; exit 1; }
# The development identity is kept in --data-dir, and the Node-ID is its key's digest.
id=$("$P2PSIP" identity show "$WORK/a" | sed -n 's/^node \([0-9a-f]\{32\}\)$/\1/p')
[ -n "$id" ] || { echo "no self-signed identity in --data-dir:"; ls -l "$WORK/a"; exit 1; }
[ "$(stat -c %a "$WORK/a/key.pem")" = 600 ] || { echo "the node's key is not private"; exit 1; }
"$P2PSIP" node --config "$WORK/b.toml" >"$WORK/b.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do "$P2PSIP" ring-check --quiet "127.0.0.1:$((BASE + 1))" "127.0.0.1:$((BASE + 3))" >/dev/null && break; sleep 0.2; done
"$P2PSIP" ring-check "127.0.0.1:$((BASE + 1))" "127.0.0.1:$((BASE + 3))"
"$P2PSIP" status --control "127.0.0.1:$((BASE + 1))" | grep -q "^node        $id" || { echo "status does not show the node id kept in --data-dir"; exit 1; }
"$P2PSIP" status --json --control "127.0.0.1:$((BASE + 1))" | grep -q '"overlay":"cli.test"'
"$P2PSIP" put "carol@cli.test" "sip:carol@127.0.0.1:5060" --control "127.0.0.1:$((BASE + 3))" | grep -q "^stored 'carol@cli.test'"
[ "$("$P2PSIP" get "carol@cli.test" --control "127.0.0.1:$((BASE + 1))")" = "sip:carol@127.0.0.1:5060" ]
"$P2PSIP" lookup "carol@cli.test" --control "127.0.0.1:$((BASE + 1))" | grep -q "responsible node"
# A value that is not UTF-8 (JSON cannot hold it as a string) travels as value_base64 and comes
# back byte for byte.
"$P2PSIP" put "bytes@cli.test" $'\xff\xfe\x01bin' --control "127.0.0.1:$((BASE + 3))" >/dev/null
[ "$("$P2PSIP" get "bytes@cli.test" --control "127.0.0.1:$((BASE + 1))" | od -An -tx1 | tr -d ' \n')" = "fffe0162696e0a" ] ||
  { echo "a binary value did not come back byte for byte"; exit 1; }
"$P2PSIP" get "bytes@cli.test" --json --control "127.0.0.1:$((BASE + 1))" | grep -q '"value_base64":"//4BYmlu"' ||
  { echo "a binary value is not value_base64 in JSON"; exit 1; }
expect_fail 1 "no record for key 'nobody@cli.test'" "$P2PSIP" get "nobody@cli.test" --control "127.0.0.1:$((BASE + 1))"
expect_fail 1 "lifetime must be" "$P2PSIP" put k v --lifetime 0 --control "127.0.0.1:$((BASE + 1))"
# A node may not write a user's registration (USER-MATCH): the storing peer refuses it.
expect_fail 1 "403: Forbidden (USER-MATCH: Signer Is Not sip:bob@cli.test)" \
  "$P2PSIP" put "sip:bob@cli.test" "forged" --control "127.0.0.1:$((BASE + 3))"

# SIGTERM: a graceful leave, then exit 0 within a few seconds; the other node takes the records.
kill -TERM "${PIDS[0]}"
rc=0
timeout 10 tail --pid="${PIDS[0]}" -f /dev/null || { echo "node did not exit within 10 s of SIGTERM"; exit 1; }
wait "${PIDS[0]}" || rc=$?
[ "$rc" -eq 0 ] || { echo "node exited $rc on SIGTERM"; exit 1; }
grep -q "SIGTERM: leaving the overlay" "$WORK/a.log"
[ "$("$P2PSIP" get "carol@cli.test" --control "127.0.0.1:$((BASE + 3))")" = "sip:carol@127.0.0.1:5060" ]
kill -TERM "${PIDS[1]}"
wait "${PIDS[1]}" || { echo "second node exited non-zero on SIGTERM"; exit 1; }
PIDS=()
echo "node command line: all checks passed"
