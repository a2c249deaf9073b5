/* io_uring backend: completion-based, where the others wait for readiness.
 *
 * Why this shape.  On epoll an echo round trip costs a recv, a send and a
 * share of epoll_wait: two or more system calls, and the kernel's work
 * behind them, are most of the server's time.  Here a step that would
 * make the system call and then wait (net__xfer) instead puts the request
 * into the submission queue with the op's own buffer (the caller's, or
 * the socket's read-ahead buffer for receive patterns) and parks; the
 * loop hands every request of its round to the kernel in the one
 * io_uring_enter that also waits, and the request's completion wakes the
 * op, whose next step takes the result.  A send is submitted too, and its
 * thread waits for the completion, which normally arrives in that same
 * enter: so a round trip makes no system call of its own, and N of them
 * share one enter.
 *
 * The ring is set up with COOP_TASKRUN and TASKRUN_FLAG (net/uring_ring.c
 * says why not DEFER_TASKRUN) and its descriptor registered; a ring that
 * refuses those flags (an older kernel) is made without them.  SQPOLL is
 * not used (and was not measured): its kernel thread spins on a core of
 * its own, which on a two-core machine is the load's or another loop's,
 * and the enter it saves is already shared by every request of a round.
 *
 * Readiness still exists: accept, connect, a TLS layer doing its own
 * reads, net_wait's descriptors and the resolver's eventfd wait through
 * IORING_OP_POLL_ADD, one-shot per direction (re-armed by the next wait,
 * as the level-triggered backends re-state their interest), multishot for
 * the resolver, which is watched for as long as it lives.  A poll holds
 * the open file, not the number, and is removed by its own request, so
 * net_wait's rules (net/internal.h) hold.  Accept and connect stay
 * readiness-based (a poll, then accept4 or the connect verdict): they
 * happen once per connection, not per round trip, and a multishot accept
 * would need a queue of accepted descriptors per listener and their
 * clean-up on close.  Known limit: their system calls remain.
 *
 * Also left for later, each a change of its own: registered files (the
 * kernel's look-up of the descriptor per request, about 1.5% of the
 * server's time in a profile at 1000 connections), and multishot receives
 * into a ring of provided buffers (one request per connection for its
 * whole life instead of one per read).  A poll-first receive
 * (IORING_RECVSEND_POLL_FIRST after a read that drained the socket) made
 * no difference that this machine's noise let us see.
 *
 * Buffers.  A request owns its buffer until its completion is reaped.
 * Whatever ends an op early (its deadline, cancellation of its thread,
 * net_op_cancel, net_close) first cancels the request and waits for its
 * completion (settle, del), so no buffer is ever written or read after
 * the call that owned it returned.  Completions reaped in such a wait are
 * kept and handed out by the next wait.
 *
 * Each request's user_data is its waitable's address plus the request's
 * tag (ud() below); the waitable's `ring` says which are in the kernel. */
#include "uring.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#ifdef NET__VALGRIND
#include <valgrind/memcheck.h>
#else
#define VALGRIND_MAKE_MEM_DEFINED(p, n) ((void)(p), (void)(n))
#endif

#define XFER(dir) (1u << (dir)) /* a recv [0] or send [1] */
#define POLL(dir) (4u << (dir)) /* a poll for one direction */
#define SOCKET_BIT 16u          /* a socket: it has sub[] */
#define MULTI_BIT 32u           /* its poll is multishot (the resolver) */
#define TAG_MASK 3u             /* user_data's request bits */

/* A request's user_data: its waitable's address plus the tag (waitables
 * are aligned to 8).  Cancel requests carry NULL. */
static void *ud(net__waitable *w, unsigned tag)
{
    return (char *)w + tag;
}

/* Makes room for one more queued event; -ENOMEM leaves the completion
 * in the ring, for a later reap. */
static int pend_room(net__poller *p)
{
    if (p->npend < p->cpend) return 0;
    int cap = p->cpend ? p->cpend * 2 : 256;
    net__event *e = realloc(p->pend, (size_t)cap * sizeof *e);
    if (!e) return -ENOMEM;
    p->pend = e;
    p->cpend = cap;
    return 0;
}

/* Queues an event for the next wait (pend_room made room). */
static void pend(net__poller *p, net__waitable *w, int events)
{
    p->pend[p->npend++] = (net__event){w, events};
}

static int poll_events(int res)
{
    if (res < 0) return NET_IN | NET_OUT | NET__HUP;
    int ev = 0;
    if (res & (POLLIN | POLLRDHUP)) ev |= NET_IN;
    if (res & POLLOUT) ev |= NET_OUT;
    if (res & (POLLERR | POLLHUP)) ev |= NET_IN | NET_OUT;
    if (res & (POLLRDHUP | POLLERR | POLLHUP)) ev |= NET__HUP;
    return ev;
}

/* A transfer's completion.  A receive into the socket's read-ahead
 * buffer becomes buffered bytes at once, as the step would have made
 * them; anything else waits in sub[] for the step that submitted it. */
static void xfer_done(net__poller *p, net_sock *s, int dir, int res)
{
    net__sub *u = &s->sub[dir];
    p->inflight--;
    if (res == -ECANCELED) { /* settle or del took it back: no result */
        u->state = NET__SUB_NONE;
        return;
    }
    if (!dir && res > 0) VALGRIND_MAKE_MEM_DEFINED(u->buf, (size_t)res);
    if (!dir && res > 0 && u->buf == s->rbuf) {
        s->rpos = 0;
        s->rlen = (size_t)res;
        s->in += (uint64_t)res;
        s->streak += (size_t)res;
        u->state = NET__SUB_NONE;
    } else {
        u->res = res;
        u->state = NET__SUB_DONE;
    }
    pend(p, &s->w, dir ? NET_OUT : NET_IN);
}

/* Takes every completion there is (as long as there is memory to queue
 * its event). */
static void reap(net__poller *p)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&p->ring, head, cqe)
    {
        if (pend_room(p) < 0) break;
        n++;
        char *data = io_uring_cqe_get_data(cqe);
        if (!data) continue; /* a cancel request's */
        unsigned tag = (unsigned)((uintptr_t)data & TAG_MASK);
        net__waitable *w = (net__waitable *)(void *)(data - tag);
        if (tag < 2) {
            w->ring &= ~XFER(tag);
            xfer_done(p, (net_sock *)(void *)w, (int)tag, cqe->res);
            continue;
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
            /* A multishot poll that the kernel ended (not a cancel) is
             * made again by the next wait. */
            if ((w->ring & MULTI_BIT) && cqe->res != -ECANCELED) p->rearm = w;
            w->ring &= ~(POLL(tag - 2) | MULTI_BIT);
            p->inflight--;
        }
        if (cqe->res == -ECANCELED) continue;
        int ev = poll_events(cqe->res);
        /* A socket's poll is for one direction (a hang-up wakes both). */
        if ((w->ring & SOCKET_BIT) && !(ev & NET__HUP))
            ev &= tag == 2 ? NET_IN : NET_OUT;
        pend(p, w, ev);
    }
    io_uring_cq_advance(&p->ring, n);
}

/* A free submission slot, handing the full queue to the kernel if need
 * be; NULL (with *err) only if the kernel takes none. */
static struct io_uring_sqe *sqe_get(net__poller *p, int *err)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);
    while (!sqe) {
        int rc = io_uring_submit(&p->ring);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            *err = rc;
            return NULL;
        }
        if (rc <= 0) reap(p); /* make room in the completion queue */
        sqe = io_uring_get_sqe(&p->ring);
    }
    return sqe;
}

/* Cancels the requests of w named by `bits` and waits until the kernel
 * has completed them all. */
static void cancel_wait(net__poller *p, net__waitable *w, unsigned bits)
{
    int err = 0;
    for (unsigned tag = 0; tag < 4; tag++) {
        unsigned bit = tag < 2 ? XFER(tag) : POLL(tag - 2);
        if (!(w->ring & bits & bit)) continue;
        struct io_uring_sqe *sqe = sqe_get(p, &err);
        if (!sqe) break;
        io_uring_prep_cancel(sqe, ud(w, tag), 0);
        io_uring_sqe_set_data(sqe, NULL);
    }
    while (w->ring & bits & (XFER(0) | XFER(1) | POLL(0) | POLL(1))) {
        int rc = io_uring_submit_and_wait(&p->ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -ETIME) {
            char what[96];
            snprintf(what, sizeof what, "poller wait failed: %s",
                     net_strerror(rc));
            gt__fatal(__FILE__, __LINE__, what);
        }
        reap(p);
        if (p->npend == p->cpend) { /* no memory for their events: pause */
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
}

/* Drops queued events that name w, which is going away. */
static void unpend(net__poller *p, const net__waitable *w)
{
    int k = p->hpend;
    for (int i = p->hpend; i < p->npend; i++)
        if (p->pend[i].w != w) p->pend[k++] = p->pend[i];
    p->npend = k;
}

static int poll_arm(net__poller *p, net__waitable *w, unsigned tag,
                    unsigned mask, int multi)
{
    int err = 0;
    struct io_uring_sqe *sqe = sqe_get(p, &err);
    if (!sqe) return err;
    if (multi)
        io_uring_prep_poll_multishot(sqe, w->fd, mask);
    else
        io_uring_prep_poll_add(sqe, w->fd, mask);
    io_uring_sqe_set_data(sqe, ud(w, tag));
    w->ring |= POLL(tag - 2) | (multi ? MULTI_BIT : 0);
    p->inflight++;
    return 0;
}

/* add and mod: arm a poll for each wanted direction that has none and no
 * transfer in the kernel (whose completion is the event). */
static int watch(net__poller *p, net__waitable *w, int events)
{
    if (events & NET__POLL) {
        unsigned m = ((events & NET_IN) ? POLLIN : 0) |
                     ((events & NET_OUT) ? POLLOUT : 0);
        return poll_arm(p, w, 2, m, 0);
    }
    if (w->on_event) /* the resolver's eventfd, for its whole life */
        return (w->ring & POLL(0)) ? 0 : poll_arm(p, w, 2, POLLIN, 1);
    w->ring |= SOCKET_BIT;
    for (int dir = 0; dir < 2; dir++) {
        if (!(events & (dir ? NET_OUT : NET_IN))) continue;
        if (w->ring & (XFER(dir) | POLL(dir))) continue;
        int rc = poll_arm(p, w, 2u + (unsigned)dir,
                          dir ? POLLOUT : POLLIN | POLLRDHUP, 0);
        if (rc < 0) return rc;
    }
    return 0;
}

static void del(net__poller *p, net__waitable *w)
{
    cancel_wait(p, w, ~0u);
    unpend(p, w);
    if (p->rearm == w) p->rearm = NULL;
    if (w->ring & SOCKET_BIT) {
        net_sock *s = (net_sock *)(void *)w;
        s->sub[0].state = s->sub[1].state = NET__SUB_NONE;
    }
}

static ssize_t submit(net__poller *p, net_sock *s, int dir, void *buf, size_t n)
{
    net__sub *u = &s->sub[dir];
    if (u->state == NET__SUB_BUSY) return -EAGAIN;
    if (u->state == NET__SUB_DONE) {
        if (u->buf != buf) return -EAGAIN; /* another op's result */
        u->state = NET__SUB_NONE;
        if (u->res != -EAGAIN && u->res != -EINTR) return u->res;
    }
    int err = 0;
    struct io_uring_sqe *sqe = sqe_get(p, &err);
    if (!sqe) return err;
    if (dir)
        io_uring_prep_send(sqe, s->w.fd, buf, n, MSG_NOSIGNAL);
    else
        io_uring_prep_recv(sqe, s->w.fd, buf, n, 0);
    io_uring_sqe_set_data(sqe, ud(&s->w, (unsigned)dir));
    u->buf = buf;
    u->state = NET__SUB_BUSY;
    s->w.ring |= XFER(dir) | SOCKET_BIT;
    s->registered = 1; /* net_close must take it out */
    p->inflight++;
    return -EAGAIN;
}

static int settle(net__poller *p, net_sock *s, int dir, int keep)
{
    net__sub *u = &s->sub[dir];
    if (s->w.ring & XFER(dir)) cancel_wait(p, &s->w, XFER(dir));
    if (u->state != NET__SUB_DONE) return 0;
    if (keep) return 1;
    u->state = NET__SUB_NONE;
    /* A receive that the op will not take has already taken its bytes
     * out of the kernel, into the op's buffer: they become the socket's
     * read-ahead, so that its next read gets them, as it would on a
     * readiness backend, where they never left the kernel. */
    if (!dir && u->res > 0 && net_unread(s, u->buf, (size_t)u->res) == 0)
        s->in += (uint64_t)u->res;
    return 0;
}

static int wait_events(net__poller *p, int timeout_ms, net__event *out, int max)
{
    /* Fails only if the kernel takes no submission at all, which the
     * enter below then reports. */
    if (p->rearm && poll_arm(p, p->rearm, 2, POLLIN, 1) == 0) p->rearm = NULL;
    if (p->hpend == p->npend) {
        p->hpend = p->npend = 0;
        int rc = net__uring_enter(p, timeout_ms);
        if (rc < 0) return rc;
        reap(p);
    }
    int n = p->npend - p->hpend < max ? p->npend - p->hpend : max;
    for (int i = 0; i < n; i++) out[i] = p->pend[p->hpend + i];
    p->hpend += n;
    return n;
}

const net__backend net__uring_backend = {
    "uring",
    0,
    net__uring_create,
    net__uring_destroy,
    watch,
    watch,
    del,
    wait_events,
    submit,
    settle,
};
