/* Saved execution contexts and the primitives that switch between them
 * (runtime/switch_x86_64.S, runtime/switch_ucontext.c).  Private to the
 * runtime: everything else parks and wakes through runtime/park.h. */
#ifndef GT_CTX_H
#define GT_CTX_H

#include "base.h"

#ifdef GT__UCONTEXT
#include <ucontext.h>
#endif

/* A saved execution context. */
typedef struct gt__ctx {
#ifdef GT__UCONTEXT
    ucontext_t uc;
#else
    void *sp; /* stack pointer with callee-saved registers pushed below */
#endif
#ifdef GT__TSAN
    void *tsan_fiber; /* ThreadSanitizer's state for this context */
#endif
} gt__ctx;

/* gt__ctx_swap saves `from` and resumes `to`; gt__ctx_enter does the
 * same for a `to` that has never run (see switch_x86_64.S for why the
 * two differ).  ThreadSanitizer hears of each switch at the last moment,
 * inside the function that makes it, so that its record of entered and
 * left functions stays right for both contexts. */
#ifdef GT__TSAN
#include <sanitizer/tsan_interface.h>
/* Flags 0: the switch orders what came before it before what comes
 * after, as it does on one OS thread. */
#define GT__TSAN_SWITCH(to) __tsan_switch_to_fiber((to)->tsan_fiber, 0)
#else
#define GT__TSAN_SWITCH(to) ((void)0)
#endif
#ifdef GT__UCONTEXT
void gt__ctx_make(gt__ctx *c, char *lo, const char *hi);
void gt__ctx_swap(gt__ctx *from, gt__ctx *to);
static inline void gt__ctx_enter(gt__ctx *from, gt__ctx *to)
{
    gt__ctx_swap(from, to);
}
#else
void gt__ctx_swap_sp(void **save_sp, void *new_sp);
void gt__ctx_enter_sp(void **save_sp, void *new_sp);
void gt__ctx_start(void);

static inline void gt__ctx_swap(gt__ctx *from, gt__ctx *to)
{
    GT__TSAN_SWITCH(to);
    gt__ctx_swap_sp(&from->sp, to->sp);
}

static inline void gt__ctx_enter(gt__ctx *from, gt__ctx *to)
{
    GT__TSAN_SWITCH(to);
    gt__ctx_enter_sp(&from->sp, to->sp);
}

/* Lays out the frame gt__ctx_swap_sp pops: the default MXCSR and x87
 * control word, six registers whose values do not matter (gt__ctx_start
 * clears rbp itself), and gt__ctx_start as the return address. */
static inline void gt__ctx_make(gt__ctx *c, char *lo, const char *hi)
{
    (void)lo;
    char *aligned = (char *)hi - ((uintptr_t)hi & 15);
    uint64_t *sp = (uint64_t *)(void *)(aligned - 64);
    sp[0] = 0x1F80 | ((uint64_t)0x037F << 32);
    sp[7] = (uint64_t)(uintptr_t)gt__ctx_start;
    c->sp = sp;
}
#endif

/* Runs the current thread's body; returns the context to resume after it
 * (the switch code jumps there; runtime/thread.c). */
gt__ctx *gt__thread_main(void);

#endif
