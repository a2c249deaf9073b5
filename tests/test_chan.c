/* Channels and gt_choose. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#if TG_ASAN
/* A huge allocation request must come back as an error, not an ASan
 * abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}
#endif

typedef struct elem {
    int64_t seq;
    int64_t neg;
    char tag[8];
} elem;

static elem mk(int64_t i)
{
    elem e;
    memset(&e, 0, sizeof e);
    e.seq = i;
    e.neg = -i;
    snprintf(e.tag, sizeof e.tag, "e%d", (int)(i % 1000));
    return e;
}

static int ok(const elem *e, int64_t i)
{
    elem w = mk(i);
    return memcmp(e, &w, sizeof w) == 0;
}

static struct {
    gt_chan *c[4];
    int rc[32];
    int64_t t[8];
    int bad;
    int count;
    int64_t sum;
    int vals[8];
} K;

static void reset(void)
{
    memset(&K, 0, sizeof K);
    for (int i = 0; i < 32; i++)
        K.rc[i] = 12345;
}

static void free_chans(void)
{
    for (int i = 0; i < 4; i++) {
        if (K.c[i] != NULL)
            assert_int_equal(gt_chan_free(K.c[i]), 0);
        K.c[i] = NULL;
    }
}

/* --- make ---------------------------------------------------------------- */

static void test_make_bad(void **state)
{
    (void)state;
    gt_chan *ch = (gt_chan *)(uintptr_t)0x1;
    assert_int_equal(gt_chan_make(NULL, 4, 0), -EINVAL);
    assert_int_equal(gt_chan_make(NULL, 4, 8), -EINVAL);
    assert_int_equal(gt_chan_make(&ch, 0, 0), -EINVAL);
    assert_int_equal(gt_chan_make(&ch, 0, 5), -EINVAL);
    /* elem_size * capacity overflows size_t: refused, not truncated. */
    int rc = gt_chan_make(&ch, SIZE_MAX / 2 + 1, 2);
    assert_true(rc < 0);
    rc = gt_chan_make(&ch, 1, 1);
    assert_int_equal(rc, 0);
    assert_non_null(ch);
    assert_int_equal(gt_chan_free(ch), 0);
    /* Odd element sizes, big elements. */
    assert_int_equal(gt_chan_make(&ch, 3, 7), 0);
    assert_int_equal(gt_chan_free(ch), 0);
    assert_int_equal(gt_chan_make(&ch, 100000, 0), 0);
    assert_int_equal(gt_chan_free(ch), 0);
}

/* --- unbuffered rendezvous ------------------------------------------- */

#define RV_N 100

static void rv_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < RV_N; i++) {
        elem e = mk(i);
        int rc = gt_chan_send(K.c[0], &e, -1);
        if (rc != 0)
            K.bad++;
        tg_event(1000 + i); /* send returned */
    }
}

static void rv_receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < RV_N; i++) {
        if (i % 10 == 0)
            gt_sleep(gt_now() + 1);
        tg_event(2000 + i); /* about to receive */
        elem e;
        int rc = gt_chan_recv(K.c[0], &e, -1);
        if (rc != 0 || !ok(&e, i))
            K.bad++;
    }
}

static int pos_of(int64_t v)
{
    for (int i = 0; i < tg_log.n; i++)
        if (tg_log.v[i] == v)
            return i;
    return -1;
}

static void test_unbuffered_rendezvous(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(elem), 0), 0);
    tg_spawn(rv_sender, NULL);
    tg_spawn(rv_receiver, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.bad, 0);
    assert_int_equal(tg_log.lost, 0);
    for (int i = 0; i < RV_N; i++) {
        int s = pos_of(1000 + i), r = pos_of(2000 + i);
        assert_true(s >= 0 && r >= 0);
        /* No send completes before its receiver arrived. */
        assert_true(r < s);
    }
    free_chans();
}

static void rv_try(void *arg)
{
    (void)arg;
    int v = 7;
    K.rc[0] = gt_chan_send(K.c[0], &v, 0);         /* nobody receiving */
    K.rc[1] = gt_chan_recv(K.c[0], &v, 0);         /* nobody sending */
    /* (A deadline already past is not tested here: such a call may park
     * for a moment, and rv_parked_recv would then legitimately take it.) */
    gt_yield(); /* rv_parked_recv parks */
    v = 99;
    K.rc[3] = gt_chan_send(K.c[0], &v, 0); /* a receiver waits: succeeds */
}

static void rv_parked_recv(void *arg)
{
    (void)arg;
    int v = 0;
    K.rc[4] = gt_chan_recv(K.c[0], &v, -1);
    K.vals[0] = v;
}

static void test_unbuffered_try(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    tg_spawn(rv_try, NULL);
    tg_spawn(rv_parked_recv, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], -ETIMEDOUT);
    assert_int_equal(K.rc[1], -ETIMEDOUT);
    assert_int_equal(K.rc[3], 0);
    assert_int_equal(K.rc[4], 0);
    assert_int_equal(K.vals[0], 99);
    free_chans();
}

/* --- buffered FIFO --------------------------------------------------- */

#define BUF_N 200

static void buf_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        elem e = mk(i);
        if (gt_chan_send(K.c[0], &e, 0) != 0)
            K.bad++;
    }
    elem x = mk(-1);
    K.rc[0] = gt_chan_send(K.c[0], &x, 0); /* full */
    for (int i = 4; i < BUF_N; i++) {
        elem e = mk(i);
        if (gt_chan_send(K.c[0], &e, -1) != 0)
            K.bad++;
    }
}

static void buf_receiver(void *arg)
{
    (void)arg;
    for (int i = 0; i < BUF_N; i++) {
        if (i % 17 == 0)
            gt_yield();
        elem e;
        if (gt_chan_recv(K.c[0], &e, -1) != 0 || !ok(&e, i))
            K.bad++;
        K.count++;
    }
    elem e;
    K.rc[1] = gt_chan_recv(K.c[0], &e, 0); /* empty now */
}

static void test_buffered_fifo(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(elem), 4), 0);
    tg_spawn(buf_sender, NULL);
    tg_spawn(buf_receiver, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.bad, 0);
    assert_int_equal(K.count, BUF_N);
    assert_int_equal(K.rc[0], -ETIMEDOUT);
    assert_int_equal(K.rc[1], -ETIMEDOUT);
    free_chans();
}

/* --- deadlines --------------------------------------------------------- */

static void dl_thread(void *arg)
{
    (void)arg;
    int v = 1;
    /* c0: cap 1, full after this send. */
    K.rc[0] = gt_chan_send(K.c[0], &v, 0);
    v = 2;
    K.t[0] = gt_now();
    K.rc[1] = gt_chan_send(K.c[0], &v, K.t[0] + 30);
    K.t[1] = gt_now();
    /* c1: cap 3, empty. */
    K.rc[2] = gt_chan_recv(K.c[1], &v, K.t[1] + 30);
    K.t[2] = gt_now();
    /* c2: unbuffered. */
    K.rc[3] = gt_chan_send(K.c[2], &v, K.t[2] + 30);
    K.t[3] = gt_now();
    K.rc[4] = gt_chan_recv(K.c[2], &v, K.t[3] + 30);
    K.t[4] = gt_now();
    /* The timed-out send left nothing behind; the first element is there. */
    v = 0;
    K.rc[5] = gt_chan_recv(K.c[0], &v, 0);
    K.vals[0] = v;
    K.rc[6] = gt_chan_recv(K.c[0], &v, 0);
}

static void test_deadlines(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 1), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 3), 0);
    assert_int_equal(gt_chan_make(&K.c[2], sizeof(int), 0), 0);
    tg_spawn(dl_thread, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], 0);
    for (int i = 1; i <= 4; i++) {
        assert_int_equal(K.rc[i], -ETIMEDOUT);
        int64_t el = K.t[i] - K.t[i - 1];
        assert_true(el >= 30);
        assert_true(el < 30 + tg_slack_ms());
    }
    assert_int_equal(K.rc[5], 0);
    assert_int_equal(K.vals[0], 1);
    assert_int_equal(K.rc[6], -ETIMEDOUT);
    free_chans();
}

/* --- close ------------------------------------------------------------- */

static void close_recv_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    int v;
    K.rc[i] = gt_chan_recv(K.c[0], &v, -1);
}

static void close_send_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    int v = 100 + i;
    K.rc[i] = gt_chan_send(K.c[1], &v, -1);
}

static void closer(void *arg)
{
    (void)arg;
    int v = 5;
    /* c1 is full (1 element) and has 3 parked senders; c0 has 3 parked
     * receivers. */
    K.rc[20] = gt_chan_close(K.c[0]);
    K.rc[21] = gt_chan_close(K.c[1]);
    K.rc[22] = gt_chan_send(K.c[0], &v, 0);
    K.rc[23] = gt_chan_send(K.c[0], &v, -1);
    K.rc[24] = gt_chan_recv(K.c[0], &v, -1);
    gt_yield();
    /* The buffered element is still delivered, then -EPIPE. */
    v = 0;
    K.rc[25] = gt_chan_recv(K.c[1], &v, -1);
    K.vals[0] = v;
    K.rc[26] = gt_chan_recv(K.c[1], &v, -1);
    K.rc[27] = gt_chan_recv(K.c[1], &v, 0);
    K.rc[28] = gt_chan_send(K.c[1], &v, 0);
}

static void test_close_wakes_all(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 1), 0);
    for (int i = 0; i < 3; i++)
        tg_spawn(close_recv_waiter, (void *)(intptr_t)i);
    /* The first sender fills the buffer; the next three park. */
    tg_spawn(close_send_waiter, (void *)(intptr_t)3);
    for (int i = 4; i < 7; i++)
        tg_spawn(close_send_waiter, (void *)(intptr_t)i);
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(K.rc[3], 0);
    tg_spawn(closer, NULL);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(K.rc[i], -EPIPE);
    for (int i = 4; i < 7; i++)
        assert_int_equal(K.rc[i], -EPIPE);
    assert_int_equal(K.rc[20], 0);
    assert_int_equal(K.rc[21], 0);
    assert_int_equal(K.rc[22], -EPIPE);
    assert_int_equal(K.rc[23], -EPIPE);
    assert_int_equal(K.rc[24], -EPIPE);
    assert_int_equal(K.rc[25], 0);
    assert_int_equal(K.vals[0], 103);
    assert_int_equal(K.rc[26], -EPIPE);
    assert_int_equal(K.rc[27], -EPIPE);
    assert_int_equal(K.rc[28], -EPIPE);
    free_chans();
}

/* Close from the main stack while green threads wait. */
static void test_close_from_main(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 2), 0);
    for (int i = 0; i < 4; i++)
        tg_spawn(close_recv_waiter, (void *)(intptr_t)i);
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(gt_chan_free(K.c[0]), -EBUSY);
    assert_int_equal(gt_chan_close(K.c[0]), 0);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(K.rc[i], -EPIPE);
    free_chans();
}

/* Buffered elements left in a channel are freed with it; an unused
 * channel frees cleanly. */
static void fill3(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        elem e = mk(i);
        K.rc[i] = gt_chan_send(K.c[0], &e, 0);
    }
}

static void test_free_with_data(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(elem), 8), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(elem), 0), 0);
    tg_spawn(fill3, NULL);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(K.rc[i], 0);
    free_chans();
}

/* gt_chan_free while a sender waits. */
static void test_free_busy(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 0), 0);
    tg_spawn(close_send_waiter, (void *)(intptr_t)0);
    assert_int_equal(tg_until_deadlock(100), -EDEADLK);
    assert_int_equal(gt_chan_free(K.c[1]), -EBUSY);
    assert_int_equal(gt_chan_close(K.c[1]), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], -EPIPE);
    free_chans();
}

/* --- choose ---------------------------------------------------------------- */

static void ch_first_ready(void *arg)
{
    (void)arg;
    int v = 11;
    gt_chan_send(K.c[0], &v, 0);
    v = 22;
    gt_chan_send(K.c[1], &v, 0);
    int r0 = -1, r1 = -1;
    gt_chan_op ops[2] = {{K.c[0], GT_RECV, &r0, 7}, {K.c[1], GT_RECV, &r1, 7}};
    K.rc[0] = gt_choose(ops, 2, 0);
    K.rc[1] = ops[0].result;
    K.vals[0] = r0;
    K.vals[1] = r1;
    ops[0].result = ops[1].result = 7;
    K.rc[2] = gt_choose(ops, 2, -1);
    K.rc[3] = ops[1].result;
    K.vals[2] = r1;
    K.rc[4] = gt_choose(ops, 2, 0); /* both empty */
    /* Send clause ready, recv clause not. */
    int s = 33;
    gt_chan_op mix[2] = {{K.c[0], GT_RECV, &r0, 7}, {K.c[1], GT_SEND, &s, 7}};
    K.rc[5] = gt_choose(mix, 2, 0);
    K.rc[6] = mix[1].result;
    r1 = 0;
    K.rc[7] = gt_chan_recv(K.c[1], &r1, 0);
    K.vals[3] = r1;
}

static void test_choose_first_ready(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 2), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 2), 0);
    tg_spawn(ch_first_ready, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], 0);
    assert_int_equal(K.rc[1], 0);
    assert_int_equal(K.vals[0], 11);
    assert_int_equal(K.vals[1], -1); /* untouched */
    assert_int_equal(K.rc[2], 1);
    assert_int_equal(K.rc[3], 0);
    assert_int_equal(K.vals[2], 22);
    assert_int_equal(K.rc[4], -ETIMEDOUT);
    assert_int_equal(K.rc[5], 1);
    assert_int_equal(K.rc[6], 0);
    assert_int_equal(K.rc[7], 0);
    assert_int_equal(K.vals[3], 33);
    free_chans();
}

/* Blocking choose woken later by a send, by a receiver, by a close. */
static void ch_blocker(void *arg)
{
    (void)arg;
    int r = -1, s = 9, r2 = -1;
    gt_chan_op ops[3] = {{K.c[0], GT_RECV, &r, 7},
                         {K.c[1], GT_RECV, &r2, 7},
                         {K.c[2], GT_SEND, &s, 7}};
    K.t[0] = gt_now();
    K.rc[0] = gt_choose(ops, 3, -1); /* woken by a send on c1 */
    K.t[1] = gt_now();
    K.rc[1] = ops[1].result;
    K.vals[0] = r2;
    K.rc[2] = gt_choose(ops, 3, -1); /* woken by a receiver on c2 */
    K.rc[3] = ops[2].result;
    K.rc[4] = gt_choose(ops, 3, -1); /* woken by close of c0 */
    K.rc[5] = ops[0].result;
    /* c0 closed: a choose including it is ready at once. */
    K.rc[6] = gt_choose(ops, 3, 0);
    K.rc[7] = ops[0].result;
}

static void ch_waker(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 10);
    int v = 5;
    K.rc[10] = gt_chan_send(K.c[1], &v, -1);
    gt_sleep(gt_now() + 5);
    v = 0;
    K.rc[11] = gt_chan_recv(K.c[2], &v, -1);
    K.vals[1] = v;
    gt_sleep(gt_now() + 5);
    K.rc[12] = gt_chan_close(K.c[0]);
}

static void test_choose_blocking(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&K.c[2], sizeof(int), 0), 0);
    tg_spawn(ch_blocker, NULL);
    tg_spawn(ch_waker, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], 1);
    assert_int_equal(K.rc[1], 0);
    assert_int_equal(K.vals[0], 5);
    assert_true(K.t[1] - K.t[0] >= 10);
    assert_int_equal(K.rc[10], 0);
    assert_int_equal(K.rc[2], 2);
    assert_int_equal(K.rc[3], 0);
    assert_int_equal(K.rc[11], 0);
    assert_int_equal(K.vals[1], 9);
    assert_int_equal(K.rc[4], 0);
    assert_int_equal(K.rc[5], -EPIPE);
    assert_int_equal(K.rc[12], 0);
    assert_int_equal(K.rc[6], 0);
    assert_int_equal(K.rc[7], -EPIPE);
    free_chans();
}

/* Closed channels in choose, send and recv clauses. */
static void ch_closed(void *arg)
{
    (void)arg;
    int r = 0, s = 1;
    gt_chan_op a[2] = {{K.c[0], GT_RECV, &r, 7}, {K.c[1], GT_RECV, &r, 7}};
    K.rc[0] = gt_choose(a, 2, -1);
    K.rc[1] = a[1].result;
    gt_chan_op b[2] = {{K.c[0], GT_RECV, &r, 7}, {K.c[1], GT_SEND, &s, 7}};
    K.rc[2] = gt_choose(b, 2, 0);
    K.rc[3] = b[1].result;
}

static void test_choose_closed(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 4), 0);
    assert_int_equal(gt_chan_close(K.c[1]), 0);
    tg_spawn(ch_closed, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], 1);
    assert_int_equal(K.rc[1], -EPIPE);
    assert_int_equal(K.rc[2], 1);
    assert_int_equal(K.rc[3], -EPIPE);
    free_chans();
}

/* Timeout, and no stale waiter left behind by it. */
static void ch_timeout(void *arg)
{
    (void)arg;
    int r = 0, s = 4;
    gt_chan_op ops[2] = {{K.c[0], GT_RECV, &r, 7}, {K.c[1], GT_SEND, &s, 7}};
    K.t[0] = gt_now();
    K.rc[0] = gt_choose(ops, 2, K.t[0] + 30);
    K.t[1] = gt_now();
    K.rc[1] = gt_choose(ops, 2, 0);
    K.rc[2] = gt_choose(ops, 2, gt_now() - 5);
    /* Nobody waits on c0/c1 any more. */
    int v = 1;
    K.rc[3] = gt_chan_send(K.c[0], &v, 0);
    K.rc[4] = gt_chan_recv(K.c[1], &v, 0);
}

static void test_choose_timeout(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    assert_int_equal(gt_chan_make(&K.c[1], sizeof(int), 0), 0);
    tg_spawn(ch_timeout, NULL);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.rc[0], -ETIMEDOUT);
    assert_true(K.t[1] - K.t[0] >= 30);
    assert_true(K.t[1] - K.t[0] < 30 + tg_slack_ms());
    assert_int_equal(K.rc[1], -ETIMEDOUT);
    assert_int_equal(K.rc[2], -ETIMEDOUT);
    assert_int_equal(K.rc[3], -ETIMEDOUT);
    assert_int_equal(K.rc[4], -ETIMEDOUT);
    free_chans();
}

static void ch_einval(void *arg)
{
    (void)arg;
    int r = 0;
    gt_chan_op op = {K.c[0], GT_RECV, &r, 7};
    K.rc[0] = gt_choose(&op, 0, -1);
    K.rc[1] = gt_choose(&op, -1, -1);
    K.rc[2] = gt_choose(NULL, 1, -1);
    K.rc[3] = gt_choose(NULL, 0, 0);
    gt_chan_op bad = {K.c[0], 99, &r, 7};
    K.rc[4] = gt_choose(&bad, 1, -1);
}

static void test_choose_einval(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    tg_spawn(ch_einval, NULL);
    assert_int_equal(gt_run(), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(K.rc[i], -EINVAL);
    free_chans();
}

/* Two clauses on the same channel: one send wakes the chooser once, and
 * the other clause is no longer registered afterwards. */
static void ch_same_twice(void *arg)
{
    (void)arg;
    int a = -1, b = -1;
    gt_chan_op ops[2] = {{K.c[0], GT_RECV, &a, 7}, {K.c[0], GT_RECV, &b, 7}};
    K.rc[0] = gt_choose(ops, 2, -1);
    K.vals[0] = a;
    K.vals[1] = b;
}

static void ch_send_twice(void *arg)
{
    (void)arg;
    int v = 1;
    K.rc[1] = gt_chan_send(K.c[0], &v, -1);
    v = 2;
    K.rc[2] = gt_chan_send(K.c[0], &v, 0);
    gt_yield();
    K.rc[3] = gt_chan_send(K.c[0], &v, 0);
}

static void test_choose_same_channel(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 0), 0);
    tg_spawn(ch_same_twice, NULL);
    tg_spawn(ch_send_twice, NULL);
    assert_int_equal(gt_run(), 0);
    assert_true(K.rc[0] == 0 || K.rc[0] == 1);
    assert_int_equal(K.rc[0] == 0 ? K.vals[0] : K.vals[1], 1);
    assert_int_equal(K.rc[0] == 0 ? K.vals[1] : K.vals[0], -1);
    assert_int_equal(K.rc[1], 0);
    assert_int_equal(K.rc[2], -ETIMEDOUT);
    assert_int_equal(K.rc[3], -ETIMEDOUT);
    free_chans();
}

/* --- big elements ---------------------------------------------------------- */

#define BIG 100000

static void big_sender(void *arg)
{
    gt_chan *ch = arg;
    unsigned char *b = malloc(BIG);
    if (b == NULL) {
        K.bad++;
        return;
    }
    for (int k = 0; k < 5; k++) {
        for (size_t i = 0; i < BIG; i++)
            b[i] = (unsigned char)(i * 31 + (size_t)k);
        if (gt_chan_send(ch, b, -1) != 0)
            K.bad++;
    }
    free(b);
}

static void big_receiver(void *arg)
{
    gt_chan *ch = arg;
    unsigned char *b = malloc(BIG);
    if (b == NULL) {
        K.bad++;
        return;
    }
    for (int k = 0; k < 5; k++) {
        memset(b, 0, BIG);
        if (gt_chan_recv(ch, b, -1) != 0)
            K.bad++;
        for (size_t i = 0; i < BIG; i += 7)
            if (b[i] != (unsigned char)(i * 31 + (size_t)k))
                K.bad++;
        K.count++;
    }
    free(b);
}

static void test_big_elements(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], BIG, 0), 0);
    assert_int_equal(gt_chan_make(&K.c[1], BIG, 2), 0);
    for (int c = 0; c < 2; c++) {
        tg_spawn(big_receiver, K.c[c]);
        tg_spawn(big_sender, K.c[c]);
    }
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.bad, 0);
    assert_int_equal(K.count, 10);
    free_chans();
}

/* --- many producers, many consumers -------------------------------- */

#define PC_PER 1000

static void producer(void *arg)
{
    int p = (int)(intptr_t)arg;
    for (int i = 0; i < PC_PER; i++) {
        int v = p * PC_PER + i;
        if (gt_chan_send(K.c[0], &v, -1) != 0)
            K.bad++;
        if (i % 97 == 0)
            gt_yield();
    }
}

static void consumer(void *arg)
{
    (void)arg;
    int last[3] = {-1, -1, -1};
    for (int i = 0; i < 10 * PC_PER; i++) {
        int v;
        int rc = gt_chan_recv(K.c[0], &v, -1);
        if (rc == -EPIPE)
            break;
        if (rc != 0 || v < 0 || v >= 3 * PC_PER) {
            K.bad++;
            break;
        }
        /* Per producer, values arrive in order. */
        if (v <= last[v / PC_PER])
            K.bad++;
        last[v / PC_PER] = v;
        K.count++;
        K.sum += v;
    }
}

static void coordinator(void *arg)
{
    int64_t *ids = arg;
    for (int i = 0; i < 3; i++)
        if (gt_join(ids[i], -1) != 0)
            K.bad++;
    K.rc[0] = gt_chan_close(K.c[0]);
}

static void test_producers_consumers(void **state)
{
    (void)state;
    reset();
    assert_int_equal(gt_chan_make(&K.c[0], sizeof(int), 8), 0);
    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = tg_spawn(producer, (void *)(intptr_t)i);
    tg_spawn(consumer, NULL);
    tg_spawn(consumer, NULL);
    tg_spawn(coordinator, ids);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(K.bad, 0);
    assert_int_equal(K.rc[0], 0);
    assert_int_equal(K.count, 3 * PC_PER);
    int64_t n = 3 * PC_PER;
    assert_int_equal(K.sum, n * (n - 1) / 2);
    free_chans();
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_make_bad),
        TG_TEST(test_unbuffered_rendezvous),
        TG_TEST(test_unbuffered_try),
        TG_TEST(test_buffered_fifo),
        TG_TEST(test_deadlines),
        TG_TEST(test_close_wakes_all),
        TG_TEST(test_close_from_main),
        TG_TEST(test_free_with_data),
        TG_TEST(test_free_busy),
        TG_TEST(test_choose_first_ready),
        TG_TEST(test_choose_blocking),
        TG_TEST(test_choose_closed),
        TG_TEST(test_choose_timeout),
        TG_TEST(test_choose_einval),
        TG_TEST(test_choose_same_channel),
        TG_TEST(test_big_elements),
        TG_TEST(test_producers_consumers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
