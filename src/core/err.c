/* Error reporting helpers. */
#include "core/err.h"

#include <stdio.h>
#include <string.h>

int hg_err_setv(hg_err *err, int code, const char *fmt, va_list ap) {
  if (err) {
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  }
  return code;
}

int hg_err_set(hg_err *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hg_err_setv(err, code, fmt, ap);
  va_end(ap);
  return code;
}

int hg_err_prefix(hg_err *err, const char *fmt, ...) {
  if (!err) return HG_EINVAL;
  char prefix[256], old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  /* Truncation is acceptable here: a long message keeps its beginning. */
  size_t n = strlen(prefix);
  if (n > sizeof err->msg - 3) n = sizeof err->msg - 3;
  memcpy(err->msg, prefix, n);
  memcpy(err->msg + n, ": ", 2);
  n += 2;
  size_t rest = strnlen(old, sizeof old - 1);
  if (rest > sizeof err->msg - 1 - n) rest = sizeof err->msg - 1 - n;
  memcpy(err->msg + n, old, rest);
  err->msg[n + rest] = '\0';
  return err->code;
}

void hg_err_clear(hg_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
