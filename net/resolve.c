/* Name resolution off the loop thread.  getaddrinfo blocks, so a few
 * worker threads per loop run it; the asking green thread parks, and the
 * workers hand results back through an eventfd the poller watches.  A
 * lookup abandoned by its green thread (deadline, cancel) is freed by
 * whoever touches it last.  Numeric addresses never reach the workers. */
#include "internal.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NET__WORKERS 4 /* threads per loop, at most */

enum { QUEUED, RUNNING, FINISHED, DELIVERED, ABANDONED };

typedef struct lookup {
    struct lookup *next; /* in the queue or the done list */
    char *host;          /* what to look up */
    char service[8];     /* the port, as text */
    struct addrinfo hints;
    struct addrinfo *res; /* the answer */
    int gai, err;         /* getaddrinfo's result, errno for EAI_SYSTEM */
    int state;            /* QUEUED ... ABANDONED */
    gt__thread *waiter;   /* the green thread that asked */
} lookup;

typedef struct net__resolver {
    net__waitable w;      /* the eventfd; first member */
    pthread_mutex_t mu;   /* guards everything below */
    pthread_cond_t cv;    /* work for idle workers */
    lookup *queue, *tail; /* waiting for a worker */
    lookup *done;         /* answered, not yet handed out */
    pthread_t worker[NET__WORKERS];
    int nworkers, idle, stopping;
} net__resolver;

static void lookup_free(lookup *l)
{
    if (l->res) freeaddrinfo(l->res);
    free(l->host);
    free(l);
}

static void *work(void *p)
{
    net__resolver *r = p;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->queue && !r->stopping) {
            r->idle++;
            pthread_cond_wait(&r->cv, &r->mu);
            r->idle--;
        }
        if (r->stopping) break;
        lookup *l = r->queue;
        if (!(r->queue = l->next)) r->tail = NULL;
        l->state = RUNNING;
        pthread_mutex_unlock(&r->mu);

        struct addrinfo *res = NULL;
        int gai = getaddrinfo(l->host, l->service, &l->hints, &res);
        int err = errno;

        pthread_mutex_lock(&r->mu);
        if (l->state == ABANDONED) {
            l->res = res;
            lookup_free(l);
            continue;
        }
        l->res = res;
        l->gai = gai;
        l->err = err;
        l->state = FINISHED;
        l->next = r->done;
        r->done = l;
        uint64_t one = 1;
        (void)!write(r->w.fd, &one, sizeof one);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* On the loop thread: hands finished lookups to their green threads. */
static void on_done(net__waitable *w, int events)
{
    net__resolver *r = (net__resolver *)(void *)w;
    uint64_t n;
    (void)events;
    (void)!read(w->fd, &n, sizeof n);
    pthread_mutex_lock(&r->mu);
    lookup *l = r->done;
    r->done = NULL;
    pthread_mutex_unlock(&r->mu);
    while (l) {
        lookup *next = l->next;
        if (l->state == ABANDONED) {
            lookup_free(l);
        } else {
            l->state = DELIVERED;
            gt__wake(l->waiter, 0);
        }
        l = next;
    }
}

static int resolver_new(net__loop *L)
{
    net__resolver *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    r->w.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->w.fd < 0) {
        int rc = -errno;
        free(r);
        return rc;
    }
    r->w.slot = -1;
    r->w.on_event = on_done;
    int rc = L->be->add(L->p, &r->w, NET_IN);
    if (rc < 0) {
        close(r->w.fd);
        free(r);
        return rc;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    L->res = r;
    return 0;
}

void net__resolver_free(net__loop *L)
{
    net__resolver *r = L->res;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = 1;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    /* A worker inside getaddrinfo finishes it first. */
    for (int i = 0; i < r->nworkers; i++) pthread_join(r->worker[i], NULL);
    for (lookup *l = r->queue, *n; l; l = n) n = l->next, lookup_free(l);
    for (lookup *l = r->done, *n; l; l = n) n = l->next, lookup_free(l);
    L->be->del(L->p, &r->w);
    close(r->w.fd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
    L->res = NULL;
}

/* Called with r->mu held.  Workers take no signals: those belong to the
 * program's own threads. */
static int add_worker(net__resolver *r)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&r->worker[r->nworkers], NULL, work, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) return -rc;
    r->nworkers++;
    return 0;
}

static int resolve_error(int gai, int err)
{
    switch (gai) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
        return NET_ENOTFOUND;
    case EAI_AGAIN: return NET_ETRYAGAIN;
    case EAI_MEMORY: return -ENOMEM;
    case EAI_SYSTEM: return err ? -err : NET_ERESOLVE;
    case EAI_SERVICE:
    case EAI_FAMILY:
    case EAI_SOCKTYPE:
    case EAI_BADFLAGS: return -EINVAL;
    default: return NET_ERESOLVE;
    }
}

/* Queues the lookup and parks until a worker answers or the deadline;
 * takes ownership of l. */
static int lookup_parked(net__loop *L, lookup *l, struct addrinfo **out,
                         int64_t deadline)
{
    int rc;
    if (!L->res && (rc = resolver_new(L)) < 0) {
        lookup_free(l);
        return rc;
    }
    net__resolver *r = L->res;
    /* resolver_new set L->res when it returned 0 (see serve_accept in
     * tcp.c for why the analyzer cannot tell). */
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
    pthread_mutex_lock(&r->mu);
    if (!r->idle && r->nworkers < NET__WORKERS && (rc = add_worker(r)) < 0 &&
        !r->nworkers) {
        pthread_mutex_unlock(&r->mu);
        lookup_free(l);
        return rc;
    }
    l->state = QUEUED;
    if (r->tail)
        r->tail->next = l;
    else
        r->queue = l;
    r->tail = l;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);

    L->io.waiters++; /* the eventfd will wake us: not a deadlock */
    rc = gt__park(deadline, "resolve", l->host);
    L->io.waiters--;

    pthread_mutex_lock(&r->mu);
    int state = l->state;
    if (state == QUEUED) {
        lookup **pp = &r->queue, *prev = NULL;
        while (*pp != l) prev = *pp, pp = &(*pp)->next;
        *pp = l->next;
        if (r->tail == l) r->tail = prev;
    } else if (state != DELIVERED) {
        l->state = ABANDONED; /* the worker or on_done frees it */
    }
    pthread_mutex_unlock(&r->mu);
    if (state != QUEUED && state != DELIVERED) return rc;
    if (rc == 0 && state == DELIVERED) {
        if (l->gai)
            rc = resolve_error(l->gai, l->err);
        else
            *out = l->res, l->res = NULL;
    }
    lookup_free(l);
    return rc;
}

int net__resolve(net__loop *L, const char *host, int port, int use,
                 struct addrinfo **out, int64_t deadline)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    /* A listener's wildcard means every IPv4 address, as in LuaSocket. */
    hints.ai_family = use == NET__LISTEN && !host ? AF_INET : AF_UNSPEC;
    hints.ai_flags =
        AI_NUMERICSERV | AI_NUMERICHOST | (use != NET__PEER ? AI_PASSIVE : 0);
    char service[8];
    snprintf(service, sizeof service, "%d", port);

    int gai = getaddrinfo(host, service, &hints, out);
    if (gai == 0) return 0;
    if (gai != EAI_NONAME || !host) return resolve_error(gai, errno);
    hints.ai_flags &= ~AI_NUMERICHOST;
    if (!gt__self()) {
        /* Nothing else can run on this OS thread now: just block. */
        gai = getaddrinfo(host, service, &hints, out);
        return gai ? resolve_error(gai, errno) : 0;
    }
    if (deadline == 0) return -ETIMEDOUT;
    lookup *l = calloc(1, sizeof *l);
    if (!l || !(l->host = strdup(host))) {
        free(l);
        return -ENOMEM;
    }
    memcpy(l->service, service, sizeof service);
    l->hints = hints;
    l->waiter = gt__self();
    return lookup_parked(L, l, out, deadline);
}
