/* Semaphores and mutexes. */
#define _GNU_SOURCE 1
#include "gt_test.h"

static struct {
    gt_sem *s;
    int inside, max_inside, total, bad;
    int rc[16];
    int64_t t[4];
} M;

static void reset(void)
{
    memset(&M, 0, sizeof M);
    for (int i = 0; i < 16; i++)
        M.rc[i] = 12345;
}

static void test_make_bad(void **state)
{
    (void)state;
    gt_sem *s = NULL;
    assert_int_equal(gt_sem_make(NULL, 1), -EINVAL);
    assert_int_equal(gt_sem_make(&s, 0), 0);
    assert_non_null(s);
    assert_int_equal(gt_sem_free(s), 0);
    assert_int_equal(gt_sem_make(&s, 1000000), 0);
    assert_int_equal(gt_sem_free(s), 0);
}

/* --- mutual exclusion ---------------------------------------------------- */

static void worker(void *arg)
{
    int yields = (int)(intptr_t)arg;
    for (int i = 0; i < 20; i++) {
        if (gt_sem_acquire(M.s, -1) != 0) {
            M.bad++;
            return;
        }
        M.inside++;
        if (M.inside > M.max_inside)
            M.max_inside = M.inside;
        for (int y = 0; y < yields; y++)
            gt_yield();
        if (i % 5 == 0)
            gt_sleep(gt_now() + 1);
        M.inside--;
        M.total++;
        if (gt_sem_release(M.s) != 0)
            M.bad++;
        gt_yield();
    }
}

static void test_mutex(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 1), 0);
    for (int i = 0; i < 5; i++)
        tg_spawn(worker, (void *)(intptr_t)(i + 1));
    assert_int_equal(gt_run(), 0);
    assert_int_equal(M.bad, 0);
    assert_int_equal(M.max_inside, 1);
    assert_int_equal(M.inside, 0);
    assert_int_equal(M.total, 100);
    assert_int_equal(gt_sem_free(M.s), 0);
}

static void test_counting(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 3), 0);
    for (int i = 0; i < 8; i++)
        tg_spawn(worker, (void *)(intptr_t)2);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(M.bad, 0);
    assert_int_equal(M.max_inside, 3);
    assert_int_equal(M.total, 160);
    assert_int_equal(gt_sem_free(M.s), 0);
}

/* --- FIFO wake-up ------------------------------------------------------ */

static void fifo_waiter(void *arg)
{
    int me = (int)(intptr_t)arg;
    int rc = gt_sem_acquire(M.s, -1);
    tg_event(rc == 0 ? me : -100 - me);
}

static void fifo_releaser(void *arg)
{
    (void)arg;
    for (int i = 0; i < 5; i++) {
        M.rc[i] = gt_sem_release(M.s);
        /* First come, first served: the unit just released belongs to the
         * oldest waiter, a newcomer trying once gets nothing. */
        M.rc[5 + i] = gt_sem_acquire(M.s, 0);
        gt_yield();
    }
}

static void test_fifo(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    /* They park in spawn order 1..5. */
    for (int i = 0; i < 5; i++)
        tg_spawn(fifo_waiter, (void *)(intptr_t)(i + 1));
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    tg_spawn(fifo_releaser, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(tg_log.v[i], i + 1);
        assert_int_equal(M.rc[i], 0);
        assert_int_equal(M.rc[5 + i], -ETIMEDOUT);
    }
    assert_int_equal(gt_sem_free(M.s), 0);
}

static int64_t arrival_base;

static void late_waiter(void *arg)
{
    int me = (int)(intptr_t)arg;
    gt_sleep(arrival_base + me * 15);
    int rc = gt_sem_acquire(M.s, -1);
    tg_event(rc == 0 ? me : -100 - me);
}

static void slow_releaser(void *arg)
{
    (void)arg;
    gt_sleep(arrival_base + 100);
    for (int i = 0; i < 4; i++)
        gt_sem_release(M.s);
}

static void test_fifo_arrival(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    /* Spawned 4,3,2,1 but arrive 1,2,3,4 (sleep until base + me*15 ms). */
    arrival_base = gt_now() + 10;
    for (int i = 4; i >= 1; i--)
        tg_spawn(late_waiter, (void *)(intptr_t)i);
    tg_spawn(slow_releaser, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tg_log.v[i], i + 1);
    assert_int_equal(gt_sem_free(M.s), 0);
}

/* --- timeouts ---------------------------------------------------------- */

static void timed_acquirer(void *arg)
{
    (void)arg;
    M.t[0] = gt_now();
    M.rc[0] = gt_sem_acquire(M.s, M.t[0] + 30);
    M.t[1] = gt_now();
    M.rc[1] = gt_sem_acquire(M.s, 0);
    M.rc[2] = gt_sem_acquire(M.s, gt_now() - 10);
    /* The timed-out waiter left the queue: a release is kept for later. */
    M.rc[3] = gt_sem_release(M.s);
    M.rc[4] = gt_sem_acquire(M.s, 0);
    M.rc[5] = gt_sem_acquire(M.s, 0);
}

static void test_timeout(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    tg_spawn(timed_acquirer, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(M.rc[0], -ETIMEDOUT);
    assert_true(M.t[1] - M.t[0] >= 30);
    assert_true(M.t[1] - M.t[0] < 30 + tg_slack_ms());
    assert_int_equal(M.rc[1], -ETIMEDOUT);
    assert_int_equal(M.rc[2], -ETIMEDOUT);
    assert_int_equal(M.rc[3], 0);
    assert_int_equal(M.rc[4], 0);
    assert_int_equal(M.rc[5], -ETIMEDOUT);
    assert_int_equal(gt_sem_free(M.s), 0);
}

/* A timed-out waiter in the middle of the queue is skipped. */
static void mid_waiter(void *arg)
{
    int me = (int)(intptr_t)arg;
    int64_t dl = me == 2 ? gt_now() + 20 : -1;
    int rc = gt_sem_acquire(M.s, dl);
    tg_event(rc == 0 ? me : -me);
}

static void mid_releaser(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 80);
    M.rc[0] = gt_sem_release(M.s);
    M.rc[1] = gt_sem_release(M.s);
}

static void test_timeout_mid_queue(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    for (int i = 1; i <= 3; i++)
        tg_spawn(mid_waiter, (void *)(intptr_t)i);
    tg_spawn(mid_releaser, NULL);
    assert_int_equal(gt_run(), 0);
    static const int64_t want[] = {-2, 1, 3};
    assert_int_equal(tg_log.n, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(tg_log.v[i], want[i]);
    assert_int_equal(gt_sem_free(M.s), 0);
}

/* --- free while waited on ------------------------------------------------ */

static void test_free_busy(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    tg_spawn(fifo_waiter, (void *)(intptr_t)1);
    tg_spawn(fifo_waiter, (void *)(intptr_t)2);
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(gt_sem_free(M.s), -EBUSY);
    /* Release from the main stack (does not park). */
    assert_int_equal(gt_sem_release(M.s), 0);
    assert_int_equal(gt_sem_free(M.s), -EBUSY);
    assert_int_equal(gt_sem_release(M.s), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 2);
    assert_int_equal(tg_log.v[0], 1);
    assert_int_equal(tg_log.v[1], 2);
    assert_int_equal(gt_sem_free(M.s), 0);
}

/* A cancelled waiter leaves the queue; the next release goes on. */
static void test_cancel_waiter(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_sem_make(&M.s, 0), 0);
    int64_t a = tg_spawn(fifo_waiter, (void *)(intptr_t)1);
    tg_spawn(fifo_waiter, (void *)(intptr_t)2);
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(gt_cancel(a), 0);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(gt_sem_release(M.s), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(tg_log.n, 2);
    assert_int_equal(tg_log.v[0], -101);
    assert_int_equal(tg_log.v[1], 2);
    assert_int_equal(gt_sem_free(M.s), 0);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_make_bad),   TG_TEST(test_mutex),
        TG_TEST(test_counting),   TG_TEST(test_fifo),
        TG_TEST(test_fifo_arrival), TG_TEST(test_timeout),
        TG_TEST(test_timeout_mid_queue), TG_TEST(test_free_busy),
        TG_TEST(test_cancel_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
