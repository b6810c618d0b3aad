/* Error reporting: a negative code plus a message a human will read. */
#pragma once

#include <errno.h>
#include <stdarg.h>

/* Codes are negative errno values so they compose with libuv's and the C library's. */
enum {
  HG_OK = 0,
  HG_EINVAL = -EINVAL,       /* bad input: the message says which field, file or line */
  HG_ENOMEM = -ENOMEM,
  HG_EIO = -EIO,
  HG_ENOENT = -ENOENT,
  HG_EEXIST = -EEXIST,
  HG_ETIMEDOUT = -ETIMEDOUT,
  HG_ECANCELED = -ECANCELED,
  HG_EPERM = -EPERM,
  HG_ETOOBIG = -E2BIG,
  HG_EPROTO = -EPROTO,       /* a peer broke the protocol */
  HG_EAGAIN = -EAGAIN,
};

typedef struct hg_err {
  int code;
  char msg[512];
} hg_err;

/* Records code and message in err (which may be NULL) and returns code, so that
 * `return hg_err_set(err, HG_EINVAL, "...")` reads naturally. */
int hg_err_set(hg_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int hg_err_setv(hg_err *err, int code, const char *fmt, va_list ap);
/* Prefixes the message already in err: "context: old message". Returns err->code. */
int hg_err_prefix(hg_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hg_err_clear(hg_err *err);
