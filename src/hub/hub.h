/* The hub's state: configuration, store, vault, the in-memory half (agents' liveness, parked
 * long-polls, pending wake-ups), the sweeps of leases and deadlines, and metrics. HTTP lives in
 * server.c, the endpoints in api*.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/timer.h"
#include "hub/metrics.h"
#include "hub/store.h"
#include "hub/vault.h"

#define HG_HUB_ID_MAX 64           /* ids are [A-Za-z0-9_-]{1,64} */
#define HG_HUB_BODY_LIMIT (1u << 20)
#define HG_HUB_EVENTS_LIMIT (8u << 20)
#define HG_HUB_EVENT_TEXT_LIMIT (64u << 10)
#define HG_HUB_MAX_WAIT_S 60
#define HG_HUB_DEADLINE_GRACE_S 60 /* deadline_at = accept + timeout_s + this */

typedef struct hg_hub_config {
  const char *db_path;
  const char *master_key_path;
  hg_store_sync sync;
  int64_t heartbeat_interval_s;
  int64_t poll_wait_s;      /* at most HG_HUB_MAX_WAIT_S */
  int64_t lease_ttl_s;
  int64_t max_batch_bytes;  /* at most HG_HUB_EVENTS_LIMIT */
  int64_t sweep_interval_ms;/* 0: a tenth of the lease TTL, between 50 ms and 1 s */
} hg_hub_config;

/* The defaults a config file or flags override. */
void hg_hub_config_defaults(hg_hub_config *cfg);

typedef enum hg_hub_wait_kind { HG_HUB_WAIT_WORK, HG_HUB_WAIT_EVENTS } hg_hub_wait_kind;

struct hg_api_req;
struct hg_api_res;

/* A request that waits (a work poll, an event read with wait=): it is evaluated again on every
 * wake-up that concerns it and when its wait ends. The server owns the memory and sets
 * deliver, which answers the HTTP request. */
typedef struct hg_hub_waiter {
  struct hg_hub_waiter *prev, *next; /* the hub's parked list, in deadline order */
  hg_hub_wait_kind kind;
  char key[HG_HUB_ID_MAX + 1];      /* agent id (work) or run id (events) */
  int64_t deadline_ms;
  unsigned round;                    /* the last wake-up pass that evaluated it */
  bool parked;
  struct hg_api_req *req;
  void (*deliver)(struct hg_hub_waiter *w, struct hg_api_res *res);
  void *data;
} hg_hub_waiter;

/* The liveness of an agent's session: kept in memory, since only this process can know when
 * it last heard from the agent (a restart starts every session's clock afresh). */
typedef struct hg_hub_agent {
  struct hg_hub_agent *next;
  char id[HG_HUB_ID_MAX + 1];
  int64_t last_seen_ms;
  hg_hub_waiter *poll; /* its parked work poll */
  char *labels;        /* its labels (JSON), so wake-ups skip agents a run cannot go to */
  bool gone;           /* deregistered: not connected, forgotten once its poll is answered */
} hg_hub_agent;

typedef struct hg_hub_names {
  char **v;
  size_t n, cap;
} hg_hub_names;

/* The last task revision a run was created or accepted with: its parsed definition, and the
 * RUN document's "task" member printed for json_timeout_s. A stored revision never changes,
 * and runs come mostly of one task. */
typedef struct hg_hub_task_memo {
  char *slug;
  int64_t revision, json_timeout_s;
  struct cJSON *def;
  char *json; /* NULL until an accept prints it */
} hg_hub_task_memo;

/* The run token of the run last handed out (to a parked poll as it was created, or the first
 * of a poll's answer from the queue), made once the answer is written, while the agent reads
 * it, for the accept that follows (a run's token for an attempt never changes: an HMAC of both
 * under the vault's key). Wiped when taken or replaced, when its run ends or is queued again,
 * and when the hub closes. */
typedef struct hg_hub_token_memo {
  char run_id[HG_HUB_ID_MAX + 1]; /* "" when empty */
  int64_t attempt;
  char token[HG_APIKEY_TOKEN_LEN + 1];
  uint8_t hash[HG_APIKEY_HASH_LEN];
} hg_hub_token_memo;

typedef struct hg_hub {
  hg_hub_config cfg;
  hg_store *store;
  hg_vault vault;
  hg_loop *loop; /* NULL in tests: they call hg_hub_sweep and hg_hub_expire_waits */
  hg_timer *sweep_timer, *wait_timer;
  int64_t (*clock)(void *data);
  void *clock_data;
  hg_hub_agent *agents;
  hg_hub_waiter *waiters, *waiters_tail;
  size_t n_waiters;
  unsigned round;
  /* wake-ups recorded while a request is handled, run once it is answered */
  hg_hub_names wake_queued, wake_agents, wake_runs;
  bool flushing;
  hg_metrics metrics;
  hg_hub_task_memo task_memo;
  hg_hub_token_memo token_memo;
} hg_hub;

/* Opens the store (it must exist: `hangar hub init` creates it), checks the master key against
 * it, and with a loop starts the sweep timer. */
int hg_hub_open(const hg_hub_config *cfg, hg_loop *loop, hg_hub **out, hg_err *err);
/* Answers every parked request (as its wait ending would), then frees everything. */
void hg_hub_close(hg_hub *hub);

/* Creates a store and its master key file (if missing) and makes the first admin key, whose
 * text goes to key (shown once). Refuses a store that already has keys. */
int hg_hub_init_store(const char *db_path, const char *master_key_path, hg_store_sync sync,
                      char key[HG_APIKEY_LEN + 1], hg_err *err);

/* Adds an admin key to an existing store (recovery when every admin key was revoked or lost);
 * the hub must not be running on it. The key's text goes to key (shown once). */
int hg_hub_add_admin_key(const char *db_path, const char *master_key_path, const char *name,
                         char key[HG_APIKEY_LEN + 1], hg_err *err);

int64_t hg_hub_now(hg_hub *hub);
/* Replaces the clock (tests). */
void hg_hub_set_clock(hg_hub *hub, int64_t (*clock)(void *), void *data);

/* One pass of housekeeping: lapsed leases (re-queue or fail agent_lost), runs past their
 * deadline, lapsed sessions; then the wake-ups these caused. */
void hg_hub_sweep(hg_hub *hub);
/* Answers parked requests whose wait has ended. */
void hg_hub_expire_waits(hg_hub *hub);
/* Answers every parked request now, as if its wait had ended (shutting down). */
void hg_hub_release_waits(hg_hub *hub);

/* ---- parked requests ---- */
void hg_hub_park(hg_hub *hub, hg_hub_waiter *w);
/* Forgets a parked request without answering it (its client went away). Safe to repeat. */
void hg_hub_unpark(hg_hub *hub, hg_hub_waiter *w);

/* ---- wake-ups: recorded now, run by hg_hub_flush once the current request is answered ---- */
/* A run (new or back from a lapsed assignment) is waiting in the queue: the parked polls of
 * agents whose labels meet its constraints are evaluated, until one takes it. */
void hg_hub_wake_queue(hg_hub *hub, const char *run_id);
void hg_hub_wake_agent(hg_hub *hub, const char *agent_id);
void hg_hub_wake_run(hg_hub *hub, const char *run_id);
void hg_hub_flush(hg_hub *hub);

/* ---- run transitions the hub makes itself, inside the caller's transaction ---- */
/* Ends a run and writes it: status, error (copied, may be NULL), finished_at; its lease is no
 * longer swept; its readers are woken. */
int hg_hub_end_run(hg_hub *hub, hg_store_run *run, hg_store_run_status status, const char *error,
                   hg_err *err);
/* Puts an assigned run back in the queue and writes it; waiting agents are woken. */
int hg_hub_requeue_run(hg_hub *hub, hg_store_run *run, hg_err *err);

/* ---- agents' liveness ---- */
hg_hub_agent *hg_hub_agent_find(hg_hub *hub, const char *id, bool create);
void hg_hub_agent_forget(hg_hub *hub, const char *id);
/* Whether the session of agent id is still alive (a parked poll keeps it alive). */
bool hg_hub_agent_alive(hg_hub *hub, const char *id);
/* Remembers an agent's labels (JSON object text). */
void hg_hub_agent_set_labels(hg_hub *hub, const char *id, const char *labels);
/* Whether every constraint (JSON object text of strings) is among the labels. */
struct cJSON;
bool hg_hub_constraints_met(const char *constraints, const struct cJSON *labels);
/* Frees what the memo holds and empties it. */
void hg_hub_task_memo_clear(hg_hub_task_memo *m);
void hg_hub_agent_seen(hg_hub *hub, const char *id);
