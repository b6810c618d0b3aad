/* The config loader's C entry: a sandboxed load with a schema module, environment merge,
 * HANGAR_* overrides, errors with file:line, and the scalar accessors. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "lua/config.h"

static hg_loop loop;
static hg_lua *rt;
static char dir[256];
static char cfg_path[320];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
}

/* The kind of schema the agent declares, shipped as a module in a plugin-style root. */
static const char *schema_module =
    "return {\n"
    "  hub_url = { type = 'string', required = true },\n"
    "  capacity = { type = 'integer', default = 4 },\n"
    "  ratio = { type = 'number', default = 0.5 },\n"
    "  debug = { type = 'boolean', default = false },\n"
    "  labels = { type = 'list', of = 'string', default = {} },\n"
    "  before_run = 'function',\n"
    "  health = { type = 'table', fields = { listen = { type = 'string', default = '127.0.0.1:9090' } } },\n"
    "}\n";

static void setup(void) {
  hg_err err;
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0755);
  snprintf(dir, sizeof dir, "%s/lua-config-XXXXXX", base);
  CHECK(mkdtemp(dir) != NULL);
  /* A long directory: Lua keeps only a file name's last ~56 characters in "file:line:", and
   * errors must still name the whole file. */
  size_t used = strlen(dir);
  snprintf(dir + used, sizeof dir - used, "/%s", "a-directory-whose-name-alone-is-longer-than-lua-keeps");
  CHECK(mkdir(dir, 0755) == 0);
  char path[320];
  snprintf(path, sizeof path, "%s/testschema.lua", dir);
  write_file(path, schema_module);
  snprintf(cfg_path, sizeof cfg_path, "%s/agent.lua", dir);
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  hg_lua_opts opts = {.mode = HG_LUA_SANDBOXED, .mem_limit = 64 << 20, .cpu_budget_ms = 1000};
  CHECK_EQ_INT(hg_lua_new(&loop, &opts, &rt, &err), 0);
  CHECK_EQ_INT(hg_lua_add_root(rt, dir, &err), 0);
}

static void teardown(void) {
  hg_lua_free(rt);
  hg_loop_close(&loop);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  CHECK_EQ_INT(system(cmd), 0);
}

static int load(const char *text, const char *env, const char *const *env_vars, hg_lua_config **cfg,
                hg_err *err) {
  write_file(cfg_path, text);
  static const char *const no_env[] = {NULL};
  hg_lua_config_opts o = {.path = cfg_path, .schema = "testschema", .env = env,
                          .environ = env_vars ? env_vars : no_env};
  return hg_lua_config_load(rt, &o, cfg, err);
}

static void loads_and_reads_scalars(void) {
  setup();
  hg_err err;
  hg_lua_config *cfg = NULL;
  const char *const env_vars[] = {"HANGAR_DEBUG=true", "HANGAR_HEALTH__LISTEN=0.0.0.0:1", "PATH=/bin", NULL};
  int rc = load("hub_url = 'https://hub'\n"
                "labels = { 'linux', 'gpu' }\n"
                "function before_run(run) return run end\n"
                "environments = { prod = { capacity = 16 } }\n",
                "prod", env_vars, &cfg, &err);
  CHECK_EQ_INT(rc, 0);
  if (rc) {
    fprintf(stderr, "  %s\n", err.msg);
    teardown();
    return;
  }
  char *s = NULL;
  CHECK_EQ_INT(hg_lua_config_string(cfg, "hub_url", &s, &err), 0);
  CHECK_EQ_STR(s, "https://hub");
  free(s);
  int64_t n = 0;
  CHECK_EQ_INT(hg_lua_config_int(cfg, "capacity", &n, &err), 0);
  CHECK_EQ_INT(n, 16);
  double d = 0;
  CHECK_EQ_INT(hg_lua_config_number(cfg, "ratio", &d, &err), 0);
  CHECK(d == 0.5);
  int b = 0;
  CHECK_EQ_INT(hg_lua_config_bool(cfg, "debug", &b, &err), 0);
  CHECK_EQ_INT(b, 1);
  CHECK_EQ_INT(hg_lua_config_string(cfg, "health.listen", &s, &err), 0);
  CHECK_EQ_STR(s, "0.0.0.0:1");
  free(s);
  char **list = NULL;
  CHECK_EQ_INT(hg_lua_config_strings(cfg, "labels", &list, &err), 0);
  CHECK(list && list[0] && list[1] && !list[2]);
  if (list && list[0] && list[1]) {
    CHECK_EQ_STR(list[0], "linux");
    CHECK_EQ_STR(list[1], "gpu");
  }
  hg_lua_config_strings_free(list);
  /* Wrong type and absent keys. */
  CHECK_EQ_INT(hg_lua_config_int(cfg, "hub_url", &n, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "config key 'hub_url' is not an integer");
  CHECK_EQ_INT(hg_lua_config_string(cfg, "health.nothing", &s, &err), HG_ENOENT);
  CHECK_EQ_INT(hg_lua_config_string(cfg, "hub_url.deeper", &s, &err), HG_ENOENT);
  /* The hook stays a Lua function in the table. */
  lua_State *L = hg_lua_state(rt);
  hg_lua_config_push(cfg);
  lua_getfield(L, -1, "before_run");
  CHECK(lua_isfunction(L, -1));
  lua_getfield(L, -2, "environments");
  CHECK(lua_isnil(L, -1));
  lua_pop(L, 3);
  hg_lua_config_free(cfg);
  teardown();
}

static void errors_name_key_and_line(void) {
  setup();
  hg_err err;
  hg_lua_config *cfg = NULL;
  char want[600];
  CHECK_EQ_INT(load("hub_url = 'x'\n\ncapcity = 3\n", NULL, NULL, &cfg, &err), HG_EINVAL);
  snprintf(want, sizeof want, "%s:3: unknown key 'capcity' (did you mean 'capacity'?)", cfg_path);
  CHECK_EQ_STR(err.msg, want);
  CHECK_EQ_INT(load("capacity = 2\n", NULL, NULL, &cfg, &err), HG_EINVAL);
  snprintf(want, sizeof want, "%s: missing required key 'hub_url' (a string)", cfg_path);
  CHECK_EQ_STR(err.msg, want);
  const char *const bad_env[] = {"HANGAR_CAPACITY=many", NULL};
  CHECK_EQ_INT(load("hub_url = 'x'\n", NULL, bad_env, &cfg, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "HANGAR_CAPACITY: key 'capacity' must be an integer, got \"many\"");
  CHECK_EQ_INT(load("hub_url = 'x'\nenvironments = { prod = {} }\n", "qa", NULL, &cfg, &err), HG_EINVAL);
  CHECK_CONTAINS(err.msg, "unknown environment 'qa' (known: prod)");
  /* The file runs sandboxed: no io, no reading undeclared globals. */
  CHECK_EQ_INT(load("hub_url = io.open('/etc/passwd'):read('a')\n", NULL, NULL, &cfg, &err), HG_EINVAL);
  snprintf(want, sizeof want, "%s:1: undeclared global 'io'", cfg_path);
  CHECK_CONTAINS(err.msg, want);
  /* And under the CPU budget. */
  CHECK(load("hub_url = 'x'\nwhile true do end\n", NULL, NULL, &cfg, &err) < 0);
  CHECK_CONTAINS(err.msg, "CPU budget");
  /* A file that is not there. */
  hg_lua_config_opts o = {.path = "/nonexistent/agent.lua", .schema = "testschema"};
  CHECK_EQ_INT(hg_lua_config_load(rt, &o, &cfg, &err), HG_ENOENT);
  teardown();
}

TEST_MAIN(T(loads_and_reads_scalars), T(errors_name_key_and_line))
