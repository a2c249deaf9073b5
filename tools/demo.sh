#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: builds everything in Release,
# starts socketloop-echo, drives it with socketloop-load at 1000
# connections for a few seconds, next to the epoll and libuv reference
# servers (and the Lua module's echo server next to luv's), and prints
# the table; then the green-thread benchmarks.  DURATION sets the seconds
# per server (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh build-essential cmake pkg-config libboost-context-dev \
    libuv1-dev util-linux lua5.4 liblua5.4-dev lua-luv
cmake -S . -B build/demo -DCMAKE_BUILD_TYPE=Release -DSOCKETLOOP_TESTS=OFF >/dev/null
cmake --build build/demo -j"$(nproc)" >build/demo/build.log 2>&1 ||
    { cat build/demo/build.log; exit 1; }
DURATION=${DURATION:-3} CONNS=1000 tools/net/echo-matrix.sh build/demo
echo
build/demo/tools/bench/socketloop-bench --quick
