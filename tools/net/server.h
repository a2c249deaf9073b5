/* Shared by socketloop-echo and socketloop-http (server.c): options, one
 * loop and one server per OS thread, and a clean stop on SIGINT/SIGTERM.
 * MIT licence, see LICENSE. */
#ifndef SLTOOLS_SERVER_H
#define SLTOOLS_SERVER_H

#include "socketloop.h"

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
    const char *tls_cert, *tls_key; /* --tls-cert, --tls-key: serve TLS */
    struct net_tls_config *tls;     /* made from them by srv_run */
} srv_opts;

/* What a tool's handler is given as its arg: one per worker thread. */
typedef struct srv_ctx {
    const srv_opts *opts;
    int stopping; /* set when the server stops: a handler's loop ends (one
                     that never parks would not see the cancel) */
} srv_ctx;

/* gt_now() + ms, or -1 (no deadline) for ms <= 0. */
int64_t srv_deadline(int64_t ms);

/* Parses the common options (no operands are accepted); exits with the
 * usage text on a bad one.  SRV_TLS_USAGE is their text for TLS. */
#define SRV_TLS_USAGE                                                          \
    "  --tls-cert FILE --tls-key FILE\n"                                       \
    "            serve TLS with this PEM chain and key (builds with TLS)\n"
void srv_parse(srv_opts *o, int argc, char **argv, const char *usage);

/* Runs the server until SIGINT or SIGTERM; returns the exit status.
 * handler(s, arg) gets a srv_ctx as arg. */
int srv_run(srv_opts *o, net_handler *handler);

#endif
