/* socketloop-echo: a TCP echo server on socketloop, a green thread per
 * connection.  MIT licence, see LICENSE.
 *
 *   socketloop-echo [-a HOST] [-p PORT] [-b select|poll|epoll] [-t THREADS]
 *                   [-i IDLE_SECONDS] [-o SEND_DEADLINE_MS] [-v]
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
 * any slow client must be. */
#define _GNU_SOURCE
#include "server.h"

#define ECHO_BUF 512
#define ECHO_QUANTUM ((size_t)64 * 1024) /* echoed before others run */

static const char usage[] =
    "usage: socketloop-echo [-a HOST] [-p PORT] [-b select|poll|epoll]\n"
    "                       [-t THREADS] [-i IDLE_SECONDS] [-o SEND_MS] [-v]\n"
    "  -a HOST   address to listen on (default 127.0.0.1)\n"
    "  -p PORT   port (default 7000; 0 picks a free one)\n"
    "  -b NAME   poller (sets SOCKETLOOP_POLLER)\n"
    "  -t N      N OS threads, each with its own loop and SO_REUSEPORT "
    "listener\n"
    "  -i SEC    close a connection idle this long (default 0: never)\n"
    "  -o MS     deadline of each send; a peer that stops reading is dropped\n"
    "            after it (default 0: none)\n"
    "  -v        report errors and counts on stderr\n";

static void echo_conn(net_sock *s, void *arg)
{
    srv_worker *w = arg;
    const srv_opts *o = w->opts;
    char buf[ECHO_BUF];
    size_t burst = 0; /* bytes echoed since the last short read */
    net_setopt(s, NET_NODELAY, 1);
    while (!w->stopping) {
        ssize_t n = net_recv(s, buf, sizeof buf, srv_deadline(o->idle_ms));
        if (n <= 0) {
            if (n == -ETIMEDOUT && o->verbose)
                fprintf(stderr, "closing a connection idle for %lld s\n",
                        (long long)(o->idle_ms / 1000));
            else if (n < 0 && o->verbose && n != -ECANCELED &&
                     n != -ECONNRESET)
                fprintf(stderr, "recv: %s\n", net_strerror((int)n));
            break;
        }
        ssize_t r = net_send(s, buf, (size_t)n, NULL, srv_deadline(o->op_ms));
        if (r < 0) {
            if (o->verbose && r != -ECANCELED)
                fprintf(stderr, "send: %s\n", net_strerror((int)r));
            break;
        }
        /* While the peer keeps the buffer full neither call parks, so a
         * peer that streams fast enough would keep this loop, and the OS
         * thread, to itself for ever.  After a quantum of such bytes the
         * connection sleeps until the loop's next round, which polls and
         * so lets every other connection have its turn.  (gt_yield would
         * switch straight to the next ready thread, and the loop polls
         * only after a thousand such switches.)  A short read means the
         * next one parks anyway. */
        burst = n < (ssize_t)sizeof buf ? 0 : burst + (size_t)n;
        if (burst >= ECHO_QUANTUM) {
            burst = 0;
            if (gt_sleep(gt_now()) < 0) break;
        }
    }
}

int main(int argc, char **argv)
{
    /* Static: the workers keep a pointer to it. */
    static srv_opts o = {"127.0.0.1", 7000, NULL, 1, 0, 0, 0};
    srv_parse(&o, argc, argv, usage);
    return srv_run(&o, echo_conn);
}
