#!/usr/bin/env bash
# Sets up the machine, builds, and runs every test:
#   1. the release build's ctest suite (unit, RFC 4475, transactions, CLI, sipp interop over UDP/TCP);
#   2. the same suite built with AddressSanitizer and UndefinedBehaviorSanitizer, invariants checked;
#   3. the libFuzzer targets for a bounded time (FUZZ_SECONDS each, default 15).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export P2PSIP_SHARED_DIR=${P2PSIP_SHARED_DIR:-$(cd .. && pwd)/shared}
[ -d "$P2PSIP_SHARED_DIR/testdata/rfc4475" ] || { echo "test: shared test data not found at $P2PSIP_SHARED_DIR"; exit 1; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DP2PSIP_SHARED_DIR="$P2PSIP_SHARED_DIR" >/dev/null
cmake --build build -j2
(cd build && ctest --output-on-failure --timeout 600) | tee "$log"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build, invariants checked"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DP2PSIP_SANITIZE=ON -DP2PSIP_INVARIANTS=ON -DP2PSIP_BENCH=OFF \
  -DP2PSIP_SHARED_DIR="$P2PSIP_SHARED_DIR" >/dev/null
cmake --build build-asan -j2
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --timeout 900) \
  | tee -a "$log"

echo "== fuzzing (bounded)"
FUZZ_SECONDS=${FUZZ_SECONDS:-15} bash scripts/fuzz.sh

passed=0
failed=0
while read -r p f; do
  passed=$((passed + p)); failed=$((failed + f))
done < <(sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2 \1/p' "$log" | awk '{print $1-$2, $2}')
echo "ctest (release and sanitizer builds) and 6 fuzz targets:"
echo "$((passed + 6)) passed, $failed failed"
[ "$failed" -eq 0 ]
