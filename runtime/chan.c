/* Channels.  A parked sender or receiver is a clause (gt__clause, in its
 * control block or, for gt_choose, on its stack), linked into the
 * channel's wait list; whoever completes the operation unlinks the
 * clause, copies the element and wakes the thread with the clause's
 * index.  A clause whose thread was already woken (deadline, cancel,
 * another clause of the same choose) is stale and skipped. */
#include "park.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* gt_choose links waiters from its own stack frame on purpose: they are
 * unlinked before that frame returns.  GCC 12 at -O3 warns about it. */
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

typedef gt__clause clause;

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

/* Readies the thread of c, which take_waiter found parked, for a close:
 * its operation failed.  (A clause's result starts at 0, success.) */
static void complete_closed(gt__sched *S, clause *c)
{
    c->result = -EPIPE;
    gt__ready(S, c->t, c->index);
}

/* Copies an element of another size; returns 0, so that a fast path
 * that copies last can end in a jump here (see one_op). */
__attribute__((noinline)) static int copy_any(void *dst, const void *src,
                                              size_t n)
{
    memcpy(dst, src, n);
    return 0;
}

/* Copies an element and returns 0.  Most elements are a pointer or an
 * integer; those are copied inline. */
static inline int copy(void *dst, const void *src, size_t n)
{
    if (n == sizeof(void *)) {
        memcpy(dst, src, sizeof(void *));
        return 0;
    }
    if (n == sizeof(int)) {
        memcpy(dst, src, sizeof(int));
        return 0;
    }
    return copy_any(dst, src, n);
}

static char *slot(gt_chan *ch, size_t i)
{
    return ch->buf + ((ch->head + i) % ch->cap) * ch->elem_size;
}

/* A receive from a channel holding elements: it copies out, then lets
 * the oldest parked sender fill the freed slot; returns 0.  Out of line,
 * with the other cases that call a function before their last step. */
__attribute__((noinline)) static int recv_buffered(gt__sched *S, gt_chan *ch,
                                                   void *elem)
{
    clause *c;
    if (!ch->cap) __builtin_unreachable(); /* elements need a buffer */
    copy(elem, slot(ch, 0), ch->elem_size);
    ch->head = (ch->head + 1) % ch->cap;
    ch->count--;
    if ((c = take_waiter(&ch->senders))) {
        gt__ready(S, c->t, c->index);
        copy(slot(ch, ch->count++), c->elem, ch->elem_size);
    }
    return 0;
}

/* Completes c, which take_waiter found parked, and copies the element:
 * from elem into the waiter's buffer for a send, from the waiter's
 * element into elem for a receive.  Returns 0. */
static inline int hand_over(gt__sched *S, gt_chan *ch, clause *c, int op,
                            void *elem)
{
    gt__ready_untimed(S, c->t, c->index);
    if (op == GT_SEND) return copy(c->elem, elem, ch->elem_size);
    return copy(elem, c->elem, ch->elem_size);
}

/* hand_over for a waiter with a deadline, whose timer leaves the heap
 * first. */
__attribute__((noinline)) static int
hand_over_timed(gt__sched *S, gt_chan *ch, clause *c, int op, void *elem)
{
    gt__untime(S, c->t);
    return hand_over(S, ch, c, op, elem);
}

static int wait_op(gt__sched *S, gt_chan *ch, int op, void *elem,
                   int64_t deadline);

/* Performs a send or receive now if it can and returns its result (0,
 * or -EPIPE if the channel is closed); otherwise parks in it until the
 * deadline if `wait`, or returns 1.  Every case ends in its last call, or
 * in a return, so that a single operation keeps nothing in a register
 * across a call; a waiter is readied before its element is copied (its
 * thread runs only later) for that. */
static inline __attribute__((always_inline)) int
do_op(gt__sched *S, gt_chan *ch, int op, void *elem, int wait, int64_t deadline)
{
    clause *c;
    if (op == GT_SEND && ch->closed) return -EPIPE;
    if (op == GT_RECV && ch->count) return recv_buffered(S, ch, elem);
    if ((c = take_waiter(op == GT_SEND ? &ch->recvers : &ch->senders))) {
        if (__builtin_expect(c->t->timed, 0))
            return hand_over_timed(S, ch, c, op, elem);
        return hand_over(S, ch, c, op, elem);
    }
    if (op == GT_SEND && ch->count < ch->cap)
        return copy(slot(ch, ch->count++), elem, ch->elem_size);
    if (op == GT_RECV && ch->closed) return -EPIPE;
    return wait ? wait_op(S, ch, op, elem, deadline) : 1;
}

/* do_op for a single operation, out of line. */
__attribute__((noinline)) static int do_one(gt__sched *S, gt_chan *ch, int op,
                                            void *elem, int64_t deadline)
{
    return do_op(S, ch, op, elem, 1, deadline);
}

/* The two cases of a single operation that matter most for speed, with
 * everything else left to do_one: an unbuffered channel with a waiter
 * on the other side that has no deadline (a hand-over), and one with
 * nobody waiting (a park).  Skipping stale clauses takes a loop, whose
 * registers would give this a stack frame. */
static inline __attribute__((always_inline)) int
one_fast(gt__sched *S, gt_chan *ch, int op, void *elem, int64_t deadline)
{
    gt__list *l = op == GT_SEND ? &ch->recvers : &ch->senders;
    if (ch->cap) return do_one(S, ch, op, elem, deadline);
    /* Closing woke every waiter, and nobody parks on a closed channel, so
     * an unbuffered one has nothing left to hand over. */
    if (ch->closed) return -EPIPE;
    if (gt__list_empty(l)) return wait_op(S, ch, op, elem, deadline);
    clause *c = GT__CONTAINER(l->next, clause, link);
    if (c->t->state != GT__PARKED || c->t->timed)
        return do_one(S, ch, op, elem, deadline);
    gt__list_remove(&c->link);
    return hand_over(S, ch, c, op, elem);
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
    for (int i = 0; i < n; i++) {
        int rc = do_op(S, ops[i].ch, ops[i].op, ops[i].elem, 0, 0);
        if (rc <= 0) {
            ops[i].result = rc;
            return i;
        }
    }

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
 * the half that completes at once needs no stack frame of its own.  The
 * clause is the one in the control block, so no stack object is linked
 * into the channel (and none needs a stack-protector canary). */
__attribute__((noinline)) static int wait_op(gt__sched *S, gt_chan *ch, int op,
                                             void *elem, int64_t deadline)
{
    gt__thread *me = S->current;
    if (me->cancelled) return -ECANCELED;
    if (deadline == 0) return -ETIMEDOUT;
    S = gt__here();          /* the same pointer, kept in a register */
    clause *c = &me->clause; /* its t and index are set (runtime/stack.c) */
    c->elem = elem;
    c->result = 0;
    gt__list_push(op == GT_SEND ? &ch->senders : &ch->recvers, &c->link);
    int rc = gt__park_to(S, me, NULL, deadline,
                         op == GT_SEND ? "chan send" : "chan recv", ch);
    /* Whoever completed the clause took it off the list; a deadline or a
     * cancel leaves it there, or (once the thread is no longer parked)
     * lets the next taker drop it, which leaves it pointing at itself. */
    if (rc < 0) {
        gt__list_remove(&c->link);
        return rc;
    }
    return c->result;
}

/* gt_choose of one operation, without its loops. */
static inline __attribute__((always_inline)) int
one_op(gt_chan *ch, int op, void *elem, int64_t deadline)
{
    gt__sched *S = &gt__S;
    if (!ch || !elem) return -EINVAL;
    if (gt__alien(ch->owner)) return GT_EOWNER;
    if (!S->current) return -EPERM;
    return one_fast(S, ch, op, elem, deadline);
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
    while ((c = take_waiter(&ch->senders))) complete_closed(&gt__S, c);
    while ((c = take_waiter(&ch->recvers))) complete_closed(&gt__S, c);
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
