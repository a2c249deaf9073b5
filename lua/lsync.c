/* socketloop.core: wait queues, the one C piece under the Lua module's
 * timers, queues, semaphores, locks and pause/wakeup (socketloop/sync.lua).
 *
 * A wait queue holds loop threads in the order they came.  wait() blocks
 * the caller until a wake() hands it values, or until its timeout ends
 * (nil, 'timeout').  The rules of each primitive (who is woken, with what)
 * are Lua code on top; only blocking and waking are here.
 *
 * Why not the runtime's gt_chan and gt_sem: those park a green thread,
 * and a loop thread that can yield holds none while it waits (see lsl.h).
 * So a waiter is woken as a socket call ends: a waiting coroutine that
 * yielded joins its loop's ready queue with the values already pushed on
 * its stack; one parked in place (inside a metamethod, on Lua 5.1 and
 * 5.2...) sleeps on a semaphore of its own, which wake releases.  A
 * timeout is the net layer's NET_OP_SLEEP, taken back with
 * net_op_cancel when a wake comes first.  Waiters come from a free list
 * kept by their queue: once a queue has held as many waiters as it will
 * hold at once, waiting and waking allocate nothing. */
#include "lsl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define LSL_WQ "socketloop.wq"

typedef struct lsl_wq lsl_wq;

typedef struct lsl_waiter {
    lsl_op o;     /* LSL_WAIT: the ready-queue link and the timeout */
    lsl_wq *home; /* the queue that made it */
    lsl_wq *q;    /* the queue it waits in; NULL once out of it */
    struct lsl_waiter *prev, *next; /* in q, or next in the free list */
    struct lsl_waiter *all;         /* every waiter q has made */
    lua_State *to;                  /* where a wake's values go */
    gt_sem *sem;    /* wakes one parked in place (made on first use) */
    lua_Number tag; /* what the waiter asked for (a semaphore's count) */
    int nvals;      /* values a wake left on `to` */
    int woken;      /* a wake came (else the timeout ended it) */
    int parked;     /* the green thread under it parks in place */
    int timed;      /* its sleep is in the loop */
} lsl_waiter;

struct lsl_wq {
    lsl_loop *lp;
    lsl_waiter *head, *tail; /* waiting, first come first */
    lsl_waiter *free;        /* ready for reuse */
    lsl_waiter *all;         /* every one made, to free with the queue */
    int n;                   /* waiting */
};

/* As lsl_check_sock: the methods hold the metatable as upvalue 1. */
static lsl_wq *check_wq(lua_State *L)
{
    lsl_wq *q = (lsl_wq *)lua_touserdata(L, 1);
    if (q && lua_getmetatable(L, 1)) {
        int ours = lua_rawequal(L, -1, lua_upvalueindex(1));
        lua_pop(L, 1);
        if (ours) return q;
    }
    return (lsl_wq *)luaL_checkudata(L, 1, LSL_WQ);
}

static void unlink_waiter(lsl_waiter *w)
{
    lsl_wq *q = w->q;
    if (!q) return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->q = NULL;
    q->n--;
}

static lsl_waiter *take_waiter(lsl_wq *q)
{
    lsl_waiter *w = q->free;
    if (w) {
        q->free = w->next;
    } else {
        if (!(w = calloc(1, sizeof *w))) return NULL;
        w->all = q->all;
        q->all = w;
        w->home = q;
        w->o.lp = q->lp;
        w->o.kind = LSL_WAIT;
        w->o.data_ref = LUA_NOREF;
    }
    w->next = w->prev = NULL;
    w->woken = w->timed = w->parked = 0;
    w->nvals = 0;
    return w;
}

static void give_back(lsl_wq *q, lsl_waiter *w)
{
    w->next = q->free;
    q->free = w;
}

static void append(lsl_wq *q, lsl_waiter *w)
{
    w->q = q;
    w->prev = q->tail;
    w->next = NULL;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
}

/* The timeout of a waiter that yielded: out of its queue at once (so
 * that no wake picks it), then resumed in its turn. */
static void timeout_done(net_op *op)
{
    lsl_waiter *w = LSL_CONTAINER(op, lsl_waiter, o.op);
    w->timed = 0;
    unlink_waiter(w);
    lsl_enqueue(&w->o);
}

static int push_timeout(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
}

void lsl_wait_resume(lsl_op *o)
{
    lsl_waiter *w = LSL_CONTAINER(o, lsl_waiter, o);
    lua_State *co = w->to;
    int n = w->nvals;
    if (!w->woken) {
        luaL_checkstack(co, 2, NULL);
        n = push_timeout(co);
    }
    /* The queue outlives its waiters: the caller's Lua frames hold it. */
    give_back(w->home, w);
    if (lua_status(co) != LUA_YIELD) { /* it died meanwhile */
        lua_pop(co, n);
        return;
    }
    lsl_resume(o->lp, co, n);
}

void lsl_wait_fail(lsl_op *o, const char *why)
{
    lsl_waiter *w = LSL_CONTAINER(o, lsl_waiter, o);
    give_back(w->home, w);
    lsl_fail(o->lp, w->to, "socketloop: cannot run a loop thread: %s", why);
}

/* wq:wait([timeout [, tag [, deadline]]]) -> what wake passed |
 * nil, 'timeout'.  timeout in seconds (nil: none); deadline, when given,
 * is absolute, on loop.now()'s clock, and wins over timeout. */
static int l_wait(lua_State *L)
{
    lsl_wq *q = check_wq(L);
    int64_t deadline = -1;
    if (!lua_isnoneornil(L, 4)) {
        deadline = (int64_t)(luaL_checknumber(L, 4) * 1000 + 0.5);
        if (deadline <= gt_now()) return push_timeout(L);
    } else if (!lua_isnoneornil(L, 2)) {
        double t = luaL_checknumber(L, 2);
        if (t <= 0) return push_timeout(L);
        /* math.huge, or a year and more: no timeout. */
        deadline = t < 3.2e7 ? gt_now() + lsl_ms(t) : -1;
    }
    int yields = lsl_can_yield(L, q->lp);
    if (!yields && !gt_self()) return lsl_cannot_block(L, "this wait");
    lsl_waiter *w = take_waiter(q);
    if (!w) return luaL_error(L, "socketloop: %s", gt_strerror(-ENOMEM));
    w->tag = luaL_optnumber(L, 3, 0);
    if (yields) {
        w->to = lsl_top();
        if (deadline >= 0) {
            w->o.op = (net_op){.kind = NET_OP_SLEEP,
                               .idle = -1,
                               .deadline = deadline,
                               .done = timeout_done,
                               .udata = w};
            if (net_op_start(&w->o.op)) { /* over at once */
                give_back(q, w);
                return push_timeout(L);
            }
            w->timed = 1;
        }
        append(q, w);
        return lsl_yield_op(L);
    }
    if (!w->sem && gt_sem_make(&w->sem, 0) < 0) {
        give_back(q, w);
        return luaL_error(L, "socketloop: %s", gt_strerror(-ENOMEM));
    }
    w->to = L;
    w->parked = 1;
    append(q, w);
    lua_State *me = lsl_top();
    lsl_park(q->lp);
    int rc = gt_sem_acquire(w->sem, deadline);
    lsl_unpark(L, me);
    int n;
    if (w->woken) {
        /* A wake after the timeout had already fired left its unit. */
        if (rc < 0) gt_sem_acquire(w->sem, 0);
        n = w->nvals;
    } else {
        unlink_waiter(w);
        n = rc == -ETIMEDOUT ? push_timeout(L) : lsl_push_error(L, rc);
    }
    give_back(q, w);
    return n;
}

/* Hands the values at [first, first + n) of L to q's first waiter. */
static void wake_first(lua_State *L, lsl_wq *q, int first, int n)
{
    lsl_waiter *w = q->head;
    unlink_waiter(w);
    w->woken = 1;
    luaL_checkstack(w->to, n, NULL);
    for (int i = 0; i < n; i++) lua_pushvalue(L, first + i);
    lua_xmove(L, w->to, n);
    w->nvals = n;
    if (w->parked) {
        gt_sem_release(w->sem);
        return;
    }
    if (w->timed) {
        net_op_cancel(&w->o.op);
        w->timed = 0;
    }
    lsl_enqueue(&w->o);
}

/* wq:wake(...) -> true if a waiter took the values, else false. */
static int l_wake(lua_State *L)
{
    lsl_wq *q = check_wq(L);
    int n = lua_gettop(L) - 1;
    if (!q->head) {
        lua_pushboolean(L, 0);
        return 1;
    }
    wake_first(L, q, 2, n);
    lua_pushboolean(L, 1);
    return 1;
}

/* wq:wakeall(...) -> how many waiters took the values. */
static int l_wakeall(lua_State *L)
{
    lsl_wq *q = check_wq(L);
    int n = lua_gettop(L) - 1, count = 0;
    while (q->head) {
        wake_first(L, q, 2, n);
        count++;
    }
    lua_pushinteger(L, count);
    return 1;
}

/* wq:first() -> the tag of the first waiter, or nil when none waits. */
static int l_first(lua_State *L)
{
    lsl_wq *q = check_wq(L);
    if (!q->head) return 0;
    lua_pushnumber(L, q->head->tag);
    return 1;
}

/* wq:count() -> waiters; wq:tags() -> the sum of their tags. */
static int l_count(lua_State *L)
{
    lua_pushinteger(L, check_wq(L)->n);
    return 1;
}

static int l_tags(lua_State *L)
{
    lua_Number sum = 0;
    for (lsl_waiter *w = check_wq(L)->head; w; w = w->next) sum += w->tag;
    lua_pushnumber(L, sum);
    return 1;
}

/* A queue is collected once nobody waits in it (a waiter's frames hold
 * it), or when the Lua state closes with waiters still in it: their
 * timeouts and ready-queue places go first, as the loop outlives them. */
static int l_gc(lua_State *L)
{
    lsl_wq *q = check_wq(L);
    while (q->all) {
        lsl_waiter *w = q->all;
        q->all = w->all;
        if (w->timed) net_op_cancel(&w->o.op);
        lsl_unqueue(&w->o);
        /* A semaphore with a green thread parked on it stays. */
        if (w->sem && gt_sem_free(w->sem) < 0) continue;
        free(w);
    }
    q->free = q->head = q->tail = NULL;
    return 0;
}

/* loop:wq() -> a new wait queue for the loop's threads. */
int lsl_wq_new(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lsl_wq *q = lua_newuserdata(L, sizeof *q);
    memset(q, 0, sizeof *q);
    q->lp = lp;
    luaL_getmetatable(L, LSL_WQ);
    lua_setmetatable(L, -2);
    return 1;
}

void lsl_open_sync(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"wait", l_wait},   {"wake", l_wake},   {"wakeall", l_wakeall},
        {"first", l_first}, {"count", l_count}, {"tags", l_tags},
        {NULL, NULL}};
    luaL_newmetatable(L, LSL_WQ);
    lua_newtable(L);
    lua_pushvalue(L, -2);
    luaL_setfuncs(L, methods, 1);
    lua_setfield(L, -2, "__index");
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, l_gc, 1);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
