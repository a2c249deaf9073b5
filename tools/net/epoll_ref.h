/* Shared by the epoll reference servers (echo_epoll_ref.c, and
 * echo_tls_ref.c with TLS): the command line, the listener, the signal
 * descriptor and the epoll set.  MIT licence, see LICENSE. */
#ifndef SLTOOLS_EPOLL_REF_H
#define SLTOOLS_EPOLL_REF_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/* epoll data: these two markers, or a connection of the server's. */
static char listener_tag, signal_tag;
static int ep;

static int watch(int op, int fd, unsigned events, void *ptr)
{
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = ptr;
    return epoll_ctl(ep, op, fd, &ev);
}

/* Parses -a HOST -p PORT (and the options in more, each with an
 * argument, into more_args in order), raises the descriptor limit,
 * listens, makes the epoll set with the listener and SIGINT/SIGTERM's
 * signalfd in it, and prints "listening on HOST:PORT".  Returns the
 * listener, or exits. */
static int ref_setup(int argc, char **argv, const char *usage, int port,
                     const char *more, const char **more_args, int *sfd)
{
    const char *host = "127.0.0.1";
    char opts[32];
    int opt;
    snprintf(opts, sizeof opts, "a:p:h%s", more);
    while ((opt = getopt(argc, argv, opts)) != -1) {
        const char *m = opt != ':' ? strchr(more, opt) : NULL;
        if (m && opt != 'a' && opt != 'p' && opt != 'h') {
            more_args[(m - more) / 2] = optarg;
        } else if (opt == 'a') {
            host = optarg;
        } else if (opt == 'p') {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == 0 || *end || v < 0 || v > 65535) {
                fprintf(stderr, "bad port: %s\n", optarg);
                exit(2);
            }
            port = (int)v;
        } else {
            fputs(usage, opt == 'h' ? stdout : stderr);
            exit(opt == 'h' ? 0 : 2);
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
        exit(2);
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
        exit(1);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    *sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (*sfd < 0 || ep < 0 ||
        watch(EPOLL_CTL_ADD, lfd, EPOLLIN, &listener_tag) < 0 ||
        watch(EPOLL_CTL_ADD, *sfd, EPOLLIN, &signal_tag) < 0) {
        perror("epoll");
        exit(1);
    }
    printf("listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stdout);
    return lfd;
}

#endif
