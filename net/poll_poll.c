/* poll(2) backend, level-triggered: a socket is watched only in the
 * directions someone waits for, so an unread socket does not spin the
 * loop. */
#include "table.h"

struct net__poller {
    net__table t;
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
    return table_poll(&p->t, -1, NULL, timeout_ms, out, max);
}

const net__backend net__poll_backend = {
    "poll", 0, create, destroy, add, mod, del, wait_events, NULL, NULL,
};
