/* Lua binding of a run's log: sinks for producers, ctx:write, secrets, outputs, the finish
 * that suspends until the hub has everything; and hangar.pipeline for scripts and tests. */
#include "agent/l_runlog.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/log.h"
#include "pipeline/redact.h"
#include "lua/runtime.h"

#define RUNLOG_MT "hangar.runlog"
#define ENV_MT "hangar.runlog.env"
#define PIPELINE_MT "hangar.pipeline"

typedef struct finish_op finish_op;

typedef struct lrunlog {
  hg_runlog *rl; /* NULL once closed or finished */
  hg_uploader_run *ur;
  finish_op *op; /* a finish in progress */
  /* What the object still answers once its log is gone. */
  uint64_t count, acked;
  char *outputs;
  bool finished;
} lrunlog;

struct finish_op {
  lrunlog *lr; /* NULL once the object let go of its log meanwhile */
  hg_lua_wait *w;
  bool abandoned;
  int rc;
  char hub_status[32];
  char message[512];
};

/* ---- letting go of the log ---- */

static void keep_answers(lrunlog *lr) {
  lr->count = hg_runlog_count(lr->rl);
  lr->acked = hg_uploader_run_acked(lr->ur);
  free(lr->outputs);
  lr->outputs = cJSON_PrintUnformatted(hg_runlog_outputs(lr->rl));
}

/* Invalidates the sinks, leaves the uploader, and closes the log (the spool stays for a later
 * reopen) or deletes it (the run's upload is over). */
static void release_log(lua_State *L, lrunlog *lr, bool delete_spool) {
  if (!lr->rl) return;
  keep_answers(lr);
  hg_lua_sink_invalidate(L, hg_runlog_sink(lr->rl, HG_RUNLOG_STDOUT));
  hg_lua_sink_invalidate(L, hg_runlog_sink(lr->rl, HG_RUNLOG_STDERR));
  hg_uploader_remove(lr->ur);
  hg_err err = {0};
  int rc = delete_spool ? hg_runlog_delete(lr->rl, &err) : hg_runlog_close(lr->rl, &err);
  if (rc) hg_log(HG_LOG_WARN, "run log: closing the spool failed", "error", err.msg, NULL);
  lr->rl = NULL;
  lr->ur = NULL;
}

/* A finish still in progress when the object lets go: its waiter gets an error. */
static void cut_finish(lrunlog *lr) {
  finish_op *op = lr->op;
  if (!op) return;
  lr->op = NULL;
  op->lr = NULL;
  if (op->abandoned) {
    free(op);
    return;
  }
  op->rc = HG_ECANCELED;
  snprintf(op->message, sizeof op->message,
           "the run log was closed before the hub acknowledged the finish");
  hg_lua_wait_done(op->w);
}

static lrunlog *check_rl(lua_State *L) {
  return luaL_checkudata(L, 1, RUNLOG_MT);
}

static lrunlog *open_rl(lua_State *L) {
  lrunlog *lr = check_rl(L);
  if (!lr->rl) luaL_error(L, "the run log is %s", lr->finished ? "finished" : "closed");
  return lr;
}

static int l_close(lua_State *L) {
  lrunlog *lr = check_rl(L);
  cut_finish(lr);
  release_log(L, lr, false);
  return 0;
}

static int l_gc(lua_State *L) {
  l_close(L);
  lrunlog *lr = check_rl(L);
  free(lr->outputs);
  lr->outputs = NULL;
  return 0;
}

/* ---- methods ---- */

static hg_runlog_stream check_stream(lua_State *L, int idx) {
  const char *name = luaL_checkstring(L, idx);
  if (!strcmp(name, "stdout")) return HG_RUNLOG_STDOUT;
  if (!strcmp(name, "stderr")) return HG_RUNLOG_STDERR;
  luaL_argerror(L, idx, lua_pushfstring(L, "stream must be \"stdout\" or \"stderr\", not \"%s\"", name));
  return HG_RUNLOG_STDOUT;
}

static int fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

/* rl:write(stream, text [, ts_ms]) */
static int l_write(lua_State *L) {
  lrunlog *lr = open_rl(L);
  hg_runlog_stream s = check_stream(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  lua_Integer ts = luaL_optinteger(L, 4, 0);
  hg_err err = {0};
  int rc = hg_runlog_write(lr->rl, s, text, len, (int64_t)ts, &err);
  if (rc < 0) return fail(L, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_system(lua_State *L) {
  lrunlog *lr = open_rl(L);
  const char *text = luaL_checkstring(L, 2);
  hg_err err = {0};
  if (hg_runlog_system(lr->rl, text, &err) < 0) return fail(L, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* rl:add_secret(value, name) -> true | false (too short or over a limit: warned in the log) */
static int l_add_secret(lua_State *L) {
  lrunlog *lr = open_rl(L);
  size_t len;
  const char *value = luaL_checklstring(L, 2, &len);
  const char *name = luaL_optstring(L, 3, NULL);
  hg_err err = {0};
  int rc = hg_runlog_add_secret(lr->rl, value, len, name, &err);
  if (rc == HG_ENOMEM) return luaL_error(L, "%s", err.msg);
  if (rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  /* Too short to mask (the log already says so): false. A value the redactor cannot hold
   * (too long, too many): nil, so the caller can refuse to run what it could not mask. */
  if (rc == HG_REDACT_TOO_SHORT)
    lua_pushboolean(L, 0);
  else
    lua_pushnil(L);
  lua_pushstring(L, err.msg);
  return 2;
}

static int l_outputs(lua_State *L) {
  lrunlog *lr = check_rl(L);
  if (!lr->rl) {
    lua_pushstring(L, lr->outputs ? lr->outputs : "null");
    return 1;
  }
  const cJSON *doc = hg_runlog_outputs(lr->rl);
  if (!doc) {
    lua_pushliteral(L, "null"); /* a run's outputs start as null */
    return 1;
  }
  char *text = cJSON_PrintUnformatted(doc);
  if (!text) return luaL_error(L, "rl:outputs: out of memory");
  lua_pushstring(L, text);
  free(text);
  return 1;
}

static int l_count(lua_State *L) {
  lrunlog *lr = check_rl(L);
  lua_pushinteger(L, (lua_Integer)(lr->rl ? hg_runlog_count(lr->rl) : lr->count));
  return 1;
}

/* rl:complete(): the run's output is complete: its last lines are stored and every event is
 * on disk. true, or nil and the sync's error (the events are stored all the same). Whatever
 * is persisted as the run's result must come after this, or a restart could finish the run
 * with output that never reached the spool. */
static int l_complete(lua_State *L) {
  lrunlog *lr = open_rl(L);
  hg_err err = {0};
  if (hg_runlog_end(lr->rl, &err)) return fail(L, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_lines(lua_State *L) {
  lrunlog *lr = open_rl(L);
  lua_pushinteger(L, (lua_Integer)hg_runlog_lines(lr->rl, check_stream(L, 2)));
  return 1;
}

static int l_acked(lua_State *L) {
  lrunlog *lr = check_rl(L);
  lua_pushinteger(L, (lua_Integer)(lr->rl ? hg_uploader_run_acked(lr->ur) : lr->acked));
  return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L) {
  lrunlog *lr = open_rl(L);
  hg_runlog_stats st;
  hg_runlog_stats_get(lr->rl, &st);
  lua_createtable(L, 0, 8);
  set_int(L, "events", st.events);
  set_int(L, "durable", st.durable);
  set_int(L, "acked", hg_uploader_run_acked(lr->ur));
  set_int(L, "log_bytes", st.log_bytes);
  set_int(L, "dropped_lines", st.dropped_lines);
  lua_pushboolean(L, st.truncated);
  lua_setfield(L, -2, "truncated");
  lua_pushboolean(L, st.paused);
  lua_setfield(L, -2, "paused");
  const char *hub = hg_uploader_run_hub_status(lr->ur);
  if (hub) {
    lua_pushstring(L, hub);
    lua_setfield(L, -2, "hub_status");
  }
  return 1;
}

/* ---- finish ---- */

static void on_finished(hg_uploader_run *ur, const hg_uploader_result *res, void *data) {
  (void)ur;
  finish_op *op = data;
  op->rc = res->rc;
  snprintf(op->hub_status, sizeof op->hub_status, "%s", res->hub_status ? res->hub_status : "");
  snprintf(op->message, sizeof op->message, "%s", res->message ? res->message : "");
  hg_lua_wait_done(op->w);
}

/* In the waiting task, once the uploader answered: the upload is over, so the spool goes. */
static int finish_push(lua_State *L, void *data) {
  finish_op *op = data;
  lrunlog *lr = op->lr;
  if (lr) {
    lr->op = NULL;
    op->lr = NULL;
    lr->finished = true;
    release_log(L, lr, true);
  }
  if (op->rc == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushstring(L, op->message[0] ? op->message : "the hub refused the finish");
  if (op->rc == HG_EPERM && op->hub_status[0]) {
    lua_pushstring(L, op->hub_status);
    return 3;
  }
  return 2;
}

static void finish_abandon(void *data) {
  finish_op *op = data;
  /* The runtime is closing: the object's collection ends the upload and frees op. */
  op->abandoned = true;
  if (!op->lr) free(op);
}

static void finish_release(void *data) {
  finish_op *op = data;
  if (op->lr) op->lr->op = NULL;
  free(op);
}

static const hg_lua_wait_ops finish_ops = {finish_push, finish_abandon, finish_release};

/* rl:finish{status =, exit_code =, error =} */
static int l_finish(lua_State *L) {
  lrunlog *lr = open_rl(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  if (lr->op) return luaL_error(L, "rl:finish: a finish is already in progress");
  lua_getfield(L, 2, "status");
  const char *status = luaL_optstring(L, -1, NULL);
  if (!status) return luaL_argerror(L, 2, "status is required");
  lua_getfield(L, 2, "exit_code");
  int has_exit = !lua_isnil(L, -1);
  lua_Integer exit_code = has_exit ? luaL_checkinteger(L, -1) : 0;
  lua_getfield(L, 2, "error");
  const char *error = luaL_optstring(L, -1, NULL);
  hg_lua_wait *w = hg_lua_wait_new(L, "rl:finish");
  finish_op *op = calloc(1, sizeof *op);
  if (!op) {
    hg_lua_wait_discard(w);
    return luaL_error(L, "rl:finish: out of memory");
  }
  op->lr = lr;
  op->w = w;
  hg_uploader_finish_opts fo = {
      .status = status, .has_exit_code = has_exit, .exit_code = (int64_t)exit_code, .error = error};
  hg_err err = {0};
  if (hg_uploader_finish(lr->ur, &fo, on_finished, op, &err)) {
    hg_lua_wait_discard(w);
    free(op);
    if (err.code == HG_EINVAL) return luaL_argerror(L, 2, err.msg);
    return fail(L, err.msg);
  }
  lr->op = op;
  return hg_lua_wait_yield(L, w, &finish_ops, op);
}

/* ---- the object ---- */

static int l_index(lua_State *L) {
  lrunlog *lr = check_rl(L);
  const char *key = luaL_checkstring(L, 2);
  if (!strcmp(key, "stdout") || !strcmp(key, "stderr")) {
    if (!lr->rl) luaL_error(L, "rl.%s: the run log is %s", key, lr->finished ? "finished" : "closed");
    hg_lua_push_sink(L, hg_runlog_sink(lr->rl, key[3] == 'o' ? HG_RUNLOG_STDOUT : HG_RUNLOG_STDERR));
    return 1;
  }
  luaL_getmetafield(L, 1, "methods");
  lua_getfield(L, -1, key);
  return 1;
}

static int l_tostring(lua_State *L) {
  lrunlog *lr = check_rl(L);
  if (lr->rl)
    lua_pushfstring(L, "hangar.runlog (%s)", hg_runlog_run_id(lr->rl));
  else
    lua_pushfstring(L, "hangar.runlog (%s)", lr->finished ? "finished" : "closed");
  return 1;
}

static void push_metatable(lua_State *L) {
  if (luaL_newmetatable(L, RUNLOG_MT)) {
    static const luaL_Reg methods[] = {
        {"write", l_write},   {"system", l_system}, {"add_secret", l_add_secret},
        {"outputs", l_outputs}, {"count", l_count}, {"lines", l_lines}, {"acked", l_acked},
        {"complete", l_complete},
        {"stats", l_stats},   {"finish", l_finish}, {"close", l_close},
        {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "methods");
    lua_pushcfunction(L, l_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "hangar.runlog");
    lua_setfield(L, -2, "__name");
  }
}

int hg_l_runlog_push_new(lua_State *L, hg_uploader *up, const hg_runlog_opts *o) {
  /* The object exists (closed) before the log does, so nothing leaks if this raises. */
  lrunlog *lr = lua_newuserdatauv(L, sizeof *lr, 1);
  memset(lr, 0, sizeof *lr);
  push_metatable(L);
  lua_setmetatable(L, -2);
  hg_err err = {0};
  hg_runlog *rl;
  if (hg_runlog_open(&rl, o, &err)) {
    lua_pop(L, 1);
    return fail(L, err.msg);
  }
  hg_uploader_run *ur;
  if (hg_uploader_add(up, rl, &ur, &err)) {
    hg_err ignored;
    hg_runlog_close(rl, &ignored);
    lua_pop(L, 1);
    return fail(L, err.msg);
  }
  lr->rl = rl;
  lr->ur = ur;
  return 1;
}

/* ---- core.runlog ---- */

typedef struct lenv {
  hg_uploader *up;
  hg_runlog_group *group;
  char *spool_dir;
  bool dir_made; /* spool_dir exists: not asked again for every run */
  uint64_t max_log;
} lenv;

static int env_gc(lua_State *L) {
  lenv *e = luaL_checkudata(L, 1, ENV_MT);
  free(e->spool_dir);
  e->spool_dir = NULL;
  return 0;
}

static bool valid_run_id(const char *id, size_t len) {
  if (len < 1 || len > 64) return false;
  for (size_t i = 0; i < len; i++) {
    char c = id[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return false;
  }
  return true;
}

/* Opens run_id's log in dir with the given uploader, group and limit; pushes as push_new.
 * *dir_made: dir was created (or found) already. */
static int open_in_dir(lua_State *L, hg_uploader *up, hg_runlog_group *g, const char *dir,
                       bool *dir_made, uint64_t max_log, int64_t sync_ms, int idx) {
  size_t len;
  const char *run_id = luaL_checklstring(L, idx, &len);
  if (!valid_run_id(run_id, len))
    return luaL_argerror(L, idx, "a run id is 1 to 64 characters of A-Z a-z 0-9 _ -");
  if (!*dir_made && mkdir(dir, 0700) && errno != EEXIST) {
    lua_pushnil(L);
    lua_pushfstring(L, "spool directory %s: %s", dir, strerror(errno));
    return 2;
  }
  *dir_made = true;
  lua_pushfstring(L, "%s/%s.spool", dir, run_id);
  hg_runlog_opts o = {.group = g, .run_id = run_id, .spool_path = lua_tostring(L, -1),
                      .max_log_bytes = max_log, .sync_ms = sync_ms};
  int n = hg_l_runlog_push_new(L, up, &o);
  lua_remove(L, -1 - n); /* the path */
  return n;
}

static int l_core_runlog(lua_State *L) {
  lenv *e = luaL_checkudata(L, lua_upvalueindex(1), ENV_MT);
  return open_in_dir(L, e->up, e->group, e->spool_dir, &e->dir_made, e->max_log, 0, 1);
}

void hg_l_runlog_register(lua_State *L, int idx, const hg_l_runlog_env *env) {
  idx = lua_absindex(L, idx);
  lenv *e = lua_newuserdatauv(L, sizeof *e, 0);
  memset(e, 0, sizeof *e);
  if (luaL_newmetatable(L, ENV_MT)) {
    lua_pushcfunction(L, env_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  e->up = env->up;
  e->group = env->group;
  e->max_log = env->max_log_bytes;
  e->spool_dir = strdup(env->spool_dir ? env->spool_dir : ".");
  if (!e->spool_dir) luaL_error(L, "out of memory");
  lua_pushcclosure(L, l_core_runlog, 1);
  lua_setfield(L, idx, "runlog");
}

/* ---- hangar.pipeline ---- */

typedef struct lpipeline {
  hg_uploader *up;
  hg_runlog_group *g;
  char *spool_dir;
  bool dir_made; /* as in lenv */
  uint64_t max_log;
  int64_t sync_ms;
  lua_State *L;     /* the main state, for the cancels table */
  int cancels_ref;  /* registry ref of the list of cancelled run ids */
  lua_Integer unauthorized;
} lpipeline;

static void p_on_unauthorized(void *ud) {
  ((lpipeline *)ud)->unauthorized++;
}

/* From the loop: appends to a plain table, which cannot raise but for memory. */
static int p_add_cancel(lua_State *L) {
  lpipeline *p = lua_touserdata(L, 1);
  const char *run_id = lua_touserdata(L, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->cancels_ref);
  lua_pushstring(L, run_id);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

static void p_on_cancel(void *ud, const char *run_id) {
  lpipeline *p = ud;
  lua_State *L = p->L;
  int top = lua_gettop(L);
  lua_pushcfunction(L, p_add_cancel);
  lua_pushlightuserdata(L, p);
  lua_pushlightuserdata(L, (void *)run_id);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK)
    hg_log(HG_LOG_WARN, "hangar.pipeline: could not note a cancel", "run", run_id, NULL);
  lua_settop(L, top);
}

static lpipeline *check_p(lua_State *L) {
  lpipeline *p = luaL_checkudata(L, 1, PIPELINE_MT);
  if (!p->up) luaL_error(L, "the pipeline is closed");
  return p;
}

static const char *opt_string_field(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = lua_isnil(L, -1) ? NULL : luaL_checkstring(L, -1);
  lua_pop(L, 1); /* the table keeps it alive */
  return s;
}

static lua_Integer opt_int_field(lua_State *L, int t, const char *k, lua_Integer def) {
  lua_getfield(L, t, k);
  lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

static void p_free(lpipeline *p) {
  hg_uploader_free(p->up);
  hg_runlog_group_free(p->g);
  free(p->spool_dir);
  p->up = NULL;
  p->g = NULL;
  p->spool_dir = NULL;
}

static int p_gc(lua_State *L) {
  lpipeline *p = luaL_checkudata(L, 1, PIPELINE_MT);
  /* Its run logs hold it (uservalue), so they were collected or closed first. */
  p_free(p);
  if (p->cancels_ref != LUA_NOREF) {
    luaL_unref(L, LUA_REGISTRYINDEX, p->cancels_ref);
    p->cancels_ref = LUA_NOREF;
  }
  return 0;
}

/* pipeline.new{...} */
static int l_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *url = opt_string_field(L, 1, "url");
  const char *token = opt_string_field(L, 1, "token");
  const char *dir = opt_string_field(L, 1, "spool_dir");
  if (!url) return luaL_argerror(L, 1, "url is required");
  if (!dir) return luaL_argerror(L, 1, "spool_dir is required");
  lpipeline *p = lua_newuserdatauv(L, sizeof *p, 0);
  memset(p, 0, sizeof *p);
  p->cancels_ref = LUA_NOREF;
  luaL_setmetatable(L, PIPELINE_MT);
  lua_newtable(L);
  p->cancels_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  p->L = hg_lua_state(hg_lua_from(L));
  p->max_log = (uint64_t)opt_int_field(L, 1, "max_run_log_mb", 0) << 20;
  p->sync_ms = opt_int_field(L, 1, "sync_ms", 0);
  if (!(p->spool_dir = strdup(dir))) return luaL_error(L, "out of memory");
  hg_err err = {0};
  hg_loop *loop = hg_lua_loop(hg_lua_from(L));
  if (hg_runlog_group_new(&p->g, loop, (uint64_t)opt_int_field(L, 1, "budget_mb", 0) << 20, &err))
    return fail(L, err.msg);
  hg_uploader_config cfg = {
      .loop = loop,
      .url = url, /* with an HTTP client of its own */
      .tls = {opt_string_field(L, 1, "ca_file"), opt_string_field(L, 1, "cert_file"),
              opt_string_field(L, 1, "key_file")},
      .max_batch_bytes = (size_t)opt_int_field(L, 1, "max_batch_bytes", 0),
      .backoff_base_ms = opt_int_field(L, 1, "backoff_base_ms", 0),
      .backoff_cap_ms = opt_int_field(L, 1, "backoff_cap_ms", 0),
      .on_unauthorized = p_on_unauthorized,
      .on_cancel = p_on_cancel,
      .ud = p,
  };
  if (hg_uploader_new(&p->up, &cfg, &err)) {
    p_free(p);
    return fail(L, err.msg);
  }
  if (token && hg_uploader_set_session(p->up, token, cfg.max_batch_bytes, &err)) {
    p_free(p);
    return fail(L, err.msg);
  }
  return 1;
}

static int p_runlog(lua_State *L) {
  lpipeline *p = check_p(L);
  int n = open_in_dir(L, p->up, p->g, p->spool_dir, &p->dir_made, p->max_log, p->sync_ms, 2);
  if (n == 1) {
    /* The log keeps its pipeline alive. */
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
  }
  return n;
}

static int p_set_session(lua_State *L) {
  lpipeline *p = check_p(L);
  const char *token = luaL_checkstring(L, 2);
  lua_Integer max_batch = luaL_optinteger(L, 3, 0);
  hg_err err = {0};
  if (hg_uploader_set_session(p->up, token, max_batch > 0 ? (size_t)max_batch : 0, &err))
    return luaL_error(L, "%s", err.msg);
  return 0;
}

static int p_stats(lua_State *L) {
  lpipeline *p = check_p(L);
  hg_uploader_stats st;
  hg_uploader_stats_get(p->up, &st);
  lua_createtable(L, 0, 9);
  set_int(L, "runs", st.runs);
  set_int(L, "unacked", st.unacked);
  set_int(L, "acked", st.acked);
  set_int(L, "requests", st.requests);
  set_int(L, "retries", st.retries);
  set_int(L, "reconnects", st.reconnects);
  set_int(L, "bytes", st.bytes);
  lua_pushinteger(L, p->unauthorized);
  lua_setfield(L, -2, "unauthorized");
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->cancels_ref);
  lua_setfield(L, -2, "cancels");
  return 1;
}

static int p_close(lua_State *L) {
  lpipeline *p = luaL_checkudata(L, 1, PIPELINE_MT);
  if (!p->up) return 0;
  hg_uploader_stats st;
  hg_uploader_stats_get(p->up, &st);
  if (st.runs) return luaL_error(L, "pipeline:close: %d run log(s) still open", (int)st.runs);
  p_free(p);
  return 0;
}

int hg_l_pipeline_open(lua_State *L) {
  if (luaL_newmetatable(L, PIPELINE_MT)) {
    static const luaL_Reg methods[] = {{"runlog", p_runlog}, {"set_session", p_set_session},
                                       {"stats", p_stats},   {"close", p_close},
                                       {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, p_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"new", l_new}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
