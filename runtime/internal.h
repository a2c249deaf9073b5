/* Private structures of the green-thread runtime.  Nothing here is part of
 * the public API; every name with external linkage carries gt__. */
#ifndef GT_INTERNAL_H
#define GT_INTERNAL_H

#include "prefix.h"
#include "socketloop/gt.h"

#include <stdint.h>
#include <stddef.h>
#ifdef GT__UCONTEXT
#include <ucontext.h>
#endif

#define GT__ASSERT(c) ((c) ? (void)0 : gt__fatal(__FILE__, __LINE__, #c))
#define GT__CONTAINER(p, type, field)                                          \
    ((type *)(void *)((char *)(p)-offsetof(type, field)))

#if defined(__SANITIZE_ADDRESS__)
#define GT__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GT__ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define GT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GT__TSAN 1
#endif
#endif

/* Circular doubly linked list with a sentinel head.  A detached node
 * points at itself, so removing it twice is harmless. */
typedef struct gt__list {
    struct gt__list *next, *prev;
} gt__list;

static inline void gt__list_init(gt__list *l)
{
    l->next = l->prev = l;
}
static inline int gt__list_empty(const gt__list *l)
{
    return l->next == l;
}
static inline void gt__list_push(gt__list *head, gt__list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
/* Moves every node of `from`, in order, to the end of `to`. */
static inline void gt__list_splice(gt__list *to, gt__list *from)
{
    if (gt__list_empty(from)) return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    gt__list_init(from);
}
static inline void gt__list_remove(gt__list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}

/* Pairing-heap node: insert is O(1), removal O(log n) amortised, and no
 * memory is allocated, so timers cost nothing on the park path. */
typedef struct gt__hnode {
    struct gt__hnode *child; /* first child */
    struct gt__hnode *next;  /* next sibling */
    struct gt__hnode *prev;  /* previous sibling, or parent if first */
    int64_t key;             /* deadline in ms */
    uint64_t seq;            /* tie-break: equal deadlines fire FIFO */
} gt__hnode;

gt__hnode *gt__heap_insert(gt__hnode *root, gt__hnode *n);
gt__hnode *gt__heap_remove(gt__hnode *root, gt__hnode *n);

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

enum gt__state { GT__READY, GT__RUNNING, GT__PARKED, GT__DONE };

/* A green thread.  It lives at the top of its own stack mapping, so a
 * parked thread that used little stack costs one resident page. */
typedef struct gt__thread {
    gt__ctx ctx;                /* saved registers while not running */
    int64_t id;                 /* public id, > 0, never reused */
    struct gt__thread *id_next; /* next in its bucket of gt__sched.ids */
    int state;                  /* enum gt__state */
    int wake_rc;                /* what the current park returns */
    int cancelled;              /* gt_cancel was called */
    int started;                /* has run at least once */
    gt__list runq;              /* link in the run queue while READY */
    gt__hnode timer;            /* deadline of the current park */
    int timed;                  /* timer is in the heap */
    const char *wait_what;      /* what a parked thread waits for */
    const void *wait_obj;       /* the object it waits on, for gt_dump */
    struct gt__thread *joiner;  /* the green thread joining this one */
    void *xfer;                 /* value passed by gt_transfer */
    gt_fn *fn;                  /* body */
    void *arg;                  /* its argument */
    const char *site;           /* where it was spawned, or NULL */
    char *map;                  /* the whole mapping, guard page included */
    size_t map_size;            /* its size */
    char *stack_lo;             /* lowest usable stack byte (canary there) */
    unsigned vg_id;             /* Valgrind stack id */
    int flags;                  /* 0 or GT_NOGUARD (also the pool index) */
    char name[32];              /* from gt_attr, NUL-terminated */
} gt__thread;

/* A stack kept for reuse. */
typedef struct gt__pooled {
    char *map;
    unsigned vg_id;
#ifdef GT__TSAN
    void *tsan_fiber;
#endif
} gt__pooled;

/* The pool entry for t's stack. */
static inline gt__pooled gt__pooled_of(const gt__thread *t)
{
#ifdef GT__TSAN
    return (gt__pooled){t->map, t->vg_id, t->ctx.tsan_fiber};
#else
    return (gt__pooled){t->map, t->vg_id};
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

/* A timer that calls fn in the loop, on the loop's own stack, instead of
 * waking a green thread: for code that waits without one (the Lua
 * module's yielded coroutines). */
typedef struct gt__ctimer {
    gt__hnode node;                   /* in gt__sched.ctimers */
    void (*fn)(struct gt__ctimer *t); /* called once when it expires */
    int armed;                        /* in the heap */
} gt__ctimer;

/* An I/O poller for the loop.  The net layer installs one per OS thread;
 * the runtime itself knows nothing about descriptors. */
typedef struct gt__io {
    /* Waits at most timeout_ms (-1: no limit) and makes the green threads
     * whose events came ready with gt__wake. */
    void (*wait)(struct gt__io *io, int timeout_ms);
    size_t waiters; /* green threads parked on I/O: while any is, the
                       loop cannot be deadlocked */
} gt__io;

/* Per-OS-thread scheduler. */
typedef struct gt__sched {
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
    gt__io *io;            /* the net layer's poller, if any */
    uint64_t serial;       /* this OS thread's number, > 0, never reused:
                              the objects it makes carry it (gt__alien) */
#ifdef GT__ASAN
    const void *loop_bottom; /* the loop's stack, learnt from ASan */
    size_t loop_size;
    int from_loop; /* the last switch came from the loop */
#endif
} gt__sched;

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
/* Whether an object tagged `owner` (the serial of the OS thread that made
 * it) is used on another OS thread.  Channels, semaphores and sockets link
 * parked green threads and timers of their own thread, so every call on
 * one starts with this compare and returns GT_EOWNER if it is true.  An
 * OS thread without a scheduler has serial 0, which no object carries.
 * A serial rather than the scheduler's address: a new OS thread may get a
 * dead one's thread-local block at the same address. */
static inline int gt__alien(uint64_t owner)
{
    return owner != gt__S.serial;
}
#ifdef GT__ASAN
void gt__asan_arrived(gt__sched *S, void *fake);
#endif
void gt__release_zombies(gt__sched *S);
void gt__ctimer_start(gt__ctimer *t, int64_t deadline);
void gt__ctimer_stop(gt__ctimer *t);
/* Runs ready thread t now: from the loop's stack, or from a green thread,
 * which stays ready and runs again as soon as t parks or ends. */
void gt__run_first(gt__thread *t);
gt__thread *gt__find(gt__sched *S, int64_t id);
void gt__fatal(const char *file, int line, const char *what);

#define GT__TCB_SIZE ((sizeof(gt__thread) + 63) & ~(size_t)63)

/* Fast path of gt__stack_get: the newest pooled stack, while it is warm
 * and above the period's low-water mark (gt__stack_get moves the mark). */
static inline gt__thread *gt__stack_warm(gt__pool *p)
{
    if (p->n == p->low) return NULL;
    char *map = p->v[--p->n].map;
    return (gt__thread *)(void *)(map + p->map_size - GT__TCB_SIZE);
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
/* Called by the loop after each round.  Periods are counted in spawns, by
 * the thread ids issued (gt__sched.next_id), so spawn and exit count
 * nothing for the pool. */
static inline void gt__stack_loop(gt__sched *S)
{
    if (S->next_id >= S->pool[0].until || S->next_id >= S->pool[1].until)
        gt__stack_trim(S);
}
size_t gt__page_size(void);
void gt__overflow(gt__thread *t);
void gt__install_overflow_handler(gt__sched *S);
void gt__remove_overflow_handler(gt__sched *S);
/* Runs the current thread's body; returns the context to resume after it
 * (the switch code jumps there). */
gt__ctx *gt__thread_main(void);

#define GT__CANARY 0x5ca1ab1edeadc0deULL

/* Called at each switch away from a thread: a broken canary means the
 * thread wrote below its stack, which a no-guard stack allows silently.
 * Guarded stacks have no canary, so that their bottom page stays
 * untouched and out of the resident set. */
static inline void gt__stack_check(gt__thread *t)
{
    if (__builtin_expect(t->flags != 0, 0) &&
        *(const uint64_t *)(const void *)t->stack_lo != GT__CANARY)
        gt__overflow(t);
}

#endif
