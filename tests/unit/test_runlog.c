/* Run log: the bytes a run prints in, exactly the expected events in its spool out. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/loop.h"
#include "core/timer.h"
#include "pipeline/runlog.h"

static char dir[512];
static int n_paths;

static void make_dir(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(dir, sizeof dir, "%s/test_runlog.XXXXXX", base);
  CHECK(mkdtemp(dir) != NULL);
}

/* A fresh spool path per call. */
static const char *new_path(char *out, size_t n) {
  snprintf(out, n, "%s/run%d.spool", dir, ++n_paths);
  return out;
}

static const int64_t T0 = 1795860000123; /* 2026-11-28T10:00:00.123Z */

typedef struct fixture {
  hg_runlog_group *g;
  hg_runlog *rl;
  char path[600];
} fixture;

static void open_rl(fixture *f, hg_runlog_group *g, const char *path, uint64_t max_log) {
  hg_err err = {0};
  f->g = g;
  if (path != f->path) snprintf(f->path, sizeof f->path, "%s", path);
  hg_runlog_opts o = {.group = g, .run_id = "run-1", .spool_path = f->path, .max_log_bytes = max_log};
  int rc = hg_runlog_open(&f->rl, &o, &err);
  if (rc) fprintf(stderr, "  open: %s\n", err.msg);
  CHECK_EQ_INT(rc, 0);
}

static void setup(fixture *f, uint64_t max_log) {
  hg_err err = {0};
  hg_runlog_group *g;
  CHECK_EQ_INT(hg_runlog_group_new(&g, NULL, 0, &err), 0);
  char p[600];
  open_rl(f, g, new_path(p, sizeof p), max_log);
}

static void teardown(fixture *f) {
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_delete(f->rl, &err), 0);
  hg_runlog_group_free(f->g);
}

static void put(fixture *f, hg_runlog_stream s, const char *text) {
  hg_err err = {0};
  int rc = hg_runlog_write(f->rl, s, text, strlen(text), T0, &err);
  if (rc < 0) fprintf(stderr, "  write: %s\n", err.msg);
  CHECK_EQ_INT(rc, 0);
}

/* Every stored event, parsed, as one JSON array (the caller deletes it): read back as the
 * uploader reads them. */
static cJSON *events(hg_runlog *rl) {
  hg_buf b = HG_BUF_INIT;
  hg_err err = {0};
  uint64_t next = 0;
  hg_buf_appendc(&b, '[');
  CHECK_EQ_INT(hg_runlog_read_events(rl, 0, UINT64_MAX, SIZE_MAX, &b, &next, &err), 0);
  CHECK_EQ_INT(next, hg_runlog_count(rl));
  hg_buf_appendc(&b, ']');
  cJSON *all = cJSON_Parse(b.data);
  CHECK(all != NULL);
  hg_buf_free(&b);
  return all ? all : cJSON_CreateArray();
}

static const char *field(const cJSON *e, const char *name) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, name));
}

static bool partial_of(const cJSON *e) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "partial"));
}

/* Checks that event i is a log line of stream with text and partial. */
static void expect_log(const cJSON *all, int i, const char *stream, const char *text, bool partial) {
  const cJSON *e = cJSON_GetArrayItem(all, i);
  CHECK(e != NULL);
  if (!e) return;
  CHECK_EQ_STR(field(e, "kind"), "log");
  CHECK_EQ_STR(field(e, "stream"), stream);
  CHECK_EQ_STR(field(e, "text"), text);
  CHECK_EQ_INT(partial_of(e), partial);
}

/* The text of every log event, joined with '\n' (for checks that a value never appears). */
static char *all_text(const cJSON *all) {
  hg_buf b = HG_BUF_INIT;
  const cJSON *e;
  cJSON_ArrayForEach(e, all) {
    const char *t = field(e, "text");
    if (t) {
      hg_buf_appends(&b, t);
      hg_buf_appendc(&b, '\n');
    }
  }
  if (!b.data) hg_buf_append(&b, "", 0);
  return hg_buf_steal(&b);
}

/* ---- lines ---- */

static void lines_and_timestamps(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, "first\nsec", 9, T0, &err), 0);
  CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, "ond\r\n\nthird", 11, T0 + 5, &err), 0);
  CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDERR, "err line\n", 9, T0 + 7, &err), 0);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 4); /* "third" waits for its end */
  CHECK_EQ_INT(hg_runlog_eof(f.rl, HG_RUNLOG_STDOUT, &err), 0);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 5);
  expect_log(all, 0, "stdout", "first", false);
  expect_log(all, 1, "stdout", "second", false);
  expect_log(all, 2, "stdout", "", false);
  expect_log(all, 3, "stderr", "err line", false);
  expect_log(all, 4, "stdout", "third", false);
  /* a line's time is when its first byte was read */
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 0), "ts"), "2026-11-28T10:00:00.123Z");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 1), "ts"), "2026-11-28T10:00:00.123Z");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 2), "ts"), "2026-11-28T10:00:00.128Z");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 3), "ts"), "2026-11-28T10:00:00.130Z");
  /* exactly the protocol's members, nothing else */
  const cJSON *e0 = cJSON_GetArrayItem(all, 0);
  CHECK_EQ_INT(cJSON_GetArraySize(e0), 5);
  cJSON_Delete(all);
  teardown(&f);
}

static void long_lines_are_partial_pieces(void) {
  fixture f;
  setup(&f, 0);
  size_t n = 150000;
  char *line = malloc(n + 1);
  for (size_t i = 0; i < n; i++) line[i] = (char)('a' + i % 26);
  line[n] = '\n';
  hg_err err = {0};
  /* delivered in uneven writes, as a pipe would */
  for (size_t off = 0; off < n + 1;) {
    size_t k = 7777 < n + 1 - off ? 7777 : n + 1 - off;
    CHECK(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, line + off, k, T0, &err) >= 0);
    off += k;
  }
  put(&f, HG_RUNLOG_STDOUT, "short\n");
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 4);
  size_t got = 0;
  for (int i = 0; i < 3; i++) {
    const char *t = field(cJSON_GetArrayItem(all, i), "text");
    size_t len = t ? strlen(t) : 0;
    CHECK(len <= HG_RUNLOG_MAX_TEXT);
    CHECK(t && memcmp(t, line + got, len) == 0);
    CHECK_EQ_INT(partial_of(cJSON_GetArrayItem(all, i)), i < 2);
    got += len;
  }
  CHECK_EQ_INT(got, n);
  expect_log(all, 3, "stdout", "short", false);
  free(line);
  cJSON_Delete(all);
  teardown(&f);
}

static void invalid_utf8_and_escapes(void) {
  fixture f;
  setup(&f, 0);
  /* bad bytes become U+FFFD; quotes, backslashes and control characters survive the JSON */
  put(&f, HG_RUNLOG_STDOUT, "caf\xc3\xa9 \xff\xfe ok\n");
  put(&f, HG_RUNLOG_STDOUT, "say \"hi\" \\ back\tslash \x01\x1f end\n");
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, "nul\0byte\n", 9, T0, &err), 0);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 3);
  expect_log(all, 0, "stdout", "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd ok", false);
  expect_log(all, 1, "stdout", "say \"hi\" \\ back\tslash \x01\x1f end", false);
  expect_log(all, 2, "stdout", "nul\xef\xbf\xbd" "byte", false);
  cJSON_Delete(all);
  teardown(&f);
}

/* ---- redaction ---- */

static void percent(hg_buf *out, const char *s) {
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~')
      hg_buf_appendc(out, (char)c);
    else
      hg_buf_printf(out, "%%%02X", c);
  }
}

static void secrets_masked_across_writes(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  /* 12 bytes (base64 ends on a group boundary), with characters every encoding changes */
  const char *secret = "p@ss/w\"rd+Z!";
  CHECK_EQ_INT(hg_runlog_add_secret(f.rl, secret, strlen(secret), "DB_PASSWORD", &err), 0);
  hg_buf b64 = HG_BUF_INIT, url = HG_BUF_INIT, pct = HG_BUF_INIT, text = HG_BUF_INIT;
  hg_crypto_b64_encode(&b64, secret, strlen(secret), HG_CRYPTO_B64_STD, &err);
  hg_crypto_b64_encode(&url, secret, strlen(secret), HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, &err);
  percent(&pct, secret);
  hg_buf_printf(&text, "raw %s\nb64 %s\nurl %s\npct %s\njson {\"pw\":\"p@ss\\/w\\\"rd+Z!\"}\n", secret,
                b64.data, url.data, pct.data);
  /* one byte per write: every secret is split across writes */
  for (size_t i = 0; i < text.len; i++)
    CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, text.data + i, 1, T0, &err), 0);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 5);
  expect_log(all, 0, "stdout", "raw [REDACTED]", false);
  expect_log(all, 1, "stdout", "b64 [REDACTED]", false);
  expect_log(all, 2, "stdout", "url [REDACTED]", false);
  expect_log(all, 3, "stdout", "pct [REDACTED]", false);
  expect_log(all, 4, "stdout", "json {\"pw\":\"[REDACTED]\"}", false);
  char *joined = all_text(all);
  CHECK(strstr(joined, "w\"rd") == NULL);
  free(joined);
  cJSON_Delete(all);
  hg_buf_free(&b64);
  hg_buf_free(&url);
  hg_buf_free(&pct);
  hg_buf_free(&text);
  teardown(&f);
}

static void mask_line_in_same_write(void) {
  fixture f;
  setup(&f, 0);
  /* the mask line and the value's next appearance arrive in one write */
  put(&f, HG_RUNLOG_STDOUT, "before s3cr3t-token\nhangar_mask s3cr3t-token  \nafter s3cr3t-token!\n");
  put(&f, HG_RUNLOG_STDERR, "stderr s3cr3t-token\n");
  put(&f, HG_RUNLOG_STDOUT, "airplane_mask 0ther-value\nand 0ther-value\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_mask abc\n"); /* too short: a warning, nothing masked */
  put(&f, HG_RUNLOG_STDOUT, "hangar_mask\n");
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 6);
  expect_log(all, 0, "stdout", "before s3cr3t-token", false); /* printed before the mask line */
  expect_log(all, 1, "stdout", "after [REDACTED]!", false);
  expect_log(all, 2, "stderr", "stderr [REDACTED]", false);
  expect_log(all, 3, "stdout", "and [REDACTED]", false);
  expect_log(all, 4, "system", "a hangar_mask value is shorter than 6 bytes and is not masked in the log", false);
  const char *t = field(cJSON_GetArrayItem(all, 5), "text");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 5), "stream"), "system");
  CHECK(t && strstr(t, "hangar_mask") && strstr(t, "no value"));
  char *joined = all_text(all);
  CHECK(strstr(joined, "abc") == NULL); /* the short value is not echoed either */
  free(joined);
  cJSON_Delete(all);
  teardown(&f);
}

static void short_secret_warns_by_name(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_add_secret(f.rl, "tiny", 4, "API_PIN", &err), 1 /* HG_REDACT_TOO_SHORT */);
  CHECK(strstr(err.msg, "API_PIN") != NULL);
  CHECK(strstr(err.msg, "tiny") == NULL);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 1);
  expect_log(all, 0, "system", "secret API_PIN is shorter than 6 bytes and is not masked in the log", false);
  cJSON_Delete(all);
  teardown(&f);
}

static void system_lines(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_add_secret(f.rl, "sup3rsecret", 11, "X", &err), 0);
  CHECK_EQ_INT(hg_runlog_system(f.rl, "hook failed: sup3rsecret\nsecond line \xff", &err), 0);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 2);
  expect_log(all, 0, "system", "hook failed: [REDACTED]", false);
  expect_log(all, 1, "system", "second line \xef\xbf\xbd", false);
  cJSON_Delete(all);
  teardown(&f);
}

/* ---- outputs ---- */

static void output_ops_and_errors(void) {
  fixture f;
  setup(&f, 0);
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_set:a.b {\"x\": 1}\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_append:a.list \"one\"\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_set:a.b.x[0] 5\n"); /* x is a number: a clash */
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_set:a {not json\n");
  put(&f, HG_RUNLOG_STDOUT, "airplane_output:legacy plain text\n");
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 10);
  expect_log(all, 0, "stdout", "hangar_output_set:a.b {\"x\": 1}", false);
  const cJSON *o = cJSON_GetArrayItem(all, 1);
  CHECK_EQ_STR(field(o, "kind"), "output");
  CHECK_EQ_STR(field(o, "op"), "set");
  CHECK_EQ_STR(field(o, "path"), "a.b");
  CHECK_EQ_STR(field(o, "ts"), "2026-11-28T10:00:00.123Z");
  char *v = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "value"));
  CHECK_EQ_STR(v, "{\"x\":1}");
  free(v);
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 3), "op"), "append");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 3), "path"), "a.list");
  /* the clash: logged, then a system line naming it, and no output event */
  expect_log(all, 4, "stdout", "hangar_output_set:a.b.x[0] 5", false);
  const char *t = field(cJSON_GetArrayItem(all, 5), "text");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 5), "stream"), "system");
  CHECK(t && strstr(t, "output not applied") && strstr(t, "a.b.x"));
  expect_log(all, 6, "stdout", "hangar_output_set:a {not json", false);
  t = field(cJSON_GetArrayItem(all, 7), "text");
  CHECK(t && strstr(t, "invalid JSON"));
  expect_log(all, 8, "stdout", "airplane_output:legacy plain text", false);
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 9), "path"), "legacy");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 9), "op"), "append");
  char *doc = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_STR(doc, "{\"a\":{\"b\":{\"x\":1},\"list\":[\"one\"]},\"legacy\":[\"plain text\"]}");
  free(doc);
  cJSON_Delete(all);
  teardown(&f);
}

static void chunked_output_lines(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_add_secret(f.rl, "chunky-secret", 13, "S", &err), 0);
  /* an output line in three chunks, with a secret split between two of them */
  put(&f, HG_RUNLOG_STDOUT, "hangar_chunk:k1 hangar_output_set:cfg {\"pw\": \"chunky-\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_chunk:k1 secret\", \"n\": 2}\n");
  put(&f, HG_RUNLOG_STDOUT, "plain between\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_chunk_end:k1\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_chunk_end:nokey\n");
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 4);
  expect_log(all, 0, "stdout", "plain between", false);
  expect_log(all, 1, "stdout", "hangar_output_set:cfg {\"pw\": \"[REDACTED]\", \"n\": 2}", false);
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 2), "kind"), "output");
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 3), "stream"), "system");
  char *doc = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_STR(doc, "{\"cfg\":{\"pw\":\"[REDACTED]\",\"n\":2}}");
  free(doc);
  cJSON_Delete(all);
  teardown(&f);
}

static void long_chunked_line_is_split(void) {
  fixture f;
  setup(&f, 0);
  /* 100 KiB of chunks reassemble into one line longer than an event may be */
  hg_buf line = HG_BUF_INIT;
  for (int i = 0; i < 100; i++) {
    hg_buf_appends(&line, "hangar_chunk:big ");
    for (int k = 0; k < 1024; k++) hg_buf_appendc(&line, (char)('a' + (i + k) % 26));
    hg_buf_appendc(&line, '\n');
  }
  hg_buf_appends(&line, "hangar_chunk_end:big\n");
  put(&f, HG_RUNLOG_STDOUT, line.data);
  cJSON *all = events(f.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 2);
  CHECK_EQ_INT(strlen(field(cJSON_GetArrayItem(all, 0), "text")), HG_RUNLOG_MAX_TEXT);
  CHECK(partial_of(cJSON_GetArrayItem(all, 0)));
  CHECK_EQ_INT(strlen(field(cJSON_GetArrayItem(all, 1), "text")), 100 * 1024 - HG_RUNLOG_MAX_TEXT);
  CHECK(!partial_of(cJSON_GetArrayItem(all, 1)));
  cJSON_Delete(all);
  hg_buf_free(&line);
  teardown(&f);
}

/* ---- the log limit ---- */

static void truncation_at_the_limit(void) {
  fixture f;
  setup(&f, 100);
  for (int i = 0; i < 10; i++) put(&f, HG_RUNLOG_STDOUT, "0123456789012345678901234567890123456789\n");
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_set:still 1\n");
  hg_err err = {0};
  CHECK_EQ_INT(hg_runlog_system(f.rl, "the agent says", &err), 0);
  CHECK_EQ_INT(hg_runlog_end(f.rl, &err), 0);
  cJSON *all = events(f.rl);
  /* two lines fit (80 bytes), the third passes 100: one truncation line, then only the output
   * op (its line is dropped too), the agent's own line and the count of what was dropped */
  CHECK_EQ_INT(cJSON_GetArraySize(all), 6);
  expect_log(all, 0, "stdout", "0123456789012345678901234567890123456789", false);
  expect_log(all, 1, "stdout", "0123456789012345678901234567890123456789", false);
  expect_log(all, 2, "system", "output truncated: the run printed more than 100 bytes; further output is dropped", false);
  CHECK_EQ_STR(field(cJSON_GetArrayItem(all, 3), "kind"), "output");
  expect_log(all, 4, "system", "the agent says", false);
  expect_log(all, 5, "system",
             "output truncated: 9 lines (345 bytes) printed after the log limit of 100 bytes were not stored",
             false);
  hg_runlog_stats st;
  hg_runlog_stats_get(f.rl, &st);
  CHECK(st.truncated);
  CHECK_EQ_INT(st.dropped_lines, 9);
  CHECK_EQ_INT(st.log_bytes, 80);
  /* the run's log is closed: more bytes are refused */
  CHECK_EQ_INT(hg_runlog_write(f.rl, HG_RUNLOG_STDOUT, "x\n", 2, T0, &err), HG_ECANCELED);
  cJSON_Delete(all);
  teardown(&f);
}

/* ---- backpressure ---- */

typedef struct producer {
  int resumed;
} producer;

static void on_resume(void *p) {
  ((producer *)p)->resumed++;
}

static void backpressure_and_resume(void) {
  hg_err err = {0};
  hg_runlog_group *g;
  CHECK_EQ_INT(hg_runlog_group_new(&g, NULL, 4096, &err), 0);
  fixture a, b;
  char pa[600], pb[600];
  open_rl(&a, g, new_path(pa, sizeof pa), 0);
  open_rl(&b, g, new_path(pb, sizeof pb), 0);
  /* run a fills the budget: its producer is told to pause, and nothing is dropped */
  hg_sink *sa = hg_runlog_sink(a.rl, HG_RUNLOG_STDOUT);
  producer pr = {0};
  int lines = 0, rc = 0;
  while (rc == 0 && lines < 1000) {
    char line[64];
    int n = snprintf(line, sizeof line, "line %d of run a, long enough to count\n", lines++);
    rc = hg_sink_write(sa, line, (size_t)n, T0);
  }
  CHECK_EQ_INT(rc, HG_SINK_PAUSE);
  CHECK_EQ_INT(hg_runlog_count(a.rl), lines);
  sa->resume = on_resume;
  sa->producer = &pr;
  hg_runlog_stats st;
  hg_runlog_stats_get(a.rl, &st);
  CHECK(st.paused);
  /* run b shares the budget: it pauses too */
  hg_sink *sb = hg_runlog_sink(b.rl, HG_RUNLOG_STDERR);
  CHECK_EQ_INT(hg_sink_write(sb, "b\n", 2, T0), HG_SINK_PAUSE);
  producer prb = {0};
  sb->resume = on_resume;
  sb->producer = &prb;
  CHECK_EQ_INT(pr.resumed, 0);
  /* run a is delivered and deleted: the space returns and both producers go on */
  CHECK_EQ_INT(hg_runlog_delete(a.rl, &err), 0);
  CHECK_EQ_INT(prb.resumed, 1);
  CHECK_EQ_INT(hg_sink_write(sb, "more\n", 5, T0), 0);
  cJSON *all = events(b.rl);
  CHECK_EQ_INT(cJSON_GetArraySize(all), 2);
  expect_log(all, 1, "stderr", "more", false);
  cJSON_Delete(all);
  CHECK_EQ_INT(hg_runlog_delete(b.rl, &err), 0);
  hg_runlog_group_free(g);
}

/* With a loop the resume runs from the loop, after the delete that made room has returned. */
static void resume_from_the_loop(void) {
  hg_err err = {0};
  hg_loop loop;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  hg_runlog_group *g;
  CHECK_EQ_INT(hg_runlog_group_new(&g, &loop, 600, &err), 0);
  fixture a, c;
  char pa[600], pc[600];
  open_rl(&a, g, new_path(pa, sizeof pa), 0);
  open_rl(&c, g, new_path(pc, sizeof pc), 0);
  hg_sink *sc = hg_runlog_sink(c.rl, HG_RUNLOG_STDOUT);
  int rc = 0;
  for (int i = 0; i < 100 && rc == 0; i++) rc = hg_sink_write(sc, "filler line for run c....\n", 26, T0);
  CHECK_EQ_INT(rc, HG_SINK_PAUSE);
  hg_sink *sa = hg_runlog_sink(a.rl, HG_RUNLOG_STDOUT);
  CHECK_EQ_INT(hg_sink_write(sa, "a\n", 2, T0), HG_SINK_PAUSE);
  producer pr = {0};
  sa->resume = on_resume;
  sa->producer = &pr;
  CHECK_EQ_INT(hg_runlog_delete(c.rl, &err), 0);
  CHECK_EQ_INT(pr.resumed, 0); /* not from inside the delete */
  hg_loop_run(&loop);
  CHECK_EQ_INT(pr.resumed, 1);
  CHECK_EQ_INT(hg_runlog_delete(a.rl, &err), 0);
  hg_runlog_group_free(g);
  hg_loop_close(&loop);
}

/* ---- durability and reopening ---- */

static int listened;
static void listener(void *ud) {
  (void)ud;
  listened++;
}

static void sync_timer_makes_events_durable(void) {
  hg_err err = {0};
  hg_loop loop;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  hg_runlog_group *g;
  CHECK_EQ_INT(hg_runlog_group_new(&g, &loop, 0, &err), 0);
  fixture f;
  char p[600];
  open_rl(&f, g, new_path(p, sizeof p), 0);
  hg_runlog_set_listener(f.rl, listener, NULL);
  listened = 0;
  put(&f, HG_RUNLOG_STDOUT, "one\ntwo\n");
  CHECK_EQ_INT(hg_runlog_count(f.rl), 2);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 0); /* not durable yet: not for the uploader */
  int64_t t0 = hg_clock_mono_ms();
  hg_loop_run(&loop); /* the sync timer is the only thing keeping it running */
  CHECK(hg_clock_mono_ms() - t0 >= 90);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 2);
  CHECK_EQ_INT(listened, 1);
  /* end syncs at once and tells the listener */
  put(&f, HG_RUNLOG_STDOUT, "three");
  CHECK_EQ_INT(hg_runlog_end(f.rl, &err), 0);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 3);
  CHECK(listened >= 2);
  CHECK(hg_runlog_ended(f.rl));
  teardown(&f);
  hg_loop_close(&loop);
}

static void reopen_replays_and_continues(void) {
  fixture f;
  setup(&f, 1000);
  hg_err err = {0};
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_set:a 1\nhangar_output_append:list 2\nhello\npartial");
  char *before = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0); /* the unterminated line is kept too */
  open_rl(&f, f.g, f.path, 1000);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 6);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 6);
  char *after = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_STR(after, before);
  CHECK_EQ_STR(after, "{\"a\":1,\"list\":[2]}");
  hg_runlog_stats st;
  hg_runlog_stats_get(f.rl, &st);
  CHECK_EQ_INT(st.log_bytes, strlen("hangar_output_set:a 1hangar_output_append:list 2hellopartial"));
  /* numbering goes on from where it was, and ops apply to the replayed document */
  put(&f, HG_RUNLOG_STDOUT, "hangar_output_append:list 3\n");
  CHECK_EQ_INT(hg_runlog_count(f.rl), 8);
  free(after);
  after = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_STR(after, "{\"a\":1,\"list\":[2,3]}");
  cJSON *all = events(f.rl);
  expect_log(all, 5, "stdout", "partial", false);
  expect_log(all, 6, "stdout", "hangar_output_append:list 3", false);
  cJSON_Delete(all);
  free(before);
  free(after);
  /* a truncated run stays truncated after a restart: no second notice */
  CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0);
  open_rl(&f, f.g, f.path, 40);
  put(&f, HG_RUNLOG_STDOUT, "over the limit already\n");
  put(&f, HG_RUNLOG_STDOUT, "and again\n");
  CHECK_EQ_INT(hg_runlog_count(f.rl), 9);
  CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0);
  open_rl(&f, f.g, f.path, 40);
  put(&f, HG_RUNLOG_STDOUT, "still over\n");
  CHECK_EQ_INT(hg_runlog_count(f.rl), 9);
  teardown(&f);
}

/* Events read from any point, in pieces of any size, are the same events; also after a reopen
 * (the reader then finds its place afresh), and in a spool of many records. */
static void reads_from_any_event(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  hg_buf in = HG_BUF_INIT;
  int written = 0;
  for (int w = 0; w < 300; w++) {
    hg_buf_reset(&in);
    for (int k = 0; k < w % 7; k++, written++)
      hg_buf_printf(&in, "write %d line %d \"q\" %.*s\n", w, k, written % 40, "........................................");
    if (w % 50 == 7) hg_buf_appends(&in, "hangar_output_set:n 1\n");
    CHECK(hg_runlog_write(f.rl, w % 2 ? HG_RUNLOG_STDERR : HG_RUNLOG_STDOUT, in.data ? in.data : "", in.len, T0 + w, &err) >= 0);
    if (w % 90 == 3) CHECK_EQ_INT(hg_runlog_system(f.rl, "a system line", &err), 0);
  }
  hg_buf_free(&in);
  uint64_t n = hg_runlog_count(f.rl);
  CHECK(n > 900);
  for (int round = 0; round < 2; round++) {
    cJSON *all = events(f.rl);
    CHECK_EQ_INT(cJSON_GetArraySize(all), n);
    for (uint64_t from = 0; from < n; from += 1 + from / 8) {
      /* pieces of a few events at a time, as small batches would take them */
      uint64_t at = from;
      int mismatches = 0;
      while (at < n) {
        hg_buf b = HG_BUF_INIT;
        uint64_t next = at;
        hg_buf_appendc(&b, '[');
        CHECK_EQ_INT(hg_runlog_read_events(f.rl, at, n, 700, &b, &next, &err), 0);
        hg_buf_appendc(&b, ']');
        CHECK(next > at);
        cJSON *part = cJSON_Parse(b.data);
        CHECK_EQ_INT(cJSON_GetArraySize(part), next - at);
        for (uint64_t i = at; i < next; i++)
          if (!cJSON_Compare(cJSON_GetArrayItem(part, (int)(i - at)), cJSON_GetArrayItem(all, (int)i), 1))
            mismatches++;
        cJSON_Delete(part);
        hg_buf_free(&b);
        if (next <= at) break;
        at = next;
      }
      CHECK_EQ_INT(mismatches, 0);
    }
    /* a read that ends early stops there */
    hg_buf b = HG_BUF_INIT;
    uint64_t next = 0;
    CHECK_EQ_INT(hg_runlog_read_events(f.rl, 5, 9, SIZE_MAX, &b, &next, &err), 0);
    CHECK_EQ_INT(next, 9);
    CHECK_EQ_INT(hg_runlog_read_events(f.rl, n, n + 5, SIZE_MAX, &b, &next, &err), 0);
    CHECK_EQ_INT(next, n);
    hg_buf_free(&b);
    cJSON_Delete(all);
    CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0);
    open_rl(&f, f.g, f.path, 0);
    CHECK_EQ_INT(hg_runlog_count(f.rl), n);
  }
  teardown(&f);
}

/* A spool written before events were stored in blocks holds one event's JSON per record: it is
 * replayed and read back as it is, and new events follow it. */
static void old_spools_are_read(void) {
  char path[600];
  new_path(path, sizeof path);
  const char *old[] = {
      "{\"kind\":\"log\",\"ts\":\"2026-11-28T10:00:00.123Z\",\"stream\":\"stdout\",\"text\":\"before \\\"x\\\"\",\"partial\":false}",
      "{\"kind\":\"output\",\"ts\":\"2026-11-28T10:00:00.123Z\",\"op\":\"set\",\"path\":\"a\",\"value\":1}",
      "{\"kind\":\"log\",\"ts\":\"2026-11-28T10:00:00.124Z\",\"stream\":\"stderr\",\"text\":\"cut\",\"partial\":true}",
  };
  hg_err err = {0};
  hg_spool *s;
  CHECK_EQ_INT(hg_spool_open(&s, path, NULL, NULL, &err), 0);
  for (int i = 0; i < 3; i++) CHECK_EQ_INT(hg_spool_append(s, old[i], strlen(old[i]), &err), 0);
  CHECK_EQ_INT(hg_spool_close(s, &err), 0);
  fixture f;
  hg_runlog_group *g;
  CHECK_EQ_INT(hg_runlog_group_new(&g, NULL, 0, &err), 0);
  open_rl(&f, g, path, 0);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 3);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 3);
  CHECK_EQ_INT(hg_runlog_lines(f.rl, HG_RUNLOG_STDOUT), 1);
  CHECK_EQ_INT(hg_runlog_lines(f.rl, HG_RUNLOG_STDERR), 0);
  char *outputs = cJSON_PrintUnformatted(hg_runlog_outputs(f.rl));
  CHECK_EQ_STR(outputs, "{\"a\":1}");
  free(outputs);
  put(&f, HG_RUNLOG_STDOUT, "after\n");
  CHECK_EQ_INT(hg_runlog_count(f.rl), 4);
  hg_buf b = HG_BUF_INIT;
  uint64_t next = 0;
  CHECK_EQ_INT(hg_runlog_read_events(f.rl, 0, 3, SIZE_MAX, &b, &next, &err), 0);
  hg_buf want = HG_BUF_INIT;
  hg_buf_printf(&want, "%s,%s,%s", old[0], old[1], old[2]);
  CHECK_EQ_STR(b.data, want.data);
  hg_buf_free(&b);
  hg_buf_free(&want);
  cJSON *all = events(f.rl);
  expect_log(all, 0, "stdout", "before \"x\"", false);
  expect_log(all, 3, "stdout", "after", false);
  cJSON_Delete(all);
  teardown(&f);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* A spool that has a file is refused from the open on; two runlogs opened before either
 * stored anything: the second to store events is refused then. */
static void refuses_a_spool_in_use(void) {
  fixture f;
  setup(&f, 0);
  hg_runlog *second = NULL;
  hg_err err = {0};
  hg_runlog_opts o = {.group = f.g, .run_id = "run-1", .spool_path = f.path};
  CHECK_EQ_INT(hg_runlog_open(&second, &o, &err), 0);
  put(&f, HG_RUNLOG_STDOUT, "first\n");
  CHECK_EQ_INT(hg_runlog_sync(f.rl, &err), 0);
  CHECK_EQ_INT(hg_runlog_system(second, "second", &err), 0);
  CHECK_EQ_INT(hg_runlog_sync(second, &err), HG_EAGAIN);
  CHECK(strstr(err.msg, "in use by another process") != NULL);
  CHECK_EQ_INT(hg_runlog_delete(second, &err), 0);
  second = NULL;
  CHECK_EQ_INT(hg_runlog_open(&second, &o, &err), HG_EAGAIN);
  CHECK(second == NULL);
  CHECK(exists(f.path)); /* the refused one removed nothing */
  teardown(&f);
}

/* A run that stores no event has no spool file: none while it runs, none after it ended or
 * was closed. The first event creates it, and a reopen finds that event. */
static void silent_run_has_no_spool(void) {
  fixture f;
  setup(&f, 0);
  hg_err err = {0};
  CHECK(!exists(f.path));
  CHECK_EQ_INT(hg_runlog_end(f.rl, &err), 0);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 0);
  CHECK(!exists(f.path));
  CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0);
  CHECK(!exists(f.path));
  open_rl(&f, f.g, f.path, 0);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 0);
  put(&f, HG_RUNLOG_STDOUT, "one line\n");
  CHECK_EQ_INT(hg_runlog_sync(f.rl, &err), 0);
  CHECK(exists(f.path));
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 1);
  CHECK_EQ_INT(hg_runlog_close(f.rl, &err), 0);
  open_rl(&f, f.g, f.path, 0);
  CHECK_EQ_INT(hg_runlog_count(f.rl), 1);
  CHECK_EQ_INT(hg_runlog_uploadable(f.rl), 1);
  teardown(&f);
  CHECK(!exists(f.path));
}

static void cleanup(void) {
  rmdir(dir);
}

TEST_MAIN(T(make_dir), T(lines_and_timestamps), T(long_lines_are_partial_pieces),
          T(invalid_utf8_and_escapes), T(secrets_masked_across_writes), T(mask_line_in_same_write),
          T(short_secret_warns_by_name), T(system_lines), T(output_ops_and_errors),
          T(chunked_output_lines), T(long_chunked_line_is_split), T(truncation_at_the_limit),
          T(backpressure_and_resume), T(resume_from_the_loop), T(sync_timer_makes_events_durable),
          T(reopen_replays_and_continues), T(reads_from_any_event), T(old_spools_are_read),
          T(refuses_a_spool_in_use), T(silent_run_has_no_spool), T(cleanup))
