/* socketloop.core: setoption and getoption, with LuaSocket's names,
 * checks and results.  Every option goes through net_setopt and
 * net_getopt, so the library knows what is set on its descriptors. */
#include "lsl.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* How an option's Lua value is read and shown. */
enum { OPT_BOOL, OPT_INT, OPT_LINGER, OPT_ERROR };
typedef struct lsl_option {
    const char *name;
    int opt, type;
    int set, get; /* which of setoption and getoption know it (TCP) */
    int local;    /* a Unix-domain socket knows it too */
} lsl_option;

/* LuaSocket's TCP options; its Unix-domain objects set only keepalive,
 * reuseaddr and linger (and have no getoption, which ours offers for
 * those and 'error'). */
static const lsl_option options[] = {
    {"keepalive", NET_KEEPALIVE, OPT_BOOL, 1, 1, 1},
    {"reuseaddr", NET_REUSEADDR, OPT_BOOL, 1, 1, 1},
    {"reuseport", NET_REUSEPORT, OPT_BOOL, 1, 1, 0},
    {"tcp-nodelay", NET_NODELAY, OPT_BOOL, 1, 1, 0},
    {"tcp-keepidle", NET_KEEPIDLE, OPT_INT, 1, 1, 0},
    {"tcp-keepcnt", NET_KEEPCNT, OPT_INT, 1, 1, 0},
    {"tcp-keepintvl", NET_KEEPINTVL, OPT_INT, 1, 1, 0},
    {"tcp-defer-accept", NET_DEFER_ACCEPT, OPT_INT, 1, 0, 0},
    {"tcp-fastopen", NET_FASTOPEN, OPT_INT, 1, 0, 0},
    {"tcp-fastopen-connect", NET_FASTOPEN_CONNECT, OPT_INT, 1, 0, 0},
    {"ipv6-v6only", NET_V6ONLY, OPT_BOOL, 1, 0, 0},
    {"recv-buffer-size", NET_RCVBUF, OPT_INT, 1, 1, 0},
    {"send-buffer-size", NET_SNDBUF, OPT_INT, 1, 1, 0},
    {"linger", NET_LINGER, OPT_LINGER, 1, 1, 1},
    {"error", NET_ERROR, OPT_ERROR, 0, 1, 1},
};

/* The option named at argument 2, or LuaSocket's error. */
static const lsl_option *check_option(lua_State *L, const lsl_sock *a, int set)
{
    const char *name = luaL_checkstring(L, 2);
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const lsl_option *o = &options[i];
        if (strcmp(name, o->name) != 0 || !(set ? o->set : o->get)) continue;
        if (a->local && !o->local) break;
        return o;
    }
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

/* LuaSocket's linger time as an int, truncated as its cast truncates. */
static int to_int(lua_Number v)
{
    if (v != v) return 0;
    if (v >= (lua_Number)INT_MAX) return INT_MAX;
    if (v <= (lua_Number)INT_MIN) return INT_MIN;
    return (int)v;
}

/* sock:setoption(name, value) -> 1 | nil, 'setsockopt failed'.  Values
 * are checked as LuaSocket checks them, before the descriptor is: a
 * socket without one (a socket.tcp() master, a closed socket) fails.
 * One difference: a linger table with on = true and a negative timeout
 * lingers for INT_MAX seconds (LuaSocket hands the kernel the negative
 * number, which it takes as the longest time it can hold). */
int lsl_setoption(lua_State *L)
{
    lsl_sock *a = luaL_checkudata(L, 1, LSL_SOCK);
    const lsl_option *o = check_option(L, a, 1);
    int v = 0;
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
        v = to_int(lua_tonumber(L, -1));
        if (v < 0) v = INT_MAX;
        if (!lua_toboolean(L, -2)) v = -1; /* off; the kernel keeps its time */
    }
    if (!a->s || net_setopt(a->s, o->opt, v) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, "setsockopt failed");
        return 2;
    }
    lua_pushinteger(L, 1);
    return 1;
}

/* sock:getoption(name) -> value | nil, 'getsockopt failed'.  'error'
 * gives the pending error's text and takes it, or nil if there is none,
 * as LuaSocket does. */
int lsl_getoption(lua_State *L)
{
    lsl_sock *a = luaL_checkudata(L, 1, LSL_SOCK);
    const lsl_option *o = check_option(L, a, 0);
    int v = 0, t = 0;
    if (!a->s || net_getopt(a->s, o->opt, &v) < 0 ||
        (o->type == OPT_LINGER && net_getopt(a->s, NET_LINGER_TIME, &t) < 0)) {
        lua_pushnil(L);
        lua_pushstring(L, "getsockopt failed");
        return 2;
    }
    switch (o->type) {
    case OPT_BOOL: lua_pushboolean(L, v); break;
    case OPT_INT: lua_pushinteger(L, v); break;
    case OPT_ERROR:
        if (v)
            lua_pushstring(L, lsl_sock_strerror(-v));
        else
            lua_pushnil(L);
        break;
    default:
        lua_createtable(L, 0, 2);
        lua_pushboolean(L, v >= 0);
        lua_setfield(L, -2, "on");
        lua_pushinteger(L, t);
        lua_setfield(L, -2, "timeout");
    }
    return 1;
}
