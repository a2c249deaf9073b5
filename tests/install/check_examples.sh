#!/usr/bin/env bash
# Every man page's EXAMPLE compiles without a warning against the library
# and runs to a clean exit within 20 s, so the manual's examples stay true;
# given a Valgrind, each runs under memcheck instead, where any error or
# leak fails.
#   check_examples.sh DOCS_MAN_DIR CC LIBSOCKETLOOP.a VALGRIND|"" -I... -l...
# (-l arguments, the libraries the archive needs besides the C library's,
# go after it: -lssl -lcrypto when it was built with TLS).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
docs=$1 cc=$2 lib=$3 valgrind=$4
shift 4
incs=() libs=()
for a in "$@"; do
    case $a in -l*) libs+=("$a") ;; *) incs+=("$a") ;; esac
done
work=$(mktemp -d "${TMPDIR:-/tmp}/socketloop-examples.XXXXXX")
trap 'rm -rf "$work"' EXIT
n=0
for md in "$docs"/*.[1-9].md; do
    page=$(basename "$md" .md)
    readme_block "$md" "# EXAMPLE" c >"$work/$page.c"
    [ -s "$work/$page.c" ] || fail "$md has no C block under # EXAMPLE"
    "$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror "${incs[@]}" "$work/$page.c" \
        "$lib" -pthread ${libs[@]+"${libs[@]}"} -o "$work/$page" ||
        fail "$page: the example does not compile"
    if [ -n "$valgrind" ]; then
        SL_UNDER_VALGRIND=1 timeout 120 "$valgrind" --error-exitcode=99 \
            --leak-check=full --errors-for-leak-kinds=definite,indirect,possible \
            --quiet "$work/$page" >"$work/$page.out" 2>&1 ||
            { cat "$work/$page.out"; fail "$page: the example fails under memcheck"; }
    else
        timeout 20 "$work/$page" >"$work/$page.out" 2>&1 ||
            { cat "$work/$page.out"; fail "$page: the example failed"; }
    fi
    echo "$page: $(head -c 200 "$work/$page.out" | tr '\n' '|')"
    n=$((n + 1))
done
echo "$n examples compiled and ran"
