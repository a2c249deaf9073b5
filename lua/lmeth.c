/* socketloop.core: the async socket object (its LuaSocket classes, its
 * metatable, its making from a descriptor) and the methods that never
 * wait: close, bind, listen, setfd, timeouts, shutdown, names, family,
 * descriptors, statistics.  The calls that may wait are lsock.c's; the
 * options lopt.c's. */
#include "lsl.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
lsl_sock *lsl_check_kind(lua_State *L, int kind)
{
    lsl_sock *a = lsl_check_sock(L);
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
void lsl_forget(lsl_sock *a, int keep_fd)
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
    lsl_forget(lsl_check_sock(L), 0);
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
    lsl_sock *a = lsl_check_kind(L, LSL_MASTER);
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
            lsl_forget(a, 0);
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
    lsl_sock *a = lsl_check_kind(L, LSL_MASTER);
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
    lsl_sock *a = lsl_check_sock(L);
    int fd = (int)luaL_checknumber(L, 2);
    if (a->s && fd == net_fd(a->s)) return 0;
    lsl_forget(a, 1);
    if (fd < 0) return 0;
    net_sock *s;
    int rc = net_wrap(&s, fd);
    if (rc < 0) return lsl_push_error(L, rc);
    adopt(a, s);
    return 0;
}

static int m_settimeout(lua_State *L)
{
    lsl_sock *a = lsl_check_sock(L);
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
    lsl_sock *a = lsl_check_sock(L);
    lua_pushnumber(L, a->tm_block);
    lua_pushnumber(L, a->tm_total);
    return 2;
}

/* client:shutdown([how]) -> 1: LuaSocket ignores what the system says. */
static int m_shutdown(lua_State *L)
{
    static const char *const names[] = {"both", "send", "receive", NULL};
    static const int hows[] = {SHUT_RDWR, SHUT_WR, SHUT_RD};
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
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
    return push_addr(L, lsl_check_sock(L), 1);
}
static int m_getsockname(lua_State *L)
{
    return push_addr(L, lsl_check_sock(L), 0);
}

/* 'inet6', else 'inet4' (also while the family is unknown). */
static int m_getfamily(lua_State *L)
{
    lsl_sock *a = lsl_check_sock(L);
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
    lsl_sock *a = lsl_check_sock(L);
    lua_pushinteger(L, a->s ? net_fd(a->s) : -1);
    return 1;
}

static int m_dirty(lua_State *L)
{
    lsl_sock *a = lsl_check_sock(L);
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
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
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
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
    double in, out;
    raw_stats(a, &in, &out);
    /* Whole numbers, as LuaSocket keeps them. */
    double r = (double)(int64_t)luaL_optnumber(L, 2, a->st_in + in);
    double s = (double)(int64_t)luaL_optnumber(L, 3, a->st_out + out);
    a->st_in = r - in;
    a->st_out = s - out;
    if (lua_isnumber(L, 4)) a->born = gt_now() - lsl_ms(lua_tonumber(L, 4));
    return push_ok(L);
}

/* Runs when nothing refers to the socket any more: no coroutine waits on
 * it, except when the whole Lua state is closing; then the ops go too. */
static int m_gc(lua_State *L)
{
    lsl_sock *a = lsl_check_sock(L);
    /* A started op is taken back first, so that the close below calls no
     * done into a state being collected; then the close wakes a thread
     * parked in place on the socket (at lua_close) while its op, which the
     * wake reads, still exists. */
    for (int i = 0; i < 2; i++)
        if (a->op[i] && a->op[i]->active) net_op_cancel(&a->op[i]->op);
    if (a->s) net_close(a->s);
    a->s = NULL;
    for (int i = 0; i < 2; i++) {
        lsl_op *o = a->op[i];
        if (!o) continue;
        lsl_unqueue(o);
        net_buf_free(&o->buf);
        free(o->host);
        free(o->lhost);
        free(o->addr);
        free(o);
        a->op[i] = NULL;
    }
    return 0;
}

static int m_tostring(lua_State *L)
{
    lsl_sock *a = lsl_check_sock(L);
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
    lsl_sock *a = lsl_check_sock(L);
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
    static const luaL_Reg methods[] = {{"receive", lsl_receive},
                                       {"send", lsl_send},
                                       {"accept", lsl_accept},
                                       {"close", m_close},
                                       {"connect", lsl_connect},
                                       {"setpeername", lsl_connect},
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
                                       {"setmaxline", lsl_setmaxline},
                                       {NULL, NULL}};
    luaL_newmetatable(L, LSL_SOCK);
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1); /* the metatable, for check_sock */
#if SOCKETLOOP_HAS_TLS
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, lsl_tls_methods, 1);
#endif
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
