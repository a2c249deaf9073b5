/* Fuzz target for the buffered receive (net_receive).  The input is a
 * script: a writer green thread sends a stream through a socket pair in
 * the pieces the script says, a reader green thread runs the script's
 * receive calls on the other end, and every result is checked against a
 * model of the contract in socketloop/net.h.  Any difference aborts.
 *
 * The input is one line of script, then the data.  In the script:
 *
 *   l L      NET_LINE        a capital tries once (deadline 0)
 *   a A      NET_ALL
 *   b<n> B<n> NET_BYTES n    b* asks for SIZE_MAX bytes: -ENOMEM
 *   x        an unknown pattern: -EINVAL
 *   r<n> R<n> net_recv of at most n bytes (r: 1): any count from 1 up,
 *            if its bytes are the right ones
 *   m<n>     net_set_max_line(n) before the next call (m0: -EINVAL;
 *            m alone: back to 1 MiB)
 *   p<n>     the next call appends to a prefix of n bytes
 *   k        the next call appends to what the previous one left
 *   w<n>     the writer sends the next n bytes of data (w: the rest)
 *   z<n>     the writer sends n letters (z: 9000, past the read-ahead)
 *   y<n>     the writer yields n times (past the loop's budget of 1024
 *            switches, the poller runs and wakes the reader)
 *   s        the writer shuts its end down: the end of the stream
 *   @e @p @s the loop uses epoll, poll or select
 *
 * Other bytes are ignored.  Data that no w sent goes after the script's
 * steps, then the writer shuts down (unless an s came first).
 *
 * Try-once calls make timing part of the model.  A writer step placed
 * after the i-th call of the script runs after call i-1 has returned and
 * before call i starts, so a try-once call sees exactly the steps placed
 * before it: the pair is a Unix-domain one, whose data is readable as soon
 * as the write returns.  The first call that may park releases the
 * writer, which from then on sends freely, yielding between pieces; every
 * later call may park too (capitals read as lower case), and its result
 * depends on the stream alone.  Before the release at most 32 pieces and
 * 32 KiB are sent, so that the writer never parks there; later steps wait
 * for the release.  After the script a NET_ALL must return exactly the
 * rest of the stream, leaving nothing buffered. */
#define _GNU_SOURCE 1
#include "fuzz.h"

#include <socketloop/net.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_CALLS 256
#define MAX_STEPS 256
#define MAX_STREAM (256 * 1024)
#define MAX_PREFIX 4096
#define MAX_NUM (1 << 20) /* numbers in the script saturate here */
#define GATED_PIECES 32
#define GATED_BYTES (32 * 1024)
#define SNDBUF (64 * 1024) /* the kernel doubles it */
#define DEFAULT_LINE ((size_t)1 << 20)
#define WAIT_MS 10000 /* only a lost wake-up makes a call wait this long */
#define FREE INT_MAX  /* the gate of a step that waits for the release */

enum { SEND, YIELD, SHUT };

typedef struct call {
    int pat;       /* NET_LINE, NET_ALL, NET_BYTES, or 0: unknown */
    int raw;       /* net_recv instead */
    size_t n;      /* NET_BYTES's count, net_recv's size */
    int once;      /* deadline 0 */
    size_t setmax; /* net_set_max_line's argument before it, or SIZE_MAX */
    size_t prefix; /* bytes of prefix */
    int keep;      /* append to what the previous call left */
} call;

typedef struct step {
    int kind;
    size_t off, len; /* SEND: S[off, off + len); YIELD: len times */
    int gate;        /* runs once the reader has reached this call */
} step;

typedef struct script {
    call calls[MAX_CALLS];
    int ncalls, release; /* release: the first call that may park */
    step steps[MAX_STEPS];
    int nsteps;
    char poller;
    unsigned char S[MAX_STREAM]; /* the whole stream */
    size_t L;
} script;

/* --- the script ----------------------------------------------------------- */

static size_t number(const uint8_t **p, const uint8_t *end, size_t none)
{
    const uint8_t *q = *p;
    size_t v = 0;
    if (q == end || *q < '0' || *q > '9') return none;
    for (; q < end && *q >= '0' && *q <= '9'; q++)
        if (v < MAX_NUM) v = v * 10 + (size_t)(*q - '0');
    *p = q;
    return v < MAX_NUM ? v : MAX_NUM;
}

/* Two steps stay free for the rest of the data and the shutdown, which
 * must come whatever the script holds. */
static void add_step(script *sc, int kind, size_t off, size_t len, int last)
{
    if (sc->nsteps < MAX_STEPS - 2 || last)
        sc->steps[sc->nsteps++] = (step){kind, off, len, sc->ncalls};
}

/* Appends n bytes (letters when src is NULL) to the stream and a step
 * that sends them; returns how many fitted. */
static size_t add_send(script *sc, const uint8_t *src, size_t n, int last)
{
    if (n > MAX_STREAM - sc->L) n = MAX_STREAM - sc->L;
    if (!n || (sc->nsteps >= MAX_STEPS - 2 && !last)) return 0;
    for (size_t i = 0; i < n; i++)
        sc->S[sc->L + i] = src ? src[i] : (unsigned char)('a' + i % 26);
    add_step(sc, SEND, sc->L, n, last);
    sc->L += n;
    return n;
}

static void parse(script *sc, const uint8_t *in, size_t size)
{
    const uint8_t *end = in + size, *nl = memchr(in, '\n', size);
    const uint8_t *p = in, *stop = nl ? nl : end, *data = nl ? nl + 1 : end;
    size_t setmax = SIZE_MAX, prefix = 0;
    int keep = 0, shut = 0;
    sc->ncalls = sc->nsteps = 0;
    sc->L = 0;
    sc->poller = 0;
    while (p < stop) {
        int c = *p++;
        call *k = &sc->calls[sc->ncalls];
        switch (c) {
        case 'l':
        case 'L':
        case 'a':
        case 'A':
        case 'b':
        case 'B':
        case 'x':
        case 'r':
        case 'R':
            if (sc->ncalls == MAX_CALLS) break;
            k->pat = c == 'x' || c == 'r' || c == 'R' ? 0
                     : c == 'l' || c == 'L'           ? NET_LINE
                     : c == 'a' || c == 'A'           ? NET_ALL
                                                      : NET_BYTES;
            k->once = c == 'L' || c == 'A' || c == 'B' || c == 'R';
            k->raw = c == 'r' || c == 'R';
            k->n = k->raw ? number(&p, stop, 1) : 0;
            if (k->pat == NET_BYTES && p < stop && *p == '*')
                p++, k->n = SIZE_MAX;
            else if (k->pat == NET_BYTES)
                k->n = number(&p, stop, 0);
            k->setmax = setmax, k->prefix = prefix, k->keep = keep;
            setmax = SIZE_MAX, prefix = 0, keep = 0;
            sc->ncalls++;
            break;
        case 'm': setmax = number(&p, stop, DEFAULT_LINE); break;
        case 'p':
            prefix = number(&p, stop, 0), keep = 0;
            if (prefix > MAX_PREFIX) prefix = MAX_PREFIX;
            break;
        case 'k': keep = 1, prefix = 0; break;
        case 'w': {
            size_t n = number(&p, stop, SIZE_MAX);
            if (n > (size_t)(end - data)) n = (size_t)(end - data);
            if (!shut) data += add_send(sc, data, n, 0);
            break;
        }
        case 'z': {
            size_t n = number(&p, stop, 9000);
            if (!shut) add_send(sc, NULL, n, 0);
            break;
        }
        case 'y': {
            size_t n = number(&p, stop, 1);
            add_step(sc, YIELD, 0, n < 4096 ? n : 4096, 0);
            break;
        }
        case 's':
            if (!shut) add_step(sc, SHUT, 0, 0, 1);
            shut = 1;
            break;
        case '@':
            if (p < stop && (*p == 'e' || *p == 'p' || *p == 's'))
                sc->poller = (char)*p++;
            break;
        }
    }
    if (!shut) {
        int n = sc->nsteps;
        add_send(sc, data, (size_t)(end - data), 1);
        add_step(sc, SHUT, 0, 0, 1);
        for (int i = n; i < sc->nsteps; i++) sc->steps[i].gate = FREE;
    }
    sc->release = sc->ncalls;
    for (int i = 0; i < sc->ncalls; i++)
        if (!sc->calls[i].once) {
            sc->release = i;
            break;
        }
    for (int i = sc->release; i < sc->ncalls; i++) sc->calls[i].once = 0;
    /* Bound what is sent before the release; from the first step past
     * the bound on, steps wait for the release. */
    size_t bytes = 0;
    int pieces = 0, over = 0;
    for (int i = 0; i < sc->nsteps; i++) {
        step *s = &sc->steps[i];
        if (s->gate >= sc->release) over = 1;
        if (s->kind == SEND && !over)
            over = ++pieces > GATED_PIECES || (bytes += s->len) > GATED_BYTES;
        if (over) s->gate = FREE;
    }
}

/* --- the model ------------------------------------------------------------ */

/* Drops what is left of an over-long line: 1 if the data ran out before
 * its LF (and the stream goes on). */
static int model_skip(const unsigned char *S, size_t avail, int eof,
                      size_t *pos, int *skip)
{
    if (!*skip) return 0;
    const unsigned char *lf = memchr(S + *pos, '\n', avail - *pos);
    *pos = lf ? (size_t)(lf - S) + 1 : avail;
    if (lf || eof) *skip = 0;
    return *skip;
}

/* What call c must do on the stream S from *pos, when it has been sent up
 * to avail and eof says whether that is all: returns the result, puts what
 * the call appends in app and its length in *len, and moves *pos past
 * what the call takes.  A line drops its LF and every CR; one longer than
 * the limit fails with the limit's worth appended, and the rest of that
 * line, up to its LF, is then dropped by whichever call comes next (*skip
 * says it is still to drop).  When the data runs out, a call
 * that tries once fails with -ETIMEDOUT, and at the end of the stream
 * NET_LINE and NET_BYTES fail with NET_EEOF; either way it keeps what
 * it took.  NET_BYTES 0 takes nothing. */
static ssize_t model(const call *c, size_t limit, const unsigned char *S,
                     size_t avail, int eof, size_t *pos, int *skip,
                     unsigned char *app, size_t *len)
{
    size_t i = *pos, k = 0;
    ssize_t short_rc = eof ? NET_EEOF : -ETIMEDOUT;
    *len = 0;
    if (c->pat != NET_LINE && c->pat != NET_BYTES && c->pat != NET_ALL)
        return -EINVAL;
    if (model_skip(S, avail, eof, pos, skip)) return -ETIMEDOUT;
    i = *pos;
    switch (c->pat) {
    case NET_LINE:
        for (; i < avail && S[i] != '\n'; i++) {
            if (S[i] == '\r') continue;
            if (k == limit) break;
            app[k++] = S[i];
        }
        *len = k;
        *pos = i < avail && S[i] == '\n' ? i + 1 : i;
        if (i < avail && S[i] != '\n') *skip = 1;
        return i == avail ? short_rc : S[i] == '\n' ? (ssize_t)k : -EMSGSIZE;
    case NET_BYTES:
        if (c->n == SIZE_MAX) return -ENOMEM;
        if (!c->n) return i < avail ? 0 : short_rc;
        k = avail - i < c->n ? avail - i : c->n;
        break;
    case NET_ALL: k = avail - i; break;
    default: return -EINVAL;
    }
    memcpy(app, S + i, k);
    *len = k;
    *pos = i + k;
    if (c->pat == NET_ALL) return eof ? (ssize_t)k : -ETIMEDOUT;
    return k == c->n ? (ssize_t)k : short_rc;
}

/* --- the run -------------------------------------------------------------- */

typedef struct run {
    const script *sc;
    net_sock *a, *b; /* the writer's end, the reader's */
    int reached;     /* the reader's current call */
    int released;    /* the writer runs freely */
    int next;        /* the writer's next step */
    size_t sent;     /* bytes the writer's steps have sent */
    int skip;        /* the model drops the rest of an over-long line */
    int shut, done;
} run;

static unsigned char want[MAX_STREAM], kept[MAX_STREAM + MAX_PREFIX];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_bufio: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

static void writer(void *arg)
{
    run *r = arg;
    const script *sc = r->sc;
    for (; r->next < sc->nsteps; r->next++) {
        const step *s = &sc->steps[r->next];
        while (!r->released && r->reached < s->gate) gt_yield();
        if (s->kind == SEND) {
            ssize_t rc = net_send(r->a, sc->S + s->off, s->len, NULL,
                                  gt_now() + WAIT_MS);
            if (rc != (ssize_t)s->len)
                fail("step %d: sending %zu bytes: %zd", r->next, s->len, rc);
            r->sent += s->len;
            gt_yield();
        } else if (s->kind == YIELD) {
            for (size_t k = 0; k < s->len; k++) gt_yield();
        } else if (net_shutdown(r->a, SHUT_WR) != 0) {
            fail("step %d: shutdown failed", r->next);
        } else {
            r->shut = 1;
        }
    }
}

/* Sets up out for call c: a fresh prefix, or what the last call left. */
static void prepare(net_buf *out, const call *c)
{
    if (c->keep) return;
    net_buf_free(out);
    if (!c->prefix) return;
    if (!(out->data = malloc(c->prefix))) fail("out of memory");
    for (size_t j = 0; j < c->prefix; j++) out->data[j] = (char)(j * 7 + 1);
    out->len = out->cap = c->prefix;
}

/* One net_receive call against the model. */
static void check_receive(run *r, int i, const call *c, size_t limit,
                          net_buf *out, size_t *pos)
{
    const script *sc = r->sc;
    size_t wlen;
    prepare(out, c);
    size_t start = out->len, cap0 = out->cap;
    if (start) memcpy(kept, out->data, start);
    ssize_t want_rc = model(c, limit, sc->S, c->once ? r->sent : sc->L,
                            c->once ? r->shut : 1, pos, &r->skip, want, &wlen);
    ssize_t rc =
        net_receive(r->b, c->pat, c->n, out, c->once ? 0 : gt_now() + WAIT_MS);
    if (rc != want_rc || out->len != start + wlen ||
        (start && memcmp(out->data, kept, start)) ||
        (wlen && memcmp(out->data + start, want, wlen)))
        fail("call %d (pattern %d, n %zu%s, limit %zu, prefix %zu): "
             "rc %zd (want %zd), %zu bytes appended (want %zu)%s",
             i, c->pat, c->n, c->once ? ", once" : "", limit, start, rc,
             want_rc, out->len - start, wlen,
             start && memcmp(out->data, kept, start) ? ", prefix lost" : "");
    /* No unbounded growth: a line or a count grows out to less than
     * twice what it can hold. */
    size_t most = c->pat == NET_LINE                        ? limit
                  : c->pat == NET_BYTES && c->n != SIZE_MAX ? c->n
                                                            : SIZE_MAX;
    if (most != SIZE_MAX && out->cap > cap0 && out->cap > 64 &&
        out->cap >= 2 * (start + most))
        fail("call %d: out grew to %zu for %zu + %zu bytes", i, out->cap, start,
             most);
}

/* One net_recv call: it takes what is there, at least a byte and at most
 * n, from what the buffered calls left; at the end of the stream 0. */
static void check_recv(run *r, int i, const call *c, size_t *pos)
{
    static char buf[MAX_NUM];
    size_t avail = c->once ? r->sent : r->sc->L;
    if (c->n) model_skip(r->sc->S, avail, !c->once || r->shut, pos, &r->skip);
    size_t most = avail - *pos < c->n ? avail - *pos : c->n;
    ssize_t rc = net_recv(r->b, buf, c->n, c->once ? 0 : gt_now() + WAIT_MS);
    int ok = !c->n  ? rc == -EINVAL
             : most ? rc >= 1 && (size_t)rc <= most &&
                          !memcmp(buf, r->sc->S + *pos, (size_t)rc)
                    : rc == (!c->once || r->shut ? 0 : -ETIMEDOUT);
    if (!ok)
        fail("call %d (net_recv %zu%s): rc %zd, %zu bytes there", i, c->n,
             c->once ? ", once" : "", rc, avail - *pos);
    if (rc > 0) *pos += (size_t)rc;
}

static void reader(void *arg)
{
    static const call drain = {NET_ALL, 0, 0, 0, SIZE_MAX, 0, 0};
    run *r = arg;
    const script *sc = r->sc;
    net_buf out = {NULL, 0, 0};
    size_t pos = 0, limit = DEFAULT_LINE;
    for (int i = 0; i <= sc->ncalls; i++) {
        const call *c = i < sc->ncalls ? &sc->calls[i] : &drain;
        r->reached = i;
        r->released |= i >= sc->release;
        while (c->once && r->next < sc->nsteps && sc->steps[r->next].gate <= i)
            gt_yield();
        if (c->setmax != SIZE_MAX) {
            int rc = net_set_max_line(r->b, c->setmax);
            if (rc != (c->setmax ? 0 : -EINVAL))
                fail("call %d: net_set_max_line(%zu): %d", i, c->setmax, rc);
            if (c->setmax) limit = c->setmax;
        }
        if (c->raw)
            check_recv(r, i, c, &pos);
        else
            check_receive(r, i, c, limit, &out, &pos);
        /* The socket holds no more than was sent and not yet taken. */
        uint64_t sent;
        net_stats(r->a, NULL, &sent, NULL);
        if (net_buffered(r->b) > sent - pos)
            fail("call %d: %zu bytes buffered, %zu sent and not taken", i,
                 net_buffered(r->b), (size_t)(sent - pos));
    }
    if (net_buffered(r->b)) fail("%zu bytes left", net_buffered(r->b));
    net_buf_free(&out);
    r->done = 1;
}

/* SOCKETLOOP_POLLER as the process started with it. */
static void poller_env(char poller)
{
    static char first[16];
    static int have = -1;
    if (have < 0) {
        const char *e = getenv("SOCKETLOOP_POLLER");
        have = e && strlen(e) < sizeof first;
        if (have) strcpy(first, e);
    }
    if (poller)
        setenv("SOCKETLOOP_POLLER",
               poller == 'e'   ? "epoll"
               : poller == 'p' ? "poll"
                               : "select",
               1);
    else if (have)
        setenv("SOCKETLOOP_POLLER", first, 1);
    else
        unsetenv("SOCKETLOOP_POLLER");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static script sc;
    run r;
    int fd[2];
    parse(&sc, data, size);
    poller_env(sc.poller);
    memset(&r, 0, sizeof r);
    r.sc = &sc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) < 0)
        fail("socketpair: %s", strerror(errno));
    /* Room for what is sent before the release, with each piece's
     * overhead, but less than the longest stream: after the release the
     * writer also parks until the reader makes room. */
    int room = SNDBUF;
    if (setsockopt(fd[0], SOL_SOCKET, SO_SNDBUF, &room, sizeof room) < 0)
        fail("SO_SNDBUF: %s", strerror(errno));
    if (net_wrap(&r.a, fd[0]) < 0 || net_wrap(&r.b, fd[1]) < 0)
        fail("net_wrap failed");
    if (gt_spawn(reader, &r) < 0 || gt_spawn(writer, &r) < 0)
        fail("gt_spawn failed");
    int rc = gt_run();
    if (rc != 0 || !r.done) fail("gt_run: %s", net_strerror(rc));
    if (net_close(r.a) || net_close(r.b) || net_cleanup())
        fail("closing failed");
    return 0;
}
