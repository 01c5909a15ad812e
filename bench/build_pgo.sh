#!/usr/bin/env bash
# A profile-guided build of p2psip for the simulator's scale runs (docs/PERFORMANCE.md). It builds an
# instrumented p2psip in BUILD_DIR, trains it on two small simulations (SimGrid's Chord scenario at
# 3000 nodes over TCP links, and the stable 1000-node ring over UDP links), then builds
# BUILD_DIR/bin/p2psip again with that profile. The same code, compiled knowing which paths are hot.
# Usage: bench/build_pgo.sh [BUILD_DIR]   (default: build-pgo beside build). About two builds' time.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
case "${1:-}" in -h|--help) sed -n '2,6p' "$0"; exit 0 ;; esac
dir="$(realpath -m "${1:-$here/build-pgo}")"
profile="$dir/pgo-profile"
configure() {
  cmake -S "$here" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DP2PSIP_BENCH=OFF -DP2PSIP_TESTS=OFF \
    -DP2PSIP_PGO="$1" -DP2PSIP_PGO_DIR="$profile" > /dev/null
}
rm -rf "$profile"
configure generate
cmake --build "$dir" -j2 --target p2psip
train="$(mktemp -d)"
trap 'rm -rf "$train"' EXIT
echo "build_pgo: training (two simulations, about a minute)"
"$dir/bin/p2psip" sim "$here/sim/scenarios/simgrid-chord.toml" --nodes 3000 --lookups-per-s 300 --join-rate 300 \
  --duration 400 --set 'network.transport="tcp"' --quiet --no-plots --no-huge-pages --out "$train/tcp" > /dev/null
"$dir/bin/p2psip" sim "$here/sim/scenarios/stable.toml" --quiet --no-plots --no-huge-pages --out "$train/udp" > /dev/null
configure use
cmake --build "$dir" -j2 --target p2psip
echo "build_pgo: $dir/bin/p2psip (profile-guided)"
