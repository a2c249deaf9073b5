/* Objects used from the wrong OS thread, and the texts of every code.
 *
 * A channel or semaphore belongs to the OS thread that made it (gt.h).
 * Used from another OS thread it must refuse with GT_EOWNER and change
 * nothing; before, such a call linked the other thread's green threads
 * into its wait lists (a receiver later run on the wrong OS thread, a
 * segfault, false stack-overflow reports under ASan).  Each test makes
 * the objects here, runs a second OS thread with a scheduler of its own
 * that tries every call on them, and then checks here that they still
 * work as if nothing had happened. */
#include "gt_test.h"

#include <pthread.h>

#include <socketloop/net.h>

typedef struct foreign_calls {
    gt_chan *ch;
    gt_sem *sem;
    /* Results of the calls made on the other OS thread. */
    int send0, send_wait, recv0, recv_wait, choose, close_out, close_in;
    int free_in, acquire0, acquire_wait, release_in, release_out, free_out;
    int run;
} foreign_calls;

static void foreign_body(void *p)
{
    foreign_calls *c = p;
    int v = 7;
    c->send0 = gt_chan_send(c->ch, &v, 0);
    c->recv0 = gt_chan_recv(c->ch, &v, 0);
    /* These would park on this OS thread with the channel's lists. */
    c->send_wait = gt_chan_send(c->ch, &v, gt_now() + tg_slack_ms());
    c->recv_wait = gt_chan_recv(c->ch, &v, -1);
    gt_chan_op op = {c->ch, GT_RECV, &v, 0};
    c->choose = gt_choose(&op, 1, gt_now() + tg_slack_ms());
    c->acquire0 = gt_sem_acquire(c->sem, 0);
    c->acquire_wait = gt_sem_acquire(c->sem, -1);
    c->release_in = gt_sem_release(c->sem);
    c->close_in = gt_chan_close(c->ch);
    c->free_in = gt_chan_free(c->ch);
}

static void *foreign_thread(void *p)
{
    foreign_calls *c = p;
    /* Outside green threads too: these never need one. */
    c->release_out = gt_sem_release(c->sem);
    c->close_out = gt_chan_close(c->ch);
    gt_spawn(foreign_body, c);
    c->run = gt_run();
    c->free_out = gt_sem_free(c->sem);
    return NULL;
}

typedef struct home_check {
    gt_chan *ch;
    gt_sem *sem;
    int sent, recvd, got, acq1, acq2;
} home_check;

static void home_body(void *p)
{
    home_check *h = p;
    int v = 42;
    h->sent = gt_chan_send(h->ch, &v, 0); /* not closed, room for one */
    v = 0;
    h->recvd = gt_chan_recv(h->ch, &v, 0);
    h->got = v;
    h->acq1 = gt_sem_acquire(h->sem, 0); /* the one unit it was made with */
    h->acq2 = gt_sem_acquire(h->sem, 0); /* and no more */
}

static void test_chan_sem_other_thread(void **state)
{
    (void)state;
    foreign_calls c;
    memset(&c, 0, sizeof c);
    assert_int_equal(gt_chan_make(&c.ch, sizeof(int), 1), 0);
    assert_int_equal(gt_sem_make(&c.sem, 1), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, foreign_thread, &c), 0);
    assert_int_equal(pthread_join(th, NULL), 0);

    const int *rc[] = {&c.send0,        &c.send_wait,  &c.recv0,
                       &c.recv_wait,    &c.choose,     &c.close_out,
                       &c.close_in,     &c.free_in,    &c.acquire0,
                       &c.acquire_wait, &c.release_in, &c.release_out,
                       &c.free_out};
    for (size_t i = 0; i < sizeof rc / sizeof rc[0]; i++) {
        if (*rc[i] != GT_EOWNER) fprintf(stderr, "  call %zu: %d\n", i, *rc[i]);
        assert_int_equal(*rc[i], GT_EOWNER);
    }
    assert_int_equal(c.run, 0);

    /* Unchanged: open, empty, and the semaphore still has one unit. */
    home_check h = {c.ch, c.sem, 1, 1, 0, 1, 1};
    tg_spawn(home_body, &h);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(h.sent, 0);
    assert_int_equal(h.recvd, 0);
    assert_int_equal(h.got, 42);
    assert_int_equal(h.acq1, 0);
    assert_int_equal(h.acq2, -ETIMEDOUT);
    assert_int_equal(gt_chan_free(c.ch), 0);
    assert_int_equal(gt_sem_free(c.sem), 0);
}

/* An OS thread that never made a scheduler is not the owner either. */
static void *bare_thread(void *p)
{
    gt_sem *s = p;
    return (void *)(intptr_t)gt_sem_release(s);
}

static void test_sem_thread_without_scheduler(void **state)
{
    (void)state;
    gt_sem *s;
    void *ret;
    assert_int_equal(gt_sem_make(&s, 0), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bare_thread, s), 0);
    assert_int_equal(pthread_join(th, &ret), 0);
    assert_int_equal((int)(intptr_t)ret, GT_EOWNER);
    assert_int_equal(gt_sem_free(s), 0);
}

/* gt_run from a green thread is refused (gt.h lists -EPERM). */
static int nested_run_rc;
static void nested_run(void *p)
{
    (void)p;
    nested_run_rc = gt_run();
}

static void test_run_from_green_thread(void **state)
{
    (void)state;
    nested_run_rc = 1;
    tg_spawn(nested_run, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(nested_run_rc, -EPERM);
}

/* One table of texts: every code of the library has its own, the same
 * from gt_strerror and net_strerror, and none is "unknown error". */
static void test_strerror_every_code(void **state)
{
    (void)state;
    static const int codes[] = {GT_EMAPLIMIT,   GT_EOWNER,     NET_ECLOSED,
                                NET_EFDSETSIZE, NET_ENOTFOUND, NET_ERESOLVE,
                                NET_ETRYAGAIN,  NET_EEOF};
    const char *unknown = gt_strerror(-4999);
    int n = (int)(sizeof codes / sizeof codes[0]);
    for (int i = 0; i < n; i++) {
        const char *t = gt_strerror(codes[i]);
        assert_non_null(t);
        assert_string_not_equal(t, unknown);
        assert_string_equal(t, net_strerror(codes[i]));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(t, gt_strerror(codes[j]));
    }
    assert_non_null(strstr(gt_strerror(GT_EOWNER), "another OS thread"));
    assert_string_equal(net_strerror(-4999), unknown);
    assert_string_equal(gt_strerror(-EBADF), net_strerror(-EBADF));
    assert_string_equal(gt_strerror(-EBADF), strerrordesc_np(EBADF));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TG_TEST(test_chan_sem_other_thread),
        TG_TEST(test_sem_thread_without_scheduler),
        TG_TEST(test_run_from_green_thread),
        TG_TEST(test_strerror_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
