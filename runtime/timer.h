/* Timers that call a function in the loop (runtime/sched.c). */
#ifndef GT_TIMER_H
#define GT_TIMER_H

#include "heap.h"

/* A timer that calls fn in the loop, on the loop's own stack, instead of
 * waking a green thread: for code that waits without one (the Lua
 * module's yielded coroutines, the net layer's started operations). */
typedef struct gt__ctimer {
    gt__hnode node;                   /* in gt__sched.ctimers */
    void (*fn)(struct gt__ctimer *t); /* called once when it expires */
    int armed;                        /* in the heap */
} gt__ctimer;

/* Arms t for the absolute deadline (ms), re-arming it if it is armed. */
void gt__ctimer_start(gt__ctimer *t, int64_t deadline);
/* Disarms t; harmless if it is not armed. */
void gt__ctimer_stop(gt__ctimer *t);

#endif
