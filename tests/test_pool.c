/* The stack pool keeps the working set warm and trims after it shrinks.
 *
 * Linked with -Wl,--wrap=mmap,--wrap=munmap,--wrap=madvise: the static
 * library's calls land in the __wrap_ functions below, which count them
 * and pass them through.  Residency is read with mincore() on the top page
 * of each stack (where a thread's first frame lives), which a thread
 * records from inside; the test asserts on the main stack afterwards.
 *
 * The pool's periods are counted in spawns, not in time, so every
 * count here is deterministic.  The figures the assertions use follow from
 * the policy in runtime/stack.c: a period lasts 4 W spawns (at least 1024)
 * for a working set of W stacks; W is the largest of two periods' peaks and
 * the previous W less an eighth; max(256, W + W/8) stacks stay warm; at
 * least 4096 stay pooled; the loop gives back 256 stacks a round. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <pthread.h>
#include <sys/mman.h>
#include <sys/types.h>

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);

/* Written by the one OS thread that runs a scenario at a time. */
static struct {
    long mmaps, munmaps, dontneed;
} W;

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    W.mmaps++;
    return __real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
    W.munmaps++;
    return __real_munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
    if (advice == MADV_DONTNEED) W.dontneed++;
    return __real_madvise(addr, len, advice);
}

#define BIG 2000  /* the working set */
#define SMALL 50  /* the working set after it shrinks */
#define HUGE 6000 /* a working set above the 4096 always pooled */
#define WARM_MIN 256

static uintptr_t pages[HUGE]; /* top page of each stack of the last round */
static long ran, misplaced;

static void worker(void *arg)
{
    /* About what a short handler uses: the control block's page and a
     * little of the one below. */
    volatile char buf[1024];
    size_t i = (size_t)(uintptr_t)arg;
    buf[0] = (char)i;
    buf[sizeof buf - 1] = buf[0];
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    pages[i] = (uintptr_t)&buf[sizeof buf - 1] & ~(page - 1);
    if (gt_yield() != 0) misplaced++; /* all n hold their stacks at once */
    ran++;
}

/* One round: n threads spawned from the loop, which all run and end. */
static int round_of(size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (gt_spawn(worker, (void *)(uintptr_t)i) <= 0) return -1;
    return gt_run();
}

/* How many of the first n recorded pages are not resident. */
static long not_resident(size_t n)
{
    long missing = 0;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < n; i++) {
        unsigned char v = 0;
        if (mincore((void *)pages[i], page, &v) < 0 || !(v & 1)) missing++;
    }
    return missing;
}

/* --- working set of BIG, then SMALL ------------------------------------ */

typedef struct shrink_result {
    int failed;        /* a round did not run to the end */
    long steady_mmaps; /* over the 20 steady rounds of BIG */
    long steady_munmaps;
    long steady_dontneed;
    long steady_missing; /* BIG top pages not resident, summed per round */
    long early_dontneed; /* the first 160 rounds of SMALL */
    long early_missing;  /* BIG pages not resident after them */
    long trim_round;     /* first SMALL round that trimmed, or -1 */
    long done_round;     /* the round after which all was trimmed */
    long trimmed;        /* DONTNEED over 2000 rounds of SMALL */
    long resident_after; /* BIG pages still resident after them */
    long after_dontneed; /* 100 more rounds of SMALL */
    long after_mmaps;
    long after_missing; /* SMALL pages not resident after those */
} shrink_result;

static void *shrink_scenario(void *arg)
{
    shrink_result *r = arg;
    int flags = r->failed; /* in: the guard mode */
    memset(r, 0, sizeof *r);
    if (flags && gt_set_default_stack(0, GT_NOGUARD) != 0) r->failed = 1;
    for (int i = 0; i < 5; i++) r->failed |= round_of(BIG) != 0;

    long m0 = W.mmaps, u0 = W.munmaps, d0 = W.dontneed;
    for (int i = 0; i < 20; i++) {
        r->failed |= round_of(BIG) != 0;
        r->steady_missing += not_resident(BIG);
    }
    r->steady_mmaps = W.mmaps - m0;
    r->steady_munmaps = W.munmaps - u0;
    r->steady_dontneed = W.dontneed - d0;

    /* The BIG pages of the last round: the pool holds those stacks. */
    static uintptr_t big[BIG];
    memcpy(big, pages, sizeof big);

    d0 = W.dontneed;
    r->trim_round = -1;
    for (long i = 0; i < 2000; i++) {
        r->failed |= round_of(SMALL) != 0;
        if (r->trim_round < 0 && W.dontneed != d0) r->trim_round = i;
        if (W.dontneed - d0 == BIG - WARM_MIN && !r->done_round)
            r->done_round = i;
        if (i == 159) {
            r->early_dontneed = W.dontneed - d0;
            memcpy(pages, big, sizeof big);
            r->early_missing = not_resident(BIG);
        }
    }
    r->trimmed = W.dontneed - d0;
    memcpy(pages, big, sizeof big);
    r->resident_after = BIG - not_resident(BIG);

    m0 = W.mmaps;
    d0 = W.dontneed;
    for (int i = 0; i < 100; i++) r->failed |= round_of(SMALL) != 0;
    r->after_dontneed = W.dontneed - d0;
    r->after_mmaps = W.mmaps - m0;
    r->after_missing = not_resident(SMALL);
    return NULL;
}

static void check_shrink(int flags)
{
    shrink_result r = {.failed = flags};
    ran = misplaced = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, shrink_scenario, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.failed, 0);
    assert_int_equal(misplaced, 0);
    assert_int_equal(ran, 25 * BIG + 2100 * SMALL);

    /* Steady rounds of BIG: every stack comes warm from the pool. */
    assert_int_equal(r.steady_mmaps, 0);
    assert_int_equal(r.steady_munmaps, 0);
    assert_int_equal(r.steady_dontneed, 0);
    assert_int_equal(r.steady_missing, 0);

    /* The working set shrank, but the pool keeps it for a full period
     * (4 × 2000 spawns = 160 rounds of 50) before it gives anything
     * back. */
    assert_int_equal(r.early_dontneed, 0);
    assert_int_equal(r.early_missing, 0);
    assert_true(r.trim_round >= 160);
    print_message("trimmed from round %ld to round %ld of %d\n", r.trim_round,
                  r.done_round, SMALL);

    /* Then it trims to the floor of 256 warm stacks (max(256, 50 + 6)),
     * oldest first, in batches of 256 a round. */
    assert_int_equal(r.trimmed, BIG - WARM_MIN);
    assert_int_equal(r.resident_after, WARM_MIN);

    /* And stays there: the smaller set runs warm. */
    assert_int_equal(r.after_dontneed, 0);
    assert_int_equal(r.after_mmaps, 0);
    assert_int_equal(r.after_missing, 0);
}

static void test_shrink_guarded(void **state)
{
    (void)state;
    check_shrink(0);
}

static void test_shrink_noguard(void **state)
{
    (void)state;
    check_shrink(1);
}

/* --- a working set above GT__POOL_MAX ---------------------------------- */

typedef struct huge_result {
    int failed;
    long first_mmaps;  /* the first round maps every stack */
    long steady_mmaps; /* 5 more rounds of HUGE */
    long steady_munmaps;
    long steady_dontneed;
    long unmapped;   /* 3000 rounds of SMALL */
    long done_round; /* the round after which all those were unmapped */
    long small_mmaps;
} huge_result;

static void *huge_scenario(void *arg)
{
    huge_result *r = arg;
    memset(r, 0, sizeof *r);
    long m0 = W.mmaps;
    r->failed |= round_of(HUGE) != 0;
    r->first_mmaps = W.mmaps - m0;
    for (int i = 0; i < 2; i++) r->failed |= round_of(HUGE) != 0;
    m0 = W.mmaps;
    long u0 = W.munmaps, d0 = W.dontneed;
    for (int i = 0; i < 5; i++) r->failed |= round_of(HUGE) != 0;
    r->steady_mmaps = W.mmaps - m0;
    r->steady_munmaps = W.munmaps - u0;
    r->steady_dontneed = W.dontneed - d0;

    m0 = W.mmaps;
    u0 = W.munmaps;
    for (long i = 0; i < 3000; i++) {
        r->failed |= round_of(SMALL) != 0;
        if (W.munmaps - u0 == HUGE - 4096 && !r->done_round) r->done_round = i;
    }
    r->unmapped = W.munmaps - u0;
    r->small_mmaps = W.mmaps - m0;
    return NULL;
}

static void test_huge(void **state)
{
    (void)state;
    huge_result r;
    ran = misplaced = 0;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, huge_scenario, &r), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.failed, 0);
    assert_int_equal(misplaced, 0);
    assert_int_equal(ran, 8 * HUGE + 3000 * SMALL);
    /* Each stack is one mapping (plus the OS thread's signal stack). */
    assert_true(r.first_mmaps >= HUGE && r.first_mmaps <= HUGE + 1);
    /* All 6000 stay pooled from round to round, where a fixed cap of 4096
     * would unmap and map 1904 of them every round. */
    assert_int_equal(r.steady_mmaps, 0);
    assert_int_equal(r.steady_munmaps, 0);
    assert_int_equal(r.steady_dontneed, 0);
    /* Once the working set has stayed small, the pool shrinks back to
     * the 4096 it always keeps: the rest are unmapped. */
    assert_int_equal(r.unmapped, HUGE - 4096);
    print_message("unmapped by round %ld of %d\n", r.done_round, SMALL);
    assert_int_equal(r.small_mmaps, 0);
}

int main(void)
{
    tg_watchdog(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shrink_guarded),
        cmocka_unit_test(test_shrink_noguard),
        cmocka_unit_test(test_huge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
