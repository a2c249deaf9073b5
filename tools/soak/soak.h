/* Shared by the files of socketloop-soak: options, counters, the seeded
 * generators, and what each file offers the others.  MIT licence, see
 * LICENSE.
 *
 * The soak's clients run on socketloop itself, a green thread per peer
 * on one OS thread: each kind of hostile peer is then a few lines of
 * sequential code, and the client side exercises the library too. */
#ifndef SOAK_H
#define SOAK_H

#include "socketloop/net.h"

#include <stdint.h>
#include <sys/types.h>

/* The kinds of peer, in the order of the summary table. */
enum {
    K_TALK,   /* well-behaved: random messages, every echoed byte checked */
    K_HALF,   /* half-closer: shutdown(SHUT_WR), then the rest until EOF */
    K_RESET,  /* resets at a random moment (SO_LINGER 0, then close) */
    K_DEAF,   /* never reads: the server's sends fill, it must drop us */
    K_SLOW,   /* slowloris: one byte at a time, then silence */
    K_SILENT, /* connects and says nothing: the idle timeout must drop it */
    K_KINDS
};

typedef struct soak_opts {
    int conns;          /* -c: connections held at once */
    double duration;    /* -d: seconds of load */
    double warmup;      /* -w: seconds before the RSS reference sample */
    int64_t idle_s;     /* -i: the server's idle timeout */
    int64_t op_ms;      /* -o: the server's per-operation deadline */
    int64_t grace_ms;   /* -g: slack of every timing check */
    double rss_pct;     /* -r: RSS growth allowed after warm-up */
    uint64_t seed;      /* -s */
    const char *echo;   /* -e: the server to start */
    const char *poller; /* -b: its poller, or NULL for its default */
    const char *host;   /* -a */
    int port;           /* -p: a running server ... */
    struct sockaddr_storage addr; /* host and port, resolved once */
    socklen_t addr_len;
    pid_t pid;         /* -P: ... and its process */
    int json, verbose; /* --json, -v */
} soak_opts;

typedef struct soak_stats {
    long started[K_KINDS]; /* connections made */
    long ok[K_KINDS];      /* ended as they must: talked, reset, dropped */
    long cut[K_KINDS];     /* still running at the end: closed by us */
    long failed[K_KINDS];
    long connect_errors, failures, live, live_max;
    uint64_t verified, mismatches; /* echoed bytes checked, and wrong */
    uint64_t flood_bytes;  /* verified by the peer streaming in bursts */
    uint64_t deaf_bytes;   /* sent by never-readers before their drop */
    int64_t max_echo_wait; /* longest wait of a talker for its echo, ms */
    int64_t max_deaf_drop; /* longest blocked send before a drop, ms */
    int64_t idle_drop_min, idle_drop_max; /* silence until dropped, ms */
    int64_t max_lag; /* longest the client's own loop was late, ms */
    long probes, probe_failures;
    int64_t max_probe_ms;
} soak_stats;

/* What the control thread measured of the server. */
typedef struct sample {
    int64_t t;
    long rss_kb, fds;
} sample;

typedef struct soak_result {
    pid_t pid;
    int64_t t0, warm_at;
    long fds0, fds_peak, fds_end;           /* before, during, after the load */
    long rss0, rss_warm, rss_late, rss_end; /* KiB; see the RSS check */
    int64_t fds_back_ms; /* after the last peer's end; -1: never */
    long cpu0, cpu1;     /* the server's CPU time at both ends, ms */
    int final_probe;     /* the fresh connection after the load echoed */
    int stuck;           /* peers outlived the end by far */
    int stop_status;     /* exit status of the server we started */
    sample *s;           /* one a second */
    int ns, cap;
} soak_result;

extern soak_opts O;
extern soak_stats ST;
extern soak_result R;
extern int64_t G_end; /* gt_now() at which the load stops */

static inline int64_t soak_min(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* splitmix64: tiny, fast, and good enough to make sizes, timings and
 * content that no simple server bug could echo back by accident. */
typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rng_next(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* A uniform value in [lo, hi]. */
static inline int64_t rng_range(rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static inline rng rng_make(uint64_t seed, uint64_t stream)
{
    rng r = {seed ^ (stream * 0xd1b54a32d192ed03u)};
    rng_next(&r);
    return r;
}

/* A byte stream from a seed: the sender fills from one copy, the checker
 * compares against another made from the same seed. */
typedef struct stream {
    rng r;
    uint64_t word;
    int left; /* bytes of word not yet used */
} stream;

void stream_fill(stream *st, unsigned char *buf, size_t n);
/* Compares buf with the stream's next n bytes: the index of the first
 * that differs, or n when all match. */
size_t stream_check(stream *st, const unsigned char *buf, size_t n);

/* peers.c */
void peer_slot(void *arg);   /* arg unused */
void peer_flood(void *arg);  /* arg unused */
int soak_probe(int64_t *ms); /* a fresh connection echoes 1 KiB */
void soak_fail(int kind, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
extern const char *const kind_names[K_KINDS];

/* report.c: prints the summary; returns the exit status. */
int soak_report(void);

/* proc.c: the server process */
pid_t server_start(const char *path, const char *poller, int64_t idle_s,
                   int64_t op_ms, int *port);
long proc_fds(pid_t pid);    /* open descriptors, or -errno */
long proc_rss_kb(pid_t pid); /* VmRSS in KiB, or -errno */
long proc_cpu_ms(pid_t pid); /* user + system time, or -errno */
int server_alive(pid_t pid); /* 0 once our child has exited */
/* SIGTERM, then waits up to 5 s: the exit status, or -1 (killed). */
int server_stop(pid_t pid);

#endif
