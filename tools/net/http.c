/* socketloop-http: a small HTTP/1.1 keep-alive server that answers every
 * request with "hello\n", for wrk and the like.  MIT licence, see LICENSE.
 *
 *   socketloop-http [-a HOST] [-p PORT] [-b select|poll|epoll] [-t THREADS]
 *                   [-i IDLE_SECONDS] [-o REQUEST_DEADLINE_MS] [-v]
 *
 * The request line and headers are read with net_receive(NET_LINE), each
 * line bounded by net_set_max_line.  A request body (Content-Length) is
 * read and dropped; chunked bodies are refused with 501.  The connection
 * stays open unless the client says "Connection: close" (or speaks
 * HTTP/1.0 without "Connection: keep-alive").  The idle timeout bounds the
 * wait for the next request; the request deadline bounds reading the rest
 * of a request and writing the answer. */
#define _GNU_SOURCE
#include "server.h"

#include <ctype.h>
#include <strings.h>

#define HTTP_MAX_LINE 8192     /* request line or header line */
#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_BODY (1 << 20)
#define HTTP_MAX_BLANK 8       /* empty lines tolerated before a request */

static const char usage[] =
    "usage: socketloop-http [-a HOST] [-p PORT] [-b select|poll|epoll]\n"
    "                       [-t THREADS] [-i IDLE_SECONDS] [-o MS] [-v]\n"
    "  -a HOST   address to listen on (default 127.0.0.1)\n"
    "  -p PORT   port (default 8080; 0 picks a free one)\n"
    "  -b NAME   poller (sets SOCKETLOOP_POLLER)\n"
    "  -t N      N OS threads, each with its own loop and SO_REUSEPORT "
    "listener\n"
    "  -i SEC    close a connection idle this long between requests "
    "(default 60; 0: never)\n"
    "  -o MS     deadline to read the rest of a request and write the answer "
    "(default 10000; 0: none)\n"
    "  -v        report errors and counts on stderr\n";

/* A slice of the line buffer. */
typedef struct span {
    const char *p;
    size_t n;
} span;

static int span_is(span s, const char *lit)
{
    return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static int span_ieq(span s, const char *lit)
{
    return s.n == strlen(lit) && !strncasecmp(s.p, lit, s.n);
}

static span span_trim(span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t')) s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t')) s.n--;
    return s;
}

/* Splits off the text up to the first `sep` (exclusive); the rest follows
 * it.  Returns 0 when there is no separator. */
static int span_split(span s, char sep, span *head, span *rest)
{
    const char *q = memchr(s.p, sep, s.n);
    if (!q) return 0;
    head->p = s.p;
    head->n = (size_t)(q - s.p);
    rest->p = q + 1;
    rest->n = s.n - head->n - 1;
    return 1;
}

/* Does a comma-separated header value list `token`? */
static int has_token(span v, const char *token)
{
    span item, rest;
    while (v.n) {
        if (!span_split(v, ',', &item, &rest)) {
            item = v;
            rest.p = v.p + v.n;
            rest.n = 0;
        }
        if (span_ieq(span_trim(item), token)) return 1;
        v = rest;
    }
    return 0;
}

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
    if (o->verbose && rc != NET_ECLOSED && rc != -ECANCELED &&
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
    ssize_t r;
    int blank = 0;
    for (;;) { /* the request line, after any stray empty lines */
        line->len = 0;
        r = net_receive(s, NET_LINE, 0, line, srv_deadline(o->idle_ms));
        if (r == -EMSGSIZE) {
            send_error(s, "414 URI Too Long", srv_deadline(o->op_ms));
            return 0;
        }
        if (r < 0) {
            if (r != -ETIMEDOUT) verbose_error(o, "request line", r);
            return -1;
        }
        if (line->len) break;
        if (++blank > HTTP_MAX_BLANK) return -1;
    }
    int64_t deadline = srv_deadline(o->op_ms);
    span req = {line->data, line->len}, method, target, version;
    if (!span_split(req, ' ', &method, &target) ||
        !span_split(target, ' ', &target, &version) || !method.n ||
        !target.n || memchr(version.p, ' ', version.n)) {
        send_error(s, "400 Bad Request", deadline);
        return 0;
    }
    int keep_alive;
    if (span_is(version, "HTTP/1.1")) {
        keep_alive = 1;
    } else if (span_is(version, "HTTP/1.0")) {
        keep_alive = 0;
    } else {
        send_error(s, "505 HTTP Version Not Supported", deadline);
        return 0;
    }
    /* The spans point into `line`, which the header lines overwrite. */
    int head = span_is(method, "HEAD");
    int known = head || span_is(method, "GET") || span_is(method, "POST");
    int http10 = !keep_alive;

    long content_length = 0;
    int nheaders = 0, chunked = 0, bad = 0, seen_length = 0;
    for (;;) {
        line->len = 0;
        r = net_receive(s, NET_LINE, 0, line, deadline);
        if (r == -EMSGSIZE) {
            send_error(s, "431 Request Header Fields Too Large", deadline);
            return 0;
        }
        if (r < 0) {
            verbose_error(o, "header", r);
            return -1;
        }
        if (!line->len) break;
        if (++nheaders > HTTP_MAX_HEADERS) {
            send_error(s, "431 Request Header Fields Too Large", deadline);
            return 0;
        }
        span h = {line->data, line->len}, name, value;
        if (!span_split(h, ':', &name, &value) || !name.n ||
            name.p[name.n - 1] == ' ' || name.p[name.n - 1] == '\t') {
            bad = 1;
            continue;
        }
        value = span_trim(value);
        if (span_ieq(name, "connection")) {
            if (has_token(value, "close")) keep_alive = 0;
            else if (http10 && has_token(value, "keep-alive")) keep_alive = 1;
        } else if (span_ieq(name, "content-length")) {
            long v = 0;
            if (!value.n || seen_length) bad = 1;
            for (size_t i = 0; i < value.n && !bad; i++) {
                if (!isdigit((unsigned char)value.p[i]) ||
                    v > (LONG_MAX - 9) / 10)
                    bad = 1;
                else
                    v = v * 10 + (value.p[i] - '0');
            }
            content_length = v;
            seen_length = 1;
        } else if (span_ieq(name, "transfer-encoding")) {
            chunked = 1;
        }
    }
    if (bad) {
        send_error(s, "400 Bad Request", deadline);
        return 0;
    }
    if (chunked) {
        send_error(s, "501 Not Implemented", deadline);
        return 0;
    }
    if (content_length > HTTP_MAX_BODY) {
        send_error(s, "413 Content Too Large", deadline);
        return 0;
    }
    if (content_length &&
        (r = drop_body(s, line, content_length, deadline)) < 0) {
        verbose_error(o, "body", r);
        return -1;
    }
    const char *answer;
    if (!known) {
        answer = keep_alive ? "HTTP/1.1 405 Method Not Allowed\r\n"
                              "Allow: GET, HEAD, POST\r\n"
                              "Content-Length: 0\r\n\r\n"
                            : "HTTP/1.1 405 Method Not Allowed\r\n"
                              "Allow: GET, HEAD, POST\r\n"
                              "Content-Length: 0\r\nConnection: close\r\n\r\n";
    } else if (keep_alive) {
        if (http10)
            answer = head ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 6\r\nConnection: keep-alive\r\n\r\n"
                          : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 6\r\nConnection: keep-alive\r\n\r\n"
                            "hello\n";
        else
            answer = head ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 6\r\n\r\n"
                          : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            "Content-Length: 6\r\n\r\nhello\n";
    } else {
        answer = head ? "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 6\r\nConnection: close\r\n\r\n"
                      : "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                        "Content-Length: 6\r\nConnection: close\r\n\r\nhello\n";
    }
    if ((r = send_text(s, answer, deadline)) < 0) {
        verbose_error(o, "send", r);
        return -1;
    }
    return keep_alive;
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
    srv_worker *w = arg;
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
    srv_opts o = {"127.0.0.1", 8080, NULL, 1, 60000, 10000, 0};
    srv_parse(&o, argc, argv, usage);
    return srv_run(&o, http_conn);
}
