/* Sockets used from the wrong OS thread.
 *
 * A net_sock belongs to the OS thread that made it (net.h): its parked
 * waiters, its loop and its poller registration are that thread's.  Before,
 * a green thread of another OS thread that read from it parked with this
 * thread's timers and loop and crashed in the timer heap.  Every call on a
 * socket from another OS thread must return GT_EOWNER and change nothing:
 * afterwards the socket still works here, with no byte lost. */
#include "net_test.h"

#include <pthread.h>

typedef struct owner_calls {
    net_sock *s, *ls; /* a connected socket and a listener, made here */
    /* Results of the calls on the other OS thread. */
    int recv, recv0, send, receive, accept, setopt, getopt, local, peer;
    int stats, max_line, shutdown, close, fd, run;
    size_t buffered, sent;
} owner_calls;

static void owner_body(void *p)
{
    owner_calls *c = p;
    char b[8];
    int v;
    net_buf nb = {NULL, 0, 0};
    net_addr a;
    net_sock *acc = NULL;
    uint64_t in, out;
    int64_t age;
    /* Parking calls, with and without a deadline that would park. */
    c->recv = (int)net_recv(c->s, b, sizeof b, gt_now() + tg_slack_ms());
    c->recv0 = (int)net_recv(c->s, b, sizeof b, 0);
    c->sent = 99;
    c->send = (int)net_send(c->s, "abc", 3, &c->sent, gt_now() + tg_slack_ms());
    c->receive =
        (int)net_receive(c->s, NET_LINE, 0, &nb, gt_now() + tg_slack_ms());
    c->accept = net_accept(c->ls, &acc, gt_now() + tg_slack_ms());
    c->setopt = net_setopt(c->s, NET_NODELAY, 1);
    c->getopt = net_getopt(c->s, NET_NODELAY, &v);
    c->local = net_local_addr(c->s, &a);
    c->peer = net_peer_addr(c->s, &a);
    c->stats = net_stats(c->s, &in, &out, &age);
    c->max_line = net_set_max_line(c->s, 10);
    c->fd = net_fd(c->s);
    c->buffered = net_buffered(c->s) + 1; /* 1: nothing is told */
    c->shutdown = net_shutdown(c->s, SHUT_RDWR);
    c->close = net_close(c->s);
    net_buf_free(&nb);
    if (acc) net_close(acc);
}

static void *owner_thread(void *p)
{
    owner_calls *c = p;
    gt_spawn(owner_body, c);
    c->run = gt_run();
    net_cleanup();
    return NULL;
}

typedef struct home {
    net_sock *s;
    ssize_t got;
    char buf[16];
    net_buf line;
    ssize_t line_rc;
} home;

static void home_body(void *p)
{
    home *h = p;
    /* Still open, still readable, nothing taken by the other thread. */
    h->got = net_recv(h->s, h->buf, 6, gt_now() + tg_slack_ms());
    /* The line limit was not changed to 10 by the other thread. */
    h->line_rc =
        net_receive(h->s, NET_LINE, 0, &h->line, gt_now() + tg_slack_ms());
}

static void test_sock_other_thread(void **state)
{
    (void)state;
    int sv[2], port;
    owner_calls c;
    memset(&c, 0, sizeof c);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(net_wrap(&c.s, sv[0]), 0);
    assert_int_equal(nt_listen(&c.ls, &port, 4), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, owner_thread, &c), 0);
    assert_int_equal(pthread_join(th, NULL), 0);

    const int *rc[] = {&c.recv,     &c.recv0,  &c.send,     &c.receive,
                       &c.accept,   &c.setopt, &c.getopt,   &c.local,
                       &c.peer,     &c.stats,  &c.max_line, &c.fd,
                       &c.shutdown, &c.close};
    for (int i = 0; i < TG_ARRAY_LEN(rc); i++) {
        if (*rc[i] != GT_EOWNER) fprintf(stderr, "  call %d: %d\n", i, *rc[i]);
        assert_int_equal(*rc[i], GT_EOWNER);
    }
    assert_int_equal(c.run, 0);
    assert_int_equal(c.buffered, 1);
    /* The socket is intact here: not shut down, not closed. */
    home h;
    memset(&h, 0, sizeof h);
    h.s = c.s;
    static const char msg[] = "hello\n"
                              "0123456789abcdef\n";
    assert_int_equal(write(sv[1], msg, sizeof msg - 1),
                     (ssize_t)sizeof msg - 1);
    tg_spawn(home_body, &h);
    NT_RUN();
    assert_int_equal(h.got, 6);
    assert_memory_equal(h.buf, "hello\n", 6);
    assert_int_equal(h.line_rc, 16);
    assert_int_equal(h.line.len, 16);
    assert_memory_equal(h.line.data, "0123456789abcdef", 16);
    net_buf_free(&h.line);
    assert_int_equal(net_fd(c.s), sv[0]);
    assert_int_equal(net_close(c.s), 0);
    assert_int_equal(net_close(c.ls), 0);
    close(sv[1]);
    assert_int_equal(net_cleanup(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_sock_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
