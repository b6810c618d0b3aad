/* A slow, plain reference redactor for tests: every form of every secret found by brute force. */
#pragma once

#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One form: its bytes, and per byte whether it is a hex digit that may be of either case. */
typedef struct ref_form {
  unsigned char *b, *ci;
  size_t len;
} ref_form;

typedef struct ref_forms {
  ref_form *f;
  size_t n, cap;
} ref_forms;

static inline void ref_push(ref_forms *fs, const unsigned char *b, const unsigned char *ci, size_t len) {
  if (fs->n == fs->cap) {
    fs->cap = fs->cap ? 2 * fs->cap : 16;
    fs->f = realloc(fs->f, fs->cap * sizeof *fs->f);
  }
  ref_form *f = &fs->f[fs->n++];
  f->b = malloc(len + 1);
  f->ci = calloc(len + 1, 1);
  memcpy(f->b, b, len);
  if (ci) memcpy(f->ci, ci, len);
  f->len = len;
}

static inline void ref_forms_free(ref_forms *fs) {
  for (size_t i = 0; i < fs->n; i++) {
    free(fs->f[i].b);
    free(fs->f[i].ci);
  }
  free(fs->f);
  memset(fs, 0, sizeof *fs);
}

/* A growing form under construction. */
typedef struct ref_acc {
  unsigned char b[8 * 65536], ci[8 * 65536];
  size_t len;
} ref_acc;

static inline void ref_acc_put(ref_acc *a, const char *s, bool ci) {
  for (; *s; s++) {
    a->b[a->len] = (unsigned char)*s;
    a->ci[a->len++] = ci;
  }
}

static inline void ref_acc_byte(ref_acc *a, unsigned char c) {
  a->b[a->len] = c;
  a->ci[a->len++] = 0;
}

/* Adds every form the redactor promises to mask for secret s. */
static inline void ref_forms_add(ref_forms *fs, const unsigned char *s, size_t n) {
  static ref_acc a;
  ref_push(fs, s, NULL, n);

  /* base64 of (k unknown bytes, s, more), via OpenSSL: the characters whose six bits all come
   * from s. */
  unsigned char *in = malloc(n + 2), *out = malloc(4 * (n + 4) / 3 + 8);
  for (size_t k = 0; k < 3; k++) {
    memset(in, 0, k);
    memcpy(in + k, s, n);
    size_t enc = (size_t)EVP_EncodeBlock(out, in, (int)(k + n));
    size_t first = (8 * k + 5) / 6, last = 8 * (k + n) / 6;
    for (int url = 0; url < 2; url++) {
      ref_push(fs, out + first, NULL, last - first);
      if (last < enc) ref_push(fs, out + first, NULL, enc - first); /* padded, s ends the data */
      for (size_t i = first; i < enc; i++) {
        if (out[i] == '+') out[i] = '-';
        else if (out[i] == '/') out[i] = '_';
      }
    }
  }
  free(in);
  free(out);

  /* percent-encoding: everything but RFC 3986 unreserved */
  a.len = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = s[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
        (c && strchr("-._~", c))) {
      ref_acc_byte(&a, c);
    } else {
      char h[3];
      snprintf(h, sizeof h, "%02X", c);
      ref_acc_byte(&a, '%');
      ref_acc_put(&a, h, true);
    }
  }
  ref_push(fs, a.b, a.ci, a.len);

  /* JSON string bodies as the serialisers we know write them. */
  static const struct {
    bool slash, bf, ntr, html;
  } styles[] = {{0, 1, 1, 0}, {1, 1, 1, 0}, {0, 0, 1, 0}, {0, 0, 1, 1}, {0, 0, 0, 0}, {1, 0, 1, 0}};
  for (size_t v = 0; v < sizeof styles / sizeof styles[0]; v++) {
    a.len = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = s[i];
      char h[8];
      if (c == '"') ref_acc_put(&a, "\\\"", false);
      else if (c == '\\') ref_acc_put(&a, "\\\\", false);
      else if (c == '/' && styles[v].slash) ref_acc_put(&a, "\\/", false);
      else if (c == '\n' && styles[v].ntr) ref_acc_put(&a, "\\n", false);
      else if (c == '\r' && styles[v].ntr) ref_acc_put(&a, "\\r", false);
      else if (c == '\t' && styles[v].ntr) ref_acc_put(&a, "\\t", false);
      else if (c == '\b' && styles[v].bf) ref_acc_put(&a, "\\b", false);
      else if (c == '\f' && styles[v].bf) ref_acc_put(&a, "\\f", false);
      else if (c < 0x20 || (styles[v].html && (c == '<' || c == '>' || c == '&'))) {
        ref_acc_put(&a, "\\u", false);
        snprintf(h, sizeof h, "%04x", c);
        ref_acc_put(&a, h, true);
      } else {
        ref_acc_byte(&a, c);
      }
    }
    ref_push(fs, a.b, a.ci, a.len);
  }
}

static inline unsigned char ref_lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static inline bool ref_match_at(const ref_form *f, const unsigned char *t, size_t n, size_t at) {
  if (at + f->len > n) return false;
  for (size_t j = 0; j < f->len; j++) {
    if (f->ci[j] ? ref_lower(t[at + j]) != ref_lower(f->b[j]) : t[at + j] != f->b[j]) return false;
  }
  return true;
}

/* Whether any occurrence of form f is in t. */
static inline bool ref_contains(const ref_form *f, const unsigned char *t, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ref_match_at(f, t, n, i)) return true;
  return false;
}

/* Masks t: every byte inside any occurrence of any form is covered, and each maximal run of
 * covered bytes (so overlapping and touching matches together) becomes one "[REDACTED]".
 * Returns a malloc'd buffer, its length in *outlen. */
static inline unsigned char *ref_mask(const ref_forms *fs, const unsigned char *t, size_t n,
                               size_t *outlen) {
  unsigned char *cov = calloc(n + 1, 1);
  for (size_t k = 0; k < fs->n; k++)
    for (size_t i = 0; i < n; i++)
      if (ref_match_at(&fs->f[k], t, n, i)) memset(cov + i, 1, fs->f[k].len);
  unsigned char *out = malloc(n * 10 + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (cov[i]) {
      memcpy(out + o, "[REDACTED]", 10);
      o += 10;
      while (i < n && cov[i]) i++;
    } else {
      out[o++] = t[i++];
    }
  }
  free(cov);
  *outlen = o;
  return out;
}
