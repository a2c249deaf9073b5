/* Unix-domain stream sockets: listen and connect by path, or by a name in
 * Linux's abstract namespace ("@name").  Accepting, reading, writing and
 * closing are the TCP code's: nothing there depends on the family. */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* The address of path: a file's path, or "@name" for an abstract name. */
static int unix_sockaddr(const char *path, struct sockaddr_un *sa,
                         socklen_t *len)
{
    size_t n;
    if (!path || !*path) return -EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    n = strlen(path);
    if (path[0] == '@') {
        /* The kernel takes the abstract name as the bytes after a NUL,
         * counted by the address length: no NUL ends it. */
        if (n == 1) return -EINVAL;
        if (n > sizeof sa->sun_path) return -ENAMETOOLONG;
        memcpy(sa->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
    }
    /* A path keeps its NUL inside sun_path, so that every program that
     * reads the address back gets a C string. */
    if (n >= sizeof sa->sun_path) return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

/* The address of path and a new non-blocking socket for it, or NULL with
 * *rc set and nothing made.  Argument errors come before the loop's. */
static net_sock *unix_open(const char *path, struct sockaddr_un *sa,
                           socklen_t *len, int *rc)
{
    int err;
    net_sock *s = NULL;
    net__loop *L = net__get(&err);
    if ((*rc = unix_sockaddr(path, sa, len)) < 0) return NULL;
    if (!L) {
        *rc = err;
        return NULL;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *rc = -errno;
        return NULL;
    }
    if ((*rc = net__sock_new(L, fd, &s)) < 0) {
        close(fd);
        return NULL;
    }
    return s;
}

int net_listen_unix(net_sock **out, const char *path, int backlog)
{
    struct sockaddr_un sa;
    socklen_t len;
    int rc;
    if (!out) return -EINVAL;
    net_sock *s = unix_open(path, &sa, &len, &rc);
    if (!s) return rc;
    if (bind(s->w.fd, (struct sockaddr *)&sa, len) < 0 ||
        listen(s->w.fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
        rc = -errno;
        net_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int net_connect_unix(net_sock **out, const char *path, int64_t deadline)
{
    struct sockaddr_un sa;
    socklen_t len;
    int rc;
    if (!out) return -EINVAL;
    net_sock *s = unix_open(path, &sa, &len, &rc);
    if (!s) return rc;
    rc = net_connect_addr(s, (struct sockaddr *)&sa, len, deadline);
    if (rc < 0) {
        net_close(s);
        return rc;
    }
    *out = s;
    return 0;
}
