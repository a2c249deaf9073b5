/* socketloop-http: a small HTTP/1.1 keep-alive server that answers every
 * request with "hello\n", for wrk and the like.  MIT licence, see LICENSE.
 *
 *   socketloop-http [-a HOST] [-p PORT] [-b select|poll|epoll] [-t THREADS]
 *                   [-i IDLE_SECONDS] [-o REQUEST_DEADLINE_MS] [-v]
 *                   [--tls-cert FILE --tls-key FILE]
 *
 * The request line and headers are read with net_receive(NET_LINE), each
 * line bounded by net_set_max_line, and parsed by http_parse.c.  A request
 * body (Content-Length) is read and dropped; chunked bodies are refused
 * with 501.  The connection stays open unless the client says
 * "Connection: close" (or speaks HTTP/1.0 without "Connection:
 * keep-alive").  The idle timeout bounds the wait for the next request;
 * the request deadline bounds reading the rest of a request and writing
 * the answer. */
#define _GNU_SOURCE
#include "http_parse.h"
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char usage[] =
    "usage: socketloop-http [-a HOST] [-p PORT] [-b select|poll|epoll]\n"
    "                       [-t THREADS] [-i IDLE_SECONDS] [-o MS] [-v]\n"
    "                       [--tls-cert FILE --tls-key FILE]\n"
    "  -a HOST   address to listen on (default 127.0.0.1)\n"
    "  -p PORT   port (default 8080; 0 picks a free one)\n"
    "  -b NAME   poller (sets SOCKETLOOP_POLLER)\n"
    "  -t N      N OS threads, each with its own loop and SO_REUSEPORT "
    "listener\n"
    "  -i SEC    close a connection idle this long between requests "
    "(default 60; 0: never)\n"
    "  -o MS     deadline to read the rest of a request and write the answer "
    "(default 10000; 0: none)\n"
    "  -v        report errors and counts on stderr\n" SRV_TLS_USAGE;

static int send_text(net_sock *s, const char *text, int64_t deadline)
{
    ssize_t r = net_send(s, text, strlen(text), NULL, deadline);
    return r < 0 ? (int)r : 0;
}

/* Answers with an error status and no body; the connection then closes. */
static void send_error(net_sock *s, const char *status, int64_t deadline)
{
    char msg[160];
    snprintf(msg, sizeof msg,
             "HTTP/1.1 %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
             status);
    send_text(s, msg, deadline);
}

static void verbose_error(const srv_opts *o, const char *what, ssize_t rc)
{
    if (o->verbose && rc != NET_ECLOSED && rc != NET_EEOF && rc != -ECANCELED &&
        rc != -ECONNRESET)
        fprintf(stderr, "%s: %s\n", what, net_strerror((int)rc));
}

/* Reads and drops n bytes of body. */
static int drop_body(net_sock *s, net_buf *buf, long n, int64_t deadline)
{
    while (n > 0) {
        size_t k = n > 65536 ? 65536 : (size_t)n;
        buf->len = 0;
        ssize_t r = net_receive(s, NET_BYTES, k, buf, deadline);
        if (r < 0) return (int)r;
        n -= (long)k;
    }
    return 0;
}

/* One request and its answer.  Returns 1 to keep the connection, 0 when
 * an answer that closes it went out, -1 when the client is gone or too
 * slow. */
static int serve_request(net_sock *s, net_buf *line, const srv_opts *o)
{
    http_req req;
    int64_t deadline = -1;
    int st = HTTP_MORE;
    ssize_t r;
    http_start(&req);
    while (st == HTTP_MORE) {
        /* The idle timeout bounds the wait for the request line (after
         * any stray empty lines), the request deadline all the rest. */
        int started = req.started;
        line->len = 0;
        r = net_receive(s, NET_LINE, 0, line,
                        started ? deadline : srv_deadline(o->idle_ms));
        if (r == -EMSGSIZE) {
            st = http_too_long(&req);
        } else if (r < 0) {
            if (started || r != -ETIMEDOUT)
                verbose_error(o, started ? "header" : "request line", r);
            return -1;
        } else {
            st = http_line(&req, line->data, line->len);
        }
        if (!started && req.started) deadline = srv_deadline(o->op_ms);
    }
    if (st == HTTP_QUIT) return -1;
    if (st == HTTP_ERROR) {
        send_error(s, req.status,
                   req.started ? deadline : srv_deadline(o->op_ms));
        return 0;
    }
    if (req.length && (r = drop_body(s, line, req.length, deadline)) < 0) {
        verbose_error(o, "body", r);
        return -1;
    }
    if ((r = send_text(s, http_answer(&req), deadline)) < 0) {
        verbose_error(o, "send", r);
        return -1;
    }
    return req.keep_alive;
}

/* After an answer that closes the connection: half-close, then read
 * until the client closes too, so that a close with unread bytes cannot
 * reset the connection and destroy the answer in flight. */
static void linger(net_sock *s)
{
    char buf[256];
    int64_t deadline = gt_now() + 1000;
    net_shutdown(s, SHUT_WR);
    while (net_recv(s, buf, sizeof buf, deadline) > 0) {
    }
}

static void http_conn(net_sock *s, void *arg)
{
    srv_ctx *w = arg;
    net_buf line = {NULL, 0, 0};
    int rc = 1;
    net_set_max_line(s, HTTP_MAX_LINE);
    net_setopt(s, NET_NODELAY, 1);
    while (!w->stopping && (rc = serve_request(s, &line, w->opts)) > 0) {
        /* A long header line grew the buffer: give it back. */
        if (line.cap > 1024) net_buf_free(&line);
    }
    net_buf_free(&line);
    if (rc == 0 && !w->stopping) linger(s);
}

int main(int argc, char **argv)
{
    /* Static: the workers keep a pointer to it. */
    static srv_opts o = {"127.0.0.1", 8080, NULL, 1,    60000,
                         10000,       0,    NULL, NULL, NULL};
    srv_parse(&o, argc, argv, usage);
    return srv_run(&o, http_conn);
}
