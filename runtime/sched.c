/* The scheduler: one per OS thread.  Green threads switch directly to the
 * next ready one; the loop (on the OS thread's own stack) runs only when
 * nothing is ready, or after GT__BUDGET direct switches so that timers and
 * I/O are never starved.  Parking and waking never allocate. */
#include "park.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* Hidden, but named so that the gdb helper can find it. */
__thread gt__sched gt__S;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

/* Frees what an OS thread's scheduler holds when that thread exits.
 * Green threads still parked then are lost; their stacks are not freed. */
static void on_thread_exit(void *p)
{
    gt__sched *S = p;
    gt__stack_cleanup(S);
    gt__remove_overflow_handler(S);
    free(S->ids);
    S->ids = NULL;
    S->ready = 0;
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
}

void gt__init(gt__sched *S)
{
    static uint64_t serials; /* OS threads given a scheduler so far */
    S->serial = __atomic_add_fetch(&serials, 1, __ATOMIC_RELAXED);
    gt__list_init(&S->runq);
    gt__list_init(&S->later);
    gt__list_init(&S->zombies);
    S->next_id = 1;
    gt__stack_default(S, GT_STACK_DEFAULT, 0);
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, S);
    gt__install_overflow_handler(S);
#ifdef GT__TSAN
    S->loop.tsan_fiber = __tsan_get_current_fiber();
#endif
    S->ready = 1;
}

int64_t gt_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Stacks that cannot be pooled are unmapped here, by the loop, never by
 * a green thread that might be running on one. */
void gt__release_zombies(gt__sched *S)
{
    while (!gt__list_empty(&S->zombies)) {
        gt__list *n = S->zombies.next;
        gt__list_remove(n);
        gt__stack_unmap(GT__CONTAINER(n, gt__thread, runq));
    }
}

#ifdef GT__ASAN
void gt__asan_arrived(gt__sched *S, void *fake)
{
    const void *bottom;
    size_t size;
    __sanitizer_finish_switch_fiber(fake, &bottom, &size);
    if (S->from_loop) {
        S->loop_bottom = bottom;
        S->loop_size = size;
    }
}
#endif

int gt_yield(void)
{
    gt__sched *S = &gt__S;
    gt__thread *me = S->current;
    if (!me) return -EPERM;
    if (me->cancelled) return -ECANCELED;
    me->state = GT__READY;
    gt__list_push(&S->runq, &me->runq);
    gt__switch_next(S, me);
    /* A cancel that came while others ran ends this call too. */
    return me->cancelled ? -ECANCELED : 0;
}

int gt_sleep(int64_t deadline)
{
    int rc = gt__park(deadline < 0 ? -1 : deadline, "sleep", NULL);
    if (rc == -ETIMEDOUT) return 0;
    return rc;
}

void gt__ctimer_start(gt__ctimer *t, int64_t deadline)
{
    gt__sched *S = gt__get();
    if (t->armed) S->ctimers = gt__heap_remove(S->ctimers, &t->node);
    t->node.key = deadline;
    t->node.seq = S->timer_seq++;
    S->ctimers = gt__heap_insert(S->ctimers, &t->node);
    t->armed = 1;
}

void gt__ctimer_stop(gt__ctimer *t)
{
    gt__sched *S = gt__get();
    if (!t->armed) return;
    S->ctimers = gt__heap_remove(S->ctimers, &t->node);
    t->armed = 0;
}

void gt__run_first(gt__thread *t)
{
    gt__sched *S = gt__get();
    gt__thread *me = S->current;
    gt__unqueue(S, t);
    if (me) {
        me->state = GT__READY;
        gt__list_push(S->runq.next, &me->runq);
    } else {
        S->budget = 0; /* back here as soon as t parks or ends */
    }
    gt__switch(S, me, t);
    if (!me && !gt__list_empty(&S->zombies)) gt__release_zombies(S);
}

int gt_run_now(int64_t id)
{
    gt__sched *S = gt__get();
    gt__thread *t = gt__find(S, id);
    if (!t) return -ESRCH;
    if (t->state != GT__READY || t == S->current) return -EBUSY;
    gt__run_first(t);
    return 0;
}

static void fire_timers(gt__sched *S)
{
    if (!S->timers && !S->ctimers) return;
    int64_t now = gt_now();
    while (S->timers && S->timers->key <= now)
        gt__wake(GT__CONTAINER(S->timers, gt__thread, timer), -ETIMEDOUT);
    while (S->ctimers && S->ctimers->key <= now) {
        gt__ctimer *t = GT__CONTAINER(S->ctimers, gt__ctimer, node);
        S->ctimers = gt__heap_remove(S->ctimers, &t->node);
        t->armed = 0;
        t->fn(t);
    }
}

/* The earliest deadline of either heap, or -1. */
static int64_t next_deadline(const gt__sched *S)
{
    int64_t a = S->timers ? S->timers->key : -1;
    int64_t b = S->ctimers ? S->ctimers->key : -1;
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static void sleep_until(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
    /* An interrupted sleep just ends the round early. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Milliseconds from now until `until` for a poller: -1 for no limit. */
static int timeout_ms(int64_t until)
{
    if (until < 0) return -1;
    int64_t ms = until - gt_now();
    return ms < 0 ? 0 : ms > INT32_MAX ? INT32_MAX : (int)ms;
}

int gt_dispatch(int64_t deadline)
{
    gt__sched *S = gt__get();
    if (S->current) return -EPERM;
    gt__io *io = S->io && S->io->waiters ? S->io : NULL;
    if (!S->ids_n && !io && !S->ctimers) return 0;
    if (gt__list_empty(&S->runq) && gt__list_empty(&S->later)) {
        /* Nothing ready, no timer, no I/O: nothing can ever wake anyone. */
        if (!S->timers && !S->ctimers && !io) return -EDEADLK;
        int64_t until = next_deadline(S);
        if (deadline >= 0 && (until < 0 || deadline < until)) until = deadline;
        if (io)
            io->wait(io, timeout_ms(until));
        else
            sleep_until(until);
    } else if (io) {
        io->wait(io, 0); /* ready threads must not starve I/O */
    }
    fire_timers(S);
    gt__list_splice(&S->runq, &S->later);
    S->budget = GT__BUDGET;
    while (S->budget && !gt__list_empty(&S->runq)) {
        S->budget--;
        gt__switch(S, NULL, gt__pop_ready(S));
        if (!gt__list_empty(&S->zombies)) gt__release_zombies(S);
    }
    /* The stack pools measure their working set and give back what is
     * beyond it between rounds, never in a spawn or an exit (stack.c). */
    gt__stack_loop(S);
    return S->ids_n || S->ctimers || (S->io && S->io->waiters);
}

int gt_start(int64_t deadline)
{
    gt__sched *S = gt__get();
    if (S->current) return -EPERM;
    S->stopped = 0;
    for (;;) {
        int rc = gt_dispatch(deadline);
        if (rc <= 0) return rc;
        if (S->stopped) {
            S->stopped = 0;
            return 1;
        }
        if (deadline >= 0 && gt_now() >= deadline) return -ETIMEDOUT;
    }
}

int gt_stop(void)
{
    gt__get()->stopped = 1;
    return 0;
}

int gt_run(void)
{
    int rc;
    while ((rc = gt_dispatch(-1)) > 0) {
    }
    return rc;
}
