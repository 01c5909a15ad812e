#!/usr/bin/env bash
# Interop: sipp (package sip-tester) against `p2psip sip-echo` on loopback, over UDP and TCP.
# Every run is bounded in calls and time; the element is stopped with SIGTERM at the end.
set -euo pipefail
P2PSIP=${1:?usage: sipp_echo_test.sh PATH/TO/p2psip}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
ECHO_PID=""
cleanup() {
  if [ -n "$ECHO_PID" ] && kill -0 "$ECHO_PID" 2>/dev/null; then
    kill -TERM "$ECHO_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$ECHO_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ECHO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v sipp >/dev/null || { echo "sipp not installed (package sip-tester)"; exit 1; }

start_echo() {
  "$P2PSIP" sip-echo --listen 127.0.0.1:0 "$@" >"$WORK/echo.out" 2>"$WORK/echo.err" &
  ECHO_PID=$!
  for _ in $(seq 100); do
    PORT=$(sed -n 's/^sip-echo listening on .* port \([0-9]*\)$/\1/p' "$WORK/echo.out")
    [ -n "$PORT" ] && return 0
    kill -0 "$ECHO_PID" 2>/dev/null || break
    sleep 0.05
  done
  echo "sip-echo did not start:"; cat "$WORK/echo.err"; exit 1
}

stop_echo() {
  kill -TERM "$ECHO_PID"
  local rc=0
  wait "$ECHO_PID" || rc=$?
  ECHO_PID=""
  [ "$rc" -eq 0 ] || { echo "sip-echo exited $rc on SIGTERM"; cat "$WORK/echo.err"; exit 1; }
  cat "$WORK/echo.out"
}

# run_sipp NAME CALLS TRANSPORT SCENARIO-ARGS...: sipp must exit 0 with every call successful and
# no unexpected message logged.
run_sipp() {
  local name=$1 calls=$2 transport=$3
  shift 3
  local dir="$WORK/$name"
  mkdir -p "$dir"
  local rc=0
  (cd "$dir" && timeout 60 sipp "$@" 127.0.0.1:"$PORT" -t "$transport" -m "$calls" -r 50 -l 20 \
      -timeout 50s -timeout_error -nostdin -trace_err -trace_stat -stf stats.csv >sipp.out 2>&1) || rc=$?
  local stats
  stats=$(tail -n 1 "$dir/stats.csv")
  local header
  header=$(head -n 1 "$dir/stats.csv")
  col() { echo "$header" | tr ';' '\n' | grep -n -x "$1" | cut -d: -f1; }
  local ok failed unexpected
  ok=$(echo "$stats" | cut -d';' -f"$(col SuccessfulCall\(C\))")
  failed=$(echo "$stats" | cut -d';' -f"$(col FailedCall\(C\))")
  unexpected=$(echo "$stats" | cut -d';' -f"$(col FailedUnexpectedMessage\(C\))")
  echo "$name over $transport: sipp exit $rc, successful $ok, failed $failed, unexpected $unexpected"
  if [ "$rc" -ne 0 ] || [ "$ok" != "$calls" ] || [ "$failed" != "0" ] || [ "$unexpected" != "0" ]; then
    cat "$dir/sipp.out" | tail -n 40
    cat "$dir"/*errors.log 2>/dev/null | head -n 40 || true
    exit 1
  fi
}

start_echo
run_sipp uac-udp 100 u1 -sn uac
run_sipp uac-tcp 100 t1 -sn uac
run_sipp options-udp 100 u1 -sf "$HERE/sipp/options.xml"
run_sipp options-tcp 100 t1 -sf "$HERE/sipp/options.xml"

# Malformed input over TCP: a framed message with a bad version is answered 505 on the same
# connection, which stays open; a negative Content-Length loses the framing: 400, then close.
torture=${P2PSIP_SHARED_DIR:-$HERE/../../../shared}/testdata/rfc4475
exec 3<>"/dev/tcp/127.0.0.1/$PORT"
cat "$torture/badvers.dat" >&3
cat "$torture/ncl.dat" >&3
reply=$(timeout 5 cat <&3 || true)
exec 3<&-
echo "$reply" | grep -q '^SIP/2.0 505 ' || { echo "no 505 for badvers.dat over TCP: $reply"; exit 1; }
echo "$reply" | grep -q '^SIP/2.0 400 Negative Content-Length' || { echo "no 400 for ncl.dat: $reply"; exit 1; }
echo "malformed over tcp: 505 and 400 answered, connection closed by the element"
stop_echo

# CANCEL needs a ringing phase: the element answers 200 only after a delay.
start_echo --answer-delay-ms 3000
run_sipp cancel-udp 20 u1 -sf "$HERE/sipp/cancel.xml"
run_sipp cancel-tcp 20 t1 -sf "$HERE/sipp/cancel.xml"
stop_echo
echo "sipp interop: all scenarios passed"
