/* Switching between green threads and the loop, and the run queue and
 * timer heap that decide where a switch goes.  Private to the runtime:
 * runtime/park.h includes it for its inline bodies only. */
#ifndef GT_SWITCH_H
#define GT_SWITCH_H

#include "scheduler.h"

#ifdef GT__ASAN
#include <sanitizer/common_interface_defs.h>
#endif

#define GT__BUDGET 1024 /* direct switches before the loop polls again */

/* Marks `to` (NULL: the loop) running and returns its context. */
static inline gt__ctx *gt__enter(gt__sched *S, gt__thread *to)
{
    S->current = to;
    if (!to) return &S->loop;
    to->state = GT__RUNNING;
    return &to->ctx;
}

#ifdef GT__ASAN
/* Tells ASan which stack the next switch lands on. */
static inline void gt__asan_leave(gt__sched *S, void **fake,
                                  const gt__thread *from, gt__thread *to)
{
    S->from_loop = from == NULL;
    __sanitizer_start_switch_fiber(
        fake, to ? (const void *)to->stack_lo : S->loop_bottom,
        to ? (size_t)((char *)to - to->stack_lo) : S->loop_size);
}
#endif

/* Saves `from` (NULL: the loop) and resumes `to` (NULL: the loop);
 * returns when `from` runs again. */
static inline void gt__switch(gt__sched *S, gt__thread *from, gt__thread *to)
{
    gt__ctx *fc = from ? &from->ctx : &S->loop;
    if (from) gt__stack_check(from);
    gt__ctx *tc = gt__enter(S, to);
#ifdef GT__ASAN
    void *fake = NULL;
    gt__asan_leave(S, &fake, from, to);
#endif
    if (to && !to->started)
        gt__ctx_enter(fc, tc, to->stack_lo, (char *)to);
    else
        gt__ctx_swap(fc, tc);
#ifdef GT__ASAN
    gt__asan_arrived(S, fake);
#endif
}

/* Leaves the ended thread `from` for good: returns the context of `to`
 * for the switch code to resume; nothing of `from` is saved.  (Under
 * ThreadSanitizer the switch code tells it of the switch: no instrumented
 * function may return in between.) */
static inline gt__ctx *gt__switch_last(gt__sched *S, gt__thread *from,
                                       gt__thread *to)
{
    gt__stack_check(from);
    gt__ctx *tc = gt__enter(S, to);
    /* A new thread is entered without a saved context (gt__ctx_enter);
     * the switch code resumes one, so it gets one here. */
    if (to && !to->started) gt__ctx_make(tc, to->stack_lo, (char *)to);
#ifdef GT__ASAN
    gt__asan_leave(S, NULL, from, to);
#endif
    return tc;
}

/* Takes the first ready thread off the run queue.  A thread is in a run
 * queue (runq or later) exactly while it is READY, so its link is only
 * removed while linked (gt__unqueue) and needs no resetting here. */
static inline gt__thread *gt__pop_ready(gt__sched *S)
{
    gt__list *n = S->runq.next;
    gt__list_unlink(n);
    return GT__CONTAINER(n, gt__thread, runq);
}

/* The thread to resume after the running one: the next ready thread, or
 * NULL (the loop) when none is ready or the switch budget is spent. */
static inline gt__thread *gt__next(gt__sched *S)
{
    if (!S->budget || gt__list_empty(&S->runq)) return NULL;
    S->budget--;
    return gt__pop_ready(S);
}

/* Resumes the next ready thread, or the loop, after `me` has queued
 * itself (a yield): when it is the only one ready, it runs on. */
static inline void gt__switch_next(gt__sched *S, gt__thread *me)
{
    gt__thread *next = gt__next(S);
    if (next == me) {
        me->state = GT__RUNNING;
        return;
    }
    gt__switch(S, me, next);
}

/* Takes t's deadline out of the timer heap. */
static inline void gt__untime(gt__sched *S, gt__thread *t)
{
    if (t->timed) {
        S->timers = gt__heap_remove(S->timers, &t->timer);
        t->timed = 0;
    }
}

/* Takes t out of the timer heap and, if it is ready, its run queue. */
static inline void gt__unqueue(gt__sched *S, gt__thread *t)
{
    gt__untime(S, t);
    if (t->state == GT__READY) gt__list_remove(&t->runq);
}

/* Makes the parked thread t, which has no deadline, ready with result
 * rc.  (A parked thread is in no run queue.) */
static inline void gt__ready_untimed(gt__sched *S, gt__thread *t, int rc)
{
    t->state = GT__READY;
    t->wake_rc = rc;
    gt__list_push(&S->runq, &t->runq);
}

/* Makes the parked thread t ready with result rc. */
static inline void gt__ready(gt__sched *S, gt__thread *t, int rc)
{
    gt__untime(S, t);
    gt__ready_untimed(S, t, rc);
}

/* Parks the running thread `me` and resumes `to` directly (NULL: the next
 * ready thread or the loop); no checks.  Whoever makes a parked thread
 * ready sets its wake_rc, and wait_what and wait_obj are read only while
 * it is parked, so none of them is written here for after the park. */
static inline int gt__park_to(gt__sched *S, gt__thread *me, gt__thread *to,
                              int64_t deadline, const char *what,
                              const void *obj)
{
    me->state = GT__PARKED;
    me->wait_what = what;
    me->wait_obj = obj;
    if (deadline >= 0) {
        me->timer.key = deadline;
        me->timer.seq = S->timer_seq++;
        S->timers = gt__heap_insert(S->timers, &me->timer);
        me->timed = 1;
    }
    if (!to) {
        gt__switch(S, me, gt__next(S));
    } else if (S->budget) {
        S->budget--;
        gt__switch(S, me, to);
    } else {
        /* Budget spent: `to` queues like any ready thread and the loop
         * runs first, so that threads handing control back and forth
         * starve neither timers, I/O nor the others. */
        to->state = GT__READY;
        gt__list_push(&S->runq, &to->runq);
        gt__switch(S, me, NULL);
    }
    return me->wake_rc;
}

#endif
