/* Sockets: creation, closing while others wait, options and addresses.
 * What the poller watches for them is net/wait.c. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define NET__MAX_LINE ((size_t)1 << 20)

int net__sock_new(net__loop *L, int fd, net_sock **out)
{
    net_sock *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->w.fd = fd;
    s->w.slot = -1;
    s->L = L;
    s->owner = gt__serial(); /* net__get made the scheduler */
    s->refs = 1;
    s->max_line = NET__MAX_LINE;
    s->born = gt_now();
    L->nsocks++;
    *out = s;
    return 0;
}

void net__unref(net_sock *s)
{
    if (--s->refs) return;
    net__loop *L = s->L;
    if (s->tp) s->tp->free(s);
    s->tp = NULL;
    if (s->w.fd >= 0) close(s->w.fd);
    s->w.fd = -1;
    s->rlen = 0;
    net__rbuf_release(s);
    if (L->in_batch) {
        /* The poller's batch may still name it: free it after. */
        s->next_dead = L->dead;
        L->dead = s;
        return;
    }
    L->nsocks--;
    free(s);
}

void net__free_dead(net__loop *L)
{
    while (L->dead) {
        net_sock *s = L->dead;
        L->dead = s->next_dead;
        L->nsocks--;
        free(s);
    }
}

int net_wrap(net_sock **out, int fd)
{
    int rc, type;
    socklen_t len = sizeof type;
    net__loop *L = net__get(&rc);
    if (!out || fd < 0) return -EINVAL;
    if (!L) return rc;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) return -errno;
    if (type != SOCK_STREAM) return -ENOTSOCK;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return -errno;
    return net__sock_new(L, fd, out);
}

/* Closes s for its users: waiters wake with NET_ECLOSED, and the owner's
 * reference goes.  Returns the descriptor if keep_fd says the caller takes
 * it back, or 0. */
static int close_sock(net_sock *s, int keep_fd)
{
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    int fd = s->w.fd;
    /* A transport says goodbye (TLS: close_notify) if it can without
     * waiting; a released descriptor goes back as it is. */
    if (s->tp && !keep_fd) s->tp->shutdown(s);
    s->closed = 1;
    if (s->registered) s->L->be->del(s->L->p, &s->w);
    s->registered = 0;
    if (keep_fd) s->w.fd = -1; /* nobody closes it now */
    net__ops_closed(s);
    net__unref(s);
    return keep_fd ? fd : 0;
}

int net_close(net_sock *s)
{
    return close_sock(s, 0);
}

int net_release(net_sock *s)
{
    return close_sock(s, 1);
}

int net_shutdown(net_sock *s, int how)
{
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    if (s->tp && how != SHUT_RD) {
        int rc = s->tp->shutdown(s);
        if (rc < 0) return rc;
    }
    return shutdown(s->w.fd, how) < 0 ? -errno : 0;
}

/* No test of s->closed: once net_close has returned, the handle may be
 * freed memory, so no caller can see a socket that is closed. */
int net_fd(const net_sock *s)
{
    if (!s) return -1;
    if (net__alien(s)) return GT_EOWNER;
    return s->w.fd;
}

/* Each NET_ option: where the kernel keeps it, and how its value reads. */
enum { OPT_FLAG = 1, OPT_INT, OPT_LINGER, OPT_LINGER_TIME, OPT_ERROR };
typedef struct opt_desc {
    int level, name, type;
} opt_desc;

static const opt_desc *opt_find(int opt)
{
    static const opt_desc table[] = {
        [NET_NODELAY] = {IPPROTO_TCP, TCP_NODELAY, OPT_FLAG},
        [NET_KEEPALIVE] = {SOL_SOCKET, SO_KEEPALIVE, OPT_FLAG},
        [NET_REUSEADDR] = {SOL_SOCKET, SO_REUSEADDR, OPT_FLAG},
        [NET_REUSEPORT] = {SOL_SOCKET, SO_REUSEPORT, OPT_FLAG},
        [NET_RCVBUF] = {SOL_SOCKET, SO_RCVBUF, OPT_INT},
        [NET_SNDBUF] = {SOL_SOCKET, SO_SNDBUF, OPT_INT},
        [NET_LINGER] = {SOL_SOCKET, SO_LINGER, OPT_LINGER},
        [NET_LINGER_TIME] = {SOL_SOCKET, SO_LINGER, OPT_LINGER_TIME},
        [NET_KEEPIDLE] = {IPPROTO_TCP, TCP_KEEPIDLE, OPT_INT},
        [NET_KEEPCNT] = {IPPROTO_TCP, TCP_KEEPCNT, OPT_INT},
        [NET_KEEPINTVL] = {IPPROTO_TCP, TCP_KEEPINTVL, OPT_INT},
        [NET_V6ONLY] = {IPPROTO_IPV6, IPV6_V6ONLY, OPT_FLAG},
        [NET_DEFER_ACCEPT] = {IPPROTO_TCP, TCP_DEFER_ACCEPT, OPT_INT},
        [NET_FASTOPEN] = {IPPROTO_TCP, TCP_FASTOPEN, OPT_INT},
        [NET_FASTOPEN_CONNECT] = {IPPROTO_TCP, TCP_FASTOPEN_CONNECT, OPT_INT},
        [NET_ERROR] = {SOL_SOCKET, SO_ERROR, OPT_ERROR},
    };
    if (opt <= 0 || opt >= (int)(sizeof table / sizeof table[0])) return NULL;
    return table[opt].type ? &table[opt] : NULL;
}

/* Checks common to both calls: 0, or the error to return. */
static int opt_check(net_sock *s, int opt, const opt_desc **d)
{
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    return (*d = opt_find(opt)) ? 0 : -EINVAL;
}

int net_setopt(net_sock *s, int opt, int value)
{
    const opt_desc *d = NULL;
    int rc = opt_check(s, opt, &d);
    if (rc < 0) return rc;
    struct linger li = {value >= 0, value >= 0 ? value : 0};
    const void *p = &value;
    socklen_t len = sizeof value;
    switch (d->type) {
    case OPT_FLAG: value = value != 0; break;
    case OPT_LINGER:
        /* -1 turns lingering off; the kernel then keeps the time it had,
         * which NET_LINGER_TIME still reads. */
        if (value < -1) return -EINVAL;
        p = &li;
        len = sizeof li;
        break;
    case OPT_INT: break;
    default: return -EINVAL; /* read-only: NET_LINGER_TIME, NET_ERROR */
    }
    return setsockopt(s->w.fd, d->level, d->name, p, len) < 0 ? -errno : 0;
}

int net_getopt(net_sock *s, int opt, int *value)
{
    const opt_desc *d = NULL;
    int rc = value ? opt_check(s, opt, &d) : -EINVAL;
    if (rc < 0) return rc;
    struct linger li = {0, 0};
    int v = 0;
    void *p = &v;
    socklen_t len = sizeof v;
    if (d->type == OPT_LINGER || d->type == OPT_LINGER_TIME) {
        p = &li;
        len = sizeof li;
    }
    if (getsockopt(s->w.fd, d->level, d->name, p, &len) < 0) return -errno;
    switch (d->type) {
    case OPT_FLAG: *value = v != 0; break;
    case OPT_LINGER: *value = li.l_onoff ? li.l_linger : -1; break;
    case OPT_LINGER_TIME: *value = li.l_linger; break;
    case OPT_ERROR: *value = -v; break;
    default: *value = v;
    }
    return 0;
}

/* A Unix-domain address: the path, "@name" for an abstract name (cut at
 * a NUL inside it), "" for a socket without a name. */
static void unix_name(const struct sockaddr_un *un, socklen_t len,
                      net_addr *out)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? len - off : 0, k = 0;
    const char *p = un->sun_path;
    if (n > sizeof un->sun_path) n = sizeof un->sun_path;
    if (n && p[0] == '\0') { /* abstract */
        out->host[k++] = '@';
        p++;
        n--;
    }
    while (n && *p && k < sizeof out->host - 1) out->host[k++] = *p++, n--;
    out->host[k] = '\0';
}

static int to_addr(const struct sockaddr_storage *ss, socklen_t len,
                   net_addr *out)
{
    const void *a;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        a = &in->sin_addr;
        out->port = ntohs(in->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        a = &in6->sin6_addr;
        out->port = ntohs(in6->sin6_port);
    } else if (ss->ss_family == AF_UNIX) {
        out->family = AF_UNIX;
        out->port = 0;
        unix_name((const void *)ss, len, out);
        return 0;
    } else {
        return -EAFNOSUPPORT;
    }
    out->family = ss->ss_family;
    inet_ntop(ss->ss_family, a, out->host, sizeof out->host);
    return 0;
}

static int get_addr(net_sock *s, net_addr *out, int peer)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = sizeof ss;
    if (!s || !out) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    int r = peer ? getpeername(s->w.fd, (struct sockaddr *)&ss, &len)
                 : getsockname(s->w.fd, (struct sockaddr *)&ss, &len);
    return r < 0 ? -errno : to_addr(&ss, len, out);
}

int net_local_addr(net_sock *s, net_addr *out)
{
    return get_addr(s, out, 0);
}
int net_peer_addr(net_sock *s, net_addr *out)
{
    return get_addr(s, out, 1);
}

int net_stats(net_sock *s, uint64_t *received, uint64_t *sent, int64_t *age_ms)
{
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (received) *received = s->in;
    if (sent) *sent = s->out;
    if (age_ms) *age_ms = gt_now() - s->born;
    return 0;
}

int net_set_stats(net_sock *s, uint64_t received, uint64_t sent, int64_t age_ms)
{
    if (!s || age_ms < 0) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    s->in = received;
    s->out = sent;
    s->born = gt_now() - age_ms;
    return 0;
}

int net_set_max_line(net_sock *s, size_t max)
{
    if (!s || !max) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    s->max_line = max;
    return 0;
}

size_t net_buffered(const net_sock *s)
{
    return s && !net__alien(s) ? s->rlen : 0;
}
