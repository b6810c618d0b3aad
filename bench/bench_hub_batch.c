/* The hub's cost per log event in one process, without HTTP: checking a batch body, reading it
 * (hg_batch_read) and storing it as a chunk in a fresh SQLite store, each timed apart. For
 * profiling (perf record bench_hub_batch); bench_pipeline.lua measures the hub behind its API.
 *
 *   bench_hub_batch [BATCHES] [DIR]     defaults: 128 batches of 8 MiB, $HANGAR_TEST_TMP or /tmp
 *   BENCH_STORE=0 bench_hub_batch       reading only */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "hub/batch.h"
#include "hub/fields.h"
#include "hub/store.h"

#define BATCH_BYTES (8u << 20)

/* A batch as the agent sends it: {"first_seq":N,"events":[...]} of 100-byte log lines, one in
 * a hundred with something to escape. */
static void make_batch(hg_buf *b, int64_t first, size_t *count) {
  hg_buf_reset(b);
  hg_buf_printf(b, "{\"first_seq\":%20lld,\"events\":[", (long long)first);
  size_t n = 0;
  while (b->len < BATCH_BYTES - 400) {
    if (n) hg_buf_appendc(b, ',');
    const char *quote = (first + (int64_t)n) % 100 == 0 ? "\\\"quoted\\\" " : "";
    hg_buf_printf(b,
                  "{\"kind\":\"log\",\"ts\":\"2026-11-28T10:00:00.123Z\",\"stream\":\"stdout\","
                  "\"text\":\"line %lld %sThe quick brown fox jumps over the lazy dog; 0123456789 "
                  "The quick brown fox jumps over\",\"partial\":false}",
                  (long long)(first + (int64_t)n), quote);
    n++;
  }
  hg_buf_append(b, "]}", 2);
  *count = n;
}

static int64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv) {
  int batches = argc > 1 ? atoi(argv[1]) : 128;
  const char *base = argc > 2 ? argv[2] : getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  const char *store_env = getenv("BENCH_STORE");
  bool with_store = !store_env || strcmp(store_env, "0") != 0;
  char path[512];
  snprintf(path, sizeof path, "%s/bench_hub_batch.%d.db", base, (int)getpid());
  hg_err err = {0};
  hg_store *store = NULL;
  hg_store_options so = {.sync = HG_STORE_SYNC_NORMAL, .create = true};
  int64_t run_seqno = 0;
  if (with_store) {
    if (hg_store_open(path, &so, &store, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    hg_store_run r = {.id = "run-1", .task = "t", .revision = 1, .params = "{}",
                      .constraints = "{}", .created_ms = 1};
    if (hg_store_begin(store, &err) || hg_store_run_insert(store, &r, &err) ||
        hg_store_commit(store, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    run_seqno = r.seqno;
  }
  hg_buf body = HG_BUF_INIT;
  int64_t check_ns = 0, read_ns = 0, store_ns = 0, store_cpu = 0, first = 0;
  size_t events = 0, bytes = 0;
  /* One body, its first_seq rewritten in place (padded with spaces): making the text is not
   * what is measured. */
  size_t count;
  make_batch(&body, 0, &count);
  for (int k = 0; k < batches; k++) {
    char num[32];
    snprintf(num, sizeof num, "%20lld", (long long)first);
    memcpy(body.data + strlen("{\"first_seq\":"), num, 20);
    int64_t t0 = hg_clock_mono_ns();
    if (hg_fields_check_body(body.data, body.len, &err)) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    int64_t t1 = hg_clock_mono_ns();
    hg_batch b;
    if (hg_batch_read(&b, body.data, body.len, &err) || b.count != count) {
      fprintf(stderr, "batch: %s\n", err.msg);
      return 1;
    }
    int64_t t2 = hg_clock_mono_ns(), c2 = cpu_ns();
    if (store) {
      hg_store_chunk chunk;
      hg_batch_chunk(&b, 0, &chunk);
      if (hg_store_begin(store, &err) || hg_store_event_append(store, run_seqno, &chunk, &err) ||
          hg_store_commit(store, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
      }
    }
    int64_t t3 = hg_clock_mono_ns();
    store_cpu += cpu_ns() - c2;
    hg_batch_free(&b);
    check_ns += t1 - t0;
    read_ns += t2 - t1;
    store_ns += t3 - t2;
    events += count;
    bytes += body.len;
    first += (int64_t)count;
  }
  double n = (double)events;
  printf("%d batches, %zu events, %.0f MB: per event check %.0f ns, read %.0f ns, store %.0f ns (CPU %.0f ns) "
         "(total %.0f ns, %.0f MB/s of body)\n",
         batches, events, (double)bytes / 1e6, (double)check_ns / n, (double)read_ns / n,
         (double)store_ns / n, (double)store_cpu / n, (double)(check_ns + read_ns + store_ns) / n,
         (double)bytes / ((double)(check_ns + read_ns + store_ns) / 1e9) / 1e6);
  hg_buf_free(&body);
  hg_store_close(store);
  if (with_store) {
    char p2[600];
    unlink(path);
    snprintf(p2, sizeof p2, "%s-wal", path);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", path);
    unlink(p2);
  }
  return 0;
}
