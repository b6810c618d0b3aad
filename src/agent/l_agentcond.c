/* core.cond(): wait/notify between the agent's Lua tasks, with a timeout on the loop. */
#include "agent/agentcond.h"

#include <lauxlib.h>
#include <stdlib.h>

#include "core/timer.h"
#include "lua/runtime.h"

#define COND_MT "hangar.agent.cond"

typedef struct waiter {
  hg_lua_wait *w;
  hg_timer *timer;
  int notified;
  struct waiter **pprev, *next; /* linked while waiting */
} waiter;

typedef struct {
  waiter *head;
} cond;

static void unlink_waiter(waiter *wt) {
  if (!wt->pprev) return;
  *wt->pprev = wt->next;
  if (wt->next) wt->next->pprev = wt->pprev;
  wt->pprev = NULL;
  wt->next = NULL;
}

static void wake(waiter *wt, int notified) {
  unlink_waiter(wt);
  if (wt->timer) hg_timer_stop(wt->timer);
  wt->notified = notified;
  hg_lua_wait_done(wt->w);
}

static void on_timeout(hg_timer *t, void *data) {
  (void)t;
  wake(data, 0);
}

static int waiter_push(lua_State *L, void *data) {
  lua_pushboolean(L, ((waiter *)data)->notified);
  return 1;
}

static void waiter_free(void *data) {
  waiter *wt = data;
  unlink_waiter(wt);
  hg_timer_free(wt->timer);
  free(wt);
}

static const hg_lua_wait_ops waiter_ops = {waiter_push, waiter_free, waiter_free};

static int l_wait(lua_State *L) {
  cond *c = luaL_checkudata(L, 1, COND_MT);
  lua_Integer ms = luaL_optinteger(L, 2, -1);
  hg_lua_wait *w = hg_lua_wait_new(L, "cond:wait");
  waiter *wt = calloc(1, sizeof *wt);
  if (!wt) {
    hg_lua_wait_discard(w);
    return luaL_error(L, "cond:wait: out of memory");
  }
  wt->w = w;
  if (ms >= 0) {
    hg_loop *loop = hg_lua_loop(hg_lua_from(L));
    hg_err err;
    if (hg_timer_new(loop, on_timeout, wt, &wt->timer, &err) ||
        (uv_update_time(&loop->uv), hg_timer_start(wt->timer, (int64_t)ms, 0))) {
      hg_timer_free(wt->timer);
      free(wt);
      hg_lua_wait_discard(w);
      return luaL_error(L, "cond:wait: cannot start a timer");
    }
  }
  wt->next = c->head;
  if (c->head) c->head->pprev = &wt->next;
  wt->pprev = &c->head;
  c->head = wt;
  return hg_lua_wait_yield(L, w, &waiter_ops, wt);
}

static int l_notify(lua_State *L) {
  cond *c = luaL_checkudata(L, 1, COND_MT);
  while (c->head) wake(c->head, 1);
  return 0;
}

/* Collected only when no task waits on it (a waiting task's stack holds it), or when the
 * runtime closes, after every wait was abandoned. */
static int l_gc(lua_State *L) {
  cond *c = luaL_checkudata(L, 1, COND_MT);
  while (c->head) unlink_waiter(c->head);
  return 0;
}

static int l_new(lua_State *L) {
  cond *c = lua_newuserdatauv(L, sizeof *c, 0);
  c->head = NULL;
  if (luaL_newmetatable(L, COND_MT)) {
    static const luaL_Reg methods[] = {{"wait", l_wait}, {"notify", l_notify}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return 1;
}

void hg_agentcond_push_new(lua_State *L) { lua_pushcfunction(L, l_new); }
