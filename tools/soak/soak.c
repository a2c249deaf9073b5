/* socketloop-soak: holds thousands of connections of hostile and
 * well-behaved peers against socketloop-echo for a set time, then checks
 * that the server lost no byte, still answers, and leaks neither
 * descriptors nor memory.  MIT licence, see LICENSE.
 *
 *   socketloop-soak [-c CONNS] [-d SECONDS] [-w WARMUP_S] [-i IDLE_S]
 *                   [-o OP_MS] [-g GRACE_MS] [-r RSS_PCT] [-s SEED]
 *                   [-e ECHO_PATH | -p PORT -P PID [-a HOST]] [--json] [-v]
 *
 * The checks, each a line of the summary, any failure making the exit
 * status 1:
 * - bytes: every byte echoed to a well-behaved peer, half-closer or
 *   resetter (before its reset) and slowloris equals what it sent;
 * - peers: each peer ended as its kind must (see peers.c), within the
 *   server's timeouts plus the grace, and every kind took part;
 * - answers: a fresh connection echoed every second and once at the end;
 * - descriptors: within one idle timeout (plus the grace) of the last
 *   peer's end, the server holds as many as before the first came;
 * - rss: sampled every second; the largest sample of the last quarter of
 *   the time after warm-up exceeds the first sample after warm-up by at
 *   most -r percent (default 5).  By then every kind of peer has come and
 *   gone many times, the idle timeouts have fired, the stack pool and the
 *   allocator have reached their working size for -c connections, so
 *   what remains is the wobble of the live count (a few percent); a leak
 *   of even a hundred bytes per connection grows without bound and shows
 *   on any run long enough;
 * - stop: a server we started exits 0 on SIGTERM. */
#define _GNU_SOURCE
#include "soak.h"

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

soak_opts O = {.conns = 2000,
               .duration = 30,
               .warmup = -1,
               .idle_s = 2,
               .op_ms = 1000,
               .grace_ms = 3000,
               .rss_pct = 5,
               .seed = 1,
               .host = "127.0.0.1"};
soak_stats ST;
int64_t G_end;

static const char usage[] =
    "usage: socketloop-soak [-c CONNS] [-d SECONDS] [-w WARMUP_S] [-i IDLE_S]\n"
    "                       [-o OP_MS] [-g GRACE_MS] [-r RSS_PCT] [-s SEED]\n"
    "                       [-e ECHO [-b POLLER] | -p PORT -P PID [-a HOST]]\n"
    "                       [--json] "
    "[-v]\n"
    "  -c N      connections held at once (default 2000)\n"
    "  -d SEC    duration of the load (default 30)\n"
    "  -w SEC    warm-up before the RSS reference (default: a quarter of -d)\n"
    "  -i SEC    the server's idle timeout (default 2)\n"
    "  -o MS     the server's per-operation deadline (default 1000)\n"
    "  -g MS     slack of every timing check (default 3000)\n"
    "  -r PCT    RSS growth allowed after warm-up (default 5)\n"
    "  -s SEED   seed of every size, pause, choice and byte (default 1)\n"
    "  -e PATH   socketloop-echo to start (default: ../net/ next to this)\n"
    "  -b NAME   its poller (default: SOCKETLOOP_POLLER, else its own); the\n"
    "            soak itself always runs on epoll\n"
    "  -p, -P    use the server already listening on PORT, process PID,\n"
    "            started with the same -i and -o\n"
    "  -a HOST   its address (default 127.0.0.1)\n"
    "  --json    print the summary as one JSON object\n"
    "  -v        print every failure (default: the first 10)\n";

soak_result R = {.fds_back_ms = -1};

static double opt_num(const char *what, const char *s, double lo, double hi)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bad %s: %s (want %g..%g)\n", what, s, lo, hi);
        exit(2);
    }
    return v;
}

static void parse(int argc, char **argv)
{
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:d:w:i:o:g:r:s:e:b:p:P:a:vh", longs,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            O.conns = (int)opt_num("connections", optarg, 1, 1000000);
            break;
        case 'd': O.duration = opt_num("duration", optarg, 1, 1e6); break;
        case 'w': O.warmup = opt_num("warm-up", optarg, 0, 1e6); break;
        case 'i':
            O.idle_s = (int64_t)opt_num("idle timeout", optarg, 1, 3600);
            break;
        case 'o':
            O.op_ms = (int64_t)opt_num("deadline", optarg, 1, 3600000);
            break;
        case 'g':
            O.grace_ms = (int64_t)opt_num("grace", optarg, 100, 600000);
            break;
        case 'r': O.rss_pct = opt_num("RSS growth", optarg, 0, 1000); break;
        case 's': O.seed = (uint64_t)opt_num("seed", optarg, 0, 1e18); break;
        case 'e': O.echo = optarg; break;
        case 'b': O.poller = optarg; break;
        case 'p': O.port = (int)opt_num("port", optarg, 1, 65535); break;
        case 'P': O.pid = (pid_t)opt_num("pid", optarg, 1, INT_MAX); break;
        case 'a': O.host = optarg; break;
        case 'j': O.json = 1; break;
        case 'v': O.verbose = 1; break;
        case 'h': fputs(usage, stdout); exit(0);
        default: fputs(usage, stderr); exit(2);
        }
    }
    if (optind != argc || !O.port != !O.pid || (O.pid && O.echo)) {
        fputs(usage, stderr);
        exit(2);
    }
    if (O.warmup < 0) O.warmup = O.duration / 4;
    if (O.warmup >= O.duration) {
        fputs("the warm-up must end before the load does\n", stderr);
        exit(2);
    }
}

/* Each process holds a descriptor per connection, plus a few. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < (rlim_t)O.conns + 64) {
        fprintf(stderr, "-c %d needs %d descriptors; the limit is %ld\n",
                O.conns, O.conns + 64, (long)rl.rlim_cur);
        exit(2);
    }
}

/* The server's address, numeric: a name would block the loop. */
static int resolve(void)
{
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                             .ai_socktype = SOCK_STREAM},
                    *res;
    char port[16];
    snprintf(port, sizeof port, "%d", O.port);
    int rc = getaddrinfo(O.host, port, &hints, &res);
    if (rc) {
        fprintf(stderr, "%s: %s\n", O.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&O.addr, res->ai_addr, res->ai_addrlen);
    O.addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void take_sample(void)
{
    sample x = {gt_now(), proc_rss_kb(R.pid), proc_fds(R.pid)};
    if (x.fds > R.fds_peak) R.fds_peak = x.fds;
    if (R.ns < R.cap) R.s[R.ns++] = x;
}

/* Every second: the server's RSS and descriptors, a check that it lives;
 * every ten, a line of progress. */
static void monitor(void *arg)
{
    (void)arg;
    for (int64_t next = R.t0; gt_now() < G_end; next += 1000) {
        take_sample();
        if (!server_alive(R.pid)) {
            soak_fail(-1, "the server died");
            G_end = gt_now();
        }
        R.cpu1 = proc_cpu_ms(R.pid);
        if ((next - R.t0) % 10000 == 0 && next > R.t0)
            fprintf(stderr,
                    "%4llds: %ld peers, server %ld fds, %ld KiB; %.1f MiB "
                    "verified, %ld failures\n",
                    (long long)(next - R.t0) / 1000, ST.live, R.s[R.ns - 1].fds,
                    R.s[R.ns - 1].rss_kb, (double)ST.verified / 1048576,
                    ST.failures);
        int64_t wake = soak_min(next + 1000, G_end);
        gt_sleep(wake);
        if (gt_now() - wake > ST.max_lag) ST.max_lag = gt_now() - wake;
    }
}

static int probe(const char *when)
{
    int64_t ms;
    int rc = soak_probe(&ms);
    ST.probes++;
    if (ms > ST.max_probe_ms) ST.max_probe_ms = ms;
    if (rc < 0) {
        ST.probe_failures++;
        soak_fail(-1, "a fresh connection %s did not echo: %s", when,
                  net_strerror(rc));
    }
    return rc;
}

static void prober(void *arg)
{
    (void)arg;
    for (int64_t next = R.t0 + 1000; gt_now() < G_end; next += 1000) {
        gt_sleep(soak_min(next, G_end));
        if (gt_now() < G_end) probe("during the load");
    }
}

/* The RSS check's numbers: see the top of this file. */
static void rss_numbers(void)
{
    int64_t late = G_end - (G_end - R.warm_at) / 4;
    for (int i = 0; i < R.ns; i++) {
        if (!R.rss_warm && R.s[i].t >= R.warm_at) R.rss_warm = R.s[i].rss_kb;
        if (R.s[i].t >= late && R.s[i].rss_kb > R.rss_late)
            R.rss_late = R.s[i].rss_kb;
    }
}

static void control(void *arg)
{
    long n = O.conns;
    int64_t *ids = arg;
    R.t0 = gt_now();
    R.warm_at = R.t0 + (int64_t)(O.warmup * 1000);
    G_end = R.t0 + (int64_t)(O.duration * 1000);
    R.fds0 = R.fds_peak = proc_fds(R.pid);
    R.rss0 = proc_rss_kb(R.pid);
    R.cpu0 = proc_cpu_ms(R.pid);
    gt_spawn(monitor, NULL);
    gt_spawn(prober, NULL);
    int64_t flood = gt_spawn(peer_flood, NULL);
    for (long i = 0; i < n; i++) ids[i] = gt_spawn(peer_slot, NULL);
    /* After the end, talkers finish their message and everything else is
     * cut at once, so the peers are gone well within this. */
    for (long i = 0; i < n && !R.stuck; i++)
        if (ids[i] > 0 && gt_join(ids[i], G_end + 2 * O.grace_ms + 5000) < 0)
            R.stuck = 1;
    if (!R.stuck && gt_join(flood, G_end + 2 * O.grace_ms + 5000) < 0)
        R.stuck = 1;
    if (R.stuck) {
        soak_fail(-1, "peers still running long after the end:");
        gt_dump(stderr);
    } else {
        R.final_probe = probe("after the load") == 0;
    }
    int64_t t = gt_now(), until = t + O.idle_s * 1000 + O.grace_ms;
    while ((R.fds_end = proc_fds(R.pid)) != R.fds0 && gt_now() < until)
        gt_sleep(gt_now() + 100);
    if (R.fds_end == R.fds0) R.fds_back_ms = gt_now() - t;
    R.rss_end = proc_rss_kb(R.pid);
    rss_numbers();
    gt_stop(); /* a stuck peer must not keep the report waiting */
}

int main(int argc, char **argv)
{
    static char echo[PATH_MAX + 32];
    const char *env = getenv("SOCKETLOOP_POLLER");
    O.poller = env && *env ? env : NULL;
    parse(argc, argv);
    /* The peers share one receive buffer (peers.c), which is only safe on
     * a readiness poller: on io_uring every parked net_recv's buffer is
     * the kernel's until it returns.  The server's poller is -b's. */
    setenv("SOCKETLOOP_POLLER", "epoll", 1);
    raise_fd_limit();
    signal(SIGPIPE, SIG_IGN);
    if (O.pid) {
        R.pid = O.pid;
    } else {
        if (!O.echo) {
            char self[PATH_MAX];
            ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
            self[n < 0 ? 0 : n] = 0;
            snprintf(echo, sizeof echo, "%s/../net/socketloop-echo",
                     dirname(self));
            O.echo = echo;
        }
        R.pid = server_start(O.echo, O.poller, O.idle_s, O.op_ms, &O.port);
        if (R.pid < 0) return 1;
    }
    if (resolve() < 0) {
        if (O.echo) server_stop(R.pid);
        return 1;
    }
    R.cap = (int)O.duration + 10;
    R.s = calloc((size_t)R.cap, sizeof *R.s);
    int64_t *ids = calloc((size_t)O.conns, sizeof *ids);
    int64_t rc = R.s && ids ? gt_spawn(control, ids) : -ENOMEM;
    if (rc >= 0) rc = gt_start(-1);
    if (rc < 0) soak_fail(-1, "the loop: %s", net_strerror((int)rc));
    R.stop_status = O.echo ? server_stop(R.pid) : 0;
    int status = soak_report();
    if (!R.stuck) net_cleanup();
    free(ids);
    free(R.s);
    return status;
}
