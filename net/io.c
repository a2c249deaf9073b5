/* Reading and writing: the steps of NET_OP_RECV and NET_OP_SEND, and the
 * blocking calls on them.  Errors come back on the call that met them;
 * EINTR is retried.
 *
 * A read that returns less than asked for has drained the socket, and a
 * write that takes less has filled it: the next step of an operation that
 * will wait anyway then waits first instead of making a system call that
 * can only say EAGAIN (net__dry).  The poller's next event for that
 * direction clears the mark.  Epoll reports every new arrival even
 * edge-triggered, so nothing is missed; a peer's shutdown may already
 * have been reported with the data, so reads never rely on the mark after
 * a hang-up.
 *
 * On a completion backend (io_uring) the system call of a step that
 * would wait is a request the loop submits (net__xfer): the op parks,
 * and its next step takes the result.  Nothing else changes. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Whether op's step, if the transfer cannot go at once, will wait for it
 * in its socket's slot: only then may a completion backend take the
 * buffer (a try-once call, a cancelled thread, an op past its bound or
 * one that will find the slot taken ends instead, and makes the system
 * call itself). */
static int will_wait(const net_sock *s, int dir, const net_op *op)
{
    const net_op *cur = s->w.op[dir];
    int64_t bound = net__bound(op);
    if ((cur && cur != op) || s->closed || !net__may_wait(op)) return 0;
    return bound < 0 || bound >= gt_now();
}

ssize_t net__xfer(net_sock *s, int dir, void *buf, size_t n, const net_op *op)
{
    const net__backend *be = s->L->be;
    if (be->submit && (s->sub[dir].state || will_wait(s, dir, op)))
        return be->submit(s->L->p, s, dir, buf, n);
    ssize_t r =
        dir ? send(s->w.fd, buf, n, MSG_NOSIGNAL) : recv(s->w.fd, buf, n, 0);
    return r < 0 ? -errno : r;
}

/* Counts what a transport moved (net__transport in net/internal.h). */
static ssize_t transported(net_sock *s, ssize_t r)
{
    if (r > 0) s->streak += (size_t)r;
    return r;
}

ssize_t net__read(net_sock *s, void *buf, size_t n, const net_op *op)
{
    if (s->rlen) {
        size_t k = n < s->rlen ? n : s->rlen;
        memcpy(buf, s->rbuf + s->rpos, k);
        s->rpos += k;
        s->rlen -= k;
        return (ssize_t)k;
    }
    if (s->tp) return transported(s, s->tp->read(s, buf, n));
    if (net__dry(s, 0, op)) return -EAGAIN;
    for (;;) {
        ssize_t r = net__xfer(s, 0, buf, n, op);
        if (r >= 0) {
            s->in += (uint64_t)r;
            /* Not after a hang-up: the end of stream comes with no event
             * of its own once that one is spent. */
            if (r > 0 && (size_t)r < n && !s->w.hup) s->w.dry[0] = 1;
            s->streak += (size_t)r;
            return r;
        }
        if (r == -EINTR) continue;
        if (r == -EAGAIN || r == -EWOULDBLOCK) {
            s->w.dry[0] = 1;
            return -EAGAIN;
        }
        return r;
    }
}

int net__recv_step(net_op *op)
{
    net_sock *s = op->s;
    if (s->closed) {
        op->rc = NET_ECLOSED;
        return NET__DONE;
    }
    int r = net__skip_line(s, op);
    if (r != NET__GO) return r;
    ssize_t got = net__read(s, op->buf, op->n, op);
    if (got == -EAGAIN) return NET__WAIT_IN;
    if (got > 0) op->moved = (size_t)got;
    op->rc = got;
    net__rbuf_release(s);
    return NET__DONE;
}

int net__send_step(net_op *op)
{
    net_sock *s = op->s;
    while (op->moved < op->n) {
        if (s->closed) {
            op->rc = NET_ECLOSED;
            return NET__DONE;
        }
        size_t left = op->n - op->moved;
        const char *from = (const char *)op->data + op->moved;
        ssize_t r;
        if (s->tp) {
            if ((r = transported(s, s->tp->write(s, from, left))) == -EAGAIN)
                return NET__WAIT_OUT;
            if (r < 0) {
                op->rc = r;
                return NET__DONE;
            }
            op->moved += (size_t)r;
            continue;
        }
        if (net__dry(s, 1, op)) return NET__WAIT_OUT;
        r = net__xfer(s, 1, (void *)from, left, op);
        if (r >= 0) {
            if ((size_t)r < left) s->w.dry[1] = 1;
            op->moved += (size_t)r;
            s->out += (uint64_t)r;
            s->streak += (size_t)r;
            continue;
        }
        if (r == -EINTR) continue;
        if (r != -EAGAIN && r != -EWOULDBLOCK) {
            op->rc = r;
            return NET__DONE;
        }
        s->w.dry[1] = 1;
        return NET__WAIT_OUT;
    }
    op->rc = (ssize_t)op->n;
    return NET__DONE;
}

/* A transport's handshake (net_tls_handshake): it waits in the read slot,
 * for whichever event the transport needs (see net/op.c's wait_for). */
int net__handshake_step(net_op *op)
{
    net_sock *s = op->s;
    if (s->closed) {
        op->rc = NET_ECLOSED;
        return NET__DONE;
    }
    int r = s->tp->handshake(s);
    if (r == -EAGAIN) return NET__WAIT_IN;
    op->rc = r;
    return NET__DONE;
}

ssize_t net_recv(net_sock *s, void *buf, size_t n, int64_t deadline)
{
    net_op op = {.kind = NET_OP_RECV,
                 .s = s,
                 .buf = buf,
                 .n = n,
                 .deadline = deadline,
                 .idle = -1};
    return net_op_run(&op);
}

ssize_t net_send(net_sock *s, const void *buf, size_t n, size_t *sent,
                 int64_t deadline)
{
    net_op op = {.kind = NET_OP_SEND,
                 .s = s,
                 .data = buf,
                 .n = n,
                 .deadline = deadline,
                 .idle = -1};
    ssize_t rc = net_op_run(&op);
    if (sent) *sent = op.moved;
    return rc;
}
