/* Private structures of the net layer.  It uses the runtime only through
 * runtime/park.h (tools/lint.sh checks it): it parks and wakes green
 * threads, and plugs its poller into the loop through gt__io. */
#ifndef NET_INTERNAL_H
#define NET_INTERNAL_H

#include "park.h"

#include <netdb.h>
#include "socketloop/net.h"
#include "socketloop/net_op.h"

#define NET__EDGE 4 /* with NET_IN/NET_OUT: report changes only */
#define NET__HUP 8  /* in events: the peer has shut down or failed */
#define NET__POLL                                                              \
    16 /* with add: a descriptor of the program's (net_wait),                  \
          which epoll must not keep (see poll_epoll.c) */
/* Bytes a socket moves without parking before its thread lets the loop
 * poll (see net/io.c). */
#define NET__QUANTUM ((size_t)64 * 1024)

/* Anything the poller watches: a socket, a foreign descriptor in
 * net_wait, the resolver's wake-up descriptor. */
typedef struct net__waitable {
    int fd;
    int slot;              /* index in the poll and select tables */
    gt__thread *waiter[2]; /* parked reader [0] and writer [1] (net_wait) */
    net_op *op[2];         /* a socket's waiting operations (net/op.c) */
    int dry[2];            /* the last read drained it, the last write
                              filled it: wait for an event first */
    int hup;               /* NET__HUP seen: reads end, never park */
    void (*on_event)(struct net__waitable *w, int events); /* NULL: wake */
    unsigned ring; /* io_uring: its requests in the kernel (poll_uring.c) */
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
    /* A completion backend's (NULL for the others).  submit takes a
     * step's transfer in direction dir (net__xfer): the result of the
     * request it submitted earlier for the same buffer, once in, or
     * -EAGAIN after queueing one (whose completion is dir's event).
     * settle, when an op stops waiting early, cancels its request and
     * waits until the kernel is done with the buffer; returns 1 if a
     * result came in meanwhile and `keep` says the op's next step takes
     * it, else 0 (a receive's bytes then become the socket's read-ahead,
     * any other result is dropped). */
    ssize_t (*submit)(net__poller *p, struct net_sock *s, int dir, void *buf,
                      size_t n);
    int (*settle)(net__poller *p, struct net_sock *s, int dir, int keep);
} net__backend;

extern const net__backend net__epoll_backend;
extern const net__backend net__poll_backend;
extern const net__backend net__select_backend;
extern const net__backend net__uring_backend;

struct net__resolver;
#define NET__SPARE 16 /* read-ahead buffers a loop keeps for reuse */

/* The net layer's state for one OS thread. */
typedef struct net__loop {
    gt__io io;                 /* first member: the loop calls io.wait */
    const net__backend *be;    /* the chosen backend */
    net__poller *p;            /* its state */
    size_t nsocks;             /* open sockets */
    struct net__resolver *res; /* name-resolution threads, made lazily */
    char *spare[NET__SPARE];   /* read-ahead buffers no socket holds now */
    int nspare;
    int in_batch;          /* handing out the poller's events */
    struct net_sock *dead; /* freed after the batch (net__unref) */
    gt__list foreign;      /* parked net_wait calls, checked before
                              each poll for a closed descriptor */
} net__loop;

/* A transfer submitted to a completion backend for one direction of a
 * socket. */
enum { NET__SUB_NONE, NET__SUB_BUSY, NET__SUB_DONE };
typedef struct net__sub {
    void *buf; /* the op's buffer, which the kernel owns while BUSY */
    int res;   /* DONE: the completion's result, for the step that took
                  the request for buf */
    int state;
} net__sub;

/* The fields every read and write touches come first, so that a busy
 * socket's hot state is 160 contiguous bytes; what only some calls use
 * follows. */
struct net_sock {
    net__waitable w;            /* descriptor and parked waiters */
    net__loop *L;               /* the loop it belongs to */
    uint64_t owner;             /* serial of its OS thread (gt__alien) */
    unsigned refs;              /* the owner's, until net_close, + one per
                                   operation in flight */
    int closed;                 /* net_close was called */
    int registered;             /* known to the poller */
    int skip_line;              /* discarding the rest of an over-long line */
    char *rbuf;                 /* bytes read and not yet returned, or NULL */
    size_t rpos, rlen;          /* they are rbuf[rpos .. rpos + rlen) */
    size_t rcap;                /* rbuf's size */
    uint64_t in, out;           /* bytes received and sent */
    size_t streak;              /* bytes moved since it last parked */
    size_t max_line;            /* limit of NET_LINE */
    int64_t born;               /* gt_now() at creation */
    struct net_server *server;  /* a connection's: the server running its
                                   handler; a listener's: the one serving
                                   on it (net/serve.c) */
    gt__list serve_link;        /* in server->conns while its handler lives */
    int64_t serve_thread;       /* the id of that handler's green thread */
    struct net_sock *next_dead; /* in net__loop.dead */
    net__sub sub[2];            /* a completion backend's transfers */
    const struct net__transport *tp; /* NULL: the kernel's bytes as they
                                        are; else a layer over them */
    void *tp_state;                  /* the transport's, per socket */
};

/* A transport over the socket's bytes (TLS, net/tls.c): the steps call it
 * where they would call recv() and send().  read and write return > 0
 * bytes, 0 (read: a clean end of stream), -EAGAIN when the layer must
 * wait, or another error; after -EAGAIN, want says which event the layer
 * waits for on behalf of the op of direction dir (NET__WAIT_IN or
 * NET__WAIT_OUT: a read may need the socket writable, a write readable).
 * The layer never sets the dry marks: it may hold bytes the kernel no
 * longer has (pending says whether it does: a read would then go on
 * without waiting for an event). */
typedef struct net__transport {
    ssize_t (*read)(net_sock *s, void *buf, size_t n);
    ssize_t (*write)(net_sock *s, const void *buf, size_t n);
    int (*want)(const net_sock *s, int dir);
    int (*pending)(const net_sock *s);
    int (*handshake)(net_sock *s); /* 0 done, -EAGAIN, or an error */
    int (*shutdown)(net_sock *s);  /* our end of the layer, never waits */
    void (*free)(net_sock *s);     /* with the socket's last reference */
} net__transport;

/* Whether s (not NULL) was made on another OS thread: every public call
 * on a socket starts with `if (net__alien(s)) return GT_EOWNER;`. */
static inline int net__alien(const net_sock *s)
{
    return s && gt__alien(s->owner);
}

/* The calling OS thread's loop, made on first use (net/loop.c). */
net__loop *net__get(int *err);
int net__sock_new(net__loop *L, int fd, net_sock **out);

/* --- Waiting (net/wait.c) ------------------------------------------------ */
/* Parks the running green thread until w is ready in direction dir
 * (0 read, 1 write) or the deadline; the caller registered w. */
int net__park(net__loop *L, net__waitable *w, int dir, int64_t deadline);
/* Registers s with the poller if an operation waits on it for I/O, or
 * updates a level-triggered poller's interest to the directions that
 * operations wait for. */
int net__sock_watch(net_sock *s);
/* The loop's poll round (gt__io.wait): waits at most timeout_ms for
 * events and wakes or steps whatever waits on them. */
void net__loop_wait(gt__io *io, int timeout_ms);
/* Every operation holds a reference on its socket while it runs or
 * waits; the owner's is dropped by net_close.  The last one closes the
 * descriptor. */
void net__unref(net_sock *s);
/* Frees the sockets whose last reference went during a poller batch. */
void net__free_dead(net__loop *L);
/* Frees the socket's read-ahead buffer when it holds nothing, keeping it
 * for the next socket that needs one. */
void net__rbuf_release(net_sock *s);

/* --- Operations as steps (net/op.c) -------------------------------------
 * A step makes progress without waiting and says how it ended. */
enum {
    NET__DONE,     /* op->rc holds the result */
    NET__WAIT_IN,  /* needs the socket readable */
    NET__WAIT_OUT, /* needs it writable */
    NET__WAIT_TIME /* needs time to pass: until net__opx.until */
};
/* The private part of a net_op (its net__priv). */
typedef struct net__opx {
    gt__ctimer timer;   /* started ops: the bound of the current wait */
    gt__thread *thread; /* the green thread parked on it (net_op_run) */
    int64_t until;      /* NET__WAIT_TIME: when to step again */
    int64_t backoff;    /* ACCEPT, CONNECT: the next pause (see net/tcp.c) */
    int64_t idle_end;   /* when the current wait times out for idleness */
    size_t mark;        /* op->moved when the idle clock last restarted */
    size_t start;       /* RECEIVE: out->len before the op */
    int state;          /* enum below */
    int dir;            /* 0 read, 1 write */
    int phase;          /* CONNECT: 1 once connect() is in progress */
    int async;          /* started by net_op_start, not yet ended */
    int kicked;         /* its timer steps it: another call left bytes */
    int want;           /* NET_IN or NET_OUT: the event it waits for,
                           which is its own direction's unless a
                           transport needs the other */
} net__opx;
enum { NET__OP_IDLE, NET__OP_IO, NET__OP_TIME };
static inline net__opx *net__x(net_op *op)
{
    return (net__opx *)(void *)&op->net__priv;
}
/* When the operation, or its current wait for idleness, ends; -1 never. */
int64_t net__bound(const net_op *op);
/* Whether op, if it cannot finish now, will wait rather than end: not a
 * try-once call, and a started op or a green thread not cancelled (a
 * cancelled one must still take what is there).  net__dry and a
 * completion backend's submission both ask it. */
static inline int net__may_wait(const net_op *op)
{
    if (op->deadline == 0) return 0;
    if (net__x((net_op *)op)->async) return 1;
    return gt__self() && !gt__self_cancelled();
}
/* A step may skip a system call that can only say EAGAIN? */
int net__dry(const net_sock *s, int dir, const net_op *op);
/* The transfer of a step in direction dir: recv(2) or send(2) of up to n
 * bytes, or on a completion backend, for an op that would wait, its
 * submission (net__backend.submit); bytes or -errno. */
ssize_t net__xfer(net_sock *s, int dir, void *buf, size_t n, const net_op *op);
/* An op on s stops waiting in direction dir before its event: on a
 * completion backend, lets the kernel let go of its buffer first (see
 * net__backend.settle).  Returns 1 if a result came in for the op's next
 * step to take. */
int net__settle(net_sock *s, int dir, int keep);
/* The steps of each kind: net/io.c, net/bufio.c, net/tcp.c. */
int net__recv_step(net_op *op);
int net__send_step(net_op *op);
int net__receive_step(net_op *op);
int net__accept_step(net_op *op);
int net__connect_step(net_op *op);
int net__handshake_step(net_op *op);
/* Drops the rest of an over-long line (net/bufio.c): NET__GO when
 * nothing is left to drop (also when the stream ended), NET__WAIT_IN, or
 * NET__DONE with op->rc set to the error that came meanwhile. */
#define NET__GO (-1)
int net__skip_line(net_sock *s, net_op *op);
/* Reads into buf, from the socket's buffer first: > 0 bytes, 0 at end of
 * stream, -EAGAIN when nothing is there, or another error. */
ssize_t net__read(net_sock *s, void *buf, size_t n, const net_op *op);
/* The poller says op's socket is ready for it: wakes its thread, or
 * steps it. */
void net__op_ready(net_op *op);
/* Ends every operation waiting on s with NET_ECLOSED (net_close). */
void net__ops_closed(net_sock *s);

/* Resolves host:port into a list to free with freeaddrinfo.  `use` says
 * what for: NET__PEER (connect to it), NET__LISTEN (host NULL: every IPv4
 * address), NET__LOCAL (the local end of a connect; host NULL: the
 * wildcard of every family). */
enum { NET__PEER, NET__LISTEN, NET__LOCAL };
int net__resolve(net__loop *L, const char *host, int port, int use,
                 struct addrinfo **out, int64_t deadline);
void net__resolver_free(net__loop *L);

#endif
