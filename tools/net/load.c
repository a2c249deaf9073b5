/* socketloop-load: closed-loop echo load on socketloop, a green thread per
 * connection.  MIT licence, see LICENSE.
 *
 *   socketloop-load [-c CONNS] [-s SIZE] [-d SECONDS] [-w WARMUP_SECONDS]
 *                   [-i] [-t THREADS] [-b POLLER] [-r RAMP] [-T OP_MS]
 *                   [--json] [--cpu-pid PID] host port
 *
 * Each connection sends SIZE bytes of its own pattern, reads them back and
 * checks every byte, again and again.  Connections are opened first, at
 * most RAMP at a time, retrying transient failures; the clock starts only
 * once every connection is up (plus the warm-up), so the ramp is never
 * measured.  A round trip counts when it completes inside the window.
 * Latencies go into a log-linear histogram (32 sub-buckets per power of
 * two, about 3% resolution).
 *
 * -i opens the connections, prints "connected N" and holds them idle for
 * the duration.  --cpu-pid reads that process's CPU clock
 * (clock_getcpuclockid: the scheduler's own count of the time it ran, in
 * ns) at both ends of the window, to report the server's CPU time per
 * round trip.  (utime+stime in /proc/PID/stat are sampled at clock ticks,
 * and on some virtual machines miss most of a network server's time.)
 *
 * Exits 1 if any error happened (or no round trip completed), else 0. */
#define _GNU_SOURCE
#include "socketloop.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define CONNECT_TRIES 12
#define HIST_SUB_BITS 5
#define HIST_SUB ((size_t)1 << HIST_SUB_BITS)
#define HIST_N (HIST_SUB * 2 + (64 - HIST_SUB_BITS - 1) * HIST_SUB)

typedef struct hist {
    uint64_t b[HIST_N];
    uint64_t count, max;
} hist;

/* Options. */
static int o_conns = 100, o_size = 64, o_idle, o_threads = 1, o_ramp = 200;
static int o_json, o_port;
static int o_tls;                    /* --tls */
static int o_reconnect;              /* --reconnect */
static const char *o_tls_ca;         /* --tls-ca FILE */
static struct net_tls_config *g_tls; /* shared by every worker */
static double o_duration = 5, o_warmup;
static int64_t o_op_ms = 10000;
static long o_cpu_pid;
static const char *o_host, *o_poller;

/* Shared between main and the workers. */
static atomic_int g_ready; /* workers whose connections are all settled */
static atomic_int g_go;    /* main set the window: start */
static int64_t g_begin_ns; /* window: round trips completing in it count */
static int64_t g_end_ns;
static int64_t g_end_ms; /* on gt_now()'s clock */

typedef struct worker {
    pthread_t thread;
    int index;
    int first, nconns;   /* connection ids [first, first + nconns) */
    int settled;         /* connected or given up */
    gt_sem *slots;       /* concurrent connects */
    gt_sem *all_settled; /* released by the last connection to settle */
    gt_chan *go;         /* closed when the window is set */
    long connected, connect_errors, errors, verify_errors;
    uint64_t round_trips;
    int first_error;
    hist h;
} worker;

typedef struct conn {
    worker *w;
    int id;
} conn;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void hist_add(hist *h, uint64_t v)
{
    size_t i;
    if (v < 2 * HIST_SUB) {
        i = (size_t)v;
    } else {
        int msb = 63 - __builtin_clzll(v);
        int shift = msb - HIST_SUB_BITS;
        i = 2 * HIST_SUB + (size_t)(msb - HIST_SUB_BITS - 1) * HIST_SUB +
            (size_t)((v >> shift) - HIST_SUB);
    }
    h->b[i]++;
    h->count++;
    if (v > h->max) h->max = v;
}

/* Middle of bucket i. */
static double hist_value(size_t i)
{
    if (i < 2 * HIST_SUB) return (double)i;
    size_t k = i - 2 * HIST_SUB;
    int msb = (int)(k / HIST_SUB) + HIST_SUB_BITS + 1;
    int shift = msb - HIST_SUB_BITS;
    uint64_t lo = (uint64_t)(HIST_SUB + k % HIST_SUB) << shift;
    return (double)lo + (double)((uint64_t)1 << shift) / 2;
}

static double hist_quantile(const hist *h, double q)
{
    if (!h->count) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

static void hist_merge(hist *to, const hist *from)
{
    for (size_t i = 0; i < HIST_N; i++) to->b[i] += from->b[i];
    to->count += from->count;
    if (from->max > to->max) to->max = from->max;
}

static void note_error(worker *w, int rc)
{
    w->errors++;
    if (!w->first_error) w->first_error = rc;
}

/* --tls: the handshake right after the connect, verifying the server
 * (chain and the host's name) only with --tls-ca.  A failed handshake
 * closes the socket. */
static int start_tls(net_sock *s)
{
#if SOCKETLOOP_HAS_TLS
    if (!g_tls) return 0;
    int rc = net_tls_start(s, g_tls, o_host, gt_now() + 10000);
    if (rc < 0) net_close(s);
    return rc;
#else
    (void)s;
    return 0;
#endif
}

/* Connects, retrying with a growing pause: a full accept queue, a reset
 * or a refused connection under load are usually transient. */
static int connect_retry(net_sock **s)
{
    int64_t pause = 10;
    int rc = 0;
    for (int attempt = 0; attempt < CONNECT_TRIES; attempt++) {
        rc = net_connect(s, o_host, o_port, NULL, 0, gt_now() + 10000);
        if (rc == 0) return start_tls(*s);
        if (rc == NET_ENOTFOUND || rc == -EINVAL || rc == -ECANCELED) return rc;
        if (gt_sleep(gt_now() + pause) < 0) return rc;
        pause = pause * 2 > 1000 ? 1000 : pause * 2;
    }
    return rc;
}

static void fill(unsigned char *b, int n, int id, uint32_t round)
{
    uint32_t x = (uint32_t)id * 2654435761u + round * 40503u;
    for (int i = 0; i < n; i++) b[i] = (unsigned char)(x + (uint32_t)i * 7u);
}

static void settle(worker *w)
{
    if (++w->settled == w->nconns) gt_sem_release(w->all_settled);
}

/* Sends the pattern and reads it back; 0, or an error. */
static int round_trip(net_sock *s, unsigned char *out, unsigned char *in,
                      int64_t deadline)
{
    ssize_t r = net_send(s, out, (size_t)o_size, NULL, deadline);
    if (r < 0) return (int)r;
    for (int got = 0; got < o_size;) {
        r = net_recv(s, in + got, (size_t)(o_size - got), deadline);
        if (r <= 0) return r ? (int)r : NET_EEOF;
        got += (int)r;
    }
    return 0;
}

static void conn_main(void *p)
{
    conn *c = p;
    worker *w = c->w;
    net_sock *s = NULL;
    unsigned char *out = NULL, *in = NULL;
    int rc;

    gt_sem_acquire(w->slots, -1);
    rc = connect_retry(&s);
    gt_sem_release(w->slots);
    if (rc < 0) {
        w->connect_errors++;
        note_error(w, rc);
        settle(w);
        free(c);
        return;
    }
    net_setopt(s, NET_NODELAY, 1);
    w->connected++;
    settle(w);
    char dummy;
    gt_chan_recv(w->go, &dummy, -1); /* -EPIPE once the window is set */

    if (o_idle) {
        /* Hold the connection; the server must neither send nor close. */
        ssize_t r = net_recv(s, &dummy, 1, g_end_ms);
        if (r != -ETIMEDOUT) note_error(w, r ? (int)r : NET_EEOF);
        goto done;
    }
    out = malloc((size_t)o_size);
    in = malloc((size_t)o_size);
    if (!out || !in) {
        note_error(w, -ENOMEM);
        goto done;
    }
    for (uint32_t round = 0;; round++) {
        fill(out, o_size, c->id, round);
        int64_t t0 = now_ns();
        /* --reconnect: each round trip on a new connection (with --tls, a
         * full handshake), closed after its one echo. */
        if (o_reconnect && round) {
            net_close(s);
            s = NULL;
            if ((rc = connect_retry(&s)) < 0) {
                w->connect_errors++;
                note_error(w, rc);
                break;
            }
            net_setopt(s, NET_NODELAY, 1);
        }
        rc = round_trip(s, out, in, gt_now() + o_op_ms);
        int64_t t1 = now_ns();
        if (rc < 0) {
            note_error(w, rc);
            break;
        }
        if (memcmp(out, in, (size_t)o_size) != 0) {
            w->verify_errors++;
            note_error(w, -EBADMSG);
            break;
        }
        if (t1 >= g_begin_ns && t1 <= g_end_ns) {
            w->round_trips++;
            hist_add(&w->h, (uint64_t)(t1 - t0));
        }
        if (t1 >= g_end_ns) break;
    }
done:
    free(out);
    free(in);
    if (s) net_close(s);
    free(c);
}

/* Waits for every connection to settle, tells main, then waits for the
 * window and lets the connections go. */
static void controller(void *p)
{
    worker *w = p;
    gt_sem_acquire(w->all_settled, -1);
    atomic_fetch_add_explicit(&g_ready, 1, memory_order_release);
    while (!atomic_load_explicit(&g_go, memory_order_acquire))
        gt_sleep(gt_now() + 1);
    gt_chan_close(w->go);
}

static void *worker_main(void *p)
{
    worker *w = p;
    int rc;
    if ((rc = gt_sem_make(&w->slots, (unsigned)o_ramp)) < 0 ||
        (rc = gt_sem_make(&w->all_settled, 0)) < 0 ||
        (rc = gt_chan_make(&w->go, 1, 0)) < 0) {
        fprintf(stderr, "worker %d: %s\n", w->index, gt_strerror(rc));
        exit(1);
    }
    static const gt_attr conn_attr = {0, "conn", 0};
    for (int i = 0; i < w->nconns; i++) {
        conn *c = malloc(sizeof *c);
        int64_t id = -ENOMEM;
        if (c) {
            c->w = w;
            c->id = w->first + i;
            id = gt_spawn_attr(conn_main, c, &conn_attr);
        }
        if (id < 0) {
            free(c);
            w->connect_errors++;
            note_error(w, (int)id);
            settle(w);
        }
    }
    if (w->nconns == 0) gt_sem_release(w->all_settled);
    gt_spawn(controller, w);
    rc = gt_run();
    if (rc < 0) fprintf(stderr, "worker %d: %s\n", w->index, gt_strerror(rc));
    gt_chan_free(w->go);
    gt_sem_free(w->slots);
    gt_sem_free(w->all_settled);
    net_cleanup();
    return NULL;
}

/* The CPU time a process has used so far, in ns, or -1. */
static long long proc_cpu_ns(long pid)
{
    clockid_t clk;
    struct timespec ts;
    if (clock_getcpuclockid((pid_t)pid, &clk) != 0 ||
        clock_gettime(clk, &ts) != 0)
        return -1;
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_until_ns(int64_t t)
{
    struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR) {
    }
}

static void usage(FILE *f, int status)
{
    fputs(
        "usage: socketloop-load [-c CONNS] [-s SIZE] [-d SECONDS] "
        "[-w WARMUP] [-i]\n"
        "                       [-t THREADS] [-b POLLER] [-r RAMP] [-T OP_MS]\n"
        "                       [--json] [--cpu-pid PID] [--tls] [--tls-ca "
        "FILE]\n"
        "                       [--reconnect] host port\n"
        "  -c N      connections (default 100)\n"
        "  -s BYTES  message size (default 64)\n"
        "  -d SEC    measured duration (default 5)\n"
        "  -w SEC    warm-up after all connections are up (default 0)\n"
        "  -i        idle: connect, print \"connected N\", hold, close\n"
        "  -t N      OS threads, connections split among them (default 1)\n"
        "  -b NAME   poller: select, poll or epoll\n"
        "  -r N      connects in flight at once per thread (default 200)\n"
        "  -T MS     deadline of one round trip (default 10000)\n"
        "  --json    one JSON line instead of text\n"
        "  --cpu-pid PID  report PID's CPU time per round trip\n"
        "  --tls     speak TLS (a handshake after each connect; TLS 1.3 "
        "offers\n"
        "            TLS_AES_128_GCM_SHA256 only; builds with TLS)\n"
        "  --tls-ca FILE  verify the server against these CAs (implies "
        "--tls)\n"
        "  --reconnect    a new connection per round trip, closed after it\n"
        "                 (with --tls: full handshakes per second)\n",
        f);
    exit(status);
}

static double parse_num(const char *what, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) {
        fprintf(stderr, "bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

/* The client configuration for --tls; 0 or -1 (with a message). */
static int make_tls(void)
{
#if SOCKETLOOP_HAS_TLS
    int rc = net_tls_config_new(&g_tls, NET_TLS_CLIENT);
    if (rc == 0)
        rc = o_tls_ca ? net_tls_config_ca(g_tls, o_tls_ca, NULL)
                      : net_tls_config_verify(g_tls, NET_TLS_VERIFY_NONE);
    /* The benchmark's suite, whatever the server prefers. */
    if (rc == 0)
        rc = net_tls_config_ciphers(g_tls, NULL, "TLS_AES_128_GCM_SHA256");
    if (rc < 0) fprintf(stderr, "TLS: %s\n", net_strerror(rc));
    return rc < 0 ? -1 : 0;
#else
    fputs("built without TLS: --tls is not available\n", stderr);
    return -1;
#endif
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'J'},
        {"cpu-pid", required_argument, NULL, 'P'},
        {"tls", no_argument, NULL, 'S'},
        {"reconnect", no_argument, NULL, 'N'},
        {"tls-ca", required_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static worker workers[MAX_THREADS];
    int c;
    while ((c = getopt_long(argc, argv, "c:s:d:w:it:b:r:T:h", longopts,
                            NULL)) != -1) {
        switch (c) {
        case 'c': o_conns = (int)parse_num("conns", optarg, 1, 1000000); break;
        case 's': o_size = (int)parse_num("size", optarg, 1, 1 << 24); break;
        case 'd': o_duration = parse_num("duration", optarg, 0.001, 1e6); break;
        case 'w': o_warmup = parse_num("warm-up", optarg, 0, 1e6); break;
        case 'i': o_idle = 1; break;
        case 't':
            o_threads = (int)parse_num("threads", optarg, 1, MAX_THREADS);
            break;
        case 'b': o_poller = optarg; break;
        case 'r': o_ramp = (int)parse_num("ramp", optarg, 1, 1000000); break;
        case 'T':
            o_op_ms = (int64_t)parse_num("op deadline", optarg, 1, 1e9);
            break;
        case 'J': o_json = 1; break;
        case 'P': o_cpu_pid = (long)parse_num("pid", optarg, 1, 1e9); break;
        case 'S': o_tls = 1; break;
        case 'N': o_reconnect = 1; break;
        case 'A': o_tls = 1, o_tls_ca = optarg; break;
        case 'h': usage(stdout, 0); break;
        default: usage(stderr, 2);
        }
    }
    if (argc - optind != 2) usage(stderr, 2);
    o_host = argv[optind];
    o_port = (int)parse_num("port", argv[optind + 1], 1, 65535);
    if (o_threads > o_conns) o_threads = o_conns;
    if (o_poller && setenv("SOCKETLOOP_POLLER", o_poller, 1) < 0) {
        perror("setenv");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (o_tls && make_tls() < 0) return 2;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    int64_t t_start = now_ns();
    for (int i = 0, first = 0; i < o_threads; i++) {
        worker *w = &workers[i];
        w->index = i;
        w->first = first;
        w->nconns = o_conns / o_threads + (i < o_conns % o_threads);
        first += w->nconns;
        int err = pthread_create(&w->thread, NULL, worker_main, w);
        if (err) {
            fprintf(stderr, "pthread_create: %s\n", strerror(err));
            return 1;
        }
    }
    while (atomic_load_explicit(&g_ready, memory_order_acquire) < o_threads)
        sleep_until_ns(now_ns() + 1000000);
    int64_t ramp_ns = now_ns() - t_start;
    long connected = 0;
    for (int i = 0; i < o_threads; i++) connected += workers[i].connected;
    if (o_idle && !o_json) {
        printf("connected %ld\n", connected);
        fflush(stdout);
    } else if (o_idle) {
        /* The one line the matrix waits for, before the JSON at the end. */
        fprintf(stderr, "connected %ld\n", connected);
    }

    /* The window, on both clocks. */
    int64_t warm_ns = (int64_t)(o_warmup * 1e9);
    int64_t dur_ns = (int64_t)(o_duration * 1e9);
    int64_t now = now_ns(), now_ms = gt_now();
    g_begin_ns = now + warm_ns;
    g_end_ns = g_begin_ns + dur_ns;
    g_end_ms = now_ms + (warm_ns + dur_ns + 999999) / 1000000;
    atomic_store_explicit(&g_go, 1, memory_order_release);

    long long cpu0 = -1, cpu1 = -1;
    if (o_cpu_pid) {
        sleep_until_ns(g_begin_ns);
        cpu0 = proc_cpu_ns(o_cpu_pid);
        sleep_until_ns(g_end_ns);
        cpu1 = proc_cpu_ns(o_cpu_pid);
    }
    for (int i = 0; i < o_threads; i++) pthread_join(workers[i].thread, NULL);

    static hist h;
    uint64_t rts = 0;
    long errors = 0, connect_errors = 0, verify_errors = 0;
    int first_error = 0;
    for (int i = 0; i < o_threads; i++) {
        worker *w = &workers[i];
        hist_merge(&h, &w->h);
        rts += w->round_trips;
        errors += w->errors;
        connect_errors += w->connect_errors;
        verify_errors += w->verify_errors;
        if (!first_error) first_error = w->first_error;
    }
    double secs = (double)dur_ns / 1e9;
    double rate = (double)rts / secs;
    double p50 = hist_quantile(&h, 0.50) / 1000;
    double p99 = hist_quantile(&h, 0.99) / 1000;
    double p999 = hist_quantile(&h, 0.999) / 1000;
    double pmax = (double)h.max / 1000;
    double cpu_us = -1;
    if (cpu0 >= 0 && cpu1 >= 0) cpu_us = (double)(cpu1 - cpu0) / 1e3;

    if (o_json) {
        printf("{\"conns\":%d,\"connected\":%ld,\"size\":%d,\"idle\":%s,"
               "\"threads\":%d,\"ramp_s\":%.3f,\"duration_s\":%.3f,"
               "\"round_trips\":%llu,\"rate\":%.1f,\"p50_us\":%.1f,"
               "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,"
               "\"errors\":%ld,\"connect_errors\":%ld,\"verify_errors\":%ld",
               o_conns, connected, o_size, o_idle ? "true" : "false", o_threads,
               (double)ramp_ns / 1e9, secs, (unsigned long long)rts, rate, p50,
               p99, p999, pmax, errors, connect_errors, verify_errors);
        if (first_error)
            printf(",\"first_error\":\"%s\"", net_strerror(first_error));
        if (cpu_us >= 0)
            printf(",\"server_cpu_us\":%.0f,\"server_cpu_us_per_rt\":%.3f",
                   cpu_us, rts ? cpu_us / (double)rts : 0.0);
        printf("}\n");
    } else {
        printf("conns %d (connected %ld in %.2f s), size %d, %s %.2f s\n",
               o_conns, connected, (double)ramp_ns / 1e9, o_size,
               o_idle ? "held idle" : "measured", secs);
        if (!o_idle) {
            printf("round trips/s %.1f (%llu)\n", rate,
                   (unsigned long long)rts);
            printf("latency us p50 %.1f p99 %.1f p99.9 %.1f max %.1f\n", p50,
                   p99, p999, pmax);
        }
        if (cpu_us >= 0 && rts)
            printf("server cpu us/round trip %.3f\n", cpu_us / (double)rts);
        printf("errors %ld (connect %ld, verify %ld)%s%s\n", errors,
               connect_errors, verify_errors, first_error ? ", first: " : "",
               first_error ? net_strerror(first_error) : "");
    }
    fflush(stdout);
    return errors || (!o_idle && !rts) ? 1 : 0;
}
