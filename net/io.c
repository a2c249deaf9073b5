/* Reading and writing: try the system call, park on EAGAIN, try again.
 * Errors come back on the call that met them; EINTR is retried.
 *
 * A read that returns less than asked for has drained the socket, and a
 * write that takes less has filled it: the next call then parks first
 * instead of making a system call that can only say EAGAIN.  The poller's
 * next event for that direction clears the mark.  Epoll reports every new
 * arrival even edge-triggered, so nothing is missed; a peer's shutdown may
 * already have been reported with the data, so reads never rely on the
 * mark after a hang-up.
 *
 * A peer that keeps the socket full (or empty, for writes) would let its
 * green thread read and write without ever parking, and so keep the OS
 * thread from every other connection.  Once a socket has moved
 * NET__QUANTUM bytes without parking, the next call on it first puts its
 * thread behind the others and lets the loop poll (net__take_turn).  At
 * the start of a call, before it touches anything: a send or a buffered
 * receive that gave way in its middle would let another thread's call on
 * the socket cut into it, and one that gave way at its end would let
 * others run between filling the caller's buffer and the caller reading
 * it.  Try-once calls (deadline 0) never give way. */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Skip the system call?  Only when it would park anyway: in a green
 * thread, with time to wait, on a socket the poller watches (whose next
 * event clears the mark).  A try-once call always tries. */
static int dry_now(const net_sock *s, int dir, int64_t deadline)
{
    return s->w.dry[dir] && s->registered && deadline != 0 && gt__S.current;
}

void net__take_turn(net_sock *s, int64_t deadline)
{
    if (deadline == 0 || s->streak < NET__QUANTUM) return;
    s->streak = 0;
    gt__yield_loop();
}

ssize_t net__read(net_sock *s, void *buf, size_t n, int64_t deadline)
{
    if (s->closed) return NET_ECLOSED;
    if (s->rlen) {
        size_t k = n < s->rlen ? n : s->rlen;
        memcpy(buf, s->rbuf + s->rpos, k);
        s->rpos += k;
        s->rlen -= k;
        return (ssize_t)k;
    }
    for (;;) {
        if (!dry_now(s, 0, deadline)) {
            ssize_t r = recv(s->w.fd, buf, n, 0);
            if (r >= 0) {
                s->in += (uint64_t)r;
                /* Not after a hang-up: the end of stream comes with no
                 * event of its own once that one is spent. */
                if (r > 0 && (size_t)r < n && !s->w.hup) s->w.dry[0] = 1;
                s->streak += (size_t)r;
                return r;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
            s->w.dry[0] = 1;
        }
        int rc = net__sock_wait(s, 0, deadline);
        if (rc < 0) return rc;
    }
}

ssize_t net_recv(net_sock *s, void *buf, size_t n, int64_t deadline)
{
    if (!s || !buf || !n) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    s->refs++;
    net__take_turn(s, deadline);
    ssize_t r = net__read(s, buf, n, deadline);
    net__unref(s);
    return r;
}

ssize_t net_send(net_sock *s, const void *buf, size_t n, size_t *sent,
                 int64_t deadline)
{
    size_t done = 0;
    ssize_t rc = 0;
    if (!s || (!buf && n)) return -EINVAL;
    if (net__alien(s)) return GT_EOWNER;
    s->refs++;
    net__take_turn(s, deadline);
    while (done < n) {
        if (s->closed) {
            rc = NET_ECLOSED;
            break;
        }
        if (!dry_now(s, 1, deadline)) {
            ssize_t r =
                send(s->w.fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
            if (r >= 0) {
                if ((size_t)r < n - done) s->w.dry[1] = 1;
                done += (size_t)r;
                s->out += (uint64_t)r;
                s->streak += (size_t)r;
                continue;
            }
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                rc = -errno;
                break;
            }
            s->w.dry[1] = 1;
        }
        if ((rc = net__sock_wait(s, 1, deadline)) < 0) break;
    }
    net__unref(s);
    if (sent) *sent = done;
    return rc < 0 ? rc : (ssize_t)done;
}
