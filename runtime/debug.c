/* Debugging aids: the registry dump, and the report of a stack overflow.
 * A guard-page hit raises SIGSEGV on a stack that has no room left, so the
 * handler runs on an alternate signal stack of its own. */
#include "park.h" /* gt__io: the poller's name */
#include "scheduler.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#define ALTSTACK_SIZE ((size_t)64 * 1024)

static const char *state_name(int s)
{
    switch (s) {
    case GT__READY: return "ready";
    case GT__RUNNING: return "running";
    case GT__PARKED: return "parked";
    default: return "ended";
    }
}

static void dump_one(FILE *out, const gt__thread *t)
{
    fprintf(out, "green thread %lld (%s) %s", (long long)t->id,
            t->name[0] ? t->name : "unnamed", state_name(t->state));
    if (t->state == GT__PARKED)
        fprintf(out, " on %s %p", t->wait_what, t->wait_obj);
    if (t->timed) fprintf(out, " until %lld", (long long)t->timer.key);
    if (t->cancelled) fprintf(out, " cancelled");
    fprintf(out, ", spawned at %s\n", t->site ? t->site : "?");
}

static int by_id(const void *a, const void *b)
{
    int64_t x = (*(gt__thread *const *)a)->id,
            y = (*(gt__thread *const *)b)->id;
    return (x > y) - (x < y);
}

/* The id table is the registry; the dump sorts it oldest first, or, when
 * there is no memory for that, prints it in table order. */
int gt_dump(FILE *out)
{
    gt__sched *S = gt__get();
    if (S->io && S->io->name) fprintf(out, "poller %s\n", S->io->name);
    gt__thread **v = malloc(S->ids_n * sizeof(gt__thread *) + 1);
    size_t n = 0;
    for (size_t i = 0; i < S->ids_cap; i++)
        for (gt__thread *t = S->ids[i]; t; t = t->id_next) {
            if (v)
                v[n++] = t;
            else
                dump_one(out, t);
        }
    if (v) {
        qsort(v, n, sizeof(gt__thread *), by_id);
        for (size_t i = 0; i < n; i++) dump_one(out, v[i]);
        free(v);
    }
    return (int)S->ids_n;
}

void gt__fatal(const char *file, int line, const char *what)
{
    fprintf(stderr, "socketloop: internal error at %s:%d: %s\n", file, line,
            what);
    abort();
}

/* Only async-signal-safe calls from here on. */
static void put(const char *s)
{
    (void)!write(2, s, strlen(s));
}

/* Ends the process as abort() does, but without abort()'s lock: an
 * overflow that ran through the C library's data (below a GT_NOGUARD stack,
 * or under a frame that skipped the guard page) may have left that lock
 * looking taken, and abort() would then wait for ever.  kill() is a bare
 * system call. */
static void die(void)
{
    struct sigaction dfl;
    sigset_t abrt;
    sigemptyset(&abrt);
    sigaddset(&abrt, SIGABRT);
    sigprocmask(SIG_UNBLOCK, &abrt, NULL);
    kill(getpid(), SIGABRT); /* the program's own handler, if any, runs */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGABRT, &dfl, NULL);
    kill(getpid(), SIGABRT);
    _exit(127);
}

void gt__overflow(gt__thread *t)
{
    char num[24], *p = num + sizeof num;
    unsigned long long v = (unsigned long long)t->id;
    *--p = 0;
    do *--p = (char)('0' + v % 10);
    while (v /= 10);
    put("green thread ");
    put(p);
    put(" (");
    put(t->name[0] ? t->name : "unnamed");
    put(") overflowed its stack");
    put((t->flags & GT_NOGUARD) &&
                *(const uint64_t *)(const void *)t->stack_lo != GT__CANARY
            ? " (canary broken)"
            : "");
    put("; spawned at ");
    put(t->site ? t->site : "?");
    put("; give it a bigger gt_attr.stack_size\n");
    die();
}

static struct sigaction old_segv, old_bus;
static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

/* True when the fault is the running green thread's stack overflowing:
 * the address is in its guard page, or its stack pointer has left the
 * bottom of its stack (a large frame may skip the guard page). */
static int is_overflow(const gt__thread *t, const char *addr, void *uctx)
{
    if (addr >= t->map && addr < t->stack_lo) return 1;
    /* Without a guard page the overflow may have run through memory of
     * others, however far, before it met a page that faults; it broke the
     * canary on its way. */
    if ((t->flags & GT_NOGUARD) &&
        *(const uint64_t *)(const void *)t->stack_lo != GT__CANARY)
        return 1;
#if defined(__x86_64__) && defined(REG_RSP)
    /* The saved register is an integer that holds an address. */
    const char *sp = /* NOLINTNEXTLINE(performance-no-int-to-ptr) */
        (const char *)((ucontext_t *)uctx)->uc_mcontext.gregs[REG_RSP];
    if (sp < t->stack_lo && sp + (1 << 20) > t->stack_lo) return 1;
    /* A larger frame: the fault lies below the stack, and above the stack
     * pointer less a page (for a push, the red zone or a probe). */
    if (sp < t->stack_lo && addr < t->stack_lo && addr + 4096 > sp) return 1;
#else
    (void)uctx;
#endif
    return 0;
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    gt__sched *S = gt__peek();
    gt__thread *t = S->ready ? S->current : NULL;
    if (t && is_overflow(t, si->si_addr, uctx)) gt__overflow(t);

    /* Not ours: hand the fault to whoever handled it before. */
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uctx);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        /* Returning re-executes the faulting instruction, which now
         * meets the default action. */
        sigaction(sig, old, NULL);
    } else {
        old->sa_handler(sig);
    }
}

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
}

/* NOTE: the handler is process-wide and installed once; a program that
 * installs its own SIGSEGV handler later replaces the overflow report. */
void gt__install_overflow_handler(gt__sched *S)
{
    stack_t ss, cur;
    /* Keep an alternate stack someone else already set up. */
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE)) {
        pthread_once(&handler_once, install_handler);
        return;
    }
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) return; /* overflows then die unreported */
    ss.ss_sp = mem;
    ss.ss_size = ALTSTACK_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) < 0) {
        munmap(mem, ALTSTACK_SIZE);
        return;
    }
    S->altstack = mem;
    pthread_once(&handler_once, install_handler);
}

void gt__remove_overflow_handler(gt__sched *S)
{
    if (!S->altstack) return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(S->altstack, ALTSTACK_SIZE);
    S->altstack = NULL;
}
