/* Sink objects in Lua: handles to C sinks (a run's stdout, say) and sinks made in Lua
 * (hangar.sink.buffer), so producers in C can be pointed at them. */
#include <string.h>

#include "core/buf.h"
#include "core/clock.h"
#include "lua/internal.h"

#define SINK_MT "hangar.sink"
#define BUFFER_DEFAULT_LIMIT ((size_t)64 << 20)

typedef struct {
  hg_sink *sink; /* NULL once invalidated */
  int own;       /* a buffer sink made by hangar.sink.buffer: the fields below are used */
  hg_sink storage;
  hg_buf buf;
  size_t limit;
  int eof;
} lua_sink;

static int buffer_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  (void)ts_ms;
  lua_sink *ls = s->data;
  if (ls->buf.len + len > ls->limit) return HG_ETOOBIG;
  return hg_buf_append(&ls->buf, bytes, len);
}

static void buffer_eof(hg_sink *s, int64_t ts_ms) {
  (void)ts_ms;
  lua_sink *ls = s->data;
  ls->eof = 1;
}

static const hg_sink_ops buffer_ops = {buffer_write, buffer_eof};

static int sink_gc(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  if (ls->own) hg_buf_free(&ls->buf);
  /* A producer finalized later in the same cycle could still write: refuse, do not grow. */
  ls->limit = 0;
  ls->sink = NULL;
  return 0;
}

static lua_sink *new_sink(lua_State *L) {
  lua_sink *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  memset(ls, 0, sizeof *ls);
  luaL_setmetatable(L, SINK_MT);
  return ls;
}

void hg_lua_push_sink(lua_State *L, hg_sink *sink) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua_key_sinks);
  if (lua_rawgetp(L, -1, sink) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return;
  }
  lua_pop(L, 1);
  lua_sink *ls = new_sink(L);
  ls->sink = sink;
  lua_pushvalue(L, -1);
  lua_rawsetp(L, -3, sink);
  lua_remove(L, -2);
}

void hg_lua_sink_invalidate(lua_State *L, hg_sink *sink) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua_key_sinks);
  if (lua_rawgetp(L, -1, sink) == LUA_TUSERDATA) {
    lua_sink *ls = lua_touserdata(L, -1);
    ls->sink = NULL;
    lua_pushnil(L);
    lua_rawsetp(L, -3, sink);
  }
  lua_pop(L, 2);
}

int hg_lua_sink_at(lua_State *L, int idx, hg_sink **out) {
  lua_sink *ls = luaL_testudata(L, idx, SINK_MT);
  if (!ls) return 1;
  if (!ls->sink) return 2;
  *out = ls->sink;
  return 0;
}

hg_sink *hg_lua_check_sink(lua_State *L, int idx) {
  lua_sink *ls = luaL_checkudata(L, idx, SINK_MT);
  if (!ls->sink) luaL_argerror(L, idx, "sink is no longer valid (its run has ended)");
  return ls->sink;
}

/* sink:write(bytes): hands bytes to the sink. Returns true, or nil and a message when the
 * sink refused them. A sink asking to pause has still taken the bytes. */
static int l_write(lua_State *L) {
  hg_sink *s = hg_lua_check_sink(L, 1);
  size_t len;
  const char *bytes = luaL_checklstring(L, 2, &len);
  int rc = hg_sink_write(s, bytes, len, hg_clock_now_ms());
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushstring(L, rc == HG_ETOOBIG ? "sink is full" : "sink refused the bytes");
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* buffer:contents(): every byte written so far. */
static int l_contents(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  if (!ls->own) return luaL_argerror(L, 1, "only a buffer sink has contents");
  lua_pushlstring(L, ls->buf.data ? ls->buf.data : "", ls->buf.len);
  return 1;
}

/* buffer:clear(): drops what it holds. */
static int l_clear(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  if (!ls->own) return luaL_argerror(L, 1, "only a buffer sink can be cleared");
  hg_buf_reset(&ls->buf);
  ls->eof = 0;
  return 0;
}

/* sink:closed(): whether the producer signalled the end (buffer sinks only). */
static int l_closed(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  lua_pushboolean(L, ls->own && ls->eof);
  return 1;
}

static int l_valid(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  lua_pushboolean(L, ls->sink != NULL);
  return 1;
}

static int l_tostring(lua_State *L) {
  lua_sink *ls = luaL_checkudata(L, 1, SINK_MT);
  lua_pushfstring(L, "hangar.sink (%s%s): %p", ls->own ? "buffer" : "host",
                  ls->sink ? "" : ", invalid", (void *)ls);
  return 1;
}

/* hangar.sink.buffer([{limit = bytes}]): a sink collecting bytes in memory (64 MiB by
 * default; past the limit it refuses writes, which stops the producer). */
static int l_buffer(lua_State *L) {
  size_t limit = BUFFER_DEFAULT_LIMIT;
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "limit");
    if (!lua_isnil(L, -1)) {
      lua_Integer n = luaL_checkinteger(L, -1);
      if (n < 0) return luaL_argerror(L, 1, "limit must not be negative");
      limit = (size_t)n;
    }
    lua_pop(L, 1);
  }
  lua_sink *ls = new_sink(L);
  ls->own = 1;
  ls->limit = limit;
  ls->storage.ops = &buffer_ops;
  ls->storage.data = ls;
  ls->sink = &ls->storage;
  return 1;
}

static int l_is_sink(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, SINK_MT) != NULL);
  return 1;
}

int hg_lua_open_sink(lua_State *L) {
  static const luaL_Reg methods[] = {{"write", l_write},   {"contents", l_contents},
                                     {"clear", l_clear},   {"closed", l_closed},
                                     {"valid", l_valid},   {NULL, NULL}};
  luaL_newmetatable(L, SINK_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sink_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"buffer", l_buffer}, {"is_sink", l_is_sink}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}

/* ---- guards ---- */

static void guard_on_resume(void *producer) {
  hg_lua_sink_guard *g = producer;
  hg_sink_resume(&g->sink);
}

static int guard_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  hg_lua_sink_guard *g = s->data;
  if (!g->target) return 0; /* nobody listens any more: drop, keep the producer going */
  int rc = hg_sink_write(g->target, bytes, len, ts_ms);
  if (rc == HG_SINK_PAUSE) {
    /* The target will resume its producer, which is this guard; pass it on. */
    g->target->resume = guard_on_resume;
    g->target->producer = g;
  }
  return rc;
}

static void guard_eof(hg_sink *s, int64_t ts_ms) {
  hg_lua_sink_guard *g = s->data;
  if (g->target) hg_sink_eof(g->target, ts_ms);
}

static const hg_sink_ops guard_ops = {guard_write, guard_eof};

void hg_lua_sink_guard_init(hg_lua_sink_guard *g, hg_sink *target) {
  memset(g, 0, sizeof *g);
  g->sink.ops = &guard_ops;
  g->sink.data = g;
  g->target = target;
}

void hg_lua_sink_guard_detach(hg_lua_sink_guard *g) {
  if (g->target && g->target->producer == g) {
    g->target->resume = NULL;
    g->target->producer = NULL;
  }
  g->target = NULL;
  /* A producer paused on the guard must not stay stuck. */
  hg_sink_resume(&g->sink);
}
