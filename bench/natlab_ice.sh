#!/usr/bin/env bash
# ICE link connect rate and set-up time per NAT pair (issue 24's benchmarks), in the namespace lab:
# tests/natlab/ice_test.sh's 20 pairs (the 15 pairs of public, full cone, port-restricted,
# symmetric and UDP-blocked, and an address-restricted host with each), RUNS times each, with
# NETEM_MS of delay each way on every site's uplink. The link logic is the node's (nat/ice_links)
# on its libnice agent, the Attach carried in files; coturn is the STUN and TURN server. Set-up is
# measured from the offerer's first step (its agent opened) to the link usable, on the offerer.
# Goals: every cell connected with the disposition RFC 4787 predicts; direct p50 <= 1 s and
# p95 <= 2 s, relayed p95 <= 3 s, failure verdicts within 10 s. Needs root.
#   bash bench/natlab_ice.sh [build/bin/ice_probe]          RUNS=20 NETEM_MS=50 by default
set -euo pipefail
PROBE=$(realpath "${1:-build/bin/ice_probe}")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export RUNS=${RUNS:-20} NETEM_MS=${NETEM_MS:-50}
TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT
status=0
TABLE=$TABLE bash "$ROOT/tests/natlab/ice_test.sh" "$PROBE" >/dev/null || status=$?
python3 - "$TABLE" "$RUNS" "$NETEM_MS" <<'EOF'
import sys, collections
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
runs, netem = sys.argv[2], sys.argv[3]
cells = collections.OrderedDict()
by = collections.defaultdict(list)
for run, a, b, expected, got, types, ms in rows:
    c = cells.setdefault((a, b), {"n": 0, "ok": 0, "expected": expected, "ms": []})
    c["n"] += 1
    if got == expected:
        c["ok"] += 1
    if got in ("direct", "relayed", "no-link") and ms != "-":
        c["ms"].append(int(ms))
        by[got].append(int(ms))
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
print(f"ICE links per NAT pair: {runs} runs per cell, {netem} ms netem each way per site")
print(f"{'pair':36} {'expected':8} {'as predicted':>12} {'p50 ms':>7} {'p95 ms':>7}")
for (a, b), c in cells.items():
    print(f"{a + ' - ' + b:36} {c['expected']:8} {c['ok']:>5}/{c['n']:<6} {pct(c['ms'], 50):>7} {pct(c['ms'], 95):>7}")
total = sum(c["n"] for c in cells.values()); ok = sum(c["ok"] for c in cells.values())
print(f"all cells: {ok}/{total} as predicted")
for d in ("direct", "relayed"):
    if by[d]:
        print(f"{d}: {len(by[d])} links, set-up p50 {pct(by[d], 50)} ms, p95 {pct(by[d], 95)} ms, max {max(by[d])} ms")
if by["no-link"]:
    print(f"no link (no TURN): {len(by['no-link'])} verdicts, p50 {pct(by['no-link'], 50)} ms, max {max(by['no-link'])} ms")
EOF
exit $status
