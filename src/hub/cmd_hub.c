/* `hangar hub`: create the hub's store (init) and serve the API. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cmds.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/timer.h"
#include "hub/hub.h"
#include "hub/server.h"
#include "lua/config.h"
#include "lua/runtime.h"

/* Everything `hangar hub serve` can be told, by flags (and a config file). */
typedef struct hub_settings {
  hg_hub_config hub;
  hg_server_config server;
  const char *config_file;
  const char *env;
  const char *ready_file;
  const char *log_level;
  char master_default[1024];
  char *owned[8]; /* strings read from the config file */
  size_t n_owned;
} hub_settings;

static void usage(FILE *out) {
  fprintf(out,
          "usage: hangar hub init --db PATH [--master-key FILE] [--sync normal|full]\n"
          "       hangar hub [serve] [OPTIONS]\n"
          "       hangar hub admin-key --db PATH [--master-key FILE] [--name NAME]\n\n"
          "The hub: the control plane agents and the CLI talk to (HTTP API, SQLite store).\n\n"
          "init creates the store and, when it is missing, a master key file (32 random bytes,\n"
          "mode 0600) that encrypts secret config variables; it prints the first admin key,\n"
          "once. The master key defaults to the store's path with '.key' appended; keep it\n"
          "(and its backups) apart from the store's.\n\n"
          "admin-key adds an admin key to a store while no hub serves it: the way back in when\n"
          "every admin key was revoked or lost. It needs the store's master key file.\n\n"
          "serve options (each overrides the config file):\n"
          "  --config FILE              a Lua configuration file (see examples/hub.lua)\n"
          "  --env NAME                 merge the file's environments[NAME] (default $HANGAR_ENV)\n"
          "  --listen ADDR              HOST:PORT, [V6]:PORT or :PORT (default 127.0.0.1:8080;\n"
          "                             port 0 picks a free port)\n"
          "  --db PATH                  the store (required)\n"
          "  --master-key FILE          the master key file (default PATH.key)\n"
          "  --tls-cert FILE --tls-key FILE   serve HTTPS with this PEM chain and key\n"
          "  --allow-plain-http         allow plain HTTP on an address other than loopback\n"
          "  --heartbeat-interval S     what agents are told (default 10)\n"
          "  --poll-wait S              the work long-poll agents are told to use (default 30,\n"
          "                             at most 60)\n"
          "  --lease-ttl S              sessions and leases lapse after S silent seconds\n"
          "                             (default 30)\n"
          "  --max-batch-bytes N        the event batch size agents are asked to use (default\n"
          "                             1048576, at most 8388608)\n"
          "  --sweep-interval-ms MS     how often leases and deadlines are checked (default a\n"
          "                             tenth of the lease TTL, 50 to 1000 ms)\n"
          "  --sync normal|full         normal: an acknowledged write survives the hub being\n"
          "                             killed; full: also a power loss (slower) (default normal)\n"
          "  --log-level LEVEL          debug, info, warn, error (default info)\n"
          "  --ready-file FILE          write the hub's URL to FILE once it listens\n");
}

/* Reads "--name VALUE" or "--name=VALUE" at argv[*i]; returns the value or NULL. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *bad) {
  size_t n = strlen(name);
  const char *a = argv[*i];
  if (strncmp(a, name, n) != 0) return NULL;
  if (a[n] == '=') return a + n + 1;
  if (a[n] != '\0') return NULL;
  if (*i + 1 >= argc) {
    fprintf(stderr, "hangar hub: %s needs a value\n", name);
    *bad = true;
    return NULL;
  }
  return argv[++*i];
}

static bool parse_int(const char *name, const char *text, int64_t lo, int64_t hi, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || *end || end == text || v < lo || v > hi) {
    fprintf(stderr, "hangar hub: %s: expected an integer in %lld..%lld, got '%s'\n", name,
            (long long)lo, (long long)hi, text);
    return false;
  }
  *out = v;
  return true;
}

static bool parse_sync(const char *text, hg_store_sync *out) {
  if (!strcmp(text, "normal")) {
    *out = HG_STORE_SYNC_NORMAL;
    return true;
  }
  if (!strcmp(text, "full")) {
    *out = HG_STORE_SYNC_FULL;
    return true;
  }
  fprintf(stderr, "hangar hub: --sync: expected normal or full, got '%s'\n", text);
  return false;
}

static const char *default_master(hub_settings *s) {
  snprintf(s->master_default, sizeof s->master_default, "%s.key", s->hub.db_path);
  return s->master_default;
}

/* ---- init ---- */

static int cmd_init(int argc, char **argv) {
  hub_settings s;
  memset(&s, 0, sizeof s);
  hg_hub_config_defaults(&s.hub);
  for (int i = 1; i < argc; i++) {
    bool bad = false;
    const char *v;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if ((v = opt_value(argc, argv, &i, "--db", &bad))) {
      s.hub.db_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--master-key", &bad))) {
      s.hub.master_key_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--sync", &bad))) {
      if (!parse_sync(v, &s.hub.sync)) return 2;
    } else {
      if (!bad) fprintf(stderr, "hangar hub init: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (bad) return 2;
  }
  if (!s.hub.db_path) {
    fprintf(stderr, "hangar hub init: --db PATH is required\n");
    return 2;
  }
  if (!s.hub.master_key_path) s.hub.master_key_path = default_master(&s);
  bool had_key = access(s.hub.master_key_path, F_OK) == 0;
  char key[HG_APIKEY_LEN + 1];
  hg_err err = {0};
  if (hg_hub_init_store(s.hub.db_path, s.hub.master_key_path, s.hub.sync, key, &err)) {
    fprintf(stderr, "hangar hub init: %s\n", err.msg);
    return 1;
  }
  fprintf(stderr, "created the store %s\n", s.hub.db_path);
  if (!had_key) fprintf(stderr, "created the master key %s (mode 0600)\n", s.hub.master_key_path);
  fprintf(stderr, "the first admin key follows; it is shown only this once:\n");
  printf("%s\n", key);
  fflush(stdout);
  hg_crypto_wipe(key, sizeof key);
  return 0;
}

static int cmd_admin_key(int argc, char **argv) {
  hub_settings s;
  memset(&s, 0, sizeof s);
  const char *name = "recovery admin";
  for (int i = 1; i < argc; i++) {
    bool bad = false;
    const char *v;
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if ((v = opt_value(argc, argv, &i, "--db", &bad))) {
      s.hub.db_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--master-key", &bad))) {
      s.hub.master_key_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--name", &bad))) {
      name = v;
    } else {
      if (!bad) fprintf(stderr, "hangar hub admin-key: unknown option '%s'\n", argv[i]);
      return 2;
    }
    if (bad) return 2;
  }
  if (!s.hub.db_path) {
    fprintf(stderr, "hangar hub admin-key: --db PATH is required\n");
    return 2;
  }
  if (!s.hub.master_key_path) s.hub.master_key_path = default_master(&s);
  char key[HG_APIKEY_LEN + 1];
  hg_err err = {0};
  hg_log_setup(stderr, HG_LOG_WARN, "hub");
  if (hg_hub_add_admin_key(s.hub.db_path, s.hub.master_key_path, name, key, &err)) {
    fprintf(stderr, "hangar hub admin-key: %s\n", err.msg);
    return 1;
  }
  fprintf(stderr, "a new admin key follows; it is shown only this once:\n");
  printf("%s\n", key);
  fflush(stdout);
  hg_crypto_wipe(key, sizeof key);
  return 0;
}

/* ---- serve ---- */

typedef struct serving {
  hg_loop *loop;
  hg_hub *hub;
  hg_server *server;
  hg_timer *grace;
  int grace_ticks;
  int signals;
} serving;

/* Polls for the connections to close after the answers went out; gives up after 2 s. */
static void on_grace(hg_timer *t, void *data) {
  (void)t;
  serving *sv = data;
  if (hg_server_idle(sv->server) || ++sv->grace_ticks >= 40) hg_loop_stop(sv->loop);
}

static void on_signal(hg_loop *loop, int signum, void *data) {
  serving *sv = data;
  if (sv->signals++ > 0) {
    hg_loop_stop(loop);
    return;
  }
  hg_log(HG_LOG_INFO, "shutting down", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
  /* Stop taking connections, answer every waiting poll, let the answers go out, then stop. */
  hg_server_shutdown(sv->server);
  hg_hub_release_waits(sv->hub);
  hg_err err = {0};
  if (hg_timer_new(loop, on_grace, sv, &sv->grace, &err) || hg_timer_start(sv->grace, 50, 50))
    hg_loop_stop(loop);
}

static bool write_ready_file(const char *path, const char *url) {
  char tmp[1100];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) return false;
  fprintf(f, "%s\n", url);
  bool ok = fclose(f) == 0 && rename(tmp, path) == 0;
  return ok;
}

static int parse_serve(int argc, char **argv, hub_settings *s) {
  for (int i = 0; i < argc; i++) {
    bool bad = false;
    const char *v;
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 1;
    } else if (!strcmp(a, "--allow-plain-http")) {
      s->server.allow_plain_http = true;
    } else if ((v = opt_value(argc, argv, &i, "--config", &bad))) {
      s->config_file = v;
    } else if ((v = opt_value(argc, argv, &i, "--env", &bad))) {
      s->env = v;
    } else if ((v = opt_value(argc, argv, &i, "--listen", &bad))) {
      s->server.listen = v;
    } else if ((v = opt_value(argc, argv, &i, "--db", &bad))) {
      s->hub.db_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--master-key", &bad))) {
      s->hub.master_key_path = v;
    } else if ((v = opt_value(argc, argv, &i, "--tls-cert", &bad))) {
      s->server.tls_cert = v;
    } else if ((v = opt_value(argc, argv, &i, "--tls-key", &bad))) {
      s->server.tls_key = v;
    } else if ((v = opt_value(argc, argv, &i, "--heartbeat-interval", &bad))) {
      if (!parse_int(a, v, 1, 3600, &s->hub.heartbeat_interval_s)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--poll-wait", &bad))) {
      if (!parse_int(a, v, 1, HG_HUB_MAX_WAIT_S, &s->hub.poll_wait_s)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--lease-ttl", &bad))) {
      if (!parse_int(a, v, 1, 86400, &s->hub.lease_ttl_s)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--max-batch-bytes", &bad))) {
      if (!parse_int(a, v, 1024, HG_HUB_EVENTS_LIMIT, &s->hub.max_batch_bytes)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--sweep-interval-ms", &bad))) {
      if (!parse_int(a, v, 10, 60000, &s->hub.sweep_interval_ms)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--sync", &bad))) {
      if (!parse_sync(v, &s->hub.sync)) return 2;
    } else if ((v = opt_value(argc, argv, &i, "--log-level", &bad))) {
      if (hg_log_parse_level(v) < 0) {
        fprintf(stderr, "hangar hub: --log-level: expected debug, info, warn or error\n");
        return 2;
      }
      s->log_level = v;
    } else if ((v = opt_value(argc, argv, &i, "--ready-file", &bad))) {
      s->ready_file = v;
    } else {
      if (!bad) fprintf(stderr, "hangar hub: unknown option '%s' (see 'hangar hub --help')\n", a);
      return 2;
    }
    if (bad) return 2;
  }
  return 0;
}

/* ---- the configuration file ---- */

static const char *keep(hub_settings *s, char *str) {
  if (s->n_owned < sizeof s->owned / sizeof s->owned[0]) {
    s->owned[s->n_owned++] = str;
    return str;
  }
  free(str);
  return NULL;
}

static int cfg_string(hg_lua_config *cfg, const char *key, hub_settings *s, const char **out,
                      hg_err *err) {
  char *v = NULL;
  int rc = hg_lua_config_string(cfg, key, &v, err);
  if (rc == HG_ENOENT) return 0;
  if (!rc) *out = keep(s, v);
  return rc;
}

static int cfg_int(hg_lua_config *cfg, const char *key, int64_t *out, hg_err *err) {
  int rc = hg_lua_config_int(cfg, key, out, err);
  return rc == HG_ENOENT ? 0 : rc;
}

/* Reads the file into s; the flags are applied over it afterwards. */
static int load_config(hg_loop *loop, hub_settings *s, hg_err *err) {
  hg_lua_opts lo = {.mode = HG_LUA_SANDBOXED, .mem_limit = 64u << 20, .cpu_budget_ms = 5000};
  hg_lua *rt = NULL;
  hg_lua_config *cfg = NULL;
  int rc = hg_lua_new(loop, &lo, &rt, err);
  hg_lua_config_opts co = {.path = s->config_file, .schema = "hangar.schema.hub", .env = s->env};
  if (!rc) rc = hg_lua_config_load(rt, &co, &cfg, err);
  const char *sync = NULL, *level = NULL;
  int plain = 0;
  if (!rc) rc = cfg_string(cfg, "listen", s, &s->server.listen, err);
  if (!rc) rc = cfg_string(cfg, "db", s, &s->hub.db_path, err);
  if (!rc) rc = cfg_string(cfg, "master_key", s, &s->hub.master_key_path, err);
  if (!rc) rc = cfg_string(cfg, "tls.cert", s, &s->server.tls_cert, err);
  if (!rc) rc = cfg_string(cfg, "tls.key", s, &s->server.tls_key, err);
  if (!rc) rc = cfg_string(cfg, "sync", s, &sync, err);
  if (!rc) rc = cfg_string(cfg, "log_level", s, &level, err);
  if (!rc) {
    rc = hg_lua_config_bool(cfg, "allow_plain_http", &plain, err);
    if (rc == HG_ENOENT) rc = 0;
    s->server.allow_plain_http = plain != 0;
  }
  if (!rc) rc = cfg_int(cfg, "heartbeat_interval_s", &s->hub.heartbeat_interval_s, err);
  if (!rc) rc = cfg_int(cfg, "poll_wait_s", &s->hub.poll_wait_s, err);
  if (!rc) rc = cfg_int(cfg, "lease_ttl_s", &s->hub.lease_ttl_s, err);
  if (!rc) rc = cfg_int(cfg, "max_batch_bytes", &s->hub.max_batch_bytes, err);
  if (!rc) rc = cfg_int(cfg, "sweep_interval_ms", &s->hub.sweep_interval_ms, err);
  if (!rc && sync) s->hub.sync = !strcmp(sync, "full") ? HG_STORE_SYNC_FULL : HG_STORE_SYNC_NORMAL;
  if (!rc && level) s->log_level = level;
  hg_lua_config_free(cfg);
  hg_lua_free(rt);
  return rc;
}

/* --config and --env are needed before the other flags, which override the file. */
static void find_config_flags(int argc, char **argv, hub_settings *s) {
  for (int i = 0; i < argc; i++) {
    bool bad = false;
    const char *v;
    if ((v = opt_value(argc, argv, &i, "--config", &bad)))
      s->config_file = v;
    else if ((v = opt_value(argc, argv, &i, "--env", &bad)))
      s->env = v;
  }
}

static void settings_free(hub_settings *s) {
  for (size_t i = 0; i < s->n_owned; i++) free(s->owned[i]);
  s->n_owned = 0;
}

/* Every waiting agent holds a connection: take all the descriptors the system allows. */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Event batches are megabytes each, read and parsed one after another. By default the C library
 * maps each such buffer afresh, or gives the top of its heap back after every request, and the
 * kernel then faults in and zeroes the same megabytes again for the next one: keep them. */
static void keep_large_buffers(void) {
#ifdef __GLIBC__
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
}

static int cmd_serve(int argc, char **argv) {
  hub_settings s;
  memset(&s, 0, sizeof s);
  hg_hub_config_defaults(&s.hub);
  s.server.listen = "127.0.0.1:8080";
  find_config_flags(argc, argv, &s);
  hg_loop loop;
  hg_err err = {0};
  if (hg_loop_init(&loop, &err)) {
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    return 1;
  }
  if (s.config_file && load_config(&loop, &s, &err)) {
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    settings_free(&s);
    hg_loop_close(&loop);
    return 2;
  }
  int rc = parse_serve(argc, argv, &s);
  if (rc) {
    settings_free(&s);
    hg_loop_close(&loop);
    return rc == 1 ? 0 : rc;
  }
  if (!s.hub.db_path) {
    fprintf(stderr, "hangar hub: --db PATH (or db in the config file) is required (see 'hangar "
                    "hub --help')\n");
    settings_free(&s);
    hg_loop_close(&loop);
    return 2;
  }
  if (!s.hub.master_key_path) s.hub.master_key_path = default_master(&s);
  hg_log_setup(stderr, s.log_level ? (hg_log_level)hg_log_parse_level(s.log_level) : HG_LOG_INFO,
               "hub");

  serving sv = {.loop = &loop};
  int status = 1;
  raise_fd_limit();
  keep_large_buffers();
  if (hg_hub_open(&s.hub, &loop, &sv.hub, &err) ||
      hg_server_start(&loop, sv.hub, &s.server, &sv.server, &err)) {
    hg_log(HG_LOG_ERROR, "cannot start the hub", "error", err.msg, NULL);
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    goto out;
  }
  if (hg_loop_on_signal(&loop, SIGTERM, on_signal, &sv, &err) ||
      hg_loop_on_signal(&loop, SIGINT, on_signal, &sv, &err)) {
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    goto out;
  }
  const char *url = hg_server_url(sv.server);
  char ttl[24];
  snprintf(ttl, sizeof ttl, "%lld", (long long)sv.hub->cfg.lease_ttl_s);
  hg_log(HG_LOG_INFO, "hub listening", "url", url, "store", s.hub.db_path, "lease_ttl_s", ttl,
         NULL);
  if (s.ready_file && !write_ready_file(s.ready_file, url)) {
    fprintf(stderr, "hangar hub: cannot write %s: %s\n", s.ready_file, strerror(errno));
    goto out;
  }
  hg_loop_run(&loop);
  status = 0;
out:
  if (sv.server) hg_server_shutdown(sv.server);
  if (sv.hub) hg_hub_release_waits(sv.hub);
  hg_timer_free(sv.grace);
  hg_server_free(sv.server);
  hg_hub_close(sv.hub);
  hg_loop_close(&loop);
  settings_free(&s);
  return status;
}

int cmd_hub(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "init")) return cmd_init(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "admin-key")) return cmd_admin_key(argc - 1, argv + 1);
  if (argc >= 2 && !strcmp(argv[1], "serve")) return cmd_serve(argc - 2, argv + 2);
  return cmd_serve(argc - 1, argv + 1);
}
