/* Tasks (coroutines resumed from the loop), the async bridge that suspends them on C
 * operations, and the hangar.task module. */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "lua/internal.h"

#define TASK_MT "hangar.task"

typedef enum { T_QUEUED, T_RUNNING, T_WAITING, T_DONE } task_state;

struct task_waiter;

struct hg_lua_task {
  hg_lua *rt;
  lua_State *co;
  task_state state;
  int started;
  int nargs;   /* arguments waiting on co's stack for the first resume */
  int queued;  /* in the ready list */
  int ok;
  int lost;    /* finished, but its results could not be stored (out of memory) */
  int unobserved; /* failed, and nobody has read the error yet */
  int ref;     /* registry anchor while unfinished */
  hg_lua_wait *wait;
  hg_lua_task *ready_next;
  hg_lua_task *prev, *next; /* the unfinished list */
  struct task_waiter *waiters;
  hg_lua_task_cb done;
  void *data;
};

struct hg_lua_wait {
  hg_lua *rt;
  hg_lua_task *task; /* NULL: a blocking wait */
  const hg_lua_wait_ops *ops;
  void *data;
  int done;
  int armed;
};

static hg_lua_task *current_task(lua_State *L) { return *(hg_lua_task **)lua_getextraspace(L); }

/* ---- the pump: resumes ready tasks from the loop ---- */

static void resume_task(hg_lua *rt, hg_lua_task *t);

static void on_pump(uv_idle_t *h) {
  hg_lua *rt = h->data;
  /* Only the tasks ready now: one that yields cooperatively runs again next iteration,
   * after the loop has polled for I/O. */
  hg_lua_task *list = rt->ready_head;
  rt->ready_head = rt->ready_tail = NULL;
  while (list) {
    hg_lua_task *t = list;
    list = t->ready_next;
    t->ready_next = NULL;
    t->queued = 0;
    resume_task(rt, t);
  }
  if (!rt->ready_head) uv_idle_stop(h);
}

static void schedule(hg_lua *rt, hg_lua_task *t) {
  if (t->queued || rt->closing) return;
  t->queued = 1;
  t->ready_next = NULL;
  if (rt->ready_tail)
    rt->ready_tail->ready_next = t;
  else
    rt->ready_head = t;
  rt->ready_tail = t;
  uv_idle_start(rt->pump, on_pump);
}

int hg_lua_pump_init(hg_lua *rt, hg_err *err) {
  rt->pump = malloc(sizeof *rt->pump);
  if (!rt->pump) return hg_err_set(err, HG_ENOMEM, "out of memory");
  int rc = uv_idle_init(&rt->loop->uv, rt->pump);
  if (rc) {
    free(rt->pump);
    rt->pump = NULL;
    return hg_err_set(err, rc, "cannot create the Lua task pump: %s", uv_strerror(rc));
  }
  rt->pump->data = rt;
  return 0;
}

static void free_handle(uv_handle_t *h) { free(h); }

void hg_lua_pump_close(hg_lua *rt) {
  if (!rt->pump) return;
  uv_idle_stop(rt->pump);
  uv_close((uv_handle_t *)rt->pump, free_handle);
  rt->pump = NULL;
}

/* ---- task objects ---- */

static void unlink_unfinished(hg_lua *rt, hg_lua_task *t) {
  if (t->prev)
    t->prev->next = t->next;
  else if (rt->unfinished == t)
    rt->unfinished = t->next;
  if (t->next) t->next->prev = t->prev;
  t->prev = t->next = NULL;
  rt->n_unfinished--;
}

static int task_gc(lua_State *L) {
  hg_lua_task *t = luaL_checkudata(L, 1, TASK_MT);
  if (t->state == T_DONE && t->unobserved) {
    const char *trace = "task results lost: not enough memory";
    if (lua_getiuservalue(L, 1, 2) == LUA_TTABLE && lua_getfield(L, -1, "trace") == LUA_TSTRING)
      trace = lua_tostring(L, -1);
    hg_log(HG_LOG_ERROR, "a Lua task failed and nobody waited for it", "error", trace, NULL);
    lua_settop(L, 1);
    t->unobserved = 0;
  }
  return 0;
}

static int task_tostring(lua_State *L) {
  hg_lua_task *t = luaL_checkudata(L, 1, TASK_MT);
  static const char *const names[] = {"queued", "running", "waiting", "done"};
  const char *state = t->state == T_DONE && !t->ok ? "failed" : names[t->state];
  lua_pushfstring(L, "hangar.task (%s): %p", state, (void *)t);
  return 1;
}

/* Creates a task for the function at index fidx and the arguments above it (all popped) and
 * pushes the task object. */
static hg_lua_task *task_create(lua_State *L, int fidx) {
  hg_lua *rt = hg_lua_from(L);
  int nargs = lua_gettop(L) - fidx;
  luaL_checktype(L, fidx, LUA_TFUNCTION);
  hg_lua_task *t = lua_newuserdatauv(L, sizeof *t, 2);
  memset(t, 0, sizeof *t);
  t->rt = rt;
  t->ref = LUA_NOREF;
  if (luaL_newmetatable(L, TASK_MT)) {
    lua_pushcfunction(L, task_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, task_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_getfield(L, LUA_REGISTRYINDEX, "hangar.task.methods");
    lua_setfield(L, -2, "__index");
  }
  lua_setmetatable(L, -2);
  lua_State *co = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  if (!lua_checkstack(co, nargs + 1)) luaL_error(L, "too many arguments for a task");
  lua_insert(L, fidx); /* the task object below the function */
  lua_xmove(L, co, nargs + 1);
  *(hg_lua_task **)lua_getextraspace(co) = t;
  t->co = co;
  t->nargs = nargs;
  lua_pushvalue(L, -1);
  t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->next = rt->unfinished;
  if (rt->unfinished) rt->unfinished->prev = t;
  rt->unfinished = t;
  rt->n_unfinished++;
  schedule(rt, t);
  return t;
}

struct start_args {
  hg_lua_task_cb done;
  void *data;
};

static int start_tramp(lua_State *L) {
  struct start_args *a = lua_touserdata(L, 1);
  hg_lua_task *t = task_create(L, 2);
  t->done = a->done;
  t->data = a->data;
  return 0;
}

int hg_lua_task_start(hg_lua *rt, int nargs, hg_lua_task_cb done, void *data, hg_err *err) {
  lua_State *L = rt->L;
  struct start_args a = {done, data};
  lua_pushcfunction(L, start_tramp);
  lua_insert(L, -(nargs + 2));
  lua_pushlightuserdata(L, &a);
  lua_insert(L, -(nargs + 2));
  int st = lua_pcall(L, nargs + 2, 0, 0);
  if (st != LUA_OK) {
    int rc = hg_err_set(err, hg_lua_status_code(rt, st), "cannot start a Lua task: %s",
                        lua_tostring(L, -1));
    lua_pop(L, 1);
    return rc;
  }
  return 0;
}

size_t hg_lua_task_count(hg_lua *rt) { return rt->n_unfinished; }
size_t hg_lua_task_unobserved_failures(hg_lua *rt) { return rt->unobserved_failures; }

/* ---- finishing ---- */

struct task_waiter {
  hg_lua_wait *w;
  hg_lua_task *target;
  int linked; /* in target->waiters */
  struct task_waiter *next;
};

struct finish_args {
  hg_lua_task *t;
  int status;
  int nres;
};

/* Stores a finished task's results (uservalue 2: a table {n=...} or the error text). */
static int finish_tramp(lua_State *L) {
  struct finish_args *a = lua_touserdata(L, 1);
  hg_lua_task *t = a->t;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  int obj = lua_gettop(L);
  if (a->status == LUA_OK) {
    luaL_checkstack(L, a->nres + 2, "too many results");
    lua_createtable(L, a->nres, 1);
    lua_xmove(t->co, L, a->nres);
    for (int i = a->nres; i >= 1; i--) lua_rawseti(L, obj + 1, i);
    lua_pushinteger(L, a->nres);
    lua_setfield(L, -2, "n");
  } else {
    /* Keep the error value itself (waiters re-raise it unchanged: error objects and their
     * "file:line:" survive) and, for logs and the host, its text with the task's traceback. */
    lua_createtable(L, 0, 2);
    lua_xmove(t->co, L, 1);
    if (lua_type(L, -1) == LUA_TSTRING && hg_lua_push_full_position(L, t->co, lua_tostring(L, -1), NULL))
      lua_replace(L, -2);
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_tolstring(L, -1, NULL);
    hg_lua_traceback(L, t->co, msg, 0);
    lua_setfield(L, obj + 1, "trace");
    lua_settop(L, obj + 2);
    lua_setfield(L, obj + 1, "error");
  }
  lua_setiuservalue(L, obj, 2);
  return 0;
}

/* Pushes the results of the finished task whose object is at obj; returns how many it
 * pushed and whether the task succeeded. A failed task pushes one value: its error value,
 * or with trace set the error's text and the task's traceback. */
static int push_results(lua_State *L, int obj, hg_lua_task *t, int trace, int *ok) {
  *ok = t->ok;
  if (t->lost) {
    *ok = 0;
    lua_pushliteral(L, "task results lost: not enough memory");
    return 1;
  }
  lua_getiuservalue(L, obj, 2);
  if (!t->ok) {
    lua_getfield(L, -1, trace ? "trace" : "error");
    lua_remove(L, -2);
    return 1;
  }
  int tbl = lua_gettop(L);
  lua_getfield(L, tbl, "n");
  int n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (int i = 1; i <= n; i++) lua_rawgeti(L, tbl, i);
  lua_remove(L, tbl);
  return n;
}

struct done_args {
  hg_lua_task *t;
};

static int done_tramp(lua_State *L) {
  struct done_args *a = lua_touserdata(L, 1);
  hg_lua_task *t = a->t;
  int ok;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  int obj = lua_gettop(L);
  int n = push_results(L, obj, t, 1, &ok);
  lua_remove(L, obj);
  t->done(t->rt, L, ok, n, t->data);
  return 0;
}

static void task_finish(hg_lua *rt, hg_lua_task *t, int status, int nres) {
  lua_State *L = rt->L;
  struct finish_args fa = {t, status, nres};
  lua_pushcfunction(L, finish_tramp);
  lua_pushlightuserdata(L, &fa);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    t->lost = 1;
    lua_pop(L, 1);
  }
  t->ok = status == LUA_OK && !t->lost;
  t->state = T_DONE;
  unlink_unfinished(rt, t);
  if (status != LUA_OK) lua_resetthread(t->co); /* runs pending __close handlers */
  lua_settop(t->co, 0);

  if (t->done) {
    struct done_args da = {t};
    lua_pushcfunction(L, done_tramp);
    lua_pushlightuserdata(L, &da);
    rt->cb_depth++;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      hg_log(HG_LOG_ERROR, "a Lua task's completion callback failed", "error",
             lua_tostring(L, -1), NULL);
      lua_pop(L, 1);
    }
    rt->cb_depth--;
  } else if (!t->ok && !t->waiters) {
    t->unobserved = 1;
    rt->unobserved_failures++;
  }
  struct task_waiter *wl = t->waiters;
  t->waiters = NULL;
  while (wl) {
    struct task_waiter *next = wl->next;
    wl->linked = 0;
    hg_lua_wait_done(wl->w);
    wl = next;
  }
  /* From here the object may be collected: t is not touched again. */
  int ref = t->ref;
  t->ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

static void resume_task(hg_lua *rt, hg_lua_task *t) {
  lua_State *co = t->co;
  int nargs = 0;
  if (!t->started) {
    t->started = 1;
    nargs = t->nargs;
  } else if (lua_status(co) != LUA_YIELD) {
    /* Someone resumed or closed the coroutine behind the runtime's back. */
    lua_settop(co, 0);
    lua_pushliteral(co, "task coroutine was resumed or closed outside the Hangar runtime");
    task_finish(rt, t, LUA_ERRRUN, 0);
    return;
  }
  hg_lua_wait *w = t->wait;
  t->state = T_RUNNING;
  rt->cb_depth++;
  hg_lua_budget saved;
  hg_lua_budget_begin(rt, co, &saved);
  int nres = 0;
  int st = lua_resume(co, rt->L, nargs, &nres);
  hg_lua_budget_end(rt, &saved);
  rt->cb_depth--;
  if (w) {
    /* The continuation ran at the start of the resume and pushed the results: done with
     * the wait, whatever happened after. */
    if (w->ops && w->ops->release) w->ops->release(w->data);
    free(w);
  }
  if (st == LUA_YIELD) {
    lua_pop(co, nres);
    if (t->wait) {
      t->state = T_WAITING;
    } else {
      /* A plain coroutine.yield(): let the other tasks run, then carry on. */
      t->state = T_QUEUED;
      schedule(rt, t);
    }
    return;
  }
  task_finish(rt, t, st, nres);
}

void hg_lua_tasks_abandon_all(hg_lua *rt) {
  rt->ready_head = rt->ready_tail = NULL;
  for (hg_lua_task *t = rt->unfinished; t; t = t->next) {
    t->queued = 0;
    hg_lua_wait *w = t->wait;
    t->wait = NULL;
    if (w) {
      if (w->ops && w->ops->abandon) w->ops->abandon(w->data);
      free(w);
    }
  }
}

/* ---- waits ---- */

hg_lua_wait *hg_lua_wait_new(lua_State *L, const char *what) {
  hg_lua *rt = hg_lua_from(L);
  hg_lua_task *t = current_task(L);
  if (t) {
    if (t->state != T_RUNNING || t->co != L)
      luaL_error(L, "%s: this task's coroutine was resumed outside the Hangar runtime", what);
    if (!lua_isyieldable(L))
      luaL_error(L, "%s: cannot suspend here (inside a C function such as table.sort, or a "
                    "__gc handler)", what);
  } else if (rt->cb_depth > 0 || rt->spinning) {
    luaL_error(L, "%s: called outside a task from inside a loop callback; run it in a task "
                  "(hangar.task.spawn)", what);
  } else if (!rt->blocking) {
    luaL_error(L, "%s: must be called inside a task (hangar.task.spawn)", what);
  }
  hg_lua_wait *w = calloc(1, sizeof *w);
  if (!w) luaL_error(L, "%s: out of memory", what);
  w->rt = rt;
  w->task = t;
  return w;
}

void hg_lua_wait_discard(hg_lua_wait *w) { free(w); }

void hg_lua_wait_done(hg_lua_wait *w) {
  w->done = 1;
  if (w->task && w->armed && w->task->wait == w) schedule(w->rt, w->task);
  /* A blocking wait turns the loop once at a time: done from a callback that ran before
   * that turn's poll (a due timer), it would leave the poll blocked with nothing to wake it. */
  else if (!w->task && w->rt->spinning) uv_stop(&w->rt->loop->uv);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  hg_lua_wait *w = (hg_lua_wait *)ctx;
  hg_lua_task *t = w->task;
  if (t->wait != w || !w->done || t->state != T_RUNNING) {
    /* Resumed by coroutine.resume instead of the runtime: give up the operation. */
    if (t->wait == w) t->wait = NULL;
    if (w->ops->abandon) w->ops->abandon(w->data);
    free(w);
    return luaL_error(L, "a Hangar task must not be resumed with coroutine.resume");
  }
  t->wait = NULL; /* resume_task releases w once this resume returns */
  return w->ops->push ? w->ops->push(L, w->data) : 0;
}

static int blocking_push(lua_State *L) {
  hg_lua_wait *w = lua_touserdata(L, 1);
  lua_pop(L, 1);
  return w->ops->push ? w->ops->push(L, w->data) : 0;
}

int hg_lua_wait_yield(lua_State *L, hg_lua_wait *w, const hg_lua_wait_ops *ops, void *data) {
  static const hg_lua_wait_ops none = {0};
  w->ops = ops ? ops : &none;
  w->data = data;
  w->armed = 1;
  hg_lua *rt = w->rt;
  if (w->task) {
    w->task->wait = w;
    if (w->done) schedule(rt, w->task);
    return lua_yieldk(L, 0, (lua_KContext)w, wait_k);
  }

  /* Blocking mode: drive the loop here; ready tasks run meanwhile. */
  rt->spinning++;
  while (!w->done)
    if (uv_run(&rt->loop->uv, UV_RUN_ONCE) == 0 && !w->done) break;
  rt->spinning--;
  /* Waiting is not running: the caller's budget starts afresh. */
  if (rt->deadline_ns) hg_lua_budget_begin(rt, L, &(hg_lua_budget){0});
  if (!w->done) {
    if (w->ops->abandon) w->ops->abandon(w->data);
    free(w);
    return luaL_error(L, "nothing left on the loop could complete this wait");
  }
  int base = lua_gettop(L);
  lua_pushcfunction(L, blocking_push);
  lua_pushlightuserdata(L, w);
  int st = lua_pcall(L, 1, LUA_MULTRET, 0);
  if (w->ops->release) w->ops->release(w->data);
  free(w);
  if (st != LUA_OK) return lua_error(L);
  return lua_gettop(L) - base;
}

/* ---- hangar.task ---- */

static int results_or_raise(lua_State *L, int obj, hg_lua_task *t) {
  int ok;
  if (t->unobserved) {
    t->unobserved = 0;
    t->rt->unobserved_failures--;
  }
  int n = push_results(L, obj, t, 0, &ok);
  if (!ok) return lua_error(L);
  return n;
}

/* The waiting call parked the target's object in the registry under the waiter's address. */
static int waiter_push(lua_State *L, void *data) {
  struct task_waiter *wt = data;
  lua_rawgetp(L, LUA_REGISTRYINDEX, wt);
  int obj = lua_gettop(L);
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, wt);
  int n = results_or_raise(L, obj, wt->target);
  lua_remove(L, obj);
  return n;
}

static void waiter_abandon(void *data) {
  struct task_waiter *wt = data;
  if (wt->linked) {
    struct task_waiter **pp = &wt->target->waiters;
    while (*pp && *pp != wt) pp = &(*pp)->next;
    if (*pp) *pp = wt->next;
  }
  free(wt);
}

static void waiter_release(void *data) { free(data); }

static const hg_lua_wait_ops waiter_ops = {waiter_push, waiter_abandon, waiter_release};

static int l_task_wait(lua_State *L) {
  hg_lua_task *t = luaL_checkudata(L, 1, TASK_MT);
  lua_settop(L, 1);
  if (t->state == T_DONE) {
    int n = results_or_raise(L, 1, t);
    lua_remove(L, 1);
    return n;
  }
  if (t->co == L) return luaL_error(L, "a task cannot wait for itself");
  hg_lua_wait *w = hg_lua_wait_new(L, "task:wait");
  struct task_waiter *wt = malloc(sizeof *wt);
  if (!wt) {
    hg_lua_wait_discard(w);
    return luaL_error(L, "task:wait: out of memory");
  }
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, wt);
  wt->w = w;
  wt->target = t;
  wt->linked = 1;
  wt->next = t->waiters;
  t->waiters = wt;
  return hg_lua_wait_yield(L, w, &waiter_ops, wt);
}

static int l_task_done(lua_State *L) {
  hg_lua_task *t = luaL_checkudata(L, 1, TASK_MT);
  lua_pushboolean(L, t->state == T_DONE);
  return 1;
}

static int l_spawn(lua_State *L) {
  task_create(L, 1);
  return 1;
}

static int l_current(lua_State *L) {
  hg_lua_task *t = current_task(L);
  if (!t || t->ref == LUA_NOREF) {
    lua_pushnil(L);
    return 1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  return 1;
}

/* Lets the other ready tasks run. Outside a task, in blocking mode, runs one loop iteration
 * without waiting. */
static int l_yield(lua_State *L) {
  hg_lua *rt = hg_lua_from(L);
  hg_lua_task *t = current_task(L);
  if (t) {
    if (t->state != T_RUNNING || t->co != L)
      return luaL_error(L, "hangar.task.yield: this task's coroutine was resumed outside the "
                           "Hangar runtime");
    return lua_yield(L, 0);
  }
  if (rt->cb_depth > 0 || rt->spinning || !rt->blocking) return 0;
  rt->spinning++;
  uv_run(&rt->loop->uv, UV_RUN_NOWAIT);
  rt->spinning--;
  return 0;
}

int hg_lua_open_task(lua_State *L) {
  static const luaL_Reg methods[] = {{"wait", l_task_wait}, {"done", l_task_done}, {NULL, NULL}};
  luaL_newlib(L, methods);
  lua_setfield(L, LUA_REGISTRYINDEX, "hangar.task.methods");
  static const luaL_Reg funcs[] = {
      {"spawn", l_spawn}, {"current", l_current}, {"yield", l_yield}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
