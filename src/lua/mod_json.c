/* hangar.json: JSON text <-> Lua values through cJSON.
 *
 * Mapping. null <-> json.null (a light userdata sentinel, so keys holding null survive);
 * true/false <-> booleans; numbers: an integral value within +-2^53 decodes as a Lua integer,
 * anything else as a float, and Lua integers encode exactly (beyond 2^53 too); strings <->
 * strings. Arrays decode to sequences and objects to tables, each carrying a marker
 * metatable (json.array / json.object), so a decoded [] or {} encodes back the same way.
 * Encoding a table: a marked table follows its marker; otherwise a table whose keys are
 * exactly 1..n is an array, a table with only string keys an object, and an empty table is
 * an object (use json.array{} for []). Object keys are written sorted, so output is stable.
 * Mixed or sparse keys, functions, NaN/infinity and nesting deeper than 1000 raise an error
 * naming the path of the offending value ($.a[2].b). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/internal.h"

#define ARRAY_MT "hangar.json.array"
#define OBJECT_MT "hangar.json.object"
#define MAX_DEPTH 1000
#define EXACT_LIMIT 9007199254740992.0 /* 2^53 */

void hg_lua_json_push_null(lua_State *L) { lua_pushlightuserdata(L, NULL); }

static int is_null(lua_State *L, int idx) {
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

/* ---- cJSON -> Lua ---- */

static void push_item(lua_State *L, const cJSON *item, int depth) {
  luaL_checkstack(L, 4, "JSON nested too deeply");
  if (cJSON_IsNull(item)) {
    hg_lua_json_push_null(L);
  } else if (cJSON_IsBool(item)) {
    lua_pushboolean(L, cJSON_IsTrue(item));
  } else if (cJSON_IsNumber(item)) {
    double d = item->valuedouble;
    if (d == floor(d) && fabs(d) <= EXACT_LIMIT)
      lua_pushinteger(L, (lua_Integer)d);
    else
      lua_pushnumber(L, d);
  } else if (cJSON_IsString(item)) {
    lua_pushstring(L, item->valuestring);
  } else if (cJSON_IsRaw(item)) {
    lua_pushstring(L, item->valuestring);
  } else if (cJSON_IsArray(item)) {
    lua_createtable(L, cJSON_GetArraySize(item), 0);
    lua_Integer i = 1;
    for (const cJSON *c = item->child; c; c = c->next) {
      push_item(L, c, depth + 1);
      lua_rawseti(L, -2, i++);
    }
    luaL_setmetatable(L, ARRAY_MT);
  } else if (cJSON_IsObject(item)) {
    lua_createtable(L, 0, cJSON_GetArraySize(item));
    for (const cJSON *c = item->child; c; c = c->next) {
      push_item(L, c, depth + 1);
      lua_setfield(L, -2, c->string);
    }
    luaL_setmetatable(L, OBJECT_MT);
  } else {
    lua_pushnil(L);
  }
}

void hg_lua_json_push(lua_State *L, const cJSON *item) { push_item(L, item, 0); }

/* ---- Lua -> cJSON ---- */

typedef struct path {
  const struct path *up;
  const char *key; /* object member, or NULL for an array index */
  lua_Integer index;
} path;

static int raise_at(lua_State *L, const path *p, const char *fmt, const char *detail) {
  luaL_Buffer b;
  /* Collect the segments innermost first, then write them outermost first. */
  const path *segs[MAX_DEPTH + 2];
  int n = 0;
  for (const path *q = p; q && n < MAX_DEPTH + 2; q = q->up) segs[n++] = q;
  luaL_buffinit(L, &b);
  luaL_addchar(&b, '$');
  for (int i = n - 1; i >= 0; i--) {
    if (!segs[i]->up) continue; /* the root */
    if (segs[i]->key) {
      luaL_addchar(&b, '.');
      luaL_addstring(&b, segs[i]->key);
    } else {
      lua_pushfstring(L, "[%I]", segs[i]->index);
      luaL_addvalue(&b);
    }
  }
  luaL_pushresult(&b);
  return luaL_error(L, fmt, detail, lua_tostring(L, -1));
}

static cJSON *build(lua_State *L, int idx, int depth, const path *at, int text,
                    lua_Integer *members);
static void fill(lua_State *L, int idx, cJSON *out, lua_Integer count, int depth, const path *at,
                 int text);

/* Builds the value on top of the stack into out (under key, or next in an array for NULL)
 * and pops it. A container is attached to its parent before it is filled, so that an error
 * raised inside it (a longjmp) leaves nothing unowned: only the root needs a box
 * (build_root). */
static void add_member(lua_State *L, cJSON *out, const char *key, int depth, const path *at,
                       int text) {
  lua_Integer members = 0;
  cJSON *c = build(L, lua_gettop(L), depth, at, text, &members);
  if (!c) luaL_error(L, "json.encode: out of memory");
  if (key)
    cJSON_AddItemToObject(out, key, c);
  else
    cJSON_AddItemToArray(out, c);
  fill(L, lua_gettop(L), c, members, depth, at, text);
  lua_pop(L, 1);
}

static void build_array(lua_State *L, int idx, lua_Integer n, int depth, const path *at,
                        int text, cJSON *out) {
  for (lua_Integer i = 1; i <= n; i++) {
    path p = {at, NULL, i};
    lua_rawgeti(L, idx, i);
    add_member(L, out, NULL, depth + 1, &p, text);
  }
}

static int cmp_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keys of an object this small are sorted on the C stack, with no userdata to collect. */
#define STACK_KEYS 32

static void build_object(lua_State *L, int idx, lua_Integer count, int depth, const path *at,
                         int text, cJSON *out) {
  const char *stack_keys[STACK_KEYS];
  const char **keys = stack_keys;
  int pushed = 0;
  if (count > STACK_KEYS) {
    keys = lua_newuserdatauv(L, (size_t)count * sizeof *keys, 0);
    pushed = 1;
  }
  /* The table holds its keys, so these pointers stay valid while it is not changed. */
  lua_Integer k = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    size_t klen;
    const char *key = lua_tolstring(L, -1, &klen);
    /* Checked here, on the key itself: past this point a key is only its C string. */
    if (strlen(key) != klen) {
      path p = {at, key, 0};
      raise_at(L, &p, "json.encode: %s at %s", "key holds a NUL byte");
    }
    keys[k++] = key;
  }
  qsort(keys, (size_t)count, sizeof *keys, cmp_keys);
  for (lua_Integer i = 0; i < count; i++) {
    lua_pushstring(L, keys[i]);
    path p = {at, keys[i], 0};
    lua_rawget(L, idx);
    add_member(L, out, keys[i], depth + 1, &p, text);
  }
  if (pushed) lua_pop(L, 1);
}

/* Fills a container that build made for the table at idx, holding count keys. */
static void fill(lua_State *L, int idx, cJSON *out, lua_Integer count, int depth, const path *at,
                 int text) {
  if (cJSON_IsArray(out)) {
    build_array(L, idx, count, depth, at, text, out);
  } else if (cJSON_IsObject(out)) {
    build_object(L, idx, count, depth, at, text, out);
  }
}

/* Builds the value at idx. A container comes back empty, its member count in *members: the
 * caller owns it (attaches it, or boxes it) before fill, which can raise. text: the tree is
 * only printed, so integers may be held as their digits. */
static cJSON *build(lua_State *L, int idx, int depth, const path *at, int text,
                    lua_Integer *members) {
  if (depth > MAX_DEPTH)
    raise_at(L, at, "json.encode: %s at %s", "nesting deeper than 1000 levels (a cycle?)");
  luaL_checkstack(L, 6, "JSON nested too deeply");
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return cJSON_CreateNull();
    case LUA_TBOOLEAN:
      return cJSON_CreateBool(lua_toboolean(L, idx));
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer v = lua_tointeger(L, idx);
        /* For text, every integer is written as its digits: cJSON's printf %g and sscanf
         * round trip was most of the cost of encoding a run's record (all integers), and
         * it wrote +-2^53 as 9.00719925474099e+15, which reads back as 2^53 - 2. */
        if (!text && v >= -(lua_Integer)EXACT_LIMIT && v <= (lua_Integer)EXACT_LIMIT)
          return cJSON_CreateNumber((double)v);
        /* cJSON holds numbers as doubles: write big integers as their exact digits. */
        char digits[32];
        snprintf(digits, sizeof digits, LUA_INTEGER_FMT, v);
        return cJSON_CreateRaw(digits);
      } else {
        double d = lua_tonumber(L, idx);
        if (!isfinite(d)) raise_at(L, at, "json.encode: cannot encode %s at %s", isnan(d) ? "NaN" : "infinity");
        return cJSON_CreateNumber(d);
      }
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      if (strlen(s) != len) raise_at(L, at, "json.encode: %s at %s", "string holds a NUL byte");
      return cJSON_CreateString(s);
    }
    case LUA_TLIGHTUSERDATA:
      if (is_null(L, idx)) return cJSON_CreateNull();
      break;
    case LUA_TTABLE: {
      int kind = 0; /* 1 array, 2 object */
      if (lua_getmetatable(L, idx)) {
        luaL_getmetatable(L, ARRAY_MT);
        if (lua_rawequal(L, -1, -2)) kind = 1;
        lua_pop(L, 1);
        luaL_getmetatable(L, OBJECT_MT);
        if (lua_rawequal(L, -1, -2)) kind = 2;
        lua_pop(L, 2);
      }
      /* Count keys and classify them. */
      lua_Integer count = 0, max = 0;
      int strings = 0, others = 0;
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING) {
          strings++;
        } else if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
          if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
        } else {
          others++;
        }
      }
      if (others) raise_at(L, at, "json.encode: %s at %s", "table key that is neither a string nor a positive integer");
      if (kind == 0) kind = (count > 0 && strings == 0) ? 1 : 2;
      if (kind == 1) {
        if (strings) raise_at(L, at, "json.encode: %s at %s", "array marked with json.array has string keys");
        if (max != count) raise_at(L, at, "json.encode: %s at %s", "sparse array (use json.null for holes)");
      } else if (count != strings) {
        raise_at(L, at, "json.encode: %s at %s", "table mixes array and object keys");
      }
      *members = count;
      return kind == 1 ? cJSON_CreateArray() : cJSON_CreateObject();
    }
    default:
      break;
  }
  raise_at(L, at, "json.encode: cannot encode a %s value at %s", luaL_typename(L, idx));
  return NULL;
}

/* slot: a box of the caller's to hold the root while it is filled, or NULL for one of ours. */
static cJSON *build_root(lua_State *L, int idx, int text, void **slot) {
  idx = lua_absindex(L, idx);
  path root = {NULL, NULL, 0};
  lua_Integer n = 0;
  cJSON *item = build(L, idx, 0, &root, text, &n);
  if (!item) luaL_error(L, "json.encode: out of memory");
  if (cJSON_IsArray(item) || cJSON_IsObject(item)) {
    int own = slot == NULL;
    if (own) slot = hg_lua_box_new(L, (void (*)(void *))cJSON_Delete);
    *slot = item;
    fill(L, idx, item, n, 0, &root, text);
    *slot = NULL;
    if (own) lua_pop(L, 1);
  }
  return item;
}

cJSON *hg_lua_json_build(lua_State *L, int idx) { return build_root(L, idx, 0, NULL); }

/* json.encode(value [, {pretty = true}]) -> text. Raises on values JSON cannot hold. */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  int pretty = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "pretty");
    pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  void **slot = hg_lua_box_new(L, (void (*)(void *))cJSON_Delete);
  *slot = build_root(L, 1, 1, slot);
  char *text = pretty ? cJSON_Print(*slot) : cJSON_PrintUnformatted(*slot);
  hg_lua_box_release(L, -1);
  if (!text) return luaL_error(L, "json.encode: out of memory");
  void **tslot = hg_lua_box_new(L, free);
  *tslot = text;
  lua_pushstring(L, text);
  hg_lua_box_release(L, -2);
  return 1;
}

/* json.decode(text) -> value, or nil and "invalid JSON at line L, column C ...". */
static int l_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  void **slot = hg_lua_box_new(L, (void (*)(void *))cJSON_Delete);
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (root && end && (size_t)(end - text) < len) {
    /* Trailing bytes after the value: only whitespace may follow. */
    const char *p = end;
    while ((size_t)(p - text) < len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    if ((size_t)(p - text) < len) {
      cJSON_Delete(root);
      root = NULL;
      end = p;
    }
  }
  if (!root) {
    size_t off = end && end >= text ? (size_t)(end - text) : 0;
    if (off > len) off = len;
    int line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
      if (text[i] == '\n') {
        line++;
        col = 1;
      } else {
        col++;
      }
    }
    lua_pushnil(L);
    if (off >= len)
      lua_pushfstring(L, "invalid JSON at line %d, column %d: unexpected end of input", line, col);
    else
      lua_pushfstring(L, "invalid JSON at line %d, column %d near '%s'", line, col,
                      lua_pushlstring(L, text + off, len - off > 16 ? 16 : len - off));
    if (off < len) lua_remove(L, -2);
    return 2;
  }
  *slot = root;
  hg_lua_json_push(L, root);
  hg_lua_box_release(L, -2);
  return 1;
}

static int mark(lua_State *L, const char *mt) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_setmetatable(L, mt);
  return 1;
}

/* json.array(t) / json.object(t): marks t (or a new table) so it encodes as [] / {}. */
static int l_array(lua_State *L) { return mark(L, ARRAY_MT); }
static int l_object(lua_State *L) { return mark(L, OBJECT_MT); }

static int l_is_array(lua_State *L) {
  int yes = 0;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, ARRAY_MT);
    yes = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, yes);
  return 1;
}

int hg_lua_open_json(lua_State *L) {
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, OBJECT_MT);
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"encode", l_encode}, {"decode", l_decode},
                                   {"array", l_array},   {"object", l_object},
                                   {"is_array", l_is_array}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  hg_lua_json_push_null(L);
  lua_setfield(L, -2, "null");
  return 1;
}
