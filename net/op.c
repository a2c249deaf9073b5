/* Operations as resumable steps (socketloop/net_op.h), and the two ways
 * of driving them: a green thread that parks between steps (net_op_run,
 * which every blocking call of net.h is), or the loop itself, which steps
 * a started operation on its own stack when the socket is ready and calls
 * its done (net_op_start).  The steps live with their subjects: net/io.c
 * (recv, send), net/bufio.c (receive patterns), net/tcp.c (accept,
 * connect).
 *
 * A waiting operation sits in its socket's slot for its direction, so the
 * poller's events, net_close and a second would-be waiter all find it
 * there: one reader and one writer at a time, whichever way they wait.
 *
 * Fairness: once a socket has moved NET__QUANTUM bytes without waiting,
 * the next operation on it (unless it only tries once) first lets the loop
 * poll and the others run: a parked caller queues behind the threads that
 * wake; a started op steps again from a timer that fires after the poll.
 * Only at the start of an operation, never between filling a buffer and
 * returning it. */
#include "internal.h"

#include <errno.h>
#include <stddef.h>

_Static_assert(sizeof(net__opx) <= sizeof(((net_op *)0)->net__priv),
               "net_op's private space is too small");

#define NET__OP_KINDS 7

static net_op *op_of(net__opx *x)
{
    return (net_op *)(void *)((char *)x - offsetof(net_op, net__priv));
}

static int64_t earlier(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* When the operation as a whole, or the current wait for idleness, ends:
 * -1 for never. */
int64_t net__bound(const net_op *op)
{
    const net__opx *x = net__x((net_op *)op);
    return earlier(op->deadline, x->idle_end);
}

/* Restarts the idle clock when a step moved bytes. */
static void progress(net_op *op)
{
    net__opx *x = net__x(op);
    if (op->idle < 0 || op->moved == x->mark) return;
    x->mark = op->moved;
    x->idle_end = gt_now() + op->idle;
}

/* The event an op waits for: its step's answer, which a transport may
 * turn to the other direction (a TLS read that must write first).  The
 * op keeps its own direction's slot either way: the poller's event for
 * x->want finds it there (net/wait.c). */
static int wait_for(net_op *op, int r)
{
    net_sock *s = op->s;
    net__opx *x = net__x(op);
    if (r != NET__WAIT_IN && r != NET__WAIT_OUT) return r;
    if (s->tp) r = s->tp->want(s, x->dir);
    x->want = r == NET__WAIT_OUT ? NET_OUT : NET_IN;
    return r;
}

static int step(net_op *op)
{
    int r;
    switch (op->kind) {
    case NET_OP_RECV: r = net__recv_step(op); break;
    case NET_OP_SEND: r = net__send_step(op); break;
    case NET_OP_RECEIVE: r = net__receive_step(op); break;
    case NET_OP_ACCEPT: r = net__accept_step(op); break;
    case NET_OP_CONNECT: r = net__connect_step(op); break;
    case NET_OP_HANDSHAKE: r = net__handshake_step(op); break;
    default: /* NET_OP_SLEEP */
        if (gt_now() >= op->deadline) {
            op->rc = 0;
            return NET__DONE;
        }
        net__x(op)->until = op->deadline;
        return NET__WAIT_TIME;
    }
    progress(op);
    return wait_for(op, r);
}

static int check(const net_op *op)
{
    const net_sock *s = op->s;
    if (op->kind < NET_OP_RECV || op->kind > NET_OP_HANDSHAKE) return -EINVAL;
    if (op->kind == NET_OP_SLEEP) return op->deadline < 0 ? -EINVAL : 0;
    if (!s) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    switch (op->kind) {
    case NET_OP_RECV:
        if (!op->buf || !op->n) return -EINVAL;
        break;
    case NET_OP_SEND:
        if (!op->data && op->n) return -EINVAL;
        break;
    case NET_OP_RECEIVE:
        if (!op->out || (op->pattern != NET_LINE && op->pattern != NET_ALL &&
                         op->pattern != NET_BYTES))
            return -EINVAL;
        break;
    case NET_OP_CONNECT:
        if (!op->addr) return -EINVAL;
        break;
    case NET_OP_HANDSHAKE:
        if (!s->tp) return -EINVAL;
        break;
    default: break;
    }
    return s->closed ? NET_ECLOSED : 0;
}

/* Readies op for its first step; < 0 (also in op->rc) if it cannot run. */
static int prepare(net_op *op)
{
    net__opx *x = net__x(op);
    op->rc = 0;
    op->moved = 0;
    op->accepted = NULL;
    *x = (net__opx){0};
    x->idle_end = op->idle >= 0 ? gt_now() + op->idle : -1;
    x->dir = op->kind == NET_OP_SEND || op->kind == NET_OP_CONNECT;
    if (op->kind == NET_OP_RECEIVE && op->out) x->start = op->out->len;
    int rc = check(op);
    if (rc < 0) op->rc = rc;
    return rc;
}

/* After an operation on s has ended, however it ended: a reader that
 * waits while this one left bytes buffered must see them now, since no
 * event will tell it (they are no longer in the kernel).  A parked thread
 * is woken; a started op steps from its timer, in the loop. */
static void ended(net_op *op)
{
    net_sock *s = op->s;
    if (!s || net__x(op)->dir) return;
    net_op *other = s->w.op[0];
    if (!other || other == op) return;
    if (!s->rlen && !(s->tp && s->tp->pending(s))) return;
    net__opx *ox = net__x(other);
    if (ox->state != NET__OP_IO) return;
    if (ox->thread) {
        gt__wake(ox->thread, 0);
    } else {
        ox->kicked = 1;
        gt__ctimer_start(&ox->timer, gt_now());
    }
}

int net__dry(const net_sock *s, int dir, const net_op *op)
{
    /* Skip the call only when the op will wait if it would block, on a
     * readiness backend (a completion backend's request is no waste), on a
     * socket the poller watches (whose next event clears the mark), and never
     * for a cancelled thread, which must still take what is there. A try-once
     * call always tries. */
    if (!s->w.dry[dir] || !s->registered || s->L->be->submit) return 0;
    return net__may_wait(op);
}

int net__settle(net_sock *s, int dir, int keep)
{
    const net__backend *be = s->L->be;
    return be->settle ? be->settle(s->L->p, s, dir, keep) : 0;
}

/* --- Driven by a parked green thread --------------------------------- */

static const char *const what[NET__OP_KINDS + 1] = {
    "", "recv", "receive", "send", "accept", "connect", "sleep", "handshake"};

/* Parks the calling thread for the wait step r asked for; 0 to step
 * again, < 0 to end with that error. */
static int park(net_op *op, int r)
{
    net__opx *x = net__x(op);
    net_sock *s = op->s;
    int64_t until = net__bound(op);
    int rc;
    if (s && op->deadline == 0) return -ETIMEDOUT; /* tried once */
    if (!gt__self()) return -EPERM;
    if (!s) { /* a sleep: for one round at least, even if already over */
        rc = gt__park(op->deadline > 0 ? op->deadline : 1, what[op->kind], op);
        return rc == -ETIMEDOUT ? 0 : rc;
    }
    if (r == NET__WAIT_TIME) until = earlier(until, x->until);
    if (s->w.op[x->dir]) return -EALREADY;
    x->state = r == NET__WAIT_TIME ? NET__OP_TIME : NET__OP_IO;
    s->w.op[x->dir] = op;
    if ((rc = net__sock_watch(s)) < 0) {
        s->w.op[x->dir] = NULL;
        x->state = NET__OP_IDLE;
        return rc;
    }
    x->thread = gt__self();
    s->L->io.waiters++;
    rc = gt__park(until, what[op->kind], s);
    s->L->io.waiters--;
    /* Ended early (deadline, cancel): a result that came in meanwhile is
     * taken by one more step, not lost. */
    if (rc < 0 && net__settle(s, x->dir, 1)) rc = 0;
    s->w.op[x->dir] = NULL;
    x->thread = NULL;
    x->state = NET__OP_IDLE;
    s->streak = 0; /* it waited: the others have had their turn */
    if (rc == -ECANCELED) return rc;
    if (s->closed) return NET_ECLOSED;
    net__sock_watch(s);
    /* A timed wait (a back-off) ends in another step, which knows what
     * the end of the operation means for it. */
    return rc == -ETIMEDOUT && r == NET__WAIT_TIME ? 0 : rc;
}

ssize_t net_op_run(net_op *op)
{
    if (!op) return -EINVAL;
    if (prepare(op) < 0) return op->rc;
    net_sock *s = op->s;
    if (s) {
        s->refs++;
        if (op->deadline != 0 && s->streak >= NET__QUANTUM) {
            s->streak = 0;
            gt__yield_loop();
        }
    }
    /* A sleep waits first: it always lets the loop run. */
    int r = op->kind == NET_OP_SLEEP ? NET__WAIT_TIME : step(op);
    for (;; r = step(op)) {
        if (r == NET__DONE) break;
        int rc = park(op, r);
        if (rc < 0) {
            op->rc = rc;
            break;
        }
    }
    if (s) {
        ended(op);
        net__unref(s);
    }
    return op->rc;
}

/* --- Driven by the loop ------------------------------------------------ */

/* Takes a started op out of the loop: its timer, its socket's slot, the
 * loop's count of waiters.  The caller then drops its reference. */
static void leave(net_op *op)
{
    net__opx *x = net__x(op);
    net_sock *s = op->s;
    gt__ctimer_stop(&x->timer);
    if (s) {
        if (s->w.op[x->dir] == op) s->w.op[x->dir] = NULL;
        s->L->io.waiters--;
    }
    x->state = NET__OP_IDLE;
    x->async = 0;
    if (s && !s->closed) net__sock_watch(s);
}

static void finish(net_op *op)
{
    leave(op);
    if (op->s) {
        ended(op);
        net__unref(op->s);
    }
    op->done(op);
}

/* Leaves op waiting for what step r asked; < 0 if it cannot wait. */
static int arm(net_op *op, int r)
{
    net__opx *x = net__x(op);
    net_sock *s = op->s;
    int64_t until = net__bound(op);
    if (op->deadline == 0 && op->kind != NET_OP_SLEEP) return -ETIMEDOUT;
    /* A timed wait steps again when its timer fires, even if that is at
     * once; a wait for the socket past its bound has timed out. */
    if (r == NET__WAIT_TIME)
        until = earlier(until, x->until);
    else if (until >= 0 && until < gt_now())
        return -ETIMEDOUT;
    int was = x->state;
    x->state = r == NET__WAIT_TIME ? NET__OP_TIME : NET__OP_IO;
    if (s) {
        net_op *cur = s->w.op[x->dir];
        int rc = cur && cur != op ? -EALREADY : s->closed ? NET_ECLOSED : 0;
        if (rc == 0) {
            s->w.op[x->dir] = op;
            rc = net__sock_watch(s);
        }
        if (rc < 0) {
            if (s->w.op[x->dir] == op && was == NET__OP_IDLE)
                s->w.op[x->dir] = NULL;
            x->state = was;
            return rc;
        }
        if (was == NET__OP_IDLE) s->L->io.waiters++;
    }
    if (until >= 0)
        gt__ctimer_start(&x->timer, until);
    else
        gt__ctimer_stop(&x->timer);
    return 0;
}

/* Steps a started op again; ends it or leaves it waiting. */
static void resume(net_op *op)
{
    int r = step(op), rc;
    if (r != NET__DONE && (rc = arm(op, r)) < 0) op->rc = rc, r = NET__DONE;
    if (r == NET__DONE) finish(op);
}

static void on_timer(gt__ctimer *t)
{
    net__opx *x = GT__CONTAINER(t, net__opx, timer);
    net_op *op = op_of(x);
    if (x->kicked || x->state == NET__OP_TIME) {
        x->kicked = 0;
        if (op->s) op->s->streak = 0;
        resume(op); /* a back-off, a turn or a kick: the step decides */
        return;
    }
    if (op->s && net__settle(op->s, x->dir, 1)) {
        resume(op); /* its result came as it timed out: take it */
        return;
    }
    op->rc = -ETIMEDOUT;
    finish(op);
}

int net_op_start(net_op *op)
{
    if (!op) return -EINVAL;
    if (prepare(op) < 0) return 1;
    if (!op->done) {
        op->rc = -EINVAL;
        return 1;
    }
    net__opx *x = net__x(op);
    net_sock *s = op->s;
    int r;
    x->async = 1;
    x->timer.fn = on_timer;
    if (op->kind == NET_OP_SLEEP) {
        x->until = op->deadline; /* a started sleep ends in the loop */
        r = NET__WAIT_TIME;
    } else if (s && op->deadline != 0 && s->streak >= NET__QUANTUM) {
        x->until = gt_now(); /* step after the loop has polled */
        r = NET__WAIT_TIME;
    } else {
        r = step(op);
    }
    if (r != NET__DONE) {
        if (s) s->refs++;
        int rc = arm(op, r);
        if (rc == 0) return 0;
        if (s) net__unref(s);
        op->rc = rc;
    }
    x->async = 0;
    ended(op);
    return 1;
}

int net_op_cancel(net_op *op)
{
    if (!op) return -EINVAL;
    net__opx *x = net__x(op);
    if (!x->async || x->state == NET__OP_IDLE) return -EINVAL;
    if (op->s) net__settle(op->s, x->dir, 0);
    leave(op);
    if (op->s) net__unref(op->s);
    return 0;
}

/* --- Events ------------------------------------------------------------ */

void net__op_ready(net_op *op)
{
    net__opx *x = net__x(op);
    if (x->state != NET__OP_IO) return;
    if (x->thread)
        gt__wake(x->thread, 0);
    else
        resume(op);
}

void net__ops_closed(net_sock *s)
{
    for (int dir = 0; dir < 2; dir++) {
        net_op *op = s->w.op[dir];
        if (!op) continue;
        net__opx *x = net__x(op);
        if (x->thread) {
            gt__wake(x->thread, NET_ECLOSED);
        } else {
            op->rc = NET_ECLOSED;
            finish(op);
        }
    }
}
