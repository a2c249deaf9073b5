/* The fault walk.  The scenario of scenario.c runs once without a fault
 * to count the calls of every wrapped function (fault.c); then, for every
 * fault below and every n from 1 to that count, it runs again in this
 * process with call n failing, and each run must show:
 *
 * (a) a clear error: the green thread whose call failed got the error
 *     (as its negated errno or the library's NET_E* code for it), or,
 *     for a call made by the loop or a worker thread, some operation did;
 *     every other failure is a consequence (the peer saw the connection
 *     end: NET_EEOF, NET_ECLOSED, -ECONNRESET, -EPIPE), never a timeout,
 *     and one fault costs at most one of the two client exchanges.  Or the
 * library recovered and everything succeeded, which faults marked "recovers"
 *     must do;
 * (b) the bystander finished its ping-pong in the same loop;
 * (c) net_cleanup succeeds (no socket or waiter left), and the count of
 *     open descriptors is back to where it was; Valgrind checks memory.
 *
 * What the library does per fault, decided here:
 * - mmap, mprotect (a stack): gt_spawn returns -ENOMEM to its caller (the
 *   director, or net_serve's acceptor, which reports it and closes that
 *   one connection).
 * - malloc, calloc, realloc, strdup: the operation that needed the memory
 *   returns -ENOMEM; where a cache would only be nicer (the runtime's
 *   stack pool) the library does without it.
 * - epoll_create1, socket, eventfd (EMFILE), epoll_ctl (ENOMEM): the
 *   operation that needed it fails with that error.
 * - epoll_wait, poll, select: EINTR ends the loop's round early; ENOMEM
 *   (the kernel's tables of poll and select) is transient, the loop pauses
 *   briefly and polls again: both recover.  Any other error (EBADF,
 *   EINVAL) means the poller is broken and carrying on would spin: the
 *   process aborts with "poller wait failed: <reason>", as libuv and Go
 *   do.  Those runs happen in a fork()ed child, and not under Valgrind.
 * - accept4: EMFILE backs off and retries; any other error is reported by
 *   net_serve's acceptor on stderr, which pauses and goes on: the
 *   connection stays queued, so both recover.
 * - connect (ECONNREFUSED, ENETUNREACH), recv and send (ECONNRESET): the
 *   caller gets that error.
 * - getaddrinfo: EAI_FAIL gives NET_ERESOLVE, EAI_AGAIN NET_ETRYAGAIN.
 * - pthread_create: with no resolver thread running, the lookup fails
 *   with -EAGAIN.
 * - io_uring (when built): a ring that cannot be set up (ENOMEM, EPERM)
 *   leaves the loop on epoll, which recovers; an enter is the poller's
 *   wait (EINTR recovers, EBADF aborts).  recv and send are then mostly
 *   requests, whose errors come back in completions, not in a call. */
#include "net_test.h"

#include "fault.h"
#include "scenario.h"

#include <netdb.h>

enum { RECOVER, REPORT, ABORT };
static const char *const decision[] = {"recovers", "reports", "aborts"};

typedef struct kind {
    int site, err;
    const char *err_name;
    int policy;
    const char *poller; /* the only poller it applies to, or NULL */
} kind;

static const kind kinds[] = {
    {FS_MMAP, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_MPROTECT, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_MALLOC, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_CALLOC, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_REALLOC, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_STRDUP, ENOMEM, "ENOMEM", REPORT, NULL},
    {FS_EPOLL_CREATE1, EMFILE, "EMFILE", REPORT, "epoll"},
    {FS_EPOLL_CTL, ENOMEM, "ENOMEM", REPORT, "epoll"},
    {FS_EPOLL_WAIT, EINTR, "EINTR", RECOVER, "epoll"},
    {FS_EPOLL_WAIT, EBADF, "EBADF", ABORT, "epoll"},
    {FS_POLL, EINTR, "EINTR", RECOVER, "poll"},
    {FS_POLL, ENOMEM, "ENOMEM", RECOVER, "poll"},
    {FS_POLL, EINVAL, "EINVAL", ABORT, "poll"},
    {FS_SELECT, EINTR, "EINTR", RECOVER, "select"},
    {FS_SELECT, ENOMEM, "ENOMEM", RECOVER, "select"},
    {FS_SELECT, EBADF, "EBADF", ABORT, "select"},
    {FS_SOCKET, EMFILE, "EMFILE", REPORT, NULL},
    {FS_EVENTFD, EMFILE, "EMFILE", REPORT, NULL},
    {FS_ACCEPT4, EMFILE, "EMFILE", RECOVER, NULL},
    {FS_ACCEPT4, ENOBUFS, "ENOBUFS", RECOVER, NULL},
    {FS_CONNECT, ECONNREFUSED, "ECONNREFUSED", REPORT, NULL},
    {FS_CONNECT, ENETUNREACH, "ENETUNREACH", REPORT, NULL},
    {FS_RECV, ECONNRESET, "ECONNRESET", REPORT, NULL},
    {FS_SEND, ECONNRESET, "ECONNRESET", REPORT, NULL},
    {FS_GETADDRINFO, EAI_FAIL, "EAI_FAIL", REPORT, NULL},
    {FS_GETADDRINFO, EAI_AGAIN, "EAI_AGAIN", REPORT, NULL},
    {FS_PTHREAD_CREATE, EAGAIN, "EAGAIN", REPORT, NULL},
    {FS_URING_SETUP, ENOMEM, "ENOMEM", RECOVER, "uring"},
    {FS_URING_SETUP, EPERM, "EPERM", RECOVER, "uring"},
    {FS_URING_ENTER, EINTR, "EINTR", RECOVER, "uring"},
    {FS_URING_ENTER, EBADF, "EBADF", ABORT, "uring"},
};
#define NKINDS TG_ARRAY_LEN(kinds)

typedef struct tally {
    long calls, injected, survived, aborted, failed;
} tally;

static const char *poller_env; /* SOCKETLOOP_POLLER as the program began */
static sc_run run;             /* big: kept off the stack */

static int64_t budget(void)
{
    return tg_under_valgrind() ? 30000 : 5000;
}

/* The code the failing operation should return. */
static int expected_rc(const kind *k)
{
    if (k->site == FS_GETADDRINFO)
        return k->err == EAI_AGAIN ? NET_ETRYAGAIN : NET_ERESOLVE;
    return -k->err;
}

static int all_ok(const sc_run *r)
{
    for (int i = 0; i < r->nlog; i++)
        if (r->log[i].rc) return 0;
    return r->clients_ok == SC_CLIENTS && r->served == SC_CLIENTS;
}

/* Checks one faulted run against (a), (b), (c); NULL if it passed. */
static const char *judge(const kind *k, int policy, const sc_run *r,
                         int64_t who, int fds, int fds0)
{
    static char why[160];
    int want = expected_rc(k), seen = 0, seen_by_who = 0, owned = 0;
    if (r->loop_rc) return "the loop did not end by the deadline";
    if (r->cleanup_rc) return "net_cleanup failed: something was left open";
    if (fds != fds0) return "descriptors leaked";
    if (r->by_errors || r->by_exchanges < SC_BYSTANDER_MIN)
        return "the bystander did not finish its exchanges";
    if (all_ok(r)) return NULL;
    for (int i = 0; i < r->nlog; i++) {
        const sc_rec *e = &r->log[i];
        if (!e->rc) continue;
        if (!strcmp(net_strerror(e->rc), "unknown error")) {
            snprintf(why, sizeof why, "%s: error %d has no text", e->op, e->rc);
            return why;
        }
        if (e->rc == want) {
            seen = 1;
            seen_by_who |= e->who == who;
        } else if (e->rc != NET_ECLOSED && e->rc != NET_EEOF &&
                   e->rc != -ECONNRESET && e->rc != -EPIPE) {
            snprintf(why, sizeof why, "%s: unexpected error %d (%s)", e->op,
                     e->rc, net_strerror(e->rc));
            return why;
        }
    }
    for (int i = 0; i < r->nowned; i++) owned |= r->owned[i] == who;
    if (policy == RECOVER) return "the library did not recover";
    if (r->serving && r->clients_ok < SC_CLIENTS - 1)
        return "one fault failed both clients";
    if (owned && !seen_by_who)
        return "the green thread whose call failed did not get the error";
    if (!who && !seen) return "no operation reported the error";
    /* Otherwise the call was net_serve's acceptor's, which reports on
     * stderr; its client saw only the consequences. */
    return NULL;
}

/* Runs a fault that must abort, in a fork()ed child.  Returns 0 if the
 * fault was not reached and the run succeeded; else 1, with *why NULL if
 * the child died by SIGABRT and said why. */
static int run_aborting(const kind *k, long n, const char **why)
{
    int p[2];
    char text[4096], want[96];
    size_t len = 0;
    ssize_t got;
    *why = NULL;
    snprintf(want, sizeof want, "poller wait failed: %s",
             net_strerror(-k->err));
    if (pipe(p) < 0) {
        *why = "pipe failed";
        return 1;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        tg_child_init(30);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        sc_run_once(&run, k->site, n, k->err, budget());
        _exit(fault_hit(NULL) ? 1 : run.loop_rc == 0 && all_ok(&run) ? 3 : 4);
    }
    close(p[1]);
    while ((got = read(p[0], text + len, sizeof text - 1 - len)) > 0)
        if ((len += (size_t)got) == sizeof text - 1) len = 0; /* keep last */
    text[len] = 0;
    close(p[0]);
    int st = pid < 0 ? -1 : tg_wait_child(pid);
    if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3) return 0;
    if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 4)
        *why = "a run that the fault did not reach failed";
    else if (st < 0 || !WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        *why = "the process did not abort";
    else if (!strstr(text, want))
        *why = "the abort did not say why";
    return 1;
}

static void walk(const char *poller)
{
    tally t[NKINDS];
    long counts[FS_NSITES];
    memset(t, 0, sizeof t);
    if (poller_env && strcmp(poller_env, poller)) skip();
    setenv("SOCKETLOOP_POLLER", poller, 1);

    /* A warm-up run makes what lives for the whole process (the runtime's
     * signal stack, the resolver's name-service state). */
    sc_run_once(&run, 0, 0, 0, budget());
    int fds0 = fault_count_fds(), fds = fds0;
    sc_run_once(&run, 0, 0, 0, budget());
    assert_int_equal(run.loop_rc, 0);
    assert_int_equal(run.cleanup_rc, 0);
    assert_true(all_ok(&run));
    assert_int_equal(fault_count_fds(), fds0);
    for (int s = 0; s < FS_NSITES; s++) counts[s] = fault_calls(s);

    for (int i = 0; i < NKINDS; i++) {
        const kind *k = &kinds[i];
        if (k->poller && strcmp(k->poller, poller)) continue;
        t[i].calls = counts[k->site];
        /* A process that aborts leaves nothing for memcheck to check, and
         * its report of what was live then would only be noise. */
        if (k->policy == ABORT && tg_under_valgrind()) continue;
        for (long n = 1; n <= t[i].calls; n++) {
            const char *why;
            int64_t who = 0;
            if (k->policy == ABORT) {
                if (!run_aborting(k, n, &why)) continue;
                t[i].injected++;
                t[i].aborted += !why;
            } else {
                sc_run_once(&run, k->site, n, k->err, budget());
                int hit = fault_hit(&who);
                /* A run that the fault did not reach must just succeed. */
                fds = fault_count_fds();
                why = judge(k, hit ? k->policy : RECOVER, &run, who, fds, fds0);
                t[i].injected += hit;
                t[i].survived += hit && !why;
            }
            if (!why) continue;
            t[i].failed++;
            printf("FAIL %s %s %s, call %ld of %ld (green thread %lld): "
                   "%s\n",
                   poller, fault_site_name[k->site], k->err_name, n, t[i].calls,
                   (long long)who, why);
            for (int j = 0; j < run.nlog && k->policy != ABORT; j++)
                printf("    %lld %-14s %d %s\n", (long long)run.log[j].who,
                       run.log[j].op, run.log[j].rc,
                       run.log[j].rc ? net_strerror(run.log[j].rc) : "");
            /* What follows would run on a loop in an unknown state. */
            assert_true(run.cleanup_rc == 0 && fds == fds0);
        }
    }

    printf("\nfaults injected with the %s poller\n", poller);
    printf("%-15s %-13s %-9s %6s %9s %9s %8s\n", "site", "fault", "decision",
           "calls", "injected", "survived", "aborted");
    long failed = 0;
    for (int i = 0; i < NKINDS; i++) {
        const kind *k = &kinds[i];
        if (k->poller && strcmp(k->poller, poller)) continue;
        printf("%-15s %-13s %-9s %6ld %9ld %9ld %8ld\n",
               fault_site_name[k->site], k->err_name, decision[k->policy],
               t[i].calls, t[i].injected, t[i].survived, t[i].aborted);
        failed += t[i].failed;
    }
    fflush(stdout);
    assert_int_equal(failed, 0);
}

static void test_epoll(void **state)
{
    (void)state;
    walk("epoll");
}

static void test_poll(void **state)
{
    (void)state;
    walk("poll");
}

static void test_select(void **state)
{
    (void)state;
    walk("select");
}

static void test_uring(void **state)
{
    (void)state;
#ifdef SL_FAULT_URING
    walk("uring");
#else
    skip(); /* built without the io_uring backend */
#endif
}

int main(void)
{
    poller_env = nt_poller_env();
    printf("Lines on stderr that begin with \"socketloop:\" are net_serve's "
           "own reports of the faults injected.\n");
    tg_watchdog(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoll),
        cmocka_unit_test(test_poll),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_uring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
