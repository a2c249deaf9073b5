/* poll(2) backend, level-triggered: a socket is watched only in the
 * directions someone waits for, so an unread socket does not spin the
 * loop. */
#include "table.h"

#include <poll.h>

struct net__poller {
    net__table t;
    struct pollfd *pfd; /* rebuilt for each wait */
    int pfd_cap;
};

static int create(net__poller **out)
{
    net__poller *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    *out = p;
    return 0;
}

static void destroy(net__poller *p)
{
    free(p->t.e);
    free(p->pfd);
    free(p);
}

static int add(net__poller *p, net__waitable *w, int events)
{
    return table_add(&p->t, w, events);
}

static int mod(net__poller *p, net__waitable *w, int events)
{
    return table_mod(&p->t, w, events);
}

static void del(net__poller *p, net__waitable *w)
{
    table_del(&p->t, w);
}

static int wait_events(net__poller *p, int timeout_ms, net__event *out, int max)
{
    if (p->pfd_cap < p->t.n) {
        struct pollfd *v = realloc(p->pfd, (size_t)p->t.cap * sizeof *v);
        if (!v) return -ENOMEM;
        p->pfd = v;
        p->pfd_cap = p->t.cap;
    }
    for (int i = 0; i < p->t.n; i++) {
        int ev = p->t.e[i].events;
        /* A negative descriptor is skipped, errors included. */
        p->pfd[i].fd = ev ? p->t.e[i].w->fd : -1;
        p->pfd[i].events = (short)(((ev & NET_IN) ? POLLIN : 0) |
                                   ((ev & NET_OUT) ? POLLOUT : 0));
        p->pfd[i].revents = 0;
    }
    int r = poll(p->pfd, (nfds_t)p->t.n, timeout_ms);
    if (r < 0) return -errno;
    int n = 0;
    for (int i = 0; i < p->t.n && n < max && r > 0; i++) {
        short re = p->pfd[i].revents;
        if (!re) continue;
        r--;
        out[n].w = p->t.e[i].w;
        out[n].events =
            ((re & POLLIN) ? NET_IN : 0) | ((re & POLLOUT) ? NET_OUT : 0) |
            ((re & (POLLERR | POLLHUP | POLLNVAL)) ? NET_IN | NET_OUT : 0);
        n++;
    }
    return n;
}

const net__backend net__poll_backend = {
    "poll", 0, create, destroy, add, mod, del, wait_events,
};
