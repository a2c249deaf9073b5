/* socketloop net layer, extension: its operations as resumable steps.
 * MIT licence, see LICENSE.
 *
 * Every blocking call of socketloop/net.h is one of these operations run
 * by a green thread: try the step, park until the socket can go on, try
 * again.  This header lets code that has no green thread per waiter (an
 * interpreter's coroutines, a callback framework) drive the same
 * operations: net_op_start tries the step at once and, if it cannot
 * finish, leaves the operation with the loop, which goes on with it on
 * its own stack and calls op->done when it is over.  The buffering, the
 * fairness quantum, the back-off of accept and the rules for closing
 * while others wait are the same as for the blocking calls, because they
 * are the same code.
 *
 * Nothing here promises readiness polling: an operation in the loop may
 * be carried out by whatever the poller does (a system call made when
 * the socket is ready, or one submitted to the kernel in advance).  The
 * caller only learns that it is done.
 *
 * An operation occupies its socket's direction (read: RECV, RECEIVE,
 * ACCEPT; write: SEND, CONNECT) while it waits, like a parked reader or
 * writer: a second one in that direction gets -EALREADY.
 */
#ifndef SOCKETLOOP_NET_OP_H
#define SOCKETLOOP_NET_OP_H

#include "net.h"

#ifdef __cplusplus
extern "C" {
#endif

enum net_op_kind {
    NET_OP_RECV = 1, /* what is there, up to n bytes into buf (net_recv) */
    NET_OP_RECEIVE,  /* a pattern appended to out (net_receive) */
    NET_OP_SEND,     /* all n bytes of data (net_send) */
    NET_OP_ACCEPT,   /* a connection on a listener (net_accept) */
    NET_OP_CONNECT,  /* s, unconnected, to addr (net_connect_addr) */
    NET_OP_SLEEP,    /* nothing: finishes at the deadline (s unused); sleep
                        always waits for the loop's next round at least,
                        even when its deadline has passed */
    NET_OP_HANDSHAKE /* the TLS handshake of a socket given TLS with
                        net_tls_attach (socketloop/tls.h); -EINVAL on any
                        other.  It takes the read direction. */
};

/* RECEIVE with NET_BYTES: finish as soon as at least one byte has been
 * appended, with up to n. */
#define NET_OP_SOME 1

typedef struct net_op net_op;
typedef void net_op_fn(net_op *op);

struct net_op {
    /* Set by the caller before net_op_start; unchanged by the layer. */
    int kind;         /* enum net_op_kind */
    int flags;        /* NET_OP_SOME */
    net_sock *s;      /* the socket (the listener, for ACCEPT) */
    int pattern;      /* RECEIVE: NET_LINE, NET_ALL or NET_BYTES */
    size_t n;         /* RECV: room in buf; SEND: bytes; RECEIVE: count */
    void *buf;        /* RECV: where the bytes go */
    const void *data; /* SEND: the bytes, which must outlive the op */
    net_buf *out;     /* RECEIVE: appended to, as by net_receive */
    const struct sockaddr *addr; /* CONNECT: the peer; must outlive it */
    socklen_t addrlen;
    int64_t deadline; /* absolute ms for the whole operation; 0 try once */
    int64_t idle;     /* ms a wait may last with no byte moved, or -1 */
    net_op_fn *done;  /* called from the loop when a started op ends */
    void *udata;      /* the caller's */

    /* Results, valid once it has ended. */
    ssize_t rc;         /* as the blocking call would return */
    size_t moved;       /* bytes moved so far (SEND: sent; RECEIVE:
                           appended; RECV: received), also on error */
    net_sock *accepted; /* ACCEPT: the new connection */

    /* The net layer's; do not touch. */
    union {
        void *p[16];
        int64_t i[16];
    } net__priv;
};

/* Tries the operation once (a try-once step always makes its system
 * call).  Returns 1 when it has ended (op->rc says how; done is not
 * called), 0 when it goes on in the loop: op->done(op) is then called
 * exactly once, from the loop's own stack or from the call that ended it
 * (a net_close by someone else), unless net_op_cancel comes first.  The
 * op's memory, and what it points to, must stay valid until then. */
GT_API int net_op_start(net_op *op);

/* Takes back an operation that goes on in the loop, without calling its
 * done.  What it moved so far stays moved (op->moved says how much; for
 * RECEIVE it is in out).  Returns 0, or -EINVAL if op is not waiting. */
GT_API int net_op_cancel(net_op *op);

/* Runs the operation to its end in the calling green thread (the
 * blocking calls of net.h are this): the same result as op->rc. */
GT_API ssize_t net_op_run(net_op *op);

#ifdef __cplusplus
}
#endif

#endif
