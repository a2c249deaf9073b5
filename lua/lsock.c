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

/* The methods hold the socket metatable as their first upvalue: comparing
 * with it spares luaL_checkudata's registry lookup by name, a third of a
 * call's own cost.  Anything else (and the metamethods, which have no
 * upvalue) goes to luaL_checkudata, for its check and its error. */
static lsl_sock *check_sock(lua_State *L)
{
    lsl_sock *a = lua_touserdata(L, 1);
    if (a && lua_getmetatable(L, 1)) {
        int ours = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (ours) return a;
    }
    return luaL_checkudata(L, 1, LSL_SOCK);
}

static lsl_sock *check_kind(lua_State *L, int kind);
static void forget(lsl_sock *a, int keep_fd);

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
void lsl_forget(lsl_sock *a, int keep_fd)
{
    forget(a, keep_fd);
}

/* --- The calls ---------------------------------------------------------- */

static int m_receive(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_CLIENT);
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

static int m_send(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_CLIENT);
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

static int m_accept(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_SERVER);
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
    net_addr ad;
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
static int m_connect(lua_State *L)
{
    if (check_sock(L)->local)
        return lsl_unix_connect(L, check_kind(L, LSL_MASTER));
    lsl_sock *a = check_sock(L); /* any class, as in LuaSocket */
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
static int m_setmaxline(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_CLIENT);
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

/* The rest of the file: LuaSocket's classes, bind, listen, setfd, options
 * and the other methods that never wait. */
#include <limits.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static const char *const kind_names[] = {
    "tcp{client}",        "tcp{server}",        "tcp{master}",
    "unixstream{client}", "unixstream{server}", "unixstream{master}"};

/* LuaSocket's name of the class kind of a. */
static const char *class_name(const lsl_sock *a, int kind)
{
    return kind_names[kind + (a->local ? 3 : 0)];
}

/* Raises LuaSocket's error for a method called on the wrong class. */
static lsl_sock *check_kind(lua_State *L, int kind)
{
    lsl_sock *a = check_sock(L);
    if (a->kind != kind)
        luaL_argerror(L, 1,
                      lua_pushfstring(L, "%s expected", class_name(a, kind)));
    return a;
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
    a->epoch++;
    if (keep_fd)
        net_release(s); /* wakes waiters with 'closed'; keeps the fd open */
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
    if (a->local) return lsl_unix_bind(L, a);
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
            net_sock *s;
            if ((rc = net_wrap(&s, fd)) < 0) {
                close(fd);
                freeaddrinfo(res);
                return lsl_push_error(L, rc);
            }
            /* IPv6 only, as LuaSocket's tcp6() makes it. */
            if (ai->ai_family == AF_INET6) (void)net_setopt(s, NET_V6ONLY, 1);
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
    if (err) return lsl_push_error(L, -err);
    return push_ok(L);
}

/* master:listen([backlog = 32]) -> 1 | nil, err: it becomes a server. */
static int m_listen(lua_State *L)
{
    lsl_sock *a = check_kind(L, LSL_MASTER);
    int backlog = (int)luaL_optnumber(L, 2, 32);
    if (!a->s) return lsl_push_error(L, -EBADF);
    if (listen(net_fd(a->s), backlog) < 0) return lsl_push_error(L, -errno);
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
    if (a->local) return lsl_unix_name(L, a, peer);
    if (!a->s) return lsl_push_error(L, -EBADF);
    int rc = peer ? net_peer_addr(a->s, &ad) : net_local_addr(a->s, &ad);
    if (rc < 0) return lsl_push_error(L, rc);
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
    if (a->local) {
        lua_pushstring(L, "unix");
        return 1;
    }
    if (a->s && net_local_addr(a->s, &ad) == 0) family = ad.family;
    lua_pushstring(L, family == AF_INET6 ? "inet6" : "inet4");
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
    for (int i = 0; i < 2; i++) {
        lsl_op *o = a->op[i];
        if (!o) continue;
        if (o->active) net_op_cancel(&o->op);
        lsl_unqueue(o);
        net_buf_free(&o->buf);
        free(o->host);
        free(o->lhost);
        free(o->addr);
        free(o);
        a->op[i] = NULL;
    }
    if (a->s) net_close(a->s);
    a->s = NULL;
    return 0;
}

static int m_tostring(lua_State *L)
{
    lsl_sock *a = check_sock(L);
    lua_pushfstring(L, "%s: %p", class_name(a, a->kind), (void *)a);
    return 1;
}

/* For socketloop.lua only: class(sock [, 'client'|'server'|'master'
 * [, unix]]) -> LuaSocket's class name, after setting it (and whether the
 * socket is a Unix-domain one) if asked (a connect makes a client even
 * when it fails, as in LuaSocket). */
static int p_class(lua_State *L)
{
    static const char *const names[] = {"client", "server", "master", NULL};
    lsl_sock *a = check_sock(L);
    if (!lua_isnoneornil(L, 2)) a->kind = luaL_checkoption(L, 2, NULL, names);
    if (!lua_isnoneornil(L, 3)) a->local = lua_toboolean(L, 3);
    lua_pushstring(L, class_name(a, a->kind));
    return 1;
}

lsl_sock *lsl_push_sock(lua_State *L, lsl_loop *lp, net_sock *s, int kind)
{
    lsl_sock *a = lua_newuserdata(L, sizeof *a);
    int64_t age = 0;
    memset(a, 0, sizeof *a);
    a->lp = lp;
    a->kind = kind;
    a->family = AF_UNSPEC;
    a->tm_block = a->tm_total = -1;
    if (s) net_stats(s, NULL, NULL, &age);
    a->born = gt_now() - age;
    a->s = s;
    luaL_getmetatable(L, LSL_SOCK);
    lua_setmetatable(L, -2);
    return a;
}

int luaopen_socketloop_asock(lua_State *L)
{
    /* LuaSocket's TCP methods, all on every class (as there); those of
     * one class raise LuaSocket's error on the others. */
    static const luaL_Reg methods[] = {{"receive", m_receive},
                                       {"send", m_send},
                                       {"accept", m_accept},
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
                                       {"setoption", lsl_setoption},
                                       {"getoption", lsl_getoption},
                                       {"getfd", m_getfd},
                                       {"setfd", m_setfd},
                                       {"dirty", m_dirty},
                                       {"getstats", m_getstats},
                                       {"setstats", m_setstats},
                                       {"setmaxline", m_setmaxline},
                                       {NULL, NULL}};
    luaL_newmetatable(L, LSL_SOCK);
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1); /* the metatable, for check_sock */
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
