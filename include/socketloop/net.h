/* socketloop net layer: TCP sockets whose blocking calls park the calling
 * green thread on the loop.  MIT licence, see LICENSE.
 *
 * The conventions of socketloop/gt.h hold: results >= 0 are success,
 * results < 0 are negated errno values or NET_E* / GT_E* codes (text from
 * net_strerror), and every call that can park takes an absolute deadline
 * in ms on gt_now()'s clock (-1 for ever, 0 try once).  Calls that would
 * park need a green thread; from outside one they return -EPERM.
 *
 * A socket belongs to the green threads of the OS thread that made it:
 * every call on it from another OS thread returns GT_EOWNER and changes
 * nothing (net_buffered returns 0).
 * End of stream and closed are told apart.  The peer closing its end is
 * end of stream: net_recv returns 0, NET_LINE and NET_BYTES fail with
 * NET_EEOF (NET_ALL ends with success), and each call after returns the
 * same again.  NET_ECLOSED means only that this side closed the socket:
 * net_close or net_release while a call waited on it (that call returns
 * NET_ECLOSED), or a call on a socket already closed where that can be
 * seen (a started operation, a server's own handle).  A reset peer gives
 * -ECONNRESET, a write after the peer left -EPIPE.
 *
 * One reader and one writer may wait on it at once; a second waiter in the
 * same direction gets -EALREADY at once.  net_close wakes every waiter
 * with NET_ECLOSED and closes the descriptor only after the last of them
 * has left, so the number is never reused under them.  A cancelled
 * green thread's call still completes if it can at once; if it must wait
 * it returns -ECANCELED, also when the socket was closed meanwhile
 * (gt_cancel wins over net_close).  An accept that pauses out of
 * descriptors is waiting too: a close wakes it.
 *
 * Fairness: a peer that keeps a socket full (or empty, for writes) never
 * makes its calls park.  Once a socket has moved 64 KiB without parking,
 * the next net_recv, net_receive or net_send on it (unless it only tries
 * once) first lets the loop poll and the threads that wake run.  It gives
 * way only there, at the start of the call: a call that returns data
 * never lets others run between filling the buffer and returning.
 *
 * The poller is chosen per OS thread when its first socket waits: epoll
 * (the default on Linux), poll, or select (descriptors below FD_SETSIZE
 * only), or whatever the environment variable SOCKETLOOP_POLLER names.
 */
#ifndef SOCKETLOOP_NET_H
#define SOCKETLOOP_NET_H

#include "gt.h"

#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NET_ECLOSED (-4300)    /* you closed the socket (net_close) */
#define NET_EFDSETSIZE (-4301) /* descriptor past FD_SETSIZE (select) */
#define NET_ENOTFOUND (-4302)  /* host name does not resolve */
#define NET_ERESOLVE (-4303)   /* name resolution failed otherwise */
#define NET_ETRYAGAIN (-4304)  /* temporary failure in name resolution */
#define NET_EEOF (-4305)       /* the peer closed: end of stream */

typedef struct net_sock net_sock;

/* Adopts a stream socket (connected, listening, or not yet connected; see
 * net_connect_addr); makes it non-blocking.  On success the socket owns
 * the descriptor (net_close closes it, net_release gives it back); on
 * failure the descriptor stays the caller's, untouched but for its
 * O_NONBLOCK flag. */
GT_API int net_wrap(net_sock **out, int fd);

/* Connects to host:port, trying each address the name resolves to (IPv4
 * and IPv6).  local_host/local_port (NULL/0 for any) bind the local end.
 * Names are resolved off the loop thread; numeric addresses at once. */
GT_API int net_connect(net_sock **out, const char *host, int port,
                       const char *local_host, int local_port,
                       int64_t deadline);

/* Connects the unconnected socket s (made with socket(2) and wrapped, so
 * that options and a local address could be set first) to addr. */
GT_API int net_connect_addr(net_sock *s, const struct sockaddr *addr,
                            socklen_t addrlen, int64_t deadline);
/* The same to host:port, resolved as net_connect does; each address of
 * the socket's own family is tried in turn. */
GT_API int net_connect_sock(net_sock *s, const char *host, int port,
                            int64_t deadline);

/* Listens on host:port (host NULL or "*": every IPv4 address; "::": every
 * IPv6 one; port 0: a free port).  SO_REUSEADDR is set.  A host name is
 * resolved without a deadline (from a green thread it parks for the
 * resolver; outside one it blocks the OS thread): listen on numeric
 * addresses, or "localhost", which /etc/hosts answers at once. */
GT_API int net_listen(net_sock **out, const char *host, int port, int backlog);

/* Options of a listening socket, set before bind(2) and listen(2), which
 * is the only time most of them take effect: this is how to ask for them,
 * rather than setsockopt on the descriptor afterwards. */
#define NET_LISTEN_REUSEPORT                                                   \
    0x1 /* SO_REUSEPORT: several listening sockets                             \
           (threads, processes) share the port and                             \
           the kernel spreads connections */
#define NET_LISTEN_V6ONLY                                                      \
    0x2 /* IPV6_V6ONLY: an IPv6 address ("::")                                 \
           takes IPv6 only, leaving the port's IPv4                            \
           side free; -EINVAL on an IPv4 address */
typedef struct net_listen_opts {
    int backlog;    /* queue length for listen(2); 0 or less: SOMAXCONN */
    unsigned flags; /* NET_LISTEN_*; other bits: -EINVAL */
} net_listen_opts;
/* net_listen with options; opts NULL: the defaults, which net_listen(...,
 * backlog) is.  SO_REUSEADDR is always set. */
GT_API int net_listen_ex(net_sock **out, const char *host, int port,
                         const net_listen_opts *opts);
/* Listens on s, a stream socket made with socket(2) and wrapped, on which
 * the caller set options and bound an address (or none: the kernel then
 * picks a port) first.  backlog as in net_listen.  A socket that listens
 * already, inherited from a parent process say, needs no call: net_wrap
 * it, then accept or serve on it. */
GT_API int net_listen_sock(net_sock *s, int backlog);

/* Unix-domain stream sockets.  path names a file, or, starting with '@',
 * a name in Linux's abstract namespace (the bytes after the '@'; no file,
 * gone when the last socket bound to it closes).  A path must be shorter
 * than 108 bytes, an abstract name at most 107: -ENAMETOOLONG otherwise;
 * "" and "@" give -EINVAL.  net_accept, the reads and writes, the options
 * that are not TCP's, and net_close work on these as on TCP sockets;
 * net_local_addr/net_peer_addr give family AF_UNIX (see net_addr).
 *
 * net_listen_unix does not remove an existing file at path: a stale one
 * (left by a process that died) gives -EADDRINUSE, and unlinking it is
 * the caller's choice.  Nor does closing the listener remove its file:
 * unlink it when the service ends (abstract names need neither).  The
 * file is made with the process's umask; its directory's permissions
 * decide who may connect. */
GT_API int net_listen_unix(net_sock **out, const char *path, int backlog);
/* Connects to the listener at path (see net_listen_unix).  Errors are the
 * kernel's: -ENOENT when nothing is at path, -ECONNREFUSED when nothing
 * listens there.  While the listener's backlog is full, it pauses and
 * tries again (5 ms doubling to 1 s) until the deadline, then returns
 * -EAGAIN; deadline 0 tries once. */
GT_API int net_connect_unix(net_sock **out, const char *path, int64_t deadline);

/* Accepts a connection (non-blocking, close-on-exec).  Out of descriptors
 * (EMFILE, ENFILE) it backs off, 5 ms doubling to 1 s, and tries again
 * until the deadline, then returns that error. */
GT_API int net_accept(net_sock *listener, net_sock **out, int64_t deadline);

/* A server: listens, and runs handler(sock, arg) in a green
 * thread of its own for each accepted connection.  The socket is closed
 * when the handler returns, unless the handler closed it.  Closing the
 * listener (*out) stops the acceptor.  Handler threads are named "conn".
 * It is net_listen and net_server_start with a server that nobody holds:
 * it frees itself once the acceptor and the last handler have left.  For
 * a graceful shutdown, use the handle below. */
typedef void net_handler(net_sock *s, void *arg);
GT_API int net_serve(net_sock **out, const char *host, int port,
                     net_handler *handler, void *arg);

/* --- A server handle ----------------------------------------------------
 * net_server_start serves on any listening socket of this OS thread (from
 * net_listen, net_listen_ex, net_listen_sock, or a wrapped descriptor
 * that listens already): an acceptor green thread ("acceptor") spawns a
 * handler thread ("conn") per connection, as net_serve does.  From then
 * on the listener belongs to the server: the caller may still read its
 * address (net_local_addr), but must neither close it nor accept on it.
 * A graceful shutdown is stop, then wait (with a deadline), then cancel
 * what is left and wait again, then free.  Every call returns GT_EOWNER
 * from another OS thread, -EINVAL for NULL. */
typedef struct net_server net_server;
/* -EINVAL also when listener does not listen; -EBUSY when it is served or
 * accepted on already; NET_ECLOSED when it was closed.  On failure the
 * listener stays the caller's. */
GT_API int net_server_start(net_server **out, net_sock *listener,
                            net_handler *handler, void *arg);
/* Stops accepting: closes the listener, so that new connections are
 * refused (those queued and not yet accepted are reset).  Handler threads
 * go on.  Never parks; a second call does nothing.  Returns 0. */
GT_API int net_server_stop(net_server *srv);
/* Waits until no handler thread is live and, after net_server_stop, the
 * acceptor has left too (the listening descriptor is closed then).
 * Returns 0, -ETIMEDOUT at the deadline (the handlers keep running),
 * -ECANCELED, -EDEADLK from one of its own handler threads (which would
 * wait for itself), or -EPERM if it would park outside a green thread. */
GT_API int net_server_wait(net_server *srv, int64_t deadline);
/* gt_cancel()s every live handler thread: the calls they are parked in,
 * and their later ones that would park, return -ECANCELED.  Accepting goes
 * on unless stopped.  Returns how many threads it cancelled. */
GT_API int net_server_cancel(net_server *srv);
/* Handler threads live now (spawned and not yet returned). */
GT_API int net_server_count(const net_server *srv);
/* Frees the handle: -EBUSY while a handler thread lives, a green thread
 * waits in net_server_wait, or the server was not stopped. */
GT_API int net_server_free(net_server *srv);

/* Reads what is there, up to n bytes (at least 1): returns the count, 0
 * at end of stream (the peer has closed its end), NET_ECLOSED if the
 * socket is closed on this side while it waits.  buf belongs to the call
 * until it returns: on io_uring the kernel writes into it while the call
 * waits, so calls that wait at once must not share a buffer. */
GT_API ssize_t net_recv(net_sock *s, void *buf, size_t n, int64_t deadline);

/* Writes all n bytes; returns n, or an error with *sent (if not NULL)
 * telling how many went out.  Never raises SIGPIPE. */
GT_API ssize_t net_send(net_sock *s, const void *buf, size_t n, size_t *sent,
                        int64_t deadline);

/* how: SHUT_RD, SHUT_WR or SHUT_RDWR. */
GT_API int net_shutdown(net_sock *s, int how);

/* Closes; never parks.  Call it exactly once per socket: it frees the
 * handle (once the calls parked on it, woken with NET_ECLOSED, have
 * returned), so after net_close no call may be given it again, net_fd and
 * net_close included; that would read freed memory. */
GT_API int net_close(net_sock *s);

/* Like net_close, but the descriptor stays open and is returned: the
 * caller owns it again (blocking mode is left as it is).  Waiters wake
 * with NET_ECLOSED; bytes buffered in the socket are dropped. */
GT_API int net_release(net_sock *s);

/* The socket's descriptor, for what the options below lack; -1 for NULL.
 * It stays the socket's: close it only through net_close.  Valid only
 * until net_close (see there): there is no "closed" answer. */
GT_API int net_fd(const net_sock *s);

/* Socket options.  Each is one int, set and read through these calls, so
 * that the library knows every option set on its sockets.  Flags read 0
 * or 1 and set anything non-zero as 1; sizes, counts and times (seconds)
 * go to the kernel as given, which may round them or refuse them (its
 * errno comes back).  An unknown option, NULL, or setting a read-only
 * one gives -EINVAL; an option the socket's family lacks (TCP options
 * on a Unix-domain socket) gives the kernel's error, -EOPNOTSUPP. */
#define NET_NODELAY 1   /* TCP_NODELAY, flag */
#define NET_KEEPALIVE 2 /* SO_KEEPALIVE, flag */
#define NET_REUSEADDR 3 /* SO_REUSEADDR, flag */
#define NET_REUSEPORT 4 /* SO_REUSEPORT, flag */
#define NET_RCVBUF 5    /* SO_RCVBUF, bytes (Linux reads back twice that) */
#define NET_SNDBUF 6    /* SO_SNDBUF, bytes (likewise) */
/* SO_LINGER: seconds >= 0 turns lingering on with that time, -1 turns it
 * off; reads the seconds while on, -1 while off.  Below -1: -EINVAL. */
#define NET_LINGER 7
/* Read-only: the linger time the kernel holds, also while lingering is
 * off (turning it off keeps the time that was set before). */
#define NET_LINGER_TIME 8
#define NET_KEEPIDLE 9          /* TCP_KEEPIDLE, seconds */
#define NET_KEEPCNT 10          /* TCP_KEEPCNT, probes */
#define NET_KEEPINTVL 11        /* TCP_KEEPINTVL, seconds */
#define NET_V6ONLY 12           /* IPV6_V6ONLY, flag (IPv6 sockets only) */
#define NET_DEFER_ACCEPT 13     /* TCP_DEFER_ACCEPT, seconds */
#define NET_FASTOPEN 14         /* TCP_FASTOPEN, queue length (listeners) */
#define NET_FASTOPEN_CONNECT 15 /* TCP_FASTOPEN_CONNECT, 0 or 1 */
/* Read-only: the socket's pending error, taken (SO_ERROR): 0, or the
 * negated errno, as a result code; a second read gives 0. */
#define NET_ERROR 16
GT_API int net_setopt(net_sock *s, int opt, int value);
GT_API int net_getopt(net_sock *s, int opt, int *value);

/* A socket's address.  For AF_UNIX, host is the path, "@name" for an
 * abstract name (cut at a NUL byte inside it), or "" for a socket that
 * has no name (the connecting end); port is 0.  A file whose path itself
 * starts with '@' reads the same as the abstract name: name such files
 * "./@..." to keep them apart.  host holds every path the kernel allows
 * (108 bytes, "@" and the NUL included). */
typedef struct net_addr {
    char host[110]; /* numeric IPv4 or IPv6, or a Unix-domain name */
    int port;
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
} net_addr;
GT_API int net_local_addr(net_sock *s, net_addr *out);
GT_API int net_peer_addr(net_sock *s, net_addr *out);

/* Bytes received and sent through the socket, and its age in ms. */
GT_API int net_stats(net_sock *s, uint64_t *received, uint64_t *sent,
                     int64_t *age_ms);
/* Sets those counts, and the age (for code that carries a connection's
 * statistics over from another object). */
GT_API int net_set_stats(net_sock *s, uint64_t received, uint64_t sent,
                         int64_t age_ms);

/* Parks until a descriptor that is not a net_sock (a pipe, another
 * library's socket) is readable (NET_IN) or writable (NET_OUT).  Returns
 * the events that came, of those asked for; an error or hang-up on the
 * descriptor counts as all of them.  A descriptor that is ready already
 * returns at once, also outside green threads and with deadline 0.
 * - Any number of green threads may wait on one descriptor at once, in
 *   either direction or both, and on a net_sock's descriptor (net_fd);
 *   each is told only of the events it asked for.
 * - A descriptor that is not open gives -EBADF at once.  One that is
 *   closed while a green thread waits on it (or made to name another
 *   file, by dup2 or by a new descriptor taking its number) ends that
 *   wait with -EBADF, before the loop next polls; never a readiness, and
 *   the same on every poller.  Closing it does not disturb what waits on
 *   the number's next owner.
 * - A regular file or directory, which the kernel cannot poll, is always
 *   ready (as poll(2) reports it): the events asked for, at once.
 * - A parked net_wait costs one fstat per poll of the loop (the check for
 *   a close), and on epoll the loop then polls with poll(2) as well.  On
 *   select, fd must be below FD_SETSIZE (NET_EFDSETSIZE). */
#define NET_IN 1
#define NET_OUT 2
GT_API int net_wait(int fd, int events, int64_t deadline);

/* --- Buffered receive, with LuaSocket's patterns ----------------------
 * The socket keeps what it read past a pattern's end for the next call.
 * Each call appends to `out`, so whatever `out` holds is the prefix; on
 * an error `out` keeps the prefix and the partial data. */
typedef struct net_buf {
    char *data;
    size_t len, cap;
} net_buf;
GT_API void net_buf_free(net_buf *b);

#define NET_LINE 1  /* up to LF; the LF and every CR dropped */
#define NET_ALL 2   /* until the peer closes */
#define NET_BYTES 3 /* exactly n bytes; n = 0 waits for data, keeps it */
/* Returns the number of bytes this call appended.  NET_ALL ends with
 * success when the peer closes; NET_LINE and NET_BYTES then fail with
 * NET_EEOF, keeping what came in out (NET_ECLOSED only when the socket
 * is closed on this side while the call waits).  A line longer than the
 * socket's limit fails with -EMSGSIZE, having appended the limit's worth; the
 * rest of that line, up to its LF, is then dropped as it arrives, so the next
 * call of any kind starts at the next line.  -ENOMEM if out cannot grow.
 * Another call may take buffered bytes while one waits (only a second
 * waiter is refused): the waiting one then sees what that call left in
 * the buffer, and no byte is lost or reordered. */
GT_API ssize_t net_receive(net_sock *s, int pattern, size_t n, net_buf *out,
                           int64_t deadline);
/* Longest line NET_LINE accepts (default 1 MiB). */
GT_API int net_set_max_line(net_sock *s, size_t max);
/* Bytes read from the descriptor and not yet returned. */
GT_API size_t net_buffered(const net_sock *s);
/* Puts n bytes in front of what the socket returns next: bytes that a
 * previous owner of the descriptor read ahead.  -EBUSY if the socket
 * holds buffered bytes already. */
GT_API int net_unread(net_sock *s, const void *data, size_t n);

/* Name of the poller this OS thread uses: "epoll", "poll" or "select". */
GT_API const char *net_poller_name(void);

/* Frees this OS thread's poller and name-resolution threads.  -EBUSY
 * while sockets are open.  OS threads that exit free theirs by
 * themselves; the main thread may call this before exit. */
GT_API int net_cleanup(void);

/* Text for any result code of socketloop (NET_E*, GT_E*, errno): the
 * same as gt_strerror. */
GT_API const char *net_strerror(int rc);

#ifdef __cplusplus
}
#endif

#endif
