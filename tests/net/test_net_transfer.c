/* A 64 MiB transfer (8 MiB under Valgrind) over a connection made with
 * net_listen/net_connect/net_accept, verified byte for byte, while a
 * smaller stream flows the other way on the same socket.  Senders write
 * chunks of varying sizes; receivers read with net_recv and
 * net_receive(NET_BYTES) in varying sizes. */
#include "net_test.h"

#define CHUNK_MAX (256 * 1024)

typedef struct dir {
    net_sock *out, *in; /* written by the sender, read by the receiver */
    uint64_t total, seed;
    /* Sender. */
    ssize_t send_rc;
    uint64_t sent;
    /* Receiver. */
    ssize_t recv_rc;
    uint64_t got;
    int64_t bad_at;
    int eof;
} dir;

typedef struct xfer {
    net_sock *ls, *client, *server;
    int port;
    int rc_connect, rc_accept;
    dir d[2];
    int setup_done;
} xfer;

static void sender(void *p)
{
    dir *d = p;
    unsigned char *buf = malloc(CHUNK_MAX);
    uint64_t rs = d->seed;
    int64_t dl = gt_now() + (tg_under_valgrind() ? 120000 : 30000);
    if (!buf) {
        d->send_rc = -ENOMEM;
        return;
    }
    while (d->sent < d->total) {
        size_t n = 1 + nt_rand(&rs) % CHUNK_MAX;
        if (n > d->total - d->sent) n = (size_t)(d->total - d->sent);
        nt_pat_fill(buf, d->sent, n, d->seed);
        size_t done = 0;
        ssize_t rc = net_send(d->out, buf, n, &done, dl);
        d->sent += done;
        if (rc != (ssize_t)n) {
            d->send_rc = rc < 0 ? rc : -EIO;
            break;
        }
    }
    free(buf);
    net_shutdown(d->out, SHUT_WR);
}

static void receiver(void *p)
{
    dir *d = p;
    unsigned char *buf = malloc(CHUNK_MAX);
    net_buf nb = {NULL, 0, 0};
    uint64_t rs = d->seed ^ 0xabcdef;
    int64_t dl = gt_now() + (tg_under_valgrind() ? 120000 : 30000);
    d->bad_at = -1;
    if (!buf) {
        d->recv_rc = -ENOMEM;
        return;
    }
    for (int i = 0;; i++) {
        size_t n = 1 + nt_rand(&rs) % CHUNK_MAX;
        const unsigned char *data;
        ssize_t r;
        if (i % 3 == 2 && d->got < d->total) {
            /* An exact count, never past the end. */
            if (n > d->total - d->got) n = (size_t)(d->total - d->got);
            nb.len = 0;
            r = net_receive(d->in, NET_BYTES, n, &nb, dl);
            data = (const unsigned char *)nb.data;
            if (r >= 0 && r != (ssize_t)n) r = -EIO;
        } else {
            r = net_recv(d->in, buf, n, dl);
            data = buf;
        }
        if (r == 0) {
            d->eof = 1;
            break;
        }
        if (r < 0) {
            d->recv_rc = r;
            break;
        }
        if (d->bad_at < 0) {
            int64_t bad = nt_pat_check(data, d->got, (size_t)r, d->seed);
            if (bad >= 0) d->bad_at = bad;
        }
        d->got += (uint64_t)r;
        if (d->got > d->total) break;
    }
    net_buf_free(&nb);
    free(buf);
}

static void connector(void *p)
{
    xfer *x = p;
    x->rc_connect = net_connect(&x->client, "127.0.0.1", x->port, NULL, 0,
                                gt_now() + tg_slack_ms());
}

static void acceptor(void *p)
{
    xfer *x = p;
    x->rc_accept = net_accept(x->ls, &x->server, gt_now() + tg_slack_ms());
    net_close(x->ls);
    x->ls = NULL;
    /* Wait for the connector to see its connection complete. */
    int64_t dl = gt_now() + tg_slack_ms();
    while (!x->rc_connect && !x->client && gt_now() < dl)
        gt_sleep(gt_now() + 1);
    if (x->rc_accept || x->rc_connect || !x->client) return;
    x->setup_done = 1;
    x->d[0].out = x->client;
    x->d[0].in = x->server;
    x->d[1].out = x->server;
    x->d[1].in = x->client;
    gt_spawn(receiver, &x->d[0]);
    gt_spawn(receiver, &x->d[1]);
    gt_spawn(sender, &x->d[0]);
    gt_spawn(sender, &x->d[1]);
}

static void test_transfer(void **state)
{
    (void)state;
    xfer x;
    memset(&x, 0, sizeof x);
    uint64_t mib = tg_under_valgrind() ? 8 : 64;
    x.d[0].total = mib << 20;
    x.d[0].seed = 11;
    x.d[1].total = (mib / 8) << 20;
    x.d[1].seed = 22;
    assert_int_equal(nt_listen(&x.ls, &x.port, 0), 0);
    int64_t t0 = gt_now();
    tg_spawn(connector, &x);
    tg_spawn(acceptor, &x);
    NT_RUN();
    int64_t took = gt_now() - t0;
    uint64_t in[2] = {0, 0}, out[2] = {0, 0};
    if (x.client) net_stats(x.client, &in[0], &out[0], NULL);
    if (x.server) net_stats(x.server, &in[1], &out[1], NULL);
    print_message("  %s: %llu + %llu MiB in %lld ms\n", net_poller_name(),
                  (unsigned long long)mib, (unsigned long long)(mib / 8),
                  (long long)took);
    if (x.ls) net_close(x.ls);
    if (x.client) net_close(x.client);
    if (x.server) net_close(x.server);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(x.rc_connect, 0);
    assert_int_equal(x.rc_accept, 0);
    assert_true(x.setup_done);
    for (int i = 0; i < 2; i++) {
        dir *d = &x.d[i];
        assert_int_equal(d->send_rc, 0);
        assert_int_equal(d->sent, d->total);
        assert_int_equal(d->recv_rc, 0);
        assert_int_equal(d->got, d->total);
        assert_int_equal(d->bad_at, -1);
        assert_true(d->eof);
    }
    assert_int_equal(out[0], x.d[0].total);
    assert_int_equal(in[1], x.d[0].total);
    assert_int_equal(out[1], x.d[1].total);
    assert_int_equal(in[0], x.d[1].total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
