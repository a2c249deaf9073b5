#!/usr/bin/env bash
# Static analysis, run by CI: cppcheck and clang-tidy (configured by
# .clang-tidy) over the library, the Lua module and the tools.  Any finding
# fails the run.  The tests are left to their own checks: they run under
# Valgrind and the sanitizers, and CMocka's macros only add noise here.
#
# cppcheck's one suppression: unusedFunction, since most of the library's
# functions exist for its users, not for calls from inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh cppcheck clang clang-tidy cmake libcmocka-dev pkg-config
dir=build/lint
jobs=$(nproc)
sources=(runtime net lua tools)

echo "== net uses only runtime/park.h"
# The net layer's interface to the runtime is what the opening comment of
# runtime/park.h lists: net/ includes no other runtime header and uses no
# gt__/GT__ name that the list leaves out.
python3 - <<'PY'
import glob, os, re, sys
park = open("runtime/park.h").read().split("*/")[0]
bad = []
for f in sorted(glob.glob("net/*.[ch]")):
    text = re.sub(r"/\*.*?\*/", " ", open(f).read(), flags=re.S)
    for inc in re.findall(r'#include "([^"]+)"', text):
        # Its own headers (net/*.h), park.h and the public ones.
        if inc != "park.h" and not os.path.exists("net/" + inc) and \
                not inc.startswith("socketloop/"):
            bad.append(f"{f}: includes {inc}")
    for name in sorted(set(re.findall(r"\b(?:gt__|GT__)\w+", text))):
        if not re.search(r"\b%s\b" % name, park):
            bad.append(f"{f}: uses {name}, which runtime/park.h does not offer")
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY

echo "== cppcheck"
cppcheck --std=c11 --enable=warning,style,performance,portability \
    --error-exitcode=1 --inline-suppr --quiet \
    --suppress=missingIncludeSystem --suppress=unusedFunction \
    -I include -I runtime -I net -D__x86_64__ -D__linux__ \
    "${sources[@]}"

echo "== clang-tidy"
# One file per translation unit (no unity build), compiled by clang, and
# one clang-tidy process per file: clang-tidy 14 carries state from one
# file to the next and then reports va_list false positives.
cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DSOCKETLOOP_UNITY=OFF \
    -DSOCKETLOOP_TESTS=OFF >/dev/null
files=$(cd "$dir" && ROOT="$OLDPWD" python3 -c '
import json, os
seen = set()
for e in json.load(open("compile_commands.json")):
    f = os.path.relpath(os.path.join(e["directory"], e["file"]), os.environ["ROOT"])
    if f.split("/")[0] in ("runtime", "net", "lua", "tools") and f.endswith(".c"):
        seen.add(f)
print("\n".join(sorted(seen)))')
# shellcheck disable=SC2086
printf '%s\n' $files | xargs -P "$jobs" -n 1 clang-tidy -p "$dir" --quiet
echo "lint: no findings"
