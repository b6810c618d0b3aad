/* The embedded Lua runtime: the state, its capped allocator, the CPU budget hook, the
 * sandbox, require roots, loading and protected calls. Tasks and waits live in task.c. */
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/clock.h"
#include "core/http.h"
#include "core/log.h"
#include "core/paths.h"
#include "lua/internal.h"

const char hg_lua_key_roots = 'r';
const char hg_lua_key_sinks = 's';
static const char key_default_path = 'p';

/* Instructions between two looks at the clock: frequent enough to stop a loop within
 * microseconds of its deadline, rare enough to cost nothing measurable. */
#define HOOK_COUNT 10000
/* The most CPU time the budget may charge an entry into Lua beyond what it ran (see
 * hg_lua_budget_begin). */
#define CPU_REF_MAX_AGE_NS 10000000

/* ---- allocator ---- */

static void *rt_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  hg_lua *rt = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    free(ptr);
    rt->mem_used -= old;
    return NULL;
  }
  /* Lua relies on shrinking never failing, so only growth is held to the cap. */
  if (nsize > old && rt->mem_limit && rt->mem_used - old + nsize > rt->mem_limit) return NULL;
  void *p = realloc(ptr, nsize);
  if (!p) return NULL;
  rt->mem_used = rt->mem_used - old + nsize;
  return p;
}

static int rt_panic(lua_State *L) {
  const char *msg = lua_tostring(L, -1);
  hg_log(HG_LOG_ERROR, "unprotected Lua error", "error", msg ? msg : "(not a string)", NULL);
  abort();
}

hg_lua *hg_lua_from(lua_State *L) {
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

lua_State *hg_lua_state(hg_lua *rt) { return rt->L; }
hg_loop *hg_lua_loop(hg_lua *rt) { return rt->loop; }
void hg_lua_set_blocking(hg_lua *rt, int on) { rt->blocking = on; }
size_t hg_lua_mem_used(hg_lua *rt) { return rt->mem_used; }

/* ---- CPU budget ---- */

/* The budget counts the CPU time of the loop's thread, not the wall clock: on a loaded
 * machine a resume that is merely descheduled must not be taken for a runaway loop. */
static int64_t cpu_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void cpu_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  hg_lua *rt = hg_lua_from(L);
  if (!rt->deadline_ns) {
    /* A thread left armed at count 1 by an earlier overrun: back to the cheap rate. */
    lua_sethook(L, cpu_hook, LUA_MASKCOUNT, HOOK_COUNT);
    return;
  }
  int64_t now = cpu_now_ns();
  if (rt->begun_wall_ns) {
    /* The first look of this entry, whose CPU clock was not read when it began. What it ran
     * since is at most the wall time since (one thread) and at most the CPU time since the
     * reference reading, taken before it began: the lesser is charged. */
    int64_t wall = hg_clock_mono_ns();
    int64_t ran = wall - rt->begun_wall_ns;
    /* Below zero, the reference was another thread's clock (a thread that ended and whose
     * handle a new one took): only the wall time bounds what was run. */
    int64_t since_ref = now - rt->begun_cpu_ref_ns;
    if (since_ref >= 0 && since_ref < ran) ran = since_ref;
    int64_t deadline = now + rt->cpu_budget_ns - ran;
    rt->deadline_ns = deadline > 0 ? deadline : 1;
    rt->begun_wall_ns = 0;
    rt->cpu_ref_ns = now;
    rt->cpu_ref_wall_ns = wall;
  }
  if (now < rt->deadline_ns) return;
  rt->cpu_exceeded = 1;
  /* Fire again on the very next instruction, so a pcall that caught this error cannot carry
   * on: the only way out is to return to the runtime. */
  lua_sethook(L, cpu_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, "CPU budget of %d ms exceeded", (int)(rt->cpu_budget_ns / 1000000));
}

void hg_lua_budget_begin(hg_lua *rt, lua_State *L, hg_lua_budget *saved) {
  saved->deadline_ns = rt->deadline_ns;
  saved->begun_wall_ns = rt->begun_wall_ns;
  saved->begun_cpu_ref_ns = rt->begun_cpu_ref_ns;
  saved->cpu_exceeded = rt->cpu_exceeded;
  rt->cpu_exceeded = 0;
  if (!rt->cpu_budget_ns) return;
  /* The thread's CPU clock is a system call (the monotonic one is not; the agent entered Lua
   * ~20 times per run): it is read at the first look, which most entries never reach. Until
   * then the deadline is not known. The reference reading, at most CPU_REF_MAX_AGE_NS of
   * wall time before the entry, bounds what the first look can charge beyond what the
   * entry ran (by the CPU between the two, at most that age), however long the thread was
   * descheduled or blocked in a call; nothing an entry ran goes uncharged. */
  int64_t wall = hg_clock_mono_ns();
  pthread_t self = pthread_self();
  if (wall - rt->cpu_ref_wall_ns > CPU_REF_MAX_AGE_NS || !rt->cpu_ref_set ||
      !pthread_equal(rt->cpu_ref_thread, self)) {
    /* Another thread's clock says nothing about this one's. */
    rt->cpu_ref_ns = cpu_now_ns();
    rt->cpu_ref_wall_ns = wall;
    rt->cpu_ref_thread = self;
    rt->cpu_ref_set = 1;
  }
  rt->deadline_ns = INT64_MAX;
  rt->begun_wall_ns = wall;
  rt->begun_cpu_ref_ns = rt->cpu_ref_ns;
  lua_sethook(L, cpu_hook, LUA_MASKCOUNT, HOOK_COUNT);
}

void hg_lua_budget_end(hg_lua *rt, hg_lua_budget *saved) {
  rt->deadline_ns = saved->deadline_ns;
  rt->begun_wall_ns = saved->begun_wall_ns;
  rt->begun_cpu_ref_ns = saved->begun_cpu_ref_ns;
  rt->cpu_exceeded = saved->cpu_exceeded;
}

int hg_lua_status_code(hg_lua *rt, int status) {
  switch (status) {
    case LUA_OK:
    case LUA_YIELD:
      return 0;
    case LUA_ERRMEM:
      return HG_ENOMEM;
    case LUA_ERRFILE:
      return HG_ENOENT;
    default:
      return rt->cpu_exceeded ? HG_ETIMEDOUT : HG_EINVAL;
  }
}

/* How many bytes at the end of src msg + 3 repeats, followed by ':' (0: none). */
static size_t tail_match(const char *msg, const char *src) {
  size_t n = strlen(src);
  const char *m = msg + 3;
  for (size_t l = n < LUA_IDSIZE ? n : LUA_IDSIZE; l > 0; l--)
    if (strncmp(m, src + n - l, l) == 0 && m[l] == ':') return l;
  return 0;
}

int hg_lua_push_full_position(lua_State *L, lua_State *co, const char *msg, const char *path) {
  if (!msg || strncmp(msg, "...", 3) != 0) return 0;
  const char *full = NULL;
  size_t l = 0;
  if (path && (l = tail_match(msg, path))) full = path;
  lua_Debug ar;
  for (int level = 0; !full && co && lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "S", &ar) || ar.source[0] != '@') continue;
    if ((l = tail_match(msg, ar.source + 1))) full = ar.source + 1;
  }
  if (!full) return 0;
  lua_pushfstring(L, "%s%s", full, msg + 3 + l);
  return 1;
}

void hg_lua_traceback(lua_State *L, lua_State *co, const char *msg, int level) {
  luaL_traceback(L, co, msg, level);
  /* Each line of the traceback reads "\n\t<short_src>:<line>: in ...". For every frame whose
   * file name Lua cut, put the whole name back; the line text is Lua's own. */
  lua_Debug ar;
  for (; lua_getstack(co, level, &ar); level++) {
    if (!lua_getinfo(co, "S", &ar) || ar.source[0] != '@' || strncmp(ar.short_src, "...", 3) != 0)
      continue;
    lua_pushfstring(L, "\n\t%s:", ar.short_src);
    lua_pushfstring(L, "\n\t%s:", ar.source + 1);
    luaL_gsub(L, lua_tostring(L, -3), lua_tostring(L, -2), lua_tostring(L, -1));
    lua_replace(L, -4);
    lua_pop(L, 2);
  }
}

int hg_lua_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (!msg) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) {
      msg = lua_tostring(L, -1);
    } else {
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
  }
  if (hg_lua_push_full_position(L, L, msg, NULL)) msg = lua_tostring(L, -1);
  hg_lua_traceback(L, L, msg, 1);
  return 1;
}

/* The text of the error on top of L for an hg_err, with a hint when a limit caused it. */
static int set_error(hg_lua *rt, int status, lua_State *L, hg_err *err, const char *ctx) {
  int code = hg_lua_status_code(rt, status);
  const char *msg = lua_tostring(L, -1);
  if (!msg) msg = "(error object is not a string)";
  if (status == LUA_ERRMEM && rt->mem_limit)
    return hg_err_set(err, code, "%s%sLua memory limit of %zu bytes reached: %s", ctx ? ctx : "",
                      ctx ? ": " : "", rt->mem_limit, msg);
  return hg_err_set(err, code, "%s%s%s", ctx ? ctx : "", ctx ? ": " : "", msg);
}

/* ---- sandbox ---- */

static int strict_index(lua_State *L) {
  const char *name = lua_tostring(L, 2);
  return luaL_error(L, "undeclared global '%s'", name ? name : luaL_typename(L, 2));
}

/* `load` with the mode forced to text: a binary chunk can break the VM's invariants. */
static int safe_load(lua_State *L) {
  int n = lua_gettop(L);
  if (n < 3) {
    lua_settop(L, 3);
    n = 3;
  }
  lua_pushliteral(L, "t");
  lua_replace(L, 3);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

static int valid_module_name(const char *name) {
  if (!*name || *name == '.') return 0;
  for (const char *p = name; *p; p++) {
    char c = *p;
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return 0;
    if (c == '.' && (p[1] == '.' || p[1] == 0)) return 0;
  }
  return 1;
}

static int readable(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  fclose(f);
  return 1;
}

/* The sandbox's only file searcher: the roots, in order, text chunks only. */
static int searcher_roots(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  if (!valid_module_name(name)) {
    lua_pushfstring(L, "\n\t'%s' is not a module name (letters, digits, '_', '-', '.')", name);
    return 1;
  }
  luaL_gsub(L, name, ".", "/");
  const char *rel = lua_tostring(L, -1);
  luaL_Buffer tried;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua_key_roots);
  int roots = lua_gettop(L);
  luaL_buffinit(L, &tried);
  static const char *const forms[] = {"%s/%s.lua", "%s/%s/init.lua"};
  lua_Integer n = (lua_Integer)lua_rawlen(L, roots);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, roots, i);
    const char *root = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the roots table */
    for (int f = 0; f < 2; f++) {
      const char *path = lua_pushfstring(L, forms[f], root, rel);
      if (readable(path)) {
        if (luaL_loadfilex(L, path, "t") != LUA_OK)
          return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, path,
                            lua_tostring(L, -1));
        lua_pushstring(L, path);
        return 2;
      }
      lua_pop(L, 1);
      lua_pushfstring(L, "\n\tno file '%s/", root);
      luaL_addvalue(&tried);
      lua_pushfstring(L, forms[f] + 3, rel);
      luaL_addvalue(&tried);
      luaL_addchar(&tried, '\'');
    }
  }
  luaL_pushresult(&tried);
  return 1;
}

static void open_lib(lua_State *L, const char *name, lua_CFunction fn) {
  luaL_requiref(L, name, fn, 1);
  lua_pop(L, 1);
}

static void open_sandbox(lua_State *L) {
  open_lib(L, LUA_GNAME, luaopen_base);
  open_lib(L, LUA_COLIBNAME, luaopen_coroutine);
  open_lib(L, LUA_TABLIBNAME, luaopen_table);
  open_lib(L, LUA_STRLIBNAME, luaopen_string);
  open_lib(L, LUA_MATHLIBNAME, luaopen_math);
  open_lib(L, LUA_UTF8LIBNAME, luaopen_utf8);
  open_lib(L, LUA_LOADLIBNAME, luaopen_package);

  /* os: only the clock and calendar functions. */
  lua_pushcfunction(L, luaopen_os);
  lua_call(L, 0, 1);
  lua_createtable(L, 0, 3);
  static const char *const os_keep[] = {"time", "clock", "date"};
  for (size_t i = 0; i < 3; i++) {
    lua_getfield(L, -2, os_keep[i]);
    lua_setfield(L, -2, os_keep[i]);
  }
  lua_setglobal(L, "os");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getglobal(L, "os");
  lua_setfield(L, -2, "os");
  lua_pop(L, 1);

  lua_pushnil(L);
  lua_setglobal(L, "dofile");
  lua_pushnil(L);
  lua_setglobal(L, "loadfile");
  lua_getglobal(L, "load");
  lua_pushcclosure(L, safe_load, 1);
  lua_setglobal(L, "load");
  lua_getglobal(L, "string");
  lua_pushnil(L);
  lua_setfield(L, -2, "dump");
  lua_pop(L, 1);

  /* package: preload (the core's C modules) and the roots; no C loader, no paths. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  lua_rawgeti(L, -1, 1); /* the preload searcher */
  lua_createtable(L, 2, 0);
  lua_insert(L, -2);
  lua_rawseti(L, -2, 1);
  lua_pushcfunction(L, searcher_roots);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -3, "searchers");
  lua_pop(L, 1);
  static const char *const pkg_drop[] = {"loadlib", "searchpath", "cpath", "path"};
  for (size_t i = 0; i < 4; i++) {
    lua_pushnil(L);
    lua_setfield(L, -2, pkg_drop[i]);
  }
  lua_pop(L, 1);
}

/* In full mode the roots go in front of the usual package.path. */
static void set_full_path(lua_State *L) {
  lua_getglobal(L, "package");
  int pkg = lua_gettop(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua_key_roots);
  int roots = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  lua_Integer n = (lua_Integer)lua_rawlen(L, roots);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, roots, i);
    const char *root = lua_tostring(L, -1);
    lua_pop(L, 1); /* still referenced by the roots table */
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", root, root);
    luaL_addvalue(&b);
  }
  lua_rawgetp(L, LUA_REGISTRYINDEX, &key_default_path);
  luaL_addvalue(&b);
  luaL_pushresult(&b);
  lua_setfield(L, pkg, "path");
  lua_settop(L, pkg - 1);
}

static const struct {
  const char *name;
  lua_CFunction open;
} modules[] = {
    {"task", hg_lua_open_task},   {"sink", hg_lua_open_sink}, {"json", hg_lua_open_json},
    {"yaml", hg_lua_open_yaml},   {"log", hg_lua_open_log},   {"timer", hg_lua_open_timer},
    {"crypto", hg_lua_open_crypto}, {"http", hg_lua_open_http}, {"process", hg_lua_open_process},
};

static int setup(lua_State *L) {
  const hg_lua_opts *opts = lua_touserdata(L, 1);
  hg_lua *rt = hg_lua_from(L);

  if (opts->mode == HG_LUA_FULL) {
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &key_default_path);
    lua_pop(L, 1);
  } else {
    open_sandbox(L);
  }

  lua_newtable(L);
  lua_pushstring(L, hg_paths_lua_dir());
  lua_rawseti(L, -2, 1);
  for (size_t i = 0; opts->roots && opts->roots[i]; i++) {
    lua_pushstring(L, opts->roots[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 2);
  }
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hg_lua_key_roots);
  if (rt->mode == HG_LUA_FULL) set_full_path(L);

  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &hg_lua_key_sinks);

  /* Each module is opened once and shared by `require "hangar.x"` and `hangar.x`. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_newtable(L); /* hangar */
  for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
    lua_pushcfunction(L, modules[i].open);
    lua_call(L, 0, 1);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, modules[i].name);
    lua_pushfstring(L, "hangar.%s", modules[i].name);
    lua_insert(L, -2);
    lua_settable(L, -4);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "hangar");
  lua_setglobal(L, "hangar");
  lua_pop(L, 1);

  if (opts->mode == HG_LUA_SANDBOXED) {
    lua_pushglobaltable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, strict_index);
    lua_setfield(L, -2, "__index");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
  }
  return 0;
}

int hg_lua_new(hg_loop *loop, const hg_lua_opts *opts, hg_lua **out, hg_err *err) {
  static const hg_lua_opts defaults = {0};
  if (!opts) opts = &defaults;
  hg_lua *rt = calloc(1, sizeof *rt);
  if (!rt) return hg_err_set(err, HG_ENOMEM, "out of memory");
  rt->loop = loop;
  rt->mode = opts->mode;
  rt->blocking = opts->blocking;
  rt->mem_limit = opts->mem_limit;
  rt->cpu_budget_ns = opts->cpu_budget_ms > 0 ? opts->cpu_budget_ms * 1000000 : 0;
  rt->http = opts->http;
  rt->L = lua_newstate(rt_alloc, rt);
  if (!rt->L) {
    free(rt);
    return hg_err_set(err, HG_ENOMEM, "cannot create a Lua state: out of memory");
  }
  lua_atpanic(rt->L, rt_panic);
  *(hg_lua_task **)lua_getextraspace(rt->L) = NULL;
  int rc = hg_lua_pump_init(rt, err);
  if (rc) {
    lua_close(rt->L);
    free(rt);
    return rc;
  }
  lua_pushcfunction(rt->L, setup);
  lua_pushlightuserdata(rt->L, (void *)opts);
  int st = lua_pcall(rt->L, 1, 0, 0);
  if (st != LUA_OK) {
    rc = set_error(rt, st, rt->L, err, "cannot set up the Lua runtime");
    hg_lua_free(rt);
    return rc;
  }
  if (rt->cpu_budget_ns) lua_sethook(rt->L, cpu_hook, LUA_MASKCOUNT, HOOK_COUNT);
  *out = rt;
  return 0;
}

void hg_lua_free(hg_lua *rt) {
  if (!rt) return;
  rt->closing = 1;
  hg_lua_tasks_abandon_all(rt);
  rt->deadline_ns = 0;
  lua_close(rt->L);
  /* Requests still in flight were cancelled above and write into nothing now; freeing the
   * client runs their callbacks, which free the rest. */
  if (rt->own_http) hg_http_free(rt->http);
  hg_lua_pump_close(rt);
  free(rt);
}

static int add_root(lua_State *L) {
  const char *dir = lua_touserdata(L, 1);
  hg_lua *rt = hg_lua_from(L);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &hg_lua_key_roots);
  lua_pushstring(L, dir);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  lua_pop(L, 1);
  if (rt->mode == HG_LUA_FULL) set_full_path(L);
  return 0;
}

int hg_lua_add_root(hg_lua *rt, const char *dir, hg_err *err) {
  return hg_lua_protect(rt, add_root, (void *)dir, err);
}

struct preload_args {
  const char *name;
  lua_CFunction open;
};

static int preload(lua_State *L) {
  struct preload_args *a = lua_touserdata(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, a->open);
  lua_setfield(L, -2, a->name);
  return 0;
}

int hg_lua_preload(hg_lua *rt, const char *name, lua_CFunction open, hg_err *err) {
  struct preload_args a = {name, open};
  return hg_lua_protect(rt, preload, &a, err);
}

/* ---- loading and calling ---- */

struct load_args {
  int file;
  const char *path; /* NULL with file set: standard input */
  const char *code;
  size_t len;
  const char *name;
  const char *mode;
};

static int load_tramp(lua_State *L) {
  struct load_args *a = lua_touserdata(L, 1);
  int st = a->file ? luaL_loadfilex(L, a->path, a->mode)
                   : luaL_loadbufferx(L, a->code, a->len, a->name, a->mode);
  if (st != LUA_OK) {
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushinteger(L, st);
    return 3;
  }
  return 1;
}

static int load(hg_lua *rt, struct load_args *a, hg_err *err) {
  lua_State *L = rt->L;
  a->mode = rt->mode == HG_LUA_SANDBOXED ? "t" : NULL;
  lua_pushcfunction(L, load_tramp);
  lua_pushlightuserdata(L, a);
  int st = lua_pcall(L, 1, 3, 0);
  if (st != LUA_OK) {
    int rc = set_error(rt, st, L, err, NULL);
    lua_pop(L, 1);
    return rc;
  }
  if (lua_isnil(L, -3)) {
    int status = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    const char *path = a->file ? a->path : a->name[0] == '@' ? a->name + 1 : NULL;
    if (hg_lua_push_full_position(L, NULL, lua_tostring(L, -1), path)) lua_replace(L, -2);
    int rc = set_error(rt, status, L, err, NULL);
    lua_pop(L, 2);
    return rc;
  }
  lua_pop(L, 2);
  return 0;
}

int hg_lua_load_file(hg_lua *rt, const char *path, hg_err *err) {
  struct load_args a = {.file = 1, .path = path};
  return load(rt, &a, err);
}

int hg_lua_load_string(hg_lua *rt, const char *code, size_t len, const char *name, hg_err *err) {
  struct load_args a = {.code = code, .len = len, .name = name ? name : "=string"};
  return load(rt, &a, err);
}

int hg_lua_call(hg_lua *rt, int nargs, int nresults, hg_err *err) {
  lua_State *L = rt->L;
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, hg_lua_msgh);
  lua_insert(L, base);
  hg_lua_budget saved;
  hg_lua_budget_begin(rt, L, &saved);
  int st = lua_pcall(L, nargs, nresults, base);
  int rc = 0;
  if (st != LUA_OK) {
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "(error object is not a string)");
    }
    rc = set_error(rt, st, L, err, NULL);
  }
  hg_lua_budget_end(rt, &saved);
  lua_remove(L, base);
  return rc;
}

int hg_lua_protect(hg_lua *rt, lua_CFunction fn, void *ud, hg_err *err) {
  lua_State *L = rt->L;
  lua_pushcfunction(L, fn);
  lua_pushlightuserdata(L, ud);
  int rc = hg_lua_call(rt, 1, 0, err);
  if (rc) lua_pop(L, 1);
  return rc;
}

/* ---- boxes ---- */

typedef struct {
  void *ptr;
  void (*release)(void *);
} box;

static int box_gc(lua_State *L) {
  box *b = lua_touserdata(L, 1);
  if (b->ptr && b->release) b->release(b->ptr);
  b->ptr = NULL;
  return 0;
}

void **hg_lua_box_new(lua_State *L, void (*release)(void *)) {
  box *b = lua_newuserdatauv(L, sizeof *b, 0);
  b->ptr = NULL;
  b->release = release;
  if (luaL_newmetatable(L, "hangar.box")) {
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return &b->ptr;
}

void hg_lua_box_release(lua_State *L, int idx) {
  box *b = lua_touserdata(L, idx);
  if (b && b->ptr && b->release) b->release(b->ptr);
  if (b) b->ptr = NULL;
}
