/* TCP: connect, listen and accept (net/serve.c serves). */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NET__BACKOFF_MIN 5    /* ms, first pause when out of descriptors */
#define NET__BACKOFF_MAX 1000 /* ms, longest pause */

/* A pause before the operation tries again (5 ms doubling to 1 s), until
 * its deadline; then it ends with err, the error that made it pause. */
static int backoff(net_op *op, int err)
{
    net__opx *x = net__x(op);
    int64_t now = gt_now(), end = net__bound(op), b = x->backoff;
    if (op->deadline == 0 || (end >= 0 && now >= end)) {
        op->rc = err;
        return NET__DONE;
    }
    if (!b) b = NET__BACKOFF_MIN;
    x->until = end >= 0 && now + b > end ? end : now + b;
    x->backoff = b * 2 < NET__BACKOFF_MAX ? b * 2 : NET__BACKOFF_MAX;
    return NET__WAIT_TIME;
}

int net__connect_step(net_op *op)
{
    net_sock *s = op->s;
    net__opx *x = net__x(op);
    int fd = s->w.fd, err = 0;
    socklen_t len = sizeof err;
    if (s->closed) {
        op->rc = NET_ECLOSED;
        return NET__DONE;
    }
    if (!x->phase) {
        if (connect(fd, op->addr, op->addrlen) == 0) {
            op->rc = 0;
            return NET__DONE;
        }
        /* A Unix-domain listener whose backlog is full refuses at once
         * with EAGAIN, and nothing goes on in the background (nor does
         * readiness say when there is room): pause, then try again. */
        if (errno == EAGAIN) return backoff(op, -EAGAIN);
        /* An interrupted connect goes on in the background (POSIX), as
         * one in progress does: wait for it the same way. */
        if (errno != EINPROGRESS && errno != EINTR) {
            op->rc = -errno;
            return NET__DONE;
        }
        x->phase = 1;
        return NET__WAIT_OUT;
    }
    /* The verdict is in SO_ERROR; a socket still connecting has none yet
     * and no peer either (this step may run before the event). */
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    if (!err) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
            op->rc = 0;
            return NET__DONE;
        }
        if (errno == ENOTCONN) return NET__WAIT_OUT;
        err = errno;
    }
    op->rc = -err;
    return NET__DONE;
}

int net_connect_addr(net_sock *s, const struct sockaddr *addr,
                     socklen_t addrlen, int64_t deadline)
{
    net_op op = {.kind = NET_OP_CONNECT,
                 .s = s,
                 .addr = addr,
                 .addrlen = addrlen,
                 .deadline = deadline,
                 .idle = -1};
    return (int)net_op_run(&op);
}

int net_connect_sock(net_sock *s, const char *host, int port, int64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    struct addrinfo *res;
    int rc;
    memset(&ss, 0, sizeof ss);
    if (!s || !host || port <= 0 || port > 65535) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    if (getsockname(s->w.fd, (struct sockaddr *)&ss, &len) < 0) return -errno;
    if ((rc = net__resolve(s->L, host, port, NET__PEER, &res, deadline)) < 0)
        return rc;
    /* The socket has its family: only addresses of that family can be
     * tried, each in turn, as net_connect does. */
    rc = -EAFNOSUPPORT;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family != ss.ss_family) continue;
        rc = net_connect_addr(s, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED ||
            rc == NET_ECLOSED)
            break;
    }
    freeaddrinfo(res);
    return rc;
}

/* One attempt on one address: a non-blocking connect, then a wait for
 * the verdict. */
static int connect_one(net__loop *L, const struct addrinfo *ai,
                       const struct addrinfo *local, int64_t deadline,
                       net_sock **out)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) return -errno;
    net_sock *s;
    int rc = net__sock_new(L, fd, &s);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    if (local && bind(fd, local->ai_addr, local->ai_addrlen) < 0)
        rc = -errno;
    else
        rc = net_connect_addr(s, ai->ai_addr, ai->ai_addrlen, deadline);
    if (rc < 0) {
        net_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int net_connect(net_sock **out, const char *host, int port,
                const char *local_host, int local_port, int64_t deadline)
{
    int rc;
    net__loop *L = net__get(&rc);
    if (!out || !host || port <= 0 || port > 65535 || local_port < 0 ||
        local_port > 65535)
        return -EINVAL;
    if (!L) return rc;
    if (!gt__self()) return -EPERM;
    struct addrinfo *res, *local = NULL;
    if ((rc = net__resolve(L, host, port, NET__PEER, &res, deadline)) < 0)
        return rc;
    if ((local_host || local_port) &&
        (rc = net__resolve(L, local_host, local_port, NET__LOCAL, &local,
                           deadline)) < 0) {
        freeaddrinfo(res);
        return rc;
    }
    rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        const struct addrinfo *lai = local;
        while (lai && lai->ai_family != ai->ai_family) lai = lai->ai_next;
        if (local && !lai) continue; /* no local address of this family */
        rc = connect_one(L, ai, lai, deadline, out);
        if (rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED) break;
    }
    freeaddrinfo(res);
    if (local) freeaddrinfo(local);
    return rc;
}

#define NET__LISTEN_FLAGS (NET_LISTEN_REUSEPORT | NET_LISTEN_V6ONLY)

/* The options of a new listening socket, set before bind: SO_REUSEPORT
 * and IPV6_V6ONLY count only then. */
static int listen_opts(int fd, unsigned flags)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        ((flags & NET_LISTEN_REUSEPORT) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        ((flags & NET_LISTEN_V6ONLY) &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0))
        return -errno;
    return 0;
}

static int backlog_of(int backlog)
{
    return backlog > 0 ? backlog : SOMAXCONN;
}

int net_listen_ex(net_sock **out, const char *host, int port,
                  const net_listen_opts *opts)
{
    static const net_listen_opts defaults = {0, 0};
    int rc;
    net__loop *L = net__get(&rc);
    if (!opts) opts = &defaults;
    if (!out || port < 0 || port > 65535 || (opts->flags & ~NET__LISTEN_FLAGS))
        return -EINVAL;
    if (!L) return rc;
    if (host && !strcmp(host, "*")) host = NULL;
    struct addrinfo *res;
    /* A name would park to resolve; listening addresses are numeric or
     * "localhost", which the resolver answers from /etc/hosts. */
    if ((rc = net__resolve(L, host, port, NET__LISTEN, &res, -1)) < 0)
        return rc;
    if ((opts->flags & NET_LISTEN_V6ONLY) && res->ai_family != AF_INET6) {
        freeaddrinfo(res);
        return -EINVAL; /* an IPv4 socket has no IPv6 side to turn off */
    }
    int fd =
        socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               res->ai_protocol);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = listen_opts(fd, opts->flags);
        if (rc == 0 && (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
                        listen(fd, backlog_of(opts->backlog)) < 0))
            rc = -errno;
        if (rc == 0) rc = net__sock_new(L, fd, out);
        if (rc < 0) close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

int net_listen(net_sock **out, const char *host, int port, int backlog)
{
    net_listen_opts o = {backlog, 0};
    return net_listen_ex(out, host, port, &o);
}

int net_listen_sock(net_sock *s, int backlog)
{
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    return listen(s->w.fd, backlog_of(backlog)) < 0 ? -errno : 0;
}

int net__accept_step(net_op *op)
{
    net_sock *ls = op->s;
    for (;;) {
        if (ls->closed) {
            op->rc = NET_ECLOSED;
            return NET__DONE;
        }
        int fd = accept4(ls->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            op->rc = net__sock_new(ls->L, fd, &op->accepted);
            if (op->rc < 0) close(fd);
            return NET__DONE;
        }
        int err = errno;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return NET__WAIT_IN;
        if (err != EMFILE && err != ENFILE) {
            op->rc = -err;
            return NET__DONE;
        }
        /* Out of descriptors: the connection stays queued, so readiness
         * would fire at once again.  Pause instead, then retry. */
        return backoff(op, -err);
    }
}

int net_accept(net_sock *ls, net_sock **out, int64_t deadline)
{
    if (!out) return -EINVAL;
    net_op op = {
        .kind = NET_OP_ACCEPT, .s = ls, .deadline = deadline, .idle = -1};
    int rc = (int)net_op_run(&op);
    if (rc == 0) *out = op.accepted;
    return rc;
}
