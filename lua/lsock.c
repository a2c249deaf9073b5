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

/* The rest of the file: LuaSocket's classes, bind, listen, setfd, options
 * and the other methods that never wait. */
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static const char *const kind_names[] = {"tcp{client}", "tcp{server}",
                                         "tcp{master}"};

/* Raises LuaSocket's error for a method called on the wrong class. */
static lsl_sock *check_kind(lua_State *L, int kind)
{
    lsl_sock *a = check_sock(L);
    if (a->kind != kind)
        luaL_argerror(L, 1,
                      lua_pushfstring(L, "%s expected", kind_names[kind]));
    return a;
}

/* LuaSocket's text for an errno: a few fixed words that callers match,
 * else the system's. */
static const char *sock_strerror(int err)
{
    switch (err) {
    case EADDRINUSE: return "address already in use";
    case EISCONN: return "already connected";
    case EACCES: return "permission denied";
    case ECONNREFUSED: return "connection refused";
    case ECONNABORTED:
    case ECONNRESET: return "closed";
    case ETIMEDOUT: return "timeout";
    default: return strerror(err);
    }
}

static int push_errno(lua_State *L, int err)
{
    lua_pushnil(L);
    lua_pushstring(L, sock_strerror(err));
    return 2;
}

/* LuaSocket's text for a getaddrinfo failure. */
static const char *gai_text(int rc)
{
    switch (rc) {
    case EAI_AGAIN: return "temporary failure in name resolution";
    case EAI_BADFLAGS: return "invalid value for ai_flags";
    case EAI_FAIL: return "non-recoverable failure in name resolution";
    case EAI_FAMILY: return "ai_family not supported";
    case EAI_MEMORY: return "memory allocation failure";
    case EAI_NONAME: return "host or service not provided, or not known";
    case EAI_OVERFLOW: return "argument buffer overflow";
    case EAI_SERVICE: return "service not supported for socket type";
    case EAI_SOCKTYPE: return "ai_socktype not supported";
    case EAI_SYSTEM: return strerror(errno);
    default: return gai_strerror(rc);
    }
}

static int push_ok(lua_State *L)
{
    lua_pushinteger(L, 1);
    return 1;
}

/* Gives the descriptor up without closing it: it belongs to whoever took
 * it over (setfd).  The poller must forget it first, while its number is
 * still ours, or it would keep reporting it.  The net layer should offer
 * this as a call of its own; until then this is the one place that
 * reaches into a net_sock here. */
static void detach(net_sock *s)
{
    if (s->registered) s->L->be->del(s->L->p, &s->w);
    s->registered = 0;
    s->w.fd = -1;
    net_close(s); /* wakes waiters with 'closed'; closes no descriptor */
}

/* The socket loses its descriptor (closed, or given away): it keeps its
 * family and its counters, as LuaSocket's object does. */
static void forget(lsl_sock *a, int keep_fd)
{
    net_sock *s = a->s;
    uint64_t in = 0, out = 0;
    net_addr ad;
    if (!s) return;
    net_stats(s, &in, &out, NULL);
    a->st_in += (double)in;
    a->st_out += (double)out;
    if (a->family == AF_UNSPEC && net_local_addr(s, &ad) == 0)
        a->family = ad.family;
    a->s = NULL; /* before the waiters wake, so they see it closed */
    if (keep_fd)
        detach(s);
    else
        net_close(s);
}

/* Takes s as the socket's descriptor. */
static void adopt(lsl_sock *a, net_sock *s)
{
    net_addr ad;
    a->s = s;
    if (net_local_addr(s, &ad) == 0) a->family = ad.family;
}

static int m_close(lua_State *L)
{
    /* Waiters wake with 'closed': watches fire now, parked threads when
     * they run; the descriptor closes after the last has left.  A master
     * stays a master without a descriptor, a client a client. */
    forget(check_sock(L), 0);
    return push_ok(L);
}

/* master:bind(address, port) -> 1 | nil, err.  The port goes to the
 * resolver as text, so service names work and an out-of-range number
 * fails as in LuaSocket; '*' is every address.  A master without a
 * descriptor, or with one of another family, gets one of the family
 * of the first address that resolves.  Names are resolved here, on the
 * loop's thread, as LuaSocket does: servers should bind numeric
 * addresses. */
static int m_bind(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_MASTER);
    const char *host = luaL_checkstring(L, 2);
    const char *port = luaL_checkstring(L, 3);
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = a->family;
    hints.ai_flags = AI_PASSIVE;
    if (!strcmp(host, "*")) host = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        lua_pushnil(L);
        lua_pushstring(L, gai_text(rc));
        return 2;
    }
    int err = 0, family = a->s ? a->family : AF_UNSPEC;
    for (ai = res; ai; ai = ai->ai_next) {
        if (!a->s || family != ai->ai_family) {
            forget(a, 0);
            int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC,
                            ai->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            if (ai->ai_family == AF_INET6) { /* as LuaSocket's tcp6() */
                int yes = 1;
                setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &yes, sizeof yes);
            }
            net_sock *s;
            if ((rc = net_wrap(&s, fd)) < 0) {
                close(fd);
                freeaddrinfo(res);
                return lsl_push_error(L, rc);
            }
            a->s = s;
            family = ai->ai_family;
        }
        if (bind(net_fd(a->s), ai->ai_addr, ai->ai_addrlen) == 0) {
            err = 0;
            a->family = family;
            break;
        }
        err = errno;
    }
    freeaddrinfo(res);
    if (err) return push_errno(L, err);
    return push_ok(L);
}

/* master:listen([backlog = 32]) -> 1 | nil, err: it becomes a server. */
static int m_listen(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_MASTER);
    int backlog = (int)luaL_optnumber(L, 2, 32);
    if (!a->s) return push_errno(L, EBADF);
    if (listen(net_fd(a->s), backlog) < 0) return push_errno(L, errno);
    a->kind = LSL_SERVER;
    return push_ok(L);
}

/* sock:setfd(fd): takes the descriptor fd over, giving up the one it had
 * without closing it (LuaSec's ssl.wrap takes a socket over this way;
 * setfd(-1) leaves the socket without one).  Unlike LuaSocket, which
 * takes any number, a descriptor that is no stream socket gives nil, err
 * and leaves the socket without one. */
static int m_setfd(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    int fd = (int)luaL_checknumber(L, 2);
    if (a->s && fd == net_fd(a->s)) return 0;
    forget(a, 1);
    if (fd < 0) return 0;
    net_sock *s;
    int rc = net_wrap(&s, fd);
    if (rc < 0) return lsl_push_error(L, rc);
    adopt(a, s);
    return 0;
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
    return push_ok(L);
}

static int m_gettimeout(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushnumber(L, a->tm_block);
    lua_pushnumber(L, a->tm_total);
    return 2;
}

/* client:shutdown([how]) -> 1: LuaSocket ignores what the system says. */
static int m_shutdown(lua_State *L)
{
    static const char *const names[] = {"both", "send", "receive", NULL};
    static const int hows[] = {SHUT_RDWR, SHUT_WR, SHUT_RD};
    lsl_sock *a = check_kind(L, LSL_CLIENT);
    int how = hows[luaL_checkoption(L, 2, "both", names)];
    if (a->s) (void)net_shutdown(a->s, how);
    return push_ok(L);
}

/* ip, port, family.  LuaSocket gives getsockname's port as text and
 * getpeername's as a number; so do these. */
static int push_addr(lua_State *L, lsl_sock *a, int peer)
{
    net_addr ad;
    if (!a->s) return push_errno(L, EBADF);
    int rc = peer ? net_peer_addr(a->s, &ad) : net_local_addr(a->s, &ad);
    if (rc < 0) return push_errno(L, -rc);
    lua_pushstring(L, ad.host);
    if (peer)
        lua_pushinteger(L, ad.port);
    else
        lua_pushfstring(L, "%d", ad.port);
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

/* 'inet6', else 'inet4' (also while the family is unknown). */
static int m_getfamily(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    net_addr ad;
    int family = a->family;
    if (a->s && net_local_addr(a->s, &ad) == 0) family = ad.family;
    lua_pushstring(L, family == AF_INET6 ? "inet6" : "inet4");
    return 1;
}

/* LuaSocket's TCP options, with how each is set and read. */
enum { OPT_BOOL, OPT_INT, OPT_LINGER, OPT_ERROR };
typedef struct lsl_option {
    const char *name;
    int level, opt, type;
    int set, get; /* which of setoption and getoption know it */
} lsl_option;

static const lsl_option options[] = {
    {"keepalive", SOL_SOCKET, SO_KEEPALIVE, OPT_BOOL, 1, 1},
    {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, OPT_BOOL, 1, 1},
    {"reuseport", SOL_SOCKET, SO_REUSEPORT, OPT_BOOL, 1, 1},
    {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY, OPT_BOOL, 1, 1},
    {"tcp-keepidle", IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT, 1, 1},
    {"tcp-keepcnt", IPPROTO_TCP, TCP_KEEPCNT, OPT_INT, 1, 1},
    {"tcp-keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, OPT_INT, 1, 1},
    {"tcp-defer-accept", IPPROTO_TCP, TCP_DEFER_ACCEPT, OPT_INT, 1, 0},
    {"tcp-fastopen", IPPROTO_TCP, TCP_FASTOPEN, OPT_INT, 1, 0},
#ifdef TCP_FASTOPEN_CONNECT
    {"tcp-fastopen-connect", IPPROTO_TCP, TCP_FASTOPEN_CONNECT, OPT_INT, 1, 0},
#endif
    {"ipv6-v6only", IPPROTO_IPV6, IPV6_V6ONLY, OPT_BOOL, 1, 0},
    {"recv-buffer-size", SOL_SOCKET, SO_RCVBUF, OPT_INT, 1, 1},
    {"send-buffer-size", SOL_SOCKET, SO_SNDBUF, OPT_INT, 1, 1},
    {"linger", SOL_SOCKET, SO_LINGER, OPT_LINGER, 1, 1},
    {"error", SOL_SOCKET, SO_ERROR, OPT_ERROR, 0, 1},
};

/* The option named at argument 2, or LuaSocket's error. */
static const lsl_option *check_option(lua_State *L, int set)
{
    const char *name = luaL_checkstring(L, 2);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (!strcmp(name, options[i].name) &&
            (set ? options[i].set : options[i].get))
            return &options[i];
    char shown[36]; /* LuaSocket shows at most 35 characters of it */
    snprintf(shown, sizeof shown, "%s", name);
    luaL_argerror(L, 2, lua_pushfstring(L, "unsupported option `%s'", shown));
    return NULL;
}

static int type_error(lua_State *L, int arg, const char *expected)
{
    return luaL_argerror(L, arg,
                         lua_pushfstring(L, "%s expected, got %s", expected,
                                         luaL_typename(L, arg)));
}

/* sock:setoption(name, value) -> 1 | nil, 'setsockopt failed'.  Values
 * are checked as LuaSocket checks them, before the descriptor is: a
 * socket without one (a socket.tcp() master, a closed socket) fails. */
static int m_setoption(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    const lsl_option *o = check_option(L, 1);
    struct linger li = {0, 0};
    int v = 0, rc;
    const void *p = &v;
    socklen_t len = sizeof v;
    if (o->type == OPT_BOOL) {
        if (!lua_isboolean(L, 3)) return type_error(L, 3, "boolean");
        v = lua_toboolean(L, 3);
    } else if (o->type == OPT_INT) {
        v = (int)lua_tonumber(L, 3); /* anything else is 0, as there */
    } else {
        if (!lua_istable(L, 3)) return type_error(L, 3, "table");
        lua_getfield(L, 3, "on");
        if (!lua_isboolean(L, -1))
            return luaL_argerror(L, 3, "boolean 'on' field expected");
        lua_getfield(L, 3, "timeout");
        if (!lua_isnumber(L, -1))
            return luaL_argerror(L, 3, "number 'timeout' field expected");
        li.l_onoff = lua_toboolean(L, -2);
        li.l_linger = (int)lua_tonumber(L, -1);
        p = &li;
        len = sizeof li;
    }
    rc = a->s ? setsockopt(net_fd(a->s), o->level, o->opt, p, len) : -1;
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "setsockopt failed");
        return 2;
    }
    return push_ok(L);
}

/* sock:getoption(name) -> value | nil, 'getsockopt failed'.  'error'
 * gives the pending error's text and takes it, or nil if there is none,
 * as LuaSocket does. */
static int m_getoption(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    const lsl_option *o = check_option(L, 0);
    struct linger li = {0, 0};
    int v = 0;
    void *p = &v;
    socklen_t len = sizeof v;
    if (o->type == OPT_LINGER) p = &li, len = sizeof li;
    if (!a->s || getsockopt(net_fd(a->s), o->level, o->opt, p, &len) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "getsockopt failed");
        return 2;
    }
    switch (o->type) {
    case OPT_BOOL: lua_pushboolean(L, v); break;
    case OPT_INT: lua_pushinteger(L, v); break;
    case OPT_ERROR:
        if (v)
            lua_pushstring(L, sock_strerror(v));
        else
            lua_pushnil(L);
        break;
    default:
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, li.l_onoff);
        lua_setfield(L, -2, "on");
        lua_pushinteger(L, li.l_linger);
        lua_setfield(L, -2, "timeout");
    }
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

static void raw_stats(lsl_sock *a, double *in, double *out)
{
    uint64_t i = 0, o = 0;
    if (a->s) net_stats(a->s, &i, &o, NULL);
    *in = (double)i;
    *out = (double)o;
}

/* client:getstats() -> received, sent, age in seconds. */
static int m_getstats(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_CLIENT);
    double in, out;
    raw_stats(a, &in, &out);
    lua_pushnumber(L, a->st_in + in);
    lua_pushnumber(L, a->st_out + out);
    lua_pushnumber(L, (lua_Number)(gt_now() - a->born) / 1000);
    return 3;
}

/* client:setstats([received [, sent [, age]]]) -> 1; what is left out
 * stays, as in LuaSocket. */
static int m_setstats(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_CLIENT);
    double in, out;
    raw_stats(a, &in, &out);
    /* Whole numbers, as LuaSocket keeps them. */
    double r = (double)(int64_t)luaL_optnumber(L, 2, a->st_in + in);
    double s = (double)(int64_t)luaL_optnumber(L, 3, a->st_out + out);
    a->st_in = r - in;
    a->st_out = s - out;
    if (lua_isnumber(L, 4)) a->born = gt_now() - ms(lua_tonumber(L, 4));
    return push_ok(L);
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
    lua_pushfstring(L, "%s: %p", kind_names[a->kind], (void *)a);
    return 1;
}

/* The operations that belong to one class, as LuaSocket's do.  They
 * also read their arguments as LuaSocket does on every Lua, handing the
 * operation plain integers: receive's pattern may be a numeric string,
 * send's i and j any number. */
static int k_receive(lua_State *L)
{
    int pattern;
    size_t n;
    check_kind(L, LSL_CLIENT);
    luaL_optstring(L, 3, ""); /* LuaSocket checks the prefix first */
    lsl_check_pattern(L, 2, &pattern, &n);
    if (pattern == NET_BYTES) {
        lua_pushinteger(L, (lua_Integer)n);
        lua_replace(L, 2);
    }
    return m_receive(L);
}
static int k_send(lua_State *L)
{
    size_t len, i, j;
    check_kind(L, LSL_CLIENT);
    luaL_checklstring(L, 2, &len);
    lsl_check_range(L, 3, len, &i, &j);
    /* The range as m_send counts it: 1-based, inclusive. */
    lua_settop(L, 2);
    lua_pushinteger(L, (lua_Integer)i + 1);
    lua_pushinteger(L, (lua_Integer)j);
    return m_send(L);
}
static int k_accept(lua_State *L)
{
    check_kind(L, LSL_SERVER);
    return m_accept(L);
}

/* For socketloop.lua only: class(sock [, 'client'|'server'|'master'])
 * -> LuaSocket's class name, after setting it if asked (a connect makes
 * a client even when it fails, as in LuaSocket). */
static int p_class(lua_State *L)
{
    static const char *const names[] = {"client", "server", "master", NULL};
    lsl_sock *a = check_sock(L);
    if (!lua_isnoneornil(L, 2)) a->kind = luaL_checkoption(L, 2, NULL, names);
    lua_pushstring(L, kind_names[a->kind]);
    return 1;
}

lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int kind)
{
    lsl_sock *a = lua_newuserdata(L, sizeof *a);
    int64_t age = 0;
    memset(a, 0, sizeof *a);
    a->lp = lp;
    a->kind = !s && kind == LSL_CLIENT ? LSL_MASTER : kind;
    a->family = AF_UNSPEC;
    a->tm_block = a->tm_total = -1;
    if (s) net_stats(s, NULL, NULL, &age);
    a->born = gt_now() - age;
    a->s = s;
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
    /* LuaSocket's TCP methods, all on every class (as there); those of
     * one class raise LuaSocket's error on the others. */
    static const luaL_Reg methods[] = {{"receive", k_receive},
                                       {"send", k_send},
                                       {"accept", k_accept},
                                       {"close", m_close},
                                       {"connect", m_connect},
                                       {"setpeername", m_connect},
                                       {"bind", m_bind},
                                       {"setsockname", m_bind},
                                       {"listen", m_listen},
                                       {"settimeout", m_settimeout},
                                       {"gettimeout", m_gettimeout},
                                       {"shutdown", m_shutdown},
                                       {"getpeername", m_getpeername},
                                       {"getsockname", m_getsockname},
                                       {"getfamily", m_getfamily},
                                       {"setoption", m_setoption},
                                       {"getoption", m_getoption},
                                       {"getfd", m_getfd},
                                       {"setfd", m_setfd},
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
    /* Taken out by socketloop.lua, which builds the class field on it. */
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, p_class);
    lua_setfield(L, -2, "class");
    lua_setfield(L, -2, "__lsl");
    lua_pop(L, 1);
    return 0;
}

int lsl_check_pattern(lua_State *L, int arg, int *pattern, size_t *n)
{
    *pattern = NET_LINE;
    *n = 0;
    if (lua_isnumber(L, arg)) { /* numeric strings too, as LuaSocket */
        lua_Number v = lua_tonumber(L, arg);
        luaL_argcheck(L, v >= 0, arg, "invalid receive pattern");
        *pattern = NET_BYTES;
        *n = v < (lua_Number)SIZE_MAX ? (size_t)v : SIZE_MAX;
        return 0;
    }
    const char *p = luaL_optstring(L, arg, "*l");
    if (p[0] == '*' && p[1] == 'l')
        *pattern = NET_LINE;
    else if (p[0] == '*' && p[1] == 'a')
        *pattern = NET_ALL;
    else
        luaL_argerror(L, arg, "invalid receive pattern");
    return 0;
}

/* A number argument truncated toward zero, as LuaSocket's (long) cast
 * of luaL_optnumber; huge values are clamped rather than undefined. */
static long opt_index(lua_State *L, int arg, long def)
{
    lua_Number v = luaL_optnumber(L, arg, (lua_Number)def);
    if (v != v) return 0;
    if (v >= (lua_Number)LONG_MAX) return LONG_MAX / 2;
    if (v <= (lua_Number)LONG_MIN) return LONG_MIN / 2;
    return (long)v;
}

int lsl_check_range(lua_State *L, int arg, size_t len, size_t *i, size_t *j)
{
    long start = opt_index(L, arg, 1), end = opt_index(L, arg + 1, -1);
    long n = (long)len;
    if (start < 0) start = n + start + 1;
    if (end < 0) end = n + end + 1;
    if (start < 1) start = 1;
    if (end > n) end = n;
    *i = (size_t)(start - 1);
    *j = end >= start ? (size_t)end : *i;
    return 0;
}
