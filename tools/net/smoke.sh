#!/usr/bin/env bash
# CTest net_tools.smoke: the network tools work end to end.
#
#   smoke.sh BIN_DIR      (the directory holding socketloop-echo & co.)
#
# For each poller: socketloop-echo -p 0 (and once with -t 2) takes 50
# connections of socketloop-load for a second with no error and a nonzero
# rate, then stops cleanly on SIGTERM.  socketloop-http answers two
# keep-alive requests on one connection, the second with Connection:
# close, spoken through bash's /dev/tcp, and stops cleanly too.  The
# reference servers get the same echo check.
set -u
bin=${1:?usage: smoke.sh BIN_DIR}
tmp=$(mktemp -d /tmp/net-smoke.XXXXXX)
pids=()
failures=0
passes=0

cleanup() {
    local p
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; passes=$((passes + 1)); }

PID= PORT=
start() { # command...: starts a server with -p 0, sets PID and PORT
    # Emptied here, not only by the child's redirection: the child may
    # open the file after the loop below has read the last server's port.
    : >"$tmp/out"
    "$@" -p 0 >"$tmp/out" 2>"$tmp/err" &
    PID=$!
    pids+=("$PID")
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    fail "$* did not print its listening line: $(cat "$tmp/err")"
    return 1
}

stop() { # name: SIGTERM, then it must exit 0 within 5 s
    kill -TERM "$PID"
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PID" 2>/dev/null; then
        fail "$1 ignored SIGTERM"
        kill -KILL "$PID"
    fi
    wait "$PID"
    local rc=$?
    [ $rc = 0 ] || fail "$1 exited $rc after SIGTERM: $(cat "$tmp/err")"
}

load() { # name [load options]: 50 connections, 64 bytes, 1 s
    local name=$1
    shift
    "$bin/socketloop-load" -c 50 -s 64 -d 1 --json "$@" 127.0.0.1 "$PORT" \
        >"$tmp/load" 2>&1
    local rc=$? errors rate
    errors=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$tmp/load")
    rate=$(sed -n 's/.*"rate":\([0-9.]*\).*/\1/p' "$tmp/load")
    if [ $rc = 0 ] && [ "$errors" = 0 ] && awk -v r="${rate:-0}" 'BEGIN {exit !(r > 0)}'; then
        pass "$name: $rate round trips/s, 0 errors"
    else
        fail "$name: load exit $rc: $(cat "$tmp/load")"
    fi
}

for poller in select poll epoll; do
    if start "$bin/socketloop-echo" -b "$poller"; then
        load "socketloop-echo -b $poller" -b "$poller"
        stop "socketloop-echo -b $poller"
    fi
done
if start "$bin/socketloop-echo" -t 2; then
    load "socketloop-echo -t 2" -t 2
    stop "socketloop-echo -t 2"
fi
for ref in echo-epoll-ref echo-libuv-ref; do
    [ -x "$bin/$ref" ] || { echo "skip: $ref not built"; continue; }
    if start "$bin/$ref"; then
        load "$ref"
        stop "$ref"
    fi
done

# Idle mode: all connections up, then held.
if start "$bin/socketloop-echo" -i 30; then
    out=$("$bin/socketloop-load" -i -c 50 -d 0.5 127.0.0.1 "$PORT" 2>&1)
    if [ $? = 0 ] && grep -q '^connected 50$' <<<"$out"; then
        pass "socketloop-load -i: connected 50"
    else
        fail "socketloop-load -i: $out"
    fi
    stop "socketloop-echo -i 30"
fi

for poller in poll epoll; do
    start "$bin/socketloop-http" -b "$poller" || continue
    # Two requests on one connection; the server closes after the second.
    reply=$(
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
        printf 'GET / HTTP/1.1\r\nHost: smoke\r\n\r\n' >&3
        printf 'GET /again HTTP/1.1\r\nHost: smoke\r\nConnection: close\r\n\r\n' >&3
        timeout 10 cat <&3
    )
    oks=$(grep -c $'^HTTP/1.1 200 OK\r$' <<<"$reply")
    hellos=$(grep -c '^hello$' <<<"$reply")
    if [ "$oks" = 2 ] && [ "$hellos" = 2 ] && grep -q $'^Connection: close\r$' <<<"$reply"; then
        pass "socketloop-http -b $poller: keep-alive, then Connection: close"
    else
        fail "socketloop-http -b $poller: reply was: $reply"
    fi
    bad=$(
        exec 3<>"/dev/tcp/127.0.0.1/$PORT" || exit 1
        printf 'nonsense\r\n\r\n' >&3
        timeout 10 cat <&3
    )
    if grep -q '^HTTP/1.1 400' <<<"$bad"; then
        pass "socketloop-http -b $poller: 400 for a bad request line"
    else
        fail "socketloop-http -b $poller: bad request got: $bad"
    fi
    stop "socketloop-http -b $poller"
done

echo "$passes passed, $failures failed"
[ "$failures" = 0 ]
