/* The hub's state: opening it, the sweeps, parked requests and their wake-ups, liveness. */
#include "hub/hub.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "hub/api.h"
#include "hub/apikey.h"

#define CHECK_NAME "master_key_check"
#define CHECK_AAD "hangar-master-key-check"

void hg_hub_config_defaults(hg_hub_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->sync = HG_STORE_SYNC_NORMAL;
  cfg->heartbeat_interval_s = 10;
  cfg->poll_wait_s = 30;
  cfg->lease_ttl_s = 30;
  cfg->max_batch_bytes = 1 << 20;
}

static int64_t wall_clock(void *data) {
  (void)data;
  return hg_clock_now_ms();
}

int64_t hg_hub_now(hg_hub *hub) { return hub->clock(hub->clock_data); }

void hg_hub_set_clock(hg_hub *hub, int64_t (*clock)(void *), void *data) {
  hub->clock = clock ? clock : wall_clock;
  hub->clock_data = data;
}

/* The store remembers a value sealed with the master key, so that a hub started with the
 * wrong key file refuses to start instead of failing every secret later. */
static int check_master_key(hg_store *store, const hg_vault *vault, const char *key_path,
                            hg_err *err) {
  hg_buf stored = HG_BUF_INIT, plain = HG_BUF_INIT;
  int rc = hg_store_meta_get(store, CHECK_NAME, &stored, err);
  if (rc == HG_ENOENT) {
    hg_buf sealed = HG_BUF_INIT;
    rc = hg_vault_seal(vault, CHECK_AAD, "hangar", 6, &sealed, err);
    if (!rc) rc = hg_store_begin(store, err);
    if (!rc) {
      rc = hg_store_meta_set(store, CHECK_NAME, sealed.data, sealed.len, err);
      if (!rc) rc = hg_store_commit(store, err);
      if (rc) hg_store_rollback(store);
    }
    hg_buf_free(&sealed);
  } else if (!rc) {
    if (hg_vault_open(vault, CHECK_AAD, stored.data, stored.len, &plain, NULL))
      rc = hg_err_set(err, HG_EPERM,
                      "the master key in %s is not the key this store was created with", key_path);
  }
  hg_buf_free(&stored);
  hg_buf_wipe(&plain);
  return rc;
}

static int insert_admin_key(hg_store *store, const char *name, char key[HG_APIKEY_LEN + 1],
                            hg_err *err);

static int open_vault(const char *key_path, hg_vault *vault, hg_err *err) {
  uint8_t master[HG_VAULT_KEY_LEN];
  int rc = hg_vault_load_master(key_path, master, err);
  if (!rc) rc = hg_vault_init(vault, master, err);
  hg_crypto_wipe(master, sizeof master);
  return rc;
}

int hg_hub_init_store(const char *db_path, const char *master_key_path, hg_store_sync sync,
                      char key[HG_APIKEY_LEN + 1], hg_err *err) {
  /* An existing key file is used as it is: the operator may have made it. */
  int rc = hg_vault_create_master(master_key_path, err);
  if (rc && rc != HG_EEXIST) return rc;
  hg_vault vault;
  hg_store *store = NULL;
  hg_store_key *keys = NULL;
  size_t n = 0;
  hg_store_options opts = {.sync = sync, .create = true};
  rc = open_vault(master_key_path, &vault, err);
  if (!rc) rc = hg_store_open(db_path, &opts, &store, err);
  if (!rc) rc = check_master_key(store, &vault, master_key_path, err);
  if (!rc) rc = hg_store_key_list(store, &keys, &n, err);
  if (!rc && n > 0)
    rc = hg_err_set(err, HG_EEXIST, "the store %s is already initialised (it has keys)", db_path);
  if (!rc) rc = insert_admin_key(store, "first admin", key, err);
  hg_store_keys_free(keys, n);
  hg_store_close(store);
  hg_vault_wipe(&vault);
  return rc;
}

static int insert_admin_key(hg_store *store, const char *name, char key[HG_APIKEY_LEN + 1],
                            hg_err *err) {
  char id[HG_APIKEY_ID_LEN + 1];
  hg_store_key k = {.id = id, .role = "admin", .name = (char *)name, .labels = "{}"};
  k.created_ms = hg_clock_now_ms();
  int rc = hg_apikey_generate(id, key, k.secret_hash, err);
  if (!rc) rc = hg_store_begin(store, err);
  if (!rc) {
    rc = hg_store_key_insert(store, &k, err);
    if (!rc) rc = hg_store_commit(store, err);
    if (rc) hg_store_rollback(store);
  }
  if (!rc) hg_log(HG_LOG_INFO, "admin key created", "key_id", id, NULL);
  return rc;
}

int hg_hub_add_admin_key(const char *db_path, const char *master_key_path, const char *name,
                         char key[HG_APIKEY_LEN + 1], hg_err *err) {
  hg_vault vault;
  hg_store *store = NULL;
  hg_store_options opts = {.sync = HG_STORE_SYNC_FULL, .create = false};
  int rc = hg_store_open(db_path, &opts, &store, err);
  if (rc == HG_ENOENT)
    hg_err_set(err, rc, "no store at %s (create one with 'hangar hub init --db %s')", db_path,
               db_path);
  if (!rc) rc = open_vault(master_key_path, &vault, err);
  /* Only the holder of the master key may mint an admin key. */
  if (!rc) rc = check_master_key(store, &vault, master_key_path, err);
  if (!rc) rc = insert_admin_key(store, name, key, err);
  hg_store_close(store);
  hg_vault_wipe(&vault);
  return rc;
}

/* ---- liveness ---- */

hg_hub_agent *hg_hub_agent_find(hg_hub *hub, const char *id, bool create) {
  for (hg_hub_agent *a = hub->agents; a; a = a->next)
    if (!strcmp(a->id, id)) return a;
  if (!create) return NULL;
  hg_hub_agent *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  snprintf(a->id, sizeof a->id, "%s", id);
  a->last_seen_ms = hg_hub_now(hub);
  a->next = hub->agents;
  hub->agents = a;
  return a;
}

void hg_hub_agent_forget(hg_hub *hub, const char *id) {
  for (hg_hub_agent **pp = &hub->agents; *pp; pp = &(*pp)->next) {
    if (!strcmp((*pp)->id, id)) {
      hg_hub_agent *a = *pp;
      if (a->poll) return; /* still waiting: it goes when its poll does */
      *pp = a->next;
      free(a->labels);
      free(a);
      return;
    }
  }
}

bool hg_hub_agent_alive(hg_hub *hub, const char *id) {
  hg_hub_agent *a = hg_hub_agent_find(hub, id, false);
  if (!a || a->gone) return false;
  return a->poll || hg_hub_now(hub) - a->last_seen_ms <= hub->cfg.lease_ttl_s * 1000;
}

void hg_hub_agent_set_labels(hg_hub *hub, const char *id, const char *labels) {
  hg_hub_agent *a = hg_hub_agent_find(hub, id, true);
  if (!a || (a->labels && labels && !strcmp(a->labels, labels))) return;
  free(a->labels);
  a->labels = labels ? strdup(labels) : NULL;
}

bool hg_hub_constraints_met(const char *constraints, const cJSON *labels) {
  cJSON *want = cJSON_Parse(constraints ? constraints : "{}");
  bool ok = want != NULL;
  for (const cJSON *w = want ? want->child : NULL; w && ok; w = w->next) {
    const cJSON *h = labels ? cJSON_GetObjectItemCaseSensitive(labels, w->string) : NULL;
    ok = cJSON_IsString(h) && cJSON_IsString(w) && !strcmp(h->valuestring, w->valuestring);
  }
  cJSON_Delete(want);
  return ok;
}

void hg_hub_agent_seen(hg_hub *hub, const char *id) {
  hg_hub_agent *a = hg_hub_agent_find(hub, id, true);
  if (a) a->last_seen_ms = hg_hub_now(hub), a->gone = false;
}

/* ---- run transitions ---- */

/* A run ended or given back to the queue will never be accepted with the token made ahead
 * for its attempt: that secret goes now, not when the next run is offered (an idle hub may
 * offer none for hours). */
static void token_memo_forget(hg_hub *hub, const char *run_id) {
  if (run_id && !strcmp(hub->token_memo.run_id, run_id))
    hg_crypto_wipe(&hub->token_memo, sizeof hub->token_memo);
}

int hg_hub_end_run(hg_hub *hub, hg_store_run *run, hg_store_run_status status, const char *error,
                   hg_err *err) {
  token_memo_forget(hub, run->id);
  char *copy = error ? strdup(error) : NULL;
  if (error && !copy) return hg_err_set(err, HG_ENOMEM, "out of memory");
  free(run->error);
  run->error = copy;
  run->status = status;
  run->finished_ms = hg_hub_now(hub);
  run->lease_expires_ms = 0;
  int rc = hg_store_run_update(hub->store, run, err);
  if (!rc) hg_hub_wake_run(hub, run->id);
  return rc;
}

int hg_hub_requeue_run(hg_hub *hub, hg_store_run *run, hg_err *err) {
  token_memo_forget(hub, run->id);
  free(run->agent_id);
  free(run->lease_id);
  run->agent_id = run->lease_id = NULL;
  run->status = HG_RUN_QUEUED;
  run->lease_expires_ms = 0;
  run->accepted = false;
  run->cancel_notified = false;
  int rc = hg_store_run_update(hub->store, run, err);
  if (!rc) hg_hub_wake_queue(hub, run->id);
  return rc;
}

/* ---- parked requests ---- */

static void rearm(hg_hub *hub) {
  if (!hub->wait_timer) return;
  if (!hub->waiters) {
    hg_timer_stop(hub->wait_timer);
    return;
  }
  int64_t delay = hub->waiters->deadline_ms - hg_hub_now(hub);
  hg_timer_start(hub->wait_timer, delay < 0 ? 0 : delay, 0);
}

void hg_hub_park(hg_hub *hub, hg_hub_waiter *w) {
  if (w->parked) return;
  /* Most waits are equally long, so the new one usually goes last: a walk from the tail is
   * short, and one timer serves every parked request. */
  hg_hub_waiter *after = hub->waiters_tail;
  while (after && after->deadline_ms > w->deadline_ms) after = after->prev;
  w->prev = after;
  w->next = after ? after->next : hub->waiters;
  if (w->next)
    w->next->prev = w;
  else
    hub->waiters_tail = w;
  if (after)
    after->next = w;
  else
    hub->waiters = w;
  w->parked = true;
  w->round = hub->round;
  hub->n_waiters++;
  if (w->kind == HG_HUB_WAIT_WORK) {
    hg_hub_agent *a = hg_hub_agent_find(hub, w->key, true);
    if (a) a->poll = w;
  }
  if (hub->waiters == w) rearm(hub);
}

void hg_hub_unpark(hg_hub *hub, hg_hub_waiter *w) {
  if (!w->parked) return;
  bool was_head = hub->waiters == w;
  if (w->prev)
    w->prev->next = w->next;
  else
    hub->waiters = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    hub->waiters_tail = w->prev;
  w->prev = w->next = NULL;
  w->parked = false;
  hub->n_waiters--;
  if (w->kind == HG_HUB_WAIT_WORK) {
    hg_hub_agent *a = hg_hub_agent_find(hub, w->key, false);
    if (a && a->poll == w) {
      a->poll = NULL;
      a->last_seen_ms = hg_hub_now(hub); /* the end of a poll is the last time we heard of it */
      if (a->gone) hg_hub_agent_forget(hub, a->id);
    }
  }
  if (was_head) rearm(hub);
}

/* Evaluates a parked request again; answers it unless it still has to wait. Returns whether
 * it was answered: then w may be gone (the server frees a request once it is answered), so
 * the caller must not touch it again. */
static bool evaluate(hg_hub *hub, hg_hub_waiter *w, bool final) {
  hg_api_res res;
  memset(&res, 0, sizeof res);
  w->req->resumed = true;
  w->req->final = final;
  hg_api_handle(hub, w->req, &res);
  if (res.park && !final) {
    hg_api_res_clear(&res);
    return false;
  }
  if (res.park) {
    /* A handler must answer a final evaluation; an empty 500 beats a request that hangs. */
    res.park = false;
    res.status = 500;
  }
  hg_hub_unpark(hub, w);
  w->deliver(w, &res);
  hg_api_res_clear(&res);
  return true;
}

void hg_hub_expire_waits(hg_hub *hub) {
  int64_t now = hg_hub_now(hub);
  while (hub->waiters && hub->waiters->deadline_ms <= now) evaluate(hub, hub->waiters, true);
  rearm(hub);
  hg_hub_flush(hub);
}

void hg_hub_release_waits(hg_hub *hub) {
  while (hub->waiters) evaluate(hub, hub->waiters, true);
  rearm(hub);
  hg_hub_flush(hub);
}

static void on_wait_timer(hg_timer *t, void *data) {
  (void)t;
  hg_hub_expire_waits(data);
}

/* ---- wake-ups ---- */

static bool names_has(const hg_hub_names *s, const char *name) {
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->v[i], name)) return true;
  return false;
}

static void names_add(hg_hub_names *s, const char *name) {
  if (names_has(s, name)) return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    char **v = realloc(s->v, cap * sizeof *v);
    if (!v) return;
    s->v = v;
    s->cap = cap;
  }
  char *copy = strdup(name);
  if (copy) s->v[s->n++] = copy;
}

static void names_free(hg_hub_names *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

void hg_hub_wake_queue(hg_hub *hub, const char *run_id) { names_add(&hub->wake_queued, run_id); }
void hg_hub_wake_agent(hg_hub *hub, const char *agent_id) { names_add(&hub->wake_agents, agent_id); }
void hg_hub_wake_run(hg_hub *hub, const char *run_id) { names_add(&hub->wake_runs, run_id); }

/* The runs a queue wake-up is about, as they are now: the constraints of those still queued. */
typedef struct queued_runs {
  char **constraints; /* NULL where the run is no longer queued */
  size_t n;
  bool any;
} queued_runs;

static void queued_load(hg_hub *hub, const hg_hub_names *ids, queued_runs *q) {
  if (!q->constraints) q->constraints = calloc(ids->n ? ids->n : 1, sizeof *q->constraints);
  q->n = q->constraints ? ids->n : 0;
  q->any = false;
  for (size_t i = 0; i < q->n; i++) {
    free(q->constraints[i]);
    q->constraints[i] = NULL;
    hg_store_run r;
    if (hg_store_run_get(hub->store, ids->v[i], &r, NULL) == 0) {
      if (r.status == HG_RUN_QUEUED) {
        q->constraints[i] = r.constraints;
        r.constraints = NULL;
        q->any = true;
      }
      hg_store_run_clear(&r);
    }
  }
  if (!q->constraints && ids->n) q->any = true; /* out of memory: evaluate everyone */
}

static void queued_free(queued_runs *q) {
  for (size_t i = 0; q->constraints && i < q->n; i++) free(q->constraints[i]);
  free(q->constraints);
}

/* Whether a parked work poll could take one of the runs. */
static bool poll_wants(hg_hub *hub, const hg_hub_waiter *w, const queued_runs *q) {
  if (!q->any) return false;
  if (!q->constraints) return true;
  hg_hub_agent *a = hg_hub_agent_find(hub, w->key, false);
  cJSON *labels = a && a->labels ? cJSON_Parse(a->labels) : NULL;
  if (!labels) return true;
  bool wants = false;
  for (size_t i = 0; i < q->n && !wants; i++)
    wants = q->constraints[i] && hg_hub_constraints_met(q->constraints[i], labels);
  cJSON_Delete(labels);
  return wants;
}

void hg_hub_flush(hg_hub *hub) {
  if (hub->flushing) return; /* the pass below picks up wake-ups made while it runs */
  hub->flushing = true;
  while (hub->wake_queued.n || hub->wake_agents.n || hub->wake_runs.n) {
    hg_hub_names queued = hub->wake_queued, agents = hub->wake_agents, runs = hub->wake_runs;
    memset(&hub->wake_queued, 0, sizeof hub->wake_queued);
    memset(&hub->wake_agents, 0, sizeof hub->wake_agents);
    memset(&hub->wake_runs, 0, sizeof hub->wake_runs);
    queued_runs q = {0};
    if (queued.n) queued_load(hub, &queued, &q);
    unsigned round = ++hub->round;
    hg_hub_waiter *w = hub->waiters;
    while (w) {
      bool match = w->round != round &&
                   (w->kind == HG_HUB_WAIT_WORK ? names_has(&agents, w->key) || poll_wants(hub, w, &q)
                                                : names_has(&runs, w->key));
      if (!match) {
        w = w->next;
        continue;
      }
      w->round = round;
      bool answered = evaluate(hub, w, false);
      /* An answer may have taken some of the runs: look again before waking anyone else. */
      if (answered && queued.n) queued_load(hub, &queued, &q);
      /* Still parked: its neighbours are intact. Answered: start over; the round number
       * skips the ones already evaluated. */
      w = answered ? hub->waiters : w->next;
    }
    queued_free(&q);
    names_free(&queued);
    names_free(&agents);
    names_free(&runs);
  }
  hub->flushing = false;
}

/* ---- sweeps ---- */

void hg_hub_sweep(hg_hub *hub) {
  int64_t now = hg_hub_now(hub);
  hg_err err = {0};
  hg_store_run *lapsed = NULL, *overdue = NULL;
  size_t n_lapsed = 0, n_overdue = 0;
  hg_store_run_query ql = {.set = HG_RUNS_LAPSED, .now_ms = now};
  hg_store_run_query qo = {.set = HG_RUNS_OVERDUE, .now_ms = now};
  if (hg_store_begin(hub->store, &err)) goto failed;
  if (hg_store_run_list(hub->store, &ql, &lapsed, &n_lapsed, &err) ||
      hg_store_run_list(hub->store, &qo, &overdue, &n_overdue, &err))
    goto rollback;
  for (size_t i = 0; i < n_lapsed; i++) {
    hg_store_run *r = &lapsed[i];
    if (r->status == HG_RUN_ASSIGNED && !r->accepted) {
      if (hg_hub_requeue_run(hub, r, &err)) goto rollback;
      hg_log(HG_LOG_INFO, "assignment not accepted in time: run re-queued", "run", r->id, NULL);
    } else {
      if (hg_hub_end_run(hub, r, HG_RUN_FAILED, "agent_lost", &err)) goto rollback;
      hg_log(HG_LOG_WARN, "lease lapsed: run failed", "run", r->id, "agent", r->agent_id, NULL);
    }
  }
  for (size_t i = 0; i < n_overdue; i++) {
    hg_store_run *r = &overdue[i];
    if (hg_store_run_status_ended(r->status)) continue; /* ended above */
    char msg[64];
    snprintf(msg, sizeof msg, "timed out after %lld s", (long long)r->timeout_s);
    /* It may have lapsed above: reload so the write does not undo that. */
    hg_store_run cur;
    if (hg_store_run_get(hub->store, r->id, &cur, &err)) goto rollback;
    int rc = hg_store_run_status_ended(cur.status) ? 0 : hg_hub_end_run(hub, &cur, HG_RUN_FAILED,
                                                                       msg, &err);
    hg_store_run_clear(&cur);
    if (rc) goto rollback;
    hg_log(HG_LOG_WARN, "run passed its deadline: failed", "run", r->id, NULL);
  }
  if (hg_store_commit(hub->store, &err)) goto failed;
  goto sessions;
rollback:
  hg_store_rollback(hub->store);
failed:
  hg_log(HG_LOG_ERROR, "sweep failed", "error", err.msg, NULL);
  /* Wake-ups recorded for a rolled-back change still run below; each re-evaluates its waiters
   * against the store, which no longer holds the change, so they find nothing new there and
   * stay parked: no one hears stale news. */
sessions:
  hg_store_runs_free(lapsed, n_lapsed);
  hg_store_runs_free(overdue, n_overdue);
  for (hg_hub_agent *a = hub->agents, *next; a; a = next) {
    next = a->next;
    if (hg_hub_agent_alive(hub, a->id)) continue;
    if (hg_store_begin(hub->store, &err) == 0) {
      if (hg_store_agent_end_session(hub->store, a->id, &err) ||
          hg_store_commit(hub->store, &err)) {
        hg_store_rollback(hub->store);
        hg_log(HG_LOG_ERROR, "cannot end a lapsed session", "error", err.msg, NULL);
        continue;
      }
    }
    hg_log(HG_LOG_INFO, "agent session lapsed", "agent", a->id, NULL);
    hg_hub_agent_forget(hub, a->id);
  }
  hg_hub_flush(hub);
}

static void on_sweep_timer(hg_timer *t, void *data) {
  (void)t;
  hg_hub_sweep(data);
}

/* ---- opening and closing ---- */

int hg_hub_open(const hg_hub_config *cfg, hg_loop *loop, hg_hub **out, hg_err *err) {
  *out = NULL;
  hg_hub *hub = calloc(1, sizeof *hub);
  if (!hub) return hg_err_set(err, HG_ENOMEM, "out of memory");
  hub->cfg = *cfg;
  if (hub->cfg.poll_wait_s > HG_HUB_MAX_WAIT_S) hub->cfg.poll_wait_s = HG_HUB_MAX_WAIT_S;
  if (hub->cfg.max_batch_bytes > HG_HUB_EVENTS_LIMIT) hub->cfg.max_batch_bytes = HG_HUB_EVENTS_LIMIT;
  hub->clock = wall_clock;
  hub->loop = loop;
  hg_store_options opts = {.sync = cfg->sync, .create = false};
  int rc = hg_store_open(cfg->db_path, &opts, &hub->store, err);
  if (rc == HG_ENOENT)
    hg_err_set(err, rc, "no store at %s (create one with 'hangar hub init --db %s')", cfg->db_path,
               cfg->db_path);
  if (!rc) rc = open_vault(cfg->master_key_path, &hub->vault, err);
  if (!rc) rc = check_master_key(hub->store, &hub->vault, cfg->master_key_path, err);
  /* The agents could not reach a hub that was down: every live session and lease starts
   * afresh, and nobody is failed for our absence. */
  hg_store_agent *agents = NULL;
  size_t n = 0;
  int64_t now = hg_hub_now(hub);
  if (!rc) rc = hg_store_agent_list_sessions(hub->store, NULL, &agents, &n, err);
  for (size_t i = 0; !rc && i < n; i++) hg_hub_agent_find(hub, agents[i].id, true);
  hg_store_agents_free(agents, n);
  if (!rc && !(rc = hg_store_begin(hub->store, err))) {
    rc = hg_store_run_extend_leases(hub->store, now + cfg->lease_ttl_s * 1000, err);
    if (!rc) rc = hg_store_commit(hub->store, err);
    if (rc) hg_store_rollback(hub->store);
  }
  if (!rc && loop) {
    int64_t every = cfg->sweep_interval_ms;
    if (every <= 0) {
      every = cfg->lease_ttl_s * 100;
      if (every < 50) every = 50;
      if (every > 1000) every = 1000;
    }
    rc = hg_timer_new(loop, on_sweep_timer, hub, &hub->sweep_timer, err);
    if (!rc) rc = hg_timer_new(loop, on_wait_timer, hub, &hub->wait_timer, err);
    if (!rc) rc = hg_timer_start(hub->sweep_timer, every, every);
  }
  if (rc) {
    hg_hub_close(hub);
    return rc;
  }
  *out = hub;
  return 0;
}

void hg_hub_task_memo_clear(hg_hub_task_memo *m) {
  free(m->slug);
  cJSON_Delete(m->def);
  free(m->json);
  memset(m, 0, sizeof *m);
}

void hg_hub_close(hg_hub *hub) {
  if (!hub) return;
  /* Every parked request gets the answer its wait's end would have given. */
  while (hub->waiters) evaluate(hub, hub->waiters, true);
  hg_timer_free(hub->sweep_timer);
  hg_timer_free(hub->wait_timer);
  while (hub->agents) {
    hg_hub_agent *a = hub->agents;
    hub->agents = a->next;
    free(a->labels);
    free(a);
  }
  names_free(&hub->wake_queued);
  names_free(&hub->wake_agents);
  names_free(&hub->wake_runs);
  hg_store_close(hub->store);
  hg_vault_wipe(&hub->vault);
  hg_hub_task_memo_clear(&hub->task_memo);
  hg_crypto_wipe(&hub->token_memo, sizeof hub->token_memo);
  free(hub);
}
