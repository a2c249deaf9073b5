/* The Lua module's C core (socketloop.core): shared declarations.
 *
 * How Lua runs on the loop.  Every loop thread is a Lua coroutine.  A
 * socket call is one operation of the net layer (socketloop/net_op.h).
 * When it cannot finish at once and the coroutine can yield to the loop,
 * it yields and holds no C stack while it waits: the loop carries the
 * operation on, and once it has ended the coroutine joins its loop's
 * ready queue.  One green thread at a time (the resumer) takes the queue
 * in order and resumes each coroutine with LuaSocket's results; so a busy
 * loop takes one green thread per batch of resumes, not one per resume.
 * Where a yield cannot reach the loop (inside a gsub callback, a
 * metamethod, a user coroutine; anywhere on Lua 5.1 and 5.2) the call runs
 * the operation in the green thread under it, which parks in place, Lua
 * frames and all; if that thread was the resumer, another one takes the
 * queue over first.  LuaJIT parks in place as PUC Lua does: what its VM
 * keeps per running coroutine besides the Lua stack is one pointer,
 * global_State.cur_L, which the code that switches puts back (see
 * lsl_unpark in lcore.c, where the reasons are written out).
 *
 * The module uses only the public headers and the net layer's operation
 * interface. */
#ifndef LSL_H
#define LSL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strdup, SO_REUSEPORT: before any system header */
#endif

#include "socketloop.h"
#include "socketloop/net_op.h"

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen lua_objlen
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
#endif

/* Every Lua parks in place (on LuaJIT too, see lsl_unpark). */
#define LSL_CAN_PARK 1
#if defined(LSL_LUAJIT)
#define LSL_HAS_ISYIELDABLE 1
#else
#define LSL_HAS_ISYIELDABLE (LUA_VERSION_NUM >= 503)
#endif

#define LSL_SOCK "socketloop.asocket"
#define LSL_LOOP "socketloop.loop"

#define LSL_CONTAINER(p, type, field)                                          \
    ((type *)(void *)((char *)(p)-offsetof(type, field)))

typedef struct lsl_op lsl_op;

/* One Lua loop.  Several may share an OS thread's scheduler. */
typedef struct lsl_loop {
    lua_State *aux;      /* a thread of the loop's own, for error texts */
    int aux_ref;         /* its registry anchor */
    int threads_ref;     /* registry: table, loop coroutine -> true */
    int spare_ref;       /* registry: array of returned coroutines to reuse */
    int nspare;          /* how many it holds */
    int errors_ref;      /* registry: array of {thread, message} */
    int nthreads;        /* loop coroutines alive */
    int ntimers;         /* timers armed (ltimer.c): the loop goes on */
    int nerrors;         /* entries in errors */
    lsl_op *ready;       /* calls ended, coroutines to resume, in order */
    lsl_op **ready_tail; /* where the next one goes */
    int64_t resumer;     /* the green thread resuming them, or 0 */
} lsl_loop;

enum {
    LSL_RECEIVE,
    LSL_SEND,
    LSL_ACCEPT,
    LSL_CONNECT,
    LSL_SLEEP,
    LSL_UCONNECT,
    LSL_WAIT,     /* a waiter of lsync.c's wait queues, not a socket call */
    LSL_TIMER,    /* a timer of ltimer.c */
    LSL_HANDSHAKE /* starttls: its results are connect's */
};

/* A socket call in progress.  What every call touches comes first and
 * sits next to the net layer's operation; the connect-only fields last. */
struct lsl_op {
    struct lsl_sock *a; /* the socket */
    lsl_loop *lp;       /* its loop (a copy: the socket's memory is cold
                           while the loop hands out completions) */
    lua_State *co;      /* the coroutine that yielded in it, or NULL */
    lsl_op *next;       /* in the loop's ready queue */
    int queued;         /* it is there */
    int kind;           /* LSL_RECEIVE ... */
    int dir;            /* the call's direction: 0 reads, 1 writes */
    int active;         /* a call is in progress */
    int data_ref;       /* registry anchor of what the op points into */
    size_t first;       /* send: index of its first byte, 0-based */
    size_t start;       /* receive: length of the prefix */
    net_buf buf;        /* receive: the prefix and what came since */
    net_op op;          /* the net layer's operation */
    char *host, *lhost; /* connect: copies of the addresses */
    int port, lport;    /* connect: ports */
    void *addr;         /* Unix-domain connect: its address (malloc) */
};

/* LuaSocket's classes of TCP object, lsl_sock.kind.  A master is made
 * by loop:socket() or wraps a LuaSocket master; bind and connect are
 * its methods, listen makes it a server, connect a client. */
enum { LSL_CLIENT, LSL_SERVER, LSL_MASTER };

/* An async socket (userdata "socketloop.asocket"). */
typedef struct lsl_sock {
    /* A master's descriptor (NULL before bind or connect, as LuaSocket's
     * socket.tcp() has none); for clients and servers NULL once closed. */
    net_sock *s;
    lsl_loop *lp;    /* its loop */
    int kind;        /* LSL_CLIENT, LSL_SERVER or LSL_MASTER */
    int family;      /* AF_INET/AF_INET6 once known, else AF_UNSPEC */
    int local;       /* a Unix-domain socket (LuaSocket's socket.unix) */
    unsigned epoch;  /* bumped by close: a connect begun before it must
                        not land on the socket */
    double tm_block; /* settimeout 'b', seconds, < 0 none */
    double tm_total; /* settimeout 't', seconds, < 0 none */
    /* getstats: added to the net layer's counters (setstats moves them);
     * they hold the whole counts once the descriptor is gone. */
    double st_in, st_out;
    int64_t born;  /* gt_now() at birth, as getstats' age counts */
    unsigned busy; /* bit dir: a call in that direction is running */
    lsl_op *op[2]; /* made on first use; the second for overlapping calls */
} lsl_sock;

/* lcore.c */
/* The loop thread whose Lua code runs now on this OS thread: a waiting
 * coroutine is resumed through it, since a socketloop.coro thread's yield
 * reaches the loop through its loop thread's trampoline.  Code that
 * switches green threads under Lua saves and restores it. */
lua_State *lsl_top(void);
void lsl_set_top(lua_State *co);
/* Lua code running as L on a green thread that was switched away from
 * (a park in place, or a thread run at once that came back) goes on: the
 * loop thread being run becomes me again, and on LuaJIT the VM's own
 * idea of the running coroutine becomes L.  Called before anything
 * returns or raises into L's Lua code. */
void lsl_unpark(lua_State *L, lua_State *me);
int lsl_can_yield(lua_State *L, lsl_loop *lp);
int lsl_yield_op(lua_State *L);
void lsl_resume(lsl_loop *lp, lua_State *co, int nargs);
/* Pops a function and its nargs arguments from `from` and runs it now,
 * as a new loop thread, on the green thread that calls (the loop's
 * resumer: a timer firing).  The coroutine it runs in may have run an
 * earlier callback, which returned. */
void lsl_run_here(lsl_loop *lp, lua_State *from, int nargs);
/* Ends loop thread co with an error made from fmt. */
void lsl_fail(lsl_loop *lp, lua_State *co, const char *fmt, ...);
/* Raises the error for a call that can neither yield nor park. */
int lsl_cannot_block(lua_State *L, const char *what);
lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int kind);
int lsl_push_error(lua_State *L, int rc);
/* LuaSocket's text for an errno (its socket_strerror): the few fixed
 * words that callers match, else the system's. */
const char *lsl_sock_strerror(int err);
/* LuaSocket's words for any of our result codes: those above, and what
 * its I/O layer calls 'closed'. */
const char *lsl_errstr(int rc);

/* The methods hold the socket metatable as their first upvalue: comparing
 * with it spares luaL_checkudata's registry lookup by name, a third of a
 * call's own cost.  Anything else (and the metamethods, which have no
 * upvalue) goes to luaL_checkudata, for its check and its error. */
static inline lsl_sock *lsl_check_sock(lua_State *L)
{
    lsl_sock *a = (lsl_sock *)lua_touserdata(L, 1);
    if (a && lua_getmetatable(L, 1)) {
        int ours = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (ours) return a;
    }
    return (lsl_sock *)luaL_checkudata(L, 1, LSL_SOCK);
}

/* Seconds (a LuaSocket timeout) to ms, rounded. */
static inline int64_t lsl_ms(double seconds)
{
    return (int64_t)(seconds * 1000 + 0.5);
}

#if SOCKETLOOP_HAS_TLS
/* ltls.c: the socket methods starttls and info (registered with the
 * metatable as upvalue, as the others), and the loop method waitfd. */
extern const luaL_Reg lsl_tls_methods[];
extern const luaL_Reg lsl_tls_loop_methods[];
#endif

/* lsock.c: the calls that may wait. */
int lsl_receive(lua_State *L);
int lsl_send(lua_State *L);
int lsl_accept(lua_State *L);
int lsl_connect(lua_State *L);
int lsl_setmaxline(lua_State *L);
int lsl_socket(lua_State *L);
int lsl_sleep(lua_State *L);
/* The green thread under the running Lua code is about to park in place:
 * if it resumes the loop's queue, another one takes that over. */
void lsl_park(lsl_loop *lp);
/* Takes o out of its loop's ready queue (its socket is going away). */
void lsl_unqueue(lsl_op *o);
/* Puts o last in its loop's ready queue: its coroutine is resumed in
 * turn (for LSL_WAIT, by lsl_wait_resume). */
void lsl_enqueue(lsl_op *o);
/* Reads receive's pattern at arg as LuaSocket does: a number, or a
 * numeric string ("3", " 3", "0x2", "2.5": truncated), counts bytes
 * (*pattern NET_BYTES, *n); else a string starting "*l" (NET_LINE) or
 * "*a" (NET_ALL), nil meaning "*l".  Anything else raises LuaSocket's
 * error.  LuaSocket checks the prefix before the pattern.  Returns 0. */
int lsl_check_pattern(lua_State *L, int arg, int *pattern, size_t *n);
/* Reads send's i, j at arg, arg + 1 for a string of len bytes as
 * LuaSocket does (numbers or numeric strings, truncated; negative from
 * the end; clamped): the bytes to send are [*i, *j), 0-based, *j >= *i,
 * and lastIndex starts at *i.  Returns 0. */
int lsl_check_range(lua_State *L, int arg, size_t len, size_t *i, size_t *j);

/* For the methods in other files: the socket's op for a new call of kind
 * in direction dir (0 read, 1 write), or NULL with LuaSocket's error
 * pushed; running it (anchor: a stack index kept alive meanwhile, or 0);
 * the socket losing its descriptor (closed, or given away if keep_fd). */
lsl_op *lsl_take_op(lua_State *L, lsl_sock *a, int dir, int kind);
int lsl_run_op(lua_State *L, lsl_op *o, int anchor);
void lsl_forget(lsl_sock *a, int keep_fd);

/* lmeth.c: the socket object and the methods that never wait. */
int luaopen_socketloop_asock(lua_State *L);
/* Raises LuaSocket's error unless the method's object is of class kind. */
lsl_sock *lsl_check_kind(lua_State *L, int kind);

/* lunix.c: LuaSocket's socket.unix methods that differ from TCP's. */
int lsl_unix_connect(lua_State *L, lsl_sock *a);
int lsl_unix_bind(lua_State *L, lsl_sock *a);
int lsl_unix_name(lua_State *L, lsl_sock *a, int peer);

/* lsync.c: wait queues (see there).  loop:wq() makes one;
 * lsl_wait_resume resumes a waiter that the ready queue hands out;
 * lsl_open_sync registers the metatable. */
int lsl_wq_new(lua_State *L);
void lsl_wait_resume(lsl_op *o);
/* The waiter cannot be resumed (no green thread): its thread ends. */
void lsl_wait_fail(lsl_op *o, const char *why);
void lsl_open_sync(lua_State *L);

/* ltimer.c: loop:timer() makes one; lsl_timer_fire runs it when the
 * ready queue hands it out; lsl_open_timer registers the metatable. */
int lsl_timer_new(lua_State *L);
void lsl_timer_fire(lsl_op *o);
/* Disarms a timer whose function cannot run. */
void lsl_timer_drop(lsl_op *o);
void lsl_open_timer(lua_State *L);

/* lopt.c: the methods setoption and getoption. */
int lsl_setoption(lua_State *L);
int lsl_getoption(lua_State *L);

/* The module's only exported symbol. */
__attribute__((visibility("default"))) int
luaopen_socketloop_core(lua_State *L);

#endif
