/* Uploading runs' events to the hub: batches in order per run, all runs in parallel, retries
 * with backoff, resync on seq_gap, and each run's finish once every event is acknowledged. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/http.h"
#include "core/loop.h"
#include "pipeline/runlog.h"

/*
 * One hg_uploader per agent; each run's hg_runlog is added to it. A run's batches follow each
 * other in order; different runs upload in parallel.
 *
 * What is sent. Only durable events (hg_runlog_uploadable): the runlog's sync timer is the
 * linger, so a batch holds whatever became durable since the last one, up to max_batch_bytes
 * of events (always at least one event), as soon as the previous batch of that run is
 * answered. With a backlog of at least another full batch, that next batch goes while the
 * previous one is still in flight (two at most), starting where it ends, so that the hub
 * stores one while the next arrives; should it arrive first, the hub's seq_gap answer is
 * ignored and it is sent again after the first. A run whose spool already held events when
 * it was added (an agent restart) first asks the hub where it is (an empty batch answers
 * next_seq), then goes on from there.
 *
 * Answers.
 *   200          acknowledged up to next_seq; a run status of "cancelling" calls on_cancel
 *                once for that run.
 *   409 seq_gap  the hub has fewer events than assumed: resend from its next_seq.
 *   401          the session lapsed: on_unauthorized is called (once per token) and every run
 *                waits until hg_uploader_set_session gives a new token.
 *   413          a batch of several events is halved and sent again.
 *   transport errors, 408, 429, 5xx
 *                retried after a capped full-jitter backoff (per run; reset by a success).
 *   409 invalid_transition on events
 *                the hub already has this run's finish: no more events are sent, and a finish
 *                is posted as is (an identical repeat is 200).
 *   other 4xx    the run's upload stops; its finish reports the hub's message.
 * Events the hub already has are ignored by it, so a retried batch is harmless: every event is
 * delivered exactly once, across hub outages and, through the spool, agent restarts.
 *
 * Finish. hg_uploader_finish ends the runlog (its last lines are stored and it is synced),
 * waits until every event is acknowledged, then posts the finish with events_total. A seq_gap
 * answer uploads the rest and retries; transport errors and 5xx are retried like batches.
 *
 * One thread (the loop's). Callbacks run from the loop, never from inside the call that
 * started the work.
 */

typedef struct hg_uploader hg_uploader;
typedef struct hg_uploader_run hg_uploader_run;

#define HG_UPLOADER_DEFAULT_BATCH (1u << 20)
#define HG_UPLOADER_MAX_BATCH (8u << 20) /* the protocol's limit for an event batch */

typedef struct hg_uploader_config {
  hg_loop *loop;              /* required */
  hg_http *http;              /* borrowed (outlives the uploader); NULL: the uploader makes one */
  const char *url;            /* the hub's base URL, "https://hub:8443" (copied) */
  hg_http_tls tls;            /* CA bundle, client certificate (paths copied) */
  size_t max_batch_bytes;     /* until the session says; 0: HG_UPLOADER_DEFAULT_BATCH */
  int64_t backoff_base_ms;    /* 0: 250 */
  int64_t backoff_cap_ms;     /* 0: 30000 */
  int64_t request_timeout_ms; /* 0: 60000 */
  /* The session token was refused: register again and call hg_uploader_set_session. */
  void (*on_unauthorized)(void *ud);
  /* The hub answered a run's events with status "cancelling". */
  void (*on_cancel)(void *ud, const char *run_id);
  void *ud;
} hg_uploader_config;

/* Returns 0, HG_EINVAL (no loop or URL, or a URL that is not http(s)://) or HG_ENOMEM. */
int hg_uploader_new(hg_uploader **out, const hg_uploader_config *cfg, hg_err *err);
/* Removes every run (dropping pending finishes without their callbacks), cancels requests and
 * frees. Not from inside one of its callbacks. NULL is a no-op. */
void hg_uploader_free(hg_uploader *up);

/* The session to upload with (after each register): its token and the hub's max_batch_bytes
 * (0 keeps the current size; above HG_UPLOADER_MAX_BATCH is clamped). Runs waiting for a
 * session, or after a 401, resume. Returns 0 or HG_ENOMEM. */
int hg_uploader_set_session(hg_uploader *up, const char *token, size_t max_batch_bytes,
                            hg_err *err);

/* Starts uploading rl's events (the run's id is hg_runlog_run_id). The runlog must stay open
 * until hg_uploader_remove; the uploader becomes its listener. Returns 0 or HG_ENOMEM. */
int hg_uploader_add(hg_uploader *up, hg_runlog *rl, hg_uploader_run **out, hg_err *err);
/* Stops uploading the run (a request in flight is cancelled; a pending finish is dropped
 * without its callback). Safe from inside any callback of the uploader. NULL is a no-op. */
void hg_uploader_remove(hg_uploader_run *run);

typedef struct hg_uploader_finish_opts {
  const char *status; /* "succeeded", "failed" or "cancelled" */
  bool has_exit_code;
  int64_t exit_code;
  const char *error; /* NULL: none */
} hg_uploader_finish_opts;

/* rc 0: the hub recorded the finish (hub_status is the run's status). HG_EPERM: the run had
 * already ended otherwise (hub_status says how: the hub failed it, or an earlier finish
 * differs); record that and move on. Another negative code: the hub refused the run's upload
 * or finish for good (message says why). HG_ECANCELED never reaches the callback: a removed
 * run's finish is dropped. Strings live until the callback returns. */
typedef struct hg_uploader_result {
  int rc;
  const char *hub_status;
  const char *message;
} hg_uploader_result;

typedef void (*hg_uploader_finish_cb)(hg_uploader_run *run, const hg_uploader_result *res,
                                      void *data);

/* Ends the run's log, uploads what is left and posts the finish; cb runs once with the
 * outcome. On failure (HG_EINVAL: a bad status, or a finish already pending; HG_ENOMEM)
 * returns the code and never calls cb. */
int hg_uploader_finish(hg_uploader_run *run, const hg_uploader_finish_opts *opts,
                       hg_uploader_finish_cb cb, void *data, hg_err *err);

/* Events of the run the hub has acknowledged (its next_seq as last heard). */
uint64_t hg_uploader_run_acked(const hg_uploader_run *run);
/* The run's status in the hub's last answer ("running", "cancelling", ...); NULL before one. */
const char *hg_uploader_run_hub_status(const hg_uploader_run *run);

typedef struct hg_uploader_stats {
  size_t runs;
  uint64_t unacked;    /* events stored and not yet acknowledged, over all runs */
  uint64_t acked;      /* events acknowledged since the uploader started */
  uint64_t requests;   /* HTTP requests started */
  uint64_t retries;    /* requests repeated after a failure */
  uint64_t reconnects; /* times the hub answered again after transport errors */
  uint64_t bytes;      /* request bodies sent */
} hg_uploader_stats;

void hg_uploader_stats_get(const hg_uploader *up, hg_uploader_stats *out);
