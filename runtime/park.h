/* The runtime's interface for parking and waking green threads, used by
 * the runtime's sync primitives and by the net layer.  The net layer
 * uses this and nothing else of the runtime (tools/lint.sh checks it):
 *
 * - gt__thread, as a handle only (its fields are the runtime's);
 * - gt__self, gt__self_cancelled: the running green thread;
 * - gt__park, gt__wake, gt__yield_loop: parking, waking, giving way;
 * - gt__io, gt__io_set: the poller the loop calls when nothing is ready;
 *   GT__BUDGET says how often at least;
 * - gt__serial, gt__alien: whose thread an object belongs to;
 * - gt__ctimer, gt__ctimer_start, gt__ctimer_stop: callback timers
 *   (runtime/timer.h);
 * - gt__list, gt__list_init, gt__list_push, gt__list_remove,
 *   gt__list_empty and GT__CONTAINER (runtime/list.h);
 * - gt__fatal, gt__set_detail (runtime/base.h);
 * - gt__stack_release_below: dropping the dead part of a stack after a
 *   deep call (a TLS handshake).
 *
 * The headers it includes hold the structures those inline bodies need;
 * the rest of what they declare is the runtime's own.  They are the hot
 * path of every switch, so they are inline. */
#ifndef GT_PARK_H
#define GT_PARK_H

#include "switch.h"

#include <errno.h>

/* An I/O poller for the loop.  The net layer installs one per OS thread;
 * the runtime itself knows nothing about descriptors. */
typedef struct gt__io {
    /* Waits at most timeout_ms (-1: no limit) and makes the green threads
     * whose events came ready with gt__wake. */
    void (*wait)(struct gt__io *io, int timeout_ms);
    size_t waiters;   /* green threads parked on I/O: while any is, the
                         loop cannot be deadlocked */
    const char *name; /* the poller's, which gt_dump reports */
} gt__io;

/* Installs the calling OS thread's poller, making its scheduler if need
 * be; NULL takes it out (and makes nothing). */
static inline void gt__io_set(gt__io *io)
{
    (io ? gt__get() : gt__peek())->io = io;
}

/* The running green thread; NULL in the loop or outside green threads. */
static inline gt__thread *gt__self(void)
{
    return gt__S.current;
}

/* Gives the running green thread's stack pages below the caller's frame
 * back to the kernel (runtime/stack.c); nothing on the main stack. */
void gt__stack_release_below(void);

/* Whether the running green thread was cancelled (0 outside one). */
static inline int gt__self_cancelled(void)
{
    return gt__S.current && gt__S.current->cancelled;
}

/* The calling OS thread's serial, for objects it makes to carry: > 0 once
 * it has a scheduler. */
static inline uint64_t gt__serial(void)
{
    return gt__S.serial;
}

/* Whether an object tagged `owner` (the serial of the OS thread that made
 * it) is used on another OS thread.  Channels, semaphores and sockets link
 * parked green threads and timers of their own thread, so every call on
 * one starts with this compare and returns GT_EOWNER if it is true.  An
 * OS thread without a scheduler has serial 0, which no object carries.
 * A serial rather than the scheduler's address: a new OS thread may get a
 * dead one's thread-local block at the same address. */
static inline int gt__alien(uint64_t owner)
{
    return owner != gt__S.serial;
}

/* Makes a parked thread ready with result rc; returns 0 (doing nothing)
 * if it was not parked, e.g. already woken by its deadline. */
static inline int gt__wake(gt__thread *t, int rc)
{
    if (t->state != GT__PARKED) return 0;
    gt__ready(&gt__S, t, rc);
    return 1;
}

/* Lets the loop poll and fire timers before the running thread runs
 * again, and queues it behind every thread that wakes: for a thread that
 * has run long without parking.  (gt_yield switches straight to the next
 * ready thread, and the loop polls only when none is left or GT__BUDGET
 * switches are spent.)  Outside green threads it does nothing. */
static inline void gt__yield_loop(void)
{
    gt__sched *S = gt__here();
    gt__thread *me = S->current;
    if (!me) return;
    me->state = GT__READY;
    gt__list_push(&S->later, &me->runq);
    S->budget = 0;
    gt__switch(S, me, NULL);
}

/* Parks the running thread until gt__wake, its deadline (-ETIMEDOUT) or
 * gt_cancel (-ECANCELED).  Returns the wake code.  -EPERM outside green
 * threads; with deadline 0 it returns -ETIMEDOUT at once. */
static inline int gt__park(int64_t deadline, const char *what, const void *obj)
{
    gt__sched *S = gt__here();
    gt__thread *me = S->current;
    if (!me) return -EPERM;
    if (me->cancelled) return -ECANCELED;
    if (deadline == 0) return -ETIMEDOUT;
    return gt__park_to(S, me, NULL, deadline, what, obj);
}

#endif
