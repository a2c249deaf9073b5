/* The io_uring backend's state, shared by its two files: net/poll_uring.c
 * (requests and completions) and net/uring_ring.c (the ring's set-up and
 * the enter that submits and waits). */
#ifndef NET_URING_H
#define NET_URING_H

#include "internal.h"

#include <liburing.h>

struct net__poller {
    struct io_uring ring;
    unsigned features;    /* IORING_FEAT_* of the ring */
    int taskrun_flag;     /* the kernel flags pending completions in the
                             submission ring (IORING_SETUP_TASKRUN_FLAG) */
    size_t inflight;      /* requests in the kernel */
    int evfd;             /* under Valgrind: signalled on completions */
    net__event *pend;     /* events reaped and not yet handed out */
    int hpend, npend;     /* they are pend[hpend .. npend) */
    int cpend;            /* pend's room */
    net__waitable *rearm; /* a multishot poll the kernel ended */
};

int net__uring_create(net__poller **out);
void net__uring_destroy(net__poller *p);
/* Submits what is queued and waits up to timeout_ms (0: not at all, -1:
 * no limit) for a completion; 0 or -errno.  Makes no system call when
 * there is nothing to submit and nothing can have completed. */
int net__uring_enter(net__poller *p, int timeout_ms);

#endif
