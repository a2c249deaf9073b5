#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: builds socketloop in Release
# and prints the benchmark table (each figure next to its reference,
# measured in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh build-essential cmake pkg-config libboost-context-dev
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DSOCKETLOOP_TESTS=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >build/demo/build.log 2>&1 ||
    { cat build/demo/build.log; exit 1; }
build/demo/tools/bench/socketloop-bench "$@"
