/* The hub's API: routing, authentication, body parsing, answers and shared helpers. */
#include "hub/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "hub/api_internal.h"
#include "hub/apikey.h"

enum { BODY_NONE, BODY_OPTIONAL, BODY_OBJECT, BODY_BATCH };

typedef struct route {
  const char *method;
  const char *pattern; /* '*' matches one non-empty segment */
  int allow;           /* API_* bits; API_PUBLIC for no authentication */
  int body;
  size_t limit;
  const char *name;
  void (*fn)(api_ctx *c);
} route;

#define USERS (API_ADMIN | API_USER)
#define L HG_HUB_BODY_LIMIT

static const route routes[] = {
    {"GET", "/healthz", API_PUBLIC, BODY_NONE, L, "healthz", api_healthz},
    {"GET", "/metrics", USERS, BODY_NONE, L, "metrics", api_metrics},
    {"POST", "/v1/keys", API_ADMIN, BODY_OBJECT, L, "create_key", api_key_create},
    {"GET", "/v1/keys", API_ADMIN, BODY_NONE, L, "list_keys", api_key_list},
    {"DELETE", "/v1/keys/*", API_ADMIN, BODY_NONE, L, "revoke_key", api_key_revoke},
    {"POST", "/v1/tasks", USERS, BODY_OBJECT, L, "deploy_task", api_task_deploy},
    {"GET", "/v1/tasks", USERS, BODY_NONE, L, "list_tasks", api_task_list},
    {"GET", "/v1/tasks/*", USERS, BODY_NONE, L, "get_task", api_task_get},
    {"POST", "/v1/runs", USERS | API_RUN_TOKEN, BODY_OBJECT, L, "create_run", api_run_create},
    {"GET", "/v1/runs", USERS, BODY_NONE, L, "list_runs", api_run_list},
    {"GET", "/v1/runs/*", USERS | API_RUN_TOKEN, BODY_NONE, L, "get_run", api_run_get},
    {"GET", "/v1/runs/*/events", USERS | API_RUN_TOKEN, BODY_NONE, L, "read_events",
     api_run_events},
    {"POST", "/v1/runs/*/cancel", USERS, BODY_OPTIONAL, L, "cancel_run", api_run_cancel},
    {"PUT", "/v1/config-vars/*", USERS, BODY_OBJECT, L, "put_config", api_config_put},
    {"GET", "/v1/config-vars", USERS, BODY_NONE, L, "list_config", api_config_list},
    {"DELETE", "/v1/config-vars/*", USERS, BODY_NONE, L, "delete_config", api_config_delete},
    {"POST", "/v1/agents", API_AGENT_KEY | API_ADMIN, BODY_OBJECT, L, "register",
     api_agent_register},
    {"GET", "/v1/agents/*/work", API_SESSION, BODY_NONE, L, "work", api_agent_work},
    {"POST", "/v1/agents/*/heartbeat", API_SESSION, BODY_OBJECT, L, "heartbeat",
     api_agent_heartbeat},
    {"DELETE", "/v1/agents/*", API_SESSION, BODY_NONE, L, "deregister", api_agent_deregister},
    {"POST", "/v1/runs/*/accept", API_SESSION, BODY_OBJECT, L, "accept", api_run_accept},
    {"POST", "/v1/runs/*/start", API_SESSION, BODY_OPTIONAL, L, "start", api_run_start},
    {"POST", "/v1/runs/*/events", API_SESSION, BODY_BATCH, HG_HUB_EVENTS_LIMIT, "post_events",
     api_run_post_events},
    {"POST", "/v1/runs/*/finish", API_SESSION, BODY_OBJECT, L, "finish", api_run_finish},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

/* ---- answers ---- */

static void res_reset(hg_api_res *res) {
  cJSON_Delete(res->json);
  res->json = NULL;
  hg_buf_free(&res->text);
  res->content_type = NULL;
  res->allow[0] = '\0';
  res->park = false;
}

void api_json(api_ctx *c, int status, cJSON *body) {
  res_reset(c->res);
  c->res->status = status;
  c->res->json = body;
}

static void set_error(hg_api_res *res, int status, const char *code, const char *msg) {
  res_reset(res);
  res->status = status;
  cJSON *doc = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(doc, "error");
  cJSON_AddStringToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", msg);
  res->json = doc;
}

void api_error(api_ctx *c, int status, const char *code, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  set_error(c->res, status, code, msg);
}

void api_bad(api_ctx *c, const hg_err *err) {
  if (err->code == HG_ENOMEM) {
    api_internal(c, "out of memory", err);
    return;
  }
  set_error(c->res, 400, "bad_request", err->msg);
}

void api_internal(api_ctx *c, const char *what, const hg_err *err) {
  hg_log(HG_LOG_ERROR, what, "error", err ? err->msg : "unknown", "route",
         c->res->route ? c->res->route : "", NULL);
  set_error(c->res, 500, "internal", "the hub failed to handle this request; see its log");
}

void api_error_extra(api_ctx *c, const char *name, cJSON *value) {
  if (c->res->json)
    cJSON_AddItemToObject(c->res->json, name, value);
  else
    cJSON_Delete(value);
}

void api_invalid_transition(api_ctx *c, const hg_store_run *run, const char *what) {
  api_error(c, 409, "invalid_transition", "%s: run %s is %s", what, run->id,
            hg_store_run_status_name(run->status));
  api_error_extra(c, "status", cJSON_CreateString(hg_store_run_status_name(run->status)));
}

const char *hg_api_error_code(int status) {
  switch (status) {
  case 400: return "bad_request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 409: return "conflict";
  case 413: return "too_large";
  case 429: return "rate_limited";
  case 503: return "unavailable";
  default: return status >= 500 ? "internal" : "bad_request";
  }
}

int hg_api_res_body(hg_api_res *res, hg_buf *out) {
  if (res->json) {
    char *text = cJSON_PrintUnformatted(res->json);
    if (!text) return HG_ENOMEM;
    int rc = hg_buf_appends(out, text);
    free(text);
    return rc;
  }
  return res->text.len ? hg_buf_append(out, res->text.data, res->text.len) : 0;
}

void hg_api_res_clear(hg_api_res *res) {
  cJSON_Delete(res->json);
  res->json = NULL;
  hg_buf_free(&res->text);
}

/* ---- small helpers ---- */

cJSON *api_time(int64_t ms) {
  if (ms <= 0) return cJSON_CreateNull();
  char ts[HG_TS_LEN];
  hg_clock_format(ms, ts);
  return cJSON_CreateString(ts);
}

cJSON *api_parse_stored(const char *text, const char *def) {
  cJSON *v = cJSON_Parse(text ? text : def);
  return v ? v : cJSON_Parse(def);
}

bool api_task_memo_has(api_ctx *c, const char *slug, int64_t revision) {
  const hg_hub_task_memo *m = &c->hub->task_memo;
  return m->slug && m->revision == revision && !strcmp(m->slug, slug);
}

const cJSON *api_task_def(api_ctx *c, const char *slug, int64_t revision, const char *definition,
                          hg_err *err) {
  hg_hub_task_memo *m = &c->hub->task_memo;
  if (api_task_memo_has(c, slug, revision)) return m->def;
  hg_hub_task_memo_clear(m);
  m->def = api_parse_stored(definition, "{}");
  m->slug = strdup(slug);
  if (!m->def || !m->slug) {
    hg_hub_task_memo_clear(m);
    hg_err_set(err, HG_ENOMEM, "out of memory parsing task '%.64s' revision %lld", slug,
               (long long)revision);
    return NULL;
  }
  m->revision = revision;
  return m->def;
}

bool api_id_valid(const char *id) {
  size_t n = strlen(id);
  if (n < 1 || n > HG_HUB_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    char ch = id[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-'))
      return false;
  }
  return true;
}

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Percent-decodes s[0..n) into out (size bytes); '+' is a space in a query. False when it does
 * not fit or holds a NUL. */
static bool url_decode(const char *s, size_t n, bool plus, char *out, size_t size) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    if (ch == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
      ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
      i += 2;
    } else if (ch == '+' && plus) {
      ch = ' ';
    }
    if (ch == '\0' || o + 1 >= size) return false;
    out[o++] = ch;
  }
  out[o] = '\0';
  return true;
}

bool api_query(api_ctx *c, const char *name, char *buf, size_t size) {
  const char *q = c->req->query;
  if (!q) return false;
  size_t nlen = strlen(name);
  bool found = false;
  while (*q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    size_t klen = eq ? (size_t)(eq - q) : len;
    char key[64];
    if (url_decode(q, klen, true, key, sizeof key) && strlen(key) == nlen &&
        memcmp(key, name, nlen) == 0) {
      /* The last occurrence wins, as most servers do. */
      if (eq)
        found = url_decode(eq + 1, len - klen - 1, true, buf, size);
      else
        found = size > 0 && (buf[0] = '\0', true);
    }
    q += len;
    if (*q == '&') q++;
  }
  return found;
}

bool api_query_int(api_ctx *c, const char *name, int64_t def, int64_t lo, int64_t hi, bool clamp,
                   int64_t *out) {
  char buf[64];
  if (!api_query(c, name, buf, sizeof buf)) {
    *out = def;
    return true;
  }
  char *end = NULL;
  long long v = strtoll(buf, &end, 10);
  if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-') || *end != '\0') {
    api_error(c, 400, "bad_request", "%s: expected an integer, got '%.40s'", name, buf);
    return false;
  }
  if (v < lo || v > hi) {
    if (!clamp) {
      api_error(c, 400, "bad_request", "%s: %lld is outside %lld..%lld", name, v, (long long)lo,
                (long long)hi);
      return false;
    }
    v = v < lo ? lo : hi;
  }
  *out = v;
  return true;
}

bool api_begin(api_ctx *c) {
  hg_err err = {0};
  if (hg_store_begin(c->hub->store, &err)) {
    api_internal(c, "store: begin failed", &err);
    return false;
  }
  return true;
}

bool api_commit(api_ctx *c) {
  hg_err err = {0};
  if (hg_store_commit(c->hub->store, &err)) {
    api_internal(c, "store: commit failed", &err);
    return false;
  }
  return true;
}

void api_rollback(api_ctx *c) { hg_store_rollback(c->hub->store); }

/* ---- routing ---- */

/* Matches path against pattern, capturing '*' segments into c->arg. */
static bool match(const char *pattern, const char *path, api_ctx *c) {
  int n = 0;
  const char *p = pattern, *s = path;
  while (*p) {
    if (*p == '*') {
      const char *end = strchr(s, '/');
      size_t len = end ? (size_t)(end - s) : strlen(s);
      if (len == 0 || n >= 2) return false;
      if (c && !url_decode(s, len, false, c->arg[n], sizeof c->arg[n])) return false;
      n++;
      s += len;
      p++;
    } else {
      if (*p != *s) return false;
      p++;
      s++;
    }
  }
  return *s == '\0';
}

/* ---- authentication ---- */

static bool authenticate(api_ctx *c) {
  const char *h = c->req->authorization;
  if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
    api_error(c, 401, "unauthorized", "missing Authorization: Bearer credential");
    return false;
  }
  const char *tok = h + 7;
  while (*tok == ' ') tok++;
  size_t len = strlen(tok);
  while (len && (tok[len - 1] == ' ' || tok[len - 1] == '\t')) len--;
  hg_err err = {0};
  char id[HG_APIKEY_ID_LEN + 1];
  const char *secret;
  uint8_t hash[HG_APIKEY_HASH_LEN];
  hg_store *st = c->hub->store;
  if (hg_apikey_parse(tok, len, id, &secret)) {
    int rc = hg_store_key_get(st, id, &c->key, &err);
    if (rc == HG_ENOENT) {
      api_error(c, 401, "unauthorized", "unknown or revoked API key");
      return false;
    }
    if (rc) {
      api_internal(c, "store: reading a key", &err);
      return false;
    }
    hg_apikey_hash(secret, HG_APIKEY_SECRET_LEN, hash);
    if (!hg_crypto_equal(hash, c->key.secret_hash, sizeof hash) || c->key.revoked_ms) {
      api_error(c, 401, "unauthorized", "unknown or revoked API key");
      return false;
    }
    if (!strcmp(c->key.role, "admin"))
      c->principal = API_ADMIN;
    else if (!strcmp(c->key.role, "user"))
      c->principal = API_USER;
    else
      c->principal = API_AGENT_KEY;
    /* Last use is kept to the second: one write per key per second at most. */
    if (c->now - c->key.last_used_ms >= 1000 && !hg_store_begin(st, &err)) {
      if (hg_store_key_touch(st, c->key.id, c->now, &err) || hg_store_commit(st, &err)) {
        hg_store_rollback(st);
        hg_log(HG_LOG_WARN, "cannot record a key's last use", "error", err.msg, NULL);
      }
    }
    return true;
  }
  if (len == HG_APIKEY_TOKEN_LEN && !strncmp(tok, HG_APIKEY_SESSION_PREFIX, 4)) {
    hg_apikey_hash(tok, len, hash);
    int rc = hg_store_agent_by_session(st, hash, &c->agent, &err);
    if (rc == HG_ENOENT) {
      api_error(c, 401, "unauthorized", "session ended; register again");
      return false;
    }
    if (rc) {
      api_internal(c, "store: reading a session", &err);
      return false;
    }
    if (!hg_hub_agent_alive(c->hub, c->agent.id)) {
      /* Lapsed: end it now rather than at the next sweep, so the answer stays true. */
      if (!hg_store_begin(st, &err)) {
        if (hg_store_agent_end_session(st, c->agent.id, &err) || hg_store_commit(st, &err))
          hg_store_rollback(st);
      }
      hg_log(HG_LOG_INFO, "agent session lapsed", "agent", c->agent.id, NULL);
      api_error(c, 401, "unauthorized", "session lapsed; register again");
      return false;
    }
    c->principal = API_SESSION;
    return true;
  }
  if (len == HG_APIKEY_TOKEN_LEN && !strncmp(tok, HG_APIKEY_RUN_PREFIX, 4)) {
    hg_apikey_hash(tok, len, hash);
    int rc = hg_store_run_by_token(st, hash, &c->run, &err);
    if (rc == HG_ENOENT || (!rc && hg_store_run_status_ended(c->run.status))) {
      api_error(c, 401, "unauthorized", "unknown run token, or its run has ended");
      return false;
    }
    if (rc) {
      api_internal(c, "store: reading a run token", &err);
      return false;
    }
    c->principal = API_RUN_TOKEN;
    return true;
  }
  api_error(c, 401, "unauthorized", "unknown credential");
  return false;
}

static const char *principal_name(int p) {
  switch (p) {
  case API_ADMIN: return "an admin key";
  case API_USER: return "a user key";
  case API_AGENT_KEY: return "an agent key";
  case API_SESSION: return "an agent session token";
  case API_RUN_TOKEN: return "a run token";
  default: return "this credential";
  }
}

static bool parse_body(api_ctx *c, const route *r) {
  hg_api_req *req = c->req;
  if (r->body == BODY_NONE) return true;
  size_t n = req->body_len;
  const char *b = req->body;
  size_t i = 0;
  while (i < n && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t')) i++;
  if (i == n) {
    if (r->body == BODY_OPTIONAL) return true;
    api_error(c, 400, "bad_request", "body: expected a JSON object, got nothing");
    return false;
  }
  hg_err err = {0};
  if (hg_fields_check_body(b, n, &err)) {
    api_bad(c, &err);
    return false;
  }
  /* An event batch is read by its endpoint, which does not need the whole body as a tree. */
  if (r->body == BODY_BATCH) return true;
  c->body = hg_fields_parse_object(b, n, &err);
  if (!c->body) {
    api_bad(c, &err);
    return false;
  }
  return true;
}

void hg_api_handle(hg_hub *hub, hg_api_req *req, hg_api_res *res) {
  api_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  api_ctx *c = &ctx;
  c->hub = hub;
  c->req = req;
  c->res = res;
  c->now = hg_hub_now(hub);
  res_reset(res);
  res->status = 0;

  const route *found = NULL;
  bool path_known = false, path_public = false;
  char allow[64] = "";
  for (size_t i = 0; i < N_ROUTES; i++) {
    if (!match(routes[i].pattern, req->path, NULL)) continue;
    path_known = true;
    if (routes[i].allow == API_PUBLIC) path_public = true;
    if (!strcmp(routes[i].method, req->method)) {
      found = &routes[i];
    } else if (!strstr(allow, routes[i].method)) {
      if (allow[0]) strncat(allow, ", ", sizeof allow - strlen(allow) - 1);
      strncat(allow, routes[i].method, sizeof allow - strlen(allow) - 1);
    }
  }
  res->route = found ? found->name : "unmatched";
  /* Authentication comes first (401 before 404 and 405), except on the public paths. */
  if (!(path_public || (found && found->allow == API_PUBLIC)) && !authenticate(c)) goto done;
  if (!path_known) {
    api_error(c, 404, "not_found", "no endpoint %s %s", req->method, req->path);
    goto done;
  }
  if (!found) {
    api_error(c, 405, "method_not_allowed", "%s is not allowed on %s (allowed: %s)",
              req->method, req->path, allow);
    snprintf(res->allow, sizeof res->allow, "%s", allow);
    goto done;
  }
  if (found->allow != API_PUBLIC && !(found->allow & c->principal)) {
    api_error(c, 403, "forbidden", "%s may not call %s %s", principal_name(c->principal),
              found->method, found->pattern);
    goto done;
  }
  if (req->body_len > found->limit) {
    api_error(c, 413, "too_large", "request body of %zu bytes is over the %zu-byte limit of %s %s",
              req->body_len, found->limit, found->method, found->pattern);
    goto done;
  }
  if (!match(found->pattern, req->path, c)) {
    api_error(c, 404, "not_found", "no endpoint %s %s", req->method, req->path);
    goto done;
  }
  if (!parse_body(c, found)) goto done;
  found->fn(c);
  if (!res->status && !res->park && !res->sent) api_internal(c, "handler gave no answer", NULL);
done:
  cJSON_Delete(c->body);
  hg_store_key_clear(&c->key);
  hg_store_agent_clear(&c->agent);
  hg_store_run_clear(&c->run);
}

/* ---- the run view shared by GET /v1/runs and GET /v1/runs/{id} ---- */

cJSON *api_run_view(api_ctx *c, const hg_store_run *r) {
  cJSON *v = cJSON_CreateObject();
  cJSON_AddStringToObject(v, "id", r->id);
  cJSON_AddStringToObject(v, "task", r->task);
  cJSON_AddNumberToObject(v, "revision", (double)r->revision);
  cJSON_AddStringToObject(v, "status", hg_store_run_status_name(r->status));
  cJSON_AddItemToObject(v, "params", api_parse_stored(r->params, "{}"));
  cJSON_AddItemToObject(v, "created_at", api_time(r->created_ms));
  cJSON_AddItemToObject(v, "accepted_at", api_time(r->accepted_ms));
  cJSON_AddItemToObject(v, "started_at", api_time(r->started_ms));
  cJSON_AddItemToObject(v, "finished_at", api_time(r->finished_ms));
  cJSON_AddItemToObject(v, "deadline_at", api_time(r->deadline_ms));
  cJSON_AddItemToObject(v, "exit_code", r->has_exit_code ? cJSON_CreateNumber((double)r->exit_code)
                                                         : cJSON_CreateNull());
  cJSON_AddItemToObject(v, "error", r->error ? cJSON_CreateString(r->error) : cJSON_CreateNull());
  if (r->agent_id && r->status != HG_RUN_QUEUED) {
    cJSON *a = cJSON_AddObjectToObject(v, "agent");
    cJSON_AddStringToObject(a, "id", r->agent_id);
    hg_store_agent ag;
    hg_err err = {0};
    if (hg_store_agent_get(c->hub->store, r->agent_id, &ag, &err) == 0) {
      cJSON_AddStringToObject(a, "name", ag.name);
      hg_store_agent_clear(&ag);
    } else {
      cJSON_AddNullToObject(a, "name");
    }
  } else {
    cJSON_AddNullToObject(v, "agent");
  }
  cJSON_AddNumberToObject(v, "attempt", (double)r->attempt);
  cJSON_AddNumberToObject(v, "events", (double)r->next_seq);
  cJSON_AddItemToObject(v, "outputs", api_parse_stored(r->outputs, "null"));
  cJSON_AddItemToObject(v, "output_errors", api_parse_stored(r->output_errors, "[]"));
  return v;
}
