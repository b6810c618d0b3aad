/* `hangar agent`: reads the configuration and the API key, then runs the agent's Lua
 * (lua/hangar/agent/main.lua) on the loop until it decides to exit. */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "agent/agentcore.h"
#include "agent/agentfs.h"
#include "agent/agentkey.h"
#include "agent/health.h"
#include "agent/l_runlog.h"
#include "agent/plugin_abi.h"
#include "cmds.h"
#include "core/buf.h"
#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/module.h"
#include "lua/config.h"
#include "lua/runtime.h"
#include "pipeline/uploader.h"

#define LUA_MEM_LIMIT ((size_t)256 << 20)
#define LUA_CPU_BUDGET_MS 5000

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

static void usage(FILE *out) {
  fprintf(out,
          "usage: hangar agent --config FILE [--env NAME] [--check]\n\n"
          "The agent: dials out to the hub, takes runs, launches them through scheduler backends\n"
          "(a local process by default) and streams their logs and outputs back.\n\n"
          "  --config FILE   a Lua configuration file (see examples/agent.lua)\n"
          "  --env NAME      merge the file's environments[NAME] (default $HANGAR_ENV)\n"
          "  --check         validate the configuration (and that the API key can be read),\n"
          "                  then exit\n\n"
          "HANGAR_<KEY> environment variables override single keys (HANGAR_CAPACITY=4,\n"
          "HANGAR_HUB__URL=https://...).\n\n"
          "Signals: the first SIGTERM or SIGINT drains (no new runs; running runs finish; the\n"
          "agent deregisters and exits 0); a second one cancels the running runs (each gets its\n"
          "grace period); a third exits at once, leaving the state directory for a restart to\n"
          "pick up. SIGHUP reloads the configuration without dropping runs.\n\n"
          "Exit status: 0 stopped cleanly, 1 error, 2 wrong usage or invalid configuration,\n"
          "3 the hub refused the API key (revoked).\n");
}

typedef struct {
  const char *config;
  const char *env;
  bool check;
} agent_args;

static int parse_args(int argc, char **argv, agent_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char **slot = NULL;
    const char *name = NULL;
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout);
      return -1;
    } else if (!strcmp(arg, "--check")) {
      a->check = true;
      continue;
    } else if (!strncmp(arg, "--config", 8)) {
      slot = &a->config, name = "--config";
    } else if (!strncmp(arg, "--env", 5)) {
      slot = &a->env, name = "--env";
    }
    size_t n = name ? strlen(name) : 0;
    if (slot && arg[n] == '=') {
      *slot = arg + n + 1;
    } else if (slot && arg[n] == '\0') {
      if (i + 1 >= argc) {
        fprintf(stderr, "hangar agent: %s needs a value\n", name);
        return EXIT_USAGE;
      }
      *slot = argv[++i];
    } else {
      fprintf(stderr, "hangar agent: unknown option '%s' (see 'hangar agent --help')\n", arg);
      return EXIT_USAGE;
    }
  }
  if (!a->config) {
    fprintf(stderr, "hangar agent: --config FILE is required (see 'hangar agent --help')\n");
    return EXIT_USAGE;
  }
  return 0;
}

/* Settings C needs before Lua runs; strings are the caller's to free. */
typedef struct {
  char *url, *key_file, *key_env, *ca_file, *cert_file, *cert_key_file, *state_dir, *log_level;
  int64_t key_fd;
  int64_t retry_base_ms, retry_cap_ms;
  int64_t spool_budget_mb, max_run_log_mb;
  char *health_listen;
  int health_allow_remote;
  bool has_key_fd;
  char **plugin_dirs;
} agent_settings;

static void settings_free(agent_settings *s) {
  free(s->url);
  free(s->key_file);
  free(s->key_env);
  free(s->ca_file);
  free(s->cert_file);
  free(s->cert_key_file);
  free(s->state_dir);
  free(s->log_level);
  free(s->health_listen);
  hg_lua_config_strings_free(s->plugin_dirs);
}

static int opt_string(hg_lua_config *cfg, const char *key, char **out, hg_err *err) {
  int rc = hg_lua_config_string(cfg, key, out, err);
  return rc == HG_ENOENT ? 0 : rc;
}

static int read_settings(hg_lua_config *cfg, agent_settings *s, hg_err *err) {
  int rc = hg_lua_config_string(cfg, "hub.url", &s->url, err);
  if (!rc) rc = opt_string(cfg, "hub.key_file", &s->key_file, err);
  if (!rc) rc = opt_string(cfg, "hub.key_env", &s->key_env, err);
  if (!rc) rc = opt_string(cfg, "hub.ca_file", &s->ca_file, err);
  if (!rc) rc = opt_string(cfg, "hub.cert_file", &s->cert_file, err);
  if (!rc) rc = opt_string(cfg, "hub.cert_key_file", &s->cert_key_file, err);
  if (!rc) rc = hg_lua_config_string(cfg, "state_dir", &s->state_dir, err);
  if (!rc) rc = opt_string(cfg, "log_level", &s->log_level, err);
  if (!rc) {
    rc = hg_lua_config_int(cfg, "hub.key_fd", &s->key_fd, err);
    s->has_key_fd = rc == 0;
    if (rc == HG_ENOENT) rc = 0;
  }
  if (!rc) rc = opt_string(cfg, "health.listen", &s->health_listen, err);
  if (!rc) {
    rc = hg_lua_config_bool(cfg, "health.allow_remote", &s->health_allow_remote, err);
    if (rc == HG_ENOENT) rc = 0;
  }
  if (!rc) rc = hg_lua_config_int(cfg, "retry.base_ms", &s->retry_base_ms, err);
  if (!rc) rc = hg_lua_config_int(cfg, "spool.budget_mb", &s->spool_budget_mb, err);
  if (!rc) rc = hg_lua_config_int(cfg, "spool.max_run_log_mb", &s->max_run_log_mb, err);
  if (!rc) rc = hg_lua_config_int(cfg, "retry.cap_ms", &s->retry_cap_ms, err);
  if (!rc) {
    rc = hg_lua_config_strings(cfg, "plugin_dirs", &s->plugin_dirs, err);
    if (rc == HG_ENOENT) rc = 0;
  }
  return rc;
}

/* Reads the key from the one source the configuration names; key_env is scrubbed from the
 * environment (unless only checking). */
static int read_key(const agent_settings *s, bool check, hg_buf *key, hg_err *err) {
  char from[1100];
  int rc;
  if (s->key_file) {
    int loose = 0;
    snprintf(from, sizeof from, "key_file %s", s->key_file);
    rc = hg_agentkey_read_file(s->key_file, key, &loose, err);
    if (!rc && loose)
      hg_log(HG_LOG_WARN, "the API key file can be read by other users; chmod 600 it", "file",
             s->key_file, NULL);
  } else if (s->key_env) {
    snprintf(from, sizeof from, "key_env %s", s->key_env);
    /* Only checking: the variable stays for the agent that will run. */
    rc = check ? hg_agentkey_read_env(s->key_env, key, err)
               : hg_agentkey_take_env(s->key_env, key, err);
  } else if (s->has_key_fd) {
    if (check) return 0; /* reading it would consume it */
    snprintf(from, sizeof from, "key_fd %lld", (long long)s->key_fd);
    rc = hg_agentkey_read_fd((int)s->key_fd, key, err);
  } else {
    return hg_err_set(err, HG_EINVAL, "hub: set one of key_file, key_env or key_fd");
  }
  if (!rc) rc = hg_agentkey_check(key->data ? key->data : "", key->len, from, err);
  return rc;
}

/* ---- the health listener's module ---- */

/* The health listener and the HTTP server under it (libh2o) are a module: an agent without
 * health.listen never maps them. These are agent/health.h's functions, found in it. */
#define HEALTH_MODULE "hangar-health.so"

typedef struct {
  int (*start)(hg_loop *loop, const hg_health_opts *opts, hg_health **out, hg_err *err);
  const char *(*url)(const hg_health *h);
  void (*free)(hg_health *h);
  void (*gauge)(hg_health_scrape *s, const char *name, double value);
  void (*counter)(hg_health_scrape *s, const char *name, double value);
} health_api;

static int health_load(health_api *api, hg_err *err) {
  void *module;
  int rc = hg_module_open(HEALTH_MODULE, &module, err);
  if (rc) return rc;
  static const char *const names[] = {"hg_health_start", "hg_health_url", "hg_health_free",
                                      "hg_health_gauge", "hg_health_counter"};
  /* POSIX: a function's address survives the trip through dlsym's void *. */
  void **slots[] = {(void **)&api->start, (void **)&api->url, (void **)&api->free,
                    (void **)&api->gauge, (void **)&api->counter};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (!(*slots[i] = hg_module_sym(module, HEALTH_MODULE, names[i], err))) return err->code;
  return 0;
}

/* ---- the uploader, and the session it shares with Lua ---- */

typedef struct {
  hg_uploader *up;
  hg_agentcore *core;
  char *token; /* the session's token, as Lua last set it */
  health_api health;
} upload_link;

static void on_session(const char *agent_id, const char *token, int64_t max_batch, void *data) {
  (void)agent_id;
  upload_link *l = data;
  char *copy = strdup(token);
  if (copy) {
    free(l->token);
    l->token = copy;
  }
  hg_err err;
  if (hg_uploader_set_session(l->up, token, max_batch > 0 ? (size_t)max_batch : 0, &err))
    hg_log(HG_LOG_ERROR, "cannot hand the session to the uploader", "error", err.msg, NULL);
}

static void on_unauthorized(void *ud) {
  upload_link *l = ud;
  hg_agentcore_emit(l->core, "unauthorized", l->token);
}

static void on_cancel(void *ud, const char *run_id) {
  upload_link *l = ud;
  hg_agentcore_emit(l->core, "cancel", run_id);
}

/* ---- the health listener ---- */

typedef struct {
  const health_api *api;
  hg_health_scrape *sc;
} scrape;

/* The Lua side's figures: a name ending in _total is a counter (Prometheus' convention). */
static void add_metric(const char *name, double value, void *data) {
  scrape *s = data;
  size_t n = strlen(name);
  if (n > 6 && !strcmp(name + n - 6, "_total"))
    s->api->counter(s->sc, name, value);
  else
    s->api->gauge(s->sc, name, value);
}

static void health_metrics(hg_health_scrape *sc, void *data) {
  upload_link *l = data;
  const health_api *h = &l->health;
  scrape s = {h, sc};
  hg_agentcore_metrics_each(l->core, add_metric, &s);
  hg_uploader_stats st;
  hg_uploader_stats_get(l->up, &st);
  h->gauge(sc, "events_unacked", (double)st.unacked);
  h->counter(sc, "events_acked_total", (double)st.acked);
  h->counter(sc, "upload_requests_total", (double)st.requests);
  h->counter(sc, "upload_retries_total", (double)st.retries);
  h->counter(sc, "upload_reconnects_total", (double)st.reconnects);
  h->counter(sc, "upload_bytes_total", (double)st.bytes);
}

static int health_check(char *why, size_t size, void *data) {
  upload_link *l = data;
  if (l->token) return 0;
  snprintf(why, size, "not registered with the hub");
  return 1;
}

/* ---- running the Lua ---- */

typedef struct {
  hg_loop *loop;
  int exit_code;
  int finished;
} main_state;

static void on_main_done(hg_lua *rt, lua_State *L, int ok, int nres, void *data) {
  (void)rt;
  main_state *m = data;
  m->finished = 1;
  if (!ok) {
    hg_log(HG_LOG_ERROR, "the agent failed", "error", lua_tostring(L, -1), NULL);
    fprintf(stderr, "hangar agent: %s\n", lua_tostring(L, -1));
    m->exit_code = EXIT_ERROR;
  } else {
    m->exit_code = nres > 0 && lua_isinteger(L, -nres) ? (int)lua_tointeger(L, -nres) : EXIT_OK;
    /* main.run returns a message with a failure: say it plainly too, not only in the log. */
    if (m->exit_code != EXIT_OK && nres > 1 && lua_type(L, -nres + 1) == LUA_TSTRING)
      fprintf(stderr, "hangar agent: %s\n", lua_tostring(L, -nres + 1));
  }
  hg_loop_stop(m->loop);
}

typedef struct {
  hg_lua_config *cfg;
  hg_agentcore *core;
  const hg_l_runlog_env *runlog; /* what core.runlog opens runs' logs with */
  const char *state_dir;
  const char *fn; /* "run" or "check" */
} push_args;

/* Pushes require("hangar.agent.main")[fn], the configuration (with state_dir made absolute)
 * and the core table onto the main stack. */
static int push_main(lua_State *M) {
  push_args *a = lua_touserdata(M, 1);
  lua_getglobal(M, "require");
  lua_pushliteral(M, "hangar.agent.main");
  lua_call(M, 1, 1);
  lua_getfield(M, -1, a->fn);
  lua_remove(M, -2);
  hg_lua_config_push(a->cfg);
  if (a->state_dir) {
    lua_pushstring(M, a->state_dir);
    lua_setfield(M, -2, "state_dir");
  }
  if (a->core) {
    hg_agentcore_push(a->core, M);
    if (a->runlog) hg_l_runlog_register(M, lua_gettop(M), a->runlog);
  } else {
    lua_pushnil(M);
  }
  return 3;
}

int cmd_agent(int argc, char **argv) {
  agent_args a = {0};
  int code = parse_args(argc, argv, &a);
  if (code) return code < 0 ? EXIT_OK : code;

  hg_log_setup(stderr, HG_LOG_INFO, "agent");
  /* The API key and the session keys live in this process's memory, and runs often run as
   * the agent's own user, who could otherwise read /proc/<agent>/mem and environ or attach a
   * debugger. Not dumpable makes those root-only (and no core file will hold the keys); the
   * programs runs exec are dumpable again. */
  if (prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L) != 0)
    hg_log(HG_LOG_WARN, "cannot mark the agent non-dumpable; runs of its user can read its memory",
           "error", strerror(errno), NULL);
  hg_loop loop;
  hg_err err = {0};
  if (hg_loop_init(&loop, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    return EXIT_ERROR;
  }
  hg_http *http = NULL;
  hg_lua *rt = NULL;
  hg_lua_config *cfg = NULL;
  hg_agentcore *core = NULL;
  upload_link link = {0};
  hg_runlog_group *group = NULL;
  hg_health *health = NULL;
  char spool_dir[PATH_MAX + 8];
  agent_settings s = {0};
  hg_buf key = HG_BUF_INIT;
  char state_abs[PATH_MAX];
  main_state m = {.loop = &loop, .exit_code = EXIT_ERROR};

  hg_lua_opts lo = {.mode = HG_LUA_SANDBOXED, .mem_limit = LUA_MEM_LIMIT,
                    .cpu_budget_ms = LUA_CPU_BUDGET_MS};
  if (hg_http_new(&loop, &http, &err) || (lo.http = http, hg_lua_new(&loop, &lo, &rt, &err))) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    goto out;
  }
  hg_lua_config_opts co = {.path = a.config, .schema = "hangar.schema.agent", .env = a.env};
  if (hg_lua_config_load(rt, &co, &cfg, &err) || read_settings(cfg, &s, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    code = EXIT_USAGE;
    goto out_code;
  }
  if (s.log_level) hg_log_setup(stderr, (hg_log_level)hg_log_parse_level(s.log_level), "agent");
  if (hg_plugin_abi_register(rt, (const char *const *)s.plugin_dirs, &err)) {
    fprintf(stderr, "hangar agent: plugin_dirs: %s\n", err.msg);
    code = EXIT_USAGE;
    goto out_code;
  }
  if (read_key(&s, a.check, &key, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    code = EXIT_USAGE;
    goto out_code;
  }

  lua_State *L = hg_lua_state(rt);
  if (a.check) {
    push_args pa = {.cfg = cfg, .fn = "check"};
    lua_pushcfunction(L, push_main);
    lua_pushlightuserdata(L, &pa);
    if (hg_lua_call(rt, 1, 3, &err) || hg_lua_call(rt, 2, 2, &err)) {
      fprintf(stderr, "hangar agent: %s\n", err.msg);
      code = EXIT_USAGE;
      goto out_code;
    }
    if (lua_isnil(L, -2)) {
      fprintf(stderr, "hangar agent: %s\n", lua_tostring(L, -1));
      code = EXIT_USAGE;
    } else {
      printf("%s: the configuration is valid\n", a.config);
      code = EXIT_OK;
    }
    lua_pop(L, 2);
    goto out_code;
  }

  if (hg_agentfs_mkdir_p(s.state_dir) || !realpath(s.state_dir, state_abs)) {
    fprintf(stderr, "hangar agent: state_dir %s: %s\n", s.state_dir, strerror(errno));
    goto out;
  }
  hg_agentcore_opts opts = {
      .rt = rt,
      .http = http,
      .hub_url = s.url,
      .tls = {s.ca_file, s.cert_file, s.cert_key_file},
      .state_dir = state_abs,
      .config_path = a.config,
      .config_env = a.env,
      .schema = "hangar.schema.agent",
  };
  if (hg_agentcore_new(&opts, &core, &err) || hg_agentcore_set_key(core, key.data, key.len, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    goto out;
  }
  hg_buf_wipe(&key);
  hg_agentcore_adopt_config(core, cfg);
  hg_lua_config *adopted = cfg;
  cfg = NULL; /* the core owns it now: no error path below may free it again */

  hg_uploader_config uc = {
      .loop = &loop,
      .http = http,
      .url = s.url,
      .tls = {s.ca_file, s.cert_file, s.cert_key_file},
      .backoff_base_ms = s.retry_base_ms,
      .backoff_cap_ms = s.retry_cap_ms,
      .on_unauthorized = on_unauthorized,
      .on_cancel = on_cancel,
      .ud = &link,
  };
  link.core = core;
  if (hg_uploader_new(&link.up, &uc, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    goto out;
  }
  hg_agentcore_on_session(core, on_session, &link);
  if (hg_runlog_group_new(&group, &loop, (uint64_t)s.spool_budget_mb << 20, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    goto out;
  }
  snprintf(spool_dir, sizeof spool_dir, "%s/spool", state_abs);
  hg_l_runlog_env rle = {.up = link.up,
                         .group = group,
                         .spool_dir = spool_dir,
                         .max_log_bytes = (uint64_t)s.max_run_log_mb << 20};

  if (s.health_listen) {
    hg_health_opts ho = {.listen = s.health_listen,
                         .allow_remote = s.health_allow_remote != 0,
                         .metrics = health_metrics,
                         .check = health_check,
                         .data = &link};
    if (health_load(&link.health, &err)) {
      hg_log(HG_LOG_ERROR, "cannot load the health listener", "error", err.msg, NULL);
      fprintf(stderr, "hangar agent: health.listen: %s\n", err.msg);
      goto out;
    }
    if (link.health.start(&loop, &ho, &health, &err)) {
      hg_log(HG_LOG_ERROR, "cannot start the health listener", "error", err.msg, NULL);
      fprintf(stderr, "hangar agent: %s\n", err.msg);
      code = EXIT_USAGE;
      goto out_code;
    }
    hg_log(HG_LOG_INFO, "health listener", "url", link.health.url(health), NULL);
  }

  push_args pa = {.cfg = adopted, .core = core, .runlog = &rle, .state_dir = state_abs, .fn = "run"};
  lua_pushcfunction(L, push_main);
  lua_pushlightuserdata(L, &pa);
  if (hg_lua_call(rt, 1, 3, &err) || hg_lua_task_start(rt, 2, on_main_done, &m, &err)) {
    fprintf(stderr, "hangar agent: %s\n", err.msg);
    goto out;
  }
  hg_loop_run(&loop);
  if (!m.finished) hg_log(HG_LOG_ERROR, "the agent's loop ended before its Lua did", NULL);
out:
  code = m.exit_code;
out_code:
  hg_buf_wipe(&key);
  if (health) link.health.free(health);
  hg_lua_config_free(cfg);
  hg_agentcore_free(core);
  hg_lua_free(rt); /* closes the runs' logs, which leave the uploader */
  hg_uploader_free(link.up);
  hg_runlog_group_free(group);
  free(link.token);
  hg_http_free(http);
  hg_loop_close(&loop);
  settings_free(&s);
  return code;
}
