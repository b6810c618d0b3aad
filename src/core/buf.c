/* A growable byte buffer. */
#include "core/buf.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int hg_buf_reserve(hg_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) return HG_ENOMEM;
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) return HG_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int hg_buf_append(hg_buf *b, const void *data, size_t len) {
  if (hg_buf_reserve(b, len)) return HG_ENOMEM;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int hg_buf_appends(hg_buf *b, const char *s) { return hg_buf_append(b, s, strlen(s)); }

int hg_buf_appendc(hg_buf *b, char c) { return hg_buf_append(b, &c, 1); }

int hg_buf_vprintf(hg_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) return HG_EINVAL;
  if (hg_buf_reserve(b, (size_t)n)) return HG_ENOMEM;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int hg_buf_printf(hg_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = hg_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void hg_buf_consume(hg_buf *b, size_t n) {
  if (n >= b->len) {
    hg_buf_reset(b);
    return;
  }
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  b->data[b->len] = '\0';
}

void hg_buf_reset(hg_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

char *hg_buf_steal(hg_buf *b) {
  char *p = b->data;
  if (!p) p = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void hg_buf_free(hg_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void hg_buf_wipe(hg_buf *b) {
  if (b->data) OPENSSL_cleanse(b->data, b->cap);
  hg_buf_free(b);
}
