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

/* One attempt on one address: a non-blocking connect, then a wait for
 * the socket to become writable and the verdict in SO_ERROR. */
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
    if (local && bind(fd, local->ai_addr, local->ai_addrlen) < 0) {
        rc = -errno;
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        /* An interrupted connect goes on in the background (POSIX), as
         * one in progress does: wait for it the same way. */
        rc = errno == EINPROGRESS || errno == EINTR ? 0 : -errno;
        if (rc == 0 && (rc = net__sock_wait(s, 1, deadline)) == 0) {
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
                err = errno;
            rc = -err;
        }
    }
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
    if (!gt__S.current) return -EPERM;
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

static int accept_held(net_sock *ls, net_sock **out, int64_t deadline)
{
    int64_t backoff = NET__BACKOFF_MIN;
    for (;;) {
        if (ls->closed) return NET_ECLOSED;
        int fd = accept4(ls->w.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int rc = net__sock_new(ls->L, fd, out);
            if (rc < 0) close(fd);
            return rc;
        }
        int err = errno, rc;
        if (err == EINTR || err == ECONNABORTED || err == EPROTO) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            rc = net__sock_wait(ls, 0, deadline);
        } else if (err == EMFILE || err == ENFILE) {
            /* The connection stays queued, so readiness would fire at once
             * again: pause instead, then retry. */
            if (deadline >= 0 && gt_now() >= deadline) return -err;
            int64_t until = gt_now() + backoff;
            if (deadline >= 0 && until > deadline) until = deadline;
            rc = gt_sleep(until);
            backoff =
                backoff * 2 < NET__BACKOFF_MAX ? backoff * 2 : NET__BACKOFF_MAX;
        } else {
            return -err;
        }
        if (rc < 0) return rc;
    }
}

int net_accept(net_sock *ls, net_sock **out, int64_t deadline)
{
    if (!ls || !out) return -EINVAL;
    if (net__alien(ls)) return GT_EOWNER;
    ls->refs++;
    int rc = accept_held(ls, out, deadline);
    net__unref(ls);
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
