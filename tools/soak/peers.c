/* socketloop-soak's peers: each slot keeps one connection open at a time,
 * of a kind drawn at random, and opens the next as soon as one ends, so
 * the count stays near -c until the end.  MIT licence, see LICENSE.
 *
 * Every wait has a deadline, capped at the end of the load where a peer
 * would otherwise outlive it; a peer still running then is closed and
 * counted as cut, not failed.  Talkers (well-behaved, half-closers,
 * resetters) have a writer and a reader green thread, because a message
 * larger than the socket buffers can only be echoed while it is read. */
#define _GNU_SOURCE
#include "soak.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WBUF ((size_t)16 * 1024) /* a writer's chunk, on its stack */
#define MAX_FAILS 10             /* failures printed without -v */
#define EARLY_MS 100   /* how much earlier than the timeout a drop may be */
#define RAMP_RATE 1000 /* slots started per second */

const char *const kind_names[K_KINDS] = {
    "well-behaved", "half-closer", "resetter",
    "never-reader", "slowloris",   "silent",
};

/* Percent of each kind, in enum order. */
static const int mix[K_KINDS] = {30, 10, 15, 5, 20, 20};

/* Every reader receives into this one buffer and checks the bytes before
 * it parks again; green threads of one OS thread never run at once, so
 * no other reader can overwrite them meanwhile.  One buffer instead of
 * one per reader keeps ten thousand peers cheap.  Only on a readiness
 * poller, which is why the soak runs on epoll (soak.c): on io_uring the
 * kernel writes into the buffer of every parked net_recv. */
static unsigned char rbuf[64 * 1024];

typedef struct peer {
    net_sock *s;
    int kind, ending, failed;
    long n; /* connection number, for messages */
    uint64_t seed;
    int messages;      /* talkers: how many the writer sends */
    uint64_t window;   /* bytes the writer may send ahead of the echo */
    uint64_t queued;   /* bytes handed to net_send */
    uint64_t verified; /* echoed bytes checked */
    int64_t send_at;   /* when the writer last began a send, or ended */
    int writer_done, writer_waits;
    int flood;              /* the one peer that streams in bursts */
    int64_t writer, reader; /* green thread ids */
    gt_sem *progress; /* the reader wakes a writer waiting on the window */
} peer;

void soak_fail(int kind, const char *fmt, ...)
{
    va_list ap;
    if (kind >= 0) ST.failed[kind]++;
    if (ST.failures++ >= MAX_FAILS && !O.verbose) return;
    fprintf(stderr, "FAIL %s: ", kind >= 0 ? kind_names[kind] : "soak");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void peer_fail(peer *p, const char *what, int rc)
{
    if (p->failed) return;
    p->failed = 1;
    soak_fail(p->kind, "connection %ld: %s%s%s", p->n, what, rc ? ": " : "",
              rc ? net_strerror(rc) : "");
}

void stream_fill(stream *st, unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!st->left) st->word = rng_next(&st->r), st->left = 8;
        buf[i] = (unsigned char)st->word;
        st->word >>= 8;
        st->left--;
    }
}

size_t stream_check(stream *st, const unsigned char *buf, size_t n)
{
    unsigned char want[4096];
    for (size_t done = 0; done < n; done += sizeof want) {
        size_t k = n - done;
        if (k > sizeof want) k = sizeof want;
        stream_fill(st, want, k);
        if (memcmp(want, buf + done, k) == 0) continue;
        for (size_t i = 0; i < k; i++)
            if (want[i] != buf[done + i]) return done + i;
    }
    return n;
}

static stream stream_make(uint64_t seed)
{
    stream st = {rng_make(seed, 2), 0, 0};
    return st;
}

/* Checks n received bytes against the stream; counts them. */
static int verify(peer *p, stream *st, const unsigned char *buf, size_t n)
{
    size_t at = stream_check(st, buf, n);
    if (at < n) {
        ST.mismatches++;
        char what[96];
        snprintf(what, sizeof what, "echoed byte %llu differs",
                 (unsigned long long)p->verified + at);
        peer_fail(p, what, 0);
        return -1;
    }
    p->verified += n;
    ST.verified += n;
    return 0;
}

/* 1 byte to 128 KiB, log-uniform, so that every size class is common. */
static size_t msg_size(rng *r)
{
    int e = (int)rng_range(r, 0, 16);
    return ((size_t)1 << e) + (size_t)rng_range(r, 0, ((int64_t)1 << e) - 1);
}

static void write_messages(peer *p)
{
    unsigned char buf[WBUF];
    stream st = stream_make(p->seed);
    rng sizes = rng_make(p->seed, 3), pauses = rng_make(p->seed, 4);
    /* Pauses of up to half the idle timeout stay well inside it, and
     * keep what thousands of talkers offer within what one server thread
     * on a small machine can echo: the soak is about hostility and
     * correctness, not bandwidth. */
    int64_t think_max = O.idle_s * 1000 / 2;
    /* The stream peer goes flat out for a burst longer than the grace, a
     * quarter of the time: long enough for a server that lets one peer
     * starve the others to fail their checks, short enough not to hold
     * the machine's every core for the whole run. */
    int64_t burst = O.grace_ms + 2000;
    for (int m = 0; m < p->messages && gt_now() < G_end; m++) {
        size_t size = msg_size(&sizes);
        if (p->kind == K_HALF && m == p->messages - 1)
            size = (size_t)rng_range(&sizes, 1, (int64_t)size);
        while (p->queued - p->verified > p->window) {
            p->writer_waits = 1;
            int rc = gt_sem_acquire(p->progress, gt_now() + O.grace_ms);
            p->writer_waits = 0;
            if (rc == -ETIMEDOUT) peer_fail(p, "no echo for the window", rc);
            if (rc < 0) return;
        }
        p->send_at = gt_now();
        for (size_t off = 0; off < size; off += WBUF) {
            size_t k = size - off < WBUF ? size - off : WBUF;
            stream_fill(&st, buf, k);
            p->queued += k; /* before the send: the echo may come first */
            ssize_t r = net_send(p->s, buf, k, NULL, gt_now() + O.grace_ms);
            if (r < 0 && !p->ending) peer_fail(p, "send", (int)r);
            /* A send that never parks would keep the OS thread. */
            if (r < 0 || gt_yield() < 0) return;
        }
        int64_t pause = rng_range(&pauses, 0, think_max);
        if (p->flood && (gt_now() - R.t0) % (4 * burst) < burst) pause = 0;
        if (pause && gt_sleep(soak_min(gt_now() + pause, G_end)) < 0) return;
    }
    /* From here the reader waits for the rest, or for the server's EOF,
     * with the grace counted from now. */
    p->send_at = gt_now();
    p->writer_done = 1;
    int rc = p->kind == K_HALF ? net_shutdown(p->s, SHUT_WR) : 0;
    if (rc < 0) peer_fail(p, "shutdown", rc);
}

/* Reads and checks the echo until the writer is done and all came back
 * (well-behaved), the server's EOF (half-closer), or a cancel. */
static void read_echo(peer *p)
{
    stream st = stream_make(p->seed);
    while (!p->failed) {
        if (p->kind == K_TALK && p->writer_done && p->verified == p->queued)
            return;
        int64_t t = gt_now();
        ssize_t n = net_recv(p->s, rbuf, sizeof rbuf, t + O.grace_ms);
        if (n > 0) {
            int64_t from = p->send_at > t ? p->send_at : t;
            if (gt_now() - from > ST.max_echo_wait)
                ST.max_echo_wait = gt_now() - from;
            if (p->verified + (uint64_t)n > p->queued)
                return peer_fail(p, "more bytes echoed than sent", 0);
            if (verify(p, &st, rbuf, (size_t)n) < 0) return;
            if (p->writer_waits && p->queued - p->verified <= p->window) {
                p->writer_waits = 0;
                gt_sem_release(p->progress);
            }
            if (n == (ssize_t)sizeof rbuf && gt_yield() < 0) return;
        } else if (n == 0) {
            if (p->kind != K_HALF || !p->writer_done ||
                p->verified != p->queued)
                peer_fail(p, "the server closed a connection early", 0);
            return;
        } else if (n == -ETIMEDOUT &&
                   ((p->verified == p->queued && !p->writer_done) ||
                    gt_now() - p->send_at < O.grace_ms)) {
            continue; /* the writer is thinking, or has just sent */
        } else {
            if (!p->ending) peer_fail(p, "recv", (int)n);
            return;
        }
    }
}

/* Whichever of the two fails wakes the other, which then leaves quietly. */
static void talk_writer(void *arg)
{
    peer *p = arg;
    write_messages(p);
    if (p->failed) p->ending = 1, gt_cancel(p->reader);
}

static void talk_reader(void *arg)
{
    peer *p = arg;
    read_echo(p);
    if (p->failed) p->ending = 1, gt_cancel(p->writer);
}

/* Well-behaved peers, half-closers and resetters. */
static void talk(peer *p, rng *r)
{
    static const gt_attr wattr = {0, "writer", 0};
    static const gt_attr rattr = {0, "reader", 0};
    int rc = gt_sem_make(&p->progress, 0);
    if (rc < 0) return peer_fail(p, "semaphore", rc);
    /* A quarter stream up to 1 MiB ahead; the others wait for each echo. */
    if (!p->flood) {
        p->messages = p->kind == K_RESET ? 1 << 30 : (int)rng_range(r, 1, 30);
        p->window = rng_range(r, 0, 3) ? 0 : (uint64_t)rng_range(r, 1, 1 << 20);
    }
    int64_t reset_at = soak_min(gt_now() + rng_range(r, 0, 5000), G_end);
    p->writer = gt_spawn_attr(talk_writer, p, &wattr);
    p->reader = p->writer < 0 ? -1 : gt_spawn_attr(talk_reader, p, &rattr);
    if (p->reader < 0) {
        peer_fail(p, "spawn", (int)(p->writer < 0 ? p->writer : p->reader));
        if (p->writer > 0) gt_cancel(p->writer), gt_join(p->writer, -1);
        gt_sem_free(p->progress);
        return;
    }
    gt_join(p->writer, p->kind == K_RESET ? reset_at : -1);
    /* Done (or failed, or time to reset): a reader with nothing more to
     * come, or on the way out, is woken by a cancel. */
    if (p->kind == K_RESET || p->failed ||
        (p->kind == K_TALK && p->verified == p->queued)) {
        p->ending = 1;
        gt_cancel(p->writer);
        gt_cancel(p->reader);
    }
    gt_join(p->writer, -1);
    gt_join(p->reader, -1);
    gt_sem_free(p->progress);
    if (p->failed) return;
    if (p->kind == K_RESET) {
        struct linger l = {1, 0};
        if (setsockopt(net_fd(p->s), SOL_SOCKET, SO_LINGER, &l, sizeof l) < 0)
            return peer_fail(p, "SO_LINGER", -errno);
    }
    ST.ok[p->kind]++;
}

/* Never reads: sends until the server, its sends blocked, drops us. */
static void deaf(peer *p)
{
    unsigned char buf[WBUF];
    stream st = stream_make(p->seed);
    stream_fill(&st, buf, sizeof buf);
    for (;;) {
        int64_t t = gt_now();
        size_t sent;
        ssize_t r = net_send(p->s, buf, sizeof buf, &sent,
                             soak_min(t + O.op_ms + O.grace_ms, G_end));
        ST.deaf_bytes += sent;
        if (r == -ECONNRESET || r == -EPIPE) {
            if (gt_now() - t > ST.max_deaf_drop)
                ST.max_deaf_drop = gt_now() - t;
            ST.ok[K_DEAF]++;
            return;
        }
        if (r == -ETIMEDOUT && gt_now() >= G_end) {
            ST.cut[K_DEAF]++;
            return;
        }
        if (r < 0) return peer_fail(p, "not dropped as a never-reader", (int)r);
        if (gt_yield() < 0) return;
    }
}

/* Waits for the server to drop a connection that has gone quiet.  Its
 * idle timer started after `from` (the client's last send, or the start
 * of the connect) and before `to` (when the client saw the echo, or the
 * connection): a drop sooner than the timeout after `from`, or later than
 * the grace after `to`, fails.  A busy client sees both late, never
 * early, so neither check can fail because the client was slow. */
static void expect_drop(peer *p, int64_t from, int64_t to)
{
    int64_t idle = O.idle_s * 1000;
    ssize_t n = net_recv(p->s, rbuf, sizeof rbuf,
                         soak_min(to + idle + O.grace_ms, G_end));
    int64_t quiet = gt_now() - from;
    if (n == -ETIMEDOUT && gt_now() >= G_end) {
        ST.cut[p->kind]++;
    } else if (n != 0) {
        peer_fail(p, n > 0 ? "bytes from nowhere" : "not dropped when idle",
                  n > 0 ? 0 : (int)n);
    } else if (quiet < idle - EARLY_MS) {
        peer_fail(p, "dropped before the idle timeout", 0);
    } else {
        if (!ST.idle_drop_min || quiet < ST.idle_drop_min)
            ST.idle_drop_min = quiet;
        if (quiet > ST.idle_drop_max) ST.idle_drop_max = quiet;
        ST.ok[p->kind]++;
    }
}

/* One byte at a time, each echoed, with pauses of a quarter to a half of
 * the idle timeout (which must not drop it), then silence (which must). */
static void slow(peer *p, rng *r)
{
    stream out = stream_make(p->seed), in = out;
    int bytes = (int)rng_range(r, 3, 10);
    int64_t from = 0;
    for (int i = 0; i < bytes; i++) {
        int64_t pause = rng_range(r, O.idle_s * 250, O.idle_s * 500);
        if (gt_now() + pause >= G_end) {
            ST.cut[K_SLOW]++;
            return;
        }
        gt_sleep(gt_now() + pause);
        unsigned char b;
        stream_fill(&out, &b, 1);
        from = gt_now();
        ssize_t n = net_send(p->s, &b, 1, NULL, from + O.grace_ms);
        if (n == 1) n = net_recv(p->s, rbuf, 1, gt_now() + O.grace_ms);
        if (n != 1) return peer_fail(p, "slow byte not echoed", (int)n);
        if (verify(p, &in, rbuf, 1) < 0) return;
    }
    expect_drop(p, from, gt_now());
}

/* Never-readers connect with small buffers, set before the handshake so
 * that the window never outgrows them: the server's sends then fill after
 * half the bytes, which halves what each never-reader costs it. */
static int connect_small(net_sock **out, int64_t deadline)
{
    int small = 4096, err = 0, rc = 0;
    socklen_t len = sizeof err;
    int fd =
        socket(O.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    if (connect(fd, (struct sockaddr *)&O.addr, O.addr_len) < 0 &&
        errno != EINPROGRESS)
        rc = -errno;
    if (rc == 0 && (rc = net_wait(fd, NET_OUT, deadline)) >= 0)
        rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ? -errno
                                                                  : -err;
    if (rc == 0) rc = net_wrap(out, fd);
    if (rc < 0) close(fd);
    return rc;
}

static void run_peer(peer *p, rng *r)
{
    int64_t t = gt_now(), deadline = t + 10000 + O.grace_ms;
    int rc = p->kind == K_DEAF
                 ? connect_small(&p->s, deadline)
                 : net_connect(&p->s, O.host, O.port, NULL, 0, deadline);
    if (rc < 0) {
        ST.connect_errors++;
        soak_fail(-1, "connect: %s", net_strerror(rc));
        gt_sleep(gt_now() + 100); /* a dead server must not make us spin */
        return;
    }
    ST.started[p->kind]++;
    if (++ST.live > ST.live_max) ST.live_max = ST.live;
    switch (p->kind) {
    case K_DEAF: deaf(p); break;
    case K_SLOW: slow(p, r); break;
    case K_SILENT: expect_drop(p, t, gt_now()); break;
    default: talk(p, r); break;
    }
    net_close(p->s);
    ST.live--;
}

/* Slots number themselves in the order they start, which is the order
 * they were spawned in. */
void peer_slot(void *arg)
{
    static long started;
    long slot = started++, k = 0;
    (void)arg;
    rng r = rng_make(O.seed, 1000 + (uint64_t)slot);
    /* Ten thousand connects at once would overflow the server's accept
     * queue, and the kernel would drop handshakes for a second or more:
     * the slots start RAMP_RATE a second. */
    gt_sleep(soak_min(gt_now() + slot * 1000 / RAMP_RATE, G_end));
    while (gt_now() < G_end) {
        peer p;
        memset(&p, 0, sizeof p);
        p.n = slot + O.conns * k++;
        p.seed = rng_next(&r);
        int pick = (int)rng_range(&r, 0, 99);
        while (pick >= mix[p.kind]) pick -= mix[p.kind++];
        run_peer(&p, &r);
    }
}

/* One well-behaved peer stays for the whole run, 1 MiB ahead of its echo,
 * and streams in bursts without pause: a server whose connection loop
 * never yields while a peer keeps its buffer full would serve it alone,
 * and the other peers would time out. */
void peer_flood(void *arg)
{
    rng r = rng_make(O.seed, 999);
    peer p = {.kind = K_TALK, .n = -1, .flood = 1, .messages = 1 << 30};
    (void)arg;
    p.seed = rng_next(&r);
    p.window = 1 << 20;
    run_peer(&p, &r);
    ST.flood_bytes = p.verified;
}

/* The server still answers: a fresh connection echoes 1 KiB. */
int soak_probe(int64_t *ms)
{
    static uint64_t count;
    unsigned char buf[1024];
    net_sock *s;
    stream out = stream_make(O.seed ^ ++count), in = out;
    int64_t t = gt_now(), deadline = t + 10000 + O.grace_ms;
    int rc = net_connect(&s, O.host, O.port, NULL, 0, deadline);
    if (rc < 0) return rc;
    stream_fill(&out, buf, sizeof buf);
    ssize_t n = net_send(s, buf, sizeof buf, NULL, deadline);
    size_t got = 0;
    while (n >= 0 && got < sizeof buf) {
        n = net_recv(s, rbuf, sizeof buf - got, deadline);
        if (n == 0) n = NET_EEOF;
        if (n > 0 && stream_check(&in, rbuf, (size_t)n) < (size_t)n)
            n = -EBADMSG;
        if (n > 0) got += (size_t)n;
    }
    net_close(s);
    *ms = gt_now() - t;
    return n < 0 ? (int)n : 0;
}
