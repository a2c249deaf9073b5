#!/usr/bin/env bash
# CTest tls_tools: the servers speak TLS to programs we did not write.
#
#   tools.sh BIN_DIR CERTS_SCRIPT
#
# socketloop-http --tls-cert/--tls-key answers curl --cacert (TLS 1.2 and
# 1.3, a GET and a POST of 1 MiB, the name and the IP address checked);
# socketloop-echo with TLS takes socketloop-load --tls-ca for a second
# with no error (and --reconnect: a handshake per echo), and echoes to openssl s_client; a client that trusts
# another CA is refused.  Each server stops cleanly on SIGTERM.
set -u
bin=${1:?usage: tools.sh BIN_DIR CERTS_SCRIPT}
certs=${2:?usage: tools.sh BIN_DIR CERTS_SCRIPT}
tmp=$(mktemp -d /tmp/sl-tls-tools.XXXXXX)
pid=
failures=0
cleanup() {
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

sh "$certs" "$tmp" || exit 1
head -c 1048576 /dev/urandom >"$tmp/big"
tls=(--tls-cert "$tmp/ec.pem" --tls-key "$tmp/ec.key")

port=
start() { # command...: a server on a free port; sets pid and port
    "$@" -p 0 "${tls[@]}" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    fail "$1 did not start: $(cat "$tmp/err")"
    return 1
}
stop() {
    kill -TERM "$pid"
    wait "$pid" || fail "$1 exited with $?"
    pid=
}

if start "$bin/socketloop-http"; then
    for v in 1.2 1.3; do
        for host in localhost 127.0.0.1; do
            got=$(curl -sS --tlsv"$v" --tls-max "$v" --cacert "$tmp/ca.pem" \
                "https://$host:$port/" -w ' %{http_code}')
            [ "$got" = "hello
 200" ] && pass "curl GET TLS $v $host" || fail "curl GET TLS $v $host: $got"
        done
        got=$(curl -sS --tlsv"$v" --tls-max "$v" --cacert "$tmp/ca.pem" \
            --data-binary @"$tmp/big" "https://localhost:$port/post" \
            -o /dev/null -w '%{http_code}')
        [ "$got" = 200 ] && pass "curl POST 1 MiB TLS $v" ||
            fail "curl POST TLS $v: $got"
    done
    if curl -sS --cacert "$tmp/otherca.pem" "https://localhost:$port/" \
        >/dev/null 2>"$tmp/curl.err"; then
        fail "curl trusted a server its CA did not sign"
    else
        pass "curl refuses an unknown CA"
    fi
    stop socketloop-http
fi

if start "$bin/socketloop-echo"; then
    if "$bin/socketloop-load" -c 20 -d 1 --tls-ca "$tmp/ca.pem" \
        127.0.0.1 "$port" >"$tmp/load" 2>&1 &&
        grep -q '^errors 0 ' "$tmp/load"; then
        pass "socketloop-load --tls-ca"
    else
        fail "socketloop-load: $(cat "$tmp/load")"
    fi
    if "$bin/socketloop-load" -c 5 -d 0.5 --reconnect --tls-ca "$tmp/ca.pem" \
        127.0.0.1 "$port" >"$tmp/load" 2>&1 &&
        grep -q '^errors 0 ' "$tmp/load"; then
        pass "socketloop-load --reconnect --tls-ca (a handshake per echo)"
    else
        fail "socketloop-load --reconnect: $(cat "$tmp/load")"
    fi
    got=$( (echo ping; sleep 0.5) | timeout 10 openssl s_client -quiet \
        -connect 127.0.0.1:"$port" -CAfile "$tmp/ca.pem" -verify_return_error \
        2>/dev/null)
    [ "$got" = ping ] && pass "s_client echo" || fail "s_client echo: $got"
    stop socketloop-echo
fi

[ "$failures" -eq 0 ] || { echo "$failures failed"; exit 1; }
echo "all passed"
