/* socketloop.core: async sockets with the methods and results of a
 * blocking LuaSocket TCP object.  Each call tries its operation at once;
 * if it would block it either yields (the loop finishes it and resumes
 * the coroutine with the results) or parks in place (see lsl.h). */
#include "lsl.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static lsl_sock *check_sock(lua_State *L)
{
    return luaL_checkudata(L, 1, LSL_SOCK);
}

static int64_t ms(double seconds)
{
    return (int64_t)(seconds * 1000 + 0.5);
}

/* Sets the op's deadlines from the socket's timeouts: a 'b' timeout
 * bounds each wait, a 't' timeout the whole call. */
static void start_wait(lsl_op *op)
{
    int64_t d = op->block >= 0 ? gt_now() + op->block : -1;
    op->deadline = op->total;
    if (d >= 0 && (op->total < 0 || d < op->total)) op->deadline = d;
}

static void start_clock(lsl_op *op)
{
    lsl_sock *a = op->a;
    op->total = a->tm_total >= 0 ? gt_now() + ms(a->tm_total) : -1;
    op->block = a->tm_block >= 0 ? ms(a->tm_block) : -1;
    start_wait(op);
}

static size_t progress(const lsl_op *op)
{
    return op->kind == LSL_SEND ? op->pos : op->buf.len;
}

/* One attempt without waiting: 1 done (op->rc set), 0 would block on the
 * descriptor, 2 retry after op->backoff ms, 3 wait for the deadline. */
static int try_step(lsl_op *op)
{
    net_sock *s = op->a->s;
    if (op->kind == LSL_SLEEP) {
        op->rc = 0;
        return gt_now() >= op->deadline ? 1 : 3;
    }
    if (!s) {
        op->rc = NET_ECLOSED;
        return 1;
    }
    ssize_t r;
    switch (op->kind) {
    case LSL_RECEIVE: {
        size_t n = 0;
        /* Drained by the last read, and the poller will say when more
         * comes: the read could only say EAGAIN. */
        if (s->w.dry[0] && s->registered && !s->rlen) return 0;
        if (op->pattern == NET_BYTES && op->less_ok && op->want > op->buf.len) {
            /* The original's receive(n, prefix, less_is_ok): up to n
             * bytes, as soon as any have come. */
            /* Read into scratch space, so that a connection waiting
             * here holds no buffer of its own. */
            static __thread char scratch[16384];
            size_t k = op->want - op->buf.len;
            r = net__read(s, scratch, k < sizeof scratch ? k : sizeof scratch,
                          0);
            if (r == -ETIMEDOUT) return 0;
            if (r > 0) {
                char *d = realloc(op->buf.data, op->buf.len + (size_t)r);
                if (!d) return op->rc = -ENOMEM, 1;
                memcpy(d + op->buf.len, scratch, (size_t)r);
                op->buf.data = d;
                op->buf.len += (size_t)r;
                op->buf.cap = op->buf.len;
            }
            op->rc = r > 0 ? 0 : r ? (int)r : NET_ECLOSED;
            return 1;
        }
        if (op->pattern == NET_BYTES) {
            /* As LuaSocket: without a prefix even receive(0) reads. */
            if (op->buf.len >= op->want && op->start) return op->rc = 0, 1;
            n = op->want - op->buf.len;
        }
        r = net_receive(s, op->pattern, n, &op->buf, 0);
        if (r == -ETIMEDOUT) return 0;
        op->rc = r < 0 ? (int)r : 0;
        /* '*a' succeeds only if this call read something. */
        if (op->pattern == NET_ALL && !op->rc && op->buf.len == op->start)
            op->rc = NET_ECLOSED;
        return 1;
    }
    case LSL_SEND: {
        size_t sent = 0;
        if (s->w.dry[1] && s->registered) return 0; /* full, as above */
        r = net_send(s, op->data + op->pos, op->j - op->pos, &sent, 0);
        op->pos += sent;
        if (r == -ETIMEDOUT) return 0;
        op->rc = r < 0 ? (int)r : 0;
        return 1;
    }
    default: /* LSL_ACCEPT */
        r = net_accept(s, &op->accepted, 0);
        if (r == -ETIMEDOUT) return 0;
        if (r == -EMFILE || r == -ENFILE) {
            /* The connection stays queued: wait, do not spin. */
            op->backoff = op->backoff ? op->backoff * 2 : 5;
            if (op->backoff > 1000) op->backoff = 1000;
            return 2;
        }
        op->rc = (int)r;
        return 1;
    }
}

static void release(lua_State *L, lsl_op *op)
{
    net_buf_free(&op->buf);
    if (op->data_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, op->data_ref);
        op->data_ref = LUA_NOREF;
    }
    free(op->host);
    free(op->lhost);
    op->host = op->lhost = NULL;
    op->active = 0;
    op->done = 0;
}

/* Pushes LuaSocket's results for a finished op onto L. */
static int push_results(lua_State *L, lsl_op *op)
{
    int n;
    switch (op->kind) {
    case LSL_RECEIVE:
        if (!op->rc) {
            lua_pushlstring(L, op->buf.data ? op->buf.data : "", op->buf.len);
            n = 1;
        } else {
            n = lsl_push_error(L, op->rc);
            lua_pushlstring(L, op->buf.data ? op->buf.data : "", op->buf.len);
            n++;
        }
        break;
    case LSL_SEND:
        if (!op->rc) {
            lua_pushinteger(L, (lua_Integer)op->pos);
            n = 1;
        } else {
            n = lsl_push_error(L, op->rc);
            lua_pushinteger(L, (lua_Integer)op->pos);
            n++;
        }
        break;
    case LSL_ACCEPT:
        if (op->rc) {
            n = lsl_push_error(L, op->rc);
            break;
        }
        lsl_push_sock(L, op->a->lp, op->accepted, 0);
        op->accepted = NULL;
        n = 1;
        break;
    case LSL_SLEEP:
        if (op->rc) {
            n = lsl_push_error(L, op->rc);
            break;
        }
        lua_pushboolean(L, 1);
        n = 1;
        break;
    default: /* LSL_CONNECT: the socket itself, truthy */
        if (op->rc) {
            n = lsl_push_error(L, op->rc);
            break;
        }
        lua_rawgeti(L, LUA_REGISTRYINDEX, op->data_ref);
        n = 1;
    }
    release(L, op);
    return n;
}

static void op_timer(gt__ctimer *t);

static void resume_op(lsl_op *op)
{
    lua_State *co = op->co;
    if (lua_status(co) != LUA_YIELD) { /* it died meanwhile */
        if (op->accepted) net_close(op->accepted);
        op->accepted = NULL;
        release(co, op);
        return;
    }
    int n = push_results(co, op);
    lsl_resume(op->a->lp, co, n);
}

/* The op is over: resume its coroutine.  On PUC Lua that only queues a
 * runner green thread, so it may happen here, whoever finished the op (a
 * close by another coroutine, say).  LuaJIT runs Lua on the loop's stack
 * only: there the loop's timer does it, never a green thread or a call
 * in progress. */
static void finish(lsl_op *op)
{
    if (op->a->s) net__sock_unwatch(op->a->s, op->dir);
    gt__ctimer_stop(&op->timer);
#if defined(LSL_LUAJIT)
    op->done = 1;
    gt__ctimer_start(&op->timer, 0);
#else
    resume_op(op);
#endif
}

static int arm(lsl_op *op, int how);

static void step(lsl_op *op)
{
    size_t before = progress(op);
    int r = try_step(op);
    if (r == 1) {
        finish(op);
        return;
    }
    if (progress(op) != before) start_wait(op); /* 'b' restarts */
    if (arm(op, r) < 0) finish(op);
}

static void op_ready(net__watch *w, int rc)
{
    lsl_op *op = (lsl_op *)(void *)w;
    if (rc) {
        gt__ctimer_stop(&op->timer);
        op->rc = rc;
        finish(op);
    } else {
        step(op);
    }
}

static void op_timer(gt__ctimer *t)
{
    lsl_op *op = GT__CONTAINER(t, lsl_op, timer);
    if (op->done) {
        resume_op(op);
    } else if (op->retry || op->kind == LSL_SLEEP) {
        op->retry = 0;
        step(op); /* the accept back-off, or a sleep, is over */
    } else {
        op->rc = -ETIMEDOUT;
        finish(op);
    }
}

/* Waits for the descriptor (how 0) or the back-off (how 2), bounded by
 * the deadline.  < 0 if the op cannot wait (op->rc says why). */
static int arm(lsl_op *op, int how)
{
    int64_t until = op->deadline;
    op->retry = 0;
    if (how == 0) {
        int rc = net__sock_watch(op->a->s, op->dir, &op->watch);
        if (rc < 0) return op->rc = rc, rc;
    } else if (how == 2) {
        int64_t b = gt_now() + op->backoff;
        if (until < 0 || b < until) until = b, op->retry = 1;
    }
    if (until >= 0) gt__ctimer_start(&op->timer, until);
    return 0;
}

/* Waits in place: the calling green thread parks, Lua frames and all. */
static int run_parked(lua_State *L, lsl_op *op)
{
    net_sock *s = op->a->s; /* NULL for a sleep */
    lua_State *me = lsl_top();
    if (s) s->refs++; /* a close by another coroutine must not free it */
    for (;;) {
        size_t before = progress(op);
        int r = try_step(op), rc;
        if (r == 1) break;
        if (op->deadline >= 0 && gt_now() >= op->deadline) {
            op->rc = -ETIMEDOUT;
            break;
        }
        if (r == 3) {
            rc = gt_sleep(op->deadline);
        } else if (r == 2) {
            int64_t until = gt_now() + op->backoff;
            if (op->deadline >= 0 && op->deadline < until) until = op->deadline;
            rc = gt_sleep(until);
        } else {
            rc = net__sock_wait(s, op->dir, op->deadline);
        }
        if (rc < 0) {
            op->rc = rc;
            break;
        }
        if (progress(op) != before) start_wait(op);
    }
    if (s) net__unref(s);
    lsl_set_top(me);
    return push_results(L, op);
}

static int do_op(lua_State *L, lsl_op *op)
{
    op->active = 1;
    op->backoff = 0;
    op->rc = 0;
    if (op->kind != LSL_SLEEP) start_clock(op); /* sleep sets its own */
    int r = try_step(op);
    if (r == 1) return push_results(L, op);
    if (op->deadline >= 0 && gt_now() >= op->deadline) { /* timeout 0 */
        op->rc = op->kind == LSL_SLEEP ? 0 : -ETIMEDOUT;
        return push_results(L, op);
    }
    if (lsl_can_yield(L, op->a->lp)) {
        op->co = lsl_top();
        /* What the op points into must outlive the yield: the string
         * being sent, or a sleep's own socket. */
        if (op->kind == LSL_SEND || op->kind == LSL_SLEEP) {
            lua_pushvalue(L, op->kind == LSL_SEND ? 2 : -1);
            op->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        }
        if (arm(op, r) < 0) return push_results(L, op);
        return lsl_yield_op(L);
    }
    if (LSL_CAN_PARK && gt__S.current) return run_parked(L, op);
    release(L, op);
#if defined(LSL_LUAJIT)
    return luaL_error(L, "socketloop: this call cannot block here: the "
                         "coroutine cannot yield to the loop (it is inside "
                         "a C function, a metamethod or a user coroutine), "
                         "and LuaJIT cannot switch C stacks under live Lua "
                         "frames");
#else
    return luaL_error(L, "socketloop: this call would block outside a loop "
                         "thread (start one with loop.newthread)");
#endif
}

/* Takes op for a new call, or pushes LuaSocket's errors. */
static lsl_op *take_op(lua_State *L, lsl_sock *a, int dir, int kind)
{
    lsl_op *op = &a->op[dir];
    if (op->active) {
        lsl_push_error(L, -EALREADY);
        return NULL;
    }
    op->kind = kind;
    return op;
}

static int m_receive(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    int pattern = NET_LINE;
    size_t n = 0, plen = 0;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        lua_Number v = lua_tonumber(L, 2);
        luaL_argcheck(L, v >= 0, 2, "invalid receive pattern");
        pattern = NET_BYTES;
        n = (size_t)v;
    } else if (!lua_isnoneornil(L, 2)) {
        const char *p = luaL_checkstring(L, 2);
        if (p[0] == '*' && p[1] == 'l')
            pattern = NET_LINE;
        else if (p[0] == '*' && p[1] == 'a')
            pattern = NET_ALL;
        else
            luaL_argerror(L, 2, "invalid receive pattern");
    }
    const char *prefix = luaL_optlstring(L, 3, "", &plen);
    if (!a->s) {
        lsl_push_error(L, NET_ECLOSED);
        lua_pushvalue(L, 3);
        return 3;
    }
    lsl_op *op = take_op(L, a, 0, LSL_RECEIVE);
    if (!op) return 2;
    op->pattern = pattern;
    op->buf.len = 0;
    if (plen) {
        op->buf.data = malloc(plen);
        if (!op->buf.data) return op->active = 0, lsl_push_error(L, -ENOMEM);
        memcpy(op->buf.data, prefix, plen);
        op->buf.len = op->buf.cap = plen;
    }
    op->start = plen;
    op->less_ok = pattern == NET_BYTES && lua_toboolean(L, 4);
    op->want = n > plen ? n : plen; /* n counts the prefix, as in LuaSocket */
    return do_op(L, op);
}

static int m_send(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    lua_Integer i = luaL_optinteger(L, 3, 1), j = luaL_optinteger(L, 4, -1);
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
    lsl_op *op = take_op(L, a, 1, LSL_SEND);
    if (!op) return 2;
    op->data = data;
    op->i = (size_t)(i - 1);
    op->j = j < i ? (size_t)(i - 1) : (size_t)j;
    op->pos = op->i;
    return do_op(L, op);
}

static int m_accept(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    lsl_op *op = take_op(L, a, 0, LSL_ACCEPT);
    if (!op) return 2;
    op->accepted = NULL;
    return do_op(L, op);
}

/* Runs net_connect on a green thread of its own, which holds no Lua
 * frames, and finishes the op when it is done. */
static void connect_thread(void *p)
{
    lsl_op *op = p;
    net_sock *s = NULL;
    op->rc =
        net_connect(&s, op->host, op->port, op->lhost, op->lport, op->deadline);
    if (op->rc == 0) op->a->s = s;
    finish(op);
}

/* asocket:connect(host, port [, lhost [, lport]]) -> asocket | nil, err,
 * on an asocket made by loop:socket(); its 't' or 'b' timeout bounds the
 * whole connect. */
static int m_connect(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lsl_loop *lp = a->lp;
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    const char *lhost = luaL_optstring(L, 4, NULL);
    int lport = (int)luaL_optinteger(L, 5, 0);
    if (a->s) return lsl_push_error(L, -EISCONN);
    lsl_op *op = take_op(L, a, 1, LSL_CONNECT);
    if (!op) return 2;
    op->active = 1;
    op->rc = 0;
    start_clock(op);
    op->port = port;
    op->lport = lport;
    lua_pushvalue(L, 1);
    op->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    op->host = strdup(host);
    op->lhost = lhost ? strdup(lhost) : NULL;
    if (!op->host || (lhost && !op->lhost)) {
        op->rc = -ENOMEM;
        return push_results(L, op);
    }
    if (lsl_can_yield(L, lp)) {
        static const gt_attr attr = {0, "connect", 0};
        int64_t id = gt_spawn_attr(connect_thread, op, &attr);
        if (id < 0) {
            op->rc = (int)id;
            return push_results(L, op);
        }
        op->co = lsl_top();
        return lsl_yield_op(L);
    }
    if (LSL_CAN_PARK && gt__S.current) {
        net_sock *s = NULL;
        lua_State *me = lsl_top();
        op->rc = net_connect(&s, host, port, lhost, lport, op->deadline);
        lsl_set_top(me);
        if (!op->rc && !a->s)
            a->s = s;
        else if (!op->rc)
            net_close(s); /* closed meanwhile */
        return push_results(L, op);
    }
    op->rc = -EPERM;
    release(L, op);
    return luaL_error(L, "socketloop: connect would block outside a loop "
                         "thread, or where the coroutine cannot yield");
}

/* loop:sleep(seconds) -> true: lets the loop run meanwhile. */
int lsl_sleep(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    double t = luaL_checknumber(L, 2);
    /* A socket of its own, for the op's memory and timer. */
    lsl_sock *a = lsl_push_sock(L, lp, NULL, 0);
    lsl_op *op = &a->op[0];
    op->kind = LSL_SLEEP;
    op->block = -1;
    op->total = op->deadline = gt_now() + (t > 0 ? ms(t) : 0);
    return do_op(L, op);
}

/* loop:socket() -> an unconnected asocket, for connect. */
int lsl_socket(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lsl_push_sock(L, lp, NULL, 0);
    return 1;
}

static int m_close(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    net_sock *s = a->s;
    a->s = NULL;
    /* Waiters wake with 'closed': watches fire now, parked threads when
     * they run; the descriptor closes after the last has left. */
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
    a->s->in = (uint64_t)in;
    a->s->out = (uint64_t)out;
    a->s->born = gt_now() - ms(age);
    lua_pushinteger(L, 1);
    return 1;
}

/* Runs when nothing refers to the socket any more: no coroutine waits on
 * it, except when the whole Lua state is closing; then the ops go too. */
static int m_gc(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    for (int dir = 0; dir < 2; dir++) {
        gt__ctimer_stop(&a->op[dir].timer);
        if (a->s) net__sock_unwatch(a->s, dir);
        net_buf_free(&a->op[dir].buf);
    }
    if (a->s) net_close(a->s);
    a->s = NULL;
    return 0;
}

static int m_tostring(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushfstring(L, "asocket{%s}: %p",
                    a->server ? "server"
                    : a->s    ? "client"
                              : "closed",
                    a);
    return 1;
}

lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int server)
{
    lsl_sock *a = lua_newuserdata(L, sizeof *a);
    memset(a, 0, sizeof *a);
    a->s = s;
    a->lp = lp;
    a->server = server;
    a->tm_block = a->tm_total = -1;
    for (int dir = 0; dir < 2; dir++) {
        a->op[dir].a = a;
        a->op[dir].dir = dir;
        a->op[dir].watch.fn = op_ready;
        a->op[dir].timer.fn = op_timer;
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
