/* The hub's persistent store: keys, tasks, agents, runs, events, config variables. One
 * interface, backends behind it (SQLite today); the hub's rules live above it, not in it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define HG_STORE_HASH_LEN 32 /* SHA-256 of a key's secret or of a token */
#define HG_STORE_PUBKEY_LEN 32

typedef struct hg_store hg_store;

typedef enum hg_store_sync {
  HG_STORE_SYNC_NORMAL, /* a commit survives the hub's process dying (WAL, synchronous=NORMAL) */
  HG_STORE_SYNC_FULL,   /* ... and the machine losing power (synchronous=FULL) */
} hg_store_sync;

typedef struct hg_store_options {
  hg_store_sync sync;
  bool create;   /* create the store if it does not exist; else a missing store is HG_ENOENT */
} hg_store_options;

/* ---- records: strings are owned (heap) and NULL when absent; times are Unix ms, 0 = never ---- */

typedef enum hg_store_run_status {
  HG_RUN_QUEUED,
  HG_RUN_ASSIGNED,
  HG_RUN_ACCEPTED,
  HG_RUN_RUNNING,
  HG_RUN_CANCELLING,
  HG_RUN_SUCCEEDED,
  HG_RUN_FAILED,
  HG_RUN_CANCELLED,
  HG_RUN_STATUS_COUNT
} hg_store_run_status;

typedef struct hg_store_key {
  char *id;
  char *role;   /* admin | user | agent */
  char *name;
  char *labels; /* JSON object of strings */
  uint8_t secret_hash[HG_STORE_HASH_LEN];
  int64_t created_ms, last_used_ms, revoked_ms;
} hg_store_key;

typedef struct hg_store_task {
  char *slug;
  int64_t revision;   /* 1, 2, ... per slug */
  char *definition;   /* the normalised definition, JSON */
  char *canonical;    /* the definition as deployed, members sorted: decides "unchanged" */
  int64_t created_ms;
} hg_store_task;

typedef struct hg_store_agent {
  char *id;
  char *key_id;       /* the key that created this identity; only it may resume it */
  char *name, *hostname, *version;
  char *labels;       /* JSON object of strings */
  char *schedulers;   /* JSON array */
  int64_t capacity;
  uint8_t public_key[HG_STORE_PUBKEY_LEN];
  bool has_session;
  uint8_t session_hash[HG_STORE_HASH_LEN];
  int64_t registered_ms;
} hg_store_agent;

typedef struct hg_store_run {
  int64_t seqno;      /* creation order, assigned by the store */
  char *id;
  char *task;         /* slug */
  int64_t revision;
  hg_store_run_status status;
  char *params;       /* JSON object, defaults filled in */
  char *constraints;  /* JSON object copied from the task revision */
  int64_t timeout_s;
  int64_t created_ms, accepted_ms, started_ms, finished_ms;
  bool has_exit_code;
  int64_t exit_code;
  char *error;
  char *agent_id;     /* the agent it is (or was last) leased to */
  char *lease_id;
  int64_t lease_expires_ms;
  int64_t attempt;    /* assignments so far */
  int64_t deadline_ms;
  bool has_token;
  uint8_t token_hash[HG_STORE_HASH_LEN];
  bool accepted;       /* agent_id accepted it (stays set when the hub ends the run) */
  bool agent_finished; /* agent_id sent its finish */
  char *finish;        /* that finish as canonical JSON, to recognise an identical repeat */
  int finish_status;   /* the HTTP status the finish was answered with */
  bool cancel_notified;/* the cancel reached the agent through a work poll */
  int64_t next_seq;    /* events stored so far */
  char *outputs;       /* JSON; NULL is the initial null */
  char *output_errors; /* JSON array of {"seq","error"}; NULL is [] */
} hg_store_run;

/* An event of a chunk that is a log event in the usual shape (hub/logshape.h): its stream and
 * partial, and the length of its ts string (quotes included), from which its parts follow.
 * The store may keep such an event as what varies in it only. */
typedef struct hg_store_logref {
  uint8_t usual; /* 0: any other event */
  uint8_t stream; /* 0 stdout, 1 stderr, 2 system */
  uint8_t partial;
  uint32_t ts_len;
} hg_store_logref;

/* A run's events are kept in chunks: count consecutive events from first_seq, their JSON objects
 * joined by commas (so "[" text "]" is a JSON array), and where each one starts in text. Storing
 * a batch as one chunk costs one write however many lines it carries. */
typedef struct hg_store_chunk {
  int64_t first_seq;
  size_t count;
  char *text;
  size_t len;
  uint32_t *starts;    /* count offsets into text; starts[0] is 0 */
  /* Appending: what the caller knows of each event's shape (count entries), or NULL. Reads
   * leave it NULL. */
  const hg_store_logref *logs;
} hg_store_chunk;

typedef struct hg_store_config {
  char *name;
  bool secret;
  uint8_t *value;      /* plain text, or for a secret: the sealed bytes (never plain text) */
  size_t value_len;
  int64_t updated_ms;
} hg_store_config;

/* ---- opening, transactions ---- */

/* Opens (and with opts->create, creates) the store at path and brings its schema up to date.
 * Only one process may have a store open: a second gets HG_EEXIST. */
int hg_store_open(const char *path, const hg_store_options *opts, hg_store **out, hg_err *err);
void hg_store_close(hg_store *s);
/* The schema version the store is at. */
int hg_store_schema_version(hg_store *s);

/* Every change happens inside begin .. commit; an answer that acknowledges a change is sent
 * only after commit returned 0. Transactions do not nest. */
int hg_store_begin(hg_store *s, hg_err *err);
int hg_store_commit(hg_store *s, hg_err *err);
void hg_store_rollback(hg_store *s);
/* A transaction that only reads: the reads in it see one state of the store and take its
 * locks once, instead of once per read. Ended with hg_store_commit; nothing may be written
 * in it. */
int hg_store_begin_read(hg_store *s, hg_err *err);

/* ---- small named values the hub keeps for itself (master key check, ...) ---- */
int hg_store_meta_get(hg_store *s, const char *name, hg_buf *value, hg_err *err); /* HG_ENOENT */
int hg_store_meta_set(hg_store *s, const char *name, const void *value, size_t len, hg_err *err);

/* ---- keys ---- */
int hg_store_key_insert(hg_store *s, const hg_store_key *k, hg_err *err); /* HG_EEXIST */
int hg_store_key_get(hg_store *s, const char *id, hg_store_key *out, hg_err *err); /* HG_ENOENT */
int hg_store_key_list(hg_store *s, hg_store_key **out, size_t *n, hg_err *err);
int hg_store_key_revoke(hg_store *s, const char *id, int64_t at_ms, hg_err *err);
int hg_store_key_touch(hg_store *s, const char *id, int64_t at_ms, hg_err *err);
int hg_store_key_count_active(hg_store *s, const char *role, int64_t *n, hg_err *err);

/* ---- tasks ---- */
int hg_store_task_insert(hg_store *s, const hg_store_task *t, hg_err *err);
/* revision 0: the latest. HG_ENOENT when there is none. */
int hg_store_task_get(hg_store *s, const char *slug, int64_t revision, hg_store_task *out,
                      hg_err *err);
/* The latest revision of every task, by slug. */
int hg_store_task_list(hg_store *s, hg_store_task **out, size_t *n, hg_err *err);

/* ---- agents ---- */
int hg_store_agent_put(hg_store *s, const hg_store_agent *a, hg_err *err); /* insert or replace */
int hg_store_agent_get(hg_store *s, const char *id, hg_store_agent *out, hg_err *err);
/* A backend may answer this and hg_store_key_get from rows it read before, as long as every
 * write to the agent or key through it (and the rollback of one) is seen by the next read. */
int hg_store_agent_by_session(hg_store *s, const uint8_t hash[HG_STORE_HASH_LEN],
                              hg_store_agent *out, hg_err *err);
/* Agents that hold a session; with key_id, only those created by that key. */
int hg_store_agent_list_sessions(hg_store *s, const char *key_id, hg_store_agent **out, size_t *n,
                                 hg_err *err);
int hg_store_agent_end_session(hg_store *s, const char *id, hg_err *err);

/* ---- runs ---- */
/* Sets r->seqno. */
int hg_store_run_insert(hg_store *s, hg_store_run *r, hg_err *err);
int hg_store_run_get(hg_store *s, const char *id, hg_store_run *out, hg_err *err);
int hg_store_run_by_token(hg_store *s, const uint8_t hash[HG_STORE_HASH_LEN], hg_store_run *out,
                          hg_err *err);
/* Writes every field of r over the row with r->id. */
int hg_store_run_update(hg_store *s, const hg_store_run *r, hg_err *err);

typedef enum hg_store_run_set {
  HG_RUNS_ALL,      /* filtered by task and status, newest first */
  HG_RUNS_QUEUED,   /* queued, oldest first */
  HG_RUNS_HELD,     /* leased to agent_id and not finished by it: assigned, or accepted (even
                       when the hub has ended the run since) */
  HG_RUNS_LAPSED,   /* assigned, accepted, running or cancelling with a lease older than now */
  HG_RUNS_OVERDUE,  /* accepted, running or cancelling past deadline_ms < now */
  HG_RUNS_CANCEL_PENDING, /* cancelling, held by agent_id, cancel not yet told through a poll */
} hg_store_run_set;

typedef struct hg_store_run_query {
  hg_store_run_set set;
  const char *task;    /* HG_RUNS_ALL: only this task (NULL: any) */
  int status;          /* HG_RUNS_ALL: only this status (-1: any) */
  const char *agent_id;/* HELD, CANCEL_PENDING */
  int64_t now_ms;      /* LAPSED, OVERDUE */
  int64_t after_seqno; /* QUEUED: only runs created after this one (0: from the first), so
                          that a long queue can be read a page at a time */
  size_t limit;        /* 0: no limit */
} hg_store_run_query;

int hg_store_run_list(hg_store *s, const hg_store_run_query *q, hg_store_run **out, size_t *n,
                      hg_err *err);
int hg_store_run_count_by_status(hg_store *s, int64_t counts[HG_RUN_STATUS_COUNT], hg_err *err);
/* Moves every live lease and deadline forward to at least until_ms (after a hub restart the
 * agents could not have reached us, so their leases are not their fault). */
int hg_store_run_extend_leases(hg_store *s, int64_t until_ms, hg_err *err);

/* ---- events ---- */
/* Stores a chunk of a run's events. It must begin where the run's stored events end (the
 * caller trims what it already has): a chunk whose first_seq is already stored is HG_EEXIST. */
int hg_store_event_append(hg_store *s, int64_t run_seqno, const hg_store_chunk *chunk,
                          hg_err *err);
/* The events with seq > after, in order: at most limit of them and, past the first, at most
 * max_bytes of their JSON text (0: no bound), as slices of the stored chunks. */
int hg_store_event_read(hg_store *s, int64_t run_seqno, int64_t after, size_t limit,
                        size_t max_bytes, hg_store_chunk **out, size_t *n, hg_err *err);

/* ---- config variables ---- */
int hg_store_config_put(hg_store *s, const hg_store_config *c, hg_err *err);
int hg_store_config_get(hg_store *s, const char *name, hg_store_config *out, hg_err *err);
int hg_store_config_list(hg_store *s, hg_store_config **out, size_t *n, hg_err *err);
int hg_store_config_delete(hg_store *s, const char *name, hg_err *err); /* HG_ENOENT */

/* ---- releasing records ---- */
void hg_store_key_clear(hg_store_key *k);
void hg_store_task_clear(hg_store_task *t);
void hg_store_agent_clear(hg_store_agent *a);
void hg_store_run_clear(hg_store_run *r);
void hg_store_config_clear(hg_store_config *c); /* wipes the value first */
void hg_store_keys_free(hg_store_key *v, size_t n);
void hg_store_tasks_free(hg_store_task *v, size_t n);
void hg_store_agents_free(hg_store_agent *v, size_t n);
void hg_store_runs_free(hg_store_run *v, size_t n);
void hg_store_chunks_free(hg_store_chunk *v, size_t n);
void hg_store_configs_free(hg_store_config *v, size_t n);

/* ---- run statuses ---- */
const char *hg_store_run_status_name(hg_store_run_status s);
int hg_store_run_status_parse(const char *name); /* -1 when unknown */
bool hg_store_run_status_ended(hg_store_run_status s);
