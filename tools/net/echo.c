/* socketloop-echo: a TCP echo server on socketloop, a green thread per
 * connection.  MIT licence, see LICENSE.
 *
 *   socketloop-echo [-a HOST] [-p PORT] [-b select|poll|epoll] [-t THREADS]
 *                   [-i IDLE_SECONDS] [-o SEND_DEADLINE_MS] [-v]
 *                   [--tls-cert FILE --tls-key FILE]
 *
 * Prints "listening on HOST:PORT" once it accepts connections, and runs
 * until SIGINT or SIGTERM.  The echo buffer is 512 bytes on the connection
 * thread's stack, so that an idle connection costs about one page.
 *
 * No peer can hold a connection for ever without doing its part: every
 * receive waits at most the idle timeout (in an echo server each receive
 * waits for the peer's next bytes, so -i is the receive's deadline) and
 * every send at most the send deadline, so a peer that says nothing is
 * dropped after -i and one that stops reading after -o.  A peer that keeps
 * trickling bytes in or reading them out faster than that is served, as
 * any slow client must be.  One that streams fast enough that neither
 * call ever parks cannot keep the OS thread either: the net layer lets
 * the others run after 64 KiB moved without parking. */
#define _GNU_SOURCE
#include "server.h"

#include <errno.h>
#include <stdio.h>

#define ECHO_BUF 512

static const char usage[] =
    "usage: socketloop-echo [-a HOST] [-p PORT] [-b select|poll|epoll]\n"
    "                       [-t THREADS] [-i IDLE_SECONDS] [-o SEND_MS] [-v]\n"
    "                       [--tls-cert FILE --tls-key FILE]\n"
    "  -a HOST   address to listen on (default 127.0.0.1)\n"
    "  -p PORT   port (default 7000; 0 picks a free one)\n"
    "  -b NAME   poller: epoll, poll, select, uring (sets SOCKETLOOP_POLLER)\n"
    "  -t N      N OS threads, each with its own loop and SO_REUSEPORT "
    "listener\n"
    "  -i SEC    close a connection idle this long (default 0: never)\n"
    "  -o MS     deadline of each send; a peer that stops reading is dropped\n"
    "            after it (default 0: none)\n"
    "  -v        report the poller, errors and counts on "
    "stderr\n" SRV_TLS_USAGE;

static void echo_conn(net_sock *s, void *arg)
{
    srv_ctx *w = arg;
    const srv_opts *o = w->opts;
    char buf[ECHO_BUF];
    net_setopt(s, NET_NODELAY, 1);
    while (!w->stopping) {
        ssize_t n = net_recv(s, buf, sizeof buf, srv_deadline(o->idle_ms));
        if (n <= 0) {
            if (n == -ETIMEDOUT && o->verbose)
                fprintf(stderr, "closing a connection idle for %lld s\n",
                        (long long)(o->idle_ms / 1000));
            else if (n < 0 && o->verbose && n != -ECANCELED && n != -ECONNRESET)
                fprintf(stderr, "recv: %s\n", net_strerror((int)n));
            break;
        }
        ssize_t r = net_send(s, buf, (size_t)n, NULL, srv_deadline(o->op_ms));
        if (r < 0) {
            if (o->verbose && r != -ECANCELED)
                fprintf(stderr, "send: %s\n", net_strerror((int)r));
            break;
        }
    }
}

int main(int argc, char **argv)
{
    /* Static: the workers keep a pointer to it. */
    static srv_opts o = {"127.0.0.1", 7000, NULL, 1, 0, 0, 0, NULL, NULL, NULL};
    srv_parse(&o, argc, argv, usage);
    return srv_run(&o, echo_conn);
}
