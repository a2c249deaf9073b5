/* The wrappers of fault.h.  The test programs are linked with
 * -Wl,--wrap=NAME for each function here, so that every reference to NAME
 * in the static library (and in the test's own objects) calls __wrap_NAME,
 * which either fails or calls the real function as __real_NAME.  Calls from
 * shared libraries (libc's own, CMocka's) are not wrapped.
 *
 * getaddrinfo runs on the resolver's worker threads too, so the counters
 * are atomic.  The plan itself is written only while nothing is armed. */
#define _GNU_SOURCE 1
#include "fault.h"

#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <socketloop/gt.h>

const char *const fault_site_name[FS_NSITES] = {
    "mmap",        "mprotect",    "malloc",         "calloc",
    "realloc",     "strdup",      "epoll_create1",  "epoll_ctl",
    "epoll_wait",  "poll",        "select",         "socket",
    "eventfd",     "accept4",     "connect",        "recv",
    "send",        "getaddrinfo", "pthread_create", "uring_setup",
    "uring_enter",
};

static atomic_int armed, hit;
static atomic_long calls[FS_NSITES];
static int plan_site, plan_err;
static long plan_nth;
static int64_t hit_who, spared[4];
static int nspared;

void fault_arm(int site, long nth, int err)
{
    for (int i = 0; i < FS_NSITES; i++) atomic_store(&calls[i], 0);
    plan_site = site;
    plan_nth = nth;
    plan_err = err;
    hit_who = 0;
    atomic_store(&hit, 0);
    atomic_store(&armed, 1);
}

void fault_disarm(void)
{
    atomic_store(&armed, 0);
}

long fault_calls(int site)
{
    return atomic_load(&calls[site]);
}

int fault_hit(int64_t *who)
{
    int h = atomic_load(&hit);
    if (who) *who = hit_who;
    return h;
}

void fault_spare(const int64_t *ids, int n)
{
    nspared = n < 4 ? n : 4;
    for (int i = 0; i < nspared; i++) spared[i] = ids[i];
}

/* Counts a call of `site`; returns the error to inject, or 0 to go on. */
static int take(int site)
{
    if (!atomic_load(&armed)) return 0;
    int64_t self = gt_self();
    for (int i = 0; self && i < nspared; i++)
        if (spared[i] == self) return 0;
    long n = atomic_fetch_add(&calls[site], 1) + 1;
    if (site != plan_site || n != plan_nth) return 0;
    hit_who = self;
    atomic_store(&hit, 1);
    return plan_err;
}

/* Declarations, for -Wmissing-prototypes. */
void *__real_mmap(void *, size_t, int, int, int, off_t);
void *__wrap_mmap(void *, size_t, int, int, int, off_t);
int __real_mprotect(void *, size_t, int);
int __wrap_mprotect(void *, size_t, int);
int __real_madvise(void *, size_t, int);
int __wrap_madvise(void *, size_t, int);
void *__real_malloc(size_t);
void *__wrap_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__wrap_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__wrap_realloc(void *, size_t);
char *__real_strdup(const char *);
char *__wrap_strdup(const char *);
int __real_epoll_create1(int);
int __wrap_epoll_create1(int);
int __real_epoll_ctl(int, int, int, struct epoll_event *);
int __wrap_epoll_ctl(int, int, int, struct epoll_event *);
int __real_epoll_wait(int, struct epoll_event *, int, int);
int __wrap_epoll_wait(int, struct epoll_event *, int, int);
int __real_poll(struct pollfd *, nfds_t, int);
int __wrap_poll(struct pollfd *, nfds_t, int);
int __real_select(int, fd_set *, fd_set *, fd_set *, struct timeval *);
int __wrap_select(int, fd_set *, fd_set *, fd_set *, struct timeval *);
int __real_socket(int, int, int);
int __wrap_socket(int, int, int);
int __real_eventfd(unsigned, int);
int __wrap_eventfd(unsigned, int);
int __real_accept4(int, struct sockaddr *, socklen_t *, int);
int __wrap_accept4(int, struct sockaddr *, socklen_t *, int);
int __real_connect(int, const struct sockaddr *, socklen_t);
int __wrap_connect(int, const struct sockaddr *, socklen_t);
ssize_t __real_recv(int, void *, size_t, int);
ssize_t __wrap_recv(int, void *, size_t, int);
ssize_t __real_send(int, const void *, size_t, int);
ssize_t __wrap_send(int, const void *, size_t, int);
int __real_getaddrinfo(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **);
int __wrap_getaddrinfo(const char *, const char *, const struct addrinfo *,
                       struct addrinfo **);
int __real_pthread_create(pthread_t *, const pthread_attr_t *,
                          void *(*)(void *), void *);
int __wrap_pthread_create(pthread_t *, const pthread_attr_t *,
                          void *(*)(void *), void *);

/* Fails a call that reports errors through errno: returns `bad`. */
#define FAIL_OR(site, bad, call)                                               \
    do {                                                                       \
        int err_ = take(site);                                                 \
        if (err_) {                                                            \
            errno = err_;                                                      \
            return bad;                                                        \
        }                                                                      \
        return call;                                                           \
    } while (0)

void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    FAIL_OR(FS_MMAP, MAP_FAILED, __real_mmap(a, n, prot, flags, fd, off));
}

int __wrap_mprotect(void *a, size_t n, int prot)
{
    FAIL_OR(FS_MPROTECT, -1, __real_mprotect(a, n, prot));
}

/* Guard pages made by marking (MADV_GUARD_INSTALL, Linux 6.13+) are
 * refused for the whole program, so that the runtime makes them with
 * mprotect, whose failure is then reachable. */
int __wrap_madvise(void *a, size_t n, int advice)
{
    if (advice == 102) { /* MADV_GUARD_INSTALL */
        errno = EINVAL;
        return -1;
    }
    return __real_madvise(a, n, advice);
}

void *__wrap_malloc(size_t n)
{
    FAIL_OR(FS_MALLOC, NULL, __real_malloc(n));
}

void *__wrap_calloc(size_t k, size_t n)
{
    FAIL_OR(FS_CALLOC, NULL, __real_calloc(k, n));
}

void *__wrap_realloc(void *p, size_t n)
{
    FAIL_OR(FS_REALLOC, NULL, __real_realloc(p, n));
}

char *__wrap_strdup(const char *s)
{
    FAIL_OR(FS_STRDUP, NULL, __real_strdup(s));
}

int __wrap_epoll_create1(int flags)
{
    FAIL_OR(FS_EPOLL_CREATE1, -1, __real_epoll_create1(flags));
}

int __wrap_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
    FAIL_OR(FS_EPOLL_CTL, -1, __real_epoll_ctl(ep, op, fd, ev));
}

int __wrap_epoll_wait(int ep, struct epoll_event *ev, int max, int ms)
{
    FAIL_OR(FS_EPOLL_WAIT, -1, __real_epoll_wait(ep, ev, max, ms));
}

int __wrap_poll(struct pollfd *p, nfds_t n, int ms)
{
    FAIL_OR(FS_POLL, -1, __real_poll(p, n, ms));
}

int __wrap_select(int n, fd_set *r, fd_set *w, fd_set *e, struct timeval *tv)
{
    FAIL_OR(FS_SELECT, -1, __real_select(n, r, w, e, tv));
}

int __wrap_socket(int domain, int type, int proto)
{
    FAIL_OR(FS_SOCKET, -1, __real_socket(domain, type, proto));
}

int __wrap_eventfd(unsigned init, int flags)
{
    FAIL_OR(FS_EVENTFD, -1, __real_eventfd(init, flags));
}

int __wrap_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
    FAIL_OR(FS_ACCEPT4, -1, __real_accept4(fd, sa, len, flags));
}

int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    FAIL_OR(FS_CONNECT, -1, __real_connect(fd, sa, len));
}

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
    FAIL_OR(FS_RECV, -1, __real_recv(fd, buf, n, flags));
}

ssize_t __wrap_send(int fd, const void *buf, size_t n, int flags)
{
    FAIL_OR(FS_SEND, -1, __real_send(fd, buf, n, flags));
}

/* These two report errors in their results, not in errno. */
int __wrap_getaddrinfo(const char *host, const char *serv,
                       const struct addrinfo *hints, struct addrinfo **res)
{
    int err = take(FS_GETADDRINFO);
    return err ? err : __real_getaddrinfo(host, serv, hints, res);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    int err = take(FS_PTHREAD_CREATE);
    return err ? err : __real_pthread_create(t, attr, fn, arg);
}

#ifdef SL_FAULT_URING
#include <liburing.h>

/* liburing returns -errno. */
int __real_io_uring_queue_init_params(unsigned, struct io_uring *,
                                      struct io_uring_params *);
int __wrap_io_uring_queue_init_params(unsigned, struct io_uring *,
                                      struct io_uring_params *);
int __real_io_uring_submit_and_wait(struct io_uring *, unsigned);
int __wrap_io_uring_submit_and_wait(struct io_uring *, unsigned);
int __real_io_uring_submit_and_get_events(struct io_uring *);
int __wrap_io_uring_submit_and_get_events(struct io_uring *);
int __real_io_uring_submit_and_wait_timeout(struct io_uring *,
                                            struct io_uring_cqe **, unsigned,
                                            struct __kernel_timespec *,
                                            sigset_t *);
int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *,
                                            struct io_uring_cqe **, unsigned,
                                            struct __kernel_timespec *,
                                            sigset_t *);

int __wrap_io_uring_queue_init_params(unsigned n, struct io_uring *r,
                                      struct io_uring_params *p)
{
    int err = take(FS_URING_SETUP);
    return err ? -err : __real_io_uring_queue_init_params(n, r, p);
}

int __wrap_io_uring_submit_and_wait(struct io_uring *r, unsigned n)
{
    int err = take(FS_URING_ENTER);
    return err ? -err : __real_io_uring_submit_and_wait(r, n);
}

int __wrap_io_uring_submit_and_get_events(struct io_uring *r)
{
    int err = take(FS_URING_ENTER);
    return err ? -err : __real_io_uring_submit_and_get_events(r);
}

int __wrap_io_uring_submit_and_wait_timeout(struct io_uring *r,
                                            struct io_uring_cqe **cqe,
                                            unsigned n,
                                            struct __kernel_timespec *ts,
                                            sigset_t *sig)
{
    int err = take(FS_URING_ENTER);
    return err ? -err
               : __real_io_uring_submit_and_wait_timeout(r, cqe, n, ts, sig);
}
#endif

int fault_count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}
