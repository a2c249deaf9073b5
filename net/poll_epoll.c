/* epoll backend.  Sockets are registered once, edge-triggered, for both
 * directions: a waiter always tries its system call first and parks only
 * on EAGAIN, so an edge can never be missed, and no epoll_ctl is needed
 * per wait. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct net__poller {
    int epfd;
    struct epoll_event ev[256]; /* filled by epoll_wait */
};

static int create(net__poller **out)
{
    net__poller *p = malloc(sizeof *p);
    if (!p) return -ENOMEM;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int rc = -errno;
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void destroy(net__poller *p)
{
    close(p->epfd);
    free(p);
}

static int ctl(net__poller *p, int op, net__waitable *w, int events)
{
    struct epoll_event ev = {0, {.ptr = w}};
    if (events & NET_IN) ev.events |= EPOLLIN | EPOLLRDHUP;
    if (events & NET_OUT) ev.events |= EPOLLOUT;
    if (events & NET__EDGE) ev.events |= EPOLLET;
    return epoll_ctl(p->epfd, op, w->fd, &ev) < 0 ? -errno : 0;
}

static int add(net__poller *p, net__waitable *w, int events)
{
    return ctl(p, EPOLL_CTL_ADD, w, events);
}

static int mod(net__poller *p, net__waitable *w, int events)
{
    return ctl(p, EPOLL_CTL_MOD, w, events);
}

static void del(net__poller *p, net__waitable *w)
{
    /* Fails only if the descriptor is already gone, which removed it. */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

static int wait_events(net__poller *p, int timeout_ms, net__event *out, int max)
{
    if (max > 256) max = 256;
    int n = epoll_wait(p->epfd, p->ev, max, timeout_ms);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = p->ev[i].events;
        out[i].w = p->ev[i].data.ptr;
        out[i].events = 0;
        if (e & (EPOLLIN | EPOLLRDHUP)) out[i].events |= NET_IN;
        if (e & EPOLLOUT) out[i].events |= NET_OUT;
        if (e & (EPOLLERR | EPOLLHUP)) out[i].events |= NET_IN | NET_OUT;
        if (e & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) out[i].events |= NET__HUP;
    }
    return n;
}

const net__backend net__epoll_backend = {
    "epoll", 1, create, destroy, add, mod, del, wait_events,
};
