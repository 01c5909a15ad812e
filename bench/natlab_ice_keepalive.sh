#!/usr/bin/env bash
# Idle keep-alive bytes of an ICE link between two peers behind NATs (issue 24's benchmark: goal at
# most 10 KB/h per peer link), read from nftables counters on one NAT's outside interface. In the
# namespace lab: two hosts behind port-restricted NATs (or the kinds given), coturn as the STUN
# server; tests/natlab/ice_probe sets up the link (the node's link logic on libnice), exchanges a
# ping, then holds it idle for DURATION seconds: what crosses the NAT then is libnice's keep-alives
# (connectivity checks every 25 s, keepalive-conncheck) and their answers, IP bytes both ways.
# Needs root.
#   bash bench/natlab_ice_keepalive.sh [build/bin/ice_probe] [KIND-A] [KIND-B]     DURATION=600
set -euo pipefail
PROBE=$(realpath "${1:-build/bin/ice_probe}")
A=${2:-port-restricted}
B=${3:-port-restricted}
DURATION=${DURATION:-600}
source "$(cd "$(dirname "$0")/.." && pwd)/tests/natlab/natlab.sh"
lab_begin
lab_stun
lab_site ha 1 "$A"
lab_site hb 2 "$B"
ip netns exec "$LAB-r1" nft -f - <<'N'
table ip bench {
  counter out_bytes {}
  counter in_bytes {}
  counter out_packets {}
  chain acct {
    type filter hook forward priority -10;
    oifname "wan" counter name out_bytes
    iifname "wan" counter name in_bytes
  }
}
N
bytes() { ip netns exec "$LAB-r1" nft -j list counters table ip bench | python3 -c '
import json, sys
d = json.load(sys.stdin)["nftables"]
print(sum(x["counter"]["bytes"] for x in d if "counter" in x))'; }
dir="$WORK/link"
mkdir -p "$dir"
lab_exec hb "$PROBE" --side answer --dir "$dir" --bind 10.0.2.2 --stun 198.51.100.2:3478 --timeout 30 \
  --hold $((DURATION + 30)) >"$dir/answer.json" 2>"$dir/answer.log" &
answer_pid=$!
lab_exec ha "$PROBE" --side offer --dir "$dir" --bind 10.0.1.2 --stun 198.51.100.2:3478 --timeout 30 \
  --hold $((DURATION + 20)) >"$dir/offer.json" 2>"$dir/offer.log" &
offer_pid=$!
for _ in $(seq 1 100); do [ -s "$dir/answer" ] && break; sleep 0.1; done
sleep 5  # the link is up and the exchange done well before
start=$(bytes)
echo "ICE link between hosts behind $A and $B NATs, up; idle for $DURATION s..."
sleep "$DURATION"
end=$(bytes)
wait "$offer_pid" || true
wait "$answer_pid" || true  # (not a bare wait: coturn runs in the background too)
cat "$dir/offer.json"
grep -q '"connected":true' "$dir/offer.json" || { echo "the link was not up at the end"; tail "$dir/offer.log"; exit 1; }
python3 - "$((end - start))" "$DURATION" <<'P'
import sys
total, duration = int(sys.argv[1]), int(sys.argv[2])
print(f"bytes across the NAT in {duration} s: {total} (IP, both ways)")
print(f"per hour: {total * 3600 / duration / 1000:.1f} KB for the link (goal: <= 10 KB/h per peer link)")
P
