#!/usr/bin/env bash
# Installs a built tree into a fresh temporary prefix (not /usr/local) and
# uses it as a user would, with nothing from the build tree:
#   - the README's example through pkg-config: shared (socketloop), static
#     archive (socketloop-static), fully static (--static with -static);
#   - the same through find_package: socketloop::socketloop,
#     _shared, _static, and socketloop::socketloop with SOCKETLOOP_USE_STATIC;
#   - every program runs and prints what the README says; the shared ones
#     need libsocketloop.so.N, the static ones do not;
#   - the version: header, pkg-config and soname agree;
#   - the Lua module from each Lua's install directories (smoke.lua);
#   - the man pages, when the tree built them.
#   install_test.sh BUILD_DIR SOURCE_DIR VERSION [LUA:CMOD:LMOD ...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
build=$1 src=$2 version=$3
shift 3
work=$(mktemp -d "${TMPDIR:-/tmp}/socketloop-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/opt/socketloop
cmake --install "$build" --prefix "$prefix" >"$work/install.log"

readme_block "$src/README.md" "## A complete example" c >"$work/example.c"
[ -s "$work/example.c" ] || fail "no C example in the README"
want=$'consumer got 1\nconsumer got 2\nconsumer got 3'
major=${version%%.*}

pc=$(find "$prefix" -name socketloop.pc)
[ -n "$pc" ] || fail "socketloop.pc not installed"
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir socketloop)
[ "$(realpath "$libdir")" = "$(realpath "$(dirname "$PKG_CONFIG_PATH")")" ] ||
    fail "pkg-config's libdir $libdir is not where socketloop.pc lies"
# Every path pkg-config gives must lie inside the prefix.
for flag in $(pkg-config --cflags --libs socketloop socketloop-static); do
    case $flag in
    -I* | -L*)
        d=$(realpath -m "${flag:2}")
        case $d in "$prefix"/*) ;; *) fail "pkg-config gives $flag outside $prefix" ;; esac
        [ -d "$d" ] || fail "pkg-config gives $flag, which does not exist"
        ;;
    esac
done
[ "$(pkg-config --modversion socketloop)" = "$version" ] ||
    fail "pkg-config says $(pkg-config --modversion socketloop), want $version"
pkg-config --static --libs socketloop | grep -q -- -pthread ||
    fail "pkg-config --static --libs socketloop lacks -pthread"

# needs BINARY yes|no: whether it loads libsocketloop.so.N.
needs() {
    local got=no
    readelf -d "$1" | grep -q "NEEDED.*\[libsocketloop\.so\.$major\]" && got=yes
    [ "$got" = "$2" ] || fail "$1: needs libsocketloop.so.$major: $got, want $2"
}
check_run() {
    local out
    out=$(LD_LIBRARY_PATH=$libdir "$@") || fail "$* failed"
    [ "$out" = "$want" ] || fail "$* printed: $out"
}

cd "$work"
# shellcheck disable=SC2046
cc -Wall -Werror "$here/version.c" -o version $(pkg-config --cflags --libs socketloop)
[ "$(LD_LIBRARY_PATH=$libdir ./version)" = "$version $major" ] ||
    fail "the header says $(LD_LIBRARY_PATH=$libdir ./version), want $version $major"
bash "$here/check_symbols.sh" "$libdir/libsocketloop.so" "$prefix/include" "$major"

echo "== pkg-config"
# shellcheck disable=SC2046
cc -Wall -Werror example.c -o pc-shared $(pkg-config --cflags --libs socketloop)
needs pc-shared yes
check_run ./pc-shared
# shellcheck disable=SC2046
cc -Wall -Werror example.c -o pc-static $(pkg-config --cflags --libs socketloop-static)
needs pc-static no
check_run ./pc-static
# glibc warns that a static program's name lookups still load NSS
# modules; the example resolves nothing.
# shellcheck disable=SC2046
cc -Wall -Werror -static example.c -o pc-allstatic \
    $(pkg-config --static --cflags --libs socketloop) 2>"$work/static.log" ||
    { cat "$work/static.log"; fail "the fully static link failed"; }
readelf -d pc-allstatic | grep -q NEEDED && fail "pc-allstatic is not static"
check_run ./pc-allstatic
if command -v valgrind >/dev/null; then
    LD_LIBRARY_PATH=$libdir valgrind --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect,possible --quiet \
        ./pc-shared >/dev/null || fail "pc-shared under memcheck"
fi

echo "== find_package"
for mode in OFF ON; do
    cmake -S "$here/consumer" -B "consumer-$mode" -DCMAKE_PREFIX_PATH="$prefix" \
        -DEXAMPLE="$work/example.c" -DSOCKETLOOP_USE_STATIC=$mode >"$work/consumer-$mode.log" ||
        { cat "$work/consumer-$mode.log"; fail "configuring the consumer failed"; }
    cmake --build "consumer-$mode" >>"$work/consumer-$mode.log" 2>&1 ||
        { cat "$work/consumer-$mode.log"; fail "building the consumer failed"; }
    # CMake gives build-tree programs an RUNPATH to the imported library:
    # they run without LD_LIBRARY_PATH.
    for ex in ex_default ex_shared ex_static; do
        out=$("consumer-$mode/$ex") || fail "$ex ($mode) failed"
        [ "$out" = "$want" ] || fail "$ex printed: $out"
    done
    needs "consumer-$mode/ex_shared" yes
    needs "consumer-$mode/ex_static" no
    [ $mode = ON ] && d=no || d=yes
    needs "consumer-$mode/ex_default" $d
done

echo "== Lua"
for spec in "$@"; do
    IFS=: read -r v cmod lmod <<<"$spec"
    [ "$v" = jit ] && lua=luajit || lua=lua$v
    case $cmod in /*) ;; *) cmod=$prefix/$cmod ;; esac
    case $lmod in /*) ;; *) lmod=$prefix/$lmod ;; esac
    [ -f "$cmod/socketloop/core.so" ] || fail "no $cmod/socketloop/core.so"
    # Only the installed directories: no ;; so no default path either.
    LUA_PATH="$lmod/?.lua" LUA_CPATH="$cmod/?.so" "$lua" "$here/smoke.lua" ||
        fail "$lua: the installed module failed"
done

mandir=$prefix/share/man
if [ -d "$mandir" ]; then
    echo "== man"
    bash "$here/check_man.sh" "$mandir" "$prefix/include"
    page=$(MANWIDTH=80 man -M "$mandir" 3 gt_chan_send 2>/dev/null) ||
        fail "man 3 gt_chan_send finds nothing in $mandir"
    grep -q gt_chan_send <<<"$page" || fail "man 3 gt_chan_send shows another page"
fi
echo "install test passed: $prefix"
