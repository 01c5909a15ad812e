#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time (default 15 s each).
# Fails on any crash, sanitizer report or broken invariant. New inputs go to a scratch folder;
# the committed corpus and the shared torture messages seed the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-15}
SHARED=${P2PSIP_SHARED_DIR:-$(pwd)/../shared}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_C_COMPILER=clang -DP2PSIP_FUZZ=ON -DP2PSIP_BENCH=OFF >/dev/null
cmake --build build-fuzz -j2
root=$(pwd)
SHARED=$(cd "$SHARED" 2>/dev/null && pwd || echo "$SHARED")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for target in fuzz_parser fuzz_stream fuzz_transaction fuzz_overlay fuzz_stun fuzz_ice; do
  name=${target#fuzz_}
  mkdir -p "$scratch/$name"
  seeds=("$root/tests/fuzz/corpus/$name")
  [ "$name" = parser ] && [ -d "$SHARED/testdata" ] && seeds+=("$SHARED/testdata/rfc4475" "$SHARED/testdata/sip")
  echo "fuzz: $target for ${SECONDS_EACH}s"
  (cd "$scratch" && "$root/build-fuzz/bin/$target" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 "$scratch/$name" "${seeds[@]}" 2>"$scratch/$name.log") || {
    echo "fuzz: $target FAILED"; tail -n 60 "$scratch/$name.log"; exit 1; }
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$scratch/$name.log" | sed "s/^/  $target /"
done
echo "fuzz: all targets ran clean"
