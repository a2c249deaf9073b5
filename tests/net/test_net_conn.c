/* Connections: resets, half-close, net_close while green threads wait in
 * recv, send and accept, -EALREADY for a second waiter, a reader and a
 * writer at once, send counts, no SIGPIPE, timeouts and cancellation, and
 * net_serve's handler model. */
#include "net_test.h"

#define BIG (4u << 20) /* more than any loopback buffer holds */

/* --- peer reset ---------------------------------------------------------- */

typedef struct reset_ctx {
    net_sock *a, *b;
    ssize_t rc_recv, rc_send;
    int64_t t_close, t_recv;
} reset_ctx;

static void reset_reader(void *p)
{
    reset_ctx *c = p;
    char buf[16];
    c->rc_recv = net_recv(c->b, buf, sizeof buf, gt_now() + tg_slack_ms());
    c->t_recv = gt_now();
}

static void reset_closer(void *p)
{
    reset_ctx *c = p;
    gt_sleep(gt_now() + 20);
    nt_linger0(c->a);
    c->t_close = gt_now();
    net_close(c->a);
}

/* A reset that arrives while nobody waits: the next calls see it. */
static void reset_late(void *p)
{
    reset_ctx *c = p;
    char buf[16];
    c->rc_recv = net_recv(c->b, buf, sizeof buf, gt_now() + tg_slack_ms());
    c->rc_send = net_send(c->b, "x", 1, NULL, gt_now() + tg_slack_ms());
}

static void test_peer_reset(void **state)
{
    (void)state;
    reset_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(reset_reader, &c);
    tg_spawn(reset_closer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(c.rc_recv, -ECONNRESET);
    assert_true(c.t_recv - c.t_close < tg_slack_ms());

    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_linger0(c.a), 0);
    assert_int_equal(net_close(c.a), 0);
    struct pollfd pf = {net_fd(c.b), POLLIN, 0};
    int pr = poll(&pf, 1, 5000);
    tg_spawn(reset_late, &c);
    NT_RUN();
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(pr, 1);
    assert_int_equal(c.rc_recv, -ECONNRESET);
    assert_true(c.rc_send == -EPIPE || c.rc_send == -ECONNRESET);
}

/* --- half-close ----------------------------------------------------------- */

typedef struct half_ctx {
    net_sock *a, *b;
    ssize_t rc_a_send, rc_shut, rc_a_send_after, rc_a_end, rc_b_end;
    ssize_t rc_b_send;
    char a_got[32], b_got[32];
    size_t a_len, b_len;
} half_ctx;

static void half_client(void *p)
{
    half_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    c->rc_a_send = net_send(c->a, "hello", 5, NULL, dl);
    c->rc_shut = net_shutdown(c->a, SHUT_WR);
    c->rc_a_send_after = net_send(c->a, "more", 4, NULL, dl);
    for (;;) {
        ssize_t r = net_recv(c->a, c->a_got + c->a_len,
                             sizeof c->a_got - 1 - c->a_len, dl);
        if (r <= 0) {
            c->rc_a_end = r;
            break;
        }
        c->a_len += (size_t)r;
    }
}

static void half_server(void *p)
{
    half_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    for (;;) {
        ssize_t r = net_recv(c->b, c->b_got + c->b_len,
                             sizeof c->b_got - 1 - c->b_len, dl);
        if (r <= 0) {
            c->rc_b_end = r;
            break;
        }
        c->b_len += (size_t)r;
    }
    /* The peer's end of the stream does not stop us from writing. */
    c->rc_b_send = net_send(c->b, "bye", 3, NULL, dl);
    net_shutdown(c->b, SHUT_WR);
}

static void test_half_close(void **state)
{
    (void)state;
    half_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(half_client, &c);
    tg_spawn(half_server, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc_a_send, 5);
    assert_int_equal(c.rc_shut, 0);
    assert_int_equal(c.rc_a_send_after, -EPIPE);
    assert_int_equal(c.rc_b_end, 0);
    assert_int_equal(c.b_len, 5);
    assert_memory_equal(c.b_got, "hello", 5);
    assert_int_equal(c.rc_b_send, 3);
    assert_int_equal(c.rc_a_end, 0);
    assert_int_equal(c.a_len, 3);
    assert_memory_equal(c.a_got, "bye", 3);
}

/* --- net_close while others wait ----------------------------------------- */

enum { W_RECV, W_SEND, W_ACCEPT };

typedef struct cw_ctx {
    net_sock *s, *peer;
    int kind[2]; /* what each waiter does */
    int nwaiters;
    ssize_t rc[2];
    size_t sent[2];
    int done[2];
    int64_t t_done[2];
    char *data;
    /* The closer's observations. */
    int fd, close_rc;
    uint64_t out_before;
    int open_after_close; /* F_GETFD worked right after net_close */
    int open_after_leave; /* ... and after the waiters left */
    int errno_after_leave;
    int other_fd; /* a descriptor opened while the waiters were still in */
    int64_t t_close;
} cw_ctx;

static void cw_waiter(void *p)
{
    cw_ctx *c = p;
    int i = c->done[0] == -1 ? 0 : 1; /* slot: first run takes 0 */
    c->done[i] = 0;
    int64_t dl = gt_now() + tg_slack_ms();
    char buf[16];
    net_sock *ns = NULL;
    switch (c->kind[i]) {
    case W_RECV: c->rc[i] = net_recv(c->s, buf, sizeof buf, dl); break;
    case W_SEND:
        c->rc[i] = net_send(c->s, c->data, BIG, &c->sent[i], dl);
        break;
    case W_ACCEPT:
        c->rc[i] = net_accept(c->s, &ns, dl);
        if (c->rc[i] == 0) net_close(ns);
        break;
    }
    c->t_done[i] = gt_now();
    c->done[i] = 1;
}

static void cw_closer(void *p)
{
    cw_ctx *c = p;
    /* The waiters ran first and parked. */
    c->fd = net_fd(c->s);
    net_stats(c->s, NULL, &c->out_before, NULL);
    c->t_close = gt_now();
    c->close_rc = net_close(c->s);
    c->open_after_close = fcntl(c->fd, F_GETFD) != -1;
    /* A new descriptor cannot take the number while a waiter is in. */
    c->other_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    for (int i = 0; i < 100; i++) {
        int all = 1;
        for (int w = 0; w < c->nwaiters; w++) all &= c->done[w] == 1;
        if (all) break;
        gt_yield();
    }
    errno = 0;
    c->open_after_leave = fcntl(c->fd, F_GETFD) != -1;
    c->errno_after_leave = errno;
}

static void run_close_waiters(int k0, int k1, int nwaiters)
{
    cw_ctx c;
    int port = 0;
    memset(&c, 0, sizeof c);
    c.kind[0] = k0;
    c.kind[1] = k1;
    c.nwaiters = nwaiters;
    c.done[0] = c.done[1] = -1;
    if (k0 == W_ACCEPT) {
        assert_int_equal(nt_listen(&c.s, &port, 0), 0);
    } else {
        assert_int_equal(nt_pair(&c.s, &c.peer), 0);
        assert_int_equal(nt_small_buffers(c.s), 0);
        assert_int_equal(nt_small_buffers(c.peer), 0);
        c.data = calloc(1, BIG);
        assert_non_null(c.data);
    }
    for (int i = 0; i < nwaiters; i++) tg_spawn(cw_waiter, &c);
    tg_spawn(cw_closer, &c);
    NT_RUN();
    if (c.other_fd >= 0) close(c.other_fd);
    if (c.peer) assert_int_equal(net_close(c.peer), 0);
    free(c.data);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.close_rc, 0);
    for (int i = 0; i < nwaiters; i++) {
        assert_int_equal(c.done[i], 1);
        assert_int_equal(c.rc[i], NET_ECLOSED);
        assert_true(c.t_done[i] - c.t_close < tg_slack_ms());
        if (c.kind[i] == W_SEND) {
            assert_true(c.sent[i] < BIG);
            assert_int_equal(c.sent[i], c.out_before);
        }
    }
    assert_true(c.open_after_close);
    assert_true(c.other_fd >= 0);
    assert_int_not_equal(c.other_fd, c.fd);
    assert_false(c.open_after_leave);
    assert_int_equal(c.errno_after_leave, EBADF);
}

static void test_close_recv_waiter(void **state)
{
    (void)state;
    run_close_waiters(W_RECV, 0, 1);
}

static void test_close_send_waiter(void **state)
{
    (void)state;
    run_close_waiters(W_SEND, 0, 1);
}

static void test_close_accept_waiter(void **state)
{
    (void)state;
    run_close_waiters(W_ACCEPT, 0, 1);
}

static void test_close_recv_and_send_waiters(void **state)
{
    (void)state;
    run_close_waiters(W_RECV, W_SEND, 2);
}

/* --- one waiter per direction ------------------------------------------- */

typedef struct two_ctx {
    net_sock *a, *b, *ls;
    int port;
    ssize_t rc1, rc2, rc_send;
    int64_t took2;
    char buf1[16];
    size_t sent2;
    char *data;
    size_t got;
    int64_t bad_at;
    int rc_peer;
} two_ctx;

static void two_first_reader(void *p)
{
    two_ctx *c = p;
    c->rc1 = net_recv(c->a, c->buf1, sizeof c->buf1, gt_now() + tg_slack_ms());
}

static void two_second_reader(void *p)
{
    two_ctx *c = p;
    char buf[16];
    int64_t t0 = gt_now();
    c->rc2 = net_recv(c->a, buf, sizeof buf, t0 + tg_slack_ms());
    c->took2 = gt_now() - t0;
}

/* The second waiter must fail at once, long before the peer acts. */
#define PEER_DELAY 300
#define AT_ONCE 200

static void two_pinger(void *p)
{
    two_ctx *c = p;
    gt_sleep(gt_now() + PEER_DELAY);
    c->rc_send = net_send(c->b, "ping", 4, NULL, gt_now() + tg_slack_ms());
}

static void test_two_readers(void **state)
{
    (void)state;
    two_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(two_first_reader, &c);
    tg_spawn(two_second_reader, &c);
    tg_spawn(two_pinger, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc2, -EALREADY);
    assert_true(c.took2 < AT_ONCE);
    assert_int_equal(c.rc_send, 4);
    assert_int_equal(c.rc1, 4);
    assert_memory_equal(c.buf1, "ping", 4);
}

static void two_first_writer(void *p)
{
    two_ctx *c = p;
    c->rc1 = net_send(c->a, c->data, BIG, NULL, gt_now() + tg_slack_ms());
}

static void two_second_writer(void *p)
{
    two_ctx *c = p;
    int64_t t0 = gt_now();
    c->rc2 = net_send(c->a, "X", 1, &c->sent2, t0 + tg_slack_ms());
    c->took2 = gt_now() - t0;
}

static void two_drainer(void *p)
{
    two_ctx *c = p;
    unsigned char buf[8192];
    gt_sleep(gt_now() + PEER_DELAY);
    int64_t dl = gt_now() + tg_slack_ms();
    c->bad_at = -1;
    while (c->got < BIG) {
        ssize_t r = net_recv(c->b, buf, sizeof buf, dl);
        if (r <= 0) {
            c->rc_peer = (int)r;
            return;
        }
        int64_t bad = nt_pat_check(buf, c->got, (size_t)r, 7);
        if (bad >= 0 && c->bad_at < 0) c->bad_at = bad;
        c->got += (size_t)r;
    }
}

static void test_two_writers(void **state)
{
    (void)state;
    two_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_small_buffers(c.a), 0);
    assert_int_equal(nt_small_buffers(c.b), 0);
    c.data = malloc(BIG);
    assert_non_null(c.data);
    nt_pat_fill((unsigned char *)c.data, 0, BIG, 7);
    tg_spawn(two_first_writer, &c);
    tg_spawn(two_second_writer, &c);
    tg_spawn(two_drainer, &c);
    NT_RUN();
    free(c.data);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc2, -EALREADY);
    assert_int_equal(c.sent2, 0);
    assert_true(c.took2 < AT_ONCE);
    assert_int_equal(c.rc1, BIG);
    assert_int_equal(c.rc_peer, 0);
    assert_int_equal(c.got, BIG);
    assert_int_equal(c.bad_at, -1);
}

static void two_first_acceptor(void *p)
{
    two_ctx *c = p;
    net_sock *s;
    c->rc1 = net_accept(c->ls, &s, gt_now() + tg_slack_ms());
    if (c->rc1 == 0) net_close(s);
}

static void two_second_acceptor(void *p)
{
    two_ctx *c = p;
    net_sock *s;
    int64_t t0 = gt_now();
    c->rc2 = net_accept(c->ls, &s, t0 + tg_slack_ms());
    c->took2 = gt_now() - t0;
    if (c->rc2 == 0) net_close(s);
}

static void two_connector(void *p)
{
    two_ctx *c = p;
    net_sock *s;
    gt_sleep(gt_now() + PEER_DELAY);
    c->rc_peer = net_connect(&s, "127.0.0.1", c->port, NULL, 0,
                             gt_now() + tg_slack_ms());
    if (c->rc_peer == 0) net_close(s);
}

static void test_two_acceptors(void **state)
{
    (void)state;
    two_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_listen(&c.ls, &c.port, 0), 0);
    tg_spawn(two_first_acceptor, &c);
    tg_spawn(two_second_acceptor, &c);
    tg_spawn(two_connector, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc2, -EALREADY);
    assert_true(c.took2 < AT_ONCE);
    assert_int_equal(c.rc_peer, 0);
    assert_int_equal(c.rc1, 0);
}

/* --- a reader and a writer on one socket at once ----------------------- */

typedef struct rw_ctx {
    net_sock *a, *b;
    char *data;
    ssize_t rc_r, rc_w, rc_done;
    size_t sent;
    char rbuf[16];
    int r_in, w_in, both_parked;
    size_t got;
    int64_t bad_at;
    int rc_peer;
} rw_ctx;

static void rw_reader(void *p)
{
    rw_ctx *c = p;
    c->r_in = 1;
    c->rc_r = net_recv(c->a, c->rbuf, sizeof c->rbuf, gt_now() + tg_slack_ms());
    c->r_in = 0;
}

static void rw_writer(void *p)
{
    rw_ctx *c = p;
    c->w_in = 1;
    c->rc_w = net_send(c->a, c->data, BIG, &c->sent, gt_now() + tg_slack_ms());
    c->w_in = 0;
}

static void rw_peer(void *p)
{
    rw_ctx *c = p;
    unsigned char buf[8192];
    gt_sleep(gt_now() + 20);
    c->both_parked = c->r_in && c->w_in;
    int64_t dl = gt_now() + tg_slack_ms();
    c->bad_at = -1;
    while (c->got < BIG) {
        ssize_t r = net_recv(c->b, buf, sizeof buf, dl);
        if (r <= 0) {
            c->rc_peer = (int)r;
            return;
        }
        int64_t bad = nt_pat_check(buf, c->got, (size_t)r, 3);
        if (bad >= 0 && c->bad_at < 0) c->bad_at = bad;
        c->got += (size_t)r;
    }
    c->rc_done = net_send(c->b, "done", 4, NULL, dl);
}

static void test_reader_and_writer(void **state)
{
    (void)state;
    rw_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_small_buffers(c.a), 0);
    assert_int_equal(nt_small_buffers(c.b), 0);
    c.data = malloc(BIG);
    assert_non_null(c.data);
    nt_pat_fill((unsigned char *)c.data, 0, BIG, 3);
    tg_spawn(rw_reader, &c);
    tg_spawn(rw_writer, &c);
    tg_spawn(rw_peer, &c);
    NT_RUN();
    free(c.data);
    uint64_t in, out;
    assert_int_equal(net_stats(c.a, &in, &out, NULL), 0);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c.both_parked);
    assert_int_equal(c.rc_w, BIG);
    assert_int_equal(c.sent, BIG);
    assert_int_equal(c.rc_peer, 0);
    assert_int_equal(c.got, BIG);
    assert_int_equal(c.bad_at, -1);
    assert_int_equal(c.rc_done, 4);
    assert_int_equal(c.rc_r, 4);
    assert_memory_equal(c.rbuf, "done", 4);
    assert_int_equal(in, 4);
    assert_int_equal(out, BIG);
}

/* --- send: the count, and a reset half-way ---------------------------- */

#define RESET_AFTER (64u * 1024)
#define RESET_TOTAL (16u << 20)

typedef struct sr_ctx {
    net_sock *a, *b;
    char *data;
    ssize_t rc;
    size_t sent;
    size_t peer_got;
    int64_t took;
    uint64_t out;
} sr_ctx;

static void sr_writer(void *p)
{
    sr_ctx *c = p;
    int64_t t0 = gt_now();
    c->sent = (size_t)-1;
    c->rc = net_send(c->a, c->data, RESET_TOTAL, &c->sent, t0 + tg_slack_ms());
    c->took = gt_now() - t0;
    net_stats(c->a, NULL, &c->out, NULL);
}

static void sr_peer(void *p)
{
    sr_ctx *c = p;
    char buf[4096];
    int64_t dl = gt_now() + tg_slack_ms();
    while (c->peer_got < RESET_AFTER) {
        ssize_t r = net_recv(c->b, buf, sizeof buf, dl);
        if (r <= 0) break;
        c->peer_got += (size_t)r;
    }
    nt_linger0(c->b);
    net_close(c->b);
    c->b = NULL;
}

static void test_send_reset_midway(void **state)
{
    (void)state;
    sr_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_small_buffers(c.a), 0);
    assert_int_equal(nt_small_buffers(c.b), 0);
    c.data = calloc(1, RESET_TOTAL);
    assert_non_null(c.data);
    tg_spawn(sr_writer, &c);
    tg_spawn(sr_peer, &c);
    NT_RUN();
    free(c.data);
    assert_int_equal(net_close(c.a), 0);
    if (c.b) assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c.rc == -ECONNRESET || c.rc == -EPIPE);
    assert_true(c.peer_got >= RESET_AFTER);
    assert_true(c.sent >= c.peer_got);
    assert_true(c.sent < RESET_TOTAL);
    assert_int_equal(c.out, c.sent);
    assert_true(c.took < tg_slack_ms());
}

/* --- no SIGPIPE ----------------------------------------------------------- */

typedef struct pipe_ctx {
    net_sock *a;
    ssize_t rc;
    int tries;
} pipe_ctx;

static void pipe_writer(void *p)
{
    pipe_ctx *c = p;
    static const char data[1000] = {0};
    for (c->tries = 0; c->tries < 100; c->tries++) {
        c->rc =
            net_send(c->a, data, sizeof data, NULL, gt_now() + tg_slack_ms());
        if (c->rc < 0) break;
        gt_sleep(gt_now() + 5);
    }
}

static void test_no_sigpipe(void **state)
{
    (void)state;
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    /* SIGPIPE would kill the process now. */
    assert_int_equal(sigaction(SIGPIPE, &dfl, &old), 0);
    pipe_ctx c;
    net_sock *b;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &b), 0);
    assert_int_equal(net_close(b), 0);
    tg_spawn(pipe_writer, &c);
    NT_RUN();
    /* Once more from outside a green thread (it does not park). */
    ssize_t rc = net_send(c.a, "x", 1, NULL, -1);
    assert_int_equal(net_close(c.a), 0);
    sigaction(SIGPIPE, &old, NULL);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c.rc == -EPIPE || c.rc == -ECONNRESET);
    assert_true(c.tries < 100);
    assert_true(rc == -EPIPE || rc == -ECONNRESET);
}

/* --- timeouts leave the socket usable; cancellation --------------------- */

typedef struct to_ctx {
    net_sock *a, *b;
    ssize_t rc_to, rc_after, rc_cancel, rc_send;
    int64_t took;
    char buf[8];
    int64_t reader_id;
} to_ctx;

static void to_reader(void *p)
{
    to_ctx *c = p;
    int64_t t0 = gt_now();
    c->rc_to = net_recv(c->a, c->buf, sizeof c->buf, t0 + 50);
    c->took = gt_now() - t0;
    c->rc_after =
        net_recv(c->a, c->buf, sizeof c->buf, gt_now() + tg_slack_ms());
    /* Cancelled while parked: -ECANCELED. */
    c->rc_cancel =
        net_recv(c->a, c->buf, sizeof c->buf, gt_now() + tg_slack_ms());
}

static void to_writer(void *p)
{
    to_ctx *c = p;
    gt_sleep(gt_now() + 100);
    c->rc_send = net_send(c->b, "late", 4, NULL, gt_now() + tg_slack_ms());
    gt_sleep(gt_now() + 50);
    gt_cancel(c->reader_id);
}

static void test_timeout_and_cancel(void **state)
{
    (void)state;
    to_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    c.reader_id = tg_spawn(to_reader, &c);
    tg_spawn(to_writer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc_to, -ETIMEDOUT);
    assert_true(c.took >= 49 && c.took < 50 + tg_slack_ms());
    assert_int_equal(c.rc_send, 4);
    assert_int_equal(c.rc_after, 4);
    assert_memory_equal(c.buf, "late", 4);
    assert_int_equal(c.rc_cancel, -ECANCELED);
}

/* --- deadline 0 tries once, whatever came before ------------------------ */

/* One green thread does everything, so no loop round runs in between:
 * a receive that found nothing, then data sent by the peer, then a
 * receive with deadline 0 must find the data.  The same for a send that
 * found the buffers full, then a peer that drained them. */
typedef struct once_ctx {
    net_sock *a, *b;
    ssize_t rc[8];
    char buf[16];
    char *data;
    size_t sent, drained;
} once_ctx;

static void once_thread(void *p)
{
    once_ctx *c = p;
    c->rc[0] = net_recv(c->a, c->buf, sizeof c->buf, 0);
    c->rc[1] = net_send(c->b, "now", 3, NULL, 0);
    c->rc[2] = net_recv(c->a, c->buf, sizeof c->buf, 0);
    /* The same with a short read first (it may have drained nothing). */
    c->rc[3] = net_send(c->b, "abcdef", 6, NULL, 0);
    c->rc[4] = net_recv(c->a, c->buf, 3, 0);
    c->rc[5] = net_recv(c->a, c->buf + 3, sizeof c->buf - 3, 0);
    /* Fill a's send buffer, drain it at b, send again with deadline 0. */
    c->rc[6] = net_send(c->a, c->data, BIG, &c->sent, 0);
    char tmp[4096];
    for (int i = 0; i < 100000 && c->drained < c->sent; i++) {
        ssize_t r = net_recv(c->b, tmp, sizeof tmp, 0);
        if (r > 0)
            c->drained += (size_t)r;
        else if (r != -ETIMEDOUT)
            break;
        else
            gt_sleep(gt_now() + 1); /* in flight: let the kernel move it */
    }
    c->rc[7] = net_send(c->a, "x", 1, NULL, 0);
}

static void test_deadline0_tries_once(void **state)
{
    (void)state;
    once_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    assert_int_equal(nt_small_buffers(c.a), 0);
    assert_int_equal(nt_small_buffers(c.b), 0);
    c.data = calloc(1, BIG);
    assert_non_null(c.data);
    tg_spawn(once_thread, &c);
    NT_RUN();
    free(c.data);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], -ETIMEDOUT);
    assert_int_equal(c.rc[1], 3);
    assert_int_equal(c.rc[2], 3);
    assert_int_equal(c.rc[3], 6);
    assert_int_equal(c.rc[4], 3);
    assert_int_equal(c.rc[5], 3);
    assert_memory_equal(c.buf, "abcdef", 6);
    assert_int_equal(c.rc[6], -ETIMEDOUT);
    assert_true(c.sent > 0 && c.sent < BIG);
    assert_int_equal(c.drained, c.sent);
    assert_int_equal(c.rc[7], 1);
}

/* Polling: a reader that only ever tries once (deadline 0) and sleeps
 * between tries must see data the peer sends meanwhile. */
typedef struct pollr_ctx {
    net_sock *a, *b;
    ssize_t rc;
    int tries;
    char buf[16];
} pollr_ctx;

static void pollr_reader(void *p)
{
    pollr_ctx *c = p;
    for (c->tries = 0; c->tries < 400; c->tries++) {
        c->rc = net_recv(c->a, c->buf, sizeof c->buf, 0);
        if (c->rc != -ETIMEDOUT) break;
        gt_sleep(gt_now() + 2);
    }
}

static void pollr_writer(void *p)
{
    pollr_ctx *c = p;
    gt_sleep(gt_now() + 20);
    net_send(c->b, "data", 4, NULL, gt_now() + tg_slack_ms());
}

static void test_poll_with_deadline0(void **state)
{
    (void)state;
    pollr_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(pollr_reader, &c);
    tg_spawn(pollr_writer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc, 4);
    assert_memory_equal(c.buf, "data", 4);
    assert_true(c.tries > 0);
}

/* --- net_serve ------------------------------------------------------------ */

#define SERVE_CLIENTS 6

typedef struct serve_ctx {
    net_sock *ls;
    int port;
    int handled, closed_self, handler_errors;
    int saw_conn_name, saw_acceptor_name;
    int saw_poller; /* the dump names the poller the loop runs on */
    int slow;       /* the handler sleeps before replying */
    int clients_done;
    int close_early; /* the first client closes the listener at once */
    int rc_connect[SERVE_CLIENTS];
    ssize_t rc_all[SERVE_CLIENTS];
    char reply[SERVE_CLIENTS][64];
} serve_ctx;

static serve_ctx *serve_c;

static void handler(net_sock *s, void *arg)
{
    serve_ctx *c = arg;
    net_buf line = {NULL, 0, 0};
    int64_t dl = gt_now() + tg_slack_ms();
    c->handled++;
    if (c->handled == 1) {
        char *dump = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&dump, &len);
        if (f) {
            gt_dump(f);
            fclose(f);
            c->saw_conn_name = strstr(dump, "conn") != NULL;
            c->saw_acceptor_name = strstr(dump, "acceptor") != NULL;
            char want[32];
            snprintf(want, sizeof want, "poller %s\n", net_poller_name());
            c->saw_poller = strstr(dump, want) != NULL;
            free(dump);
        }
    }
    if (net_receive(s, NET_LINE, 0, &line, dl) < 0) {
        c->handler_errors++;
        net_buf_free(&line);
        return;
    }
    if (c->slow) gt_sleep(gt_now() + 100);
    if (line.len == 10 && !memcmp(line.data, "close-self", 10)) {
        net_send(s, "bye\n", 4, NULL, dl);
        net_close(s); /* the library must not close it again */
        c->closed_self++;
    } else {
        if (net_send(s, "echo:", 5, NULL, dl) != 5 ||
            net_send(s, line.data, line.len, NULL, dl) != (ssize_t)line.len ||
            net_send(s, "\n", 1, NULL, dl) != 1)
            c->handler_errors++;
    }
    net_buf_free(&line);
}

static void serve_client(void *p)
{
    serve_ctx *c = serve_c;
    int i = (int)(intptr_t)p;
    net_sock *s;
    int64_t dl = gt_now() + tg_slack_ms();
    c->rc_connect[i] = net_connect(&s, "127.0.0.1", c->port, NULL, 0, dl);
    if (c->rc_connect[i] == 0) {
        if (i == 0 && c->close_early) net_close(c->ls);
        char msg[32];
        int n = i == 1 ? snprintf(msg, sizeof msg, "close-self\n")
                       : snprintf(msg, sizeof msg, "msg %d\r\n", i);
        net_buf all = {NULL, 0, 0};
        net_send(s, msg, (size_t)n, NULL, dl);
        c->rc_all[i] = net_receive(s, NET_ALL, 0, &all, dl);
        if (all.len < sizeof c->reply[i])
            memcpy(c->reply[i], all.data, all.len);
        net_buf_free(&all);
        net_close(s);
    }
    if (++c->clients_done == SERVE_CLIENTS && !c->close_early)
        net_close(c->ls); /* stops the acceptor: gt_run can return */
}

static void run_serve(int slow, int close_early)
{
    serve_ctx c;
    memset(&c, 0, sizeof c);
    c.slow = slow;
    c.close_early = close_early;
    serve_c = &c;
    assert_int_equal(net_serve(&c.ls, "127.0.0.1", 0, handler, &c), 0);
    net_addr ad;
    assert_int_equal(net_local_addr(c.ls, &ad), 0);
    c.port = ad.port;
    int n = close_early ? 1 : SERVE_CLIENTS;
    for (int i = 0; i < n; i++) tg_spawn(serve_client, (void *)(intptr_t)i);
    if (close_early) c.clients_done = SERVE_CLIENTS - 1;
    NT_RUN();
    /* Listener, connections, server record: all gone. */
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.handled, n);
    assert_int_equal(c.handler_errors, 0);
    assert_true(c.saw_conn_name);
    assert_true(c.saw_poller);
    if (!close_early) assert_true(c.saw_acceptor_name);
    for (int i = 0; i < n; i++) {
        char want[64];
        if (i == 1)
            snprintf(want, sizeof want, "bye\n");
        else
            snprintf(want, sizeof want, "echo:msg %d\n", i);
        assert_int_equal(c.rc_connect[i], 0);
        assert_int_equal(c.rc_all[i], (ssize_t)strlen(want));
        assert_string_equal(c.reply[i], want);
    }
    assert_int_equal(c.closed_self, n > 1 ? 1 : 0);
}

static void test_serve(void **state)
{
    (void)state;
    run_serve(0, 0);
}

/* Closing the listener stops the acceptor only: a running handler goes on
 * and finishes its connection. */
static void test_serve_close_early(void **state)
{
    (void)state;
    run_serve(1, 1);
}

static void test_serve_errors(void **state)
{
    (void)state;
    net_sock *ls, *s2 = NULL;
    int port = 0;
    assert_int_equal(nt_listen(&ls, &port, 0), 0);
    int rc = net_serve(&s2, "127.0.0.1", port, handler, NULL);
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(rc, -EADDRINUSE);
    assert_null(s2);
    /* A server closed before its acceptor ever ran. */
    assert_int_equal(net_serve(&s2, "127.0.0.1", 0, handler, NULL), 0);
    assert_int_equal(net_close(s2), 0);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_peer_reset),
        NT_TEST(test_half_close),
        NT_TEST(test_close_recv_waiter),
        NT_TEST(test_close_send_waiter),
        NT_TEST(test_close_accept_waiter),
        NT_TEST(test_close_recv_and_send_waiters),
        NT_TEST(test_two_readers),
        NT_TEST(test_two_writers),
        NT_TEST(test_two_acceptors),
        NT_TEST(test_reader_and_writer),
        NT_TEST(test_send_reset_midway),
        NT_TEST(test_no_sigpipe),
        NT_TEST(test_timeout_and_cancel),
        NT_TEST(test_deadline0_tries_once),
        NT_TEST(test_poll_with_deadline0),
        NT_TEST(test_serve),
        NT_TEST(test_serve_close_early),
        NT_TEST(test_serve_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
