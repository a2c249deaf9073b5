/* Fuzz target: the server side of the TLS handshake.  Each input is what
 * a client sends, written into one end of a socketpair before the other
 * end, wrapped, runs net_tls_start as a server and then reads until the
 * stream fails or ends.  Whatever the bytes, the result must be one of
 * the codes a TLS server can meet, and nothing may leak (net_cleanup).
 * The certificate is a self-signed test one, made for this file only. */
#include "fuzz.h"

#include <errno.h>
#include <socketloop.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const char cert[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdjCCARugAwIBAgIUUyTpybmGB1vk+iCwdBdX9+DeqWwwCgYIKoZIzj0EAwIw\n"
    "DzENMAsGA1UEAwwEZnV6ejAgFw0yNjEyMDIwNjA1MTJaGA8yMTI2MTEwODA2MDUx\n"
    "MlowDzENMAsGA1UEAwwEZnV6ejBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABKs2\n"
    "9NlvMXvwF0S4JwI6VmTISZcDdAwaEbvldvm2S45Zj543p139diWPZnJzSULBieHb\n"
    "okdFjSFVneeuAwLiOFujUzBRMB0GA1UdDgQWBBQVy3kHsv76AWfNbT10Wjm9q7fk\n"
    "8TAfBgNVHSMEGDAWgBQVy3kHsv76AWfNbT10Wjm9q7fk8TAPBgNVHRMBAf8EBTAD\n"
    "AQH/MAoGCCqGSM49BAMCA0kAMEYCIQD2B3aKPSpecdMDGoimSFRnYpyf/Iv9syht\n"
    "96u14qjSmAIhANGhzHqrYxaSDgz0uze+NgfLO9+n6Rqipa3rK7CT6sfZ\n"
    "-----END CERTIFICATE-----\n";
static const char key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5MhbD5G9XHkqZV+b\n"
    "y6eR2W4Q6/CIA/q6ECYqehOGaPuhRANCAASrNvTZbzF78BdEuCcCOlZkyEmXA3QM\n"
    "GhG75Xb5tkuOWY+eN6dd/XYlj2Zyc0lCwYnh26JHRY0hVZ3nrgMC4jhb\n"
    "-----END PRIVATE KEY-----\n";

static net_tls_config *cfg;

typedef struct run {
    net_sock *s;
    int hs;
    ssize_t rc;
} run;

static void serve(void *p)
{
    run *r = p;
    char buf[512];
    r->hs = net_tls_start(r->s, cfg, NULL, gt_now() + 1000);
    if (r->hs == 0)
        while ((r->rc = net_recv(r->s, buf, sizeof buf, gt_now() + 1000)) > 0) {
        }
}

static int expected(int rc)
{
    return rc == 0 || rc == NET_ETLS || rc == NET_ETLSVERIFY ||
           rc == NET_ETLSTRUNC || rc == -ECONNRESET || rc == -EPIPE ||
           rc == -ETIMEDOUT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (!cfg && (net_tls_config_new(&cfg, NET_TLS_SERVER) < 0 ||
                 net_tls_config_cert_mem(cfg, cert, sizeof cert - 1, key,
                                         sizeof key - 1) < 0))
        abort();
    if (size > 60000) return 0; /* more than a socketpair takes at once */
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) abort();
    if (size && write(sv[0], data, size) != (ssize_t)size) abort();
    shutdown(sv[0], SHUT_WR);
    run r = {NULL, 0, 0};
    if (net_wrap(&r.s, sv[1]) < 0 || gt_spawn(serve, &r) < 0) abort();
    if (gt_run() != 0) abort();
    net_close(r.s);
    close(sv[0]);
    if (!expected(r.hs) || (r.hs == 0 && !expected((int)r.rc))) abort();
    if (net_cleanup() != 0) abort();
    return 0;
}
