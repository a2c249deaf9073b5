#!/usr/bin/env bash
# Test of the gdb helper: test-gdb.sh GDB_TARGET SOCKETLOOP_GDB_PY
# Runs gdb_target under gdb in batch mode, stops in stop_here() (the loop,
# with the green threads parked), and checks gt-list, gt-bt on a parked, a
# ready-but-started and a not-started thread and on an unknown id, and that
# the normal bt still shows stop_here afterwards (registers restored) and the
# program then exits cleanly.
# Exit status: 0 pass, 1 fail, 77 skip (no ptrace here, or no debug info).
set -u
target=${1:?usage: test-gdb.sh GDB_TARGET SOCKETLOOP_GDB_PY}
py=${2:?usage: test-gdb.sh GDB_TARGET SOCKETLOOP_GDB_PY}
gdb=${SL_GDB:-gdb}

# Ids are issued in spawn order (see gdb_target.c).
SLEEPER=1 RECEIVER=2 SPINNER=3 FRESH=4
REGS='rip rsp rbp rbx r12 r13 r14 r15 rax rcx rdx rsi rdi r8 r9 r10 r11 eflags'

out=$(timeout 100 "$gdb" -batch -nx \
    -iex 'set debuginfod enabled off' \
    -iex 'set auto-load safe-path /' \
    -iex 'set pagination off' \
    -iex 'set confirm off' \
    -ex "source $py" \
    -ex 'echo ==== before-run\n' -ex 'gt-list' \
    -ex 'break main' -ex 'break stop_here' \
    -ex 'run' \
    -ex 'echo ==== at-main\n' -ex 'gt-list' \
    -ex 'echo ==== at-main-bt\n' -ex 'gt-bt 1' \
    -ex 'echo ==== at-stop\n' -ex 'continue' \
    -ex 'echo ==== bt-before\n' -ex 'bt' \
    -ex 'echo ==== regs-before\n' -ex "info registers $REGS" \
    -ex 'echo ==== gt-list\n' -ex 'gt-list' \
    -ex 'echo ==== gt-bt-sleeper\n' -ex "gt-bt $SLEEPER" \
    -ex 'echo ==== regs-after\n' -ex "info registers $REGS" \
    -ex 'echo ==== bt-after\n' -ex 'bt' \
    -ex 'echo ==== gt-bt-receiver\n' -ex "gt-bt $RECEIVER" \
    -ex 'echo ==== gt-bt-spinner\n' -ex "gt-bt $SPINNER" \
    -ex 'echo ==== gt-bt-fresh\n' -ex "gt-bt $FRESH" \
    -ex 'echo ==== gt-bt-loop\n' -ex 'gt-bt 0' \
    -ex 'echo ==== gt-bt-unknown\n' -ex 'gt-bt 99' \
    -ex 'echo ==== bt-final\n' -ex 'bt' \
    -ex 'break fresh' \
    -ex 'echo ==== in-green\n' -ex 'continue' \
    -ex 'echo ==== in-green-list\n' -ex 'gt-list' \
    -ex 'echo ==== in-green-bt-self\n' -ex "gt-bt $FRESH" \
    -ex 'echo ==== in-green-bt-loop\n' -ex 'gt-bt 0' \
    -ex 'echo ==== in-green-bt-sleeper\n' -ex "gt-bt $SLEEPER" \
    -ex 'echo ==== in-green-bt-after\n' -ex 'bt' \
    -ex 'echo ==== continue\n' -ex 'continue' \
    "$target" 2>&1)
rc=$?
printf '%s\n' "$out"
echo "---- gdb exit status $rc"

if grep -q 'ptrace: Operation not permitted\|Could not trace the inferior' \
        <<<"$out"; then
    echo "SKIP: gdb cannot trace processes here"
    exit 77
fi
if grep -q 'socketloop: no debug info' <<<"$out"; then
    echo "SKIP: the runtime was built without debug info"
    exit 77
fi

# The text between "==== NAME" and the next "====" marker.
section() {
    if [ -z "$1" ]; then printf '%s\n' "$out"; return; fi
    awk -v want="==== $1" '
        /^==== / { on = ($0 == want); next }
        on { print }' <<<"$out"
}

fail=0
check() { # check SECTION DESCRIPTION GREP-ERE
    if section "$1" | grep -Eq -- "$3"; then
        echo "ok:   $1: $2"
    else
        echo "FAIL: $1: $2 (no match for /$3/)"
        fail=1
    fi
}
check_not() {
    if section "$1" | grep -Eq -- "$3"; then
        echo "FAIL: $1: $2 (unexpected match for /$3/)"
        fail=1
    else
        echo "ok:   $1: $2"
    fi
}

check before-run  "reports no process before run"   'no live process'
check at-main     "scheduler not initialised at main" 'not initialised'
check at-main-bt  "gt-bt refuses before any spawn"   'not initialised'
check at-stop     "stopped in stop_here"             'Breakpoint 2, stop_here'
check bt-before   "stopped in stop_here"             'stop_here'
check gt-list     "4 live threads"                   '^4 live green thread'
check gt-list     "sleeper parked on sleep"          "^ +$SLEEPER +sleeper +parked +sleep 0x0 until [0-9]+ +.*gdb_target\\.c:[0-9]+"
check gt-list     "receiver parked on a channel"     "^ +$RECEIVER +receiver +parked +chan recv 0x[0-9a-f]+ "
check gt-list     "spinner ready"                    "^ +$SPINNER +spinner +ready "
check gt-list     "fresh not started"                "^ +$FRESH +fresh +new "
check gt-bt-sleeper  "parked_in_here in backtrace"   'parked_in_here'
check gt-bt-sleeper  "gt_sleep in backtrace"         'gt_sleep'
check gt-bt-sleeper  "thread body in backtrace"      ' sleeper \('
check_not gt-bt-sleeper "not the loop's stack"       'stop_here|(^#[0-9]+ +| in )main \('
if [ -n "$(section regs-before)" ] &&
   [ "$(section regs-before)" = "$(section regs-after)" ]; then
    echo "ok:   regs-after: registers identical after gt-bt"
else
    echo "FAIL: regs-after: registers differ after gt-bt"
    diff <(section regs-before) <(section regs-after)
    fail=1
fi
check bt-after    "registers restored: stop_here"    '^#0 .*stop_here'
check bt-after    "registers restored: main"         ' in main \('
check_not bt-after "registers restored: no green frames" 'parked_in_here'
check gt-bt-receiver "waiting_for_mail"              'waiting_for_mail'
check gt-bt-receiver "in the channel code"           'runtime/chan\.c'
check gt-bt-spinner  "spin_and_yield"                'spin_and_yield'
check gt-bt-spinner  "gt_yield"                      'gt_yield'
check gt-bt-fresh    "not started"                   'not started yet'
check gt-bt-loop     "loop running: plain bt"        'stop_here'
check gt-bt-unknown  "unknown id is an error"        'no live green thread with id 99'
check bt-final    "still in stop_here at the end"    '^#0 .*stop_here'
check in-green    "stopped in fresh"                 'Breakpoint 3, fresh'
check in-green-list "fresh is running"               "^\\* +$FRESH +fresh +running "
check in-green-list "sleeper cancelled, ready again" "^ +$SLEEPER +sleeper +ready +cancelled "
check in-green-bt-self "running thread: plain bt"    '^#0 .*fresh'
check in-green-bt-loop "loop switched out"           'the loop \(switched out'
check in-green-bt-loop "loop stack: gt_run"          ' gt_run \('
check in-green-bt-loop "loop stack: main"            ' in main \('
check_not in-green-bt-loop "loop stack: no green frames" ' fresh \('
check in-green-bt-sleeper "woken sleeper still in parked_in_here" 'parked_in_here'
check in-green-bt-after "registers restored: fresh"  '^#0 .*fresh'
check_not in-green-bt-after "registers restored: no loop frames" ' in main \('
check continue    "target finished its work"         'gdb_target: done'
check continue    "target exited normally"           'exited normally'
check_not ""      "no Python errors (whole output)"                 'Traceback|Python Exception'

if [ "$rc" -ne 0 ]; then
    echo "FAIL: gdb exited with status $rc"
    fail=1
fi
if [ "$fail" -ne 0 ]; then
    echo "gdb helper test FAILED"
    exit 1
fi
echo "gdb helper test passed"
