/* End of stream against closed (issue 12): the peer closing gives
 * net_recv 0 and net_receive NET_EEOF (every time after, too), whether the
 * call was parked when it came or came after it; this side closing the
 * socket (net_close, net_release) under a parked call gives NET_ECLOSED.
 * Runs on every poller (tests/net/CMakeLists.txt). */
#include "net_test.h"

#include <socketloop/net_op.h>

/* The peer ends the stream while each reader is parked, then once more
 * calls come after the end. */
typedef struct eof_ctx {
    net_sock *a, *b;
    ssize_t parked_rc; /* net_receive(NET_LINE) parked when the end came */
    net_buf line;
    ssize_t after[6]; /* calls after the end */
    net_buf out;
    int ready;
} eof_ctx;

static void eof_reader(void *p)
{
    eof_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    char buf[8];
    c->ready = 1;
    c->parked_rc = net_receive(c->b, NET_LINE, 0, &c->line, dl);
    c->after[0] = net_recv(c->b, buf, sizeof buf, dl);
    c->after[1] = net_recv(c->b, buf, sizeof buf, dl); /* still 0 */
    c->after[2] = net_receive(c->b, NET_LINE, 0, &c->out, dl);
    c->after[3] = net_receive(c->b, NET_BYTES, 4, &c->out, dl);
    c->after[4] = net_receive(c->b, NET_BYTES, 0, &c->out, dl);
    c->after[5] = net_receive(c->b, NET_ALL, 0, &c->out, dl);
}

static void eof_writer(void *p)
{
    eof_ctx *c = p;
    while (!c->ready) gt_yield();
    gt_sleep(gt_now() + 20); /* the reader is parked by now */
    net_send(c->a, "no newline", 10, NULL, gt_now() + tg_slack_ms());
    gt_sleep(gt_now() + 20);
    net_close(c->a); /* the peer goes: end of stream */
    c->a = NULL;
}

static void test_peer_close(void **state)
{
    (void)state;
    eof_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(eof_reader, &c);
    tg_spawn(eof_writer, &c);
    NT_RUN();
    assert_null(c.a);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.parked_rc, NET_EEOF);
    assert_int_equal(c.line.len, 10); /* the partial line is kept */
    assert_memory_equal(c.line.data, "no newline", 10);
    assert_int_equal(c.after[0], 0);
    assert_int_equal(c.after[1], 0);
    assert_int_equal(c.after[2], NET_EEOF);
    assert_int_equal(c.after[3], NET_EEOF);
    assert_int_equal(c.after[4], NET_EEOF);
    assert_int_equal(c.after[5], 0); /* NET_ALL: the end is success */
    assert_int_equal(c.out.len, 0);
    assert_string_equal(net_strerror(NET_EEOF), "end of stream");
    assert_string_not_equal(net_strerror(NET_EEOF), net_strerror(NET_ECLOSED));
    net_buf_free(&c.line);
    net_buf_free(&c.out);
}

/* A parked recv, receive (each pattern) and send, and this side closes
 * or releases the socket: NET_ECLOSED, never NET_EEOF. */
enum { K_RECV, K_LINE, K_BYTES, K_ALL, K_SEND, K_N };

typedef struct close_ctx {
    net_sock *a, *b;
    int kind, release;
    ssize_t rc;
    int done, fd;
    net_buf out;
    char *big;
} close_ctx;

#define BIG (8 << 20)

static void close_waiter(void *p)
{
    close_ctx *c = p;
    int64_t dl = gt_now() + 10 * tg_slack_ms();
    char buf[16];
    switch (c->kind) {
    case K_RECV: c->rc = net_recv(c->b, buf, sizeof buf, dl); break;
    case K_LINE: c->rc = net_receive(c->b, NET_LINE, 0, &c->out, dl); break;
    case K_BYTES: c->rc = net_receive(c->b, NET_BYTES, 9, &c->out, dl); break;
    case K_ALL: c->rc = net_receive(c->b, NET_ALL, 0, &c->out, dl); break;
    default: c->rc = net_send(c->b, c->big, BIG, NULL, dl);
    }
    c->done = 1;
}

static void close_closer(void *p)
{
    close_ctx *c = p;
    gt_sleep(gt_now() + 30); /* the waiter is parked by now */
    if (c->release)
        c->fd = net_release(c->b);
    else
        net_close(c->b);
}

static void test_local_close(void **state)
{
    (void)state;
    for (int release = 0; release < 2; release++) {
        for (int kind = 0; kind < K_N; kind++) {
            close_ctx c;
            memset(&c, 0, sizeof c);
            c.kind = kind;
            c.release = release;
            c.fd = -1;
            if (kind == K_SEND) c.big = calloc(1, BIG);
            assert_int_equal(nt_pair(&c.a, &c.b), 0);
            tg_spawn(close_waiter, &c);
            tg_spawn(close_closer, &c);
            NT_RUN();
            assert_int_equal(net_close(c.a), 0);
            if (release) {
                assert_true(c.fd >= 0);
                close(c.fd);
            }
            assert_int_equal(net_cleanup(), 0);
            assert_true(c.done);
            assert_int_equal(c.rc, NET_ECLOSED);
            net_buf_free(&c.out);
            free(c.big);
        }
    }
}

/* A started operation (net_op_start) that a close ends, and one that end
 * of stream ends, report the two codes apart through done. */
typedef struct op_ctx {
    net_op op;
    char buf[8];
    ssize_t rc;
    int calls;
} op_ctx;

static void op_done(net_op *op)
{
    op_ctx *o = op->udata;
    o->rc = op->rc;
    o->calls++;
}

static void start_line(op_ctx *o, net_sock *s, net_buf *out)
{
    memset(&o->op, 0, sizeof o->op);
    o->op.kind = NET_OP_RECEIVE;
    o->op.s = s;
    o->op.pattern = NET_LINE;
    o->op.out = out;
    o->op.deadline = gt_now() + tg_slack_ms();
    o->op.idle = -1;
    o->op.done = op_done;
    o->op.udata = o;
}

static void test_started_ops(void **state)
{
    (void)state;
    net_sock *a, *b, *c, *d;
    net_buf out1 = {0}, out2 = {0};
    op_ctx o1 = {0}, o2 = {0};
    assert_int_equal(nt_pair(&a, &b), 0);
    assert_int_equal(nt_pair(&c, &d), 0);
    start_line(&o1, b, &out1);
    start_line(&o2, d, &out2);
    assert_int_equal(net_op_start(&o1.op), 0);
    assert_int_equal(net_op_start(&o2.op), 0);
    assert_int_equal(net_shutdown(a, SHUT_WR), 0); /* peer's end */
    assert_int_equal(net_close(d), 0);             /* our close */
    assert_int_equal(gt_run(), 0);
    assert_int_equal(o1.calls, 1);
    assert_int_equal(o1.rc, NET_EEOF);
    assert_int_equal(o2.calls, 1);
    assert_int_equal(o2.rc, NET_ECLOSED);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_close(c), 0);
    assert_int_equal(net_cleanup(), 0);
    net_buf_free(&out1);
    net_buf_free(&out2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        NT_TEST(test_peer_close),
        NT_TEST(test_local_close),
        NT_TEST(test_started_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
