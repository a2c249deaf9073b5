/* echo-tls-ref: the floor the TLS echo of socketloop-echo is measured
 * against.  A plain single-threaded epoll echo server over OpenSSL, no
 * green threads: non-blocking, level-triggered, watching one direction at
 * a time (the one OpenSSL last asked for), one SSL_read per event plus
 * what OpenSSL holds decrypted already, a 512-byte buffer per connection
 * as in echo-epoll-ref, and OpenSSL's buffers released while idle (as
 * socketloop's TLS does).  MIT licence, see LICENSE.
 *
 *   echo-tls-ref -c CERT -k KEY [-a HOST] [-p PORT]
 *
 * Prints "listening on HOST:PORT"; SIGINT or SIGTERM exit 0. */
#define _GNU_SOURCE
#include "epoll_ref.h"

#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define BUF 512
#define EVENTS 256

typedef struct conn {
    int fd;
    SSL *ssl;
    unsigned watching; /* EPOLLIN or EPOLLOUT */
    int pending;       /* bytes of buf to write back */
    char buf[BUF];
} conn;

static void conn_close(conn *c)
{
    SSL_free(c->ssl);
    close(c->fd);
    free(c);
}

/* Watches the direction OpenSSL wants after a call that returned r; 0,
 * or -1 when the connection is over. */
static int want(conn *c, int r)
{
    unsigned ev;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ: ev = EPOLLIN; break;
    case SSL_ERROR_WANT_WRITE: ev = EPOLLOUT; break;
    default: ERR_clear_error(); return -1;
    }
    if (ev != c->watching && watch(EPOLL_CTL_MOD, c->fd, ev, c) < 0) return -1;
    c->watching = ev;
    return 0;
}

/* Goes on with whatever the connection was doing (the handshake, the
 * write back of what it read, reading) until OpenSSL must wait. */
static void on_conn(conn *c)
{
    int r;
    for (;;) {
        if (!SSL_is_init_finished(c->ssl)) {
            r = SSL_do_handshake(c->ssl);
        } else if (c->pending) {
            if ((r = SSL_write(c->ssl, c->buf, c->pending)) > 0) c->pending = 0;
        } else if ((r = SSL_read(c->ssl, c->buf, BUF)) > 0) {
            c->pending = r;
        }
        if (r <= 0) break;
    }
    if (want(c, r) < 0) conn_close(c);
}

static void on_accept(int lfd, SSL_CTX *ctx)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return;
        }
        conn *c = calloc(1, sizeof *c);
        int one = 1;
        if (!c || !(c->ssl = SSL_new(ctx)) || !SSL_set_fd(c->ssl, fd)) {
            if (c) SSL_free(c->ssl);
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->watching = EPOLLIN;
        SSL_set_accept_state(c->ssl);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (watch(EPOLL_CTL_ADD, fd, EPOLLIN, c) < 0) conn_close(c);
    }
}

int main(int argc, char **argv)
{
    const char *files[2] = {NULL, NULL}; /* -c CERT, -k KEY */
    int sfd;
    int lfd = ref_setup(
        argc, argv, "usage: echo-tls-ref -c CERT -k KEY [-a HOST] [-p PORT]\n",
        7002, "c:k:", files, &sfd);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!files[0] || !files[1] || !ctx ||
        SSL_CTX_use_certificate_chain_file(ctx, files[0]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, files[1], SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "echo-tls-ref: cannot load -c CERT and -k KEY\n");
        return 2;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    /* SIGPIPE: OpenSSL writes with write(2). */
    signal(SIGPIPE, SIG_IGN);

    struct epoll_event ev[EVENTS];
    for (;;) {
        int n = epoll_wait(ep, ev, EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &listener_tag) {
                on_accept(lfd, ctx);
            } else if (p == &signal_tag) {
                close(lfd);
                close(sfd);
                close(ep);
                SSL_CTX_free(ctx);
                return 0;
            } else {
                on_conn(p);
            }
        }
    }
}
