/* Ingest cost of a run log in one process, without pipes: the hot path the agent runs for every
 * byte a run prints (redactor with 100 secrets, framer, output parser, event text, spool), fed
 * 64 KiB writes of 100-byte lines. For profiling (perf record bench_pipeline); the end-to-end
 * figures come from bench_pipeline.lua.
 *
 *   bench_pipeline [MB] [DIR]      defaults: 256 MB, $HANGAR_TEST_TMP or /tmp */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/clock.h"
#include "pipeline/runlog.h"

#define LINE 100

static void make_secret(char *out, size_t cap, int i) {
  snprintf(out, cap, "s3cr3t-%03d-%.*s", i, 9 + i % 25, "abcdefghijklmnopqrstuvwxyz0123456789");
}

/* The same mix as bench_pipeline.lua: one line in 100 with a secret, one in 10000 an output. */
static char *make_data(size_t bytes, size_t *lines) {
  char *d = malloc(bytes);
  const char *filler = "The quick brown fox jumps over the lazy dog; 0123456789 The quick brown fox "
                       "jumps over the lazy dog; 0123456789 ";
  size_t n = 0, off = 0;
  char line[256], secret[64];
  char plain[LINE];
  memcpy(plain, "line ", 5);
  memcpy(plain + 5, filler, LINE - 5);
  while (off + LINE <= bytes) {
    n++;
    if (n % 10000 == 0) {
      snprintf(line, sizeof line, "hangar_output_set:progress %zu %s", n, filler);
      memcpy(d + off, line, LINE - 1);
    } else if (n % 100 == 0) {
      make_secret(secret, sizeof secret, (int)(n / 100 % 100) + 1);
      snprintf(line, sizeof line, "line %zu token=%s %s", n, secret, filler);
      memcpy(d + off, line, LINE - 1);
    } else {
      memcpy(d + off, plain, LINE - 1);
    }
    d[off + LINE - 1] = '\n';
    off += LINE;
  }
  *lines = n;
  return d;
}

/* User and system CPU time of the process so far, in ns. */
static void cpu_ns(int64_t *user, int64_t *sys) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  *user = (int64_t)ru.ru_utime.tv_sec * 1000000000 + (int64_t)ru.ru_utime.tv_usec * 1000;
  *sys = (int64_t)ru.ru_stime.tv_sec * 1000000000 + (int64_t)ru.ru_stime.tv_usec * 1000;
}

int main(int argc, char **argv) {
  size_t mb = argc > 1 ? (size_t)atoi(argv[1]) : 256;
  const char *base = argc > 2 ? argv[2] : getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  size_t bytes = mb * 1024 * 1024, lines;
  char *data = make_data(bytes, &lines);
  bytes = lines * LINE;

  char path[512];
  snprintf(path, sizeof path, "%s/bench_pipeline.%d.spool", base, (int)getpid());
  hg_err err = {0};
  hg_runlog_group *g;
  hg_runlog *rl;
  if (hg_runlog_group_new(&g, NULL, 0, &err)) return 1;
  hg_runlog_opts o = {.group = g, .run_id = "bench", .spool_path = path};
  if (hg_runlog_open(&rl, &o, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  char secret[64];
  for (int i = 1; i <= 100; i++) {
    make_secret(secret, sizeof secret, i);
    hg_runlog_add_secret(rl, secret, strlen(secret), "S", &err);
  }
  /* BENCH_SYNC_MS=0: no sync until the end, to see the CPU's share apart from the disk's */
  const char *sync_env = getenv("BENCH_SYNC_MS");
  int64_t sync_every_ns = (sync_env ? atoll(sync_env) : 100) * 1000000;
  int64_t user0, sys0, user1, sys1;
  cpu_ns(&user0, &sys0);
  int64_t t0 = hg_clock_mono_ns(), last_sync = t0;
  for (size_t off = 0; off < bytes; off += 65536) {
    size_t n = bytes - off < 65536 ? bytes - off : 65536;
    int64_t ts = hg_clock_now_ms();
    if (hg_runlog_write(rl, HG_RUNLOG_STDOUT, data + off, n, ts, &err) < 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    /* what the agent's timer does: a sync every 100 ms */
    int64_t now = hg_clock_mono_ns();
    if (sync_every_ns && now - last_sync > sync_every_ns) {
      hg_runlog_sync(rl, &err);
      last_sync = now;
    }
  }
  double taken = (double)(hg_clock_mono_ns() - t0) / 1e9;
  cpu_ns(&user1, &sys1);
  hg_runlog_end(rl, &err);
  double dt = (double)(hg_clock_mono_ns() - t0) / 1e9;
  printf("%zu MB, %zu lines, 100 secrets: taken at %.0f MB/s (%.0f ns per line); durable at "
         "%.0f MB/s; %llu events, %.0f MB of spool; CPU per line %.0f ns user, %.0f ns system\n",
         bytes / 1000000, lines, (double)bytes / taken / 1e6, taken * 1e9 / (double)lines,
         (double)bytes / dt / 1e6, (unsigned long long)hg_runlog_count(rl),
         (double)hg_spool_size(hg_runlog_spool(rl)) / 1e6, (double)(user1 - user0) / (double)lines,
         (double)(sys1 - sys0) / (double)lines);
  hg_runlog_delete(rl, &err);
  hg_runlog_group_free(g);
  free(data);
  return 0;
}
