#!/usr/bin/env bash
# Scale benchmark: SimGrid's Chord scenario (sim/scenarios/simgrid-chord.toml: stabilize every
# 20 s, a finger fixed every 120 s, each joined node looks up a random key every 10 s, 1250
# simulated seconds) at the given sizes, one after the other, with a row per size for
# docs/PERFORMANCE.md.
# Nodes join at N/10 per second, at most 1000 per second.
# Usage: bench/sim_scale.sh [--p2psip PATH] [--out DIR] [--set SECTION.KEY=VALUE]... [N...]
#        (rows before 2026-12-06 passed --lookups-per-s N/10, an overlay-wide rate: the same load
#        once all nodes have joined, which at 10 000 and 100 000 nodes is before the workload starts)
#        (default sizes: 10000 100000; e.g. --set 'network.transport="tcp"' for TCP overlay links)
# Heavy: 10 000 nodes take minutes, 100 000 about an hour; keep it out of ctest.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
p2psip="$here/build/bin/p2psip"
out="sim-scale-out"
sizes=()
sets=()
while (($#)); do
  case "$1" in
    --p2psip) p2psip="$2"; shift ;;
    --out) out="$2"; shift ;;
    --set) sets+=(--set "$2"); shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) sizes+=("$1") ;;
  esac
  shift
done
((${#sizes[@]})) || sizes=(10000 100000)
mkdir -p "$out"
json() { sed -n "s/^  \"$2\": \([^,]*\),\{0,1\}$/\1/p" "$1/summary.json"; }
echo "| nodes | links | simulated s | wall s | messages | messages/s (wall) | peak RSS MiB | KB per node (peak) | heap KB per node (end) | lookups right |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in "${sizes[@]}"; do
  dir="$out/simgrid-$n"
  "$p2psip" sim "$here/sim/scenarios/simgrid-chord.toml" --nodes "$n" \
    --join-rate "$((n / 10 > 1000 ? 1000 : (n / 10 > 100 ? n / 10 : 100)))" "${sets[@]}" --quiet --no-plots --out "$dir" > /dev/null
  rss=$(json "$dir" peak_rss_bytes)
  links=$(sed -n 's/.*"transport": "\([a-z]*\)".*/\1/p' "$dir/summary.json")
  awk -v n="$n" -v l="$links" -v d="$(json "$dir" duration_s)" -v w="$(json "$dir" wall_s)" -v m="$(json "$dir" messages)" \
    -v r="$rss" -v h="$(json "$dir" heap_bytes_per_live_node_at_end)" -v s="$(json "$dir" lookup_success_rate)" \
    'BEGIN { printf "| %d | %s | %d | %.0f | %.1f M | %.0f | %.0f | %.0f | %.0f | %.2f %% |\n",
             n, l, d, w, m / 1e6, m / w, r / 1048576, r / n / 1024, h / 1024, s * 100 }'
done
