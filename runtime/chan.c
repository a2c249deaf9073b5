/* Channels.  A parked sender or receiver is a clause on its own stack,
 * linked into the channel's wait list; whoever completes the operation
 * unlinks the clause, copies the element and wakes the thread with the
 * clause's index.  A clause whose thread was already woken (deadline,
 * cancel, another clause of the same choose) is stale and skipped. */
#include "park.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Waiters are linked from their own stack frames on purpose: they are
 * unlinked before those frames return.  GCC 12 at -O3 warns about it. */
#if defined(__GNUC__) && __GNUC__ >= 12 && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#define GT__CHOOSE_MAX 64

struct gt_chan {
    uint64_t owner;   /* serial of the OS thread that made it */
    size_t elem_size; /* bytes per element */
    size_t cap;       /* buffer capacity; 0 = unbuffered */
    size_t head;      /* index of the oldest buffered element */
    size_t count;     /* buffered elements */
    int closed;       /* gt_chan_close was called */
    gt__list senders; /* parked send clauses */
    gt__list recvers; /* parked receive clauses */
    char buf[];       /* cap * elem_size bytes */
};

typedef struct clause {
    gt__list link; /* in senders or recvers */
    gt__thread *t; /* the parked thread */
    void *elem;    /* its element, or its buffer */
    int index;     /* its position in the choose; 0 for a single operation */
    int result;    /* set when completed: 0, or -EPIPE if closed */
} clause;

int gt_chan_make(gt_chan **out, size_t elem_size, size_t capacity)
{
    if (!out || !elem_size || elem_size > ((size_t)1 << 30) ||
        (capacity && elem_size > SIZE_MAX / 2 / capacity))
        return -EINVAL;
    gt_chan *ch = malloc(sizeof *ch + elem_size * capacity);
    if (!ch) return -ENOMEM;
    ch->owner = gt__get()->serial;
    ch->elem_size = elem_size;
    ch->cap = capacity;
    ch->head = ch->count = 0;
    ch->closed = 0;
    gt__list_init(&ch->senders);
    gt__list_init(&ch->recvers);
    *out = ch;
    return 0;
}

/* Takes the first clause whose thread still waits, dropping stale ones. */
static clause *take_waiter(gt__list *l)
{
    while (!gt__list_empty(l)) {
        clause *c = GT__CONTAINER(l->next, clause, link);
        gt__list_remove(&c->link);
        if (c->t->state == GT__PARKED) return c;
    }
    return NULL;
}

/* Readies the thread of c, which take_waiter found parked. */
static void complete(gt__sched *S, clause *c, int result)
{
    c->result = result;
    gt__ready(S, c->t, c->index);
}

/* Most elements are a pointer or an integer; copy those inline. */
static void copy(void *dst, const void *src, size_t n)
{
    if (n == sizeof(void *))
        memcpy(dst, src, sizeof(void *));
    else if (n == sizeof(int))
        memcpy(dst, src, sizeof(int));
    else
        memcpy(dst, src, n);
}

static char *slot(gt_chan *ch, size_t i)
{
    return ch->buf + ((ch->head + i) % ch->cap) * ch->elem_size;
}

/* Performs a send or receive now if it can: returns 1 if done, with
 * *result set.  Inlined into each single operation, so its other branch
 * goes.  A waiter is readied before its element is copied (its thread
 * runs only later), so that the copy, which may call memcpy, comes last
 * and nothing needs to stay in a register across that call. */
static inline __attribute__((always_inline)) int
try_op(gt__sched *S, gt_chan *ch, int op, void *elem, int *result)
{
    clause *c;
    size_t n = ch->elem_size;
    *result = 0;
    if (op == GT_SEND) {
        if (ch->closed) {
            *result = -EPIPE;
        } else if ((c = take_waiter(&ch->recvers))) {
            complete(S, c, 0);
            copy(c->elem, elem, n);
        } else if (ch->count < ch->cap) {
            copy(slot(ch, ch->count++), elem, n);
        } else {
            return 0;
        }
        return 1;
    }
    if (ch->count) {
        copy(elem, slot(ch, 0), n);
        ch->head = (ch->head + 1) % ch->cap;
        ch->count--;
        /* A freed slot lets the oldest parked sender complete. */
        if ((c = take_waiter(&ch->senders))) {
            complete(S, c, 0);
            copy(slot(ch, ch->count++), c->elem, n);
        }
    } else if ((c = take_waiter(&ch->senders))) {
        complete(S, c, 0);
        copy(elem, c->elem, n);
    } else if (ch->closed) {
        *result = -EPIPE;
    } else {
        return 0;
    }
    return 1;
}

int gt_choose(gt_chan_op *ops, int n, int64_t deadline)
{
    gt__sched *S = gt__get();
    gt__thread *me = S->current;
    if (!me) return -EPERM;
    if (!ops || n <= 0 || n > GT__CHOOSE_MAX) return -EINVAL;
    for (int i = 0; i < n; i++)
        if (!ops[i].ch || !ops[i].elem ||
            (ops[i].op != GT_SEND && ops[i].op != GT_RECV))
            return -EINVAL;
    for (int i = 0; i < n; i++)
        if (gt__alien(ops[i].ch->owner)) return GT_EOWNER;
    for (int i = 0; i < n; i++)
        if (try_op(S, ops[i].ch, ops[i].op, ops[i].elem, &ops[i].result))
            return i;

    clause cl[GT__CHOOSE_MAX];
    for (int i = 0; i < n; i++) {
        cl[i] = (clause){{NULL, NULL}, me, ops[i].elem, i, 0};
        gt__list_push(ops[i].op == GT_SEND ? &ops[i].ch->senders
                                           : &ops[i].ch->recvers,
                      &cl[i].link);
    }
    int rc = gt__park(deadline, "choose", ops[0].ch);
    for (int i = 0; i < n; i++) gt__list_remove(&cl[i].link);
    if (rc >= 0) ops[rc].result = cl[rc].result;
    return rc;
}

/* The half of a single send or receive that parks: out of line, so that
 * the half that completes at once needs no stack frame of its own. */
__attribute__((noinline)) static int wait_op(gt__sched *S, gt_chan *ch, int op,
                                             void *elem, int64_t deadline)
{
    gt__thread *me = S->current;
    if (me->cancelled) return -ECANCELED;
    if (deadline == 0) return -ETIMEDOUT;
    clause c = {{NULL, NULL}, me, elem, 0, 0};
    gt__list_push(op == GT_SEND ? &ch->senders : &ch->recvers, &c.link);
    int rc = gt__park_to(S, me, NULL, deadline,
                         op == GT_SEND ? "chan send" : "chan recv", ch);
    /* Whoever completed the clause took it off the list; a deadline or a
     * cancel leaves it there, or (once the thread is no longer parked)
     * lets the next taker drop it, which leaves it pointing at itself. */
    if (rc < 0) {
        gt__list_remove(&c.link);
        return rc;
    }
    return c.result;
}

/* gt_choose of one operation, without its loops. */
static inline __attribute__((always_inline)) int
one_op(gt_chan *ch, int op, void *elem, int64_t deadline)
{
    gt__sched *S = &gt__S;
    int result;
    if (!ch || !elem) return -EINVAL;
    if (gt__alien(ch->owner)) return GT_EOWNER;
    if (!S->current) return -EPERM;
    if (try_op(S, ch, op, elem, &result)) return result;
    return wait_op(S, ch, op, elem, deadline);
}

int gt_chan_send(gt_chan *ch, const void *elem, int64_t deadline)
{
    return one_op(ch, GT_SEND, (void *)elem, deadline);
}

int gt_chan_recv(gt_chan *ch, void *elem, int64_t deadline)
{
    return one_op(ch, GT_RECV, elem, deadline);
}

int gt_chan_close(gt_chan *ch)
{
    if (!ch) return -EINVAL;
    if (gt__alien(ch->owner)) return GT_EOWNER;
    ch->closed = 1;
    clause *c;
    while ((c = take_waiter(&ch->senders))) complete(&gt__S, c, -EPIPE);
    while ((c = take_waiter(&ch->recvers))) complete(&gt__S, c, -EPIPE);
    return 0;
}

/* Stale clauses may still be linked (their threads are ready but have not
 * run yet); they are unlinked here so freeing is safe. */
static int busy(gt__list *l)
{
    for (gt__list *n = l->next; n != l; n = n->next)
        if (GT__CONTAINER(n, clause, link)->t->state == GT__PARKED) return 1;
    while (!gt__list_empty(l)) gt__list_remove(l->next);
    return 0;
}

int gt_chan_free(gt_chan *ch)
{
    if (!ch) return -EINVAL;
    if (gt__alien(ch->owner)) return GT_EOWNER;
    if (busy(&ch->senders) || busy(&ch->recvers)) return -EBUSY;
    free(ch);
    return 0;
}
