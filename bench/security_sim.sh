#!/usr/bin/env bash
# Issue 6's attack experiment (docs/SECURITY.md, "Attacks in the simulator"): the scenario
# sim/scenarios/malicious.toml with no attackers, then with each attack mode, with the defences on
# (the defaults) and off (one try per fetch, no plausibility check), and with more attackers.
# Prints one Markdown row per run. Not part of ctest: about a minute per run at 1000 nodes.
#   bash bench/security_sim.sh [--nodes N] [--fractions "0.1 0.2"] [--set KEY=VALUE]...
set -euo pipefail
cd "$(dirname "$0")/.."
P2PSIP=${P2PSIP:-build/bin/p2psip}
NODES=1000
FRACTIONS="0.1 0.2"
EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) NODES=$2; shift 2 ;;
    --fractions) FRACTIONS=$2; shift 2 ;;
    --set) EXTRA+=(--set "$2"); shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "security_sim.sh: unknown argument '$1' (--help)"; exit 2 ;;
  esac
done
[ -x "$P2PSIP" ] || { echo "build first: cmake --build build -j2 --target p2psip"; exit 1; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

row() {  # row LABEL ARGS...: one run, one table row
  local label=$1
  shift
  "$P2PSIP" sim sim/scenarios/malicious.toml --nodes "$NODES" --out "$OUT/run" --quiet --no-plots "${EXTRA[@]}" "$@" \
    >/dev/null
  python3 - "$label" "$OUT/run/summary.json" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
d = json.load(open(path))
g, a = d["gets"], d["attack"]
print(f"| {label} | {a['malicious_nodes']} | {g['done']} | **{100 * d['get_success_rate']:.2f} %** | {g['wrong']} / {g['failed']} "
      f"| {d['get_attempts_mean']:.2f} | {100 * d['lookup_success_rate']:.2f} % | {d['messages_per_node_per_s']:.2f} "
      f"| {a['dropped']} / {a['forged']} | {d['wall_s']:.0f} s |")
PY
}

echo "| run | malicious nodes | gets | gets right and verified | wrong / failed | tries per get | lookups right | messages per node per s | requests dropped / forged | wall |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
row "no attackers" --set attack.fraction=0
for f in $FRACTIONS; do
  for mode in drop forge mixed; do
    row "$mode, $f, defences on" --set attack.fraction="$f" --set "attack.mode=\"$mode\""
    row "$mode, $f, defences off" --set attack.fraction="$f" --set "attack.mode=\"$mode\"" \
      --set chord.fetch_attempts=1 --set chord.plausible_gaps=0
  done
done
