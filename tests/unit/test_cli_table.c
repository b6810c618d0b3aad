/* The CLI's tables: aligned columns, wide characters counted once, cut and cleaned cells. */
#include "check.h"
#include "cli/table.h"

static void aligned_columns(void) {
  static const char *const head[] = {"ID", "STATUS", "TASK"};
  hg_table t;
  CHECK_EQ_INT(hg_table_init(&t, 3, head), 0);
  const char *r1[] = {"r1", "running", "hello"}, *r2[] = {"r22222", "ok", NULL};
  CHECK_EQ_INT(hg_table_add(&t, r1), 0);
  CHECK_EQ_INT(hg_table_add(&t, r2), 0);
  hg_buf b = HG_BUF_INIT;
  CHECK_EQ_INT(hg_table_render(&t, &b), 0);
  /* Two spaces between columns, no trailing blanks (a NULL cell reads as empty). */
  CHECK_EQ_STR(b.data,
               "ID      STATUS   TASK\n"
               "r1      running  hello\n"
               "r22222  ok\n");
  hg_buf_free(&b);
  hg_table_free(&t);
}

static void utf8_counts_characters(void) {
  static const char *const head[] = {"NAME", "X"};
  hg_table t;
  hg_table_init(&t, 2, head);
  const char *r1[] = {"h\xc3\xa9llo", "1"}; /* héllo: 5 characters, 6 bytes */
  hg_table_add(&t, r1);
  hg_buf b = HG_BUF_INIT;
  hg_table_render(&t, &b);
  CHECK_EQ_STR(b.data, "NAME   X\nh\xc3\xa9llo  1\n");
  hg_buf_free(&b);
  hg_table_free(&t);
}

static void control_characters_and_long_cells(void) {
  static const char *const head[] = {"A", "B"};
  hg_table t;
  hg_table_init(&t, 2, head);
  char longcell[100];
  memset(longcell, 'x', 99);
  longcell[99] = '\0';
  const char *r1[] = {"two\nlines\tand\033[31mred", longcell};
  hg_table_add(&t, r1);
  hg_buf b = HG_BUF_INIT;
  hg_table_render(&t, &b);
  /* A newline or an escape sequence from the hub cannot break the layout or the terminal. */
  char expected[256];
  snprintf(expected, sizeof expected, "A                      B\ntwo lines and [31mred  %.*s...\n",
           HG_TABLE_MAX_CELL - 3, longcell);
  CHECK_EQ_STR(b.data, expected);
  hg_buf_free(&b);
  hg_table_free(&t);
}

static void many_rows(void) {
  static const char *const head[] = {"N"};
  hg_table t;
  hg_table_init(&t, 1, head);
  for (int i = 0; i < 1000; i++) {
    char n[16];
    snprintf(n, sizeof n, "%d", i);
    const char *row[] = {n};
    CHECK_EQ_INT(hg_table_add(&t, row), 0);
  }
  CHECK_EQ_INT(t.nrows, 1000);
  hg_buf b = HG_BUF_INIT;
  hg_table_render(&t, &b);
  CHECK(strstr(b.data, "\n999\n") != NULL);
  hg_buf_free(&b);
  hg_table_free(&t);
}

TEST_MAIN(T(aligned_columns), T(utf8_counts_characters), T(control_characters_and_long_cells),
          T(many_rows))
