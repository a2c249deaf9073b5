/* The net layer's small contracts: argument checks, calls from outside
 * green threads, texts, options, addresses, statistics, net_wait on
 * foreign descriptors, select's FD_SETSIZE limit, connect and accept
 * deadlines, and name resolution. */
#include "net_test.h"

/* --- the poller the environment asked for ------------------------------ */

static void test_poller_name(void **state)
{
    (void)state;
    const char *env = nt_poller_env();
    const char *name = net_poller_name();
    if (env)
        assert_string_equal(name, env);
    else
        assert_true(!strcmp(name, "epoll") || !strcmp(name, "poll") ||
                    !strcmp(name, "select") || !strcmp(name, "uring"));
    assert_int_equal(net_cleanup(), 0);
    /* No loop now: cleaning up again is harmless. */
    assert_int_equal(net_cleanup(), 0);
}

/* --- NULL and out-of-range arguments ------------------------------------ */

static void nop_handler(net_sock *s, void *arg)
{
    (void)s;
    (void)arg;
}

static void test_einval(void **state)
{
    (void)state;
    net_sock *a, *b, *s = NULL;
    char buf[4] = {0};
    net_buf nb = {NULL, 0, 0};
    net_addr ad;
    int v = 0, pfd[2];
    uint64_t u;
    int64_t age;
    assert_int_equal(nt_pair(&a, &b), 0);
    assert_int_equal(pipe(pfd), 0);

    assert_int_equal(net_wrap(NULL, net_fd(a)), -EINVAL);
    assert_int_equal(net_wrap(&s, -1), -EINVAL);
    assert_int_equal(net_wrap(&s, pfd[0]), -ENOTSOCK);
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(udp >= 0);
    assert_true(net_wrap(&s, udp) < 0);
    close(udp);
    assert_null(s);

    assert_int_equal(net_connect(NULL, "127.0.0.1", 80, NULL, 0, 0), -EINVAL);
    assert_int_equal(net_connect(&s, NULL, 80, NULL, 0, 0), -EINVAL);
    assert_int_equal(net_connect(&s, "127.0.0.1", 0, NULL, 0, 0), -EINVAL);
    assert_int_equal(net_connect(&s, "127.0.0.1", -1, NULL, 0, 0), -EINVAL);
    assert_int_equal(net_connect(&s, "127.0.0.1", 65536, NULL, 0, 0), -EINVAL);
    assert_int_equal(net_connect(&s, "127.0.0.1", 80, NULL, -1, 0), -EINVAL);
    assert_int_equal(net_connect(&s, "127.0.0.1", 80, NULL, 65536, 0), -EINVAL);

    assert_int_equal(net_listen(NULL, "127.0.0.1", 0, 0), -EINVAL);
    assert_int_equal(net_listen(&s, "127.0.0.1", -1, 0), -EINVAL);
    assert_int_equal(net_listen(&s, "127.0.0.1", 65536, 0), -EINVAL);
    assert_int_equal(net_accept(NULL, &s, 0), -EINVAL);
    assert_int_equal(net_accept(a, NULL, 0), -EINVAL);
    assert_int_equal(net_serve(NULL, "127.0.0.1", 0, nop_handler, NULL),
                     -EINVAL);
    assert_int_equal(net_serve(&s, "127.0.0.1", 0, NULL, NULL), -EINVAL);
    assert_null(s);

    assert_int_equal(net_recv(NULL, buf, 1, 0), -EINVAL);
    assert_int_equal(net_recv(a, NULL, 1, 0), -EINVAL);
    assert_int_equal(net_recv(a, buf, 0, 0), -EINVAL);
    assert_int_equal(net_send(NULL, buf, 1, NULL, 0), -EINVAL);
    assert_int_equal(net_send(a, NULL, 1, NULL, 0), -EINVAL);
    assert_int_equal(net_send(a, NULL, 0, NULL, 0), 0); /* nothing to send */

    assert_int_equal(net_shutdown(NULL, SHUT_WR), -EINVAL);
    assert_int_equal(net_shutdown(a, 12345), -EINVAL);
    assert_int_equal(net_close(NULL), -EINVAL);
    assert_int_equal(net_fd(NULL), -1);

    assert_int_equal(net_setopt(NULL, NET_NODELAY, 1), -EINVAL);
    assert_int_equal(net_setopt(a, 0, 1), -EINVAL);
    assert_int_equal(net_setopt(a, 99, 1), -EINVAL);
    assert_int_equal(net_getopt(NULL, NET_NODELAY, &v), -EINVAL);
    assert_int_equal(net_getopt(a, NET_NODELAY, NULL), -EINVAL);
    assert_int_equal(net_getopt(a, 99, &v), -EINVAL);

    assert_int_equal(net_local_addr(NULL, &ad), -EINVAL);
    assert_int_equal(net_local_addr(a, NULL), -EINVAL);
    assert_int_equal(net_peer_addr(NULL, &ad), -EINVAL);
    assert_int_equal(net_peer_addr(a, NULL), -EINVAL);
    assert_int_equal(net_stats(NULL, &u, &u, &age), -EINVAL);
    assert_int_equal(net_stats(a, NULL, NULL, NULL), 0);

    assert_int_equal(net_wait(-1, NET_IN, 0), -EINVAL);
    assert_int_equal(net_wait(pfd[0], 0, 0), -EINVAL);
    assert_int_equal(net_wait(pfd[0], 8, 0), -EINVAL);
    assert_int_equal(net_wait(pfd[0], NET_IN | 8, 0), -EINVAL);

    assert_int_equal(net_receive(NULL, NET_LINE, 0, &nb, 0), -EINVAL);
    assert_int_equal(net_receive(a, NET_LINE, 0, NULL, 0), -EINVAL);
    assert_int_equal(net_receive(a, 0, 0, &nb, 0), -EINVAL);
    assert_int_equal(net_receive(a, 99, 0, &nb, 0), -EINVAL);
    assert_int_equal(nb.len, 0);
    assert_int_equal(net_set_max_line(NULL, 8), -EINVAL);
    assert_int_equal(net_set_max_line(a, 0), -EINVAL);
    assert_int_equal(net_buffered(NULL), 0);
    net_buf_free(NULL);
    net_buf_free(&nb);

    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* net_wrap makes the descriptor non-blocking; a closed one is refused. */
static void test_wrap(void **state)
{
    (void)state;
    int c, s;
    net_sock *a, *b;
    assert_int_equal(nt_raw_pair(&c, &s), 0);
    assert_int_equal(fcntl(c, F_GETFL) & O_NONBLOCK, 0);
    assert_int_equal(net_wrap(&a, c), 0);
    assert_int_equal(net_wrap(&b, s), 0);
    assert_int_equal(net_fd(a), c);
    assert_true(fcntl(c, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(s, F_GETFL) & O_NONBLOCK);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    /* The descriptors went with the sockets. */
    assert_int_equal(fcntl(c, F_GETFD), -1);
    assert_int_equal(fcntl(s, F_GETFD), -1);
    net_sock *x = NULL;
    assert_int_equal(net_wrap(&x, c), -EBADF);
    assert_null(x);
    assert_int_equal(net_cleanup(), 0);
}

/* --- calls that would park, from outside any green thread ---------------- */

static void test_eperm_outside(void **state)
{
    (void)state;
    net_sock *a, *b, *ls, *s = NULL, *s2 = NULL, *s3 = NULL;
    int port = 0, pfd[2];
    char buf[16];
    net_buf nb = {NULL, 0, 0};
    ssize_t rc[12];
    assert_int_equal(nt_pair(&a, &b), 0);
    assert_int_equal(nt_listen(&ls, &port, 0), 0);
    assert_int_equal(pipe(pfd), 0);
    rc[0] = net_recv(a, buf, sizeof buf, -1);
    rc[1] = net_recv(a, buf, sizeof buf, gt_now() + 1000);
    rc[2] = net_receive(a, NET_LINE, 0, &nb, -1);
    rc[3] = net_receive(a, NET_BYTES, 4, &nb, -1);
    rc[4] = net_receive(a, NET_ALL, 0, &nb, -1);
    rc[5] = net_receive(a, NET_BYTES, 0, &nb, -1);
    size_t nblen = nb.len;
    net_buf_free(&nb);
    rc[6] = net_accept(ls, &s, -1);
    rc[7] = net_connect(&s2, "127.0.0.1", port, NULL, 0, -1);
    rc[8] = net_wait(pfd[0], NET_IN, -1);
    /* Deadline 0 does not park: it tries once, also out here. */
    rc[9] = net_recv(a, buf, sizeof buf, 0);
    rc[10] = net_accept(ls, &s3, 0);
    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(net_cleanup(), 0);
    for (int i = 0; i <= 8; i++) assert_int_equal(rc[i], -EPERM);
    assert_int_equal(nblen, 0);
    assert_null(s);
    assert_null(s2);
    assert_int_equal(rc[9], -ETIMEDOUT);
    assert_int_equal(rc[10], -ETIMEDOUT);
    assert_null(s3);
}

/* What does not need to park works outside green threads: a small send,
 * and a receive of what has arrived (polled for with poll(2) here), also
 * after a receive that found nothing. */
static void test_outside_no_park(void **state)
{
    (void)state;
    net_sock *a, *b;
    char buf[16] = {0}, buf2[16] = {0};
    ssize_t rc[8];
    int pr[2];
    assert_int_equal(nt_pair(&a, &b), 0);
    rc[0] = net_send(b, "hello", 5, NULL, -1);
    struct pollfd p = {net_fd(a), POLLIN, 0};
    pr[0] = poll(&p, 1, 5000);
    rc[1] = net_recv(a, buf, sizeof buf, -1);
    /* Now nothing: -EPERM (it would park); then data comes. */
    rc[2] = net_recv(a, buf2, sizeof buf2, -1);
    rc[3] = net_send(b, "again", 5, NULL, -1);
    pr[1] = poll(&p, 1, 5000);
    rc[4] = net_recv(a, buf2, sizeof buf2, -1);
    /* And with deadline 0. */
    rc[5] = net_send(b, "third", 5, NULL, -1);
    pr[0] += poll(&p, 1, 5000);
    char buf3[16] = {0};
    rc[6] = net_recv(a, buf3, sizeof buf3, 0);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(rc[0], 5);
    assert_int_equal(pr[0], 2);
    assert_int_equal(rc[1], 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(rc[2], -EPERM);
    assert_int_equal(rc[3], 5);
    assert_int_equal(pr[1], 1);
    assert_int_equal(rc[4], 5);
    assert_memory_equal(buf2, "again", 5);
    assert_int_equal(rc[5], 5);
    assert_int_equal(rc[6], 5);
    assert_memory_equal(buf3, "third", 5);
}

/* A send larger than the kernel's buffers goes out in part, then would
 * park: -EPERM, with *sent telling how much went. */
static void test_outside_big_send(void **state)
{
    (void)state;
    net_sock *a, *b;
    assert_int_equal(nt_pair(&a, &b), 0);
    assert_int_equal(nt_small_buffers(a), 0);
    assert_int_equal(nt_small_buffers(b), 0);
    size_t big = 16u << 20, sent = 0;
    char *data = calloc(1, big);
    assert_non_null(data);
    ssize_t rc = net_send(a, data, big, &sent, -1);
    free(data);
    uint64_t out = 0;
    int st = net_stats(a, NULL, &out, NULL);
    /* Closing and shutting down never park. */
    int sh = net_shutdown(b, SHUT_RDWR);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(rc, -EPERM);
    assert_true(sent > 0 && sent < big);
    assert_int_equal(st, 0);
    assert_int_equal(out, sent);
    assert_int_equal(sh, 0);
}

/* --- texts ---------------------------------------------------------------- */

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {NET_ECLOSED,  NET_EFDSETSIZE, NET_ENOTFOUND,
                                NET_ERESOLVE, NET_ETRYAGAIN,  NET_EEOF};
    const char *unknown = net_strerror(-4999);
    assert_non_null(unknown);
    for (int i = 0; i < TG_ARRAY_LEN(codes); i++) {
        const char *t = net_strerror(codes[i]);
        assert_non_null(t);
        assert_true(strlen(t) > 0);
        assert_string_not_equal(t, unknown);
        assert_string_equal(t, gt_strerror(codes[i])); /* one table */
        for (int j = 0; j < i; j++)
            assert_string_not_equal(t, net_strerror(codes[j]));
    }
    assert_non_null(strstr(net_strerror(NET_EFDSETSIZE), "FD_SETSIZE"));
    /* errno values and the runtime's own codes read as gt_strerror. */
    static const int others[] = {-ECONNRESET, -ETIMEDOUT,   -EPIPE, -EALREADY,
                                 -EMSGSIZE,   GT_EMAPLIMIT, 0};
    for (int i = 0; i < TG_ARRAY_LEN(others); i++)
        assert_string_equal(net_strerror(others[i]), gt_strerror(others[i]));
    assert_string_equal(net_strerror(-ECONNRESET), strerrordesc_np(ECONNRESET));
}

/* --- options -------------------------------------------------------------- */

static void test_options(void **state)
{
    (void)state;
    net_sock *a, *b, *ls;
    int port = 0, v;
    static const int opts[] = {NET_NODELAY, NET_KEEPALIVE, NET_REUSEADDR,
                               NET_REUSEPORT};
    assert_int_equal(nt_pair(&a, &b), 0);
    assert_int_equal(nt_listen(&ls, &port, 0), 0);
    /* net_listen sets SO_REUSEADDR. */
    v = 0;
    assert_int_equal(net_getopt(ls, NET_REUSEADDR, &v), 0);
    assert_true(v != 0);
    for (int i = 0; i < TG_ARRAY_LEN(opts); i++) {
        v = -1;
        assert_int_equal(net_setopt(a, opts[i], 1), 0);
        assert_int_equal(net_getopt(a, opts[i], &v), 0);
        assert_true(v != 0);
        assert_int_equal(net_setopt(a, opts[i], 0), 0);
        assert_int_equal(net_getopt(a, opts[i], &v), 0);
        assert_int_equal(v, 0);
        /* Any non-zero value means on. */
        assert_int_equal(net_setopt(a, opts[i], 7), 0);
        assert_int_equal(net_getopt(a, opts[i], &v), 0);
        assert_true(v != 0);
    }
    /* The values reach the kernel. */
    socklen_t len = sizeof v;
    assert_int_equal(net_setopt(b, NET_NODELAY, 1), 0);
    assert_int_equal(getsockopt(net_fd(b), IPPROTO_TCP, TCP_NODELAY, &v, &len),
                     0);
    assert_true(v != 0);
    assert_int_equal(net_setopt(b, NET_KEEPALIVE, 1), 0);
    assert_int_equal(getsockopt(net_fd(b), SOL_SOCKET, SO_KEEPALIVE, &v, &len),
                     0);
    assert_true(v != 0);
    assert_int_equal(net_setopt(ls, NET_REUSEPORT, 1), 0);
    assert_int_equal(getsockopt(net_fd(ls), SOL_SOCKET, SO_REUSEPORT, &v, &len),
                     0);
    assert_true(v != 0);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* --- addresses --------------------------------------------------------------
 */

typedef struct addr_ctx {
    const char *host;
    int port;
    net_sock *ls;
    int connect_rc, accept_rc;
    net_addr cl, cp, sl, sp; /* client local/peer, server local/peer */
    int rc[4];
} addr_ctx;

static void addr_client(void *p)
{
    addr_ctx *c = p;
    net_sock *s;
    c->connect_rc =
        net_connect(&s, c->host, c->port, NULL, 0, gt_now() + tg_slack_ms());
    if (c->connect_rc < 0) return;
    c->rc[0] = net_local_addr(s, &c->cl);
    c->rc[1] = net_peer_addr(s, &c->cp);
    net_close(s);
}

static void addr_server(void *p)
{
    addr_ctx *c = p;
    net_sock *s;
    c->accept_rc = net_accept(c->ls, &s, gt_now() + tg_slack_ms());
    if (c->accept_rc < 0) return;
    c->rc[2] = net_local_addr(s, &c->sl);
    c->rc[3] = net_peer_addr(s, &c->sp);
    net_close(s);
}

static void check_addrs(addr_ctx *c, const char *host, int family)
{
    assert_int_equal(c->connect_rc, 0);
    assert_int_equal(c->accept_rc, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(c->rc[i], 0);
    assert_string_equal(c->cl.host, host);
    assert_string_equal(c->cp.host, host);
    assert_string_equal(c->sl.host, host);
    assert_string_equal(c->sp.host, host);
    assert_int_equal(c->cl.family, family);
    assert_int_equal(c->sp.family, family);
    assert_int_equal(c->cp.port, c->port);
    assert_int_equal(c->sl.port, c->port);
    assert_int_equal(c->cl.port, c->sp.port);
    assert_true(c->cl.port > 0 && c->cl.port != c->port);
}

static void test_addr_ipv4(void **state)
{
    (void)state;
    addr_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    assert_int_equal(nt_listen(&c.ls, &c.port, 0), 0);
    net_addr la;
    assert_int_equal(net_local_addr(c.ls, &la), 0);
    assert_string_equal(la.host, "127.0.0.1");
    assert_int_equal(la.family, AF_INET);
    /* A listener has no peer. */
    assert_int_equal(net_peer_addr(c.ls, &la), -ENOTCONN);
    tg_spawn(addr_server, &c);
    tg_spawn(addr_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    check_addrs(&c, "127.0.0.1", AF_INET);
}

static void test_addr_ipv6(void **state)
{
    (void)state;
    addr_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "::1";
    int rc = net_listen(&c.ls, "::1", 0, 0);
    if (rc < 0) {
        assert_int_equal(net_cleanup(), 0);
        skip(); /* no IPv6 loopback here */
    }
    net_addr la;
    assert_int_equal(net_local_addr(c.ls, &la), 0);
    assert_string_equal(la.host, "::1");
    assert_int_equal(la.family, AF_INET6);
    c.port = la.port;
    tg_spawn(addr_server, &c);
    tg_spawn(addr_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    check_addrs(&c, "::1", AF_INET6);
}

/* Listening addresses: NULL and "*" mean every IPv4 address, "::" every
 * IPv6 one; a port in use is refused. */
static void test_listen_hosts(void **state)
{
    (void)state;
    net_sock *a, *b, *c;
    net_addr ad;
    int port;
    assert_int_equal(net_listen(&a, NULL, 0, 0), 0);
    assert_int_equal(net_local_addr(a, &ad), 0);
    assert_string_equal(ad.host, "0.0.0.0");
    assert_int_equal(ad.family, AF_INET);
    port = ad.port;
    assert_int_equal(net_listen(&b, "*", 0, 0), 0);
    assert_int_equal(net_local_addr(b, &ad), 0);
    assert_string_equal(ad.host, "0.0.0.0");
    assert_int_equal(net_listen(&c, "127.0.0.1", port, 0), -EADDRINUSE);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    if (net_listen(&a, "::", 0, 0) == 0) {
        assert_int_equal(net_local_addr(a, &ad), 0);
        assert_string_equal(ad.host, "::");
        assert_int_equal(ad.family, AF_INET6);
        assert_int_equal(net_close(a), 0);
    }
    /* A name: resolved (here, outside green threads, by blocking). */
    assert_int_equal(net_listen(&a, "localhost", 0, 0), 0);
    assert_int_equal(net_local_addr(a, &ad), 0);
    assert_true(!strcmp(ad.host, "127.0.0.1") || !strcmp(ad.host, "::1"));
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* --- statistics ---------------------------------------------------------- */

typedef struct stats_ctx {
    net_sock *a, *b;
    ssize_t rc[4];
    size_t got_b, got_a;
} stats_ctx;

static void stats_thread(void *p)
{
    stats_ctx *c = p;
    char buf[256], data[100];
    memset(data, 'x', sizeof data);
    int64_t dl = gt_now() + tg_slack_ms();
    c->rc[0] = net_send(c->a, data, 100, NULL, dl);
    while (c->got_b < 100) {
        ssize_t r = net_recv(c->b, buf, sizeof buf, dl);
        if (r <= 0) {
            c->rc[1] = r;
            return;
        }
        c->got_b += (size_t)r;
    }
    c->rc[2] = net_send(c->b, data, 30, NULL, dl);
    while (c->got_a < 30) {
        ssize_t r = net_recv(c->a, buf, sizeof buf, dl);
        if (r <= 0) {
            c->rc[3] = r;
            return;
        }
        c->got_a += (size_t)r;
    }
    gt_sleep(gt_now() + 30);
}

static void test_stats(void **state)
{
    (void)state;
    stats_ctx c;
    memset(&c, 0, sizeof c);
    int64_t t0 = gt_now();
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    uint64_t in = 1, out = 1;
    int64_t age = -1;
    assert_int_equal(net_stats(c.a, &in, &out, &age), 0);
    assert_int_equal(in, 0);
    assert_int_equal(out, 0);
    assert_true(age >= 0 && age <= gt_now() - t0);
    tg_spawn(stats_thread, &c);
    NT_RUN();
    uint64_t bin = 0, bout = 0;
    int rc_a = net_stats(c.a, &in, &out, &age);
    int64_t t1 = gt_now();
    int rc_b = net_stats(c.b, &bin, &bout, NULL);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], 100);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], 30);
    assert_int_equal(c.rc[3], 0);
    assert_int_equal(c.got_b, 100);
    assert_int_equal(c.got_a, 30);
    assert_int_equal(rc_a, 0);
    assert_int_equal(in, 30);
    assert_int_equal(out, 100);
    assert_true(age >= 30 && age <= t1 - t0);
    assert_int_equal(rc_b, 0);
    assert_int_equal(bin, 100);
    assert_int_equal(bout, 30);
}

/* --- net_wait on a pipe -----------------------------------------------------
 */

typedef struct wait_ctx {
    int rfd, wfd;
    int rc_in, rc_timeout, rc_out, rc_hup;
    int64_t t_in, t_timeout, t_write;
} wait_ctx;

static void wait_reader(void *p)
{
    wait_ctx *c = p;
    char ch;
    int64_t t0 = gt_now();
    c->rc_in = net_wait(c->rfd, NET_IN, t0 + tg_slack_ms());
    c->t_in = gt_now();
    (void)!read(c->rfd, &ch, 1);
    /* Drained: nothing comes. */
    t0 = gt_now();
    c->rc_timeout = net_wait(c->rfd, NET_IN, t0 + 50);
    c->t_timeout = gt_now() - t0;
    c->rc_out = net_wait(c->wfd, NET_OUT, gt_now() + tg_slack_ms());
    /* The writer closes its end: a hang-up reads as readable. */
    close(c->wfd);
    c->rc_hup = net_wait(c->rfd, NET_IN, gt_now() + tg_slack_ms());
}

static void wait_writer(void *p)
{
    wait_ctx *c = p;
    gt_sleep(gt_now() + 20);
    c->t_write = gt_now();
    (void)!write(c->wfd, "x", 1);
}

static void test_wait_pipe(void **state)
{
    (void)state;
    int pfd[2];
    wait_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(pipe(pfd), 0);
    c.rfd = pfd[0];
    c.wfd = pfd[1];
    tg_spawn(wait_reader, &c);
    tg_spawn(wait_writer, &c);
    NT_RUN();
    assert_int_equal(c.rc_in, NET_IN);
    assert_true(c.t_in >= c.t_write && c.t_in - c.t_write < tg_slack_ms());
    assert_int_equal(c.rc_timeout, -ETIMEDOUT);
    assert_true(c.t_timeout >= 49 && c.t_timeout < 50 + tg_slack_ms());
    assert_int_equal(c.rc_out, NET_OUT);
    assert_int_equal(c.rc_hup, NET_IN);
    close(pfd[0]);
    assert_int_equal(net_cleanup(), 0);
}

/* Deadline 0 tries once (gt.h): a descriptor that is ready already
 * reports it without parking. */
typedef struct wait0_ctx {
    int rfd, wfd;
    int rc_ready, rc_idle;
} wait0_ctx;

static void wait0_thread(void *p)
{
    wait0_ctx *c = p;
    (void)!write(c->wfd, "x", 1);
    c->rc_ready = net_wait(c->rfd, NET_IN, 0);
    char ch;
    (void)!read(c->rfd, &ch, 1);
    c->rc_idle = net_wait(c->rfd, NET_IN, 0);
}

static void test_wait_deadline0(void **state)
{
    (void)state;
    int pfd[2];
    wait0_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(pipe(pfd), 0);
    c.rfd = pfd[0];
    c.wfd = pfd[1];
    tg_spawn(wait0_thread, &c);
    NT_RUN();
    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc_idle, -ETIMEDOUT);
    assert_int_equal(c.rc_ready, NET_IN);
}

/* --- select and descriptors past FD_SETSIZE ----------------------------- */

#define HIGH_FD 1500
#define HIGH_FD2 1501

typedef struct high_ctx {
    net_sock *h, *peer;
    int pipe_r, pipe_w;
    int select;
    ssize_t rc_first, rc_second, rc_send;
    int rc_wait, rc_wait2;
    int64_t t_first;
    char got;
} high_ctx;

static void high_reader(void *p)
{
    high_ctx *c = p;
    char ch = 0;
    int64_t t0 = gt_now();
    c->rc_first = net_recv(c->h, &ch, 1, t0 + 200);
    c->t_first = gt_now() - t0;
    c->rc_second = net_recv(c->h, &c->got, 1, gt_now() + tg_slack_ms());
    c->rc_wait = net_wait(c->pipe_r, NET_IN, gt_now() + 200);
    c->rc_wait2 = net_wait(c->pipe_r, NET_IN, gt_now() + tg_slack_ms());
}

static void high_writer(void *p)
{
    high_ctx *c = p;
    /* After the reader's first wait ended, before its second one does. */
    gt_sleep(gt_now() + 400);
    c->rc_send = net_send(c->peer, "y", 1, NULL, gt_now() + tg_slack_ms());
    gt_sleep(gt_now() + 400);
    (void)!write(c->pipe_w, "z", 1);
}

static void test_fdsetsize(void **state)
{
    (void)state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur <= HIGH_FD2 + 8) skip();
    int c, s, pfd[2];
    high_ctx x;
    memset(&x, 0, sizeof x);
    assert_int_equal(nt_raw_pair(&c, &s), 0);
    assert_int_equal(dup2(s, HIGH_FD), HIGH_FD);
    close(s);
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(dup2(pfd[0], HIGH_FD2), HIGH_FD2);
    close(pfd[0]);
    x.pipe_r = HIGH_FD2;
    x.pipe_w = pfd[1];
    assert_int_equal(net_wrap(&x.h, HIGH_FD), 0);
    assert_int_equal(net_wrap(&x.peer, c), 0);
    x.select = nt_is_select();
    /* Wrapping and sending with room in the buffers need no poller. */
    assert_int_equal(net_send(x.h, "w", 1, NULL, 0), 1);
    tg_spawn(high_reader, &x);
    tg_spawn(high_writer, &x);
    NT_RUN();
    char ch = 0;
    struct pollfd pp = {net_fd(x.peer), POLLIN, 0};
    int pr = poll(&pp, 1, 5000);
    ssize_t rr = net_recv(x.peer, &ch, 1, -1);
    assert_int_equal(net_close(x.h), 0);
    assert_int_equal(net_close(x.peer), 0);
    int high_open = fcntl(HIGH_FD, F_GETFD) != -1;
    close(HIGH_FD2);
    close(pfd[1]);
    assert_int_equal(net_cleanup(), 0);
    assert_false(high_open);
    assert_int_equal(pr, 1);
    assert_int_equal(rr, 1);
    assert_int_equal(ch, 'w');
    if (x.select) {
        assert_int_equal(x.rc_first, NET_EFDSETSIZE);
        assert_true(x.t_first < 150); /* refused at once */
        assert_int_equal(x.rc_second, NET_EFDSETSIZE);
        assert_int_equal(x.rc_wait, NET_EFDSETSIZE);
        assert_int_equal(x.rc_wait2, NET_EFDSETSIZE);
    } else {
        assert_int_equal(x.rc_first, -ETIMEDOUT);
        assert_int_equal(x.rc_second, 1);
        assert_int_equal(x.got, 'y');
        assert_int_equal(x.rc_wait, -ETIMEDOUT);
        assert_int_equal(x.rc_wait2, NET_IN);
    }
    assert_int_equal(x.rc_send, 1);
}

/* --- connect -------------------------------------------------------------- */

#define NT_DL0 (-2)
#define NT_DLPAST (-3)

typedef struct conn_ctx {
    const char *host;
    int port;
    int64_t deadline_in; /* relative; NT_DL0: deadline 0, NT_DLPAST: past */
    int rc;
    int64_t took;
    net_sock *s;
} conn_ctx;

static void connector(void *p)
{
    conn_ctx *c = p;
    int64_t t0 = gt_now();
    int64_t dl = c->deadline_in == NT_DL0      ? 0
                 : c->deadline_in == NT_DLPAST ? (t0 > 1001 ? t0 - 1000 : 1)
                                               : t0 + c->deadline_in;
    c->rc = net_connect(&c->s, c->host, c->port, NULL, 0, dl);
    c->took = gt_now() - t0;
    if (c->rc == 0) {
        net_close(c->s);
        c->s = NULL;
    }
}

static void test_connect_refused(void **state)
{
    (void)state;
    conn_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    c.port = nt_free_port();
    assert_true(c.port > 0);
    c.deadline_in = tg_slack_ms();
    tg_spawn(connector, &c);
    NT_RUN();
    assert_int_equal(c.rc, -ECONNREFUSED);
    assert_true(c.took < tg_slack_ms());
    assert_int_equal(net_cleanup(), 0); /* the failed socket was closed */
}

/* Deadline 0 tries once: connected (the kernel finished at once) or
 * -ETIMEDOUT, and no socket is left behind either way. */
static void test_connect_deadline0(void **state)
{
    (void)state;
    net_sock *ls;
    conn_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "127.0.0.1";
    assert_int_equal(nt_listen(&ls, &c.port, 0), 0);
    c.deadline_in = NT_DL0;
    tg_spawn(connector, &c);
    NT_RUN();
    int rc0 = c.rc;
    int64_t took0 = c.took;
    /* A deadline already past acts the same. */
    c.rc = 1;
    c.deadline_in = NT_DLPAST;
    tg_spawn(connector, &c);
    NT_RUN();
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_true(rc0 == 0 || rc0 == -ETIMEDOUT);
    assert_true(took0 < tg_slack_ms());
    assert_true(c.rc == 0 || c.rc == -ETIMEDOUT);
}

/* A listener with backlog 1 that never accepts: once its queue is full the
 * kernel drops further SYNs, and connect must give up at its deadline. */
#define FILL_MAX 16

typedef struct fill_ctx {
    int port;
    int n; /* attempts made */
    int rc[FILL_MAX];
    int64_t took[FILL_MAX];
    net_sock *s[FILL_MAX];
} fill_ctx;

static void filler(void *p)
{
    fill_ctx *c = p;
    for (c->n = 0; c->n < FILL_MAX;) {
        int i = c->n++;
        int64_t t0 = gt_now();
        c->rc[i] =
            net_connect(&c->s[i], "127.0.0.1", c->port, NULL, 0, t0 + 200);
        c->took[i] = gt_now() - t0;
        if (c->rc[i] != 0) break;
    }
    for (int i = 0; i < c->n; i++)
        if (c->rc[i] == 0) net_close(c->s[i]);
}

static void test_connect_deadline(void **state)
{
    (void)state;
    net_sock *ls;
    fill_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_listen(&ls, &c.port, 1), 0);
    tg_spawn(filler, &c);
    NT_RUN();
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(net_cleanup(), 0);
    int last = c.n - 1;
    assert_true(last >= 0);
    if (c.rc[last] == 0) {
        /* The kernel accepted FILL_MAX connections on a backlog of 1 and
         * never made connect wait: nothing to time out here. */
        skip();
    }
    assert_int_equal(c.rc[last], -ETIMEDOUT);
    assert_true(c.took[last] >= 199);
    assert_true(c.took[last] < 200 + tg_slack_ms());
    assert_true(last >= 1); /* at least one got into the queue first */
}

/* --- accept --------------------------------------------------------------- */

typedef struct acc_ctx {
    net_sock *ls;
    int rc0, rc;
    int64_t took0, took;
} acc_ctx;

static void acceptor(void *p)
{
    acc_ctx *c = p;
    net_sock *s = NULL;
    int64_t t0 = gt_now();
    c->rc0 = net_accept(c->ls, &s, 0);
    c->took0 = gt_now() - t0; /* no wait */
    t0 = gt_now();
    c->rc = net_accept(c->ls, &s, t0 + 100);
    c->took = gt_now() - t0;
}

static void test_accept_deadline(void **state)
{
    (void)state;
    acc_ctx c;
    int port;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_listen(&c.ls, &port, 0), 0);
    tg_spawn(acceptor, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc0, -ETIMEDOUT);
    assert_true(c.took0 < 90);
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_true(c.took >= 99 && c.took < 100 + tg_slack_ms());
}

/* connect with a local address and port bound. */
typedef struct local_ctx {
    net_sock *ls;
    int port, local_port;
    int rc_c, rc_a;
    net_addr cl, sp;
} local_ctx;

/* net_connect from *local_port.  The port was free when the test picked
 * it, but a test running at the same time may take it first: then it
 * picks another. */
static int connect_from(net_sock **s, const char *host, int port,
                        const char *local, int *local_port)
{
    int rc = -EADDRINUSE;
    for (int i = 0; i < 10 && rc == -EADDRINUSE; i++) {
        if (i) *local_port = nt_free_port();
        rc = net_connect(s, host, port, local, *local_port,
                         gt_now() + tg_slack_ms());
    }
    return rc;
}

static void local_client(void *p)
{
    local_ctx *c = p;
    net_sock *s;
    c->rc_c =
        connect_from(&s, "127.0.0.1", c->port, "127.0.0.1", &c->local_port);
    if (c->rc_c == 0) {
        net_local_addr(s, &c->cl);
        net_close(s);
    }
}

static void local_server(void *p)
{
    local_ctx *c = p;
    net_sock *s;
    c->rc_a = net_accept(c->ls, &s, gt_now() + tg_slack_ms());
    if (c->rc_a == 0) {
        net_peer_addr(s, &c->sp);
        net_close(s);
    }
}

static void test_connect_local(void **state)
{
    (void)state;
    local_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_listen(&c.ls, &c.port, 0), 0);
    c.local_port = nt_free_port();
    assert_true(c.local_port > 0);
    tg_spawn(local_server, &c);
    tg_spawn(local_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc_c, 0);
    assert_int_equal(c.rc_a, 0);
    assert_int_equal(c.cl.port, c.local_port);
    assert_int_equal(c.sp.port, c.local_port);
    assert_string_equal(c.cl.host, "127.0.0.1");
}

/* Only a local port (any local address): works for IPv6 too. */
typedef struct lport6_ctx {
    net_sock *ls;
    int port, local_port;
    int rc_c, rc_a;
    net_addr cl;
} lport6_ctx;

static void lport6_client(void *p)
{
    lport6_ctx *c = p;
    net_sock *s;
    c->rc_c = connect_from(&s, "::1", c->port, NULL, &c->local_port);
    if (c->rc_c == 0) {
        net_local_addr(s, &c->cl);
        net_close(s);
    }
}

static void lport6_server(void *p)
{
    lport6_ctx *c = p;
    net_sock *s;
    c->rc_a = net_accept(c->ls, &s, gt_now() + tg_slack_ms());
    if (c->rc_a == 0) net_close(s);
}

static void test_connect_local_port_ipv6(void **state)
{
    (void)state;
    lport6_ctx c;
    memset(&c, 0, sizeof c);
    if (net_listen(&c.ls, "::1", 0, 0) < 0) {
        assert_int_equal(net_cleanup(), 0);
        skip(); /* no IPv6 loopback here */
    }
    net_addr la;
    assert_int_equal(net_local_addr(c.ls, &la), 0);
    c.port = la.port;
    c.local_port = nt_free_port();
    tg_spawn(lport6_server, &c);
    tg_spawn(lport6_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c.local_port > 0);
    assert_int_equal(c.rc_c, 0);
    assert_int_equal(c.rc_a, 0);
    assert_int_equal(c.cl.port, c.local_port);
    assert_string_equal(c.cl.host, "::1");
}

/* --- name resolution ------------------------------------------------------ */

static void test_resolve_localhost(void **state)
{
    (void)state;
    addr_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_listen(&c.ls, &c.port, 0), 0);
    c.host = "localhost";
    tg_spawn(addr_server, &c);
    tg_spawn(addr_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.connect_rc, 0);
    assert_int_equal(c.accept_rc, 0);
    assert_string_equal(c.cp.host, "127.0.0.1");
    assert_int_equal(c.cp.port, c.port);
}

/* Several names at once (more than the resolver has threads). */
#define NRES 8

typedef struct mres_ctx {
    net_sock *ls;
    int port;
    int rc[NRES], accepted;
} mres_ctx;

static mres_ctx *mres;

static void mres_connect(void *p)
{
    int i = (int)(intptr_t)p;
    net_sock *s;
    mres->rc[i] = net_connect(&s, "localhost", mres->port, NULL, 0,
                              gt_now() + tg_slack_ms());
    if (mres->rc[i] == 0) net_close(s);
}

static void mres_accept(void *p)
{
    (void)p;
    for (int i = 0; i < NRES; i++) {
        net_sock *s;
        if (net_accept(mres->ls, &s, gt_now() + tg_slack_ms()) < 0) break;
        mres->accepted++;
        net_close(s);
    }
}

static void test_resolve_many(void **state)
{
    (void)state;
    mres_ctx c;
    memset(&c, 0, sizeof c);
    mres = &c;
    assert_int_equal(nt_listen(&c.ls, &c.port, 0), 0);
    tg_spawn(mres_accept, NULL);
    for (int i = 0; i < NRES; i++) tg_spawn(mres_connect, (void *)(intptr_t)i);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    for (int i = 0; i < NRES; i++) assert_int_equal(c.rc[i], 0);
    assert_int_equal(c.accepted, NRES);
}

/* A green thread cancelled while its name is being resolved: -ECANCELED,
 * and the abandoned lookup is freed (Valgrind checks). */
typedef struct rcancel_ctx {
    int64_t id;
    int rc;
} rcancel_ctx;

static void rcancel_connect(void *p)
{
    rcancel_ctx *c = p;
    net_sock *s;
    c->rc = net_connect(&s, "localhost", 9, NULL, 0, gt_now() + tg_slack_ms());
    if (c->rc == 0) net_close(s);
}

static void rcancel_canceller(void *p)
{
    rcancel_ctx *c = p;
    gt_cancel(c->id);
}

static void test_resolve_cancel(void **state)
{
    (void)state;
    rcancel_ctx c[2];
    memset(c, 0, sizeof c);
    c[0].id = tg_spawn(rcancel_connect, &c[0]);
    tg_spawn(rcancel_canceller, &c[0]);
    NT_RUN();
    /* And once more, this time after the worker threads exist. */
    c[1].id = tg_spawn(rcancel_connect, &c[1]);
    tg_spawn(rcancel_canceller, &c[1]);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c[0].rc, -ECANCELED);
    assert_int_equal(c[1].rc, -ECANCELED);
}

/* A name under .invalid (RFC 6761) never resolves.  With a network the
 * answer is "not found"; without one, "try again".  Either way it comes
 * well before the deadline. */
static void test_resolve_invalid(void **state)
{
    (void)state;
    conn_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "no-such-host.socketloop.invalid";
    c.port = 80;
    c.deadline_in = 5000;
    tg_spawn(connector, &c);
    NT_RUN();
    assert_true(c.rc == NET_ENOTFOUND || c.rc == NET_ETRYAGAIN);
    assert_true(c.took < 5000);
    /* Joins the resolver's threads. */
    assert_int_equal(net_cleanup(), 0);
}

/* A name with deadline 0 cannot be resolved without parking. */
static void test_resolve_deadline0(void **state)
{
    (void)state;
    conn_ctx c;
    memset(&c, 0, sizeof c);
    c.host = "localhost";
    c.port = nt_free_port();
    c.deadline_in = NT_DL0;
    tg_spawn(connector, &c);
    NT_RUN();
    assert_int_equal(c.rc, -ETIMEDOUT);
    assert_int_equal(net_cleanup(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_poller_name),
        NT_TEST(test_einval),
        NT_TEST(test_wrap),
        NT_TEST(test_eperm_outside),
        NT_TEST(test_outside_no_park),
        NT_TEST(test_outside_big_send),
        NT_TEST(test_strerror),
        NT_TEST(test_options),
        NT_TEST(test_addr_ipv4),
        NT_TEST(test_addr_ipv6),
        NT_TEST(test_listen_hosts),
        NT_TEST(test_stats),
        NT_TEST(test_wait_pipe),
        NT_TEST(test_wait_deadline0),
        NT_TEST(test_fdsetsize),
        NT_TEST(test_connect_refused),
        NT_TEST(test_connect_deadline0),
        NT_TEST(test_connect_deadline),
        NT_TEST(test_accept_deadline),
        NT_TEST(test_connect_local),
        NT_TEST(test_connect_local_port_ipv6),
        NT_TEST(test_resolve_localhost),
        NT_TEST(test_resolve_many),
        NT_TEST(test_resolve_cancel),
        NT_TEST(test_resolve_invalid),
        NT_TEST(test_resolve_deadline0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
