/* Stacks: one mmap each, a guard page below unless GT_NOGUARD (see
 * guard_pages), and the thread's control block at the top.  Freed stacks of
 * the default size are pooled, one pool per guard mode.
 *
 * The pool's warm set follows the working set.  A server that spawns a
 * green thread per event takes and returns thousands of stacks a round; a
 * pool that kept a fixed number warm would give the rest back to the kernel
 * (MADV_DONTNEED) at every exit and fault them in again at every spawn.  So
 * each pool measures its working set instead: the most stacks of its size
 * in use at once during a period, which is the stacks it mapped less the
 * fewest it held (the period's low-water mark).  A period is counted in
 * spawns, not in time, so that an idle loop does no work for it and the
 * policy is the same on a loaded machine as on an idle one; it lasts four
 * times the working set (at least GT__PERIOD_MIN spawns), long enough to
 * span a few whole rounds of the workload that set it.
 *
 * When a period ends, the pool's working set W becomes the largest of this
 * period's peak, the previous period's peak, and the old W less an eighth;
 * the pool then keeps want = W + W/8 stacks warm, in use or pooled, and at
 * least GT__WARM_MIN.  Three things there make the hysteresis.  Taking two
 * periods' peaks means nothing goes back before the working set has stayed
 * smaller for a whole period.  The eighth lost per period after that means
 * memory goes back gradually (half of the excess after five periods, some
 * twenty times the working set in spawns), so a set that shrinks between
 * bursts (a loop that fell behind and comes back to a backlog, a wave of
 * connections) stays warm while the bursts recur within a few periods.
 * The eighth of slack keeps a set that varies a little from round to round
 * from being trimmed and faulted back in turn.  An idle loop spawns
 * nothing, so it keeps its warm set until threads run again.
 *
 * Spawn and exit count nothing: exit pushes on the LIFO array, and spawn
 * pops from it down to the low-water mark `low`.  Below the mark, spawn
 * takes the slow path, gt__stack_get, which lowers the mark by a sixteenth
 * of the warm stacks left; so the mark is the period's true low to within
 * a sixteenth of the warm set (the working set is overestimated, never
 * underestimated), and the slow path runs about sixteen times per halving
 * of the warm set a period.  The loop ends periods (gt__stack_loop compares
 * the thread ids issued against the period's end) and then gives back at
 * most GT__TRIM_BATCH stacks per round: pooled stacks beyond
 * max(GT__POOL_MAX, want) are unmapped, oldest first, and the oldest warm
 * ones beyond want are made cold with MADV_DONTNEED.  Warm stacks sit above
 * cold ones in the array, so "cold" is an index, and a spawn pops the most
 * recently used stack, whose pages are the most likely to be in the cache.
 * Nothing here allocates but exit when the array grows to a new working
 * set. */
#include "prefix.h"
#include "scheduler.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#ifdef GT__VALGRIND
#include <valgrind/valgrind.h>
#endif
#ifdef GT__ASAN
#include <sanitizer/asan_interface.h>
#endif

#define GT__POOL_MAX 4096   /* stacks pooled at least, warm or cold */
#define GT__WARM_MIN 256    /* stacks kept warm whatever the working set */
#define GT__PERIOD_MIN 1024 /* spawns in the shortest period */
#define GT__TRIM_BATCH 256  /* stacks given back per call of the trim */

/* Threads may race to fill in these two; each writes the same value,
 * and relaxed atomics make that race well defined at no cost. */
static size_t page_size(void)
{
    static _Atomic size_t page;
    size_t v = atomic_load_explicit(&page, memory_order_relaxed);
    if (__builtin_expect(!v, 0)) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&page, v, memory_order_relaxed);
    }
    return v;
}

static long read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        char buf[32], *end;
        if (fgets(buf, sizeof buf, f)) {
            v = strtol(buf, &end, 10);
            if (end == buf) v = -1;
        }
        fclose(f);
    }
    return v;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    if (!f) return -1;
    while ((c = getc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

/* mmap and mprotect say ENOMEM both when memory runs out and when the
 * process has as many mappings as vm.max_map_count allows.  Tell the two
 * apart, because the second has a cure: GT_NOGUARD or a higher limit. */
static int map_error(int err)
{
    if (err != ENOMEM) return -err;
    long max = read_long("/proc/sys/vm/max_map_count");
    long n = count_maps();
    if (max > 0 && n >= 0 && n + 8 >= max) return GT_EMAPLIMIT;
    return -ENOMEM;
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

/* Makes [p, p + len) fault on access.  Linux 6.13 and later can mark the
 * pages themselves (MADV_GUARD_INSTALL), which leaves the mapping whole:
 * adjacent stacks then merge into few kernel mappings and
 * vm.max_map_count stops mattering.  Older kernels get a PROT_NONE page,
 * which costs a second mapping per stack. */
static int guard_pages(char *p, size_t len)
{
    static _Atomic int no_madvise;
    if (!atomic_load_explicit(&no_madvise, memory_order_relaxed)) {
        if (madvise(p, len, MADV_GUARD_INSTALL) == 0) return 0;
        atomic_store_explicit(&no_madvise, 1, memory_order_relaxed);
    }
    return mprotect(p, len, PROT_NONE);
}

static gt__thread *tcb_of(char *map, size_t map_size)
{
    return (gt__thread *)(void *)(map + map_size - GT__TCB_SIZE);
}

/* The mapping whose control block a pool entry holds. */
static char *map_of(const gt__pooled *id, size_t map_size)
{
    return (char *)id->t + GT__TCB_SIZE - map_size;
}

static size_t map_size_of(size_t size, int flags)
{
    return flags ? size : size + page_size();
}

static void unmap(const gt__pooled *id, size_t map_size)
{
    char *map = map_of(id, map_size);
#ifdef GT__ASAN
    /* Whatever maps these pages next must not inherit the poison of our
     * frames in ASan's shadow. */
    __asan_unpoison_memory_region(map, map_size);
#endif
#ifdef GT__VALGRIND
    VALGRIND_STACK_DEREGISTER(id->vg_id);
#endif
#ifdef GT__TSAN
    __tsan_destroy_fiber(id->tsan_fiber);
#endif
    (void)id;
    munmap(map, map_size);
}

/* Fills in the fields that describe a stack; everything else in a fresh
 * or cold control block is zero. */
static gt__thread *setup(const gt__pooled *id, size_t map_size, size_t guard,
                         int flags)
{
    gt__thread *t = id->t;
    t->map = map_of(id, map_size);
    t->map_size = map_size;
    t->stack_lo = t->map + guard;
    t->vg_id = id->vg_id;
#ifdef GT__TSAN
    t->ctx.tsan_fiber = id->tsan_fiber;
#endif
    t->flags = flags;
    /* The thread's own clause names it for as long as the stack lives;
     * its index stays 0 (runtime/chan.c). */
    t->clause.t = t;
    /* A no-guard stack's canary is already there: the page is fresh or
     * was given back, and reads as zero (GT__CANARY). */
    return t;
}

int gt__stack_get(gt__sched *S, size_t size, int flags, gt__thread **out)
{
    gt__pool *pool = &S->pool[flags];
    size_t map_size = map_size_of(size, flags);
    size_t guard = map_size - size;

    if (map_size == pool->map_size && pool->n) {
        /* A warm stack still has its control block and canary intact:
         * the canary was checked when its last thread switched away. */
        gt__pooled *p = &pool->v[--pool->n];
        int cold = pool->n < pool->cold;
        if (cold) pool->cold = pool->n;
        /* A new low-water mark: the fast path may take another sixteenth
         * of the warm stacks before it comes here again. */
        pool->low = pool->n - (pool->n - pool->cold) / 16;
        *out = cold ? setup(p, map_size, guard, flags) : p->t;
        return 0;
    }
    char *map =
        mmap(NULL, map_size, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) return map_error(errno);
    if (guard && guard_pages(map, guard) < 0) {
        int rc = map_error(errno);
        munmap(map, map_size);
        return rc;
    }
    gt__pooled id = {.t = tcb_of(map, map_size)};
#ifdef GT__VALGRIND
    id.vg_id =
        VALGRIND_STACK_REGISTER(map + guard, map + map_size - GT__TCB_SIZE);
#endif
#ifdef GT__TSAN
    id.tsan_fiber = __tsan_create_fiber(0);
#endif
    if (map_size == pool->map_size) pool->total++;
    *out = setup(&id, map_size, guard, flags);
    return 0;
}

static size_t max2(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* The most stacks in use at once in this period, as far as the low-water
 * mark tells (0 when stacks mapped under an earlier default of the same
 * size, which the count never saw, came back). */
static size_t peak(const gt__pool *pool)
{
    return pool->total > pool->low ? pool->total - pool->low : 0;
}

/* Warm stacks, in use or pooled: all but the cold ones. */
static size_t warm(const gt__pool *pool)
{
    return pool->total > pool->cold ? pool->total - pool->cold : 0;
}

/* Starts a new period: see the comment at the top. */
static void period_end(gt__pool *pool, int64_t now)
{
    size_t p = peak(pool);
    size_t w = max2(max2(p, pool->last), pool->w - pool->w / 8);
    pool->w = w;
    pool->last = p;
    pool->low = pool->n;
    pool->want = max2(GT__WARM_MIN, w + w / 8);
    pool->end = now + (int64_t)max2(GT__PERIOD_MIN, 4 * w);
}

int gt__stack_keep(gt__sched *S, gt__thread *t)
{
    gt__pool *pool = &S->pool[t->flags];
    if (t->map_size != pool->map_size) return 0;
    /* Beyond what the working set needs, the stack goes back at once.
     * The period's peak counts, so that the first round of a new, larger
     * working set is pooled whole. */
    int room = pool->n < max2(max2(GT__POOL_MAX, pool->want), peak(pool));
    if (room && pool->n == pool->cap) {
        size_t cap = pool->cap ? pool->cap * 2 : 64;
        gt__pooled *v = realloc(pool->v, cap * sizeof *v);
        if (v) {
            pool->v = v;
            pool->cap = cap;
        }
        room = v != NULL;
    }
    if (!room) {
        /* The caller unmaps it. */
        if (pool->total) pool->total--;
        return 0;
    }
    pool->v[pool->n++] = gt__pooled_of(t);
    return 1;
}

/* One batch of giving back; says whether more is left. */
static int trim_pool(gt__pool *pool)
{
    size_t budget = GT__TRIM_BATCH;
    size_t limit = max2(GT__POOL_MAX, pool->want);
    if (pool->n > limit) {
        /* The oldest entries go; moving the rest down costs up to
         * sixteen entries per stack unmapped, as the batch grows with the
         * pool. */
        size_t k = pool->n - limit;
        size_t batch = max2(budget, pool->n / 16);
        if (k > batch) k = batch;
        for (size_t i = 0; i < k; i++) unmap(&pool->v[i], pool->map_size);
        pool->n -= k;
        pool->total = pool->total > k ? pool->total - k : 0;
        memmove(pool->v, pool->v + k, pool->n * sizeof *pool->v);
        pool->cold = pool->cold > k ? pool->cold - k : 0;
        pool->low = pool->low > k ? pool->low - k : 0;
        budget = k < budget ? budget - k : 0;
    }
    while (budget && pool->cold < pool->n && warm(pool) > pool->want) {
        madvise(map_of(&pool->v[pool->cold], pool->map_size), pool->map_size,
                MADV_DONTNEED);
        pool->cold++;
        budget--;
    }
    if (pool->low < pool->cold) pool->low = pool->cold;
    return pool->n > limit || (pool->cold < pool->n && warm(pool) > pool->want);
}

void gt__stack_trim(gt__sched *S)
{
    int64_t now = S->next_id;
    for (int i = 0; i < 2; i++) {
        gt__pool *pool = &S->pool[i];
        if (now < pool->until) continue;
        if (now >= pool->end) period_end(pool, now);
        /* While there is more to give back, look again next round. */
        pool->until = trim_pool(pool) ? now : pool->end;
    }
}

void gt__stack_unmap(gt__thread *t)
{
    gt__pooled id = gt__pooled_of(t);
    unmap(&id, t->map_size);
}

/* Unmaps every pooled stack and forgets the working set; the loop starts
 * a new period after its next round. */
static void drain(gt__pool *pool)
{
    for (size_t i = 0; i < pool->n; i++) unmap(&pool->v[i], pool->map_size);
    free(pool->v);
    size_t map_size = pool->map_size;
    memset(pool, 0, sizeof *pool);
    pool->map_size = map_size;
    pool->want = GT__WARM_MIN;
}

void gt__stack_cleanup(gt__sched *S)
{
    drain(&S->pool[0]);
    drain(&S->pool[1]);
}

void gt__stack_default(gt__sched *S, size_t size, int flags)
{
    if (size != S->stack_size) gt__stack_cleanup(S);
    S->stack_size = size;
    S->stack_flags = flags;
    S->pool[0].map_size = map_size_of(size, 0);
    S->pool[1].map_size = map_size_of(size, GT_NOGUARD);
}

size_t gt__page_size(void)
{
    return page_size();
}

/* madvise(MADV_DONTNEED) of the running green thread's stack pages wholly
 * below the current frame, which nothing live is in.  For a call that
 * runs deep once and then parks for long (a TLS handshake touches some
 * pages of stack that an idle connection never needs again): one syscall
 * keeps them out of the resident set.  512 bytes below this frame are
 * left for its own locals and madvise's call.  The canary of a no-guard stack
 * is zero, what a dropped page reads as, so it survives. */
void gt__stack_release_below(void)
{
    gt__thread *t = gt__peek()->current;
    if (!t) return;
    size_t pg = page_size();
    /* Pointer arithmetic only, down from the frame to a page boundary and
     * up from the stack's lowest byte to one. */
    char *hi = (char *)__builtin_frame_address(0) - 512;
    char *lo = t->stack_lo;
    hi -= (uintptr_t)hi % pg;
    lo += (pg - (uintptr_t)lo % pg) % pg;
    if (hi > lo) madvise(lo, (size_t)(hi - lo), MADV_DONTNEED);
}
