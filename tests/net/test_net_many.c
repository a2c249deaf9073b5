/* 10,000 connections open at once on the epoll and io_uring pollers (1,000
 * under Valgrind).  The server is this process; the clients run in a fork()ed
 * child, which uses the library too, because each side needs one
 * descriptor per connection.  Every client sends its number and checks the
 * echo, then holds its connection until all are connected; the server
 * counts how many it held at once.  Only for epoll and io_uring: poll
 * would be slow at this size and select cannot watch past FD_SETSIZE. */
#include "net_test.h"

typedef struct srv {
    net_sock *ls;
    int n;
    int accepted, accept_rc, echoed, eof, errors;
    int open, max_open;
    int result_fd; /* readable when the child is done */
    int child_done;
} srv;

static srv S;

static void srv_conn(void *p)
{
    net_sock *s = p;
    net_buf b = {NULL, 0, 0};
    int64_t dl = gt_now() + (tg_under_valgrind() ? 300000 : 60000);
    char c;
    if (net_receive(s, NET_BYTES, 4, &b, dl) == 4 &&
        net_send(s, b.data, 4, NULL, dl) == 4) {
        S.echoed++;
        /* Held until the client closes. */
        if (net_recv(s, &c, 1, dl) == 0)
            S.eof++;
        else
            S.errors++;
    } else {
        S.errors++;
    }
    net_buf_free(&b);
    S.open--;
    net_close(s);
}

static void srv_accept(void *p)
{
    (void)p;
    int64_t dl = gt_now() + (tg_under_valgrind() ? 300000 : 60000);
    static const gt_attr attr = {0, "srv", 0};
    while (S.accepted < S.n) {
        net_sock *s;
        int rc = net_accept(S.ls, &s, dl);
        if (rc < 0) {
            S.accept_rc = rc;
            break;
        }
        S.accepted++;
        if (++S.open > S.max_open) S.max_open = S.open;
        if (gt_spawn_attr(srv_conn, s, &attr) < 0) {
            S.errors++;
            S.open--;
            net_close(s);
        }
    }
    if (S.ls && !S.child_done) {
        net_close(S.ls);
        S.ls = NULL;
    }
}

/* If the child ends early, the acceptor must not wait for ever. */
static void srv_watch(void *p)
{
    (void)p;
    int64_t dl = gt_now() + (tg_under_valgrind() ? 300000 : 60000);
    net_wait(S.result_fd, NET_IN, dl);
    S.child_done = 1;
    if (S.ls) {
        net_close(S.ls); /* the acceptor wakes with NET_ECLOSED */
        S.ls = NULL;
    }
}

/* --- the child: N clients --------------------------------------------- */

typedef struct cli {
    int port, n;
    int connected, failed, done;
    int first_rc;
    gt_chan *all_in;
} cli;

static cli C;

static void client(void *p)
{
    int i = (int)(intptr_t)p;
    int64_t dl = gt_now() + (tg_under_valgrind() ? 300000 : 60000);
    net_sock *s = NULL;
    net_buf b = {NULL, 0, 0};
    int rc = net_connect(&s, "127.0.0.1", C.port, NULL, 0, dl);
    uint32_t id = (uint32_t)i;
    if (rc == 0) {
        rc = (int)net_send(s, &id, 4, NULL, dl);
        if (rc == 4) rc = (int)net_receive(s, NET_BYTES, 4, &b, dl);
        if (rc == 4 && memcmp(b.data, &id, 4)) rc = -EBADMSG;
    }
    if (rc == 4) {
        C.connected++;
    } else {
        C.failed++;
        if (!C.first_rc) C.first_rc = rc;
    }
    net_buf_free(&b);
    /* Hold the connection until every client is in (or failed). */
    if (++C.done == C.n) {
        gt_chan_close(C.all_in);
    } else {
        int x;
        gt_chan_recv(C.all_in, &x, dl);
    }
    if (s) net_close(s);
}

static int run_clients(int port_r, int result_w, int n)
{
    C.n = n;
    if (nt_read_full(port_r, &C.port, sizeof C.port, 10000) < 0) return 2;
    if (gt_chan_make(&C.all_in, sizeof(int), 0) < 0) return 3;
    static const gt_attr attr = {0, "cli", 0};
    for (int i = 0; i < n; i++)
        if (gt_spawn_attr(client, (void *)(intptr_t)i, &attr) < 0) return 4;
    int rc = gt_run();
    gt_chan_free(C.all_in);
    int cl = net_cleanup();
    int result[3] = {C.connected, C.failed, C.first_rc};
    (void)!write(result_w, result, sizeof result);
    if (rc != 0 || cl != 0) return 5;
    return C.connected == n ? 0 : 6;
}

static void test_many_connections(void **state)
{
    (void)state;
    const char *env = nt_poller_env();
    if (env && strcmp(env, "epoll") != 0 && strcmp(env, "uring") != 0) skip();
    int n = tg_under_valgrind() ? 1000 : 10000;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < (rlim_t)n + 100) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)n + 100) skip(); /* too few descriptors */
    }
    int port_p[2], res_p[2];
    assert_int_equal(pipe(port_p), 0);
    assert_int_equal(pipe(res_p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tg_child_init(tg_under_valgrind() ? 120 : 60);
        close(port_p[1]);
        close(res_p[0]);
        _exit(run_clients(port_p[0], res_p[1], n));
    }
    close(port_p[0]);
    close(res_p[1]);
    memset(&S, 0, sizeof S);
    S.n = n;
    S.result_fd = res_p[0];
    int port = 0;
    int lrc = nt_listen(&S.ls, &port, 0);
    if (lrc == 0) {
        assert_string_equal(net_poller_name(), env ? env : "epoll");
        (void)!write(port_p[1], &port, sizeof port);
    }
    close(port_p[1]);
    int64_t t0 = gt_now();
    if (lrc == 0) {
        tg_spawn(srv_accept, NULL);
        tg_spawn(srv_watch, NULL);
    }
    int run_rc = gt_run();
    int64_t took = gt_now() - t0;
    int result[3] = {0, 0, 0};
    int rr = nt_read_full(res_p[0], result, sizeof result, 10000);
    close(res_p[0]);
    int st = tg_wait_child(pid);
    if (S.ls) net_close(S.ls);
    assert_int_equal(net_cleanup(), 0);
    print_message("  %d connections: server accepted %d, held %d at once, "
                  "echoed %d, eof %d, errors %d; client connected %d, failed "
                  "%d (first rc %d); %lld ms\n",
                  n, S.accepted, S.max_open, S.echoed, S.eof, S.errors,
                  result[0], result[1], result[2], (long long)took);
    assert_int_equal(lrc, 0);
    assert_int_equal(run_rc, 0);
    assert_int_equal(rr, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(result[0], n);
    assert_int_equal(S.accepted, n);
    assert_int_equal(S.max_open, n);
    assert_int_equal(S.echoed, n);
    assert_int_equal(S.eof, n);
    assert_int_equal(S.errors, 0);
    assert_int_equal(S.accept_rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NT_TEST(test_many_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
