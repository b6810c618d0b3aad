/* Uploading runs' events to the hub: per-run ordered batches, retries, resync, finish. */
#include "pipeline/uploader.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/timer.h"

#define DEFAULT_BASE_MS 250
#define DEFAULT_CAP_MS 30000
#define DEFAULT_TIMEOUT_MS 60000
/* Room for the batch's wrapper, {"first_seq":N,"events":...}, within max_batch_bytes. */
#define WRAPPER_BYTES 64
/* Event requests a run may have in flight: a second batch travels while the hub stores the
 * first (see kick). */
#define MAX_INFLIGHT 2
/* Batch buffers kept for the next batches: megabytes each, mapped afresh for every request
 * otherwise (the C library maps such sizes, and unmaps them when freed). */
#define SPARE_BATCHES 2

typedef enum req_kind { REQ_PROBE, REQ_EVENTS, REQ_FINISH } req_kind;

/* One request in flight. It outlives its run when the run is removed meanwhile: the callback
 * then only frees it. */
typedef struct upreq {
  hg_uploader_run *run; /* NULL once the run was removed */
  hg_http_req *http;
  req_kind kind;
  uint64_t first, end; /* the batch's events [first, end) */
  uint64_t generation; /* of the session token it was sent with */
  hg_buf body;         /* sent from here (hg_http does not copy it) */
} upreq;

struct hg_uploader_run {
  hg_uploader *up;
  hg_uploader_run *next, **pprev;
  hg_runlog *rl;
  char *events_url, *finish_url;
  uint64_t acked;     /* the hub's next_seq, as far as we know */
  size_t batch_limit; /* lowered after a 413; 0: the uploader's */
  bool probe;         /* ask the hub where it is before sending */
  upreq *req[MAX_INFLIGHT]; /* in flight, oldest first */
  size_t nreq;
  uint64_t sent;      /* the end of the events in flight (acked when none are) */
  bool resync;        /* an events request was not taken: no second one until all answered */
  hg_timer *timer; /* backoff, and kicks scheduled from outside the loop's callbacks */
  bool waiting;    /* for a backoff delay */
  hg_backoff backoff;
  bool failing;       /* the last request failed in transport */
  bool events_closed; /* the hub has the run's finish: no more events */
  bool dead;          /* the hub refused the run for good */
  char *dead_msg;
  bool cancel_reported;
  bool warned_ahead;
  char hub_status[32];
  bool finishing;
  char *fin_status, *fin_error;
  bool fin_has_exit;
  int64_t fin_exit, fin_at;
  hg_uploader_finish_cb cb;
  void *cb_data;
};

struct hg_uploader {
  hg_loop *loop;
  hg_http *http;
  bool own_http;
  char *url;
  char *ca_file, *cert_file, *key_file;
  size_t max_batch;
  int64_t base_ms, cap_ms, timeout_ms;
  void (*on_unauthorized)(void *ud);
  void (*on_cancel)(void *ud, const char *run_id);
  void *ud;
  char *auth; /* "Authorization: Bearer <token>" */
  uint64_t generation;
  bool unauthorized; /* the current token was refused */
  hg_uploader_run *runs;
  hg_buf spare[SPARE_BATCHES]; /* batch buffers to use again */
  size_t nspare;
  hg_uploader_stats st;
};

static void kick(hg_uploader_run *run);

/* ---- small helpers ---- */

static char *dup_or_null(const char *s, bool *failed) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *failed = true;
  return d;
}

static void wipe_free(char *s) {
  if (!s) return;
  hg_buf b = {s, strlen(s), strlen(s) + 1};
  hg_buf_wipe(&b);
}

static size_t batch_limit(const hg_uploader_run *run) {
  size_t limit = run->up->max_batch;
  if (run->batch_limit && run->batch_limit < limit) limit = run->batch_limit;
  return limit > WRAPPER_BYTES * 2 ? limit - WRAPPER_BYTES : limit / 2;
}

/* Runs kick from the loop soon: for cues that arrive inside an API call (so that no callback
 * ever runs from inside the call that caused it). A run in backoff keeps its delay. */
static void schedule(hg_uploader_run *run) {
  if (run->waiting || hg_timer_active(run->timer)) return;
  hg_timer_start(run->timer, 0, 0);
}

static void on_timer(hg_timer *t, void *data) {
  (void)t;
  hg_uploader_run *run = data;
  run->waiting = false;
  kick(run);
}

static void on_runlog(void *ud) {
  schedule(ud);
}

/* ---- requests ---- */

static void on_done(hg_http_req *hreq, int rc, const char *msg, hg_http_response *res, void *data);

/* A buffer for a batch: a spare one, or a new one. */
static hg_buf take_buffer(hg_uploader *up) {
  return up->nspare ? up->spare[--up->nspare] : (hg_buf)HG_BUF_INIT;
}

/* Keeps a batch's buffer for the next one, or frees it. */
static void give_buffer(hg_uploader *up, hg_buf *b) {
  if (b->cap > HG_UPLOADER_DEFAULT_BATCH / 4 && up->nspare < SPARE_BATCHES) {
    hg_buf_reset(b);
    up->spare[up->nspare++] = *b;
  } else {
    hg_buf_free(b);
  }
  *b = (hg_buf)HG_BUF_INIT;
}

/* Starts a POST of body (taken over) to url for run; false when it could not start (the run
 * then backs off or stops). */
static bool post(hg_uploader_run *run, req_kind kind, const char *url, hg_buf *body,
                 uint64_t first, uint64_t end) {
  hg_uploader *up = run->up;
  upreq *r = calloc(1, sizeof *r);
  if (!r) {
    give_buffer(up, body);
    return false;
  }
  *r = (upreq){.run = run, .kind = kind, .first = first, .end = end, .generation = up->generation,
               .body = *body};
  *body = (hg_buf)HG_BUF_INIT;
  const char *headers[] = {up->auth, "Content-Type: application/json", NULL};
  hg_http_request hr = {
      .method = "POST",
      .url = url,
      .headers = headers,
      .body = r->body.data ? r->body.data : "",
      .body_len = r->body.len,
      .body_kept = true, /* events and finishes hold no credential */
      .timeout_ms = up->timeout_ms,
      .tls = {up->ca_file, up->cert_file, up->key_file},
      .max_body = 1 << 20,
  };
  hg_err err = {0};
  if (hg_http_start(up->http, &hr, on_done, r, &r->http, &err)) {
    give_buffer(up, &r->body);
    free(r);
    hg_log(HG_LOG_WARN, "upload: cannot start a request", "run", hg_runlog_run_id(run->rl),
           "error", err.msg, NULL);
    return false;
  }
  run->req[run->nreq++] = r;
  up->st.requests++;
  up->st.bytes += hr.body_len;
  return true;
}

/* post with a body cJSON prints. */
static bool post_json(hg_uploader_run *run, req_kind kind, const char *url, cJSON *doc) {
  char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (!text) return false;
  size_t n = strlen(text);
  hg_buf body = {text, n, n + 1};
  return post(run, kind, url, &body, 0, 0);
}

static void back_off(hg_uploader_run *run, const char *why) {
  hg_uploader *up = run->up;
  if (!run->failing)
    hg_log(HG_LOG_WARN, "upload: the hub did not take a request; retrying with backoff", "run",
           hg_runlog_run_id(run->rl), "error", why, NULL);
  run->failing = true;
  up->st.retries++;
  run->waiting = true;
  hg_timer_start(run->timer, hg_backoff_next(&run->backoff), 0);
}

static void start_probe(hg_uploader_run *run) {
  cJSON *o = cJSON_CreateObject();
  if (o && (!cJSON_AddNumberToObject(o, "first_seq", 0) || !cJSON_AddArrayToObject(o, "events"))) {
    cJSON_Delete(o);
    o = NULL;
  }
  if (!post_json(run, REQ_PROBE, run->events_url, o)) back_off(run, "could not start a request");
}

/* The start of a batch's body, {"first_seq":N,"events":[ , as cJSON prints it: the batch is
 * that object with the run's events, each already the JSON text cJSON made when the event was
 * stored, between the brackets. Splicing them in spares copying megabytes through a tree. */
static int batch_head(uint64_t first, hg_buf *out) {
  cJSON *o = cJSON_CreateObject();
  char *text = NULL;
  if (o && cJSON_AddNumberToObject(o, "first_seq", (double)first) &&
      cJSON_AddRawToObject(o, "events", "[]"))
    text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  int rc = HG_ENOMEM;
  size_t n = text ? strlen(text) : 0;
  if (n >= 3 && !strcmp(text + n - 3, "[]}")) rc = hg_buf_append(out, text, n - 2);
  free(text);
  return rc;
}

/* A batch of the events from `from` on (before avail), as many as fit. */
static void start_batch(hg_uploader_run *run, uint64_t from, uint64_t avail) {
  hg_uploader *up = run->up;
  hg_buf b = take_buffer(up), *j = &b;
  hg_err err = {0};
  uint64_t end = from;
  int rc = batch_head(from, j) ? hg_err_set(&err, HG_ENOMEM, "out of memory") : 0;
  if (!rc) rc = hg_runlog_read_events(run->rl, from, avail, batch_limit(run), j, &end, &err);
  if (!rc && end == from) rc = hg_err_set(&err, HG_EIO, "the spool ended early");
  if (!rc && hg_buf_append(j, "]}", 2)) rc = hg_err_set(&err, HG_ENOMEM, "out of memory");
  if (rc) {
    give_buffer(up, j);
    back_off(run, err.msg);
    return;
  }
  if (!post(run, REQ_EVENTS, run->events_url, j, from, end)) {
    back_off(run, "could not start a request");
    return;
  }
  run->sent = end;
}

static void start_finish(hg_uploader_run *run) {
  cJSON *o = cJSON_CreateObject();
  char ts[HG_TS_LEN];
  hg_clock_format(run->fin_at, ts);
  if (o && (!cJSON_AddStringToObject(o, "status", run->fin_status) ||
            !(run->fin_has_exit ? cJSON_AddNumberToObject(o, "exit_code", (double)run->fin_exit)
                                : cJSON_AddNullToObject(o, "exit_code")) ||
            !(run->fin_error ? cJSON_AddStringToObject(o, "error", run->fin_error)
                             : cJSON_AddNullToObject(o, "error")) ||
            !cJSON_AddNumberToObject(o, "events_total", (double)hg_runlog_count(run->rl)) ||
            !cJSON_AddStringToObject(o, "at", ts))) {
    cJSON_Delete(o);
    o = NULL;
  }
  if (!post_json(run, REQ_FINISH, run->finish_url, o)) back_off(run, "could not start a request");
}

/* Reports the finish's outcome; the last thing done with run (the callback may remove it). */
static void report(hg_uploader_run *run, int rc, const char *hub_status, const char *message) {
  if (!run->finishing) return;
  run->finishing = false;
  hg_uploader_finish_cb cb = run->cb;
  void *data = run->cb_data;
  run->cb = NULL;
  hg_uploader_result res = {rc, hub_status, message ? message : ""};
  cb(run, &res, data);
}

/* Whether a second batch may go while one is in flight. The hub stores a run's batches in the
 * order their bodies arrive, and one that starts past what it has is refused (seq_gap) and
 * sent again later: harmless, but the hub has read it for nothing. So the second batch starts
 * where the first ends, and only when there is at least as much to send as the first carried:
 * a full batch started after the first is all but always received after it. That is when
 * throughput counts (a backlog), and then the hub stores one batch while the next arrives. */
static bool may_pipeline(const hg_uploader_run *run, uint64_t avail) {
  const hg_uploader *up = run->up;
  return run->nreq == 1 && run->req[0]->kind == REQ_EVENTS && !run->probe && !run->dead &&
         !run->events_closed && !run->failing && !run->resync && up->auth && !up->unauthorized &&
         run->sent >= run->req[0]->first && avail > run->sent &&
         avail - run->sent >= run->sent - run->req[0]->first;
}

static void kick(hg_uploader_run *run) {
  hg_uploader *up = run->up;
  if (run->waiting) return;
  if (run->nreq) {
    uint64_t avail = hg_runlog_uploadable(run->rl);
    if (may_pipeline(run, avail)) start_batch(run, run->sent, avail);
    return;
  }
  run->sent = run->acked;
  run->resync = false;
  if (run->dead) {
    report(run, HG_EPROTO, NULL, run->dead_msg);
    return;
  }
  if (!up->auth || up->unauthorized) return;
  if (run->probe) {
    start_probe(run);
    return;
  }
  uint64_t count = hg_runlog_count(run->rl);
  if (!run->events_closed) {
    uint64_t avail = hg_runlog_uploadable(run->rl);
    if (run->acked < avail) {
      start_batch(run, run->acked, avail);
      return;
    }
  }
  if (run->finishing && hg_runlog_ended(run->rl) && (run->events_closed || run->acked >= count))
    start_finish(run);
}

/* ---- answers ---- */

static void acknowledge(hg_uploader_run *run, uint64_t next) {
  uint64_t count = hg_runlog_count(run->rl);
  if (next > count) {
    /* The hub has events this spool lost (it was damaged, or replaced). Their numbers cannot
     * be used again: new events with them would be ignored as repeats. */
    if (!run->warned_ahead)
      hg_log(HG_LOG_WARN, "upload: the hub has more events of this run than its spool; later "
             "events with those numbers are lost", "run", hg_runlog_run_id(run->rl), NULL);
    run->warned_ahead = true;
    next = count;
  }
  /* Answers to two batches may come in either order: the later one says more. */
  if (next <= run->acked) return;
  /* What the hub held before this agent asked (a probe's answer) is not ours to count. */
  if (!run->probe) run->up->st.acked += next - run->acked;
  run->acked = next;
}

static void kill_run(hg_uploader_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void kill_run(hg_uploader_run *run, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  hg_log(HG_LOG_ERROR, "upload: the hub refused the run's events; its upload stops", "run",
         hg_runlog_run_id(run->rl), "error", msg, NULL);
  run->dead = true;
  free(run->dead_msg);
  run->dead_msg = strdup(msg);
}

static const char *str_field(const cJSON *o, const char *name) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static bool num_field(const cJSON *o, const char *name, uint64_t *out) {
  const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > 9007199254740992.0) return false;
  *out = (uint64_t)n->valuedouble;
  return true;
}

static void note_status(hg_uploader_run *run, const char *status) {
  if (status) snprintf(run->hub_status, sizeof run->hub_status, "%s", status);
}

static void on_done(hg_http_req *hreq, int rc, const char *msg, hg_http_response *res, void *data) {
  (void)hreq;
  upreq *r = data;
  hg_uploader_run *run = r->run;
  req_kind kind = r->kind;
  uint64_t first = r->first, end = r->end, generation = r->generation;
  if (!run) {
    hg_buf_free(&r->body); /* removed meanwhile: its uploader may be gone too */
    free(r);
    return;
  }
  for (size_t k = 0; k < run->nreq; k++) {
    if (run->req[k] != r) continue;
    memmove(&run->req[k], &run->req[k + 1], (run->nreq - k - 1) * sizeof run->req[0]);
    run->nreq--;
    break;
  }
  hg_uploader *up = run->up;
  give_buffer(up, &r->body);
  free(r);
  if (rc == HG_ECANCELED) return; /* the uploader is going away */
  if (kind == REQ_EVENTS && (rc || res->status != 200)) run->resync = true;
  if (rc) {
    back_off(run, msg);
    return;
  }
  long status = res->status;
  cJSON *doc = res->body.len ? cJSON_ParseWithLength(res->body.data, res->body.len) : NULL;
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
  const char *code = str_field(error, "code"), *message = str_field(error, "message");
  char text[300];
  snprintf(text, sizeof text, "HTTP %ld%s%s", status, message ? ": " : "", message ? message : "");
  if (status >= 200 && status < 300) {
    if (run->failing) up->st.reconnects++;
    run->failing = false;
    hg_backoff_reset(&run->backoff);
  }
  uint64_t next = 0;
  if (status == 200 && kind != REQ_FINISH) {
    if (!num_field(doc, "next_seq", &next)) {
      back_off(run, "the hub's answer has no next_seq");
      goto out;
    }
    acknowledge(run, next);
    run->probe = false;
    /* Batch buffers a busy run made large are not kept once it has caught up. */
    if (run->acked >= hg_runlog_uploadable(run->rl) && !run->nreq)
      while (up->nspare) hg_buf_free(&up->spare[--up->nspare]);
    note_status(run, str_field(doc, "status"));
    bool cancel = !run->cancel_reported && !strcmp(run->hub_status, "cancelling");
    run->cancel_reported |= cancel;
    kick(run);
    /* Callbacks last: they may remove the run. */
    if (cancel && up->on_cancel) up->on_cancel(up->ud, hg_runlog_run_id(run->rl));
    goto out;
  }
  if (status == 200) { /* the finish */
    note_status(run, str_field(doc, "status"));
    report(run, 0, run->hub_status, NULL);
    goto out;
  }
  if (status == 401) {
    if (generation == up->generation && !up->unauthorized) {
      up->unauthorized = true;
      hg_log(HG_LOG_WARN, "upload: the session token was refused; waiting for a new session",
             NULL);
      if (up->on_unauthorized) up->on_unauthorized(up->ud);
    } else {
      schedule(run);
    }
    goto out;
  }
  if (status == 409 && code && !strcmp(code, "seq_gap") && num_field(doc, "next_seq", &next)) {
    run->probe = false;
    /* A second batch that reached the hub before the first: the first's answer settles it. */
    for (size_t k = 0; k < run->nreq; k++)
      if (run->req[k]->kind == REQ_EVENTS && run->req[k]->first <= next) goto out;
    run->acked = next < hg_runlog_count(run->rl) ? next : hg_runlog_count(run->rl);
    run->sent = run->acked;
    kick(run);
    goto out;
  }
  if (status == 409 && code && !strcmp(code, "invalid_transition")) {
    const char *hub = str_field(doc, "status");
    note_status(run, hub);
    if (kind == REQ_FINISH) {
      report(run, HG_EPERM, hub, text);
      goto out;
    }
    /* Events after the finish: an earlier agent finished this run. Post ours as is. */
    run->events_closed = true;
    run->probe = false;
    kick(run);
    goto out;
  }
  if (status == 413 && kind == REQ_EVENTS && end - first > 1) {
    run->batch_limit = batch_limit(run) / 2;
    kick(run);
    goto out;
  }
  if (status == 408 || status == 429 || status >= 500) {
    back_off(run, text);
    goto out;
  }
  kill_run(run, "%s", text);
  kick(run); /* reports to a pending finish */
out:
  cJSON_Delete(doc);
}

/* ---- the uploader ---- */

int hg_uploader_new(hg_uploader **out, const hg_uploader_config *cfg, hg_err *err) {
  *out = NULL;
  if (!cfg || !cfg->loop || !cfg->url)
    return hg_err_set(err, HG_EINVAL, "uploader: a loop and the hub's URL are required");
  if (strncmp(cfg->url, "http://", 7) && strncmp(cfg->url, "https://", 8))
    return hg_err_set(err, HG_EINVAL, "uploader: the hub's URL must start with http:// or https://");
  hg_uploader *up = calloc(1, sizeof *up);
  if (!up) return hg_err_set(err, HG_ENOMEM, "uploader: out of memory");
  bool oom = false;
  up->loop = cfg->loop;
  up->url = dup_or_null(cfg->url, &oom);
  if (up->url) {
    size_t n = strlen(up->url);
    while (n > 0 && up->url[n - 1] == '/') up->url[--n] = '\0';
  }
  up->ca_file = dup_or_null(cfg->tls.ca_file, &oom);
  up->cert_file = dup_or_null(cfg->tls.cert_file, &oom);
  up->key_file = dup_or_null(cfg->tls.key_file, &oom);
  up->max_batch = cfg->max_batch_bytes ? cfg->max_batch_bytes : HG_UPLOADER_DEFAULT_BATCH;
  if (up->max_batch > HG_UPLOADER_MAX_BATCH) up->max_batch = HG_UPLOADER_MAX_BATCH;
  up->base_ms = cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : DEFAULT_BASE_MS;
  up->cap_ms = cfg->backoff_cap_ms > 0 ? cfg->backoff_cap_ms : DEFAULT_CAP_MS;
  if (up->cap_ms < up->base_ms) up->cap_ms = up->base_ms;
  up->timeout_ms = cfg->request_timeout_ms > 0 ? cfg->request_timeout_ms : DEFAULT_TIMEOUT_MS;
  up->on_unauthorized = cfg->on_unauthorized;
  up->on_cancel = cfg->on_cancel;
  up->ud = cfg->ud;
  if (oom) {
    hg_uploader_free(up);
    return hg_err_set(err, HG_ENOMEM, "uploader: out of memory");
  }
  if (cfg->http) {
    up->http = cfg->http;
  } else {
    int rc = hg_http_new(cfg->loop, &up->http, err);
    if (rc) {
      hg_uploader_free(up);
      return rc;
    }
    up->own_http = true;
  }
  *out = up;
  return 0;
}

void hg_uploader_free(hg_uploader *up) {
  if (!up) return;
  while (up->runs) hg_uploader_remove(up->runs);
  if (up->own_http) hg_http_free(up->http);
  free(up->url);
  free(up->ca_file);
  free(up->cert_file);
  free(up->key_file);
  wipe_free(up->auth);
  while (up->nspare) hg_buf_free(&up->spare[--up->nspare]);
  free(up);
}

int hg_uploader_set_session(hg_uploader *up, const char *token, size_t max_batch_bytes,
                            hg_err *err) {
  hg_buf auth = HG_BUF_INIT;
  if (hg_buf_printf(&auth, "Authorization: Bearer %s", token ? token : ""))
    return hg_err_set(err, HG_ENOMEM, "uploader: out of memory");
  wipe_free(up->auth);
  up->auth = hg_buf_steal(&auth);
  if (max_batch_bytes)
    up->max_batch = max_batch_bytes > HG_UPLOADER_MAX_BATCH ? HG_UPLOADER_MAX_BATCH : max_batch_bytes;
  up->generation++;
  up->unauthorized = false;
  for (hg_uploader_run *run = up->runs; run; run = run->next) schedule(run);
  return 0;
}

/* ---- runs ---- */

static char *run_url(const hg_uploader *up, const char *run_id, const char *what) {
  hg_buf b = HG_BUF_INIT;
  if (hg_buf_printf(&b, "%s/v1/runs/%s/%s", up->url, run_id, what)) {
    hg_buf_free(&b);
    return NULL;
  }
  return hg_buf_steal(&b);
}

int hg_uploader_add(hg_uploader *up, hg_runlog *rl, hg_uploader_run **out, hg_err *err) {
  *out = NULL;
  hg_uploader_run *run = calloc(1, sizeof *run);
  if (!run) return hg_err_set(err, HG_ENOMEM, "uploader: out of memory");
  run->up = up;
  run->rl = rl;
  run->events_url = run_url(up, hg_runlog_run_id(rl), "events");
  run->finish_url = run_url(up, hg_runlog_run_id(rl), "finish");
  int rc = 0;
  if (!run->events_url || !run->finish_url)
    rc = hg_err_set(err, HG_ENOMEM, "uploader: out of memory");
  if (!rc) rc = hg_backoff_init(&run->backoff, up->base_ms, up->cap_ms, err);
  if (!rc) rc = hg_timer_new(up->loop, on_timer, run, &run->timer, err);
  if (rc) {
    free(run->events_url);
    free(run->finish_url);
    free(run);
    return rc;
  }
  /* Events from before a restart: the hub may have some of them already. */
  run->probe = hg_runlog_count(rl) > 0;
  run->next = up->runs;
  if (run->next) run->next->pprev = &run->next;
  run->pprev = &up->runs;
  up->runs = run;
  hg_runlog_set_listener(rl, on_runlog, run);
  schedule(run);
  *out = run;
  return 0;
}

void hg_uploader_remove(hg_uploader_run *run) {
  if (!run) return;
  *run->pprev = run->next;
  if (run->next) run->next->pprev = run->pprev;
  hg_runlog_set_listener(run->rl, NULL, NULL);
  for (size_t k = 0; k < run->nreq; k++) {
    run->req[k]->run = NULL;
    hg_http_cancel(run->req[k]->http);
  }
  hg_timer_free(run->timer);
  free(run->events_url);
  free(run->finish_url);
  free(run->dead_msg);
  free(run->fin_status);
  wipe_free(run->fin_error);
  free(run);
}

int hg_uploader_finish(hg_uploader_run *run, const hg_uploader_finish_opts *o,
                       hg_uploader_finish_cb cb, void *data, hg_err *err) {
  if (!o || !o->status || !cb ||
      (strcmp(o->status, "succeeded") && strcmp(o->status, "failed") && strcmp(o->status, "cancelled")))
    return hg_err_set(err, HG_EINVAL, "finish: status must be succeeded, failed or cancelled");
  if (run->finishing)
    return hg_err_set(err, HG_EINVAL, "finish: run %s is already finishing", hg_runlog_run_id(run->rl));
  bool oom = false;
  char *status = dup_or_null(o->status, &oom), *error = dup_or_null(o->error, &oom);
  if (oom) {
    free(status);
    free(error);
    return hg_err_set(err, HG_ENOMEM, "finish: out of memory");
  }
  free(run->fin_status);
  wipe_free(run->fin_error);
  run->fin_status = status;
  run->fin_error = error;
  run->fin_has_exit = o->has_exit_code;
  run->fin_exit = o->exit_code;
  run->fin_at = hg_clock_now_ms();
  run->cb = cb;
  run->cb_data = data;
  run->finishing = true;
  hg_err ignored;
  hg_runlog_end(run->rl, &ignored); /* a failed sync is logged; the events go all the same */
  schedule(run);
  return 0;
}

uint64_t hg_uploader_run_acked(const hg_uploader_run *run) {
  return run->acked;
}

const char *hg_uploader_run_hub_status(const hg_uploader_run *run) {
  return run->hub_status[0] ? run->hub_status : NULL;
}

void hg_uploader_stats_get(const hg_uploader *up, hg_uploader_stats *out) {
  *out = up->st;
  out->runs = 0;
  out->unacked = 0;
  for (const hg_uploader_run *run = up->runs; run; run = run->next) {
    uint64_t count = hg_runlog_count(run->rl);
    out->runs++;
    out->unacked += count > run->acked ? count - run->acked : 0;
  }
}
