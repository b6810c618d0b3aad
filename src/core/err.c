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
  snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
  return err->code;
}

void hg_err_clear(hg_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = '\0';
  }
}
