/* Human-readable tables for the CLI's list commands: aligned columns, one row a line. */
#pragma once

#include <stddef.h>

#include "core/buf.h"

/* A cell wider than this many characters is cut and ends in "...". */
#define HG_TABLE_MAX_CELL 60

typedef struct hg_table {
  size_t ncols;
  size_t nrows;  /* rows added, the header not counted */
  char **cells;  /* (nrows + 1) * ncols strings, header first */
  size_t cap;    /* rows the cells array has room for, header included */
} hg_table;

/* Copies the ncols headers. Returns 0 or HG_ENOMEM. */
int hg_table_init(hg_table *t, size_t ncols, const char *const *headers);
/* Adds a row of ncols cells (copied; NULL reads as ""). Control characters such as a
 * newline in a value become a space, so one row stays one line. */
int hg_table_add(hg_table *t, const char *const *cells);
/* Appends the table to out: columns padded to their widest cell (counted in characters, not
 * bytes), two spaces apart, the last column unpadded. */
int hg_table_render(const hg_table *t, hg_buf *out);
void hg_table_free(hg_table *t);
