/* The per-OS-thread scheduler: its state, and the calls between the
 * runtime's files that act on it. */
#ifndef GT_SCHEDULER_H
#define GT_SCHEDULER_H

#include "pool.h"
#include "timer.h"

struct gt__io; /* the net layer's poller (runtime/park.h) */

/* Per-OS-thread scheduler. */
struct gt__sched {
    int ready;             /* initialised */
    gt__thread *current;   /* running green thread, NULL in the loop */
    gt__ctx loop;          /* the loop's own context */
    gt__list runq;         /* READY threads, FIFO */
    gt__list later;        /* READY threads that gave way: they join the
                              run queue after the loop's next poll */
    gt__hnode *timers;     /* heap of parked threads' deadlines */
    gt__hnode *ctimers;    /* heap of gt__ctimer */
    uint64_t timer_seq;    /* next tie-break number */
    unsigned budget;       /* direct switches left before the loop runs */
    int stopped;           /* gt_stop was called */
    gt__list zombies;      /* ended threads whose stacks await unmapping */
    int64_t next_id;       /* next id to issue */
    gt__thread **ids;      /* hash of live ids: buckets of id_next chains;
                              also the registry gt_dump prints */
    size_t ids_cap, ids_n; /* buckets (a power of two) and live threads */
    size_t stack_size;     /* default usable stack size */
    int stack_flags;       /* default flags */
    gt__pool pool[2];      /* default-size stacks: [0] guarded, [1] not */
    void *altstack;        /* signal stack for overflow reports */
    struct gt__io *io;     /* the net layer's poller, if any */
    uint64_t serial;       /* this OS thread's number, > 0, never reused:
                              the objects it makes carry it (gt__alien) */
#ifdef GT__ASAN
    const void *loop_bottom; /* the loop's stack, learnt from ASan */
    size_t loop_size;
    int from_loop; /* the last switch came from the loop */
#endif
};

/* The scheduler of the calling OS thread; gt__get creates it on first use,
 * gt__peek does not (for the signal handler). */
extern __thread gt__sched gt__S;
void gt__init(gt__sched *S);
static inline gt__sched *gt__get(void)
{
    if (__builtin_expect(!gt__S.ready, 0)) gt__init(&gt__S);
    return &gt__S;
}
static inline gt__sched *gt__peek(void)
{
    return &gt__S;
}
/* gt__peek for a function that switches: the empty assembly hides where
 * the pointer comes from, so that the compiler keeps it in a register (or
 * spills it once) instead of recomputing the thread-local address, two
 * instructions with a load, at every use. */
static inline gt__sched *gt__here(void)
{
    gt__sched *S = &gt__S;
    __asm__("" : "+r"(S));
    return S;
}
#ifdef GT__ASAN
void gt__asan_arrived(gt__sched *S, void *fake);
#endif
void gt__release_zombies(gt__sched *S);
/* Runs ready thread t now: from the loop's stack, or from a green thread,
 * which stays ready and runs again as soon as t parks or ends. */
void gt__run_first(gt__thread *t);
gt__thread *gt__find(gt__sched *S, int64_t id);
void gt__install_overflow_handler(gt__sched *S);
void gt__remove_overflow_handler(gt__sched *S);

/* Called by the loop after each round.  Periods are counted in spawns, by
 * the thread ids issued (gt__sched.next_id), so spawn and exit count
 * nothing for the pool. */
static inline void gt__stack_loop(gt__sched *S)
{
    if (S->next_id >= S->pool[0].until || S->next_id >= S->pool[1].until)
        gt__stack_trim(S);
}

#endif
