/* hangar.log: Lua code writing to the process's structured log (the agent's own log, not a
 * run's output). log.info("msg", {field = value, ...}); fields become JSON members. */
#include <cjson/cJSON.h>

#include "core/log.h"
#include "lua/internal.h"

static const char *const level_names[] = {"debug", "info", "warn", "error", "off", NULL};

static int write_log(lua_State *L, hg_log_level level) {
  const char *msg = luaL_checkstring(L, 1);
  if (level < hg_log_min_level()) return 0;
  cJSON *fields = NULL;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    void **slot = hg_lua_box_new(L, (void (*)(void *))cJSON_Delete);
    *slot = hg_lua_json_build(L, 2);
    if (!cJSON_IsObject((cJSON *)*slot))
      return luaL_argerror(L, 2, "fields must be a table with string keys");
    fields = *slot;
    *slot = NULL;
  }
  hg_log_obj(level, msg, fields);
  return 0;
}

static int l_debug(lua_State *L) { return write_log(L, HG_LOG_DEBUG); }
static int l_info(lua_State *L) { return write_log(L, HG_LOG_INFO); }
static int l_warn(lua_State *L) { return write_log(L, HG_LOG_WARN); }
static int l_error(lua_State *L) { return write_log(L, HG_LOG_ERROR); }

/* log.level() -> the lowest level written ("debug" ... "off"). */
static int l_level(lua_State *L) {
  lua_pushstring(L, level_names[hg_log_min_level()]);
  return 1;
}

/* log.enabled(level) -> whether a message at that level would be written. */
static int l_enabled(lua_State *L) {
  int level = luaL_checkoption(L, 1, NULL, level_names);
  lua_pushboolean(L, level < HG_LOG_OFF && (hg_log_level)level >= hg_log_min_level());
  return 1;
}

int hg_lua_open_log(lua_State *L) {
  static const luaL_Reg funcs[] = {{"debug", l_debug}, {"info", l_info},   {"warn", l_warn},
                                   {"error", l_error}, {"level", l_level}, {"enabled", l_enabled},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
