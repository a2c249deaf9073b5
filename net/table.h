/* The table of watched descriptors shared by the poll and select
 * backends, which rebuild their kernel arguments from it: each entry has
 * the waitable and the events wanted now.  Entries move on removal (the
 * last fills the hole), and each waitable remembers its slot. */
#ifndef NET_TABLE_H
#define NET_TABLE_H

#include "internal.h"

#include <errno.h>
#include <stdlib.h>

typedef struct net__entry {
    net__waitable *w;
    int events; /* NET_IN | NET_OUT wanted; 0 = not watched now */
} net__entry;

typedef struct net__table {
    net__entry *e;
    int n, cap;
} net__table;

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

#endif
