/* Recursion depth: a green thread can use nearly all of the stack it asked
 * for, in both guard modes, and every frame keeps its contents.
 *
 * Each thread recurses with frames of known size until its frame is within
 * ROOM bytes of the bottom of its stack, yielding on the way so that all of
 * them interleave and every switch checks the no-guard canaries; each frame
 * checks its buffer after the deeper calls return and adds it to a sum.
 * The bottom is found from the thread's first frame: the control block and
 * that frame share the top page of the mapping, and the usable stack is the
 * requested size, rounded up to pages, below the top of the mapping.
 *
 * No overflow happens here, so this runs under Valgrind and ASan too; the
 * overflows are in test_depth_overflow.c. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#define WORDS 128           /* a 512-byte buffer in every frame */
#define ROOM 1536           /* recursion stops this close to the bottom */
#define SLACK (ROOM + 2048) /* and the control block and entry frames */

typedef struct diver {
    size_t size; /* asked for */
    int flags;
    char *lo;       /* bottom of the usable stack */
    char *first;    /* the thread's first frame */
    char *lowest;   /* its deepest frame */
    unsigned depth; /* frames of dive() */
    uint64_t sum;   /* of every word of every buffer */
    int bad;        /* words changed under a frame */
    int done;
} diver;

__attribute__((noinline)) static uint64_t dive(diver *d, unsigned level)
{
    volatile uint32_t buf[WORDS];
    /* The frame address, not buf's: ASan may keep buf on a heap stack. */
    char *fp = __builtin_frame_address(0);
    for (unsigned i = 0; i < WORDS; i++) buf[i] = level * WORDS + i;
    if (fp < d->lowest) d->lowest = fp;
    uint64_t sum = 0;
    if (fp - d->lo > ROOM) {
        if (level % 8 == 0) gt_yield();
        sum = dive(d, level + 1);
    } else {
        d->depth = level + 1;
    }
    for (unsigned i = 0; i < WORDS; i++) {
        if (buf[i] != level * WORDS + i) d->bad++;
        sum += buf[i];
    }
    return sum;
}

static void diver_main(void *arg)
{
    diver *d = arg;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    d->first = d->lowest = __builtin_frame_address(0);
    char *top = (char *)(((uintptr_t)d->first + page - 1) & ~(page - 1));
    d->lo = top - ((d->size + page - 1) & ~(page - 1));
    d->sum = dive(d, 0);
    d->done = 1;
}

static void test_depth(void **state)
{
    (void)state;
    static const size_t sizes[] = {GT_STACK_MIN, 64 * 1024, 100 * 1000,
                                   256 * 1024, 1024 * 1024};
    enum { N = 2 * TG_ARRAY_LEN(sizes) };
    diver d[N];
    memset(d, 0, sizeof d);
    for (int i = 0; i < N; i++) {
        d[i].size = sizes[i / 2];
        d[i].flags = i % 2 ? GT_NOGUARD : 0;
        assert_true(tg_spawn_named(diver_main, &d[i], "diver", d[i].size,
                                   d[i].flags) > 0);
    }
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < N; i++) {
        size_t used = (size_t)(d[i].first - d[i].lowest);
        uint64_t n = (uint64_t)d[i].depth * WORDS;
        print_message("%7zu bytes, %-8s: %5u frames, %7zu bytes deep\n",
                      d[i].size, d[i].flags ? "no guard" : "guard", d[i].depth,
                      used);
        assert_true(d[i].done);
        assert_int_equal(d[i].bad, 0);
        assert_true(d[i].sum == n * (n - 1) / 2);
        /* Only the control block and the entry frames above the first
         * frame, and ROOM below the last, were not used. */
        assert_true(used + SLACK >= d[i].size);
    }
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
