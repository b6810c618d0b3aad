/* Throughput of the log pipeline's first half: redactor then framer, on 100-byte lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* Runs data through set (NULL: framer only) in 64 KiB writes; returns MB/s (1e6 bytes) of the
 * time now tells. */
static double run_timed(hg_redact_set *set, const char *data, size_t n, counts *c,
                        int64_t (*now)(void)) {
  hg_framer fr;
  if (hg_framer_init(&fr, count_line, c)) exit(1);
  hg_redact_scanner *sc = NULL;
  if (set && hg_redact_scanner_new(&sc, set, hg_framer_emit, &fr, NULL)) exit(1);
  int64_t t0 = now();
  for (size_t i = 0; i < n; i += 65536) {
    size_t len = n - i < 65536 ? n - i : 65536;
    int rc = sc ? hg_redact_scanner_write(sc, data + i, len, 0, NULL)
                : hg_framer_write(&fr, data + i, len, 0);
    if (rc) exit(1);
  }
  if (sc && hg_redact_scanner_finish(sc, NULL)) exit(1);
  hg_framer_finish(&fr);
  int64_t t1 = now();
  hg_redact_scanner_free(sc);
  hg_framer_free(&fr);
  return (double)n / 1e6 / ((double)(t1 - t0) / 1e9);
}

/* The same in wall-clock time. */
static double run(hg_redact_set *set, const char *data, size_t n, counts *c) {
  return run_timed(set, data, n, c, hg_clock_mono_ns);
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

/* A set of n secrets and the bench's text for it, made from the generator's first state as the
 * main mode makes them: the same bytes for the same n and size. */
typedef struct dataset {
  hg_redact_set *set;
  char *data;
  size_t n;
} dataset;

/* Characters in every generated secret. */
#define SECRET_LEN 24

static dataset make(size_t nsecrets, size_t total) {
  dataset r;
  rng = 88172645463325252ull;
  if (hg_redact_set_new(&r.set, NULL)) exit(1);
  char (*secrets)[41] = calloc(nsecrets ? nsecrets : 1, sizeof *secrets);
  for (size_t i = 0; i < nsecrets; i++) {
    /* All of one length, so that only their number varies between the counts: the shortest
     * pattern sets how far the scan may skip, and a match costs by its length. */
    size_t len = SECRET_LEN;
    for (size_t j = 0; j < len; j++) secrets[i][j] = alnum[rnd() % (sizeof alnum - 1)];
    if (hg_redact_set_add(r.set, secrets[i], len, NULL)) exit(1);
  }
  r.data = malloc(total);
  r.n = 0;
  for (size_t lines = 0; r.n + 100 <= total; lines++) {
    char *l = r.data + r.n;
    for (size_t j = 0; j < 99; j++) l[j] = text[rnd() % (sizeof text - 1)];
    if (nsecrets && lines % 100 == 7) {
      const char *s = secrets[rnd() % nsecrets];
      memcpy(l + 20, s, strlen(s));
    }
    l[99] = '\n';
    r.n += 100;
  }
  free(secrets);
  return r;
}

static int64_t cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The redactor + framer rate (MB/s of CPU time, so a busy machine's waits do not count). */
static double cpu_rate(const dataset *ds) {
  counts c = {0};
  return run_timed(ds->set, ds->data, ds->n, &c, cpu_ns);
}

/* bench_redact pair A B [MiB [rounds]]: the A-secret and the B-secret runs alternate in one
 * process, so that both meet the same load; prints each one's median CPU-time rate and the
 * median of the per-round ratios B/A, which stays put on a shared machine where separate runs
 * of the same binary differ by half. */
static int pair(int argc, char **argv) {
  if (argc < 4) return 2;
  size_t na = (size_t)atoi(argv[2]), nb = (size_t)atoi(argv[3]);
  size_t total = (size_t)(argc > 4 ? atoi(argv[4]) : 32) << 20;
  int rounds = argc > 5 ? atoi(argv[5]) : 15;
  if (rounds < 1 || rounds > 1000) return 2;
  dataset a = make(na, total), b = make(nb, total);
  double *ra = malloc(3 * (size_t)rounds * sizeof *ra), *rb = ra + rounds, *rr = rb + rounds;
  cpu_rate(&a); /* warm up: builds both automata */
  cpu_rate(&b);
  for (int k = 0; k < rounds; k++) {
    ra[k] = cpu_rate(&a);
    rb[k] = cpu_rate(&b);
    rr[k] = rb[k] / ra[k];
  }
  qsort(ra, (size_t)rounds, sizeof *ra, by_value);
  qsort(rb, (size_t)rounds, sizeof *rb, by_value);
  qsort(rr, (size_t)rounds, sizeof *rr, by_value);
  printf("%zu MB, %d rounds, CPU time: %zu secrets %.0f MB/s, %zu secrets %.0f MB/s (medians); "
         "ratio %.3f (quartiles %.3f-%.3f)\n",
         a.n >> 20, rounds, na, ra[rounds / 2], nb, rb[rounds / 2], rr[rounds / 2], rr[rounds / 4],
         rr[3 * rounds / 4]);
  free(ra);
  hg_redact_set_free(a.set);
  hg_redact_set_free(b.set);
  free(a.data);
  free(b.data);
  return 0;
}

/* bench_redact [secrets [MiB]]: in-memory figures on generated 100-byte lines.
 * bench_redact secrets -: the same pipeline reading stdin, to compare with `cat` on a pipe.
 * bench_redact pair A B [MiB [rounds]]: see pair. */
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "pair") == 0) return pair(argc, argv);
  size_t nsecrets = argc > 1 ? (size_t)atoi(argv[1]) : 100;
  bool from_stdin = argc > 2 && strcmp(argv[2], "-") == 0;
  size_t total = (argc > 2 && !from_stdin ? (size_t)atoi(argv[2]) : 256) << 20;
  /* 100-byte lines (99 characters and \n); one in a hundred carries a secret. */
  dataset ds = make(nsecrets, from_stdin ? 0 : total);
  hg_redact_set *set = ds.set, *empty;
  char *data = ds.data;
  if (hg_redact_set_new(&empty, NULL)) return 1;
  if (from_stdin) {
    counts c = {0};
    size_t n;
    double mbs = run_stdin(set, &c, &n);
    printf("stdin: %zu MB, %zu lines, redactor (%zu secrets) + framer: %.0f MB/s\n", n >> 20,
           c.lines, nsecrets, mbs);
    hg_redact_set_free(set);
    hg_redact_set_free(empty);
    free(data);
    return 0;
  }
  size_t n = ds.n, lines = n / 100;
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
  free(data);
  return 0;
}
