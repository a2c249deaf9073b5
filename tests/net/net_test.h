/* Shared helpers for the net-layer tests.
 *
 * Rule (as in tests/gt_test.h): a failing CMocka assertion longjmps, and a
 * longjmp must never cross green-thread stacks.  Code inside green threads
 * only records results in plain structs; the test function asserts on them
 * on the main stack after gt_run() has returned.
 *
 * Every test program runs once per poller: CTest sets SOCKETLOOP_POLLER to
 * epoll, poll or select (tests/net/CMakeLists.txt).  Every test ends with
 * net_cleanup() == 0, which fails while any socket is still open.  Only
 * 127.0.0.1, ::1 and socketpairs are used. */
#ifndef SL_NET_TEST_H
#define SL_NET_TEST_H

#include "gt_test.h" /* CMocka, the watchdog, spawning, child processes */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <socketloop/net.h>

/* The poller the environment asks for; NULL when unset. */
static inline const char *nt_poller_env(void)
{
    const char *p = getenv("SOCKETLOOP_POLLER");
    return p && *p ? p : NULL;
}

static inline int nt_is_select(void)
{
    return strcmp(net_poller_name(), "select") == 0;
}

/* --- Green threads ------------------------------------------------------- */

/* Net tests spawn with tg_spawn, which remembers the ids, so that the
 * teardown of a failed test can cancel what it left behind. */
static inline int nt_setup(void **state)
{
    (void)state;
    tg_ids.n = 0;
    tg_watchdog(60);
    return 0;
}

/* A passing test has run its loop to the end; after a failed one, cancel
 * the stragglers and give them a few seconds to leave (sockets they hold
 * must see their calls end before the next test). */
static inline int nt_teardown(void **state)
{
    (void)state;
    if (gt_dispatch(0) != 0) {
        for (int i = 0; i < tg_ids.n; i++) gt_cancel(tg_ids.id[i]);
        gt_start(gt_now() + 5000);
    }
    alarm(0);
    return 0;
}

#define NT_TEST(f) cmocka_unit_test_setup_teardown(f, nt_setup, nt_teardown)

/* Runs the loop to the end; fails the test if it did not end cleanly. */
#define NT_RUN() assert_int_equal(gt_run(), 0)

/* --- Sockets ---------------------------------------------------------------
 */

/* A listener on 127.0.0.1 and a free port. */
TG_UNUSED static int nt_listen(net_sock **ls, int *port, int backlog)
{
    int rc = net_listen(ls, "127.0.0.1", 0, backlog);
    if (rc < 0) return rc;
    net_addr a;
    if ((rc = net_local_addr(*ls, &a)) < 0) {
        net_close(*ls);
        return rc;
    }
    *port = a.port;
    return 0;
}

/* A port on 127.0.0.1 that nobody listens on (bound, then closed). */
TG_UNUSED static int nt_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* A connected pair of plain (blocking) TCP descriptors on 127.0.0.1, made
 * without the net layer. */
TG_UNUSED static int nt_raw_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int s = -1, rc = -1;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (l < 0 || c < 0) goto out;
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 4) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) < 0)
        goto out;
    if (connect(c, (struct sockaddr *)&sa, sizeof sa) < 0) goto out;
    struct pollfd p = {l, POLLIN, 0};
    if (poll(&p, 1, 10000) != 1) goto out;
    s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (s < 0) goto out;
    *client = c;
    *server = s;
    c = -1;
    rc = 0;
out:
    if (l >= 0) close(l);
    if (c >= 0) close(c);
    return rc;
}

/* The same pair, wrapped: works outside green threads. */
TG_UNUSED static int nt_pair(net_sock **client, net_sock **server)
{
    int c, s, rc;
    if (nt_raw_pair(&c, &s) < 0) return -1;
    if ((rc = net_wrap(client, c)) < 0) {
        close(c);
        close(s);
        return rc;
    }
    if ((rc = net_wrap(server, s)) < 0) {
        net_close(*client);
        close(s);
        return rc;
    }
    return 0;
}

/* Small kernel buffers (no autotuning), so that a writer whose peer does
 * not read parks soon.  Not smaller: below 64 KiB, loopback transfers can
 * stall on delayed ACKs for 200 ms at a time.  Returns 0 or -errno. */
TG_UNUSED static int nt_small_buffers(net_sock *s)
{
    int rc = net_setopt(s, NET_SNDBUF, 65536);
    return rc < 0 ? rc : net_setopt(s, NET_RCVBUF, 65536);
}

/* Makes the next close send a reset. */
TG_UNUSED static int nt_linger0(net_sock *s)
{
    return net_setopt(s, NET_LINGER, 0);
}

/* --- Byte patterns ----------------------------------------------------------
 */

/* Byte `i` of an endless test stream: no short period, so lost, doubled or
 * reordered bytes show. */
static inline unsigned char nt_pat(uint64_t i, uint64_t seed)
{
    uint64_t x = (i + seed) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return (unsigned char)(x >> 24);
}

TG_UNUSED static void nt_pat_fill(unsigned char *p, uint64_t off, size_t n,
                                  uint64_t seed)
{
    for (size_t i = 0; i < n; i++) p[i] = nt_pat(off + i, seed);
}

/* Index of the first byte that differs from the pattern, or -1. */
TG_UNUSED static int64_t nt_pat_check(const unsigned char *p, uint64_t off,
                                      size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != nt_pat(off + i, seed)) return (int64_t)(off + i);
    return -1;
}

/* A small deterministic generator (xorshift) for sizes and splits. */
static inline uint32_t nt_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (uint32_t)(x >> 32);
}

/* --- Processes ------------------------------------------------------------ */

/* CPU time (user + system) of this process in ms. */
TG_UNUSED static int64_t nt_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* Reads exactly n bytes from a plain descriptor within timeout_ms; 0 or -1. */
TG_UNUSED static int nt_read_full(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r != 1) return -1;
        ssize_t k = read(fd, (char *)buf + got, n - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        got += (size_t)k;
    }
    return 0;
}

#endif
