/* Buffered receive with LuaSocket's patterns.  A line is scanned in the
 * socket's own buffer (allocated only while it holds bytes, so an idle
 * connection keeps none); exact counts and read-to-close go straight into
 * the caller's buffer when nothing is buffered. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NET__RBUF 8192 /* the socket's read-ahead buffer */

void net_buf_free(net_buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int net__unread(net_sock *s, const char *data, size_t n)
{
    if (!n) return 0;
    if (s->rlen) return -EBUSY;
    /* fill() reads NET__RBUF bytes into the buffer once these are gone. */
    char *p = realloc(s->rbuf, n > NET__RBUF ? n : NET__RBUF);
    if (!p) return -ENOMEM;
    memcpy(p, data, n);
    s->rbuf = p;
    s->rpos = 0;
    s->rlen = n;
    return 0;
}

static int reserve(net_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return 0;
    if (extra > SIZE_MAX / 2 - b->len) return -ENOMEM;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* Refills the empty read-ahead buffer: > 0 bytes, 0 at end of stream. */
static ssize_t fill(net_sock *s, int64_t deadline)
{
    if (!s->rbuf && !(s->rbuf = malloc(NET__RBUF))) return -ENOMEM;
    ssize_t r = net__read(s, s->rbuf, NET__RBUF, deadline);
    s->rpos = 0;
    s->rlen = r > 0 ? (size_t)r : 0;
    return r;
}

static void take(net_sock *s, net_buf *out, size_t k)
{
    memcpy(out->data + out->len, s->rbuf + s->rpos, k);
    out->len += k;
    s->rpos += k;
    s->rlen -= k;
}

/* Appends up to LF, dropping every CR; 1 when the LF was found. */
static int scan_line(net_sock *s, net_buf *out, size_t start, int *full)
{
    const char *p = s->rbuf + s->rpos;
    size_t room = s->max_line - (out->len - start), i;
    for (i = 0; i < s->rlen; i++) {
        if (p[i] == '\n') break;
        if (p[i] == '\r') continue;
        if (!room) {
            *full = 1;
            break;
        }
        out->data[out->len++] = p[i];
        room--;
    }
    int found = i < s->rlen && p[i] == '\n';
    s->rpos += i + found;
    s->rlen -= i + found;
    return found;
}

static ssize_t line(net_sock *s, net_buf *out, int64_t deadline)
{
    size_t start = out->len;
    for (;;) {
        if (!s->rlen) {
            ssize_t r = fill(s, deadline);
            if (r <= 0) return r ? r : NET_ECLOSED;
        }
        size_t room = s->max_line - (out->len - start);
        if (reserve(out, s->rlen < room ? s->rlen : room) < 0) return -ENOMEM;
        int full = 0;
        if (scan_line(s, out, start, &full)) return 0;
        if (full) return -EMSGSIZE;
    }
}

static ssize_t bytes(net_sock *s, size_t n, net_buf *out, int64_t deadline)
{
    size_t got = 0;
    if (!n && !s->rlen) { /* wait for data, and keep it buffered */
        ssize_t r = fill(s, deadline);
        return r <= 0 ? (r ? r : NET_ECLOSED) : 0;
    }
    if (reserve(out, n) < 0) return -ENOMEM;
    while (got < n) {
        if (s->rlen) {
            size_t k = n - got < s->rlen ? n - got : s->rlen;
            take(s, out, k);
            got += k;
            continue;
        }
        ssize_t r = net__read(s, out->data + out->len, n - got, deadline);
        if (r <= 0) return r ? r : NET_ECLOSED;
        out->len += (size_t)r;
        got += (size_t)r;
    }
    return 0;
}

static ssize_t all(net_sock *s, net_buf *out, int64_t deadline)
{
    for (;;) {
        if (reserve(out, s->rlen ? s->rlen : NET__RBUF) < 0) return -ENOMEM;
        if (s->rlen) {
            take(s, out, s->rlen);
            continue;
        }
        ssize_t r =
            net__read(s, out->data + out->len, out->cap - out->len, deadline);
        if (r <= 0) return r;
        out->len += (size_t)r;
    }
}

ssize_t net_receive(net_sock *s, int pattern, size_t n, net_buf *out,
                    int64_t deadline)
{
    if (!s || !out) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    if (pattern != NET_LINE && pattern != NET_BYTES && pattern != NET_ALL)
        return -EINVAL;
    size_t start = out->len;
    ssize_t rc;
    s->refs++;
    net__take_turn(s, deadline);
    if (pattern == NET_LINE)
        rc = line(s, out, deadline);
    else if (pattern == NET_BYTES)
        rc = bytes(s, n, out, deadline);
    else
        rc = all(s, out, deadline);
    /* An idle connection keeps no read-ahead buffer (unless a reader is
     * parked filling it: this call may be a second reader, refused). */
    if (!s->rlen && s->rbuf && !s->w.waiter[0] && !s->w.watch[0]) {
        free(s->rbuf);
        s->rbuf = NULL;
    }
    net__unref(s);
    return rc < 0 ? rc : (ssize_t)(out->len - start);
}
