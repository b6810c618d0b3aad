/* Line framing of one output stream into pieces of valid UTF-8 text. */
#include "pipeline/framer.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/err.h"

static const char replacement[3] = {(char)0xEF, (char)0xBF, (char)0xBD}; /* U+FFFD */

/* A buffer at most this large is kept between lines; a larger one (a long line) is freed
 * once its line ends. */
#define KEEP_BYTES 4096

int hg_framer_init(hg_framer *f, hg_framer_line_fn on_line, void *ud) {
  memset(f, 0, sizeof *f);
  f->on_line = on_line;
  f->ud = ud;
  return 0;
}

void hg_framer_free(hg_framer *f) {
  if (!f) return;
  free(f->buf);
  f->buf = NULL;
  f->cap = 0;
}

/* Room for n more bytes and the terminating NUL. */
static int reserve(hg_framer *f, size_t n) {
  size_t need = f->len + n + 1;
  if (need <= f->cap) return 0;
  size_t cap = f->cap ? f->cap : 256;
  while (cap < need) cap *= 2;
  if (cap > HG_FRAMER_MAX_TEXT + 1) cap = HG_FRAMER_MAX_TEXT + 1;
  char *p = realloc(f->buf, cap);
  if (!p) return f->failed = HG_ENOMEM;
  f->buf = p;
  f->cap = cap;
  return 0;
}

static int deliver(hg_framer *f, bool partial) {
  if (!f->buf && reserve(f, 0)) return HG_ENOMEM;
  f->buf[f->len] = '\0';
  int rc = f->on_line(f->ud, f->buf, f->len, partial, f->ts);
  f->len = 0;
  f->escapes = false;
  if (!partial && f->cap > KEEP_BYTES) hg_framer_free(f);
  if (rc < 0) f->failed = rc;
  return rc < 0 ? rc : 0;
}

/* Appends n bytes that must stay together (one character), starting a new piece first if they
 * do not fit. */
static int put(hg_framer *f, const char *p, size_t n, int64_t ts) {
  if (f->len + n > HG_FRAMER_MAX_TEXT) {
    int rc = deliver(f, true);
    if (rc) return rc;
    f->ts = ts;
  }
  if (reserve(f, n)) return HG_ENOMEM;
  memcpy(f->buf + f->len, p, n);
  f->len += n;
  return 0;
}

/* Appends a run of single-byte characters, splitting it into pieces as needed. */
static int put_run(hg_framer *f, const unsigned char *p, size_t n, int64_t ts) {
  while (n) {
    if (f->len == HG_FRAMER_MAX_TEXT) {
      int rc = deliver(f, true);
      if (rc) return rc;
      f->ts = ts;
      f->escapes = true; /* the run was looked at whole: for this piece, unknown */
    }
    size_t take = HG_FRAMER_MAX_TEXT - f->len;
    if (take > n) take = n;
    if (reserve(f, take)) return HG_ENOMEM;
    memcpy(f->buf + f->len, p, take);
    f->len += take;
    p += take;
    n -= take;
  }
  return 0;
}

static inline bool plain(unsigned char c) {
  return c != 0 && c < 0x80 && c != '\n' && c != '\r';
}

static inline bool escaped(unsigned char c) {
  return c < 0x20 || c == '"' || c == '\\';
}

#ifdef __SSE2__
/* The 16 bytes at p, a bit per byte: in *stop those that end a run of plain bytes (NUL, '\n',
 * '\r', 0x80 and above), in *esc those a JSON string escapes. */
static inline void classify16(const unsigned char *p, unsigned *stop, unsigned *esc) {
  const __m128i v = _mm_loadu_si128((const __m128i *)p);
  __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')),
                                        _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))),
                           _mm_cmpeq_epi8(v, _mm_setzero_si128()));
  /* min(v, 0x1F) == v exactly for the bytes up to 0x1F (unsigned) */
  __m128i e = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                        _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                           _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1F)), v));
  /* the sign bit of each byte is set for those of 0x80 and above */
  *stop = (unsigned)(_mm_movemask_epi8(s) | _mm_movemask_epi8(v));
  *esc = (unsigned)_mm_movemask_epi8(e);
}
#endif

/* The end of the run of bytes that are characters by themselves (ASCII other than NUL, '\n'
 * and '\r'): sixteen at a time with SSE2 (every x86-64 has it; this loop was the framer's
 * main cost), else eight at a time while it lasts. *esc is set when one of them is a byte JSON
 * escapes, found in the same pass. */
static size_t plain_run(const unsigned char *p, size_t i, size_t n, bool *esc) {
#ifdef __SSE2__
  unsigned seen = 0, stop, em;
  for (; i + 16 <= n; i += 16) {
    classify16(p + i, &stop, &em);
    if (stop) {
      unsigned at = (unsigned)__builtin_ctz(stop);
      *esc |= (seen | (em & ((1u << at) - 1))) != 0;
      return i + at;
    }
    seen |= em;
  }
  if (i < n && n >= 16) {
    /* The last few bytes (a line's end, usually) through one more load that overlaps bytes
     * already looked at, instead of one byte at a time. */
    size_t back = i - (n - 16);
    classify16(p + n - 16, &stop, &em);
    stop >>= back;
    em >>= back;
    size_t at = stop ? (size_t)__builtin_ctz(stop) : n - i;
    *esc |= (seen | (em & ((1u << at) - 1))) != 0;
    return i + at;
  }
  *esc |= seen != 0;
#endif
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  size_t from = i;
  while (i + 8 <= n) {
    uint64_t w;
    memcpy(&w, p + i, 8);
    uint64_t lf = w ^ 0x0A0A0A0A0A0A0A0Aull, cr = w ^ 0x0D0D0D0D0D0D0D0Dull;
    uint64_t bad = w | ((w - ones) & ~w) | ((lf - ones) & ~lf) | ((cr - ones) & ~cr);
    if (bad & highs) break;
    i += 8;
  }
  while (i < n && plain(p[i])) i++;
  for (size_t k = from; k < i && !*esc; k++) *esc = escaped(p[k]);
  return i;
}

static int end_line(hg_framer *f, int64_t ts) {
  if (f->nseq) {
    f->nseq = 0;
    int rc = put(f, replacement, 3, ts);
    if (rc) return rc;
  }
  if (!f->started) f->ts = ts;
  f->started = false;
  return deliver(f, false);
}

int hg_framer_write(hg_framer *f, const void *bytes, size_t len, int64_t ts) {
  const unsigned char *p = bytes;
  size_t i = 0;
  int rc = 0;
  if (f->failed) return f->failed;
  while (i < len && !rc) {
    unsigned char b = p[i];
    if (f->after_cr) {
      f->after_cr = false;
      if (b == '\n') {
        i++;
        continue;
      }
    }
    if (f->nseq) {
      if (b >= f->lo && b <= f->hi) {
        f->seq[f->nseq++] = b;
        f->lo = 0x80;
        f->hi = 0xBF;
        i++;
        if (f->nseq == f->need) {
          f->nseq = 0;
          rc = put(f, (const char *)f->seq, f->need, ts);
        }
        continue;
      }
      /* Cut short: the bytes so far are one ill-formed subsequence; b starts afresh. */
      f->nseq = 0;
      rc = put(f, replacement, 3, ts);
      continue;
    }
    if (b == '\n' || b == '\r') {
      rc = end_line(f, ts);
      f->after_cr = b == '\r';
      i++;
      continue;
    }
    if (!f->started) {
      f->started = true;
      f->ts = ts;
    }
    size_t j = plain_run(p, i, len, &f->escapes);
    if (j > i) {
      rc = put_run(f, p + i, j - i, ts);
      i = j;
      continue;
    }
    i++;
    if (b >= 0xC2 && b <= 0xDF) {
      f->need = 2, f->lo = 0x80, f->hi = 0xBF;
    } else if (b == 0xE0) {
      f->need = 3, f->lo = 0xA0, f->hi = 0xBF; /* no overlong forms */
    } else if (b == 0xED) {
      f->need = 3, f->lo = 0x80, f->hi = 0x9F; /* no surrogates */
    } else if (b >= 0xE1 && b <= 0xEF) {
      f->need = 3, f->lo = 0x80, f->hi = 0xBF;
    } else if (b == 0xF0) {
      f->need = 4, f->lo = 0x90, f->hi = 0xBF; /* no overlong forms */
    } else if (b >= 0xF1 && b <= 0xF3) {
      f->need = 4, f->lo = 0x80, f->hi = 0xBF;
    } else if (b == 0xF4) {
      f->need = 4, f->lo = 0x80, f->hi = 0x8F; /* nothing above U+10FFFF */
    } else {
      /* NUL, a stray continuation byte, C0, C1 or F5..FF. */
      rc = put(f, replacement, 3, ts);
      continue;
    }
    f->seq[0] = b;
    f->nseq = 1;
  }
  return rc;
}

int hg_framer_finish(hg_framer *f) {
  if (f->failed) return f->failed;
  int rc = 0;
  f->after_cr = false;
  if (f->nseq) {
    f->nseq = 0;
    rc = put(f, replacement, 3, f->ts);
  }
  if (!rc && f->started) rc = deliver(f, false);
  f->started = false;
  f->len = 0;
  f->escapes = false;
  return rc;
}

int hg_framer_emit(void *framer, const char *bytes, size_t len, int64_t ts_ms) {
  return hg_framer_write(framer, bytes, len, ts_ms);
}
