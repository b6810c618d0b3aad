/* The `core` table of the agent's Lua: capabilities that must stay in C (the API key, the
 * session's private keys) and the few system services the sandbox lacks. */
#include "agent/agentcore.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/agentcond.h"
#include "agent/agentfs.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/sealbox.h"
#include "core/timer.h"

#define KEYRING_MAX 3   /* the current session key and the two before it */
#define METRICS_MAX 64
#define REGISTER_TIMEOUT_MS 30000

static const struct {
  const char *name;
  int signum;
} signals[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}};
#define NSIGNALS (sizeof signals / sizeof signals[0])

struct hg_agentcore {
  hg_lua *rt;
  hg_loop *loop;
  hg_http *http;
  char *hub_url, *ca_file, *cert_file, *key_file;
  char *state_dir, *keyring_path;
  char *config_path, *config_env, *schema;
  hg_lua_config *config;
  hg_buf api_key;
  /* Private keys, newest first. Kept after a new session starts so that secrets sealed to an
   * older session (a run reattached after a restart) can still be opened. */
  uint8_t keys[KEYRING_MAX][HG_CRYPTO_X25519_LEN];
  int nkeys;
  int keyring_loaded;
  int sig_ref[NSIGNALS];
  int sig_on[NSIGNALS];
  int event_ref[2]; /* core.on_event handlers: "unauthorized", "cancel" */
  hg_agentcore_session_cb session_cb;
  void *session_data;
  struct {
    char name[64];
    double value;
  } metrics[METRICS_MAX];
  int nmetrics;
};

static hg_agentcore *upcore(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static char *dup_or_null(const char *s, int *bad) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *bad = 1;
  return d;
}

int hg_agentcore_new(const hg_agentcore_opts *o, hg_agentcore **out, hg_err *err) {
  hg_agentcore *c = calloc(1, sizeof *c);
  if (!c) return hg_err_set(err, HG_ENOMEM, "out of memory");
  int bad = 0;
  c->rt = o->rt;
  c->loop = hg_lua_loop(o->rt);
  c->http = o->http;
  c->hub_url = dup_or_null(o->hub_url, &bad);
  if (c->hub_url) {
    size_t n = strlen(c->hub_url);
    while (n && c->hub_url[n - 1] == '/') c->hub_url[--n] = '\0';
  }
  c->ca_file = dup_or_null(o->tls.ca_file, &bad);
  c->cert_file = dup_or_null(o->tls.cert_file, &bad);
  c->key_file = dup_or_null(o->tls.key_file, &bad);
  c->state_dir = dup_or_null(o->state_dir, &bad);
  c->config_path = dup_or_null(o->config_path, &bad);
  c->config_env = dup_or_null(o->config_env, &bad);
  c->schema = dup_or_null(o->schema ? o->schema : "hangar.schema.agent", &bad);
  hg_buf kp = HG_BUF_INIT;
  if (!bad && c->state_dir && hg_buf_printf(&kp, "%s/session.key", c->state_dir)) bad = 1;
  c->keyring_path = hg_buf_steal(&kp);
  for (size_t i = 0; i < NSIGNALS; i++) c->sig_ref[i] = LUA_NOREF;
  c->event_ref[0] = c->event_ref[1] = LUA_NOREF;
  if (bad || !c->hub_url || !c->state_dir) {
    hg_agentcore_free(c);
    return hg_err_set(err, bad ? HG_ENOMEM : HG_EINVAL,
                      bad ? "out of memory" : "agent core: hub_url and state_dir are required");
  }
  *out = c;
  return 0;
}

int hg_agentcore_set_key(hg_agentcore *c, const char *key, size_t len, hg_err *err) {
  hg_buf_wipe(&c->api_key);
  if (hg_buf_append(&c->api_key, key, len)) return hg_err_set(err, HG_ENOMEM, "out of memory");
  return 0;
}

void hg_agentcore_on_session(hg_agentcore *c, hg_agentcore_session_cb cb, void *data) {
  c->session_cb = cb;
  c->session_data = data;
}

void hg_agentcore_adopt_config(hg_agentcore *c, hg_lua_config *cfg) {
  if (c->config != cfg) hg_lua_config_free(c->config);
  c->config = cfg;
}

int hg_agentcore_metric(const hg_agentcore *c, const char *name, double *out) {
  for (int i = 0; i < c->nmetrics; i++)
    if (!strcmp(c->metrics[i].name, name)) {
      *out = c->metrics[i].value;
      return 0;
    }
  *out = 0;
  return HG_ENOENT;
}

void hg_agentcore_metrics_each(const hg_agentcore *c,
                               void (*fn)(const char *name, double value, void *data), void *data) {
  for (int i = 0; i < c->nmetrics; i++) fn(c->metrics[i].name, c->metrics[i].value, data);
}

void hg_agentcore_free(hg_agentcore *c) {
  if (!c) return;
  for (size_t i = 0; i < NSIGNALS; i++)
    if (c->sig_on[i]) hg_loop_off_signal(c->loop, signals[i].signum);
  /* The references die with the state (hg_lua_free ran before). */
  hg_lua_config_free(c->config);
  hg_buf_wipe(&c->api_key);
  hg_crypto_wipe(c->keys, sizeof c->keys);
  free(c->hub_url);
  free(c->ca_file);
  free(c->cert_file);
  free(c->key_file);
  free(c->state_dir);
  free(c->keyring_path);
  free(c->config_path);
  free(c->config_env);
  free(c->schema);
  free(c);
}

/* ---- the session keyring ---- */

/* Reads state_dir/session.key (base64 private keys, newest first, one a line) once: the keys
 * of the sessions before a restart. A damaged file is ignored: only reattached runs need it. */
static void keyring_load(hg_agentcore *c) {
  if (c->keyring_loaded) return;
  c->keyring_loaded = 1;
  int fd = open(c->keyring_path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char text[1024];
  ssize_t n = read(fd, text, sizeof text - 1);
  close(fd);
  if (n <= 0) return;
  text[n] = '\0';
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line && c->nkeys < KEYRING_MAX;
       line = strtok_r(NULL, "\n", &save)) {
    hg_buf raw = HG_BUF_INIT;
    if (!hg_crypto_b64_decode(&raw, line, strlen(line), HG_CRYPTO_B64_STD, NULL) &&
        raw.len == HG_CRYPTO_X25519_LEN)
      memcpy(c->keys[c->nkeys++], raw.data, HG_CRYPTO_X25519_LEN);
    hg_buf_wipe(&raw);
  }
  hg_crypto_wipe(text, sizeof text);
}

static int keyring_save(hg_agentcore *c, hg_err *err) {
  hg_buf text = HG_BUF_INIT;
  int rc = 0;
  for (int i = 0; i < c->nkeys && !rc; i++) {
    rc = hg_crypto_b64_encode(&text, c->keys[i], HG_CRYPTO_X25519_LEN, HG_CRYPTO_B64_STD, err);
    if (!rc && hg_buf_appendc(&text, '\n')) rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  if (!rc) {
    int e = hg_agentfs_write_file(c->keyring_path, text.data ? text.data : "", text.len, 1);
    if (e) rc = hg_err_set(err, HG_EIO, "cannot write %s: %s", c->keyring_path, strerror(e));
  }
  hg_buf_wipe(&text);
  return rc;
}

static int l_session_key(lua_State *L) {
  hg_agentcore *c = upcore(L);
  keyring_load(c);
  uint8_t pub[HG_CRYPTO_X25519_LEN], priv[HG_CRYPTO_X25519_LEN];
  hg_err err;
  if (hg_crypto_x25519_keygen(pub, priv, &err)) return luaL_error(L, "core.session_key: %s", err.msg);
  memmove(c->keys[1], c->keys[0], (KEYRING_MAX - 1) * sizeof c->keys[0]);
  memcpy(c->keys[0], priv, sizeof priv);
  hg_crypto_wipe(priv, sizeof priv);
  if (c->nkeys < KEYRING_MAX) c->nkeys++;
  if (keyring_save(c, &err)) hg_log(HG_LOG_WARN, "cannot keep the session key", "error", err.msg, NULL);
  hg_buf b64 = HG_BUF_INIT;
  if (hg_crypto_b64_encode(&b64, pub, sizeof pub, HG_CRYPTO_B64_STD, &err))
    return luaL_error(L, "core.session_key: %s", err.msg);
  lua_pushlstring(L, b64.data, b64.len);
  hg_buf_free(&b64);
  return 1;
}

/* ---- sealed secrets ---- */

static int is_null(lua_State *L, int idx) {
  return lua_isnoneornil(L, idx) ||
         (lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* Pushes the object of strings in plain, or returns an error message. */
static const char *push_secrets(lua_State *L, const hg_buf *plain) {
  cJSON *doc = cJSON_ParseWithLength(plain->data, plain->len);
  if (!cJSON_IsObject(doc)) {
    cJSON_Delete(doc);
    return "the sealed secrets are not a JSON object";
  }
  for (cJSON *it = doc->child; it; it = it->next)
    if (!cJSON_IsString(it)) {
      cJSON_Delete(doc);
      return "a sealed secret is not a string";
    }
  lua_newtable(L);
  for (cJSON *it = doc->child; it; it = it->next) {
    lua_pushstring(L, it->valuestring);
    lua_setfield(L, -2, it->string);
    hg_crypto_wipe(it->valuestring, strlen(it->valuestring));
  }
  cJSON_Delete(doc);
  return NULL;
}

static int l_open_secrets(lua_State *L) {
  hg_agentcore *c = upcore(L);
  const char *run_id = luaL_checkstring(L, 2);
  if (is_null(L, 1)) {
    lua_newtable(L);
    return 1;
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  keyring_load(c);
  cJSON *sealed = hg_lua_json_build(L, 1);
  hg_buf plain = HG_BUF_INIT;
  hg_err err = {0};
  int rc = HG_EINVAL;
  snprintf(err.msg, sizeof err.msg, "no session key to open them with");
  for (int i = 0; i < c->nkeys; i++) {
    rc = hg_sealbox_open(sealed, c->keys[i], run_id, &plain, &err);
    if (rc == 0 || strstr(err.msg, "authentication failed") == NULL) break;
  }
  cJSON_Delete(sealed);
  if (rc) {
    hg_buf_wipe(&plain);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open the run's sealed secrets: %s", err.msg);
    return 2;
  }
  const char *bad = push_secrets(L, &plain);
  hg_buf_wipe(&plain);
  if (bad) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open the run's sealed secrets: %s", bad);
    return 2;
  }
  return 1;
}

/* ---- register ---- */

typedef struct {
  hg_lua_wait *w;
  hg_http_req *req;
  int finished, abandoned;
  int rc;
  char *msg;
  long status;
  hg_buf body;
} register_op;

static void register_op_free(register_op *op) {
  free(op->msg);
  hg_buf_free(&op->body);
  free(op);
}

static void on_registered(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                          void *data) {
  (void)req;
  register_op *op = data;
  op->finished = 1;
  op->req = NULL;
  if (op->abandoned) {
    register_op_free(op);
    return;
  }
  op->rc = rc;
  op->msg = strdup(msg ? msg : "");
  op->status = res->status;
  op->body = res->body;
  res->body = (hg_buf)HG_BUF_INIT;
  hg_lua_wait_done(op->w);
}

static int register_push(lua_State *L, void *data) {
  register_op *op = data;
  if (op->rc) {
    lua_pushnil(L);
    lua_pushfstring(L, "register: %s", op->msg ? op->msg : "failed");
    return 2;
  }
  lua_pushinteger(L, op->status);
  cJSON *doc = op->body.len ? cJSON_ParseWithLength(op->body.data, op->body.len) : NULL;
  if (doc) {
    hg_lua_json_push(L, doc); /* may raise on memory; doc leaks then, rarely and boundedly */
    cJSON_Delete(doc);
  } else {
    lua_pushnil(L);
  }
  return 2;
}

static void register_abandon(void *data) {
  register_op *op = data;
  if (op->finished) {
    register_op_free(op);
    return;
  }
  op->abandoned = 1;
  hg_http_cancel(op->req); /* on_registered frees it */
}

static void register_release(void *data) { register_op_free(data); }

static const hg_lua_wait_ops register_ops = {register_push, register_abandon, register_release};

static int l_register(lua_State *L) {
  hg_agentcore *c = upcore(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!c->api_key.len) return luaL_error(L, "core.register: the agent has no API key");
  /* Everything that may raise comes first, while nothing needs freeing. */
  cJSON *doc = hg_lua_json_build(L, 1);
  char *text = cJSON_PrintUnformatted(doc);
  cJSON_Delete(doc);
  if (!text) return luaL_error(L, "core.register: out of memory");
  lua_pushstring(L, text);
  free(text);
  size_t body_len;
  const char *body = lua_tolstring(L, -1, &body_len); /* stays on the stack during the call */
  hg_lua_wait *w = hg_lua_wait_new(L, "core.register");

  hg_buf url = HG_BUF_INIT, auth = HG_BUF_INIT;
  register_op *op = NULL;
  if (!hg_buf_printf(&url, "%s/v1/agents", c->hub_url) &&
      !hg_buf_printf(&auth, "Authorization: Bearer %s", c->api_key.data))
    op = calloc(1, sizeof *op);
  hg_err err;
  int rc = HG_ENOMEM;
  snprintf(err.msg, sizeof err.msg, "out of memory");
  if (op) {
    const char *headers[] = {auth.data, "Content-Type: application/json", NULL};
    hg_http_request r = {
        .method = "POST",
        .url = url.data,
        .headers = headers,
        .body = body,
        .body_len = body_len,
        .timeout_ms = REGISTER_TIMEOUT_MS,
        .tls = {c->ca_file, c->cert_file, c->key_file},
    };
    op->w = w;
    rc = hg_http_start(c->http, &r, on_registered, op, &op->req, &err);
  }
  /* libcurl keeps its own copies of the header lines and the body. */
  hg_buf_wipe(&auth);
  hg_buf_free(&url);
  if (rc) {
    if (op) register_op_free(op);
    hg_lua_wait_discard(w);
    lua_pushnil(L);
    lua_pushfstring(L, "register: %s", err.msg);
    return 2;
  }
  return hg_lua_wait_yield(L, w, &register_ops, op);
}

static int l_set_session(lua_State *L) {
  hg_agentcore *c = upcore(L);
  const char *agent_id = luaL_checkstring(L, 1);
  const char *token = luaL_checkstring(L, 2);
  lua_Integer max_batch = luaL_optinteger(L, 3, 1 << 20);
  if (c->session_cb) c->session_cb(agent_id, token, (int64_t)max_batch, c->session_data);
  return 0;
}

/* ---- signals ---- */

static void on_signal(hg_loop *loop, int signum, void *data) {
  (void)loop;
  hg_agentcore *c = data;
  for (size_t i = 0; i < NSIGNALS; i++) {
    if (signals[i].signum != signum || c->sig_ref[i] == LUA_NOREF) continue;
    lua_State *L = hg_lua_state(c->rt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->sig_ref[i]);
    lua_pushstring(L, signals[i].name);
    hg_err err;
    if (hg_lua_task_start(c->rt, 1, NULL, NULL, &err))
      hg_log(HG_LOG_ERROR, "cannot handle a signal", "signal", signals[i].name, "error", err.msg,
             NULL);
  }
}

static int l_on_signal(lua_State *L) {
  hg_agentcore *c = upcore(L);
  const char *name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  for (size_t i = 0; i < NSIGNALS; i++) {
    if (strcmp(name, signals[i].name)) continue;
    luaL_unref(L, LUA_REGISTRYINDEX, c->sig_ref[i]);
    lua_pushvalue(L, 2);
    c->sig_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!c->sig_on[i]) {
      hg_err err;
      if (hg_loop_on_signal(c->loop, signals[i].signum, on_signal, c, &err))
        return luaL_error(L, "core.on_signal: %s", err.msg);
      c->sig_on[i] = 1;
    }
    return 0;
  }
  return luaL_argerror(L, 1, "expected \"TERM\", \"INT\" or \"HUP\"");
}

/* ---- events from the C side (the uploader) ---- */

static const char *const event_names[] = {"unauthorized", "cancel", NULL};

static int l_on_event(lua_State *L) {
  hg_agentcore *c = upcore(L);
  int i = luaL_checkoption(L, 1, NULL, event_names);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, c->event_ref[i]);
  lua_pushvalue(L, 2);
  c->event_ref[i] = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

void hg_agentcore_emit(hg_agentcore *c, const char *event, const char *arg) {
  for (int i = 0; event_names[i]; i++) {
    if (strcmp(event, event_names[i]) || c->event_ref[i] == LUA_NOREF) continue;
    lua_State *L = hg_lua_state(c->rt);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->event_ref[i]);
    lua_pushstring(L, arg ? arg : "");
    hg_err err;
    if (hg_lua_task_start(c->rt, 1, NULL, NULL, &err))
      hg_log(HG_LOG_ERROR, "cannot hand an event to the agent", "event", event, "error", err.msg,
             NULL);
  }
}

/* ---- reloading the configuration ---- */

typedef struct {
  hg_agentcore *c;
  hg_lua_wait *w;
  int abandoned;
  int rc;
  hg_err err;
  hg_lua_config *cfg;
} reload_op;

/* Runs from the loop, outside any Lua code, so the loader may use the main state. */
static void do_reload(void *data) {
  reload_op *op = data;
  if (op->abandoned) {
    free(op);
    return;
  }
  hg_lua_config_opts co = {.path = op->c->config_path, .schema = op->c->schema,
                           .env = op->c->config_env};
  op->rc = hg_lua_config_load(op->c->rt, &co, &op->cfg, &op->err);
  hg_lua_wait_done(op->w);
}

static int reload_push(lua_State *L, void *data) {
  reload_op *op = data;
  if (op->rc) {
    lua_pushnil(L);
    lua_pushstring(L, op->err.msg);
    return 2;
  }
  lua_State *main = hg_lua_state(op->c->rt);
  hg_lua_config_push(op->cfg);
  lua_xmove(main, L, 1);
  hg_agentcore_adopt_config(op->c, op->cfg);
  op->cfg = NULL;
  return 1;
}

static void reload_abandon(void *data) { ((reload_op *)data)->abandoned = 1; }

static void reload_release(void *data) {
  reload_op *op = data;
  hg_lua_config_free(op->cfg);
  free(op);
}

static const hg_lua_wait_ops reload_ops = {reload_push, reload_abandon, reload_release};

static int l_reload_config(lua_State *L) {
  hg_agentcore *c = upcore(L);
  if (!c->config_path) return luaL_error(L, "core.reload_config: no configuration file");
  hg_lua_wait *w = hg_lua_wait_new(L, "core.reload_config");
  reload_op *op = calloc(1, sizeof *op);
  hg_err err;
  if (!op || hg_timer_defer(c->loop, do_reload, op, &err)) {
    free(op);
    hg_lua_wait_discard(w);
    return luaL_error(L, "core.reload_config: cannot schedule the reload");
  }
  op->c = c;
  op->w = w;
  return hg_lua_wait_yield(L, w, &reload_ops, op);
}

/* ---- small services ---- */

static int l_params_json(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  cJSON *doc = cJSON_ParseWithLength(text, len);
  if (!doc) {
    lua_pushnil(L);
    lua_pushliteral(L, "the accept answer is not JSON");
    return 2;
  }
  const cJSON *run = cJSON_GetObjectItemCaseSensitive(doc, "run");
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(run ? run : doc, "params");
  char *all = cJSON_IsObject(params) ? cJSON_PrintUnformatted(params) : strdup("{}");
  if (!all) {
    cJSON_Delete(doc);
    return luaL_error(L, "core.params_json: out of memory");
  }
  lua_pushstring(L, all);
  free(all);
  lua_newtable(L);
  for (const cJSON *p = cJSON_IsObject(params) ? params->child : NULL; p; p = p->next) {
    char *one = cJSON_PrintUnformatted(p);
    if (!one) continue;
    lua_pushstring(L, one);
    free(one);
    lua_setfield(L, -2, p->string);
  }
  cJSON_Delete(doc);
  return 2;
}

static int l_where(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_Debug ar;
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">S", &ar);
  /* The whole file name: short_src keeps only its last ~56 characters. */
  const char *src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
  if (ar.linedefined > 0)
    lua_pushfstring(L, "%s:%d", src, ar.linedefined);
  else
    lua_pushstring(L, src);
  return 1;
}

static int l_getenv(lua_State *L) {
  const char *v = getenv(luaL_checkstring(L, 1));
  if (v)
    lua_pushstring(L, v);
  else
    lua_pushnil(L);
  return 1;
}

static int l_hostname(lua_State *L) {
  char name[256];
  if (gethostname(name, sizeof name)) snprintf(name, sizeof name, "localhost");
  name[sizeof name - 1] = '\0';
  lua_pushstring(L, name);
  return 1;
}

static int l_set_log_level(lua_State *L) {
  int level = hg_log_parse_level(luaL_checkstring(L, 1));
  luaL_argcheck(L, level >= 0, 1, "expected debug, info, warn, error or off");
  hg_log_setup(stderr, (hg_log_level)level, "agent");
  return 0;
}

/* core.release_memory(): a full collection of the Lua heap, then the C heap's free pages go
 * back to the system. For when the agent falls idle after a burst of runs: what they used is
 * free by then, but glibc keeps it (scattered between live blocks, out of reach of its own
 * trimming at the top of the heap). */
static int l_release_memory(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT);
#ifdef __GLIBC__
  malloc_trim(0);
#endif
  return 0;
}

static int l_metrics_set(lua_State *L) {
  hg_agentcore *c = upcore(L);
  const char *name = luaL_checkstring(L, 1);
  double v = luaL_checknumber(L, 2);
  luaL_argcheck(L, strlen(name) < sizeof c->metrics[0].name, 1, "name too long");
  for (int i = 0; i < c->nmetrics; i++)
    if (!strcmp(c->metrics[i].name, name)) {
      c->metrics[i].value = v;
      return 0;
    }
  if (c->nmetrics == METRICS_MAX) return luaL_error(L, "core.metrics_set: too many metrics");
  snprintf(c->metrics[c->nmetrics].name, sizeof c->metrics[0].name, "%s", name);
  c->metrics[c->nmetrics++].value = v;
  return 0;
}

void hg_agentcore_push(hg_agentcore *c, lua_State *L) {
  static const luaL_Reg funcs[] = {
      {"session_key", l_session_key}, {"open_secrets", l_open_secrets},
      {"register", l_register},       {"set_session", l_set_session},
      {"on_signal", l_on_signal},     {"on_event", l_on_event},
      {"reload_config", l_reload_config},
      {"params_json", l_params_json}, {"where", l_where},
      {"getenv", l_getenv},           {"hostname", l_hostname},
      {"metrics_set", l_metrics_set}, {"set_log_level", l_set_log_level},
      {"release_memory", l_release_memory},
      {NULL, NULL}};
  lua_newtable(L);
  lua_pushlightuserdata(L, c);
  luaL_setfuncs(L, funcs, 1);
  hg_agentcond_push_new(L);
  lua_setfield(L, -2, "cond");
  hg_agentfs_push(L);
  lua_setfield(L, -2, "fs");
  lua_pushstring(L, c->state_dir);
  lua_setfield(L, -2, "state_dir");
  lua_pushstring(L, c->hub_url);
  lua_setfield(L, -2, "hub_url");
  if (c->config_path) {
    lua_pushstring(L, c->config_path);
    lua_setfield(L, -2, "config_path");
  }
  lua_pushstring(L, HANGAR_VERSION);
  lua_setfield(L, -2, "version");
}
