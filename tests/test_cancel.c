/* gt_cancel: cooperative cancellation and its races. */
#define _GNU_SOURCE 1
#include "gt_test.h"

static struct {
    int64_t a, b, c;
    int rc[16];
    int val;
    int64_t t0, t1;
    gt_chan *ch;
    gt_sem *sem;
} C;

static void reset(void)
{
    memset(&C, 0, sizeof C);
    for (int i = 0; i < 16; i++)
        C.rc[i] = 12345;
}

/* --- cancel a parked sleeper; later parks fail too -------------------- */

static void victim_many_parks(void *arg)
{
    (void)arg;
    C.rc[0] = gt_sleep(-1);
    C.t0 = gt_now();
    C.rc[1] = gt_sleep(gt_now() + 5000);
    C.rc[2] = gt_yield();
    int v;
    C.rc[3] = gt_chan_recv(C.ch, &v, -1);
    C.rc[4] = gt_chan_send(C.ch, &v, -1); /* unbuffered, nobody receives */
    C.rc[5] = gt_sem_acquire(C.sem, -1);
    C.rc[6] = gt_join(C.b, -1); /* b is parked for ever */
    gt_chan_op op = {C.ch, GT_RECV, &v, 0};
    C.rc[7] = gt_choose(&op, 1, -1);
    C.rc[8] = gt_sleep(-1);
    C.t1 = gt_now();
    tg_event(1);
}

static void canceller(void *arg)
{
    (void)arg;
    C.rc[10] = gt_cancel(C.a);
    C.rc[11] = gt_cancel(C.a); /* twice is fine */
    tg_event(2);
}

static void test_cancel_parked_sleeper(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&C.ch, sizeof(int), 0), 0);
    assert_int_equal(gt_sem_make(&C.sem, 0), 0);
    C.a = tg_spawn(victim_many_parks, NULL);
    C.b = tg_spawn(victim_many_parks, NULL); /* parks in gt_sleep(-1) */
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    tg_spawn(canceller, NULL);
    /* a finishes; b stays parked: deadlock again. */
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(C.rc[10], 0);
    assert_int_equal(C.rc[11], 0);
    for (int i = 0; i <= 8; i++)
        assert_int_equal(C.rc[i], -ECANCELED);
    assert_true(C.t1 - C.t0 < tg_slack_ms());
    assert_int_equal(tg_log.n, 2);
    assert_int_equal(tg_log.v[0], 2);
    assert_int_equal(tg_log.v[1], 1);

    /* Now b, from the main stack. */
    int64_t b = C.b;
    gt_chan *ch = C.ch;
    gt_sem *sem = C.sem;
    reset();
    C.b = b;
    C.ch = ch;
    C.sem = sem;
    assert_int_equal(gt_cancel(C.b), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], -ECANCELED);
    assert_int_equal(C.rc[8], -ECANCELED);
    assert_int_equal(gt_chan_free(C.ch), 0);
    assert_int_equal(gt_sem_free(C.sem), 0);
}

/* --- cancel before start ----------------------------------------------- */

static void starts_then_sleeps(void *arg)
{
    (void)arg;
    tg_event(1);
    C.t0 = gt_now();
    C.rc[0] = gt_sleep(gt_now() + 5000);
    C.rc[1] = gt_yield();
    C.t1 = gt_now();
}

static void test_cancel_unstarted(void **state)
{
    (void)state;
    reset();
    C.a = tg_spawn(starts_then_sleeps, NULL);
    assert_int_equal(gt_cancel(C.a), 0);
    assert_int_equal(gt_run(), 0);
    /* Cooperative: the function still runs, and its parks fail. */
    assert_int_equal(tg_log.n, 1);
    assert_int_equal(C.rc[0], -ECANCELED);
    assert_int_equal(C.rc[1], -ECANCELED);
    assert_true(C.t1 - C.t0 < tg_slack_ms());
}

/* --- finished / unknown / self ------------------------------------------ */

static void nop(void *arg)
{
    (void)arg;
}

static void cancel_ids(void *arg)
{
    (void)arg;
    C.rc[0] = gt_cancel(C.a);        /* ended */
    C.rc[1] = gt_cancel(999999999);  /* never issued */
    C.rc[2] = gt_cancel(0);
    C.rc[3] = gt_cancel(-3);
    C.rc[4] = gt_cancel(INT64_MAX);
}

static void test_cancel_finished_unknown(void **state)
{
    (void)state;
    reset();
    C.a = tg_spawn(nop, NULL);
    tg_spawn(cancel_ids, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], 0);
    assert_int_equal(C.rc[1], -ESRCH);
    assert_int_equal(C.rc[2], -ESRCH);
    assert_int_equal(C.rc[3], -ESRCH);
    assert_int_equal(C.rc[4], -ESRCH);
    /* From the main stack too. */
    assert_int_equal(gt_cancel(C.a), 0);
    assert_int_equal(gt_cancel(999999999), -ESRCH);
}

static void cancel_self(void *arg)
{
    (void)arg;
    C.rc[0] = gt_cancel(gt_self());
    tg_event(1); /* keeps running */
    C.t0 = gt_now();
    C.rc[1] = gt_yield();
    C.rc[2] = gt_sleep(gt_now() + 5000);
    C.rc[3] = gt_sleep(-1);
    C.t1 = gt_now();
    tg_event(2);
}

static void test_cancel_self(void **state)
{
    (void)state;
    reset();
    tg_spawn(cancel_self, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], 0);
    assert_int_equal(C.rc[1], -ECANCELED);
    assert_int_equal(C.rc[2], -ECANCELED);
    assert_int_equal(C.rc[3], -ECANCELED);
    assert_true(C.t1 - C.t0 < tg_slack_ms());
    assert_int_equal(tg_log.n, 2);
}

/* Cancelled while inside gt_yield (by a thread that ran during the yield):
 * that yield is the thread's current call, so it returns -ECANCELED. */
static void yields_twice(void *arg)
{
    (void)arg;
    C.rc[0] = gt_yield();
    C.rc[1] = gt_yield();
}

static void cancels_a(void *arg)
{
    (void)arg;
    C.rc[2] = gt_cancel(C.a);
}

static void test_cancel_during_yield(void **state)
{
    (void)state;
    reset();
    C.a = tg_spawn(yields_twice, NULL);
    tg_spawn(cancels_a, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[2], 0);
    assert_int_equal(C.rc[0], -ECANCELED);
    assert_int_equal(C.rc[1], -ECANCELED);
}

/* A cancelled thread's children are not cancelled. */
static void child_sleeps(void *arg)
{
    (void)arg;
    C.rc[5] = gt_sleep(gt_now() + 5);
    C.rc[6] = gt_yield();
}

static void cancelled_parent(void *arg)
{
    (void)arg;
    C.rc[0] = gt_cancel(gt_self());
    int64_t id = gt_spawn(child_sleeps, NULL);
    C.rc[1] = id > 0;
    C.rc[2] = gt_join(id, -1); /* the parent's park: cancelled */
}

static void test_cancel_not_inherited(void **state)
{
    (void)state;
    reset();
    tg_spawn(cancelled_parent, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], 0);
    assert_int_equal(C.rc[1], 1);
    assert_int_equal(C.rc[2], -ECANCELED);
    assert_int_equal(C.rc[5], 0);
    assert_int_equal(C.rc[6], 0);
}

/* --- cancel a thread somebody joins ------------------------------------- */

static void joined_victim(void *arg)
{
    (void)arg;
    C.rc[0] = gt_sleep(-1);
    tg_event(10);
    C.rc[1] = gt_yield(); /* still runs after the cancel */
    tg_event(11);
}

static void joiner_a(void *arg)
{
    (void)arg;
    C.rc[2] = gt_join(C.b, -1);
    tg_event(20);
}

static void canceller_c(void *arg)
{
    (void)arg;
    gt_yield(); /* let the others park */
    tg_event(30);
    C.rc[3] = gt_cancel(C.b);
    tg_event(31);
}

static void test_cancel_while_joined(void **state)
{
    (void)state;
    reset();
    C.b = tg_spawn(joined_victim, NULL);
    C.a = tg_spawn(joiner_a, NULL);
    tg_spawn(canceller_c, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], -ECANCELED);
    assert_int_equal(C.rc[1], -ECANCELED);
    assert_int_equal(C.rc[2], 0);
    assert_int_equal(C.rc[3], 0);
    /* The joiner wakes only after the victim's function returned. */
    int pos10 = -1, pos11 = -1, pos20 = -1, pos30 = -1;
    for (int i = 0; i < tg_log.n; i++) {
        if (tg_log.v[i] == 10) pos10 = i;
        if (tg_log.v[i] == 11) pos11 = i;
        if (tg_log.v[i] == 20) pos20 = i;
        if (tg_log.v[i] == 30) pos30 = i;
    }
    assert_int_equal(tg_log.n, 5);
    assert_true(pos30 >= 0 && pos30 < pos10);
    assert_true(pos10 < pos11);
    assert_true(pos11 < pos20);
}

/* --- cancel the joiner ------------------------------------------------- */

static void target_sleeps_50(void *arg)
{
    (void)arg;
    C.rc[0] = gt_sleep(gt_now() + 50);
    tg_event(1);
}

static void joiner_cancelled(void *arg)
{
    (void)arg;
    C.rc[1] = gt_join(C.b, -1);
    tg_event(2);
}

static void cancels_joiner(void *arg)
{
    (void)arg;
    C.rc[2] = gt_sleep(gt_now() + 5);
    C.rc[3] = gt_cancel(C.a);
    tg_event(3);
}

static void second_joiner(void *arg)
{
    (void)arg;
    C.rc[4] = gt_sleep(gt_now() + 15);
    C.rc[5] = gt_join(C.b, -1);
    tg_event(4);
}

static void test_cancel_joiner(void **state)
{
    (void)state;
    reset();
    C.b = tg_spawn(target_sleeps_50, NULL);
    C.a = tg_spawn(joiner_cancelled, NULL);
    tg_spawn(cancels_joiner, NULL);
    tg_spawn(second_joiner, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(C.rc[0], 0);          /* target unaffected */
    assert_int_equal(C.rc[1], -ECANCELED); /* joiner cancelled */
    assert_int_equal(C.rc[2], 0);
    assert_int_equal(C.rc[3], 0);
    assert_int_equal(C.rc[4], 0);
    assert_int_equal(C.rc[5], 0); /* slot freed: no -EBUSY */
    static const int64_t want[] = {3, 2, 1, 4};
    assert_int_equal(tg_log.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tg_log.v[i], want[i]);
}

/* --- races ------------------------------------------------------------- */

static struct {
    int64_t deadline;
    int64_t target;
    int sleep_rc, after_rc, ran;
    int cancel_rc;
} R;

static void race_sleeper(void *arg)
{
    (void)arg;
    R.sleep_rc = gt_sleep(R.deadline);
    R.after_rc = gt_yield();
    R.ran++;
}

static void race_canceller(void *arg)
{
    (void)arg;
    int rc = gt_sleep(R.deadline);
    (void)rc;
    R.cancel_rc = gt_cancel(R.target);
}

/* Timer and cancel hit the same thread in the same round, both orders. */
static void test_cancel_race_timer(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        for (int it = 0; it < 10; it++) {
            memset(&R, 0, sizeof R);
            R.deadline = gt_now() + 2;
            if (order == 0) {
                tg_spawn(race_canceller, NULL);
                R.target = tg_spawn(race_sleeper, NULL);
            } else {
                R.target = tg_spawn(race_sleeper, NULL);
                tg_spawn(race_canceller, NULL);
            }
            assert_int_equal(gt_run(), 0);
            assert_int_equal(R.cancel_rc, 0);
            assert_int_equal(R.ran, 1);
            assert_true(R.sleep_rc == 0 || R.sleep_rc == -ECANCELED);
            assert_int_equal(R.after_rc, -ECANCELED);
        }
    }
}

/* Handoff on an unbuffered channel, then cancel: the receiver got it. */
static struct {
    gt_chan *ch;
    int64_t rx;
    int rx_rc, rx_val, rx_rc2, tx_rc, cancel_rc, drained, drain_rc;
} H;

static void h_receiver(void *arg)
{
    (void)arg;
    int v = -1;
    H.rx_rc = gt_chan_recv(H.ch, &v, -1);
    H.rx_val = v;
    H.rx_rc2 = gt_chan_recv(H.ch, &v, -1);
}

static void h_sender(void *arg)
{
    (void)arg;
    int v = 42;
    H.tx_rc = gt_chan_send(H.ch, &v, -1);
    H.cancel_rc = gt_cancel(H.rx);
}

static void h_drainer(void *arg)
{
    (void)arg;
    int v = -1;
    gt_sleep(gt_now() + 2);
    H.drain_rc = gt_chan_recv(H.ch, &v, 0);
    if (H.drain_rc == 0 && v == 42)
        H.drained = 1;
}

static void test_cancel_race_handoff(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 1; cap++) {
        memset(&H, 0, sizeof H);
        assert_int_equal(gt_chan_make(&H.ch, sizeof(int), cap), 0);
        H.rx = tg_spawn(h_receiver, NULL);
        tg_spawn(h_sender, NULL);
        tg_spawn(h_drainer, NULL);
        assert_int_equal(gt_run(), 0);
        assert_int_equal(H.tx_rc, 0);
        assert_int_equal(H.cancel_rc, 0);
        /* The element was sent once: received xor still buffered. */
        if (cap == 0) {
            assert_int_equal(H.rx_rc, 0);
            assert_int_equal(H.rx_val, 42);
        } else {
            assert_true(H.rx_rc == 0 || H.rx_rc == -ECANCELED);
            if (H.rx_rc == 0)
                assert_int_equal(H.rx_val, 42);
            assert_int_equal((H.rx_rc == 0) + H.drained, 1);
        }
        assert_int_equal(H.rx_rc2, -ECANCELED);
        assert_int_equal(gt_chan_free(H.ch), 0);
    }
}

/* Release then cancel a semaphore waiter: the unit is never lost. */
static struct {
    gt_sem *s;
    int64_t w;
    int w_rc, rel_rc, cancel_rc, probe_rc;
} S;

static void s_waiter(void *arg)
{
    (void)arg;
    S.w_rc = gt_sem_acquire(S.s, -1);
}

static void s_releaser(void *arg)
{
    (void)arg;
    S.rel_rc = gt_sem_release(S.s);
    S.cancel_rc = gt_cancel(S.w);
}

static void s_probe(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 2);
    S.probe_rc = gt_sem_acquire(S.s, 0);
}

static void test_cancel_race_sem(void **state)
{
    (void)state;
    memset(&S, 0, sizeof S);
    assert_int_equal(gt_sem_make(&S.s, 0), 0);
    S.w = tg_spawn(s_waiter, NULL);
    tg_spawn(s_releaser, NULL);
    tg_spawn(s_probe, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(S.rel_rc, 0);
    assert_int_equal(S.cancel_rc, 0);
    assert_true(S.w_rc == 0 || S.w_rc == -ECANCELED);
    assert_true(S.probe_rc == 0 || S.probe_rc == -ETIMEDOUT);
    /* Exactly one of them holds the single unit. */
    assert_int_equal((S.w_rc == 0) + (S.probe_rc == 0), 1);
    assert_int_equal(gt_sem_free(S.s), 0);
}

/* --- mass cancel of threads parked on everything ----------------------- */

static struct {
    gt_chan *ch;
    gt_sem *sem;
    int64_t ids[100];
    int rc[100];
} M;

static void m_parker(void *arg)
{
    int i = (int)(intptr_t)arg;
    int v = 0;
    switch (i % 5) {
    case 0: M.rc[i] = gt_sleep(-1); break;
    case 1: M.rc[i] = gt_chan_recv(M.ch, &v, -1); break;
    case 2: M.rc[i] = gt_sem_acquire(M.sem, -1); break;
    case 3: M.rc[i] = gt_join(M.ids[i - 3], -1); break;
    default: {
        gt_chan_op op[2] = {{M.ch, GT_RECV, &v, 0}, {M.ch, GT_RECV, &v, 0}};
        M.rc[i] = gt_choose(op, 2, -1);
        break;
    }
    }
}

static void test_cancel_mass(void **state)
{
    (void)state;
    memset(&M, 0, sizeof M);
    assert_int_equal(gt_chan_make(&M.ch, sizeof(int), 0), 0);
    assert_int_equal(gt_sem_make(&M.sem, 0), 0);
    for (int i = 0; i < 100; i++) {
        M.ids[i] = tg_spawn(m_parker, (void *)(intptr_t)i);
        M.rc[i] = 12345;
    }
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(tg_live_count(), 100);
    assert_int_equal(gt_chan_free(M.ch), -EBUSY);
    assert_int_equal(gt_sem_free(M.sem), -EBUSY);
    /* Cancel in reverse order, from the main stack. */
    for (int i = 99; i >= 0; i--)
        assert_int_equal(gt_cancel(M.ids[i]), 0);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 100; i++) {
        if (i % 5 == 3)
            assert_true(M.rc[i] == 0 || M.rc[i] == -ECANCELED);
        else
            assert_int_equal(M.rc[i], -ECANCELED);
    }
    /* No stale waiters remain. */
    assert_int_equal(gt_chan_free(M.ch), 0);
    assert_int_equal(gt_sem_free(M.sem), 0);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_cancel_parked_sleeper),
        TG_TEST(test_cancel_unstarted),
        TG_TEST(test_cancel_finished_unknown),
        TG_TEST(test_cancel_self),
        TG_TEST(test_cancel_during_yield),
        TG_TEST(test_cancel_not_inherited),
        TG_TEST(test_cancel_while_joined),
        TG_TEST(test_cancel_joiner),
        TG_TEST(test_cancel_race_timer),
        TG_TEST(test_cancel_race_handoff),
        TG_TEST(test_cancel_race_sem),
        TG_TEST(test_cancel_mass),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
