/* The io_uring backend where the kernel refuses it: a seccomp filter in a
 * fork()ed child makes io_uring_setup fail with EPERM, as a container's
 * default profile does.  SOCKETLOOP_POLLER=uring then gives a loop on
 * epoll, for every OS thread, with one line on stderr for the process.
 * Built only with the io_uring backend. */
#include "net_test.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int refuse_io_uring(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)TG_ARRAY_LEN(f), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* A second OS thread's loop falls back too, silently. */
static void *other_thread(void *p)
{
    (void)p;
    int ok = !strcmp(net_poller_name(), "epoll") && net_cleanup() == 0;
    return ok ? p : (void *)1;
}

static void child(void *arg)
{
    (void)arg;
    tg_child_init(30);
    if (refuse_io_uring() < 0) _exit(2);
    setenv("SOCKETLOOP_POLLER", "uring", 1);
    if (strcmp(net_poller_name(), "epoll")) _exit(3);
    pthread_t t;
    void *res = (void *)1;
    if (pthread_create(&t, NULL, other_thread, NULL) || pthread_join(t, &res) ||
        res)
        _exit(4);
    /* The loop works: a byte goes through a pair of its sockets. */
    net_sock *a, *b;
    char c = 0;
    if (nt_pair(&a, &b) || net_send(a, "u", 1, NULL, 0) != 1 ||
        net_recv(b, &c, 1, 0) != 1 || c != 'u')
        _exit(5);
    net_close(a);
    net_close(b);
    _exit(net_cleanup() == 0 ? 0 : 6);
}

static void test_fallback(void **state)
{
    (void)state;
    char err[512];
    int st = tg_run_child(child, NULL, err, sizeof err);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(err, "socketloop: io_uring unavailable (Operation not "
                             "permitted), using epoll\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
