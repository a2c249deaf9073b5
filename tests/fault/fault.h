/* Fault injection for tests, by link-time wrapping (see fault.c): the
 * library's calls of the functions below land in wrappers that count them
 * and make the n-th call of one of them fail.  Nothing of this is in the
 * library itself, so release builds cannot contain it. */
#ifndef SL_FAULT_H
#define SL_FAULT_H

#include <stdint.h>

/* The call sites, one per wrapped function. */
enum {
    FS_MMAP,
    FS_MPROTECT,
    FS_MALLOC,
    FS_CALLOC,
    FS_REALLOC,
    FS_STRDUP,
    FS_EPOLL_CREATE1,
    FS_EPOLL_CTL,
    FS_EPOLL_WAIT,
    FS_POLL,
    FS_SELECT,
    FS_SOCKET,
    FS_EVENTFD,
    FS_ACCEPT4,
    FS_CONNECT,
    FS_RECV,
    FS_SEND,
    FS_GETADDRINFO,
    FS_PTHREAD_CREATE,
    FS_URING_SETUP, /* io_uring_queue_init_params */
    FS_URING_ENTER, /* the io_uring_submit* calls that enter the kernel */
    FS_NSITES
};

extern const char *const fault_site_name[FS_NSITES];

/* Counts every site's calls from zero; call `nth` (> 0; 0 for none) of
 * `site` fails with `err`: an errno value, an EAI_* code for getaddrinfo,
 * the result for pthread_create. */
void fault_arm(int site, long nth, int err);
/* Stops counting and failing. */
void fault_disarm(void);
/* Calls of `site` counted since fault_arm. */
long fault_calls(int site);
/* 1 once the armed fault was injected; *who is then the green thread that
 * made the call (0: the loop, the main stack or another OS thread). */
int fault_hit(int64_t *who);
/* The calls of these green threads (at most 4) are neither counted nor
 * failed: they stand for the rest of a program, which the fault does not
 * touch.  Applies to the next fault_arm; n = 0 clears the list. */
void fault_spare(const int64_t *ids, int n);

/* How many descriptors the process holds (-1 if /proc cannot say): a
 * walk checks that each run gives back all it opened. */
int fault_count_fds(void);

#endif
