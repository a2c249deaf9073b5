/* Portable context switch on makecontext/swapcontext.  glibc saves and
 * restores the signal mask on every swapcontext, a system call each time;
 * this path exists for platforms without an assembly switch and as the
 * reference the fast path is tested against. */
#include "ctx.h"

/* Runs a thread, then resumes whatever it ended into.  It never returns,
 * so ThreadSanitizer must not record its entry either. */
#ifdef GT__TSAN
__attribute__((no_sanitize("thread")))
#endif
static void
entry(void)
{
    gt__ctx *next = gt__thread_main();
    GT__TSAN_SWITCH(next);
    setcontext(&next->uc);
}

void gt__ctx_make(gt__ctx *c, char *lo, const char *hi)
{
    /* getcontext cannot fail on Linux for a valid pointer. */
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = (size_t)(hi - lo);
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
}

void gt__ctx_swap(gt__ctx *from, gt__ctx *to)
{
    GT__TSAN_SWITCH(to);
    swapcontext(&from->uc, &to->uc);
}
