/* Tests of the line framer: terminators, 64 KiB pieces, UTF-8 repair, timestamps. */
#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "core/buf.h"
#include "core/err.h"
#include "pipeline/framer.h"

typedef struct line {
  char *text;
  size_t len;
  bool partial;
  int64_t ts;
} line;

typedef struct rec {
  line *l;
  size_t n, cap;
  bool keep_text; /* false: only lengths, for the big inputs */
  int not_c_string;
  int fail_with;
  const hg_framer *f; /* the framer delivering, when known */
  int wrong_plain;    /* lines it said have nothing JSON escapes, and had */
  int plain;          /* lines it said have nothing to escape */
} rec;

static int on_line(void *ud, const char *text, size_t len, bool partial, int64_t ts) {
  rec *r = ud;
  if (text[len] != '\0' || memchr(text, '\0', len)) r->not_c_string++;
  if (r->f && !r->f->escapes) {
    r->plain++;
    for (size_t i = 0; i < len; i++) {
      unsigned char c = (unsigned char)text[i];
      if (c < 0x20 || c == '"' || c == '\\') {
        r->wrong_plain++;
        break;
      }
    }
  }
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 16;
    r->l = realloc(r->l, r->cap * sizeof *r->l);
  }
  line *l = &r->l[r->n++];
  l->len = len;
  l->partial = partial;
  l->ts = ts;
  l->text = NULL;
  if (r->keep_text) {
    l->text = malloc(len + 1);
    memcpy(l->text, text, len + 1);
  }
  return r->fail_with;
}

static void rec_free(rec *r) {
  for (size_t i = 0; i < r->n; i++) free(r->l[i].text);
  free(r->l);
  memset(r, 0, sizeof *r);
}

/* A plain validator, written from the Unicode table of well-formed byte sequences. */
static bool valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c < 0x80) need = 1;
    else if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) need = 3, lo = 0xA0;
    else if (c == 0xED) need = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 3;
    else if (c == 0xF0) need = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else if (c == 0xF4) need = 4, hi = 0x8F;
    else return false;
    if (i + need > n) return false;
    for (size_t k = 1; k < need; k++) {
      unsigned char d = s[i + k];
      if (d < (k == 1 ? lo : 0x80) || d > (k == 1 ? hi : 0xBF)) return false;
    }
    i += need;
  }
  return true;
}

/* Frames t written in pieces of at most chunk bytes (ts = index of the write), then finishes. */
static void frame(rec *r, const void *t, size_t n, size_t chunk) {
  hg_framer f;
  CHECK_EQ_INT(hg_framer_init(&f, on_line, r), 0);
  r->f = &f;
  for (size_t i = 0, w = 0; i < n; i += chunk, w++)
    CHECK_EQ_INT(hg_framer_write(&f, (const char *)t + i, n - i < chunk ? n - i : chunk, (int64_t)w), 0);
  CHECK_EQ_INT(hg_framer_finish(&f), 0);
  hg_framer_free(&f);
  r->f = NULL;
  CHECK_EQ_INT(r->wrong_plain, 0);
  for (size_t i = 0; i < r->n; i++) {
    CHECK(r->l[i].len <= HG_FRAMER_MAX_TEXT);
    if (r->keep_text) CHECK(valid_utf8((unsigned char *)r->l[i].text, r->l[i].len));
  }
  CHECK_EQ_INT(r->not_c_string, 0);
}

/* The lines as "text|text|", partial pieces marked with a trailing '+'. */
static char *joined(const rec *r) {
  hg_buf b = HG_BUF_INIT;
  hg_buf_appends(&b, "");
  for (size_t i = 0; i < r->n; i++) {
    hg_buf_append(&b, r->l[i].text, r->l[i].len);
    hg_buf_appends(&b, r->l[i].partial ? "+|" : "|");
  }
  return hg_buf_steal(&b);
}

/* Frames t at every chunk size from 1 to 7 and whole; all must give `expect`. */
static void expect_lines(const char *t, size_t n, const char *expect) {
  size_t sizes[] = {1, 2, 3, 5, 7, n ? n : 1};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    rec r = {.keep_text = true};
    frame(&r, t, n, sizes[k]);
    char *j = joined(&r);
    if (strcmp(j, expect) != 0) fprintf(stderr, "  (chunks of %zu)\n", sizes[k]);
    CHECK_EQ_STR(j, expect);
    free(j);
    rec_free(&r);
  }
}

#define EXPECT(lit, expect) expect_lines(lit, sizeof lit - 1, expect)

static void test_terminators(void) {
  EXPECT("a\nb\r\nc\rd", "a|b|c|d|");
  EXPECT("one\r\n", "one|");
  EXPECT("x\r\r\ny", "x||y|"); /* a bare \r, then \r\n */
  EXPECT("x\n\ry", "x||y|");
}

static void test_crlf_split_across_writes(void) {
  rec r = {.keep_text = true};
  hg_framer f;
  CHECK_EQ_INT(hg_framer_init(&f, on_line, &r), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "a\r", 2, 1), 0);
  CHECK_EQ_INT(r.n, 1); /* delivered at the \r, not when the next byte comes */
  CHECK_EQ_INT(hg_framer_write(&f, "\nb\r", 3, 2), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "\r\n", 2, 3), 0);
  CHECK_EQ_INT(hg_framer_finish(&f), 0);
  char *j = joined(&r);
  CHECK_EQ_STR(j, "a|b||");
  free(j);
  hg_framer_free(&f);
  rec_free(&r);
}

static void test_empty_lines_and_final_line(void) {
  EXPECT("\n\n\r\n\r", "||||");
  EXPECT("last words", "last words|");
  EXPECT("", "");
  EXPECT("a\n", "a|");
}

static void test_invalid_utf8_replaced(void) {
  EXPECT("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80|");
  EXPECT("<\xc0\xaf>", "<\xef\xbf\xbd\xef\xbf\xbd>|");                       /* overlong / */
  EXPECT("<\xe0\x80\xaf>", "<\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd>|");       /* overlong, 3 bytes */
  EXPECT("<\xed\xa0\x80>", "<\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd>|");       /* surrogate */
  EXPECT("<\xf4\x90\x80\x80>",
         "<\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd>|");              /* above U+10FFFF */
  EXPECT("<\x80>", "<\xef\xbf\xbd>|");                                        /* stray continuation */
  EXPECT("<\xf5\xff>", "<\xef\xbf\xbd\xef\xbf\xbd>|");
  EXPECT("<\xe2\x82>", "<\xef\xbf\xbd>|");              /* cut short by another byte: one U+FFFD */
  EXPECT("ab\xe2\x82", "ab\xef\xbf\xbd|");              /* cut short by the end of the stream */
  EXPECT("ab\xf0\x9f\x98\nc", "ab\xef\xbf\xbd|c|");     /* cut short by a line end */
  EXPECT("\xe2\x82\xe2\x82\xac", "\xef\xbf\xbd\xe2\x82\xac|");
}

static void test_nul_replaced(void) {
  EXPECT("a\0b\n", "a\xef\xbf\xbd" "b|");
}

static void test_piece_boundary(void) {
  for (size_t extra = 0; extra <= 2; extra++) {
    size_t n = HG_FRAMER_MAX_TEXT + extra;
    char *t = malloc(n + 1);
    memset(t, 'x', n);
    t[n] = '\n';
    size_t chunks[] = {n + 1, 4096, 65535, 65537};
    for (size_t k = 0; k < 4; k++) {
      rec r = {.keep_text = true};
      frame(&r, t, n + 1, chunks[k]);
      if (extra == 0) {
        CHECK_EQ_INT(r.n, 1); /* exactly 64 KiB is one event */
        CHECK_EQ_INT(r.l[0].len, HG_FRAMER_MAX_TEXT);
        CHECK(!r.l[0].partial);
      } else {
        CHECK_EQ_INT(r.n, 2);
        CHECK_EQ_INT(r.l[0].len, HG_FRAMER_MAX_TEXT);
        CHECK(r.l[0].partial);
        CHECK_EQ_INT(r.l[1].len, extra);
        CHECK(!r.l[1].partial);
      }
      rec_free(&r);
    }
    /* The same without a newline: flushed at the end of the stream. */
    rec r = {.keep_text = true};
    frame(&r, t, n, 1000);
    CHECK_EQ_INT(r.n, extra ? 2 : 1);
    CHECK(!r.l[r.n - 1].partial);
    rec_free(&r);
    free(t);
  }
}

static void test_utf8_never_split_in_pieces(void) {
  static const char *const chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
  for (size_t c = 0; c < 3; c++) {
    size_t cl = strlen(chars[c]);
    for (size_t pre = HG_FRAMER_MAX_TEXT - 5; pre <= HG_FRAMER_MAX_TEXT; pre++) {
      size_t n = pre + 3 * cl + 1;
      char *t = malloc(n);
      memset(t, 'y', pre);
      for (size_t k = 0; k < 3; k++) memcpy(t + pre + k * cl, chars[c], cl);
      t[n - 1] = '\n';
      rec r = {.keep_text = true};
      frame(&r, t, n, 777);
      CHECK(r.n >= 2);
      hg_buf all = HG_BUF_INIT;
      for (size_t i = 0; i < r.n; i++) {
        CHECK(valid_utf8((unsigned char *)r.l[i].text, r.l[i].len));
        CHECK_EQ_INT(r.l[i].partial, i + 1 < r.n);
        hg_buf_append(&all, r.l[i].text, r.l[i].len);
      }
      CHECK_EQ_INT(all.len, n - 1);
      CHECK(all.len == n - 1 && memcmp(all.data, t, n - 1) == 0);
      CHECK(r.l[0].len > HG_FRAMER_MAX_TEXT - cl); /* filled as far as a whole character fits */
      hg_buf_free(&all);
      rec_free(&r);
      free(t);
    }
  }
}

static void test_ten_mib_line(void) {
  size_t n = 10 * 1024 * 1024;
  char *t = malloc(n + 1);
  for (size_t i = 0; i < n; i += 2) memcpy(t + i, "\xc3\xa9", 2);
  t[n] = '\n';
  rec r = {.keep_text = true};
  frame(&r, t, n + 1, 65536);
  CHECK_EQ_INT(r.n, 160);
  size_t total = 0;
  for (size_t i = 0; i < r.n; i++) {
    CHECK_EQ_INT(r.l[i].partial, i + 1 < r.n);
    total += r.l[i].len;
  }
  CHECK_EQ_INT(total, n);
  rec_free(&r);
  free(t);
}

static void test_timestamps(void) {
  rec r = {.keep_text = true};
  hg_framer f;
  CHECK_EQ_INT(hg_framer_init(&f, on_line, &r), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "ab", 2, 10), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "c\n", 2, 20), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "\n", 1, 30), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "d", 1, 40), 0);
  CHECK_EQ_INT(hg_framer_finish(&f), 0);
  CHECK_EQ_INT(r.n, 3);
  CHECK_EQ_INT(r.l[0].ts, 10); /* the read time of the line's first byte */
  CHECK_EQ_INT(r.l[1].ts, 30); /* an empty line: of its terminator */
  CHECK_EQ_INT(r.l[2].ts, 40);
  hg_framer_free(&f);
  rec_free(&r);
}

static void test_callback_error_stops(void) {
  rec r = {.keep_text = true, .fail_with = HG_EIO};
  hg_framer f;
  CHECK_EQ_INT(hg_framer_init(&f, on_line, &r), 0);
  CHECK_EQ_INT(hg_framer_write(&f, "a\nb\n", 4, 1), HG_EIO);
  CHECK_EQ_INT(r.n, 1);
  CHECK_EQ_INT(hg_framer_write(&f, "c\n", 2, 1), HG_EIO);
  CHECK_EQ_INT(hg_framer_finish(&f), HG_EIO);
  CHECK_EQ_INT(r.n, 1);
  hg_framer_free(&f);
  rec_free(&r);
}

/* The framer says which lines hold nothing a JSON string escapes, so that a consumer need not
 * look again: never wrongly, wherever such a byte sits (a line's first or last bytes, past a
 * 16-byte stretch, in a piece of a long line), however the bytes are split into writes; and
 * it does say so of ordinary lines. */
static void test_escapes_flag(void) {
  uint64_t seed = 88172645463325252ull;
  hg_buf t = HG_BUF_INIT;
  const char special[] = {'"', '\\', '\t', 0x01, 0x1f, 'a', 'z', ' '};
  for (int n = 0; n < 3000; n++) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    size_t len = n % 100 == 99 ? HG_FRAMER_MAX_TEXT + 100 + seed % 300 : seed % 80;
    size_t at = len ? (seed >> 20) % len : 0;
    bool put_special = (seed >> 40) % 2;
    for (size_t i = 0; i < len; i++) {
      char c = (char)('a' + (i + (size_t)n) % 26);
      if (put_special && i == at) c = special[(seed >> 50) % sizeof special];
      hg_buf_appendc(&t, c);
    }
    hg_buf_appendc(&t, '\n');
  }
  size_t chunks[] = {3, 7, 16, 17, 100, 4096, 65536, t.len};
  for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
    rec r = {0};
    frame(&r, t.data, t.len, chunks[k]);
    CHECK_EQ_INT(r.n, 3000 + 30);
    CHECK(r.plain > 1000);
    rec_free(&r);
  }
  hg_buf_free(&t);
}

TEST_MAIN(T(test_terminators), T(test_crlf_split_across_writes), T(test_empty_lines_and_final_line),
          T(test_invalid_utf8_replaced), T(test_nul_replaced), T(test_piece_boundary),
          T(test_utf8_never_split_in_pieces), T(test_ten_mib_line), T(test_timestamps),
          T(test_callback_error_stops), T(test_escapes_flag))
