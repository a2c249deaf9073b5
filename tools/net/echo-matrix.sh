#!/usr/bin/env bash
# The echo benchmark matrix: socketloop-echo (on epoll, and as
# socketloop-uring on the io_uring backend) against a hand-written epoll
# echo server (echo-epoll-ref, the floor) and a libuv one (echo-libuv-ref),
# and the Lua module's echo server (socketloop-lua: tools/echo.lua on
# lua5.4; socketloop-luajit: the same script on luajit; socketloop-lua-uring:
# it on the io_uring backend) against luv's
# (luv-ref: tools/echo-luv.lua on lua5.4), all measured in the same run.
# With TLS built, socketloop-echo-tls (socketloop-echo --tls-cert ...)
# runs against echo-tls-ref (epoll + OpenSSL), its own floor: the same
# ECDSA P-256 certificate, made here with openssl, TLS 1.3 with
# AES-128-GCM (socketloop-load --tls offers only that suite).
#
#   tools/net/echo-matrix.sh [--json] [BUILD_DIR]      (default BUILD_DIR: build)
#
# For N in 1 100 1000 10000 connections and 64-byte messages, each server
# in turn is started fresh, pinned to CPU 0, and socketloop-load (pinned to
# CPU 1) drives it closed-loop.  The load tool opens every connection
# first and measures only afterwards (after WARMUP seconds more), so the
# ramp to 10,000 is never measured.  Columns:
#   rt/s       round trips per second
#   p50, p99   round-trip latency, microseconds
#   cpu us/rt  the server's CPU time (its CPU clock, read by the load tool at
#              both ends of the window) per round trip
#   peak kB    (JSON only) the server's peak RSS (VmHWM) at the end of
#              the cell
#   idle B/conn  (N=IDLE_N rows) the server's RSS with IDLE_N idle
#              connections held by `socketloop-load -i`, minus its RSS
#              before, over IDLE_N; a fresh server each time
# Each value is followed by its ratio to echo-epoll-ref's (TLS rows: to
# echo-tls-ref's).
#
# Environment: DURATION (seconds per cell, default 5), WARMUP (default
# 0.5), CONNS (default "1 100 1000 10000"), SIZE (default 64), SERVERS
# (default: every one built; the reference is always measured too),
# IDLE_N (the idle connections of the RSS figure, default 10000).
# Needs taskset (util-linux) and two CPUs; it installs nothing.  Without
# libuv (Debian: libuv1-dev) echo-libuv-ref is not built and its rows are
# left out; likewise the Lua rows without lua5.4, the built Lua module, or
# luv (Debian: lua-luv), and the LuaJIT row without luajit or its
# module.  Every process it starts is stopped on exit.
set -u

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }

json=0
build=
for a in "$@"; do
    case $a in
    --json) json=1 ;;
    -h | --help) usage 0 ;;
    -*) echo "unknown option: $a" >&2; usage 2 >&2 ;;
    *) build=$a ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${build:-$root/build}
bin=$build/tools/net
DURATION=${DURATION:-5}
WARMUP=${WARMUP:-0.5}
CONNS=${CONNS:-"1 100 1000 10000"}
SIZE=${SIZE:-64}
IDLE_N=${IDLE_N:-10000}

say() { if [ "$json" = 1 ]; then echo "$@" >&2; else echo "$@"; fi; }
die() { echo "echo-matrix: $*" >&2; exit 2; }

# --- What is needed ---------------------------------------------------------
command -v taskset >/dev/null ||
    die "taskset not found: it comes with util-linux (Debian: apt-get install util-linux)"
[ "$(nproc --all 2>/dev/null || echo 1)" -ge 2 ] ||
    die "needs two CPUs (server on CPU 0, load on CPU 1)"
for t in socketloop-echo socketloop-load echo-epoll-ref; do
    [ -x "$bin/$t" ] || die "$bin/$t not found: build first (cmake --build $build), or pass the build directory"
done
servers=(socketloop-echo echo-epoll-ref)
# socketloop-uring: socketloop-echo on the io_uring backend, when built
# with it and the kernel lets the program make a ring (its -v says which
# poller it runs on).
if timeout 5 "$bin/socketloop-echo" -b uring -v -p 0 2>&1 >/dev/null </dev/null |
    grep -q -m1 'poller uring'; then
    servers+=(socketloop-uring)
    uring=1
else
    say "note: socketloop-echo does not run on io_uring here (built without liburing-dev, or the kernel refuses): the socketloop-uring rows are left out"
fi
if [ -x "$bin/echo-libuv-ref" ]; then
    servers+=(echo-libuv-ref)
else
    say "note: echo-libuv-ref not built (libuv not found by pkg-config; Debian: libuv1-dev, then re-run cmake): its rows are left out"
fi
lua_env=(env "LUA_PATH=$build/lua/5.4/?.lua;;" "LUA_CPATH=$build/lua/5.4/?.so;;")
if command -v lua5.4 >/dev/null && [ -f "$build/lua/5.4/socketloop/core.so" ] &&
    lua5.4 -e 'require"luv"' 2>/dev/null; then
    servers+=(socketloop-lua luv-ref)
    [ "${uring:-0}" = 1 ] && servers+=(socketloop-lua-uring)
else
    say "note: lua5.4, the Lua module (build/lua/5.4) or luv (Debian: lua-luv) is missing: the Lua rows are left out"
fi
jit_env=(env "LUA_PATH=$build/lua/jit/?.lua;;" "LUA_CPATH=$build/lua/jit/?.so;;")
if command -v luajit >/dev/null && [ -f "$build/lua/jit/socketloop/core.so" ]; then
    servers+=(socketloop-luajit)
else
    say "note: luajit or the Lua module (build/lua/jit) is missing: the socketloop-luajit rows are left out"
fi
tls=0
if [ -x "$bin/echo-tls-ref" ]; then
    servers+=(socketloop-echo-tls echo-tls-ref)
    tls=1
else
    say "note: built without TLS (libssl-dev): the TLS rows are left out"
fi
if [ -n "${SERVERS:-}" ]; then # a chosen few, the references always among them
    chosen=(echo-epoll-ref)
    [ "$tls" = 1 ] && [[ " $SERVERS " == *tls* ]] && chosen+=(echo-tls-ref)
    for s in "${servers[@]}"; do
        [ "$s" != echo-epoll-ref ] && [ "$s" != echo-tls-ref ] &&
            [[ " $SERVERS " == *" $s "* ]] && chosen+=("$s")
    done
    servers=("${chosen[@]}")
fi
# The reference a server's figures are divided by, and what the load
# tool needs for it.
ref_of() { case $1 in *tls*) echo echo-tls-ref ;; *) echo echo-epoll-ref ;; esac; }
load_tls() { case $1 in *tls*) echo --tls ;; esac; }

# --- Processes, and their cleanup -------------------------------------------
tmp=$(mktemp -d /tmp/echo-matrix.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    pids=()
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
if [ "$tls" = 1 ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tmp/tls.key" -out "$tmp/tls.pem" -days 2 -subj /CN=localhost \
        >/dev/null 2>&1 || die "openssl could not make the certificate"
fi
trap 'exit 143' TERM

forget() { # drops a pid from the cleanup list
    local keep=() p
    for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    pids=(${keep[@]+"${keep[@]}"})
}

stop() { # stops one process we started, politely first
    local p=$1
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    forget "$p"
}

SPID= SPORT=
start_server() { # name: starts it on CPU 0 with a free port
    : >"$tmp/srv.out"
    local cmd
    case $1 in
    socketloop-lua) cmd=("${lua_env[@]}" lua5.4 "$root/tools/echo.lua" 0) ;;
    socketloop-luajit) cmd=("${jit_env[@]}" luajit "$root/tools/echo.lua" 0) ;;
    socketloop-lua-uring)
        cmd=("${lua_env[@]}" SOCKETLOOP_POLLER=uring lua5.4 "$root/tools/echo.lua" 0) ;;
    luv-ref) cmd=(lua5.4 "$root/tools/echo-luv.lua" 0) ;;
    socketloop-uring) cmd=(env SOCKETLOOP_POLLER=uring "$bin/socketloop-echo" -p 0) ;;
    socketloop-echo-tls)
        cmd=("$bin/socketloop-echo" -p 0 --tls-cert "$tmp/tls.pem" --tls-key "$tmp/tls.key") ;;
    echo-tls-ref) cmd=("$bin/echo-tls-ref" -p 0 -c "$tmp/tls.pem" -k "$tmp/tls.key") ;;
    *) cmd=("$bin/$1" -p 0) ;;
    esac
    taskset -c 0 "${cmd[@]}" >"$tmp/srv.out" 2>"$tmp/srv.err" &
    SPID=$!
    pids+=("$SPID")
    for _ in $(seq 100); do
        SPORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/srv.out")
        [ -n "$SPORT" ] && return 0
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    die "$1 did not start: $(cat "$tmp/srv.err")"
}

jget() { # key file: a number from the load tool's one-line JSON
    sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p" "$2"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

declare -A rate p50 p99 cpu err idle peak

run_cell() { # server N
    start_server "$1"
    taskset -c 1 "$bin/socketloop-load" -c "$2" -s "$SIZE" -d "$DURATION" \
        -w "$WARMUP" --json --cpu-pid "$SPID" $(load_tls "$1") 127.0.0.1 "$SPORT" \
        >"$tmp/load.json" 2>"$tmp/load.err" &
    local lp=$!
    pids+=("$lp")
    wait "$lp"
    forget "$lp"
    local k="$1:$2"
    peak[$k]=$(awk '/^VmHWM:/ {print $2}' "/proc/$SPID/status" 2>/dev/null)
    [ -n "${peak[$k]}" ] || peak[$k]=nan
    stop "$SPID"
    if ! grep -q '"rate"' "$tmp/load.json"; then
        say "  $1 N=$2: the load tool failed: $(cat "$tmp/load.err")"
        rate[$k]=nan p50[$k]=nan p99[$k]=nan cpu[$k]=nan err[$k]=nan
        return
    fi
    rate[$k]=$(jget rate "$tmp/load.json")
    p50[$k]=$(jget p50_us "$tmp/load.json")
    p99[$k]=$(jget p99_us "$tmp/load.json")
    cpu[$k]=$(jget server_cpu_us_per_rt "$tmp/load.json")
    err[$k]=$(jget errors "$tmp/load.json")
    [ -n "${cpu[$k]}" ] || cpu[$k]=nan
    say "  $1 N=$2: ${rate[$k]} rt/s, p50 ${p50[$k]} us, p99 ${p99[$k]} us, cpu ${cpu[$k]} us/rt, errors ${err[$k]}"
}

run_idle() { # server: RSS per idle connection at IDLE_N
    start_server "$1"
    sleep 0.2
    local r0 r1 prev n lp
    r0=$(rss_kb "$SPID")
    : >"$tmp/idle.out"
    taskset -c 1 "$bin/socketloop-load" -i -c "$IDLE_N" -d 600 $(load_tls "$1") 127.0.0.1 "$SPORT" \
        >"$tmp/idle.out" 2>&1 &
    lp=$!
    pids+=("$lp")
    for _ in $(seq 1200); do
        grep -q '^connected' "$tmp/idle.out" && break
        kill -0 "$lp" 2>/dev/null || break
        sleep 0.1
    done
    n=$(sed -n 's/^connected \([0-9]*\)$/\1/p' "$tmp/idle.out")
    if [ "${n:-0}" != "$IDLE_N" ]; then
        say "  $1: only ${n:-0} of $IDLE_N idle connections: $(tail -n 2 "$tmp/idle.out")"
        idle[$1]=nan
    else
        # The server may still be accepting: wait for its descriptors, then
        # for its RSS to stay put.
        for _ in $(seq 300); do
            [ "$(ls "/proc/$SPID/fd" | wc -l)" -ge "$IDLE_N" ] && break
            sleep 0.1
        done
        prev=-1
        for _ in $(seq 50); do
            sleep 0.3
            r1=$(rss_kb "$SPID")
            [ "$r1" = "$prev" ] && break
            prev=$r1
        done
        idle[$1]=$(awk -v a="$r0" -v b="$r1" -v n="$IDLE_N" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')
        say "  $1: RSS ${r0} kB -> ${r1} kB with $IDLE_N idle connections: ${idle[$1]} B/conn"
    fi
    stop "$lp"
    stop "$SPID"
}

say "echo matrix: ${SIZE}-byte messages, ${DURATION} s per cell after a ${WARMUP} s warm-up;"
say "  servers on CPU 0, load on CPU 1; $(uname -sr); $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
for n in $CONNS; do
    for s in "${servers[@]}"; do run_cell "$s" "$n"; done
done
for s in "${servers[@]}"; do run_idle "$s"; done

# --- Output -----------------------------------------------------------------
ratio() { # value ref: value/ref, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a == "nan" || b == "nan" || a == "" || b == "" || b + 0 == 0) print "n/a";
        else printf "%.2f", a / b }'
}
ref=echo-epoll-ref

if [ "$json" = 1 ]; then
    num() { case $1 in nan | "") echo null ;; *) echo "$1" ;; esac; }
    rnum() { local r; r=$(ratio "$1" "$2"); [ "$r" = n/a ] && echo null || echo "$r"; }
    printf '{"size":%s,"duration_s":%s,"warmup_s":%s,"reference":"%s","cells":[' \
        "$SIZE" "$DURATION" "$WARMUP" "$ref"
    sep=
    for n in $CONNS; do
        for s in "${servers[@]}"; do
            k="$s:$n" r="$(ref_of "$s"):$n"
            printf '%s{"server":"%s","conns":%s,"rate":%s,"rate_ratio":%s,"p50_us":%s,"p50_ratio":%s,"p99_us":%s,"p99_ratio":%s,"cpu_us_per_rt":%s,"cpu_ratio":%s,"peak_rss_kb":%s,"errors":%s}' \
                "$sep" "$s" "$n" "$(num "${rate[$k]}")" "$(rnum "${rate[$k]}" "${rate[$r]}")" \
                "$(num "${p50[$k]}")" "$(rnum "${p50[$k]}" "${p50[$r]}")" \
                "$(num "${p99[$k]}")" "$(rnum "${p99[$k]}" "${p99[$r]}")" \
                "$(num "${cpu[$k]}")" "$(rnum "${cpu[$k]}" "${cpu[$r]}")" \
                "$(num "${peak[$k]}")" "$(num "${err[$k]}")"
            sep=,
        done
    done
    printf '],"idle":['
    sep=
    for s in "${servers[@]}"; do
        printf '%s{"server":"%s","conns":%s,"rss_bytes_per_conn":%s,"ratio":%s}' \
            "$sep" "$s" "$IDLE_N" "$(num "${idle[$s]}")" "$(rnum "${idle[$s]}" "${idle[$(ref_of "$s")]}")"
        sep=,
    done
    printf ']}\n'
    exit 0
fi

echo
printf '%-16s %6s  %-18s %-16s %-16s %-15s %-15s %s\n' server N "rt/s (x ref)" \
    "p50 us (x)" "p99 us (x)" "cpu us/rt (x)" "idle B/conn (x)" errors
for n in $CONNS; do
    for s in "${servers[@]}"; do
        k="$s:$n" r="$(ref_of "$s"):$n"
        idl=-
        [ "$n" = "$IDLE_N" ] && idl="${idle[$s]} ($(ratio "${idle[$s]}" "${idle[$(ref_of "$s")]}"))"
        printf '%-16s %6s  %-18s %-16s %-16s %-15s %-15s %s\n' "$s" "$n" \
            "$(printf '%.0f' "${rate[$k]}" 2>/dev/null || echo nan) ($(ratio "${rate[$k]}" "${rate[$r]}"))" \
            "${p50[$k]} ($(ratio "${p50[$k]}" "${p50[$r]}"))" \
            "${p99[$k]} ($(ratio "${p99[$k]}" "${p99[$r]}"))" \
            "${cpu[$k]} ($(ratio "${cpu[$k]}" "${cpu[$r]}"))" \
            "$idl" "${err[$k]}"
    done
done
if ! [[ " $CONNS " == *" $IDLE_N "* ]]; then
    for s in "${servers[@]}"; do
        echo "idle RSS at $IDLE_N: $s ${idle[$s]} B/conn ($(ratio "${idle[$s]}" "${idle[$(ref_of "$s")]}"))"
    done
fi
