/* Listen options, listening on a socket of one's own or an inherited one,
 * and the server handle: graceful shutdown, wait with a deadline, cancel,
 * free while handlers live, bad arguments and other OS threads (issue 12).
 * Green threads only record; the assertions come after the loop. */
#include "net_test.h"

#include <pthread.h>

/* Whether this machine has IPv6 on loopback; a test that needs it is
 * skipped otherwise. */
static int have_ipv6(void)
{
    net_sock *s;
    if (net_listen(&s, "::1", 0, 0) < 0) return 0;
    net_close(s);
    return 1;
}

/* The listen(2) backlog of a listening socket: Linux reports it in
 * tcpi_sacked of TCP_INFO for a socket in LISTEN state. */
static int backlog_of(net_sock *s)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(net_fd(s), IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
        return -errno;
    return (int)ti.tcpi_sacked;
}

static int port_of(net_sock *s)
{
    net_addr a;
    return net_local_addr(s, &a) < 0 ? -1 : a.port;
}

/* --- Listen options ---------------------------------------------------- */

static void test_listen_opts(void **state)
{
    (void)state;
    net_sock *a, *b, *c = NULL;
    net_listen_opts rp = {7, NET_LISTEN_REUSEPORT};
    int v = 0;
    /* Two listeners on one port, each asking for SO_REUSEPORT. */
    assert_int_equal(net_listen_ex(&a, "127.0.0.1", 0, &rp), 0);
    int port = port_of(a);
    assert_true(port > 0);
    assert_int_equal(net_listen_ex(&b, "127.0.0.1", port, &rp), 0);
    assert_int_equal(port_of(b), port);
    assert_int_equal(net_getopt(b, NET_REUSEPORT, &v), 0);
    assert_int_equal(v, 1);
    /* Without it, the port is taken. */
    assert_int_equal(net_listen_ex(&c, "127.0.0.1", port, NULL), -EADDRINUSE);
    assert_null(c);
    /* The backlog reaches listen(2). */
    assert_int_equal(backlog_of(a), 7);
    assert_int_equal(net_close(a), 0);
    assert_int_equal(net_close(b), 0);
    assert_int_equal(net_listen(&a, "127.0.0.1", 0, 9), 0);
    assert_int_equal(backlog_of(a), 9);
    assert_int_equal(net_getopt(a, NET_REUSEPORT, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(net_getopt(a, NET_REUSEADDR, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(net_close(a), 0);
    /* NULL options are the defaults. */
    assert_int_equal(net_listen_ex(&a, "127.0.0.1", 0, NULL), 0);
    assert_true(backlog_of(a) > 9);
    assert_int_equal(net_close(a), 0);
    /* Unknown flags, V6ONLY on IPv4, NULL out, a bad port. */
    net_listen_opts bad = {0, 0x80};
    net_listen_opts v6 = {0, NET_LISTEN_V6ONLY};
    assert_int_equal(net_listen_ex(&c, "127.0.0.1", 0, &bad), -EINVAL);
    assert_int_equal(net_listen_ex(&c, "127.0.0.1", 0, &v6), -EINVAL);
    assert_int_equal(net_listen_ex(&c, NULL, 0, &v6), -EINVAL);
    assert_int_equal(net_listen_ex(NULL, "127.0.0.1", 0, NULL), -EINVAL);
    assert_int_equal(net_listen_ex(&c, "127.0.0.1", 65536, NULL), -EINVAL);
    assert_null(c);
    assert_int_equal(net_cleanup(), 0);
}

static void test_listen_v6only(void **state)
{
    (void)state;
    if (!have_ipv6()) skip();
    net_sock *s6, *s4;
    net_listen_opts v6 = {0, NET_LISTEN_V6ONLY};
    int v = 0;
    socklen_t len = sizeof v;
    /* The port's IPv4 side stays free for a listener of its own.  The
     * kernel picks the port for the IPv6 side only, so another program's
     * IPv4 socket may hold it already (a connection's local port, in a
     * busy suite): then the test tries a new port, a bounded number of
     * times. */
    int rc = -EADDRINUSE, port = -1;
    for (int tries = 0; tries < 50 && rc == -EADDRINUSE; tries++) {
        assert_int_equal(net_listen_ex(&s6, "::", 0, &v6), 0);
        assert_int_equal(
            getsockopt(net_fd(s6), IPPROTO_IPV6, IPV6_V6ONLY, &v, &len), 0);
        assert_int_equal(v, 1);
        port = port_of(s6);
        if ((rc = net_listen(&s4, "0.0.0.0", port, 0)) < 0)
            assert_int_equal(net_close(s6), 0);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(port_of(s4), port);
    assert_int_equal(net_close(s4), 0);
    assert_int_equal(net_close(s6), 0);
    /* Without the flag, "::" takes IPv4 too where the system's default is
     * dual-stack (net.ipv6.bindv6only = 0). */
    FILE *f = fopen("/proc/sys/net/ipv6/bindv6only", "r");
    int dflt = -1;
    if (f) {
        if (fscanf(f, "%d", &dflt) != 1) dflt = -1;
        fclose(f);
    }
    if (dflt == 0) {
        assert_int_equal(net_listen(&s6, "::", 0, 0), 0);
        net_sock *x = NULL;
        assert_int_equal(net_listen(&x, "0.0.0.0", port_of(s6), 0),
                         -EADDRINUSE);
        assert_int_equal(net_close(s6), 0);
    }
    assert_int_equal(net_cleanup(), 0);
}

/* --- A server that echoes lines, and its clients ------------------------- */

#define MAXC 8

typedef struct srv_case {
    net_server *srv;
    int port;
    int handled;          /* handler calls */
    int hold;             /* handlers wait for a second line */
    ssize_t hrc[MAXC];    /* each handler's last receive result */
    int nh;               /* handlers that recorded */
    ssize_t crc[MAXC];    /* each client's result */
    char reply[MAXC][32]; /* what each client got */
    /* Results of the director's calls, in order. */
    int rc[32];
    int nrc;
    int counts[8];
    int ncounts;
    int self_wait; /* net_server_wait from a handler */
} srv_case;

static srv_case *K;

static void note(int rc)
{
    if (K->nrc < TG_ARRAY_LEN(K->rc)) K->rc[K->nrc++] = rc;
}

/* Echoes one line; with `hold`, waits for a second one first (which makes
 * it a live handler for as long as its client wants). */
static void line_handler(net_sock *s, void *arg)
{
    srv_case *k = arg;
    net_buf line = {NULL, 0, 0};
    int me = k->handled++;
    ssize_t rc = net_receive(s, NET_LINE, 0, &line, gt_now() + tg_slack_ms());
    if (rc >= 0 && k->hold) {
        rc = net_send(s, "hi\n", 3, NULL, -1);
        line.len = 0;
        if (rc >= 0)
            rc = net_receive(s, NET_LINE, 0, &line, gt_now() + tg_slack_ms());
    }
    if (rc >= 0) {
        rc = net_send(s, "echo:", 5, NULL, -1);
        if (rc >= 0) rc = net_send(s, line.data, line.len, NULL, -1);
        if (rc >= 0) rc = net_send(s, "\n", 1, NULL, -1);
    }
    if (me < MAXC) k->hrc[me] = rc;
    k->nh++;
    net_buf_free(&line);
}

/* Sends "c<i>" and reads everything until the server closes. */
static void line_client(void *p)
{
    int i = (int)(intptr_t)p;
    net_sock *s;
    int64_t dl = gt_now() + tg_slack_ms();
    K->crc[i] = net_connect(&s, "127.0.0.1", K->port, NULL, 0, dl);
    if (K->crc[i] < 0) return;
    char msg[16];
    int n = snprintf(msg, sizeof msg, "c%d\n", i);
    net_buf all = {NULL, 0, 0};
    K->crc[i] = net_send(s, msg, (size_t)n, NULL, dl);
    if (K->crc[i] >= 0) K->crc[i] = net_receive(s, NET_ALL, 0, &all, dl);
    if (all.len < sizeof K->reply[i]) memcpy(K->reply[i], all.data, all.len);
    net_buf_free(&all);
    net_close(s);
}

/* Serves one client, then stops: for listeners made in other ways. */
static void serve_one(void *p)
{
    (void)p;
    int64_t id = gt_spawn(line_client, (void *)(intptr_t)0);
    note(gt_join(id, -1));
    note(net_server_stop(K->srv));
    note(net_server_wait(K->srv, gt_now() + tg_slack_ms()));
    note(net_server_free(K->srv));
}

static void run_serve_one(net_sock *ls)
{
    srv_case k;
    memset(&k, 0, sizeof k);
    K = &k;
    k.port = port_of(ls);
    assert_true(k.port > 0);
    assert_int_equal(net_server_start(&k.srv, ls, line_handler, &k), 0);
    tg_spawn(serve_one, NULL);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0); /* the listener is closed */
    assert_int_equal(k.nrc, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(k.rc[i], 0);
    assert_int_equal(k.handled, 1);
    assert_int_equal(k.hrc[0], 1);
    assert_int_equal(k.crc[0], 8);
    assert_string_equal(k.reply[0], "echo:c0\n");
}

/* A socket of one's own: options set, bound, then listened on. */
static void test_listen_sock(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one),
                     0);
    net_sock *ls;
    assert_int_equal(net_wrap(&ls, fd), 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    /* Not listening yet: no server on it. */
    net_server *srv = NULL;
    assert_int_equal(net_server_start(&srv, ls, line_handler, NULL), -EINVAL);
    assert_null(srv);
    assert_int_equal(net_listen_sock(ls, 5), 0);
    assert_int_equal(backlog_of(ls), 5);
    assert_int_equal(net_listen_sock(NULL, 5), -EINVAL);
    run_serve_one(ls);
}

/* A descriptor that listens already (made here with plain calls, as a
 * parent process or a service manager would hand one down): wrapped and
 * served, nothing else. */
static void test_inherited(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    net_sock *ls;
    assert_int_equal(net_wrap(&ls, fd), 0);
    run_serve_one(ls);
}

/* --- Graceful shutdown -------------------------------------------------- */

typedef struct held {
    gt_sem *ready, *go; /* the client has its "hi"; it may send its 2nd line */
    ssize_t rc;
    char reply[32];
} held;

static held H;

/* A client whose handler stays live until the director lets it go on. */
static void held_client(void *p)
{
    (void)p;
    net_sock *s;
    net_buf b = {NULL, 0, 0};
    int64_t dl = gt_now() + tg_slack_ms();
    H.rc = net_connect(&s, "127.0.0.1", K->port, NULL, 0, dl);
    if (H.rc < 0) goto out;
    if ((H.rc = net_send(s, "one\n", 4, NULL, dl)) < 0 ||
        (H.rc = net_receive(s, NET_LINE, 0, &b, dl)) < 0)
        goto close;
    gt_sem_release(H.ready);
    if ((H.rc = gt_sem_acquire(H.go, dl)) < 0) goto close;
    b.len = 0;
    if ((H.rc = net_send(s, "two\n", 4, NULL, dl)) >= 0)
        H.rc = net_receive(s, NET_ALL, 0, &b, dl);
    if (b.len < sizeof H.reply) memcpy(H.reply, b.data, b.len);
close:
    net_close(s);
out:
    net_buf_free(&b);
    gt_sem_release(H.ready); /* never leave the director waiting */
}

static void graceful_director(void *p)
{
    (void)p;
    net_sock *s = NULL;
    tg_spawn(held_client, NULL);
    note(gt_sem_acquire(H.ready, gt_now() + tg_slack_ms()));
    K->counts[K->ncounts++] = net_server_count(K->srv); /* 1 */
    note(net_server_stop(K->srv));
    note(net_server_stop(K->srv)); /* a second stop does nothing */
    /* The acceptor, woken by the stop, runs and leaves; then the listening
     * descriptor is closed: a new connection is refused. */
    note(gt_yield());
    note(net_connect(&s, "127.0.0.1", K->port, NULL, 0,
                     gt_now() + tg_slack_ms()));
    if (s) net_close(s);
    /* The held handler still runs. */
    note(net_server_wait(K->srv, gt_now() + 20));
    note(net_server_wait(K->srv, 0));
    note(net_server_free(K->srv));
    K->counts[K->ncounts++] = net_server_count(K->srv); /* 1 */
    /* Let it finish; wait sees it go. */
    gt_sem_release(H.go);
    note(net_server_wait(K->srv, gt_now() + tg_slack_ms()));
    K->counts[K->ncounts++] = net_server_count(K->srv); /* 0 */
    note(net_server_free(K->srv));
}

static void test_graceful(void **state)
{
    (void)state;
    srv_case k;
    net_sock *ls;
    memset(&k, 0, sizeof k);
    memset(&H, 0, sizeof H);
    K = &k;
    k.hold = 1;
    assert_int_equal(nt_listen(&ls, &k.port, 0), 0);
    assert_int_equal(gt_sem_make(&H.ready, 0), 0);
    assert_int_equal(gt_sem_make(&H.go, 0), 0);
    assert_int_equal(net_server_start(&k.srv, ls, line_handler, &k), 0);
    tg_spawn(graceful_director, NULL);
    NT_RUN();
    assert_int_equal(gt_sem_free(H.ready), 0);
    assert_int_equal(gt_sem_free(H.go), 0);
    assert_int_equal(net_cleanup(), 0);
    const int want[] = {0,          0,          0,      0, -ECONNREFUSED,
                        -ETIMEDOUT, -ETIMEDOUT, -EBUSY, 0, 0};
    assert_int_equal(k.nrc, TG_ARRAY_LEN(want));
    for (int i = 0; i < TG_ARRAY_LEN(want); i++) {
        if (k.rc[i] != want[i]) fprintf(stderr, "  call %d: %d\n", i, k.rc[i]);
        assert_int_equal(k.rc[i], want[i]);
    }
    assert_int_equal(k.ncounts, 3);
    assert_int_equal(k.counts[0], 1);
    assert_int_equal(k.counts[1], 1);
    assert_int_equal(k.counts[2], 0);
    /* The live handler finished its connection after the stop. */
    assert_int_equal(k.handled, 1);
    assert_int_equal(k.hrc[0], 1);
    assert_int_equal(H.rc, 9);
    assert_string_equal(H.reply, "echo:two\n");
}

/* --- Cancel ------------------------------------------------------------- */

#define NPARK 3

/* Parks in a receive that nothing ends but a cancel, and records how it
 * ended. */
static void park_handler(net_sock *s, void *arg)
{
    srv_case *k = arg;
    char b[8];
    int me = k->handled++;
    /* Waiting for one's own server would wait for oneself. */
    if (me == 0)
        k->self_wait = net_server_wait(k->srv, gt_now() + tg_slack_ms());
    ssize_t rc = net_recv(s, b, sizeof b, -1);
    if (me < MAXC) k->hrc[me] = rc;
    k->nh++;
}

/* Connects and waits for the server's end to close. */
static void quiet_client(void *p)
{
    int i = (int)(intptr_t)p;
    net_sock *s;
    char b[8];
    int64_t dl = gt_now() + tg_slack_ms();
    K->crc[i] = net_connect(&s, "127.0.0.1", K->port, NULL, 0, dl);
    if (K->crc[i] < 0) return;
    K->crc[i] = net_recv(s, b, sizeof b, dl);
    net_close(s);
}

static void cancel_director(void *p)
{
    (void)p;
    int64_t end = gt_now() + tg_slack_ms();
    for (int i = 0; i < NPARK; i++) tg_spawn(quiet_client, (void *)(intptr_t)i);
    /* Until every connection has its handler thread (bounded). */
    while (net_server_count(K->srv) < NPARK && gt_now() < end)
        gt_sleep(gt_now() + 1);
    K->counts[K->ncounts++] = net_server_count(K->srv);
    note(net_server_free(K->srv)); /* not stopped, handlers live */
    note(net_server_cancel(K->srv));
    note(net_server_wait(K->srv, gt_now() + tg_slack_ms()));
    K->counts[K->ncounts++] = net_server_count(K->srv);
    note(net_server_cancel(K->srv)); /* nobody left */
    note(net_server_stop(K->srv));
    note(net_server_wait(K->srv, gt_now() + tg_slack_ms()));
    note(net_server_free(K->srv));
}

static void test_cancel(void **state)
{
    (void)state;
    srv_case k;
    net_sock *ls;
    memset(&k, 0, sizeof k);
    K = &k;
    assert_int_equal(nt_listen(&ls, &k.port, 0), 0);
    assert_int_equal(net_server_start(&k.srv, ls, park_handler, &k), 0);
    tg_spawn(cancel_director, NULL);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
    const int want[] = {-EBUSY, NPARK, 0, 0, 0, 0, 0};
    assert_int_equal(k.nrc, TG_ARRAY_LEN(want));
    for (int i = 0; i < TG_ARRAY_LEN(want); i++)
        assert_int_equal(k.rc[i], want[i]);
    assert_int_equal(k.counts[0], NPARK);
    assert_int_equal(k.counts[1], 0);
    assert_int_equal(k.self_wait, -EDEADLK);
    /* Every handler's parked receive ended with -ECANCELED, and each
     * client then saw its connection close. */
    assert_int_equal(k.nh, NPARK);
    for (int i = 0; i < NPARK; i++) {
        assert_int_equal(k.hrc[i], -ECANCELED);
        assert_int_equal(k.crc[i], 0);
    }
}

/* --- Bad arguments ----------------------------------------------------- */

static void nop_handler(net_sock *s, void *arg)
{
    (void)s;
    (void)arg;
}

static void test_bad_args(void **state)
{
    (void)state;
    net_server *srv = NULL;
    net_sock *ls, *c, *d, *served;
    int port;
    assert_int_equal(nt_listen(&ls, &port, 0), 0);
    assert_int_equal(net_server_start(NULL, ls, nop_handler, NULL), -EINVAL);
    assert_int_equal(net_server_start(&srv, NULL, nop_handler, NULL), -EINVAL);
    assert_int_equal(net_server_start(&srv, ls, NULL, NULL), -EINVAL);
    assert_int_equal(net_server_stop(NULL), -EINVAL);
    assert_int_equal(net_server_wait(NULL, 0), -EINVAL);
    assert_int_equal(net_server_cancel(NULL), -EINVAL);
    assert_int_equal(net_server_count(NULL), -EINVAL);
    assert_int_equal(net_server_free(NULL), -EINVAL);
    /* A connected socket does not listen. */
    assert_int_equal(nt_pair(&c, &d), 0);
    assert_int_equal(net_server_start(&srv, c, nop_handler, NULL), -EINVAL);
    assert_null(srv);
    assert_int_equal(net_close(c), 0);
    assert_int_equal(net_close(d), 0);
    /* net_serve's listener is served already. */
    assert_int_equal(net_serve(&served, "127.0.0.1", 0, nop_handler, NULL), 0);
    assert_int_equal(net_server_start(&srv, served, nop_handler, NULL), -EBUSY);
    assert_int_equal(net_close(served), 0);

    /* Outside green threads, before the loop has run: a started server
     * has no handler, so wait returns at once. */
    assert_int_equal(net_server_start(&srv, ls, nop_handler, NULL), 0);
    assert_int_equal(net_server_start(&srv, ls, nop_handler, NULL), -EBUSY);
    assert_int_equal(net_server_count(srv), 0);
    assert_int_equal(net_server_wait(srv, -1), 0);
    assert_int_equal(net_server_free(srv), -EBUSY); /* not stopped */
    /* Stopped, but its acceptor has not seen it yet: wait would park. */
    assert_int_equal(net_server_stop(srv), 0);
    assert_int_equal(net_server_wait(srv, 0), -ETIMEDOUT);
    assert_int_equal(net_server_wait(srv, -1), -EPERM);
    /* Free now: the acceptor frees the record when it leaves. */
    assert_int_equal(net_server_free(srv), 0);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
}

/* --- Another OS thread --------------------------------------------------- */

typedef struct owner_case {
    net_server *srv;
    net_sock *ls; /* a second listener, not served */
    int rc[7];
    int run;
} owner_case;

static void owner_body(void *p)
{
    owner_case *o = p;
    net_server *x = NULL;
    o->rc[0] = net_server_start(&x, o->ls, nop_handler, NULL);
    o->rc[1] = net_server_stop(o->srv);
    o->rc[2] = net_server_wait(o->srv, gt_now() + tg_slack_ms());
    o->rc[3] = net_server_wait(o->srv, 0);
    o->rc[4] = net_server_cancel(o->srv);
    o->rc[5] = net_server_count(o->srv);
    o->rc[6] = net_server_free(o->srv);
}

static void *owner_thread(void *p)
{
    owner_case *o = p;
    gt_spawn(owner_body, o);
    o->run = gt_run();
    net_cleanup();
    return NULL;
}

static void test_other_thread(void **state)
{
    (void)state;
    owner_case o;
    srv_case k;
    net_sock *ls;
    memset(&o, 0, sizeof o);
    memset(&k, 0, sizeof k);
    K = &k;
    assert_int_equal(nt_listen(&ls, &k.port, 0), 0);
    int port2;
    assert_int_equal(nt_listen(&o.ls, &port2, 0), 0);
    assert_int_equal(net_server_start(&o.srv, ls, line_handler, &k), 0);
    k.srv = o.srv;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, owner_thread, &o), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(o.run, 0);
    for (int i = 0; i < TG_ARRAY_LEN(o.rc); i++) {
        if (o.rc[i] != GT_EOWNER)
            fprintf(stderr, "  call %d: %d\n", i, o.rc[i]);
        assert_int_equal(o.rc[i], GT_EOWNER);
    }
    /* Nothing changed here: the server still serves, then stops. */
    assert_int_equal(net_close(o.ls), 0);
    tg_spawn(serve_one, NULL);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(k.nrc, 4);
    for (int i = 0; i < 4; i++) assert_int_equal(k.rc[i], 0);
    assert_string_equal(k.reply[0], "echo:c0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_listen_opts), NT_TEST(test_listen_v6only),
        NT_TEST(test_listen_sock), NT_TEST(test_inherited),
        NT_TEST(test_graceful),    NT_TEST(test_cancel),
        NT_TEST(test_bad_args),    NT_TEST(test_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
