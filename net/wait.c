/* Waiting: what the poller watches for a socket, parking a green thread
 * on a descriptor, the loop's poll round that wakes them, and net_wait on
 * descriptors of the program's. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <sys/stat.h>
#include <time.h>

#define NET__BATCH 256      /* events taken from the poller per wait */
#define NET__DRAIN 16       /* batches taken in one round at most */
#define NET__NOMEM_PAUSE 10 /* ms, longest pause when it lacks memory */

/* What a level-triggered poller should watch for s now: the events that
 * operations wait for on the descriptor (not for a back-off).  That is
 * each op's own direction but for a transport's op that needs the other
 * (net__opx.want). */
static int interest(const net_sock *s)
{
    int ev = 0;
    for (int dir = 0; dir < 2; dir++) {
        net_op *op = s->w.op[dir];
        if (op && net__x(op)->state == NET__OP_IO) ev |= net__x(op)->want;
    }
    return ev;
}

int net__sock_watch(net_sock *s)
{
    const net__backend *be = s->L->be;
    int want = interest(s), rc = 0;
    if (!s->registered) {
        if (!want) return 0;
        rc = be->add(s->L->p, &s->w,
                     be->edge ? NET_IN | NET_OUT | NET__EDGE : want);
        s->registered = rc == 0;
    } else if (!be->edge) {
        rc = be->mod(s->L->p, &s->w, want);
    }
    return rc;
}

int net__park(net__loop *L, net__waitable *w, int dir, int64_t deadline)
{
    w->waiter[dir] = gt__self();
    L->io.waiters++;
    int rc = gt__park(deadline, dir ? "send" : "recv", w);
    w->waiter[dir] = NULL;
    L->io.waiters--;
    return rc;
}

/* An operation is told of the event it waits for, which need not be its
 * slot's direction (a TLS read that must write first waits for NET_OUT
 * in the read slot). */
static void wake(net__waitable *w, int events)
{
    if (events & NET__HUP) w->hup = 1;
    for (int dir = 0; dir < 2; dir++) {
        if (!(events & (dir ? NET_OUT : NET_IN))) continue;
        w->dry[dir] = 0;
        if (w->waiter[dir]) gt__wake(w->waiter[dir], 0);
    }
    for (int dir = 0; dir < 2; dir++) {
        net_op *op = w->op[dir];
        if (op && (events & net__x(op)->want)) net__op_ready(op);
    }
}

/* A failed poller wait.  EINTR ends the round early.  ENOMEM (the
 * kernel's copy of a poll or select set, the poll backend's array) is
 * transient: pause so as not to spin, and poll again next round; waiters
 * keep waiting with their deadlines.  Anything else is a broken poller
 * (its descriptor closed under it), and carrying on would spin. */
static void wait_failed(int n, int timeout_ms)
{
    if (n == -ENOMEM) {
        int ms = timeout_ms < 0 || timeout_ms > NET__NOMEM_PAUSE
                     ? NET__NOMEM_PAUSE
                     : timeout_ms;
        struct timespec ts = {0, ms * 1000000L};
        nanosleep(&ts, NULL);
    } else if (n != -EINTR) {
        char what[96];
        snprintf(what, sizeof what, "poller wait failed: %s", net_strerror(n));
        gt__fatal(__FILE__, __LINE__, what);
    }
}

/* net_wait on a descriptor that the net layer does not own.
 *
 * The program may close such a descriptor while a green thread waits on
 * it, and the number may come back at once as anything, a socket of the
 * net layer's included.  So a wait is never keyed by the number alone:
 * - The backend keeps it as an entry of its own, polled level-triggered
 *   and removed by entry (NET__POLL, net/internal.h): a stale wait's
 *   clean-up cannot touch another's registration, and any number of
 *   waits may share a descriptor, each told only of its own events.
 * - The wait remembers the file its descriptor named (device and inode).
 *   Before each poll the loop checks every parked wait with fstat, and
 *   ends one whose descriptor was closed, or now names another file, with
 *   -EBADF: a close by a green thread of this OS thread is always seen
 *   before the next poll, whichever poller runs, and the backend never
 *   polls a closed descriptor (select would fail with EBADF).  A wait
 *   woken by an event checks once more, for closes by other OS threads.
 *   The cost is one fstat per parked wait and poll. */
typedef struct foreign {
    net__waitable w; /* w.fd: the caller's descriptor */
    gt__list link;   /* in L->foreign while parked */
    dev_t dev;       /* the file it named when the wait began */
    ino_t ino;
    int registered; /* the backend has w */
    int fired;      /* events seen */
} foreign;

static void foreign_event(net__waitable *w, int events)
{
    foreign *f = (foreign *)(void *)w;
    f->fired |= events;
    wake(w, NET_IN | NET_OUT);
}

static int foreign_gone(const foreign *f)
{
    struct stat st;
    return fstat(f->w.fd, &st) < 0 || st.st_dev != f->dev ||
           st.st_ino != f->ino;
}

/* Ends with -EBADF every parked wait whose descriptor was closed or now
 * names another file, taking it out of the backend at once; returns
 * whether it woke any. */
static int check_foreign(net__loop *L)
{
    int woke = 0;
    gt__list *n = L->foreign.next;
    while (n != &L->foreign) {
        foreign *f = GT__CONTAINER(n, foreign, link);
        n = n->next;
        if (!foreign_gone(f)) continue;
        gt__list_remove(&f->link);
        L->be->del(L->p, &f->w);
        f->registered = 0;
        woke |= gt__wake(f->w.waiter[0], -EBADF);
    }
    return woke;
}

/* Which of `events` fd is ready for now: 0 for none, -EBADF if fd is not
 * open.  Errors and hang-ups count as whatever was asked for.  A file
 * that cannot be polled (a regular file, a directory) is always ready for
 * both, as poll(2) says, on every poller. */
static int ready_now(int fd, int events)
{
    struct pollfd p = {fd,
                       (short)(((events & NET_IN) ? POLLIN : 0) |
                               ((events & NET_OUT) ? POLLOUT : 0)),
                       0};
    if (poll(&p, 1, 0) < 0) return -errno;
    if (p.revents & POLLNVAL) return -EBADF;
    if (p.revents & (POLLERR | POLLHUP)) return events;
    return (((p.revents & POLLIN) ? NET_IN : 0) |
            ((p.revents & POLLOUT) ? NET_OUT : 0)) &
           events;
}

/* A full batch may leave ready descriptors behind, and with a long run
 * queue the next poll comes only after up to GT__BUDGET switches: take
 * what is ready now, without waiting again, up to NET__DRAIN batches.
 * Only from an edge-triggered or a completion poller: poll and select
 * would report the same descriptors again until their threads have run. */
void net__loop_wait(gt__io *io, int timeout_ms)
{
    net__loop *L = (net__loop *)(void *)io;
    net__event ev[NET__BATCH];
    /* A wait that ends now must not wait for the poll's timeout. */
    if (check_foreign(L)) timeout_ms = 0;
    for (int batch = 0; batch < NET__DRAIN; batch++) {
        int n = L->be->wait(L->p, batch ? 0 : timeout_ms, ev, NET__BATCH);
        /* EBADF: select met a net_wait descriptor that another OS thread
         * closed during the poll; the check takes it out.  (A socket's
         * descriptor closed behind the net layer's back stays fatal.) */
        if (n == -EBADF && check_foreign(L)) return;
        if (n < 0) {
            wait_failed(n, timeout_ms);
            return;
        }
        /* A started op's done runs in here and may close sockets that
         * later events of the batch name: they are freed after it. */
        L->in_batch = 1;
        for (int i = 0; i < n; i++) {
            net__waitable *w = ev[i].w;
            if (w->on_event)
                w->on_event(w, ev[i].events);
            else
                wake(w, ev[i].events);
        }
        L->in_batch = 0;
        if (L->dead) net__free_dead(L);
        if (n < NET__BATCH || !(L->be->edge || L->be->submit)) return;
    }
}

int net_wait(int fd, int events, int64_t deadline)
{
    int rc;
    struct stat st;
    net__loop *L = net__get(&rc);
    if (!L) return rc;
    if (fd < 0 || !(events & (NET_IN | NET_OUT)) ||
        (events & ~(NET_IN | NET_OUT)))
        return -EINVAL;
    if ((rc = ready_now(fd, events)) != 0) return rc;
    if (deadline == 0) return -ETIMEDOUT; /* tried once */
    if (!gt__self()) return -EPERM;
    if (fstat(fd, &st) < 0) return -errno;
    foreign f = {
        {fd, -1, {NULL, NULL}, {NULL, NULL}, {0, 0}, 0, foreign_event, 0},
        {NULL, NULL},
        st.st_dev,
        st.st_ino,
        1,
        0};
    if ((rc = L->be->add(L->p, &f.w, events | NET__POLL)) < 0) return rc;
    gt__list_push(&L->foreign, &f.link);
    /* Both slots name this thread, whichever direction fires. */
    f.w.waiter[1] = gt__self();
    rc = net__park(L, &f.w, 0, deadline);
    f.w.waiter[1] = NULL;
    gt__list_remove(&f.link);
    if (f.registered) L->be->del(L->p, &f.w);
    if (rc < 0) return rc;
    if (foreign_gone(&f)) return -EBADF;
    int seen = f.fired & (NET_IN | NET_OUT);
    return (seen & events) ? (seen & events) : events;
}
