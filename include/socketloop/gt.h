/* socketloop green-thread runtime. MIT licence, see LICENSE.
 *
 * Conventions for every function here:
 * - A result >= 0 is success; a result < 0 is a negated errno value
 *   (-ETIMEDOUT, -ECANCELED, ...) or one of the GT_E* codes below.
 *   errno is never used to report our errors: other green threads run
 *   between a failure and its check.  gt_strerror() gives the text.
 * - Every call that can park takes an absolute deadline in milliseconds on
 *   the clock of gt_now(): -1 waits for ever, 0 tries once without parking.
 * - Each OS thread has its own scheduler, created on first use.  Nothing
 *   is shared between OS threads; ids, channels and semaphores belong to
 *   the OS thread that made them.  Every call on a channel or semaphore
 *   (and on a net_sock) from another OS thread returns GT_EOWNER and
 *   changes nothing.  Ids are numbers, not handles: each OS thread issues
 *   its own from 1, so an id taken to another OS thread names one of that
 *   thread's green threads or none, and no call can detect it.
 * - Calls that park (gt_sleep, gt_join, channel and semaphore operations,
 *   gt_transfer) need a green thread; made from outside one they return
 *   -EPERM.
 */
#ifndef SOCKETLOOP_GT_H
#define SOCKETLOOP_GT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GT_API __attribute__((visibility("default")))
#else
#define GT_API
#endif

/* Error codes that errno has no name for.  They lie below -4095 so they
 * never collide with a negated errno value. */
#define GT_EMAPLIMIT (-4200) /* vm.max_map_count reached; see GT_NOGUARD */
#define GT_EOWNER (-4201)    /* the object belongs to another OS thread */

/* A green thread's body.  When it returns, the green thread ends. */
typedef void gt_fn(void *arg);

/* Flags of gt_attr. */
#define GT_NOGUARD 0x1 /* no guard page: far more threads, canary only */

/* Attributes of a new green thread.  Zero fields take the defaults. */
typedef struct gt_attr {
    size_t stack_size; /* bytes, rounded up to pages; 0 = the default */
    const char *name;  /* copied (up to 31 bytes) for gt_dump and gdb */
    int flags;         /* GT_NOGUARD */
} gt_attr;

#define GT_STACK_DEFAULT ((size_t)64 * 1024)      /* default stack size */
#define GT_STACK_MIN ((size_t)16 * 1024)          /* smallest stack accepted */
#define GT_STACK_MAX ((size_t)1024 * 1024 * 1024) /* largest accepted */

/* Starts a green thread running fn(arg).  It runs when the scheduler next
 * picks it; threads start in the order they were spawned.  Returns its id
 * (> 0), or -EINVAL (NULL fn, stack size out of range), -ENOMEM or
 * GT_EMAPLIMIT.  `site` names where it was spawned ("file.c:42"); the macros
 * below fill it in. */
GT_API int64_t gt_spawn_at(gt_fn *fn, void *arg, const gt_attr *attr,
                           const char *site);
#define GT__STR2(x) #x
#define GT__STR(x) GT__STR2(x)
#define gt_spawn(fn, arg)                                                      \
    gt_spawn_at((fn), (arg), NULL, __FILE__ ":" GT__STR(__LINE__))
#define gt_spawn_attr(fn, arg, attr)                                           \
    gt_spawn_at((fn), (arg), (attr), __FILE__ ":" GT__STR(__LINE__))

/* Runs green thread `id`, which must be ready (spawned and not yet run,
 * say), at once instead of in its turn.  The caller goes on when it parks
 * or ends: a green thread caller stays ready, first in the queue; the
 * loop's own stack (outside green threads) gets control back then.
 * Returns 0, -ESRCH (no such live thread) or -EBUSY (not ready). */
GT_API int gt_run_now(int64_t id);

/* Sets the stack size and guard mode used when gt_attr leaves them unset,
 * for this OS thread's scheduler.  Only stacks of the default size are
 * pooled for reuse.  Returns 0 or -EINVAL. */
GT_API int gt_set_default_stack(size_t stack_size, int flags);

/* The id of the running green thread, or 0 outside green threads. */
GT_API int64_t gt_self(void);

/* Milliseconds on a monotonic clock. */
GT_API int64_t gt_now(void);

/* Lets every other ready green thread run once, then continues.  Returns 0,
 * -ECANCELED if this thread was cancelled, -EPERM outside green threads. */
GT_API int gt_yield(void);

/* Parks until the deadline.  Returns 0, -ECANCELED or -EPERM. */
GT_API int gt_sleep(int64_t deadline);

/* Waits until green thread `id` has ended.  Returns 0 when it has ended
 * (also when it ended before the call), -ETIMEDOUT, -ECANCELED (the caller
 * was cancelled), -ESRCH (no such id was ever issued), -EDEADLK (joining
 * oneself), -EBUSY (another green thread already joins it), -EPERM. */
GT_API int gt_join(int64_t id, int64_t deadline);

/* Cancels green thread `id` cooperatively: its current parking call and
 * every later one that would park return -ECANCELED (gt_yield too, even
 * when the cancel came while it was yielding).  A call that can complete
 * at once (a channel with an element ready, a semaphore with a unit
 * free) still does.  The thread keeps running until its function returns,
 * so a joiner of it wakes only then.  Cancelling oneself is allowed.
 * Returns 0, also for a thread that has already ended, or -ESRCH for an
 * id never issued. */
GT_API int gt_cancel(int64_t id);

/* Symmetric transfer: hands control straight to green thread `id`, which
 * must be parked in gt_transfer or spawned and not yet started, passing it
 * `val`.  The caller parks until some green thread transfers back to it;
 * then *out (if not NULL) receives the value that one passed.  A thread
 * started by a transfer begins its function normally; the value is then
 * dropped.  Returns 0, -EBUSY (target busy in another wait or running),
 * -ESRCH, -EINVAL (oneself), -ECANCELED, -ETIMEDOUT, -EPERM. */
GT_API int gt_transfer(int64_t id, void *val, void **out, int64_t deadline);

/* --- The loop ---------------------------------------------------------
 * The loop runs on the OS thread's own stack.  Green threads switch
 * directly to one another while any is ready; the loop regains control
 * when none is ready, or after a bounded number of switches so that I/O
 * and timers are never starved. */

/* One round: waits (until the deadline at most, or the next timer) for
 * something to become ready when nothing is, then runs the ready green
 * threads.  Returns 1 while anything is alive or waits (a green thread,
 * or an operation started with net_op_start), 0 when nothing does,
 * -EDEADLK when every live green thread waits for something that can never
 * happen (no timer, no I/O, no ready thread), -EPERM from a green thread. */
GT_API int gt_dispatch(int64_t deadline);

/* Dispatches until no green thread is alive (returns 0), gt_stop() was
 * called (returns 1; the stop is cleared by the next gt_start), the
 * deadline passes (-ETIMEDOUT), or a deadlock is found (-EDEADLK). */
GT_API int gt_start(int64_t deadline);

/* Makes the running gt_start return after the current round.  Returns 0. */
GT_API int gt_stop(void);

/* gt_start(-1), ignoring gt_stop: returns 0 once every green thread has
 * ended, -EDEADLK, or -EPERM (at once) when called from a green thread:
 * the loop runs only on the OS thread's own stack. */
GT_API int gt_run(void);

/* Prints one line per live green thread of this OS thread: id, name,
 * state, what it waits on, and where it was spawned; first, on an OS
 * thread that uses the net layer, "poller NAME".  Returns the number of
 * green threads listed. */
GT_API int gt_dump(FILE *out);

/* --- Channels ----------------------------------------------------------
 * A channel carries fixed-size elements between green threads of one OS
 * thread.  Capacity 0 makes an unbuffered (rendezvous) channel. */
typedef struct gt_chan gt_chan;

/* Every call below returns GT_EOWNER for a channel made on another OS
 * thread, -EINVAL for NULL.  Elements are 1 byte to 1 GiB; a buffered
 * channel holds at most SIZE_MAX / 2 bytes of them (else -EINVAL). */
GT_API int gt_chan_make(gt_chan **out, size_t elem_size, size_t capacity);
/* Copies elem into the channel.  -EPIPE once the channel is closed. */
GT_API int gt_chan_send(gt_chan *ch, const void *elem, int64_t deadline);
/* Copies an element out.  Buffered elements are still delivered after
 * close; then -EPIPE. */
GT_API int gt_chan_recv(gt_chan *ch, void *elem, int64_t deadline);
/* Closes: every parked sender and receiver wakes with -EPIPE. */
GT_API int gt_chan_close(gt_chan *ch);
/* Frees a channel; -EBUSY while green threads wait on it. */
GT_API int gt_chan_free(gt_chan *ch);

#define GT_SEND 1
#define GT_RECV 2
/* One clause of gt_choose. */
typedef struct gt_chan_op {
    gt_chan *ch; /* the channel */
    int op;      /* GT_SEND or GT_RECV */
    void *elem;  /* element to send, or buffer to receive into */
    int result;  /* out: 0, or -EPIPE if the channel was closed */
} gt_chan_op;

/* Waits until one of the operations can proceed, performs it and returns
 * its index; when several can, the first in the array wins.  The chosen
 * op's `result` says whether it moved an element (0) or found its channel
 * closed (-EPIPE).  Returns -ETIMEDOUT, -ECANCELED, -EINVAL, GT_EOWNER or
 * -EPERM when nothing was performed.  At most 64 operations (n > 64:
 * -EINVAL). */
GT_API int gt_choose(gt_chan_op *ops, int n, int64_t deadline);

/* --- Semaphores --------------------------------------------------------
 * A counting semaphore; a mutex is a semaphore made with count 1.  Waiters
 * are served first come, first served. */
typedef struct gt_sem gt_sem;

/* The calls below return GT_EOWNER for a semaphore made on another OS
 * thread, -EINVAL for NULL. */
GT_API int gt_sem_make(gt_sem **out, unsigned count);
GT_API int gt_sem_acquire(gt_sem *s, int64_t deadline);
GT_API int gt_sem_release(gt_sem *s);
/* Frees a semaphore; -EBUSY while green threads wait on it. */
GT_API int gt_sem_free(gt_sem *s);

/* Text for any result code of socketloop: a negated errno value, GT_E*
 * or NET_E* (socketloop/net.h); net_strerror gives the same.  Never
 * NULL. */
GT_API const char *gt_strerror(int rc);

#ifdef __cplusplus
}
#endif

#endif
