/* The store interface: dispatch to the backend, record helpers, run status names. */
#include "hub/store.h"

#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "hub/store_backend.h"

int hg_store_open(const char *path, const hg_store_options *opts, hg_store **out, hg_err *err) {
  /* SQLite is the only backend so far; a URL scheme would pick another here. */
  return hg_store_sqlite_open(path, opts, out, err);
}

void hg_store_close(hg_store *s) {
  if (s) s->ops->close(s);
}

int hg_store_schema_version(hg_store *s) { return s->ops->schema_version(s); }
int hg_store_begin(hg_store *s, hg_err *err) { return s->ops->begin(s, err); }
int hg_store_begin_read(hg_store *s, hg_err *err) { return s->ops->begin_read(s, err); }
int hg_store_commit(hg_store *s, hg_err *err) { return s->ops->commit(s, err); }
void hg_store_rollback(hg_store *s) { s->ops->rollback(s); }

int hg_store_meta_get(hg_store *s, const char *name, hg_buf *value, hg_err *err) {
  return s->ops->meta_get(s, name, value, err);
}
int hg_store_meta_set(hg_store *s, const char *name, const void *value, size_t len, hg_err *err) {
  return s->ops->meta_set(s, name, value, len, err);
}

int hg_store_key_insert(hg_store *s, const hg_store_key *k, hg_err *err) {
  return s->ops->key_insert(s, k, err);
}
int hg_store_key_get(hg_store *s, const char *id, hg_store_key *out, hg_err *err) {
  return s->ops->key_get(s, id, out, err);
}
int hg_store_key_list(hg_store *s, hg_store_key **out, size_t *n, hg_err *err) {
  return s->ops->key_list(s, out, n, err);
}
int hg_store_key_revoke(hg_store *s, const char *id, int64_t at_ms, hg_err *err) {
  return s->ops->key_revoke(s, id, at_ms, err);
}
int hg_store_key_touch(hg_store *s, const char *id, int64_t at_ms, hg_err *err) {
  return s->ops->key_touch(s, id, at_ms, err);
}
int hg_store_key_count_active(hg_store *s, const char *role, int64_t *n, hg_err *err) {
  return s->ops->key_count_active(s, role, n, err);
}

int hg_store_task_insert(hg_store *s, const hg_store_task *t, hg_err *err) {
  return s->ops->task_insert(s, t, err);
}
int hg_store_task_get(hg_store *s, const char *slug, int64_t revision, hg_store_task *out,
                      hg_err *err) {
  return s->ops->task_get(s, slug, revision, out, err);
}
int hg_store_task_list(hg_store *s, hg_store_task **out, size_t *n, hg_err *err) {
  return s->ops->task_list(s, out, n, err);
}

int hg_store_agent_put(hg_store *s, const hg_store_agent *a, hg_err *err) {
  return s->ops->agent_put(s, a, err);
}
int hg_store_agent_get(hg_store *s, const char *id, hg_store_agent *out, hg_err *err) {
  return s->ops->agent_get(s, id, out, err);
}
int hg_store_agent_by_session(hg_store *s, const uint8_t hash[HG_STORE_HASH_LEN],
                              hg_store_agent *out, hg_err *err) {
  return s->ops->agent_by_session(s, hash, out, err);
}
int hg_store_agent_list_sessions(hg_store *s, const char *key_id, hg_store_agent **out, size_t *n,
                                 hg_err *err) {
  return s->ops->agent_list_sessions(s, key_id, out, n, err);
}
int hg_store_agent_end_session(hg_store *s, const char *id, hg_err *err) {
  return s->ops->agent_end_session(s, id, err);
}

int hg_store_run_insert(hg_store *s, hg_store_run *r, hg_err *err) {
  return s->ops->run_insert(s, r, err);
}
int hg_store_run_get(hg_store *s, const char *id, hg_store_run *out, hg_err *err) {
  return s->ops->run_get(s, id, out, err);
}
int hg_store_run_by_token(hg_store *s, const uint8_t hash[HG_STORE_HASH_LEN], hg_store_run *out,
                          hg_err *err) {
  return s->ops->run_by_token(s, hash, out, err);
}
int hg_store_run_update(hg_store *s, const hg_store_run *r, hg_err *err) {
  return s->ops->run_update(s, r, err);
}
int hg_store_run_list(hg_store *s, const hg_store_run_query *q, hg_store_run **out, size_t *n,
                      hg_err *err) {
  return s->ops->run_list(s, q, out, n, err);
}
int hg_store_run_count_by_status(hg_store *s, int64_t counts[HG_RUN_STATUS_COUNT], hg_err *err) {
  return s->ops->run_count_by_status(s, counts, err);
}
int hg_store_run_extend_leases(hg_store *s, int64_t until_ms, hg_err *err) {
  return s->ops->run_extend_leases(s, until_ms, err);
}

int hg_store_event_append(hg_store *s, int64_t run_seqno, const hg_store_chunk *chunk,
                          hg_err *err) {
  return s->ops->event_append(s, run_seqno, chunk, err);
}
int hg_store_event_read(hg_store *s, int64_t run_seqno, int64_t after, size_t limit,
                        size_t max_bytes, hg_store_chunk **out, size_t *n, hg_err *err) {
  return s->ops->event_read(s, run_seqno, after, limit, max_bytes, out, n, err);
}

int hg_store_config_put(hg_store *s, const hg_store_config *c, hg_err *err) {
  return s->ops->config_put(s, c, err);
}
int hg_store_config_get(hg_store *s, const char *name, hg_store_config *out, hg_err *err) {
  return s->ops->config_get(s, name, out, err);
}
int hg_store_config_list(hg_store *s, hg_store_config **out, size_t *n, hg_err *err) {
  return s->ops->config_list(s, out, n, err);
}
int hg_store_config_delete(hg_store *s, const char *name, hg_err *err) {
  return s->ops->config_delete(s, name, err);
}

/* ---- records ---- */

void hg_store_key_clear(hg_store_key *k) {
  free(k->id);
  free(k->role);
  free(k->name);
  free(k->labels);
  memset(k, 0, sizeof *k);
}

void hg_store_task_clear(hg_store_task *t) {
  free(t->slug);
  free(t->definition);
  free(t->canonical);
  memset(t, 0, sizeof *t);
}

void hg_store_agent_clear(hg_store_agent *a) {
  free(a->id);
  free(a->key_id);
  free(a->name);
  free(a->hostname);
  free(a->version);
  free(a->labels);
  free(a->schedulers);
  memset(a, 0, sizeof *a);
}

void hg_store_run_clear(hg_store_run *r) {
  free(r->id);
  free(r->task);
  free(r->params);
  free(r->constraints);
  free(r->error);
  free(r->agent_id);
  free(r->lease_id);
  free(r->finish);
  free(r->outputs);
  free(r->output_errors);
  memset(r, 0, sizeof *r);
}

void hg_store_config_clear(hg_store_config *c) {
  free(c->name);
  if (c->value) hg_crypto_wipe(c->value, c->value_len);
  free(c->value);
  memset(c, 0, sizeof *c);
}

#define FREE_ARRAY(fn, type, clear)          \
  void fn(type *v, size_t n) {               \
    for (size_t i = 0; v && i < n; i++) clear(&v[i]); \
    free(v);                                 \
  }
FREE_ARRAY(hg_store_keys_free, hg_store_key, hg_store_key_clear)
FREE_ARRAY(hg_store_tasks_free, hg_store_task, hg_store_task_clear)
FREE_ARRAY(hg_store_agents_free, hg_store_agent, hg_store_agent_clear)
FREE_ARRAY(hg_store_runs_free, hg_store_run, hg_store_run_clear)
FREE_ARRAY(hg_store_configs_free, hg_store_config, hg_store_config_clear)

void hg_store_chunks_free(hg_store_chunk *v, size_t n) {
  for (size_t i = 0; v && i < n; i++) {
    free(v[i].text);
    free(v[i].starts);
  }
  free(v);
}

/* ---- statuses ---- */

static const char *const status_names[HG_RUN_STATUS_COUNT] = {
    "queued", "assigned", "accepted", "running", "cancelling", "succeeded", "failed", "cancelled",
};

const char *hg_store_run_status_name(hg_store_run_status s) {
  return (unsigned)s < HG_RUN_STATUS_COUNT ? status_names[s] : "unknown";
}

int hg_store_run_status_parse(const char *name) {
  for (int i = 0; i < HG_RUN_STATUS_COUNT; i++)
    if (strcmp(name, status_names[i]) == 0) return i;
  return -1;
}

bool hg_store_run_status_ended(hg_store_run_status s) {
  return s == HG_RUN_SUCCEEDED || s == HG_RUN_FAILED || s == HG_RUN_CANCELLED;
}
