#!/usr/bin/env bash
# The shared library exports exactly the functions the public headers
# declare with GT_API, and its soname carries the major version.
#   check_symbols.sh LIBSOCKETLOOP.so INCLUDE_DIR MAJOR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib=$1 inc=$2 major=$3
want=$(public_functions "$inc")
[ -n "$want" ] || fail "no GT_API function found under $inc"
# Every defined dynamic symbol, of whatever type (functions, data, TLS).
have=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | sort -u)
if [ "$want" != "$have" ]; then
    echo "exported but not public (<) / public but not exported (>):" >&2
    diff <(echo "$have") <(echo "$want") >&2 || true
    fail "$lib exports other symbols than the headers declare"
fi
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = "libsocketloop.so.$major" ] ||
    fail "soname is '$soname', want libsocketloop.so.$major"
echo "$(echo "$want" | wc -l) public functions exported, soname $soname"
