/* hangar.process: child processes from Lua over src/core/proc.
 *
 *   local p, err = process.spawn{ argv = { "/bin/echo", "hi" },   -- argv[1]: a path, or found
 *                                 env = { PATH = "/usr/bin" },    --   in env.PATH
 *                                 cwd = "/tmp",
 *                                 stdout = sink | "capture",      -- default: discarded
 *                                 stderr = sink | "capture",
 *                                 stdin = true }                  -- default: /dev/null
 *   p:write("input") p:close_stdin()
 *   local r = p:wait()   --> { exit_code = 0, signal = 0, stdout = "hi\n", stderr = nil }
 *   p:kill(grace_ms)     -- SIGTERM to its process group now, SIGKILL after the grace
 *   p:signal("HUP")      -- or a number
 *   p:pid()  p:done()
 *
 * env is exactly the child's environment: nothing is inherited, so give PATH and anything
 * else it needs. A sink given as stdout/stderr receives the bytes in C, they never enter Lua.
 * Captured output is kept up to 64 MiB per stream (then the rest is discarded and
 * r.sink_error says so). exit_code is -1 when a signal ended the child (r.signal names it).
 * Collecting the object (or leaving its `<close>` scope) kills a child still running: keep
 * the object while the process should live. Expected failures (no such program, bad cwd)
 * return nil and a message; misuse (wrong argument types) raises. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/proc.h"
#include "lua/internal.h"

#define PROC_MT "hangar.process"
#define CAPTURE_MAX ((size_t)64 << 20)
#define DEFAULT_GRACE_MS 5000

struct proc_waiter;

typedef struct {
  hg_buf buf;
  hg_sink sink;
} capture;

typedef struct {
  hg_proc *p;
  int exited;
  hg_proc_exit status;
  int stdin_pipe;
  capture out, err;
  int capture_out, capture_err;
  struct proc_waiter *waiters;
} lproc;

typedef struct {
  lproc *lp; /* NULL once closed */
} proc_obj;

struct proc_waiter {
  hg_lua_wait *w;
  lproc *lp;
  int linked;
  struct proc_waiter *next;
};

static int capture_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  (void)ts_ms;
  capture *c = s->data;
  if (c->buf.len + len > CAPTURE_MAX) return HG_ETOOBIG;
  return hg_buf_append(&c->buf, bytes, len);
}

static const hg_sink_ops capture_ops = {capture_write, NULL};

static void proc_exited(hg_proc *p, hg_proc_exit status, void *data) {
  (void)p;
  lproc *lp = data;
  lp->exited = 1;
  lp->status = status;
  struct proc_waiter *wl = lp->waiters;
  lp->waiters = NULL;
  while (wl) {
    struct proc_waiter *next = wl->next;
    wl->linked = 0;
    hg_lua_wait_done(wl->w);
    wl = next;
  }
}

static void lproc_free(lproc *lp) {
  /* Detaches a running child (SIGKILL to it): no callback or sink is called after this. */
  hg_proc_free(lp->p);
  hg_buf_free(&lp->out.buf);
  hg_buf_free(&lp->err.buf);
  free(lp);
}

/* close, __close, __gc: kills a child still running and frees the handle. While another
 * task waits for the process, it is only killed here; the waiter gets its exit status and
 * the collector frees it later. */
static int proc_close(lua_State *L) {
  proc_obj *o = luaL_checkudata(L, 1, PROC_MT);
  lproc *lp = o->lp;
  if (!lp) return 0;
  if (lp->waiters && !lp->exited) {
    hg_proc_kill(lp->p, 0);
    return 0;
  }
  o->lp = NULL;
  lproc_free(lp);
  return 0;
}

static lproc *check_proc(lua_State *L) {
  proc_obj *o = luaL_checkudata(L, 1, PROC_MT);
  if (!o->lp) luaL_argerror(L, 1, "the process object is closed");
  return o->lp;
}

/* ---- spawn ---- */

static int stream_opt(lua_State *L, const char *key, hg_sink **sink) {
  int t = lua_getfield(L, 1, key);
  int capture_it = 0;
  *sink = NULL;
  if (t == LUA_TSTRING && strcmp(lua_tostring(L, -1), "capture") == 0) {
    capture_it = 1;
  } else if (t != LUA_TNIL && !(t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
    int why = hg_lua_sink_at(L, -1, sink);
    if (why == 1) luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a sink or \"capture\"", key));
    if (why == 2) luaL_argerror(L, 1, lua_pushfstring(L, "'%s' is no longer valid (its run has ended)", key));
  }
  lua_pop(L, 1);
  return capture_it;
}

static int l_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);

  if (lua_getfield(L, 1, "argv") != LUA_TTABLE) luaL_argerror(L, 1, "'argv' must be a list of strings");
  size_t argc = (size_t)lua_rawlen(L, 2);
  if (argc == 0) luaL_argerror(L, 1, "'argv' must name a program");
  const char **argv = lua_newuserdatauv(L, (argc + 1) * sizeof *argv, 1); /* 3 */
  lua_createtable(L, (int)argc, 0); /* keeps numbers turned into strings alive */
  for (size_t i = 0; i < argc; i++) {
    int t = lua_rawgeti(L, 2, (lua_Integer)i + 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, 1, lua_pushfstring(L, "argv[%d] must be a string", (int)i + 1));
    argv[i] = lua_tostring(L, -1);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setiuservalue(L, 3, 1);
  argv[argc] = NULL;

  int t = lua_getfield(L, 1, "env"); /* 4 */
  size_t envc = 0;
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_argerror(L, 1, "'env' must be a table of NAME = value");
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      envc++;
      lua_pop(L, 1);
    }
  }
  const char **env = lua_newuserdatauv(L, (envc + 1) * sizeof *env, 1); /* 5 */
  lua_createtable(L, (int)envc, 0); /* 6: keeps the "NAME=value" strings */
  size_t n = 0;
  if (t == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
        luaL_argerror(L, 1, "'env' must map names to strings");
      const char *name = lua_tostring(L, -2);
      if (!*name || strchr(name, '='))
        luaL_argerror(L, 1, lua_pushfstring(L, "'%s' is not an environment variable name", name));
      env[n] = lua_pushfstring(L, "%s=%s", name, lua_tostring(L, -1));
      lua_rawseti(L, 6, (lua_Integer)++n);
      lua_pop(L, 1);
    }
  }
  env[n] = NULL;

  const char *cwd = NULL;
  t = lua_getfield(L, 1, "cwd"); /* 7 */
  if (t == LUA_TSTRING)
    cwd = lua_tostring(L, -1);
  else if (t != LUA_TNIL)
    luaL_argerror(L, 1, "'cwd' must be a string");

  hg_sink *out_sink, *err_sink;
  int cap_out = stream_opt(L, "stdout", &out_sink);
  int cap_err = stream_opt(L, "stderr", &err_sink);
  lua_getfield(L, 1, "stdin");
  int stdin_pipe = lua_toboolean(L, -1);
  lua_pop(L, 1);

  /* The object exists (closed) before the process does, so nothing can leak. Its uservalue
   * holds the request table: the sinks stay alive as long as the process object. */
  proc_obj *o = lua_newuserdatauv(L, sizeof *o, 1);
  o->lp = NULL;
  luaL_setmetatable(L, PROC_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lproc *lp = calloc(1, sizeof *lp);
  if (!lp) return luaL_error(L, "hangar.process.spawn: out of memory");
  lp->capture_out = cap_out;
  lp->capture_err = cap_err;
  lp->stdin_pipe = stdin_pipe;
  lp->out.sink = (hg_sink){&capture_ops, &lp->out, NULL, NULL};
  lp->err.sink = (hg_sink){&capture_ops, &lp->err, NULL, NULL};
  hg_proc_opts po = {
      .argv = argv,
      .env = env,
      .cwd = cwd,
      .out = cap_out ? &lp->out.sink : out_sink,
      .err = cap_err ? &lp->err.sink : err_sink,
      .stdin_pipe = stdin_pipe,
      .new_pgroup = 1,
      .on_exit = proc_exited,
      .data = lp,
  };
  hg_err err;
  if (hg_proc_spawn(hg_lua_loop(hg_lua_from(L)), &po, &lp->p, &err)) {
    free(lp);
    lua_pushnil(L);
    lua_pushstring(L, err.msg);
    return 2;
  }
  o->lp = lp;
  return 1;
}

/* ---- wait ---- */

static int push_status(lua_State *L, lproc *lp) {
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, lp->status.exit_code);
  lua_setfield(L, -2, "exit_code");
  lua_pushinteger(L, lp->status.signal);
  lua_setfield(L, -2, "signal");
  if (lp->capture_out) {
    lua_pushlstring(L, lp->out.buf.data ? lp->out.buf.data : "", lp->out.buf.len);
    lua_setfield(L, -2, "stdout");
  }
  if (lp->capture_err) {
    lua_pushlstring(L, lp->err.buf.data ? lp->err.buf.data : "", lp->err.buf.len);
    lua_setfield(L, -2, "stderr");
  }
  if (lp->status.sink_error) {
    lua_pushstring(L, lp->status.sink_error == HG_ETOOBIG ? "output over the capture limit was discarded"
                                                          : "a sink refused output; the rest was discarded");
    lua_setfield(L, -2, "sink_error");
  }
  return 1;
}

static int waiter_push(lua_State *L, void *data) {
  struct proc_waiter *pw = data;
  return push_status(L, pw->lp);
}

static void waiter_abandon(void *data) {
  struct proc_waiter *pw = data;
  if (pw->linked) {
    struct proc_waiter **pp = &pw->lp->waiters;
    while (*pp && *pp != pw) pp = &(*pp)->next;
    if (*pp) *pp = pw->next;
  }
  free(pw);
}

static const hg_lua_wait_ops waiter_ops = {waiter_push, waiter_abandon, free};

/* p:wait() -> { exit_code, signal, stdout, stderr }, once the child exited and its output
 * was delivered. */
static int l_wait(lua_State *L) {
  lproc *lp = check_proc(L);
  if (lp->exited) return push_status(L, lp);
  hg_lua_wait *w = hg_lua_wait_new(L, "process:wait");
  struct proc_waiter *pw = malloc(sizeof *pw);
  if (!pw) {
    hg_lua_wait_discard(w);
    return luaL_error(L, "process:wait: out of memory");
  }
  pw->w = w;
  pw->lp = lp;
  pw->linked = 1;
  pw->next = lp->waiters;
  lp->waiters = pw;
  return hg_lua_wait_yield(L, w, &waiter_ops, pw);
}

/* ---- control ---- */

static int result(lua_State *L, int rc, const char *what) {
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(-rc));
  return 2;
}

static int l_kill(lua_State *L) {
  lproc *lp = check_proc(L);
  lua_Integer grace = luaL_optinteger(L, 2, DEFAULT_GRACE_MS);
  luaL_argcheck(L, grace >= 0, 2, "must not be negative");
  if (lp->exited) return result(L, -ESRCH, "kill");
  return result(L, hg_proc_kill(lp->p, (int64_t)grace), "kill");
}

static const struct {
  const char *name;
  int num;
} signals[] = {{"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
               {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
               {"CONT", SIGCONT}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH}};

static int l_signal(lua_State *L) {
  lproc *lp = check_proc(L);
  int sig = 0;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    sig = (int)luaL_checkinteger(L, 2);
    luaL_argcheck(L, sig > 0 && sig < 65, 2, "not a signal number");
  } else {
    const char *name = luaL_checkstring(L, 2);
    if (strncmp(name, "SIG", 3) == 0) name += 3;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
      if (strcmp(name, signals[i].name) == 0) sig = signals[i].num;
    if (!sig) return luaL_argerror(L, 2, "unknown signal name");
  }
  if (lp->exited) return result(L, -ESRCH, "signal");
  return result(L, hg_proc_signal(lp->p, sig), "signal");
}

static int l_write(lua_State *L) {
  lproc *lp = check_proc(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if (!lp->stdin_pipe) return luaL_argerror(L, 1, "spawned without stdin = true");
  if (len == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return result(L, hg_proc_write(lp->p, data, len), "write");
}

static int l_close_stdin(lua_State *L) {
  lproc *lp = check_proc(L);
  if (!lp->stdin_pipe) return luaL_argerror(L, 1, "spawned without stdin = true");
  return result(L, hg_proc_write(lp->p, NULL, 0), "close_stdin");
}

static int l_pid(lua_State *L) {
  lua_pushinteger(L, hg_proc_pid(check_proc(L)->p));
  return 1;
}

static int l_done(lua_State *L) {
  lua_pushboolean(L, check_proc(L)->exited);
  return 1;
}

static int l_tostring(lua_State *L) {
  proc_obj *o = luaL_checkudata(L, 1, PROC_MT);
  if (!o->lp)
    lua_pushliteral(L, "hangar.process (closed)");
  else
    lua_pushfstring(L, "hangar.process (pid %d, %s)", (int)hg_proc_pid(o->lp->p),
                    o->lp->exited ? "exited" : "running");
  return 1;
}

int hg_lua_open_process(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", l_wait},     {"kill", l_kill},
                                     {"signal", l_signal}, {"write", l_write},
                                     {"close_stdin", l_close_stdin}, {"pid", l_pid},
                                     {"done", l_done},     {"close", proc_close},
                                     {NULL, NULL}};
  luaL_newmetatable(L, PROC_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, proc_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, proc_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"spawn", l_spawn}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
