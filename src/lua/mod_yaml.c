/* hangar.yaml: yaml.decode(text [, name]) -> value, or nil and "name:line:col: message".
 * Parsing and typing are src/core/yaml.c's; values map to Lua as hangar.json's do (null is
 * json.null, mappings and sequences carry the json.object / json.array markers). */
#include <cjson/cJSON.h>

#include "core/yaml.h"
#include "lua/internal.h"

static int l_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *name = luaL_optstring(L, 2, "<yaml>");
  void **slot = hg_lua_box_new(L, (void (*)(void *))cJSON_Delete);
  hg_err err;
  cJSON *root = NULL;
  if (hg_yaml_parse(text, len, name, &root, &err) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  *slot = root;
  hg_lua_json_push(L, root);
  hg_lua_box_release(L, -2);
  return 1;
}

int hg_lua_open_yaml(lua_State *L) {
  static const luaL_Reg funcs[] = {{"decode", l_decode}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
