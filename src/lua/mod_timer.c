/* hangar.timer: sleep(ms) suspends the calling task (or, in blocking mode, the caller) on a
 * loop timer; clocks for measuring. */
#include <stdlib.h>

#include "core/clock.h"
#include "core/timer.h"
#include "lua/internal.h"

typedef struct {
  hg_lua_wait *w;
  hg_timer *t;
} sleep_op;

static void on_fire(hg_timer *t, void *data) {
  sleep_op *op = data;
  hg_timer_free(t);
  op->t = NULL;
  hg_lua_wait_done(op->w);
}

static void sleep_abandon(void *data) {
  sleep_op *op = data;
  hg_timer_free(op->t);
  free(op);
}

static const hg_lua_wait_ops sleep_ops = {NULL, sleep_abandon, free};

/* timer.sleep(ms): returns after ms milliseconds; other tasks run meanwhile. */
static int l_sleep(lua_State *L) {
  lua_Integer ms = luaL_checkinteger(L, 1);
  luaL_argcheck(L, ms >= 0, 1, "must not be negative");
  hg_lua *rt = hg_lua_from(L);
  hg_lua_wait *w = hg_lua_wait_new(L, "hangar.timer.sleep");
  sleep_op *op = calloc(1, sizeof *op);
  hg_err err;
  if (!op || hg_timer_new(hg_lua_loop(rt), on_fire, op, &op->t, &err) != 0) {
    free(op);
    hg_lua_wait_discard(w);
    return luaL_error(L, "hangar.timer.sleep: cannot create a timer");
  }
  op->w = w;
  /* libuv measures from its cached "now", which is stale when Lua ran for a while (or the
   * loop sat idle between blocking calls): refresh it so the sleep is not cut short. */
  uv_update_time(&hg_lua_loop(rt)->uv);
  int rc = hg_timer_start(op->t, (int64_t)ms, 0);
  if (rc) {
    hg_timer_free(op->t);
    free(op);
    hg_lua_wait_discard(w);
    return luaL_error(L, "hangar.timer.sleep: cannot start a timer: %s", uv_strerror(rc));
  }
  return hg_lua_wait_yield(L, w, &sleep_ops, op);
}

/* timer.monotonic() -> milliseconds on a clock that never jumps (for intervals). */
static int l_monotonic(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)hg_clock_mono_ms());
  return 1;
}

/* timer.monotonic_ns() -> nanoseconds on the same clock, for measuring short intervals
 * (benchmarks: a dispatch takes about a millisecond). */
static int l_monotonic_ns(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)hg_clock_mono_ns());
  return 1;
}

/* timer.now() -> Unix time in milliseconds. */
static int l_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)hg_clock_now_ms());
  return 1;
}

int hg_lua_open_timer(lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"sleep", l_sleep}, {"monotonic", l_monotonic},
      {"monotonic_ns", l_monotonic_ns}, {"now", l_now}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
