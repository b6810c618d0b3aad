/* Uploader against a stand-in hub with faults on demand (tests/helpers/fakehub.py): order,
 * exactly-once delivery, backoff without a tight loop, seq_gap resync, 401, cancels, 413,
 * finish only after every event, and a restart in the middle of an upload. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/http.h"
#include "core/loop.h"
#include "core/timer.h"
#include "pipeline/runlog.h"
#include "pipeline/uploader.h"

static char dir[512];
static hg_loop loop;
static hg_http *http;
static pid_t hub_pid;
static char hub_url[64];

/* ---- the loop, driven until a condition holds ---- */

static void tick(hg_timer *t, void *data) {
  (void)t;
  (void)data;
}

/* Runs the loop until cond(arg) or timeout_ms; returns whether cond held. */
static bool spin(bool (*cond)(void *), void *arg, int64_t timeout_ms) {
  hg_timer *t;
  hg_err err;
  if (hg_timer_new(&loop, tick, NULL, &t, &err)) return false;
  hg_timer_start(t, 5, 5);
  int64_t deadline = hg_clock_mono_ms() + timeout_ms;
  bool ok;
  while (!(ok = cond(arg)) && hg_clock_mono_ms() < deadline) uv_run(&loop.uv, UV_RUN_ONCE);
  hg_timer_free(t);
  return ok;
}

static bool never(void *arg) {
  (void)arg;
  return false;
}

static void spin_for(int64_t ms) {
  spin(never, NULL, ms);
}

/* ---- plain requests to the stand-in hub ---- */

typedef struct call {
  bool done;
  long status;
  hg_buf body;
} call;

static void call_done(hg_http_req *req, int rc, const char *msg, hg_http_response *res, void *data) {
  (void)req;
  (void)msg;
  call *c = data;
  c->done = true;
  c->status = rc ? -1 : res->status;
  c->body = res->body;
  res->body = (hg_buf)HG_BUF_INIT;
}

static bool call_is_done(void *c) {
  return ((call *)c)->done;
}

static cJSON *hub_call(const char *method, const char *path, const char *body) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", hub_url, path);
  const char *headers[] = {"Content-Type: application/json", NULL};
  hg_http_request r = {.method = method, .url = url, .headers = headers, .body = body,
                       .body_len = body ? strlen(body) : 0, .timeout_ms = 10000};
  call c = {0};
  hg_err err = {0};
  if (hg_http_start(http, &r, call_done, &c, NULL, &err)) {
    fprintf(stderr, "  request: %s\n", err.msg);
    return NULL;
  }
  spin(call_is_done, &c, 15000);
  cJSON *doc = c.status == 200 && c.body.data ? cJSON_Parse(c.body.data) : NULL;
  hg_buf_free(&c.body);
  return doc;
}

static void control(const char *json) {
  cJSON_Delete(hub_call("POST", "/_control", json));
}

/* The stand-in's whole state (GET /_state, see fakehub.py) in *all, also returned; NULL when
 * the stand-in did not answer. */
static cJSON *hub_state(cJSON **all) {
  *all = hub_call("GET", "/_state", NULL);
  return *all;
}

static int hub_requests(void) {
  cJSON *all;
  int n = -1;
  if (hub_state(&all)) n = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(all, "requests"));
  cJSON_Delete(all);
  return n;
}

static void start_hub(void) {
  const char *src = getenv("HANGAR_SOURCE_DIR");
  char script[600], port_file[600];
  snprintf(script, sizeof script, "%s/tests/helpers/fakehub.py", src ? src : ".");
  snprintf(port_file, sizeof port_file, "%s/port", dir);
  hub_pid = fork();
  if (hub_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* a crashed test leaves no server behind */
    char log[700];
    snprintf(log, sizeof log, "%s/fakehub.log", dir);
    FILE *f = fopen(log, "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    execlp("python3", "python3", script, port_file, (char *)NULL);
    _exit(127);
  }
  CHECK(hub_pid > 0);
  int port = 0;
  for (int i = 0; i < 500 && !port; i++) {
    FILE *f = fopen(port_file, "r");
    if (f) {
      if (fscanf(f, "%d", &port) != 1) port = 0;
      fclose(f);
    }
    if (!port) usleep(10000);
  }
  CHECK(port > 0);
  snprintf(hub_url, sizeof hub_url, "http://127.0.0.1:%d", port);
}

static void stop_hub(void) {
  if (hub_pid > 0) {
    kill(hub_pid, SIGTERM);
    waitpid(hub_pid, NULL, 0);
  }
}

/* ---- fixtures ---- */

typedef struct world {
  hg_runlog_group *g;
  hg_uploader *up;
  int unauthorized;
  int cancels;
  char cancelled[64];
} world;

static void on_unauthorized(void *ud) {
  ((world *)ud)->unauthorized++;
}

static void on_cancel(void *ud, const char *run_id) {
  world *w = ud;
  w->cancels++;
  snprintf(w->cancelled, sizeof w->cancelled, "%s", run_id);
}

static void world_open(world *w, size_t max_batch) {
  memset(w, 0, sizeof *w);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_group_new(&w->g, &loop, 0, &err), 0);
  hg_uploader_config cfg = {
      .loop = &loop,
      .http = http,
      .url = hub_url,
      .max_batch_bytes = max_batch,
      .backoff_base_ms = 20,
      .backoff_cap_ms = 200,
      .request_timeout_ms = 5000,
      .on_unauthorized = on_unauthorized,
      .on_cancel = on_cancel,
      .ud = w,
  };
  int rc = hg_uploader_new(&w->up, &cfg, &err);
  if (rc) fprintf(stderr, "  uploader: %s\n", err.msg);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(hg_uploader_set_session(w->up, "token-1", 0, &err), 0);
}

static void world_close(world *w) {
  hg_uploader_free(w->up);
  hg_runlog_group_free(w->g);
  spin_for(10); /* let the closed handles go */
}

typedef struct run {
  char id[32];
  char path[600];
  hg_runlog *rl;
  hg_uploader_run *ur;
  bool finished;
  hg_uploader_result res;
  char hub_status[32];
  char message[300];
} run;

static void run_open(world *w, run *r, const char *id) {
  hg_err err = {0};
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->path, sizeof r->path, "%s/%s.spool", dir, id);
  hg_runlog_opts o = {.group = w->g, .run_id = r->id, .spool_path = r->path, .sync_ms = 10};
  int rc = hg_runlog_open(&r->rl, &o, &err);
  if (rc) fprintf(stderr, "  runlog: %s\n", err.msg);
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_INT(hg_uploader_add(w->up, r->rl, &r->ur, &err), 0);
  r->finished = false;
}

/* Writes lines [from, to) of run r: "<id> line <i>" padded to some length. */
static void write_lines(run *r, int from, int to) {
  hg_err err = {0};
  hg_buf b = HG_BUF_INIT;
  for (int i = from; i < to; i++) {
    hg_buf_printf(&b, "%s line %d %.*s\n", r->id, i, i % 50, "..................................................");
    if (b.len > 8192 || i == to - 1) {
      CHECK(hg_runlog_write(r->rl, HG_RUNLOG_STDOUT, b.data, b.len, 0, &err) >= 0);
      hg_buf_reset(&b);
    }
  }
  hg_buf_free(&b);
}

static void on_finished(hg_uploader_run *ur, const hg_uploader_result *res, void *data) {
  (void)ur;
  run *r = data;
  r->finished = true;
  r->res = *res;
  snprintf(r->hub_status, sizeof r->hub_status, "%s", res->hub_status ? res->hub_status : "");
  snprintf(r->message, sizeof r->message, "%s", res->message ? res->message : "");
  r->res.hub_status = r->hub_status;
  r->res.message = r->message;
}

static bool is_finished(void *r) {
  return ((run *)r)->finished;
}

static void finish(run *r, const char *status) {
  hg_err err = {0};
  hg_uploader_finish_opts o = {.status = status, .has_exit_code = true, .exit_code = 0};
  CHECK_EQ_INT(hg_uploader_finish(r->ur, &o, on_finished, r, &err), 0);
  CHECK(!r->finished); /* never from inside the call */
  CHECK(spin(is_finished, r, 20000));
}

static void run_close(run *r) {
  hg_err err = {0};
  hg_uploader_remove(r->ur);
  CHECK_EQ_INT(hg_runlog_delete(r->rl, &err), 0);
}

/* The hub holds exactly the run's spooled events, in order, once each. */
static void expect_delivered(run *r) {
  cJSON *all;
  hub_state(&all);
  cJSON *hr = cJSON_GetObjectItem(cJSON_GetObjectItem(all, "runs"), r->id);
  cJSON *events = cJSON_GetObjectItem(hr, "events");
  uint64_t n = hg_runlog_count(r->rl);
  CHECK_EQ_INT(cJSON_GetArraySize(events), n);
  hg_buf b = HG_BUF_INIT;
  hg_err err = {0};
  uint64_t next = 0;
  hg_buf_appendc(&b, '[');
  CHECK_EQ_INT(hg_runlog_read_events(r->rl, 0, UINT64_MAX, SIZE_MAX, &b, &next, &err), 0);
  hg_buf_appendc(&b, ']');
  cJSON *spooled = cJSON_Parse(b.data);
  hg_buf_free(&b);
  int i = 0, mismatches = 0;
  cJSON *e;
  cJSON_ArrayForEach(e, events) {
    cJSON *mine = cJSON_GetArrayItem(spooled, i);
    if (!mine) break;
    if (!cJSON_Compare(mine, e, 1)) mismatches++;
    i++;
  }
  cJSON_Delete(spooled);
  CHECK_EQ_INT(i, n);
  CHECK_EQ_INT(mismatches, 0);
  cJSON_Delete(all);
}

/* The finish the hub recorded, and how many events it had when the finish came. */
static void expect_finish(run *r, const char *status) {
  cJSON *all;
  hub_state(&all);
  cJSON *hr = cJSON_GetObjectItem(cJSON_GetObjectItem(all, "runs"), r->id);
  cJSON *fin = cJSON_GetObjectItem(hr, "finish");
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(fin, "status")), status);
  CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(fin, "events_total")), hg_runlog_count(r->rl));
  CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(hr, "finish_seen_events")), hg_runlog_count(r->rl));
  CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(hr, "finishes")), 1);
  cJSON_Delete(all);
}

typedef struct acked_at_least {
  run *r;
  uint64_t n;
} acked_at_least;

static bool has_acked(void *arg) {
  acked_at_least *a = arg;
  return hg_uploader_run_acked(a->r->ur) >= a->n;
}

/* ---- tests ---- */

static void setup(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(dir, sizeof dir, "%s/test_uploader.XXXXXX", base);
  CHECK(mkdtemp(dir) != NULL);
  hg_err err = {0};
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  CHECK_EQ_INT(hg_http_new(&loop, &http, &err), 0);
  start_hub();
}

static void runs_in_parallel_in_order_once(void) {
  world w;
  world_open(&w, 4096); /* small batches: many of them */
  run r[3];
  const char *ids[] = {"par-a", "par-b", "par-c"};
  for (int i = 0; i < 3; i++) run_open(&w, &r[i], ids[i]);
  for (int i = 0; i < 3; i++) write_lines(&r[i], 0, 3000);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_system(r[1].rl, "an agent line", &err), 0);
  for (int i = 0; i < 3; i++) write_lines(&r[i], 3000, 4000 + i * 500);
  for (int i = 0; i < 3; i++) finish(&r[i], "succeeded");
  for (int i = 0; i < 3; i++) {
    CHECK_EQ_INT(r[i].res.rc, 0);
    CHECK_EQ_STR(r[i].res.hub_status, "succeeded");
    expect_delivered(&r[i]);
    expect_finish(&r[i], "succeeded");
  }
  hg_uploader_stats st;
  hg_uploader_stats_get(w.up, &st);
  CHECK_EQ_INT(st.unacked, 0);
  CHECK_EQ_INT(st.retries, 0);
  CHECK(st.requests > 30); /* the 4 KiB batches */
  for (int i = 0; i < 3; i++) run_close(&r[i]);
  world_close(&w);
}

static void server_errors_are_retried_with_backoff(void) {
  world w;
  world_open(&w, 0);
  run r;
  run_open(&w, &r, "five-hundred");
  control("{\"fail\": {\"status\": 503, \"count\": 4, \"what\": \"any\"}}");
  write_lines(&r, 0, 2000);
  int before = hub_requests();
  finish(&r, "failed");
  CHECK_EQ_INT(r.res.rc, 0);
  expect_delivered(&r);
  expect_finish(&r, "failed");
  hg_uploader_stats st;
  hg_uploader_stats_get(w.up, &st);
  CHECK_EQ_INT(st.retries, 4);
  /* 4 refusals, then one batch and the finish: nothing sent twice for nothing */
  CHECK(hub_requests() - before <= 4 + 3 + 2);
  run_close(&r);
  world_close(&w);
}

static void unreachable_hub_is_retried_without_a_tight_loop(void) {
  world w;
  world_open(&w, 0);
  run r;
  run_open(&w, &r, "down");
  write_lines(&r, 0, 100);
  acked_at_least a = {&r, 100};
  CHECK(spin(has_acked, &a, 10000));
  /* the hub drops every connection for a while */
  control("{\"drop\": 1000000}");
  int before = hub_requests();
  write_lines(&r, 100, 200);
  spin_for(1500);
  int during = hub_requests() - before;
  /* backoff of 20 ms doubling to 200 ms: a dozen tries in 1.5 s, not thousands */
  CHECK(during >= 3);
  CHECK(during <= 30);
  control("{\"drop\": 0}");
  finish(&r, "succeeded");
  CHECK_EQ_INT(r.res.rc, 0);
  expect_delivered(&r);
  expect_finish(&r, "succeeded");
  hg_uploader_stats st;
  hg_uploader_stats_get(w.up, &st);
  CHECK(st.reconnects >= 1);
  run_close(&r);
  world_close(&w);
}

static void seq_gap_resends_from_the_hubs_next_seq(void) {
  world w;
  world_open(&w, 2048);
  run r;
  run_open(&w, &r, "gap");
  write_lines(&r, 0, 300);
  acked_at_least a = {&r, hg_runlog_count(r.rl)};
  CHECK(spin(has_acked, &a, 10000));
  /* the hub loses its last events (restored from an older backup, say) */
  control("{\"truncate\": {\"run\": \"gap\", \"to\": 40}}");
  write_lines(&r, 300, 400);
  finish(&r, "succeeded");
  CHECK_EQ_INT(r.res.rc, 0);
  expect_delivered(&r);
  expect_finish(&r, "succeeded");
  run_close(&r);
  world_close(&w);
}

static bool was_refused(void *w) {
  return ((world *)w)->unauthorized > 0;
}

static void unauthorized_waits_for_a_new_session(void) {
  world w;
  world_open(&w, 0);
  run r[2];
  run_open(&w, &r[0], "auth-a");
  run_open(&w, &r[1], "auth-b");
  control("{\"token\": \"token-2\"}");
  write_lines(&r[0], 0, 50);
  write_lines(&r[1], 0, 50);
  CHECK(spin(was_refused, &w, 10000));
  spin_for(300); /* the other run's request is refused too */
  CHECK_EQ_INT(w.unauthorized, 1); /* once, however many runs were refused */
  int before = hub_requests();
  spin_for(300);
  CHECK_EQ_INT(hub_requests() - before, 0); /* nobody hammers the hub meanwhile */
  hg_err err = {0};
  CHECK_EQ_INT(hg_uploader_set_session(w.up, "token-2", 0, &err), 0);
  for (int i = 0; i < 2; i++) {
    finish(&r[i], "succeeded");
    CHECK_EQ_INT(r[i].res.rc, 0);
    expect_delivered(&r[i]);
  }
  control("{\"token\": \"token-1\"}");
  for (int i = 0; i < 2; i++) run_close(&r[i]);
  world_close(&w);
}

static void cancelling_status_calls_on_cancel(void) {
  world w;
  world_open(&w, 0);
  run r;
  run_open(&w, &r, "cancel-me");
  write_lines(&r, 0, 10);
  acked_at_least a = {&r, 10};
  CHECK(spin(has_acked, &a, 10000));
  CHECK_EQ_INT(w.cancels, 0);
  control("{\"status\": {\"run\": \"cancel-me\", \"status\": \"cancelling\"}}");
  write_lines(&r, 10, 20);
  a.n = 20;
  CHECK(spin(has_acked, &a, 10000));
  write_lines(&r, 20, 30);
  a.n = 30;
  CHECK(spin(has_acked, &a, 10000));
  CHECK_EQ_INT(w.cancels, 1);
  CHECK_EQ_STR(w.cancelled, "cancel-me");
  CHECK_EQ_STR(hg_uploader_run_hub_status(r.ur), "cancelling");
  finish(&r, "cancelled");
  CHECK_EQ_INT(r.res.rc, 0);
  CHECK_EQ_STR(r.res.hub_status, "cancelled");
  run_close(&r);
  world_close(&w);
}

static void too_large_batches_are_halved(void) {
  world w;
  world_open(&w, 1 << 20);
  control("{\"max_body\": 20000}");
  run r;
  run_open(&w, &r, "big");
  write_lines(&r, 0, 2000);
  finish(&r, "succeeded");
  CHECK_EQ_INT(r.res.rc, 0);
  expect_delivered(&r);
  control("{\"max_body\": 8388608}");
  run_close(&r);
  world_close(&w);
}

static void finish_of_a_run_the_hub_ended(void) {
  world w;
  world_open(&w, 0);
  run r;
  run_open(&w, &r, "ended");
  write_lines(&r, 0, 10);
  control("{\"status\": {\"run\": \"ended\", \"status\": \"failed\"}}");
  finish(&r, "succeeded");
  CHECK_EQ_INT(r.res.rc, HG_EPERM);
  CHECK_EQ_STR(r.res.hub_status, "failed");
  expect_delivered(&r); /* late logs still arrive */
  run_close(&r);
  world_close(&w);
}

static void refused_run_reports_to_its_finish(void) {
  world w;
  world_open(&w, 0);
  run r;
  run_open(&w, &r, "refused");
  control("{\"fail\": {\"status\": 403, \"count\": 1, \"what\": \"events\"}}");
  write_lines(&r, 0, 10);
  finish(&r, "succeeded");
  CHECK(r.res.rc < 0 && r.res.rc != HG_EPERM);
  CHECK(strstr(r.res.message, "403") != NULL);
  run_close(&r);
  world_close(&w);
}

static void restart_mid_upload_delivers_once(void) {
  world w;
  world_open(&w, 2048);
  run r;
  run_open(&w, &r, "restart");
  write_lines(&r, 0, 2000);
  acked_at_least a = {&r, 200};
  CHECK(spin(has_acked, &a, 10000));
  uint64_t acked = hg_uploader_run_acked(r.ur);
  CHECK(acked < hg_runlog_count(r.rl)); /* caught in the middle */
  /* the agent stops: uploader and runlog closed, the spool stays */
  hg_err err = {0};
  hg_uploader_remove(r.ur);
  CHECK_EQ_INT(hg_runlog_close(r.rl, &err), 0);
  world_close(&w);
  /* a new agent reopens the spool, asks the hub where it is, and goes on */
  world_open(&w, 2048);
  int before = hub_requests();
  run_open(&w, &r, "restart");
  CHECK_EQ_INT(hg_runlog_count(r.rl), 2000);
  write_lines(&r, 2000, 2100);
  finish(&r, "succeeded");
  CHECK_EQ_INT(r.res.rc, 0);
  expect_delivered(&r);
  expect_finish(&r, "succeeded");
  /* nothing was sent twice: one probe, then only what the hub lacked (batches of ~2 KiB) */
  cJSON *all;
  hub_state(&all);
  int after = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(all, "requests"));
  cJSON_Delete(all);
  CHECK(after - before < 150);
  run_close(&r);
  world_close(&w);
}

static void teardown(void) {
  stop_hub();
  hg_http_free(http);
  hg_loop_close(&loop);
  char p[700];
  snprintf(p, sizeof p, "%s/port", dir);
  unlink(p);
  snprintf(p, sizeof p, "%s/fakehub.log", dir);
  if (!check_failures) unlink(p);
  rmdir(dir);
}

TEST_MAIN(T(setup), T(runs_in_parallel_in_order_once), T(server_errors_are_retried_with_backoff),
          T(unreachable_hub_is_retried_without_a_tight_loop), T(seq_gap_resends_from_the_hubs_next_seq),
          T(unauthorized_waits_for_a_new_session), T(cancelling_status_calls_on_cancel),
          T(too_large_batches_are_halved), T(finish_of_a_run_the_hub_ended),
          T(refused_run_reports_to_its_finish), T(restart_mid_upload_delivers_once), T(teardown))
