/* Spawning, ids, attributes, yield, -EPERM outside green threads,
 * gt_strerror, gt_join, each thread's floating-point control words. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <fenv.h>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

/* --- spawn order ---------------------------------------------------- */

static void rec_arg(void *arg)
{
    tg_event((int64_t)(intptr_t)arg);
}

static void rec_arg_and_spawn(void *arg)
{
    tg_event((int64_t)(intptr_t)arg);
    tg_spawn(rec_arg, (void *)(intptr_t)10);
    tg_spawn(rec_arg, (void *)(intptr_t)11);
}

static void test_spawn_fifo(void **state)
{
    (void)state;
    int64_t ids[5];
    ids[0] = tg_spawn(rec_arg_and_spawn, (void *)(intptr_t)0);
    for (int i = 1; i < 5; i++)
        ids[i] = tg_spawn(rec_arg, (void *)(intptr_t)i);
    for (int i = 0; i < 5; i++) {
        assert_true(ids[i] > 0);
        for (int j = 0; j < i; j++)
            assert_true(ids[i] != ids[j]);
    }
    /* Nothing ran yet. */
    assert_int_equal(tg_log.n, 0);
    assert_int_equal(gt_run(), 0);
    static const int64_t want[] = {0, 1, 2, 3, 4, 10, 11};
    assert_int_equal(tg_log.n, TG_ARRAY_LEN(want));
    for (int i = 0; i < TG_ARRAY_LEN(want); i++)
        assert_int_equal(tg_log.v[i], want[i]);
}

/* --- gt_self ---------------------------------------------------------- */

static int64_t self_seen[4];

static void rec_self(void *arg)
{
    self_seen[(intptr_t)arg] = gt_self();
}

static void test_self(void **state)
{
    (void)state;
    assert_int_equal(gt_self(), 0);
    int64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = tg_spawn(rec_self, (void *)(intptr_t)i);
    assert_int_equal(gt_self(), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(gt_self(), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(self_seen[i], ids[i]);
}

/* --- bad arguments to spawn ----------------------------------------- */

static void nop(void *arg)
{
    (void)arg;
    tg_event(1);
}

static void test_spawn_einval(void **state)
{
    (void)state;
    gt_attr a;
    memset(&a, 0, sizeof a);
    assert_int_equal(gt_spawn(NULL, NULL), -EINVAL);
    assert_int_equal(gt_spawn_attr(NULL, NULL, &a), -EINVAL);

    static const size_t bad[] = {SIZE_MAX, SIZE_MAX / 2, GT_STACK_MAX + 1,
                                 GT_STACK_MAX + 4096, GT_STACK_MIN - 1, 1,
                                 4096};
    for (int g = 0; g < 2; g++) {
        for (int i = 0; i < TG_ARRAY_LEN(bad); i++) {
            memset(&a, 0, sizeof a);
            a.stack_size = bad[i];
            a.flags = g ? GT_NOGUARD : 0;
            assert_int_equal(gt_spawn_attr(nop, NULL, &a), -EINVAL);
        }
    }
    /* No thread was created by any failed call. */
    assert_int_equal(tg_live_count(), 0);
    assert_int_equal(gt_dispatch(0), 0);

    /* 0 means the default; the bounds themselves are accepted; odd sizes
     * are rounded up. */
    static const size_t good[] = {0, GT_STACK_MIN, GT_STACK_MIN + 1,
                                  GT_STACK_DEFAULT + 100};
    int spawned = 0;
    for (int g = 0; g < 2; g++) {
        for (int i = 0; i < TG_ARRAY_LEN(good); i++) {
            memset(&a, 0, sizeof a);
            a.stack_size = good[i];
            a.flags = g ? GT_NOGUARD : 0;
            int64_t id = gt_spawn_attr(nop, NULL, &a);
            assert_true(id > 0);
            spawned++;
        }
    }
    /* NULL attr is the defaults. */
    assert_true(gt_spawn_attr(nop, NULL, NULL) > 0);
    spawned++;
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, spawned);
}

/* --- names ---------------------------------------------------------- */

static void park_until_cancelled(void *arg)
{
    (void)arg;
    int rc = gt_sleep(-1);
    tg_event(rc);
}

static void test_attr_name(void **state)
{
    (void)state;
    char name[64];
    strcpy(name, "worker-7");
    int64_t a = tg_spawn_named(park_until_cancelled, NULL, name, 0, 0);
    assert_true(a > 0);
    /* The name is copied: changing the caller's buffer changes nothing. */
    strcpy(name, "scribble");
    const char *longname = "abcdefghijklmnopqrstuvwxyz0123456789ABCD"; /* 40 */
    int64_t b = tg_spawn_named(park_until_cancelled, NULL, longname, 0,
                               GT_NOGUARD);
    assert_true(b > 0);
    int64_t c = tg_spawn_named(park_until_cancelled, NULL, NULL, 0, 0);
    assert_true(c > 0);

    for (int pass = 0; pass < 2; pass++) {
        int lines = -1;
        char *out = tg_dump_string(&lines);
        assert_non_null(out);
        assert_int_equal(lines, 3);
        assert_int_equal(tg_count_lines(out), 3);
        assert_non_null(strstr(out, "worker-7"));
        assert_null(strstr(out, "scribble"));
        assert_non_null(strstr(out, "abcdefghijklmnopqrstuvwxyz01234")); /* 31 */
        assert_null(strstr(out, "abcdefghijklmnopqrstuvwxyz012345"));   /* 32 */
        free(out);
        /* Second pass: the threads have started and are parked. */
        if (pass == 0)
            assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    }
    assert_int_equal(gt_cancel(a), 0);
    assert_int_equal(gt_cancel(b), 0);
    assert_int_equal(gt_cancel(c), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tg_log.v[i], -ECANCELED);
}

/* --- yield ------------------------------------------------------------ */

static void yielder(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (int i = 0; i < 3; i++) {
        tg_event(me * 10 + i);
        int rc = gt_yield();
        if (rc != 0)
            tg_event(-1000 + rc);
    }
}

static void test_yield_order(void **state)
{
    (void)state;
    for (int t = 1; t <= 3; t++)
        tg_spawn(yielder, (void *)(intptr_t)t);
    assert_int_equal(gt_run(), 0);
    static const int64_t want[] = {10, 20, 30, 11, 21, 31, 12, 22, 32};
    assert_int_equal(tg_log.n, TG_ARRAY_LEN(want));
    for (int i = 0; i < TG_ARRAY_LEN(want); i++)
        assert_int_equal(tg_log.v[i], want[i]);
}

static void lone_yielder(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        tg_event(gt_yield());
}

static void test_yield_alone(void **state)
{
    (void)state;
    tg_spawn(lone_yielder, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(tg_log.v[i], 0);
}

/* --- -EPERM outside green threads ------------------------------------ */

static void test_eperm_outside(void **state)
{
    (void)state;
    gt_chan *ch = NULL, *bch = NULL;
    gt_sem *s = NULL;
    assert_int_equal(gt_chan_make(&ch, sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&bch, sizeof(int), 1), 0);
    assert_int_equal(gt_sem_make(&s, 0), 0);
    int64_t id = tg_spawn(park_until_cancelled, NULL);
    assert_true(id > 0);

    int v = 1;
    assert_int_equal(gt_yield(), -EPERM);
    assert_int_equal(gt_sleep(gt_now() + 10), -EPERM);
    assert_int_equal(gt_join(id, -1), -EPERM);
    assert_int_equal(gt_join(id, gt_now() + 10), -EPERM);
    assert_int_equal(gt_transfer(id, NULL, NULL, -1), -EPERM);
    assert_int_equal(gt_chan_send(ch, &v, -1), -EPERM);
    assert_int_equal(gt_chan_recv(ch, &v, -1), -EPERM);
    assert_int_equal(gt_chan_recv(bch, &v, -1), -EPERM);
    assert_int_equal(gt_sem_acquire(s, -1), -EPERM);
    gt_chan_op op = {ch, GT_RECV, &v, 0};
    assert_int_equal(gt_choose(&op, 1, -1), -EPERM);

    /* The thread is untouched: it starts, parks, and can be cancelled. */
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(gt_cancel(id), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 1);
    assert_int_equal(tg_log.v[0], -ECANCELED);
    assert_int_equal(gt_chan_free(ch), 0);
    assert_int_equal(gt_chan_free(bch), 0);
    assert_int_equal(gt_sem_free(s), 0);
}

/* --- gt_strerror ------------------------------------------------------ */

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {0,          -EINVAL,    -ENOMEM, GT_EMAPLIMIT,
                                -EPERM,     -ETIMEDOUT, -ECANCELED,
                                -ESRCH,     -EDEADLK,   -EBUSY,  -EPIPE,
                                -EAGAIN,    -1,         -4095,   -4096,
                                -4199,      -4201,      -99999,  12345,
                                INT32_MIN,  INT32_MAX};
    for (int i = 0; i < TG_ARRAY_LEN(codes); i++) {
        const char *s = gt_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
    }
    const char *m = gt_strerror(GT_EMAPLIMIT);
    assert_non_null(strstr(m, "vm.max_map_count"));
    assert_non_null(strstr(m, "GT_NOGUARD"));
    /* Negated errno values give distinct, errno-like texts. */
    assert_string_not_equal(gt_strerror(-ETIMEDOUT), gt_strerror(-ECANCELED));
    assert_string_not_equal(gt_strerror(-EPIPE), gt_strerror(GT_EMAPLIMIT));
}

/* --- gt_join ------------------------------------------------------------ */

static struct {
    int64_t target;
    int64_t joiner;
    int rc[8];
    int flag;
    int64_t t0, t1;
} J;

static void sleep_then_flag(void *arg)
{
    int ms = (int)(intptr_t)arg;
    int rc = gt_sleep(gt_now() + ms);
    J.rc[7] = rc;
    J.flag = 1;
    tg_event(2);
}

static void join_target(void *arg)
{
    (void)arg;
    tg_event(1);
    J.rc[0] = gt_join(J.target, -1);
    J.rc[1] = J.flag;
    tg_event(3);
}

static void test_join_normal(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    tg_spawn(join_target, NULL);
    J.target = tg_spawn(sleep_then_flag, (void *)(intptr_t)10);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(J.rc[0], 0);
    assert_int_equal(J.rc[1], 1);
    assert_int_equal(tg_log.n, 3);
    assert_int_equal(tg_log.v[0], 1);
    assert_int_equal(tg_log.v[1], 2);
    assert_int_equal(tg_log.v[2], 3);
}

/* Target not started yet when joined. */
static void spawn_and_join(void *arg)
{
    (void)arg;
    int64_t id = gt_spawn(nop, NULL);
    J.rc[0] = gt_join(id, -1);
    J.rc[1] = tg_log.n; /* nop ran before the join returned */
}

static void test_join_unstarted(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    tg_spawn(spawn_and_join, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(J.rc[0], 0);
    assert_int_equal(J.rc[1], 1);
}

static void join_ended(void *arg)
{
    (void)arg;
    /* The target ran first (spawned earlier) and has already ended. */
    J.rc[0] = gt_join(J.target, -1);
    J.rc[1] = gt_join(J.target, 0);
    J.rc[2] = gt_join(J.target, gt_now() + 1000);
    J.rc[3] = gt_join(J.target, -1); /* still 0, not -EBUSY or -ESRCH */
}

static void test_join_already_ended(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    J.target = tg_spawn(nop, NULL);
    tg_spawn(join_ended, NULL);
    int64_t t0 = gt_now();
    assert_int_equal(gt_run(), 0);
    assert_true(gt_now() - t0 < 1000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(J.rc[i], 0);
    /* From a later, separate run as well. */
    memset(&J.rc, 0x55, sizeof J.rc);
    tg_spawn(join_ended, NULL);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(J.rc[i], 0);
}

static void join_bad_ids(void *arg)
{
    (void)arg;
    J.rc[0] = gt_join(999999999, -1);
    J.rc[1] = gt_join(INT64_MAX, -1);
    J.rc[2] = gt_join(0, -1);
    J.rc[3] = gt_join(-7, -1);
    J.rc[4] = gt_join(999999999, 0);
    J.rc[5] = gt_join(gt_self(), -1);
    J.rc[6] = gt_join(gt_self(), 0);
}

static void test_join_bad(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    tg_spawn(join_bad_ids, NULL);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(J.rc[i], -ESRCH);
    assert_int_equal(J.rc[5], -EDEADLK);
    assert_int_equal(J.rc[6], -EDEADLK);
}

static void first_joiner(void *arg)
{
    (void)arg;
    J.rc[0] = gt_join(J.target, -1);
    tg_event(10);
}

static void second_joiner(void *arg)
{
    (void)arg;
    J.rc[1] = gt_join(J.target, -1);
    J.rc[2] = gt_join(J.target, 0);
    tg_event(20);
}

static void test_join_busy(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    J.target = tg_spawn(sleep_then_flag, (void *)(intptr_t)30);
    tg_spawn(first_joiner, NULL);
    tg_spawn(second_joiner, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(J.rc[0], 0);
    assert_int_equal(J.rc[1], -EBUSY);
    assert_int_equal(J.rc[2], -EBUSY);
    /* second_joiner returned at once, before the target ended. */
    assert_int_equal(tg_log.n, 3);
    assert_int_equal(tg_log.v[0], 20);
    assert_int_equal(tg_log.v[1], 2);
    assert_int_equal(tg_log.v[2], 10);
}

static void long_sleeper(void *arg)
{
    (void)arg;
    J.rc[7] = gt_sleep(gt_now() + 60000);
    tg_event(2);
}

static void timed_joiner(void *arg)
{
    (void)arg;
    J.t0 = gt_now();
    J.rc[0] = gt_join(J.target, J.t0 + 20);
    J.t1 = gt_now();
    J.rc[1] = gt_join(J.target, 0);
    tg_event(1);
}

static void late_joiner(void *arg)
{
    (void)arg;
    /* The timed-out joiner is gone: joining is possible again. */
    J.rc[2] = gt_sleep(gt_now() + 40);
    J.rc[3] = gt_cancel(J.target);
    J.rc[4] = gt_join(J.target, -1);
    tg_event(3);
}

static void test_join_timeout(void **state)
{
    (void)state;
    memset(&J, 0, sizeof J);
    J.target = tg_spawn(long_sleeper, NULL);
    tg_spawn(timed_joiner, NULL);
    tg_spawn(late_joiner, NULL);
    int64_t t0 = gt_now();
    assert_int_equal(gt_run(), 0);
    assert_true(gt_now() - t0 < 40 + tg_slack_ms());
    assert_int_equal(J.rc[0], -ETIMEDOUT);
    assert_true(J.t1 - J.t0 >= 20);
    assert_true(J.t1 - J.t0 < 20 + tg_slack_ms());
    assert_int_equal(J.rc[1], -ETIMEDOUT);
    assert_int_equal(J.rc[2], 0);
    assert_int_equal(J.rc[3], 0);
    assert_int_equal(J.rc[4], 0);
    assert_int_equal(J.rc[7], -ECANCELED);
    assert_int_equal(tg_log.n, 3);
    assert_int_equal(tg_log.v[0], 1);
    assert_int_equal(tg_log.v[1], 2);
    assert_int_equal(tg_log.v[2], 3);
}

/* Many joiners of many targets, each pair independent. */
static void chain_link(void *arg)
{
    int64_t prev = (int64_t)(intptr_t)arg;
    if (prev > 0)
        tg_event(gt_join(prev, -1));
    gt_yield();
}

static void test_join_chain(void **state)
{
    (void)state;
    int64_t prev = 0;
    for (int i = 0; i < 50; i++)
        prev = tg_spawn(chain_link, (void *)(intptr_t)prev);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 49);
    for (int i = 0; i < 49; i++)
        assert_int_equal(tg_log.v[i], 0);
}

/* --- ids that were never issued -------------------------------------------
 * Ids increase but need not be contiguous.  Any id in the range that no
 * thread was given must still answer -ESRCH ("no such id was ever
 * issued"), not look like an ended thread. */
#define IDS_N 300
static struct {
    int64_t issued[IDS_N + 8];
    int n;
    int gaps, wrong_join, wrong_cancel;
    int64_t first_wrong;
} I;

static void ids_child(void *arg)
{
    (void)arg;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void ids_driver(void *arg)
{
    (void)arg;
    for (int i = 0; i < IDS_N; i++) {
        int64_t id = gt_spawn(ids_child, NULL);
        if (id <= 0)
            return;
        I.issued[I.n++] = id;
        gt_join(id, -1);
    }
    qsort(I.issued, (size_t)I.n, sizeof I.issued[0], cmp_i64);
    for (int i = 1; i < I.n; i++) {
        for (int64_t g = I.issued[i - 1] + 1; g < I.issued[i]; g++) {
            I.gaps++;
            int rj = gt_join(g, 0), rc = gt_cancel(g);
            if (rj != -ESRCH) {
                I.wrong_join++;
                if (!I.first_wrong)
                    I.first_wrong = g;
            }
            if (rc != -ESRCH)
                I.wrong_cancel++;
        }
    }
}

static void test_ids_never_issued(void **state)
{
    (void)state;
    memset(&I, 0, sizeof I);
    /* A long-lived thread holds on to its id while many come and go. */
    int64_t p = tg_spawn(park_until_cancelled, NULL);
    I.issued[I.n++] = p;
    I.issued[I.n++] = tg_spawn(ids_driver, NULL);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(gt_cancel(p), 0);
    assert_int_equal(gt_run(), 0);
    print_message("%d ids in range were never issued\n", I.gaps);
    if (I.wrong_join)
        print_error("gt_join(%lld) (never issued) did not give -ESRCH\n",
                    (long long)I.first_wrong);
    assert_int_equal(I.wrong_join, 0);
    assert_int_equal(I.wrong_cancel, 0);
}

/* --- floating-point control words ------------------------------------ */

/* The rounding mode in force, as both the x87 unit and SSE see it (on
 * x86-64 the switch keeps the x87 control word and the MXCSR apart, and
 * fegetround reads only the first). */
static int rounding(void)
{
#if defined(__x86_64__)
    static const int sse[] = {FE_TONEAREST, FE_DOWNWARD, FE_UPWARD,
                              FE_TOWARDZERO};
    int m = sse[(_mm_getcsr() >> 13) & 3];
    if (m != fegetround()) return -1;
    return m;
#else
    return fegetround();
#endif
}

static struct {
    int wrong;   /* a thread saw a mode it did not set */
    int child;   /* the mode a thread spawned by the upward one started in */
    int64_t kid; /* that thread */
} F;

static void fp_child(void *arg)
{
    (void)arg;
    F.child = rounding();
}

/* Sets its own mode, then checks it across yields to a thread in
 * another mode, across the start and the end of a thread it spawns, and
 * across a join. */
static void fp_upward(void *arg)
{
    (void)arg;
    assert_int_equal(fesetround(FE_UPWARD), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(gt_yield(), 0);
        if (rounding() != FE_UPWARD) F.wrong++;
    }
    F.kid = tg_spawn(fp_child, NULL);
    assert_int_equal(gt_join(F.kid, -1), 0);
    if (rounding() != FE_UPWARD) F.wrong++;
}

/* Checks the default mode across yields to the upward thread, and
 * across the end of an upward thread it joins. */
static void fp_default(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        if (rounding() != FE_TONEAREST) F.wrong++;
        assert_int_equal(gt_yield(), 0);
    }
    int64_t up = tg_spawn(fp_upward, NULL);
    assert_int_equal(gt_join(up, -1), 0);
    if (rounding() != FE_TONEAREST) F.wrong++;
}

/* Each thread runs in its own mode.  The assembly switch loads a thread's
 * control words only when they differ from the ones in force
 * (runtime/switch_x86_64.S), and starts a new thread in the default ones;
 * makecontext gives a new thread those of the thread that first switches
 * to it, so the default thread runs first here. */
static void test_fp_control(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    F.child = -2;
    tg_spawn(fp_default, NULL);
    tg_spawn(fp_upward, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(F.wrong, 0);
#ifdef TG_SWITCH_ASM
    assert_int_equal(F.child, FE_TONEAREST);
#endif
    assert_int_equal(rounding(), FE_TONEAREST);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_spawn_fifo),        TG_TEST(test_self),
        TG_TEST(test_spawn_einval),      TG_TEST(test_attr_name),
        TG_TEST(test_yield_order),       TG_TEST(test_yield_alone),
        TG_TEST(test_eperm_outside),     TG_TEST(test_strerror),
        TG_TEST(test_join_normal),       TG_TEST(test_join_unstarted),
        TG_TEST(test_join_already_ended), TG_TEST(test_join_bad),
        TG_TEST(test_join_busy),         TG_TEST(test_join_timeout),
        TG_TEST(test_join_chain),        TG_TEST(test_ids_never_issued),
        TG_TEST(test_fp_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
