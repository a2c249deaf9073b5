/* TCP: connect, listen, accept and the seed's newserver. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
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

int net_listen(net_sock **out, const char *host, int port, int backlog)
{
    int rc;
    net__loop *L = net__get(&rc);
    if (!out || port < 0 || port > 65535) return -EINVAL;
    if (!L) return rc;
    if (host && !strcmp(host, "*")) host = NULL;
    struct addrinfo *res;
    /* A name would park to resolve; listening addresses are numeric or
     * "localhost", which the resolver answers from /etc/hosts. */
    if ((rc = net__resolve(L, host, port, NET__LISTEN, &res, -1)) < 0)
        return rc;
    int fd =
        socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               res->ai_protocol);
    if (fd < 0) {
        rc = -errno;
    } else {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
            listen(fd, backlog > 0 ? backlog : SOMAXCONN) < 0) {
            rc = -errno;
            close(fd);
        } else if ((rc = net__sock_new(L, fd, out)) < 0) {
            close(fd);
        }
    }
    freeaddrinfo(res);
    return rc;
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

/* net_serve's record, shared by the acceptor and the connections. */
typedef struct net__server {
    net_handler *handler;
    void *arg;
    net_sock *listener;
    unsigned refs; /* the acceptor + one per connection thread */
} net__server;

static void server_unref(net__server *srv)
{
    if (!--srv->refs) free(srv);
}

static void serve_conn(void *p)
{
    net_sock *s = p;
    net__server *srv = s->server;
    /* Our reference keeps s valid even if the handler closes it. */
    srv->handler(s, srv->arg);
    if (!s->closed) net_close(s);
    net__unref(s);
    server_unref(srv);
}

static void serve_accept(void *p)
{
    net__server *srv = p;
    static const gt_attr conn_attr = {0, "conn", 0};
    for (;;) {
        net_sock *s;
        int rc = net_accept(srv->listener, &s, -1);
        if (rc == NET_ECLOSED || rc == -ECANCELED) break;
        if (rc < 0) {
            /* Anything else (a reset before accept, a full kernel) is about
             * one connection or transient; pause briefly and go on. */
            fprintf(stderr, "socketloop: accept: %s\n", net_strerror(rc));
            if (gt_sleep(gt_now() + NET__BACKOFF_MIN) < 0) break;
            continue;
        }
        /* net_accept set s: it returned >= 0.  (The analyzer cannot
         * tell, as it cannot tell that errno is positive after a failed
         * call.) */
        s->server = srv; /* NOLINT(clang-analyzer-core.NullDereference) */
        s->refs++;
        int64_t id = gt_spawn_attr(serve_conn, s, &conn_attr);
        if (id < 0) {
            fprintf(stderr,
                    "socketloop: no green thread for a connection: "
                    "%s\n",
                    gt_strerror((int)id));
            net_close(s);
            net__unref(s);
            continue;
        }
        srv->refs++;
    }
    net__unref(srv->listener);
    server_unref(srv);
}

int net_serve(net_sock **out, const char *host, int port, net_handler *handler,
              void *arg)
{
    static const gt_attr acceptor_attr = {0, "acceptor", 0};
    if (!out || !handler) return -EINVAL;
    net__server *srv = malloc(sizeof *srv);
    if (!srv) return -ENOMEM;
    int rc = net_listen(&srv->listener, host, port, 0);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    srv->handler = handler;
    srv->arg = arg;
    srv->refs = 1;
    /* The acceptor's reference keeps the listener valid after the owner
     * closes it, until the acceptor has seen that and left. */
    srv->listener->refs++; /* NOLINT(clang-analyzer-core.NullDereference):
                              net_listen set it, see serve_accept */
    int64_t id = gt_spawn_attr(serve_accept, srv, &acceptor_attr);
    if (id < 0) {
        net_close(srv->listener);
        net__unref(srv->listener);
        free(srv);
        return (int)id;
    }
    *out = srv->listener;
    return 0;
}
