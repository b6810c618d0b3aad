/* A growable byte buffer. */
#pragma once

#include <stdarg.h>
#include <stddef.h>

typedef struct hg_buf {
  char *data; /* always NUL-terminated when non-NULL, so text can be used as a C string */
  size_t len;
  size_t cap;
} hg_buf;

#define HG_BUF_INIT {NULL, 0, 0}

/* All return 0 or HG_ENOMEM. */
int hg_buf_reserve(hg_buf *b, size_t extra);
int hg_buf_append(hg_buf *b, const void *data, size_t len);
int hg_buf_appends(hg_buf *b, const char *s);
int hg_buf_appendc(hg_buf *b, char c);
int hg_buf_printf(hg_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int hg_buf_vprintf(hg_buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes. */
void hg_buf_consume(hg_buf *b, size_t n);
void hg_buf_reset(hg_buf *b);
/* Hands the storage to the caller (who frees it) and leaves b empty. */
char *hg_buf_steal(hg_buf *b);
void hg_buf_free(hg_buf *b);
/* Overwrites the contents with zeros before freeing: for buffers that held a secret. */
void hg_buf_wipe(hg_buf *b);
