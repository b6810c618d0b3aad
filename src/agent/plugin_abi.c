/* The agent's side of plugins: `hangar.plugin` (plugin directories, plugin.lua files, C modules
 * loaded with the ABI check) and the functions include/hangar/plugin.h gives C modules.
 *
 *   local p = require "hangar.plugin"
 *   p.bundled_dir()            --> "/usr/share/hangar/plugins" (nil when there is none)
 *   p.dirs()                   --> every plugin directory, bundled first, as canonical paths
 *   p.list(dir)                --> { "example", "sandbox" }, canonical dir: the subdirectories
 *                                  holding a plugin.lua
 *   p.load_file(path [, name]) --> function | nil, err   (a Lua file, text only; errors name it
 *                                  as name, default path)
 *   p.load_c(path)             --> value | nil, err      (a C module: dlopen, ABI check, open)
 *   p.where(fn)                --> "path/to/file.lua:12" where a Lua function is defined
 *   p.abi_version              --> HANGAR_ABI_VERSION
 *
 * Every path must lie inside one of the plugin directories the host registered. */
#include "agent/plugin_abi.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"
#include "core/paths.h"
#include "hangar/plugin.h"

/* Registry keys: the allowed directories (array of canonical paths, bundled first), the
 * bundled directory (string, absent when there is none), the loaded C modules (path -> value)
 * and their library handles. */
static const char key_dirs = 'd';
static const char key_bundled = 'b';
static const char key_loaded = 'l';
static const char key_libs = 'h';

#define LIB_MT "hangar.plugin.lib"

/* ---- the public ABI's functions ---- */

int hangar_abi_version(void) { return HANGAR_ABI_VERSION; }

const char *hangar_version(void) { return HANGAR_VERSION; }

void hangar_log(hangar_log_level level, const char *msg, ...) {
  if (level < HANGAR_LOG_DEBUG || level > HANGAR_LOG_ERROR) level = HANGAR_LOG_ERROR;
  if ((hg_log_level)level < hg_log_min_level()) return;
  cJSON *fields = cJSON_CreateObject();
  va_list ap;
  va_start(ap, msg);
  for (const char *k = va_arg(ap, const char *); k; k = va_arg(ap, const char *)) {
    const char *v = va_arg(ap, const char *);
    if (fields) cJSON_AddItemToObject(fields, k, v ? cJSON_CreateString(v) : cJSON_CreateNull());
  }
  va_end(ap);
  hg_log_obj((hg_log_level)level, msg ? msg : "", fields);
}

/* ---- paths ---- */

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Pushes the canonical form of path and returns it, or pushes nothing and returns NULL with
 * errno set. */
static const char *push_real(lua_State *L, const char *path) {
  char *real = realpath(path, NULL);
  if (!real) return NULL;
  lua_pushstring(L, real);
  free(real);
  return lua_tostring(L, -1);
}

/* Whether canonical path equals (inside = 0) or lies below (inside = 1) an allowed directory. */
static int allowed(lua_State *L, const char *real, int inside) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_dirs);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  int ok = 0;
  for (lua_Integer i = 1; i <= n && !ok; i++) {
    lua_rawgeti(L, -1, i);
    size_t len;
    const char *dir = lua_tolstring(L, -1, &len);
    if (inside)
      ok = strncmp(real, dir, len) == 0 && real[len] == '/';
    else
      ok = strcmp(real, dir) == 0;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ok;
}

/* Checks a file argument: pushes its canonical path, or returns nil, message. */
static const char *check_file(lua_State *L, const char *path, const char *what) {
  const char *real = push_real(L, path);
  if (!real) {
    lua_pushfstring(L, "cannot open %s %s: %s", what, path, strerror(errno));
    return NULL;
  }
  if (!allowed(L, real, 1)) {
    lua_pushfstring(L, "%s %s is not inside a plugin directory (see plugin_dirs)", what, path);
    return NULL;
  }
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) {
    lua_pushfstring(L, "%s %s is not a regular file", what, path);
    return NULL;
  }
  /* Anyone could replace what the agent is about to run. */
  if (st.st_mode & S_IWOTH) {
    lua_pushfstring(L, "%s %s is writable by every user; refusing to load it", what, path);
    return NULL;
  }
  return real;
}

/* ---- Lua functions ---- */

static int fail(lua_State *L, const char *fmt, ...) {
  luaL_pushfail(L);
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  return 2;
}

static int l_bundled_dir(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_bundled);
  return 1;
}

static int l_dirs(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_dirs);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  return 1;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int dir_gc(lua_State *L) {
  DIR **d = lua_touserdata(L, 1);
  if (*d) closedir(*d);
  *d = NULL;
  return 0;
}

/* Subdirectories of an allowed directory that hold a plugin.lua, sorted bytewise (the load
 * order must not depend on the file system or the locale). Hidden ones are skipped. */
static int l_list(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  const char *real = push_real(L, dir);
  if (!real) return fail(L, "cannot read plugin directory %s: %s", dir, strerror(errno));
  if (!allowed(L, real, 0)) return fail(L, "%s is not a registered plugin directory", dir);
  /* The stream lives in a userdata that closes it, so a memory error leaks nothing. */
  DIR **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, dir_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  int box = lua_gettop(L);
  *d = opendir(real);
  if (!*d) return fail(L, "cannot read plugin directory %s: %s", dir, strerror(errno));
  lua_newtable(L);
  int names = lua_gettop(L);
  lua_Integer n = 0;
  struct dirent *e;
  while ((e = readdir(*d))) {
    if (e->d_name[0] == '.') continue;
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/%s/plugin.lua", real, e->d_name) >= (int)sizeof path) continue;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    lua_pushstring(L, e->d_name);
    lua_rawseti(L, names, ++n);
  }
  lua_pushcfunction(L, dir_gc);
  lua_pushvalue(L, box);
  lua_call(L, 1, 0);
  /* The table keeps the strings alive while their pointers are sorted. */
  const char **sorted = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *sorted, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, names, i + 1);
    sorted[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  if (n) qsort(sorted, (size_t)n, sizeof *sorted, cmp_names);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushstring(L, sorted[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushstring(L, real);
  return 2;
}

/* A plugin file is loaded under a short chunk name ("sandbox/plugin.lua" rather than its
 * full path), because Lua cuts long chunk names in messages down to their last 60 bytes. */
static int l_load_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *chunk = luaL_optstring(L, 2, NULL);
  const char *real = check_file(L, path, "plugin file");
  if (!real) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  FILE *f = fopen(real, "rb");
  if (!f) return fail(L, "cannot open plugin file %s: %s", path, strerror(errno));
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t got;
  do {
    char *p = luaL_prepbuffer(&b);
    got = fread(p, 1, LUAL_BUFFERSIZE, f);
    luaL_addsize(&b, got);
  } while (got == LUAL_BUFFERSIZE);
  int bad = ferror(f);
  fclose(f);
  if (bad) return fail(L, "cannot read plugin file %s", path);
  luaL_pushresult(&b);
  size_t len;
  const char *text = lua_tolstring(L, -1, &len);
  const char *name = lua_pushfstring(L, "@%s", chunk ? chunk : path);
  if (luaL_loadbufferx(L, text, len, name, "t") != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  return 1;
}

static int lib_gc(lua_State *L) {
  void **h = luaL_checkudata(L, 1, LIB_MT);
  if (*h) dlclose(*h);
  *h = NULL;
  return 0;
}

/* What the module's descriptor says about its ABI, for a module that could not be loaded:
 * a lazy load resolves no function, so it succeeds where the real load met a function this
 * agent lacks (a module built for a later ABI). Returns the version, or -1. */
static long lazy_abi_version(const char *real) {
  void *h = dlopen(real, RTLD_LAZY | RTLD_LOCAL);
  if (!h) return -1;
  const hangar_module *m = dlsym(h, HANGAR_ABI_SYMBOL);
  long v = m ? (long)m->abi_version : -1;
  dlclose(h);
  return v;
}

static int l_load_c(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  const char *name = base_name(path);
  const char *real = check_file(L, path, "C module");
  if (!real) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  int real_idx = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_loaded);
  int loaded = lua_gettop(L);
  if (lua_getfield(L, loaded, real) != LUA_TNIL) return 1; /* loaded before: the same value */
  lua_pop(L, 1);

  /* The handle's box exists before the library is open, so nothing leaks on any error. */
  void **h = lua_newuserdatauv(L, sizeof *h, 0);
  *h = NULL;
  luaL_setmetatable(L, LIB_MT);
  int box = lua_gettop(L);
  *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
  if (!*h) {
    const char *why = dlerror();
    long v = lazy_abi_version(real);
    if (v >= 0 && v != HANGAR_ABI_VERSION)
      return fail(L, "%s was built for Hangar ABI %d, this agent speaks ABI %d", name, (int)v,
                  HANGAR_ABI_VERSION);
    return fail(L, "cannot load %s: %s", name, why ? why : "unknown error");
  }
  dlerror();
  const hangar_module *m = dlsym(*h, HANGAR_ABI_SYMBOL);
  if (!m)
    return fail(L, "%s does not export %s: build it against <hangar/plugin.h> and define it "
                   "with HANGAR_MODULE",
                name, HANGAR_ABI_SYMBOL);
  if (m->abi_version != HANGAR_ABI_VERSION)
    return fail(L, "%s was built for Hangar ABI %d, this agent speaks ABI %d", name,
                (int)m->abi_version, HANGAR_ABI_VERSION);
  if (m->size < offsetof(hangar_module, open) + sizeof m->open || !m->open)
    return fail(L, "%s has a malformed %s (no open function)", name, HANGAR_ABI_SYMBOL);

  /* Keep the library open as long as the state lives (its functions may be anywhere). */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_libs);
  lua_pushvalue(L, box);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);

  lua_pushcfunction(L, m->open);
  lua_pushvalue(L, real_idx);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, loaded, real);
  return 1;
}

static int l_where(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Debug ar;
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">S", &ar);
  if (ar.what[0] == 'C') {
    lua_pushliteral(L, "[C]");
  } else {
    const char *src = ar.source[0] == '@' || ar.source[0] == '=' ? ar.source + 1 : ar.short_src;
    lua_pushfstring(L, "%s:%d", src, ar.linedefined);
  }
  return 1;
}

static int open_plugin(lua_State *L) {
  static const luaL_Reg funcs[] = {{"bundled_dir", l_bundled_dir}, {"dirs", l_dirs},
                                   {"list", l_list},               {"load_file", l_load_file},
                                   {"load_c", l_load_c},           {"where", l_where},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  lua_pushinteger(L, HANGAR_ABI_VERSION);
  lua_setfield(L, -2, "abi_version");
  return 1;
}

/* ---- registration ---- */

struct reg_args {
  const char *const *dirs;
  hg_err *err;
  int code;
};

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int add_dir(lua_State *L, int list, const char *dir) {
  const char *real = push_real(L, dir);
  if (!real) return -errno;
  /* The same directory twice (bundled and configured, or a typo repeated): scan it once. */
  if (allowed(L, real, 0)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawseti(L, list, (lua_Integer)lua_rawlen(L, list) + 1);
  return 0;
}

static int do_register(lua_State *L) {
  struct reg_args *a = lua_touserdata(L, 1);
  lua_newtable(L);
  int list = lua_gettop(L);
  lua_pushvalue(L, list);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_dirs);

  const char *bundled = hg_paths_plugins_dir();
  if (is_dir(bundled)) {
    add_dir(L, list, bundled);
    lua_rawgeti(L, list, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_bundled);
  }
  for (size_t i = 0; a->dirs && a->dirs[i]; i++) {
    int rc = is_dir(a->dirs[i]) ? add_dir(L, list, a->dirs[i]) : -ENOTDIR;
    if (rc) {
      a->code = hg_err_set(a->err, HG_EINVAL, "plugin_dirs: %s is not a directory%s%s",
                           a->dirs[i], rc == -ENOTDIR ? "" : ": ",
                           rc == -ENOTDIR ? "" : strerror(-rc));
      return 0;
    }
  }
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_loaded);
  lua_newtable(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &key_libs);
  if (luaL_newmetatable(L, LIB_MT)) {
    lua_pushcfunction(L, lib_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, open_plugin);
  lua_setfield(L, -2, "hangar.plugin");
  return 0;
}

int hg_plugin_abi_register(hg_lua *rt, const char *const *dirs, hg_err *err) {
  struct reg_args a = {dirs, err, 0};
  int rc = hg_lua_protect(rt, do_register, &a, err);
  if (rc) return rc;
  if (a.code) return a.code;
  /* The directories are require roots, so a plugin can load its own Lua modules. */
  lua_State *L = hg_lua_state(rt);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_dirs);
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  for (lua_Integer i = 1; i <= n && !rc; i++) {
    lua_rawgeti(L, -1, i);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    rc = hg_lua_add_root(rt, dir, err);
  }
  lua_pop(L, 1);
  return rc;
}
