/* net_wait under hostile use, the same on every poller (net.h):
 * - a descriptor closed under a waiter, or already closed, gives -EBADF,
 *   never an abort, a sleep to the deadline or a false readiness;
 * - a closed descriptor whose number is reused at once by a socket of the
 *   net layer: the stale wait's clean-up leaves the socket's registration
 *   alone, so the socket's reader still wakes;
 * - several waits on one descriptor, in one direction or in both, and on
 *   a net_sock's descriptor: each is told only of what it asked for;
 * - a regular file or directory is ready at once. */
#include "net_test.h"

#include <sys/stat.h>

/* --- closed under a waiter --------------------------------------------- */

typedef struct closed_ctx {
    int rfd, wfd;
    int rc;
    int closed; /* the closer ran */
} closed_ctx;

static void closed_waiter(void *p)
{
    closed_ctx *c = p;
    c->rc = net_wait(c->rfd, NET_IN, gt_now() + tg_slack_ms());
}

static void closed_closer(void *p)
{
    closed_ctx *c = p;
    close(c->rfd);
    c->closed = 1;
}

static void test_closed_under_waiter(void **state)
{
    (void)state;
    int pfd[2];
    closed_ctx c = {0, 0, 1, 0};
    assert_int_equal(pipe(pfd), 0);
    c.rfd = pfd[0];
    c.wfd = pfd[1];
    tg_spawn(closed_waiter, &c);
    tg_spawn(closed_closer, &c);
    NT_RUN();
    assert_true(c.closed);
    assert_int_equal(c.rc, -EBADF);
    close(pfd[1]);
    assert_int_equal(net_cleanup(), 0);
}

/* Two waiters on one descriptor, one each way, and a close: both end. */
typedef struct closed2_ctx {
    int fd;
    int rc_in, rc_out;
} closed2_ctx;

static void closed2_in(void *p)
{
    closed2_ctx *c = p;
    c->rc_in = net_wait(c->fd, NET_IN, gt_now() + tg_slack_ms());
}

static void closed2_out(void *p)
{
    closed2_ctx *c = p;
    c->rc_out = net_wait(c->fd, NET_OUT | NET_IN, gt_now() + tg_slack_ms());
}

static void closed2_close(void *p)
{
    closed2_ctx *c = p;
    close(c->fd);
}

static void test_closed_under_two(void **state)
{
    (void)state;
    int sv[2];
    closed2_ctx c = {0, 1, 1};
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    /* Full, so that NET_OUT does not come at once. */
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    while (write(sv[0], junk, sizeof junk) > 0) {
    }
    c.fd = sv[0];
    tg_spawn(closed2_in, &c);
    tg_spawn(closed2_out, &c);
    tg_spawn(closed2_close, &c);
    NT_RUN();
    assert_int_equal(c.rc_in, -EBADF);
    assert_int_equal(c.rc_out, -EBADF);
    close(sv[1]);
    assert_int_equal(net_cleanup(), 0);
}

/* --- already closed ---------------------------------------------------------
 */

typedef struct gone_ctx {
    int fd;
    int rc_forever, rc_deadline, rc_try;
} gone_ctx;

static void gone_thread(void *p)
{
    gone_ctx *c = p;
    c->rc_forever = net_wait(c->fd, NET_IN, -1);
    c->rc_deadline = net_wait(c->fd, NET_OUT, gt_now() + tg_slack_ms());
    c->rc_try = net_wait(c->fd, NET_IN | NET_OUT, 0);
}

static void test_already_closed(void **state)
{
    (void)state;
    int pfd[2];
    /* The loop first: epoll's descriptor must not take the number. */
    net_poller_name();
    assert_int_equal(pipe(pfd), 0);
    close(pfd[0]);
    close(pfd[1]);
    gone_ctx c = {pfd[0], 1, 1, 1};
    tg_spawn(gone_thread, &c);
    NT_RUN();
    assert_int_equal(c.rc_forever, -EBADF);
    assert_int_equal(c.rc_deadline, -EBADF);
    assert_int_equal(c.rc_try, -EBADF);
    /* Outside green threads too: the answer needs no parking. */
    assert_int_equal(net_wait(pfd[0], NET_IN, -1), -EBADF);
    assert_int_equal(net_wait(pfd[0], NET_IN, 0), -EBADF);
    assert_int_equal(net_cleanup(), 0);
}

/* --- closed, and the number reused by a net_sock
 * ------------------------------ */

typedef struct reuse_ctx {
    int fd;       /* the pipe's read end, then the socket's descriptor */
    int pipe_w;   /* the pipe's write end */
    int peer;     /* the socket's peer (raw) */
    int64_t a_id; /* the stale waiter */
    net_sock *s;
    gt_sem *first; /* released when the reader has its first bytes */
    int rc_a, rc_wrap, rc_join, rc_first;
    ssize_t got1, got2;
    char buf1[8], buf2[8];
} reuse_ctx;

static void reuse_stale(void *p)
{
    reuse_ctx *c = p;
    c->rc_a = net_wait(c->fd, NET_IN, gt_now() + tg_slack_ms());
}

static void reuse_reader(void *p)
{
    reuse_ctx *c = p;
    c->got1 =
        net_recv(c->s, c->buf1, sizeof c->buf1, gt_now() + 3 * tg_slack_ms());
    gt_sem_release(c->first);
    c->got2 =
        net_recv(c->s, c->buf2, sizeof c->buf2, gt_now() + 3 * tg_slack_ms());
}

static void reuse_main(void *p)
{
    reuse_ctx *c = p;
    int sv[2];
    /* The stale waiter is parked; its descriptor goes, and the number is
     * taken at once by a socket that the net layer watches. */
    close(c->fd);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return;
    if (sv[0] != c->fd) {
        dup2(sv[0], c->fd);
        close(sv[0]);
    }
    c->peer = sv[1];
    c->rc_wrap = net_wrap(&c->s, c->fd);
    if (c->rc_wrap < 0) return;
    gt_spawn(reuse_reader, c);
    /* The reader parks; the stale waiter's wait ends and cleans up. */
    c->rc_join = gt_join(c->a_id, gt_now() + 3 * tg_slack_ms());
    (void)!write(c->peer, "one", 3);
    /* The reader's second wait, after the first has woken. */
    c->rc_first = gt_sem_acquire(c->first, gt_now() + 4 * tg_slack_ms());
    (void)!write(c->peer, "two", 3);
}

static void test_closed_and_reused(void **state)
{
    (void)state;
    int pfd[2];
    reuse_ctx c;
    memset(&c, 0, sizeof c);
    c.rc_a = c.rc_wrap = c.rc_join = c.rc_first = 1;
    assert_int_equal(gt_sem_make(&c.first, 0), 0);
    assert_int_equal(pipe(pfd), 0);
    c.fd = pfd[0];
    c.pipe_w = pfd[1];
    c.a_id = tg_spawn(reuse_stale, &c);
    tg_spawn(reuse_main, &c);
    NT_RUN();
    assert_int_equal(c.rc_wrap, 0);
    /* The socket that took the number still wakes, twice. */
    assert_int_equal(c.got1, 3);
    assert_memory_equal(c.buf1, "one", 3);
    assert_int_equal(c.rc_first, 0);
    assert_int_equal(c.got2, 3);
    assert_memory_equal(c.buf2, "two", 3);
    /* The stale wait was told its descriptor went. */
    assert_int_equal(c.rc_join, 0);
    assert_int_equal(c.rc_a, -EBADF);
    assert_int_equal(net_close(c.s), 0);
    close(c.peer);
    close(c.pipe_w);
    assert_int_equal(gt_sem_free(c.first), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* --- several waits on one descriptor
 * ---------------------------------------------- */

typedef struct two_ctx {
    int rfd, wfd;
    int rc[3];
    int written;
    int saw_written[3]; /* the data was there when the wait returned */
} two_ctx;

static void two_reader(void *p, int i)
{
    two_ctx *c = p;
    c->rc[i] = net_wait(c->rfd, NET_IN, gt_now() + tg_slack_ms());
    c->saw_written[i] = c->written;
}
static void two_reader0(void *p)
{
    two_reader(p, 0);
}
static void two_reader1(void *p)
{
    two_reader(p, 1);
}
static void two_reader2(void *p)
{
    two_reader(p, 2);
}

static void two_writer(void *p)
{
    two_ctx *c = p;
    /* All three are parked: they were spawned first. */
    c->written = 1;
    (void)!write(c->wfd, "x", 1);
}

static void test_three_readers(void **state)
{
    (void)state;
    int pfd[2];
    two_ctx c;
    memset(&c, 0, sizeof c);
    assert_int_equal(pipe(pfd), 0);
    c.rfd = pfd[0];
    c.wfd = pfd[1];
    tg_spawn(two_reader0, &c);
    tg_spawn(two_reader1, &c);
    tg_spawn(two_reader2, &c);
    tg_spawn(two_writer, &c);
    NT_RUN();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c.rc[i], NET_IN);
        assert_true(c.saw_written[i]);
    }
    close(pfd[0]);
    close(pfd[1]);
    assert_int_equal(net_cleanup(), 0);
}

/* A NET_IN waiter and a NET_OUT waiter on one socket: writability must
 * not wake the reader. */
typedef struct inout_ctx {
    int fd, peer;
    int rc_in, rc_out;
    int in_had_data, out_done;
} inout_ctx;

static void inout_reader(void *p)
{
    inout_ctx *c = p;
    char ch;
    c->rc_in = net_wait(c->fd, NET_IN, gt_now() + tg_slack_ms());
    c->in_had_data = recv(c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 1;
}

static void inout_writer(void *p)
{
    inout_ctx *c = p;
    c->rc_out = net_wait(c->fd, NET_OUT, gt_now() + tg_slack_ms());
    c->out_done = 1;
    /* Give a falsely woken reader every chance to run first. */
    for (int i = 0; i < 5; i++) gt_sleep(gt_now() + 2);
    (void)!write(c->peer, "d", 1);
}

static void test_reader_and_writer(void **state)
{
    (void)state;
    int sv[2];
    inout_ctx c;
    memset(&c, 0, sizeof c);
    c.rc_in = c.rc_out = 1;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    c.fd = sv[0];
    c.peer = sv[1];
    tg_spawn(inout_reader, &c);
    tg_spawn(inout_writer, &c);
    NT_RUN();
    assert_int_equal(c.rc_out, NET_OUT);
    assert_int_equal(c.rc_in, NET_IN);
    assert_true(c.in_had_data);
    close(sv[0]);
    close(sv[1]);
    assert_int_equal(net_cleanup(), 0);
}

/* net_wait(net_fd(s), NET_OUT) while s's own reader is parked: the
 * socket's registration and the wait's are apart. */
typedef struct sockfd_ctx {
    net_sock *s;
    int fd, peer;
    ssize_t got;
    char buf[4];
    int rc_wait;
    size_t drained;
} sockfd_ctx;

static void sockfd_reader(void *p)
{
    sockfd_ctx *c = p;
    c->got = net_recv(c->s, c->buf, sizeof c->buf, gt_now() + 2 * tg_slack_ms());
}

static void sockfd_waiter(void *p)
{
    sockfd_ctx *c = p;
    c->rc_wait = net_wait(c->fd, NET_OUT, gt_now() + tg_slack_ms());
}

static void sockfd_drainer(void *p)
{
    sockfd_ctx *c = p;
    char b[4096];
    ssize_t k;
    /* Both are parked now: make the socket writable again. */
    gt_sleep(gt_now() + 10);
    while ((k = recv(c->peer, b, sizeof b, MSG_DONTWAIT)) > 0)
        c->drained += (size_t)k;
    gt_sleep(gt_now() + 10);
    (void)!write(c->peer, "r", 1);
}

static void test_wait_on_sock_fd(void **state)
{
    (void)state;
    int sv[2];
    sockfd_ctx c;
    memset(&c, 0, sizeof c);
    c.rc_wait = 1;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(net_wrap(&c.s, sv[0]), 0);
    c.fd = net_fd(c.s);
    c.peer = sv[1];
    /* Fill the socket so that it is not writable. */
    char junk[4096];
    memset(junk, 'j', sizeof junk);
    while (send(c.fd, junk, sizeof junk, MSG_DONTWAIT) > 0) {
    }
    assert_int_equal(net_wait(c.fd, NET_OUT, 0), -ETIMEDOUT);
    tg_spawn(sockfd_reader, &c);
    tg_spawn(sockfd_waiter, &c);
    tg_spawn(sockfd_drainer, &c);
    NT_RUN();
    assert_true(c.drained > 0);
    assert_int_equal(c.rc_wait, NET_OUT);
    assert_int_equal(c.got, 1);
    assert_int_equal(c.buf[0], 'r');
    assert_int_equal(net_close(c.s), 0);
    close(sv[1]);
    assert_int_equal(net_cleanup(), 0);
}

/* --- files that cannot be polled ----------------------------------------- */

typedef struct file_ctx {
    int file, dir;
    int rc[6];
} file_ctx;

static void file_thread(void *p)
{
    file_ctx *c = p;
    c->rc[0] = net_wait(c->file, NET_IN, -1);
    c->rc[1] = net_wait(c->file, NET_OUT, gt_now() + tg_slack_ms());
    c->rc[2] = net_wait(c->file, NET_IN | NET_OUT, -1);
    c->rc[3] = net_wait(c->file, NET_IN, 0);
    c->rc[4] = net_wait(c->dir, NET_IN, -1);
    c->rc[5] = net_wait(c->dir, NET_IN | NET_OUT, 0);
}

static void test_regular_file(void **state)
{
    (void)state;
    FILE *tf = tmpfile();
    assert_non_null(tf);
    file_ctx c;
    c.file = fileno(tf);
    c.dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(c.dir >= 0);
    for (int i = 0; i < TG_ARRAY_LEN(c.rc); i++) c.rc[i] = 1;
    tg_spawn(file_thread, &c);
    NT_RUN();
    static const int want[] = {NET_IN, NET_OUT, NET_IN | NET_OUT,
                               NET_IN, NET_IN,  NET_IN | NET_OUT};
    for (int i = 0; i < TG_ARRAY_LEN(want); i++) assert_int_equal(c.rc[i], want[i]);
    /* Outside green threads the same (nothing parks). */
    assert_int_equal(net_wait(c.file, NET_IN, -1), NET_IN);
    fclose(tf);
    close(c.dir);
    assert_int_equal(net_cleanup(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_closed_under_waiter), NT_TEST(test_closed_under_two),
        NT_TEST(test_already_closed),      NT_TEST(test_closed_and_reused),
        NT_TEST(test_three_readers),       NT_TEST(test_reader_and_writer),
        NT_TEST(test_wait_on_sock_fd),     NT_TEST(test_regular_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
