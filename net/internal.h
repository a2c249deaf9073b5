/* Private structures of the net layer.  It parks and wakes green threads
 * only through runtime/park.h, and plugs its poller into the loop through
 * gt__io. */
#ifndef NET_INTERNAL_H
#define NET_INTERNAL_H

#include "park.h"

#include <netdb.h>
#include "socketloop/net.h"

#define NET__EDGE 4 /* with NET_IN/NET_OUT: report changes only */
#define NET__HUP 8  /* in events: the peer has shut down or failed */
#define NET__POLL                                                              \
    16 /* with add: a descriptor of the program's (net_wait),                  \
          which epoll must not keep (see poll_epoll.c) */
/* Bytes a socket moves without parking before its thread lets the loop
 * poll (see net/io.c). */
#define NET__QUANTUM ((size_t)64 * 1024)

/* A callback waiter on a socket, for code that waits without a green
 * thread (the Lua module's yielded coroutines).  fn runs in the loop, on
 * the loop's stack: rc is 0 when the socket is ready, NET_ECLOSED when it
 * was closed. */
typedef struct net__watch {
    void (*fn)(struct net__watch *w, int rc);
} net__watch;

/* Anything the poller watches: a socket, a foreign descriptor in
 * net_wait, the resolver's wake-up descriptor. */
typedef struct net__waitable {
    int fd;
    int slot;              /* index in the poll and select tables */
    gt__thread *waiter[2]; /* parked reader [0] and writer [1] */
    net__watch *watch[2];  /* or callback waiters, sockets only */
    int dry[2];            /* the last read drained it, the last write
                              filled it: wait for an event first */
    int hup;               /* NET__HUP seen: reads end, never park */
    void (*on_event)(struct net__waitable *w, int events); /* NULL: wake */
} net__waitable;

typedef struct net__event {
    net__waitable *w;
    int events; /* NET_IN | NET_OUT; errors and hang-ups give both */
} net__event;

/* A poller backend: one small file each.  Sockets and the resolver's
 * descriptor are the net layer's own, closed only after del.  net_wait's
 * descriptors (added with NET__POLL) are the program's, which may close
 * them or reuse their numbers at any time: a backend keeps those in a
 * table of its own (net/table.h), where del removes the entry it added,
 * never whatever the number names now, and nothing of them stays in the
 * kernel between waits.  Several waitables may have the same descriptor;
 * each is told only of the events it asked for. */
typedef struct net__poller net__poller;
typedef struct net__backend {
    const char *name;
    int edge; /* registers once for both directions; no interest updates */
    int (*create)(net__poller **out);
    void (*destroy)(net__poller *p);
    int (*add)(net__poller *p, net__waitable *w, int events);
    int (*mod)(net__poller *p, net__waitable *w, int events);
    void (*del)(net__poller *p, net__waitable *w);
    /* Fills out[] and returns how many, or -errno. */
    int (*wait)(net__poller *p, int timeout_ms, net__event *out, int max);
} net__backend;

extern const net__backend net__epoll_backend;
extern const net__backend net__poll_backend;
extern const net__backend net__select_backend;

struct net__resolver;

/* The net layer's state for one OS thread. */
typedef struct net__loop {
    gt__io io;                 /* first member: the loop calls io.wait */
    const net__backend *be;    /* the chosen backend */
    net__poller *p;            /* its state */
    size_t nsocks;             /* open sockets */
    struct net__resolver *res; /* name-resolution threads, made lazily */
    gt__list foreign;          /* parked net_wait calls, checked before
                                  each poll for a closed descriptor */
} net__loop;

struct net_sock {
    net__waitable w;            /* descriptor and parked waiters */
    net__loop *L;               /* the loop it belongs to */
    uint64_t owner;             /* serial of its OS thread (gt__alien) */
    unsigned refs;              /* the owner's, until net_close, + one per
                                   operation in flight */
    int closed;                 /* net_close was called */
    int registered;             /* known to the poller */
    struct net__server *server; /* net_serve's record, for its sockets */
    char *rbuf;                 /* bytes read and not yet returned, or NULL */
    size_t rpos, rlen;          /* they are rbuf[rpos .. rpos + rlen) */
    size_t max_line;            /* limit of NET_LINE */
    uint64_t in, out;           /* bytes received and sent */
    size_t streak;              /* bytes moved since it last parked */
    int64_t born;               /* gt_now() at creation */
};

/* Whether s (not NULL) was made on another OS thread: every public call
 * on a socket starts with `if (net__alien(s)) return GT_EOWNER;`. */
static inline int net__alien(const net_sock *s)
{
    return s && gt__alien(s->owner);
}

net__loop *net__get(int *err);
/* Parks the running green thread until w is ready in direction dir
 * (0 read, 1 write) or the deadline; the caller registered w. */
int net__park(net__loop *L, net__waitable *w, int dir, int64_t deadline);
/* The same for a socket: registers it, and returns NET_ECLOSED if it was
 * closed meanwhile.  The caller holds a reference (see net__unref), so
 * that a close by another green thread cannot free the socket under it. */
int net__sock_wait(net_sock *s, int dir, int64_t deadline);
int net__sock_new(net__loop *L, int fd, net_sock **out);
/* At the start of a call: gives way to the others if the socket has moved
 * NET__QUANTUM bytes since it last parked (net/io.c). */
void net__take_turn(net_sock *s, int64_t deadline);
/* Registers a callback waiter instead of parking: -EALREADY if someone
 * waits in that direction, NET_ECLOSED if the socket is closed. */
int net__sock_watch(net_sock *s, int dir, net__watch *w);
/* Takes a callback waiter back without calling it. */
void net__sock_unwatch(net_sock *s, int dir);
/* Removes the callback waiter of a socket's waitable and calls it. */
void net__fire(net__waitable *w, int dir, int rc);
/* Every operation that can park holds a reference on its socket; the
 * owner's is dropped by net_close.  The last one closes the descriptor. */
void net__unref(net_sock *s);
/* Puts bytes read by a previous owner of the descriptor in front of the
 * socket's buffer, which must be empty. */
int net__unread(net_sock *s, const char *data, size_t n);
/* Reads into buf from the socket's buffer first, then the descriptor. */
ssize_t net__read(net_sock *s, void *buf, size_t n, int64_t deadline);

/* Resolves host:port into a list to free with freeaddrinfo.  `use` says
 * what for: NET__PEER (connect to it), NET__LISTEN (host NULL: every IPv4
 * address), NET__LOCAL (the local end of a connect; host NULL: the
 * wildcard of every family). */
enum { NET__PEER, NET__LISTEN, NET__LOCAL };
int net__resolve(net__loop *L, const char *host, int port, int use,
                 struct addrinfo **out, int64_t deadline);
void net__resolver_free(net__loop *L);

#endif
