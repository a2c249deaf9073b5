/* socketloop.core, built with TLS: asocket:starttls(params), which takes
 * LuaSec's parameter table, asocket:info(), and loop:waitfd() on which
 * socketloop.lua parks LuaSec's own connection objects (loop.wrap).
 *
 * After starttls every method of the socket goes through TLS: the net
 * layer's steps read and write through it, so receive, send, shutdown
 * and close keep their LuaSocket results. */
#include "lsl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* params[field] as a string, or NULL. */
static const char *opt_str(lua_State *L, const char *field)
{
    lua_getfield(L, 2, field);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1); /* the table still holds it */
    return s;
}

/* Whether params[field] is word, or a list that holds word. */
static int opt_has(lua_State *L, const char *field, const char *word)
{
    int found = 0;
    lua_getfield(L, 2, field);
    if (lua_type(L, -1) == LUA_TSTRING) {
        found = strcmp(lua_tostring(L, -1), word) == 0;
    } else if (lua_istable(L, -1)) {
        for (int i = 1; !found; i++) {
            lua_rawgeti(L, -1, i);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            const char *s = lua_tostring(L, -1);
            found = s && strcmp(s, word) == 0;
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return found;
}

/* params.alpn, a string or a list, as "a,b" on the stack; NULL if none. */
static const char *opt_alpn(lua_State *L)
{
    lua_getfield(L, 2, "alpn");
    if (lua_type(L, -1) == LUA_TSTRING) return lua_tostring(L, -1);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    /* The names and commas go on the stack, above the list, and are
     * joined at the end. */
    int t = lua_gettop(L), n = 0;
    for (int i = 1;; i++) {
        lua_rawgeti(L, t, i);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            break;
        }
        luaL_checkstack(L, 2, "alpn");
        if (i > 1) {
            lua_pushliteral(L, ",");
            lua_insert(L, -2);
            n++;
        }
        n++;
    }
    lua_concat(L, n); /* n = 0 pushes "" */
    lua_remove(L, t);
    return lua_tostring(L, -1);
}

/* Makes the configuration that params describe; NULL with the error
 * text pushed. */
static net_tls_config *config(lua_State *L, const char *name)
{
    const char *mode = opt_str(L, "mode"), *proto = opt_str(L, "protocol");
    const char *cert = opt_str(L, "certificate"), *key = opt_str(L, "key");
    const char *cafile = opt_str(L, "cafile"), *capath = opt_str(L, "capath");
    int server = mode && strcmp(mode, "server") == 0;
    int min = NET_TLS1_2, max = 0, rc, verify = NET_TLS_VERIFY_NONE;
    if (!mode || (!server && strcmp(mode, "client") != 0)) {
        lua_pushstring(L, "invalid mode");
        return NULL;
    }
    if (proto && strcmp(proto, "tlsv1_2") == 0) {
        max = NET_TLS1_2;
    } else if (proto && strcmp(proto, "tlsv1_3") == 0) {
        min = max = NET_TLS1_3;
    } else if (proto && strcmp(proto, "any") != 0) {
        lua_pushfstring(L, "invalid protocol (%s)", proto);
        return NULL;
    }
    /* LuaSec verifies nothing unless asked; "peer" with a server name
     * checks that name too. */
    if (opt_has(L, "verify", "peer"))
        verify = server || !name ? NET_TLS_VERIFY_CHAIN : NET_TLS_VERIFY_PEER;
    if (server && verify && !opt_has(L, "verify", "fail_if_no_peer_cert"))
        verify = NET_TLS_VERIFY_PEER;
    net_tls_config *c;
    if ((rc = net_tls_config_new(&c, server ? NET_TLS_SERVER : NET_TLS_CLIENT)))
        goto fail0;
    const char *alpn = opt_alpn(L);
    if ((rc = net_tls_config_verify(c, verify)) < 0 ||
        (rc = net_tls_config_versions(c, min, max)) < 0 ||
        ((cert || key) && (rc = net_tls_config_cert_file(
                               c, cert ? cert : "", key ? key : "")) < 0) ||
        ((cafile || capath) &&
         (rc = net_tls_config_ca(c, cafile, capath)) < 0) ||
        (alpn && (rc = net_tls_config_alpn(c, alpn)) < 0) ||
        (rc = net_tls_config_ciphers(c, opt_str(L, "ciphers"),
                                     opt_str(L, "ciphersuites"))) < 0)
        goto fail;
    if (alpn) lua_pop(L, 1);
    return c;
fail:
    if (alpn) lua_pop(L, 1);
    net_tls_config_free(c);
fail0:
    lua_pushstring(L, net_strerror(rc));
    return NULL;
}

/* client:starttls(params) -> the socket | nil, err.  params is LuaSec's
 * table (mode, protocol, key, certificate, cafile, capath, verify,
 * options, alpn, ciphers, ciphersuites) plus servername: the name sent
 * as SNI and, with verify "peer", checked against the certificate.
 * options (OpenSSL's option names) are not read: what they would turn
 * off is off already.  The socket's timeout bounds the handshake. */
static int starttls(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *name = opt_str(L, "servername");
    if (!a->s) return lsl_push_error(L, NET_ECLOSED);
    net_tls_config *c = config(L, name);
    if (!c) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    int rc = net_tls_attach(a->s, c, name);
    net_tls_config_free(c); /* the socket keeps its hold */
    if (rc < 0) return lsl_push_error(L, rc);
    lsl_op *o = lsl_take_op(L, a, 0, LSL_HANDSHAKE);
    if (!o) return 2;
    o->op.kind = NET_OP_HANDSHAKE;
    lua_pushvalue(L, 1); /* the result, and kept while it waits */
    o->data_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lsl_run_op(L, o, 0);
}

/* client:info() -> {protocol, cipher, alpn, subject} after starttls,
 * else nil. */
static int info(lua_State *L)
{
    lsl_sock *a = lsl_check_kind(L, LSL_CLIENT);
    const char *v = a->s ? net_tls_version(a->s) : NULL;
    char subject[256];
    if (!v) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 4);
    lua_pushstring(L, v);
    lua_setfield(L, -2, "protocol");
    lua_pushstring(L, net_tls_cipher(a->s));
    lua_setfield(L, -2, "cipher");
    const char *alpn = net_tls_alpn(a->s);
    if (alpn) {
        lua_pushstring(L, alpn);
        lua_setfield(L, -2, "alpn");
    }
    if (net_tls_peer_subject(a->s, subject, sizeof subject) == 0) {
        lua_pushstring(L, subject);
        lua_setfield(L, -2, "subject");
    }
    return 1;
}

/* loop:waitfd(fd, 'r' | 'w' [, seconds]) -> true | nil, err: parks the
 * loop thread until a descriptor of another library's is ready (a LuaSec
 * connection's).  It parks in place, as any wait that cannot yield. */
static int waitfd(lua_State *L)
{
    int fd = (int)luaL_checkinteger(L, 2);
    const char *dir = luaL_checkstring(L, 3);
    double t = luaL_optnumber(L, 4, -1);
    int64_t deadline = t < 0 ? -1 : gt_now() + lsl_ms(t);
    if (!gt_self()) return lsl_cannot_block(L, "waitfd");
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lua_State *me = lsl_top();
    lsl_park(lp);
    int rc = net_wait(fd, dir[0] == 'w' ? NET_OUT : NET_IN, deadline);
    lsl_unpark(L, me);
    if (rc < 0) return lsl_push_error(L, rc);
    lua_pushboolean(L, 1);
    return 1;
}

const luaL_Reg lsl_tls_methods[] = {
    {"starttls", starttls}, {"info", info}, {NULL, NULL}};
const luaL_Reg lsl_tls_loop_methods[] = {{"waitfd", waitfd}, {NULL, NULL}};
