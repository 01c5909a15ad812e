#!/usr/bin/env bash
# The UA side under load, beside Kamailio in the same run (issue 5's speed figures, issue 6's with
# signatures on).
#  1. REGISTER/s, new users: sipp registers new users at rising rates against (a) a p2psip node
#     alone in its overlay, in development mode (--dev: each new user gets a self-signed certificate,
#     and every registration entry is signed), and (b) Kamailio as an in-memory registrar (usrloc
#     db_mode 0, its table sized for the run's users: 2^16 slots) with one UDP worker.
#  2. REGISTER/s, known users: USERS users registered in turn, again and again (each REGISTER after
#     the first round refreshes a binding), against (a) a p2psip node enrolled with a CA and those
#     USERS user certificates (--identity, --trust, --users: entries signed with the user's key) and
#     (b) Kamailio with the same users.
#     Per rate: successful and failed registrations, retransmissions, the server's CPU seconds per
#     1000 transactions. The highest rate with no failure and no retransmission is reported.
#  3. calls/s: INVITE/180/200/ACK/BYE through the same two servers (Kamailio as a record-routing
#     stateful proxy, tm), caller and callee both sipp, callee registered first.
# sipp's socket buffers are 1 MiB (-buff_size; its default of 64 KiB drops answers at 10 000/s).
# The server runs on CPU 0 and every sipp on CPU 1 (taskset), so that the two share no core;
# --no-pin lets the scheduler place them.
# Usage: bench/softphone_bench.sh [--p2psip PATH] [--rates "R1 R2 ..."] [--call-rates "R1 ..."] [--seconds S]
#        [--users N] [--no-pin]
# Heavy (about 15 minutes); keep it out of ctest. Everything runs on 127.0.0.1 and is stopped at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
p2psip="$here/build/bin/p2psip"
rates="1000 2000 4000 5000 6000 7000 8000 9000 10000 11000 12000 13000 14000 16000 18000 20000 24000"
call_rates="200 400 600 800 1000 1200 1400 1600 2000 2400 2800 3200 3600 4000"
seconds=5
users=20000
pin=1
while (($#)); do
  case "$1" in
    --p2psip) p2psip="$2"; shift ;;
    --rates) rates="$2"; shift ;;
    --call-rates) call_rates="$2"; shift ;;
    --seconds) seconds="$2"; shift ;;
    --users) users="$2"; shift ;;
    --no-pin) pin=0 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1"; exit 2 ;;
  esac
  shift
done
command -v sipp >/dev/null || { echo "sipp not installed (package sip-tester)"; exit 1; }
command -v kamailio >/dev/null || { echo "kamailio not installed (package kamailio)"; exit 1; }
on_server=()
on_load=()
if [ "$pin" = 1 ] && [ "$(nproc)" -ge 2 ]; then
  on_server=(taskset -c 0)
  on_load=(taskset -c 1)
fi
work=$(mktemp -d)
server_pid=""
stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}
trap 'stop_server; pkill -P $$ sipp 2>/dev/null || true; rm -rf "$work"' EXIT

DOMAIN=bench.test
UA_PORT=25060
kam_modules=/usr/lib/x86_64-linux-gnu/kamailio/modules
cat >"$work/kamailio.cfg" <<EOF
#!KAMAILIO
debug=-1
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:$UA_PORT
alias="$DOMAIN"
mpath="$kam_modules"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "hash_size", 16)
modparam("registrar", "max_expires", 3600)
request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (is_method("REGISTER")) { save("location"); exit; }
  if (has_totag()) {
    if (loose_route()) { t_relay(); exit; }
    if (is_method("ACK")) { if (t_check_trans()) t_relay(); exit; }
    sl_send_reply("404", "Not Here"); exit;
  }
  if (is_method("CANCEL")) { if (t_check_trans()) t_relay(); exit; }
  record_route();
  if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
  t_relay();
}
EOF

# The enrolled overlay of phase 2: a CA, the node's identity, USERS user identities, and sipp's
# injection file naming the same users (read in turn).
"$p2psip" ca init --overlay "$DOMAIN" --out "$work/pki/ca" >/dev/null
"$p2psip" ca issue --ca "$work/pki/ca" --node --out "$work/pki/node" >/dev/null
"$p2psip" ca issue --ca "$work/pki/ca" --user k --count "$users" --out "$work/pki/users" >/dev/null
{ echo SEQUENTIAL; for k in $(seq "$users"); do echo "k$k;"; done; } >"$work/users.csv"

start_server() {  # start_server p2psip|p2psip-enrolled|kamailio
  case "$1" in
    p2psip)
      "${on_server[@]}" "$p2psip" node --dev --listen 127.0.0.1:25070 --control 127.0.0.1:25080 \
        --ua-listen "127.0.0.1:$UA_PORT" --overlay "$DOMAIN" --max-users 10000000 --log-level warn \
        >"$work/server.log" 2>&1 & ;;
    p2psip-enrolled)
      "${on_server[@]}" "$p2psip" node --identity "$work/pki/node" --trust "$work/pki/ca/ca.crt" \
        --users "$work/pki/users" --listen 127.0.0.1:25070 --control 127.0.0.1:25080 \
        --ua-listen "127.0.0.1:$UA_PORT" --max-users 10000000 --log-level warn >"$work/server.log" 2>&1 & ;;
    kamailio)
      "${on_server[@]}" kamailio -f "$work/kamailio.cfg" -DD -E -m 512 -M 32 >"$work/server.log" 2>&1 & ;;
  esac
  server_pid=$!
  sleep 1
  # An enrolled node reads and checks every user's certificate before it answers.
  for _ in $(seq 120); do
    case "$1" in p2psip*) "$p2psip" status --control 127.0.0.1:25080 >/dev/null 2>&1 && break ;; *) break ;; esac
    sleep 0.5
  done
  kill -0 "$server_pid" 2>/dev/null || { echo "$1 did not start:"; cat "$work/server.log"; exit 1; }
}
cpu_ticks() {  # the server's user+system clock ticks, children included (Kamailio forks its workers)
  local total=0 p
  for p in "$server_pid" $(pgrep -P "$server_pid" || true); do
    [ -r "/proc/$p/stat" ] && total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}
stat_col() {  # stat_col FILE COLUMN: the last row's value of a sipp -stf column
  local header
  header=$(head -n 1 "$1")
  tail -n 1 "$1" | cut -d';' -f"$(echo "$header" | tr ';' '\n' | grep -n -x "$2" | cut -d: -f1)"
}
hz=$(getconf CLK_TCK)

# run_load NAME COUNT RATE SIPP-ARGS...: one sipp run; prints "ok failed retrans cpu_s_per_1000 wall_s"
run_load() {
  local name=$1 count=$2 rate=$3
  shift 3
  local dir="$work/$name"
  mkdir -p "$dir"
  local before after t0 t1 rc=0
  before=$(cpu_ticks)
  t0=$(date +%s.%N)
  (cd "$dir" && timeout $((seconds * 4 + 30)) "${on_load[@]}" sipp "$@" -s "$DOMAIN" -m "$count" -r "$rate" -l $((rate * 4)) \
      -timeout $((seconds * 3 + 20))s -buff_size 1048576 -nostdin -trace_stat -stf stats.csv -fd 1 "127.0.0.1:$UA_PORT" >sipp.out 2>&1) || rc=$?
  t1=$(date +%s.%N)
  after=$(cpu_ticks)
  local ok failed retrans
  ok=$(stat_col "$dir/stats.csv" 'SuccessfulCall(C)')
  failed=$(stat_col "$dir/stats.csv" 'FailedCall(C)')
  retrans=$(stat_col "$dir/stats.csv" 'Retransmissions(C)')
  awk -v ok="$ok" -v f="$failed" -v r="$retrans" -v c=$((after - before)) -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    -v rc="$rc" 'BEGIN { printf "%d %d %d %.3f %.1f %d\n", ok, f, r, (ok > 0 ? c / hz / ok * 1000 : 0), t1 - t0, rc }'
}

# register_phase TITLE P2PSIP-MODE SIPP-ARGS...: one REGISTER table, p2psip then Kamailio.
register_phase() {
  local title=$1 mode=$2
  shift 2
  echo "## REGISTER/s, $title (${seconds} s per rate)"
  echo
  echo "| server | offered REGISTER/s | registered | failed | retransmissions | server CPU s per 1000 | wall s |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  declare -A best=()
  for server in "$mode" kamailio; do
    start_server "$server"
    best[$server]=0
    for rate in $rates; do
      read -r ok failed retrans cpu wall rc < <(run_load "reg-$server-$rate-$mode" $((rate * seconds)) "$rate" \
        "$@" -key prefix "r${rate}u")
      echo "| ${server%-enrolled} | $rate | $ok | $failed | $retrans | $cpu | $wall |"
      if [ "$failed" -eq 0 ] && [ "$retrans" -eq 0 ] && [ "$ok" -eq $((rate * seconds)) ]; then
        best[$server]=$rate
      else
        break
      fi
    done
    stop_server
  done
  echo
  echo "Highest REGISTER rate ($title) with every registration answered and nothing retransmitted: p2psip ${best[$mode]}/s, Kamailio ${best[kamailio]}/s."
  echo
}
register_phase "new users each time; p2psip in development mode, signing" p2psip \
  -sf "$here/bench/sipp/register_load.xml"
register_phase "$users known users in turn; p2psip enrolled, signing with the users' certificates" p2psip-enrolled \
  -sf "$here/bench/sipp/register_users.xml" -inf "$work/users.csv"

echo "## calls/s (INVITE, 180, 200, ACK, BYE; ${seconds} s per rate)"
echo
echo "| server | offered calls/s | completed | failed | retransmissions | server CPU s per 1000 calls | wall s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
declare -A best_call=()
for server in p2psip kamailio; do
  start_server "$server"
  best_call[$server]=0
  for rate in $call_rates; do
    n=$((rate * seconds))
    (cd "$work" && timeout 30 "${on_load[@]}" sipp -sf "$here/tests/integration/sipp/register.xml" -key prefix callee -s "$DOMAIN" \
        -p 25090 -m 1 -nostdin "127.0.0.1:$UA_PORT" >/dev/null 2>&1) || { echo "callee registration failed"; exit 1; }
    mkdir -p "$work/uas-$server-$rate"
    (cd "$work/uas-$server-$rate" && timeout $((seconds * 4 + 40)) "${on_load[@]}" sipp -sf "$here/tests/integration/sipp/call_uas.xml" \
        -p 25090 -m "$n" -l $((rate * 4)) -nostdin -fd 1 >uas.out 2>&1) &
    uas=$!
    sleep 0.3
    read -r ok failed retrans cpu wall rc < <(run_load "call-$server-$rate" "$n" "$rate" \
      -sf "$here/bench/sipp/call_load_uac.xml" -key callee callee1 -p 25091)
    wait "$uas" 2>/dev/null || true
    echo "| $server | $rate | $ok | $failed | $retrans | $cpu | $wall |"
    if [ "$failed" -eq 0 ] && [ "$retrans" -eq 0 ] && [ "$ok" -eq "$n" ]; then
      best_call[$server]=$rate
    else
      break
    fi
  done
  stop_server
done
echo
echo "Highest call rate with every call completed and nothing retransmitted: p2psip ${best_call[p2psip]}/s, Kamailio ${best_call[kamailio]}/s."
