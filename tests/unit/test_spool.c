/* Spool: replay after reopen, torn and corrupt tails, durability bookkeeping, budget, CRC-32. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "pipeline/crc32.h"
#include "pipeline/spool.h"

static char dir[512];

static void make_dir(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(dir, sizeof dir, "%s/test_spool.XXXXXX", base);
  CHECK(mkdtemp(dir) != NULL);
}

static const char *path_of(const char *name) {
  static char p[600];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

/* Record i of the standard test set: varied sizes, including empty. */
static size_t record(int i, char *out, size_t cap) {
  size_t n = (size_t)(i * 7 % 41);
  if (n > cap) n = cap;
  for (size_t k = 0; k < n; k++) out[k] = (char)('a' + (i + (int)k) % 26);
  return n;
}

static hg_spool *open_ok(const char *path, hg_spool_budget *b, hg_spool_info *info) {
  hg_spool *s = NULL;
  hg_err err = {0};
  int rc = hg_spool_open(&s, path, b, info, &err);
  if (rc) fprintf(stderr, "  open: %s\n", err.msg);
  CHECK_EQ_INT(rc, 0);
  return s;
}

static void append_ok(hg_spool *s, const void *data, size_t len) {
  hg_err err = {0};
  int rc = hg_spool_append(s, data, len, &err);
  if (rc < 0) fprintf(stderr, "  append: %s\n", err.msg);
  CHECK(rc >= 0);
}

/* The spool holds exactly records 0..n-1 of the standard set, then the extra ones. */
static void expect_records(hg_spool *s, int n, const char *const *extra, int n_extra) {
  CHECK_EQ_INT(hg_spool_count(s), n + n_extra);
  hg_spool_iter it;
  hg_err err = {0};
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 0, &err), 0);
  const char *data;
  size_t len;
  uint64_t idx;
  char want[64];
  for (int i = 0; i < n + n_extra; i++) {
    CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, &idx, &err), 1);
    CHECK_EQ_INT(idx, i);
    if (i < n) {
      size_t wn = record(i, want, sizeof want);
      CHECK_EQ_INT(len, wn);
      CHECK(len == wn && memcmp(data, want, wn) == 0);
    } else {
      CHECK_EQ_INT(len, strlen(extra[i - n]));
      CHECK(len == strlen(extra[i - n]) && memcmp(data, extra[i - n], len) == 0);
    }
  }
  CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, &idx, &err), 0);
  hg_spool_iter_end(&it);
}

static void close_ok(hg_spool *s) {
  hg_err err = {0};
  CHECK_EQ_INT(hg_spool_close(s, &err), 0);
}

static size_t file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (size_t)st.st_size : (size_t)-1;
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc(*len + 1);
  CHECK(fread(b, 1, *len, f) == *len);
  fclose(f);
  return b;
}

static void spit(const char *path, const void *data, size_t len) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(data, 1, len, f) == len);
  fclose(f);
}

/* ---- CRC-32 ---- */

static uint32_t crc_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void crc32_vectors(void) {
  CHECK_EQ_INT(hg_crc32("123456789", 9), 0xcbf43926u);
  CHECK_EQ_INT(hg_crc32("", 0), 0);
  CHECK_EQ_INT(hg_crc32("The quick brown fox jumps over the lazy dog", 43), 0x414fa339u);
  /* every table entry, against the definition */
  for (int b = 0; b < 256; b++) {
    unsigned char byte = (unsigned char)b;
    CHECK_EQ_INT(hg_crc32(&byte, 1), crc_bitwise(&byte, 1));
  }
  /* pieces give the same CRC as the whole */
  unsigned char buf[1000];
  for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * 31 + 7);
  uint32_t c = 0;
  for (int off = 0; off < 1000; off += 77) c = hg_crc32_update(c, buf + off, off + 77 > 1000 ? 1000 - off : 77);
  CHECK_EQ_INT(c, hg_crc32(buf, 1000));
  CHECK_EQ_INT(c, crc_bitwise(buf, 1000));
  /* every length and alignment the faster paths treat differently, against the definition */
  static unsigned char big[4200];
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < sizeof big; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    big[i] = (unsigned char)x;
  }
  int wrong = 0;
  for (size_t len = 0; len <= 1100; len++)
    for (size_t at = 0; at < 3; at++)
      if (hg_crc32(big + at, len) != crc_bitwise(big + at, len)) wrong++;
  CHECK_EQ_INT(wrong, 0);
  CHECK_EQ_INT(hg_crc32(big, sizeof big), crc_bitwise(big, sizeof big));
  for (size_t cut = 0; cut < sizeof big; cut += 131)
    CHECK_EQ_INT(hg_crc32_update(hg_crc32(big, cut), big + cut, sizeof big - cut), crc_bitwise(big, sizeof big));
}

/* ---- replay ---- */

static void append_reopen_replay(void) {
  const char *path = path_of("replay.spool");
  hg_spool_info info;
  hg_spool *s = open_ok(path, NULL, &info);
  CHECK(info.created);
  CHECK_EQ_INT(info.records, 0);
  char rec[64];
  for (int i = 0; i < 1000; i++) append_ok(s, rec, record(i, rec, sizeof rec));
  close_ok(s);

  s = open_ok(path, NULL, &info);
  CHECK(!info.created);
  CHECK_EQ_INT(info.records, 1000);
  CHECK_EQ_INT(info.dropped_bytes, 0);
  CHECK_EQ_INT(hg_spool_durable_count(s), 1000);
  expect_records(s, 1000, NULL, 0);

  /* random access by index (the run's event seq), across index strides */
  hg_buf b = HG_BUF_INIT;
  hg_err err = {0};
  int picks[] = {0, 1, 63, 64, 65, 127, 128, 500, 999};
  for (size_t k = 0; k < sizeof picks / sizeof picks[0]; k++) {
    CHECK_EQ_INT(hg_spool_read(s, (uint64_t)picks[k], &b, &err), 0);
    size_t n = record(picks[k], rec, sizeof rec);
    CHECK(b.len == n && memcmp(b.data, rec, n) == 0);
  }
  CHECK_EQ_INT(hg_spool_read(s, 1000, &b, &err), HG_ENOENT);
  CHECK(strstr(err.msg, "no record 1000 (it has 1000)") != NULL);

  /* a range, as the uploader reads one */
  hg_spool_iter it;
  const char *data;
  size_t len;
  uint64_t idx = 0;
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 700, &err), 0);
  int seen = 0;
  while (hg_spool_iter_next(&it, &data, &len, &idx, &err) == 1) {
    size_t n = record(700 + seen, rec, sizeof rec);
    CHECK(len == n && memcmp(data, rec, n) == 0);
    seen++;
  }
  CHECK_EQ_INT(seen, 300);
  CHECK_EQ_INT(idx, 999);
  hg_spool_iter_end(&it);
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 1000, &err), 0);
  CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, &idx, &err), 0);
  hg_spool_iter_end(&it);
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 1001, &err), HG_ENOENT);
  hg_spool_iter_end(&it);

  /* appending after a reopen continues the sequence */
  const char *more[] = {"after", "reopen"};
  append_ok(s, "after", 5);
  append_ok(s, "reopen", 6);
  close_ok(s);
  s = open_ok(path, NULL, &info);
  expect_records(s, 1000, more, 2);
  hg_buf_free(&b);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
  CHECK_EQ_INT(file_size(path), (size_t)-1);
}

/* Cut the file at every byte: the spool holds exactly the complete records before the cut, and
 * appending afterwards produces a spool that replays correctly. */
static void truncated_at_every_offset(void) {
  const char *path = path_of("torn.spool");
  enum { N = 14 };
  hg_spool *s = open_ok(path, NULL, NULL);
  char rec[64];
  size_t ends[N + 1];
  ends[0] = HG_SPOOL_HEADER_SIZE;
  for (int i = 0; i < N; i++) {
    size_t n = record(i, rec, sizeof rec);
    append_ok(s, rec, n);
    ends[i + 1] = ends[i] + HG_SPOOL_RECORD_OVERHEAD + n;
  }
  close_ok(s);
  size_t size;
  char *whole = slurp(path, &size);
  CHECK_EQ_INT(size, ends[N]);

  const char *extra[] = {"new record after the cut"};
  for (size_t cut = 0; cut <= size; cut++) {
    spit(path, whole, cut);
    int complete = 0;
    while (complete < N && ends[complete + 1] <= cut) complete++;
    hg_spool_info info;
    s = open_ok(path, NULL, &info);
    if (!s) break;
    CHECK_EQ_INT(info.records, complete);
    CHECK_EQ_INT(info.created, cut < HG_SPOOL_HEADER_SIZE);
    CHECK_EQ_INT(info.dropped_bytes, cut < HG_SPOOL_HEADER_SIZE ? 0 : cut - ends[complete]);
    /* the torn tail is gone from the file before anything new goes in */
    CHECK_EQ_INT(file_size(path), ends[complete]);
    expect_records(s, complete, NULL, 0);
    append_ok(s, extra[0], strlen(extra[0]));
    close_ok(s);
    s = open_ok(path, NULL, &info);
    CHECK_EQ_INT(info.dropped_bytes, 0);
    expect_records(s, complete, extra, 1);
    close_ok(s);
  }
  free(whole);
  unlink(path);
}

static void flipped_byte_drops_that_record(void) {
  const char *path = path_of("flip.spool");
  enum { N = 10 };
  hg_spool *s = open_ok(path, NULL, NULL);
  char rec[64];
  size_t last_start = 0, mid_start = 0;
  for (int i = 0; i < N; i++) {
    if (i == N - 1) last_start = hg_spool_size(s);
    if (i == 4) mid_start = hg_spool_size(s);
    append_ok(s, rec, record(i, rec, sizeof rec));
  }
  close_ok(s);
  size_t size;
  char *whole = slurp(path, &size);
  char *copy = malloc(size);
  /* any byte of the last record: its length, its CRC or its payload */
  for (size_t at = last_start; at < size; at++) {
    for (int bit = 0; bit < 8; bit += 3) {
      memcpy(copy, whole, size);
      copy[at] ^= (char)(1 << bit);
      spit(path, copy, size);
      hg_spool_info info;
      s = open_ok(path, NULL, &info);
      if (!s) break;
      CHECK_EQ_INT(info.records, N - 1);
      CHECK_EQ_INT(info.dropped_bytes, size - last_start);
      expect_records(s, N - 1, NULL, 0);
      close_ok(s);
    }
  }
  /* damage in the middle: that record and everything after it is dropped, nothing misread */
  memcpy(copy, whole, size);
  copy[mid_start + HG_SPOOL_RECORD_OVERHEAD] ^= 0x20;
  spit(path, copy, size);
  hg_spool_info info;
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, 4);
  expect_records(s, 4, NULL, 0);
  close_ok(s);
  /* a length far beyond the file or the record limit is a torn tail too */
  memcpy(copy, whole, size);
  memset(copy + last_start, 0xff, 4);
  spit(path, copy, size);
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, N - 1);
  close_ok(s);
  free(copy);
  free(whole);
  unlink(path);
}

/* ---- durability bookkeeping ---- */

static void sync_and_pending(void) {
  const char *path = path_of("sync.spool");
  hg_spool *s = open_ok(path, NULL, NULL);
  hg_err err = {0};
  CHECK(!hg_spool_dirty(s));
  CHECK_EQ_INT(hg_spool_sync(s, &err), 0); /* nothing to do is fine */
  append_ok(s, "one", 3);
  append_ok(s, "two", 3);
  append_ok(s, "", 0);
  CHECK(hg_spool_dirty(s));
  CHECK_EQ_INT(hg_spool_pending_bytes(s), 3 * HG_SPOOL_RECORD_OVERHEAD + 6);
  CHECK_EQ_INT(hg_spool_count(s), 3);
  CHECK_EQ_INT(hg_spool_durable_count(s), 0);
  /* buffered records can be read already */
  hg_buf b = HG_BUF_INIT;
  CHECK_EQ_INT(hg_spool_read(s, 1, &b, &err), 0);
  CHECK_EQ_STR(b.data, "two");
  CHECK_EQ_INT(hg_spool_read(s, 2, &b, &err), 0);
  CHECK_EQ_INT(b.len, 0);
  /* not on disk yet: a new spool has no file before its first records are written */
  CHECK_EQ_INT(file_size(path), (size_t)-1);
  CHECK_EQ_INT(hg_spool_sync(s, &err), 0);
  CHECK(!hg_spool_dirty(s));
  CHECK_EQ_INT(hg_spool_pending_bytes(s), 0);
  CHECK_EQ_INT(hg_spool_durable_count(s), 3);
  CHECK_EQ_INT(file_size(path), HG_SPOOL_HEADER_SIZE + 3 * HG_SPOOL_RECORD_OVERHEAD + 6);
  /* an iterator sees records appended while it runs, synced or not */
  hg_spool_iter it;
  const char *data;
  size_t len;
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 2, &err), 0);
  CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, NULL, &err), 1);
  CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, NULL, &err), 0);
  append_ok(s, "three", 5);
  CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, NULL, &err), 1);
  CHECK(len == 5 && memcmp(data, "three", 5) == 0);
  hg_spool_iter_end(&it);
  /* close syncs what is pending */
  close_ok(s);
  hg_spool_info info;
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, 4);
  CHECK_EQ_INT(hg_spool_read(s, 3, &b, &err), 0);
  CHECK_EQ_STR(b.data, "three");
  hg_buf_free(&b);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
}

/* The two halves of a sync done elsewhere: flush writes and marks, the mark makes durable. */
static void flush_then_mark_durable(void) {
  const char *path = path_of("flush.spool");
  hg_spool *s = open_ok(path, NULL, NULL);
  hg_err err = {0};
  append_ok(s, "one", 3);
  append_ok(s, "two", 3);
  hg_spool_mark m1, m2;
  CHECK_EQ_INT(hg_spool_flush(s, &m1, &err), 0);
  CHECK_EQ_INT(m1.records, 2);
  CHECK_EQ_INT(m1.bytes, HG_SPOOL_HEADER_SIZE + 2 * HG_SPOOL_RECORD_OVERHEAD + 6);
  CHECK_EQ_INT(file_size(path), m1.bytes); /* written, not yet known durable */
  CHECK_EQ_INT(hg_spool_durable_count(s), 0);
  CHECK(hg_spool_dirty(s));
  append_ok(s, "three", 5);
  CHECK_EQ_INT(hg_spool_flush(s, &m2, &err), 0);
  CHECK_EQ_INT(m2.records, 3);
  /* the later sync's answer comes first; the older one then changes nothing */
  hg_spool_mark_durable(s, &m2);
  CHECK_EQ_INT(hg_spool_durable_count(s), 3);
  CHECK(!hg_spool_dirty(s));
  hg_spool_mark_durable(s, &m1);
  CHECK_EQ_INT(hg_spool_durable_count(s), 3);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
}

/* A write that fails (here: the file size limit) keeps the records buffered; a later sync
 * writes them and nothing is lost or duplicated. */
static void failed_write_is_retried(void) {
  const char *path = path_of("efbig.spool");
  hg_spool *s = open_ok(path, NULL, NULL);
  hg_err err = {0};
  append_ok(s, "kept", 4);
  CHECK_EQ_INT(hg_spool_sync(s, &err), 0);
  char big[4096];
  memset(big, 'z', sizeof big);
  append_ok(s, big, sizeof big);
  append_ok(s, "tail", 4);

  struct rlimit old, small;
  getrlimit(RLIMIT_FSIZE, &old);
  small = old;
  small.rlim_cur = 1024;
  void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
  CHECK_EQ_INT(hg_spool_sync(s, &err), HG_EIO);
  CHECK(strstr(err.msg, "efbig.spool: write: ") != NULL);
  CHECK(hg_spool_dirty(s));
  CHECK_EQ_INT(hg_spool_durable_count(s), 1);
  CHECK_EQ_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
  signal(SIGXFSZ, prev);

  CHECK_EQ_INT(hg_spool_sync(s, &err), 0);
  CHECK_EQ_INT(hg_spool_durable_count(s), 3);
  close_ok(s);
  hg_spool_info info;
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, 3);
  CHECK_EQ_INT(info.dropped_bytes, 0);
  hg_buf b = HG_BUF_INIT;
  CHECK_EQ_INT(hg_spool_read(s, 2, &b, &err), 0);
  CHECK_EQ_STR(b.data, "tail");
  CHECK_EQ_INT(hg_spool_read(s, 1, &b, &err), 0);
  CHECK(b.len == sizeof big && memcmp(b.data, big, sizeof big) == 0);
  hg_buf_free(&b);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
}

static void large_records(void) {
  const char *path = path_of("large.spool");
  hg_spool *s = open_ok(path, NULL, NULL);
  hg_err err = {0};
  size_t sizes[] = {1u << 20, (1u << 20) + 1, 3, 1u << 20};
  char *recs[4];
  uint32_t x = 12345;
  for (int i = 0; i < 4; i++) {
    recs[i] = malloc(sizes[i]);
    for (size_t k = 0; k < sizes[i]; k++) {
      x = x * 1103515245u + 12345u;
      recs[i][k] = (char)(x >> 16);
    }
    append_ok(s, recs[i], sizes[i]);
    if (i == 0) {
      /* past 1 MiB of buffered records they are written at once, to bound memory, but are
       * durable only after a sync */
      CHECK_EQ_INT(file_size(path), HG_SPOOL_HEADER_SIZE + HG_SPOOL_RECORD_OVERHEAD + sizes[0]);
      CHECK_EQ_INT(hg_spool_durable_count(s), 0);
      CHECK(hg_spool_dirty(s));
    }
  }
  CHECK_EQ_INT(hg_spool_sync(s, &err), 0);
  CHECK_EQ_INT(hg_spool_durable_count(s), 4);
  close_ok(s);
  hg_spool_info info;
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, 4);
  hg_spool_iter it;
  const char *data;
  size_t len;
  CHECK_EQ_INT(hg_spool_iter_start(&it, s, 0, &err), 0);
  for (int i = 0; i < 4; i++) {
    CHECK_EQ_INT(hg_spool_iter_next(&it, &data, &len, NULL, &err), 1);
    CHECK(len == sizes[i] && memcmp(data, recs[i], len) == 0);
  }
  hg_spool_iter_end(&it);
  /* above the record limit: refused before anything is read or stored */
  CHECK_EQ_INT(hg_spool_append(s, recs[0], (size_t)HG_SPOOL_MAX_RECORD + 1, &err), HG_ETOOBIG);
  CHECK(strstr(err.msg, "above the limit") != NULL);
  CHECK_EQ_INT(hg_spool_count(s), 4);
  for (int i = 0; i < 4; i++) free(recs[i]);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
}

/* ---- budget ---- */

static int space_calls;
static void on_space(void *ud) {
  (void)ud;
  space_calls++;
}

static void budget_backpressure(void) {
  hg_spool_budget budget;
  hg_spool_budget_init(&budget, 2000);
  hg_spool_budget_on_space(&budget, on_space, NULL);
  space_calls = 0;
  hg_err err = {0};
  hg_spool *a = open_ok(path_of("a.spool"), &budget, NULL);
  hg_spool *b = open_ok(path_of("b.spool"), &budget, NULL);
  CHECK_EQ_INT(budget.used, 2 * HG_SPOOL_HEADER_SIZE);
  char rec[92];
  memset(rec, 'r', sizeof rec);
  int stored = 0, rc = 0;
  while (stored < 100 && (rc = hg_spool_append(stored % 2 ? b : a, rec, sizeof rec, &err)) == 0)
    stored++;
  /* the append that used the budget up was stored, and said so */
  CHECK_EQ_INT(rc, HG_SPOOL_FULL);
  stored++;
  CHECK(hg_spool_budget_full(&budget));
  CHECK_EQ_INT(budget.used, hg_spool_size(a) + hg_spool_size(b));
  CHECK_EQ_INT(hg_spool_count(a) + hg_spool_count(b), stored);
  /* full is reported, never a refusal: nothing is dropped */
  CHECK_EQ_INT(hg_spool_append(b, rec, sizeof rec, &err), HG_SPOOL_FULL);
  CHECK_EQ_INT(space_calls, 0);
  /* a delivered run's spool is deleted: room again, and the owner hears of it */
  CHECK_EQ_INT(hg_spool_delete(a, &err), 0);
  CHECK_EQ_INT(space_calls, 1);
  CHECK(!hg_spool_budget_full(&budget));
  CHECK_EQ_INT(budget.used, hg_spool_size(b));
  CHECK_EQ_INT(hg_spool_append(b, "x", 1, &err), 0);
  /* reopening charges what is on disk */
  uint64_t b_size = hg_spool_size(b);
  close_ok(b);
  CHECK_EQ_INT(budget.used, 0);
  CHECK_EQ_INT(space_calls, 1); /* was not full */
  b = open_ok(path_of("b.spool"), &budget, NULL);
  CHECK_EQ_INT(budget.used, b_size);
  CHECK_EQ_INT(hg_spool_delete(b, &err), 0);
  CHECK_EQ_INT(budget.used, 0);

  /* no budget, or an unlimited one, is never full */
  hg_spool_budget unlimited;
  hg_spool_budget_init(&unlimited, 0);
  hg_spool *c = open_ok(path_of("c.spool"), &unlimited, NULL);
  CHECK_EQ_INT(hg_spool_append(c, rec, sizeof rec, &err), 0);
  CHECK(!hg_spool_budget_full(&unlimited));
  CHECK(!hg_spool_budget_full(NULL));
  CHECK_EQ_INT(hg_spool_delete(c, &err), 0);
}

/* ---- files that are not ours, locking, deletion ---- */

/* A new spool has no file until records are written: one that never gets a record costs no
 * file at all. The first sync (either kind) covers the directory entry too, later ones do
 * not. A header a crash left as zeros (size kept, bytes not: it was never synced) starts the
 * spool afresh, whatever followed it. */
static void header_durable_with_first_records(void) {
  const char *path = path_of("lazy.spool");
  hg_err err = {0};
  hg_spool_info info;
  hg_spool *s = open_ok(path, NULL, &info);
  CHECK(info.created);
  CHECK_EQ_INT(file_size(path), (size_t)-1);
  CHECK(!hg_spool_dirty(s)); /* nothing a restart would miss */
  hg_spool_mark m;
  CHECK_EQ_INT(hg_spool_flush(s, &m, &err), 0);
  CHECK(m.dir);
  CHECK_EQ_INT(hg_spool_sync(s, &err), 0);
  CHECK_EQ_INT(file_size(path), (size_t)-1);
  append_ok(s, "one", 3);
  CHECK_EQ_INT(file_size(path), (size_t)-1); /* buffered */
  CHECK_EQ_INT(hg_spool_flush(s, &m, &err), 0);
  CHECK_EQ_INT(file_size(path), HG_SPOOL_HEADER_SIZE + HG_SPOOL_RECORD_OVERHEAD + 3);
  CHECK(m.dir);
  CHECK_EQ_INT(hg_spool_sync_path(path, &m), 0);
  hg_spool_mark_durable(s, &m);
  CHECK_EQ_INT(hg_spool_durable_count(s), 1);
  append_ok(s, "two", 3);
  CHECK_EQ_INT(hg_spool_flush(s, &m, &err), 0);
  CHECK(!m.dir);
  CHECK_EQ_INT(hg_spool_sync_path(path, &m), 0);
  hg_spool_mark_durable(s, &m);
  CHECK_EQ_INT(hg_spool_durable_count(s), 2);
  close_ok(s);
  /* reopened: the first sync covers the directory again (an earlier process may have died
   * before syncing it) */
  s = open_ok(path, NULL, &info);
  CHECK_EQ_INT(info.records, 2);
  CHECK_EQ_INT(hg_spool_flush(s, &m, &err), 0);
  CHECK(m.dir);
  close_ok(s);

  unsigned char junk[HG_SPOOL_HEADER_SIZE + 40] = {0};
  memset(junk + HG_SPOOL_HEADER_SIZE, 'x', 40);
  spit(path, junk, sizeof junk);
  s = open_ok(path, NULL, &info);
  CHECK(info.created);
  CHECK_EQ_INT(info.records, 0);
  CHECK_EQ_INT(file_size(path), HG_SPOOL_HEADER_SIZE);
  append_ok(s, "fresh", 5);
  close_ok(s);
  s = open_ok(path, NULL, &info);
  const char *fresh[] = {"fresh"};
  expect_records(s, 0, fresh, 1);
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
  CHECK_EQ_INT(hg_spool_sync_path(path, &m), ENOENT);
}

static void refuses_foreign_files(void) {
  hg_err err = {0};
  hg_spool *s = NULL;
  const char *path = path_of("foreign");
  const char *text = "this is somebody's notes file, not a spool";
  spit(path, text, strlen(text));
  CHECK_EQ_INT(hg_spool_open(&s, path, NULL, NULL, &err), HG_EPROTO);
  CHECK(strstr(err.msg, "foreign: not a spool file") != NULL);
  size_t len;
  char *back = slurp(path, &len);
  CHECK(len == strlen(text) && memcmp(back, text, len) == 0);
  free(back);
  /* short, and not the start of a header: left alone too */
  spit(path, "abc", 3);
  CHECK_EQ_INT(hg_spool_open(&s, path, NULL, NULL, &err), HG_EPROTO);
  CHECK_EQ_INT(file_size(path), 3);
  /* another version */
  unsigned char h[HG_SPOOL_HEADER_SIZE] = {'H', 'G', 'S', 'P', 'O', 'O', 'L', 0, 2, 0, 0, 0, 0, 0, 0, 0};
  spit(path, h, sizeof h);
  CHECK_EQ_INT(hg_spool_open(&s, path, NULL, NULL, &err), HG_EPROTO);
  CHECK(strstr(err.msg, "unsupported version 2") != NULL);
  unlink(path);
  /* a directory that does not exist: found when the first record is written */
  s = open_ok(path_of("missing/x.spool"), NULL, NULL);
  append_ok(s, "one", 3);
  CHECK_EQ_INT(hg_spool_sync(s, &err), HG_EIO);
  CHECK(strstr(err.msg, "missing/x.spool: create: ") != NULL);
  CHECK_EQ_INT(hg_spool_count(s), 1); /* still buffered */
  CHECK_EQ_INT(hg_spool_delete(s, &err), 0);
}

static void one_owner_at_a_time(void) {
  const char *path = path_of("locked.spool");
  hg_spool *a = open_ok(path, NULL, NULL), *b = NULL;
  hg_err err = {0};
  /* Neither has a file yet: the first to write records owns the spool, the other is refused
   * when it writes its own. */
  b = open_ok(path, NULL, NULL);
  append_ok(a, "a", 1);
  CHECK_EQ_INT(hg_spool_sync(a, &err), 0);
  append_ok(b, "b", 1);
  CHECK_EQ_INT(hg_spool_sync(b, &err), HG_EAGAIN);
  CHECK(strstr(err.msg, "in use by another process") != NULL);
  CHECK_EQ_INT(hg_spool_delete(b, &err), 0);
  CHECK_EQ_INT(file_size(path), HG_SPOOL_HEADER_SIZE + HG_SPOOL_RECORD_OVERHEAD + 1);
  /* Once it has a file, it is locked from the open on. */
  b = NULL;
  CHECK_EQ_INT(hg_spool_open(&b, path, NULL, NULL, &err), HG_EAGAIN);
  CHECK(strstr(err.msg, "in use by another process") != NULL);
  close_ok(a);
  b = open_ok(path, NULL, NULL);
  CHECK_EQ_INT(hg_spool_delete(b, &err), 0);
  /* deleted means gone: the next open starts afresh */
  hg_spool_info info;
  b = open_ok(path, NULL, &info);
  CHECK(info.created);
  CHECK_EQ_INT(hg_spool_delete(b, &err), 0);
  CHECK_EQ_INT(hg_spool_close(NULL, &err), 0);
}

static void cleanup(void) {
  CHECK_EQ_INT(rmdir(dir), 0);
}

static void setup(void) {
  make_dir();
}

TEST_MAIN(T(setup), T(crc32_vectors), T(append_reopen_replay), T(truncated_at_every_offset),
          T(flipped_byte_drops_that_record), T(sync_and_pending), T(failed_write_is_retried),
          T(large_records), T(flush_then_mark_durable), T(budget_backpressure), T(header_durable_with_first_records),
          T(refuses_foreign_files),
          T(one_owner_at_a_time), T(cleanup))
