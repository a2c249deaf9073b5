/* The io_uring backend's ring: set-up with the flags that pay, and the
 * one enter per loop round that submits and waits (see poll_uring.c for
 * the design). */
#include "uring.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#ifdef NET__VALGRIND
#include <valgrind/valgrind.h>
#endif

#define NET__URING_SQ 1024 /* submissions per enter before one is forced */
#define NET__URING_CQ                                                          \
    16384 /* completions the ring holds (more overflow                         \
             into the kernel's list, never dropped) */

/* Flag sets tried in turn: the newest kernels take the first.
 * Completions' task work waits for the loop's next enter instead of
 * interrupting it (COOP_TASKRUN), and the ring says when some is pending
 * (TASKRUN_FLAG), so that a round with nothing to submit and nothing
 * pending makes no system call.  SINGLE_ISSUER and DEFER_TASKRUN are left
 * out: with them the soak (tools/soak, 1000 connections, short deadlines)
 * saw more connections stall (see README, io_uring). */
static const unsigned setup_flags[] = {
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
    0,
};

/* Valgrind 3.19 does not know that io_uring_enter may block, and keeps
 * every other thread of the process stopped while it does: the resolver's
 * workers could not answer a loop that waits for them.  Under Valgrind
 * the ring signals an eventfd when completions come, the loop waits in
 * poll(2) on that, which Valgrind lets block, and then takes them without
 * waiting.  (The ring's own descriptor does not turn readable for
 * completions whose task work has not run yet.) */
static int valgrind_wait(net__poller *p, int timeout_ms)
{
#ifdef NET__VALGRIND
    if (p->evfd >= 0) {
        struct io_uring *r = &p->ring;
        int rc = io_uring_submit_and_get_events(r);
        if (rc >= 0 && !io_uring_cq_ready(r)) {
            struct pollfd pfd = {p->evfd, POLLIN, 0};
            uint64_t v;
            if (poll(&pfd, 1, timeout_ms) > 0 && read(p->evfd, &v, sizeof v))
                (void)v;
            rc = io_uring_submit_and_get_events(r);
        }
        return rc < 0 ? rc : 1;
    }
#else
    (void)p;
    (void)timeout_ms;
#endif
    return 0;
}

static void valgrind_setup(net__poller *p)
{
    p->evfd = -1;
#ifdef NET__VALGRIND
    if (!RUNNING_ON_VALGRIND) return;
    p->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->evfd >= 0 && io_uring_register_eventfd(&p->ring, p->evfd) < 0) {
        close(p->evfd);
        p->evfd = -1;
    }
#endif
}

int net__uring_create(net__poller **out)
{
    net__poller *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    /* Room for a first batch of events, so that a loop round rarely
     * allocates (poll_uring.c grows it when more come at once). */
    p->cpend = 256;
    if (!(p->pend = malloc((size_t)p->cpend * sizeof *p->pend))) {
        free(p);
        return -ENOMEM;
    }
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof setup_flags / sizeof *setup_flags; i++) {
        struct io_uring_params pr = {0};
        pr.flags = setup_flags[i] | IORING_SETUP_CQSIZE;
        pr.cq_entries = NET__URING_CQ;
        rc = io_uring_queue_init_params(NET__URING_SQ, &p->ring, &pr);
        if (rc == 0) {
            p->features = pr.features;
            p->taskrun_flag = (setup_flags[i] & IORING_SETUP_TASKRUN_FLAG) != 0;
            break;
        }
        if (rc != -EINVAL) break; /* not a flag this kernel lacks */
    }
    if (rc < 0) {
        free(p->pend);
        free(p);
        return rc;
    }
    /* Saves the descriptor look-up of every enter; optional. */
    io_uring_register_ring_fd(&p->ring);
    valgrind_setup(p);
    *out = p;
    return 0;
}

void net__uring_destroy(net__poller *p)
{
    io_uring_queue_exit(&p->ring);
    if (p->evfd >= 0) close(p->evfd);
    free(p->pend);
    free(p);
}

/* Whether a completion may be waiting to be posted or read. */
static int may_have_completions(const net__poller *p)
{
    const struct io_uring *r = &p->ring;
    if (io_uring_cq_ready(r)) return 1;
    if (!p->inflight) return 0;
    if (!p->taskrun_flag) return 1;
    return (IO_URING_READ_ONCE(*r->sq.kflags) &
            (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
}

int net__uring_enter(net__poller *p, int timeout_ms)
{
    struct io_uring *r = &p->ring;
    int rc;
    if (timeout_ms != 0 && (rc = valgrind_wait(p, timeout_ms)) != 0) {
        /* done */
    } else if (timeout_ms == 0) {
        if (!io_uring_sq_ready(r) && !may_have_completions(p)) return 0;
        rc = io_uring_submit_and_get_events(r);
    } else if (timeout_ms < 0) {
        rc = io_uring_submit_and_wait(r, 1);
    } else {
        struct __kernel_timespec ts = {
            timeout_ms / 1000, (long long)(timeout_ms % 1000) * 1000000};
        struct io_uring_cqe *cqe;
        rc = io_uring_submit_and_wait_timeout(r, &cqe, 1, &ts, NULL);
    }
    /* A wait that timed out or was interrupted just ends the round, and
     * so does a full completion queue (EBUSY, EAGAIN): reaping empties
     * it. */
    if (rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN) return 0;
    return rc < 0 ? rc : 0;
}
