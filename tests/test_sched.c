/* Clock, sleeping, the loop (dispatch/start/stop/run), deadlock detection
 * and gt_dump. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <time.h>

static struct {
    int rc[16];
    int64_t t[16];
    int64_t ids[16];
    int count;
} S;

static void reset(void)
{
    memset(&S, 0, sizeof S);
    for (int i = 0; i < 16; i++)
        S.rc[i] = 12345;
}

/* --- clock ------------------------------------------------------------- */

static void test_now_monotonic(void **state)
{
    (void)state;
    int64_t prev = gt_now();
    assert_true(prev >= 0);
    for (int i = 0; i < 10000; i++) {
        int64_t n = gt_now();
        assert_true(n >= prev);
        prev = n;
    }
    struct timespec ts = {0, 15 * 1000 * 1000};
    int64_t a = gt_now();
    nanosleep(&ts, NULL);
    int64_t b = gt_now();
    assert_true(b - a >= 14); /* ms granularity */
    assert_true(b - a < tg_slack_ms());
}

/* --- gt_sleep ------------------------------------------------------------ */

static void sleep_20(void *arg)
{
    (void)arg;
    S.t[0] = gt_now();
    S.rc[0] = gt_sleep(S.t[0] + 20);
    S.t[1] = gt_now();
    /* Deadlines in the past, and 0, return at once. */
    S.rc[1] = gt_sleep(gt_now() - 100);
    S.rc[2] = gt_sleep(0);
    S.t[2] = gt_now();
}

static void test_sleep_deadline(void **state)
{
    (void)state;
    reset();
    tg_spawn(sleep_20, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rc[0], 0);
    assert_true(S.t[1] - S.t[0] >= 20);
    assert_true(S.t[1] - S.t[0] < 20 + tg_slack_ms());
    assert_int_equal(S.rc[1], 0);
    assert_int_equal(S.rc[2], 0);
    assert_true(S.t[2] - S.t[1] < tg_slack_ms());
}

static int64_t base_deadline;

static void sleep_until(void *arg)
{
    int64_t off = (int64_t)(intptr_t)arg;
    int rc = gt_sleep(base_deadline + off);
    int64_t woke = gt_now();
    tg_event(rc == 0 && woke >= base_deadline + off ? off : -1);
}

static void test_sleep_order(void **state)
{
    (void)state;
    reset();
    base_deadline = gt_now() + 10;
    static const int offs[] = {60, 20, 40, 0, 80};
    for (int i = 0; i < TG_ARRAY_LEN(offs); i++)
        tg_spawn(sleep_until, (void *)(intptr_t)offs[i]);
    assert_int_equal(gt_run(), 0);
    static const int64_t want[] = {0, 20, 40, 60, 80};
    assert_int_equal(tg_log.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tg_log.v[i], want[i]);
}

static void sleep_same(void *arg)
{
    int me = (int)(intptr_t)arg;
    int rc = gt_sleep(base_deadline);
    tg_event(rc == 0 ? me : -1);
}

static void test_sleep_equal_fifo(void **state)
{
    (void)state;
    reset();
    base_deadline = gt_now() + 20;
    for (int i = 0; i < 8; i++)
        tg_spawn(sleep_same, (void *)(intptr_t)i);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(tg_log.v[i], i);
}

/* recv with deadline 0 on an empty channel: -ETIMEDOUT without parking
 * (the thread spawned after us must not have run in between). */
static int later_ran;

static void try_recv(void *arg)
{
    gt_chan *ch = arg;
    int v;
    int64_t t0 = gt_now();
    S.rc[0] = gt_chan_recv(ch, &v, 0);
    S.rc[1] = later_ran;
    S.t[0] = gt_now() - t0;
    /* A deadline already in the past behaves like 0. */
    S.rc[2] = gt_chan_recv(ch, &v, gt_now() - 50);
    S.rc[3] = later_ran;
}

static void mark_later(void *arg)
{
    (void)arg;
    later_ran = 1;
}

static void test_deadline_zero(void **state)
{
    (void)state;
    reset();
    later_ran = 0;
    gt_chan *ch = NULL;
    assert_int_equal(gt_chan_make(&ch, sizeof(int), 4), 0);
    tg_spawn(try_recv, ch);
    tg_spawn(mark_later, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rc[0], -ETIMEDOUT);
    assert_int_equal(S.rc[1], 0);
    assert_true(S.t[0] < tg_slack_ms());
    assert_int_equal(S.rc[2], -ETIMEDOUT);
    assert_int_equal(later_ran, 1);
    assert_int_equal(gt_chan_free(ch), 0);
}

/* Many timers inserted and removed early (channel wake-ups, cancels):
 * nobody wakes before its deadline, and timer wake-ups come in deadline
 * order. */
#define TS_N 300
static struct {
    gt_chan *ch;
    int early, bad, timer_wakes, order_bad;
    int64_t last_deadline;
    int64_t ids[TS_N];
} TS;

static void ts_waiter(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 7;
    for (int i = 0; i < 6; i++) {
        seed = seed * 1664525u + 1013904223u;
        int64_t dl = gt_now() + 1 + (int64_t)((seed >> 8) % 25);
        int rc, v;
        if ((seed >> 20) % 2)
            rc = gt_sleep(dl);
        else
            rc = gt_chan_recv(TS.ch, &v, dl);
        int64_t now = gt_now();
        int timer = ((seed >> 20) % 2) ? rc == 0 : rc == -ETIMEDOUT;
        if (timer) {
            TS.timer_wakes++;
            if (now < dl)
                TS.early++;
            if (dl < TS.last_deadline)
                TS.order_bad++;
            TS.last_deadline = dl;
        } else if (rc != 0 && rc != -ECANCELED) {
            TS.bad++;
        }
    }
}

static void ts_disturber(void *arg)
{
    (void)arg;
    uint32_t seed = 99;
    for (int i = 0; i < 200; i++) {
        seed = seed * 1664525u + 1013904223u;
        int v = i;
        gt_chan_send(TS.ch, &v, 0); /* wakes a receiver early, if any */
        if (i % 10 == 0)
            gt_cancel(TS.ids[(seed >> 8) % TS_N]);
        gt_sleep(gt_now() + 1);
    }
}

static void test_timer_stress(void **state)
{
    (void)state;
    memset(&TS, 0, sizeof TS);
    assert_int_equal(gt_chan_make(&TS.ch, sizeof(int), 0), 0);
    for (int i = 0; i < TS_N; i++)
        TS.ids[i] = gt_spawn(ts_waiter, (void *)(intptr_t)i);
    assert_true(gt_spawn(ts_disturber, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(TS.bad, 0);
    assert_int_equal(TS.early, 0);
    assert_int_equal(TS.order_bad, 0);
    assert_true(TS.timer_wakes > TS_N);
    assert_int_equal(gt_chan_free(TS.ch), 0);
}

/* --- gt_dispatch --------------------------------------------------------- */

static void sleeps_a_bit(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        gt_sleep(gt_now() + 5);
    tg_event(1);
}

static void test_dispatch(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_dispatch(0), 0); /* nothing alive */
    assert_int_equal(gt_dispatch(-1), 0);
    tg_spawn(sleeps_a_bit, NULL);
    int ones = 0, rc = 1;
    int64_t t0 = gt_now();
    for (int i = 0; i < 10000 && rc == 1; i++) {
        rc = gt_dispatch(-1);
        if (rc == 1)
            ones++;
    }
    assert_int_equal(rc, 0);
    assert_true(ones >= 1);
    assert_int_equal(tg_log.n, 1);
    assert_true(gt_now() - t0 >= 15);
    assert_int_equal(gt_dispatch(0), 0);

    /* A bounded deadline: the round returns by it while a sleeper waits. */
    tg_spawn(sleeps_a_bit, NULL);
    t0 = gt_now();
    assert_int_equal(gt_dispatch(0), 1);
    rc = 1;
    for (int i = 0; i < 10000 && rc != 0; i++)
        rc = gt_dispatch(gt_now() + 1);
    assert_int_equal(rc, 0);
    assert_int_equal(tg_log.n, 2);
}

static void dispatch_inside(void *arg)
{
    (void)arg;
    S.rc[0] = gt_dispatch(0);
    S.rc[1] = gt_dispatch(-1);
    S.rc[2] = gt_start(-1);
    S.rc[3] = gt_run();
}

static void test_dispatch_eperm(void **state)
{
    (void)state;
    reset();
    tg_spawn(dispatch_inside, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rc[0], -EPERM);
    assert_int_equal(S.rc[1], -EPERM);
    assert_int_equal(S.rc[2], -EPERM);
    assert_int_equal(S.rc[3], -EPERM);
}

/* --- gt_start / gt_stop ---------------------------------------------- */

static void stopper(void *arg)
{
    (void)arg;
    tg_event(1);
    S.rc[0] = gt_stop();
    S.rc[1] = gt_yield();
    tg_event(2);
    S.rc[2] = gt_sleep(gt_now() + 10);
    tg_event(3);
}

static void test_start_stop(void **state)
{
    (void)state;
    reset();
    tg_spawn(stopper, NULL);
    assert_int_equal(gt_start(-1), 1);
    assert_int_equal(S.rc[0], 0);
    /* Still alive. */
    assert_true(tg_log.n >= 1 && tg_log.n <= 2);
    assert_int_equal(tg_live_count(), 1);
    /* The stop is cleared: the next gt_start runs to the end. */
    assert_int_equal(gt_start(-1), 0);
    assert_int_equal(tg_log.n, 3);
    assert_int_equal(S.rc[1], 0);
    assert_int_equal(S.rc[2], 0);
}

/* gt_run ignores gt_stop.  (Kept last in the list: whether a stop made
 * under gt_run lingers for a later gt_start is not specified.) */
static void test_run_ignores_stop(void **state)
{
    (void)state;
    reset();
    tg_spawn(stopper, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 3);
}

static void sleeper_long(void *arg)
{
    (void)arg;
    S.rc[0] = gt_sleep(gt_now() + 60000);
}

static void test_start_deadline(void **state)
{
    (void)state;
    reset();
    int64_t id = tg_spawn(sleeper_long, NULL);
    int64_t t0 = gt_now();
    assert_int_equal(gt_start(t0 + 50), -ETIMEDOUT);
    int64_t el = gt_now() - t0;
    assert_true(el >= 50);
    assert_true(el < 50 + tg_slack_ms());
    assert_int_equal(tg_live_count(), 1);
    assert_int_equal(gt_start(0), -ETIMEDOUT);
    assert_int_equal(gt_cancel(id), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rc[0], -ECANCELED);
}

/* --- deadlock detection ---------------------------------------------- */

static void waits_for_ever(void *arg)
{
    gt_chan *ch = arg;
    int v;
    int rc = gt_chan_recv(ch, &v, -1);
    tg_event(rc);
}

static void test_deadlock(void **state)
{
    (void)state;
    reset();
    gt_chan *ch1 = NULL, *ch2 = NULL;
    assert_int_equal(gt_chan_make(&ch1, sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&ch2, sizeof(int), 3), 0);
    int64_t a = tg_spawn(waits_for_ever, ch1);
    int64_t b = tg_spawn(waits_for_ever, ch2);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(gt_run(), -EDEADLK); /* stable */
    assert_int_equal(gt_start(-1), -EDEADLK);
    assert_int_equal(gt_dispatch(-1), -EDEADLK);
    assert_int_equal(tg_log.n, 0);
    assert_int_equal(tg_live_count(), 2);
    assert_int_equal(gt_cancel(a), 0);
    assert_int_equal(gt_cancel(b), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 2);
    assert_int_equal(tg_log.v[0], -ECANCELED);
    assert_int_equal(tg_log.v[1], -ECANCELED);
    assert_int_equal(gt_chan_free(ch1), 0);
    assert_int_equal(gt_chan_free(ch2), 0);
}

/* A sleeper with a timer is not a deadlock, even if others wait for ever;
 * once it is gone, the rest is. */
static void wake_and_leave(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 20);
    tg_event(7);
}

static void test_deadlock_after_timer(void **state)
{
    (void)state;
    reset();
    gt_chan *ch = NULL;
    assert_int_equal(gt_chan_make(&ch, sizeof(int), 0), 0);
    int64_t a = tg_spawn(waits_for_ever, ch);
    tg_spawn(wake_and_leave, NULL);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(tg_log.n, 1);
    assert_int_equal(tg_log.v[0], 7);
    assert_int_equal(gt_cancel(a), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(gt_chan_free(ch), 0);
}

/* Everybody sleeping for ever is a deadlock, too. */
static void sleep_for_ever(void *arg)
{
    (void)arg;
    tg_event(gt_sleep(-1));
}

static void test_deadlock_sleep(void **state)
{
    (void)state;
    reset();
    int64_t a = tg_spawn(sleep_for_ever, NULL);
    int64_t b = tg_spawn(sleep_for_ever, NULL);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(gt_cancel(b), 0);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(gt_cancel(a), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 2);
}

/* --- gt_dump ----------------------------------------------------------- */

static void dump_parker(void *arg)
{
    (void)arg;
    gt_sleep(-1);
}

static void dump_from_inside(void *arg)
{
    (void)arg;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return;
    S.rc[0] = gt_dump(f);
    fclose(f);
    S.rc[1] = tg_count_lines(buf);
    S.rc[2] = buf != NULL && strstr(buf, "dumper") != NULL;
    free(buf);
}

static void test_dump(void **state)
{
    (void)state;
    reset();
    assert_int_equal(tg_live_count(), 0);
    char *out = tg_dump_string(NULL);
    assert_non_null(out);
    assert_int_equal(tg_count_lines(out), 0);
    free(out);

    gt_attr a;
    memset(&a, 0, sizeof a);
    a.name = "alpha";
    int64_t id1 = gt_spawn_at(dump_parker, NULL, &a, "somefile.c:4242");
    a.name = "beta";
    int64_t id2 = gt_spawn_attr(dump_parker, NULL, &a); const char *site2 = "test_sched.c:" GT__STR(__LINE__);
    a.name = "gamma";
    a.flags = GT_NOGUARD;
    int64_t id3 = gt_spawn_attr(dump_parker, NULL, &a);
    assert_true(id1 > 0 && id2 > 0 && id3 > 0);
    S.ids[0] = tg_ids.id[tg_ids.n++] = id1;
    S.ids[1] = tg_ids.id[tg_ids.n++] = id2;
    S.ids[2] = tg_ids.id[tg_ids.n++] = id3;

    for (int pass = 0; pass < 2; pass++) {
        int n = -1;
        out = tg_dump_string(&n);
        assert_non_null(out);
        assert_int_equal(n, 3);
        assert_int_equal(tg_count_lines(out), 3);
        /* One line each, with id, name and site on the same line. */
        const char *names[3] = {"alpha", "beta", "gamma"};
        for (int i = 0; i < 3; i++) {
            char idbuf[32];
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)S.ids[i]);
            const char *p = strstr(out, names[i]);
            assert_non_null(p);
            const char *ls = p;
            while (ls > out && ls[-1] != '\n')
                ls--;
            const char *le = strchr(p, '\n');
            assert_non_null(le);
            size_t ll = (size_t)(le - ls);
            char line[512];
            assert_true(ll < sizeof line);
            memcpy(line, ls, ll);
            line[ll] = '\0';
            assert_non_null(strstr(line, idbuf));
            if (i == 0)
                assert_non_null(strstr(line, "somefile.c:4242"));
            if (i == 1)
                assert_non_null(strstr(line, site2));
            if (i == 2)
                assert_non_null(strstr(line, "test_sched.c:"));
        }
        free(out);
        if (pass == 0)
            assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    }

    /* From inside a green thread: the caller is listed too. */
    tg_spawn_named(dump_from_inside, NULL, "dumper", 0, 0);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(S.rc[0], 4);
    assert_int_equal(S.rc[1], 4);
    assert_int_equal(S.rc[2], 1);

    for (int i = 0; i < 3; i++)
        assert_int_equal(gt_cancel(S.ids[i]), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_live_count(), 0);
}

/* Many short rounds: the loop keeps control every so often even when green
 * threads keep each other busy (yielders never stop being ready). */
static int spin_left;

static void spinner(void *arg)
{
    (void)arg;
    while (spin_left > 0) {
        spin_left--;
        gt_yield();
    }
}

static void test_dispatch_bounded_round(void **state)
{
    (void)state;
    spin_left = 200000;
    tg_spawn(spinner, NULL);
    tg_spawn(spinner, NULL);
    int rounds = 0, rc = 1;
    for (int i = 0; i < 1000000 && rc == 1; i++) {
        rc = gt_dispatch(0);
        rounds++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(spin_left, 0);
    /* Control came back to the loop more than once. */
    assert_true(rounds > 2);
}

/* The same for threads that keep each other busy over a channel: a 5 ms
 * sleeper wakes while they go on (bounded by 2 s of wall time). */
static struct {
    gt_chan *ch;
    int woke, stopped_by_flag;
} CP;

static void cp_sender(void *arg)
{
    (void)arg;
    int64_t t0 = gt_now();
    int v = 0;
    while (!CP.woke && gt_now() - t0 < 2000)
        if (gt_chan_send(CP.ch, &v, -1) != 0)
            break;
    CP.stopped_by_flag = CP.woke;
    gt_chan_close(CP.ch);
}

static void cp_receiver(void *arg)
{
    (void)arg;
    int v;
    for (long i = 0; i < 1000000000L; i++)
        if (gt_chan_recv(CP.ch, &v, -1) != 0)
            break;
}

static void cp_sleeper(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 5);
    CP.woke = 1;
}

static void test_chan_no_starvation(void **state)
{
    (void)state;
    memset(&CP, 0, sizeof CP);
    assert_int_equal(gt_chan_make(&CP.ch, sizeof(int), 0), 0);
    tg_spawn(cp_sleeper, NULL);
    tg_spawn(cp_sender, NULL);
    tg_spawn(cp_receiver, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(CP.stopped_by_flag, 1);
    assert_int_equal(gt_chan_free(CP.ch), 0);
}

/* A thread that only yields does not starve a sleeper either. */
static struct {
    int woke, stopped_by_flag, stop;
    long spins;
} Y;

static void y_spinner(void *arg)
{
    (void)arg;
    int64_t t0 = gt_now();
    while (!Y.woke && !Y.stop && gt_now() - t0 < 2000) {
        Y.spins++;
        gt_yield();
    }
    Y.stopped_by_flag = Y.woke;
}

static void y_sleeper(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 5);
    Y.woke = 1;
}

static void test_yield_no_starvation(void **state)
{
    (void)state;
    memset(&Y, 0, sizeof Y);
    tg_spawn(y_sleeper, NULL);
    tg_spawn(y_spinner, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(Y.stopped_by_flag, 1);
}

/* gt_start's deadline holds while threads keep the loop busy. */
static void y_busy(void *arg)
{
    (void)arg;
    int64_t t0 = gt_now();
    while (!Y.stop && gt_now() - t0 < 5000) {
        Y.spins++;
        gt_yield();
    }
}

static void test_start_deadline_busy(void **state)
{
    (void)state;
    memset(&Y, 0, sizeof Y);
    tg_spawn(y_busy, NULL);
    tg_spawn(y_busy, NULL);
    int64_t t0 = gt_now();
    assert_int_equal(gt_start(t0 + 30), -ETIMEDOUT);
    int64_t el = gt_now() - t0;
    Y.stop = 1;
    assert_int_equal(gt_run(), 0);
    assert_true(el >= 30);
    assert_true(el < 30 + tg_slack_ms());
    assert_true(Y.spins > 0);
}

/* Far-away deadlines: no overflow in the timer arithmetic. */
static void far_sleeper(void *arg)
{
    (void)arg;
    S.rc[0] = gt_sleep(INT64_MAX);
    S.rc[1] = gt_sleep(INT64_MAX - 1);
}

static void far_canceller(void *arg)
{
    int64_t id = *(int64_t *)arg;
    S.rc[2] = gt_sleep(gt_now() + 10);
    S.rc[3] = gt_cancel(id);
}

static void test_far_deadlines(void **state)
{
    (void)state;
    reset();
    static int64_t id;
    id = tg_spawn(far_sleeper, NULL);
    /* A far timer alone: a bounded gt_start times out. */
    int64_t t0 = gt_now();
    assert_int_equal(gt_start(t0 + 20), -ETIMEDOUT);
    assert_true(gt_now() - t0 < 20 + tg_slack_ms());
    assert_int_equal(gt_dispatch(gt_now() + 5), 1);
    /* And a near timer still fires while the far one waits. */
    tg_spawn(far_canceller, &id);
    t0 = gt_now();
    assert_int_equal(gt_run(), 0);
    assert_true(gt_now() - t0 < 10 + tg_slack_ms());
    assert_int_equal(S.rc[0], -ECANCELED);
    assert_int_equal(S.rc[1], -ECANCELED);
    assert_int_equal(S.rc[2], 0);
    assert_int_equal(S.rc[3], 0);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_now_monotonic),
        TG_TEST(test_sleep_deadline),
        TG_TEST(test_sleep_order),
        TG_TEST(test_sleep_equal_fifo),
        TG_TEST(test_deadline_zero),
        TG_TEST(test_timer_stress),
        TG_TEST(test_dispatch),
        TG_TEST(test_dispatch_eperm),
        TG_TEST(test_start_stop),
        TG_TEST(test_start_deadline),
        TG_TEST(test_deadlock),
        TG_TEST(test_deadlock_after_timer),
        TG_TEST(test_deadlock_sleep),
        TG_TEST(test_dump),
        TG_TEST(test_dispatch_bounded_round),
        TG_TEST(test_chan_no_starvation),
        TG_TEST(test_yield_no_starvation),
        TG_TEST(test_start_deadline_busy),
        TG_TEST(test_far_deadlines),
        TG_TEST(test_run_ignores_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
