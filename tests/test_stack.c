/* Stacks: sizes, defaults, no-guard mode, many threads, reuse. */
#define _GNU_SOURCE 1
#include "gt_test.h"

static struct {
    int started, ended, bad;
    unsigned sink;
    int rc[8];
    gt_chan *ch;
} S;

static void reset(void)
{
    memset(&S, 0, sizeof S);
}

static void burner(void *arg)
{
    size_t bytes = (size_t)(uintptr_t)arg;
    S.started++;
    S.sink += tg_burn_stack(bytes);
    if (gt_yield() != 0)
        S.bad++;
    S.sink += tg_burn_stack(bytes);
    S.ended++;
}

/* --- default stack size --------------------------------------------- */

static void test_set_default_stack(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_set_default_stack(GT_STACK_MIN - 1, 0), -EINVAL);
    assert_int_equal(gt_set_default_stack(GT_STACK_MAX + 1, 0), -EINVAL);
    assert_int_equal(gt_set_default_stack(SIZE_MAX, 0), -EINVAL);
    assert_int_equal(gt_set_default_stack(GT_STACK_DEFAULT, 0x100), -EINVAL);

    /* A bigger default lets every default thread use more stack than
     * GT_STACK_DEFAULT would hold. */
    assert_int_equal(gt_set_default_stack(256 * 1024, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_true(gt_spawn(burner, (void *)(uintptr_t)(150 * 1024)) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, 4);

    /* No-guard by default. */
    assert_int_equal(gt_set_default_stack(128 * 1024, GT_NOGUARD), 0);
    for (int i = 0; i < 4; i++)
        assert_true(gt_spawn(burner, (void *)(uintptr_t)(80 * 1024)) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, 8);

    /* Back to the documented default. */
    assert_int_equal(gt_set_default_stack(GT_STACK_DEFAULT, 0), 0);
    for (int i = 0; i < 4; i++)
        assert_true(gt_spawn(burner, (void *)(uintptr_t)(32 * 1024)) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, 12);
    assert_int_equal(S.bad, 0);
}

static void test_attr_sizes(void **state)
{
    (void)state;
    reset();
    static const struct {
        size_t size, use;
        int flags;
    } cases[] = {
        {0, 32 * 1024, 0},
        {0, 32 * 1024, GT_NOGUARD},
        {GT_STACK_MIN, 6 * 1024, 0},
        {GT_STACK_MIN, 6 * 1024, GT_NOGUARD},
        {GT_STACK_MIN + 1, 6 * 1024, 0},
        {100 * 1000, 60 * 1024, 0},
        {512 * 1024, 400 * 1024, 0},
        {512 * 1024, 400 * 1024, GT_NOGUARD},
        {4 * 1024 * 1024, 3 * 1024 * 1024, 0},
    };
    for (int i = 0; i < TG_ARRAY_LEN(cases); i++) {
        int64_t id = tg_spawn_named(burner, (void *)(uintptr_t)cases[i].use,
                                    "sizes", cases[i].size, cases[i].flags);
        assert_true(id > 0);
    }
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, TG_ARRAY_LEN(cases));
    assert_int_equal(S.bad, 0);
}

/* --- stack contents are private and survive switches ----------------- */

static void pattern_keeper(void *arg)
{
    unsigned char seed = (unsigned char)(uintptr_t)arg;
    volatile unsigned char buf[8192];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(seed + i * 7);
    for (int round = 0; round < 50; round++) {
        gt_yield();
        for (size_t i = 0; i < sizeof buf; i += 13)
            if (buf[i] != (unsigned char)(seed + i * 7))
                S.bad++;
    }
    S.ended++;
}

static void test_stack_private(void **state)
{
    (void)state;
    reset();
    for (int i = 0; i < 16; i++) {
        int64_t id = tg_spawn_named(pattern_keeper, (void *)(uintptr_t)(i * 31),
                                    NULL, 0, (i % 2) ? GT_NOGUARD : 0);
        assert_true(id > 0);
    }
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, 16);
    assert_int_equal(S.bad, 0);
}

/* --- many threads parked at once -------------------------------------- */

static void parked(void *arg)
{
    (void)arg;
    int v;
    S.started++;
    int rc = gt_chan_recv(S.ch, &v, -1);
    if (rc == -EPIPE)
        S.ended++;
    else
        S.bad++;
}

static void closer(void *arg)
{
    (void)arg;
    S.rc[0] = gt_chan_close(S.ch);
}

static void test_many_threads(void **state)
{
    (void)state;
    reset();
    int vg = tg_under_valgrind();
    int n_guard = vg ? 200 : 2000;
    int n_noguard = vg ? 2000 : 20000;
    int n = n_guard + n_noguard;
    assert_int_equal(gt_chan_make(&S.ch, sizeof(int), 0), 0);
    gt_attr a;
    memset(&a, 0, sizeof a);
    int fails = 0;
    int64_t first_err = 0;
    for (int i = 0; i < n; i++) {
        a.flags = i < n_guard ? 0 : GT_NOGUARD;
        int64_t id = gt_spawn_attr(parked, NULL, &a);
        if (id <= 0) {
            if (!fails)
                first_err = id;
            fails++;
        }
    }
    if (fails)
        print_error("spawn failed %d times, first: %s\n", fails,
                    gt_strerror((int)first_err));
    assert_int_equal(fails, 0);
    assert_int_equal(tg_live_count(), n);
    assert_int_equal(tg_until_deadlock(100000), -EDEADLK);
    assert_int_equal(S.started, n);
    assert_int_equal(tg_live_count(), n);
    assert_true(gt_spawn(closer, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rc[0], 0);
    assert_int_equal(S.ended, n);
    assert_int_equal(S.bad, 0);
    assert_int_equal(tg_live_count(), 0);
    assert_int_equal(gt_chan_free(S.ch), 0);

    /* And once more: the pooled stacks are reused. */
    reset();
    assert_int_equal(gt_chan_make(&S.ch, sizeof(int), 0), 0);
    for (int i = 0; i < n; i++) {
        a.flags = i % 2 ? GT_NOGUARD : 0;
        if (i >= 2 * n_guard)
            a.flags = GT_NOGUARD;
        assert_true(gt_spawn_attr(parked, NULL, &a) > 0);
    }
    assert_true(gt_spawn(closer, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.ended, n);
    assert_int_equal(S.bad, 0);
    assert_int_equal(gt_chan_free(S.ch), 0);
}

/* --- sequential spawn/join: stack reuse, ids never reused ------------- */

#define REUSE_MAX 10000

static int64_t reuse_ids[REUSE_MAX];
static int reuse_n;

static void reuse_child(void *arg)
{
    int i = (int)(intptr_t)arg;
    volatile unsigned char buf[2048];
    for (size_t k = 0; k < sizeof buf; k++)
        buf[k] = (unsigned char)(i + k);
    gt_yield();
    for (size_t k = 0; k < sizeof buf; k += 7)
        if (buf[k] != (unsigned char)(i + k))
            S.bad++;
    if (gt_self() != reuse_ids[i])
        S.bad++;
    S.ended++;
}

static void reuse_parent(void *arg)
{
    int n = (int)(intptr_t)arg;
    gt_attr a;
    memset(&a, 0, sizeof a);
    for (int i = 0; i < n; i++) {
        /* Mostly default stacks (pooled); some no-guard and odd sizes. */
        a.flags = (i % 7 == 3) ? GT_NOGUARD : 0;
        a.stack_size = (i % 11 == 5) ? 96 * 1024 : 0;
        int64_t id = gt_spawn_attr(reuse_child, (void *)(intptr_t)i, &a);
        if (id <= 0) {
            S.bad++;
            break;
        }
        reuse_ids[i] = id;
        reuse_n = i + 1;
        if (gt_join(id, -1) != 0)
            S.bad++;
    }
    /* Long-ended ids still join at once and cancel fine. */
    S.rc[0] = gt_join(reuse_ids[0], -1);
    S.rc[1] = gt_join(reuse_ids[n / 2], 0);
    S.rc[2] = gt_cancel(reuse_ids[1]);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void test_stack_reuse(void **state)
{
    (void)state;
    reset();
    reuse_n = 0;
    int n = tg_under_valgrind() ? 2000 : REUSE_MAX;
    tg_spawn(reuse_parent, (void *)(intptr_t)n);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(reuse_n, n);
    assert_int_equal(S.ended, n);
    assert_int_equal(S.bad, 0);
    assert_int_equal(S.rc[0], 0);
    assert_int_equal(S.rc[1], 0);
    assert_int_equal(S.rc[2], 0);
    qsort(reuse_ids, (size_t)n, sizeof reuse_ids[0], cmp64);
    for (int i = 1; i < n; i++)
        assert_true(reuse_ids[i] != reuse_ids[i - 1]);
    assert_true(reuse_ids[0] > 0);
}

int main(void)
{
    tg_watchdog(55);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_set_default_stack),
        TG_TEST(test_attr_sizes),
        TG_TEST(test_stack_private),
        TG_TEST(test_many_threads),
        TG_TEST(test_stack_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
