/* The agent API: register, work (long poll), accept, start, events, heartbeat, finish,
 * deregister. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/sealbox.h"
#include "hub/api_internal.h"
#include "hub/apikey.h"
#include "hub/batch.h"
#include "pipeline/outputs.h"

/* A run keeps the first this many output errors: enough to debug, bounded for a run that
 * sends nothing but broken ops. */
#define OUTPUT_ERRORS_MAX 1000

static bool is_active(hg_store_run_status s) {
  return s == HG_RUN_ACCEPTED || s == HG_RUN_RUNNING || s == HG_RUN_CANCELLING;
}

static void fail_store(api_ctx *c, const char *what, const hg_err *err) {
  api_rollback(c);
  api_internal(c, what, err);
}

/* The path's agent must be the session's own. */
static bool own_agent(api_ctx *c) {
  if (strcmp(c->arg[0], c->agent.id) != 0) {
    api_error(c, 403, "forbidden", "this session belongs to agent %s, not %.64s", c->agent.id,
              c->arg[0]);
    return false;
  }
  return true;
}

/* Loads the run of the path inside the open transaction; when there is none, rolls back and
 * answers 404, or for an accept (lease given) 409 lease_lost, as the protocol lists no other
 * refusal of one: a run offered before its creation committed is missing when that fails. */
static bool load_run(api_ctx *c, hg_store_run *r, const char *lease) {
  hg_err err = {0};
  int rc = api_id_valid(c->arg[0]) ? hg_store_run_get(c->hub->store, c->arg[0], r, &err)
                                   : HG_ENOENT;
  if (rc == HG_ENOENT) {
    api_rollback(c);
    if (lease)
      api_error(c, 409, "lease_lost", "lease '%.64s' does not hold run '%.64s' (no such run)",
                lease, c->arg[0]);
    else
      api_error(c, 404, "not_found", "run '%.64s' not found", c->arg[0]);
    return false;
  }
  if (rc) {
    fail_store(c, "store: reading a run", &err);
    return false;
  }
  return true;
}

/* The run was accepted by this session's agent (it may have ended since). */
static bool leased(api_ctx *c, hg_store_run *r) {
  if (!r->agent_id || strcmp(r->agent_id, c->agent.id) != 0) {
    api_rollback(c);
    api_error(c, 409, "lease_lost", "run %s is not leased to this agent", r->id);
    return false;
  }
  if (!r->accepted) {
    api_rollback(c);
    api_error(c, 409, "invalid_transition", "run %s is %s; accept it first", r->id,
              hg_store_run_status_name(r->status));
    api_error_extra(c, "status", cJSON_CreateString(hg_store_run_status_name(r->status)));
    return false;
  }
  return true;
}

static void renew_lease(api_ctx *c, hg_store_run *r) {
  if (is_active(r->status)) r->lease_expires_ms = c->now + c->hub->cfg.lease_ttl_s * 1000;
}

/* An optional "at" must be an RFC 3339 timestamp. The hub keeps its own clock for the run's
 * times, so one clock orders them all. */
static bool check_at(api_ctx *c) {
  const char *at = NULL;
  hg_err err = {0};
  int64_t ms;
  if (hg_fields_string(c->body, "at", "", false, &at, &err)) {
    api_bad(c, &err);
    return false;
  }
  if (at && hg_clock_parse(at, &ms) != 0) {
    api_error(c, 400, "bad_request", "at: '%.40s' is not an RFC 3339 timestamp", at);
    return false;
  }
  return true;
}

/* ---- register ---- */

static bool labels_allowed(api_ctx *c, const cJSON *labels) {
  cJSON *bound = api_parse_stored(c->key.labels, "{}");
  bool ok = true;
  for (const cJSON *b = bound ? bound->child : NULL; b && ok; b = b->next) {
    const cJSON *have = labels ? cJSON_GetObjectItemCaseSensitive(labels, b->string) : NULL;
    if (!cJSON_IsString(have) || strcmp(have->valuestring, b->valuestring) != 0) {
      api_error(c, 403, "forbidden", "labels.%s: this key is bound to %s=%s, the agent declared %s",
                b->string, b->string, b->valuestring,
                cJSON_IsString(have) ? have->valuestring : "nothing");
      ok = false;
    }
  }
  cJSON_Delete(bound);
  return ok;
}

void api_agent_register(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  const char *name = NULL, *hostname = "", *version = "", *pub = NULL, *wanted = NULL;
  const cJSON *labels = NULL, *schedulers = NULL;
  int64_t capacity = 1;
  if (hg_fields_string(c->body, "name", "", false, &name, &err) ||
      hg_fields_string(c->body, "hostname", "", false, &hostname, &err) ||
      hg_fields_string(c->body, "version", "", false, &version, &err) ||
      hg_fields_string_map(c->body, "labels", "", false, &labels, &err) ||
      hg_fields_int(c->body, "capacity", "", false, &capacity, &err) ||
      hg_fields_array(c->body, "schedulers", "", false, &schedulers, &err) ||
      hg_fields_string(c->body, "public_key", "", true, &pub, &err) ||
      hg_fields_string(c->body, "agent_id", "", false, &wanted, &err)) {
    api_bad(c, &err);
    return;
  }
  if (capacity < 0 || capacity > 100000) {
    api_error(c, 400, "bad_request", "capacity: %lld is outside 0..100000", (long long)capacity);
    return;
  }
  int i = 0;
  for (const cJSON *s = schedulers ? schedulers->child : NULL; s; s = s->next, i++)
    if (!cJSON_IsString(s)) {
      api_error(c, 400, "bad_request", "schedulers[%d]: expected a string, got %s", i,
                hg_fields_type_name(s));
      return;
    }
  hg_buf raw = HG_BUF_INIT;
  if (hg_crypto_b64_decode(&raw, pub, strlen(pub), HG_CRYPTO_B64_STD, &err) ||
      raw.len != HG_STORE_PUBKEY_LEN) {
    api_error(c, 400, "bad_request",
              "public_key: expected standard base64 of a 32-byte X25519 public key");
    hg_buf_free(&raw);
    return;
  }
  if (wanted && !api_id_valid(wanted)) {
    api_error(c, 400, "bad_request", "agent_id: not a valid id ([A-Za-z0-9_-]{1,64})");
    hg_buf_free(&raw);
    return;
  }
  if (!labels_allowed(c, labels)) {
    hg_buf_free(&raw);
    return;
  }

  hg_store_agent old = {0}, a = {0};
  hg_store_run *held = NULL;
  size_t n_held = 0;
  char id[HG_HUB_ID_MAX + 1], token[HG_APIKEY_TOKEN_LEN + 1];
  char *labels_text = NULL, *sched_text = NULL;
  bool resumed = false;
  if (!api_begin(c)) goto out;
  if (wanted) {
    int rc = hg_store_agent_get(hub->store, wanted, &old, &err);
    if (rc && rc != HG_ENOENT) {
      fail_store(c, "store: reading an agent", &err);
      goto out;
    }
    if (rc == 0 && strcmp(old.key_id, c->key.id) != 0) {
      api_rollback(c);
      api_error(c, 403, "forbidden", "agent_id: identity %s was created with another key",
                wanted);
      goto out;
    }
    resumed = rc == 0;
  }
  if (resumed) {
    snprintf(id, sizeof id, "%s", old.id);
  } else if (hg_apikey_random_id("agent_", 16, id, sizeof id, &err)) {
    fail_store(c, "making an agent id", &err);
    goto out;
  }
  /* Runs only assigned to the old session go back to the queue at once. */
  hg_store_run_query q = {.set = HG_RUNS_HELD, .agent_id = id};
  if (resumed && hg_store_run_list(hub->store, &q, &held, &n_held, &err)) {
    fail_store(c, "store: listing held runs", &err);
    goto out;
  }
  for (size_t k = 0; k < n_held; k++) {
    if (held[k].status != HG_RUN_ASSIGNED || held[k].accepted) continue;
    if (hg_hub_requeue_run(hub, &held[k], &err)) {
      fail_store(c, "store: re-queueing a run", &err);
      goto out;
    }
  }
  labels_text = labels ? hg_fields_print(labels) : NULL;
  sched_text = schedulers ? hg_fields_print(schedulers) : NULL;
  a.id = id;
  a.key_id = c->key.id;
  a.name = (char *)(name ? name : id);
  a.hostname = (char *)hostname;
  a.version = (char *)version;
  a.labels = labels_text;
  a.schedulers = sched_text;
  a.capacity = capacity;
  memcpy(a.public_key, raw.data, HG_STORE_PUBKEY_LEN);
  a.has_session = true;
  a.registered_ms = resumed ? old.registered_ms : c->now;
  if (hg_apikey_token(HG_APIKEY_SESSION_PREFIX, token, a.session_hash, &err) ||
      hg_store_agent_put(hub->store, &a, &err)) {
    fail_store(c, "store: writing an agent", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;

  /* The old session's parked poll (if any) now answers 401. */
  hg_hub_wake_agent(hub, id);
  hg_hub_agent *live = hg_hub_agent_find(hub, id, true);
  if (live) live->last_seen_ms = c->now, live->gone = false;
  hg_log(HG_LOG_INFO, resumed ? "agent registered again" : "agent registered", "agent", id,
         "name", a.name, "key_id", c->key.id, NULL);

  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "agent_id", id);
  cJSON_AddStringToObject(doc, "session_token", token);
  cJSON_AddNumberToObject(doc, "heartbeat_interval_s", (double)hub->cfg.heartbeat_interval_s);
  cJSON_AddNumberToObject(doc, "poll_wait_s", (double)hub->cfg.poll_wait_s);
  cJSON_AddNumberToObject(doc, "lease_ttl_s", (double)hub->cfg.lease_ttl_s);
  cJSON_AddNumberToObject(doc, "max_batch_bytes", (double)hub->cfg.max_batch_bytes);
  cJSON *runs = cJSON_AddArrayToObject(doc, "runs");
  for (size_t k = 0; k < n_held; k++) {
    if (!held[k].accepted) continue;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "run_id", held[k].id);
    cJSON_AddStringToObject(r, "status", hg_store_run_status_name(held[k].status));
    cJSON_AddItemToArray(runs, r);
  }
  api_json(c, 201, doc);
out:
  hg_crypto_wipe(token, sizeof token);
  hg_buf_free(&raw);
  free(labels_text);
  free(sched_text);
  hg_store_runs_free(held, n_held);
  hg_store_agent_clear(&old);
}

/* ---- work ---- */

static cJSON *work_answer(cJSON *assign, cJSON *cancel) {
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddItemToObject(doc, "assign", assign ? assign : cJSON_CreateArray());
  cJSON_AddItemToObject(doc, "cancel", cancel ? cancel : cJSON_CreateArray());
  /* This hub never asks an agent to drain or stop; the field is there for hubs that do. */
  cJSON_AddStringToObject(doc, "action", "none");
  return doc;
}

/* Queued runs read per page while choosing what a poll takes. */
#define QUEUE_PAGE_MIN 64
#define QUEUE_PAGE_MAX 512

/* The oldest queued runs this agent's labels allow, at most free_slots of them, into *out.
 * The queue is read a page at a time: a poll costs what it hands out, not the length of the
 * queue (reading all of it on every poll made draining a long queue quadratic). The first
 * page is as long as the poll can take, since most runs fit most agents (a poll with one free
 * slot read 64 whole runs to take one); pages after it, needed only when runs in front do not
 * fit, grow from QUEUE_PAGE_MIN. Answers 500 and returns false on failure. */
static bool choose_queued(api_ctx *c, const cJSON *labels, int64_t free_slots,
                          hg_store_run **out, size_t *n_out) {
  hg_err err = {0};
  size_t page = free_slots > QUEUE_PAGE_MAX ? QUEUE_PAGE_MAX : (size_t)free_slots;
  size_t cap = 0;
  int64_t after = 0;
  for (;;) {
    hg_store_run *v = NULL;
    size_t n = 0;
    hg_store_run_query qq = {.set = HG_RUNS_QUEUED, .after_seqno = after, .limit = page};
    if (hg_store_run_list(c->hub->store, &qq, &v, &n, &err)) {
      api_internal(c, "store: listing queued runs", &err);
      return false;
    }
    if (n) after = v[n - 1].seqno;
    for (size_t i = 0; i < n && (int64_t)*n_out < free_slots; i++) {
      if (!hg_hub_constraints_met(v[i].constraints, labels)) continue;
      if (*n_out == cap) {
        size_t ncap = cap ? cap * 2 : (n < 8 ? 8 : n);
        hg_store_run *grown = realloc(*out, ncap * sizeof *grown);
        if (!grown) {
          hg_store_runs_free(v, n);
          hg_err_set(&err, HG_ENOMEM, "out of memory");
          api_internal(c, "choosing queued runs", &err);
          return false;
        }
        *out = grown;
        cap = ncap;
      }
      /* Moved, not copied: what stays behind in v is freed with it. */
      (*out)[(*n_out)++] = v[i];
      memset(&v[i], 0, sizeof v[i]);
    }
    hg_store_runs_free(v, n);
    if (n < page || (int64_t)*n_out >= free_slots) return true;
    page = page < QUEUE_PAGE_MIN ? QUEUE_PAGE_MIN : page * 2 > QUEUE_PAGE_MAX ? QUEUE_PAGE_MAX : page * 2;
  }
}

void api_agent_work(api_ctx *c) {
  hg_hub *hub = c->hub;
  if (!own_agent(c)) return;
  int64_t wait, free_slots = -1;
  if (!api_query_int(c, "wait", 30, 0, HG_HUB_MAX_WAIT_S, true, &wait) ||
      !api_query_int(c, "free", -1, 0, 100000, false, &free_slots))
    return;
  hg_hub_agent *live = hg_hub_agent_find(hub, c->agent.id, true);
  if (live) live->last_seen_ms = c->now, live->gone = false;
  hg_hub_agent_set_labels(hub, c->agent.id, c->agent.labels);
  if (!c->req->resumed && live && live->poll) {
    /* A new poll from the same agent ends the older one, with nothing in it. */
    hg_api_res old = {.status = 200, .route = "work"};
    old.json = work_answer(NULL, NULL);
    hg_hub_waiter *w = live->poll;
    hg_hub_unpark(hub, w);
    w->deliver(w, &old);
    hg_api_res_clear(&old);
  }

  /* What the poll reads and what it writes, one transaction: each statement outside one is
   * a transaction of its own, with its own round of file locks, and those cost more than the
   * reads. When there is nothing to hand out, the commit writes nothing. */
  hg_err err = {0};
  hg_store_run *pending = NULL, *held = NULL, *queued = NULL;
  size_t n_pending = 0, n_held = 0, n_queued = 0;
  cJSON *assign = cJSON_CreateArray(), *cancel = cJSON_CreateArray();
  cJSON *labels = api_parse_stored(c->agent.labels, "{}");
  if (!api_begin(c)) goto out;
  hg_store_run_query qp = {.set = HG_RUNS_CANCEL_PENDING, .agent_id = c->agent.id};
  if (hg_store_run_list(hub->store, &qp, &pending, &n_pending, &err)) {
    fail_store(c, "store: listing cancels", &err);
    goto out;
  }
  if (free_slots < 0) {
    hg_store_run_query qh = {.set = HG_RUNS_HELD, .agent_id = c->agent.id};
    if (hg_store_run_list(hub->store, &qh, &held, &n_held, &err)) {
      fail_store(c, "store: listing held runs", &err);
      goto out;
    }
    free_slots = c->agent.capacity - (int64_t)n_held;
  }
  if (free_slots > 0 && !choose_queued(c, labels, free_slots, &queued, &n_queued)) {
    api_rollback(c);
    goto out;
  }
  for (size_t i = 0; i < n_pending; i++) {
    pending[i].cancel_notified = true;
    if (hg_store_run_update(hub->store, &pending[i], &err)) {
      fail_store(c, "store: noting a cancel", &err);
      goto out;
    }
    cJSON_AddItemToArray(cancel, cJSON_CreateString(pending[i].id));
  }
  for (size_t k = 0; k < n_queued; k++) {
    hg_store_run *r = &queued[k];
    char lease[40];
    if (hg_apikey_random_id("lease_", 24, lease, sizeof lease, &err)) {
      fail_store(c, "making a lease id", &err);
      goto out;
    }
    free(r->agent_id);
    free(r->lease_id);
    r->agent_id = strdup(c->agent.id);
    r->lease_id = strdup(lease);
    r->status = HG_RUN_ASSIGNED;
    r->lease_expires_ms = c->now + hub->cfg.lease_ttl_s * 1000;
    r->attempt++;
    r->accepted = false;
    r->agent_finished = false;
    r->cancel_notified = false;
    if (!r->agent_id || !r->lease_id || hg_store_run_update(hub->store, r, &err)) {
      fail_store(c, "store: assigning a run", &err);
      goto out;
    }
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "run_id", r->id);
    cJSON_AddStringToObject(a, "lease_id", lease);
    cJSON_AddItemToArray(assign, a);
  }
  /* Runs handed out and no cancels: the answer goes out before the commit, as a new run's
   * offer to a parked poll does. No request is read before the commit ends; if it fails, the
   * runs stay queued under their old lease, so the agent's accepts are refused (lease_lost)
   * and the runs go to a later poll. Only on the request's own arrival (an evaluation after a
   * wake-up is answered by the wake-up pass). */
  hg_api_res early = {.status = 200, .route = c->res->route};
  if (assign->child && !cancel->child && c->req->answer && !c->req->resumed) {
    early.json = work_answer(assign, cancel); /* owns both now; assign is still read below */
    cancel = NULL;
    c->req->answer(c->req, &early);
    c->res->sent = true;
  }
  bool committed = api_commit(c);
  /* The first run's token is made now, as for a new run handed to a parked poll, so that its
   * accept takes it from the memo: every run of a queue longer than the free slots reaches its
   * agent this way. Usually the answer went out before the commit and the agent reads it
   * meanwhile; an answer that waited (cancels in it, or a wake-up's evaluation) goes out
   * after this, which the accept then does not spend. */
  if (committed && n_queued > 0) api_run_token_prepare(c, queued[0].id, queued[0].attempt);
  if (committed || c->res->sent)
    for (const cJSON *a = assign->child; a; a = a->next)
      hg_log(committed ? HG_LOG_INFO : HG_LOG_WARN,
             committed ? "run assigned" : "run handed out but not assigned", "run",
             cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "run_id")), "agent",
             c->agent.id, NULL);
  if (early.json) assign = NULL; /* freed with the early answer */
  hg_api_res_clear(&early);
  if (!committed || c->res->sent) goto out;
  if (!assign->child && !cancel->child && wait > 0 && !c->req->final) {
    c->res->park = true;
    c->res->park_kind = HG_HUB_WAIT_WORK;
    snprintf(c->res->park_key, sizeof c->res->park_key, "%s", c->agent.id);
    c->res->park_deadline_ms = c->now + wait * 1000;
    goto out;
  }
  api_json(c, 200, work_answer(assign, cancel));
  assign = cancel = NULL;
out:
  cJSON_Delete(assign);
  cJSON_Delete(cancel);
  cJSON_Delete(labels);
  hg_store_runs_free(pending, n_pending);
  hg_store_runs_free(held, n_held);
  hg_store_runs_free(queued, n_queued);
}

/* ---- a new run handed straight to a parked poll ---- */

hg_hub_waiter *api_work_taker(api_ctx *c, const char *constraints) {
  /* In the order a wake-up pass would evaluate them. A poll that gave no free count (its
   * slots come from the runs its agent holds, a read of its own) is left to that pass. */
  for (hg_hub_waiter *w = c->hub->waiters; w; w = w->next) {
    if (w->kind != HG_HUB_WAIT_WORK || !w->parked) continue;
    hg_hub_agent *a = hg_hub_agent_find(c->hub, w->key, false);
    if (!a || a->gone || a->poll != w || !a->labels) continue;
    api_ctx poll = {.hub = c->hub, .req = w->req};
    char text[24];
    if (!api_query(&poll, "free", text, sizeof text) || !text[0]) continue;
    char *end;
    long long free_slots = strtoll(text, &end, 10);
    if (*end || free_slots < 1) continue;
    cJSON *labels = cJSON_Parse(a->labels);
    bool fits = labels && hg_hub_constraints_met(constraints, labels);
    cJSON_Delete(labels);
    if (fits) return w;
  }
  return NULL;
}

int api_work_assign_new(api_ctx *c, const hg_hub_waiter *w, hg_store_run *r,
                        char agent[HG_HUB_ID_MAX + 1], char *lease, size_t size, hg_err *err) {
  int rc = hg_apikey_random_id("lease_", 24, lease, size, err);
  if (rc) return rc;
  snprintf(agent, HG_HUB_ID_MAX + 1, "%s", w->key);
  r->agent_id = agent;
  r->lease_id = lease;
  r->status = HG_RUN_ASSIGNED;
  r->lease_expires_ms = c->now + c->hub->cfg.lease_ttl_s * 1000;
  r->attempt = 1;
  return 0;
}

void api_work_answer_new(api_ctx *c, hg_hub_waiter *w, const char *run_id, const char *lease) {
  cJSON *assign = cJSON_CreateArray();
  cJSON *a = cJSON_CreateObject();
  cJSON_AddStringToObject(a, "run_id", run_id);
  cJSON_AddStringToObject(a, "lease_id", lease);
  cJSON_AddItemToArray(assign, a);
  hg_api_res res = {.status = 200, .route = "work"};
  res.json = work_answer(assign, NULL);
  hg_hub_unpark(c->hub, w);
  w->deliver(w, &res); /* w may be gone from here on */
  hg_api_res_clear(&res);
}

/* ---- accept ---- */

void api_run_token_prepare(api_ctx *c, const char *run_id, int64_t attempt) {
  hg_hub_token_memo *m = &c->hub->token_memo;
  hg_crypto_wipe(m, sizeof *m);
  if (strlen(run_id) >= sizeof m->run_id ||
      hg_vault_run_token(&c->hub->vault, run_id, attempt, m->token, m->hash, NULL)) {
    hg_crypto_wipe(m, sizeof *m);
    return;
  }
  snprintf(m->run_id, sizeof m->run_id, "%s", run_id);
  m->attempt = attempt;
}

/* The run token of a run's attempt: from the memo when it holds it (taken and wiped), else
 * made now. */
static int run_token(api_ctx *c, const char *run_id, int64_t attempt,
                     char token[HG_APIKEY_TOKEN_LEN + 1], uint8_t hash[HG_APIKEY_HASH_LEN],
                     hg_err *err) {
  hg_hub_token_memo *m = &c->hub->token_memo;
  if (m->run_id[0] && m->attempt == attempt && !strcmp(m->run_id, run_id)) {
    memcpy(token, m->token, sizeof m->token);
    memcpy(hash, m->hash, sizeof m->hash);
    hg_crypto_wipe(m, sizeof *m);
    return 0;
  }
  return hg_vault_run_token(&c->hub->vault, run_id, attempt, token, hash, err);
}

/* Overwrites the bytes of every string in a tree that held secrets, then frees it. */
static void wipe_json(cJSON *item) {
  for (cJSON *c = item ? item->child : NULL; c; c = c->next) {
    if (cJSON_IsString(c) && c->valuestring) hg_crypto_wipe(c->valuestring, strlen(c->valuestring));
    wipe_json(c);
  }
}

static void delete_secret_json(cJSON *item) {
  wipe_json(item);
  cJSON_Delete(item);
}

typedef struct resolved_env {
  cJSON *env, *secrets, *refs;
  char missing[200]; /* why the run cannot be given its environment, when it cannot */
} resolved_env;

static int resolve_env(api_ctx *c, const cJSON *def, resolved_env *out, hg_err *err) {
  out->env = cJSON_CreateObject();
  out->secrets = cJSON_CreateObject();
  out->refs = cJSON_CreateObject();
  out->missing[0] = '\0';
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(def, "env");
  for (const cJSON *e = env ? env->child : NULL; e; e = e->next) {
    if (cJSON_IsString(e)) {
      cJSON_AddStringToObject(out->env, e->string, e->valuestring);
      continue;
    }
    const char *ref = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "ref"));
    if (ref) {
      cJSON_AddStringToObject(out->refs, e->string, ref);
      continue;
    }
    const char *var = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "config"));
    if (!var) continue;
    hg_store_config cv;
    int rc = hg_store_config_get(c->hub->store, var, &cv, err);
    if (rc == HG_ENOENT) {
      snprintf(out->missing, sizeof out->missing, "config variable '%s' (env %s) is not set", var,
               e->string);
      return 0;
    }
    if (rc) return rc;
    if (!cv.secret) {
      cJSON_AddStringToObject(out->env, e->string, (const char *)cv.value);
      hg_store_config_clear(&cv);
      continue;
    }
    hg_buf plain = HG_BUF_INIT;
    rc = hg_vault_open(&c->hub->vault, var, cv.value, cv.value_len, &plain, err);
    hg_store_config_clear(&cv);
    if (rc) {
      hg_log(HG_LOG_ERROR, "a secret config variable does not open", "name", var, NULL);
      snprintf(out->missing, sizeof out->missing,
               "config variable '%s' cannot be decrypted with this hub's master key", var);
      hg_buf_wipe(&plain);
      return 0;
    }
    cJSON_AddStringToObject(out->secrets, e->string, plain.data ? plain.data : "");
    hg_buf_wipe(&plain);
  }
  return 0;
}

static void resolved_env_free(resolved_env *r) {
  cJSON_Delete(r->env);
  delete_secret_json(r->secrets);
  cJSON_Delete(r->refs);
}

/* The "task" member of a RUN document, printed: what the agent needs of the definition. */
static char *task_member(const hg_store_run *r, const cJSON *def) {
  cJSON *t = cJSON_CreateObject();
  static const char *const copied[] = {"slug", "name", NULL};
  for (int i = 0; copied[i]; i++)
    cJSON_AddItemToObject(t, copied[i],
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(def, copied[i]), 1));
  cJSON_AddNumberToObject(t, "revision", (double)r->revision);
  static const char *const more[] = {"command", "image", "workdir", "scheduler", "resources", NULL};
  for (int i = 0; more[i]; i++)
    cJSON_AddItemToObject(t, more[i],
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(def, more[i]), 1));
  cJSON_AddNumberToObject(t, "timeout_s", (double)r->timeout_s);
  cJSON *params = cJSON_AddArrayToObject(t, "parameters");
  const cJSON *plist = cJSON_GetObjectItemCaseSensitive(def, "parameters");
  for (const cJSON *p = plist ? plist->child : NULL; p; p = p->next) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddItemToObject(e, "slug", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "slug"), 1));
    cJSON_AddItemToObject(e, "type", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(p, "type"), 1));
    cJSON_AddItemToArray(params, e);
  }
  char *json = cJSON_PrintUnformatted(t);
  cJSON_Delete(t);
  return json;
}

/* The run's task revision, parsed, and its RUN "task" member, from the hub's memo when it
 * holds that revision (a stored revision never changes): an accept then skips the read, the
 * parse and the printing (~15 us on a hub whose caches went cold). */
static int run_task(api_ctx *c, const hg_store_run *r, const cJSON **def, const char **task_json,
                    hg_err *err) {
  hg_hub_task_memo *m = &c->hub->task_memo;
  if (!api_task_memo_has(c, r->task, r->revision)) {
    hg_store_task t = {0};
    int rc = hg_store_task_get(c->hub->store, r->task, r->revision, &t, err);
    if (rc) return rc;
    const cJSON *parsed = api_task_def(c, r->task, r->revision, t.definition, err);
    hg_store_task_clear(&t);
    if (!parsed) return HG_ENOMEM;
  }
  if (!m->json || m->json_timeout_s != r->timeout_s) {
    free(m->json);
    m->json = task_member(r, m->def);
    if (!m->json) return hg_err_set(err, HG_ENOMEM, "out of memory");
    m->json_timeout_s = r->timeout_s;
  }
  *def = m->def;
  *task_json = m->json;
  return 0;
}

/* The RUN document of an accept answer; the secrets are sealed to the agent's key. */
static int run_document(api_ctx *c, const hg_store_run *r, const char *task_json,
                        resolved_env *renv, const char *token, cJSON **out, hg_err *err) {
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "id", r->id);
  cJSON_AddItemToObject(doc, "task", cJSON_CreateRaw(task_json));
  cJSON_AddItemToObject(doc, "params", api_parse_stored(r->params, "{}"));
  cJSON_AddItemToObject(doc, "env", cJSON_Duplicate(renv->env, 1));
  if (renv->secrets->child) {
    char *plain = cJSON_PrintUnformatted(renv->secrets);
    cJSON *sealed = NULL;
    int rc = plain ? hg_sealbox_seal(plain, strlen(plain), c->agent.public_key, r->id, &sealed,
                                     err)
                   : hg_err_set(err, HG_ENOMEM, "out of memory");
    if (plain) {
      hg_crypto_wipe(plain, strlen(plain));
      free(plain);
    }
    if (rc) {
      cJSON_Delete(doc);
      return rc;
    }
    cJSON_AddItemToObject(doc, "secrets", sealed);
  } else {
    cJSON_AddNullToObject(doc, "secrets");
  }
  cJSON_AddItemToObject(doc, "secret_refs", cJSON_Duplicate(renv->refs, 1));
  cJSON_AddStringToObject(doc, "run_token", token);
  cJSON_AddNumberToObject(doc, "attempt", (double)r->attempt);
  cJSON_AddItemToObject(doc, "created_at", api_time(r->created_ms));
  cJSON_AddItemToObject(doc, "deadline_at", api_time(r->deadline_ms));
  *out = doc;
  return 0;
}

void api_run_accept(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  const char *lease = NULL;
  if (hg_fields_string(c->body, "lease_id", "", true, &lease, &err)) {
    api_bad(c, &err);
    return;
  }
  hg_store_run r = {0};
  const cJSON *def = NULL;
  const char *task_json = NULL;
  cJSON *doc = NULL;
  resolved_env renv = {0};
  char token[HG_APIKEY_TOKEN_LEN + 1] = "";
  if (!api_begin(c)) return;
  if (!load_run(c, &r, lease)) return;
  bool mine = r.agent_id && !strcmp(r.agent_id, c->agent.id) && r.lease_id &&
              !strcmp(r.lease_id, lease);
  /* A repeated accept (the first answer was lost) answers again, sealed afresh. */
  bool retry = mine && r.accepted && !r.agent_finished && is_active(r.status);
  if (!retry && (!mine || r.status != HG_RUN_ASSIGNED)) {
    api_rollback(c);
    api_error(c, 409, "lease_lost", "lease '%.64s' does not hold run %s (the run is %s)", lease,
              r.id, hg_store_run_status_name(r.status));
    goto out;
  }
  if (run_task(c, &r, &def, &task_json, &err)) {
    fail_store(c, "store: reading the run's task", &err);
    goto out;
  }
  if (resolve_env(c, def, &renv, &err)) {
    fail_store(c, "store: resolving the run's environment", &err);
    goto out;
  }
  if (renv.missing[0]) {
    /* The run cannot start without its environment; say so on the run, where users look. */
    if (hg_hub_end_run(hub, &r, HG_RUN_FAILED, renv.missing, &err)) {
      fail_store(c, "store: failing a run", &err);
      goto out;
    }
    if (!api_commit(c)) goto out;
    hg_log(HG_LOG_WARN, "run failed at accept", "run", r.id, "error", renv.missing, NULL);
    api_error(c, 409, "invalid_transition", "accept: run %s failed: %s", r.id, renv.missing);
    api_error_extra(c, "status", cJSON_CreateString("failed"));
    goto out;
  }
  if (!retry) {
    r.status = HG_RUN_ACCEPTED;
    r.accepted = true;
    r.accepted_ms = c->now;
    r.deadline_ms = c->now + (r.timeout_s + HG_HUB_DEADLINE_GRACE_S) * 1000;
  }
  renew_lease(c, &r);
  if (run_token(c, r.id, r.attempt, token, r.token_hash, &err)) {
    fail_store(c, "making a run token", &err);
    goto out;
  }
  r.has_token = true;
  if (hg_store_run_update(hub->store, &r, &err)) {
    fail_store(c, "store: accepting a run", &err);
    goto out;
  }
  if (run_document(c, &r, task_json, &renv, token, &doc, &err)) {
    fail_store(c, "sealing a run's secrets", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  if (!retry) hg_log(HG_LOG_INFO, "run accepted", "run", r.id, "agent", c->agent.id, NULL);
  /* No wake-up for the run's readers: they wait for events or the run's end, and an accept
   * brings neither (evaluating a parked reader again costs a transaction for nothing). */
  cJSON *answer = cJSON_CreateObject();
  cJSON_AddItemToObject(answer, "run", doc);
  doc = NULL;
  api_json(c, 200, answer);
out:
  cJSON_Delete(doc);
  resolved_env_free(&renv);
  hg_crypto_wipe(token, sizeof token);
  hg_store_run_clear(&r);
}

/* ---- start ---- */

void api_run_start(api_ctx *c) {
  if (!check_at(c)) return;
  hg_err err = {0};
  hg_store_run r = {0};
  if (!api_begin(c)) return;
  if (!load_run(c, &r, NULL)) return;
  if (!leased(c, &r)) goto out;
  if (r.status == HG_RUN_ACCEPTED) {
    r.status = HG_RUN_RUNNING;
    r.started_ms = c->now;
  } else if (r.status == HG_RUN_CANCELLING) {
    /* Cancelled between accept and start: it started all the same, and stays cancelling. */
    if (!r.started_ms) r.started_ms = c->now;
  } else if (r.status != HG_RUN_RUNNING || r.agent_finished) {
    api_rollback(c);
    api_invalid_transition(c, &r, "start");
    goto out;
  }
  renew_lease(c, &r);
  if (hg_store_run_update(c->hub->store, &r, &err)) {
    fail_store(c, "store: starting a run", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  /* Nor for a start: no event, no end (see the accept). */
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
  api_json(c, 200, doc);
out:
  hg_store_run_clear(&r);
}

/* ---- events ---- */

void api_run_post_events(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  hg_batch b;
  int rc = hg_batch_read(&b, c->req->body, c->req->body_len, &err);
  if (rc) {
    if (rc == HG_ETOOBIG)
      api_error(c, 413, "too_large", "%s", err.msg);
    else
      api_bad(c, &err);
    hg_batch_free(&b);
    return;
  }
  int64_t first = b.first_seq, count = (int64_t)b.count;

  hg_store_run r = {0};
  cJSON *outputs = NULL, *errors = NULL;
  bool outputs_changed = false;
  int64_t added = 0;
  if (!api_begin(c)) goto out;
  if (!load_run(c, &r, NULL)) goto out;
  if (!leased(c, &r)) goto out;
  if (r.agent_finished) {
    api_rollback(c);
    api_invalid_transition(c, &r, "events after finish");
    goto out;
  }
  if (first > r.next_seq) {
    api_rollback(c);
    api_error(c, 409, "seq_gap", "first_seq %lld is above next_seq %lld", (long long)first,
              (long long)r.next_seq);
    api_error_extra(c, "next_seq", cJSON_CreateNumber((double)r.next_seq));
    goto out;
  }
  /* What the hub already has (a retried batch) is skipped; the rest is one chunk. */
  int64_t skip = r.next_seq - first < count ? r.next_seq - first : count;
  added = count - skip;
  if (added > 0) {
    hg_store_chunk chunk;
    hg_batch_chunk(&b, (size_t)skip, &chunk);
    if (hg_store_event_append(hub->store, r.seqno, &chunk, &err)) {
      fail_store(c, "store: storing events", &err);
      goto out;
    }
  }
  /* Output ops are rare: the run's outputs are parsed only for a batch that carries new ones. */
  for (size_t k = 0; k < b.n_outputs; k++) {
    const hg_batch_output *o = &b.outputs[k];
    if ((int64_t)o->index < skip) continue;
    int64_t seq = first + (int64_t)o->index;
    if (!errors) {
      outputs = r.outputs ? cJSON_Parse(r.outputs) : NULL;
      errors = api_parse_stored(r.output_errors, "[]");
    }
    const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o->event, "op"));
    const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o->event, "path"));
    hg_err oerr = {0};
    rc = hg_outputs_apply_text(&outputs, op, path ? path : "",
                               cJSON_GetObjectItemCaseSensitive(o->event, "value"), &oerr);
    if (rc == HG_ENOMEM) {
      fail_store(c, "applying an output op", &oerr);
      goto out;
    }
    if (rc && cJSON_GetArraySize(errors) < OUTPUT_ERRORS_MAX) {
      /* The agent applied it to its own copy; the hub's copy disagrees. Keep going. */
      cJSON *oe = cJSON_CreateObject();
      cJSON_AddNumberToObject(oe, "seq", (double)seq);
      cJSON_AddStringToObject(oe, "error", oerr.msg);
      cJSON_AddItemToArray(errors, oe);
    }
    outputs_changed = true;
  }
  if (first + count > r.next_seq) r.next_seq = first + count;
  if (outputs_changed) {
    free(r.outputs);
    free(r.output_errors);
    r.outputs = outputs ? cJSON_PrintUnformatted(outputs) : NULL;
    r.output_errors = cJSON_PrintUnformatted(errors);
  }
  renew_lease(c, &r);
  if (hg_store_run_update(hub->store, &r, &err)) {
    fail_store(c, "store: updating a run", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  hub->metrics.events_ingested += (uint64_t)added;
  if (added) hg_hub_wake_run(hub, r.id);
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddNumberToObject(doc, "next_seq", (double)r.next_seq);
  cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
  api_json(c, 200, doc);
out:
  hg_batch_free(&b);
  cJSON_Delete(outputs);
  cJSON_Delete(errors);
  hg_store_run_clear(&r);
}

/* ---- heartbeat ---- */

void api_agent_heartbeat(api_ctx *c) {
  hg_hub *hub = c->hub;
  if (!own_agent(c)) return;
  hg_err err = {0};
  const cJSON *listed = NULL;
  int64_t free_slots = 0;
  if (hg_fields_array(c->body, "runs", "", false, &listed, &err) ||
      hg_fields_int(c->body, "free", "", false, &free_slots, &err)) {
    api_bad(c, &err);
    return;
  }
  int i = 0;
  for (const cJSON *item = listed ? listed->child : NULL; item; item = item->next, i++) {
    char where[32];
    snprintf(where, sizeof where, "runs[%d].", i);
    const char *run_id = NULL, *status = NULL;
    if (!cJSON_IsObject(item)) {
      api_error(c, 400, "bad_request", "runs[%d]: expected an object, got %s", i,
                hg_fields_type_name(item));
      return;
    }
    if (hg_fields_string(item, "run_id", where, true, &run_id, &err) ||
        hg_fields_string(item, "status", where, false, &status, &err)) {
      api_bad(c, &err);
      return;
    }
  }
  hg_hub_agent_seen(hub, c->agent.id);
  hg_store_run *held = NULL;
  size_t n_held = 0;
  if (!api_begin(c)) return;
  for (const cJSON *item = listed ? listed->child : NULL; item; item = item->next) {
    const char *run_id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "run_id"));
    hg_store_run r;
    if (!api_id_valid(run_id) || hg_store_run_get(hub->store, run_id, &r, &err)) continue;
    /* Only accepted runs are renewed: an assignment is accepted in time or re-queued. */
    if (r.agent_id && !strcmp(r.agent_id, c->agent.id) && r.accepted && is_active(r.status)) {
      renew_lease(c, &r);
      if (hg_store_run_update(hub->store, &r, &err)) {
        hg_store_run_clear(&r);
        fail_store(c, "store: renewing a lease", &err);
        return;
      }
    }
    hg_store_run_clear(&r);
  }
  hg_store_run_query q = {.set = HG_RUNS_HELD, .agent_id = c->agent.id};
  if (hg_store_run_list(hub->store, &q, &held, &n_held, &err)) {
    fail_store(c, "store: listing held runs", &err);
    return;
  }
  if (!api_commit(c)) {
    hg_store_runs_free(held, n_held);
    return;
  }
  cJSON *doc = cJSON_CreateObject();
  cJSON *cancel = cJSON_AddArrayToObject(doc, "cancel");
  for (size_t k = 0; k < n_held; k++)
    if (held[k].status == HG_RUN_CANCELLING)
      cJSON_AddItemToArray(cancel, cJSON_CreateString(held[k].id));
  cJSON_AddStringToObject(doc, "action", "none");
  cJSON_AddNumberToObject(doc, "lease_ttl_s", (double)hub->cfg.lease_ttl_s);
  api_json(c, 200, doc);
  hg_store_runs_free(held, n_held);
}

/* ---- finish ---- */

void api_run_finish(api_ctx *c) {
  hg_hub *hub = c->hub;
  hg_err err = {0};
  const char *status = NULL, *error = NULL;
  int64_t exit_code = 0, total = 0;
  bool has_exit = cJSON_GetObjectItemCaseSensitive(c->body, "exit_code") &&
                  !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(c->body, "exit_code"));
  if (hg_fields_string(c->body, "status", "", true, &status, &err) ||
      hg_fields_int(c->body, "exit_code", "", false, &exit_code, &err) ||
      hg_fields_string(c->body, "error", "", false, &error, &err) ||
      hg_fields_int(c->body, "events_total", "", true, &total, &err)) {
    api_bad(c, &err);
    return;
  }
  if (!check_at(c)) return;
  int st = hg_store_run_status_parse(status);
  if (st != HG_RUN_SUCCEEDED && st != HG_RUN_FAILED && st != HG_RUN_CANCELLED) {
    api_error(c, 400, "bad_request", "status: '%.20s' is not succeeded, failed or cancelled",
              status);
    return;
  }
  if (total < 0) {
    api_error(c, 400, "bad_request", "events_total: must not be negative");
    return;
  }
  /* What makes two finishes "identical": everything but "at". */
  cJSON *rec = cJSON_CreateObject();
  cJSON_AddStringToObject(rec, "status", status);
  cJSON_AddItemToObject(rec, "exit_code",
                        has_exit ? cJSON_CreateNumber((double)exit_code) : cJSON_CreateNull());
  cJSON_AddItemToObject(rec, "error", error ? cJSON_CreateString(error) : cJSON_CreateNull());
  cJSON_AddNumberToObject(rec, "events_total", (double)total);
  char *record = hg_fields_canonical(rec);
  cJSON_Delete(rec);
  hg_store_run r = {0};
  if (!record) {
    api_internal(c, "out of memory", NULL);
    return;
  }
  if (!api_begin(c)) goto out;
  if (!load_run(c, &r, NULL)) goto out;
  if (!leased(c, &r)) goto out;
  if (r.agent_finished) {
    api_rollback(c);
    if (r.finish && !strcmp(r.finish, record) && r.finish_status == 200) {
      cJSON *doc = cJSON_CreateObject();
      cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
      api_json(c, 200, doc);
    } else {
      api_invalid_transition(c, &r, "finish");
    }
    goto out;
  }
  if (total > r.next_seq) {
    api_rollback(c);
    api_error(c, 409, "seq_gap", "events_total %lld but the hub has %lld events; upload the rest",
              (long long)total, (long long)r.next_seq);
    api_error_extra(c, "next_seq", cJSON_CreateNumber((double)r.next_seq));
    goto out;
  }
  bool ended_before = hg_store_run_status_ended(r.status);
  r.agent_finished = true;
  free(r.finish);
  r.finish = record;
  record = NULL;
  r.finish_status = ended_before ? 409 : 200;
  int rc;
  if (ended_before) {
    /* The hub ended it first (lost lease, deadline): that outcome stands. */
    rc = hg_store_run_update(hub->store, &r, &err);
  } else {
    r.has_exit_code = has_exit;
    r.exit_code = exit_code;
    rc = hg_hub_end_run(hub, &r, (hg_store_run_status)st, error, &err);
  }
  if (rc) {
    fail_store(c, "store: finishing a run", &err);
    goto out;
  }
  if (!api_commit(c)) goto out;
  if (ended_before) {
    api_invalid_transition(c, &r, "finish");
    goto out;
  }
  hg_log(HG_LOG_INFO, "run finished", "run", r.id, "status", status, NULL);
  cJSON *doc = cJSON_CreateObject();
  cJSON_AddStringToObject(doc, "status", hg_store_run_status_name(r.status));
  api_json(c, 200, doc);
out:
  free(record);
  hg_store_run_clear(&r);
}

/* ---- deregister ---- */

void api_agent_deregister(api_ctx *c) {
  hg_hub *hub = c->hub;
  if (!own_agent(c)) return;
  hg_err err = {0};
  hg_store_run *held = NULL;
  size_t n_held = 0;
  if (!api_begin(c)) return;
  hg_store_run_query q = {.set = HG_RUNS_HELD, .agent_id = c->agent.id};
  if (hg_store_run_list(hub->store, &q, &held, &n_held, &err)) {
    fail_store(c, "store: listing held runs", &err);
    return;
  }
  for (size_t i = 0; i < n_held; i++) {
    int rc = 0;
    if (held[i].status == HG_RUN_ASSIGNED && !held[i].accepted)
      rc = hg_hub_requeue_run(hub, &held[i], &err);
    else if (is_active(held[i].status))
      rc = hg_hub_end_run(hub, &held[i], HG_RUN_FAILED, "agent_lost", &err);
    if (rc) {
      hg_store_runs_free(held, n_held);
      fail_store(c, "store: releasing an agent's runs", &err);
      return;
    }
  }
  if (hg_store_agent_end_session(hub->store, c->agent.id, &err)) {
    hg_store_runs_free(held, n_held);
    fail_store(c, "store: ending a session", &err);
    return;
  }
  hg_store_runs_free(held, n_held);
  if (!api_commit(c)) return;
  /* Not connected from now on (metrics, assignment), whether or not its poll is still open:
   * the wake-up answers that poll, and the agent goes with it. */
  hg_hub_agent *a = hg_hub_agent_find(hub, c->agent.id, false);
  if (a) a->gone = true;
  hg_hub_agent_forget(hub, c->agent.id);
  hg_hub_wake_agent(hub, c->agent.id);
  hg_log(HG_LOG_INFO, "agent deregistered", "agent", c->agent.id, NULL);
  api_json(c, 204, NULL);
}
