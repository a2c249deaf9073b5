/* socketloop.core: the calls of an async socket that may wait (receive,
 * send, accept, connect, sleep), with the results of a blocking LuaSocket
 * TCP object; the object and its other methods are lmeth.c's.  Each I/O
 * call is one operation of the net layer (socketloop/net_op.h): started
 * at once; if it cannot finish, the coroutine either yields (the loop
 * carries the operation on and the coroutine is resumed with LuaSocket's
 * results) or the green thread under it parks in place, Lua frames and
 * all (see lsl.h). */
#include "lsl.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LSL_KEEP_BUF 4096 /* a receive buffer this small stays for the next */

/* The operation's bounds from the socket's timeouts: a 't' timeout bounds
 * the whole call, a 'b' timeout each wait with nothing moved.  A zero
 * timeout of either kind tries once. */
static void set_times(lsl_op *o)
{
    const lsl_sock *a = o->a;
    net_op *op = &o->op;
    int64_t t = a->tm_total >= 0 ? lsl_ms(a->tm_total) : -1;
    op->idle = a->tm_block >= 0 ? lsl_ms(a->tm_block) : -1;
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
    /* Only a connect's own fields live on the op's last cache line: the
     * other calls need not touch it. */
    if (o->kind == LSL_CONNECT || o->kind == LSL_UCONNECT) {
        free(o->host);
        free(o->lhost);
        free(o->addr);
        o->host = o->lhost = NULL;
        o->addr = NULL;
    }
    o->active = 0;
    o->a->busy &= ~(1u << o->dir);
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
            rc = NET_EEOF;
        if (rc) n = lsl_push_error(L, rc) + 1;
        lua_pushlstring(L, o->buf.data ? o->buf.data : "", o->buf.len);
        break;
    case LSL_SEND:
        if (rc) n = lsl_push_error(L, rc) + 1;
        lua_pushinteger(L, (lua_Integer)o->first + (lua_Integer)op->moved);
        break;
    case LSL_ACCEPT:
        if (rc)
            n = lsl_push_error(L, rc);
        else
            lsl_push_sock(L, o->lp, op->accepted, LSL_CLIENT)->local =
                o->a->local;
        break;
    case LSL_UCONNECT:
        /* As LuaSocket's Unix-domain object: 1 and a client, or the error
         * and a master that has lost its descriptor. */
        if (rc) {
            lsl_forget(o->a, 0);
            n = lsl_push_error(L, rc);
        } else {
            o->a->kind = LSL_CLIENT;
            lua_pushinteger(L, 1);
        }
        break;
    case LSL_SLEEP:
        if (rc)
            n = lsl_push_error(L, rc);
        else
            lua_pushboolean(L, 1);
        break;
    default: /* LSL_CONNECT, LSL_HANDSHAKE: the socket itself, truthy */
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
    if (o->kind == LSL_WAIT) {
        lsl_wait_resume(o);
        return;
    }
    if (o->kind == LSL_TIMER) {
        lsl_timer_fire(o);
        return;
    }
    lua_State *co = o->co;
    o->co = NULL;
    if (lua_status(co) != LUA_YIELD) {
        if (o->kind == LSL_ACCEPT && o->op.rc == 0) net_close(o->op.accepted);
        release(co, o);
        return;
    }
    int n = push_results(co, o);
    lsl_resume(o->lp, co, n);
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
        if (o->kind == LSL_WAIT) {
            /* Its queue takes the waiter back when it goes. */
            lsl_wait_fail(o, gt_strerror((int)id));
            continue;
        }
        if (o->kind == LSL_TIMER) {
            lsl_timer_drop(o); /* no thread to run its function on */
            continue;
        }
        lsl_fail(lp, o->co, "socketloop: cannot run a loop thread: %s",
                 gt_strerror((int)id));
        o->co = NULL;
        release(lp->aux, o);
    }
    lp->ready_tail = &lp->ready;
}

void lsl_park(lsl_loop *lp)
{
    if (lp->resumer != gt_self()) return;
    lp->resumer = 0;
    if (lp->ready) start_resumer(lp);
}

static void enqueue(lsl_op *o)
{
    lsl_loop *lp = o->lp;
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

void lsl_enqueue(lsl_op *o)
{
    enqueue(o);
}

void lsl_unqueue(lsl_op *o)
{
    lsl_loop *lp = o->lp;
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
    lsl_loop *lp = o->lp;
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
        int parks = op->deadline != 0;
        if (parks) lsl_park(lp);
        net_op_run(op);
        if (parks) lsl_unpark(L, me);
        return push_results(L, o);
    }
    release(L, o);
    return lsl_cannot_block(L, "this call");
}

/* The socket's op number i, made on first use.  It lives outside the Lua
 * heap (the collector's pace follows that heap's size, and a busy server's
 * sockets should not make it hold more garbage). */
static lsl_op *op_at(lsl_sock *a, int i)
{
    lsl_op *o = a->op[i];
    if (o) return o;
    if (!(o = calloc(1, sizeof *o))) return NULL;
    o->a = a;
    o->lp = a->lp;
    o->data_ref = LUA_NOREF;
    a->op[i] = o;
    return o;
}

/* Takes an op for a new call in direction dir (0 reads, 1 writes), or
 * pushes LuaSocket's error.  One call per direction at a time.  Calls
 * take the first op unless it is in use: a coroutine that receives and
 * then sends touches one op's memory, not two, and a socket gets its
 * second op only when a receive and a send overlap. */
static lsl_op *take_op(lua_State *L, lsl_sock *a, int dir, int kind)
{
    if (a->busy & (1u << dir)) {
        lsl_push_error(L, -EALREADY);
        return NULL;
    }
    lsl_op *o = op_at(a, 0);
    if (o && o->active) o = op_at(a, 1);
    if (!o) {
        lsl_push_error(L, -ENOMEM);
        return NULL;
    }
    a->busy |= 1u << dir;
    o->dir = dir;
    o->kind = kind;
    /* Each call sets the fields its kind reads, and net_op_start or
     * net_op_run clears the layer's own part: only what a call sets for
     * some kinds alone needs clearing here. */
    o->op.s = a->s;
    o->op.udata = o;
    o->op.flags = 0;
    o->op.done = NULL;
    set_times(o);
    return o;
}

lsl_op *lsl_take_op(lua_State *L, lsl_sock *a, int dir, int kind)
{
    return take_op(L, a, dir, kind);
}
int lsl_run_op(lua_State *L, lsl_op *o, int anchor)
{
    return run_op(L, o, anchor);
}

/* --- The calls ---------------------------------------------------------- */

int lsl_receive(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
    int pattern;
    size_t n, plen = 0;
    /* LuaSocket reads the prefix first, then the pattern. */
    const char *prefix = luaL_optlstring(L, 3, "", &plen);
    lsl_check_pattern(L, 2, &pattern, &n);
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
            if (!d) {
                release(L, o);
                return lsl_push_error(L, -ENOMEM);
            }
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

int lsl_send(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
    size_t len, i, j;
    const char *data = luaL_checklstring(L, 2, &len);
    lsl_check_range(L, 3, len, &i, &j);
    if (i == j) { /* nothing to send: LuaSocket does not look further */
        lua_pushinteger(L, (lua_Integer)i);
        return 1;
    }
    if (!a->s) {
        lsl_push_error(L, NET_ECLOSED);
        lua_pushinteger(L, (lua_Integer)i);
        return 3;
    }
    lsl_op *o = take_op(L, a, 1, LSL_SEND);
    if (!o) return 2;
    o->first = i;
    o->op.kind = NET_OP_SEND;
    o->op.data = data + i;
    o->op.n = j - i;
    return run_op(L, o, 2);
}

int lsl_accept(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_SERVER);
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    lsl_op *o = take_op(L, a, 0, LSL_ACCEPT);
    if (!o) return 2;
    o->op.kind = NET_OP_ACCEPT;
    return run_op(L, o, 0);
}

/* The connect itself, on a green thread (names resolve off the loop
 * thread, and a green thread waits for them): a master with a descriptor
 * connects that one, with the options set on it; one without gets a new
 * descriptor.  A close meanwhile wins. */
static int do_connect(lsl_op *o)
{
    lsl_sock *a = o->a;
    unsigned epoch = a->epoch;
    net_sock *s = a->s;
    if (s && o->lhost) return -EISCONN; /* it has a local end: use bind */
    if (s) return net_connect_sock(s, o->host, o->port, o->op.deadline);
    int rc =
        net_connect(&s, o->host, o->port, o->lhost, o->lport, o->op.deadline);
    if (rc < 0) return rc;
    if (a->epoch != epoch || a->s) {
        net_close(s);
        return NET_ECLOSED;
    }
    a->s = s;
    a->family = AF_UNSPEC;
    net_addr ad = {0};
    if (net_local_addr(s, &ad) == 0) a->family = ad.family;
    return 0;
}

static void connect_thread(void *p)
{
    lsl_op *o = p;
    o->op.rc = do_connect(o);
    enqueue(o);
}

/* asocket:connect(host, port [, lhost [, lport]]) -> the socket (now a
 * client) | nil, err.  As in LuaSocket any class may call it (the kernel
 * answers for a socket connected already), and the socket becomes a
 * client whatever the outcome.  Its 't' or 'b' timeout bounds the whole
 * connect. */
int lsl_connect(lua_State *L)
{
    if (lsl_check_sock(L)->local)
        return lsl_unix_connect(L, lsl_check_kind(L, LSL_MASTER));
    lsl_sock *a = lsl_check_sock(L); /* any class, as in LuaSocket */
    const char *host = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    const char *lhost = luaL_optstring(L, 4, NULL);
    int lport = (int)luaL_optinteger(L, 5, 0);
    lsl_op *o = take_op(L, a, 1, LSL_CONNECT);
    if (!o) return 2;
    o->active = 1;
    /* A connect moves no bytes: a 'b' timeout bounds it as a whole. */
    if (o->op.idle >= 0 && o->op.deadline != 0) {
        int64_t d = gt_now() + o->op.idle;
        if (o->op.deadline < 0 || d < o->op.deadline) o->op.deadline = d;
    }
    if (o->op.deadline == 0) o->op.deadline = gt_now(); /* timeout 0 */
    o->port = port;
    o->lport = lport;
    lua_pushvalue(L, 1);
    o->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    o->host = strdup(host);
    o->lhost = lhost ? strdup(lhost) : NULL;
    int kind = a->kind;
    a->kind = LSL_CLIENT;
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
        lua_State *me = lsl_top();
        lsl_park(a->lp);
        o->op.rc = do_connect(o);
        lsl_unpark(L, me);
        return push_results(L, o);
    }
    a->kind = kind;
    release(L, o);
    return lsl_cannot_block(L, "connect");
}

/* client:setmaxline(bytes) -> 1 | nil, err: the longest line '*l'
 * takes (1 MiB by default).  A longer one fails with 'line too long' and
 * the limit's worth as the partial result; the rest of it is dropped, and
 * the next receive starts at the next line. */
int lsl_setmaxline(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
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
    lsl_op *o = op_at(a, 0);
    if (!o) return lsl_push_error(L, -ENOMEM);
    o->kind = LSL_SLEEP;
    o->op = (net_op){.kind = NET_OP_SLEEP,
                     .idle = -1,
                     .udata = o,
                     .deadline = gt_now() + (t > 0 ? lsl_ms(t) : 0)};
    return run_op(L, o, lua_gettop(L));
}

/* loop:socket() -> an unconnected asocket, for connect. */
int lsl_socket(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lsl_push_sock(L, lp, NULL, LSL_MASTER);
    return 1;
}

/* --- Arguments, as LuaSocket reads them --------------------------------- */

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
