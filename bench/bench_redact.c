/* Throughput of the log pipeline's first half: redactor then framer, on 100-byte lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/clock.h"
#include "pipeline/framer.h"
#include "pipeline/redact.h"

typedef struct counts {
  size_t lines, bytes;
} counts;

static int count_line(void *ud, const char *text, size_t len, bool partial, int64_t ts) {
  counts *c = ud;
  c->lines++;
  c->bytes += len;
  return 0;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
static const char text[] = "abcdefghijklmnopqrstuvwxyz  ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789:=/.,-_";

/* Runs data through set (NULL: framer only) in 64 KiB writes; returns MB/s (1e6 bytes). */
static double run(hg_redact_set *set, const char *data, size_t n, counts *c) {
  hg_framer fr;
  if (hg_framer_init(&fr, count_line, c)) exit(1);
  hg_redact_scanner *sc = NULL;
  if (set && hg_redact_scanner_new(&sc, set, hg_framer_emit, &fr, NULL)) exit(1);
  int64_t t0 = hg_clock_mono_ns();
  for (size_t i = 0; i < n; i += 65536) {
    size_t len = n - i < 65536 ? n - i : 65536;
    int rc = sc ? hg_redact_scanner_write(sc, data + i, len, 0, NULL)
                : hg_framer_write(&fr, data + i, len, 0);
    if (rc) exit(1);
  }
  if (sc && hg_redact_scanner_finish(sc, NULL)) exit(1);
  hg_framer_finish(&fr);
  int64_t t1 = hg_clock_mono_ns();
  hg_redact_scanner_free(sc);
  hg_framer_free(&fr);
  return (double)n / 1e6 / ((double)(t1 - t0) / 1e9);
}

/* Reads stdin in 64 KiB reads, as a pipe reader would, through set; returns MB/s. */
static double run_stdin(hg_redact_set *set, counts *c, size_t *n) {
  static char chunk[65536];
  hg_framer fr;
  hg_redact_scanner *sc;
  if (hg_framer_init(&fr, count_line, c) || hg_redact_scanner_new(&sc, set, hg_framer_emit, &fr, NULL))
    exit(1);
  *n = 0;
  int64_t t0 = hg_clock_mono_ns();
  for (;;) {
    ssize_t got = read(0, chunk, sizeof chunk);
    if (got <= 0) break;
    if (hg_redact_scanner_write(sc, chunk, (size_t)got, 0, NULL)) exit(1);
    *n += (size_t)got;
  }
  if (hg_redact_scanner_finish(sc, NULL) || hg_framer_finish(&fr)) exit(1);
  int64_t t1 = hg_clock_mono_ns();
  hg_redact_scanner_free(sc);
  hg_framer_free(&fr);
  return (double)*n / 1e6 / ((double)(t1 - t0) / 1e9);
}

/* bench_redact [secrets [MiB]]: in-memory figures on generated 100-byte lines.
 * bench_redact secrets -: the same pipeline reading stdin, to compare with `cat` on a pipe. */
int main(int argc, char **argv) {
  size_t nsecrets = argc > 1 ? (size_t)atoi(argv[1]) : 100;
  bool from_stdin = argc > 2 && strcmp(argv[2], "-") == 0;
  size_t total = (argc > 2 && !from_stdin ? (size_t)atoi(argv[2]) : 256) << 20;
  hg_redact_set *set, *empty;
  if (hg_redact_set_new(&set, NULL) || hg_redact_set_new(&empty, NULL)) return 1;
  char (*secrets)[41] = calloc(nsecrets ? nsecrets : 1, sizeof *secrets);
  for (size_t i = 0; i < nsecrets; i++) {
    size_t len = 16 + rnd() % 25;
    for (size_t j = 0; j < len; j++) secrets[i][j] = alnum[rnd() % (sizeof alnum - 1)];
    if (hg_redact_set_add(set, secrets[i], len, NULL)) return 1;
  }
  if (from_stdin) {
    counts c = {0};
    size_t n;
    double mbs = run_stdin(set, &c, &n);
    printf("stdin: %zu MB, %zu lines, redactor (%zu secrets) + framer: %.0f MB/s\n", n >> 20,
           c.lines, nsecrets, mbs);
    hg_redact_set_free(set);
    hg_redact_set_free(empty);
    free(secrets);
    return 0;
  }
  /* 100-byte lines (99 characters and \n); one in a hundred carries a secret. */
  char *data = malloc(total);
  size_t n = 0, lines = 0;
  while (n + 100 <= total) {
    char *l = data + n;
    for (size_t j = 0; j < 99; j++) l[j] = text[rnd() % (sizeof text - 1)];
    if (nsecrets && lines % 100 == 7) {
      const char *s = secrets[rnd() % nsecrets];
      memcpy(l + 20, s, strlen(s));
    }
    l[99] = '\n';
    n += 100;
    lines++;
  }
  counts c0 = {0}, c1 = {0}, c2 = {0};
  run(set, data, n < (8u << 20) ? n : (8u << 20), &c0); /* warm up, builds the automaton */
  memset(&c0, 0, sizeof c0);
  double framer = run(NULL, data, n, &c0);
  double none = run(empty, data, n, &c1);
  double full = run(set, data, n, &c2);
  printf("%zu MB of 100-byte lines (%zu lines)\n", n >> 20, lines);
  printf("framer only:                      %8.0f MB/s\n", framer);
  printf("redactor (no secrets) + framer:   %8.0f MB/s\n", none);
  printf("redactor (%zu secrets) + framer: %8.0f MB/s (%zu lines out)\n", nsecrets, full, c2.lines);
  hg_redact_set_free(set);
  hg_redact_set_free(empty);
  free(secrets);
  free(data);
  return 0;
}
