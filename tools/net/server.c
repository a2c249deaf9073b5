/* The server shell of socketloop-echo and socketloop-http.  MIT licence,
 * see LICENSE.
 *
 * Shape of a server run:
 * - main blocks SIGINT and SIGTERM (the workers inherit the mask), sets
 *   SOCKETLOOP_POLLER (-b) before any net call, and starts -t workers,
 *   each an OS thread with its own loop;
 * - each worker listens with net_listen_ex (with -t N > 1, every one with
 *   NET_LISTEN_REUSEPORT on the same port, so that the kernel spreads the
 *   connections: worker 0 starts first and picks the port when -p 0) and
 *   serves with net_server_start, a green thread per connection;
 * - once every worker listens, main prints "listening on HOST:PORT" and
 *   waits in sigwait; a signal writes a byte into each worker's pipe, which
 *   a green thread of that worker looks at every 50 ms: it stops the
 *   server, cancels its connection threads, waits for them and frees it,
 *   and the worker's loop then ends. */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

/* The start-up handshake between main and the workers. */
typedef struct srv_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started; /* workers that have listened, or failed to */
} srv_group;

/* The 8-byte fields first, then the ints: no padding. */
typedef struct srv_worker {
    srv_ctx ctx; /* what the handlers get (the tool's part) */
    pthread_t thread;
    srv_group *group;
    net_handler *handler; /* the tool's */
    net_sock *listener;
    net_server *srv;
    long accepted;
    int index;
    int port;             /* to listen on */
    int stop_rd, stop_wr; /* the stop pipe */
    int rc;               /* start-up result */
    net_addr addr;        /* where it listens */
} srv_worker;

int64_t srv_deadline(int64_t ms)
{
    return ms > 0 ? gt_now() + ms : -1;
}

/* Parses a decimal in [lo, hi]; exits with a message otherwise. */
static long parse_long(const char *what, const char *s, long lo, long hi)
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

/* Runs the tool's handler, unless the connection came just before the
 * stop.  The server closes the socket afterwards. */
static void srv_handle(net_sock *s, void *arg)
{
    srv_worker *w = arg;
    if (w->ctx.stopping) return;
    w->accepted++;
#if SOCKETLOOP_HAS_TLS
    const srv_opts *o = w->ctx.opts;
    if (o->tls) {
        /* A handshake that stalls is bounded like an idle request. */
        int rc = net_tls_start(s, o->tls, NULL,
                               srv_deadline(o->idle_ms ? o->idle_ms : 10000));
        if (rc < 0) {
            if (o->verbose)
                fprintf(stderr, "TLS handshake: %s\n", net_strerror(rc));
            return;
        }
    }
#endif
    w->handler(s, &w->ctx);
}

/* Waits for the stop byte, then stops the server and cancels every
 * connection (each one's loop also checks ctx.stopping, since a
 * connection that never has to wait never parks and so never sees the
 * cancel), waits for them and frees the server.  It looks at the pipe
 * every 50 ms instead of parking in net_wait: a parked net_wait costs
 * every round of an epoll loop a poll(2) of its own (net/loop.c), which
 * would show in the benchmarks this server runs. */
static void srv_stopper(void *p)
{
    srv_worker *w = p;
    int rc;
    while ((rc = net_wait(w->stop_rd, NET_IN, 0)) == -ETIMEDOUT)
        if ((rc = gt_sleep(gt_now() + 50)) < 0) break;
    if (rc < 0) fprintf(stderr, "stop pipe: %s\n", net_strerror(rc));
    w->ctx.stopping = 1;
    net_server_stop(w->srv);
    net_server_cancel(w->srv);
    if ((rc = net_server_wait(w->srv, -1)) == 0) rc = net_server_free(w->srv);
    if (rc < 0)
        fprintf(stderr, "worker %d: stopping: %s\n", w->index,
                net_strerror(rc));
}

static int srv_worker_listen(srv_worker *w)
{
    static const gt_attr stopper_attr = {0, "stopper", 0};
    const srv_opts *o = w->ctx.opts;
    net_listen_opts lo = {0, o->threads > 1 ? NET_LISTEN_REUSEPORT : 0};
    int rc = net_listen_ex(&w->listener, o->host, w->port, &lo);
    if (rc < 0) return rc;
    if ((rc = net_local_addr(w->listener, &w->addr)) < 0 ||
        (rc = net_server_start(&w->srv, w->listener, srv_handle, w)) < 0) {
        net_close(w->listener);
        return rc;
    }
    if ((rc = (int)gt_spawn_attr(srv_stopper, w, &stopper_attr)) < 0) {
        /* The acceptor leaves, and frees the server, in the worker's
         * gt_run. */
        net_server_stop(w->srv);
        net_server_free(w->srv);
        return rc;
    }
    return 0;
}

static void *srv_worker_main(void *p)
{
    srv_worker *w = p;
    w->rc = srv_worker_listen(w);
    /* The poller this worker's loop really runs on (io_uring may have
     * fallen back to epoll). */
    if (w->rc == 0 && w->ctx.opts->verbose)
        fprintf(stderr, "worker %d: poller %s\n", w->index, net_poller_name());
    pthread_mutex_lock(&w->group->mu);
    w->group->started++;
    pthread_cond_broadcast(&w->group->cv);
    pthread_mutex_unlock(&w->group->mu);
    int rc = gt_run();
    if (rc < 0) fprintf(stderr, "worker %d: %s\n", w->index, gt_strerror(rc));
    rc = net_cleanup();
    if (rc < 0)
        fprintf(stderr, "worker %d: net_cleanup: %s\n", w->index,
                net_strerror(rc));
    if (w->rc == 0 && w->ctx.opts->verbose)
        fprintf(stderr, "worker %d: %ld connections served\n", w->index,
                w->accepted);
    return NULL;
}

static void srv_raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

void srv_parse(srv_opts *o, int argc, char **argv, const char *usage)
{
    static const struct option longopts[] = {
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "a:p:b:t:i:o:vh", longopts, NULL)) !=
           -1) {
        switch (c) {
        case 'C': o->tls_cert = optarg; break;
        case 'K': o->tls_key = optarg; break;
        case 'a': o->host = optarg; break;
        case 'p': o->port = (int)parse_long("port", optarg, 0, 65535); break;
        case 'b':
            if (strcmp(optarg, "select") != 0 && strcmp(optarg, "poll") != 0 &&
                strcmp(optarg, "epoll") != 0 && strcmp(optarg, "uring") != 0) {
                fprintf(stderr, "bad poller: %s\n", optarg);
                exit(2);
            }
            o->poller = optarg;
            break;
        case 't':
            o->threads = (int)parse_long("threads", optarg, 1, SRV_MAX_THREADS);
            break;
        case 'i':
            o->idle_ms =
                1000 * parse_long("idle timeout", optarg, 0, INT_MAX / 1000);
            break;
        case 'o': o->op_ms = parse_long("deadline", optarg, 0, INT_MAX); break;
        case 'v': o->verbose = 1; break;
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); exit(2);
        }
    }
    if (optind != argc || !o->tls_cert != !o->tls_key) {
        fputs(usage, stderr);
        exit(2);
    }
    if (o->tls_cert && !SOCKETLOOP_HAS_TLS) {
        fputs("built without TLS: --tls-cert is not available\n", stderr);
        exit(2);
    }
}

/* The TLS configuration from --tls-cert and --tls-key; 0 or -1. */
static int srv_tls(srv_opts *o)
{
#if SOCKETLOOP_HAS_TLS
    int rc;
    if (!o->tls_cert) return 0;
    if ((rc = net_tls_config_new(&o->tls, NET_TLS_SERVER)) < 0 ||
        (rc = net_tls_config_cert_file(o->tls, o->tls_cert, o->tls_key)) < 0) {
        fprintf(stderr, "TLS: %s\n", net_strerror(rc));
        net_tls_config_free(o->tls);
        o->tls = NULL;
        return -1;
    }
#else
    (void)o;
#endif
    return 0;
}

/* Starts workers [from, to) and waits until each has listened or failed;
 * returns the number started, which is less on a pthread_create failure. */
static int srv_start(srv_worker *ws, int from, int to, srv_group *g)
{
    int i = from;
    for (; i < to; i++) {
        int err = pthread_create(&ws[i].thread, NULL, srv_worker_main, &ws[i]);
        if (err) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            break;
        }
    }
    pthread_mutex_lock(&g->mu);
    while (g->started < i) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return i;
}

/* Whether every worker started listens; prints why not otherwise. */
static int srv_listening(const srv_worker *ws, int n, const srv_opts *o)
{
    int ok = 1;
    for (int i = 0; i < n; i++) {
        if (ws[i].rc < 0) {
            fprintf(stderr, "listen on %s:%d: %s\n", o->host, ws[i].port,
                    net_strerror(ws[i].rc));
            ok = 0;
        }
    }
    return ok;
}

int srv_run(srv_opts *o, net_handler *handler)
{
    srv_group g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    int n = o->threads, rc = 0, sig, started = 0;
    sigset_t set;
    srv_worker *ws = calloc((size_t)n, sizeof *ws);
    if (!ws) {
        perror("calloc");
        return 1;
    }

    if (srv_tls(o) < 0) {
        free(ws);
        return 1;
    }
    srv_raise_fd_limit();
    if (o->poller && setenv("SOCKETLOOP_POLLER", o->poller, 1) < 0) {
        perror("setenv");
        free(ws);
        return 1;
    }
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (int i = 0; i < n; i++) {
        srv_worker *w = &ws[i];
        int fds[2];
        w->ctx.opts = o;
        w->group = &g;
        w->handler = handler;
        w->index = i;
        w->port = o->port;
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) < 0) {
            perror("pipe2");
            for (int j = 0; j < i; j++) {
                close(ws[j].stop_rd);
                close(ws[j].stop_wr);
            }
            free(ws);
            return 1;
        }
        w->stop_rd = fds[0];
        w->stop_wr = fds[1];
    }
    /* Worker 0 first: with -p 0 its port is the others' too. */
    started = srv_start(ws, 0, 1, &g);
    if (started == 1 && ws[0].rc == 0) {
        for (int i = 1; i < n; i++) ws[i].port = ws[0].addr.port;
        started = srv_start(ws, 1, n, &g);
    }
    if (started < n || !srv_listening(ws, started, o)) rc = 1;
    if (rc == 0) {
        const net_addr *a = &ws[0].addr;
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
        if (ws[i].rc == 0 && write(ws[i].stop_wr, "x", 1) != 1)
            perror("write stop pipe");
        pthread_join(ws[i].thread, NULL);
    }
    for (int i = 0; i < n; i++) {
        close(ws[i].stop_rd);
        close(ws[i].stop_wr);
    }
    free(ws);
#if SOCKETLOOP_HAS_TLS
    net_tls_config_free(o->tls);
#endif
    return rc;
}
