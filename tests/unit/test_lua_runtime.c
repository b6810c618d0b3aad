/* The Lua runtime: each sandbox restriction, the CPU budget, the memory cap, error reports,
 * tasks and the async bridge. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/log.h"
#include "lua/runtime.h"

static hg_loop loop;

static hg_lua *open_rt(hg_lua_mode mode, size_t mem, int64_t cpu_ms, int blocking) {
  hg_err err;
  hg_lua_opts opts = {.mode = mode, .mem_limit = mem, .cpu_budget_ms = cpu_ms, .blocking = blocking};
  hg_lua *rt = NULL;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  int rc = hg_lua_new(&loop, &opts, &rt, &err);
  CHECK_EQ_INT(rc, 0);
  if (rc) fprintf(stderr, "hg_lua_new: %s\n", err.msg);
  return rt;
}

static void close_rt(hg_lua *rt) {
  hg_lua_free(rt);
  hg_loop_close(&loop);
}

/* Runs code; returns the hg_err code, and the first result (or the error text) in out. */
static int eval(hg_lua *rt, const char *code, char *out, size_t size) {
  hg_err err;
  lua_State *L = hg_lua_state(rt);
  int rc = hg_lua_load_string(rt, code, strlen(code), "=test", &err);
  if (rc) {
    snprintf(out, size, "%s", err.msg);
    return rc;
  }
  rc = hg_lua_call(rt, 0, 1, &err);
  const char *s = lua_tostring(L, -1);
  snprintf(out, size, "%s", s ? s : lua_typename(L, lua_type(L, -1)));
  lua_pop(L, 1);
  return rc;
}

static int contains(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

#define EXPECT_TRUE(rt, code)                                   \
  do {                                                          \
    char out_[2048];                                            \
    int rc_ = eval(rt, "return tostring(" code ")", out_, sizeof out_); \
    CHECK_EQ_INT(rc_, 0);                                       \
    CHECK_EQ_STR(out_, "true");                                 \
  } while (0)

#define EXPECT_ERROR(rt, code, text)                            \
  do {                                                          \
    char out_[2048];                                            \
    int rc_ = eval(rt, code, out_, sizeof out_);                \
    CHECK(rc_ < 0);                                             \
    if (!contains(out_, text)) fprintf(stderr, "  got: %s\n", out_); \
    CHECK(contains(out_, text));                                \
  } while (0)

static void sandbox_has_no_dangerous_functions(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  EXPECT_TRUE(rt, "rawget(_G, 'io') == nil");
  EXPECT_TRUE(rt, "rawget(_G, 'debug') == nil");
  EXPECT_TRUE(rt, "rawget(_G, 'dofile') == nil");
  EXPECT_TRUE(rt, "rawget(_G, 'loadfile') == nil");
  EXPECT_TRUE(rt, "os.execute == nil and os.getenv == nil and os.remove == nil and os.exit == nil");
  EXPECT_TRUE(rt, "type(os.time()) == 'number' and type(os.clock()) == 'number' and type(os.date()) == 'string'");
  EXPECT_TRUE(rt, "package.loadlib == nil and package.cpath == nil");
  EXPECT_TRUE(rt, "string.dump == nil and ('x').dump == nil");
  /* What remains works. */
  EXPECT_TRUE(rt, "string.format('%d', 3) == '3' and math.max(1, 2) == 2 and utf8.char(72) == 'H'");
  EXPECT_TRUE(rt, "coroutine.wrap(function() coroutine.yield(4) end)() == 4");
  EXPECT_TRUE(rt, "load('return 5')() == 5");
  close_rt(rt);
}

static void sandbox_refuses_binary_chunks(void) {
  /* Make a binary chunk with a plain Lua state. */
  lua_State *P = luaL_newstate();
  luaL_openlibs(P);
  luaL_dostring(P, "return string.dump(function() return 1 end)");
  size_t len;
  const char *bin = lua_tolstring(P, -1, &len);
  CHECK(bin != NULL && len > 4);

  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  lua_State *L = hg_lua_state(rt);
  hg_err err;
  CHECK(hg_lua_load_string(rt, bin, len, "=bin", &err) < 0);
  CHECK(contains(err.msg, "binary"));
  /* load() from Lua, even when the caller asks for mode "b". */
  lua_pushlstring(L, bin, len);
  lua_setglobal(L, "BIN");
  char out[512];
  CHECK_EQ_INT(eval(rt, "local f, e = load(BIN, 'x', 'b') return e", out, sizeof out), 0);
  CHECK(contains(out, "binary"));
  CHECK_EQ_INT(eval(rt, "local f, e = load(BIN) return e", out, sizeof out), 0);
  CHECK(contains(out, "binary"));
  close_rt(rt);
  lua_close(P);
}

static void sandbox_strict_globals(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  EXPECT_ERROR(rt, "return undefined_thing", "undeclared global 'undefined_thing'");
  EXPECT_ERROR(rt, "return io.open", "undeclared global 'io'");
  /* Declared globals read back; assignment declares. */
  EXPECT_TRUE(rt, "(function() declared = 1 return declared == 1 end)()");
  close_rt(rt);
}

static char tmpdir[256];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

static void make_tmpdir(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  snprintf(tmpdir, sizeof tmpdir, "%s/lua-rt-XXXXXX", base);
  CHECK(mkdtemp(tmpdir) != NULL);
}

static void remove_tree(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  CHECK_EQ_INT(system(cmd), 0);
}

static void sandbox_require_is_limited_to_roots(void) {
  make_tmpdir();
  char path[400], root[300], outside[300];
  snprintf(root, sizeof root, "%s/plugins", tmpdir);
  snprintf(outside, sizeof outside, "%s/elsewhere", tmpdir);
  mkdir(root, 0755);
  mkdir(outside, 0755);
  snprintf(path, sizeof path, "%s/plug", root);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/plug/mod.lua", root);
  write_file(path, "return { answer = 42 }\n");
  snprintf(path, sizeof path, "%s/plug/init.lua", root);
  write_file(path, "return { init = true }\n");
  snprintf(path, sizeof path, "%s/secret.lua", outside);
  write_file(path, "return 'leaked'\n");

  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  hg_err err;
  CHECK_EQ_INT(hg_lua_add_root(rt, root, &err), 0);
  EXPECT_TRUE(rt, "require('plug.mod').answer == 42");
  EXPECT_TRUE(rt, "require('plug').init == true");
  /* The core's C modules and the project's Lua tree. */
  EXPECT_TRUE(rt, "require('hangar.json') == hangar.json");
  EXPECT_TRUE(rt, "type(require('hangar.async').map) == 'function'");
  /* Not a root: neither by name nor by climbing out of one. */
  EXPECT_ERROR(rt, "return require('secret')", "module 'secret' not found");
  EXPECT_ERROR(rt, "return require('..elsewhere.secret')", "not a module name");
  EXPECT_ERROR(rt, "return require('plug/../../elsewhere/secret')", "not a module name");
  /* No C modules from the system, no changing the search path. */
  EXPECT_ERROR(rt, "return require('lfs')", "module 'lfs' not found");
  EXPECT_ERROR(rt, "package.path = '" "/tmp/?.lua' return require('secret')", "not found");
  close_rt(rt);
  remove_tree();
}

static void full_mode_has_everything(void) {
  hg_lua *rt = open_rt(HG_LUA_FULL, 0, 0, 1);
  EXPECT_TRUE(rt, "io ~= nil and debug ~= nil and os.getenv ~= nil and package.loadlib ~= nil");
  EXPECT_TRUE(rt, "hangar.json ~= nil and hangar.task ~= nil and hangar.timer ~= nil");
  EXPECT_TRUE(rt, "type(require('hangar.async').run) == 'function'");
  EXPECT_TRUE(rt, "nothing_here == nil");
  close_rt(rt);
}

static void cpu_budget_stops_runaway_code(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 100, 0);
  char out[2048];
  CHECK_EQ_INT(eval(rt, "while true do end", out, sizeof out), HG_ETIMEDOUT);
  CHECK(contains(out, "CPU budget of 100 ms exceeded"));
  CHECK(contains(out, "test:1:"));
  /* A pcall inside the script cannot swallow it, even in a loop. */
  CHECK_EQ_INT(eval(rt, "local n = 0 while true do pcall(function() while true do n = n + 1 end end) end",
                    out, sizeof out), HG_ETIMEDOUT);
  CHECK(contains(out, "CPU budget"));
  CHECK_EQ_INT(eval(rt, "local ok = pcall(function() while true do end end) return 'survived'", out,
                    sizeof out), HG_ETIMEDOUT);
  CHECK(!contains(out, "survived"));
  /* The runtime still works, with a fresh budget. */
  CHECK_EQ_INT(eval(rt, "local s = 0 for i = 1, 1000 do s = s + i end return tostring(s)", out, sizeof out), 0);
  CHECK_EQ_STR(out, "500500");
  close_rt(rt);
}

static void cpu_budget_counts_time_in_library_calls(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 20, 0);
  char out[2048];
  /* Over ten times the budget spent in C (~0.26 s on a 2-vCPU VM, so a machine several times
   * faster still overruns it), in a few thousand instructions, then a short loop: the budget
   * has no look at the clock until that loop, and must still count what went before. */
  CHECK_EQ_INT(eval(rt, "local n = 0 "
                        "for i = 1, 600 do n = n + #string.rep('ab', 100000) end "
                        "for i = 1, 30000 do end return 'survived'",
                    out, sizeof out),
               HG_ETIMEDOUT);
  CHECK(contains(out, "CPU budget of 20 ms exceeded"));
  close_rt(rt);
}

static void cpu_budget_does_not_count_time_blocked_in_a_call(void) {
  hg_lua *rt = open_rt(HG_LUA_FULL, 0, 100, 0);
  char out[2048];
  /* Three times the budget asleep in a call before the first look at the clock: waiting is
   * not running, however the look is taken. */
  CHECK_EQ_INT(eval(rt, "os.execute('sleep 0.3') for i = 1, 30000 do end return 'ran'", out,
                    sizeof out),
               0);
  CHECK_EQ_STR(out, "ran");
  close_rt(rt);
}

static int task_done_calls;
static int task_done_ok;
static char task_done_text[2048];
static int first_done_ok;
static char first_done_text[2048];

static void record_done(hg_lua *rt, lua_State *L, int ok, int nres, void *data) {
  (void)rt;
  (void)data;
  if (task_done_calls++ == 0) {
    const char *s = nres > 0 ? lua_tostring(L, -nres) : NULL;
    first_done_ok = ok;
    snprintf(first_done_text, sizeof first_done_text, "%s", s ? s : "(none)");
  }
  task_done_ok = ok;
  const char *s = nres > 0 ? lua_tostring(L, -nres) : NULL;
  snprintf(task_done_text, sizeof task_done_text, "%s", s ? s : "(none)");
}

static void run_until_tasks_done(hg_lua *rt) {
  for (int i = 0; i < 100000 && hg_lua_task_count(rt) > 0; i++) uv_run(&loop.uv, UV_RUN_ONCE);
}

static int start_code(hg_lua *rt, const char *code) {
  hg_err err;
  if (hg_lua_load_string(rt, code, strlen(code), "=task", &err)) return -1;
  return hg_lua_task_start(rt, 0, record_done, NULL, &err);
}

static void cpu_budget_applies_per_resume(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 100, 0);
  task_done_calls = 0;
  /* Sleeping 300 ms in small steps is fine: only running time counts. */
  CHECK_EQ_INT(start_code(rt, "for i = 1, 6 do hangar.timer.sleep(50) end return 'slept'"), 0);
  /* A task that spins is stopped, pcall or not. */
  CHECK_EQ_INT(start_code(rt, "hangar.timer.sleep(1) while true do pcall(function() while true do end end) end"), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 2);
  /* The spinning task ends first, stopped; the sleeper later, successfully. */
  CHECK_EQ_INT(first_done_ok, 0);
  CHECK(contains(first_done_text, "CPU budget of 100 ms exceeded"));
  CHECK(contains(first_done_text, "stack traceback"));
  CHECK_EQ_INT(task_done_ok, 1);
  CHECK_EQ_STR(task_done_text, "slept");
  close_rt(rt);
}

static void memory_cap_stops_runaway_allocation(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 16 << 20, 0, 0);
  char out[2048];
  size_t before = hg_lua_mem_used(rt);
  CHECK_EQ_INT(eval(rt, "local t = {} for i = 1, 1e9 do t[i] = string.rep('x', 64) .. i end", out, sizeof out),
               HG_ENOMEM);
  CHECK(contains(out, "not enough memory"));
  /* Caught inside the script: an ordinary error it can handle. */
  CHECK_EQ_INT(eval(rt, "local ok, e = pcall(string.rep, 'x', 64 << 20) return tostring(ok) .. ' ' .. e", out,
                    sizeof out), 0);
  CHECK_EQ_STR(out, "false not enough memory");
  /* The runtime recovers: the garbage goes and ordinary code runs. */
  lua_gc(hg_lua_state(rt), LUA_GCCOLLECT);
  CHECK(hg_lua_mem_used(rt) < before + (1 << 20));
  CHECK_EQ_INT(eval(rt, "return tostring(#string.rep('y', 1000))", out, sizeof out), 0);
  CHECK_EQ_STR(out, "1000");
  /* In a task resumed from the loop: the task fails, the others and the runtime go on. */
  task_done_calls = 0;
  CHECK_EQ_INT(start_code(rt, "hangar.timer.sleep(1) local t = {} for i = 1, 1e9 do t[i] = {i} end"), 0);
  CHECK_EQ_INT(start_code(rt, "hangar.timer.sleep(30) return 'fine'"), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 2);
  CHECK_EQ_INT(first_done_ok, 0);
  CHECK(contains(first_done_text, "not enough memory"));
  CHECK_EQ_INT(task_done_ok, 1);
  CHECK_EQ_STR(task_done_text, "fine");
  close_rt(rt);
}

static void errors_carry_file_line_and_traceback(void) {
  make_tmpdir();
  /* In a directory whose name alone is longer than the ~56 characters of a file name Lua keeps
   * in "file:line:": messages must still name the whole file. */
  char dir[400], path[512], want[600];
  snprintf(dir, sizeof dir, "%s/a-directory-whose-name-alone-is-longer-than-lua-keeps", tmpdir);
  CHECK_EQ_INT(mkdir(dir, 0755), 0);
  snprintf(path, sizeof path, "%s/broken.lua", dir);
  write_file(path, "local function inner()\n  local x = nil\n  return x.field\nend\nlocal function outer() local v = inner() return v end\nouter()\n");
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  lua_State *L = hg_lua_state(rt);
  hg_err err;
  CHECK_EQ_INT(hg_lua_load_file(rt, path, &err), 0);
  CHECK_EQ_INT(hg_lua_call(rt, 0, 0, &err), HG_EINVAL);
  const char *full = lua_tostring(L, -1);
  snprintf(want, sizeof want, "%s:3: attempt to index a nil value", path);
  CHECK(full && strncmp(full, want, strlen(want)) == 0);
  CHECK(full && contains(full, "stack traceback:"));
  CHECK(full && contains(full, "broken.lua:5:"));
  CHECK(contains(err.msg, want));
  /* The traceback's lines name the whole file too, not Lua's "...tail". */
  snprintf(want, sizeof want, "\n\t%s:5: in ", path);
  CHECK(full && contains(full, want));
  CHECK(full && !contains(full, "\n\t..."));
  lua_pop(L, 1);
  /* A syntax error names the file and line too. */
  snprintf(path, sizeof path, "%s/syntax.lua", dir);
  write_file(path, "local a = 1\nlocal b = = 2\n");
  CHECK_EQ_INT(hg_lua_load_file(rt, path, &err), HG_EINVAL);
  snprintf(want, sizeof want, "%s:2:", path);
  CHECK(contains(err.msg, want));
  CHECK_EQ_INT(hg_lua_load_file(rt, "/nonexistent/x.lua", &err), HG_ENOENT);
  /* So does an error in a task, raised after it waited on the loop. */
  snprintf(path, sizeof path, "%s/task.lua", dir);
  write_file(path, "hangar.timer.sleep(1)\nerror('gave up')\n");
  CHECK_EQ_INT(hg_lua_load_file(rt, path, &err), 0);
  task_done_calls = 0;
  CHECK_EQ_INT(hg_lua_task_start(rt, 0, record_done, NULL, &err), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 1);
  CHECK_EQ_INT(task_done_ok, 0);
  snprintf(want, sizeof want, "%s:2: gave up", path);
  CHECK(strncmp(task_done_text, want, strlen(want)) == 0);
  snprintf(want, sizeof want, "\n\t%s:2: in ", path);
  CHECK(contains(task_done_text, want));
  close_rt(rt);
  remove_tree();
}

static void tasks_run_concurrently(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  char out[512];
  CHECK_EQ_INT(eval(rt,
                    "order = {} "
                    "local slow = hangar.task.spawn(function() hangar.timer.sleep(200) order[#order+1] = 'slow' return 'S' end) "
                    "local fast = hangar.task.spawn(function() hangar.timer.sleep(20) order[#order+1] = 'fast' return 'F' end) "
                    "results = {} "
                    "hangar.task.spawn(function() results[1] = slow:wait() results[2] = fast:wait() order[#order+1] = 'joined' end) "
                    "return 'started'",
                    out, sizeof out), 0);
  run_until_tasks_done(rt);
  EXPECT_TRUE(rt, "table.concat(order, ',') == 'fast,slow,joined'");
  EXPECT_TRUE(rt, "results[1] == 'S' and results[2] == 'F'");
  close_rt(rt);
}

static void task_results_reach_the_host(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  lua_State *L = hg_lua_state(rt);
  hg_err err;
  task_done_calls = 0;
  const char *code = "local a, b = ... hangar.timer.sleep(5) return a .. b";
  CHECK_EQ_INT(hg_lua_load_string(rt, code, strlen(code), "=task", &err), 0);
  lua_pushstring(L, "fo");
  lua_pushstring(L, "o");
  int top = lua_gettop(L);
  CHECK_EQ_INT(hg_lua_task_start(rt, 2, record_done, NULL, &err), 0);
  CHECK_EQ_INT(lua_gettop(L), top - 3);
  /* Never run from inside the start call. */
  CHECK_EQ_INT(task_done_calls, 0);
  CHECK_EQ_INT(hg_lua_task_count(rt), 1);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 1);
  CHECK_EQ_INT(task_done_ok, 1);
  CHECK_EQ_STR(task_done_text, "foo");
  CHECK_EQ_INT(hg_lua_task_count(rt), 0);
  close_rt(rt);
}

static void raise_in_callback(hg_lua *rt, lua_State *L, int ok, int nres, void *data) {
  (void)rt;
  (void)ok;
  (void)nres;
  (void)data;
  task_done_calls++;
  luaL_error(L, "the host's callback failed");
}

static void errors_in_callbacks_never_crash(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 1);
  lua_State *L = hg_lua_state(rt);
  hg_err err;
  /* An error after a resume from the loop becomes the task's failure. */
  task_done_calls = 0;
  CHECK_EQ_INT(start_code(rt, "hangar.timer.sleep(1) error('late failure')"), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 1);
  CHECK_EQ_INT(task_done_ok, 0);
  CHECK(contains(task_done_text, "task:1: late failure"));
  /* A host callback that raises is contained. */
  const char *code = "return 1";
  CHECK_EQ_INT(hg_lua_load_string(rt, code, strlen(code), "=task", &err), 0);
  CHECK_EQ_INT(hg_lua_task_start(rt, 0, raise_in_callback, NULL, &err), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_calls, 2);
  /* A foreign coroutine inside a task is not a task: blocking there is refused, because the
   * loop is already running. */
  CHECK_EQ_INT(start_code(rt, "return coroutine.wrap(function() hangar.timer.sleep(1) end)()"), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(task_done_ok, 0);
  CHECK(contains(task_done_text, "outside a task from inside a loop callback"));
  /* A failed task nobody waits for is counted. */
  char out[512];
  CHECK_EQ_INT(eval(rt, "hangar.task.spawn(function() error('nobody listens') end) return 'x'", out, sizeof out), 0);
  run_until_tasks_done(rt);
  CHECK_EQ_INT(hg_lua_task_unobserved_failures(rt), 1);
  (void)L;
  close_rt(rt);
}

static void blocking_mode_is_opt_in(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  EXPECT_ERROR(rt, "hangar.timer.sleep(1)", "must be called inside a task");
  close_rt(rt);
  rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 1);
  char out[512];
  /* Blocking: the call drives the loop, and tasks progress meanwhile. */
  CHECK_EQ_INT(eval(rt,
                    "local n = 0 local t = hangar.task.spawn(function() n = n + 1 end) "
                    "hangar.timer.sleep(10) return tostring(n)",
                    out, sizeof out), 0);
  CHECK_EQ_STR(out, "1");
  close_rt(rt);
}

static void abandoned_tasks_are_cleaned_up(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  char out[512];
  /* Tasks still sleeping, and one waiting for another, when the runtime closes. */
  CHECK_EQ_INT(eval(rt,
                    "local a = hangar.task.spawn(function() hangar.timer.sleep(60000) end) "
                    "hangar.task.spawn(function() a:wait() end) return 'ok'",
                    out, sizeof out), 0);
  for (int i = 0; i < 5; i++) uv_run(&loop.uv, UV_RUN_NOWAIT);
  CHECK_EQ_INT(hg_lua_task_count(rt), 2);
  close_rt(rt); /* valgrind/ASan: nothing leaks, nothing is touched after free */
}

static hg_sink_ops counting_ops;
static size_t counted;

static int count_write(hg_sink *s, const char *b, size_t n, int64_t ts) {
  (void)s;
  (void)b;
  (void)ts;
  counted += n;
  return 0;
}

static int push_host_sink(lua_State *L) {
  hg_lua_push_sink(L, lua_touserdata(L, 1));
  lua_setglobal(L, "HOST");
  return 0;
}

static int invalidate_host_sink(lua_State *L) {
  hg_lua_sink_invalidate(L, lua_touserdata(L, 1));
  return 0;
}

static void host_sinks_can_be_invalidated(void) {
  hg_lua *rt = open_rt(HG_LUA_SANDBOXED, 0, 0, 0);
  hg_err err;
  counting_ops.write = count_write;
  hg_sink s = {&counting_ops, NULL, NULL, NULL};
  counted = 0;
  CHECK_EQ_INT(hg_lua_protect(rt, push_host_sink, &s, &err), 0);
  EXPECT_TRUE(rt, "HOST:write('hello') == true and HOST:valid()");
  CHECK_EQ_INT((int)counted, 5);
  CHECK_EQ_INT(hg_lua_protect(rt, invalidate_host_sink, &s, &err), 0);
  EXPECT_ERROR(rt, "HOST:write('again')", "sink is no longer valid");
  CHECK_EQ_INT((int)counted, 5);
  EXPECT_TRUE(rt, "(function() local b = hangar.sink.buffer() b:write('ab') b:write('c') return b:contents() == 'abc' end)()");
  close_rt(rt);
}

TEST_MAIN(T(sandbox_has_no_dangerous_functions), T(sandbox_refuses_binary_chunks),
          T(sandbox_strict_globals), T(sandbox_require_is_limited_to_roots),
          T(full_mode_has_everything), T(cpu_budget_stops_runaway_code),
          T(cpu_budget_counts_time_in_library_calls),
          T(cpu_budget_does_not_count_time_blocked_in_a_call),
          T(cpu_budget_applies_per_resume), T(memory_cap_stops_runaway_allocation),
          T(errors_carry_file_line_and_traceback), T(tasks_run_concurrently),
          T(task_results_reach_the_host), T(errors_in_callbacks_never_crash),
          T(blocking_mode_is_opt_in), T(abandoned_tasks_are_cleaned_up),
          T(host_sinks_can_be_invalidated))
