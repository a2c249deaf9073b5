/* Shared helpers for the TLS tests: certificates made at test time by
 * make-certs.sh (the openssl command) in a temporary directory, the
 * configurations the tests use, and other programs (openssl, gnutls-cli)
 * run as peers with their standard streams on socketpairs, which the
 * loop reads and writes like any socket.  The rules of net_test.h hold. */
#ifndef SL_TLS_TEST_H
#define SL_TLS_TEST_H

#include "net_test.h"

#include <socketloop/net_op.h>
#include <socketloop/tls.h>
#include <sys/wait.h>

static char tt_dir[64];

/* dir/name, in one of a few rotating buffers. */
static inline const char *tt_path(const char *name)
{
    static char bufs[8][128];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", tt_dir, name);
    return b;
}

/* Group setup and teardown: the certificates, once per program. */
static inline int tt_certs_make(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(tt_dir, sizeof tt_dir, "/tmp/sl-tls-XXXXXX");
    if (!mkdtemp(tt_dir)) return -1;
    snprintf(cmd, sizeof cmd, "sh %s %s", TT_CERTS_SCRIPT, tt_dir);
    signal(SIGPIPE, SIG_IGN); /* the peers' pipes, never our sockets */
    return system(cmd) == 0 ? 0 : -1;
}

static inline int tt_certs_remove(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tt_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A server configuration with the certificate named name (name.pem,
 * name.key); NULL on failure. */
static inline net_tls_config *tt_server(const char *name)
{
    net_tls_config *c;
    char pem[64], key[64];
    snprintf(pem, sizeof pem, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    if (net_tls_config_new(&c, NET_TLS_SERVER) < 0) return NULL;
    if (net_tls_config_cert_file(c, tt_path(pem), tt_path(key)) < 0) {
        net_tls_config_free(c);
        return NULL;
    }
    return c;
}

/* A client that trusts the tests' CA only. */
static inline net_tls_config *tt_client(void)
{
    net_tls_config *c;
    if (net_tls_config_new(&c, NET_TLS_CLIENT) < 0) return NULL;
    if (net_tls_config_ca(c, tt_path("ca.pem"), NULL) < 0) {
        net_tls_config_free(c);
        return NULL;
    }
    return c;
}

/* Runs argv with stdin on *in and stdout and stderr on *out (each the
 * test's end of a socketpair, wrapped; NULL: /dev/null); returns the
 * pid, or -1. */
TG_UNUSED static pid_t tt_spawn(const char *const argv[], net_sock **in,
                                net_sock **out)
{
    int a[2] = {-1, -1}, b[2] = {-1, -1};
    if ((in && socketpair(AF_UNIX, SOCK_STREAM, 0, a) < 0) ||
        (out && socketpair(AF_UNIX, SOCK_STREAM, 0, b) < 0))
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(in ? a[1] : nul, 0);
        dup2(out ? b[1] : nul, 1);
        dup2(out ? b[1] : nul, 2);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (in) close(a[1]);
    if (out) close(b[1]);
    if (pid < 0) return -1;
    if (in && net_wrap(in, a[0]) < 0) return -1;
    if (out && net_wrap(out, b[0]) < 0) return -1;
    return pid;
}

/* Ends a peer program and reaps it. */
TG_UNUSED static int tt_reap(pid_t pid)
{
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    return tg_wait_child(pid);
}

/* Connects to 127.0.0.1:port, where a program is starting: tries again
 * every 20 ms until the deadline. */
TG_UNUSED static int tt_connect(net_sock **s, int port, int64_t deadline)
{
    for (;;) {
        int rc = net_connect(s, "127.0.0.1", port, NULL, 0, deadline);
        if (rc != -ECONNREFUSED || gt_now() >= deadline) return rc;
        gt_sleep(gt_now() + 20);
    }
}

/* Reads s until end of stream (or error) into out; the result. */
TG_UNUSED static ssize_t tt_drain(net_sock *s, net_buf *out, int64_t deadline)
{
    return net_receive(s, NET_ALL, 0, out, deadline);
}

/* Whether out holds text. */
TG_UNUSED static int tt_has(const net_buf *out, const char *text)
{
    return out->len && memmem(out->data, out->len, text, strlen(text));
}

#endif
