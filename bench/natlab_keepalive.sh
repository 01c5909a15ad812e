#!/usr/bin/env bash
# Idle keep-alive bytes of a client's flows, read from nftables counters on its NAT's outside
# interface (issue 24's benchmark: goal at most 16 KB/h per client flow on UDP). In the namespace
# lab (tests/natlab): two public peers and one client behind a port-restricted NAT (or the NAT
# given), left idle for DURATION seconds once its two flows are up. Counts IP bytes both ways
# (headers included): the keep-alives and their answers (STUN on UDP flows, CRLF ping and pong on
# TLS flows, which the `p2psip` command's authenticated overlays use), TCP acknowledgements,
# registration refreshes. Needs root.
#   bash bench/natlab_keepalive.sh [build/bin/p2psip] [NAT-TYPE]      DURATION=600 by default
set -euo pipefail
P2PSIP=$(realpath "${1:-build/bin/p2psip}")
TYPE=${2:-port-restricted}
DURATION=${DURATION:-600}
source "$(cd "$(dirname "$0")/.." && pwd)/tests/natlab/natlab.sh"
lab_begin
lab_public p1 21
lab_public p2 22
lab_site h1 1 "$TYPE"
# Counters on the router's WAN side, both directions, everything forwarded.
ip netns exec "$LAB-r1" nft -f - <<'N'
table ip bench {
  counter out_bytes {}
  counter in_bytes {}
  chain acct {
    type filter hook forward priority -10;
    oifname "wan" counter name out_bytes
    iifname "wan" counter name in_bytes
  }
}
N
lab_node p1 198.51.100.21
lab_node p2 198.51.100.22 198.51.100.21
lab_node h1 10.0.1.2 198.51.100.21 198.51.100.22
flows_up() {
  lab_ctl h1 status --json 2>/dev/null | python3 -c '
import json, sys
f = json.load(sys.stdin)["nat"]["flows"]
sys.exit(0 if sum(x["state"] == "active" for x in f) == 2 else 1)' 2>/dev/null
}
for _ in $(seq 1 90); do flows_up && break; sleep 1; done
flows_up || { echo "the client's flows did not come up"; tail "$WORK/h1.log"; exit 1; }
sleep 2
bytes() { ip netns exec "$LAB-r1" nft -j list counters table ip bench | python3 -c '
import json, sys
d = json.load(sys.stdin)["nftables"]
print(sum(x["counter"]["bytes"] for x in d if "counter" in x))'; }
start=$(bytes)
echo "client behind a $TYPE NAT, two flows up; idle for $DURATION s..."
sleep "$DURATION"
end=$(bytes)
total=$((end - start))
python3 - "$total" "$DURATION" <<'P'
import sys
total, duration = int(sys.argv[1]), int(sys.argv[2])
per_hour = total * 3600 / duration
print(f"bytes across the NAT in {duration} s: {total} (IP, both ways)")
print(f"per hour: {per_hour / 1000:.1f} KB for 2 flows, {per_hour / 2000:.1f} KB per flow (goal: <= 16 KB/h per flow)")
P
lab_ctl h1 status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["nat"]
f = s["flow_stats"]
via = " ".join(s["reached"]["via"])
how = "tls" if "transport=tls" in via else "tcp" if "transport=tcp" in via else "udp"
print("flows over", how, "- keep-alives sent:", f["keepalives"], "pongs:", f["pongs"], "STUN answered:", s["stun"]["answered"],
      "flow failures:", f["failures"])'
