/* The user API: keys, tasks, runs, config variables, health and metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/log.h"
#include "hub/api_internal.h"
#include "hub/apikey.h"
#include "hub/task.h"

/* A read of events stops adding events past this many bytes of event text, so one answer stays
 * a sensible size whatever limit asked for. */
#define EVENTS_READ_BYTES (4u << 20)

/* ---- health and metrics ---- */

void api_healthz(api_ctx *c) {
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddTrueToObject(doc, "ok");
  api_json(c, 200, doc);
}

void api_metrics(api_ctx *c) {
  hg_hub *hub = c->hub;
  int64_t counts[HG_RUN_STATUS_COUNT];
  hg_err err = {0};
  if (hg_store_run_count_by_status(hub->store, counts, &err)) {
    api_internal(c, "store: counting runs", &err);
    return;
  }
  const char *names[HG_RUN_STATUS_COUNT];
  for (int i = 0; i < HG_RUN_STATUS_COUNT; i++) names[i] = hg_store_run_status_name(i);
  int64_t connected = 0;
  for (hg_hub_agent *a = hub->agents; a; a = a->next)
    if (hg_hub_agent_alive(hub, a->id)) connected++;
  hg_metrics_gauges g = {names, counts, HG_RUN_STATUS_COUNT, connected,
                         (int64_t)hub->n_waiters};
  api_json(c, 200, NULL);
  if (hg_metrics_render(&hub->metrics, &g, &c->res->text)) {
    api_internal(c, "metrics: out of memory", NULL);
    return;
  }
  c->res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- keys ---- */

static cJSON *key_view(const hg_store_key *k) {
  cJSON *v = cJSON_CreateObject();
  cJSON_AddStringToObject(v, "id", k->id);
  cJSON_AddStringToObject(v, "role", k->role);
  cJSON_AddStringToObject(v, "name", k->name);
  cJSON_AddItemToObject(v, "labels", api_parse_stored(k->labels, "{}"));
  cJSON_AddItemToObject(v, "created_at", api_time(k->created_ms));
  cJSON_AddItemToObject(v, "last_used_at", api_time(k->last_used_ms));
  cJSON_AddBoolToObject(v, "revoked", k->revoked_ms != 0);
  cJSON_AddItemToObject(v, "revoked_at", api_time(k->revoked_ms));
  return v;
}

void api_key_create(api_ctx *c) {
  hg_err err = {0};
  const char *role = NULL, *name = "";
  const cJSON *labels = NULL;
  if (hg_fields_string(c->body, "role", "", true, &role, &err) ||
      hg_fields_string(c->body, "name", "", false, &name, &err) ||
      hg_fields_string_map(c->body, "labels", "", false, &labels, &err)) {
    api_bad(c, &err);
    return;
  }
  if (strcmp(role, "admin") && strcmp(role, "user") && strcmp(role, "agent")) {
    api_error(c, 400, "bad_request", "role: '%.40s' is not one of admin, user, agent", role);
    return;
  }
  if (labels && labels->child && strcmp(role, "agent") != 0) {
    api_error(c, 400, "bad_request", "labels: only agent keys carry labels");
    return;
  }
  if (strlen(name) > 200) {
    api_error(c, 400, "bad_request", "name: longer than 200 bytes");
    return;
  }
  char id[HG_APIKEY_ID_LEN + 1], key[HG_APIKEY_LEN + 1];
  hg_store_key k = {0};
  if (hg_apikey_generate(id, key, k.secret_hash, &err)) {
    api_internal(c, "generating a key", &err);
    return;
  }
  char *labels_text = labels ? hg_fields_print(labels) : NULL;
  k.id = id;
  k.role = (char *)role;
  k.name = (char *)name;
  k.labels = labels_text ? labels_text : (char *)"{}";
  k.created_ms = c->now;
  if (!api_begin(c)) goto out;
  if (hg_store_key_insert(c->hub->store, &k, &err)) {
    api_rollback(c);
    api_internal(c, "store: inserting a key", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  hg_log(HG_LOG_INFO, "API key created", "key_id", id, "role", role, NULL);
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "id", id);
  cJSON_AddStringToObject(doc, "key", key);
  cJSON_AddStringToObject(doc, "role", role);
  cJSON_AddStringToObject(doc, "name", name);
  cJSON_AddItemToObject(doc, "labels", api_parse_stored(k.labels, "{}"));
  cJSON_AddItemToObject(doc, "created_at", api_time(c->now));
  api_json(c, 201, doc);
out:
  hg_crypto_wipe(key, sizeof key);
  free(labels_text);
}

void api_key_list(api_ctx *c) {
  hg_store_key *keys = NULL;
  size_t n = 0;
  hg_err err = {0};
  if (hg_store_key_list(c->hub->store, &keys, &n, &err)) {
    api_internal(c, "store: listing keys", &err);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(doc, "keys");
  for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, key_view(&keys[i]));
  hg_store_keys_free(keys, n);
  api_json(c, 200, doc);
}

void api_key_revoke(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  hg_store_key k;
  int rc = hg_store_key_get(hub->store, c->arg[0], &k, &err);
  if (rc == HG_ENOENT) {
    api_error(c, 404, "not_found", "key '%.64s' not found", c->arg[0]);
    return;
  }
  if (rc) {
    api_internal(c, "store: reading a key", &err);
    return;
  }
  hg_store_agent *agents = NULL;
  size_t n = 0;
  if (!api_begin(c)) goto out;
  if ((!k.revoked_ms && hg_store_key_revoke(hub->store, k.id, c->now, &err)) ||
      hg_store_agent_list_sessions(hub->store, k.id, &agents, &n, &err)) {
    api_rollback(c);
    api_internal(c, "store: revoking a key", &err);
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (hg_store_agent_end_session(hub->store, agents[i].id, &err)) {
      api_rollback(c);
      api_internal(c, "store: ending a session", &err);
      goto out;
    }
  }
  if (!api_commit(c)) goto out;
  /* The key's agents learn it at their next call, or at once through a parked poll. */
  for (size_t i = 0; i < n; i++) {
    hg_hub_wake_agent(hub, agents[i].id);
    hg_log(HG_LOG_INFO, "agent session ended: its key was revoked", "agent", agents[i].id,
           "key_id", k.id, NULL);
  }
  if (!k.revoked_ms) hg_log(HG_LOG_INFO, "API key revoked", "key_id", k.id, NULL);
  api_json(c, 204, NULL);
out:
  hg_store_agents_free(agents, n);
  hg_store_key_clear(&k);
}

/* ---- tasks ---- */

void api_task_deploy(api_ctx *c) {
  hg_err err = {0};
  cJSON *normal = NULL;
  if (hg_task_normalize(c->body, &normal, &err)) {
    api_bad(c, &err);
    return;
  }
  char *canonical = hg_fields_canonical(c->body);
  char *definition = hg_fields_print(normal);
  const char *slug = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(normal, "slug"));
  hg_store_task cur = {0};
  if (!canonical || !definition) {
    api_internal(c, "out of memory", NULL);
    goto out;
  }
  if (!api_begin(c)) goto out;
  int rc = hg_store_task_get(c->hub->store, slug, 0, &cur, &err);
  if (rc && rc != HG_ENOENT) {
    api_rollback(c);
    api_internal(c, "store: reading a task", &err);
    goto out;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "slug", slug);
  if (rc == 0 && !strcmp(cur.canonical, canonical)) {
    api_rollback(c);
    cJSON_AddNumberToObject(doc, "revision", (double)cur.revision);
    api_json(c, 200, doc);
    goto out;
  }
  hg_store_task t = {.slug = (char *)slug,
                     .revision = rc == 0 ? cur.revision + 1 : 1,
                     .definition = definition,
                     .canonical = canonical,
                     .created_ms = c->now};
  if (hg_store_task_insert(c->hub->store, &t, &err)) {
    cJSON_Delete(doc);
    api_rollback(c);
    api_internal(c, "store: inserting a task", &err);
    goto out;
  }
  if (!api_commit(c)) {
    cJSON_Delete(doc);
    goto out;
  }
  char rev[24];
  snprintf(rev, sizeof rev, "%lld", (long long)t.revision);
  hg_log(HG_LOG_INFO, "task deployed", "task", slug, "revision", rev, NULL);
  cJSON_AddNumberToObject(doc, "revision", (double)t.revision);
  api_json(c, 201, doc);
out:
  hg_store_task_clear(&cur);
  free(canonical);
  free(definition);
  cJSON_Delete(normal);
}

void api_task_list(api_ctx *c) {
  hg_store_task *tasks = NULL;
  size_t n = 0;
  hg_err err = {0};
  if (hg_store_task_list(c->hub->store, &tasks, &n, &err)) {
    api_internal(c, "store: listing tasks", &err);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(doc, "tasks");
  for (size_t i = 0; i < n; i++) {
    cJSON *def = api_parse_stored(tasks[i].definition, "{}");
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "slug", tasks[i].slug);
    cJSON_AddStringToObject(v, "name",
                            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(def, "name")));
    cJSON_AddStringToObject(
        v, "description",
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(def, "description")));
    cJSON_AddNumberToObject(v, "revision", (double)tasks[i].revision);
    cJSON_AddItemToObject(v, "updated_at", api_time(tasks[i].created_ms));
    cJSON_AddItemToArray(arr, v);
    cJSON_Delete(def);
  }
  hg_store_tasks_free(tasks, n);
  api_json(c, 200, doc);
}

void api_task_get(api_ctx *c) {
  int64_t revision = 0;
  if (!api_query_int(c, "revision", 0, 1, INT64_MAX, false, &revision)) return;
  hg_store_task t;
  hg_err err = {0};
  int rc = hg_store_task_get(c->hub->store, c->arg[0], revision, &t, &err);
  if (rc == HG_ENOENT) {
    if (revision)
      api_error(c, 404, "not_found", "task '%.64s' has no revision %lld", c->arg[0],
                (long long)revision);
    else
      api_error(c, 404, "not_found", "task '%.64s' not found", c->arg[0]);
    return;
  }
  if (rc) {
    api_internal(c, "store: reading a task", &err);
    return;
  }
  cJSON *doc = api_parse_stored(t.definition, "{}");
  cJSON_AddNumberToObject(doc, "revision", (double)t.revision);
  cJSON_AddItemToObject(doc, "updated_at", api_time(t.created_ms));
  hg_store_task_clear(&t);
  api_json(c, 200, doc);
}

/* ---- runs ---- */

void api_run_create(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  const char *slug = NULL;
  const cJSON *given = NULL;
  if (hg_fields_string(c->body, "task", "", true, &slug, &err) ||
      hg_fields_object(c->body, "params", "", false, &given, &err)) {
    api_bad(c, &err);
    return;
  }
  hg_store_task t = {0};
  const cJSON *def = NULL;
  cJSON *params = NULL;
  char *params_text = NULL, *constraints_text = NULL;
  char offered_to[HG_HUB_ID_MAX + 1] = ""; /* the agent offered the run, until it is created */
  /* The reads go in the run's transaction: outside one, each would be a transaction of its
   * own, with its own round of file locks. */
  if (!api_begin(c)) return;
  bool in_tx = true;
  int rc = hg_store_task_get(hub->store, slug, 0, &t, &err);
  if (rc == HG_ENOENT) {
    api_error(c, 404, "not_found", "task '%.64s' not found", slug);
    goto out;
  }
  if (rc) {
    api_internal(c, "store: reading a task", &err);
    goto out;
  }
  def = api_task_def(c, t.slug, t.revision, t.definition, &err);
  if (!def) {
    api_internal(c, "parsing a task", &err);
    goto out;
  }
  if (hg_task_params(def, given, &params, &err)) {
    api_bad(c, &err);
    goto out;
  }
  /* A task that needs a config variable nobody has set would only fail later, on an agent. */
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(def, "env");
  for (const cJSON *e = env ? env->child : NULL; e; e = e->next) {
    const char *var = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "config"));
    if (!var) continue;
    hg_store_config cv;
    rc = hg_store_config_get(hub->store, var, &cv, &err);
    if (rc == 0) {
      hg_store_config_clear(&cv);
      continue;
    }
    if (rc == HG_ENOENT)
      api_error(c, 400, "bad_request", "env.%s: config variable '%s' is not set", e->string, var);
    else
      api_internal(c, "store: reading a config variable", &err);
    goto out;
  }
  params_text = hg_fields_print(params);
  constraints_text = hg_fields_print(cJSON_GetObjectItemCaseSensitive(def, "constraints"));
  char id[40];
  if (!params_text || !constraints_text ||
      hg_apikey_random_id("run_", 20, id, sizeof id, &err)) {
    api_internal(c, "creating a run", &err);
    goto out;
  }
  int64_t timeout = 0;
  hg_fields_int(def, "timeout", "", false, &timeout, NULL);
  hg_store_run r = {.id = id,
                    .task = t.slug,
                    .revision = t.revision,
                    .status = HG_RUN_QUEUED,
                    .params = params_text,
                    .constraints = constraints_text,
                    .timeout_s = timeout,
                    .created_ms = c->now};
  char lease[40] = "";
  hg_hub_waiter *taker = api_work_taker(c, constraints_text);
  if (taker && api_work_assign_new(c, taker, &r, offered_to, lease, sizeof lease, &err)) {
    api_internal(c, "making a lease id", &err);
    goto out;
  }
  /* The poll's answer goes out before the run's row is written and committed (the
   * creator's only after the commit): the agent works on it while the hub writes. Nothing
   * runs on the hub's thread before the commit ends, so the accept is read after it, and if
   * the insert or the commit failed (or the hub stopped first) the accept finds no run and is
   * refused; the offer alone starts nothing. */
  if (taker) api_work_answer_new(c, taker, id, lease);
  if (hg_store_run_insert(hub->store, &r, &err)) {
    api_internal(c, "store: inserting a run", &err);
    goto out;
  }
  in_tx = false;
  if (!api_commit(c)) goto out;
  hub->metrics.runs_created++;
  hg_log(HG_LOG_INFO, "run created", "run", id, "task", t.slug, NULL);
  if (offered_to[0]) {
    hg_log(HG_LOG_INFO, "run assigned", "run", id, "agent", offered_to, NULL);
    api_run_token_prepare(c, id, 1);
  } else {
    hg_hub_wake_queue(hub, id);
  }
  offered_to[0] = '\0';
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "run_id", id);
  api_json(c, 201, doc);
out:
  if (offered_to[0])
    hg_log(HG_LOG_WARN, "run offered but not created", "run", id, "agent", offered_to, NULL);
  if (in_tx) api_rollback(c);
  free(params_text);
  free(constraints_text);
  cJSON_Delete(params);
  hg_store_task_clear(&t);
}

void api_run_list(api_ctx *c) {
  int64_t limit;
  if (!api_query_int(c, "limit", 50, 1, 1000, false, &limit)) return;
  char task[80], status[40];
  hg_store_run_query q = {.set = HG_RUNS_ALL, .status = -1, .limit = (size_t)limit};
  if (api_query(c, "task", task, sizeof task) && task[0]) q.task = task;
  if (api_query(c, "status", status, sizeof status) && status[0]) {
    q.status = hg_store_run_status_parse(status);
    if (q.status < 0) {
      api_error(c, 400, "bad_request",
                "status: '%.40s' is not one of queued, assigned, accepted, running, cancelling, "
                "succeeded, failed, cancelled",
                status);
      return;
    }
  }
  hg_store_run *runs = NULL;
  size_t n = 0;
  hg_err err = {0};
  if (hg_store_run_list(c->hub->store, &q, &runs, &n, &err)) {
    api_internal(c, "store: listing runs", &err);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(doc, "runs");
  for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, api_run_view(c, &runs[i]));
  hg_store_runs_free(runs, n);
  api_json(c, 200, doc);
}

/* Loads the run named by the path for a user or a run token; a run token sees only its own. */
static bool readable_run(api_ctx *c, hg_store_run *r) {
  hg_err err = {0};
  if (c->principal == API_RUN_TOKEN && strcmp(c->run.id, c->arg[0]) != 0) {
    api_error(c, 404, "not_found", "run '%.64s' not found", c->arg[0]);
    return false;
  }
  int rc = hg_store_run_get(c->hub->store, c->arg[0], r, &err);
  if (rc == HG_ENOENT) {
    api_error(c, 404, "not_found", "run '%.64s' not found", c->arg[0]);
    return false;
  }
  if (rc) {
    api_internal(c, "store: reading a run", &err);
    return false;
  }
  return true;
}

void api_run_get(api_ctx *c) {
  hg_store_run r;
  if (!readable_run(c, &r)) return;
  api_json(c, 200, api_run_view(c, &r));
  hg_store_run_clear(&r);
}

void api_run_events(api_ctx *c) {
  int64_t after, wait, limit;
  if (!api_query_int(c, "after", -1, -1, INT64_MAX / 2, false, &after) ||
      !api_query_int(c, "wait", 0, 0, HG_HUB_MAX_WAIT_S, true, &wait) ||
      !api_query_int(c, "limit", 1000, 1, 10000, false, &limit))
    return;
  hg_store_run r;
  hg_store_chunk *chunks = NULL;
  size_t n = 0;
  hg_err err = {0};
  /* The run and its events in one read transaction: one round of the store's locks instead
   * of one per read (a reader is evaluated at its arrival and at every wake-up). */
  if (hg_store_begin_read(c->hub->store, &err)) {
    api_internal(c, "store: begin failed", &err);
    return;
  }
  bool found = readable_run(c, &r);
  int rc = found ? hg_store_event_read(c->hub->store, r.seqno, after, (size_t)limit,
                                       EVENTS_READ_BYTES, &chunks, &n, &err)
                 : 0;
  hg_store_commit(c->hub->store, NULL);
  if (!found) return;
  if (rc) {
    api_internal(c, "store: reading events", &err);
    hg_store_run_clear(&r);
    return;
  }
  bool ended = hg_store_run_status_ended(r.status);
  if (n == 0 && !ended && wait > 0 && !c->req->final) {
    /* Nothing yet: wait for events or the run's end. */
    c->res->park = true;
    c->res->park_kind = HG_HUB_WAIT_EVENTS;
    snprintf(c->res->park_key, sizeof c->res->park_key, "%s", r.id);
    c->res->park_deadline_ms = c->now + wait * 1000;
    hg_store_chunks_free(chunks, n);
    hg_store_run_clear(&r);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(doc, "events");
  int64_t last = after;
  hg_buf text = HG_BUF_INIT;
  for (size_t i = 0; i < n; i++) {
    /* A chunk's events joined by commas are the inside of a JSON array. */
    hg_buf_reset(&text);
    cJSON *events = NULL;
    if (!hg_buf_appendc(&text, '[') && !hg_buf_append(&text, chunks[i].text, chunks[i].len) &&
        !hg_buf_appendc(&text, ']'))
      events = cJSON_ParseWithLength(text.data, text.len);
    if (!cJSON_IsArray(events) || (size_t)cJSON_GetArraySize(events) != chunks[i].count) {
      cJSON_Delete(events);
      cJSON_Delete(doc);
      hg_buf_free(&text);
      snprintf(err.msg, sizeof err.msg, "the events of run %s from seq %lld do not parse", r.id,
               (long long)chunks[i].first_seq);
      hg_store_chunks_free(chunks, n);
      api_internal(c, "store: reading events", &err);
      hg_store_run_clear(&r);
      return;
    }
    int64_t seq = chunks[i].first_seq;
    while (events->child) {
      cJSON *e = cJSON_DetachItemViaPointer(events, events->child);
      /* seq comes first; a member of that name the agent sent does not shadow it. */
      cJSON *m;
      while ((m = cJSON_GetObjectItemCaseSensitive(e, "seq")))
        cJSON_Delete(cJSON_DetachItemViaPointer(e, m));
      /* An integer printed as one: cJSON prints every number as a double and reads it back
       * to check, which was a sixth of serving a page of events. */
      char digits[24];
      snprintf(digits, sizeof digits, "%lld", (long long)seq);
      cJSON *num = cJSON_CreateRaw(digits);
      if (num && cJSON_AddItemToObjectCS(e, "seq", num))
        cJSON_InsertItemInArray(e, 0, cJSON_DetachItemViaPointer(e, num));
      else
        cJSON_Delete(num);
      cJSON_AddItemToArray(arr, e);
      last = seq++;
    }
    cJSON_Delete(events);
  }
  hg_buf_free(&text);
  cJSON_AddNumberToObject(doc, "next_seq", (double)r.next_seq);
  cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
  cJSON_AddBoolToObject(doc, "done", ended && last + 1 >= r.next_seq);
  api_json(c, 200, doc);
  hg_store_chunks_free(chunks, n);
  hg_store_run_clear(&r);
}

void api_run_cancel(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  hg_store_run r;
  if (!api_id_valid(c->arg[0])) {
    api_error(c, 404, "not_found", "run '%.64s' not found", c->arg[0]);
    return;
  }
  if (!api_begin(c)) return;
  int rc = hg_store_run_get(hub->store, c->arg[0], &r, &err);
  if (rc) {
    api_rollback(c);
    if (rc == HG_ENOENT)
      api_error(c, 404, "not_found", "run '%.64s' not found", c->arg[0]);
    else
      api_internal(c, "store: reading a run", &err);
    return;
  }
  if (hg_store_run_status_ended(r.status)) {
    api_rollback(c);
    api_invalid_transition(c, &r, "cancel");
    hg_store_run_clear(&r);
    return;
  }
  bool tell_agent = false;
  if (r.status == HG_RUN_QUEUED || r.status == HG_RUN_ASSIGNED) {
    /* Nobody runs it yet: it ends now; an agent holding the assignment loses its lease. */
    free(r.lease_id);
    r.lease_id = NULL;
    rc = hg_hub_end_run(hub, &r, HG_RUN_CANCELLED, NULL, &err);
  } else if (r.status != HG_RUN_CANCELLING) {
    r.status = HG_RUN_CANCELLING;
    r.cancel_notified = false;
    tell_agent = true;
    rc = hg_store_run_update(hub->store, &r, &err);
  }
  if (rc) {
    api_rollback(c);
    api_internal(c, "store: cancelling a run", &err);
    hg_store_run_clear(&r);
    return;
  }
  if (!api_commit(c)) {
    hg_store_run_clear(&r);
    return;
  }
  hg_log(HG_LOG_INFO, "run cancel requested", "run", r.id, "status",
         hg_store_run_status_name(r.status), NULL);
  if (tell_agent && r.agent_id) hg_hub_wake_agent(hub, r.agent_id);
  hg_hub_wake_run(hub, r.id);
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "run_id", r.id);
  cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
  api_json(c, 202, doc);
  hg_store_run_clear(&r);
}

/* ---- config variables ---- */

void api_config_put(api_ctx *c) {
  hg_err err = {0};
  const char *name = c->arg[0];
  if (!hg_task_config_name_valid(name)) {
    api_error(c, 400, "bad_request", "name: '%.80s' does not match [A-Za-z0-9_.-]{1,128}", name);
    return;
  }
  const char *value = NULL;
  bool secret = false;
  if (hg_fields_string(c->body, "value", "", true, &value, &err) ||
      hg_fields_bool(c->body, "secret", "", false, &secret, &err)) {
    api_bad(c, &err);
    return;
  }
  hg_buf sealed = HG_BUF_INIT;
  hg_store_config cv = {.name = (char *)name, .secret = secret, .updated_ms = c->now};
  if (secret) {
    if (hg_vault_seal(&c->hub->vault, name, value, strlen(value), &sealed, &err)) {
      api_internal(c, "sealing a config variable", &err);
      return;
    }
    cv.value = (uint8_t *)sealed.data;
    cv.value_len = sealed.len;
  } else {
    cv.value = (uint8_t *)value;
    cv.value_len = strlen(value);
  }
  if (!api_begin(c)) goto out;
  if (hg_store_config_put(c->hub->store, &cv, &err)) {
    api_rollback(c);
    api_internal(c, "store: writing a config variable", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  hg_log(HG_LOG_INFO, "config variable set", "name", name, "secret", secret ? "true" : "false",
         NULL);
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "name", name);
  cJSON_AddBoolToObject(doc, "secret", secret);
  cJSON_AddItemToObject(doc, "updated_at", api_time(c->now));
  api_json(c, 200, doc);
out:
  hg_buf_free(&sealed);
}

void api_config_list(api_ctx *c) {
  hg_store_config *vars = NULL;
  size_t n = 0;
  hg_err err = {0};
  if (hg_store_config_list(c->hub->store, &vars, &n, &err)) {
    api_internal(c, "store: listing config variables", &err);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *arr = cJSON_AddArrayToObject(doc, "config_vars");
  for (size_t i = 0; i < n; i++) {
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "name", vars[i].name);
    /* Secret values are write-only: not even their sealed form leaves the hub. */
    if (vars[i].secret)
      cJSON_AddNullToObject(v, "value");
    else
      cJSON_AddStringToObject(v, "value", (const char *)vars[i].value);
    cJSON_AddBoolToObject(v, "secret", vars[i].secret);
    cJSON_AddItemToObject(v, "updated_at", api_time(vars[i].updated_ms));
    cJSON_AddItemToArray(arr, v);
  }
  hg_store_configs_free(vars, n);
  api_json(c, 200, doc);
}

void api_config_delete(api_ctx *c) {
  hg_err err = {0};
  if (!api_begin(c)) return;
  int rc = hg_store_config_delete(c->hub->store, c->arg[0], &err);
  if (rc == HG_ENOENT) {
    api_rollback(c);
    api_error(c, 404, "not_found", "config variable '%.128s' not found", c->arg[0]);
    return;
  }
  if (rc) {
    api_rollback(c);
    api_internal(c, "store: deleting a config variable", &err);
    return;
  }
  if (!api_commit(c)) return;
  hg_log(HG_LOG_INFO, "config variable deleted", "name", c->arg[0], NULL);
  api_json(c, 204, NULL);
}
