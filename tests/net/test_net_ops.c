/* Operations as steps: a waiting reader and a try-once reader on one
 * socket, cancellation against data already there and against a close,
 * and operations started with net_op_start (done, cancel, close, the idle
 * bound, a sleep). */
#include "net_test.h"

#include <socketloop/net_op.h>

/* --- Two readers: no byte lost or reordered ------------------------------ */

typedef struct two_ctx {
    net_sock *a, *b;
    int raw;       /* A waits in net_recv instead of net_receive */
    int in_kernel; /* A's net_recv is a request in the kernel */
    ssize_t rc_a, rc_b, rc_next;
    net_buf out_a, out_b, out_next;
    char raw_buf[64];
} two_ctx;

static void two_a(void *p)
{
    two_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    if (c->raw) {
        c->rc_a = net_recv(c->b, c->raw_buf, sizeof c->raw_buf, dl);
    } else {
        c->rc_a = net_receive(c->b, NET_LINE, 0, &c->out_a, dl);
    }
    c->rc_next = net_receive(c->b, NET_LINE, 0, &c->out_next, dl);
}

static void two_w(void *p)
{
    two_ctx *c = p;
    gt_yield(); /* A is parked now */
    net_send(c->a, "x\ny\n", 4, NULL, -1);
    /* A try-once reader takes "x" and leaves "y\n" buffered. */
    c->rc_b = net_receive(c->b, NET_LINE, 0, &c->out_b, 0);
    gt_sleep(gt_now() + 20);
    net_send(c->a, "z\n", 2, NULL, -1);
}

static void run_two(two_ctx *c)
{
    assert_int_equal(nt_pair(&c->a, &c->b), 0);
    tg_spawn(two_a, c);
    tg_spawn(two_w, c);
    /* On io_uring a waiting net_recv is a request in the kernel with its
     * own buffer: what arrives goes to it, and a try-once reader after it
     * finds nothing.  (A receive pattern reads into the socket's buffer,
     * which both readers share.) */
    c->in_kernel = c->raw && !strcmp(net_poller_name(), "uring");
    NT_RUN();
    assert_int_equal(net_close(c->a), 0);
    assert_int_equal(net_close(c->b), 0);
    assert_int_equal(net_cleanup(), 0);
    if (c->in_kernel) {
        assert_int_equal(c->rc_b, -ETIMEDOUT);
    } else {
        assert_int_equal(c->rc_b, 1);
        assert_memory_equal(c->out_b.data, "x", 1);
    }
    assert_int_equal(c->rc_next, 1);
    assert_memory_equal(c->out_next.data, "z", 1);
    net_buf_free(&c->out_b);
    net_buf_free(&c->out_next);
}

static void test_two_readers_line(void **state)
{
    (void)state;
    two_ctx c;
    memset(&c, 0, sizeof c);
    run_two(&c);
    assert_int_equal(c.rc_a, 1);
    assert_memory_equal(c.out_a.data, "y", 1);
    net_buf_free(&c.out_a);
}

static void test_two_readers_recv(void **state)
{
    (void)state;
    two_ctx c;
    memset(&c, 0, sizeof c);
    c.raw = 1;
    run_two(&c);
    if (c.in_kernel) {
        assert_int_equal(c.rc_a, 4);
        assert_memory_equal(c.raw_buf, "x\ny\n", 4);
    } else {
        assert_int_equal(c.rc_a, 2);
        assert_memory_equal(c.raw_buf, "y\n", 2);
    }
}

/* --- Cancellation -------------------------------------------------------- */

typedef struct cancel_ctx {
    net_sock *a, *b;
    int64_t reader;
    ssize_t rc_first, rc;
    char buf[16];
} cancel_ctx;

/* A cancelled thread still gets what is already there (gt.h: a call that
 * can complete at once does), even after a read that found nothing. */
static void cancel_self(void *p)
{
    cancel_ctx *c = p;
    c->rc_first = net_recv(c->b, c->buf, sizeof c->buf, gt_now() + 20);
    net_send(c->a, "sixbyt", 6, NULL, -1);
    gt_cancel(gt_self());
    c->rc = net_recv(c->b, c->buf, sizeof c->buf, -1);
}

static void test_cancelled_takes_data(void **state)
{
    (void)state;
    cancel_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(cancel_self, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc_first, -ETIMEDOUT);
    assert_int_equal(c.rc, 6);
    assert_memory_equal(c.buf, "sixbyt", 6);
}

static void parked_reader(void *p)
{
    cancel_ctx *c = p;
    c->rc = net_recv(c->b, c->buf, sizeof c->buf, -1);
}

/* Cancel, then close before the cancelled thread runs: -ECANCELED wins. */
static void cancel_then_close(void *p)
{
    cancel_ctx *c = p;
    gt_yield(); /* the reader parks */
    gt_cancel(c->reader);
    net_close(c->b);
}

static void test_cancel_then_close(void **state)
{
    (void)state;
    cancel_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    c.reader = tg_spawn(parked_reader, &c);
    tg_spawn(cancel_then_close, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc, -ECANCELED);
}

/* --- Started operations -------------------------------------------------- */

typedef struct started {
    net_op op;
    int calls;  /* done was called this many times */
    ssize_t rc; /* op->rc when it was */
    int64_t at; /* gt_now() then */
} started;

static void on_done(net_op *op)
{
    started *st = op->udata;
    st->calls++;
    st->rc = op->rc;
    st->at = gt_now();
}

static void start_recv(started *st, net_sock *s, void *buf, size_t n)
{
    memset(st, 0, sizeof *st);
    st->op = (net_op){.kind = NET_OP_RECV,
                      .s = s,
                      .buf = buf,
                      .n = n,
                      .deadline = -1,
                      .idle = -1,
                      .done = on_done,
                      .udata = st};
}

static void writer_later(void *p)
{
    net_sock *a = p;
    gt_sleep(gt_now() + 10);
    net_send(a, "hello", 5, NULL, -1);
}

static void test_started_recv(void **state)
{
    (void)state;
    net_sock *a, *b;
    char buf[16];
    started st, second;
    assert_int_equal(nt_pair(&a, &b), 0);
    start_recv(&st, b, buf, sizeof buf);
    assert_int_equal(net_op_start(&st.op), 0); /* nothing there: waits */
    /* A second waiting reader is refused at once, done not called. */
    start_recv(&second, b, buf, sizeof buf);
    assert_int_equal(net_op_start(&second.op), 1);
    assert_int_equal(second.op.rc, -EALREADY);
    tg_spawn(writer_later, a);
    NT_RUN();
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.rc, 5);
    assert_int_equal(st.op.moved, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(second.calls, 0);
    /* Data there: a try-once op ends at once, without done.  (One that
     * may wait can skip the read of a socket drained since its last
     * event, and end from the loop when the event comes.) */
    assert_int_equal(net_send(a, "again", 5, NULL, 0), 5);
    start_recv(&st, b, buf, sizeof buf);
    st.op.deadline = 0;
    assert_int_equal(net_op_start(&st.op), 1);
    assert_int_equal(st.op.rc, 5);
    assert_int_equal(st.calls, 0);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_cleanup(), 0);
}

static void test_started_cancel_and_close(void **state)
{
    (void)state;
    net_sock *a, *b;
    char buf[16];
    started st;
    assert_int_equal(nt_pair(&a, &b), 0);
    start_recv(&st, b, buf, sizeof buf);
    assert_int_equal(net_op_start(&st.op), 0);
    assert_int_equal(net_op_cancel(&st.op), 0);
    assert_int_equal(net_op_cancel(&st.op), -EINVAL); /* not waiting */
    /* Cancelled: the slot is free for the next, which a close ends. */
    start_recv(&st, b, buf, sizeof buf);
    assert_int_equal(net_op_start(&st.op), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(st.calls, 1);
    assert_int_equal(st.rc, NET_ECLOSED);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* A started receive taken back after its bytes came in, but before the
 * loop stepped it, keeps them for the next read: on io_uring they are
 * already out of the kernel, in the op's buffer.  The kernel hands the
 * completion over while another thread waits out its own cancelled
 * request (net_recv under gt_cancel), in the same run of the loop. */
typedef struct keep_ctx {
    net_sock *a, *b, *d;
    started st;
    char buf[16], got[16];
    int64_t reader;
    ssize_t rc_cancelled, rc_take, rc;
} keep_ctx;

static void keep_reader(void *p)
{
    keep_ctx *c = p;
    char tmp[4];
    c->rc_cancelled = net_recv(c->d, tmp, sizeof tmp, -1);
    c->rc_take = net_op_cancel(&c->st.op);
}

static void keep_writer(void *p)
{
    keep_ctx *c = p;
    gt_sleep(gt_now() + 20); /* both requests are in the kernel */
    assert_int_equal(net_send(c->a, "hello", 5, NULL, 0), 5);
    gt_cancel(c->reader);
    gt_join(c->reader, -1);
    c->rc = net_recv(c->b, c->got, sizeof c->got, gt_now() + 2000);
}

static void test_started_cancel_keeps_data(void **state)
{
    (void)state;
    static keep_ctx c;
    net_sock *other;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_pair(&other, &c.d), 0);
    start_recv(&c.st, c.b, c.buf, sizeof c.buf);
    assert_int_equal(net_op_start(&c.st.op), 0);
    c.reader = tg_spawn(keep_reader, &c);
    tg_spawn(keep_writer, &c);
    NT_RUN();
    assert_int_equal(c.rc_cancelled, -ECANCELED);
    assert_int_equal(c.rc_take, 0);
    assert_int_equal(c.st.calls, 0);
    assert_int_equal(c.rc, 5);
    assert_memory_equal(c.got, "hello", 5);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_close(other), 0);
    assert_int_equal(net_close(c.d), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* The idle bound ends a wait in which nothing moves; a whole-call deadline
 * ends the call; a sleep ends at its deadline, from the loop. */
static void test_started_bounds(void **state)
{
    (void)state;
    net_sock *a, *b;
    char buf[16];
    started idle, sleep;
    assert_int_equal(nt_pair(&a, &b), 0);
    start_recv(&idle, b, buf, sizeof buf);
    idle.op.idle = 30;
    int64_t t0 = gt_now();
    assert_int_equal(net_op_start(&idle.op), 0);
    memset(&sleep, 0, sizeof sleep);
    sleep.op = (net_op){.kind = NET_OP_SLEEP,
                        .deadline = t0 + 10,
                        .idle = -1,
                        .done = on_done,
                        .udata = &sleep};
    assert_int_equal(net_op_start(&sleep.op), 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(idle.calls, 1);
    assert_int_equal(idle.rc, -ETIMEDOUT);
    assert_true(idle.at - t0 >= 30);
    assert_int_equal(sleep.calls, 1);
    assert_int_equal(sleep.rc, 0);
    assert_true(sleep.at >= t0 + 10);
    /* A sleep whose time has passed still ends from the loop. */
    sleep.op.deadline = gt_now() - 5;
    sleep.calls = 0;
    assert_int_equal(net_op_start(&sleep.op), 0);
    assert_int_equal(sleep.calls, 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(sleep.calls, 1);
    /* Bad operations end at once with -EINVAL. */
    start_recv(&idle, b, NULL, 4);
    assert_int_equal(net_op_start(&idle.op), 1);
    assert_int_equal(idle.op.rc, -EINVAL);
    assert_int_equal(net_op_start(NULL), -EINVAL);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* A started op's done that closes another socket with an event in the
 * same poller batch: that socket is freed only after the batch. */
typedef struct batch_ctx {
    started first, second;
    net_sock *victim;
    char buf1[8], buf2[8];
} batch_ctx;

static void close_other(net_op *op)
{
    batch_ctx *c = op->udata;
    c->first.calls++;
    c->first.rc = op->rc;
    if (c->victim) net_close(c->victim);
    c->victim = NULL;
}

static void test_done_closes_in_batch(void **state)
{
    (void)state;
    net_sock *a1, *b1, *a2, *b2;
    batch_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&a1, &b1), 0);
    assert_int_equal(nt_pair(&a2, &b2), 0);
    c.first.op = (net_op){.kind = NET_OP_RECV,
                          .s = b1,
                          .buf = c.buf1,
                          .n = sizeof c.buf1,
                          .deadline = -1,
                          .idle = -1,
                          .done = close_other,
                          .udata = &c};
    start_recv(&c.second, b2, c.buf2, sizeof c.buf2);
    assert_int_equal(net_op_start(&c.first.op), 0);
    assert_int_equal(net_op_start(&c.second.op), 0);
    c.victim = b2;
    /* Both become readable before the loop polls once. */
    assert_int_equal(net_send(a1, "1", 1, NULL, 0), 1);
    assert_int_equal(net_send(a2, "2", 1, NULL, 0), 1);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(c.first.calls, 1);
    assert_int_equal(c.first.rc, 1);
    /* The second either read its byte first or was closed. */
    assert_int_equal(c.second.calls, 1);
    assert_true(c.second.rc == 1 || c.second.rc == NET_ECLOSED);
    if (c.victim) net_close(c.victim);
    assert_int_equal(net_close(a1), 0);
    assert_int_equal(net_close(b1), 0);
    assert_int_equal(net_close(a2), 0);
    assert_int_equal(net_cleanup(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_two_readers_line),
        NT_TEST(test_two_readers_recv),
        NT_TEST(test_cancelled_takes_data),
        NT_TEST(test_cancel_then_close),
        NT_TEST(test_started_recv),
        NT_TEST(test_started_cancel_and_close),
        NT_TEST(test_started_cancel_keeps_data),
        NT_TEST(test_started_bounds),
        NT_TEST(test_done_closes_in_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
