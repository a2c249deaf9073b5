/* The table of watched descriptors shared by the poll and select
 * backends, which rebuild their kernel arguments from it: each entry has
 * the waitable and the events wanted now.  Entries move on removal (the
 * last fills the hole), and each waitable remembers its slot.  The epoll
 * backend keeps net_wait's descriptors in one too (see poll_epoll.c). */
#ifndef NET_TABLE_H
#define NET_TABLE_H

#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

typedef struct net__entry {
    net__waitable *w;
    int events; /* NET_IN | NET_OUT wanted; 0 = not watched now */
} net__entry;

typedef struct net__table {
    net__entry *e;
    int n, cap;
    struct pollfd *pfd; /* table_poll's argument to poll(2), rebuilt */
    int pfd_cap;        /* for each wait */
} net__table;

static void table_free(net__table *t)
{
    free(t->e);
    free(t->pfd);
}

static int table_add(net__table *t, net__waitable *w, int events)
{
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 64;
        net__entry *e = realloc(t->e, (size_t)cap * sizeof *e);
        if (!e) return -ENOMEM;
        t->e = e;
        t->cap = cap;
    }
    w->slot = t->n;
    t->e[t->n++] = (net__entry){w, events & (NET_IN | NET_OUT)};
    return 0;
}

static int table_mod(net__table *t, net__waitable *w, int events)
{
    t->e[w->slot].events = events & (NET_IN | NET_OUT);
    return 0;
}

static void table_del(net__table *t, net__waitable *w)
{
    int i = w->slot;
    t->e[i] = t->e[--t->n];
    t->e[i].w->slot = i;
    w->slot = -1;
}

/* Waits with poll(2) for the table's descriptors and, if extra >= 0,
 * for extra to be readable (*extra_ready then tells).  Fills out[] and
 * returns how many entries fired, or -errno. */
static inline int table_poll(net__table *t, int extra, int *extra_ready,
                             int timeout_ms, net__event *out, int max)
{
    int np = t->n + (extra >= 0);
    if (t->pfd_cap < np) {
        int cap = t->cap + 1;
        struct pollfd *v = realloc(t->pfd, (size_t)cap * sizeof *v);
        if (!v) return -ENOMEM;
        t->pfd = v;
        t->pfd_cap = cap;
    }
    for (int i = 0; i < t->n; i++) {
        int ev = t->e[i].events;
        /* A negative descriptor is skipped, errors included. */
        t->pfd[i].fd = ev ? t->e[i].w->fd : -1;
        t->pfd[i].events = (short)(((ev & NET_IN) ? POLLIN : 0) |
                                   ((ev & NET_OUT) ? POLLOUT : 0));
        t->pfd[i].revents = 0;
    }
    if (extra >= 0) t->pfd[t->n] = (struct pollfd){extra, POLLIN, 0};
    int r = poll(t->pfd, (nfds_t)np, timeout_ms);
    if (r < 0) return -errno;
    if (extra >= 0) *extra_ready = t->pfd[t->n].revents != 0;
    int n = 0;
    for (int i = 0; i < t->n && n < max && r > 0; i++) {
        short re = t->pfd[i].revents;
        if (!re) continue;
        r--;
        out[n].w = t->e[i].w;
        out[n].events =
            ((re & POLLIN) ? NET_IN : 0) | ((re & POLLOUT) ? NET_OUT : 0) |
            ((re & (POLLERR | POLLHUP | POLLNVAL)) ? NET_IN | NET_OUT : 0);
        n++;
    }
    return n;
}

#endif
