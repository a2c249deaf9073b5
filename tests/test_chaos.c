/* Many green threads doing random channel, choose, semaphore, sleep,
 * spawn/join and cancel operations with short deadlines.  Checks that
 * nothing is lost or duplicated (every element a send reported as sent is
 * received exactly once or still buffered at the end), that semaphores
 * never admit too many and end with their initial count, and that the
 * timers never wake anybody early. */
#define _GNU_SOURCE 1
#include "gt_test.h"

#define NCH 4
#define NSEM 2
#define MAXW 200

static const size_t caps[NCH] = {0, 1, 3, 8};
static const unsigned sem_counts[NSEM] = {1, 3};

static struct {
    gt_chan *ch[NCH];
    gt_sem *sem[NSEM];
    int inside[NSEM], max_inside[NSEM];
    int64_t ids[MAXW];
    int nworkers, ops;
    /* Conservation. */
    int64_t sent_n, sent_sum, recv_n, recv_sum, left_n, left_sum;
    int next_val;
    int early_wakes, bad_rc, bad;
    int cancels;
    int sem_left[NSEM], sem_extra[NSEM];
    int children_joined;
} Z;

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static int64_t pick_deadline(uint32_t *s)
{
    uint32_t r = lcg(s) % 8;
    if (r == 0)
        return 0;
    return gt_now() + (int64_t)(r % 4);
}

static int ok_park_rc(int rc)
{
    return rc == 0 || rc == -ETIMEDOUT || rc == -ECANCELED;
}

static void child(void *arg)
{
    int v = Z.next_val++;
    int rc = gt_chan_send(Z.ch[(intptr_t)arg % NCH], &v, gt_now() + 2);
    if (rc == 0) {
        Z.sent_n++;
        Z.sent_sum += v;
    } else if (rc != -ETIMEDOUT && rc != -ECANCELED && rc != -EPIPE) {
        Z.bad_rc++;
    }
}

static void worker(void *arg)
{
    uint32_t seed = (uint32_t)(uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < Z.ops; i++) {
        uint32_t op = lcg(&seed) % 16;
        int c = (int)(lcg(&seed) % NCH);
        int rc;
        if (op < 3) { /* send */
            int v = Z.next_val++;
            rc = gt_chan_send(Z.ch[c], &v, pick_deadline(&seed));
            if (rc == 0) {
                Z.sent_n++;
                Z.sent_sum += v;
            } else if (!ok_park_rc(rc)) {
                Z.bad_rc++;
            }
        } else if (op < 6) { /* recv */
            int v = -1;
            rc = gt_chan_recv(Z.ch[c], &v, pick_deadline(&seed));
            if (rc == 0) {
                Z.recv_n++;
                Z.recv_sum += v;
            } else if (!ok_park_rc(rc)) {
                Z.bad_rc++;
            }
        } else if (op < 8) { /* choose */
            int sv = Z.next_val++, rv[3] = {-1, -1, -1};
            gt_chan_op ops[3];
            int n = 2 + (int)(lcg(&seed) % 2);
            for (int k = 0; k < n; k++) {
                ops[k].ch = Z.ch[lcg(&seed) % NCH];
                ops[k].op = (lcg(&seed) % 2) ? GT_SEND : GT_RECV;
                ops[k].elem = ops[k].op == GT_SEND ? (void *)&sv : (void *)&rv[k];
                ops[k].result = 7;
            }
            rc = gt_choose(ops, n, pick_deadline(&seed));
            if (rc >= 0 && rc < n) {
                if (ops[rc].result != 0) {
                    Z.bad_rc++;
                } else if (ops[rc].op == GT_SEND) {
                    Z.sent_n++;
                    Z.sent_sum += sv;
                } else {
                    Z.recv_n++;
                    Z.recv_sum += rv[rc];
                }
                for (int k = 0; k < n; k++)
                    if (k != rc && ops[k].op == GT_RECV && rv[k] != -1)
                        Z.bad++; /* a clause not chosen moved data */
            } else if (rc != -ETIMEDOUT && rc != -ECANCELED) {
                Z.bad_rc++;
            }
        } else if (op < 10) { /* semaphore */
            int s = (int)(lcg(&seed) % NSEM);
            rc = gt_sem_acquire(Z.sem[s], pick_deadline(&seed));
            if (rc == 0) {
                Z.inside[s]++;
                if (Z.inside[s] > Z.max_inside[s])
                    Z.max_inside[s] = Z.inside[s];
                gt_yield();
                Z.inside[s]--;
                if (gt_sem_release(Z.sem[s]) != 0)
                    Z.bad_rc++;
            } else if (!ok_park_rc(rc)) {
                Z.bad_rc++;
            }
        } else if (op < 12) { /* sleep */
            int64_t dl = gt_now() + (int64_t)(lcg(&seed) % 4);
            rc = gt_sleep(dl);
            if (rc == 0 && gt_now() < dl)
                Z.early_wakes++;
            else if (rc != 0 && rc != -ECANCELED)
                Z.bad_rc++;
        } else if (op < 13) {
            rc = gt_yield();
            if (rc != 0 && rc != -ECANCELED)
                Z.bad_rc++;
        } else if (op < 14) { /* cancel somebody, rarely */
            if (lcg(&seed) % 16 == 0) {
                int w = (int)(lcg(&seed) % (uint32_t)Z.nworkers);
                if (gt_cancel(Z.ids[w]) != 0)
                    Z.bad_rc++;
                Z.cancels++;
            }
        } else { /* spawn and join a child */
            int64_t id = gt_spawn(child, (void *)(intptr_t)c);
            if (id <= 0) {
                Z.bad_rc++;
                continue;
            }
            rc = gt_join(id, lcg(&seed) % 2 ? -1 : gt_now() + 1);
            if (rc == 0)
                Z.children_joined++;
            else if (rc != -ETIMEDOUT && rc != -ECANCELED)
                Z.bad_rc++;
        }
    }
}

/* Joins every worker, then drains and closes the channels and counts the
 * semaphores' units. */
static void finisher(void *arg)
{
    (void)arg;
    for (int w = 0; w < Z.nworkers; w++)
        if (gt_join(Z.ids[w], -1) != 0)
            Z.bad++;
    /* Children that outlived their joiner's timeout have a 2 ms send. */
    gt_sleep(gt_now() + 20);
    for (int c = 0; c < NCH; c++) {
        gt_chan_close(Z.ch[c]);
        int v;
        for (int k = 0; k < 100000; k++) {
            int rc = gt_chan_recv(Z.ch[c], &v, 0);
            if (rc != 0)
                break;
            Z.left_n++;
            Z.left_sum += v;
        }
    }
    for (int s = 0; s < NSEM; s++) {
        for (unsigned k = 0; k < sem_counts[s]; k++)
            if (gt_sem_acquire(Z.sem[s], 0) == 0)
                Z.sem_left[s]++;
        Z.sem_extra[s] = gt_sem_acquire(Z.sem[s], 0) == 0;
    }
}

static void run_chaos(int nworkers, int ops)
{
    memset(&Z, 0, sizeof Z);
    Z.nworkers = nworkers;
    Z.ops = ops;
    for (int c = 0; c < NCH; c++)
        assert_int_equal(gt_chan_make(&Z.ch[c], sizeof(int), caps[c]), 0);
    for (int s = 0; s < NSEM; s++)
        assert_int_equal(gt_sem_make(&Z.sem[s], sem_counts[s]), 0);
    for (int w = 0; w < nworkers; w++) {
        gt_attr a;
        memset(&a, 0, sizeof a);
        a.flags = (w % 3 == 0) ? GT_NOGUARD : 0;
        Z.ids[w] = gt_spawn_attr(worker, (void *)(intptr_t)w, &a);
        assert_true(Z.ids[w] > 0);
    }
    assert_true(gt_spawn(finisher, NULL) > 0);
    assert_int_equal(gt_run(), 0);

    assert_int_equal(Z.bad_rc, 0);
    assert_int_equal(Z.bad, 0);
    assert_int_equal(Z.early_wakes, 0);
    assert_int_equal(Z.sent_n, Z.recv_n + Z.left_n);
    assert_int_equal(Z.sent_sum, Z.recv_sum + Z.left_sum);
    for (int s = 0; s < NSEM; s++) {
        assert_true(Z.max_inside[s] <= (int)sem_counts[s]);
        assert_int_equal(Z.sem_left[s], (int)sem_counts[s]);
        assert_int_equal(Z.sem_extra[s], 0);
        assert_int_equal(gt_sem_free(Z.sem[s]), 0);
    }
    for (int c = 0; c < NCH; c++)
        assert_int_equal(gt_chan_free(Z.ch[c]), 0);
    print_message("sent %lld, received %lld, left %lld, cancels %d, "
                  "children joined %d\n",
                  (long long)Z.sent_n, (long long)Z.recv_n,
                  (long long)Z.left_n, Z.cancels, Z.children_joined);
    assert_true(Z.sent_n > 0);
}

static void test_chaos_small(void **state)
{
    (void)state;
    run_chaos(10, 300);
}

static void test_chaos_large(void **state)
{
    (void)state;
    int vg = tg_under_valgrind();
    run_chaos(vg ? 60 : MAXW, vg ? 100 : 300);
}

int main(void)
{
    tg_watchdog(55);
    const struct CMUnitTest tests[] = {
        TG_TEST(test_chaos_small),
        TG_TEST(test_chaos_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
