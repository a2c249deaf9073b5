/* Target program for the gdb helper test (test-gdb.sh).  It spawns a few
 * named green threads that end up in different states, runs the loop a
 * couple of rounds, and calls stop_here() from the loop (no green thread
 * running) so that gdb can inspect the parked ones.  Then it cancels them
 * and runs the loop until every thread has ended.
 *
 * Ids are issued from 1 in spawn order, so the test knows them:
 *   1 "sleeper"  parked in parked_in_here() -> gt_sleep (60 s)
 *   2 "receiver" parked in waiting_for_mail() -> gt_chan_recv (no deadline)
 *   3 "spinner"  ready but started: spin_and_yield() -> gt_yield, preempted
 *                by the switch budget
 *   4 "fresh"    spawned after the rounds, ready and never started */
#include "socketloop/gt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static gt_chan *mailbox;
static volatile long spins;

NOINLINE static int parked_in_here(void)
{
    return gt_sleep(gt_now() + 60000);
}

static void sleeper(void *arg)
{
    (void)arg;
    int rc = parked_in_here();
    if (rc != -ECANCELED) {
        fprintf(stderr, "sleeper: unexpected %d\n", rc);
        exit(1);
    }
}

NOINLINE static int waiting_for_mail(void)
{
    int v;
    return gt_chan_recv(mailbox, &v, -1);
}

static void receiver(void *arg)
{
    (void)arg;
    int rc = waiting_for_mail();
    if (rc != -ECANCELED) {
        fprintf(stderr, "receiver: unexpected %d\n", rc);
        exit(1);
    }
}

NOINLINE static void spin_and_yield(void)
{
    while (gt_yield() == 0) spins++;
}

static void spinner(void *arg)
{
    (void)arg;
    spin_and_yield();
}

static void fresh(void *arg) { (void)arg; }

/* The breakpoint target: called from the loop while the threads wait. */
NOINLINE void stop_here(void);
NOINLINE void stop_here(void)
{
    __asm__ volatile("" ::: "memory");
}

/* A macro, so that each thread's spawn site is its own line. */
#define spawn_named(fn, name)                                                 \
    spawn_check(gt_spawn_attr((fn), NULL, (&(gt_attr){0, (name), 0})), (name))

static int64_t spawn_check(int64_t id, const char *name)
{
    if (id < 0) {
        fprintf(stderr, "spawn %s: %s\n", name, gt_strerror((int)id));
        exit(1);
    }
    printf("spawned %s id=%lld\n", name, (long long)id);
    return id;
}

int main(void)
{
    int rc = gt_chan_make(&mailbox, sizeof(int), 0);
    if (rc < 0) {
        fprintf(stderr, "gt_chan_make: %s\n", gt_strerror(rc));
        return 1;
    }
    int64_t ids[4];
    ids[0] = spawn_named(sleeper, "sleeper");
    ids[1] = spawn_named(receiver, "receiver");
    ids[2] = spawn_named(spinner, "spinner");
    /* Two rounds: everyone starts; the sleeper and the receiver park, the
     * spinner yields until the budget sends control back to the loop. */
    for (int i = 0; i < 2; i++) {
        rc = gt_dispatch(0);
        if (rc != 1) {
            fprintf(stderr, "gt_dispatch: %d\n", rc);
            return 1;
        }
    }
    ids[3] = spawn_named(fresh, "fresh");
    fflush(stdout);
    gt_dump(stdout);
    fflush(stdout);

    stop_here();

    for (int i = 0; i < 4; i++) gt_cancel(ids[i]);
    rc = gt_run();
    if (rc != 0) {
        fprintf(stderr, "gt_run: %d\n", rc);
        return 1;
    }
    gt_chan_free(mailbox);
    printf("gdb_target: done\n");
    return 0;
}
