/* Buffered receive (net_receive with NET_LINE, NET_BYTES, NET_ALL) against
 * a simple model, with the data split at every possible point; prefix
 * semantics, the line limit, timeouts with partial data, net_buffered,
 * and waiters on a buffered socket. */
#include "net_test.h"

/* --- the model ------------------------------------------------------------ */

typedef struct op {
    int pat;  /* NET_LINE, NET_BYTES, NET_ALL */
    size_t n; /* for NET_BYTES */
} op;

#define MAX_OPS 64

typedef struct expect {
    ssize_t rc;
    unsigned char *data; /* what the call appends */
    size_t len;
} expect;

/* What each receive must return on the whole stream S: lines lose their
 * LF and every CR; at the end of the stream a line or a count returns
 * NET_EEOF with what was left; NET_ALL returns the rest.  NET_BYTES 0
 * waits for data and appends nothing: 0, or NET_EEOF at the end. */
static void model(const unsigned char *S, size_t L, const op *ops, int nops,
                  expect *e)
{
    size_t pos = 0;
    for (int i = 0; i < nops; i++) {
        e[i].data = malloc(L - pos + 1);
        e[i].len = 0;
        if (ops[i].pat == NET_LINE) {
            size_t j = pos;
            while (j < L && S[j] != '\n') j++;
            for (size_t k = pos; k < j; k++)
                if (S[k] != '\r') e[i].data[e[i].len++] = S[k];
            e[i].rc = j < L ? (ssize_t)e[i].len : NET_EEOF;
            pos = j < L ? j + 1 : L;
        } else if (ops[i].pat == NET_BYTES && ops[i].n == 0) {
            e[i].rc = pos < L ? 0 : NET_EEOF;
        } else if (ops[i].pat == NET_BYTES) {
            size_t k = L - pos < ops[i].n ? L - pos : ops[i].n;
            memcpy(e[i].data, S + pos, k);
            e[i].len = k;
            e[i].rc = k == ops[i].n ? (ssize_t)k : NET_EEOF;
            pos += k;
        } else {
            memcpy(e[i].data, S + pos, L - pos);
            e[i].len = L - pos;
            e[i].rc = (ssize_t)e[i].len;
            pos = L;
        }
    }
}

static void model_free(expect *e, int nops)
{
    for (int i = 0; i < nops; i++) free(e[i].data);
}

/* --- one run: a writer sends the stream in pieces, a reader receives ---- */

#define MAX_CUTS 64
#define PREFIX "<pfx>"

typedef struct run {
    const unsigned char *S;
    size_t L;
    size_t cut[MAX_CUTS]; /* increasing offsets where the writer pauses */
    int ncut;
    int yield_only; /* pause with gt_yield instead of a 1 ms sleep */
    const op *ops;
    int nops;
    const expect *e;
    net_sock *a, *b;
    /* Results. */
    int bad_op; /* first op that differed, or -1 */
    ssize_t got_rc;
    size_t got_len;
    int prefix_bad;
    size_t buffered_end;
    ssize_t send_rc;
    int writer_done;
} run;

static void run_writer(void *p)
{
    run *r = p;
    size_t pos = 0;
    int64_t dl = gt_now() + tg_slack_ms();
    for (int i = 0; i <= r->ncut; i++) {
        size_t end = i < r->ncut ? r->cut[i] : r->L;
        if (end > pos) {
            ssize_t rc = net_send(r->a, r->S + pos, end - pos, NULL, dl);
            if (rc < 0 && r->send_rc == 0) r->send_rc = rc;
            pos = end;
        }
        if (i < r->ncut) {
            if (r->yield_only)
                gt_yield();
            else
                gt_sleep(gt_now() + 1);
        }
    }
    net_shutdown(r->a, SHUT_WR);
    r->writer_done = 1;
}

static void run_reader(void *p)
{
    run *r = p;
    int64_t dl = gt_now() + tg_slack_ms();
    r->bad_op = -1;
    for (int i = 0; i < r->nops; i++) {
        net_buf out = {NULL, 0, 0};
        /* Every other call starts with a prefix, which must be kept. */
        size_t plen = i % 2 ? strlen(PREFIX) : 0;
        if (plen) {
            out.data = malloc(plen);
            out.cap = out.len = plen;
            memcpy(out.data, PREFIX, plen);
        }
        ssize_t rc = net_receive(r->b, r->ops[i].pat, r->ops[i].n, &out, dl);
        const expect *e = &r->e[i];
        int ok = rc == e->rc && out.len == plen + e->len &&
                 (e->len == 0 || !memcmp(out.data + plen, e->data, e->len));
        if (plen && (out.len < plen || memcmp(out.data, PREFIX, plen)))
            r->prefix_bad = 1, ok = 0;
        if (!ok && r->bad_op < 0) {
            r->bad_op = i;
            r->got_rc = rc;
            r->got_len = out.len - plen;
        }
        net_buf_free(&out);
    }
    r->buffered_end = net_buffered(r->b);
}

static void run_report(const run *r)
{
    fprintf(stderr, "  split at");
    for (int i = 0; i < r->ncut; i++) fprintf(stderr, " %zu", r->cut[i]);
    fprintf(stderr, "%s: op %d: rc %zd (want %zd), %zu bytes (want %zu)%s\n",
            r->yield_only ? " (yield)" : "", r->bad_op, r->got_rc,
            r->e[r->bad_op].rc, r->got_len, r->e[r->bad_op].len,
            r->prefix_bad ? ", prefix lost" : "");
}

/* Runs every run of the array at once, each on its own connection. */
static void run_all(run *runs, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        assert_int_equal(nt_pair(&runs[i].a, &runs[i].b), 0);
        net_setopt(runs[i].a, NET_NODELAY, 1);
        tg_spawn(run_reader, &runs[i]);
        tg_spawn(run_writer, &runs[i]);
    }
    NT_RUN();
    for (int i = 0; i < n; i++) {
        net_close(runs[i].a);
        net_close(runs[i].b);
    }
    assert_int_equal(net_cleanup(), 0);
    for (int i = 0; i < n; i++) {
        if (runs[i].bad_op >= 0 || runs[i].buffered_end != 0 ||
            runs[i].send_rc != 0 || !runs[i].writer_done) {
            if (bad++ < 10) {
                if (runs[i].bad_op >= 0)
                    run_report(&runs[i]);
                else
                    fprintf(stderr, "  run %d: buffered %zu send %zd\n", i,
                            runs[i].buffered_end, runs[i].send_rc);
            }
        }
    }
    assert_int_equal(bad, 0);
}

/* Every 2-way split, and the given 3-way ones (or all of them). */
static void check_splits(const unsigned char *S, size_t L, const op *ops,
                         int nops, int all3)
{
    expect e[MAX_OPS];
    model(S, L, ops, nops, e);
    int cap = (int)(2 * (L + 1) + (L + 1) * (L + 1) + 1);
    run *runs = calloc((size_t)cap, sizeof *runs);
    assert_non_null(runs);
    int n = 0;
    for (size_t k = 0; k <= L; k++) {
        for (int y = 0; y < 2; y++) {
            run *r = &runs[n++];
            r->S = S, r->L = L, r->ops = ops, r->nops = nops, r->e = e;
            r->cut[0] = k;
            r->ncut = 1;
            r->yield_only = y;
        }
    }
    for (size_t i = 1; i < L; i++) {
        for (size_t j = i + 1; j < L; j++) {
            if (!all3 && (i * 7 + j * 3) % 5 != 0) continue;
            run *r = &runs[n++];
            r->S = S, r->L = L, r->ops = ops, r->nops = nops, r->e = e;
            r->cut[0] = i;
            r->cut[1] = j;
            r->ncut = 2;
        }
    }
    /* One byte at a time. */
    if (L <= MAX_CUTS) {
        run *r = &runs[n++];
        r->S = S, r->L = L, r->ops = ops, r->nops = nops, r->e = e;
        for (size_t k = 1; k < L; k++) r->cut[r->ncut++] = k;
    }
    /* Batches of at most 200 connections at once. */
    for (int i = 0; i < n; i += 200)
        run_all(runs + i, n - i < 200 ? n - i : 200);
    free(runs);
    model_free(e, nops);
}

/* The test stream: CR LF, a lone CR inside a line, an empty line, then a
 * binary tail with NUL, CR, LF and high bytes. */
static const unsigned char TAIL[] = {0x00, 0x01, 0x02, '\r', 0xff, 0x80,
                                     '\n', 0x7f, 0x00, '\r', '\r', 0xfe};
static unsigned char S1[64];
static size_t S1_len;

static void make_s1(void)
{
    static const char head[] = "abc\r\nde\rf\n\nxyz";
    memcpy(S1, head, sizeof head - 1);
    memcpy(S1 + sizeof head - 1, TAIL, sizeof TAIL);
    S1_len = sizeof head - 1 + sizeof TAIL;
}

/* Lines, then a count, then the rest, then calls past the end. */
static void test_split_lines_bytes_all(void **state)
{
    (void)state;
    static const op ops[] = {{NET_LINE, 0},  {NET_LINE, 0},  {NET_LINE, 0},
                             {NET_BYTES, 5}, {NET_ALL, 0},   {NET_LINE, 0},
                             {NET_BYTES, 1}, {NET_BYTES, 0}, {NET_ALL, 0}};
    make_s1();
    check_splits(S1, S1_len, ops, TG_ARRAY_LEN(ops), 0);
}

/* Lines through the binary tail: the last has no LF. */
static void test_split_lines_only(void **state)
{
    (void)state;
    static const op ops[] = {{NET_LINE, 0}, {NET_LINE, 0}, {NET_LINE, 0},
                             {NET_LINE, 0}, {NET_LINE, 0}, {NET_LINE, 0},
                             {NET_ALL, 0}};
    make_s1();
    check_splits(S1, S1_len, ops, TG_ARRAY_LEN(ops), 0);
}

/* Counts and lines interleaved; a count crossing a CR; counts of 0
 * (wait for data, take none) between them. */
static void test_split_mixed(void **state)
{
    (void)state;
    static const op ops[] = {{NET_BYTES, 0}, {NET_BYTES, 2}, {NET_LINE, 0},
                             {NET_BYTES, 3}, {NET_BYTES, 0}, {NET_LINE, 0},
                             {NET_BYTES, 0}, {NET_LINE, 0},  {NET_ALL, 0}};
    make_s1();
    check_splits(S1, S1_len, ops, TG_ARRAY_LEN(ops), 0);
}

/* A count larger than what is left: NET_EEOF with all of it. */
static void test_split_bytes_past_end(void **state)
{
    (void)state;
    static const op ops[] = {
        {NET_LINE, 0}, {NET_BYTES, 100}, {NET_LINE, 0}, {NET_ALL, 0}};
    make_s1();
    check_splits(S1, S1_len, ops, TG_ARRAY_LEN(ops), 0);
}

/* The stream ends in the middle of a line; every 3-way split too. */
static void test_split_eof_mid_line(void **state)
{
    (void)state;
    static const unsigned char S2[] = "abc\r\nde\rf\n\nxy";
    static const op ops[] = {{NET_LINE, 0}, {NET_LINE, 0}, {NET_LINE, 0},
                             {NET_LINE, 0}, {NET_ALL, 0},  {NET_LINE, 0}};
    check_splits(S2, sizeof S2 - 1, ops, TG_ARRAY_LEN(ops), 1);
}

/* CRs everywhere: empty lines made of CRs, a line of one byte. */
static void test_split_crs(void **state)
{
    (void)state;
    unsigned char S3[64];
    static const char head[] = "\r\r\n\r\n\rx\r\n";
    memcpy(S3, head, sizeof head - 1);
    memcpy(S3 + sizeof head - 1, TAIL, sizeof TAIL);
    static const op ops[] = {{NET_LINE, 0},  {NET_LINE, 0}, {NET_LINE, 0},
                             {NET_BYTES, 3}, {NET_LINE, 0}, {NET_ALL, 0}};
    check_splits(S3, sizeof head - 1 + sizeof TAIL, ops, TG_ARRAY_LEN(ops), 0);
}

/* A long random stream of lines (some longer than the socket's 8 KiB
 * read-ahead), sent in random pieces, read with random patterns. */
static void test_random_stream(void **state)
{
    (void)state;
    size_t L = tg_under_valgrind() ? 48 * 1024 : 256 * 1024;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        uint64_t rs = seed * 0x1234567ull;
        unsigned char *S = malloc(L);
        assert_non_null(S);
        for (size_t i = 0; i < L;) {
            size_t len = nt_rand(&rs) % 4 == 0 ? nt_rand(&rs) % 20000
                                               : nt_rand(&rs) % 80;
            for (size_t k = 0; k < len && i < L; k++) {
                uint32_t x = nt_rand(&rs);
                S[i++] = x % 17 == 0 ? '\r' : (unsigned char)(32 + x % 90);
            }
            if (i < L) S[i++] = '\n';
        }
        static op ops[MAX_OPS];
        int nops = 0;
        while (nops < MAX_OPS - 1) {
            uint32_t x = nt_rand(&rs) % 10;
            ops[nops].pat = x < 7 ? NET_LINE : NET_BYTES;
            ops[nops].n = nt_rand(&rs) % 12000;
            nops++;
        }
        ops[nops++] = (op){NET_ALL, 0};
        expect e[MAX_OPS];
        model(S, L, ops, nops, e);
        run r;
        memset(&r, 0, sizeof r);
        r.S = S, r.L = L, r.ops = ops, r.nops = nops, r.e = e;
        for (size_t pos = 0; r.ncut < 12;) {
            pos += 1 + nt_rand(&rs) % (L / 8);
            if (pos >= L) break;
            r.cut[r.ncut++] = pos;
        }
        run_all(&r, 1);
        model_free(e, nops);
        free(S);
    }
}

/* --- prefixes ------------------------------------------------------------- */

typedef struct pre_ctx {
    net_sock *a, *b;
    ssize_t rc[4];
    net_buf out;
} pre_ctx;

static void pre_reader(void *p)
{
    pre_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    c->rc[0] = net_receive(c->b, NET_LINE, 0, &c->out, dl);
    c->rc[1] = net_receive(c->b, NET_BYTES, 2, &c->out, dl);
    c->rc[2] = net_receive(c->b, NET_LINE, 0, &c->out, dl); /* ends early */
}

static void pre_writer(void *p)
{
    pre_ctx *c = p;
    net_send(c->a, "abc\r\nXYpart", 11, NULL, gt_now() + tg_slack_ms());
    net_shutdown(c->a, SHUT_WR);
}

static void test_prefix(void **state)
{
    (void)state;
    pre_ctx c;
    memset(&c, 0, sizeof c);
    c.out.data = malloc(4);
    memcpy(c.out.data, "PRE:", 4);
    c.out.len = c.out.cap = 4;
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(pre_reader, &c);
    tg_spawn(pre_writer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], 3);
    assert_int_equal(c.rc[1], 2);
    assert_int_equal(c.rc[2], NET_EEOF);
    assert_int_equal(c.out.len, 13);
    assert_memory_equal(c.out.data, "PRE:abcXYpart", 13);
    assert_true(c.out.cap >= c.out.len);
    net_buf_free(&c.out);
    assert_null(c.out.data);
    assert_int_equal(c.out.len, 0);
    assert_int_equal(c.out.cap, 0);
}

/* --- the line limit ---------------------------------------------------------
 */

typedef struct lim_ctx {
    net_sock *a, *b;
    size_t big;
    ssize_t rc[6];
    net_buf out[6];
    size_t big_sent;
} lim_ctx;

static void lim_reader(void *p)
{
    lim_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    net_set_max_line(c->b, 8);
    /* 20 bytes: fails having appended 8. */
    c->rc[0] = net_receive(c->b, NET_LINE, 0, &c->out[0], dl);
    /* The rest of that line is dropped: exactly 8, and 8 with CRs
     * (which do not count). */
    c->rc[1] = net_receive(c->b, NET_LINE, 0, &c->out[1], dl);
    c->rc[2] = net_receive(c->b, NET_LINE, 0, &c->out[2], dl);
    /* The default limit (1 MiB) against a longer line. */
    net_set_max_line(c->b, (size_t)1 << 20);
    c->rc[3] = net_receive(c->b, NET_LINE, 0, &c->out[3], dl);
    /* The stream goes on at the next line, then ends. */
    c->rc[4] = net_receive(c->b, NET_LINE, 0, &c->out[4], dl);
    c->rc[5] = net_receive(c->b, NET_ALL, 0, &c->out[5], dl);
}

static void lim_writer(void *p)
{
    lim_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    net_send(c->a, "0123456789ABCDEFGHIJ\n", 21, NULL, dl);
    net_send(c->a, "12345678\n", 9, NULL, dl);
    net_send(c->a, "12\r34\r\r56\r78\r\n", 14, NULL, dl);
    char *line = malloc(c->big);
    if (!line) return;
    memset(line, 'L', c->big);
    net_send(c->a, line, c->big, &c->big_sent, dl);
    free(line);
    net_send(c->a, "\nnext\n", 6, NULL, dl);
    net_shutdown(c->a, SHUT_WR);
}

static void test_max_line(void **state)
{
    (void)state;
    lim_ctx c;
    memset(&c, 0, sizeof c);
    c.big = (size_t)3 << 20;
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(lim_reader, &c);
    tg_spawn(lim_writer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], -EMSGSIZE);
    assert_int_equal(c.out[0].len, 8);
    assert_memory_equal(c.out[0].data, "01234567", 8);
    assert_true(c.out[0].cap <= 64); /* no allocation past the limit */
    assert_int_equal(c.rc[1], 8);
    assert_memory_equal(c.out[1].data, "12345678", 8);
    assert_int_equal(c.rc[2], 8);
    assert_memory_equal(c.out[2].data, "12345678", 8);
    assert_int_equal(c.rc[3], -EMSGSIZE);
    assert_int_equal(c.out[3].len, (size_t)1 << 20);
    assert_true(c.out[3].cap <= (size_t)2 << 20);
    assert_int_equal(c.big_sent, c.big);
    assert_int_equal(c.rc[4], 4);
    assert_memory_equal(c.out[4].data, "next", 4);
    assert_int_equal(c.rc[5], 0);
    assert_int_equal(c.out[5].len, 0);
    for (int i = 0; i < 6; i++) net_buf_free(&c.out[i]);
}

/* --- timeouts: -ETIMEDOUT with the partial data in out ------------------- */

typedef struct to_ctx {
    net_sock *a, *b;
    ssize_t rc[8];
    net_buf out[8];
    size_t len2, len4; /* out[2] and out[4] after the timed-out calls */
    int64_t took;
} to_ctx;

static void to_reader(void *p)
{
    to_ctx *c = p;
    int64_t t0 = gt_now();
    c->rc[0] = net_receive(c->b, NET_LINE, 0, &c->out[0], t0 + 100);
    c->took = gt_now() - t0;
    /* LuaSocket's idiom: call again with the partial as the prefix. */
    c->rc[1] =
        net_receive(c->b, NET_LINE, 0, &c->out[0], gt_now() + tg_slack_ms());
    c->rc[2] = net_receive(c->b, NET_BYTES, 10, &c->out[2], gt_now() + 100);
    c->len2 = c->out[2].len;
    c->rc[3] =
        net_receive(c->b, NET_BYTES, 5, &c->out[2], gt_now() + tg_slack_ms());
    c->rc[4] = net_receive(c->b, NET_ALL, 0, &c->out[4], gt_now() + 100);
    c->len4 = c->out[4].len;
    c->rc[5] = net_receive(c->b, NET_ALL, 0, &c->out[4], gt_now() + tg_slack_ms());
    /* Past the end of the stream. */
    c->rc[6] = net_receive(c->b, NET_LINE, 0, &c->out[6], 0);
}

static void to_writer(void *p)
{
    to_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    /* Each pause is 200 ms longer than the reader's short deadlines. */
    net_send(c->a, "abc", 3, NULL, dl);
    gt_sleep(gt_now() + 300);
    net_send(c->a, "def\n12345", 9, NULL, dl);
    gt_sleep(gt_now() + 300);
    net_send(c->a, "67890xy", 7, NULL, dl);
    gt_sleep(gt_now() + 300);
    net_send(c->a, "z", 1, NULL, dl);
    net_shutdown(c->a, SHUT_WR);
}

static void test_timeout_partial(void **state)
{
    (void)state;
    to_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(to_reader, &c);
    tg_spawn(to_writer, &c);
    NT_RUN();
    size_t left = net_buffered(c.b);
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], -ETIMEDOUT);
    assert_true(c.took >= 99 && c.took < 100 + tg_slack_ms());
    assert_int_equal(c.rc[1], 3);
    assert_int_equal(c.out[0].len, 6);
    assert_memory_equal(c.out[0].data, "abcdef", 6);
    assert_int_equal(c.rc[2], -ETIMEDOUT);
    assert_int_equal(c.len2, 5);
    assert_int_equal(c.rc[3], 5);
    assert_int_equal(c.out[2].len, 10);
    assert_memory_equal(c.out[2].data, "1234567890", 10);
    assert_int_equal(c.rc[4], -ETIMEDOUT);
    assert_int_equal(c.len4, 2);
    assert_int_equal(c.rc[5], 1);
    assert_int_equal(c.out[4].len, 3);
    assert_memory_equal(c.out[4].data, "xyz", 3);
    assert_int_equal(c.rc[6], NET_EEOF); /* after the end: end of stream */
    assert_int_equal(left, 0);
    for (int i = 0; i < 8; i++) net_buf_free(&c.out[i]);
}

/* Deadline 0 tries once: a line already buffered comes back; none there
 * gives -ETIMEDOUT at once. */
typedef struct d0_ctx {
    net_sock *a, *b;
    ssize_t rc[4];
    net_buf out[4];
    int64_t took;
} d0_ctx;

static void d0_thread(void *p)
{
    d0_ctx *c = p;
    net_send(c->a, "one\ntwo\nthr", 11, NULL, gt_now() + tg_slack_ms());
    gt_sleep(gt_now() + 20);
    int64_t t0 = gt_now();
    c->rc[0] = net_receive(c->b, NET_LINE, 0, &c->out[0], 0);
    c->rc[1] = net_receive(c->b, NET_LINE, 0, &c->out[1], 0);
    c->rc[2] = net_receive(c->b, NET_LINE, 0, &c->out[2], 0);
    c->took = gt_now() - t0;
}

static void test_deadline0(void **state)
{
    (void)state;
    d0_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(d0_thread, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], 3);
    assert_int_equal(c.rc[1], 3);
    assert_int_equal(c.rc[2], -ETIMEDOUT);
    assert_int_equal(c.out[2].len, 3);
    assert_memory_equal(c.out[2].data, "thr", 3);
    assert_true(c.took < 500); /* no waiting */
    for (int i = 0; i < 4; i++) net_buf_free(&c.out[i]);
}

/* --- net_buffered, and plain net_recv after buffered calls -------------- */

typedef struct bf_ctx {
    net_sock *a, *b;
    ssize_t rc[6];
    size_t buffered[6];
    net_buf out;
    char raw[32];
    uint64_t in;
} bf_ctx;

static void bf_thread(void *p)
{
    bf_ctx *c = p;
    int64_t dl = gt_now() + tg_slack_ms();
    c->buffered[0] = net_buffered(c->b);
    net_send(c->a, "ab\ncd\nefgh", 10, NULL, dl);
    net_shutdown(c->a, SHUT_WR);
    gt_sleep(gt_now() + 20); /* all of it has arrived */
    c->rc[0] = net_receive(c->b, NET_LINE, 0, &c->out, dl);
    c->buffered[1] = net_buffered(c->b);
    c->rc[1] = net_receive(c->b, NET_BYTES, 2, &c->out, dl);
    c->buffered[2] = net_buffered(c->b);
    /* net_recv hands out the buffered bytes first. */
    c->rc[2] = net_recv(c->b, c->raw, sizeof c->raw, dl);
    c->buffered[3] = net_buffered(c->b);
    c->rc[3] = net_recv(c->b, c->raw + 8, sizeof c->raw - 8, dl);
    net_stats(c->b, &c->in, NULL, NULL);
}

static void test_buffered(void **state)
{
    (void)state;
    bf_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(bf_thread, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.buffered[0], 0);
    assert_int_equal(c.rc[0], 2);
    assert_int_equal(c.buffered[1], 7);
    assert_int_equal(c.rc[1], 2);
    assert_int_equal(c.buffered[2], 5);
    assert_memory_equal(c.out.data, "abcd", 4);
    assert_int_equal(c.rc[2], 5);
    assert_memory_equal(c.raw, "\nefgh", 5);
    assert_int_equal(c.buffered[3], 0);
    assert_int_equal(c.rc[3], 0); /* end of stream */
    assert_int_equal(c.in, 10);   /* each byte counted once */
    net_buf_free(&c.out);
}

/* NET_BYTES 0 waits for data, appends none and keeps it buffered (at the
 * end of the stream: NET_EEOF); a count that out cannot hold: -ENOMEM,
 * and nothing is lost. */
typedef struct odd_ctx {
    net_sock *a, *b;
    ssize_t rc[6];
    size_t len[6], buffered[6];
    int64_t took0;
    net_buf out;
} odd_ctx;

static void odd_thread(void *p)
{
    odd_ctx *c = p;
    int64_t t0 = gt_now();
    c->rc[0] = net_receive(c->b, NET_BYTES, 0, &c->out, t0 + 50);
    c->took0 = gt_now() - t0;
    c->len[0] = c->out.len;
    net_send(c->a, "abc", 3, NULL, gt_now() + tg_slack_ms());
    net_shutdown(c->a, SHUT_WR);
    c->rc[1] = net_receive(c->b, NET_BYTES, 0, &c->out, gt_now() + tg_slack_ms());
    c->len[1] = c->out.len;
    c->buffered[1] = net_buffered(c->b);
    /* Buffered already: returns at once, even with deadline 0. */
    c->rc[2] = net_receive(c->b, NET_BYTES, 0, &c->out, 0);
    c->rc[3] = net_receive(c->b, NET_BYTES, SIZE_MAX, &c->out, gt_now() + 50);
    c->len[3] = c->out.len;
    c->buffered[3] = net_buffered(c->b);
    c->rc[4] = net_receive(c->b, NET_ALL, 0, &c->out, gt_now() + tg_slack_ms());
    c->len[4] = c->out.len;
    c->rc[5] = net_receive(c->b, NET_BYTES, 0, &c->out, gt_now() + tg_slack_ms());
    c->len[5] = c->out.len;
}

static void test_bytes_odd_counts(void **state)
{
    (void)state;
    odd_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(odd_thread, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_close(c.b), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.rc[0], -ETIMEDOUT);
    assert_true(c.took0 >= 49);
    assert_int_equal(c.len[0], 0);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.len[1], 0);
    assert_int_equal(c.buffered[1], 3);
    assert_int_equal(c.rc[2], 0);
    assert_int_equal(c.rc[3], -ENOMEM);
    assert_int_equal(c.len[3], 0);
    assert_int_equal(c.buffered[3], 3);
    assert_int_equal(c.rc[4], 3);
    assert_int_equal(c.len[4], 3);
    assert_memory_equal(c.out.data, "abc", 3);
    assert_int_equal(c.rc[5], NET_EEOF);
    assert_int_equal(c.len[5], 3);
    net_buf_free(&c.out);
}

/* --- waiters on a buffered socket ------------------------------------------
 */

/* net_close while a green thread waits in net_receive mid-line: it wakes
 * with NET_ECLOSED and keeps the partial line. */
typedef struct cl_ctx {
    net_sock *a, *b;
    ssize_t rc;
    net_buf out;
    int done;
} cl_ctx;

static void cl_reader(void *p)
{
    cl_ctx *c = p;
    c->rc = net_receive(c->b, NET_LINE, 0, &c->out, gt_now() + tg_slack_ms());
    c->done = 1;
}

static void cl_closer(void *p)
{
    cl_ctx *c = p;
    net_send(c->a, "partial", 7, NULL, gt_now() + tg_slack_ms());
    gt_sleep(gt_now() + 30);
    net_close(c->b);
}

static void test_close_while_receive(void **state)
{
    (void)state;
    cl_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(nt_pair(&c.a, &c.b), 0);
    tg_spawn(cl_reader, &c);
    tg_spawn(cl_closer, &c);
    NT_RUN();
    assert_int_equal(net_close(c.a), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_true(c.done);
    assert_int_equal(c.rc, NET_ECLOSED);
    assert_int_equal(c.out.len, 7);
    assert_memory_equal(c.out.data, "partial", 7);
    net_buf_free(&c.out);
}

/* A green thread in net_receive, a second one in net_recv on the same
 * socket: the second gets -EALREADY, the first still gets its line. */
typedef struct two_ctx {
    net_sock *a, *b;
    ssize_t rc1, rc2;
    net_buf out1, out2;
} two_ctx;

static void two_receive(void *p)
{
    two_ctx *c = p;
    c->rc1 = net_receive(c->b, NET_LINE, 0, &c->out1, gt_now() + tg_slack_ms());
}

static void two_recv(void *p)
{
    two_ctx *c = p;
    char buf[8];
    c->rc2 = net_recv(c->b, buf, sizeof buf, gt_now() + tg_slack_ms());
}

static void two_second_receive(void *p)
{
    two_ctx *c = p;
    c->rc2 = net_receive(c->b, NET_LINE, 0, &c->out2, gt_now() + tg_slack_ms());
}

static void two_writer(void *p)
{
    two_ctx *c = p;
    gt_sleep(gt_now() + 30);
    net_send(c->a, "hello\n", 6, NULL, gt_now() + tg_slack_ms());
}

static int run_two(gt_fn *second, two_ctx *c)
{
    memset(c, 0, sizeof *c);
    if (nt_pair(&c->a, &c->b) != 0) return -1;
    gt_spawn(two_receive, c);
    gt_spawn(second, c);
    gt_spawn(two_writer, c);
    int rc = gt_run();
    net_close(c->a);
    net_close(c->b);
    if (net_cleanup() != 0) rc = -2;
    return rc;
}

static void test_receive_then_recv(void **state)
{
    (void)state;
    two_ctx c;
    assert_int_equal(run_two(two_recv, &c), 0);
    assert_int_equal(c.rc2, -EALREADY);
    assert_int_equal(c.rc1, 5);
    assert_int_equal(c.out1.len, 5);
    assert_memory_equal(c.out1.data, "hello", 5);
    net_buf_free(&c.out1);
}

/* The same with two net_receive calls.  Run in a child process: a failure
 * here may be a crash. */
static void test_two_receivers(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        two_ctx c;
        tg_child_init(20);
        int rc = run_two(two_second_receive, &c);
        int ok = rc == 0 && c.rc2 == -EALREADY && c.out2.len == 0 &&
                 c.rc1 == 5 && c.out1.len == 5 &&
                 !memcmp(c.out1.data, "hello", 5);
        net_buf_free(&c.out1);
        net_buf_free(&c.out2);
        if (!ok)
            fprintf(stderr, "child: run %d rc1 %zd rc2 %zd len1 %zu\n", rc,
                    c.rc1, c.rc2, c.out1.len);
        _exit(ok ? 0 : 1);
    }
    int st = tg_wait_child(pid);
    if (WIFSIGNALED(st))
        fprintf(stderr, "child died by signal %d\n", WTERMSIG(st));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_split_lines_bytes_all),
        NT_TEST(test_split_lines_only),
        NT_TEST(test_split_mixed),
        NT_TEST(test_split_bytes_past_end),
        NT_TEST(test_split_eof_mid_line),
        NT_TEST(test_split_crs),
        NT_TEST(test_random_stream),
        NT_TEST(test_prefix),
        NT_TEST(test_max_line),
        NT_TEST(test_timeout_partial),
        NT_TEST(test_deadline0),
        NT_TEST(test_buffered),
        NT_TEST(test_bytes_odd_counts),
        NT_TEST(test_close_while_receive),
        NT_TEST(test_receive_then_recv),
        NT_TEST(test_two_receivers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
