/* Green-thread lifecycle: spawn, end, join, cancel, symmetric transfer.
 * Threads are named by ids that are never reused; a chained hash maps
 * live ids to threads, and an id below next_id that is not in it belongs
 * to a thread that has ended. */
#include "park.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef GT__ASAN
#include <sanitizer/asan_interface.h>
#endif

static const char transfer_what[] = "transfer";

/* Ids are issued in sequence, so id & (ids_cap - 1) spreads them evenly
 * over the buckets; each bucket chains its threads through id_next. */
static gt__thread *find_in(const gt__sched *S, int64_t id)
{
    gt__thread *t = S->ids[(size_t)id & (S->ids_cap - 1)];
    while (t && t->id != id) t = t->id_next;
    return t;
}

gt__thread *gt__find(gt__sched *S, int64_t id)
{
    return S->ids_cap ? find_in(S, id) : NULL;
}

static void ids_put(gt__sched *S, gt__thread *t)
{
    gt__thread **b = &S->ids[(size_t)t->id & (S->ids_cap - 1)];
    t->id_next = *b;
    *b = t;
    S->ids_n++;
}

/* Doubles the buckets, kept at least as many as the threads. */
static int ids_grow(gt__sched *S)
{
    size_t old_cap = S->ids_cap, cap = old_cap ? old_cap * 2 : 64;
    gt__thread **old = S->ids, **v = calloc(cap, sizeof(gt__thread *));
    if (!v) return -ENOMEM;
    S->ids = v;
    S->ids_cap = cap;
    S->ids_n = 0;
    for (size_t i = 0; i < old_cap; i++)
        for (gt__thread *t = old[i], *next; t; t = next) {
            next = t->id_next;
            ids_put(S, t);
        }
    free(old);
    return 0;
}

static void ids_del(gt__sched *S, gt__thread *t)
{
    gt__thread **pp = &S->ids[(size_t)t->id & (S->ids_cap - 1)];
    while (*pp != t) pp = &(*pp)->id_next;
    *pp = t->id_next;
    S->ids_n--;
}

/* Checks a stack size and flags, and rounds the size up to pages. */
static int stack_args(size_t *size, int flags)
{
    size_t page = gt__page_size();
    if (*size < GT_STACK_MIN || *size > GT_STACK_MAX || (flags & ~GT_NOGUARD))
        return -EINVAL;
    *size = (*size + page - 1) & ~(page - 1);
    return 0;
}

/* Gives a stack's control block to a new thread and queues it.  The
 * fields not set here are zero or were left clean by the previous thread
 * on the stack: not timed, not waiting, no joiner. */
static inline int64_t start(gt__sched *S, gt__thread *t, gt_fn *fn, void *arg,
                            const char *site, const char *name)
{
#ifdef GT__ASAN
    /* ASan's shadow still marks the frames of the stack's last user. */
    __asan_unpoison_memory_region(t->stack_lo,
                                  (size_t)((char *)t - t->stack_lo));
#endif
    t->fn = fn;
    t->arg = arg;
    t->site = site;
    t->id = S->next_id++;
    t->state = GT__READY;
    t->cancelled = 0;
    t->started = 0;
    t->name[0] = 0;
    if (name) {
        strncpy(t->name, name, sizeof t->name - 1);
        t->name[sizeof t->name - 1] = 0;
    }
    ids_put(S, t);
    gt__list_push(&S->runq, &t->runq);
    return t->id;
}

/* Everything but the common case: bad arguments, a scheduler to set up,
 * attributes, an id table to grow, a cold or new stack.  Attributes that
 * only name the thread (the net layer's "conn", the Lua module's "lua")
 * still get a warm default stack. */
__attribute__((noinline)) static int64_t
spawn_slow(gt_fn *fn, void *arg, const gt_attr *attr, const char *site)
{
    gt__sched *S = gt__get();
    if (!fn) return -EINVAL;
    if (S->ids_n >= S->ids_cap && ids_grow(S) < 0) return -ENOMEM;
    gt__thread *t = attr && (attr->stack_size || attr->flags)
                        ? NULL
                        : gt__stack_warm(&S->pool[S->stack_flags]);
    if (!t) {
        size_t size = S->stack_size;
        int flags = S->stack_flags;
        if (attr) {
            if (attr->stack_size) size = attr->stack_size;
            if (attr->flags) flags = attr->flags;
            int rc = stack_args(&size, attr->flags);
            if (rc < 0) return rc;
        }
        int rc = gt__stack_get(S, size, flags, &t);
        if (rc < 0) return rc;
    }
    return start(S, t, fn, arg, site, attr ? attr->name : NULL);
}

/* A scheduler that is not set up has no pooled stack and no id room, so
 * the fast path needs no check of its own for that. */
int64_t gt_spawn_at(gt_fn *fn, void *arg, const gt_attr *attr, const char *site)
{
    gt__sched *S = &gt__S;
    gt__pool *p = &S->pool[S->stack_flags];
    if (__builtin_expect(!fn || attr || S->ids_n >= S->ids_cap, 0) ||
        !gt__stack_has_warm(p))
        return spawn_slow(fn, arg, attr, site);
    return start(S, gt__stack_take_warm(p), fn, arg, site, NULL);
}

int gt_set_default_stack(size_t stack_size, int flags)
{
    gt__sched *S = gt__get();
    if (!stack_size) stack_size = GT_STACK_DEFAULT;
    int rc = stack_args(&stack_size, flags);
    if (rc < 0) return rc;
    gt__stack_default(S, stack_size, flags);
    return 0;
}

/* Every green thread starts here, on its own stack, and ends here. */
gt__ctx *gt__thread_main(void)
{
    gt__sched *S = gt__here();
#ifdef GT__ASAN
    gt__asan_arrived(S, NULL);
#endif
    gt__thread *t = S->current;
    t->started = 1;
    t->fn(t->arg);

    t->state = GT__DONE;
    ids_del(S, t);
    /* Pooling the stack we still run on is safe: nothing can take it
     * before the switch below.  Unmapping is not; the loop does that. */
    if (!gt__stack_keep_warm(&S->pool[t->flags], t) && !gt__stack_keep(S, t))
        gt__list_push(&S->zombies, &t->runq);
    gt__thread *j = t->joiner, *next;
    t->joiner = NULL;
    if (j && j->state == GT__PARKED && S->budget && gt__list_empty(&S->runq)) {
        /* The joiner is all there is to run: hand over directly, as the
         * run queue would. */
        gt__untime(S, j);
        j->wake_rc = 0;
        next = j;
        S->budget--;
    } else {
        if (j) gt__wake(j, 0);
        next = gt__next(S);
    }
    return gt__switch_last(S, t, next);
}

int64_t gt_self(void)
{
    gt__thread *t = gt__peek()->current;
    return t ? t->id : 0;
}

/* Looks an id up; -ESRCH for ids never issued, 0 with *out NULL for
 * threads that have ended.  An issued id means the id table exists. */
static int lookup(gt__sched *S, int64_t id, gt__thread **out)
{
    if (id <= 0 || id >= S->next_id) return -ESRCH;
    *out = find_in(S, id);
    return 0;
}

/* An unset scheduler has no current thread: no gt__get needed. */
int gt_join(int64_t id, int64_t deadline)
{
    gt__sched *S = gt__here();
    gt__thread *me = S->current, *t;
    if (!me) return -EPERM;
    int rc = lookup(S, id, &t);
    if (rc < 0 || !t) return rc;
    if (t == me) return -EDEADLK;
    if (t->joiner) return -EBUSY;
    if (me->cancelled) return -ECANCELED;
    if (deadline == 0) return -ETIMEDOUT;
    t->joiner = me;
    rc = gt__park_to(S, me, NULL, deadline, "join", t);
    if (rc < 0) {
        /* Timed out or cancelled: t may have ended meanwhile. */
        t = gt__find(S, id);
        if (t && t->joiner == me) t->joiner = NULL;
    }
    return rc;
}

int gt_cancel(int64_t id)
{
    gt__sched *S = gt__get();
    gt__thread *t;
    int rc = lookup(S, id, &t);
    if (rc < 0 || !t) return rc;
    t->cancelled = 1;
    gt__wake(t, -ECANCELED);
    return 0;
}

int gt_transfer(int64_t id, void *val, void **out, int64_t deadline)
{
    gt__sched *S = gt__get();
    gt__thread *me = S->current, *t;
    if (!me) return -EPERM;
    int rc = lookup(S, id, &t);
    if (rc < 0) return rc;
    if (!t) return -ESRCH;
    if (t == me) return -EINVAL;
    if (me->cancelled) return -ECANCELED;
    if (t->state == GT__PARKED && t->wait_what == transfer_what) {
        t->xfer = val;
        t->wake_rc = 0;
    } else if (t->state != GT__READY || t->started) {
        return -EBUSY;
    }
    gt__unqueue(S, t);
    rc = gt__park_to(S, me, t, deadline, transfer_what, t);
    if (rc == 0 && out) *out = me->xfer;
    return rc;
}
