/* The fault walk through TLS (issue 11).  In one loop a director makes a
 * server and a client configuration (certificates of make-certs.sh),
 * serves on 127.0.0.1 with net_serve, and runs one client: connect, the
 * handshake (net_tls_start, both sides), a line each way, close.  The
 * scenario runs once without a fault to count the calls of every site;
 * then for every fault below and every call index (with a stride, see
 * steps()) again with that call failing, and each run must show:
 *
 * (a) a clear error: some operation returned the fault's code with a text
 *     (net_strerror is not "unknown error"; for NET_ETLS* and -ENOMEM from
 *     OpenSSL the text carries its reason); every other failure is a
 *     consequence at the peer (NET_ETLS from an alert, NET_ETLSTRUNC,
 *     NET_EEOF, NET_ECLOSED, -ECONNRESET, -EPIPE); or everything
 *     succeeded, where OpenSSL does without what it could not get;
 * (b) the loop ended by itself, before the deadline;
 * (c) net_cleanup succeeds, the descriptors are back to where they were;
 *     the Valgrind twin checks memory.
 *
 * The sites: the libc calls the library makes on this path (fault.c),
 * OpenSSL's own allocations through CRYPTO_set_mem_functions, and the
 * library's calls of SSL_CTX_new, SSL_new, SSL_do_handshake, SSL_read_ex
 * and SSL_write_ex (fault_tls.c).
 *
 * OpenSSL makes state for the whole process on first use (its error
 * strings, the default provider and its algorithms, the system's
 * configuration): a warm-up run makes it before anything is counted, so
 * that a fault lands in a connection's work, not in a one-time set-up
 * that later runs would not repeat, and Valgrind does not see that state
 * as a leak of one run. */
#include "net_test.h"

#include "fault.h"
#include "fault_tls.h"
#include "tls_test.h"

#include <openssl/ssl.h>

#define MAX_LOG 32
/* Call indices tried per fault at most: a run makes some 240,000
 * allocations in OpenSSL (two contexts, a certificate and key, a
 * handshake) and takes ~80 ms, over a second under Valgrind, so a site
 * with more calls is walked with a stride (every k-th call, from the
 * first), which is printed.  Under Valgrind, which is there for leaks,
 * fewer. */
static long steps(void)
{
    return tg_under_valgrind() ? 1 : 60;
}

typedef struct rec {
    const char *op;
    int rc;
    char text[120]; /* net_strerror(rc) when it came */
} rec;

static struct {
    rec log[MAX_LOG];
    int nlog;
    int client_ok, served;
    int64_t owned[2]; /* the director and the handler */
    int loop_rc, cleanup_rc;
} R;

static int64_t deadline;
static int port;
static net_tls_config *srv_cfg;
static const char line[] = "hello over TLS\n";

static int note(const char *op, ssize_t rc)
{
    if (R.nlog < MAX_LOG) {
        rec *e = &R.log[R.nlog++];
        e->op = op;
        e->rc = rc < 0 ? (int)rc : 0;
        snprintf(e->text, sizeof e->text, "%s",
                 rc < 0 ? net_strerror((int)rc) : "");
    }
    return rc < 0 ? (int)rc : 0;
}

#define TRY(op, call)                                                          \
    do {                                                                       \
        if (note(op, call) < 0) goto out;                                      \
    } while (0)

static int same(const net_buf *b)
{
    return b->len == sizeof line - 1 && !memcmp(b->data, line, b->len)
               ? 0
               : -EBADMSG;
}

static void handler(net_sock *s, void *arg)
{
    net_buf b = {NULL, 0, 0};
    char c;
    (void)arg;
    R.owned[1] = gt_self();
    TRY("srv handshake", net_tls_start(s, srv_cfg, NULL, deadline));
    TRY("srv line", net_receive(s, NET_BYTES, sizeof line - 1, &b, deadline));
    TRY("srv verify", same(&b));
    TRY("srv send", net_send(s, b.data, b.len, NULL, deadline));
    ssize_t eof = net_recv(s, &c, 1, deadline);
    TRY("srv eof", eof > 0 ? -EBADMSG : eof);
    R.served = 1;
out:
    net_buf_free(&b);
}

static void client(net_tls_config *cfg)
{
    net_sock *s;
    net_buf b = {NULL, 0, 0};
    if (note("connect", net_connect(&s, "127.0.0.1", port, NULL, 0, deadline)))
        return;
    TRY("handshake", net_tls_start(s, cfg, "localhost", deadline));
    TRY("send", net_send(s, line, sizeof line - 1, NULL, deadline));
    TRY("recv", net_receive(s, NET_BYTES, sizeof line - 1, &b, deadline));
    TRY("verify", same(&b));
    R.client_ok = 1;
out:
    note("close", net_close(s));
    net_buf_free(&b);
}

/* The server is a handle (net_server_start), not net_serve: after the
 * client, stopping it and waiting for its handlers ends the run at once
 * also when a fault in the acceptor meant that no handler ever ran. */
static void director(void *arg)
{
    net_tls_config *cli_cfg = NULL;
    net_server *srv = NULL;
    net_sock *ls = NULL;
    net_addr a;
    (void)arg;
    R.owned[0] = gt_self();
    srv_cfg = NULL;
    if (note("srv config", net_tls_config_new(&srv_cfg, NET_TLS_SERVER)) ||
        note("srv cert", net_tls_config_cert_file(srv_cfg, tt_path("ec.pem"),
                                                  tt_path("ec.key"))) ||
        note("cli config", net_tls_config_new(&cli_cfg, NET_TLS_CLIENT)) ||
        note("cli ca", net_tls_config_ca(cli_cfg, tt_path("ca.pem"), NULL)) ||
        note("listen", net_listen(&ls, "127.0.0.1", 0, 16)) ||
        note("local addr", net_local_addr(ls, &a)))
        goto out;
    if (note("serve", net_server_start(&srv, ls, handler, NULL)) < 0) goto out;
    ls = NULL; /* the server's now */
    port = a.port;
    client(cli_cfg);
    net_server_stop(srv);
    note("server wait", net_server_wait(srv, deadline + 1000));
    note("server free", net_server_free(srv));
out:
    if (ls) net_close(ls);
    net_tls_config_free(cli_cfg);
    net_tls_config_free(srv_cfg);
}

/* A fault of fault.c (lib 0) or of fault_tls.c (lib 1). */
typedef struct kind {
    int lib, site, err;
    const char *err_name;
} kind;

static const kind kinds[] = {
    {0, FS_MALLOC, ENOMEM, "ENOMEM"},
    {0, FS_CALLOC, ENOMEM, "ENOMEM"},
    {0, FS_REALLOC, ENOMEM, "ENOMEM"},
    {0, FS_SOCKET, EMFILE, "EMFILE"},
    {0, FS_CONNECT, ECONNREFUSED, "ECONNREFUSED"},
    {0, FS_RECV, ECONNRESET, "ECONNRESET"},
    {0, FS_SEND, ECONNRESET, "ECONNRESET"},
    {1, FT_CRYPTO_MALLOC, ENOMEM, "NULL"},
    {1, FT_CRYPTO_REALLOC, ENOMEM, "NULL"},
    {1, FT_SSL_CTX_NEW, ENOMEM, "NULL"},
    {1, FT_SSL_NEW, ENOMEM, "NULL"},
    {1, FT_SSL_DO_HANDSHAKE, 0, "-1"},
    {1, FT_SSL_READ_EX, 0, "0"},
    {1, FT_SSL_WRITE_EX, 0, "0"},
};
#define NKINDS TG_ARRAY_LEN(kinds)

static const char *name_of(const kind *k)
{
    return k->lib ? ft_site_name[k->site] : fault_site_name[k->site];
}

static void run_once(const kind *k, long nth)
{
    memset(&R, 0, sizeof R);
    deadline = gt_now() + (tg_under_valgrind() ? 30000 : 5000);
    gt_spawn(director, NULL);
    if (k && k->lib)
        ft_arm(k->site, nth);
    else
        fault_arm(k ? k->site : 0, nth, k ? k->err : 0);
    if (!k) ft_arm(0, 0); /* counts OpenSSL's sites as well */
    R.loop_rc = gt_start(deadline + 2000);
    fault_disarm();
    ft_disarm();
    if (R.loop_rc != 0) gt_dump(stdout);
    R.cleanup_rc = net_cleanup();
}

static int is_tls(int rc)
{
    return rc == NET_ETLS || rc == NET_ETLSVERIFY || rc == NET_ETLSTRUNC ||
           rc == NET_ETLSCONFIG;
}

/* Checks one faulted run; NULL if it passed. */
static const char *judge(const kind *k, int64_t who, int fds, int fds0)
{
    static char why[200];
    int seen = 0, failures = 0;
    if (R.loop_rc) return "the loop did not end by the deadline";
    if (R.cleanup_rc) return "net_cleanup failed: something was left open";
    if (fds != fds0) return "descriptors leaked";
    for (int i = 0; i < R.nlog; i++) {
        const rec *e = &R.log[i];
        if (!e->rc) continue;
        failures++;
        if (!strcmp(e->text, "unknown error") || !e->text[0]) {
            snprintf(why, sizeof why, "%s: error %d has no text", e->op, e->rc);
            return why;
        }
        /* OpenSSL's failures say what failed and why ("TLS session:
         * ..."), never the bare text of the code. */
        if ((is_tls(e->rc) || (k->lib && e->rc == -ENOMEM)) &&
            !strchr(e->text, ':')) {
            snprintf(why, sizeof why, "%s: error %d without a reason: %s",
                     e->op, e->rc, e->text);
            return why;
        }
        /* A close_notify that net_close could not send (it never
         * reports one, see tls.h) shows at the peer as a truncation. */
        if (!k->lib && k->site == FS_SEND && e->rc == NET_ETLSTRUNC &&
            !strcmp(e->op, "srv eof") && R.client_ok)
            seen = 1;
        if (k->lib ? is_tls(e->rc) || e->rc == -ENOMEM : e->rc == -k->err)
            seen = 1;
        else if (e->rc != NET_ECLOSED && e->rc != NET_EEOF &&
                 e->rc != -ECONNRESET && e->rc != -EPIPE && !is_tls(e->rc)) {
            snprintf(why, sizeof why, "%s: unexpected error %d (%s)", e->op,
                     e->rc, e->text);
            return why;
        }
    }
    if (!failures) return R.client_ok && R.served ? NULL : "no error, no echo";
    /* A call of the acceptor's (net_server's own green thread) is
     * reported by it on stderr; the client sees only the consequence. */
    if (!seen && !k->lib && who && who != R.owned[0] && who != R.owned[1])
        return NULL;
    if (!seen) return "no operation reported the fault's error";
    return NULL;
}

static void test_walk(void **state)
{
    (void)state;
    long counts[NKINDS];
    run_once(NULL, 0); /* the warm-up: OpenSSL's process-wide state */
    int fds0 = fault_count_fds(), fds;
    run_once(NULL, 0);
    assert_int_equal(R.loop_rc, 0);
    assert_int_equal(R.cleanup_rc, 0);
    assert_true(R.client_ok && R.served);
    assert_int_equal(fault_count_fds(), fds0);
    for (int i = 0; i < NKINDS; i++)
        counts[i] =
            kinds[i].lib ? ft_calls(kinds[i].site) : fault_calls(kinds[i].site);

    long failed = 0;
    printf("%-16s %-13s %6s %6s %9s %9s\n", "site", "fault", "calls", "stride",
           "injected", "survived");
    for (int i = 0; i < NKINDS; i++) {
        const kind *k = &kinds[i];
        long st = steps();
        long stride = counts[i] > st ? (counts[i] + st - 1) / st : 1;
        long injected = 0, survived = 0;
        for (long n = 1; n <= counts[i]; n += stride) {
            run_once(k, n);
            int64_t who = 0;
            int hit = k->lib ? ft_hit() : fault_hit(&who);
            fds = fault_count_fds();
            const char *why = judge(k, who, fds, fds0);
            /* A run that the fault did not reach must just succeed. */
            if (!hit && !why && !(R.client_ok && R.served))
                why = "a run without the fault failed";
            injected += hit;
            survived += hit && !why;
            if (!why) continue;
            failed++;
            printf("FAIL %s %s, call %ld of %ld: %s\n", name_of(k), k->err_name,
                   n, counts[i], why);
            for (int j = 0; j < R.nlog; j++)
                printf("    %-14s %d %s\n", R.log[j].op, R.log[j].rc,
                       R.log[j].text);
            /* What follows would run on a loop in an unknown state. */
            assert_true(R.cleanup_rc == 0 && fds == fds0);
        }
        printf("%-16s %-13s %6ld %6ld %9ld %9ld\n", name_of(k), k->err_name,
               counts[i], stride, injected, survived);
    }
    fflush(stdout);
    assert_int_equal(failed, 0);
}

int main(void)
{
    /* Before OpenSSL allocates anything. */
    if (ft_install() < 0) {
        fprintf(stderr, "CRYPTO_set_mem_functions refused\n");
        return 1;
    }
    OPENSSL_init_ssl(0, NULL);
    tg_watchdog(300);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_walk)};
    return cmocka_run_group_tests(tests, tt_certs_make, tt_certs_remove);
}
