/* echo-libuv-ref: a libuv echo server, the second reference for
 * socketloop-echo.  A 512-byte buffer per connection (as socketloop-echo
 * has); each read is answered with uv_try_write, and only a short write
 * falls back to uv_write, with reading stopped until it completes.  MIT
 * licence, see LICENSE.
 *
 *   echo-libuv-ref [-a HOST] [-p PORT]
 *
 * Prints "listening on HOST:PORT"; SIGINT or SIGTERM close every handle
 * and exit 0. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <uv.h>

#define BUF 512

typedef struct conn {
    uv_tcp_t tcp; /* first: the handle's address is the conn's */
    uv_write_t wr;
    char buf[BUF];
} conn;

static uv_tcp_t server;
static uv_signal_t sigint_h, sigterm_h;

static void on_close_free(uv_handle_t *h)
{
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = (conn *)h;
    *buf = uv_buf_init(c->buf, BUF);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_write(uv_write_t *wr, int status)
{
    conn *c = wr->data;
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp))
            uv_close((uv_handle_t *)&c->tcp, on_close_free);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn *c = (conn *)s;
    if (nread == 0) return; /* EAGAIN */
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_close_free);
        return;
    }
    uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
    int w = uv_try_write(s, &out, 1);
    if (w == nread) return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close_free);
        return;
    }
    if (w > 0) out = uv_buf_init(buf->base + w, (unsigned)(nread - w));
    /* The buffer stays put while reading is stopped. */
    uv_read_stop(s);
    c->wr.data = c;
    if (uv_write(&c->wr, s, &out, 1, on_write) < 0)
        uv_close((uv_handle_t *)s, on_close_free);
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0) {
        fprintf(stderr, "listen: %s\n", uv_strerror(status));
        return;
    }
    conn *c = malloc(sizeof *c);
    if (!c) return;
    uv_tcp_init(srv->loop, &c->tcp);
    if (uv_accept(srv, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_close_free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h)) return;
    if (h == (uv_handle_t *)&server || h == (uv_handle_t *)&sigint_h ||
        h == (uv_handle_t *)&sigterm_h)
        uv_close(h, NULL);
    else
        uv_close(h, on_close_free);
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    uv_walk(h->loop, close_walk, NULL);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7002, opt, rc;
    while ((opt = getopt(argc, argv, "a:p:h")) != -1) {
        switch (opt) {
        case 'a': host = optarg; break;
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == 0 || *end || v < 0 || v > 65535) {
                fprintf(stderr, "bad port: %s\n", optarg);
                return 2;
            }
            port = (int)v;
            break;
        }
        default:
            fprintf(opt == 'h' ? stdout : stderr,
                    "usage: echo-libuv-ref [-a HOST] [-p PORT]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in sa;
    int len = sizeof sa;
    if ((rc = uv_ip4_addr(host, port, &sa)) < 0 ||
        (rc = uv_tcp_init(loop, &server)) < 0 ||
        (rc = uv_tcp_bind(&server, (const struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection)) <
            0 ||
        (rc = uv_tcp_getsockname(&server, (struct sockaddr *)&sa, &len)) < 0) {
        fprintf(stderr, "listen on %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    uv_signal_init(loop, &sigint_h);
    uv_signal_init(loop, &sigterm_h);
    uv_signal_start(&sigint_h, on_signal, SIGINT);
    uv_signal_start(&sigterm_h, on_signal, SIGTERM);
    printf("listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    if (rc < 0) fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(rc));
    return 0;
}
