/* socketloop.core: timers, the C piece under socketloop/sync.lua's
 * loop.timer.  A timer is one sleep of the net layer (NET_OP_SLEEP) with
 * a Lua function: when the sleep ends the timer joins its loop's ready
 * queue, and the resumer runs the function there, as a new loop thread
 * (so it may block), on the resumer's own green thread.  No coroutine
 * exists while a timer is armed, only the timer's own memory: the thread
 * is made when it fires and ends with the function.
 *
 * timer:start(deadline, f [, arg]) arms it (again) for an absolute
 * deadline in loop.now()'s seconds, to call f(arg); timer:stop() disarms
 * it.  While armed, the timer, f and arg are held by the registry.  One f
 * shared by many timers, each with its own arg, saves a closure per
 * arming. */
#include "lsl.h"

#include <string.h>

#define LSL_TIMER_MT "socketloop.ctimer"

typedef struct lsl_timer {
    lsl_op o;     /* LSL_TIMER: the ready-queue link and the sleep */
    int fn_ref;   /* registry: the function, while armed */
    int arg_ref;  /* registry: its argument, while armed */
    int self_ref; /* registry: the timer itself, while armed */
    int waiting;  /* the sleep is in the loop */
} lsl_timer;

static lsl_timer *check_timer(lua_State *L)
{
    return (lsl_timer *)luaL_checkudata(L, 1, LSL_TIMER_MT);
}

static void disarm(lua_State *L, lsl_timer *t)
{
    if (t->self_ref != LUA_NOREF) t->o.lp->ntimers--;
    luaL_unref(L, LUA_REGISTRYINDEX, t->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->arg_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->fn_ref = t->arg_ref = t->self_ref = LUA_NOREF;
}

static void stop(lua_State *L, lsl_timer *t)
{
    if (t->waiting) net_op_cancel(&t->o.op);
    t->waiting = 0;
    lsl_unqueue(&t->o);
    disarm(L, t);
}

static void sleep_done(net_op *op)
{
    lsl_timer *t = LSL_CONTAINER(op, lsl_timer, o.op);
    t->waiting = 0;
    lsl_enqueue(&t->o);
}

void lsl_timer_fire(lsl_op *o)
{
    lsl_timer *t = LSL_CONTAINER(o, lsl_timer, o);
    lua_State *A = o->lp->aux;
    lua_rawgeti(A, LUA_REGISTRYINDEX, t->fn_ref);
    lua_rawgeti(A, LUA_REGISTRYINDEX, t->arg_ref);
    disarm(A, t); /* the function may arm it again */
    lsl_run_here(o->lp, A, 1);
}

void lsl_timer_drop(lsl_op *o)
{
    disarm(o->lp->aux, LSL_CONTAINER(o, lsl_timer, o));
}

/* timer:start(deadline, f [, arg]) -> the timer. */
static int l_start(lua_State *L)
{
    lsl_timer *t = check_timer(L);
    double deadline = luaL_checknumber(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    stop(L, t);
    lua_settop(L, 4);
    t->arg_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, 1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->o.lp->ntimers++;
    t->o.op = (net_op){.kind = NET_OP_SLEEP,
                       .idle = -1,
                       .deadline = (int64_t)(deadline * 1000 + 0.5),
                       .done = sleep_done,
                       .udata = t};
    if (t->o.op.deadline < 0) t->o.op.deadline = 0;
    if (net_op_start(&t->o.op))
        lsl_enqueue(&t->o); /* over at once: fires in its turn */
    else
        t->waiting = 1;
    lua_settop(L, 1);
    return 1;
}

/* timer:stop() -> the timer. */
static int l_stop(lua_State *L)
{
    stop(L, check_timer(L));
    lua_settop(L, 1);
    return 1;
}

/* Only a timer that is not armed is collected, or any at close. */
static int l_gc(lua_State *L)
{
    stop(L, check_timer(L));
    return 0;
}

/* loop:timer() -> a timer of the loop, not armed. */
int lsl_timer_new(lua_State *L)
{
    lsl_loop *lp = luaL_checkudata(L, 1, LSL_LOOP);
    lsl_timer *t = lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->o.lp = lp;
    t->o.kind = LSL_TIMER;
    t->o.data_ref = LUA_NOREF;
    t->fn_ref = t->arg_ref = t->self_ref = LUA_NOREF;
    luaL_getmetatable(L, LSL_TIMER_MT);
    lua_setmetatable(L, -2);
    return 1;
}

void lsl_open_timer(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"start", l_start}, {"stop", l_stop}, {NULL, NULL}};
    luaL_newmetatable(L, LSL_TIMER_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
