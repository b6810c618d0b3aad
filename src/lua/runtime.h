/* The embedded Lua 5.4 runtime: one lua_State on the process's loop, its sandbox, limits,
 * tasks, the async bridge that lets C operations suspend Lua code, and Lua-visible sinks. */
#pragma once

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"

typedef struct hg_lua hg_lua;
typedef struct hg_http hg_http;

typedef enum {
  /* For configuration, backends, hooks and plugins. Libraries: base (without dofile and
   * loadfile; `load` takes text only), coroutine, table, string (without string.dump), math,
   * utf8, os.time/os.clock/os.date. No io, debug, os.execute/getenv, package.loadlib.
   * `require` finds the project's Lua tree (hg_paths_lua_dir()), the extra roots and the C
   * modules in package.preload, nothing else. Reading an undeclared global is an error. */
  HG_LUA_SANDBOXED = 0,
  /* For `hangar lua` (scripts, busted): every standard library, the usual package.path and
   * package.cpath with the project's tree and the extra roots in front. */
  HG_LUA_FULL = 1,
} hg_lua_mode;

typedef struct hg_lua_opts {
  hg_lua_mode mode;
  /* Bytes the Lua heap may hold; past it an allocation fails and Lua raises "not enough
   * memory", which a protected call turns into an ordinary error. 0: no cap. */
  size_t mem_limit;
  /* Milliseconds of CPU time (the loop thread's, so a busy machine does not trip it) one
   * resume of a task (or one hg_lua_call) may use before a count
   * hook raises "CPU budget ... exceeded". The hook then fires on every instruction, so a
   * pcall in the script cannot swallow the error. Time spent waiting on the loop does not
   * count. 0: no budget. */
  int64_t cpu_budget_ms;
  /* Extra directories `require` searches after the project's tree (plugin directories):
   * `require "a.b"` tries DIR/a/b.lua then DIR/a/b/init.lua. NULL-terminated; may be NULL. */
  const char *const *roots;
  /* Nonzero: an async call made outside a task (a main chunk, a busted `it` block) runs the
   * loop itself until it completes ("blocking mode"); other tasks keep running meanwhile.
   * Only for hosts that call Lua outside loop callbacks (`hangar lua`, the config loader,
   * tests). Zero: such a call raises an error telling to use a task. Either way a call made
   * outside a task while a loop callback runs (the runtime resuming a task, say) raises. */
  int blocking;
  /* HTTP client for hangar.http, borrowed (it must outlive the runtime). NULL: the runtime
   * creates one on first use and frees it. */
  hg_http *http;
} hg_lua_opts;

/* Creates the state, opens the libraries of the mode, registers the hangar modules (as
 * package.preload["hangar.<name>"] and as fields of the global table `hangar`). */
int hg_lua_new(hg_loop *loop, const hg_lua_opts *opts, hg_lua **out, hg_err *err);
/* Abandons every unfinished task (cancelling what it waits for: requests are cancelled,
 * processes killed), closes the state (running finalizers), and releases the loop handles;
 * the loop must run once more (hg_loop_close does) for libuv to finish closing them. Not
 * from inside one of the runtime's own callbacks (a task's done callback). NULL: no-op. */
void hg_lua_free(hg_lua *rt);

lua_State *hg_lua_state(hg_lua *rt);
/* The runtime a state (or any of its coroutines) belongs to. */
hg_lua *hg_lua_from(lua_State *L);
hg_loop *hg_lua_loop(hg_lua *rt);
/* Adds a require root after the existing ones. */
int hg_lua_add_root(hg_lua *rt, const char *dir, hg_err *err);
/* Registers a C module for `require name` (package.preload), in both modes. */
int hg_lua_preload(hg_lua *rt, const char *name, lua_CFunction open, hg_err *err);
void hg_lua_set_blocking(hg_lua *rt, int on);
/* Bytes the Lua heap holds now. */
size_t hg_lua_mem_used(hg_lua *rt);

/* ---- Running code on the main thread ----
 * Errors come back as hg_err codes: HG_ENOMEM (memory cap), HG_ETIMEDOUT (CPU budget),
 * HG_ENOENT (file missing), HG_EINVAL (anything else raised by Lua). */

/* Loads a file (text only in the sandbox) and pushes it as a function; chunk name "@path",
 * so errors say "path:line:". path NULL: standard input. On failure pushes nothing. */
int hg_lua_load_file(hg_lua *rt, const char *path, hg_err *err);
/* Loads text and pushes it as a function; name is the chunk name ("=config" or "@file"). */
int hg_lua_load_string(hg_lua *rt, const char *code, size_t len, const char *name, hg_err *err);
/* Calls the function below nargs arguments on the stack of hg_lua_state(rt), protected, with
 * a fresh CPU budget. Success: nresults results (LUA_MULTRET: all) replace them. Failure: one
 * string replaces them, the message with its stack traceback, and err holds the same text
 * (cut to fit). */
int hg_lua_call(hg_lua *rt, int nargs, int nresults, hg_err *err);
/* Runs fn(L) protected, with ud as its only argument (a light userdata): the way for a host
 * to push values or read tables without risking an unprotected memory error. fn's results
 * are discarded; the stack is left as it was. */
int hg_lua_protect(hg_lua *rt, lua_CFunction fn, void *ud, hg_err *err);

/* ---- Tasks ----
 * A task is a coroutine the runtime resumes from the loop. Async C functions called inside
 * it suspend it until their operation completes; many tasks wait at once. */

/* Called once when a task ends, on the main state L, with its results on top of the stack:
 * ok nonzero: the function's nres return values; ok zero: nres is 1 and the value is the
 * error message with the task's stack traceback. The call is protected: an error raised in
 * it is logged and dropped. Leave the stack as found. */
typedef void (*hg_lua_task_cb)(hg_lua *rt, lua_State *L, int ok, int nres, void *data);

/* Pops a function and its nargs arguments from the main stack (function below them) and
 * runs it as a new task, first resumed from the loop (never from inside this call). done
 * may be NULL. On failure (out of memory) pops them too and never calls done. */
int hg_lua_task_start(hg_lua *rt, int nargs, hg_lua_task_cb done, void *data, hg_err *err);
/* Tasks started and not yet finished. */
size_t hg_lua_task_count(hg_lua *rt);
/* Tasks that failed while nobody waited for them and whose error nobody has read since
 * (Lua-spawned tasks without :wait(); tasks with a done callback count as read). Their
 * messages are written to the process log when their task object is collected. */
size_t hg_lua_task_unobserved_failures(hg_lua *rt);

/* ---- The async bridge, for C functions that start an operation and suspend ----
 *
 *   static int l_sleep(lua_State *L) {
 *     ...check arguments...
 *     hg_lua_wait *w = hg_lua_wait_new(L, "hangar.timer.sleep");    raises if L cannot wait
 *     op->w = w; ...start the operation; on failure hg_lua_wait_discard(w) and report...
 *     return hg_lua_wait_yield(L, w, &sleep_ops, op);
 *   }
 *   completion (from a loop callback):  hg_lua_wait_done(op->w);
 *
 * Inside a task, hg_lua_wait_yield suspends the task; hg_lua_wait_done queues its
 * resumption, which runs from the loop (never inside the caller of hg_lua_wait_done), and
 * ops->push then pushes the results. Outside a task, in blocking mode, hg_lua_wait_yield
 * runs the loop until hg_lua_wait_done, then pushes the results and returns. */

typedef struct hg_lua_wait hg_lua_wait;

typedef struct hg_lua_wait_ops {
  /* Pushes the operation's results onto L and returns their number; may raise. NULL: none. */
  int (*push)(lua_State *L, void *data);
  /* The waiter is gone before completion (runtime closed): stop the operation, never call
   * hg_lua_wait_done for it, and free data once the operation no longer uses it. */
  void (*abandon)(void *data);
  /* After push (whether it returned or raised): free data. NULL: nothing to free. */
  void (*release)(void *data);
} hg_lua_wait_ops;

/* Prepares a wait for the calling C function. Raises a Lua error naming `what` when L may
 * not wait: outside a task while a loop callback runs, or outside a task without blocking
 * mode, or in a task resumed by something other than the runtime. */
hg_lua_wait *hg_lua_wait_new(lua_State *L, const char *what);
/* For a wait whose operation could not start: frees it. */
void hg_lua_wait_discard(hg_lua_wait *w);
/* Suspends until hg_lua_wait_done(w), then returns ops->push's results. Use as
 * `return hg_lua_wait_yield(...)`. ops must outlive the wait (a static struct). */
int hg_lua_wait_yield(lua_State *L, hg_lua_wait *w, const hg_lua_wait_ops *ops, void *data);
/* The operation completed; call once, from the loop. */
void hg_lua_wait_done(hg_lua_wait *w);

/* ---- Sinks in Lua ----
 * A sink object is a userdata standing for an hg_sink. process.spawn and http.request take
 * one for stdout/stderr/body, so bytes flow from the producer to the sink in C. Lua code
 * can also make one (hangar.sink.buffer) and write to any (sink:write). These calls push or
 * allocate: make them from a Lua C function or inside hg_lua_protect. */

/* Pushes an object for a sink the host owns (the same object each time for one sink). The
 * host calls hg_lua_sink_invalidate before the sink goes away, and only once no producer
 * started from Lua still writes to it (the processes and requests of the run have ended);
 * any later use of the object raises "sink is no longer valid". */
void hg_lua_push_sink(lua_State *L, hg_sink *sink);
void hg_lua_sink_invalidate(lua_State *L, hg_sink *sink);
/* The sink behind the object at idx; raises an argument error if it is not a sink or was
 * invalidated. */
hg_sink *hg_lua_check_sink(lua_State *L, int idx);

/* ---- JSON values <-> Lua values ----
 * The mapping of hangar.json (see src/lua/mod_json.c): JSON null is hangar.json.null,
 * arrays and objects carry marker metatables, integral numbers within 2^53 are integers.
 * For hosts that hand Lua a decoded document (a run) or persist a Lua table (a handle).
 * Both may raise: call them from a Lua C function or inside hg_lua_protect. */
typedef struct cJSON cJSON;
/* Pushes the Lua value for item; raises only on memory errors. */
void hg_lua_json_push(lua_State *L, const cJSON *item);
/* Builds a cJSON tree from the value at idx (the caller owns it); raises a Lua error naming
 * the path of a value JSON cannot hold ("cannot encode a function value at $.hooks.x"). */
cJSON *hg_lua_json_build(lua_State *L, int idx);
/* Pushes hangar.json.null. */
void hg_lua_json_push_null(lua_State *L);
