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
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 512
#define EVENTS 256

typedef struct conn {
    int fd;
    int pending, off; /* unsent bytes are buf[off .. off + pending) */
    char buf[BUF];
} conn;

/* epoll data: these two markers, or a conn pointer. */
static char listener_tag, signal_tag;

static int ep;

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

static int watch(int op, int fd, unsigned events, void *ptr)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = ptr;
    return epoll_ctl(ep, op, fd, &ev);
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
    const char *host = "127.0.0.1";
    int port = 7001, opt;
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
                    "usage: echo-epoll-ref [-a HOST] [-p PORT]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address: %s\n", host);
        return 2;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    socklen_t len = sizeof sa;
    if (lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        listen(lfd, SOMAXCONN) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) < 0) {
        perror("listen");
        return 1;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (sfd < 0 || ep < 0 ||
        watch(EPOLL_CTL_ADD, lfd, EPOLLIN, &listener_tag) < 0 ||
        watch(EPOLL_CTL_ADD, sfd, EPOLLIN, &signal_tag) < 0) {
        perror("epoll");
        return 1;
    }
    printf("listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stdout);

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
