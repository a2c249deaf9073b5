/* Counting semaphore.  A release with waiters hands the unit straight to
 * the oldest one, so a late arrival cannot overtake it. */
#include "park.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

/* Waiters are linked from their own stack frames on purpose: they are
 * unlinked before those frames return.  GCC 12 at -O3 warns about it. */
#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

struct gt_sem {
    uint64_t owner;   /* serial of the OS thread that made it */
    unsigned count;   /* units available */
    gt__list waiters; /* parked acquirers, oldest first */
};

typedef struct waiter {
    gt__list link;
    gt__thread *t;
} waiter;

int gt_sem_make(gt_sem **out, unsigned count)
{
    if (!out) return -EINVAL;
    gt_sem *s = malloc(sizeof *s);
    if (!s) return -ENOMEM;
    s->owner = gt__get()->serial;
    s->count = count;
    gt__list_init(&s->waiters);
    *out = s;
    return 0;
}

int gt_sem_acquire(gt_sem *s, int64_t deadline)
{
    gt__thread *me = gt__peek()->current;
    if (!s) return -EINVAL;
    if (gt__alien(s->owner)) return GT_EOWNER;
    if (!me) return -EPERM;
    if (s->count) { /* no parking, so a cancel does not stop it */
        s->count--;
        return 0;
    }
    waiter w = {{NULL, NULL}, me};
    gt__list_push(&s->waiters, &w.link);
    int rc = gt__park(deadline, "sem", s);
    gt__list_remove(&w.link);
    return rc;
}

int gt_sem_release(gt_sem *s)
{
    if (!s) return -EINVAL;
    if (gt__alien(s->owner)) return GT_EOWNER;
    while (!gt__list_empty(&s->waiters)) {
        waiter *w = GT__CONTAINER(s->waiters.next, waiter, link);
        gt__list_remove(&w->link);
        if (gt__wake(w->t, 0)) return 0;
    }
    if (s->count == UINT_MAX) return -EOVERFLOW;
    s->count++;
    return 0;
}

int gt_sem_free(gt_sem *s)
{
    if (!s) return -EINVAL;
    if (gt__alien(s->owner)) return GT_EOWNER;
    for (gt__list *n = s->waiters.next; n != &s->waiters; n = n->next)
        if (GT__CONTAINER(n, waiter, link)->t->state == GT__PARKED)
            return -EBUSY;
    while (!gt__list_empty(&s->waiters)) gt__list_remove(s->waiters.next);
    free(s);
    return 0;
}
