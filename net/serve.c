/* Servers: an acceptor green thread that runs a handler thread per
 * connection on any listening socket, and the handle that stops it,
 * waits for its handlers, cancels them and frees it (net_serve is the
 * same server, with nobody holding the handle).
 *
 * Choices, for the record:
 * - The handle owns the listener from net_server_start on, and
 *   net_server_stop closes it: a stopped server refuses connections at
 *   once instead of letting them queue unanswered in the backlog.  The
 *   descriptor itself closes when the acceptor's parked accept has left
 *   (the net layer's rule: no number is reused under a waiter), which is
 *   why net_server_wait waits for the acceptor as well after a stop.
 * - Live handler threads are linked through their connection's net_sock
 *   (serve_link, serve_thread): the socket exists per connection anyway,
 *   and is linked at spawn, so a handler thread that has not run yet is
 *   counted and cancelled like the others.  No memory is allocated per
 *   connection beyond the socket and the green thread.
 * - Waiters of net_server_wait are nodes on their own stacks, woken when
 *   the condition may hold; each checks it again itself.
 * - A record is freed by whichever comes last of its owner's
 *   net_server_free (or, for net_serve, nobody), the acceptor's leaving
 *   and the last handler's return. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

/* Waiters are linked from their own stack frames on purpose: they are
 * unlinked before those frames return.  GCC 12 at -O3 warns about it. */
#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#define NET__ACCEPT_PAUSE 5 /* ms after a failed accept, before the next */

struct net_server {
    net_handler *handler;
    void *arg;
    net_sock *listener; /* valid until stopped and the acceptor has left */
    gt__list conns;     /* sockets of live handler threads (serve_link) */
    gt__list waiters;   /* green threads in net_server_wait (serve_waiter) */
    uint64_t owner;     /* serial of its OS thread (gt__alien) */
    int live;           /* handler threads spawned and not yet returned */
    int accepting;      /* the acceptor has not left */
    int stopped;        /* net_server_stop was called */
    int detached;       /* nobody holds the handle (net_serve, or freed) */
};

/* A green thread parked in net_server_wait, on its own stack. */
typedef struct serve_waiter {
    gt__list link;  /* in net_server.waiters */
    gt__thread *me; /* the waiting thread */
} serve_waiter;

/* What net_server_wait waits for. */
static int settled(const net_server *srv)
{
    return srv->live == 0 && !(srv->stopped && srv->accepting);
}

/* After a handler or the acceptor has left: wakes the waiters when
 * nothing is left to wait for, and frees a record nobody holds once
 * nothing uses it. */
static void serve_left(net_server *srv)
{
    if (settled(srv))
        for (gt__list *n = srv->waiters.next; n != &srv->waiters; n = n->next)
            gt__wake(GT__CONTAINER(n, serve_waiter, link)->me, 0);
    if (srv->detached && srv->live == 0 && !srv->accepting) free(srv);
}

static void serve_conn(void *p)
{
    net_sock *s = p;
    net_server *srv = s->server;
    /* Our reference keeps s valid even if the handler closes it. */
    srv->handler(s, srv->arg);
    if (!s->closed) net_close(s);
    gt__list_remove(&s->serve_link);
    srv->live--;
    net__unref(s);
    serve_left(srv);
}

static void serve_accept(void *p)
{
    net_server *srv = p;
    static const gt_attr conn_attr = {0, "conn", 0};
    for (;;) {
        net_sock *s;
        int rc = net_accept(srv->listener, &s, -1);
        if (rc == NET_ECLOSED || rc == -ECANCELED) break;
        if (rc < 0) {
            /* Anything else (a reset before accept, a full kernel) is about
             * one connection or transient; pause briefly and go on. */
            fprintf(stderr, "socketloop: accept: %s\n", net_strerror(rc));
            if (gt_sleep(gt_now() + NET__ACCEPT_PAUSE) < 0) break;
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
        s->serve_thread = id;
        gt__list_push(&srv->conns, &s->serve_link);
        srv->live++;
    }
    srv->listener->server = NULL;
    net__unref(srv->listener);
    srv->accepting = 0;
    serve_left(srv);
}

/* Starts serving on ls.  The acceptor holds a reference on ls of its own,
 * which keeps it valid after a close, until the acceptor has seen that
 * and left. */
static int server_start(net_server **out, net_sock *ls, net_handler *handler,
                        void *arg, int detached)
{
    static const gt_attr acceptor_attr = {0, "acceptor", 0};
    net_server *srv = calloc(1, sizeof *srv);
    if (!srv) return -ENOMEM;
    srv->handler = handler;
    srv->arg = arg;
    srv->listener = ls;
    gt__list_init(&srv->conns);
    gt__list_init(&srv->waiters);
    srv->owner = ls->owner;
    srv->accepting = 1;
    srv->detached = detached;
    int64_t id = gt_spawn_attr(serve_accept, srv, &acceptor_attr);
    if (id < 0) {
        free(srv);
        return (int)id;
    }
    ls->refs++;
    ls->server = srv;
    if (out) *out = srv;
    return 0;
}

int net_server_start(net_server **out, net_sock *listener, net_handler *handler,
                     void *arg)
{
    int on = 0;
    socklen_t len = sizeof on;
    if (!out || !listener || !handler) return -EINVAL;
    if (net__alien(listener)) return GT_EOWNER;
    if (listener->closed) return NET_ECLOSED;
    /* Served already, or accepted on by a green thread: the acceptor
     * would find the accept slot taken. */
    if (listener->server || listener->w.op[0]) return -EBUSY;
    if (getsockopt(listener->w.fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0)
        return -errno;
    if (!on) return -EINVAL; /* not listening: accept(2) would say EINVAL */
    return server_start(out, listener, handler, arg, 0);
}

int net_serve(net_sock **out, const char *host, int port, net_handler *handler,
              void *arg)
{
    net_sock *ls;
    if (!out || !handler) return -EINVAL;
    int rc = net_listen(&ls, host, port, 0);
    if (rc < 0) return rc;
    /* net_listen set ls: it returned 0 (see serve_accept). */
    if ((rc = server_start(NULL, ls, handler, arg, 1)) < 0) {
        net_close(ls); /* NOLINT(clang-analyzer-core.NullDereference) */
        return rc;
    }
    *out = ls;
    return 0;
}

/* The checks every call on a handle starts with. */
static int check(const net_server *srv)
{
    if (!srv) return -EINVAL;
    if (gt__alien(srv->owner)) return GT_EOWNER;
    return 0;
}

int net_server_stop(net_server *srv)
{
    int rc = check(srv);
    if (rc < 0 || srv->stopped) return rc;
    srv->stopped = 1;
    /* The owner's reference, which the server took over at start; the
     * acceptor's keeps the socket until it has seen the close. */
    net_close(srv->listener);
    return 0;
}

int net_server_wait(net_server *srv, int64_t deadline)
{
    int rc = check(srv);
    if (rc < 0) return rc;
    if (settled(srv)) return 0;
    if (deadline == 0) return -ETIMEDOUT;
    serve_waiter w = {{NULL, NULL}, gt__self()};
    if (!w.me) return -EPERM;
    /* A handler of this server would wait for itself. */
    int64_t self = gt_self();
    for (gt__list *l = srv->conns.next; l != &srv->conns; l = l->next)
        if (GT__CONTAINER(l, net_sock, serve_link)->serve_thread == self)
            return -EDEADLK;
    gt__list_push(&srv->waiters, &w.link);
    while (!settled(srv) &&
           (rc = gt__park(deadline, "net_server_wait", srv)) == 0) {
    }
    gt__list_remove(&w.link);
    return settled(srv) ? 0 : rc;
}

int net_server_cancel(net_server *srv)
{
    int rc = check(srv), n = 0;
    if (rc < 0) return rc;
    for (gt__list *l = srv->conns.next; l != &srv->conns; l = l->next) {
        if (gt_cancel(GT__CONTAINER(l, net_sock, serve_link)->serve_thread) ==
            0)
            n++;
    }
    return n;
}

int net_server_count(const net_server *srv)
{
    int rc = check(srv);
    return rc < 0 ? rc : srv->live;
}

int net_server_free(net_server *srv)
{
    int rc = check(srv);
    if (rc < 0) return rc;
    if (srv->live || !srv->stopped || !gt__list_empty(&srv->waiters))
        return -EBUSY;
    /* A stopped acceptor that has not run since frees the record when it
     * leaves. */
    srv->detached = 1;
    if (!srv->accepting) free(srv);
    return 0;
}
