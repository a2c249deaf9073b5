/* Buffered receive with LuaSocket's patterns: the step of
 * NET_OP_RECEIVE, and net_receive on it.  A line is scanned in the
 * socket's own read-ahead buffer, which it holds only while that has
 * bytes in it (so an idle connection keeps none); the loop keeps a few
 * freed ones for the next socket, so a busy server does not allocate per
 * line.  Exact counts and read-to-close go straight into the caller's
 * buffer when nothing is buffered.
 *
 * A line longer than the socket's limit fails with -EMSGSIZE, having
 * appended the limit's worth; the rest of that line, up to its LF, is
 * then dropped as it arrives, so the next call of any kind starts at the
 * next line instead of in the middle of this one. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NET__RBUF 8192                 /* the socket's read-ahead buffer */
#define NET__CHUNK ((size_t)64 * 1024) /* most out grows by per read */

void net_buf_free(net_buf *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void net__rbuf_release(net_sock *s)
{
    /* Nor while a completion backend's receive into it is pending. */
    if (!s->rbuf || s->rlen || (s->sub[0].state && s->sub[0].buf == s->rbuf))
        return;
    net__loop *L = s->L;
    if (s->rcap == NET__RBUF && L->nspare < NET__SPARE)
        L->spare[L->nspare++] = s->rbuf;
    else
        free(s->rbuf);
    s->rbuf = NULL;
    s->rpos = s->rcap = 0;
}

static int rbuf_get(net_sock *s)
{
    if (s->rbuf) return 0;
    net__loop *L = s->L;
    s->rbuf = L->nspare ? L->spare[--L->nspare] : malloc(NET__RBUF);
    if (!s->rbuf) return -ENOMEM;
    s->rcap = NET__RBUF;
    return 0;
}

int net_unread(net_sock *s, const void *data, size_t n)
{
    if (!s || (!data && n)) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    if (s->closed) return NET_ECLOSED;
    if (!n) return 0;
    /* Also while a completion backend reads into the buffer it would
     * replace. */
    if (s->rlen || s->sub[0].state) return -EBUSY;
    net__rbuf_release(s);
    size_t cap = n > NET__RBUF ? n : NET__RBUF;
    if (!(s->rbuf = malloc(cap))) return -ENOMEM;
    memcpy(s->rbuf, data, n);
    s->rcap = cap;
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

/* Refills the empty read-ahead buffer: > 0 bytes, 0 at end of stream,
 * -EAGAIN, or an error. */
static ssize_t fill(net_sock *s, const net_op *op)
{
    /* A socket known to be empty is not read (see net__read): asked
     * first, so that the step of an op that will wait takes no buffer. */
    if (net__dry(s, 0, op)) return -EAGAIN;
    if (rbuf_get(s) < 0) return -ENOMEM;
    s->rpos = 0;
    ssize_t r = net__read(s, s->rbuf, s->rcap, op);
    s->rlen = r > 0 ? (size_t)r : 0;
    return r;
}

/* The step's end: DONE with rc (0 meaning "what this op appended"). */
static int done(net_op *op, ssize_t rc)
{
    op->rc = rc < 0 ? rc : (ssize_t)(op->out->len - net__x(op)->start);
    return NET__DONE;
}

/* A fill that brought nothing: wait, or end at end of stream or error. */
static int dry_or_end(net_op *op, ssize_t r, ssize_t at_end)
{
    if (r == -EAGAIN) return NET__WAIT_IN;
    return done(op, r < 0 ? r : at_end);
}

int net__skip_line(net_sock *s, net_op *op)
{
    while (s->skip_line) {
        if (!s->rlen) {
            ssize_t r = fill(s, op);
            if (r == -EAGAIN) return NET__WAIT_IN;
            if (r < 0) {
                op->rc = r;
                return NET__DONE;
            }
            if (r == 0) { /* the line ended with the stream */
                s->skip_line = 0;
                break;
            }
        }
        const char *p = memchr(s->rbuf + s->rpos, '\n', s->rlen);
        size_t k = p ? (size_t)(p - (s->rbuf + s->rpos)) + 1 : s->rlen;
        s->rpos += k;
        s->rlen -= k;
        if (p) s->skip_line = 0;
    }
    return NET__GO;
}

/* Appends up to LF, dropping every CR; 1 when the LF was found. */
static int scan_line(net_sock *s, net_buf *out, size_t room, int *full)
{
    const char *p = s->rbuf + s->rpos;
    size_t i;
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

static int line(net_sock *s, net_op *op)
{
    net_buf *out = op->out;
    size_t start = net__x(op)->start;
    for (;;) {
        if (!s->rlen) {
            ssize_t r = fill(s, op);
            if (r <= 0) return dry_or_end(op, r, NET_EEOF);
        }
        size_t room = s->max_line - (out->len - start);
        if (reserve(out, s->rlen < room ? s->rlen : room) < 0)
            return done(op, -ENOMEM);
        int full = 0;
        if (scan_line(s, out, room, &full)) return done(op, 0);
        if (full) {
            s->skip_line = 1;
            return done(op, -EMSGSIZE);
        }
    }
}

/* Takes k bytes of the read-ahead buffer into out. */
static int take(net_sock *s, net_buf *out, size_t k)
{
    if (reserve(out, k) < 0) return -ENOMEM;
    memcpy(out->data + out->len, s->rbuf + s->rpos, k);
    out->len += k;
    s->rpos += k;
    s->rlen -= k;
    return 0;
}

/* Counts and read-to-close read straight into out only when it has room
 * for a whole read-ahead buffer's worth already (a big transfer); small
 * reads go through the read-ahead buffer, so that a call that waits holds
 * no memory of its own for what has not come yet. */
static int bytes(net_sock *s, net_op *op)
{
    net_buf *out = op->out;
    size_t start = net__x(op)->start, n = op->n;
    if (!n) { /* wait for data, and keep it buffered */
        ssize_t r = s->rlen ? 1 : fill(s, op);
        return r <= 0 ? dry_or_end(op, r, NET_EEOF) : done(op, 0);
    }
    if (n > SIZE_MAX / 2 - out->len) return done(op, -ENOMEM);
    for (;;) {
        size_t got = out->len - start, want = n - got;
        if (!want || (got && (op->flags & NET_OP_SOME))) return done(op, 0);
        ssize_t r;
        if (s->rlen) {
            if (take(s, out, want < s->rlen ? want : s->rlen) < 0)
                return done(op, -ENOMEM);
            continue;
        }
        if (want >= NET__RBUF) {
            if (want > NET__CHUNK) want = NET__CHUNK;
            if (reserve(out, want) < 0) return done(op, -ENOMEM);
            r = net__read(s, out->data + out->len, want, op);
            if (r > 0) out->len += (size_t)r;
        } else {
            r = fill(s, op);
        }
        if (r <= 0) return dry_or_end(op, r, NET_EEOF);
    }
}

static int all(net_sock *s, net_op *op)
{
    net_buf *out = op->out;
    for (;;) {
        ssize_t r;
        if (s->rlen) {
            if (take(s, out, s->rlen) < 0) return done(op, -ENOMEM);
            continue;
        }
        if (out->cap - out->len >= NET__RBUF) {
            r = net__read(s, out->data + out->len, out->cap - out->len, op);
            if (r > 0) out->len += (size_t)r;
        } else {
            r = fill(s, op);
        }
        if (r <= 0) return dry_or_end(op, r, 0);
    }
}

int net__receive_step(net_op *op)
{
    net_sock *s = op->s;
    int r;
    if (s->closed) {
        op->rc = NET_ECLOSED;
        r = NET__DONE;
    } else if ((r = net__skip_line(s, op)) != NET__GO) {
        /* still dropping an over-long line: wait, or it failed */
    } else if (op->pattern == NET_LINE) {
        r = line(s, op);
    } else if (op->pattern == NET_BYTES) {
        r = bytes(s, op);
    } else {
        r = all(s, op);
    }
    op->moved = op->out->len - net__x(op)->start;
    net__rbuf_release(s);
    return r;
}

ssize_t net_receive(net_sock *s, int pattern, size_t n, net_buf *out,
                    int64_t deadline)
{
    net_op op = {.kind = NET_OP_RECEIVE,
                 .s = s,
                 .pattern = pattern,
                 .n = n,
                 .out = out,
                 .deadline = deadline,
                 .idle = -1};
    return net_op_run(&op);
}
