#!/usr/bin/env bash
# Builds the Debian packages libsocketloop0, libsocketloop-dev and
# lua-socketloop with CPack from a tree configured for /usr (Release, with
# the man pages, without tests and tools), into OUT_DIR (default
# build/pkg/debs), and prints each package's control fields.
#   tools/pkg/build-debs.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build/pkg/debs}
dir=build/pkg
jobs=$(nproc)
cmake -S . -B "$dir" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=Release \
    -DSOCKETLOOP_TESTS=OFF -DSOCKETLOOP_TOOLS=OFF -DSOCKETLOOP_MAN=ON \
    -DSOCKETLOOP_WERROR=ON >"$dir.configure.log" 2>&1 ||
    { cat "$dir.configure.log"; exit 1; }
cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1 ||
    { cat "$dir/build.log"; exit 1; }
rm -f "$dir"/*.deb
(cd "$dir" && cpack -G DEB >cpack.log 2>&1) || { cat "$dir/cpack.log"; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$dir"/*.deb "$out"/
for deb in "$out"/*.deb; do
    echo "== $(basename "$deb")"
    dpkg-deb --field "$deb" Package Version Architecture Depends Recommends \
        Provides Suggests
done
