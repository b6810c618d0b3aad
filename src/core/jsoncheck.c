/* The rules of RFC 8259 that cJSON leaves unchecked, applied to a value cJSON has parsed. */
#include "core/jsoncheck.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* The string starting at s[i] (its opening quote); returns the offset after its closing quote,
 * or 0 with err set. A backslash always takes the next byte with it, so an escaped backslash
 * before "u0000" is not mistaken for the \u0000 escape. */
static size_t check_string(const char *s, size_t n, size_t i, hg_err *err) {
  for (i++; i < n; i++) {
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

int hg_jsoncheck(const char *text, size_t len, const cJSON *v, hg_err *err) {
  size_t i = 0;
  while (i < len) {
    char c = text[i];
    size_t next = i + 1;
    if (c == '"')
      next = check_string(text, len, i, err);
    else if (c == '-' || is_digit(c))
      next = check_number(text, len, i, err);
    if (!next) return HG_EINVAL;
    i = next;
  }
  if (v && !all_finite(v)) return hg_err_set(err, HG_EINVAL, "a number too large for a double");
  return 0;
}
