/* Human-readable tables for the CLI's list commands. */
#include "cli/table.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

/* Characters, not bytes: UTF-8 continuation bytes do not start a character. */
static size_t text_width(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* A copy with control characters turned into spaces and at most HG_TABLE_MAX_CELL
 * characters, the last three of a cut cell being "...". */
static char *clean_cell(const char *s) {
  if (!s) s = "";
  size_t len = strlen(s);
  char *out = malloc(len + 4);
  if (!out) return NULL;
  size_t o = 0, chars = 0;
  int cut = text_width(s) > HG_TABLE_MAX_CELL;
  size_t keep = cut ? HG_TABLE_MAX_CELL - 3 : (size_t)-1;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((c & 0xC0) != 0x80 && chars++ == keep) break;
    out[o++] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
  }
  if (cut) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}

static int add_row(hg_table *t, const char *const *cells) {
  size_t row = t->nrows + (t->cells ? 1 : 0);
  if (row + 1 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 8;
    char **grown = realloc(t->cells, cap * t->ncols * sizeof *grown);
    if (!grown) return HG_ENOMEM;
    t->cells = grown;
    t->cap = cap;
  }
  for (size_t c = 0; c < t->ncols; c++) {
    char *cell = clean_cell(cells[c]);
    if (!cell) {
      while (c-- > 0) free(t->cells[row * t->ncols + c]);
      return HG_ENOMEM;
    }
    t->cells[row * t->ncols + c] = cell;
  }
  return 0;
}

int hg_table_init(hg_table *t, size_t ncols, const char *const *headers) {
  t->ncols = ncols;
  t->nrows = 0;
  t->cells = NULL;
  t->cap = 0;
  int rc = add_row(t, headers);
  if (rc < 0) {
    free(t->cells);
    t->cells = NULL;
  }
  return rc;
}

int hg_table_add(hg_table *t, const char *const *cells) {
  int rc = add_row(t, cells);
  if (rc == 0) t->nrows++;
  return rc;
}

int hg_table_render(const hg_table *t, hg_buf *out) {
  size_t *width = calloc(t->ncols ? t->ncols : 1, sizeof *width);
  if (!width) return HG_ENOMEM;
  for (size_t r = 0; r <= t->nrows; r++)
    for (size_t c = 0; c < t->ncols; c++) {
      size_t w = text_width(t->cells[r * t->ncols + c]);
      if (w > width[c]) width[c] = w;
    }
  int rc = 0;
  for (size_t r = 0; r <= t->nrows && rc == 0; r++) {
    for (size_t c = 0; c < t->ncols && rc == 0; c++) {
      const char *cell = t->cells[r * t->ncols + c];
      rc = hg_buf_appends(out, cell);
      if (rc == 0 && c + 1 < t->ncols)
        rc = hg_buf_printf(out, "%*s", (int)(width[c] - text_width(cell) + 2), "");
    }
    /* Padding before empty trailing cells is invisible noise: drop it. */
    while (rc == 0 && out->len && out->data[out->len - 1] == ' ') out->data[--out->len] = '\0';
    if (rc == 0) rc = hg_buf_appendc(out, '\n');
  }
  free(width);
  return rc;
}

void hg_table_free(hg_table *t) {
  if (t->cells)
    for (size_t i = 0; i < (t->nrows + 1) * t->ncols; i++) free(t->cells[i]);
  free(t->cells);
  t->cells = NULL;
  t->nrows = t->cap = 0;
}
