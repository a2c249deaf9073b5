/* TLS against implementations we did not write, started on 127.0.0.1:
 * OpenSSL's s_server and GnuTLS's gnutls-serv as servers for our client,
 * s_client and gnutls-cli as clients of our server; TLS 1.2 and 1.3, RSA
 * and ECDSA.  With s_client, KeyUpdates (its k and K commands) come in
 * the middle of 1 MiB each way, while one green thread of our server
 * reads and another writes.  Runs on every poller. */
#include "tls_test.h"

static int64_t dl(void)
{
    return gt_now() + 5 * tg_slack_ms();
}

/* --- Our client ------------------------------------------------------- */

typedef struct cli {
    int port, version;
    const char *send, *want; /* a line, and the line that must come back */
    int rc;
    char got[64], proto[16];
} cli;

static void client(void *p)
{
    cli *c = p;
    net_sock *s;
    net_tls_config *cfg = tt_client();
    net_buf line = {0};
    if (!cfg || net_tls_config_versions(cfg, c->version, c->version) < 0) {
        c->rc = -EINVAL;
        net_tls_config_free(cfg);
        return;
    }
    if ((c->rc = tt_connect(&s, c->port, dl())) == 0) {
        c->rc = net_tls_start(s, cfg, "localhost", dl());
        if (c->rc == 0) {
            snprintf(c->proto, sizeof c->proto, "%s", net_tls_version(s));
            net_send(s, c->send, strlen(c->send), NULL, dl());
            c->rc = (int)net_receive(s, NET_LINE, 0, &line, dl());
            snprintf(c->got, sizeof c->got, "%.*s", (int)line.len,
                     line.data ? line.data : "");
        }
        net_close(s);
    }
    net_tls_config_free(cfg);
    net_buf_free(&line);
}

static void against(const char *const argv[], cli *c)
{
    pid_t pid = tt_spawn(argv, NULL, NULL);
    assert_true(pid > 0);
    tg_spawn(client, c);
    NT_RUN();
    tt_reap(pid);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c->rc >= 0);
    assert_string_equal(c->got, c->want);
    assert_string_equal(c->proto,
                        c->version == NET_TLS1_3 ? "TLSv1.3" : "TLSv1.2");
}

static void test_s_server(void **state)
{
    (void)state;
    static const char *const certs[] = {"ec", "rsa"};
    for (int v = 0; v < 2; v++)
        for (int k = 0; k < 2; k++) {
            cli c = {.port = nt_free_port(),
                     .version = v ? NET_TLS1_3 : NET_TLS1_2,
                     .send = "hello\n",
                     .want = "olleh"};
            char acc[32], pem[16], key[16];
            snprintf(acc, sizeof acc, "127.0.0.1:%d", c.port);
            snprintf(pem, sizeof pem, "%s.pem", certs[k]);
            snprintf(key, sizeof key, "%s.key", certs[k]);
            const char *argv[] = {
                "openssl", "s_server",   "-accept",
                acc,       "-cert",      tt_path(pem),
                "-key",    tt_path(key), v ? "-tls1_3" : "-tls1_2",
                "-rev",    "-naccept",   "1",
                NULL};
            against(argv, &c);
        }
}

static void test_gnutls_serv(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        cli c = {.port = nt_free_port(),
                 .version = v ? NET_TLS1_3 : NET_TLS1_2,
                 .send = "ping\n",
                 .want = "ping"};
        char port[16];
        snprintf(port, sizeof port, "%d", c.port);
        const char *argv[] = {"gnutls-serv",
                              "--echo",
                              "-p",
                              port,
                              "--x509certfile",
                              tt_path("ec.pem"),
                              "--x509keyfile",
                              tt_path("ec.key"),
                              "--priority",
                              v ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                : "NORMAL:-VERS-ALL:+VERS-TLS1.2",
                              NULL};
        against(argv, &c);
    }
}

/* --- Our server ------------------------------------------------------- */

#define BIG ((size_t)1 << 20)
#define CHUNK ((size_t)16 << 10)

/* The client's bytes are 'a'..'j' (never one of s_client's command
 * letters); ours have the top bit set, so that they can be picked out of
 * s_client's output, where its own messages are ASCII. */
static char up(size_t i)
{
    return (char)('a' + nt_pat(i, 1) % 10);
}
static char down(size_t i)
{
    return (char)(0x80 | nt_pat(i, 2));
}

typedef struct srv {
    net_sock *ls, *s;
    net_sock *in, *out; /* the peer program's stdin, stdout + stderr */
    pid_t pid;
    int version, echo;
    int hs;
    size_t fed, got_up, got_down; /* client -> us, us -> client */
    int64_t bad_up, bad_down;     /* first wrong byte, or -1 */
    ssize_t wrc;
    int updates; /* KEYUPDATE lines s_client printed */
    int done;
    net_buf text; /* the program's ASCII output */
} srv;

static void srv_reader(void *p)
{
    srv *v = p;
    char b[4096];
    while (v->got_up < BIG) {
        ssize_t n = net_recv(v->s, b, sizeof b, dl());
        if (n <= 0) break;
        for (ssize_t i = 0; i < n; i++, v->got_up++)
            if (v->bad_up < 0 && b[i] != up(v->got_up))
                v->bad_up = (int64_t)v->got_up;
    }
}

static void srv_writer(void *p)
{
    srv *v = p;
    char *b = malloc(BIG);
    for (size_t i = 0; i < BIG; i++) b[i] = down(i);
    v->wrc = net_send(v->s, b, BIG, NULL, dl());
    free(b);
}

/* Reads what the program prints: our bytes, checked, and its text. */
static void srv_output(void *p)
{
    srv *v = p;
    char b[4096];
    ssize_t n;
    while ((n = net_recv(v->out, b, sizeof b, dl())) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (!(b[i] & 0x80)) {
                if (v->text.len + 1 > v->text.cap) {
                    size_t cap = v->text.cap ? 2 * v->text.cap : 4096;
                    v->text.data = realloc(v->text.data, cap);
                    v->text.cap = cap;
                }
                v->text.data[v->text.len++] = b[i];
                if (b[i] == '\n' && v->text.len >= 10 &&
                    memcmp(v->text.data + v->text.len - 10, "KEYUPDATE\n",
                           10) == 0)
                    v->updates++;
                continue;
            }
            if (v->bad_down < 0 && b[i] != down(v->got_down))
                v->bad_down = (int64_t)v->got_down;
            v->got_down++;
        }
    }
}

/* Waits (bounded) until cond says yes. */
static int until(int (*cond)(const srv *), const srv *v)
{
    int64_t end = dl();
    while (!cond(v) && gt_now() < end) gt_sleep(gt_now() + 5);
    return cond(v);
}
static int all_fed_read(const srv *v)
{
    return v->got_up >= v->fed;
}
static int all_down(const srv *v)
{
    return v->got_down >= BIG && v->wrc != 0;
}

/* Feeds the client program 1 MiB, with a KeyUpdate command every
 * 256 KiB once it has passed on all before (s_client takes a command
 * only at the start of what one read of its stdin returns). */
static void srv_feeder(void *p)
{
    srv *v = p;
    char *b = malloc(CHUNK);
    int asked = 0;
    while (v->fed < BIG) {
        if (v->fed && v->fed % (BIG / 4) == 0 && !v->echo) {
            if (!until(all_fed_read, v)) break;
            net_send(v->in, asked % 2 ? "k\n" : "K\n", 2, NULL, dl());
            asked++;
            int64_t end = dl();
            while (v->updates < asked && gt_now() < end) gt_sleep(gt_now() + 5);
        }
        for (size_t i = 0; i < CHUNK; i++) b[i] = up(v->fed + i);
        if (net_send(v->in, b, CHUNK, NULL, dl()) < 0) break;
        v->fed += CHUNK;
    }
    free(b);
    until(all_fed_read, v);
    /* s_client quits on its Q command (not at the end of its stdin); our
     * echo server ends gnutls-cli's connection once all has come. */
    if (!v->echo && until(all_down, v)) net_send(v->in, "Q\n", 2, NULL, dl());
}

static void srv_main(void *p)
{
    srv *v = p;
    net_tls_config *cfg = tt_server("ec");
    net_tls_config_versions(cfg, v->version, v->version);
    v->hs = net_accept(v->ls, &v->s, dl());
    if (v->hs == 0) v->hs = net_tls_start(v->s, cfg, NULL, dl());
    net_tls_config_free(cfg);
    tg_spawn(srv_output, v);
    tg_spawn(srv_feeder, v);
    if (v->hs < 0) return;
    nt_small_buffers(v->s);
    if (v->echo) { /* gnutls-cli: what comes goes back */
        char b[4096];
        ssize_t n;
        while (v->got_up < BIG && (n = net_recv(v->s, b, sizeof b, dl())) > 0) {
            for (ssize_t i = 0; i < n; i++, v->got_up++)
                if (v->bad_up < 0 && b[i] != up(v->got_up))
                    v->bad_up = (int64_t)v->got_up;
            net_send(v->s, "+", 1, NULL, dl());
        }
    } else {
        tg_spawn(srv_writer, v);
        srv_reader(v);
        /* s_client closes on its Q command (srv_feeder). */
        char b[1];
        net_recv(v->s, b, sizeof b, dl());
    }
    /* gnutls-cli waits for our close_notify before it exits. */
    net_close(v->s);
    v->s = NULL;
}

static void serve(srv *v, const char *const argv[])
{
    v->bad_up = v->bad_down = -1;
    v->pid = tt_spawn(argv, &v->in, &v->out);
    assert_true(v->pid > 0);
    tg_spawn(srv_main, v);
    NT_RUN();
    tt_reap(v->pid);
    if (v->s) net_close(v->s);
    if (v->in) net_close(v->in);
    net_close(v->out);
    net_close(v->ls);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(v->hs, 0);
    assert_int_equal(v->got_up, BIG);
    assert_int_equal(v->bad_up, -1);
}

static void test_s_client_keyupdate(void **state)
{
    (void)state;
    srv v = {.version = NET_TLS1_3};
    int port = 0;
    assert_int_equal(nt_listen(&v.ls, &port, 4), 0);
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%d", port);
    const char *argv[] = {
        "openssl",         "s_client",    "-connect",  to,        "-CAfile",
        tt_path("ca.pem"), "-servername", "localhost", "-tls1_3", NULL};
    serve(&v, argv);
    assert_int_equal(v.updates, 3);
    assert_int_equal(v.wrc, (ssize_t)BIG);
    assert_int_equal(v.got_down, BIG);
    assert_int_equal(v.bad_down, -1);
    net_buf_free(&v.text);
}

static void test_gnutls_cli(void **state)
{
    (void)state;
    for (int t = 0; t < 2; t++) {
        srv v = {.version = t ? NET_TLS1_3 : NET_TLS1_2, .echo = 1};
        int port = 0;
        assert_int_equal(nt_listen(&v.ls, &port, 4), 0);
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        const char *argv[] = {"gnutls-cli",
                              "--x509cafile",
                              tt_path("ca.pem"),
                              "-p",
                              ps,
                              "localhost",
                              NULL};
        serve(&v, argv);
        assert_true(tt_has(&v.text, t ? "TLS1.3" : "TLS1.2"));
        assert_true(tt_has(&v.text, "+"));
        net_buf_free(&v.text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_s_server),
        NT_TEST(test_gnutls_serv),
        NT_TEST(test_s_client_keyupdate),
        NT_TEST(test_gnutls_cli),
    };
    return cmocka_run_group_tests(tests, tt_certs_make, tt_certs_remove);
}
