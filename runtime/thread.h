/* A green thread's control block, and the canary that guards the bottom
 * of a stack without a guard page. */
#ifndef GT_THREAD_H
#define GT_THREAD_H

#include "ctx.h"
#include "heap.h"
#include "list.h"

enum gt__state { GT__READY, GT__RUNNING, GT__PARKED, GT__DONE };

struct gt__thread;

/* A parked thread's entry in a channel's list of waiting senders or
 * receivers (runtime/chan.c).  A single send or receive uses the one in
 * its thread's control block, whose t and index (0) are set once with the
 * stack (runtime/stack.c); gt_choose, which waits on several, keeps one
 * per operation on its stack. */
typedef struct gt__clause {
    gt__list link;        /* in the channel's list */
    struct gt__thread *t; /* the parked thread */
    void *elem;           /* its element, or its buffer */
    int index;            /* its position in the choose; 0 for one op */
    int result;           /* 0, or -EPIPE once closed on while waiting */
} gt__clause;

/* A green thread.  It lives at the top of its own stack mapping, so a
 * parked thread that used little stack costs one resident page.  What
 * every switch reads and writes (context, state, flags for the stack
 * check, run-queue link) comes first, in the first 64 bytes. */
typedef struct gt__thread {
    gt__ctx ctx;                /* saved registers while not running */
    int64_t id;                 /* public id, > 0, never reused */
    struct gt__thread *id_next; /* next in its bucket of gt__sched.ids */
    int state;                  /* enum gt__state */
    int wake_rc;                /* what the current park returns */
    int cancelled;              /* gt_cancel was called */
    int started;                /* has run at least once */
    int flags;                  /* 0 or GT_NOGUARD (also the pool index) */
    gt__list runq;              /* link in the run queue while READY */
    gt__hnode timer;            /* deadline of the current park */
    int timed;                  /* timer is in the heap */
    const char *wait_what;      /* what a parked thread waits for */
    const void *wait_obj;       /* the object it waits on, for gt_dump */
    gt__clause clause;          /* a single channel operation's entry */
    struct gt__thread *joiner;  /* the green thread joining this one */
    void *xfer;                 /* value passed by gt_transfer */
    gt_fn *fn;                  /* body */
    void *arg;                  /* its argument */
    const char *site;           /* where it was spawned, or NULL */
    char *map;                  /* the whole mapping, guard page included */
    size_t map_size;            /* its size */
    char *stack_lo;             /* lowest usable stack byte (canary there) */
    unsigned vg_id;             /* Valgrind stack id */
    char name[32];              /* from gt_attr, NUL-terminated */
} gt__thread;

/* The control block's share of the top of the mapping. */
#define GT__TCB_SIZE ((sizeof(gt__thread) + 63) & ~(size_t)63)

/* The canary of a stack without a guard page is its lowest word, and its
 * value is zero: what a fresh or cold (MADV_DONTNEED) page holds.  So it
 * is never written, only read, and reading a page nobody wrote maps the
 * kernel's shared zero page: the bottom page stays out of the resident
 * set, and a parked no-guard thread costs one page, like a guarded one,
 * instead of two.  The price: an overflow that writes eight zero bytes on
 * exactly that word goes unseen by the check; any other write there is
 * seen, and the stack-pointer test of the fault handler does not depend
 * on it (runtime/debug.c). */
#define GT__CANARY 0

/* Reports t's stack overflow and aborts (runtime/debug.c). */
void gt__overflow(gt__thread *t);

/* Called at each switch away from a thread: a broken canary means the
 * thread wrote below its stack, which a no-guard stack allows silently.
 * Guarded stacks need no canary: their guard page faults. */
static inline void gt__stack_check(gt__thread *t)
{
    if (__builtin_expect(t->flags != 0, 0) &&
        *(const uint64_t *)(const void *)t->stack_lo != GT__CANARY)
        gt__overflow(t);
}

#endif
