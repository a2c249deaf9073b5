/* Fairness: a connection whose peer keeps it full never has to park, yet
 * it must not keep the loop from the other green threads.
 *
 * The socket is filled before the loop starts, so the reader finds data on
 * every call and never parks until it has taken everything.  Another
 * thread, which runs first, asks only for the loop's next round (a sleep
 * until now, which wakes when the loop fires its timers).  It must wake
 * while the reader still has most of the data to read: once the reader
 * has moved its quantum (64 KiB), the loop polls and fires timers, and
 * what they wake runs before the reader goes on.  Try-once reads
 * (deadline 0) never give way, which the last case checks. */
#include "net_test.h"

#define CHUNK 4096

static struct {
    net_sock *r;
    size_t filled;      /* bytes waiting in the socket at the start */
    size_t got;         /* bytes the reader has taken */
    size_t got_at_wake; /* ... when the other thread woke */
    int woke, rc_read, rc_sleep;
    int64_t deadline; /* of the reader's calls */
} F;

/* Fills the socket's receive side (and the peer's send side) to the brim. */
static size_t fill(int fd)
{
    static char junk[CHUNK];
    size_t n = 0;
    ssize_t r;
    while ((r = send(fd, junk, sizeof junk, MSG_DONTWAIT)) > 0) n += (size_t)r;
    return n;
}

static void reader(void *arg)
{
    (void)arg;
    char buf[CHUNK];
    while (F.got < F.filled) {
        ssize_t n = net_recv(F.r, buf, sizeof buf, F.deadline);
        if (n <= 0) {
            F.rc_read = (int)n;
            return;
        }
        F.got += (size_t)n;
    }
}

static void other(void *arg)
{
    (void)arg;
    F.rc_sleep = gt_sleep(gt_now());
    F.woke = 1;
    F.got_at_wake = F.got;
}

static void run_case(int64_t deadline)
{
    int sv[2];
    memset(&F, 0, sizeof F);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    int size = 1 << 20;
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    F.filled = fill(sv[1]);
    F.deadline = deadline;
    assert_int_equal(net_wrap(&F.r, sv[0]), 0);
    tg_spawn(other, NULL);
    tg_spawn(reader, NULL);
    NT_RUN();
    assert_int_equal(net_close(F.r), 0);
    close(sv[1]);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(F.rc_read, 0);
    assert_int_equal(F.rc_sleep, 0);
    assert_true(F.woke);
    assert_int_equal(F.got, F.filled);
}

static void test_streaming_reader_gives_way(void **state)
{
    (void)state;
    run_case(gt_now() + 10 * tg_slack_ms());
    /* The fill must be well past the quantum for the test to mean much. */
    assert_true(F.filled >= 4 * 64 * 1024);
    assert_true(F.got_at_wake <= 64 * 1024);
}

static void test_try_once_reader_keeps_going(void **state)
{
    (void)state;
    run_case(0);
    assert_int_equal(F.got_at_wake, F.filled);
}

int main(void)
{
    tg_watchdog(60);
    const struct CMUnitTest tests[] = {
        NT_TEST(test_streaming_reader_gives_way),
        NT_TEST(test_try_once_reader_keeps_going),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
