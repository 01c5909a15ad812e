#!/usr/bin/env bash
# Issue 5 with a real softphone (baresip, Debian package baresip): two headless baresip instances,
# alice registered at one node and bob at another node of a 3-node overlay; alice calls
# sip:bob@OVERLAY, bob answers automatically, the call is established (media flows directly
# between the phones), and bob hangs up when his audio file ends (2 s): his BYE travels the
# dialog's route set the other way, through his node and then alice's. Checked from baresip's
# own output and from the nodes' counters. Everything stays on 127.0.0.1 (baresip's interface,
# DNS server and RTP included); every process started here is stopped on the way out.
set -euo pipefail
P2PSIP=${1:?usage: baresip_call_test.sh PATH/TO/p2psip}
BASE=${BASE_PORT:-$((26000 + ($$ % 100) * 60))}
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
command -v baresip >/dev/null || { echo "baresip not installed (package baresip)"; exit 1; }

listen() { echo "127.0.0.1:$((BASE + $1))"; }
control() { echo "127.0.0.1:$((BASE + 10 + $1))"; }
ua() { echo "127.0.0.1:$((BASE + 20 + $1))"; }

# mkwav FILE SECONDS: silence as PCM S16LE, 8000 Hz, mono (what baresip's aufile reads).
mkwav() {
  local n=$(($2 * 16000))
  le32() {
    printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $((($1 >> 8) & 255)))"
    printf "\\x$(printf %02x $((($1 >> 16) & 255)))\\x$(printf %02x $((($1 >> 24) & 255)))"
  }
  {
    printf 'RIFF'; le32 $((36 + n)); printf 'WAVEfmt '; le32 16; printf '\x01\x00\x01\x00'
    le32 8000; le32 16000; printf '\x02\x00\x10\x00data'; le32 "$n"; head -c "$n" /dev/zero
  } >"$1"
}

# phone NAME SIP-PORT NODE SECONDS: a baresip configuration for sip:NAME@baresip.test at NODE's
# UA side, whose microphone is SECONDS of silence (the call ends when it runs out).
phone() {
  local name=$1 port=$2 node=$3 dir="$WORK/$1"
  mkdir -p "$dir"
  mkwav "$dir/talk.wav" "$4"
  cat >"$dir/config" <<EOF
poll_method epoll
net_interface 127.0.0.1
dns_server 127.0.0.1:53
sip_listen 127.0.0.1:$port
sip_trans_def udp
module_path /usr/lib/baresip/modules
module g711.so
module aufile.so
module_app account.so
module_app menu.so
audio_source aufile,$dir/talk.wav
audio_player aufile,$dir/heard.wav
audio_alert aufile,$dir/alert.wav
rtp_ports $((BASE + 40))-$((BASE + 59))
EOF
  echo "<sip:$name@baresip.test>;regint=600;outbound=\"sip:$(ua "$node")\";answermode=auto" >"$dir/accounts"
}

for i in 0 1 2; do
  boot=()
  [ "$i" -gt 0 ] && boot=(--bootstrap "$(listen 0)")
  "$P2PSIP" node --dev --listen "$(listen "$i")" --control "$(control "$i")" --ua-listen "$(ua "$i")" \
    --stabilize-interval 0.5 --t1-ms 50 --overlay baresip.test "${boot[@]}" >"$WORK/node$i.log" 2>&1 &
  PIDS+=($!)
  sleep 0.1
done
start=$SECONDS
until "$P2PSIP" ring-check --quiet "$(control 0)" "$(control 1)" "$(control 2)" >"$WORK/ring" 2>&1; do
  [ $((SECONDS - start)) -lt 30 ] || { echo "no ring after 30 s:"; cat "$WORK/ring"; exit 1; }
  sleep 0.5
done

phone bob $((BASE + 30)) 2 2
phone alice $((BASE + 35)) 1 8
baresip -f "$WORK/bob" -t 20 >"$WORK/bob.out" 2>&1 &
PIDS+=($!)
BOB=$!
# Bob is callable once another node finds him.
start=$SECONDS
until "$P2PSIP" locate "sip:bob@baresip.test" --control "$(control 0)" >/dev/null 2>&1; do
  [ $((SECONDS - start)) -lt 15 ] || { echo "bob never registered:"; cat "$WORK/bob.out"; exit 1; }
  sleep 0.2
done
echo "bob registered at node 2: $("$P2PSIP" locate "sip:bob@baresip.test" --control "$(control 0)")"
rc=0
timeout 20 baresip -f "$WORK/alice" -t 10 -e "/dial sip:bob@baresip.test" >"$WORK/alice.out" 2>&1 || rc=$?
kill -TERM "$BOB" 2>/dev/null || true
wait "$BOB" 2>/dev/null || true

show() {
  echo "--- alice"; grep -av '^\[0:' "$WORK/alice.out" | tail -n 25
  echo "--- bob"; grep -av '^\[0:' "$WORK/bob.out" | tail -n 25
}
expect() {  # expect FILE TEXT
  grep -aq -- "$2" "$WORK/$1" || { echo "$1 does not say '$2'"; show; exit 1; }
}
expect alice.out "Call established: sip:bob@baresip.test"
expect bob.out "Call established: sip:alice@baresip.test"
expect alice.out "Call with sip:bob@baresip.test terminated"
expect bob.out "Call with sip:alice@baresip.test terminated"
expect bob.out "incoming rtp for 'audio' established"  # media straight from alice's phone
expect bob.out "audio error (0,end of file)"            # bob hung up (his file ran out first)
if grep -aq "audio error (0,end of file)" "$WORK/alice.out"; then echo "alice hung up, not bob"; show; exit 1; fi
# The dialog's requests went through both nodes: alice's (1) and bob's (2).
for n in 1 2; do "$P2PSIP" status --json --control "$(control "$n")" >"$WORK/status$n"; done
grep -q '"calls_answered":1,' "$WORK/status1" || { echo "node 1 did not carry the answer:"; cat "$WORK/status1"; exit 1; }
grep -q '"acks_forwarded":1,' "$WORK/status2" || { echo "node 2 did not carry the ACK:"; cat "$WORK/status2"; exit 1; }
echo "baresip_call_test: alice (node 1) called bob (node 2): established, media direct, bob hung up after $(sed -n 's/.*terminated (duration: \([0-9]*\) secs).*/\1/p' "$WORK/alice.out" | head -1) s"
