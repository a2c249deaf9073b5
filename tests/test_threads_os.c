/* Two OS threads, each with its own scheduler, green threads and channels,
 * running at the same time.  Nothing is shared between them except the
 * per-OS-thread result structs written by their own loop and a barrier
 * that makes the two loops overlap. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <pthread.h>

#define MSGS 5000
#define WORKERS 8

static pthread_barrier_t barrier;

typedef struct os_ctx {
    int which;
    /* Filled on the OS thread, checked by the test afterwards. */
    int before_alive;    /* gt_dispatch(0) before any spawn: 0 */
    int64_t self_outside;
    int64_t ids[WORKERS + 2];
    int64_t seen_self[WORKERS + 2];
    int run_rc;
    int after_alive;
    int bad;
    int64_t sum;
    int received;
    int live_at_barrier;
    int sleep_rc;
    int chan_free_rc[2];
    int sem_free_rc;
    gt_chan *ch, *done;
    gt_sem *sem;
} os_ctx;

static void producer(void *arg)
{
    os_ctx *c = arg;
    int me = 0;
    for (int i = 0; i < WORKERS; i++)
        if (c->ids[i] == gt_self())
            me = i;
    c->seen_self[me] = gt_self();
    for (int i = 0; i < MSGS / WORKERS; i++) {
        int v = me * (MSGS / WORKERS) + i;
        if (gt_sem_acquire(c->sem, -1) != 0)
            c->bad++;
        if (gt_chan_send(c->ch, &v, -1) != 0)
            c->bad++;
        gt_sem_release(c->sem);
        if (i % 50 == 0)
            gt_yield();
    }
    int one = 1;
    if (gt_chan_send(c->done, &one, -1) != 0)
        c->bad++;
}

static void consumer(void *arg)
{
    os_ctx *c = arg;
    c->seen_self[WORKERS] = gt_self();
    int finished = 0;
    while (finished < WORKERS && c->received <= MSGS) {
        int v = 0, d = 0;
        gt_chan_op ops[2] = {{c->ch, GT_RECV, &v, 0},
                             {c->done, GT_RECV, &d, 0}};
        int k = gt_choose(ops, 2, -1);
        if (k == 0 && ops[0].result == 0) {
            c->sum += v;
            c->received++;
        } else if (k == 1 && ops[1].result == 0) {
            finished++;
        } else {
            c->bad++;
            break;
        }
    }
    /* Drain whatever is still buffered. */
    int v;
    while (c->received < MSGS && gt_chan_recv(c->ch, &v, 0) == 0) {
        c->sum += v;
        c->received++;
    }
}

static void at_barrier(void *arg)
{
    os_ctx *c = arg;
    c->seen_self[WORKERS + 1] = gt_self();
    /* Both OS threads are inside their loops, with live green threads,
     * at this point.  This blocks this OS thread only. */
    pthread_barrier_wait(&barrier);
    FILE *f = fopen("/dev/null", "w");
    if (f) {
        c->live_at_barrier = gt_dump(f);
        fclose(f);
    }
    c->sleep_rc = gt_sleep(gt_now() + 5);
    pthread_barrier_wait(&barrier);
}

static void *os_main(void *arg)
{
    os_ctx *c = arg;
    c->self_outside = gt_self();
    c->before_alive = gt_dispatch(0);
    if (gt_chan_make(&c->ch, sizeof(int), 4) != 0 ||
        gt_chan_make(&c->done, sizeof(int), 0) != 0 ||
        gt_sem_make(&c->sem, 2) != 0) {
        c->bad = 1000;
        return NULL;
    }
    for (int i = 0; i < WORKERS; i++) {
        gt_attr a;
        memset(&a, 0, sizeof a);
        a.flags = (i % 2) ? GT_NOGUARD : 0;
        a.name = c->which ? "os-b" : "os-a";
        c->ids[i] = gt_spawn_attr(producer, c, &a);
    }
    c->ids[WORKERS] = gt_spawn(consumer, c);
    c->ids[WORKERS + 1] = gt_spawn(at_barrier, c);
    c->run_rc = gt_run();
    c->after_alive = gt_dispatch(0);
    c->chan_free_rc[0] = gt_chan_free(c->ch);
    c->chan_free_rc[1] = gt_chan_free(c->done);
    c->sem_free_rc = gt_sem_free(c->sem);
    return NULL;
}

static void test_two_loops(void **state)
{
    (void)state;
    static os_ctx ctx[2];
    memset(ctx, 0, sizeof ctx);
    assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        ctx[i].which = i;
        assert_int_equal(pthread_create(&th[i], NULL, os_main, &ctx[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    pthread_barrier_destroy(&barrier);

    int64_t want_sum = (int64_t)MSGS * (MSGS - 1) / 2;
    for (int i = 0; i < 2; i++) {
        os_ctx *c = &ctx[i];
        assert_int_equal(c->self_outside, 0);
        assert_int_equal(c->before_alive, 0);
        assert_int_equal(c->bad, 0);
        assert_int_equal(c->run_rc, 0);
        assert_int_equal(c->after_alive, 0);
        assert_int_equal(c->received, MSGS);
        assert_int_equal(c->sum, want_sum);
        /* Each loop sees only its own green threads. */
        assert_true(c->live_at_barrier >= 1);
        assert_true(c->live_at_barrier <= WORKERS + 2);
        assert_int_equal(c->sleep_rc, 0);
        for (int k = 0; k < WORKERS + 2; k++) {
            assert_true(c->ids[k] > 0);
            assert_int_equal(c->seen_self[k], c->ids[k]);
        }
        assert_int_equal(c->chan_free_rc[0], 0);
        assert_int_equal(c->chan_free_rc[1], 0);
        assert_int_equal(c->sem_free_rc, 0);
    }
    /* The main thread's own scheduler saw none of it. */
    assert_int_equal(gt_dispatch(0), 0);
    assert_int_equal(tg_live_count(), 0);
}

/* Several OS threads created and ended one after another: each gets a
 * fresh scheduler, and the ended ones leave nothing behind (Valgrind). */
static void *short_os(void *arg)
{
    os_ctx *c = arg;
    c->before_alive = gt_dispatch(0);
    if (gt_chan_make(&c->ch, sizeof(int), 4) != 0 ||
        gt_chan_make(&c->done, sizeof(int), 0) != 0 ||
        gt_sem_make(&c->sem, 1) != 0) {
        c->bad = 1000;
        return NULL;
    }
    for (int i = 0; i < WORKERS; i++)
        c->ids[i] = gt_spawn(producer, c);
    c->ids[WORKERS] = gt_spawn(consumer, c);
    c->run_rc = gt_run();
    c->chan_free_rc[0] = gt_chan_free(c->ch);
    c->chan_free_rc[1] = gt_chan_free(c->done);
    c->sem_free_rc = gt_sem_free(c->sem);
    return NULL;
}

static void test_sequential_os_threads(void **state)
{
    (void)state;
    for (int r = 0; r < 5; r++) {
        os_ctx c;
        memset(&c, 0, sizeof c);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, short_os, &c), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_int_equal(c.before_alive, 0);
        assert_int_equal(c.bad, 0);
        assert_int_equal(c.run_rc, 0);
        assert_int_equal(c.received, MSGS);
        assert_int_equal(c.chan_free_rc[0], 0);
        assert_int_equal(c.chan_free_rc[1], 0);
        assert_int_equal(c.sem_free_rc, 0);
    }
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_loops),
        cmocka_unit_test(test_sequential_os_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
