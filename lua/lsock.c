/* socketloop.core: async sockets with the methods and results of a
 * blocking LuaSocket TCP object.  Each I/O call is one operation of the
 * net layer (socketloop/net_op.h): started at once; if it cannot finish,
 * the coroutine either yields (the loop carries the operation on and the
 * coroutine is resumed with LuaSocket's results) or the green thread
 * under it parks in place, Lua frames and all (see lsl.h). */
#include "lsl.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define LSL_KEEP_BUF 4096 /* a receive buffer this small stays for the next */

static lsl_sock *check_sock(lua_State *L)
{
    return luaL_checkudata(L, 1, LSL_SOCK);
}

static int64_t ms(double seconds)
{
    return (int64_t)(seconds * 1000 + 0.5);
}

/* The operation's bounds from the socket's timeouts: a 't' timeout bounds
 * the whole call, a 'b' timeout each wait with nothing moved.  A zero
 * timeout of either kind tries once. */
static void set_times(lsl_op *o)
{
    const lsl_sock *a = o->a;
    net_op *op = &o->op;
    int64_t t = a->tm_total >= 0 ? ms(a->tm_total) : -1;
    op->idle = a->tm_block >= 0 ? ms(a->tm_block) : -1;
    op->deadline = t >= 0 ? gt_now() + t : -1;
    if (t == 0 || op->idle == 0) {
        op->deadline = 0;
        op->idle = -1;
    }
}

static void unanchor(lua_State *L, lsl_op *o)
{
    if (o->data_ref == LUA_NOREF) return;
    luaL_unref(L, LUA_REGISTRYINDEX, o->data_ref);
    o->data_ref = LUA_NOREF;
}

/* The call is over: what it held goes, except a small receive buffer. */
static void release(lua_State *L, lsl_op *o)
{
    unanchor(L, o);
    if (o->buf.cap > LSL_KEEP_BUF) net_buf_free(&o->buf);
    o->buf.len = 0;
    free(o->host);
    free(o->lhost);
    o->host = o->lhost = NULL;
    o->active = 0;
}

/* Pushes LuaSocket's results for a finished call onto L. */
static int push_results(lua_State *L, lsl_op *o)
{
    const net_op *op = &o->op;
    int rc = op->rc < 0 ? (int)op->rc : 0, n = 1;
    switch (o->kind) {
    case LSL_RECEIVE:
        /* '*a' that read nothing has met the end: LuaSocket says closed. */
        if (!rc && o->op.pattern == NET_ALL && o->buf.len == o->start)
            rc = NET_ECLOSED;
        if (rc) n = lsl_push_error(L, rc) + 1;
        lua_pushlstring(L, o->buf.data ? o->buf.data : "", o->buf.len);
        break;
    case LSL_SEND:
        if (rc) n = lsl_push_error(L, rc) + 1;
        lua_pushinteger(L, (lua_Integer)(o->first + op->moved));
        break;
    case LSL_ACCEPT:
        if (rc)
            n = lsl_push_error(L, rc);
        else
            lsl_push_sock(L, o->a->lp, op->accepted, LSL_CLIENT);
        break;
    case LSL_SLEEP:
        if (rc)
            n = lsl_push_error(L, rc);
        else
            lua_pushboolean(L, 1);
        break;
    default: /* LSL_CONNECT: the socket itself, truthy */
        if (rc)
            n = lsl_push_error(L, rc);
        else
            lua_rawgeti(L, LUA_REGISTRYINDEX, o->data_ref);
    }
    release(L, o);
    return n;
}

/* --- Coroutines waiting in the loop ---------------------------------- */

/* A yielded coroutine's call has ended: resume it with the results, or
 * drop them if it died meanwhile. */
static void resume_op(lsl_op *o)
{
    lua_State *co = o->co;
    o->co = NULL;
    if (lua_status(co) != LUA_YIELD) {
        if (o->kind == LSL_ACCEPT && o->op.rc == 0) net_close(o->op.accepted);
        release(co, o);
        return;
    }
    int n = push_results(co, o);
    lsl_resume(o->a->lp, co, n);
}

static void resume_ready(lsl_loop *lp, int64_t me)
{
    while (lp->ready && lp->resumer == me) {
        lsl_op *o = lp->ready;
        lp->ready = o->next;
        if (!lp->ready) lp->ready_tail = &lp->ready;
        o->next = NULL;
        o->queued = 0;
        resume_op(o);
    }
}

#if !defined(LSL_LUAJIT)
/* The green thread that resumes ready coroutines, one after the other,
 * for as long as there are any: one per batch, not one per resume.  If a
 * coroutine it resumes parks in place, another takes over (lsl_park). */
static void resumer(void *p)
{
    lsl_loop *lp = p;
    int64_t me = gt_self();
    resume_ready(lp, me);
    if (lp->resumer == me) lp->resumer = 0;
}

static void start_resumer(lsl_loop *lp)
{
    static const gt_attr attr = {0, "lua", 0};
    int64_t id = gt_spawn_attr(resumer, lp, &attr);
    if (id > 0) {
        lp->resumer = id;
        return;
    }
    /* No green thread: the coroutines waiting cannot go on. */
    while (lp->ready) {
        lsl_op *o = lp->ready;
        lp->ready = o->next;
        o->next = NULL;
        o->queued = 0;
        lsl_fail(lp, o->co, "socketloop: cannot run a loop thread: %s",
                 gt_strerror((int)id));
        o->co = NULL;
        release(lp->aux, o);
    }
    lp->ready_tail = &lp->ready;
}
#else
/* LuaJIT runs Lua on the loop's own stack only: a timer of the loop
 * resumes the coroutines after its poll. */
static void drain_done(net_op *op)
{
    lsl_loop *lp = op->udata;
    lp->draining = 0;
    lp->resumer = -1; /* marks the loop's stack as the resumer */
    resume_ready(lp, -1);
    lp->resumer = 0;
}

static void start_resumer(lsl_loop *lp)
{
    net_op *op = &lp->drain;
    if (lp->draining) return;
    *op = (net_op){.kind = NET_OP_SLEEP,
                   .deadline = gt_now(),
                   .idle = -1,
                   .done = drain_done,
                   .udata = lp};
    lp->draining = net_op_start(op) == 0;
}
#endif

void lsl_park(lsl_loop *lp)
{
#if !defined(LSL_LUAJIT)
    if (lp->resumer != gt_self()) return;
    lp->resumer = 0;
    if (lp->ready) start_resumer(lp);
#else
    (void)lp;
#endif
}

static void enqueue(lsl_op *o)
{
    lsl_loop *lp = o->a->lp;
    o->next = NULL;
    o->queued = 1;
    *lp->ready_tail = o;
    lp->ready_tail = &o->next;
    if (!lp->resumer) start_resumer(lp);
}

static void op_done(net_op *op)
{
    enqueue(LSL_CONTAINER(op, lsl_op, op));
}

void lsl_unqueue(lsl_op *o)
{
    lsl_loop *lp = o->a->lp;
    if (!o->queued) return;
    for (lsl_op **p = &lp->ready; *p; p = &(*p)->next) {
        if (*p != o) continue;
        *p = o->next;
        if (lp->ready_tail == &o->next) lp->ready_tail = p;
        break;
    }
    o->next = NULL;
    o->queued = 0;
}

/* Runs o's operation for L: it ends at once, or the coroutine yields
 * until it ends (anchor: a stack index to keep alive meanwhile, or 0),
 * or the green thread under L parks in place. */
static int run_op(lua_State *L, lsl_op *o, int anchor)
{
    lsl_loop *lp = o->a->lp;
    net_op *op = &o->op;
    o->active = 1;
    if (lsl_can_yield(L, lp)) {
        op->done = op_done;
        if (net_op_start(op)) return push_results(L, o);
        o->co = lsl_top();
        if (anchor) {
            lua_pushvalue(L, anchor);
            o->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        return lsl_yield_op(L);
    }
    if (op->deadline == 0 || (LSL_CAN_PARK && gt_self())) {
        lua_State *me = lsl_top();
        if (op->deadline != 0) lsl_park(lp);
        net_op_run(op);
        lsl_set_top(me);
        return push_results(L, o);
    }
    release(L, o);
    return lsl_cannot_block(L, "this call");
}

/* Takes o for a new call, or pushes LuaSocket's error. */
static lsl_op *take_op(lua_State *L, lsl_sock *a, int dir, int kind)
{
    lsl_op *o = &a->op[dir];
    if (o->active) {
        lsl_push_error(L, -EALREADY);
        return NULL;
    }
    o->kind = kind;
    o->op = (net_op){.s = a->s, .udata = o};
    set_times(o);
    return o;
}

/* --- The calls ---------------------------------------------------------- */

static int m_receive(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    int pattern;
    size_t n, plen = 0;
    lsl_check_pattern(L, 2, &pattern, &n);
    const char *prefix = luaL_optlstring(L, 3, "", &plen);
    /* As LuaSocket: a count the prefix already covers returns it without
     * reading, even on a closed socket; a closed one fails otherwise. */
    if (pattern == NET_BYTES && plen && n <= plen) {
        lua_pushlstring(L, prefix, plen);
        return 1;
    }
    if (!a->s) {
        lsl_push_error(L, NET_ECLOSED);
        lua_pushlstring(L, prefix, plen);
        return 3;
    }
    lsl_op *o = take_op(L, a, 0, LSL_RECEIVE);
    if (!o) return 2;
    o->buf.len = 0;
    if (plen) {
        if (o->buf.cap < plen) {
            char *d = realloc(o->buf.data, plen);
            if (!d) return o->active = 0, lsl_push_error(L, -ENOMEM);
            o->buf.data = d;
            o->buf.cap = plen;
        }
        memcpy(o->buf.data, prefix, plen);
        o->buf.len = plen;
    }
    o->start = plen;
    o->op.kind = NET_OP_RECEIVE;
    o->op.pattern = pattern;
    o->op.n = pattern == NET_BYTES ? n - plen : 0; /* n counts the prefix */
    o->op.out = &o->buf;
    if (pattern == NET_BYTES && lua_toboolean(L, 4)) o->op.flags = NET_OP_SOME;
    return run_op(L, o, 0);
}

static int m_send(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = (lua_Integer)luaL_optnumber(L, 3, 1);
    lua_Integer j = (lua_Integer)luaL_optnumber(L, 4, -1);
    /* Normalised as string.sub does. */
    if (i < 0) i = (lua_Integer)len + i + 1;
    if (i < 1) i = 1;
    if (j < 0) j = (lua_Integer)len + j + 1;
    if (j > (lua_Integer)len) j = (lua_Integer)len;
    if (!a->s) {
        lsl_push_error(L, NET_ECLOSED);
        lua_pushinteger(L, i - 1);
        return 3;
    }
    lsl_op *o = take_op(L, a, 1, LSL_SEND);
    if (!o) return 2;
    o->first = (size_t)(i - 1);
    o->op.kind = NET_OP_SEND;
    o->op.data = data + o->first;
    o->op.n = j < i ? 0 : (size_t)(j - i + 1);
    return run_op(L, o, 2);
}

static int m_accept(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    lsl_op *o = take_op(L, a, 0, LSL_ACCEPT);
    if (!o) return 2;
    o->op.kind = NET_OP_ACCEPT;
    return run_op(L, o, 0);
}

/* Runs the connect on a green thread of its own, which holds no Lua
 * frames (names resolve off the loop thread, and a green thread waits
 * for them), and resumes the coroutine when it is done. */
static void connect_thread(void *p)
{
    lsl_op *o = p;
    net_sock *s = NULL;
    int rc =
        net_connect(&s, o->host, o->port, o->lhost, o->lport, o->op.deadline);
    if (rc == 0 && !o->a->s && !o->a->closed)
        o->a->s = s;
    else if (rc == 0)
        net_close(s), rc = NET_ECLOSED; /* closed meanwhile */
    o->op.rc = rc;
    enqueue(o);
}

/* asocket:connect(host, port [, lhost [, lport]]) -> asocket | nil, err,
 * on an asocket made by loop:socket(); its 't' or 'b' timeout bounds the
 * whole connect. */
static int m_connect(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    const char *lhost = luaL_optstring(L, 4, NULL);
    int lport = (int)luaL_optinteger(L, 5, 0);
    if (a->s) return lsl_push_error(L, -EISCONN);
    lsl_op *o = take_op(L, a, 1, LSL_CONNECT);
    if (!o) return 2;
    o->active = 1;
    /* A connect moves no bytes: a 'b' timeout bounds it as a whole. */
    if (o->op.idle >= 0 && o->op.deadline != 0) {
        int64_t d = gt_now() + o->op.idle;
        if (o->op.deadline < 0 || d < o->op.deadline) o->op.deadline = d;
    }
    o->port = port;
    o->lport = lport;
    lua_pushvalue(L, 1);
    o->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    o->host = strdup(host);
    o->lhost = lhost ? strdup(lhost) : NULL;
    if (!o->host || (lhost && !o->lhost)) {
        o->op.rc = -ENOMEM;
        return push_results(L, o);
    }
    if (lsl_can_yield(L, a->lp)) {
        static const gt_attr attr = {0, "connect", 0};
        int64_t id = gt_spawn_attr(connect_thread, o, &attr);
        if (id < 0) {
            o->op.rc = (int)id;
            return push_results(L, o);
        }
        o->co = lsl_top();
        return lsl_yield_op(L);
    }
    if (LSL_CAN_PARK && gt_self()) {
        net_sock *s = NULL;
        lua_State *me = lsl_top();
        lsl_park(a->lp);
        o->op.rc = net_connect(&s, host, port, lhost, lport, o->op.deadline);
        lsl_set_top(me);
        if (!o->op.rc && !a->s && !a->closed)
            a->s = s;
        else if (!o->op.rc)
            net_close(s), o->op.rc = NET_ECLOSED; /* closed meanwhile */
        return push_results(L, o);
    }
    release(L, o);
    return lsl_cannot_block(L, "connect");
}

/* asocket:setmaxline(bytes) -> 1 | nil, err: the longest line '*l'
 * takes (1 MiB by default).  A longer one fails with 'line too long' and
 * the limit's worth as the partial result; the rest of it is dropped, and
 * the next receive starts at the next line. */
static int m_setmaxline(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_Number n = luaL_checknumber(L, 2);
    luaL_argcheck(L, n >= 1, 2, "positive size expected");
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    int rc = net_set_max_line(a->s, (size_t)n);
    if (rc < 0) return lsl_push_error(L, rc);
    lua_pushinteger(L, 1);
    return 1;
}

/* loop:sleep(seconds) -> true: lets the loop run meanwhile. */
int lsl_sleep(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    double t = luaL_checknumber(L, 2);
    /* A socket of its own, for the op's memory. */
    lsl_sock *a = lsl_push_sock(L, lp, NULL, LSL_MASTER);
    lsl_op *o = &a->op[0];
    o->kind = LSL_SLEEP;
    o->op = (net_op){.kind = NET_OP_SLEEP,
                     .idle = -1,
                     .udata = o,
                     .deadline = gt_now() + (t > 0 ? ms(t) : 0)};
    return run_op(L, o, lua_gettop(L));
}

/* loop:socket() -> an unconnected asocket, for connect. */
int lsl_socket(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lsl_push_sock(L, lp, NULL, LSL_MASTER);
    return 1;
}

static int m_close(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    net_sock *s = a->s;
    a->s = NULL;
    a->closed = 1;
    /* Waiters wake with 'closed': yielded ones join the ready queue now,
     * parked threads run when their turn comes; the descriptor closes
     * after the last has left. */
    if (s) net_close(s);
    lua_pushinteger(L, 1);
    return 1;
}

static int m_settimeout(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    double t = luaL_optnumber(L, 2, -1);
    const char *mode = luaL_optstring(L, 3, "b");
    if (mode[0] == 'b')
        a->tm_block = t;
    else if (mode[0] == 't' || mode[0] == 'r')
        a->tm_total = t;
    else
        return luaL_argerror(L, 3, "invalid timeout mode");
    lua_pushinteger(L, 1);
    return 1;
}

static int m_gettimeout(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushnumber(L, a->tm_block);
    lua_pushnumber(L, a->tm_total);
    return 2;
}

static int m_shutdown(lua_State *L)
{
    static const char *const names[] = {"both", "send", "receive", NULL};
    static const int hows[] = {SHUT_RDWR, SHUT_WR, SHUT_RD};
    lsl_sock *a = check_sock(L);
    int how = hows[luaL_checkoption(L, 2, "both", names)];
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    int rc = net_shutdown(a->s, how);
    if (rc < 0) return lsl_push_error(L, rc);
    lua_pushinteger(L, 1);
    return 1;
}

static int push_addr(lua_State *L, lsl_sock *a, int peer)
{
    net_addr ad;
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    int rc = peer ? net_peer_addr(a->s, &ad) : net_local_addr(a->s, &ad);
    if (rc < 0) return lsl_push_error(L, rc);
    lua_pushstring(L, ad.host);
    lua_pushinteger(L, ad.port);
    lua_pushstring(L, ad.family == AF_INET6 ? "inet6" : "inet");
    return 3;
}

static int m_getpeername(lua_State *L)
{
    return push_addr(L, check_sock(L), 1);
}
static int m_getsockname(lua_State *L)
{
    return push_addr(L, check_sock(L), 0);
}

static int m_getfamily(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    net_addr ad;
    if (!a->s || net_local_addr(a->s, &ad) < 0)
        return lsl_push_error(L, NET_ECLOSED);
    lua_pushstring(L, ad.family == AF_INET6 ? "inet6" : "inet4");
    return 1;
}

/* LuaSocket's option names. */
static int option(const char *name, int *level, int *opt)
{
    static const struct {
        const char *name;
        int level, opt;
    } t[] = {{"keepalive", SOL_SOCKET, SO_KEEPALIVE},
             {"reuseaddr", SOL_SOCKET, SO_REUSEADDR},
             {"reuseport", SOL_SOCKET, SO_REUSEPORT},
             {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY},
             {"recv-buffer-size", SOL_SOCKET, SO_RCVBUF},
             {"send-buffer-size", SOL_SOCKET, SO_SNDBUF},
             {"linger", SOL_SOCKET, SO_LINGER},
             {"error", SOL_SOCKET, SO_ERROR}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(name, t[i].name)) {
            *level = t[i].level;
            *opt = t[i].opt;
            return 0;
        }
    return -1;
}

static int m_setoption(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    const char *name = luaL_checkstring(L, 2);
    int level, opt, rc;
    if (option(name, &level, &opt) < 0 || opt == SO_ERROR)
        return luaL_argerror(L, 2, "unsupported option");
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    if (opt == SO_LINGER) {
        struct linger li = {0, 0};
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "on");
        lua_getfield(L, 3, "timeout");
        li.l_onoff = lua_toboolean(L, -2);
        li.l_linger = (int)lua_tointeger(L, -1);
        rc = setsockopt(net_fd(a->s), level, opt, &li, sizeof li);
    } else {
        int v = lua_isboolean(L, 3) ? lua_toboolean(L, 3)
                                    : (int)luaL_checkinteger(L, 3);
        rc = setsockopt(net_fd(a->s), level, opt, &v, sizeof v);
    }
    if (rc < 0) return lsl_push_error(L, -errno);
    lua_pushinteger(L, 1);
    return 1;
}

static int m_getoption(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    const char *name = luaL_checkstring(L, 2);
    int level, opt;
    if (option(name, &level, &opt) < 0)
        return luaL_argerror(L, 2, "unsupported option");
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    if (opt == SO_LINGER) {
        struct linger li;
        socklen_t len = sizeof li;
        if (getsockopt(net_fd(a->s), level, opt, &li, &len) < 0)
            return lsl_push_error(L, -errno);
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, li.l_onoff);
        lua_setfield(L, -2, "on");
        lua_pushinteger(L, li.l_linger);
        lua_setfield(L, -2, "timeout");
        return 1;
    }
    int v;
    socklen_t len = sizeof v;
    if (getsockopt(net_fd(a->s), level, opt, &v, &len) < 0)
        return lsl_push_error(L, -errno);
    if (opt == SO_ERROR)
        lua_pushstring(L, v ? lsl_errstr(-v) : "");
    else if (opt == SO_RCVBUF || opt == SO_SNDBUF)
        lua_pushinteger(L, v);
    else
        lua_pushboolean(L, v);
    return 1;
}

static int m_getfd(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushinteger(L, a->s ? net_fd(a->s) : -1);
    return 1;
}

static int m_dirty(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushboolean(L, a->s && net_buffered(a->s) > 0);
    return 1;
}

static int m_getstats(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    uint64_t in = 0, out = 0;
    int64_t age = 0;
    if (a->s) net_stats(a->s, &in, &out, &age);
    lua_pushnumber(L, (lua_Number)in);
    lua_pushnumber(L, (lua_Number)out);
    lua_pushnumber(L, (lua_Number)age / 1000);
    return 3;
}

static int m_setstats(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_Number in = luaL_checknumber(L, 2), out = luaL_checknumber(L, 3);
    lua_Number age = luaL_checknumber(L, 4);
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    int rc = net_set_stats(a->s, (uint64_t)in, (uint64_t)out, ms(age));
    if (rc < 0) return lsl_push_error(L, rc);
    lua_pushinteger(L, 1);
    return 1;
}

/* Runs when nothing refers to the socket any more: no coroutine waits on
 * it, except when the whole Lua state is closing; then the ops go too. */
static int m_gc(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    for (int dir = 0; dir < 2; dir++) {
        lsl_op *o = &a->op[dir];
        if (o->active) net_op_cancel(&o->op);
        lsl_unqueue(o);
        net_buf_free(&o->buf);
        free(o->host);
        free(o->lhost);
        o->host = o->lhost = NULL;
    }
    if (a->s) net_close(a->s);
    a->s = NULL;
    return 0;
}

static int m_tostring(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    static const char *const names[] = {"master", "client", "server"};
    lua_pushfstring(L, "tcp{%s}: %p", names[a->kind], (void *)a);
    return 1;
}

lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int kind)
{
    lsl_sock *a = lua_newuserdata(L, sizeof *a);
    memset(a, 0, sizeof *a);
    a->s = s;
    a->lp = lp;
    a->kind = kind;
    a->tm_block = a->tm_total = -1;
    for (int dir = 0; dir < 2; dir++) {
        a->op[dir].a = a;
        a->op[dir].data_ref = LUA_NOREF;
    }
    luaL_getmetatable(L, LSL_SOCK);
    lua_setmetatable(L, -2);
    return a;
}

int luaopen_socketloop_asock(lua_State *L)
{
    static const luaL_Reg methods[] = {{"receive", m_receive},
                                       {"send", m_send},
                                       {"accept", m_accept},
                                       {"close", m_close},
                                       {"connect", m_connect},
                                       {"settimeout", m_settimeout},
                                       {"gettimeout", m_gettimeout},
                                       {"shutdown", m_shutdown},
                                       {"getpeername", m_getpeername},
                                       {"getsockname", m_getsockname},
                                       {"getfamily", m_getfamily},
                                       {"setoption", m_setoption},
                                       {"getoption", m_getoption},
                                       {"getfd", m_getfd},
                                       {"dirty", m_dirty},
                                       {"getstats", m_getstats},
                                       {"setstats", m_setstats},
                                       {"setmaxline", m_setmaxline},
                                       {NULL, NULL}};
    luaL_newmetatable(L, LSL_SOCK);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    return 0;
}

/* Reads a receive pattern at arg: '*l' (or nothing), '*a', or a count
 * (a number, or a string that converts to one, as LuaSocket takes it). */
int lsl_check_pattern(lua_State *L, int arg, int *pattern, size_t *n)
{
    *pattern = NET_LINE;
    *n = 0;
    if (lua_isnoneornil(L, arg)) return 0;
    if (lua_isnumber(L, arg)) {
        lua_Number v = lua_tonumber(L, arg);
        luaL_argcheck(L, v >= 0, arg, "invalid receive pattern");
        *pattern = NET_BYTES;
        *n = (size_t)v;
        return 0;
    }
    const char *p = luaL_checkstring(L, arg);
    if (p[0] == '*') p++; /* LuaSocket 3 takes 'l' and 'a' too */
    if (p[0] == 'l')
        *pattern = NET_LINE;
    else if (p[0] == 'a')
        *pattern = NET_ALL;
    else
        luaL_argerror(L, arg, "invalid receive pattern");
    return 0;
}
