/* Stack allocation failures injected at spawn.
 *
 * Linked with -Wl,--wrap=mmap,--wrap=mprotect,--wrap=munmap,--wrap=madvise:
 * the static library's calls land in the __wrap_ functions below, which
 * fail on demand and otherwise pass through to the real ones.
 *
 * madvise(MADV_GUARD_INSTALL) (Linux 6.13+ guard markers) is refused for
 * the whole program, so the runtime falls back to PROT_NONE guard pages
 * made with mprotect, which this program can then make fail. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#include <sys/mman.h>
#include <sys/types.h>

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int __real_mprotect(void *addr, size_t len, int prot);
int __wrap_mprotect(void *addr, size_t len, int prot);
int __real_munmap(void *addr, size_t len);
int __wrap_munmap(void *addr, size_t len);
int __real_madvise(void *addr, size_t len, int advice);
int __wrap_madvise(void *addr, size_t len, int advice);

#define TG_MADV_GUARD_INSTALL 102

static struct {
    int fail_mmap;     /* > 0: fail that many upcoming mmap calls */
    int fail_mprotect; /* > 0: fail that many upcoming mprotect calls */
    int mmap_calls, mmap_failed;
    int mprotect_calls, mprotect_failed;
    int munmap_calls;
    void *last_mmap;      /* address of the last successful mmap */
    size_t last_mmap_len;
    void *last_munmap;
} W;

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    W.mmap_calls++;
    if (W.fail_mmap > 0) {
        W.fail_mmap--;
        W.mmap_failed++;
        errno = ENOMEM;
        return MAP_FAILED;
    }
    void *p = __real_mmap(addr, len, prot, flags, fd, off);
    if (p != MAP_FAILED) {
        W.last_mmap = p;
        W.last_mmap_len = len;
    }
    return p;
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
    W.mprotect_calls++;
    if (W.fail_mprotect > 0) {
        W.fail_mprotect--;
        W.mprotect_failed++;
        errno = ENOMEM;
        return -1;
    }
    return __real_mprotect(addr, len, prot);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
    if (advice == TG_MADV_GUARD_INSTALL) {
        errno = EINVAL;
        return -1;
    }
    return __real_madvise(addr, len, advice);
}

int __wrap_munmap(void *addr, size_t len)
{
    W.munmap_calls++;
    W.last_munmap = addr;
    return __real_munmap(addr, len);
}

static int ran;

static void nop(void *arg)
{
    (void)arg;
    ran++;
}

static void parker(void *arg)
{
    (void)arg;
    ran++;
    gt_sleep(-1);
}

static int is_alloc_error(int64_t rc)
{
    return rc == -ENOMEM || rc == GT_EMAPLIMIT;
}

static int setup(void **state)
{
    memset(&W, 0, sizeof W);
    ran = 0;
    /* Scheduler created and a default stack pooled before any injection. */
    assert_true(gt_spawn(nop, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(ran, 1);
    ran = 0;
    memset(&W, 0, sizeof W);
    return tg_setup(state);
}

static int teardown(void **state)
{
    W.fail_mmap = W.fail_mprotect = 0;
    return tg_teardown(state);
}

/* Non-default sizes are never pooled: spawn must map, and mapping fails. */
static void test_mmap_fail_spawn(void **state)
{
    (void)state;
    static const size_t sizes[] = {128 * 1024, GT_STACK_MIN, 1024 * 1024};
    for (int g = 0; g < 2; g++) {
        for (int i = 0; i < TG_ARRAY_LEN(sizes); i++) {
            gt_attr a;
            memset(&a, 0, sizeof a);
            a.stack_size = sizes[i];
            a.flags = g ? GT_NOGUARD : 0;
            a.name = "doomed";
            int calls = W.mmap_calls;
            W.fail_mmap = 1000000;
            int64_t rc = gt_spawn_attr(nop, NULL, &a);
            W.fail_mmap = 0;
            if (!is_alloc_error(rc))
                print_error("spawn rc %lld (%s)\n", (long long)rc,
                            gt_strerror((int)rc));
            assert_true(W.mmap_calls > calls);
            assert_true(is_alloc_error(rc));
            const char *msg = gt_strerror((int)rc);
            assert_non_null(msg);
            assert_true(strlen(msg) > 0);
            /* No thread came into being. */
            assert_int_equal(tg_live_count(), 0);
            assert_int_equal(gt_dispatch(0), 0);
            assert_int_equal(ran, 0);
            /* And it works again right away. */
            int64_t id = gt_spawn_attr(nop, NULL, &a);
            assert_true(id > 0);
            assert_int_equal(gt_run(), 0);
            assert_int_equal(ran, 1);
            ran = 0;
        }
    }
}

/* Default-size stacks come from the pool until it is empty; then the
 * next spawn has to map and fails cleanly. */
static void test_mmap_fail_after_pool(void **state)
{
    (void)state;
    static int64_t ids[10000];
    W.fail_mmap = 1000000;
    int64_t rc = 0;
    int ok = 0;
    for (int i = 0; i < 10000; i++) {
        rc = gt_spawn(parker, NULL);
        if (rc <= 0)
            break;
        ids[ok++] = rc;
    }
    W.fail_mmap = 0;
    assert_true(W.mmap_failed > 0);
    assert_true(is_alloc_error(rc));
    assert_int_equal(tg_live_count(), ok);
    /* The ones that got a stack all run. */
    assert_int_equal(tg_until_deadlock(1000), -EDEADLK);
    assert_int_equal(ran, ok);
    /* Spawning works again (parker count + 1). */
    int64_t id = gt_spawn(nop, NULL);
    assert_true(id > 0);
    assert_int_equal(gt_run(), -EDEADLK);
    assert_int_equal(ran, ok + 1);
    /* Clean up the parked ones. */
    assert_int_equal(tg_live_count(), ok);
    for (int k = 0; k < ok; k++)
        assert_int_equal(gt_cancel(ids[k]), 0);
    assert_int_equal(gt_run(), 0);
}

/* The guard page cannot be protected: no thread, no leaked mapping. */
static void test_mprotect_fail_spawn(void **state)
{
    (void)state;
    gt_attr a;
    memset(&a, 0, sizeof a);
    a.stack_size = 256 * 1024;
    int calls = W.mprotect_calls;
    int unmaps = W.munmap_calls;
    W.last_mmap = NULL;
    W.fail_mprotect = 1000000;
    int64_t rc = gt_spawn_attr(nop, NULL, &a);
    W.fail_mprotect = 0;
    if (W.mprotect_calls == calls) {
        /* The implementation makes its guard page without mprotect;
         * then this injection cannot reach it. */
        assert_true(rc > 0);
        assert_int_equal(gt_run(), 0);
        skip();
        return;
    }
    assert_true(is_alloc_error(rc));
    assert_true(strlen(gt_strerror((int)rc)) > 0);
    assert_int_equal(tg_live_count(), 0);
    assert_int_equal(gt_dispatch(0), 0);
    assert_int_equal(ran, 0);
    /* The mapping made for the failed stack was given back. */
    assert_non_null(W.last_mmap);
    assert_true(W.munmap_calls > unmaps);
    assert_ptr_equal(W.last_munmap, W.last_mmap);

    /* A no-guard stack needs no guard page: mprotect failing does not
     * stop it. */
    a.flags = GT_NOGUARD;
    calls = W.mprotect_calls;
    W.fail_mprotect = 1000000;
    rc = gt_spawn_attr(nop, NULL, &a);
    W.fail_mprotect = 0;
    if (W.mprotect_calls == calls)
        assert_true(rc > 0);
    else
        assert_true(rc > 0 || is_alloc_error(rc));
    /* Works again with guard pages. */
    a.flags = 0;
    assert_true(gt_spawn_attr(nop, NULL, &a) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(ran, rc > 0 ? 2 : 1);
}

/* gt_set_default_stack to a new size, with mapping failing: spawn fails,
 * and nothing is broken once mapping works again. */
static void test_mmap_fail_new_default(void **state)
{
    (void)state;
    assert_int_equal(gt_set_default_stack(192 * 1024, 0), 0);
    W.fail_mmap = 1000000;
    int64_t rc = gt_spawn(nop, NULL);
    W.fail_mmap = 0;
    assert_true(is_alloc_error(rc));
    assert_int_equal(tg_live_count(), 0);
    for (int i = 0; i < 5; i++)
        assert_true(gt_spawn(nop, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(ran, 5);
    assert_int_equal(gt_set_default_stack(GT_STACK_DEFAULT, 0), 0);
    assert_true(gt_spawn(nop, NULL) > 0);
    assert_int_equal(gt_run(), 0);
    assert_int_equal(ran, 6);
}

int main(void)
{
    tg_watchdog(50);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mmap_fail_spawn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mmap_fail_after_pool, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mprotect_fail_spawn, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_mmap_fail_new_default, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
