#!/usr/bin/env bash
# The Debian packages on a fresh Debian 12: builds them (tools/pkg/
# build-debs.sh) unless DEB_DIR holds them, bootstraps a minimal bookworm
# root from the mirror apt uses here (debootstrap --variant=minbase),
# installs the three packages there with apt, which must find every
# dependency they declare (recommended packages left out), and inside it:
#   - builds the README's C example with pkg-config, against the shared
#     library and against the static one, and runs both;
#   - runs tests/install/smoke.lua with the system lua5.4 (require
#     'socketloop' from Debian's own module path, one echo round trip);
#   - checks that the man pages and pkg-config files are where Debian
#     looks for them.
# Needs root (debootstrap, chroot, mount) and the archive.  Nothing is
# cached: the root is made and removed each time.
#   tools/pkg/deb-test.sh [DEB_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
. tests/install/lib.sh
[ "$(id -u)" -eq 0 ] || fail "deb-test.sh needs root (debootstrap, chroot)"
t0=$(date +%s)
if [ $# -ge 1 ]; then
    debs=$(realpath "$1")
else
    bash tools/pkg/build-debs.sh build/pkg/debs
    debs=$src/build/pkg/debs
fi
ls "$debs"/libsocketloop0_*.deb "$debs"/libsocketloop-dev_*.deb \
    "$debs"/lua-socketloop_*.deb >/dev/null
t1=$(date +%s)

# The Debian mirror this machine's apt uses (SL_DEB_MIRROR overrides it).
apt_mirror() {
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' |
        awk 'NR == 1 { print $2 }' || true
}
mirror=${SL_DEB_MIRROR:-$(apt_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d "${TMPDIR:-/tmp}/socketloop-debroot.XXXXXX")
cleanup() {
    if mountpoint -q "$root/proc"; then umount "$root/proc"; fi
    rm -rf "$root"
}
trap cleanup EXIT
echo "== debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -30 "$root.log"; rm -f "$root.log"; fail "debootstrap failed"; }
rm -f "$root.log"
t2=$(date +%s)
cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
mkdir -p "$root/tmp/sl"
cp "$debs"/*.deb tests/install/smoke.lua "$root/tmp/sl/"
readme_block README.md "## A complete example" c >"$root/tmp/sl/example.c"
[ -s "$root/tmp/sl/example.c" ] || fail "no C example in the README"

echo "== apt-get install the packages, gcc, pkg-config, lua5.4"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 "$@"; }
install_cmd=(apt-get install -y -q --no-install-recommends
    /tmp/sl/libsocketloop0_*.deb /tmp/sl/libsocketloop-dev_*.deb
    /tmp/sl/lua-socketloop_*.deb gcc pkg-config lua5.4)
# The globs are expanded inside the root.
in_root sh -c "${install_cmd[*]}" >"$root/tmp/sl/apt.log" 2>&1 ||
    { tail -40 "$root/tmp/sl/apt.log"; fail "apt-get install failed in the root"; }
t3=$(date +%s)

echo "== smoke test in the root"
in_root sh -euc '
cd /tmp/sl
want="consumer got 1
consumer got 2
consumer got 3"
cc -Wall -Werror example.c -o ex-shared $(pkg-config --cflags --libs socketloop)
cc -Wall -Werror example.c -o ex-static $(pkg-config --cflags --libs socketloop-static)
# /lib is /usr/lib on Debian 12 (merged /usr): the loader may name either.
ldd ex-shared | grep -Eq "libsocketloop[.]so[.]0 => (/usr)?/lib/x86_64-linux-gnu/" ||
    { ldd ex-shared; echo "ex-shared does not load the packaged libsocketloop.so.0"; exit 1; }
if ldd ex-static | grep -q libsocketloop; then echo "ex-static loads libsocketloop"; exit 1; fi
for ex in ex-shared ex-static; do
    out=$(./$ex)
    [ "$out" = "$want" ] || { echo "$ex printed: $out"; exit 1; }
    echo "$ex: ok"
done
[ "$(pkg-config --modversion socketloop)" = "$(dpkg-query -W -f="\${Version}" libsocketloop-dev | sed "s/-[^-]*$//")" ] ||
    { echo "pkg-config and the package disagree on the version"; exit 1; }
lua5.4 smoke.lua
lua5.4 -e "assert(package.searchpath(\"socketloop.core\", package.cpath):match(\"^/usr/lib/\"))"
for f in gt_spawn gt_chan_send net_connect socketloop; do
    [ -f /usr/share/man/man3/$f.3 ] || { echo "no man page $f(3)"; exit 1; }
done
echo "man pages: ok"
'
t4=$(date +%s)
echo "deb test passed: build $((t1 - t0)) s, debootstrap $((t2 - t1)) s," \
    "apt-get $((t3 - t2)) s, smoke $((t4 - t3)) s, total $((t4 - t0)) s"
