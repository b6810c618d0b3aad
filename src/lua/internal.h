/* Private to src/lua: the runtime's state, shared by its files, and the module openers. */
#pragma once

#include <lauxlib.h>
#include <lua.h>
#include <pthread.h>
#include <uv.h>

#include "lua/runtime.h"

typedef struct hg_lua_task hg_lua_task;

struct hg_lua {
  lua_State *L;
  hg_loop *loop;
  hg_lua_mode mode;
  int blocking;

  /* Allocator accounting (the allocator's user data is this struct). */
  size_t mem_used;
  size_t mem_limit;

  /* CPU budget: the hook raises once the thread's CPU clock passes deadline_ns. */
  int64_t cpu_budget_ns;
  int64_t deadline_ns;   /* 0: nothing is being timed */
  int64_t begun_wall_ns;    /* not 0: deadline_ns is not known yet; the entry began then */
  int64_t begun_cpu_ref_ns; /* a reading of the CPU clock from before the entry began */
  int64_t cpu_ref_ns;       /* the latest reading of the CPU clock ... */
  int64_t cpu_ref_wall_ns;  /* ... taken at this monotonic time, by this thread */
  pthread_t cpu_ref_thread;
  int cpu_ref_set;
  int cpu_exceeded;

  /* Loop callbacks currently calling into Lua, and whether a blocking wait spins the loop. */
  int cb_depth;
  int spinning;

  /* Tasks: those ready to resume (FIFO), every unfinished one, and the pump that resumes
   * ready tasks from the loop (a uv_idle, so the loop does not sleep while any is ready). */
  hg_lua_task *ready_head, *ready_tail;
  hg_lua_task *unfinished;
  size_t n_unfinished;
  size_t unobserved_failures;
  uv_idle_t *pump;

  hg_http *http;
  int own_http;
  int closing;
};

/* Registry keys (addresses of these are unique light userdata keys). */
extern const char hg_lua_key_roots;  /* table: the require roots, in order */
extern const char hg_lua_key_sinks;  /* weak-valued table: hg_sink* -> sink object */

/* Task internals used by runtime.c. */
void hg_lua_tasks_abandon_all(hg_lua *rt);
int hg_lua_pump_init(hg_lua *rt, hg_err *err);
void hg_lua_pump_close(hg_lua *rt);

/* CPU budget bracket around any entry into Lua from C. */
typedef struct {
  int64_t deadline_ns;
  int64_t begun_wall_ns;
  int64_t begun_cpu_ref_ns;
  int cpu_exceeded;
} hg_lua_budget;
void hg_lua_budget_begin(hg_lua *rt, lua_State *L, hg_lua_budget *saved);
void hg_lua_budget_end(hg_lua *rt, hg_lua_budget *saved);
/* The message handler that appends a traceback (for lua_pcall). */
int hg_lua_msgh(lua_State *L);
/* Lua keeps only the last ~56 characters of a file's name in an error's "file:line:", behind
 * "...". When msg starts so and path, or the file of a function running in co, ends with what
 * is left, pushes msg with the whole name and returns 1; otherwise pushes nothing, returns 0. */
int hg_lua_push_full_position(lua_State *L, lua_State *co, const char *msg, const char *path);
/* luaL_traceback of co from level, with msg first, and every file name Lua shortened to
 * "...tail" in its lines written out whole. Pushes the text. */
void hg_lua_traceback(lua_State *L, lua_State *co, const char *msg, int level);
/* Turns a status of lua_pcall/lua_resume into an hg_err code. */
int hg_lua_status_code(hg_lua *rt, int status);

/* A userdata that frees a C pointer when collected: lets a C function hold malloc'd memory
 * across calls that may raise, without leaking it. Returns the slot to store the pointer in;
 * the box is pushed. */
void **hg_lua_box_new(lua_State *L, void (*release)(void *));
/* Releases the boxed pointer now (box at idx) and empties the box. */
void hg_lua_box_release(lua_State *L, int idx);

/* Module openers: each pushes its module table. */
int hg_lua_open_task(lua_State *L);
int hg_lua_open_sink(lua_State *L);
int hg_lua_open_json(lua_State *L);
int hg_lua_open_yaml(lua_State *L);
int hg_lua_open_log(lua_State *L);
int hg_lua_open_timer(lua_State *L);
int hg_lua_open_crypto(lua_State *L);
int hg_lua_open_http(lua_State *L);
int hg_lua_open_process(lua_State *L);

/* A sink that forwards to another until detached: what a Lua binding hands a producer, so
 * that a producer still running after its Lua caller went away (runtime closed) writes into
 * nothing instead of into freed memory. Backpressure passes through both ways. The guard
 * must stay allocated until the producer is done with it. */
typedef struct {
  hg_sink sink;    /* give this to the producer */
  hg_sink *target; /* NULL once detached */
} hg_lua_sink_guard;
void hg_lua_sink_guard_init(hg_lua_sink_guard *g, hg_sink *target);
void hg_lua_sink_guard_detach(hg_lua_sink_guard *g);

/* The sink behind the value at idx: 0 and *out, 1 when it is not a sink object, 2 when the
 * object was invalidated. Never raises. */
int hg_lua_sink_at(lua_State *L, int idx, hg_sink **out);

/* The runtime's HTTP client, created on first use. NULL (and err set) on failure. */
hg_http *hg_lua_http_client(hg_lua *rt, hg_err *err);
