#!/usr/bin/env bash
# Every public function has a man page (its own or a .so link to its
# area's page), and every page renders without a warning from man.
#   check_man.sh MAN_DIR INCLUDE_DIR
set -euo pipefail
. "$(dirname "$0")/lib.sh"
man=$1 inc=$2
missing=""
for f in $(public_functions "$inc"); do
    [ -f "$man/man3/$f.3" ] || missing="$missing $f"
done
[ -z "$missing" ] ||
    fail "no man page for:$missing (add it to the NAME section of a page in docs/man/)"
n=0
for p in "$man"/man*/*; do
    if grep -q '^\.so ' "$p"; then
        target=$man/$(sed -n 's/^\.so //p' "$p")
        [ -f "$target" ] || fail "$p points to missing $target"
        continue
    fi
    # man -l formats the page alone; --warnings makes groff report
    # unknown macros, bad escapes and lines it could not fill.
    warn=$(MANWIDTH=80 man --warnings -E UTF-8 -l "$p" 2>&1 >/dev/null) ||
        fail "man could not format $p"
    [ -z "$warn" ] || fail "$p: $warn"
    n=$((n + 1))
done
echo "$(public_functions "$inc" | wc -l) public functions documented in $n pages"
