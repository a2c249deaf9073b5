/* select(2) backend, the seed's.  An fd_set holds descriptors below
 * FD_SETSIZE only; a socket past it is refused with NET_EFDSETSIZE when it
 * is first registered, never written past the set. */
#include "table.h"

#include <sys/select.h>

struct net__poller {
    net__table t;
    fd_set r, w; /* rebuilt for each wait */
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
    table_free(&p->t);
    free(p);
}

static int add(net__poller *p, net__waitable *w, int events)
{
    if (w->fd >= FD_SETSIZE) return NET_EFDSETSIZE;
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
    int maxfd = -1;
    FD_ZERO(&p->r);
    FD_ZERO(&p->w);
    for (int i = 0; i < p->t.n; i++) {
        int fd = p->t.e[i].w->fd, ev = p->t.e[i].events;
        if (ev & NET_IN) FD_SET(fd, &p->r);
        if (ev & NET_OUT) FD_SET(fd, &p->w);
        if (ev && fd > maxfd) maxfd = fd;
    }
    struct timeval tv = {timeout_ms / 1000,
                         (suseconds_t)(timeout_ms % 1000) * 1000};
    int r = select(maxfd + 1, &p->r, &p->w, NULL, timeout_ms < 0 ? NULL : &tv);
    if (r < 0) return -errno;
    /* The sets say what happened to a descriptor, not to an entry: each
     * entry takes only the directions it asked for, and every entry is
     * looked at (no count of set bits, which entries sharing a
     * descriptor would spend twice). */
    int n = 0;
    for (int i = 0; i < p->t.n && n < max && r > 0; i++) {
        int fd = p->t.e[i].w->fd;
        int ev = ((FD_ISSET(fd, &p->r) ? NET_IN : 0) |
                  (FD_ISSET(fd, &p->w) ? NET_OUT : 0)) &
                 p->t.e[i].events;
        if (!ev) continue;
        out[n].w = p->t.e[i].w;
        out[n].events = ev;
        n++;
    }
    return n;
}

const net__backend net__select_backend = {
    "select", 0, create, destroy, add, mod, del, wait_events, NULL, NULL,
};
