/* Shared by socketloop-echo and socketloop-http: options, listeners, one
 * loop per OS thread, and a clean stop on SIGINT/SIGTERM.  MIT licence,
 * see LICENSE.
 *
 * Every helper here is static inline, so that a tool that does not use one
 * gets no warning.
 *
 * Shape of a server run:
 * - main blocks SIGINT and SIGTERM (the workers inherit the mask), sets
 *   SOCKETLOOP_POLLER (-b) before any net call, and starts -t workers;
 * - -t 1: the worker listens with net_serve; -t N > 1: main makes N
 *   listening sockets bound to the same port with SO_REUSEPORT (the first
 *   picks the port when -p 0), and each worker net_wraps one and runs its
 *   own accept loop, a green thread per connection;
 * - once every worker listens, main prints "listening on HOST:PORT" and
 *   waits in sigwait; a signal writes a byte into each worker's pipe, which
 *   a green thread of that worker looks at every 50 ms: it closes the
 *   listener and cancels the connection threads, whose loop then ends. */
#ifndef SLTOOLS_SERVER_H
#define SLTOOLS_SERVER_H

#include "socketloop/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SRV_MAX_THREADS 64

/* Options common to the servers. */
typedef struct srv_opts {
    const char *host;   /* -a, default 127.0.0.1 */
    int port;           /* -p, 0 picks a free one */
    const char *poller; /* -b select|poll|epoll, NULL: the library's default */
    int threads;        /* -t */
    int64_t idle_ms;    /* -i SECONDS: deadline for the next request, 0 none */
    int64_t op_ms;      /* -o MS: deadline of each operation, 0 none */
    int verbose;        /* -v */
} srv_opts;

/* A live connection, linked from its green thread's own stack. */
typedef struct srv_conn {
    struct srv_conn *next, *prev;
    int64_t id;
} srv_conn;

/* The 8-byte fields first, then the ints: no padding. */
typedef struct srv_worker {
    pthread_t thread;
    net_sock *listener;
    net_handler *handler;
    const srv_opts *opts;
    long accepted;
    srv_conn conns; /* list head */
    int index;
    int listen_fd;        /* -t > 1: made by main, wrapped by the worker */
    int stop_rd, stop_wr; /* the stop pipe */
    int stopping;         /* set by the stopper; read by the connections */
    int rc;               /* start-up result */
    net_addr addr;        /* where it listens */
} srv_worker;

/* Start-up handshake between main and the workers. */
static pthread_mutex_t srv_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t srv_cv = PTHREAD_COND_INITIALIZER;
static int srv_started;

static inline int64_t srv_deadline(int64_t ms)
{
    return ms > 0 ? gt_now() + ms : -1;
}

/* Parses a decimal in [lo, hi]; exits with a message otherwise. */
static inline long srv_parse_long(const char *what, const char *s, long lo,
                                  long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "bad %s: %s (want %ld..%ld)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static inline void srv_conn_link(srv_worker *w, srv_conn *c)
{
    c->id = gt_self();
    c->next = w->conns.next;
    c->prev = &w->conns;
    w->conns.next->prev = c;
    w->conns.next = c;
}

static inline void srv_conn_unlink(srv_conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
}

static _Thread_local srv_worker *srv_self;

/* Runs the tool's handler between registering and unregistering the
 * connection, so that a stop can cancel it.  net_serve closes the socket
 * afterwards; so does srv_conn_main. */
static inline void srv_handle(net_sock *s, void *arg)
{
    srv_worker *w = arg;
    if (w->stopping) return; /* spawned just before the stop */
    srv_conn c;
    srv_conn_link(w, &c);
    w->accepted++;
    w->handler(s, w);
    srv_conn_unlink(&c);
}

static inline void srv_conn_main(void *p)
{
    net_sock *s = p;
    srv_handle(s, srv_self);
    net_close(s);
}

/* -t > 1: the accept loop, like net_serve's. */
static inline void srv_acceptor(void *p)
{
    srv_worker *w = p;
    static const gt_attr conn_attr = {0, "conn", 0};
    for (;;) {
        net_sock *s;
        int rc = net_accept(w->listener, &s, -1);
        if (rc == NET_ECLOSED || rc == -ECANCELED) break;
        if (rc < 0) {
            fprintf(stderr, "accept: %s\n", net_strerror(rc));
            if (gt_sleep(gt_now() + 5) < 0) break;
            continue;
        }
        int64_t id = gt_spawn_attr(srv_conn_main, s, &conn_attr);
        if (id < 0) {
            fprintf(stderr, "no green thread for a connection: %s\n",
                    gt_strerror((int)id));
            net_close(s);
        }
    }
}

/* Waits for the stop byte, then closes the listener and cancels every
 * connection (each one's loop also checks w->stopping, since a connection
 * that never has to wait never parks and so never sees the cancel).  It
 * looks at the pipe every 50 ms instead of parking in net_wait: a parked
 * net_wait costs every round of an epoll loop a poll(2) of its own
 * (net/loop.c), which would show in the benchmarks this server runs. */
static inline void srv_stopper(void *p)
{
    srv_worker *w = p;
    int rc;
    while ((rc = net_wait(w->stop_rd, NET_IN, 0)) == -ETIMEDOUT)
        if ((rc = gt_sleep(gt_now() + 50)) < 0) break;
    if (rc < 0) fprintf(stderr, "stop pipe: %s\n", net_strerror(rc));
    w->stopping = 1;
    net_close(w->listener);
    for (srv_conn *c = w->conns.next; c != &w->conns; c = c->next)
        gt_cancel(c->id);
}

static inline int srv_worker_listen(srv_worker *w)
{
    static const gt_attr acceptor_attr = {0, "acceptor", 0};
    static const gt_attr stopper_attr = {0, "stopper", 0};
    int rc;
    if (w->listen_fd < 0) {
        rc = net_serve(&w->listener, w->opts->host, w->opts->port, srv_handle,
                       w);
    } else {
        rc = net_wrap(&w->listener, w->listen_fd);
        if (rc < 0) close(w->listen_fd);
    }
    if (rc < 0) return rc;
    if ((rc = net_local_addr(w->listener, &w->addr)) < 0 ||
        (w->listen_fd >= 0 &&
         (rc = (int)gt_spawn_attr(srv_acceptor, w, &acceptor_attr)) < 0) ||
        (rc = (int)gt_spawn_attr(srv_stopper, w, &stopper_attr)) < 0) {
        net_close(w->listener);
        return rc;
    }
    return 0;
}

static inline void *srv_worker_main(void *p)
{
    srv_worker *w = p;
    srv_self = w;
    w->conns.next = w->conns.prev = &w->conns;
    w->rc = srv_worker_listen(w);
    pthread_mutex_lock(&srv_mu);
    srv_started++;
    pthread_cond_broadcast(&srv_cv);
    pthread_mutex_unlock(&srv_mu);
    if (w->rc < 0) {
        gt_run(); /* lets a closed listener's acceptor leave */
        net_cleanup();
        return NULL;
    }
    int rc = gt_run();
    if (rc < 0) fprintf(stderr, "worker %d: %s\n", w->index, gt_strerror(rc));
    rc = net_cleanup();
    if (rc < 0)
        fprintf(stderr, "worker %d: net_cleanup: %s\n", w->index,
                net_strerror(rc));
    if (w->opts->verbose)
        fprintf(stderr, "worker %d: %ld connections served\n", w->index,
                w->accepted);
    return NULL;
}

/* -t > 1: a listening socket with SO_REUSEPORT set before bind. */
static inline int srv_reuseport_listener(const char *host, int *port)
{
    struct addrinfo hints, *res;
    char service[16];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(service, sizeof service, "%d", *port);
    const char *node = host && strcmp(host, "*") != 0 ? host : NULL;
    int rc = getaddrinfo(node, service, &hints, &res);
    if (rc) {
        fprintf(stderr, "%s: %s\n", host, gai_strerror(rc));
        return -EINVAL;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    rc = 0;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
        listen(fd, SOMAXCONN) < 0)
        rc = -errno;
    freeaddrinfo(res);
    if (rc < 0) {
        if (fd >= 0) close(fd);
        return rc;
    }
    if (*port == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
            rc = -errno;
            close(fd);
            return rc;
        }
        *port = ntohs(ss.ss_family == AF_INET6
                          ? ((struct sockaddr_in6 *)&ss)->sin6_port
                          : ((struct sockaddr_in *)&ss)->sin_port);
    }
    return fd;
}

static inline void srv_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Parses the common options (no operands are accepted); exits with the
 * usage text on a bad one. */
static inline void srv_parse(srv_opts *o, int argc, char **argv,
                             const char *usage)
{
    int c;
    while ((c = getopt(argc, argv, "a:p:b:t:i:o:vh")) != -1) {
        switch (c) {
        case 'a': o->host = optarg; break;
        case 'p':
            o->port = (int)srv_parse_long("port", optarg, 0, 65535);
            break;
        case 'b':
            if (strcmp(optarg, "select") != 0 && strcmp(optarg, "poll") != 0 &&
                strcmp(optarg, "epoll") != 0) {
                fprintf(stderr, "bad poller: %s\n", optarg);
                exit(2);
            }
            o->poller = optarg;
            break;
        case 't':
            o->threads =
                (int)srv_parse_long("threads", optarg, 1, SRV_MAX_THREADS);
            break;
        case 'i':
            o->idle_ms = 1000 * srv_parse_long("idle timeout", optarg, 0,
                                               INT_MAX / 1000);
            break;
        case 'o':
            o->op_ms = srv_parse_long("deadline", optarg, 0, INT_MAX);
            break;
        case 'v': o->verbose = 1; break;
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); exit(2);
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        exit(2);
    }
}

/* Runs the server until SIGINT or SIGTERM; returns the exit status. */
static inline int srv_run(const srv_opts *o, net_handler *handler)
{
    static srv_worker workers[SRV_MAX_THREADS];
    int n = o->threads, port = o->port, rc = 0, sig;
    sigset_t set;

    srv_raise_fd_limit();
    if (o->poller && setenv("SOCKETLOOP_POLLER", o->poller, 1) < 0) {
        perror("setenv");
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < n; i++) {
        srv_worker *w = &workers[i];
        int fds[2];
        w->index = i;
        w->handler = handler;
        w->opts = o;
        w->listen_fd = -1;
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
            perror("pipe2");
            return 1;
        }
        w->stop_rd = fds[0];
        w->stop_wr = fds[1];
        if (n > 1) {
            w->listen_fd = srv_reuseport_listener(o->host, &port);
            if (w->listen_fd < 0) {
                fprintf(stderr, "listen on %s:%d: %s\n", o->host, port,
                        strerror(-w->listen_fd));
                return 1;
            }
        }
    }
    int started = 0;
    for (; started < n; started++) {
        int err = pthread_create(&workers[started].thread, NULL,
                                 srv_worker_main, &workers[started]);
        if (err) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            rc = 1;
            break;
        }
    }
    pthread_mutex_lock(&srv_mu);
    while (srv_started < started) pthread_cond_wait(&srv_cv, &srv_mu);
    pthread_mutex_unlock(&srv_mu);
    for (int i = 0; i < started; i++) {
        if (workers[i].rc < 0) {
            fprintf(stderr, "listen on %s:%d: %s\n", o->host, port,
                    net_strerror(workers[i].rc));
            rc = 1;
        }
    }
    if (rc == 0) {
        const net_addr *a = &workers[0].addr;
        if (a->family == AF_INET6)
            printf("listening on [%s]:%d\n", a->host, a->port);
        else
            printf("listening on %s:%d\n", a->host, a->port);
        fflush(stdout);
        while (sigwait(&set, &sig) != 0) {
        }
        if (o->verbose) fprintf(stderr, "signal %d: stopping\n", sig);
    }
    for (int i = 0; i < started; i++) {
        if (workers[i].rc == 0 && write(workers[i].stop_wr, "x", 1) != 1)
            perror("write stop pipe");
        pthread_join(workers[i].thread, NULL);
    }
    for (int i = 0; i < n; i++) {
        close(workers[i].stop_rd);
        close(workers[i].stop_wr);
    }
    return rc;
}

#endif
