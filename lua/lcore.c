/* socketloop.core: loops, loop threads, and how Lua coroutines are run,
 * suspended and resumed on the green-thread runtime (see lsl.h). */
#include "lsl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static char MARKER; /* yielded by socket calls: "resume me with results" */
static __thread lua_State *top;

lua_State *lsl_top(void)
{
    return top;
}
void lsl_set_top(lua_State *co)
{
    top = co;
}

#if defined(LSL_LUAJIT)
static char NOOP; /* registry key: a C function that does nothing */
static int noop(lua_State *L)
{
    (void)L;
    return 0;
}
#endif

/* Why parking in place is safe on LuaJIT (2.1, x86-64, read in its
 * source), and what has to be put back after a switch.
 *
 * A switch happens only inside one of this module's C functions, called
 * by the interpreter's BC_FUNCC, or in C code below every Lua frame (the
 * resumer, the scheduler).  At such a point:
 *
 * - The C frames that belong to a coroutine are the chain L->cframe,
 *   pushed by each entry into the VM (lj_vm_call, lj_vm_pcall,
 *   lj_vm_cpcall, lj_vm_resume save the interpreter's registers there).
 *   A coroutine's chain lies wholly on the stack of the green thread it
 *   runs on, and stays there, untouched, while that thread is parked.  A
 *   coroutine that has yielded holds no C frame (its cframe is NULL), and
 *   both lua_resume and coroutine.resume refuse one whose cframe is set,
 *   so a parked coroutine cannot be resumed on another stack.
 *
 * - No trace is running, and none is being recorded.  The recorder never
 *   records a classic C function (lj_ffrecord.c: recff_c is recff_nyi):
 *   the trace is aborted, stopped or stitched, and assembled, while the
 *   interpreter is still at the call, before the function runs.  So
 *   global_State.jit_base is NULL and jit_State.state is idle at every
 *   switch.  That matters: the recorder follows whatever coroutine the
 *   interpreter runs next (lj_dispatch_ins sets J->L to it).  A stitched
 *   trace that starts after the call returns records L, as usual.  The
 *   one exception is C code that a trace calls directly, through the FFI
 *   (jit_base stays set there): a socket call reached from an FFI
 *   callback must not park, and is not supported.
 *
 * - global_State.cur_L is the one thing left wrong.  Every entry into the
 *   VM stores its lua_State there (vm_call, vm_pcall, vm_cpcall,
 *   vm_resume), and coroutine.resume stores it again when the coroutine
 *   comes back; but a lua_resume or lua_call that returns to C does not,
 *   nor does an error that unwinds into a Lua pcall (vm_unwind_ff).
 *   After a switch it names whatever coroutine another green thread ran
 *   last.  The trace exit handler (vm_exit_handler) restores a trace's
 *   snapshot into the lua_State it finds in cur_L, with the base it finds
 *   in jit_base: with cur_L wrong, a trace exit in L writes L's frame into
 *   another coroutine's stack (LuaJIT's issues #1066 and #1498 are this
 *   fault), and lj_state_shrinkstack could shrink the stack of a live
 *   trace.  So lsl_unpark calls a C function that does nothing, on L,
 *   before anything returns or raises into L's Lua code: vm_call's entry
 *   stores L in cur_L.  The nested call also leaves global_State.vmstate
 *   at "C", as it was before the switch (only the profiler and the exit
 *   handler read it).  LuaJIT 2.1 also stores cur_L in BC_FUNCC when a C
 *   function returns normally (with this call left out, test_torture
 *   still passes on Debian's LuaJIT); what it does not cover is an error
 *   raised after the switch and caught by a Lua pcall, and the C code
 *   that runs in between, which may call into Lua (a __gc).
 *
 * - global_State.tmpbuf is shared, but each of its users treats any call
 *   into Lua as clobbering it (string.format starts over after a
 *   __tostring), and a park is such a call to them; a trace sets its
 *   owner afresh on entry.
 *
 * - The garbage collector walks Lua stacks, never C stacks.  It may
 *   shrink or move a parked coroutine's stack, which C functions that
 *   call back into Lua already allow: the C API works by index, and the
 *   interpreter reloads L->base when a C function returns.
 *
 * - Errors: on x86-64 LuaJIT throws through the system's DWARF unwinder
 *   (lj_err_throw raises an exception; the VM's frames carry its
 *   personality routine).  The search ends at the nearest VM frame of the
 *   erring coroutine's chain, on the same green thread's stack as the
 *   throw, so an error never walks past a green thread's first frame;
 *   and that frame (gt__ctx_start) marks its return address undefined, so
 *   even an error nothing catches ends the walk cleanly (LuaJIT then
 *   calls its panic function).
 *
 * What stays global and is not switched: the hook state.  A socket call
 * must not park inside a debug hook, a jit.attach callback or a __gc
 * metamethod (where PUC Lua cannot yield either). */
void lsl_unpark(lua_State *L, lua_State *me)
{
    top = me;
#if defined(LSL_LUAJIT)
    lua_pushlightuserdata(L, &NOOP);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_call(L, 0, 0);
#else
    (void)L;
#endif
}
static char PASSTHROUGH; /* registry key: coroutines whose yields reach us */

#if LUA_VERSION_NUM < 502
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    for (; l->name; l++) {
        for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#endif

static int resume(lua_State *co, int nargs, int *nres)
{
#if LUA_VERSION_NUM >= 504
    return lua_resume(co, NULL, nargs, nres);
#else
#if LUA_VERSION_NUM >= 502
    int st = lua_resume(co, NULL, nargs);
#else
    int st = lua_resume(co, nargs);
#endif
    *nres = lua_gettop(co);
    return st;
#endif
}

/* LuaSocket's words, so that code written for blocking LuaSocket (and
 * Copas, and the original socketloop) matches them (see lsl.h). */
const char *lsl_sock_strerror(int err)
{
    switch (err) {
    case EADDRINUSE: return "address already in use";
    case EISCONN: return "already connected";
    case EACCES: return "permission denied";
    case ECONNREFUSED: return "connection refused";
    case ECONNABORTED:
    case ECONNRESET: return "closed";
    case ETIMEDOUT: return "timeout";
    default: return net_strerror(-err);
    }
}

const char *lsl_errstr(int rc)
{
    switch (rc) {
    case NET_ECLOSED:
    case NET_EEOF:
    case -EPIPE: return "closed"; /* as LuaSocket's I/O layer says */
    case -EMSGSIZE: return "line too long";
    case NET_ENOTFOUND: return "host or service not provided, or not known";
    case NET_ETRYAGAIN: return "temporary failure in name resolution";
    default: return rc > -4096 ? lsl_sock_strerror(-rc) : net_strerror(rc);
    }
}

int lsl_push_error(lua_State *L, int rc)
{
    lua_pushnil(L);
    lua_pushstring(L, lsl_errstr(rc));
    return 2;
}

#if LSL_HAS_ISYIELDABLE
/* Is t[L] set, t being the table at registry[ref] (or at the light
 * userdata key when ref is LUA_NOREF)? */
static int marked(lua_State *L, int ref, void *key)
{
    if (ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    } else {
        lua_pushlightuserdata(L, key);
        lua_rawget(L, LUA_REGISTRYINDEX);
    }
    lua_pushthread(L);
    lua_rawget(L, -2);
    int r = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return r;
}
#endif

/* A yield is safe only when it reaches a runner: from the loop thread
 * itself, or from a socketloop.coro thread, whose trampoline passes it up.
 * Any other coroutine belongs to the user, who would receive the yield. */
int lsl_can_yield(lua_State *L, lsl_loop *lp)
{
#if LSL_HAS_ISYIELDABLE
    if (!lua_isyieldable(L)) return 0;
    if (L == top) return 1; /* the loop thread being run */
    return marked(L, lp->threads_ref, NULL) ||
           marked(L, LUA_NOREF, &PASSTHROUGH);
#else
    /* Lua 5.1 and 5.2 cannot say whether a yield would cross a pcall, a
     * metamethod or a C call: always park instead. */
    (void)L;
    (void)lp;
    return 0;
#endif
}

int lsl_yield_op(lua_State *L)
{
    lua_pushlightuserdata(L, &MARKER);
    return lua_yield(L, 1);
}

/* Appends {co, traceback} to the loop's errors; the message is on co. */
static void record_error(lsl_loop *lp, lua_State *co)
{
    lua_State *A = lp->aux;
    lua_rawgeti(A, LUA_REGISTRYINDEX, lp->errors_ref);
    lua_createtable(A, 2, 0);
    lua_pushthread(co);
    lua_xmove(co, A, 1);
    lua_rawseti(A, -2, 1);
    lua_getglobal(A, "debug");
    lua_getfield(A, -1, "traceback");
    lua_remove(A, -2);
    lua_pushthread(co);
    lua_xmove(co, A, 1);
    lua_xmove(co, A, 1); /* the message */
    if (lua_pcall(A, 2, 1, 0) != 0) {
        /* debug.traceback failed (no memory): keep its error */
    }
    lua_rawseti(A, -2, 2);
    lua_rawseti(A, -2, ++lp->nerrors);
    lua_pop(A, 1);
}

static void thread_ended(lsl_loop *lp, lua_State *co)
{
    lua_State *A = lp->aux;
    lua_rawgeti(A, LUA_REGISTRYINDEX, lp->threads_ref);
    lua_pushthread(co);
    lua_xmove(co, A, 1);
    lua_pushnil(A);
    lua_rawset(A, -3);
    lua_pop(A, 1);
    lp->nthreads--;
}

/* Resumes loop thread co; 1 when it has returned (its stack is then
 * empty and it may run another function), 0 when it waits or failed. */
static int resume_now(lsl_loop *lp, lua_State *co, int nargs)
{
    lua_State *outer = top;
    top = co;
    int nres = 0, st = resume(co, nargs, &nres);
    top = outer;
    if (st == LUA_YIELD) {
        if (nres == 1 && lua_touserdata(co, -1) == &MARKER) {
            lua_pop(co, 1); /* waiting in a socket call */
            return 0;
        }
        lua_pop(co, nres);
        lua_pushstring(co, "socketloop: a loop thread yielded outside a "
                           "socket call (yield inside a coroutine of your "
                           "own, from coroutine.wrap or coroutine.create, "
                           "or use socketloop.coro)");
        record_error(lp, co);
    } else if (st != 0) {
        record_error(lp, co);
    }
    thread_ended(lp, co);
    if (st != 0) return 0;
    lua_settop(co, 0);
    return 1;
}

void lsl_fail(lsl_loop *lp, lua_State *co, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    lua_settop(co, 0);
    lua_pushvfstring(co, fmt, ap);
    va_end(ap);
    record_error(lp, co);
    thread_ended(lp, co);
}

int lsl_cannot_block(lua_State *L, const char *what)
{
    return luaL_error(L,
                      "socketloop: %s would block outside a loop thread "
                      "(start one with loop.newthread)",
                      what);
}

/* A resumed coroutine runs on the green thread that resumes it (the
 * loop's resumer, see lsl.h). */
void lsl_resume(lsl_loop *lp, lua_State *co, int nargs)
{
    (void)resume_now(lp, co, nargs);
}

typedef struct first_run {
    lsl_loop *lp;
    lua_State *co;
    int nargs;
} first_run;

static void first_runner(void *p)
{
    first_run r = *(first_run *)p;
    (void)resume_now(r.lp, r.co, r.nargs);
}

/* Runs a new loop thread now, up to its first wait: on a green thread of
 * its own, which it keeps if it parks in place. */
static void run_first(lua_State *L, lsl_loop *lp, lua_State *co, int nargs)
{
    static const gt_attr attr = {0, "lua", 0};
    /* The green thread copies this before the caller goes on. */
    first_run r = {lp, co, nargs};
    lua_State *outer = top;
    int64_t id = gt_spawn_attr(first_runner, &r, &attr);
    if (id > 0 && gt_run_now(id) == 0) {
        lsl_unpark(L, outer);
        return;
    }
    lsl_fail(lp, co, "socketloop: cannot run a loop thread: %s",
             gt_strerror(id > 0 ? -EBUSY : (int)id));
}

static lsl_loop *check_loop(lua_State *L)
{
    return luaL_checkudata(L, 1, LSL_LOOP);
}

static int new_table_ref(lua_State *L)
{
    lua_newtable(L);
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* core.new() -> loop.  Loops stay alive as long as the Lua state: their
 * threads and sockets point at them. */
static int l_new(lua_State *L)
{
    lsl_loop *lp = lua_newuserdata(L, sizeof *lp);
    memset(lp, 0, sizeof *lp);
    luaL_getmetatable(L, LSL_LOOP);
    lua_setmetatable(L, -2);
    lp->aux = lua_newthread(L);
    lp->aux_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lp->threads_ref = new_table_ref(L);
    lp->spare_ref = new_table_ref(L);
    lp->errors_ref = new_table_ref(L);
    lp->ready_tail = &lp->ready;
    lua_pushvalue(L, -1);
    luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* Finds and removes the error of thread co (or the first one when co is
 * NULL); pushes thread and message, or nothing. */
static int take_error(lua_State *L, lsl_loop *lp, const lua_State *co)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->errors_ref);
    int t = lua_gettop(L);
    for (int i = 1; i <= lp->nerrors; i++) {
        lua_rawgeti(L, t, i);
        lua_rawgeti(L, -1, 1);
        if (co && lua_tothread(L, -1) != co) {
            lua_pop(L, 2);
            continue;
        }
        lua_rawgeti(L, -2, 2);
        /* Shift the rest down. */
        for (int k = i; k < lp->nerrors; k++) {
            lua_rawgeti(L, t, k + 1);
            lua_rawseti(L, t, k);
        }
        lua_pushnil(L);
        lua_rawseti(L, t, lp->nerrors--);
        lua_remove(L, -3);
        lua_remove(L, t);
        return 2;
    }
    lua_pop(L, 1);
    return 0;
}

/* core.newthread(loop, f, ...) -> thread [, error]: runs f at once, up to
 * its first wait; an error before that is returned for the caller to
 * raise. */
/* A new loop thread, registered, pushed on L: a spare one if there is
 * one, else a new coroutine. */
static lua_State *new_thread(lua_State *L, lsl_loop *lp)
{
    lua_State *co;
    if (lp->nspare > 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lp->spare_ref);
        lua_rawgeti(L, -1, lp->nspare);
        lua_pushnil(L);
        lua_rawseti(L, -3, lp->nspare--);
        lua_remove(L, -2);
        co = lua_tothread(L, -1);
    } else {
        co = lua_newthread(L);
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->threads_ref);
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lp->nthreads++;
    return co;
}

static int l_newthread(lua_State *L)
{
    lsl_loop *lp = check_loop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int nargs = lua_gettop(L) - 2;
    lua_State *co = new_thread(L, lp);
    int t = lua_gettop(L);
    luaL_checkstack(co, nargs + 1, "too many arguments");
    for (int i = 2; i <= nargs + 2; i++) {
        lua_pushvalue(L, i);
        lua_xmove(L, co, 1);
    }
    run_first(L, lp, co, nargs);
    lua_pushvalue(L, t);
    if (take_error(L, lp, co)) {
        lua_remove(L, -2); /* the thread, pushed by take_error */
        return 2;
    }
    return 1;
}

/* A timer's callback that returns without waiting leaves its coroutine
 * to the next one: firing many timers then makes no coroutine each.  The
 * few kept are anchored in the loop's spare table. */
#define LSL_SPARE 8

void lsl_run_here(lsl_loop *lp, lua_State *from, int nargs)
{
    lua_State *co = new_thread(from, lp);
    lua_insert(from, -(nargs + 2));
    lua_xmove(from, co, nargs + 1); /* the function and its arguments */
    lua_pop(from, 1);               /* the thread: its loop's table holds it */
    /* The thread is off from's stack while it runs: other green threads
     * use from too while this one is parked in place. */
    if (resume_now(lp, co, nargs) && lp->nspare < LSL_SPARE) {
        lua_rawgeti(from, LUA_REGISTRYINDEX, lp->spare_ref);
        lua_pushthread(co);
        lua_xmove(co, from, 1);
        lua_rawseti(from, -2, ++lp->nspare);
        lua_pop(from, 1);
    }
}

/* core.dispatch(loop, timeout) -> more [, thread, error].  One round of
 * the OS thread's loop; `more` says whether this loop's threads still
 * wait, its timers are armed, or errors are still to come out.  Errors of loop
 * threads come out one per call. */
static int l_dispatch(lua_State *L)
{
    lsl_loop *lp = check_loop(L);
    int64_t deadline = -1;
    if (!lua_isnoneornil(L, 2)) {
        double t = luaL_checknumber(L, 2);
        deadline = gt_now() + (t > 0 ? (int64_t)(t * 1000 + 0.5) : 0);
    }
    if (!lp->nerrors && (lp->nthreads || lp->ntimers)) {
        int rc = gt_dispatch(deadline);
        if (rc == -EPERM)
            return luaL_error(L, "socketloop: dispatch called from inside a "
                                 "loop thread");
        lsl_unpark(L, top); /* other coroutines ran meanwhile */
    }
    int n = take_error(L, lp, NULL);
    lua_pushboolean(L, lp->nthreads > 0 || lp->ntimers > 0 || lp->nerrors > 0);
    lua_insert(L, -(n + 1));
    return 1 + n;
}

static int l_count(lua_State *L)
{
    lua_pushinteger(L, check_loop(L)->nthreads);
    return 1;
}

/* core.passthrough(co): yields of co reach the loop (socketloop.coro). */
static int l_passthrough(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_pushlightuserdata(L, &PASSTHROUGH);
    lua_rawget(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    return 0;
}

/* core.listen(loop, host, port [, backlog]) -> asocket | nil, err */
static int l_listen(lua_State *L)
{
    lsl_loop *lp = check_loop(L);
    const char *host = luaL_optstring(L, 2, "*");
    int port = (int)luaL_optinteger(L, 3, 0);
    int backlog = (int)luaL_optinteger(L, 4, 0);
    net_sock *s;
    int rc = net_listen(&s, host, port, backlog);
    if (rc < 0) return lsl_push_error(L, rc);
    lsl_push_sock(L, lp, s, LSL_SERVER);
    return 1;
}

/* core.adopt(loop, fd, server [, pending]) -> asocket | nil, err: takes a
 * descriptor over, with bytes its previous owner had buffered. */
static int l_adopt(lua_State *L)
{
    lsl_loop *lp = check_loop(L);
    int fd = (int)luaL_checkinteger(L, 2);
    int server = lua_toboolean(L, 3);
    size_t n = 0;
    const char *pending = luaL_optlstring(L, 4, "", &n);
    net_sock *s;
    int rc = net_wrap(&s, fd);
    if (rc < 0) return lsl_push_error(L, rc);
    if ((rc = net_unread(s, pending, n)) < 0) {
        net_release(s); /* the descriptor stays the caller's */
        return lsl_push_error(L, rc);
    }
    lsl_push_sock(L, lp, s, server ? LSL_SERVER : LSL_CLIENT);
    return 1;
}

static int l_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)gt_now() / 1000);
    return 1;
}

static int l_poller(lua_State *L)
{
    lua_pushstring(L, net_poller_name());
    return 1;
}

int luaopen_socketloop_core(lua_State *L)
{
    static const luaL_Reg loop_methods[] = {
        {"newthread", l_newthread}, {"dispatch", l_dispatch},
        {"listen", l_listen},       {"socket", lsl_socket},
        {"sleep", lsl_sleep},       {"adopt", l_adopt},
        {"count", l_count},         {"wq", lsl_wq_new},
        {"timer", lsl_timer_new},   {NULL, NULL}};
    static const luaL_Reg funcs[] = {{"new", l_new},
                                     {"passthrough", l_passthrough},
                                     {"now", l_now},
                                     {"poller", l_poller},
                                     {NULL, NULL}};
#if defined(LSL_LUAJIT)
    lua_pushlightuserdata(L, &NOOP);
    lua_pushcfunction(L, noop);
    lua_rawset(L, LUA_REGISTRYINDEX);
#endif
    /* The weak-keyed table of pass-through coroutines. */
    lua_pushlightuserdata(L, &PASSTHROUGH);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushstring(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawset(L, LUA_REGISTRYINDEX);

    luaL_newmetatable(L, LSL_LOOP);
    lua_newtable(L);
    luaL_setfuncs(L, loop_methods, 0);
#if SOCKETLOOP_HAS_TLS
    luaL_setfuncs(L, lsl_tls_loop_methods, 0);
#endif
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    luaopen_socketloop_asock(L);
    lsl_open_sync(L);
    lsl_open_timer(L);

    lua_newtable(L);
    luaL_setfuncs(L, funcs, 0);
    luaL_getmetatable(L, LSL_SOCK);
    lua_setfield(L, -2, "asocket_mt");
    lua_pushlightuserdata(L, &MARKER);
    lua_setfield(L, -2, "MARKER");
    return 1;
}
