/* The net layer's per-OS-thread state: its life from first use to
 * net_cleanup or the thread's exit, and the choice of poller.  Waiting on
 * it is net/wait.c. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __thread net__loop *tls_loop;
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static void loop_free(net__loop *L)
{
    while (L->nspare) free(L->spare[--L->nspare]);
    net__resolver_free(L);
    L->be->destroy(L->p);
    gt__io_set(NULL);
    free(L);
}

static void on_thread_exit(void *p)
{
    loop_free(p);
    tls_loop = NULL;
}

static void make_exit_key(void)
{
    pthread_key_create(&exit_key, on_thread_exit);
}

static const net__backend *choose_backend(void)
{
    const char *env = getenv("SOCKETLOOP_POLLER");
    if (env && !strcmp(env, "select")) return &net__select_backend;
    if (env && !strcmp(env, "poll")) return &net__poll_backend;
    if (env && !strcmp(env, "epoll")) return &net__epoll_backend;
#ifdef NET__HAVE_URING
    if (env && !strcmp(env, "uring")) return &net__uring_backend;
#endif
#if defined(NET__DEFAULT_SELECT)
    return &net__select_backend;
#elif defined(NET__DEFAULT_POLL)
    return &net__poll_backend;
#elif defined(NET__DEFAULT_URING)
    return &net__uring_backend;
#else
    return &net__epoll_backend;
#endif
}

/* Makes the chosen backend's state.  io_uring may be refused where the
 * build has it (an old kernel: ENOSYS; kernel.io_uring_disabled or a
 * container's seccomp filter: EPERM; a locked-memory limit: ENOMEM):
 * the loop then runs on epoll, saying so once per process. */
static int backend_create(net__loop *L)
{
    int rc = L->be->create(&L->p);
#ifdef NET__HAVE_URING
    static int told;
    if (rc < 0 && L->be == &net__uring_backend) {
        if (!__atomic_exchange_n(&told, 1, __ATOMIC_RELAXED))
            fprintf(stderr,
                    "socketloop: io_uring unavailable (%s), using epoll\n",
                    strerror(-rc));
        L->be = &net__epoll_backend;
        rc = L->be->create(&L->p);
    }
#endif
    return rc;
}

net__loop *net__get(int *err)
{
    net__loop *L = tls_loop;
    if (L) return L;
    L = calloc(1, sizeof *L);
    if (!L) {
        *err = -ENOMEM;
        return NULL;
    }
    L->be = choose_backend();
    int rc = backend_create(L);
    if (rc < 0) {
        free(L);
        *err = rc;
        return NULL;
    }
    L->io.wait = net__loop_wait;
    L->io.name = L->be->name;
    gt__list_init(&L->foreign);
    gt__io_set(&L->io); /* makes the scheduler too */
    pthread_once(&exit_once, make_exit_key);
    pthread_setspecific(exit_key, L);
    tls_loop = L;
    return L;
}

const char *net_poller_name(void)
{
    int err;
    net__loop *L = net__get(&err);
    return L ? L->be->name : "none";
}

int net_cleanup(void)
{
    net__loop *L = tls_loop;
    if (!L) return 0;
    if (L->nsocks || L->io.waiters) return -EBUSY;
    pthread_setspecific(exit_key, NULL);
    loop_free(L);
    tls_loop = NULL;
    return 0;
}

/* One table of texts serves the whole library (runtime/error.c). */
const char *net_strerror(int rc)
{
    return gt_strerror(rc);
}
