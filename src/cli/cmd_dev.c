/* `hangar dev`: a hub, an agent and a followed run on this machine in one command. The steps
 * are lua/hangar/dev.lua, run in the runtime's full mode; this file hands it what Lua lacks. */
#include <errno.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agentfs.h"
#include "cmds.h"
#include "core/log.h"
#include "core/paths.h"
#include "lua/runtime.h"

/* What the script's signal handler and output sinks need from the command. */
typedef struct {
  hg_lua *rt;
  hg_loop *loop;
  int signal_ref; /* the script's handler, LUA_NOREF until it sets one */
  int signals_on;
  hg_sink out, err; /* the command's own stdout and stderr, for a child's live output */
} dev_host;

/* A sink writing to a file descriptor of ours, so that a child's output (the followed run)
 * reaches the terminal as it is read, without passing through Lua. */
static int fd_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  (void)ts_ms;
  int fd = (int)(intptr_t)s->data;
  while (len) {
    ssize_t n = write(fd, bytes, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno; /* a closed terminal or pipe: the child's output is dropped, not blocked */
    }
    bytes += n;
    len -= (size_t)n;
  }
  return 0;
}

static const hg_sink_ops fd_ops = {fd_write, NULL};

static dev_host *uphost(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static void on_signal(hg_loop *loop, int signum, void *data) {
  (void)loop;
  dev_host *h = data;
  if (h->signal_ref == LUA_NOREF) return;
  lua_State *L = hg_lua_state(h->rt);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->signal_ref);
  lua_pushstring(L, signum == SIGINT ? "INT" : "TERM");
  hg_err err;
  if (hg_lua_task_start(h->rt, 1, NULL, NULL, &err))
    hg_log(HG_LOG_ERROR, "cannot handle a signal", "error", err.msg, NULL);
}

/* host.on_signal(fn): fn("INT" | "TERM") runs as a task on each SIGINT or SIGTERM. */
static int l_on_signal(lua_State *L) {
  dev_host *h = uphost(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, h->signal_ref);
  lua_pushvalue(L, 1);
  h->signal_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (!h->signals_on) {
    hg_err err;
    if (hg_loop_on_signal(h->loop, SIGINT, on_signal, h, &err) ||
        hg_loop_on_signal(h->loop, SIGTERM, on_signal, h, &err))
      return luaL_error(L, "host.on_signal: %s", err.msg);
    h->signals_on = 1;
  }
  return 0;
}

/* host.mkdtemp(prefix) -> path | nil, message: a new directory (mode 0700) named
 * prefix + six random characters. */
static int l_mkdtemp(lua_State *L) {
  const char *prefix = luaL_checkstring(L, 1);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  luaL_addstring(&b, prefix);
  luaL_addstring(&b, "XXXXXX");
  luaL_pushresult(&b);
  char *path = strdup(lua_tostring(L, -1));
  if (!path) return luaL_error(L, "host.mkdtemp: out of memory");
  if (!mkdtemp(path)) {
    int e = errno;
    free(path);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot create a directory %s: %s", lua_tostring(L, -2), strerror(e));
    return 2;
  }
  lua_pushstring(L, path);
  free(path);
  return 1;
}

/* Pushes the host table: self (this executable), examples (the examples directory), stdout
 * and stderr (sinks), fs (mkdir_p, remove_tree, read, write_atomic, ...), on_signal, mkdtemp. */
static int push_host(lua_State *L) {
  dev_host *h = lua_touserdata(L, 1);
  lua_createtable(L, 0, 8);
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return luaL_error(L, "cannot find this executable (/proc/self/exe): %s", strerror(errno));
  self[n] = '\0';
  lua_pushstring(L, self);
  lua_setfield(L, -2, "self");
  lua_pushstring(L, hg_paths_examples_dir());
  lua_setfield(L, -2, "examples");
  hg_lua_push_sink(L, &h->out);
  lua_setfield(L, -2, "stdout");
  hg_lua_push_sink(L, &h->err);
  lua_setfield(L, -2, "stderr");
  hg_agentfs_push(L);
  lua_setfield(L, -2, "fs");
  static const luaL_Reg fns[] = {{"on_signal", l_on_signal}, {"mkdtemp", l_mkdtemp}, {NULL, NULL}};
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, fns, 1);
  lua_setglobal(L, "HANGAR_DEV_HOST");
  return 0;
}

static int invalidate_sinks(lua_State *L) {
  dev_host *h = lua_touserdata(L, 1);
  hg_lua_sink_invalidate(L, &h->out);
  hg_lua_sink_invalidate(L, &h->err);
  return 0;
}

/* Calls require("hangar.dev").main(host, args...) with the host table taken from the global
 * it was parked in; leaves the exit code on the stack. */
static const char launcher[] =
    "local host = HANGAR_DEV_HOST\n"
    "HANGAR_DEV_HOST = nil\n"
    "return require('hangar.dev').main(host, ...)\n";

int cmd_dev(int argc, char **argv) {
  const char *level = getenv("HANGAR_LOG_LEVEL");
  int min = level ? hg_log_parse_level(level) : HG_LOG_WARN;
  hg_log_setup(stderr, min < 0 ? HG_LOG_WARN : (hg_log_level)min, "dev");
  /* A terminal or pipe that goes away must not kill us before the children are stopped. */
  signal(SIGPIPE, SIG_IGN);

  hg_err err;
  hg_loop loop;
  if (hg_loop_init(&loop, &err)) {
    fprintf(stderr, "hangar dev: %s\n", err.msg);
    return 1;
  }
  hg_lua_opts opts = {.mode = HG_LUA_FULL, .blocking = 1};
  hg_lua *rt;
  if (hg_lua_new(&loop, &opts, &rt, &err)) {
    fprintf(stderr, "hangar dev: %s\n", err.msg);
    hg_loop_close(&loop);
    return 1;
  }
  dev_host host = {
      .rt = rt,
      .loop = &loop,
      .signal_ref = LUA_NOREF,
      .out = {&fd_ops, (void *)(intptr_t)STDOUT_FILENO, NULL, NULL},
      .err = {&fd_ops, (void *)(intptr_t)STDERR_FILENO, NULL, NULL},
  };
  lua_State *L = hg_lua_state(rt);
  int status = 1;
  if (hg_lua_protect(rt, push_host, &host, &err) ||
      hg_lua_load_string(rt, launcher, sizeof launcher - 1, "=hangar dev", &err)) {
    fprintf(stderr, "hangar dev: %s\n", err.msg);
  } else if (!lua_checkstack(L, argc)) {
    fprintf(stderr, "hangar dev: too many arguments\n");
    lua_pop(L, 1);
  } else {
    for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
    if (hg_lua_call(rt, argc - 1, 1, &err)) {
      fprintf(stderr, "hangar dev: %s\n", lua_tostring(L, -1));
    } else {
      status = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 1;
    }
    lua_pop(L, 1);
  }
  /* The sinks are ours and outlive no child: the script waited for each process it started. */
  hg_lua_protect(rt, invalidate_sinks, &host, &err);
  hg_lua_free(rt);
  hg_loop_close(&loop);
  return status;
}
