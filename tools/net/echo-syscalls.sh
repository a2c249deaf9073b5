#!/usr/bin/env bash
# System calls, madvise calls, page faults and CPU time per round trip of
# one echo server under socketloop-load, counted by perf on the server's
# process over the middle of the run (Debian: linux-perf).
#
#   tools/net/echo-syscalls.sh SERVER N [BUILD_DIR]
#
# SERVER: socketloop-lua (tools/echo.lua on lua5.4), luv-ref
# (tools/echo-luv.lua), socketloop-echo, socketloop-uring (socketloop-echo
# on the io_uring backend) or echo-epoll-ref.  Server on CPU
# 0, load on CPU 1, 64-byte messages, 5 s of load, 2 s counted.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
kind=$1 n=$2 build=${3:-$root/build}
ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'kill "${sp:-}" "${lp:-}" 2>/dev/null; rm -rf "$tmp"' EXIT
case $kind in
socketloop-lua) cmd=(env "LUA_PATH=$build/lua/5.4/?.lua;;"
    "LUA_CPATH=$build/lua/5.4/?.so;;" lua5.4 "$root/tools/echo.lua" 0) ;;
luv-ref) cmd=(lua5.4 "$root/tools/echo-luv.lua" 0) ;;
socketloop-echo | echo-epoll-ref) cmd=("$build/tools/net/$kind" -p 0) ;;
socketloop-uring) cmd=(env SOCKETLOOP_POLLER=uring
    "$build/tools/net/socketloop-echo" -p 0) ;;
*) echo "unknown server: $kind" >&2; exit 2 ;;
esac
taskset -c 0 "${cmd[@]}" >"$tmp/out" 2>"$tmp/err" &
sp=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "$kind did not start: $(cat "$tmp/err")" >&2; exit 1; }
taskset -c 1 "$build/tools/net/socketloop-load" -c "$n" -s 64 -d 5 -w 0.5 \
    --json 127.0.0.1 "$port" >"$tmp/load.json" 2>"$tmp/load.err" &
lp=$!
sleep 1.5
perf stat -x, -o "$tmp/stat" -e task-clock -e raw_syscalls:sys_enter \
    -e syscalls:sys_enter_madvise -e page-faults -p "$sp" -- sleep 2 >/dev/null
wait "$lp"
rate=$(sed -n 's/.*"rate":\([^,}]*\).*/\1/p' "$tmp/load.json")
awk -F, -v k="$kind" -v n="$n" -v rate="$rate" '
    /task-clock/ {tc = $1} /raw_syscalls/ {sc = $1}
    /madvise/ {md = $1} /page-faults/ {pf = $1}
    END { rt = rate * 2
        printf "%s N=%s: %.0f rt/s; per round trip: cpu %.3f us, syscalls %.3f, madvise %.4f, page faults %.4f\n",
            k, n, rate, tc * 1000 / rt, sc / rt, md / rt, pf / rt }' "$tmp/stat"
