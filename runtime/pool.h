/* Stacks: mapping them, and the per-guard-mode pools that keep freed
 * ones for reuse (runtime/stack.c explains the policy). */
#ifndef GT_POOL_H
#define GT_POOL_H

#include "thread.h"

typedef struct gt__sched gt__sched;

/* A stack kept for reuse, by its control block at the top of the mapping
 * (which the pool's map_size locates): what spawn takes, with no
 * arithmetic. */
typedef struct gt__pooled {
    gt__thread *t;
    unsigned vg_id;
#ifdef GT__TSAN
    void *tsan_fiber;
#endif
} gt__pooled;

/* The pool entry for t's stack. */
static inline gt__pooled gt__pooled_of(gt__thread *t)
{
#ifdef GT__TSAN
    return (gt__pooled){t, t->vg_id, t->ctx.tsan_fiber};
#else
    return (gt__pooled){t, t->vg_id};
#endif
}

/* Freed stacks of the default size, for one guard mode.  The pool keeps
 * the working set warm and gives the rest back; stack.c explains how.  The
 * fields spawn and exit use come first. */
typedef struct gt__pool {
    gt__pooled *v;   /* LIFO: v[0..cold) gave their pages back
                        (oldest first), v[cold..n) are warm */
    size_t n, cap;   /* entries used and allocated */
    size_t low;      /* spawn's fast path pops only above this index (at
                        least cold): the period's low-water mark of n */
    size_t map_size; /* mapping size of the stacks it holds */
    size_t cold;     /* entries below this index are cold */
    size_t total;    /* stacks of that size mapped */
    int64_t until;   /* the loop looks at the pool again once
                        gt__sched.next_id reaches this */
    int64_t end;     /* next_id at which the period ends */
    size_t last;     /* the previous period's peak in use */
    size_t w;        /* the working set, as the last period ended */
    size_t want;     /* warm stacks, in use or pooled, to keep */
} gt__pool;

/* Fast path of gt__stack_get: whether the newest pooled stack is warm
 * and above the period's low-water mark (gt__stack_get moves the mark),
 * and taking it. */
static inline int gt__stack_has_warm(const gt__pool *p)
{
    return p->n != p->low;
}
static inline gt__thread *gt__stack_take_warm(gt__pool *p)
{
    return p->v[--p->n].t;
}
static inline gt__thread *gt__stack_warm(gt__pool *p)
{
    return gt__stack_has_warm(p) ? gt__stack_take_warm(p) : NULL;
}

/* Fast path of gt__stack_keep: pools a stack while the array has room. */
static inline int gt__stack_keep_warm(gt__pool *p, gt__thread *t)
{
    if (t->map_size != p->map_size || p->n == p->cap) return 0;
    p->v[p->n++] = gt__pooled_of(t);
    return 1;
}

/* Sets the default stack size and flags, emptying the pools if the size
 * changes. */
void gt__stack_default(gt__sched *S, size_t size, int flags);
/* Takes a stack (flags: 0 or GT_NOGUARD) from the pool or the kernel. */
int gt__stack_get(gt__sched *S, size_t size, int flags, gt__thread **out);
/* Pools the stack of an ended thread; 0 if it must be unmapped instead,
 * which gt__stack_unmap does once nobody runs on it. */
int gt__stack_keep(gt__sched *S, gt__thread *t);
void gt__stack_unmap(gt__thread *t);
void gt__stack_cleanup(gt__sched *S);
/* Ends the pools' periods and gives pooled stacks beyond the working set
 * back to the kernel, a batch at a time; gt__stack_loop calls it. */
void gt__stack_trim(gt__sched *S);
size_t gt__page_size(void);

#endif
