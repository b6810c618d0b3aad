/* Following a run's log, and what a followed run's end means for the CLI. */
#include "cli/follow.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/buf.h"

/* Set by the signal handler only; a handler cannot take an argument. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig) { interrupted = 1; }

void hg_follow_catch_interrupts(hg_client *c) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  /* No SA_RESTART: a sleep between retries should end at Ctrl-C. */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  c->stop = &interrupted;
}

int hg_follow_exit_code(const char *status, const cJSON *exit_code) {
  if (!status) return 1;
  if (strcmp(status, "succeeded") == 0) return 0;
  if (strcmp(status, "cancelled") == 0) return HG_FOLLOW_EXIT_CANCELLED;
  if (strcmp(status, "failed") == 0 && cJSON_IsNumber(exit_code) && exit_code->valuedouble >= 1 &&
      exit_code->valuedouble <= 255)
    return (int)exit_code->valuedouble;
  return 1;
}

void hg_follow_print_events(const hg_follow *f, const cJSON *answer, long long *last_seq) {
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(answer, "events")) {
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "seq");
    if (cJSON_IsNumber(seq) && (long long)seq->valuedouble > *last_seq)
      *last_seq = (long long)seq->valuedouble;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(e, "kind");
    if (cJSON_IsString(kind) && strcmp(kind->valuestring, "log") != 0) continue;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "text");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive(e, "stream");
    if (!cJSON_IsString(text)) continue;
    const char *s = cJSON_IsString(stream) ? stream->valuestring : "stdout";
    FILE *to = strcmp(s, "stdout") == 0 ? f->out : f->err;
    if (strcmp(s, "system") == 0) fputs("[hangar] ", to);
    fputs(text->valuestring, to);
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "partial"))) fputc('\n', to);
  }
  fflush(f->out);
  fflush(f->err);
}

static int transient(int rc, long status) {
  return rc == HG_EIO || rc == HG_ETIMEDOUT ||
         (rc == HG_EPROTO && (status == 502 || status == 503 || status == 504));
}

static void pause_s(int seconds) {
  struct timespec ts = {seconds, 0};
  nanosleep(&ts, NULL); /* Ctrl-C ends it early, which is what we want */
}

static int run_path(hg_buf *b, const char *run_id, const char *rest) {
  hg_buf_reset(b);
  int rc = hg_buf_appends(b, "/v1/runs/");
  if (rc == 0) rc = hg_client_escape(b, run_id);
  if (rc == 0 && rest) rc = hg_buf_appends(b, rest);
  return rc;
}

int hg_follow_logs(const hg_follow *f, long long *last_seq, hg_err *err) {
  hg_buf path = HG_BUF_INIT;
  long long last = *last_seq;
  int failures = 0, rc = 0;
  for (;;) {
    if (interrupted && f->client->stop) {
      rc = hg_err_set(err, HG_ECANCELED, "interrupted");
      break;
    }
    int wait = f->follow ? HG_FOLLOW_WAIT_S : 0;
    if (run_path(&path, f->run_id, "/events?limit=1000") < 0 ||
        hg_buf_printf(&path, "&wait=%d", wait) < 0 ||
        (last >= 0 && hg_buf_printf(&path, "&after=%lld", last) < 0)) {
      rc = hg_err_set(err, HG_ENOMEM, "out of memory");
      break;
    }
    hg_client_res res;
    rc = hg_client_call(f->client, "GET", path.data, NULL, wait + HG_CLIENT_POLL_SLACK_S, &res, err);
    if (rc < 0) {
      long status = res.status;
      hg_client_res_free(&res);
      /* A hub restart or a proxy hiccup should not end a long follow; a real outage still does. */
      if (f->follow && transient(rc, status) && failures < 6) {
        int delay = 1 << (failures < 3 ? failures : 3);
        fprintf(f->err, "hangar: %s; retrying in %d s\n", err->msg, delay);
        failures++;
        pause_s(delay);
        continue;
      }
      break;
    }
    failures = 0;
    long long before = last;
    hg_follow_print_events(f, res.json, &last);
    int done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.json, "done"));
    hg_client_res_free(&res);
    if (done || (!f->follow && last == before)) break;
  }
  *last_seq = last;
  hg_buf_free(&path);
  return rc;
}

static int cancel_run(const hg_follow *f, hg_err *err) {
  hg_buf path = HG_BUF_INIT;
  hg_client_res res;
  int rc = run_path(&path, f->run_id, "/cancel");
  if (rc == 0) rc = hg_client_call(f->client, "POST", path.data, NULL, 0, &res, err);
  else res.json = NULL;
  /* 409: it ended meanwhile; following on shows how. */
  if (rc == HG_EPROTO && res.status == 409) rc = 0;
  hg_client_res_free(&res);
  hg_buf_free(&path);
  return rc;
}

static void print_result(const hg_follow *f, const cJSON *run, int *exit_code) {
  const cJSON *status = cJSON_GetObjectItemCaseSensitive(run, "status");
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(run, "exit_code");
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(run, "error");
  const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(run, "outputs");
  const char *s = cJSON_IsString(status) ? status->valuestring : "unknown";
  const cJSON *oe;
  cJSON_ArrayForEach(oe, cJSON_GetObjectItemCaseSensitive(run, "output_errors")) {
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(oe, "seq");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(oe, "error");
    fprintf(f->err, "hangar: output line (event %lld) was not applied: %s\n",
            cJSON_IsNumber(seq) ? (long long)seq->valuedouble : -1LL,
            cJSON_IsString(msg) ? msg->valuestring : "?");
  }
  if (outputs && !cJSON_IsNull(outputs)) {
    char *text = cJSON_Print(outputs);
    if (text) fprintf(f->out, "%s\n", text);
    cJSON_free(text);
  }
  fprintf(f->err, "hangar: run %s %s", f->run_id, strcmp(s, "cancelled") == 0 ? "was cancelled" : s);
  if (cJSON_IsNumber(code) && strcmp(s, "succeeded") != 0)
    fprintf(f->err, " (exit code %d)", (int)code->valuedouble);
  /* Agents often put "exit code N" or the status itself in error: say it once. */
  if (cJSON_IsString(error) && error->valuestring[0] && strcmp(error->valuestring, s) != 0 &&
      strncmp(error->valuestring, "exit code", 9) != 0)
    fprintf(f->err, ": %s", error->valuestring);
  fputc('\n', f->err);
  fflush(f->out);
  fflush(f->err);
  *exit_code = hg_follow_exit_code(s, code);
}

int hg_follow_run(const hg_follow *f, int *exit_code, hg_err *err) {
  int cancelled = 0, rc;
  long long last = -1;
  for (;;) {
    rc = hg_follow_logs(f, &last, err);
    if (rc != HG_ECANCELED) break;
    if (!f->cancel_on_interrupt || cancelled) {
      fprintf(f->err,
              "\nhangar: stopped following; run %s goes on. Cancel it with: hangar runs cancel %s\n",
              f->run_id, f->run_id);
      *exit_code = HG_FOLLOW_EXIT_INTERRUPTED;
      return 0;
    }
    interrupted = 0;
    cancelled = 1;
    fprintf(f->err, "\nhangar: cancelling run %s (Ctrl-C again to stop waiting)\n", f->run_id);
    if ((rc = cancel_run(f, err)) < 0) {
      if (rc != HG_ECANCELED) return rc;
      interrupted = 1;
    }
  }
  if (rc < 0) return rc;
  hg_buf path = HG_BUF_INIT;
  hg_client_res res;
  rc = run_path(&path, f->run_id, NULL);
  if (rc == 0) rc = hg_client_call(f->client, "GET", path.data, NULL, 0, &res, err);
  else res.json = NULL;
  if (rc == 0) print_result(f, res.json, exit_code);
  hg_client_res_free(&res);
  hg_buf_free(&path);
  return rc;
}
