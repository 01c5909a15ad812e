#!/usr/bin/env bash
# Sets up the machine, builds p2psip, and starts the main job with embedded defaults.
# Until the overlay lands (issue 3), the main job is the SIP test element on 127.0.0.1:5060
# (UDP and TCP): point a SIP client or sipp at it; Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 --target p2psip
echo "run: try it from another terminal:  sipp -sn uac 127.0.0.1:5060 -m 10"
exec build/bin/p2psip sip-echo --listen "${P2PSIP_LISTEN:-127.0.0.1:5060}" "$@"
