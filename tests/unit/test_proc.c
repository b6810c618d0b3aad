/* Process spawning: what the child gets (argv, env, cwd, fds), what we get back (bytes, exit
 * status, errors), backpressure, killing, and that no child outlives us or its group. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/loop.h"
#include "core/proc.h"
#include "core/timer.h"

static const char *const base_env[] = {"PATH=/usr/bin:/bin", NULL};

/* ---- a sink that records what it got, and can push back ---- */

typedef struct capture {
  hg_sink sink;
  hg_buf bytes;
  int writes;
  int eofs;
  int64_t min_ts, max_ts;
  /* backpressure: pause on the first `pause` writes, resume from a timer resume_ms later */
  int pause;
  int64_t resume_ms;
  hg_timer *resume_timer;
  int paused;
  int pauses;
  int writes_while_paused;
  int fail_with; /* negative: returned from write */
  /* called after every write, e.g. to react to what the child printed */
  void (*on_write)(struct capture *c);
  void *ctx;
} capture;

static void resume_now(hg_timer *t, void *data) {
  capture *c = data;
  (void)t;
  c->paused = 0;
  hg_sink_resume(&c->sink);
}

static int capture_write(hg_sink *s, const char *bytes, size_t len, int64_t ts) {
  capture *c = s->data;
  if (c->paused) c->writes_while_paused++;
  c->writes++;
  if (!c->min_ts || ts < c->min_ts) c->min_ts = ts;
  if (ts > c->max_ts) c->max_ts = ts;
  hg_buf_append(&c->bytes, bytes, len);
  if (c->on_write) c->on_write(c);
  if (c->fail_with) return c->fail_with;
  if (c->pauses < c->pause) {
    c->paused = 1;
    c->pauses++;
    hg_timer_start(c->resume_timer, c->resume_ms, 0);
    return HG_SINK_PAUSE;
  }
  return 0;
}

static void capture_eof(hg_sink *s, int64_t ts) {
  capture *c = s->data;
  (void)ts;
  c->eofs++;
}

static const hg_sink_ops capture_ops = {capture_write, capture_eof};

static void capture_init(capture *c) {
  memset(c, 0, sizeof *c);
  c->sink.ops = &capture_ops;
  c->sink.data = c;
}

static const char *text(capture *c) { return c->bytes.data ? c->bytes.data : ""; }

static void capture_free(capture *c) {
  hg_timer_free(c->resume_timer);
  hg_buf_free(&c->bytes);
}

/* ---- running a process to its end ---- */

typedef struct result {
  int calls;
  hg_proc_exit status;
  int eofs_before_exit; /* eofs the sinks had seen when on_exit ran */
  capture *out, *err;
  int free_in_callback;
  int64_t at_ms;
} result;

static void on_exit_cb(hg_proc *p, hg_proc_exit status, void *data) {
  result *r = data;
  r->calls++;
  r->status = status;
  r->at_ms = hg_clock_mono_ms();
  r->eofs_before_exit = (r->out ? r->out->eofs : 0) + (r->err ? r->err->eofs : 0);
  if (r->free_in_callback) hg_proc_free(p);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

/* Runs the loop until *flag is set or deadline_ms passed; returns whether the flag was set. */
static int run_until(hg_loop *loop, const int *flag, int64_t deadline_ms) {
  uv_timer_t watchdog;
  uv_timer_init(&loop->uv, &watchdog);
  uv_timer_start(&watchdog, stop_loop, 100, 100);
  int64_t end = hg_clock_mono_ms() + deadline_ms;
  while (!*flag && hg_clock_mono_ms() < end) uv_run(&loop->uv, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&watchdog, NULL);
  uv_run(&loop->uv, UV_RUN_NOWAIT);
  return *flag != 0;
}

/* Spawns o on loop, its exit recorded in r, runs it to the end and frees it. */
static int run_on(hg_loop *loop, hg_proc_opts o, result *r) {
  hg_err e;
  r->free_in_callback = 1;
  o.on_exit = on_exit_cb;
  o.data = r;
  hg_proc *p;
  int rc = hg_proc_spawn(loop, &o, &p, &e);
  if (rc) {
    fprintf(stderr, "spawn: %s\n", e.msg);
    return rc;
  }
  CHECK(run_until(loop, &r->calls, 60000));
  if (!r->calls) hg_proc_free(p);
  return 0;
}

/* Spawns argv in its own group with the given sinks on a loop of its own, runs it to the end
 * and frees it. */
static int run_proc(const char *const *argv, const char *const *env, capture *out, capture *err,
                    result *r) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  memset(r, 0, sizeof *r);
  r->out = out;
  r->err = err;
  hg_proc_opts o = {.argv = argv,
                    .env = env,
                    .out = out ? &out->sink : NULL,
                    .err = err ? &err->sink : NULL,
                    .new_pgroup = 1};
  int rc = run_on(&loop, o, r);
  hg_loop_close(&loop);
  return rc;
}

/* ---- process inspection ---- */

/* The state letter of /proc/PID/stat, or 0 when the process is gone. */
static char proc_state(pid_t pid, pid_t *ppid, pid_t *pgrp) {
  char path[64], line[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  size_t n = fread(line, 1, sizeof line - 1, f);
  fclose(f);
  line[n] = '\0';
  char *close = strrchr(line, ')');
  if (!close) return 0;
  char state = 0;
  int pp = 0, pg = 0;
  if (sscanf(close + 1, " %c %d %d", &state, &pp, &pg) != 3) return 0;
  if (ppid) *ppid = pp;
  if (pgrp) *pgrp = pg;
  return state;
}

/* A killed process whose new parent has not reaped it yet is a zombie: dead all the same. */
static int is_dead(pid_t pid) {
  if (kill(pid, 0) < 0 && errno == ESRCH) return 1;
  char st = proc_state(pid, NULL, NULL);
  return st == 0 || st == 'Z' || st == 'X';
}

static int dies_within(pid_t pid, int64_t ms) {
  int64_t end = hg_clock_mono_ms() + ms;
  while (!is_dead(pid)) {
    if (hg_clock_mono_ms() > end) return 0;
    usleep(20000);
  }
  return 1;
}

static int count_open_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 65536; fd++) n += fcntl(fd, F_GETFD) >= 0;
  return n;
}

static void tmp_dir(char *out, size_t size) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(out, size, "%s/proc-XXXXXX", base);
  if (!mkdtemp(out)) snprintf(out, size, "/tmp");
}

static void write_file(const char *path, const char *content, size_t len, mode_t mode) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  fwrite(content, 1, len, f);
  fclose(f);
  chmod(path, mode);
}

static void helper_path(char *out, size_t size) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(out, size, "%s/helper_proc", self);
}

/* ---- tests ---- */

static void echo_reaches_both_sinks(void) {
  capture out, err;
  capture_init(&out);
  capture_init(&err);
  result r;
  int64_t before = hg_clock_now_ms();
  const char *argv[] = {"/bin/sh", "-c", "echo to-out; echo to-err >&2", NULL};
  CHECK_EQ_INT(run_proc(argv, base_env, &out, &err, &r), 0);
  int64_t after = hg_clock_now_ms();
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_STR(text(&out), "to-out\n");
  CHECK_EQ_STR(text(&err), "to-err\n");
  CHECK_EQ_INT(out.eofs, 1);
  CHECK_EQ_INT(err.eofs, 1);
  CHECK_EQ_INT(r.eofs_before_exit, 2); /* on_exit comes after both pipes ended */
  CHECK_EQ_INT(r.status.exit_code, 0);
  CHECK_EQ_INT(r.status.signal, 0);
  CHECK_EQ_INT(r.status.sink_error, 0);
  /* Each write is stamped with the wall clock at read time. */
  CHECK(out.min_ts >= before && out.max_ts <= after);
  CHECK(err.min_ts >= before && err.max_ts <= after);
  capture_free(&out);
  capture_free(&err);
}

static void environment_is_exactly_the_given_one(void) {
  setenv("HANGAR_TEST_PARENT_ONLY", "must-not-leak", 1);
  capture out;
  capture_init(&out);
  result r;
  const char *env[] = {"ALPHA=1", "BETA=two words", NULL};
  const char *argv[] = {"/usr/bin/env", NULL};
  CHECK_EQ_INT(run_proc(argv, env, &out, NULL, &r), 0);
  CHECK_EQ_STR(text(&out), "ALPHA=1\nBETA=two words\n");
  CHECK(strstr(text(&out), "HANGAR_TEST_PARENT_ONLY") == NULL);
  CHECK_EQ_INT(r.status.exit_code, 0);
  unsetenv("HANGAR_TEST_PARENT_ONLY");
  capture_free(&out);
}

static void runs_in_the_given_directory(void) {
  char dir[PATH_MAX], real[PATH_MAX], expect[PATH_MAX + 2];
  tmp_dir(dir, sizeof dir);
  CHECK(realpath(dir, real) != NULL);
  snprintf(expect, sizeof expect, "%s\n", real);
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  result r = {0};
  const char *argv[] = {"pwd", "-P", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .cwd = dir, .out = &out.sink, .new_pgroup = 1};
  CHECK_EQ_INT(run_on(&loop, o, &r), 0);
  CHECK_EQ_STR(text(&out), expect);
  hg_loop_close(&loop);
  rmdir(dir);
  capture_free(&out);
}

static void exit_codes_are_reported(void) {
  result r;
  const char *ok[] = {"/bin/true", NULL};
  CHECK_EQ_INT(run_proc(ok, base_env, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.status.exit_code, 0);
  CHECK_EQ_INT(r.status.signal, 0);
  const char *three[] = {"/bin/sh", "-c", "exit 3", NULL};
  CHECK_EQ_INT(run_proc(three, base_env, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.status.exit_code, 3);
  CHECK_EQ_INT(r.status.signal, 0);
}

static void death_by_signal_is_reported(void) {
  result r;
  const char *argv[] = {"/bin/sh", "-c", "kill -USR1 $$", NULL};
  CHECK_EQ_INT(run_proc(argv, base_env, NULL, NULL, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.status.exit_code, -1);
  CHECK_EQ_INT(r.status.signal, SIGUSR1);
}

/* Spawns, expecting failure; returns the code and leaves the message in e. */
static int spawn_fails(hg_loop *loop, const char *const *argv, const char *const *env,
                       const char *cwd, result *r, capture *out, hg_err *e) {
  hg_proc_opts o = {.argv = argv, .env = env, .cwd = cwd, .out = &out->sink, .err = &out->sink,
                    .stdin_pipe = 1, .new_pgroup = 1, .on_exit = on_exit_cb, .data = r};
  hg_proc *p = (hg_proc *)r;
  int rc = hg_proc_spawn(loop, &o, &p, e);
  CHECK(p == NULL);
  return rc;
}

static void spawn_errors_are_reported_without_callback(void) {
  char dir[PATH_MAX], file[PATH_MAX + 16];
  tmp_dir(dir, sizeof dir);
  snprintf(file, sizeof file, "%s/not-exec", dir);
  write_file(file, "#!/bin/sh\necho hi\n", 18, 0644);

  int fds_before = count_open_fds();
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  result r = {0};
  capture out;
  capture_init(&out);

  const char *nosuch[] = {"/no/such", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, nosuch, base_env, NULL, &r, &out, &e), HG_ENOENT);
  CHECK_EQ_STR(e.msg, "cannot start '/no/such': No such file or directory");

  const char *sh[] = {"/bin/sh", "-c", "true", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, sh, base_env, "/no/such/dir", &r, &out, &e), HG_ENOENT);
  CHECK_EQ_STR(e.msg, "cannot start '/bin/sh': cannot change directory to '/no/such/dir': "
                      "No such file or directory");

  const char *noexec[] = {file, NULL};
  CHECK_EQ_INT(spawn_fails(&loop, noexec, base_env, NULL, &r, &out, &e), -EACCES);
  CHECK(strstr(e.msg, "Permission denied") != NULL);

  const char *empty[] = {"", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, empty, base_env, NULL, &r, &out, &e), HG_EINVAL);
  const char *bad_env[] = {"PATH=/usr/bin:/bin", "TOKEN-s3cr3t", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, sh, bad_env, NULL, &r, &out, &e), HG_EINVAL);
  CHECK(strstr(e.msg, "env[1]") != NULL);
  CHECK(strstr(e.msg, "s3cr3t") == NULL); /* an env entry may hold a secret */

  hg_loop_run(&loop);
  CHECK_EQ_INT(r.calls, 0);
  CHECK_EQ_INT(out.writes, 0);
  CHECK_EQ_INT(out.eofs, 0);
  hg_loop_close(&loop);
  CHECK_EQ_INT(count_open_fds(), fds_before); /* every pipe of a failed spawn was closed */
  capture_free(&out);
  unlink(file);
  rmdir(dir);
}

static void program_is_looked_up_in_the_given_path(void) {
  char d1[PATH_MAX], d2[PATH_MAX], f1[PATH_MAX + 32], f2[PATH_MAX + 32];
  tmp_dir(d1, sizeof d1);
  tmp_dir(d2, sizeof d2);
  snprintf(f1, sizeof f1, "%s/hg-test-prog", d1);
  snprintf(f2, sizeof f2, "%s/hg-test-prog", d2);
  write_file(f1, "#!/bin/sh\necho first\n", 21, 0644); /* not executable: skipped */
  write_file(f2, "#!/bin/sh\necho second\n", 22, 0755);
  char path[2 * PATH_MAX + 64];
  snprintf(path, sizeof path, "PATH=/nonexistent:%s:%s:/usr/bin:/bin", d1, d2);
  const char *env[] = {path, NULL};
  const char *argv[] = {"hg-test-prog", NULL};

  capture out;
  capture_init(&out);
  result r;
  CHECK_EQ_INT(run_proc(argv, env, &out, NULL, &r), 0);
  CHECK_EQ_STR(text(&out), "second\n");
  CHECK_EQ_INT(r.status.exit_code, 0);

  /* The agent's own PATH finds it; the child's does not: not found. */
  const char *old = getenv("PATH");
  char *saved = old ? strdup(old) : NULL;
  char parent_path[PATH_MAX + 16];
  snprintf(parent_path, sizeof parent_path, "%s:/usr/bin:/bin", d2);
  setenv("PATH", parent_path, 1);
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  r = (result){0};
  const char *elsewhere[] = {"PATH=/nonexistent:/usr/bin", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, argv, elsewhere, NULL, &r, &out, &e), HG_ENOENT);
  CHECK_EQ_STR(e.msg, "cannot start 'hg-test-prog': No such file or directory "
                      "(looked up in PATH=/nonexistent:/usr/bin)");
  const char *no_path[] = {"HOME=/", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, argv, no_path, NULL, &r, &out, &e), HG_ENOENT);
  const char *sh[] = {"sh", "-c", "true", NULL};
  CHECK_EQ_INT(spawn_fails(&loop, sh, no_path, NULL, &r, &out, &e), HG_ENOENT);
  CHECK(strstr(e.msg, "no PATH") != NULL);
  /* Only a non-executable match: permission denied, as execvp says. */
  char only_d1[PATH_MAX + 8];
  snprintf(only_d1, sizeof only_d1, "PATH=%s", d1);
  const char *env_d1[] = {only_d1, NULL};
  CHECK_EQ_INT(spawn_fails(&loop, argv, env_d1, NULL, &r, &out, &e), -EACCES);
  hg_loop_run(&loop);
  CHECK_EQ_INT(r.calls, 0);
  hg_loop_close(&loop);
  if (saved) {
    setenv("PATH", saved, 1);
    free(saved);
  }
  unlink(f1);
  unlink(f2);
  rmdir(d1);
  rmdir(d2);
  capture_free(&out);
}

static void fill_pattern(char *buf, size_t len) {
  for (size_t i = 0; i < len; i++) buf[i] = (char)('a' + (i * 7 + i / 4093) % 26);
}

/* cat in its own group, its stdin a pipe and its stdout into out; freed when it exits. */
static hg_proc *spawn_cat(hg_loop *loop, capture *out, result *r) {
  const char *argv[] = {"cat", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out->sink, .stdin_pipe = 1,
                    .new_pgroup = 1, .on_exit = on_exit_cb, .data = r};
  hg_proc *p = NULL;
  hg_err e;
  CHECK_EQ_INT(hg_proc_spawn(loop, &o, &p, &e), 0);
  return p;
}

static void stdin_round_trip_through_cat(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  result r = {.free_in_callback = 1};
  hg_proc *p = spawn_cat(&loop, &out, &r);
  size_t big = 1 << 20;
  char *chunk = malloc(big);
  fill_pattern(chunk, big);
  CHECK_EQ_INT(hg_proc_write(p, "hello ", 6), 0);
  CHECK_EQ_INT(hg_proc_write(p, "world\n", 6), 0);
  CHECK_EQ_INT(hg_proc_write(p, chunk, big), 0);
  CHECK_EQ_INT(hg_proc_write(p, "", 0), 0); /* cat sees EOF once all of it went out */
  CHECK_EQ_INT(hg_proc_write(p, "late", 4), -EPIPE);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(out.bytes.len, 12 + big);
  if (out.bytes.len == 12 + big) {
    CHECK_EQ_MEM(out.bytes.data, "hello world\n", 12);
    CHECK_EQ_MEM(out.bytes.data + 12, chunk, big);
  }
  CHECK_EQ_INT(r.status.exit_code, 0);
  hg_loop_close(&loop);
  free(chunk);
  capture_free(&out);
}

static void stdin_needs_the_pipe_and_survives_a_child_that_never_reads(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  result r = {.free_in_callback = 0};
  const char *argv[] = {"/bin/true", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .stdin_pipe = 1, .new_pgroup = 1,
                    .on_exit = on_exit_cb, .data = &r};
  hg_proc *p;
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &p, &e), 0);
  size_t big = 4 << 20;
  char *chunk = calloc(1, big);
  /* More than a pipe holds, to a child that exits without reading: EPIPE, not SIGPIPE. */
  CHECK_EQ_INT(hg_proc_write(p, chunk, big), 0);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(r.status.exit_code, 0);
  CHECK(hg_proc_write(p, "x", 1) < 0);
  hg_proc_free(p);

  r = (result){.free_in_callback = 1};
  o.stdin_pipe = 0;
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &p, &e), 0);
  CHECK_EQ_INT(hg_proc_write(p, "x", 1), HG_EINVAL);
  CHECK(run_until(&loop, &r.calls, 60000));
  hg_loop_close(&loop);
  free(chunk);
}

static void ten_megabyte_line_arrives_intact(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  result r = {.free_in_callback = 1};
  hg_proc *p = spawn_cat(&loop, &out, &r);
  size_t len = 10 << 20;
  char *line = malloc(len);
  fill_pattern(line, len); /* no newline anywhere */
  CHECK_EQ_INT(hg_proc_write(p, line, len), 0);
  CHECK_EQ_INT(hg_proc_write(p, NULL, 0), 0);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(out.bytes.len, len);
  if (out.bytes.len == len) CHECK_EQ_MEM(out.bytes.data, line, len);
  CHECK_EQ_INT(out.eofs, 1);

  /* And one the child writes itself, from a process we never fed. */
  capture gen;
  capture_init(&gen);
  const char *argv2[] = {"/bin/sh", "-c", "head -c 10485760 /dev/zero | tr '\\000' x", NULL};
  CHECK_EQ_INT(run_proc(argv2, base_env, &gen, NULL, &r), 0);
  CHECK_EQ_INT(gen.bytes.len, len);
  size_t bad = 0;
  for (size_t i = 0; i < gen.bytes.len; i++) bad += gen.bytes.data[i] != 'x';
  CHECK_EQ_INT(bad, 0);
  hg_loop_close(&loop);
  free(line);
  capture_free(&out);
  capture_free(&gen);
}

static void binary_bytes_arrive_intact(void) {
  char dir[PATH_MAX], file[PATH_MAX + 16];
  tmp_dir(dir, sizeof dir);
  snprintf(file, sizeof file, "%s/bytes", dir);
  char all[256 * 4];
  for (size_t i = 0; i < sizeof all; i++) all[i] = (char)(i % 256);
  write_file(file, all, sizeof all, 0644);
  capture out;
  capture_init(&out);
  result r;
  const char *argv[] = {"cat", file, NULL};
  CHECK_EQ_INT(run_proc(argv, base_env, &out, NULL, &r), 0);
  CHECK_EQ_INT(out.bytes.len, sizeof all);
  if (out.bytes.len == sizeof all) CHECK_EQ_MEM(out.bytes.data, all, sizeof all);
  capture_free(&out);
  unlink(file);
  rmdir(dir);
}

static void backpressure_delivers_every_byte_once_in_order(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  out.pause = INT_MAX;
  out.resume_ms = 2;
  CHECK_EQ_INT(hg_timer_new(&loop, resume_now, &out, &out.resume_timer, &e), 0);
  result r = {0};
  const char *argv[] = {"seq", "1", "200000", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .new_pgroup = 1};
  CHECK_EQ_INT(run_on(&loop, o, &r), 0);
  hg_buf expect = HG_BUF_INIT;
  for (int i = 1; i <= 200000; i++) hg_buf_printf(&expect, "%d\n", i);
  CHECK_EQ_INT(out.bytes.len, expect.len);
  if (out.bytes.len == expect.len) CHECK_EQ_MEM(out.bytes.data, expect.data, expect.len);
  CHECK(out.pauses > 10);                 /* it really was paused, many times */
  CHECK_EQ_INT(out.writes_while_paused, 0); /* and nothing came while it was */
  CHECK_EQ_INT(out.eofs, 1);
  CHECK_EQ_INT(r.status.exit_code, 0);
  hg_buf_free(&expect);
  capture_free(&out);
  hg_loop_close(&loop);
}

static void shared_sink_pauses_and_resumes_both_pipes(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture both;
  capture_init(&both);
  both.pause = INT_MAX;
  both.resume_ms = 1;
  CHECK_EQ_INT(hg_timer_new(&loop, resume_now, &both, &both.resume_timer, &e), 0);
  result r = {0};
  /* Both pipes fill at once, so both end up waiting on the one sink. */
  const char *argv[] = {"/bin/sh", "-c", "seq 1 100000 & seq 1 100000 >&2; wait", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &both.sink, .err = &both.sink,
                    .new_pgroup = 1};
  CHECK_EQ_INT(run_on(&loop, o, &r), 0);
  hg_buf one = HG_BUF_INIT;
  for (int i = 1; i <= 100000; i++) hg_buf_printf(&one, "%d\n", i);
  CHECK_EQ_INT(both.bytes.len, 2 * one.len);
  CHECK_EQ_INT(both.writes_while_paused, 0);
  CHECK_EQ_INT(both.eofs, 1); /* one eof, once neither pipe has more */
  CHECK_EQ_INT(r.status.exit_code, 0);
  hg_buf_free(&one);
  capture_free(&both);
  hg_loop_close(&loop);
}

static void sink_failure_is_reported_and_child_not_blocked(void) {
  capture out;
  capture_init(&out);
  out.fail_with = HG_EIO;
  result r;
  const char *argv[] = {"head", "-c", "3000000", "/dev/zero", NULL};
  CHECK_EQ_INT(run_proc(argv, base_env, &out, NULL, &r), 0);
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.status.exit_code, 0); /* it wrote everything: we kept emptying the pipe */
  CHECK_EQ_INT(r.status.sink_error, HG_EIO);
  CHECK_EQ_INT(out.writes, 1); /* nothing more after the failure */
  CHECK_EQ_INT(out.eofs, 1);   /* but it still learns that the producer is done with it */
  capture_free(&out);

  /* A sink shared by stdout and stderr that failed gets nothing from either. */
  capture both;
  capture_init(&both);
  both.fail_with = HG_EIO;
  const char *two[] = {"/bin/sh", "-c", "echo 1; echo 2 >&2; echo 3; echo 4 >&2", NULL};
  CHECK_EQ_INT(run_proc(two, base_env, &both, &both, &r), 0);
  CHECK_EQ_INT(both.writes, 1);
  CHECK_EQ_INT(both.eofs, 1);
  CHECK_EQ_INT(r.status.sink_error, HG_EIO);
  CHECK_EQ_INT(r.status.exit_code, 0);
  capture_free(&both);
}

/* Kills the process once the child printed its first line. */
typedef struct kill_plan {
  hg_proc *p;
  int64_t grace_ms;
  int64_t killed_at;
  pid_t printed_pid;
} kill_plan;

static void kill_on_first_line(capture *c) {
  kill_plan *k = c->ctx;
  if (k->killed_at || !strchr(text(c), '\n')) return;
  k->printed_pid = (pid_t)atoi(text(c));
  if (k->printed_pid > 0) CHECK(!is_dead(k->printed_pid));
  k->killed_at = hg_clock_mono_ms();
  CHECK_EQ_INT(hg_proc_kill(k->p, k->grace_ms), 0);
}

static void kill_and_wait(const char *script, int64_t grace_ms, result *r, kill_plan *k,
                          int64_t *loop_ms) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  out.on_write = kill_on_first_line;
  out.ctx = k;
  memset(r, 0, sizeof *r);
  memset(k, 0, sizeof *k);
  k->grace_ms = grace_ms;
  const char *argv[] = {"/bin/sh", "-c", script, NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .new_pgroup = 1,
                    .on_exit = on_exit_cb, .data = r};
  int64_t start = hg_clock_mono_ms();
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &k->p, &e), 0);
  /* Not freed in on_exit: the loop must end on its own, so no timer may be left armed. */
  hg_loop_run(&loop);
  *loop_ms = hg_clock_mono_ms() - start;
  CHECK_EQ_INT(r->calls, 1);
  CHECK_EQ_INT(hg_proc_signal(k->p, SIGTERM), -ESRCH); /* reported: nothing left to signal */
  hg_proc_free(k->p);
  hg_loop_close(&loop);
  capture_free(&out);
}

static void kill_escalates_to_sigkill_after_grace(void) {
  result r;
  kill_plan k;
  int64_t loop_ms;
  kill_and_wait("trap '' TERM; echo ready; sleep 30", 300, &r, &k, &loop_ms);
  CHECK(k.killed_at > 0);
  CHECK_EQ_INT(r.status.signal, SIGKILL);
  CHECK_EQ_INT(r.status.exit_code, -1);
  CHECK(r.at_ms - k.killed_at >= 250); /* it ignored SIGTERM for the whole grace */
  CHECK(loop_ms < 20000);
}

static void kill_of_cooperative_child_is_sigterm_and_cancels_the_timer(void) {
  result r;
  kill_plan k;
  int64_t loop_ms;
  kill_and_wait("echo ready; sleep 30", 30000, &r, &k, &loop_ms);
  CHECK(k.killed_at > 0);
  CHECK_EQ_INT(r.status.signal, SIGTERM);
  /* The loop ended long before the 30 s grace: the SIGKILL timer was cancelled. */
  CHECK(loop_ms < 20000);
}

static void kill_reaches_the_whole_group(void) {
  result r;
  kill_plan k;
  int64_t loop_ms;
  /* The grandchild does not hold our pipes, so only the group kill can end it early. */
  kill_and_wait("sleep 30 >/dev/null 2>&1 & echo $!; wait", 10000, &r, &k, &loop_ms);
  CHECK(k.printed_pid > 0);
  CHECK_EQ_INT(r.status.signal, SIGTERM);
  if (k.printed_pid > 0) {
    CHECK(dies_within(k.printed_pid, 10000));
    if (!is_dead(k.printed_pid)) kill(k.printed_pid, SIGKILL);
  }
}

static void child_leads_its_own_group(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  result r = {.free_in_callback = 1};
  const char *argv[] = {"sleep", "30", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .new_pgroup = 1, .on_exit = on_exit_cb,
                    .data = &r};
  hg_proc *p;
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &p, &e), 0);
  pid_t pid = hg_proc_pid(p);
  CHECK(pid > 0);
  CHECK_EQ_INT(getpgid(pid), pid);
  CHECK_EQ_INT(getsid(pid), pid);
  CHECK_EQ_INT(hg_proc_signal(p, SIGKILL), 0);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(r.status.signal, SIGKILL);

  /* Without new_pgroup it stays in ours, and signals go to it alone. */
  r = (result){.free_in_callback = 1};
  o.new_pgroup = 0;
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &p, &e), 0);
  CHECK_EQ_INT(getpgid(hg_proc_pid(p)), getpgid(0));
  CHECK_EQ_INT(getsid(hg_proc_pid(p)), getsid(0));
  CHECK_EQ_INT(hg_proc_kill(p, 10000), 0);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(r.status.signal, SIGTERM);
  hg_loop_close(&loop);
}

static void daemonized_grandchild_does_not_hold_exit_forever(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  result r = {.out = &out};
  /* The background sleep keeps stdout open long after sh exited. */
  const char *argv[] = {"/bin/sh", "-c", "sleep 30 & echo $!", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .new_pgroup = 1};
  int64_t start = hg_clock_mono_ms();
  CHECK_EQ_INT(run_on(&loop, o, &r), 0);
  CHECK(r.at_ms - start < 20000);
  CHECK(r.at_ms - start >= HG_PROC_DRAIN_MS - 100); /* waited for the drain first */
  CHECK_EQ_INT(r.status.exit_code, 0);
  CHECK_EQ_INT(r.eofs_before_exit, 1);
  pid_t grandchild = (pid_t)atoi(text(&out));
  CHECK(grandchild > 0);
  if (grandchild > 0) kill(grandchild, SIGKILL);
  hg_loop_close(&loop);
  capture_free(&out);
}

static void paused_sink_keeps_its_bytes_past_the_drain_deadline(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out, err;
  capture_init(&out);
  capture_init(&err);
  /* Paused from the first bytes until well after the drain deadline. */
  out.pause = 1;
  out.resume_ms = HG_PROC_DRAIN_MS + 500;
  CHECK_EQ_INT(hg_timer_new(&loop, resume_now, &out, &out.resume_timer, &e), 0);
  result r = {.out = &out, .err = &err};
  /* Less than a pipe holds, so sh exits at once; the grandchild keeps both pipes open. */
  const char *argv[] = {"/bin/sh", "-c", "seq 1 10000; sleep 30 & echo $! >&2", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .err = &err.sink,
                    .new_pgroup = 1};
  int64_t start = hg_clock_mono_ms();
  CHECK_EQ_INT(run_on(&loop, o, &r), 0);
  hg_buf expect = HG_BUF_INIT;
  for (int i = 1; i <= 10000; i++) hg_buf_printf(&expect, "%d\n", i);
  CHECK_EQ_INT(out.bytes.len, expect.len);
  if (out.bytes.len == expect.len) CHECK_EQ_MEM(out.bytes.data, expect.data, expect.len);
  CHECK_EQ_INT(out.pauses, 1);
  CHECK_EQ_INT(out.writes_while_paused, 0);
  CHECK_EQ_INT(r.eofs_before_exit, 2);
  CHECK(r.at_ms - start >= out.resume_ms - 100); /* on_exit waited for the paused sink */
  CHECK(r.at_ms - start < 20000);
  CHECK_EQ_INT(r.status.exit_code, 0);
  pid_t grandchild = (pid_t)atoi(text(&err));
  CHECK(grandchild > 0);
  if (grandchild > 0) kill(grandchild, SIGKILL);
  hg_buf_free(&expect);
  capture_free(&out);
  capture_free(&err);
  hg_loop_close(&loop);
}

static void child_dies_when_its_parent_dies(void) {
  char helper[PATH_MAX + 16];
  helper_path(helper, sizeof helper);
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  kill_plan k = {0};
  result r = {.free_in_callback = 1};
  const char *argv[] = {helper, "spawn", "sleep", "60", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .new_pgroup = 1,
                    .on_exit = on_exit_cb, .data = &r};
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &k.p, &e), 0);
  /* Wait for the helper to report its child's pid. */
  int64_t end = hg_clock_mono_ms() + 30000;
  while (!strchr(text(&out), '\n') && hg_clock_mono_ms() < end && !r.calls) {
    uv_run(&loop.uv, UV_RUN_ONCE);
  }
  pid_t grandchild = (pid_t)atoi(text(&out));
  CHECK(grandchild > 0);
  pid_t ppid = 0;
  if (grandchild > 0) {
    CHECK(proc_state(grandchild, &ppid, NULL) != 0);
    CHECK_EQ_INT(ppid, hg_proc_pid(k.p));
    CHECK(!is_dead(grandchild));
  }
  /* SIGKILL: the intermediate gets no chance to clean up after itself. */
  CHECK_EQ_INT(hg_proc_signal(k.p, SIGKILL), 0);
  CHECK(run_until(&loop, &r.calls, 60000));
  CHECK_EQ_INT(r.status.signal, SIGKILL);
  if (grandchild > 0) {
    CHECK(dies_within(grandchild, 15000));
    if (!is_dead(grandchild)) kill(grandchild, SIGKILL);
  }
  hg_loop_close(&loop);
  capture_free(&out);
}

/* Runs helper_proc MODE to its end, its stdout and stderr into out and err (initialised
 * here, freed by the caller). */
static int run_helper(const char *mode, capture *out, capture *err, result *r) {
  char helper[PATH_MAX + 16];
  helper_path(helper, sizeof helper);
  capture_init(out);
  capture_init(err);
  const char *argv[] = {helper, mode, NULL};
  return run_proc(argv, base_env, out, err, r);
}

static void child_sees_no_fds_beyond_stdio(void) {
  /* Descriptors opened the careless way, without O_CLOEXEC, must not leak either. */
  int leak = open("/dev/null", O_RDONLY);
  int leak_pipe[2];
  CHECK_EQ_INT(pipe(leak_pipe), 0);
  int high = dup2(leak, 300);
  CHECK_EQ_INT(high, 300);
  capture out, err;
  result r;
  CHECK_EQ_INT(run_helper("fds", &out, &err, &r), 0);
  CHECK_EQ_STR(text(&out), "fds:\n");
  CHECK_EQ_STR(text(&err), "");
  CHECK_EQ_INT(r.status.exit_code, 0);
  close(leak);
  close(high);
  close(leak_pipe[0]);
  close(leak_pipe[1]);
  capture_free(&out);
  capture_free(&err);
}

/* A child's stdout and stderr pipes are grown to a MiB (core/proc.c: PIPE_BYTES), after the
 * spawn: the child waits until it sees them grown, for 10 s at most. */
static void output_pipes_hold_a_megabyte(void) {
  /* Growing is best effort: a user past fs.pipe-user-pages-soft may not. Then nothing here
   * can show the spawn's growing; say so rather than fail after the helper's 10 s. */
  int probe[2];
  CHECK_EQ_INT(pipe2(probe, O_CLOEXEC), 0);
  int grown = fcntl(probe[0], F_SETPIPE_SZ, 1 << 20);
  close(probe[0]);
  close(probe[1]);
  if (grown < (1 << 20)) {
    fprintf(stderr, "skipped: this user may not grow a pipe to 1 MiB here\n");
    return;
  }
  capture out, err;
  result r;
  CHECK_EQ_INT(run_helper("pipes", &out, &err, &r), 0);
  CHECK_EQ_STR(text(&out), "pipes: 1048576 1048576\n");
  CHECK_EQ_INT(r.status.exit_code, 0);
  capture_free(&out);
  capture_free(&err);
}

#define MANY 100

static void hundred_concurrent_processes_all_reported(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  static capture outs[MANY];
  static result results[MANY];
  char args[MANY][8];
  int started = 0;
  for (int i = 0; i < MANY; i++) {
    capture_init(&outs[i]);
    results[i] = (result){.out = &outs[i], .free_in_callback = 1};
    snprintf(args[i], sizeof args[i], "%d", i);
    const char *argv[] = {"/bin/sh", "-c", "echo $1; exit $(($1 % 7))", "sh", args[i], NULL};
    hg_proc_opts o = {.argv = argv, .env = base_env, .out = &outs[i].sink, .new_pgroup = 1,
                      .on_exit = on_exit_cb, .data = &results[i]};
    hg_proc *p;
    int rc = hg_proc_spawn(&loop, &o, &p, &e);
    CHECK_EQ_INT(rc, 0);
    started += rc == 0;
    /* Each child exits before the next starts, and the loop does not run meanwhile: one
     * SIGCHLD per child, all pending at once, none of them may be lost. */
    int64_t end = hg_clock_mono_ms() + 10000;
    while (rc == 0 && proc_state(hg_proc_pid(p), NULL, NULL) != 'Z' && hg_clock_mono_ms() < end) {
      usleep(1000);
    }
  }
  CHECK_EQ_INT(started, MANY);
  int done = 0;
  for (int i = 0; i < MANY; i++) done += results[i].calls;
  CHECK_EQ_INT(done, 0); /* nothing is reported from inside hg_proc_spawn */
  uv_timer_t watchdog;
  uv_timer_init(&loop.uv, &watchdog);
  uv_timer_start(&watchdog, stop_loop, 100, 100);
  int64_t end = hg_clock_mono_ms() + 60000;
  while (done < MANY && hg_clock_mono_ms() < end) {
    uv_run(&loop.uv, UV_RUN_ONCE);
    done = 0;
    for (int i = 0; i < MANY; i++) done += results[i].calls;
  }
  uv_close((uv_handle_t *)&watchdog, NULL);
  CHECK_EQ_INT(done, MANY);
  for (int i = 0; i < MANY; i++) {
    char expect[16];
    snprintf(expect, sizeof expect, "%d\n", i);
    CHECK_EQ_INT(results[i].calls, 1);
    CHECK_EQ_INT(results[i].status.exit_code, i % 7);
    CHECK_EQ_STR(text(&outs[i]), expect);
    CHECK_EQ_INT(outs[i].eofs, 1);
    capture_free(&outs[i]);
  }
  /* Closing would wait for processes never reaped; the failure is already recorded. */
  if (done == MANY) hg_loop_close(&loop);
}

static void free_before_exit_kills_and_detaches(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  result r = {0};
  const char *argv[] = {"/bin/sh", "-c", "echo started; exec sleep 30", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .stdin_pipe = 1,
                    .new_pgroup = 1, .on_exit = on_exit_cb, .data = &r};
  hg_proc *p;
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &p, &e), 0);
  pid_t pid = hg_proc_pid(p);
  CHECK_EQ_INT(hg_proc_write(p, "pending", 7), 0);
  hg_proc_free(p);
  int64_t start = hg_clock_mono_ms();
  hg_loop_run(&loop); /* returns once the killed child was reaped */
  CHECK(hg_clock_mono_ms() - start < 20000);
  CHECK_EQ_INT(r.calls, 0);
  CHECK_EQ_INT(out.eofs, 0);
  CHECK(kill(pid, 0) < 0 && errno == ESRCH); /* killed and reaped: not even a zombie */
  hg_loop_close(&loop);
  capture_free(&out);
}

static void free_from_inside_a_sink(capture *c) {
  kill_plan *k = c->ctx;
  if (k->p) hg_proc_free(k->p);
  k->p = NULL;
}

static void free_inside_sink_write_is_safe(void) {
  hg_loop loop;
  hg_err e;
  CHECK_EQ_INT(hg_loop_init(&loop, &e), 0);
  capture out;
  capture_init(&out);
  kill_plan k = {0};
  out.on_write = free_from_inside_a_sink;
  out.ctx = &k;
  result r = {0};
  const char *argv[] = {"yes", NULL};
  hg_proc_opts o = {.argv = argv, .env = base_env, .out = &out.sink, .err = &out.sink,
                    .new_pgroup = 1, .on_exit = on_exit_cb, .data = &r};
  CHECK_EQ_INT(hg_proc_spawn(&loop, &o, &k.p, &e), 0);
  pid_t pid = hg_proc_pid(k.p);
  hg_loop_run(&loop);
  CHECK_EQ_INT(out.writes, 1); /* nothing is delivered after the free */
  CHECK_EQ_INT(r.calls, 0);
  CHECK(kill(pid, 0) < 0 && errno == ESRCH);
  hg_loop_close(&loop);
  capture_free(&out);
}

TEST_MAIN(T(echo_reaches_both_sinks), T(environment_is_exactly_the_given_one),
          T(runs_in_the_given_directory), T(exit_codes_are_reported),
          T(death_by_signal_is_reported), T(spawn_errors_are_reported_without_callback),
          T(program_is_looked_up_in_the_given_path), T(stdin_round_trip_through_cat),
          T(stdin_needs_the_pipe_and_survives_a_child_that_never_reads),
          T(ten_megabyte_line_arrives_intact), T(binary_bytes_arrive_intact),
          T(backpressure_delivers_every_byte_once_in_order),
          T(shared_sink_pauses_and_resumes_both_pipes),
          T(sink_failure_is_reported_and_child_not_blocked),
          T(kill_escalates_to_sigkill_after_grace),
          T(kill_of_cooperative_child_is_sigterm_and_cancels_the_timer),
          T(kill_reaches_the_whole_group), T(child_leads_its_own_group),
          T(daemonized_grandchild_does_not_hold_exit_forever),
          T(paused_sink_keeps_its_bytes_past_the_drain_deadline),
          T(child_dies_when_its_parent_dies), T(child_sees_no_fds_beyond_stdio),
          T(output_pipes_hold_a_megabyte),
          T(hundred_concurrent_processes_all_reported), T(free_before_exit_kills_and_detaches),
          T(free_inside_sink_write_is_safe))
