/* epoll backend.  Sockets are registered once, edge-triggered, for both
 * directions: a waiter always tries its system call first and parks only
 * on EAGAIN, so an edge can never be missed, and no epoll_ctl is needed
 * per wait.
 *
 * Descriptors that net_wait watches for the program (NET__POLL) never
 * enter the epoll set.  An epoll registration belongs to the open file,
 * not to the number: one that the program closes while the file lives on
 * elsewhere (a dup, a fork) stays in the set and keeps reporting, and a
 * clean-up by number (EPOLL_CTL_DEL) after the number was reused would
 * remove the new owner's registration.  They are kept in a table instead,
 * and each wait polls them with poll(2) together with the epoll
 * descriptor, which reads as ready when epoll has events. */
#include "table.h"

#include <sys/epoll.h>
#include <unistd.h>

struct net__poller {
    int epfd;
    net__table t;               /* net_wait's descriptors */
    struct epoll_event ev[256]; /* filled by epoll_wait */
};

static int create(net__poller **out)
{
    net__poller *p = calloc(1, sizeof *p);
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
    table_free(&p->t);
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
    if (events & NET__POLL) return table_add(&p->t, w, events);
    return ctl(p, EPOLL_CTL_ADD, w, events);
}

/* A waitable in the table has a slot; one in the epoll set has none. */
static int mod(net__poller *p, net__waitable *w, int events)
{
    if (w->slot >= 0) return table_mod(&p->t, w, events);
    return ctl(p, EPOLL_CTL_MOD, w, events);
}

static void del(net__poller *p, net__waitable *w)
{
    if (w->slot >= 0) {
        table_del(&p->t, w);
        return;
    }
    /* Fails only if the descriptor is already gone, which removed it. */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

static int wait_events(net__poller *p, int timeout_ms, net__event *out, int max)
{
    if (max > 256) max = 256;
    int n = 0;
    if (p->t.n) {
        int ready = 0;
        n = table_poll(&p->t, p->epfd, &ready, timeout_ms, out, max);
        if (n < 0 || !ready || n == max) return n;
        timeout_ms = 0; /* epoll has events: take them without waiting */
    }
    int k = epoll_wait(p->epfd, p->ev, max - n, timeout_ms);
    if (k < 0) return n ? n : -errno;
    for (int i = 0; i < k; i++, n++) {
        uint32_t e = p->ev[i].events;
        out[n].w = p->ev[i].data.ptr;
        out[n].events = 0;
        if (e & (EPOLLIN | EPOLLRDHUP)) out[n].events |= NET_IN;
        if (e & EPOLLOUT) out[n].events |= NET_OUT;
        if (e & (EPOLLERR | EPOLLHUP)) out[n].events |= NET_IN | NET_OUT;
        if (e & (EPOLLRDHUP | EPOLLERR | EPOLLHUP)) out[n].events |= NET__HUP;
    }
    return n;
}

const net__backend net__epoll_backend = {
    "epoll", 1, create, destroy, add, mod, del, wait_events, NULL, NULL,
};
