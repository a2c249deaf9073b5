# gdb helpers for socketloop green threads.
#
#   (gdb) source tools/gdb/socketloop-gdb.py
#   (gdb) gt-list        live green threads of the selected OS thread
#   (gdb) gt-bt ID       backtrace of green thread ID (0: the loop itself)
#
# x86-64 (System V, Linux) only: gt-bt knows the frame the assembly switch
# (runtime/switch_x86_64.S) leaves on a parked stack, and the register
# names and ucontext gregs indices of x86-64.  Both context-switch builds
# are handled: the asm one (gt__ctx has `sp`) and the ucontext one
# (gt__ctx has `uc`).  The runtime's private types must have debug info,
# and gt-bt needs a live process: it briefly loads the green thread's saved
# registers into the selected OS thread, runs `bt`, and restores them.
import struct

import gdb

STATE_NAMES = {0: "ready", 1: "running", 2: "parked", 3: "ended"}
ST_READY, ST_RUNNING, ST_PARKED, ST_DONE = 0, 1, 2, 3

# The frame gt__ctx_swap_sp leaves at ctx.sp (8-byte slots): the MXCSR and
# x87 control word, then rbp, then the return address.  The caller stepped
# over the 128-byte red zone before the call.  The other callee-saved
# registers are in the caller's own frame (the switch declares them
# clobbered), where bt finds them through the debug info.
ASM_FRAME = ("csr", "rbp", "rip")
ASM_FRAME_SIZE = 8 * len(ASM_FRAME)  # rsp after the ret
ASM_RED_ZONE = 128

# glibc's x86-64 REG_* indices into uc_mcontext.gregs (sys/ucontext.h).
UC_GREGS = {"r8": 0, "r9": 1, "r10": 2, "r11": 3, "r12": 4, "r13": 5,
            "r14": 6, "r15": 7, "rdi": 8, "rsi": 9, "rbp": 10, "rbx": 11,
            "rdx": 12, "rax": 13, "rcx": 14, "rsp": 15, "rip": 16}

# What gt-bt saves and restores in frame 0 of the selected OS thread.
SAVED_REGS = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15",
              "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11")
# What it loads from a green thread's context (the callee-saved set; the
# others are dead across the switch call anyway).
LOADED_REGS = ("rip", "rsp", "rbp", "rbx", "r12", "r13", "r14", "r15")

MAX_THREADS = 10_000_000  # bound on the registry walk (corrupt lists)
U64 = (1 << 64) - 1


def _type(name):
    try:
        return gdb.lookup_type(name).strip_typedefs()
    except gdb.error:
        raise gdb.GdbError(
            "socketloop: no debug info for %s; build the runtime with -g "
            "(RelWithDebInfo or Debug)" % name)


def _has_field(t, name):
    return any(f.name == name for f in t.fields())


def _check_arch():
    frame = gdb.selected_frame()
    arch = frame.architecture().name()
    if "x86-64" not in arch:
        raise gdb.GdbError("socketloop: only x86-64 is supported, not %s"
                           % arch)


def _sched():
    """gt__S of the selected OS thread, as a gdb.Value (not a pointer)."""
    sched_t = _type("gt__sched")
    _type("gt__thread")
    inf = gdb.selected_inferior()
    if inf.pid == 0:
        raise gdb.GdbError("socketloop: no live process (run the program "
                           "first)")
    try:
        S = gdb.parse_and_eval("gt__S")
        S.fetch_lazy()
    except gdb.error as e:
        first = str(e)
        # A TLS variable needs libthread_db; its address may still work,
        # e.g. through a different path in gdb.
        try:
            S = gdb.parse_and_eval("&gt__S").cast(
                sched_t.pointer()).dereference()
            S.fetch_lazy()
        except gdb.error:
            raise gdb.GdbError(
                "socketloop: cannot read the thread-local gt__S (%s); gdb "
                "needs libthread_db for this process" % first)
    if S.type.strip_typedefs().tag != sched_t.tag:
        S = S.cast(sched_t)
    return S


def _threads(S):
    """The live green threads, oldest first, as gt__thread pointers: the
    id table (S->ids, chained through id_next) is the registry."""
    cap = int(S["ids_cap"])
    ids = S["ids"]
    out = []
    for i in range(cap):
        t = ids[i]
        while int(t) != 0:
            if len(out) >= MAX_THREADS:
                raise gdb.GdbError("socketloop: id table does not end; "
                                   "memory corrupt?")
            out.append(t)
            t = t["id_next"]
    if len(out) != int(S["ids_n"]):
        raise gdb.GdbError("socketloop: id table holds %d threads, its count "
                           "says %d; memory corrupt?" % (len(out),
                                                         int(S["ids_n"])))
    out.sort(key=lambda t: int(t["id"]))
    return out


def _str(v):
    try:
        if int(v) == 0:
            return None
        return v.string()[:256]
    except (gdb.error, gdb.MemoryError, UnicodeDecodeError):
        return "<unreadable %#x>" % int(v)


def _name(t):
    try:
        n = t["name"].string()
    except (gdb.error, UnicodeDecodeError):
        n = ""
    return n or "unnamed"


def _ready_sched():
    S = _sched()
    if int(S["ready"]) == 0:
        return None
    return S


class GtList(gdb.Command):
    """List the live green threads of the selected OS thread.
Usage: gt-list
One line each: id, name, state, what a parked thread waits on (wait_what
and wait_obj), and where it was spawned.  `*` marks the running one."""

    def __init__(self):
        super().__init__("gt-list", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        if arg.strip():
            raise gdb.GdbError("gt-list takes no arguments")
        S = _ready_sched()
        if S is None:
            print("socketloop: the scheduler of this OS thread is not "
                  "initialised (no green thread was ever spawned here)")
            return
        cur = int(S["current"])
        threads = _threads(S)
        print("%d live green thread(s) on this OS thread; %s"
              % (len(threads),
                 "the loop is running" if cur == 0 else
                 "green thread %d is running" % int(S["current"]["id"])))
        print("  %6s  %-20s %-8s %-36s %s"
              % ("ID", "NAME", "STATE", "WAITS ON", "SPAWNED AT"))
        for t in threads:
            state = int(t["state"])
            sname = STATE_NAMES.get(state, "?%d" % state)
            if state == ST_READY and not int(t["started"]):
                sname = "new"
            waits = ""
            if state == ST_PARKED:
                what = _str(t["wait_what"]) or "?"
                obj = int(t["wait_obj"].cast(
                    gdb.lookup_type("unsigned long")))
                waits = "%s %#x" % (what, obj)
                if int(t["timed"]):
                    waits += " until %d" % int(t["timer"]["key"])
            if int(t["cancelled"]):
                waits = (waits + " cancelled").strip()
            print("%s %6d  %-20s %-8s %-36s %s"
                  % ("*" if int(t) == cur else " ", int(t["id"]), _name(t),
                     sname, waits or "-", _str(t["site"]) or "?"))


def _saved_regs(ctx):
    """Registers a parked context resumes with: {name: int}."""
    ctx_t = ctx.type.strip_typedefs()
    if _has_field(ctx_t, "uc"):  # ucontext build
        gregs = ctx["uc"]["uc_mcontext"]["gregs"]
        return {r: int(gregs[UC_GREGS[r]]) & U64 for r in LOADED_REGS}
    sp = int(ctx["sp"])  # asm build
    if sp == 0:
        raise gdb.GdbError("socketloop: no saved context (sp is NULL)")
    mem = gdb.selected_inferior().read_memory(sp, ASM_FRAME_SIZE)
    slots = struct.unpack("<%dQ" % len(ASM_FRAME), bytes(mem))
    regs = dict(zip(ASM_FRAME, slots))
    del regs["csr"]
    regs["rsp"] = sp + ASM_FRAME_SIZE + ASM_RED_ZONE
    return regs


def _read_frame0_regs():
    f = gdb.newest_frame()
    return {r: int(f.read_register(r)) & U64 for r in SAVED_REGS}


def _write_regs(regs):
    # Writes go to frame 0 (the real registers) only while it is
    # selected; in an older frame they would land in saved stack slots.
    for r, v in regs.items():
        gdb.newest_frame().select()
        gdb.execute("set $%s = %#x" % (r, v), to_string=True)


def _bt_in_context(regs, bt_args):
    """Runs `bt` with frame 0 loaded from `regs`; always restores."""
    sel = gdb.selected_frame()
    level = 0
    try:
        level = sel.level()
    except (AttributeError, gdb.error):
        pass
    gdb.newest_frame().select()
    saved = _read_frame0_regs()
    try:
        _write_regs(regs)
        return gdb.execute(("bt " + bt_args).strip(), to_string=True)
    finally:
        _write_regs(saved)
        # Reselect the frame the user had selected, quietly.
        f = gdb.newest_frame()
        try:
            for _ in range(level):
                f = f.older() or f
        except gdb.error:
            pass
        f.select()


class GtBt(gdb.Command):
    """Backtrace of a green thread.
Usage: gt-bt ID [bt options, e.g. full or -N]
ID is a green thread id from gt-list; 0 means the loop (the OS thread's
own stack).  For a thread that is not running, the saved registers are
loaded into frame 0 for the duration of `bt` and restored afterwards."""

    def __init__(self):
        super().__init__("gt-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        argv = gdb.string_to_argv(arg)
        if not argv:
            raise gdb.GdbError("usage: gt-bt ID [bt options]")
        try:
            tid = int(gdb.parse_and_eval(argv[0]))
        except gdb.error:
            raise gdb.GdbError("gt-bt: bad id %r" % argv[0])
        bt_args = " ".join(argv[1:])
        _check_arch()
        S = _ready_sched()
        if S is None:
            raise gdb.GdbError("gt-bt: the scheduler of this OS thread is "
                               "not initialised: no green threads")
        cur = int(S["current"])
        if tid == 0:
            if cur == 0:
                print("the loop (running):")
                gdb.execute(("bt " + bt_args).strip())
                return
            print("the loop (switched out; green thread %d runs):"
                  % int(S["current"]["id"]))
            print(_bt_in_context(_saved_regs(S["loop"]), bt_args), end="")
            return
        t = None
        for x in _threads(S):
            if int(x["id"]) == tid:
                t = x
                break
        if t is None:
            raise gdb.GdbError(
                "gt-bt: no live green thread with id %d on this OS thread "
                "(%s)" % (tid, "ids issued: 1..%d" % (int(S["next_id"]) - 1)))
        state = int(t["state"])
        head = "green thread %d (%s) %s" % (tid, _name(t),
                                           STATE_NAMES.get(state, "?"))
        if state == ST_PARKED:
            head += " on %s" % (_str(t["wait_what"]) or "?")
        if state == ST_RUNNING or int(t) == cur:
            print(head + ":")
            gdb.execute(("bt " + bt_args).strip())
            return
        if state == ST_DONE:
            raise gdb.GdbError("gt-bt: green thread %d has ended" % tid)
        if state == ST_READY and not int(t["started"]):
            print(head + " (not started yet; it will start at its "
                  "entry point):")
        else:
            print(head + ":")
        print(_bt_in_context(_saved_regs(t["ctx"]), bt_args), end="")


GtList()
GtBt()
