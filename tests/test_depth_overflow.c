/* Stack overflows by recursion and by frames larger than the guard page: the
 * process dies by SIGABRT after a report that names the green thread.
 *
 * Each case runs in a fork()ed child whose stderr the parent reads, as in
 * test_overflow.c; these cases add stack sizes, names, overflowing threads
 * that are not the first, that run while others are parked, that were
 * spawned by a green thread, that run on a pooled stack an earlier thread
 * filled, and huge frames.  The parent never touches the runtime, so that
 * each child installs the overflow handler afresh.
 *
 * What lies below a stack is whatever the kernel mapped there, so a case
 * that depends on it first maps that memory itself: a writable page under a
 * no-guard stack, where only the canary can see an overflow; writable memory
 * where a frame that skips the guard page would land, which the stack-clash
 * probes of test_depth_probed.c must never reach; or a hole, where such a
 * frame faults and only the handler's stack-pointer check can name it.  This
 * file is built without probes (see tests/CMakeLists.txt).
 *
 * Not run under Valgrind (it cannot follow the guard-page SIGSEGV onto the
 * alternate stack) nor under ASan (which owns SIGSEGV). */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <sys/mman.h>
#include <sys/types.h>
#include <sys/wait.h>

#define FRAME_64K (64 * 1024)
#define FRAME_1M (1024 * 1024)
#define BELOW (3 * FRAME_1M) /* memory mapped under huge frames */

unsigned depth_probed_64k(void);
unsigned depth_probed_1m(void);

static struct sigaction startup_segv, startup_bus;

/* --- child side ------------------------------------------------------- */

/* How the thread that overflows starts, and what lies below its stack. */
enum {
    PLAIN,        /* spawned by the child's main */
    NESTED,       /* spawned by a green thread that joins it */
    REUSED,       /* likewise, on the pooled stack of a thread that filled it */
    CANARY,       /* no guard, over a writable page of ours */
    PROBED_64K,   /* a huge probed frame, over writable memory of ours */
    PROBED_1M,    /* likewise, larger */
    UNPROBED_64K, /* a huge frame without probes, over a hole */
    UNPROBED_2M,  /* likewise, farther than the stack pointer's 1 MiB */
    RUNAWAY,      /* no guard, a recursion that never switches, through
                     BELOW of writable memory of ours into a hole */
};

typedef struct ocase {
    size_t size; /* 0: the default, whose stacks are pooled */
    int flags;
    const char *name, *shown; /* given, and as the report shows it */
    int parked;               /* threads parked on a channel before it runs */
    int how;
} ocase;

static const ocase *cur;
static gt_chan *park_ch;
static char *first_frame_before; /* of the thread that filled the stack */

static void put(const char *s)
{
    (void)!write(2, s, strlen(s));
}

/* Tells the parent which thread must be named, or a fact about it. */
static void say(const char *key, long long v)
{
    char line[64];
    snprintf(line, sizeof line, "%s=%lld\n", key, v);
    put(line);
}

static void parked(void *arg)
{
    (void)arg;
    int v;
    gt_chan_recv(park_ch, &v, -1);
}

static int64_t spawn(gt_fn *fn, const char *name)
{
    gt_attr a = {.stack_size = cur->size, .name = name, .flags = cur->flags};
    return gt_spawn_attr(fn, NULL, &a);
}

/* The bottom of the running thread's usable stack, `size` bytes (rounded up
 * to pages) below the top of its mapping, which is the end of the page of its
 * first frame: the control block is all that lies above that frame. */
static char *stack_bottom(char *first_frame, size_t size)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    char *top = (char *)(((uintptr_t)first_frame + page - 1) & ~(page - 1));
    return top - ((size + page - 1) & ~(page - 1));
}

/* Maps [end - len, end) writable for the running thread, `self`, and returns
 * 1.  If that memory is taken (older kernels treat MAP_FIXED_NOREPLACE as a
 * mere hint), spawns another `self`, whose stack lies elsewhere, parks for
 * good and returns 0. */
static int claim_below(gt_fn *self, char *end, size_t len)
{
    static int tries;
    char *p =
        mmap(end - len, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE,
             -1, 0);
    if (p == end - len) return 1;
    if (p != MAP_FAILED) munmap(p, len);
    if (++tries < 16) spawn(self, cur->name);
    parked(NULL);
    return 0;
}

/* One frame that reaches a few dozen bytes below `lo`, written from its
 * lowest byte up: into the guard page, or over the no-guard canary. */
__attribute__((noinline)) static unsigned cross(char *lo)
{
    char *fp = __builtin_frame_address(0);
    volatile unsigned char big[(size_t)(fp - lo) + 64];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)i;
    return big[7];
}

/* Recurses with 1 KiB frames.  Without a guard page (stop set) the last one
 * crosses the bottom and switches, at which the canary is checked. */
__attribute__((noinline)) static unsigned descend(char *stop, unsigned level)
{
    volatile unsigned char buf[1024];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(level + i);
    unsigned r;
    if (stop && (char *)__builtin_frame_address(0) - stop < 2200) {
        r = cross(stop);
        gt_yield();
    } else {
        r = descend(stop, level + 1);
    }
    return r + buf[level % sizeof buf];
}

/* Like those of test_depth_probed.c, but without probes. */
#define UNPROBED(name, bytes)                                                  \
    __attribute__((noinline)) static unsigned name(void)                       \
    {                                                                          \
        volatile unsigned char big[bytes];                                     \
        big[0] = 1;                                                            \
        __asm__ volatile("" : : "r"(big) : "memory");                          \
        return big[0];                                                         \
    }
UNPROBED(unprobed_64k, FRAME_64K)
UNPROBED(unprobed_2m, 2 * FRAME_1M)

static void overflower(void *arg)
{
    (void)arg;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t guard = cur->flags ? 0 : page;
    char *first = __builtin_frame_address(0);
    char *lo = stack_bottom(first, cur->size ? cur->size : GT_STACK_DEFAULT);
    char *below = lo - guard - BELOW;
    if (cur->how == CANARY && !claim_below(overflower, lo, page)) return;
    if (cur->how >= PROBED_64K &&
        !claim_below(overflower, lo - guard, BELOW + page))
        return;
    if (cur->how == UNPROBED_64K || cur->how == UNPROBED_2M)
        munmap(below - page, BELOW + page);
    if (cur->how == RUNAWAY) munmap(below - page, page);
    say("ID", (long long)gt_self());
    if (cur->how == REUSED) say("REUSED", first == first_frame_before);
    switch (cur->how) {
    case PROBED_64K: depth_probed_64k(); break;
    case PROBED_1M: depth_probed_1m(); break;
    case UNPROBED_64K: unprobed_64k(); break;
    case UNPROBED_2M: unprobed_2m(); break;
    default: descend(cur->flags && cur->how != RUNAWAY ? lo : NULL, 0);
    }
}

static void filler(void *arg)
{
    (void)arg;
    first_frame_before = __builtin_frame_address(0);
    tg_burn_stack(GT_STACK_DEFAULT - 8 * 1024);
}

static void starter(void *arg)
{
    (void)arg;
    if (cur->how == REUSED) gt_join(spawn(filler, "filler"), -1);
    gt_join(spawn(overflower, cur->name), -1);
}

static void overflow_child(const ocase *c)
{
    cur = c;
    if (gt_chan_make(&park_ch, sizeof(int), 0) < 0) return;
    for (int i = 0; i < c->parked; i++) gt_spawn(parked, NULL);
    if (c->how == NESTED || c->how == REUSED)
        spawn(starter, "starter");
    else
        spawn(overflower, c->name);
    gt_run();
}

/* --- parent side ------------------------------------------------------ */

/* The child puts back the signal dispositions the process had at start-up
 * (CMocka installs its own around each test) and dies on alarm if it
 * hangs. */
static void child_main(void *arg)
{
    sigaction(SIGSEGV, &startup_segv, NULL);
    sigaction(SIGBUS, &startup_bus, NULL);
    alarm(20);
    overflow_child(arg);
    put("CHILD: returned\n");
    _exit(4);
}

/* Runs the case in a child with stderr captured into out; returns its wait
 * status. */
static int run_child(const ocase *c, char *out, size_t cap)
{
    int status = tg_run_child(child_main, (void *)c, out, cap);
    assert_true(status != -1);
    print_message("child stderr:\n%s", out);
    return status;
}

/* Each case's child must name the thread that overflowed, by the id that
 * thread wrote, and die by SIGABRT. */
static void run_cases(const ocase *cases, int n)
{
    char out[8192], want[128];
    for (int i = 0; i < n; i++) {
        const ocase *c = &cases[i];
        print_message("case %d: %zu-byte stack, %s\n", i, c->size,
                      c->flags ? "no guard" : "guard");
        int status = run_child(c, out, sizeof out);
        long long id = 0;
        const char *p = strstr(out, "ID=");
        assert_non_null(p);
        assert_int_equal(sscanf(p, "ID=%lld", &id), 1);
        snprintf(want, sizeof want,
                 "green thread %lld (%s) overflowed its stack", id, c->shown);
        assert_non_null(strstr(out, want));
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
        if (c->how == REUSED) assert_non_null(strstr(out, "REUSED=1"));
    }
}

static int cannot_run(void)
{
    if (TG_ASAN) print_message("skipped: ASan owns SIGSEGV\n");
    return TG_ASAN;
}

static void test_recursion(void **state)
{
    (void)state;
    if (cannot_run()) {
        skip();
        return;
    }
    static const char long_name[] = "a-name-longer-than-thirty-one-bytes";
    static const ocase cases[] = {
        {GT_STACK_MIN, 0, "min", "min", 3, PLAIN},
        {GT_STACK_MIN, GT_NOGUARD, "min", "min", 3, PLAIN},
        {GT_STACK_MIN, GT_NOGUARD, "canary", "canary", 1, CANARY},
        {1024 * 1024, GT_NOGUARD, "canary", "canary", 0, CANARY},
        {1024 * 1024, 0, NULL, "unnamed", 1, NESTED},
        {256 * 1024, GT_NOGUARD, long_name, "a-name-longer-than-thirty-one-b",
         0, NESTED},
        {0, 0, "second", "second", 2, REUSED},
        {0, GT_NOGUARD, "second", "second", 2, REUSED},
        {GT_STACK_MIN, GT_NOGUARD, "runaway", "runaway", 1, RUNAWAY},
    };
    run_cases(cases, TG_ARRAY_LEN(cases));
}

static int cannot_jump(void)
{
#if defined(__x86_64__)
    return cannot_run();
#else
    print_message("skipped: the stack-pointer check is x86-64 only\n");
    return 1;
#endif
}

/* With probes, a frame of any size meets the guard page first. */
static void test_huge_frame_probed(void **state)
{
    (void)state;
    if (cannot_jump()) {
        skip();
        return;
    }
    static const ocase cases[] = {
        {GT_STACK_MIN, 0, "jumper", "jumper", 2, PROBED_64K},
        {GT_STACK_MIN, 0, "jumper", "jumper", 0, PROBED_1M},
    };
    run_cases(cases, TG_ARRAY_LEN(cases));
}

/* Without probes, a frame that lands in a hole is still reported. */
static void test_huge_frame_unprobed(void **state)
{
    (void)state;
    if (cannot_jump()) {
        skip();
        return;
    }
    static const ocase cases[] = {
        {GT_STACK_MIN, 0, "jumper", "jumper", 1, UNPROBED_64K},
        {GT_STACK_MIN, GT_NOGUARD, "jumper", "jumper", 0, UNPROBED_64K},
        {GT_STACK_MIN, 0, "jumper", "jumper", 0, UNPROBED_2M},
    };
    run_cases(cases, TG_ARRAY_LEN(cases));
}

int main(void)
{
    sigaction(SIGSEGV, NULL, &startup_segv);
    sigaction(SIGBUS, NULL, &startup_bus);
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recursion),
        cmocka_unit_test(test_huge_frame_probed),
        cmocka_unit_test(test_huge_frame_unprobed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
