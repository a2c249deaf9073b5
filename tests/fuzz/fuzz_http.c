/* Fuzz target for socketloop-http's request parser (tools/net/http_parse.c).
 * The input is what a client sends on one connection: requests one after
 * another.  It is cut into lines as net_receive(NET_LINE) cuts them (the
 * LF and every CR dropped, at most HTTP_MAX_LINE bytes) and fed to the
 * parser as socketloop-http feeds it: each line in a buffer of its exact
 * size (so that ASan sees a read past it), the body skipped, and the next
 * request parsed while the answers leave the connection open.  Checks:
 *
 * - every outcome (answer or error status, method, Content-Length,
 *   keep-alive) agrees with a reference check of the whole head, written
 *   from the rules of RFC 9110 and 9112 that the server keeps: a request
 *   line of exactly three parts, HTTP/1.0 or 1.1, header names that are
 *   tokens, one Content-Length of digits only, no Transfer-Encoding,
 *   "close" closing whatever else the Connection headers say;
 * - every answer is well formed: its Content-Length matches its body
 *   (none for HEAD), and it says "Connection: close" exactly when the
 *   connection closes;
 * - the outcomes do not depend on where the connection starts: parsing
 *   from the second request on gives the rest of the first run's. */
#include "fuzz.h"
#include "http_parse.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REQUESTS 64
#define GONE (-1) /* the stream ended before the head did */

typedef struct outcome {
    int st;       /* HTTP_READY, HTTP_ERROR, HTTP_QUIT or GONE */
    char code[4]; /* HTTP_ERROR: the status code */
    int method, keep_alive;
    long length;
} outcome;

static char line[HTTP_MAX_LINE];

static void fail(const char *what, size_t at)
{
    fprintf(stderr, "fuzz_http: request at byte %zu: %s\n", at, what);
    abort();
}

/* The next line from in[*pos, n), as net_receive(NET_LINE) gives it with
 * the server's limit: 1 with the line in `line`, 0 when the stream ends
 * first, -1 when the line is too long. */
static int next_line(const uint8_t *in, size_t n, size_t *pos, size_t *len)
{
    size_t k = 0;
    for (size_t i = *pos; i < n; i++) {
        if (in[i] == '\n') {
            *pos = i + 1;
            *len = k;
            return 1;
        }
        if (in[i] == '\r') continue;
        if (k == HTTP_MAX_LINE) return -1;
        line[k++] = (char)in[i];
    }
    return 0;
}

/* --- the reference ----------------------------------------------------------
 */

static int same(const char *p, size_t n, const char *lit)
{
    size_t i = 0;
    while (i < n && lit[i] && tolower((unsigned char)p[i]) == lit[i]) i++;
    return i == n && !lit[i];
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Does the comma-separated list p[0, n) hold `lit` (lower case)? */
static int list_has(const char *p, size_t n, const char *lit)
{
    for (size_t i = 0; i <= n;) {
        size_t a = i, b = i;
        while (b < n && p[b] != ',') b++;
        i = b + 1;
        while (a < b && is_space(p[a])) a++;
        while (b > a && is_space(p[b - 1])) b--;
        if (same(p + a, b - a, lit)) return 1;
    }
    return 0;
}

static int error(outcome *e, const char *code)
{
    e->st = HTTP_ERROR;
    memcpy(e->code, code, 4);
    return 0;
}

/* The outcome of the request that starts at in[pos]. */
static int reference(const uint8_t *in, size_t n, size_t pos, outcome *e)
{
    static const char tchars[] = "!#$%&'*+-.^_`|~";
    size_t len, sp[2], nsp = 0;
    int got, blank = 0;
    memset(e, 0, sizeof *e);
    e->st = GONE;
    while ((got = next_line(in, n, &pos, &len)) > 0 && !len)
        if (++blank > HTTP_MAX_BLANK) return e->st = HTTP_QUIT;
    if (got <= 0) return got ? error(e, "414") : 0;
    for (size_t i = 0; i < len; i++)
        if (line[i] == ' ' && nsp++ < 2) sp[nsp - 1] = i;
    if (nsp != 2 || sp[0] == 0 || sp[1] == sp[0] + 1) return error(e, "400");
    const char *version = line + sp[1] + 1;
    size_t vlen = len - sp[1] - 1;
    int http10 = vlen == 8 && !memcmp(version, "HTTP/1.0", 8);
    if (!http10 && (vlen != 8 || memcmp(version, "HTTP/1.1", 8)))
        return error(e, "505");
    int method = sp[0] == 3 && !memcmp(line, "GET", 3)    ? HTTP_GET
                 : sp[0] == 4 && !memcmp(line, "HEAD", 4) ? HTTP_HEAD
                 : sp[0] == 4 && !memcmp(line, "POST", 4) ? HTTP_POST
                                                          : HTTP_OTHER;
    int headers = 0, bad = 0, te = 0, lengths = 0, close = 0, alive = 0;
    long length = 0;
    while ((got = next_line(in, n, &pos, &len)) > 0 && len) {
        if (++headers > HTTP_MAX_HEADERS) return error(e, "431");
        const char *colon = memchr(line, ':', len);
        size_t nlen = colon ? (size_t)(colon - line) : 0;
        for (size_t i = 0; i < nlen; i++)
            if (!isalnum((unsigned char)line[i]) &&
                (!line[i] || !strchr(tchars, line[i])))
                nlen = 0;
        if (!nlen) {
            bad = 1;
            continue;
        }
        const char *v = colon + 1;
        size_t vl = len - nlen - 1;
        while (vl && is_space(v[0])) v++, vl--;
        while (vl && is_space(v[vl - 1])) vl--;
        if (same(line, nlen, "connection")) {
            close |= list_has(v, vl, "close");
            alive |= list_has(v, vl, "keep-alive");
        } else if (same(line, nlen, "transfer-encoding")) {
            te = 1;
        } else if (same(line, nlen, "content-length")) {
            bad |= !vl || lengths++;
            /* The value saturates past the largest body. */
            for (size_t i = 0; i < vl && !bad; i++) {
                bad = !isdigit((unsigned char)v[i]);
                if (!bad && length <= HTTP_MAX_BODY)
                    length = length * 10 + (v[i] - '0');
            }
        }
    }
    if (got < 0) return error(e, "431");
    if (!got) return 0;
    if (bad) return error(e, "400");
    if (te) return error(e, "501");
    if (length > HTTP_MAX_BODY) return error(e, "413");
    e->st = HTTP_READY;
    e->method = method;
    e->length = length;
    e->keep_alive = !close && (!http10 || alive);
    return 0;
}

/* --- the parser, as the server drives it --------------------------------- */

static void check_answer(const http_req *r, size_t at)
{
    const char *a = http_answer(r), *end = strstr(a, "\r\n\r\n");
    const char *cl = strstr(a, "\r\nContent-Length: ");
    const char *conn = strstr(a, "\r\nConnection: close\r\n");
    int ok = r->method == HTTP_OTHER
                 ? !strncmp(a, "HTTP/1.1 405 Method Not Allowed\r\n", 33)
                 : !strncmp(a, "HTTP/1.1 200 OK\r\n", 17);
    if (!ok || !end || !cl || cl > end) fail("malformed answer", at);
    size_t body = strlen(end + 4), want = strtoul(cl + 18, NULL, 10);
    if (body != (r->method == HTTP_HEAD ? 0 : want))
        fail("answer's body and Content-Length differ", at);
    if ((conn && conn < end) == r->keep_alive)
        fail("answer's Connection header is wrong", at);
}

/* Serves the requests in in[0, n): one outcome each, in o; returns how
 * many, and where each starts in starts. */
static int serve(const uint8_t *in, size_t n, outcome *o, size_t *starts)
{
    size_t pos = 0;
    for (int k = 0; k < MAX_REQUESTS; k++) {
        http_req r;
        int st = HTTP_MORE;
        size_t len;
        starts[k] = pos;
        http_start(&r);
        while (st == HTTP_MORE) {
            int got = next_line(in, n, &pos, &len);
            if (got <= 0) {
                st = got ? http_too_long(&r) : GONE;
                break;
            }
            char *copy = malloc(len ? len : 1);
            if (!copy) fail("out of memory", starts[k]);
            memcpy(copy, line, len);
            st = http_line(&r, copy, len);
            free(copy);
        }
        memset(&o[k], 0, sizeof o[k]);
        o[k].st = st;
        if (st == HTTP_ERROR) {
            size_t sl = strlen(r.status);
            if (sl < 5 || r.status[3] != ' ') fail("bad status", starts[k]);
            memcpy(o[k].code, r.status, 3);
        }
        if (st != HTTP_READY) return k + 1;
        o[k].method = r.method;
        o[k].keep_alive = r.keep_alive;
        o[k].length = r.length;
        check_answer(&r, starts[k]);
        if ((size_t)r.length > n - pos || !r.keep_alive) return k + 1;
        pos += (size_t)r.length;
    }
    return MAX_REQUESTS;
}

static int differ(const outcome *a, const outcome *b)
{
    return a->st != b->st || memcmp(a->code, b->code, 4) ||
           a->method != b->method || a->keep_alive != b->keep_alive ||
           a->length != b->length;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static outcome o[MAX_REQUESTS], o2[MAX_REQUESTS];
    static size_t starts[MAX_REQUESTS], starts2[MAX_REQUESTS];
    int k = serve(data, size, o, starts);
    for (int i = 0; i < k; i++) {
        outcome e;
        reference(data, size, starts[i], &e);
        if (differ(&o[i], &e)) {
            fprintf(stderr,
                    "fuzz_http: parser: %d %.3s method %d keep %d length "
                    "%ld; reference: %d %.3s method %d keep %d length %ld\n",
                    o[i].st, o[i].code, o[i].method, o[i].keep_alive,
                    o[i].length, e.st, e.code, e.method, e.keep_alive,
                    e.length);
            fail("the parser and the reference differ", starts[i]);
        }
    }
    if (k > 1) {
        size_t s = starts[1];
        int k2 = serve(data + s, size - s, o2, starts2);
        if (k2 < k - 1) fail("fewer requests from the second on", s);
        for (int i = 0; i + 1 < k; i++)
            if (differ(&o[i + 1], &o2[i]) || starts2[i] != starts[i + 1] - s)
                fail("outcome depends on where the connection starts", s);
    }
    return 0;
}
