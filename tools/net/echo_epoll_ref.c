/* echo-epoll-ref: the floor socketloop-echo is measured against.  A plain
 * single-threaded epoll echo server, no green threads: level-triggered,
 * non-blocking, one read per readiness event, and a 512-byte buffer per
 * connection (the same as socketloop-echo's).  When a write is short the
 * connection stops reading until the rest has gone out.  MIT licence, see
 * LICENSE.
 *
 *   echo-epoll-ref [-a HOST] [-p PORT]
 *
 * Prints "listening on HOST:PORT"; SIGINT or SIGTERM (via signalfd) close
 * everything and exit 0. */
#define _GNU_SOURCE
#include "epoll_ref.h"

#include <netinet/tcp.h>
#include <time.h>

#define BUF 512
#define EVENTS 256

typedef struct conn {
    int fd;
    int pending, off; /* unsent bytes are buf[off .. off + pending) */
    char buf[BUF];
} conn;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

static void on_accept(int lfd, long long *paused)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EMFILE || errno == ENFILE) {
                /* Stop watching the listener for a moment, or level
                 * triggering would spin on the queued connection. */
                watch(EPOLL_CTL_DEL, lfd, 0, NULL);
                *paused = now_ms() + 100;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                perror("accept4");
            }
            return;
        }
        conn *c = malloc(sizeof *c);
        int one = 1;
        if (!c) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->pending = c->off = 0;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (watch(EPOLL_CTL_ADD, fd, EPOLLIN, c) < 0) {
            perror("epoll_ctl");
            conn_close(c);
        }
    }
}

/* Writes what is pending; 1 when all went out, 0 when the socket is full,
 * -1 on an error. */
static int flush(conn *c)
{
    while (c->pending) {
        ssize_t w =
            send(c->fd, c->buf + c->off, (size_t)c->pending, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        c->off += (int)w;
        c->pending -= (int)w;
    }
    c->off = 0;
    return 1;
}

static void on_conn(conn *c, unsigned events)
{
    if (c->pending) { /* waiting for EPOLLOUT */
        int rc = flush(c);
        if (rc < 0) {
            conn_close(c);
        } else if (rc > 0) {
            watch(EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
        }
        return;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    ssize_t n = recv(c->fd, c->buf, BUF, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    c->pending = (int)n;
    int rc = flush(c);
    if (rc < 0)
        conn_close(c);
    else if (rc == 0)
        watch(EPOLL_CTL_MOD, c->fd, EPOLLOUT, c);
}

int main(int argc, char **argv)
{
    int sfd;
    int lfd =
        ref_setup(argc, argv, "usage: echo-epoll-ref [-a HOST] [-p PORT]\n",
                  7001, "", NULL, &sfd);

    struct epoll_event ev[EVENTS];
    long long paused = 0; /* when the listener is to be watched again */
    for (;;) {
        int n = epoll_wait(ep, ev, EVENTS, paused ? 100 : -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("epoll_wait");
            return 1;
        }
        if (paused && now_ms() >= paused) {
            paused = 0;
            watch(EPOLL_CTL_ADD, lfd, EPOLLIN, &listener_tag);
        }
        for (int i = 0; i < n; i++) {
            void *p = ev[i].data.ptr;
            if (p == &listener_tag) {
                on_accept(lfd, &paused);
            } else if (p == &signal_tag) {
                /* Connections still open are closed by exit; the kernel
                 * frees them with the process. */
                close(lfd);
                close(sfd);
                close(ep);
                return 0;
            } else {
                on_conn(p, ev[i].events);
            }
        }
    }
}
