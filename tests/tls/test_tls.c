/* TLS between two sockets of the library: every version and key type,
 * what can be read after the handshake, verification failures on the
 * right side, a clean end against a truncation, hostile peers (garbage
 * instead of a ClientHello, a handshake that stalls until the deadline),
 * a close that wakes a parked TLS read, and 1 MiB each way at once with a
 * reader and a writer on each end.  Runs on every poller. */
#include "tls_test.h"

/* One end of a pair: its handshake, then what the test has it do. */
typedef struct side {
    net_sock *s;
    net_tls_config *cfg;
    const char *name; /* the client's server name */
    int hs;           /* the handshake's result */
    char err[200];    /* net_strerror(hs), taken at once */
    ssize_t rc;       /* the test's own result */
    void (*then)(struct side *me);
    net_buf got;
    struct side *peer;
} side;

static void run_side(void *p)
{
    side *me = p;
    me->hs = net_tls_start(me->s, me->cfg, me->name, gt_now() + tg_slack_ms());
    snprintf(me->err, sizeof me->err, "%s", net_strerror(me->hs));
    if (me->then) me->then(me);
}

/* Runs client c and server v on a fresh pair; closes what is left. */
static void run_pair(side *c, side *v)
{
    assert_int_equal(nt_pair(&c->s, &v->s), 0);
    c->peer = v;
    v->peer = c;
    tg_spawn(run_side, v);
    tg_spawn(run_side, c);
    NT_RUN();
    if (c->s) net_close(c->s);
    if (v->s) net_close(v->s);
    net_tls_config_free(c->cfg);
    net_tls_config_free(v->cfg);
    assert_int_equal(net_cleanup(), 0);
}

static void free_sides(side *c, side *v)
{
    net_buf_free(&c->got);
    net_buf_free(&v->got);
}

/* --- Echo, and what the handshake tells ---------------------------------- */

static void echo_server(side *me)
{
    if (me->hs < 0) return;
    int64_t dl = gt_now() + tg_slack_ms();
    net_buf line = {0};
    while ((me->rc = net_receive(me->s, NET_LINE, 0, &line, dl)) >= 0) {
        net_send(me->s, line.data, line.len, NULL, dl);
        net_send(me->s, "\n", 1, NULL, dl);
        line.len = 0;
    }
    net_buf_free(&line);
}

typedef struct facts {
    char version[16], cipher[64], alpn[16], subject[128];
    int pem;
} facts;
static facts seen;

static void echo_client(side *me)
{
    if (me->hs < 0) return;
    int64_t dl = gt_now() + tg_slack_ms();
    const char *a = net_tls_alpn(me->s);
    snprintf(seen.version, sizeof seen.version, "%s", net_tls_version(me->s));
    snprintf(seen.cipher, sizeof seen.cipher, "%s", net_tls_cipher(me->s));
    snprintf(seen.alpn, sizeof seen.alpn, "%s", a ? a : "");
    net_tls_peer_subject(me->s, seen.subject, sizeof seen.subject);
    net_buf pem = {0};
    seen.pem = net_tls_peer_cert(me->s, &pem) == 0 &&
               tt_has(&pem, "-----BEGIN CERTIFICATE-----");
    net_buf_free(&pem);
    net_send(me->s, "hello\nworld\n", 12, NULL, dl);
    me->rc = net_receive(me->s, NET_BYTES, 12, &me->got, dl);
    net_close(me->s); /* close_notify: the server sees a clean end */
    me->s = NULL;
}

static void echo_with(int version, const char *cert)
{
    side c = {.cfg = tt_client(), .name = "localhost", .then = echo_client};
    side v = {.cfg = tt_server(cert), .then = echo_server};
    assert_non_null(c.cfg);
    assert_non_null(v.cfg);
    assert_int_equal(net_tls_config_versions(c.cfg, version, version), 0);
    assert_int_equal(net_tls_config_alpn(c.cfg, "h2,http/1.1"), 0);
    assert_int_equal(net_tls_config_alpn(v.cfg, "http/1.1"), 0);
    memset(&seen, 0, sizeof seen);
    run_pair(&c, &v);
    assert_int_equal(c.hs, 0);
    assert_int_equal(v.hs, 0);
    assert_int_equal(c.rc, 12);
    assert_memory_equal(c.got.data, "hello\nworld\n", 12);
    assert_int_equal(v.rc, NET_EEOF);
    assert_string_equal(seen.version,
                        version == NET_TLS1_3 ? "TLSv1.3" : "TLSv1.2");
    assert_true(seen.cipher[0]);
    assert_string_equal(seen.alpn, "http/1.1");
    assert_string_equal(seen.subject, "/CN=localhost");
    assert_true(seen.pem);
    free_sides(&c, &v);
}

static void test_echo(void **state)
{
    (void)state;
    echo_with(NET_TLS1_3, "ec");
    echo_with(NET_TLS1_3, "rsa");
    echo_with(NET_TLS1_2, "ec");
    echo_with(NET_TLS1_2, "rsa");
}

/* --- Verification ------------------------------------------------------ */

/* The client reads once: a TLS 1.3 server refuses a client certificate
 * after the client's handshake has ended. */
static void read_once(side *me)
{
    char b[8];
    if (me->hs < 0) return;
    me->rc = net_recv(me->s, b, sizeof b, gt_now() + tg_slack_ms());
    snprintf(me->err, sizeof me->err, "%s", net_strerror((int)me->rc));
}

static void test_verify(void **state)
{
    (void)state;
    static const struct {
        const char *cert, *name, *text;
    } bad[] = {
        {"ec", "example.com", "certificate verify failed: hostname mismatch"},
        {"other", "localhost",
         "certificate verify failed: unable to get "
         "local issuer certificate"},
        {"expired", "localhost",
         "certificate verify failed: certificate has expired"},
    };
    for (int i = 0; i < TG_ARRAY_LEN(bad); i++) {
        side c = {.cfg = tt_client(), .name = bad[i].name};
        side v = {.cfg = tt_server(bad[i].cert)};
        run_pair(&c, &v);
        assert_int_equal(c.hs, NET_ETLSVERIFY);
        assert_string_equal(c.err, bad[i].text);
        assert_true(v.hs < 0); /* the client's alert */
        free_sides(&c, &v);
    }
    /* A client certificate required and missing, then given. */
    for (int give = 0; give < 2; give++) {
        side c = {.cfg = tt_client(), .name = "localhost", .then = read_once};
        side v = {.cfg = tt_server("ec"), .then = echo_server};
        assert_int_equal(net_tls_config_verify(v.cfg, NET_TLS_VERIFY_REQUIRE),
                         0);
        assert_int_equal(net_tls_config_ca(v.cfg, tt_path("ca.pem"), NULL), 0);
        if (give)
            assert_int_equal(net_tls_config_cert_file(c.cfg,
                                                      tt_path("client.pem"),
                                                      tt_path("client.key")),
                             0);
        run_pair(&c, &v);
        if (give) {
            assert_int_equal(v.hs, 0);
            assert_int_equal(c.hs, 0);
        } else {
            assert_int_equal(v.hs, NET_ETLSVERIFY);
            assert_true(strstr(v.err, "certificate") != NULL);
            assert_true(c.hs < 0 || c.rc == NET_ETLS);
        }
        free_sides(&c, &v);
    }
    /* Bad configurations say why. */
    net_tls_config *x;
    assert_int_equal(net_tls_config_new(&x, NET_TLS_SERVER), 0);
    assert_int_equal(
        net_tls_config_cert_file(x, tt_path("ec.pem"), tt_path("rsa.key")),
        NET_ETLSCONFIG);
    assert_int_equal(
        net_tls_config_cert_file(x, tt_path("none.pem"), tt_path("ec.key")),
        NET_ETLSCONFIG);
    assert_int_equal(net_tls_config_alpn(x, "a,,b"), -EINVAL);
    net_tls_config_free(x);
    assert_int_equal(net_tls_config_new(&x, 7), -EINVAL);
}

/* A server with two certificates picks by SNI; one given from memory. */
static char *slurp(const char *file, size_t *n)
{
    FILE *f = fopen(file, "rb");
    char *b = malloc(65536);
    *n = f && b ? fread(b, 1, 65536, f) : 0;
    if (f) fclose(f);
    return b;
}

static void test_sni(void **state)
{
    (void)state;
    static const char *const names[] = {"localhost", "example.test"};
    size_t pn, kn;
    char *pem = slurp(tt_path("alt.pem"), &pn),
         *key = slurp(tt_path("alt.key"), &kn);
    for (int i = 0; i < 2; i++) {
        side c = {.cfg = tt_client(), .name = names[i], .then = echo_client};
        side v = {.cfg = tt_server("ec"), .then = echo_server};
        assert_int_equal(net_tls_config_cert_mem(v.cfg, pem, pn, key, kn), 0);
        memset(&seen, 0, sizeof seen);
        run_pair(&c, &v);
        assert_int_equal(c.hs, 0);
        assert_int_equal(c.rc, 12);
        free_sides(&c, &v);
    }
    free(pem);
    free(key);
}

/* --- Ends of stream ------------------------------------------------------ */

/* The server sends, then ends TCP without close_notify. */
static void cut_server(side *me)
{
    if (me->hs < 0) return;
    net_send(me->s, "partial", 7, NULL, gt_now() + tg_slack_ms());
    shutdown(net_fd(me->s), SHUT_RDWR);
}

static void read_all(side *me)
{
    if (me->hs < 0) return;
    me->rc = net_receive(me->s, NET_ALL, 0, &me->got, gt_now() + tg_slack_ms());
    snprintf(me->err, sizeof me->err, "%s", net_strerror((int)me->rc));
}

/* The server shuts down its side of TLS (close_notify) and TCP. */
static void clean_server(side *me)
{
    if (me->hs < 0) return;
    net_send(me->s, "whole", 5, NULL, gt_now() + tg_slack_ms());
    me->rc = net_shutdown(me->s, SHUT_WR);
}

static void test_ends(void **state)
{
    (void)state;
    side c = {.cfg = tt_client(), .name = "localhost", .then = read_all};
    side v = {.cfg = tt_server("ec"), .then = cut_server};
    run_pair(&c, &v);
    assert_int_equal(c.rc, NET_ETLSTRUNC);
    assert_true(strstr(c.err, "close_notify") != NULL);
    assert_int_equal(c.got.len, 7);
    free_sides(&c, &v);

    side c2 = {.cfg = tt_client(), .name = "localhost", .then = read_all};
    side v2 = {.cfg = tt_server("ec"), .then = clean_server};
    run_pair(&c2, &v2);
    assert_int_equal(v2.rc, 0);
    assert_int_equal(c2.rc, 5); /* NET_ALL: a clean end is success */
    assert_memory_equal(c2.got.data, "whole", 5);
    free_sides(&c2, &v2);
}

/* --- Hostile peers ------------------------------------------------------ */

typedef struct raw {
    net_sock *plain, *tls;
    net_tls_config *cfg;
    const char *junk; /* what the plain end sends, or NULL: nothing */
    int64_t deadline;
    int hs;
} raw;

static void raw_plain(void *p)
{
    raw *r = p;
    if (r->junk) net_send(r->plain, r->junk, strlen(r->junk), NULL, -1);
    char b[256];
    while (net_recv(r->plain, b, sizeof b, gt_now() + tg_slack_ms()) > 0) {
    }
}

static void raw_tls(void *p)
{
    raw *r = p;
    r->hs = net_tls_start(r->tls, r->cfg, NULL, r->deadline);
    net_close(r->tls);
    r->tls = NULL;
}

static int raw_run(const char *junk, int64_t wait_ms)
{
    raw r = {.cfg = tt_server("ec"), .junk = junk};
    assert_int_equal(nt_pair(&r.plain, &r.tls), 0);
    r.deadline = gt_now() + wait_ms;
    tg_spawn(raw_tls, &r);
    tg_spawn(raw_plain, &r);
    NT_RUN();
    net_close(r.plain);
    net_tls_config_free(r.cfg);
    assert_int_equal(net_cleanup(), 0);
    return r.hs;
}

static void test_hostile(void **state)
{
    (void)state;
    assert_int_equal(raw_run("GET / HTTP/1.0\r\n\r\n", tg_slack_ms()),
                     NET_ETLS);
    /* A ClientHello's first bytes, then nothing: the deadline fires. */
    assert_int_equal(raw_run("\x16\x03\x01\x02\x00\x01", 200), -ETIMEDOUT);
    assert_int_equal(raw_run(NULL, 200), -ETIMEDOUT);
}

/* --- Waiters ---------------------------------------------------------- */

static void parked_reader(side *me)
{
    char b[8];
    if (me->hs < 0) return;
    me->rc = net_recv(me->s, b, sizeof b, -1);
}

static void closer(side *me)
{
    if (me->hs < 0) return;
    gt_sleep(gt_now() + 50); /* the client parks in its read */
    net_close(me->peer->s);  /* its own socket, from another thread */
    me->peer->s = NULL;
}

static void test_close_wakes(void **state)
{
    (void)state;
    side c = {.cfg = tt_client(), .name = "localhost", .then = parked_reader};
    side v = {.cfg = tt_server("ec"), .then = closer};
    run_pair(&c, &v);
    assert_int_equal(c.rc, NET_ECLOSED);
    free_sides(&c, &v);
}

/* 1 MiB each way at once: each end has a reader and a writer. */
#define BIG ((size_t)1 << 20)

typedef struct flow {
    net_sock *s;
    uint64_t seed;
    ssize_t rc;
    int64_t bad; /* first wrong byte, or -1 */
} flow;

static void writer(void *p)
{
    flow *f = p;
    unsigned char *b = malloc(BIG);
    nt_pat_fill(b, 0, BIG, f->seed);
    f->rc = net_send(f->s, b, BIG, NULL, gt_now() + 5 * tg_slack_ms());
    free(b);
}

static void reader(void *p)
{
    flow *f = p;
    net_buf got = {0};
    f->rc =
        net_receive(f->s, NET_BYTES, BIG, &got, gt_now() + 5 * tg_slack_ms());
    f->bad = got.len == BIG
                 ? nt_pat_check((unsigned char *)got.data, 0, BIG, f->seed)
                 : 0;
    net_buf_free(&got);
}

static flow flows[4];

static void both_ways(side *me)
{
    if (me->hs < 0) return;
    int k = me->name ? 0 : 2; /* the client writes seed 1, reads seed 2 */
    flows[k] = (flow){me->s, me->name ? 1 : 2, 0, -1};
    flows[k + 1] = (flow){me->s, me->name ? 2 : 1, 0, -1};
    tg_spawn(writer, &flows[k]);
    tg_spawn(reader, &flows[k + 1]);
    nt_small_buffers(me->s);
}

static void test_both_ways(void **state)
{
    (void)state;
    side c = {.cfg = tt_client(), .name = "localhost", .then = both_ways};
    side v = {.cfg = tt_server("ec"), .then = both_ways};
    run_pair(&c, &v);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(flows[i].rc, (ssize_t)BIG);
        assert_int_equal(flows[i].bad, -1);
    }
    free_sides(&c, &v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_echo),      NT_TEST(test_verify),
        NT_TEST(test_sni),       NT_TEST(test_ends),
        NT_TEST(test_hostile),   NT_TEST(test_close_wakes),
        NT_TEST(test_both_ways),
    };
    return cmocka_run_group_tests(tests, tt_certs_make, tt_certs_remove);
}
