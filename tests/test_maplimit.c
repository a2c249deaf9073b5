/* The kernel's vm.max_map_count.
 *
 * - When the map limit is what stops a spawn, gt_spawn says so with
 *   GT_EMAPLIMIT (the test uses up the process's mappings itself, so this
 *   holds whatever the runtime's guard pages cost).
 * - Guarded stacks: either they fit past the point where one mapping per
 *   guard page would have run out, or they stop with GT_EMAPLIMIT.
 * - GT_NOGUARD stacks hold more threads than one mapping per stack allows.
 *
 * Skipped under Valgrind (its own address-space limits come first) and
 * under ASan (its allocator aborts when the process runs out of maps), and
 * when the limit is so high that reaching it would take too long. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <sys/mman.h>

static long read_limit(void)
{
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static long usable_limit(void)
{
    long limit = read_limit();
    if (tg_under_valgrind() || TG_ASAN || limit <= 0 || limit > 200000)
        return -1;
    return limit;
}

static int started, cancelled;

static void parker(void *arg)
{
    (void)arg;
    started++;
    if (gt_sleep(-1) == -ECANCELED)
        cancelled++;
}

/* Spawns up to `want` parked threads with attr; returns how many, and the
 * failing result in *rc (0 if none failed).  Then ends them all. */
static size_t spawn_many(const gt_attr *a, size_t want, int64_t *rc,
                         int *run_rc)
{
    int64_t *ids = malloc(want * sizeof *ids);
    if (ids == NULL)
        return 0;
    size_t n = 0;
    *rc = 0;
    while (n < want) {
        int64_t id = gt_spawn_attr(parker, NULL, a);
        if (id <= 0) {
            *rc = id;
            break;
        }
        ids[n++] = id;
    }
    for (size_t i = 0; i < n; i++)
        gt_cancel(ids[i]);
    started = cancelled = 0;
    *run_rc = gt_run();
    free(ids);
    return n;
}

static void test_guarded_many(void **state)
{
    (void)state;
    long limit = usable_limit();
    if (limit < 0) {
        skip();
        return;
    }
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.stack_size = GT_STACK_MIN; /* not the default: never pooled */
    /* More than fit with one extra mapping per guard page. */
    size_t want = (size_t)limit / 2 + 1000;
    int64_t rc;
    int run_rc;
    size_t n = spawn_many(&a, want, &rc, &run_rc);
    print_message("guarded stacks: %zu of %zu (limit %ld)%s%s\n", n, want,
                  limit, rc ? ", stopped by: " : "",
                  rc ? gt_strerror((int)rc) : "");
    assert_int_equal(run_rc, 0);
    assert_int_equal((size_t)started, n);
    assert_int_equal((size_t)cancelled, n);
    if (n < want) {
        assert_int_equal(rc, GT_EMAPLIMIT);
        assert_true(n > 1000);
    }
}

static void test_noguard_many(void **state)
{
    (void)state;
    long limit = usable_limit();
    if (limit < 0) {
        skip();
        return;
    }
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.stack_size = GT_STACK_MIN;
    a.flags = GT_NOGUARD;
    size_t want = (size_t)limit / 2 + 1000;
    int64_t rc;
    int run_rc;
    size_t n = spawn_many(&a, want, &rc, &run_rc);
    if (n < want)
        print_error("no-guard spawn %zu failed: %s\n", n,
                    gt_strerror((int)rc));
    assert_int_equal(n, want);
    assert_int_equal(run_rc, 0);
    assert_int_equal((size_t)started, n);
}

/* Uses up the process's mappings: a PROT_NONE region whose every other
 * page is made readable until the kernel refuses, then single mappings
 * until mmap itself refuses. */
static void test_emaplimit_reported(void **state)
{
    (void)state;
    long limit = usable_limit();
    if (limit < 0) {
        skip();
        return;
    }
    /* Scheduler and a thread first, so nothing needs mapping lazily. */
    assert_true(gt_spawn(parker, NULL) > 0);
    assert_int_equal(tg_until_deadlock(10), -EDEADLK);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (size_t)limit * 2 + 16;
    char *region = mmap(NULL, pages * page, PROT_NONE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(region != MAP_FAILED);
    int full = 0;
    for (size_t i = 1; i < pages; i += 2) {
        if (mprotect(region + i * page, page, PROT_READ) != 0) {
            full = errno == ENOMEM;
            break;
        }
    }
    /* Top up with mappings that can never merge with a neighbour (each
     * shared anonymous mapping is its own object) until mmap refuses. */
    enum { TOPUP = 256 };
    void *extra[TOPUP];
    int n_extra = 0, refused = 0;
    while (full && n_extra < TOPUP) {
        void *p = mmap(NULL, page, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            refused = errno == ENOMEM;
            break;
        }
        extra[n_extra++] = p;
    }
    int64_t rc_guard = 0, rc_noguard = 0;
    if (full && refused) {
        gt_attr a;
        memset(&a, 0, sizeof a);
        a.stack_size = 3 * GT_STACK_MIN; /* never pooled: must map */
        rc_guard = gt_spawn_attr(parker, NULL, &a);
        a.flags = GT_NOGUARD;
        rc_noguard = gt_spawn_attr(parker, NULL, &a);
    }
    for (int i = 0; i < n_extra; i++)
        munmap(extra[i], page);
    munmap(region, pages * page);

    assert_true(full);
    assert_true(refused);
    if (rc_guard > 0)
        gt_cancel(rc_guard);
    if (rc_noguard > 0)
        gt_cancel(rc_noguard);
    print_message("at the map limit: guarded spawn: %s; no-guard spawn: %s\n",
                  rc_guard > 0 ? "ok" : gt_strerror((int)rc_guard),
                  rc_noguard > 0 ? "ok" : gt_strerror((int)rc_noguard));
    assert_int_equal(rc_guard, GT_EMAPLIMIT);
    assert_int_equal(rc_noguard, GT_EMAPLIMIT);

    /* With the mappings given back, spawning works again. */
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.stack_size = 3 * GT_STACK_MIN;
    assert_true(gt_spawn_attr(parker, NULL, &a) > 0);
    a.flags = GT_NOGUARD;
    assert_true(gt_spawn_attr(parker, NULL, &a) > 0);
    assert_int_equal(tg_until_deadlock(10), -EDEADLK);
    assert_int_equal(tg_live_count(), 3);
}

/* Ends whatever test_emaplimit_reported left parked (its ids are not all
 * known if it failed half-way): every live thread here is a parker. */
static int end_parkers(void **state)
{
    (void)state;
    int64_t now_max = gt_spawn(parker, NULL); /* highest id so far */
    for (int64_t id = now_max; id > 0 && id > now_max - 200000; id--)
        gt_cancel(id);
    assert_int_equal(gt_run(), 0);
    return 0;
}

int main(void)
{
    tg_watchdog(55);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guarded_many),
        cmocka_unit_test(test_noguard_many),
        cmocka_unit_test_teardown(test_emaplimit_reported, end_parkers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
