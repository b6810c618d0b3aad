/* The rules of RFC 8259 that cJSON leaves unchecked, applied to a value cJSON has parsed. */
#include "core/jsoncheck.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* Past the bytes from s[i] on that need no look inside a string (none of '"', '\\' or a
 * control character): sixteen at a time with SSE2, as the hub reads every event batch this
 * way and nearly all of a batch is the text of strings. */
static size_t plain_run(const char *s, size_t n, size_t i) {
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\'),
                below = _mm_set1_epi8(0x1F);
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
    /* min(v, 0x1F) == v exactly for the bytes up to 0x1F (unsigned) */
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                               _mm_cmpeq_epi8(_mm_min_epu8(v, below), v));
    unsigned m = (unsigned)_mm_movemask_epi8(hit);
    if (m) return i + (size_t)__builtin_ctz(m);
  }
#endif
  while (i < n && s[i] != '"' && s[i] != '\\' && (unsigned char)s[i] >= 0x20) i++;
  return i;
}

/* The string starting at s[i] (its opening quote); returns the offset after its closing quote,
 * or 0 with err set. A backslash always takes the next byte with it, so an escaped backslash
 * before "u0000" is not mistaken for the \u0000 escape. */
static size_t check_string(const char *s, size_t n, size_t i, hg_err *err) {
  for (i++; i < n; i++) {
    i = plain_run(s, n, i);
    if (i >= n) break;
    unsigned char c = (unsigned char)s[i];
    if (c == '"') return i + 1;
    if (c < 0x20) {
      hg_err_set(err, HG_EINVAL, "a raw control character (0x%02x) inside a string at offset %zu; "
                 "JSON wants it escaped", c, i);
      return 0;
    }
    if (c == '\\') {
      if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) {
        hg_err_set(err, HG_EINVAL, "\\u0000 inside a string at offset %zu is not accepted", i);
        return 0;
      }
      i++;
    }
  }
  return n; /* unterminated: cJSON would not have accepted it */
}

/* The number starting at s[i] ('-' or a digit), by RFC 8259's grammar:
 * -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static size_t check_number(const char *s, size_t n, size_t i, hg_err *err) {
  size_t start = i;
  if (s[i] == '-') i++;
  if (i < n && s[i] == '0') {
    i++;
    if (i < n && is_digit(s[i])) {
      hg_err_set(err, HG_EINVAL, "a number with a leading zero at offset %zu", start);
      return 0;
    }
  } else if (i < n && is_digit(s[i])) {
    while (i < n && is_digit(s[i])) i++;
  } else {
    hg_err_set(err, HG_EINVAL, "a number without digits at offset %zu", start);
    return 0;
  }
  if (i < n && s[i] == '.') {
    i++;
    if (!(i < n && is_digit(s[i]))) {
      hg_err_set(err, HG_EINVAL, "a number without digits after its point at offset %zu", start);
      return 0;
    }
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    if (!(i < n && is_digit(s[i]))) {
      hg_err_set(err, HG_EINVAL, "a number without digits in its exponent at offset %zu", start);
      return 0;
    }
    while (i < n && is_digit(s[i])) i++;
  }
  return i;
}

/* Depth is bounded by cJSON's nesting limit. */
static bool all_finite(const cJSON *v) {
  if (cJSON_IsNumber(v)) return isfinite(v->valuedouble);
  for (const cJSON *c = v->child; c; c = c->next)
    if (!all_finite(c)) return false;
  return true;
}

/* Past the bytes from s[i] on that begin neither a string nor a number (structure, literals,
 * whitespace), sixteen at a time with SSE2. */
static size_t other_run(const char *s, size_t n, size_t i) {
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), minus = _mm_set1_epi8('-'), zero = _mm_set1_epi8('0'),
                nine = _mm_set1_epi8(9);
  for (; i + 16 <= n; i += 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)(s + i));
    __m128i d = _mm_sub_epi8(v, zero); /* a digit is 0..9 here, unsigned */
    __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, minus)),
                               _mm_cmpeq_epi8(_mm_min_epu8(d, nine), d));
    unsigned m = (unsigned)_mm_movemask_epi8(hit);
    if (m) return i + (size_t)__builtin_ctz(m);
  }
#endif
  while (i < n && s[i] != '"' && s[i] != '-' && !is_digit(s[i])) i++;
  return i;
}

size_t hg_jsoncheck_plain_len(const char *s, size_t n) {
  return plain_run(s, n, 0);
}

int hg_jsoncheck_span(const char *text, size_t from, size_t to, hg_err *err) {
  size_t i = from;
  while (i < to) {
    i = other_run(text, to, i);
    if (i >= to) break;
    char c = text[i];
    size_t next = i + 1;
    if (c == '"')
      next = check_string(text, to, i, err);
    else if (c == '-' || is_digit(c))
      next = check_number(text, to, i, err);
    if (!next) return HG_EINVAL;
    i = next;
  }
  return 0;
}

int hg_jsoncheck(const char *text, size_t len, const cJSON *v, hg_err *err) {
  if (hg_jsoncheck_span(text, 0, len, err)) return HG_EINVAL;
  if (v && !all_finite(v)) return hg_err_set(err, HG_EINVAL, "a number too large for a double");
  return 0;
}
