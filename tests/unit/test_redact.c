/* Tests of the streaming redactor: forms, write splits, merging, mid-stream secrets. */
#include <stdint.h>
#include <stdio.h>

#include "check.h"
#include "core/buf.h"
#include "pipeline/framer.h"
#include "pipeline/redact.h"
#include "redact_ref.h"

/* ---- helpers ---- */

static uint64_t rng_state;

static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static size_t rnd_below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

typedef struct sink {
  hg_buf out;
  hg_redact_set *set; /* when set, lines "hangar_mask VALUE" register VALUE */
  hg_buf line;
  size_t calls;
  int bad_split; /* a terminator that was not the last byte of an emit call */
} sink;

static void sink_line(sink *s) {
  const char *p = s->line.data ? s->line.data : "";
  size_t n = s->line.len;
  if (s->set && n > 12 && memcmp(p, "hangar_mask ", 12) == 0) {
    size_t e = n;
    while (e > 12 && (p[e - 1] == ' ' || p[e - 1] == '\t')) e--;
    hg_redact_set_add(s->set, p + 12, e - 12, NULL);
  }
  hg_buf_reset(&s->line);
}

static int sink_emit(void *ud, const char *p, size_t n, int64_t ts) {
  sink *s = ud;
  s->calls++;
  hg_buf_append(&s->out, p, n);
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '\n' || p[i] == '\r') {
      if (i + 1 != n) s->bad_split = 1;
      sink_line(s);
    } else {
      hg_buf_appendc(&s->line, p[i]);
    }
  }
  return 0;
}

static void sink_free(sink *s) {
  hg_buf_free(&s->out);
  hg_buf_free(&s->line);
}

/* Runs t through a fresh scanner of set, cut at the ncuts (sorted) offsets. Returns the output
 * (malloc'd, caller frees); *outlen its length. */
static char *run_cuts(hg_redact_set *set, const void *t, size_t n, const size_t *cuts, size_t ncuts,
                      size_t *outlen, bool masks) {
  sink s = {0};
  s.set = masks ? set : NULL;
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, sink_emit, &s, NULL), 0);
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t at = i < ncuts ? cuts[i] : n;
    if (hg_redact_scanner_write(sc, (const char *)t + prev, at - prev, (int64_t)i, NULL) != 0)
      CHECK(!"write failed");
    prev = at;
  }
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 0);
  CHECK(!s.bad_split);
  hg_redact_scanner_free(sc);
  *outlen = s.out.len;
  hg_buf_appendc(&s.out, 0);
  char *r = hg_buf_steal(&s.out);
  sink_free(&s);
  return r;
}

static char *run_once(hg_redact_set *set, const void *t, size_t n, size_t *outlen) {
  return run_cuts(set, t, n, NULL, 0, outlen, false);
}

static bool same(const char *a, size_t an, const void *b, size_t bn) {
  return an == bn && memcmp(a, b, an) == 0;
}

static void show(const char *what, const void *p, size_t n) {
  fprintf(stderr, "  %s (%zu): ", what, n);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = ((const unsigned char *)p)[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') fputc(c, stderr);
    else fprintf(stderr, "\\x%02x", c);
  }
  fputc('\n', stderr);
}

/* What a mismatch report shows: the input, the output and what the reference expected. */
static void show_diff(const void *t, size_t n, const void *got, size_t gn, const void *expect,
                      size_t en) {
  show("input", t, n);
  show("got", got, gn);
  show("expected", expect, en);
}

static hg_redact_set *set_of(const char *const *secrets, size_t n, ref_forms *forms) {
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  for (size_t i = 0; i < n; i++) {
    CHECK_EQ_INT(hg_redact_set_add(set, secrets[i], strlen(secrets[i]), NULL), 0);
    if (forms) ref_forms_add(forms, (const unsigned char *)secrets[i], strlen(secrets[i]));
  }
  return set;
}

/* ---- tests ---- */

/* Each form of each secret, placed among other text and a dangling prefix of itself, is masked
 * identically whatever the write boundaries, and no form survives. */
static void test_every_form_every_split(void) {
#define LIT(s) {s, sizeof s - 1}
  static const struct {
    const char *s;
    size_t len;
  } lits[] = {
      LIT("hunter2-Passw0rd"),
      LIT("p@ss/w\"rd\\ <&> ~%+=?"),
      LIT("multi\nline\r\nsecret\ttab\x01\x08\x0c\x7f"),
      LIT("\xff\xfe\x00\x80 binary\xc3\xa9"),
  };
#undef LIT
  const char *secrets[4];
  size_t lens[4];
  for (size_t i = 0; i < 4; i++) secrets[i] = lits[i].s, lens[i] = lits[i].len;
  for (size_t si = 0; si < 4; si++) {
    hg_redact_set *set;
    CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
    CHECK_EQ_INT(hg_redact_set_add(set, secrets[si], lens[si], NULL), 0);
    ref_forms forms = {0};
    ref_forms_add(&forms, (const unsigned char *)secrets[si], lens[si]);
    CHECK(forms.n >= 14);
    for (size_t fi = 0; fi < forms.n; fi++) {
      const ref_form *f = &forms.f[fi];
      unsigned char t[1024];
      size_t n = 0;
      memcpy(t + n, "a=", 2), n += 2;
      memcpy(t + n, f->b, f->len), n += f->len;
      memcpy(t + n, " b\nc=", 5), n += 5;
      memcpy(t + n, f->b, f->len / 2), n += f->len / 2; /* an unfinished form: not a secret */
      memcpy(t + n, "\n", 1), n += 1;
      CHECK(ref_contains(f, t, n));
      size_t en;
      unsigned char *expect = ref_mask(&forms, t, n, &en);
      size_t on;
      char *once = run_once(set, t, n, &on);
      if (!same(once, on, expect, en)) {
        CHECK(!"one write differs from the reference");
        show_diff(t, n, once, on, expect, en);
      }
      for (size_t k = 0; k < forms.n; k++) CHECK(!ref_contains(&forms.f[k], (unsigned char *)once, on));
      for (size_t i = 0; i <= n; i++) {
        size_t cuts[2] = {i, 0}, ln;
        char *o = run_cuts(set, t, n, cuts, 1, &ln, false);
        if (!same(o, ln, once, on)) {
          CHECK(!"two writes differ from one");
          show("input", t, n);
          show("got", o, ln);
          free(o);
          break;
        }
        free(o);
        for (size_t j = i; j <= n; j++) {
          cuts[1] = j;
          o = run_cuts(set, t, n, cuts, 2, &ln, false);
          if (!same(o, ln, once, on)) {
            CHECK(!"three writes differ from one");
            show("input", t, n);
            show("got", o, ln);
            j = n;
            i = n;
          }
          free(o);
        }
      }
      free(once);
      free(expect);
    }
    ref_forms_free(&forms);
    hg_redact_set_free(set);
  }
}

/* The concrete encodings a user would meet, spelled out. */
static void test_known_encodings(void) {
  static const char *const secrets[] = {"s3cr3t/Tok+en"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  static const char *const texts[] = {
      "s3cr3t/Tok+en",
      "czNjcjN0L1RvaytlbiA=",                 /* base64("s3cr3t/Tok+en ") */
      "eHlzM2NyM3QvVG9rK2Vu",                 /* base64("xys3cr3t/Tok+en") */
      "dXNlcjpzM2NyM3QvVG9rK2Vu",             /* base64("user:s3cr3t/Tok+en"): basic auth */
      "s3cr3t%2FTok%2Ben", "s3cr3t%2fTok%2ben", "s3cr3t%2fTok%2Ben",
      "{\"p\":\"s3cr3t\\/Tok+en\"}",
  };
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    size_t on;
    char *o = run_once(set, texts[i], strlen(texts[i]), &on);
    CHECK(strstr(o, "[REDACTED]") != NULL);
    CHECK(strstr(o, "Tok") == NULL);
    if (!strstr(o, "[REDACTED]")) show("not masked", texts[i], strlen(texts[i]));
    free(o);
  }
  /* Only hex digits of a form are case-blind: the secret itself is matched exactly. */
  static const char *const exact[] = {"Beef12Cafe"};
  hg_redact_set *set2 = set_of(exact, 1, NULL);
  size_t on;
  char *o = run_once(set2, "beef12cafe BEEF12CAFE Beef12Cafe", 32, &on);
  CHECK_EQ_STR(o, "beef12cafe BEEF12CAFE [REDACTED]");
  free(o);
  hg_redact_set_free(set2);
  hg_redact_set_free(set);
}

static void test_short_secret_refused(void) {
  hg_redact_set *set;
  hg_err err = {0};
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  CHECK_EQ_INT(hg_redact_set_add(set, "12345", 5, &err), HG_REDACT_TOO_SHORT);
  CHECK_EQ_INT(hg_redact_set_add(set, "", 0, &err), HG_REDACT_TOO_SHORT);
  CHECK_EQ_INT(hg_redact_set_count(set), 0);
  CHECK_EQ_INT(hg_redact_set_add(set, "123456", 6, &err), 0);
  CHECK_EQ_INT(hg_redact_set_add(set, "123456", 6, &err), 0); /* a repeat counts once */
  CHECK_EQ_INT(hg_redact_set_count(set), 1);
  size_t on;
  char *o = run_once(set, "pin 12345 code 123456.", 22, &on);
  CHECK_EQ_STR(o, "pin 12345 code [REDACTED].");
  free(o);
  char *big = calloc(HG_REDACT_MAX_LEN + 1, 1);
  memset(big, 'x', HG_REDACT_MAX_LEN + 1);
  CHECK_EQ_INT(hg_redact_set_add(set, big, HG_REDACT_MAX_LEN + 1, &err), HG_ETOOBIG);
  CHECK(strstr(err.msg, "xxxxxx") == NULL);
  free(big);
  hg_redact_set_free(set);
}

static void test_overlaps_merge(void) {
  static const char *const secrets[] = {"abcdefgh", "efghijkl", "zzzzzz"};
  hg_redact_set *set = set_of(secrets, 3, NULL);
  size_t on;
  char *o = run_once(set, "<abcdefghijkl>", 14, &on);
  CHECK_EQ_STR(o, "<[REDACTED]>");
  free(o);
  o = run_once(set, "<abcdefghabcdefgh>", 18, &on); /* touching */
  CHECK_EQ_STR(o, "<[REDACTED]>");
  free(o);
  o = run_once(set, "<abcdefgh abcdefgh>", 19, &on);
  CHECK_EQ_STR(o, "<[REDACTED] [REDACTED]>");
  free(o);
  o = run_once(set, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz!", 38, &on);
  CHECK_EQ_STR(o, "[REDACTED]!");
  free(o);
  /* One secret inside another, ending later than an earlier match. */
  static const char *const nested[] = {"XbcdefYbcdefZ", "bcdefY", "cdefZq"};
  hg_redact_set *set2 = set_of(nested, 3, NULL);
  o = run_once(set2, "aXbcdefYbcdefZqr", 16, &on);
  CHECK_EQ_STR(o, "a[REDACTED]r");
  free(o);
  hg_redact_set_free(set2);
  hg_redact_set_free(set);
}

/* Bytes that cannot begin a match leave at once; a possible beginning waits for more. */
static void test_holds_only_possible_prefixes(void) {
  static const char *const secrets[] = {"SECRET-VALUE"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  sink s = {0};
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, sink_emit, &s, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "hello world\n", 12, 1, NULL), 0);
  CHECK_EQ_INT(s.out.len, 12);
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "x SECRET-", 9, 2, NULL), 0);
  CHECK_EQ_INT(s.out.len, 14);
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 7);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "VALUE", 5, 3, NULL), 0);
  /* The match could still grow into a touching one: nothing new yet. */
  CHECK_EQ_INT(s.out.len, 14);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, " y SECR", 7, 4, NULL), 0);
  CHECK_EQ_STR(s.out.data, "hello world\nx [REDACTED] y ");
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 4);
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  CHECK_EQ_STR(s.out.data, "hello world\nx [REDACTED] y SECR");
  hg_redact_scanner_free(sc);
  sink_free(&s);
  hg_redact_set_free(set);
}

/* The end of a write that only looks like a secret's beginning with other letter case, where
 * the secret's case counts, is not held back: it can never become a match. */
static void test_lookalike_at_write_end_not_held(void) {
  static const char *const secrets[] = {"BEEFtoken-12345"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  sink s = {0};
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, sink_emit, &s, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "beeftoken-123", 13, 1, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 0);
  CHECK_EQ_INT(s.out.len, 13);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, " BEEFtoken-123", 14, 2, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 13);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "45\n", 3, 3, NULL), 0);
  CHECK_EQ_STR(s.out.data, "beeftoken-123 [REDACTED]\n");
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  hg_redact_scanner_free(sc);
  sink_free(&s);
  hg_redact_set_free(set);
}

typedef struct tsrec {
  char text[64][32];
  int64_t ts[64];
  size_t n;
} tsrec;

static int ts_emit(void *ud, const char *p, size_t n, int64_t ts) {
  tsrec *r = ud;
  if (r->n < 64 && n < 32) {
    memcpy(r->text[r->n], p, n);
    r->text[r->n][n] = 0;
    r->ts[r->n++] = ts;
  }
  return 0;
}

static void test_timestamps_travel_with_bytes(void) {
  static const char *const secrets[] = {"TOPSECRET"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  tsrec r = {0};
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, ts_emit, &r, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "a TOP", 5, 100, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "SEC", 3, 200, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "RET b\nTO", 8, 300, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "P", 1, 400, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  CHECK_EQ_INT(r.n, 5);
  CHECK_EQ_STR(r.text[0], "a ");
  CHECK_EQ_INT(r.ts[0], 100);
  CHECK_EQ_STR(r.text[1], "[REDACTED]");
  CHECK_EQ_INT(r.ts[1], 100); /* when its first byte was read */
  CHECK_EQ_STR(r.text[2], " b\n");
  CHECK_EQ_INT(r.ts[2], 300);
  CHECK_EQ_STR(r.text[3], "TO");
  CHECK_EQ_INT(r.ts[3], 300);
  CHECK_EQ_STR(r.text[4], "P");
  CHECK_EQ_INT(r.ts[4], 400);
  hg_redact_scanner_free(sc);
  hg_redact_set_free(set);
}

static void test_multiline_secret(void) {
  static const char *const secrets[] = {"-----BEGIN KEY-----\nMIIEvQIBADAN\n-----END KEY-----"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  const char *t = "key:\n-----BEGIN KEY-----\nMIIEvQIBADAN\n-----END KEY-----\ndone\n";
  size_t n = strlen(t);
  for (size_t i = 0; i <= n; i++) {
    size_t cut = i, on;
    char *o = run_cuts(set, t, n, &cut, 1, &on, false);
    CHECK_EQ_STR(o, "key:\n[REDACTED]\ndone\n");
    free(o);
  }
  hg_redact_set_free(set);
}

/* A mask line takes effect for the very next byte, even within the same write; nothing before
 * it is masked. */
static void test_add_midstream_same_write(void) {
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  const char *t = "early tok3n-value\nhangar_mask tok3n-value  \nlate tok3n-value\r"
                  "b64 dG9rM24tdmFsdWU=\r\nend\n";
  size_t on;
  char *o = run_cuts(set, t, strlen(t), NULL, 0, &on, true);
  CHECK_EQ_STR(o, "early tok3n-value\nhangar_mask tok3n-value  \nlate [REDACTED]\r"
                  "b64 [REDACTED]\r\nend\n");
  free(o);
  CHECK_EQ_INT(hg_redact_set_count(set), 1);
  hg_redact_set_free(set);
}

typedef struct chain {
  hg_redact_set *set;
  hg_buf out;
} chain;

static int chain_line(void *ud, const char *text, size_t len, bool partial, int64_t ts) {
  chain *c = ud;
  if (!partial && len > 12 && memcmp(text, "hangar_mask ", 12) == 0) {
    hg_redact_set_add(c->set, text + 12, len - 12, NULL);
    return 0; /* a mask line is not logged */
  }
  hg_buf_append(&c->out, text, len);
  hg_buf_appendc(&c->out, '|');
  return 0;
}

static void test_add_midstream_through_framer(void) {
  chain c = {0};
  CHECK_EQ_INT(hg_redact_set_new(&c.set, NULL), 0);
  hg_framer fr;
  CHECK_EQ_INT(hg_framer_init(&fr, chain_line, &c), 0);
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, c.set, hg_framer_emit, &fr, NULL), 0);
  const char *t = "a pw=Zq9-x8wv\r\nhangar_mask Zq9-x8wv\r\npw=Zq9-x8wv json=\"Zq9-x8wv\"\nZq9-x8";
  CHECK_EQ_INT(hg_redact_scanner_write(sc, t, strlen(t), 1, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "wv.", 3, 2, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  CHECK_EQ_INT(hg_framer_finish(&fr), 0);
  CHECK_EQ_STR(c.out.data, "a pw=Zq9-x8wv|pw=[REDACTED] json=\"[REDACTED]\"|[REDACTED].|");
  hg_redact_scanner_free(sc);
  hg_framer_free(&fr);
  hg_buf_free(&c.out);
  hg_redact_set_free(c.set);
}

/* A secret registered by another stream applies to what this one still holds. */
static void test_add_from_elsewhere_rescans_held(void) {
  static const char *const secrets[] = {"prefix-one"};
  hg_redact_set *set = set_of(secrets, 1, NULL);
  sink s = {0};
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, sink_emit, &s, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "x prefix-", 9, 1, NULL), 0);
  CHECK_EQ_STR(s.out.data, "x ");
  CHECK_EQ_INT(hg_redact_scanner_held(sc), 7);
  CHECK_EQ_INT(hg_redact_set_add(set, "prefix-two", 10, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "two y", 5, 2, NULL), 0);
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, NULL), 0);
  CHECK_EQ_STR(s.out.data, "x [REDACTED] y");
  hg_redact_scanner_free(sc);
  sink_free(&s);
  hg_redact_set_free(set);
}

static void random_secret(unsigned char *s, size_t *len, unsigned char (*prev)[64],
                          const size_t *prevlen, size_t nprev) {
  size_t kind = rnd_below(5);
  size_t n = 6 + rnd_below(kind == 4 ? 4 : 20);
  static const char small[] = "ab\n";
  static const char printable[] = "abcdefABCDEF0123456789 /\"\\+=%<>&~._-";
  for (size_t i = 0; i < n; i++) {
    switch (kind) {
      case 0: s[i] = (unsigned char)rnd(); break;
      case 1: s[i] = (unsigned char)small[rnd_below(3)]; break;
      case 2: s[i] = (unsigned char)printable[rnd_below(sizeof printable - 1)]; break;
      default: s[i] = (unsigned char)("abcdef\r\t\b\f\x01"[rnd_below(11)]); break;
    }
  }
  /* Overlap an earlier secret: reuse its tail as our head. */
  if (nprev && rnd_below(3) == 0) {
    size_t j = rnd_below(nprev), take = 1 + rnd_below(prevlen[j] - 1);
    if (take > n) take = n;
    memcpy(s, prev[j] + prevlen[j] - take, take);
  }
  *len = n;
}

/* Random secrets and texts made of their forms, near misses and noise, cut at random: the
 * streaming result is always the reference's. */
static void test_random_against_reference(void) {
  rng_state = 0x9E3779B97F4A7C15ull;
  size_t failures = 0;
  for (int iter = 0; iter < 3000 && failures < 3; iter++) {
    unsigned char secrets[4][64];
    size_t lens[4], ns = 1 + rnd_below(4);
    hg_redact_set *set;
    CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
    ref_forms forms = {0};
    for (size_t i = 0; i < ns; i++) {
      random_secret(secrets[i], &lens[i], secrets, lens, i);
      hg_redact_set_add(set, secrets[i], lens[i], NULL);
      ref_forms_add(&forms, secrets[i], lens[i]);
    }
    unsigned char t[8192];
    size_t n = 0, pieces = rnd_below(12);
    for (size_t p = 0; p < pieces; p++) {
      size_t what = rnd_below(5);
      if (what == 0) {
        for (size_t k = rnd_below(10); k > 0; k--) t[n++] = (unsigned char)"ab\n\r xyZ\xc3"[rnd_below(10)];
      } else if (what == 4) {
        /* a long stretch that looks like base64, where the filter does its skipping */
        static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (size_t k = 20 + rnd_below(200); k > 0; k--) t[n++] = (unsigned char)b64[rnd_below(64)];
      } else {
        const ref_form *f = &forms.f[rnd_below(forms.n)];
        size_t len = what == 1 ? 1 + rnd_below(f->len) : f->len; /* sometimes only a prefix */
        if (what == 3 && len > 2) { /* or a suffix */
          size_t from = rnd_below(len - 1);
          memcpy(t + n, f->b + from, len - from);
          n += len - from;
          continue;
        }
        for (size_t j = 0; j < len; j++) {
          unsigned char c = f->b[j];
          if (f->ci[j] && rnd_below(2)) c = (unsigned char)(c >= 'a' ? c - 32 : c >= 'A' ? c + 32 : c);
          t[n++] = c;
        }
      }
    }
    size_t en;
    unsigned char *expect = ref_mask(&forms, t, n, &en);
    size_t cuts[8], nc = rnd_below(8);
    for (size_t i = 0; i < nc; i++) cuts[i] = rnd_below(n + 1);
    for (size_t i = 1; i < nc; i++)
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t x = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = x;
      }
    size_t on;
    char *o = run_cuts(set, t, n, cuts, nc, &on, false);
    if (!same(o, on, expect, en)) {
      failures++;
      CHECK(!"streaming result differs from the reference");
      fprintf(stderr, "  case %d\n", iter);
      for (size_t i = 0; i < ns; i++) show("secret", secrets[i], lens[i]);
      show_diff(t, n, o, on, expect, en);
    }
    free(o);
    free(expect);
    ref_forms_free(&forms);
    hg_redact_set_free(set);
  }
}

/* Mask lines at random places: cutting the input anywhere never changes what is masked. */
static void test_random_mask_lines(void) {
  rng_state = 0x0123456789ABCDEFull;
  for (int iter = 0; iter < 1500; iter++) {
    hg_redact_set *set;
    char secrets[3][16];
    for (size_t i = 0; i < 3; i++) {
      size_t n = 6 + rnd_below(8);
      for (size_t j = 0; j < n; j++) secrets[i][j] = "qwxz0189"[rnd_below(8)];
      secrets[i][n] = 0;
    }
    char t[2048];
    size_t n = 0;
    for (size_t p = rnd_below(10); p > 0; p--) {
      const char *s = secrets[rnd_below(3)];
      switch (rnd_below(4)) {
        case 0: n += (size_t)sprintf(t + n, "\nhangar_mask %s\n", s); break;
        case 1: n += (size_t)sprintf(t + n, "%s", s); break;
        case 2: n += (size_t)sprintf(t + n, "%.3s", s); break;
        default: t[n++] = "\n\r x"[rnd_below(4)]; break;
      }
    }
    size_t on, cn;
    CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
    char *once = run_cuts(set, t, n, NULL, 0, &on, true);
    hg_redact_set_free(set);
    size_t cuts[6], nc = rnd_below(6);
    for (size_t i = 0; i < nc; i++) cuts[i] = rnd_below(n + 1);
    for (size_t i = 1; i < nc; i++)
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t x = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = x;
      }
    CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
    char *cut = run_cuts(set, t, n, cuts, nc, &cn, true);
    hg_redact_set_free(set);
    if (!same(once, on, cut, cn)) {
      CHECK(!"mask lines act differently depending on write boundaries");
      show("input", t, n);
      show("once", once, on);
      show("cut", cut, cn);
      iter = 1 << 30;
    }
    /* After the first mask line of a secret, it never appears again. */
    for (size_t i = 0; i < 3; i++) {
      char line[64];
      snprintf(line, sizeof line, "hangar_mask %s\n", secrets[i]);
      char *m = strstr(once, line);
      while (m && m != once && m[-1] != '\n' && m[-1] != '\r') m = strstr(m + 1, line);
      if (!m) continue;
      char *after = m + strlen(line);
      /* registered at the end of that line: every later byte is masked */
      if (strstr(after, secrets[i])) {
        CHECK(!"a secret printed after its mask line");
        show("input", t, n);
        show("once", once, on);
        iter = 1 << 30;
      }
    }
    free(once);
    free(cut);
  }
}

static void test_thousand_secrets(void) {
  rng_state = 42;
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  ref_forms forms = {0};
  static unsigned char secrets[1000][40];
  static size_t lens[1000];
  for (size_t i = 0; i < 1000; i++) {
    lens[i] = 8 + rnd_below(24);
    for (size_t j = 0; j < lens[i]; j++)
      secrets[i][j] = (unsigned char)"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[rnd_below(64)];
    CHECK_EQ_INT(hg_redact_set_add(set, secrets[i], lens[i], NULL), 0);
    ref_forms_add(&forms, secrets[i], lens[i]);
  }
  CHECK_EQ_INT(hg_redact_set_count(set), 1000);
  static unsigned char t[6000];
  size_t n = 0;
  while (n < sizeof t - 200) {
    const ref_form *f = &forms.f[rnd_below(forms.n)];
    memcpy(t + n, "log line: ", 10);
    n += 10;
    memcpy(t + n, f->b, f->len);
    n += f->len;
    t[n++] = '\n';
  }
  size_t en, on;
  unsigned char *expect = ref_mask(&forms, t, n, &en);
  size_t cuts[5] = {1, 100, 1000, 2500, 4000};
  char *o = run_cuts(set, t, n, cuts, 5, &on, false);
  CHECK(same(o, on, expect, en));
  CHECK(strstr(o, "log line: [REDACTED]\n") != NULL);
  free(o);
  free(expect);
  ref_forms_free(&forms);
  hg_redact_set_free(set);
}

/* Checks t against the reference, in one write, in two at every offset and in three at every
 * first offset with a few second ones; prints the first difference. */
static void check_all_splits(hg_redact_set *set, const ref_forms *forms, const unsigned char *t,
                             size_t n) {
  size_t en, on;
  unsigned char *expect = ref_mask(forms, t, n, &en);
  char *once = run_once(set, t, n, &on);
  if (!same(once, on, expect, en)) {
    CHECK(!"one write differs from the reference");
    show_diff(t, n, once, on, expect, en);
  }
  for (size_t i = 0; i <= n; i++) {
    static const size_t later[] = {0, 1, 2, 5, 13, 31};
    for (size_t k = 0; k < sizeof later / sizeof later[0]; k++) {
      size_t cuts[2] = {i, i + later[k]}, ln;
      if (cuts[1] > n) break;
      char *o = run_cuts(set, t, n, cuts, k ? 2 : 1, &ln, false);
      bool ok = same(o, ln, expect, en);
      if (!ok) {
        CHECK(!"split writes differ from the reference");
        fprintf(stderr, "  cut at %zu and %zu\n", cuts[0], k ? cuts[1] : n);
        show("got", o, ln);
        show("expected", expect, en);
      }
      free(o);
      if (!ok) i = n + 1;
    }
  }
  free(once);
  free(expect);
}

/* Secrets that share long beginnings, that begin others, and whose endings begin others: the
 * trie branches deep down and its failure links lead from one long chain into the middle of
 * another. Among a few hundred unrelated secrets (so the first levels of the trie are full),
 * each is still found whatever the write boundaries, and a near miss that leaves a shared
 * beginning at its last byte is not masked. */
static void test_shared_prefixes_every_split(void) {
  static const char *const special[] = {
      "shared-beginning-of-a-key-0001", "shared-beginning-of-a-key-0002",
      "shared-beginning-of-a-key", /* begins both above */
      "of-a-key-0001-and-more",    /* begins inside the first: a deep failure link */
      "key-0002x",
  };
  rng_state = 7;
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  ref_forms forms = {0};
  for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) {
    CHECK_EQ_INT(hg_redact_set_add(set, special[i], strlen(special[i]), NULL), 0);
    ref_forms_add(&forms, (const unsigned char *)special[i], strlen(special[i]));
  }
  static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  for (size_t i = 0; i < 300; i++) {
    unsigned char r[24];
    size_t len = 12 + rnd_below(12);
    for (size_t j = 0; j < len; j++) r[j] = (unsigned char)alnum[rnd_below(sizeof alnum - 1)];
    CHECK_EQ_INT(hg_redact_set_add(set, r, len, NULL), 0);
    ref_forms_add(&forms, r, len);
  }
  static const char *const texts[] = {
      "a shared-beginning-of-a-key-0001 b shared-beginning-of-a-key-0003 c\n",
      "shared-beginning-of-a-key-000shared-beginning-of-a-key-0002-and-more\n",
      "x shared-beginning-of-a-key-0001-and-more y of-a-key-0001-and-mor\n",
      "shared-beginning-of-a-kez key-0002key-0002x shared-beginning-of-a-ke",
  };
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++)
    check_all_splits(set, &forms, (const unsigned char *)texts[k], strlen(texts[k]));
  /* The same keys base64-encoded, by the standard alphabet, inside other base64. */
  static const char *const enc[] = {
      "c2hhcmVkLWJlZ2lubmluZy1vZi1hLWtleS0wMDAx", /* base64("shared-beginning-of-a-key-0001") */
  };
  unsigned char t[256];
  size_t n = 0;
  memcpy(t + n, "QUJD", 4), n += 4;
  memcpy(t + n, enc[0], strlen(enc[0])), n += strlen(enc[0]);
  memcpy(t + n, "=\nc2hhcmVkLWJlZ2lubmluZy1vZi1hLWtl\n", 35), n += 35;
  check_all_splits(set, &forms, t, n);
  size_t on;
  char *o = run_once(set, t, n, &on);
  CHECK(strstr(o, "\nc2hhcmVkLWJlZ2lubmluZy1vZi1hLWtl\n") != NULL); /* a beginning only */
  CHECK(strstr(o, "c2hhcmVkLWJlZ2lubmluZy1vZi1hLWtleS0wMDAx") == NULL);
  free(o);
  ref_forms_free(&forms);
  hg_redact_set_free(set);
}

/* The case of the letters a-f of a secret is checked where a match ends, also past the 32nd
 * such letter, for two secrets that differ only in it, and for one that another begins. */
static void test_letter_case_checked(void) {
  static const char *const secrets[] = {
      "aBcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDeFx", /* 36 letters a-f */
      "deadBEEFcafe", "DEADbeefCAFE", "abcdefAB", "abcdefABcd",
  };
  ref_forms forms = {0};
  hg_redact_set *set = set_of(secrets, sizeof secrets / sizeof secrets[0], &forms);
  static const char *const texts[] = {
      "1 aBcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDeFx 2 aBcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDEFx\n",
      "3 abcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDeFx\n",
      "deadBEEFcafe DEADbeefCAFE deadbeefcafe DEADBEEFCAFE deadBEEFcafE\n",
      "abcdefab abcdefAB abcdefABcd abcdefABCD abcdefAb\n",
  };
  static const char *const expect[] = {
      "1 [REDACTED] 2 aBcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDEFx\n",
      "3 abcDeFaBcDeFaBcDeFaBcDeFaBcDeFaBcDeFx\n",
      "[REDACTED] [REDACTED] deadbeefcafe DEADBEEFCAFE deadBEEFcafE\n",
      "abcdefab [REDACTED] [REDACTED] [REDACTED]CD abcdefAb\n",
  };
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
    size_t on;
    char *o = run_once(set, texts[k], strlen(texts[k]), &on);
    CHECK_EQ_STR(o, expect[k]);
    free(o);
    check_all_splits(set, &forms, (const unsigned char *)texts[k], strlen(texts[k]));
  }
  ref_forms_free(&forms);
  hg_redact_set_free(set);
}

/* Some 1,500 secrets over a few characters, so that they share beginnings at every depth,
 * with characters whose encodings carry hex digits of either case: random texts of their
 * forms, pieces and noise, cut at random, are masked as the reference masks them. */
static void test_many_secrets_random_against_reference(void) {
  rng_state = 0xC0FFEEull;
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  ref_forms forms = {0};
  static const char alpha[] = "abAB01/<";
  for (size_t i = 0; i < 1500; i++) {
    unsigned char r[32];
    size_t len = 6 + rnd_below(20);
    for (size_t j = 0; j < len; j++) r[j] = (unsigned char)alpha[rnd_below(sizeof alpha - 1)];
    CHECK_EQ_INT(hg_redact_set_add(set, r, len, NULL), 0);
    ref_forms_add(&forms, r, len);
  }
  CHECK(hg_redact_set_count(set) > 1400);
  size_t failures = 0;
  for (int iter = 0; iter < 6 && failures == 0; iter++) {
    unsigned char t[2500];
    size_t n = 0;
    while (n < sizeof t - 400) {
      size_t what = rnd_below(4);
      if (what == 0) {
        for (size_t k = 1 + rnd_below(12); k > 0; k--)
          t[n++] = (unsigned char)"abAB01/< \n%"[rnd_below(11)];
        continue;
      }
      const ref_form *f = &forms.f[rnd_below(forms.n)];
      size_t len = what == 1 ? 1 + rnd_below(f->len) : f->len;
      for (size_t j = 0; j < len; j++) {
        unsigned char c = f->b[j];
        if (f->ci[j] && rnd_below(2)) c = (unsigned char)(c >= 'a' ? c - 32 : c >= 'A' ? c + 32 : c);
        t[n++] = c;
      }
    }
    size_t en, on;
    unsigned char *expect = ref_mask(&forms, t, n, &en);
    size_t cuts[10], nc = rnd_below(10);
    for (size_t i = 0; i < nc; i++) cuts[i] = rnd_below(n + 1);
    for (size_t i = 1; i < nc; i++)
      for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
        size_t x = cuts[j];
        cuts[j] = cuts[j - 1];
        cuts[j - 1] = x;
      }
    char *o = run_cuts(set, t, n, cuts, nc, &on, false);
    if (!same(o, on, expect, en)) {
      failures++;
      CHECK(!"streaming result differs from the reference");
      fprintf(stderr, "  iteration %d\n", iter);
      show_diff(t, n, o, on, expect, en);
    }
    free(o);
    free(expect);
  }
  ref_forms_free(&forms);
  hg_redact_set_free(set);
}

static int failing_emit(void *ud, const char *p, size_t n, int64_t ts) {
  return HG_EIO;
}

static void test_consumer_error_stops(void) {
  hg_redact_set *set;
  CHECK_EQ_INT(hg_redact_set_new(&set, NULL), 0);
  hg_redact_scanner *sc;
  CHECK_EQ_INT(hg_redact_scanner_new(&sc, set, failing_emit, NULL, NULL), 0);
  hg_err err = {0};
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "abc\n", 4, 1, &err), HG_EIO);
  CHECK_EQ_INT(hg_redact_scanner_write(sc, "abc\n", 4, 1, &err), HG_EIO);
  CHECK_EQ_INT(hg_redact_scanner_finish(sc, &err), HG_EIO);
  hg_redact_scanner_free(sc);
  hg_redact_set_free(set);
}

TEST_MAIN(T(test_every_form_every_split), T(test_known_encodings), T(test_short_secret_refused),
          T(test_overlaps_merge), T(test_holds_only_possible_prefixes),
          T(test_timestamps_travel_with_bytes), T(test_multiline_secret),
          T(test_add_midstream_same_write), T(test_add_midstream_through_framer),
          T(test_add_from_elsewhere_rescans_held), T(test_random_against_reference),
          T(test_random_mask_lines), T(test_thousand_secrets), T(test_shared_prefixes_every_split),
          T(test_letter_case_checked), T(test_lookalike_at_write_end_not_held),
          T(test_many_secrets_random_against_reference), T(test_consumer_error_stops))
