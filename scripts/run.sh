#!/usr/bin/env bash
# Sets up the machine, builds p2psip, and starts the main job with embedded defaults: an overlay
# node that starts a new one-node overlay on 127.0.0.1:5070 (UDP and TCP), with its control port on
# 127.0.0.1:8070. Extra arguments go to `p2psip node` (for example --bootstrap ADDR:PORT).
# Ctrl-C leaves the overlay gracefully.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target p2psip
echo "run: from another terminal:  build/bin/p2psip status; build/bin/p2psip put alice hello; build/bin/p2psip get alice"
exec build/bin/p2psip node --dev "$@"
