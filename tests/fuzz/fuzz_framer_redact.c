/* libFuzzer target: arbitrary secrets, text and write boundaries through redactor and framer. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/framer.h"
#include "pipeline/redact.h"
#include "redact_ref.h"

/*
 * Input layout (every field optional; missing bytes read as 0):
 *   flags       bit 0..1: number of secrets registered up front; bit 2: act on hangar_mask
 *               lines; bit 3: the framer is also fed the raw text directly; bit 4: also
 *               register a crowd of secrets made from those (their beginnings, then a few
 *               other bytes), so the automaton branches deep down and the filter is full
 *   per secret  one length byte (low 6 bits used), then that many bytes
 *   ncuts       one byte (at most 15 used), then two bytes per cut (offsets, taken modulo)
 *   text        the rest; 0xFE followed by a selector byte s inserts the form s of a secret
 *               (or, with s's top bit set, half of it), so forms occur without being guessed
 * Invariants checked:
 *   - streaming through the cut points gives the same redacted bytes and the same lines as one
 *     write;
 *   - no secret registered up front survives outside a [REDACTED] the scanner emitted;
 *   - without mask lines, the redacted bytes are the brute-force reference's;
 *   - every line is valid UTF-8, a C string, at most HG_FRAMER_MAX_TEXT bytes.
 */

typedef struct reader {
  const uint8_t *p;
  size_t n;
} reader;

static uint8_t get(reader *r) {
  if (!r->n) return 0;
  r->n--;
  return *r->p++;
}

typedef struct out {
  uint8_t *b, *redacted; /* bytes emitted; per byte, whether it came in a [REDACTED] piece */
  size_t len, cap, rcap;
  uint8_t *lines;        /* every line as: partial flag, 4-byte length, text */
  size_t llen, lcap;
  hg_redact_set *set;
  bool masks;
  hg_framer fr;
} out;

static void need(uint8_t **p, size_t *cap, size_t want) {
  if (want <= *cap) return;
  size_t c = *cap ? *cap : 256;
  while (c < want) c *= 2;
  *p = realloc(*p, c);
  *cap = c;
}

static bool valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t k;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c == 0) return false;
    if (c < 0x80) k = 1;
    else if (c >= 0xC2 && c <= 0xDF) k = 2;
    else if (c == 0xE0) k = 3, lo = 0xA0;
    else if (c == 0xED) k = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) k = 3;
    else if (c == 0xF0) k = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) k = 4;
    else if (c == 0xF4) k = 4, hi = 0x8F;
    else return false;
    if (i + k > n) return false;
    for (size_t j = 1; j < k; j++)
      if (s[i + j] < (j == 1 ? lo : 0x80) || s[i + j] > (j == 1 ? hi : 0xBF)) return false;
    i += k;
  }
  return true;
}

static int on_line(void *ud, const char *text, size_t len, bool partial, int64_t ts) {
  out *o = ud;
  if (text[len] != '\0' || len > HG_FRAMER_MAX_TEXT || !valid_utf8((const unsigned char *)text, len))
    __builtin_trap();
  if (o->masks && !partial && len > 12 && memcmp(text, "hangar_mask ", 12) == 0) {
    size_t e = len;
    while (e > 12 && (text[e - 1] == ' ' || text[e - 1] == '\t')) e--;
    hg_redact_set_add(o->set, text + 12, e - 12, NULL);
  }
  need(&o->lines, &o->lcap, o->llen + 5 + len);
  o->lines[o->llen] = partial;
  uint32_t l32 = (uint32_t)len;
  memcpy(o->lines + o->llen + 1, &l32, 4);
  memcpy(o->lines + o->llen + 5, text, len);
  o->llen += 5 + len;
  return 0;
}

static int on_emit(void *ud, const char *p, size_t n, int64_t ts) {
  out *o = ud;
  for (size_t i = 0; i + 1 < n; i++)
    if (p[i] == '\n' || p[i] == '\r') __builtin_trap(); /* a terminator ends its emit call */
  need(&o->b, &o->cap, o->len + n);
  need(&o->redacted, &o->rcap, o->len + n);
  memcpy(o->b + o->len, p, n);
  /* The mask text arrives as a piece of its own (so does the same text printed by the run if
   * it happens to be written alone: then this check is merely more lenient). */
  memset(o->redacted + o->len, n == 10 && memcmp(p, HG_REDACT_TEXT, 10) == 0, n);
  o->len += n;
  return hg_framer_write(&o->fr, p, n, ts);
}

static void out_free(out *o) {
  free(o->b);
  free(o->redacted);
  free(o->lines);
  hg_framer_free(&o->fr);
}

enum { CROWD = 120 };

/* Runs text through a fresh set holding the first nsec secrets and the crowd, cut at cuts. */
static void run(out *o, uint8_t (*sec)[256], const size_t *slen, size_t nsec,
                uint8_t (*crowd)[72], const size_t *clen, size_t ncrowd, bool masks,
                const uint8_t *text, size_t n, const size_t *cuts, size_t ncuts) {
  memset(o, 0, sizeof *o);
  if (hg_redact_set_new(&o->set, NULL) || hg_framer_init(&o->fr, on_line, o)) abort();
  o->masks = masks;
  for (size_t i = 0; i < nsec; i++) hg_redact_set_add(o->set, sec[i], slen[i], NULL);
  for (size_t i = 0; i < ncrowd; i++) hg_redact_set_add(o->set, crowd[i], clen[i], NULL);
  hg_redact_scanner *sc;
  if (hg_redact_scanner_new(&sc, o->set, on_emit, o, NULL)) abort();
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t at = i < ncuts ? cuts[i] : n;
    if (hg_redact_scanner_write(sc, text + prev, at - prev, (int64_t)i, NULL)) abort();
    prev = at;
  }
  if (hg_redact_scanner_finish(sc, NULL)) abort();
  if (hg_redact_scanner_held(sc) != 0) __builtin_trap();
  if (hg_framer_finish(&o->fr)) abort();
  hg_redact_scanner_free(sc);
  hg_redact_set_free(o->set);
  o->set = NULL;
}

/* The framer alone over the raw text, cut and whole. */
static void framer_alone(const uint8_t *text, size_t n, const size_t *cuts, size_t ncuts) {
  out a = {0}, b = {0};
  if (hg_framer_init(&a.fr, on_line, &a) || hg_framer_init(&b.fr, on_line, &b)) abort();
  hg_framer_write(&a.fr, text, n, 0);
  hg_framer_finish(&a.fr);
  size_t prev = 0;
  for (size_t i = 0; i <= ncuts; i++) {
    size_t at = i < ncuts ? cuts[i] : n;
    hg_framer_write(&b.fr, text + prev, at - prev, 0);
    prev = at;
  }
  hg_framer_finish(&b.fr);
  if (a.llen != b.llen || (a.llen && memcmp(a.lines, b.lines, a.llen) != 0)) __builtin_trap();
  out_free(&a);
  out_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static uint8_t sec[3][256];
  size_t slen[3];
  reader r = {data, size};
  uint8_t flags = get(&r);
  size_t nsec = flags & 3;
  if (nsec > 3) nsec = 3;
  bool masks = flags & 4;
  ref_forms forms = {0};
  for (size_t i = 0; i < nsec; i++) {
    slen[i] = get(&r) & 63; /* longer secrets find nothing new and make every run slower */
    for (size_t j = 0; j < slen[i]; j++) sec[i][j] = get(&r);
    if (slen[i] >= HG_REDACT_MIN_LEN) ref_forms_add(&forms, sec[i], slen[i]);
  }
  static uint8_t crowd[CROWD][72];
  size_t clen[CROWD], ncrowd = 0;
  for (size_t i = 0; flags & 16 && nsec && i < CROWD; i++) {
    size_t k = i % nsec, take = (i * 7 + 3) % (slen[k] + 1), len = take;
    memcpy(crowd[i], sec[k], take);
    crowd[i][len++] = (uint8_t)(i * 37 + 11);
    crowd[i][len++] = (uint8_t)('a' + i % 26);
    for (; len < HG_REDACT_MIN_LEN; len++) crowd[i][len] = (uint8_t)('0' + len);
    clen[ncrowd++] = len;
    ref_forms_add(&forms, crowd[i], len);
  }
  size_t ncuts = get(&r) & 15, rawcuts[15];
  for (size_t i = 0; i < ncuts; i++) rawcuts[i] = (size_t)get(&r) << 8 | get(&r);

  /* Inserted forms are bounded so that the brute-force reference stays quick; with a crowd
   * of secrets (some 2,000 forms), the whole text is. */
  const size_t max_text = ncrowd ? 1024 : 16384;
  uint8_t *text = malloc(r.n + max_text);
  size_t n = 0;
  while (r.n && (!ncrowd || n < max_text)) {
    uint8_t c = get(&r);
    if (c == 0xFE && forms.n) {
      uint8_t s = get(&r);
      const ref_form *f = &forms.f[(s & 0x7F) % forms.n];
      size_t len = s & 0x80 ? f->len / 2 : f->len;
      if (n + len > max_text) continue;
      memcpy(text + n, f->b, len);
      n += len;
    } else {
      text[n++] = c;
    }
  }
  size_t cuts[15];
  for (size_t i = 0; i < ncuts; i++) cuts[i] = n ? rawcuts[i] % (n + 1) : 0;
  for (size_t i = 1; i < ncuts; i++)
    for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
      size_t x = cuts[j];
      cuts[j] = cuts[j - 1];
      cuts[j - 1] = x;
    }

  out one, many;
  run(&one, sec, slen, nsec, crowd, clen, ncrowd, masks, text, n, NULL, 0);
  run(&many, sec, slen, nsec, crowd, clen, ncrowd, masks, text, n, cuts, ncuts);
  if (one.len != many.len || (one.len && memcmp(one.b, many.b, one.len) != 0)) __builtin_trap();
  if (one.llen != many.llen || (one.llen && memcmp(one.lines, many.lines, one.llen) != 0))
    __builtin_trap();

  /* No up-front secret outside a [REDACTED]. */
  for (size_t k = 0; k < nsec; k++) {
    if (slen[k] < HG_REDACT_MIN_LEN) continue;
    for (size_t i = 0; i + slen[k] <= many.len; i++) {
      if (memcmp(many.b + i, sec[k], slen[k]) != 0) continue;
      if (!memchr(many.redacted + i, 1, slen[k])) __builtin_trap();
    }
  }

  if (!masks) {
    size_t en;
    unsigned char *expect = ref_mask(&forms, text, n, &en);
    if (en != one.len || (en && memcmp(expect, one.b, en) != 0)) __builtin_trap();
    free(expect);
  }

  if (flags & 8) framer_alone(text, n, cuts, ncuts);

  out_free(&one);
  out_free(&many);
  ref_forms_free(&forms);
  free(text);
  return 0;
}
