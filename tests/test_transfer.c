/* gt_transfer: symmetric coroutines. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#define ROUNDS 1000

static struct {
    int64_t a, b, c;
    int rc[16];
    int errors;     /* count of unexpected results inside the game */
    int last_seen;  /* last value a received */
    int b_started;
    void *out;
    int64_t t0, t1;
} X;

static void reset(void)
{
    memset(&X, 0, sizeof X);
    for (int i = 0; i < 16; i++)
        X.rc[i] = 12345;
}

/* b is started by a's first transfer (the value is dropped), then the two
 * pass an increasing counter back and forth. */
static void pong(void *arg)
{
    (void)arg;
    X.b_started++;
    tg_event(2);
    void *in = NULL;
    /* First hand-off back to a carries 1. */
    if (gt_transfer(X.a, (void *)(intptr_t)1, &in, -1) != 0)
        X.errors++;
    for (;;) {
        intptr_t v = (intptr_t)in;
        if (v >= 2 * ROUNDS) {
            /* Game over: a is parked in gt_transfer; wake it by cancel. */
            X.rc[1] = gt_cancel(X.a);
            break;
        }
        if (v % 2 != 0)
            X.errors++;
        if (gt_transfer(X.a, (void *)(v + 1), &in, -1) != 0) {
            X.errors++;
            break;
        }
    }
    tg_event(3);
}

static void ping(void *arg)
{
    (void)arg;
    tg_event(1);
    void *in = NULL;
    /* Starts b; this value is dropped. */
    int rc = gt_transfer(X.b, (void *)(intptr_t)777, &in, -1);
    if (rc != 0)
        X.errors++;
    for (;;) {
        intptr_t v = (intptr_t)in;
        if (v % 2 != 1 || v < X.last_seen)
            X.errors++;
        X.last_seen = (int)v;
        rc = gt_transfer(X.b, (void *)(v + 1), &in, -1);
        if (rc != 0)
            break;
    }
    X.rc[0] = rc;
    tg_event(4);
}

/* An observer that must not run between the transfers: transfers hand
 * control straight over. */
static void observer(void *arg)
{
    (void)arg;
    X.rc[2] = X.last_seen;
    tg_event(5);
}

static void test_ping_pong(void **state)
{
    (void)state;
    reset();
    X.a = tg_spawn(ping, NULL);
    X.b = tg_spawn(pong, NULL);
    tg_spawn(observer, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(X.errors, 0);
    assert_int_equal(X.b_started, 1);
    assert_int_equal(X.last_seen, 2 * ROUNDS - 1);
    assert_int_equal(X.rc[1], 0);
    assert_int_equal(X.rc[0], -ECANCELED);
    /* b started by transfer before the observer got its turn. */
    assert_int_equal(tg_log.v[0], 1);
    assert_int_equal(tg_log.v[1], 2);
}

/* --- out == NULL, timeout ------------------------------------------------ */

static void starter_timeout(void *arg)
{
    (void)arg;
    X.t0 = gt_now();
    /* c starts, does not transfer back and ends: we time out. */
    X.rc[0] = gt_transfer(X.c, (void *)(intptr_t)5, NULL, X.t0 + 30);
    X.t1 = gt_now();
}

static void just_returns(void *arg)
{
    (void)arg;
    tg_event(9);
}

static void test_transfer_timeout(void **state)
{
    (void)state;
    reset();
    X.a = tg_spawn(starter_timeout, NULL);
    X.c = tg_spawn(just_returns, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(X.rc[0], -ETIMEDOUT);
    assert_int_equal(tg_log.n, 1);
    assert_true(X.t1 - X.t0 >= 30);
    assert_true(X.t1 - X.t0 < 30 + tg_slack_ms());
}

/* --- error cases ------------------------------------------------------- */

static void sleeper(void *arg)
{
    (void)arg;
    X.rc[10] = gt_sleep(gt_now() + 20);
}

static void ready_yielder(void *arg)
{
    (void)arg;
    X.rc[11] = gt_yield();
}

static void recv_parked(void *arg)
{
    gt_chan *ch = arg;
    int v;
    X.rc[12] = gt_chan_recv(ch, &v, gt_now() + 20);
}

static void errors(void *arg)
{
    int64_t *ids = arg;
    X.rc[0] = gt_transfer(gt_self(), NULL, NULL, -1);
    X.rc[1] = gt_transfer(ids[0], NULL, NULL, -1); /* sleeping */
    X.rc[2] = gt_transfer(ids[1], NULL, NULL, -1); /* ready in the queue */
    X.rc[3] = gt_transfer(ids[2], NULL, NULL, -1); /* parked in recv */
    X.rc[4] = gt_transfer(999999999, NULL, NULL, -1);
    X.rc[5] = gt_transfer(0, NULL, NULL, -1);
    X.rc[6] = gt_transfer(-5, NULL, NULL, -1);
    X.rc[7] = gt_transfer(gt_self(), NULL, NULL, 0);
}

static void test_transfer_errors(void **state)
{
    (void)state;
    reset();
    gt_chan *ch = NULL;
    assert_int_equal(gt_chan_make(&ch, sizeof(int), 0), 0);
    int64_t ids[3];
    ids[0] = tg_spawn(sleeper, NULL);
    ids[1] = tg_spawn(ready_yielder, NULL);
    ids[2] = tg_spawn(recv_parked, ch);
    tg_spawn(errors, ids);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(X.rc[0], -EINVAL);
    assert_int_equal(X.rc[1], -EBUSY);
    assert_int_equal(X.rc[2], -EBUSY);
    assert_int_equal(X.rc[3], -EBUSY);
    assert_int_equal(X.rc[4], -ESRCH);
    assert_int_equal(X.rc[5], -ESRCH);
    assert_int_equal(X.rc[6], -ESRCH);
    assert_int_equal(X.rc[7], -EINVAL);
    /* The targets were not disturbed. */
    assert_int_equal(X.rc[10], 0);
    assert_int_equal(X.rc[11], 0);
    assert_int_equal(X.rc[12], -ETIMEDOUT);
    assert_int_equal(gt_chan_free(ch), 0);
}

/* --- a chain of three: a -> b -> c -> a ------------------------------- */

static struct {
    int64_t id[3];
    int hops[3];
    int rc[3];
} T3;

static void ring(void *arg)
{
    int me = (int)(intptr_t)arg;
    int next = (me + 1) % 3;
    void *in = NULL;
    int rc = 0;
    for (int i = 0; i < 100; i++) {
        rc = gt_transfer(T3.id[next], (void *)(intptr_t)me, &in, -1);
        if (rc != 0)
            break;
        /* The value comes from the one before us in the ring (or is the
         * dropped start value). */
        if ((intptr_t)in == (me + 2) % 3)
            T3.hops[me]++;
    }
    T3.rc[me] = rc;
    /* Wake the next one if it is still parked, so everybody ends. */
    gt_cancel(T3.id[next]);
}

static void test_transfer_ring(void **state)
{
    (void)state;
    memset(&T3, 0, sizeof T3);
    for (int i = 0; i < 3; i++)
        T3.id[i] = tg_spawn(ring, (void *)(intptr_t)i);
    assert_int_equal(gt_run(), 0);
    int total = T3.hops[0] + T3.hops[1] + T3.hops[2];
    assert_true(total >= 250);
    for (int i = 0; i < 3; i++)
        assert_true(T3.rc[i] == 0 || T3.rc[i] == -ECANCELED);
}

/* --- transfers do not starve timers ------------------------------------
 * Two threads hand control back and forth with gt_transfer for ever; a
 * sleeper with a 5 ms deadline must still wake ("the loop regains control
 * ... after a bounded number of switches so that I/O and timers are never
 * starved").  The ping-pong is bounded by 2 s of wall time. */
static struct {
    int64_t a, b;
    int woke;
    int stopped_by_flag;
    int64_t elapsed;
    long hops;
} P;

static void pp_a(void *arg)
{
    (void)arg;
    void *in;
    int64_t t0 = gt_now();
    while (!P.woke && gt_now() - t0 < 2000) {
        P.hops++;
        if (gt_transfer(P.b, NULL, &in, -1) != 0)
            break;
    }
    P.stopped_by_flag = P.woke;
    P.elapsed = gt_now() - t0;
    gt_cancel(P.b);
}

static void pp_b(void *arg)
{
    (void)arg;
    void *in;
    for (long i = 0; i < 1000000000L; i++)
        if (gt_transfer(P.a, NULL, &in, -1) != 0)
            break;
}

static void pp_sleeper(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 5);
    P.woke = 1;
}

static void test_transfer_no_starvation(void **state)
{
    (void)state;
    memset(&P, 0, sizeof P);
    tg_spawn(pp_sleeper, NULL);
    P.a = tg_spawn(pp_a, NULL);
    P.b = tg_spawn(pp_b, NULL);
    assert_int_equal(gt_run(), 0);
    print_message("%ld transfers in %lld ms; the 5 ms sleeper %s\n", P.hops,
                  (long long)P.elapsed,
                  P.stopped_by_flag ? "woke meanwhile" : "was starved");
    assert_int_equal(P.stopped_by_flag, 1);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_ping_pong),
        TG_TEST(test_transfer_timeout),
        TG_TEST(test_transfer_errors),
        TG_TEST(test_transfer_ring),
        TG_TEST(test_transfer_no_starvation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
