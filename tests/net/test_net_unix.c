/* Unix-domain stream sockets (issue 12): a path and an abstract name
 * each listened on, connected to, accepted and echoed through, with their
 * addresses; names too long; a missing path, a refusing one, a stale
 * file left in place; a full backlog; an accept loop serving several
 * clients; a close under a parked accept.  Paths live in a mkdtemp
 * directory that each test removes.  Runs on every poller. */
#include "net_test.h"

#include <sys/stat.h>
#include <sys/un.h>

static char dir[64];

static int dir_setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/sl-unix-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    return nt_setup(state);
}

/* Removes every file the test left in the directory, then the directory. */
static int dir_teardown(void **state)
{
    static const char *const names[] = {"echo.sock", "stale.sock",
                                        "gone.sock", "full.sock",
                                        "loop.sock", "close.sock"};
    char p[128];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    return nt_teardown(state);
}

#define UT_TEST(f) cmocka_unit_test_setup_teardown(f, dir_setup, dir_teardown)

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", dir, name);
}

/* --- echo through a path and through an abstract name ------------------ */

typedef struct echo_ctx {
    const char *path;
    net_sock *ls;
    int connect_rc, accept_rc, addr_rc[4];
    net_addr cl, cp, sl, sp;
    ssize_t sent, got, line_rc, eof_rc, recv0;
    net_buf line, rest;
} echo_ctx;

static void echo_server(void *p)
{
    echo_ctx *c = p;
    net_sock *s;
    int64_t dl = gt_now() + tg_slack_ms();
    c->accept_rc = net_accept(c->ls, &s, dl);
    if (c->accept_rc < 0) return;
    c->addr_rc[2] = net_local_addr(s, &c->sl);
    c->addr_rc[3] = net_peer_addr(s, &c->sp);
    net_buf in = {0};
    /* Echo each line back until the client ends the stream. */
    for (;;) {
        in.len = 0;
        ssize_t r = net_receive(s, NET_LINE, 0, &in, dl);
        if (r < 0) {
            c->eof_rc = r;
            break;
        }
        net_send(s, in.data, in.len, NULL, dl);
        net_send(s, "\n", 1, NULL, dl);
    }
    net_buf_free(&in);
    net_close(s);
}

static void echo_client(void *p)
{
    echo_ctx *c = p;
    net_sock *s;
    int64_t dl = gt_now() + tg_slack_ms();
    c->connect_rc = net_connect_unix(&s, c->path, dl);
    if (c->connect_rc < 0) return;
    c->addr_rc[0] = net_local_addr(s, &c->cl);
    c->addr_rc[1] = net_peer_addr(s, &c->cp);
    c->sent = net_send(s, "hello unix\n", 11, NULL, dl);
    c->line_rc = net_receive(s, NET_LINE, 0, &c->line, dl);
    net_shutdown(s, SHUT_WR);
    c->got = net_receive(s, NET_ALL, 0, &c->rest, dl);
    char b;
    c->recv0 = net_recv(s, &b, 1, dl);
    net_close(s);
}

static void run_echo(const char *path, const char *shown)
{
    echo_ctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    assert_int_equal(net_listen_unix(&c.ls, path, 0), 0);
    net_addr la;
    assert_int_equal(net_local_addr(c.ls, &la), 0);
    assert_int_equal(la.family, AF_UNIX);
    assert_string_equal(la.host, shown);
    assert_int_equal(la.port, 0);
    tg_spawn(echo_server, &c);
    tg_spawn(echo_client, &c);
    NT_RUN();
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.connect_rc, 0);
    assert_int_equal(c.accept_rc, 0);
    for (int i = 0; i < 4; i++) assert_int_equal(c.addr_rc[i], 0);
    assert_int_equal(c.sent, 11);
    assert_int_equal(c.line_rc, 10);
    assert_int_equal(c.line.len, 10);
    assert_memory_equal(c.line.data, "hello unix", 10);
    assert_int_equal(c.got, 0); /* NET_ALL: nothing more, then the end */
    assert_int_equal(c.recv0, 0);
    assert_int_equal(c.eof_rc, NET_EEOF); /* the server saw the end */
    /* The connecting end has no name; the accepted one has the path. */
    assert_int_equal(c.cl.family, AF_UNIX);
    assert_string_equal(c.cl.host, "");
    assert_string_equal(c.cp.host, shown);
    assert_string_equal(c.sl.host, shown);
    assert_string_equal(c.sp.host, "");
    net_buf_free(&c.line);
    net_buf_free(&c.rest);
}

static void test_echo_path(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof p, "echo.sock");
    run_echo(p, p);
    struct stat st;
    assert_int_equal(stat(p, &st), 0); /* closing leaves the file */
    assert_true(S_ISSOCK(st.st_mode));
}

static void test_echo_abstract(void **state)
{
    (void)state;
    char name[64];
    snprintf(name, sizeof name, "@socketloop-test-%d", (int)getpid());
    run_echo(name, name);
}

/* --- names and errors --------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    net_sock *s = NULL;
    char p[200];
    memset(p, 'a', sizeof p);
    p[0] = '/';
    p[108] = '\0'; /* 108 bytes: no room for the NUL */
    assert_int_equal(net_listen_unix(&s, p, 0), -ENAMETOOLONG);
    assert_int_equal(net_connect_unix(&s, p, 0), -ENAMETOOLONG);
    p[0] = '@';
    p[108] = 'a';
    p[109] = '\0'; /* an abstract name of 108 bytes */
    assert_int_equal(net_listen_unix(&s, p, 0), -ENAMETOOLONG);
    assert_int_equal(net_connect_unix(&s, p, 0), -ENAMETOOLONG);
    /* The longest abstract name, 107 bytes, works. */
    snprintf(p, 20, "@sl-%d-", (int)getpid());
    memset(p + strlen(p), 'n', 108 - strlen(p));
    p[108] = '\0';
    assert_int_equal(net_listen_unix(&s, p, 0), 0);
    net_addr a;
    assert_int_equal(net_local_addr(s, &a), 0);
    assert_string_equal(a.host, p);
    assert_int_equal(net_close(s), 0);
    assert_int_equal(net_listen_unix(&s, "", 0), -EINVAL);
    assert_int_equal(net_listen_unix(&s, "@", 0), -EINVAL);
    assert_int_equal(net_listen_unix(&s, NULL, 0), -EINVAL);
    assert_int_equal(net_listen_unix(NULL, "@x", 0), -EINVAL);
    assert_int_equal(net_connect_unix(&s, "", 0), -EINVAL);
    assert_int_equal(net_connect_unix(NULL, "@x", 0), -EINVAL);
    assert_int_equal(net_cleanup(), 0);
}

/* Nothing at the path: -ENOENT; a file nobody listens on (the listener
 * closed, its file left): -ECONNREFUSED; listening there again while the
 * file stays: -EADDRINUSE, and the file is not removed. */
typedef struct err_ctx {
    char missing[128], stale[128];
    int missing_rc, refused_rc, abstract_rc;
} err_ctx;

static void err_thread(void *p)
{
    err_ctx *c = p;
    net_sock *s;
    int64_t dl = gt_now() + tg_slack_ms();
    char name[64];
    snprintf(name, sizeof name, "@socketloop-none-%d", (int)getpid());
    c->missing_rc = net_connect_unix(&s, c->missing, dl);
    c->refused_rc = net_connect_unix(&s, c->stale, dl);
    c->abstract_rc = net_connect_unix(&s, name, dl);
}

static void test_errors(void **state)
{
    (void)state;
    err_ctx c;
    net_sock *ls;
    memset(&c, 0, sizeof c);
    path_of(c.missing, sizeof c.missing, "gone.sock");
    path_of(c.stale, sizeof c.stale, "stale.sock");
    assert_int_equal(net_listen_unix(&ls, c.stale, 0), 0);
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(access(c.stale, F_OK), 0);
    assert_int_equal(net_listen_unix(&ls, c.stale, 0), -EADDRINUSE);
    assert_int_equal(access(c.stale, F_OK), 0);
    tg_spawn(err_thread, &c);
    NT_RUN();
    assert_int_equal(c.missing_rc, -ENOENT);
    assert_int_equal(c.refused_rc, -ECONNREFUSED);
    assert_int_equal(c.abstract_rc, -ECONNREFUSED);
    /* Once the caller unlinks the stale file, the path is free again. */
    assert_int_equal(unlink(c.stale), 0);
    assert_int_equal(net_listen_unix(&ls, c.stale, 0), 0);
    assert_int_equal(net_close(ls), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* --- a full backlog: try once gives -EAGAIN; a waiting connect goes
 * through once the server accepts ------------------------------------------ */

#define FULL_MAX 16

typedef struct full_ctx {
    char path[128];
    net_sock *ls, *queued[FULL_MAX], *accepted[FULL_MAX + 1];
    int nqueued, once_rc, wait_rc, naccepted;
    net_sock *late;
} full_ctx;

static void full_client(void *p)
{
    full_ctx *c = p;
    /* Fill the backlog with connections nobody accepts yet. */
    while (c->nqueued < FULL_MAX) {
        int rc = net_connect_unix(&c->queued[c->nqueued], c->path, 0);
        if (rc < 0) {
            c->once_rc = rc;
            break;
        }
        c->nqueued++;
    }
    c->wait_rc = net_connect_unix(&c->late, c->path, gt_now() + tg_slack_ms());
}

static void full_server(void *p)
{
    full_ctx *c = p;
    while (!c->once_rc && c->nqueued < FULL_MAX) gt_yield();
    gt_sleep(gt_now() + 30); /* the late connect is pausing by now */
    while (c->naccepted <= c->nqueued &&
           net_accept(c->ls, &c->accepted[c->naccepted],
                      gt_now() + tg_slack_ms()) == 0)
        c->naccepted++;
}

static void test_backlog_full(void **state)
{
    (void)state;
    full_ctx c;
    memset(&c, 0, sizeof c);
    path_of(c.path, sizeof c.path, "full.sock");
    assert_int_equal(net_listen_unix(&c.ls, c.path, 1), 0);
    tg_spawn(full_client, &c);
    tg_spawn(full_server, &c);
    NT_RUN();
    assert_int_equal(c.once_rc, -EAGAIN);
    assert_true(c.nqueued >= 1 && c.nqueued < FULL_MAX);
    assert_int_equal(c.wait_rc, 0);
    assert_int_equal(c.naccepted, c.nqueued + 1);
    for (int i = 0; i < c.nqueued; i++) net_close(c.queued[i]);
    for (int i = 0; i < c.naccepted; i++) net_close(c.accepted[i]);
    net_close(c.late);
    assert_int_equal(net_close(c.ls), 0);
    assert_int_equal(net_cleanup(), 0);
}

/* --- an accept loop serving several clients at once -------------------- */

#define CLIENTS 8

typedef struct loop_ctx {
    char path[128];
    net_sock *ls;
    int served, accept_end, ok[CLIENTS];
} loop_ctx;

static loop_ctx *L1;

static void serve_one(void *p)
{
    net_sock *s = p;
    char buf[64];
    ssize_t n;
    while ((n = net_recv(s, buf, sizeof buf, gt_now() + tg_slack_ms())) > 0)
        net_send(s, buf, (size_t)n, NULL, gt_now() + tg_slack_ms());
    net_close(s);
    L1->served++;
}

static void acceptor(void *p)
{
    loop_ctx *c = p;
    for (;;) {
        net_sock *s;
        int rc = net_accept(c->ls, &s, -1);
        if (rc < 0) {
            c->accept_end = rc;
            return;
        }
        tg_spawn(serve_one, s);
    }
}

static void loop_client(void *p)
{
    int i = (int)(intptr_t)p;
    net_sock *s;
    char msg[32], back[32] = {0};
    int64_t dl = gt_now() + tg_slack_ms();
    int n = snprintf(msg, sizeof msg, "client %d", i);
    if (net_connect_unix(&s, L1->path, dl) < 0) return;
    net_buf b = {0};
    if (net_send(s, msg, (size_t)n, NULL, dl) == n &&
        net_receive(s, NET_BYTES, (size_t)n, &b, dl) == n) {
        memcpy(back, b.data, (size_t)n);
        L1->ok[i] = !strcmp(back, msg);
    }
    net_buf_free(&b);
    net_close(s);
}

static void loop_director(void *p)
{
    loop_ctx *c = p;
    int64_t ids[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        ids[i] = tg_spawn(loop_client, (void *)(intptr_t)i);
    for (int i = 0; i < CLIENTS; i++) gt_join(ids[i], -1);
    while (c->served < CLIENTS) gt_sleep(gt_now() + 5);
    net_close(c->ls); /* the acceptor wakes with NET_ECLOSED */
}

static void test_accept_loop(void **state)
{
    (void)state;
    loop_ctx c;
    memset(&c, 0, sizeof c);
    L1 = &c;
    path_of(c.path, sizeof c.path, "loop.sock");
    assert_int_equal(net_listen_unix(&c.ls, c.path, 0), 0);
    tg_spawn(acceptor, &c);
    tg_spawn(loop_director, &c);
    NT_RUN();
    assert_int_equal(net_cleanup(), 0);
    assert_int_equal(c.accept_end, NET_ECLOSED);
    assert_int_equal(c.served, CLIENTS);
    for (int i = 0; i < CLIENTS; i++) assert_true(c.ok[i]);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        UT_TEST(test_echo_path),    UT_TEST(test_echo_abstract),
        UT_TEST(test_names),        UT_TEST(test_errors),
        UT_TEST(test_backlog_full), UT_TEST(test_accept_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
