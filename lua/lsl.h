/* The Lua module's C core (socketloop.core): shared declarations.
 *
 * How Lua runs on the loop.  Every loop thread is a Lua coroutine.  On PUC
 * Lua it is resumed by a short-lived green thread (a "runner") and holds
 * no C stack while it waits: a socket call that would block registers a
 * callback waiter (net__watch, gt__ctimer) and yields; the loop finishes
 * the operation in C and resumes the coroutine with LuaSocket's results.
 * Where a yield cannot reach the loop (inside a gsub callback, a
 * metamethod, a user coroutine; anywhere on Lua 5.1 and 5.2) the call
 * parks the runner green thread in place instead, Lua frames and all.
 * LuaJIT cannot survive C-stack switches under live Lua frames, so there
 * Lua runs only on the loop's own stack, and a call that can neither
 * yield nor park raises an error that says why. */
#ifndef LSL_H
#define LSL_H

#include "internal.h" /* the net layer's, with the runtime's park.h */

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen lua_objlen
void luaL_setfuncs(lua_State *L, const luaL_Reg *l, int nup);
#endif

#if defined(LSL_LUAJIT)
#define LSL_CAN_PARK 0 /* never switch C stacks under LuaJIT frames */
#define LSL_HAS_ISYIELDABLE 1
#else
#define LSL_CAN_PARK 1
#define LSL_HAS_ISYIELDABLE (LUA_VERSION_NUM >= 503)
#endif

/* One Lua loop.  Several may share an OS thread's scheduler. */
typedef struct lsl_loop {
    lua_State *aux;  /* a thread of the loop's own, for error texts */
    int aux_ref;     /* its registry anchor */
    int threads_ref; /* registry: table, loop coroutine -> true */
    int errors_ref;  /* registry: array of {thread, message} */
    int nthreads;    /* loop coroutines alive */
    int nerrors;     /* entries in errors */
} lsl_loop;

struct lsl_sock;

enum { LSL_RECEIVE, LSL_SEND, LSL_ACCEPT, LSL_CONNECT, LSL_SLEEP };

/* A socket operation whose coroutine yielded. */
typedef struct lsl_op {
    net__watch watch;   /* readiness, or the close */
    gt__ctimer timer;   /* its deadline */
    struct lsl_sock *a; /* the socket */
    lua_State *co;      /* the waiting coroutine */
    int dir;            /* 0 read, 1 write */
    int kind;           /* LSL_RECEIVE ... */
    int active;         /* registered */
    int pattern;        /* receive: NET_LINE, NET_ALL or NET_BYTES */
    size_t want;        /* receive NET_BYTES: total length wanted */
    net_buf buf;        /* receive: the prefix and what came since */
    const char *data;   /* send: the string (anchored by data_ref) */
    int data_ref;       /* its registry anchor */
    size_t i, j, pos;   /* send: 0-based range [i, j) and progress */
    size_t start;       /* receive: length of the prefix */
    int less_ok;        /* receive(n, prefix, true): whatever came */
    net_sock *accepted; /* accept: the new connection */
    int64_t backoff;    /* accept: pause when out of descriptors, ms */
    int rc;             /* the result, once done */
    char *host, *lhost; /* connect: copies of the addresses */
    int port, lport;    /* connect: ports */
    int64_t deadline;   /* of the current wait, absolute, or -1 */
    int64_t total;      /* of the whole call ('t' timeout), or -1 */
    int retry;          /* the timer ends an accept back-off */
    int done;           /* finished: the timer resumes the coroutine */
    int64_t block;      /* 'b' timeout in ms for each wait, or -1 */
} lsl_op;

/* LuaSocket's classes of TCP object, lsl_sock.kind.  A master is made
 * by loop:socket() or wraps a LuaSocket master; bind and connect are
 * its methods, listen makes it a server, connect a client.  Client is 0:
 * lsl_push_sock(L, lp, s, 0) with a descriptor is a client, without one
 * a master (an unconnected socket, or a sleep's private one). */
enum { LSL_CLIENT, LSL_SERVER, LSL_MASTER };

/* An async socket (userdata "socketloop.asocket"). */
typedef struct lsl_sock {
    /* A master's descriptor (NULL before bind or connect, as LuaSocket's
     * socket.tcp() has none); for clients and servers NULL once closed. */
    net_sock *s;
    lsl_loop *lp;    /* its loop */
    int kind;        /* LSL_CLIENT, LSL_SERVER or LSL_MASTER */
    int family;      /* AF_INET/AF_INET6 once known, else AF_UNSPEC */
    double tm_block; /* settimeout 'b', seconds, < 0 none */
    double tm_total; /* settimeout 't', seconds, < 0 none */
    /* getstats: added to the net layer's counters (setstats moves them);
     * they hold the whole counts once the descriptor is gone. */
    double st_in, st_out;
    int64_t born; /* gt_now() at birth, as getstats' age counts */
    lsl_op op[2]; /* read side and write side */
} lsl_sock;

/* lcore.c */
/* The loop thread whose Lua code runs now on this OS thread: a waiting
 * coroutine is resumed through it, since a socketloop.coro thread's yield
 * reaches the loop through its loop thread's trampoline.  Code that
 * switches green threads under Lua saves and restores it. */
lua_State *lsl_top(void);
void lsl_set_top(lua_State *co);
int lsl_can_yield(lua_State *L, lsl_loop *lp);
int lsl_yield_op(lua_State *L);
void lsl_resume(lsl_loop *lp, lua_State *co, int nargs);
lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int kind);
int lsl_push_error(lua_State *L, int rc);
const char *lsl_errstr(int rc);

/* lsock.c */
int luaopen_socketloop_asock(lua_State *L);
int lsl_socket(lua_State *L);
int lsl_sleep(lua_State *L);
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

/* The module's only exported symbol. */
__attribute__((visibility("default"))) int
luaopen_socketloop_core(lua_State *L);

#define LSL_SOCK "socketloop.asocket"
#define LSL_LOOP "socketloop.loop"

#endif
