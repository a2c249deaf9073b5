/* A stack overflow names the green thread before the process dies.
 *
 * Each case runs in a fork()ed child whose stderr is a pipe; the parent
 * reads it and checks the report and that the child died by SIGABRT.  The
 * parent never touches the runtime, so the child's first use of it installs
 * the overflow handler fresh (CMocka installs its own SIGSEGV handler
 * around every test; the child puts back the disposition the process had
 * at start-up before it starts).
 *
 * Not run under Valgrind (it cannot follow the guard-page SIGSEGV onto the
 * alternate stack) nor under ASan (which owns SIGSEGV). */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <sys/types.h>
#include <sys/wait.h>

static struct sigaction startup_segv, startup_bus;

/* --- child side ------------------------------------------------------- */

static volatile size_t depth_limit = SIZE_MAX;
static char *stop_below; /* no-guard mode: stop once a frame is below */

__attribute__((noinline)) static unsigned recurse(size_t depth)
{
    volatile unsigned char buf[1024];
    /* Every byte, so the canary at the stack bottom is surely hit. */
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(depth + i);
    if (stop_below != NULL && (char *)buf < stop_below) {
        /* Past the bottom: the next switch must notice. */
        gt_yield();
        return buf[1];
    }
    if (depth >= depth_limit) return buf[0];
    unsigned r = recurse(depth + 1);
    return r + buf[7];
}

static size_t child_stack_size;

static void deep(void *arg)
{
    int noguard = (int)(intptr_t)arg;
    char top;
    if (noguard) stop_below = &top - child_stack_size;
    unsigned r = recurse(0);
    (void)r;
    static const char msg[] = "CHILD: recursion returned\n";
    (void)!write(2, msg, sizeof msg - 1);
}

static void filler(void *arg)
{
    (void)arg;
    gt_sleep(gt_now() + 10000);
}

static void put_line(const char *s)
{
    (void)!write(2, s, strlen(s));
}

/* Runs in the child; never returns. */
static void child_main(void *arg)
{
    int noguard = (int)(intptr_t)arg;
    sigaction(SIGSEGV, &startup_segv, NULL);
    sigaction(SIGBUS, &startup_bus, NULL);
    alarm(20); /* a hang kills the child with SIGALRM: the parent fails */

    child_stack_size = GT_STACK_DEFAULT;
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.name = "deep";
    a.stack_size = child_stack_size;
    a.flags = noguard ? GT_NOGUARD : 0;
    int64_t id = gt_spawn_attr(deep, (void *)(intptr_t)noguard, &a);
    char line[64];
    snprintf(line, sizeof line, "ID=%lld\n", (long long)id);
    put_line(line);
    if (id <= 0) _exit(3);
    /* Neighbours: in no-guard mode the overflow runs into memory that
     * belongs to somebody, so it is the canary check that catches it. */
    a.name = "filler";
    for (int i = 0; i < 8; i++) gt_spawn_attr(filler, NULL, &a);
    int rc = gt_run();
    snprintf(line, sizeof line, "CHILD: gt_run returned %d\n", rc);
    put_line(line);
    _exit(4);
}

/* --- parent side ------------------------------------------------------ */

static void run_overflow_case(int noguard)
{
    if (TG_ASAN) {
        skip();
        return;
    }
    char out[8192];
    int status =
        tg_run_child(child_main, (void *)(intptr_t)noguard, out, sizeof out);
    assert_true(status != -1);

    print_message("child stderr (%s):\n%s", noguard ? "no guard" : "guard",
                  out);
    long long id = 0;
    const char *p = strstr(out, "ID=");
    assert_non_null(p);
    assert_int_equal(sscanf(p, "ID=%lld", &id), 1);
    assert_true(id > 0);
    char want[128];
    snprintf(want, sizeof want, "green thread %lld (deep) overflowed its stack",
             id);
    assert_non_null(strstr(out, want));
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
}

static void test_overflow_guard(void **state)
{
    (void)state;
    run_overflow_case(0);
}

static void test_overflow_noguard(void **state)
{
    (void)state;
    run_overflow_case(1);
}

int main(void)
{
    sigaction(SIGSEGV, NULL, &startup_segv);
    sigaction(SIGBUS, NULL, &startup_bus);
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_guard),
        cmocka_unit_test(test_overflow_noguard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
