/* Shared helpers for the green-thread tests.
 *
 * Rule: a failing CMocka assertion longjmps, and a longjmp must never cross
 * green-thread stacks.  So code running inside a green thread only records
 * facts (tg_event, tg_rc, plain structs); the test function asserts on them
 * on the main stack after gt_run()/gt_start() has returned.
 *
 * Include this first in every test file (it pulls in the CMocka headers in
 * the order CMocka needs).  Each test file is a single translation unit, so
 * the static state below is per test program. */
#ifndef SL_GT_TEST_H
#define SL_GT_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <socketloop/gt.h>

#define TG_UNUSED __attribute__((unused))

/* --- Build / environment detection ------------------------------------ */

#if defined(__SANITIZE_ADDRESS__)
#define TG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_ASAN 1
#endif
#endif
#ifndef TG_ASAN
#define TG_ASAN 0
#endif

static inline int tg_under_valgrind(void)
{
    const char *v = getenv("SL_UNDER_VALGRIND");
    return v != NULL && *v != '\0' && strcmp(v, "0") != 0;
}

/* Generous upper bound for "this short wait did not take for ever". */
static inline int64_t tg_slack_ms(void)
{
    return tg_under_valgrind() ? 10000 : 2000;
}

/* --- Watchdog ----------------------------------------------------------- */

TG_UNUSED static void tg_watchdog_fired(int sig)
{
    static const char msg[] = "\n*** watchdog: test program hung, aborting\n";
    (void)sig;
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(111);
}

/* Arms alarm(): a hung test dies on its own before CTest's TIMEOUT. */
static inline void tg_watchdog(unsigned seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tg_watchdog_fired;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm(tg_under_valgrind() ? seconds * 5 : seconds);
}

/* --- Recording from green threads ------------------------------------- */

#define TG_MAX_EVENTS 4096

/* An ordered log of events (small integers chosen by each test). */
static struct {
    int n;
    int lost; /* events dropped because the log was full */
    int64_t v[TG_MAX_EVENTS];
} tg_log TG_UNUSED;

static inline void tg_event(int64_t v)
{
    if (tg_log.n < TG_MAX_EVENTS)
        tg_log.v[tg_log.n++] = v;
    else
        tg_log.lost++;
}

/* Ids of every green thread a test spawned through tg_spawn, so that the
 * teardown can cancel stragglers left behind by a failed test. */
#define TG_MAX_IDS 1024
static struct {
    int n;
    int64_t id[TG_MAX_IDS];
} tg_ids TG_UNUSED;

static inline int64_t tg_spawn_named(gt_fn *fn, void *arg, const char *name,
                                     size_t stack, int flags)
{
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.name = name;
    a.stack_size = stack;
    a.flags = flags;
    int64_t id = gt_spawn_attr(fn, arg, &a);
    if (id > 0 && tg_ids.n < TG_MAX_IDS) tg_ids.id[tg_ids.n++] = id;
    return id;
}

static inline int64_t tg_spawn(gt_fn *fn, void *arg)
{
    return tg_spawn_named(fn, arg, NULL, 0, 0);
}

/* Per-test setup: clear the log. */
static inline int tg_setup(void **state)
{
    (void)state;
    memset(&tg_log, 0, sizeof tg_log);
    memset(&tg_ids, 0, sizeof tg_ids);
    return 0;
}

/* Per-test teardown: a passing test has already run its loop to the end;
 * after a failing one, cancel whatever it left parked and let it end so the
 * next test starts from an empty scheduler. */
static inline int tg_teardown(void **state)
{
    (void)state;
    for (int round = 0; round < 4 && gt_dispatch(0) != 0; round++) {
        for (int i = 0; i < tg_ids.n; i++) gt_cancel(tg_ids.id[i]);
        gt_run();
    }
    /* Fails the test (on the main stack) if threads are still alive. */
    assert_int_equal(gt_dispatch(0), 0);
    return 0;
}

#define TG_TEST(f) cmocka_unit_test_setup_teardown(f, tg_setup, tg_teardown)

/* --- Misc --------------------------------------------------------------- */

/* Uses about `bytes` of stack (1 KiB per frame, every cache line written)
 * and returns a value derived from it so nothing is optimised away. */
TG_UNUSED __attribute__((noinline)) static unsigned tg_burn_stack(size_t bytes)
{
    volatile unsigned char buf[1024];
    for (size_t i = 0; i < sizeof buf; i += 32)
        buf[i] = (unsigned char)(i + bytes);
    if (bytes <= sizeof buf) return buf[0];
    unsigned r = tg_burn_stack(bytes - sizeof buf);
    return r + buf[32];
}

/* Runs gt_dump into a malloc'd string (caller frees); *lines gets its
 * return value. */
static inline char *tg_dump_string(int *lines)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL) return NULL;
    int n = gt_dump(f);
    fclose(f);
    if (lines) *lines = n;
    return buf;
}

static inline int tg_count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        if (*s == '\n') n++;
    return n;
}

/* Number of live green threads, as gt_dump reports them. */
static inline int tg_live_count(void)
{
    FILE *f = fopen("/dev/null", "w");
    if (f == NULL) return -1;
    int n = gt_dump(f);
    fclose(f);
    return n;
}

/* Runs rounds without waiting until the loop reports a deadlock (every live
 * thread parked on something that cannot happen) or `max` rounds passed.
 * Returns the last gt_dispatch result. */
static inline int tg_until_deadlock(int max)
{
    int rc = 0;
    for (int i = 0; i < max; i++) {
        rc = gt_dispatch(0);
        if (rc != 1) break;
    }
    return rc;
}

#define TG_ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* --- Child processes ------------------------------------------------------ */

/* First thing in a fork()ed child that runs library code: CMocka's
 * handlers for crashes would carry on with the parent's test list, so a
 * crash must kill the child instead; and a watchdog of its own. */
TG_UNUSED static void tg_child_init(unsigned watchdog_s)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (int i = 0; i < TG_ARRAY_LEN(sigs); i++) signal(sigs[i], SIG_DFL);
    tg_watchdog(watchdog_s);
}

/* Waits for a child; returns its wait status, or -1. */
TG_UNUSED static int tg_wait_child(pid_t pid)
{
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, 0);
        if (r == pid) return st;
        if (r < 0 && errno != EINTR) return -1;
    }
}

/* Runs child(arg) in a fork()ed process whose stderr goes into out (at
 * most cap - 1 bytes, then a NUL; the rest is read and dropped), and
 * returns its wait status, or -1 if it could not run.  The child exits 0
 * if child returns; it sets up its own signals (tg_child_init, or the
 * dispositions a crash test needs). */
TG_UNUSED static int tg_run_child(void (*child)(void *), void *arg, char *out,
                                  size_t cap)
{
    int fds[2];
    if (cap < 1 || pipe(fds) < 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        close(fds[1]);
        child(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        char drop[512];
        int full = len == cap - 1;
        ssize_t n = full ? read(fds[0], drop, sizeof drop)
                         : read(fds[0], out + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (!full) len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    return tg_wait_child(pid);
}

#endif
