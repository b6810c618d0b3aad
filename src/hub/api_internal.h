/* What the endpoint files of the API share: the request context, answers, helpers. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "hub/api.h"
#include "hub/fields.h"
#include "hub/store.h"

/* Who is calling. */
enum {
  API_PUBLIC = 0,
  API_ADMIN = 1 << 0,
  API_USER = 1 << 1,
  API_AGENT_KEY = 1 << 2,
  API_SESSION = 1 << 3,
  API_RUN_TOKEN = 1 << 4,
};

typedef struct api_ctx {
  hg_hub *hub;
  hg_api_req *req;
  hg_api_res *res;
  int principal;         /* one API_* bit */
  hg_store_key key;      /* an API key's record */
  hg_store_agent agent;  /* a session's agent */
  hg_store_run run;      /* a run token's run */
  char arg[2][256];      /* the path's * segments, percent-decoded */
  cJSON *body;           /* the parsed body, when the route takes one */
  int64_t now;
} api_ctx;

/* Answers. Each replaces what was there. */
void api_json(api_ctx *c, int status, cJSON *body);
void api_error(api_ctx *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 400 bad_request with the message of err (which names the field). */
void api_bad(api_ctx *c, const hg_err *err);
/* 500 internal for a store or crypto failure; the details go to the hub's log only. */
void api_internal(api_ctx *c, const char *what, const hg_err *err);
/* Adds a top-level member beside "error" (next_seq, status). */
void api_error_extra(api_ctx *c, const char *name, cJSON *value);
/* 409 invalid_transition with the run's status. */
void api_invalid_transition(api_ctx *c, const hg_store_run *run, const char *what);

/* Query parameters: false when absent; the value is percent-decoded into buf. */
bool api_query(api_ctx *c, const char *name, char *buf, size_t size);
/* An integer parameter: absent gives def; out of [lo, hi] is clamped when clamp, else 400.
 * Returns false after answering 400. */
bool api_query_int(api_ctx *c, const char *name, int64_t def, int64_t lo, int64_t hi, bool clamp,
                   int64_t *out);

/* Timestamps as RFC 3339, or null for 0. */
cJSON *api_time(int64_t ms);
/* Parses stored JSON text (NULL gives def: "null", "{}" ...). */
cJSON *api_parse_stored(const char *text, const char *def);
/* The parsed definition of a task revision: the hub's memo when it holds that revision, else
 * definition (the stored text) parsed into the memo. NULL (err set) when out of memory. */
const cJSON *api_task_def(api_ctx *c, const char *slug, int64_t revision, const char *definition,
                          hg_err *err);
/* Whether the memo holds that revision. */
bool api_task_memo_has(api_ctx *c, const char *slug, int64_t revision);
bool api_id_valid(const char *id);

/* A run as GET /v1/runs/{id} shows it. */
cJSON *api_run_view(api_ctx *c, const hg_store_run *run);

/* Runs a store step list inside one transaction: begin, fn, commit. A failure answers 500
 * (unless fn answered itself and returned a positive value, which rolls back quietly). */
bool api_begin(api_ctx *c);
bool api_commit(api_ctx *c);
void api_rollback(api_ctx *c);

/* A run being created goes straight to a parked work poll that can take it (one that gave a
 * free count above 0, of an agent whose labels meet the constraints), in the creating
 * transaction: one commit instead of the creation's and then the assignment's, and no
 * wake-up pass. The taker (NULL: none, the run is queued); the run filled in as assigned to
 * it, its agent id copied into agent (answering the poll may free the poll and its key) and
 * r->agent_id pointing there, lease written to lease; the poll answered with it before its
 * row is written and committed: an offer binds nothing until the agent's accept, which finds
 * no run (409 lease_lost) if the insert or the commit then fails or the hub stops first, and
 * no request can reach the hub in between. */
hg_hub_waiter *api_work_taker(api_ctx *c, const char *constraints);
int api_work_assign_new(api_ctx *c, const hg_hub_waiter *w, hg_store_run *r,
                        char agent[HG_HUB_ID_MAX + 1], char *lease, size_t size, hg_err *err);
void api_work_answer_new(api_ctx *c, hg_hub_waiter *w, const char *run_id, const char *lease);
/* Makes the run token of run_id's given attempt into the hub's token memo, for its accept;
 * called once the run's offer (to a parked poll, or in a poll's answer) is written and
 * committed (a failure only leaves it to the accept to make). */
void api_run_token_prepare(api_ctx *c, const char *run_id, int64_t attempt);

/* Endpoints (api_user.c) */
void api_healthz(api_ctx *c);
void api_metrics(api_ctx *c);
void api_key_create(api_ctx *c);
void api_key_list(api_ctx *c);
void api_key_revoke(api_ctx *c);
void api_task_deploy(api_ctx *c);
void api_task_list(api_ctx *c);
void api_task_get(api_ctx *c);
void api_run_create(api_ctx *c);
void api_run_list(api_ctx *c);
void api_run_get(api_ctx *c);
void api_run_events(api_ctx *c);
void api_run_cancel(api_ctx *c);
void api_config_put(api_ctx *c);
void api_config_list(api_ctx *c);
void api_config_delete(api_ctx *c);
/* Endpoints (api_agent.c) */
void api_agent_register(api_ctx *c);
void api_agent_work(api_ctx *c);
void api_agent_heartbeat(api_ctx *c);
void api_agent_deregister(api_ctx *c);
void api_run_accept(api_ctx *c);
void api_run_start(api_ctx *c);
void api_run_post_events(api_ctx *c);
void api_run_finish(api_ctx *c);
