/* Configuration files: reads the file and the HANGAR_* variables, hands them to
 * lua/hangar/config.lua, keeps the validated table, and reads scalars out of it. */
#include "lua/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "lua/internal.h"

extern char **environ;

struct hg_lua_config {
  hg_lua *rt;
  int ref;
};

struct load_args {
  const hg_lua_config_opts *opts;
  const hg_buf *source;
};

/* config.load{path, source, schema, env, environ} -> cfg | nil, err */
static int load_tramp(lua_State *L) {
  struct load_args *a = lua_touserdata(L, 1);
  const hg_lua_config_opts *o = a->opts;
  lua_getglobal(L, "require");
  lua_pushliteral(L, "hangar.config");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "load");
  lua_createtable(L, 0, 5);
  lua_pushstring(L, o->path);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, a->source->data ? a->source->data : "", a->source->len);
  lua_setfield(L, -2, "source");
  lua_getglobal(L, "require");
  lua_pushstring(L, o->schema);
  lua_call(L, 1, 1);
  lua_setfield(L, -2, "schema");
  if (o->env) {
    lua_pushstring(L, o->env);
    lua_setfield(L, -2, "env");
  }
  lua_newtable(L);
  char *const *env = o->environ ? (char *const *)o->environ : environ;
  for (size_t i = 0; env && env[i]; i++) {
    const char *eq = strchr(env[i], '=');
    if (!eq || strncmp(env[i], "HANGAR_", 7) != 0) continue;
    lua_pushlstring(L, env[i], (size_t)(eq - env[i]));
    lua_pushstring(L, eq + 1);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "environ");
  lua_call(L, 1, 2);
  return 2;
}

static int read_file(const char *path, hg_buf *out, hg_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return hg_err_set(err, errno == ENOENT ? HG_ENOENT : HG_EIO, "cannot read %s: %s", path,
                      strerror(errno));
  char chunk[16384];
  size_t n;
  int rc = 0;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    if (hg_buf_append(out, chunk, n)) {
      rc = hg_err_set(err, HG_ENOMEM, "cannot read %s: out of memory", path);
      break;
    }
  if (!rc && ferror(f)) rc = hg_err_set(err, HG_EIO, "cannot read %s: %s", path, strerror(errno));
  fclose(f);
  return rc;
}

int hg_lua_config_load(hg_lua *rt, const hg_lua_config_opts *opts, hg_lua_config **out,
                       hg_err *err) {
  if (!opts || !opts->path || !opts->schema)
    return hg_err_set(err, HG_EINVAL, "config: a path and a schema module are required");
  hg_buf source = HG_BUF_INIT;
  int rc = read_file(opts->path, &source, err);
  if (rc) return rc;
  hg_lua_config *cfg = calloc(1, sizeof *cfg);
  if (!cfg) {
    hg_buf_free(&source);
    return hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  lua_State *L = hg_lua_state(rt);
  struct load_args a = {opts, &source};
  lua_pushcfunction(L, load_tramp);
  lua_pushlightuserdata(L, &a);
  rc = hg_lua_call(rt, 1, 2, err);
  hg_buf_wipe(&source); /* a config file may hold secrets */
  if (rc) {
    lua_pop(L, 1);
    free(cfg);
    return rc;
  }
  if (lua_isnil(L, -2)) {
    rc = hg_err_set(err, HG_EINVAL, "%s", lua_isstring(L, -1) ? lua_tostring(L, -1) : "invalid configuration");
    lua_pop(L, 2);
    free(cfg);
    return rc;
  }
  lua_pop(L, 1);
  cfg->rt = rt;
  cfg->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  *out = cfg;
  return 0;
}

void hg_lua_config_free(hg_lua_config *cfg) {
  if (!cfg) return;
  luaL_unref(hg_lua_state(cfg->rt), LUA_REGISTRYINDEX, cfg->ref);
  free(cfg);
}

void hg_lua_config_push(hg_lua_config *cfg) {
  lua_rawgeti(hg_lua_state(cfg->rt), LUA_REGISTRYINDEX, cfg->ref);
}

/* ---- accessors ---- */

enum { GET_STRING, GET_INT, GET_NUMBER, GET_BOOL, GET_STRINGS };

struct get_args {
  hg_lua_config *cfg;
  const char *key;
  int kind;
  int rc;
  char msg[256];
  char *s;
  int64_t i;
  double d;
  int b;
  char **list;
};

static int get_fail(struct get_args *a, int rc, const char *what) {
  a->rc = rc;
  snprintf(a->msg, sizeof a->msg, "config key '%s' %s", a->key, what);
  return 0;
}

static int get_tramp(lua_State *L) {
  struct get_args *a = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->cfg->ref);
  const char *p = a->key;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (!lua_istable(L, -1)) return get_fail(a, HG_ENOENT, "is not set");
    lua_pushlstring(L, p, n);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    if (!dot) break;
    p = dot + 1;
  }
  if (lua_isnil(L, -1)) return get_fail(a, HG_ENOENT, "is not set");
  switch (a->kind) {
    case GET_STRING:
      if (lua_type(L, -1) != LUA_TSTRING) return get_fail(a, HG_EINVAL, "is not a string");
      a->s = strdup(lua_tostring(L, -1));
      if (!a->s) return get_fail(a, HG_ENOMEM, "cannot be copied: out of memory");
      return 0;
    case GET_INT:
      if (!lua_isinteger(L, -1)) return get_fail(a, HG_EINVAL, "is not an integer");
      a->i = (int64_t)lua_tointeger(L, -1);
      return 0;
    case GET_NUMBER:
      if (lua_type(L, -1) != LUA_TNUMBER) return get_fail(a, HG_EINVAL, "is not a number");
      a->d = lua_tonumber(L, -1);
      return 0;
    case GET_BOOL:
      if (lua_type(L, -1) != LUA_TBOOLEAN) return get_fail(a, HG_EINVAL, "is not a boolean");
      a->b = lua_toboolean(L, -1);
      return 0;
    default: {
      if (!lua_istable(L, -1)) return get_fail(a, HG_EINVAL, "is not a list of strings");
      size_t n = (size_t)lua_rawlen(L, -1);
      for (size_t i = 1; i <= n; i++) {
        int t = lua_rawgeti(L, -1, (lua_Integer)i);
        lua_pop(L, 1);
        if (t != LUA_TSTRING) return get_fail(a, HG_EINVAL, "is not a list of strings");
      }
      char **list = calloc(n + 1, sizeof *list);
      if (!list) return get_fail(a, HG_ENOMEM, "cannot be copied: out of memory");
      for (size_t i = 0; i < n; i++) {
        lua_rawgeti(L, -1, (lua_Integer)i + 1);
        list[i] = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!list[i]) {
          hg_lua_config_strings_free(list);
          return get_fail(a, HG_ENOMEM, "cannot be copied: out of memory");
        }
      }
      a->list = list;
      return 0;
    }
  }
}

static int get(struct get_args *a, hg_err *err) {
  int rc = hg_lua_protect(a->cfg->rt, get_tramp, a, err);
  if (rc) return rc;
  if (a->rc) return hg_err_set(err, a->rc, "%s", a->msg);
  return 0;
}

int hg_lua_config_string(hg_lua_config *cfg, const char *key, char **out, hg_err *err) {
  struct get_args a = {.cfg = cfg, .key = key, .kind = GET_STRING};
  int rc = get(&a, err);
  if (!rc) *out = a.s;
  return rc;
}

int hg_lua_config_int(hg_lua_config *cfg, const char *key, int64_t *out, hg_err *err) {
  struct get_args a = {.cfg = cfg, .key = key, .kind = GET_INT};
  int rc = get(&a, err);
  if (!rc) *out = a.i;
  return rc;
}

int hg_lua_config_number(hg_lua_config *cfg, const char *key, double *out, hg_err *err) {
  struct get_args a = {.cfg = cfg, .key = key, .kind = GET_NUMBER};
  int rc = get(&a, err);
  if (!rc) *out = a.d;
  return rc;
}

int hg_lua_config_bool(hg_lua_config *cfg, const char *key, int *out, hg_err *err) {
  struct get_args a = {.cfg = cfg, .key = key, .kind = GET_BOOL};
  int rc = get(&a, err);
  if (!rc) *out = a.b;
  return rc;
}

int hg_lua_config_strings(hg_lua_config *cfg, const char *key, char ***out, hg_err *err) {
  struct get_args a = {.cfg = cfg, .key = key, .kind = GET_STRINGS};
  int rc = get(&a, err);
  if (!rc) *out = a.list;
  return rc;
}

void hg_lua_config_strings_free(char **list) {
  if (!list) return;
  for (size_t i = 0; list[i]; i++) free(list[i]);
  free(list);
}
