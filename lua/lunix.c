/* socketloop.core: the methods of LuaSocket's Unix-domain stream objects
 * (socket.unix) that differ from TCP's: connect(path), bind(path) and
 * getsockname.  loop.wrap makes an asocket of such an object; the other
 * methods (accept, receive, send, close, settimeout, ...) are the TCP
 * ones, and the classes read "unixstream{master}" and so on.
 *
 * A path is handed to the kernel as LuaSocket hands it: up to its first
 * NUL, shorter than 108 bytes ("path too long" otherwise), and a failed
 * bind or connect leaves the object without a descriptor.  One addition:
 * a path whose first byte is NUL ("\0name") is a name in Linux's
 * abstract namespace, the whole string counted (LuaSocket would take it
 * as an empty path). */
#include "lsl.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

/* The address at argument 2: 0, or -1 with LuaSocket's error pushed. */
static int check_path(lua_State *L, struct sockaddr_un *sa, socklen_t *len)
{
    size_t n;
    const char *path = luaL_checklstring(L, 2, &n);
    if (n == 0 || path[0] != '\0') n = strlen(path); /* not abstract */
    if (n >= sizeof sa->sun_path) {
        lua_pushnil(L);
        lua_pushstring(L, "path too long");
        return -1;
    }
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 0;
}

/* master:bind(path) -> 1 | nil, err. */
int lsl_unix_bind(lua_State *L, lsl_sock *a)
{
    struct sockaddr_un sa;
    socklen_t len;
    if (check_path(L, &sa, &len) < 0) return 2;
    /* bind(2) on our own descriptor: naming it changes nothing the net
     * layer keeps (net_listen_unix does the same). */
    int fd = a->s ? net_fd(a->s) : -1;
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        int err = errno;
        lsl_forget(a, 0); /* as LuaSocket: a failed bind loses the socket */
        return lsl_push_error(L, -err);
    }
    lua_pushinteger(L, 1);
    return 1;
}

/* master:connect(path) -> 1 | nil, err; the object becomes a client, or
 * loses its descriptor (see push_results).  Its timeouts bound the call
 * as a TCP connect's do. */
int lsl_unix_connect(lua_State *L, lsl_sock *a)
{
    struct sockaddr_un sa;
    socklen_t len;
    if (check_path(L, &sa, &len) < 0) return 2;
    if (!a->s) return lsl_push_error(L, NET_ECLOSED); /* LuaSocket's word */
    /* Made first: once the op is taken, only running it gives it back. */
    void *addr = malloc(sizeof sa);
    if (!addr) return lsl_push_error(L, -ENOMEM);
    lsl_op *o = lsl_take_op(L, a, 1, LSL_UCONNECT);
    if (!o) {
        free(addr);
        return 2;
    }
    net_op *op = &o->op;
    if (op->idle >= 0 && op->deadline != 0) {
        int64_t d = gt_now() + op->idle;
        if (op->deadline < 0 || d < op->deadline) op->deadline = d;
    }
    o->addr = addr;
    memcpy(o->addr, &sa, sizeof sa);
    op->kind = NET_OP_CONNECT;
    op->addr = o->addr;
    op->addrlen = len;
    return lsl_run_op(L, o, 1);
}

/* getsockname() -> path | nil, err, as LuaSocket gives it (the path up to
 * its NUL: "" for a socket without a name); an abstract name comes back
 * whole, with its leading NUL.  getpeername, which LuaSocket's object
 * lacks, gives the peer's the same way. */
int lsl_unix_name(lua_State *L, lsl_sock *a, int peer)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    int fd = a->s ? net_fd(a->s) : -1;
    memset(&sa, 0, sizeof sa);
    /* Read-only calls on our descriptor; net_local_addr's answer would
     * not tell an abstract name from a file whose path starts with '@'. */
    int r = peer ? getpeername(fd, (struct sockaddr *)&sa, &len)
                 : getsockname(fd, (struct sockaddr *)&sa, &len);
    if (r < 0) return lsl_push_error(L, -errno);
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (len > off + 1 && sa.sun_path[0] == '\0')
        lua_pushlstring(L, sa.sun_path, len - off);
    else
        lua_pushstring(L, sa.sun_path);
    return 1;
}
