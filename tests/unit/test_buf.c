/* Byte buffers and error messages: the two helpers every module leans on. */
#include <stdint.h>

#include "check.h"
#include "core/buf.h"
#include "core/err.h"

static void appends_and_stays_terminated(void) {
  hg_buf b = HG_BUF_INIT;
  CHECK_EQ_INT(hg_buf_appends(&b, "hello"), 0);
  CHECK_EQ_INT(hg_buf_appendc(&b, ' '), 0);
  CHECK_EQ_INT(hg_buf_printf(&b, "%d-%s", 42, "x"), 0);
  CHECK_EQ_STR(b.data, "hello 42-x");
  CHECK_EQ_INT(b.len, 10);
  /* Binary bytes, a NUL among them, are kept; the buffer stays NUL-terminated after them. */
  CHECK_EQ_INT(hg_buf_append(&b, "\0\xff", 2), 0);
  CHECK_EQ_INT(b.len, 12);
  CHECK_EQ_MEM(b.data + 10, "\0\xff", 2);
  CHECK_EQ_INT(b.data[12], '\0');
  hg_buf_free(&b);
  CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void grows_across_many_appends(void) {
  hg_buf b = HG_BUF_INIT;
  for (int i = 0; i < 100000; i++) CHECK_EQ_INT(hg_buf_append(&b, "0123456789", 10), 0);
  CHECK_EQ_INT(b.len, 1000000);
  CHECK(b.cap > b.len);
  CHECK_EQ_MEM(b.data + 999990, "0123456789", 10);
  hg_buf_free(&b);
}

static void consume_reset_steal(void) {
  hg_buf b = HG_BUF_INIT;
  hg_buf_appends(&b, "abcdef");
  hg_buf_consume(&b, 2);
  CHECK_EQ_STR(b.data, "cdef");
  hg_buf_consume(&b, 100);
  CHECK_EQ_INT(b.len, 0);
  CHECK_EQ_STR(b.data, "");
  hg_buf_appends(&b, "kept");
  char *s = hg_buf_steal(&b);
  CHECK_EQ_STR(s, "kept");
  CHECK(b.data == NULL);
  free(s);
  /* Stealing an empty buffer still gives a string the caller can free. */
  s = hg_buf_steal(&b);
  CHECK_EQ_STR(s, "");
  free(s);
  hg_buf_appends(&b, "secret value");
  hg_buf_wipe(&b);
  CHECK(b.data == NULL && b.len == 0);
}

static void refuses_impossible_sizes(void) {
  hg_buf b = HG_BUF_INIT;
  hg_buf_appends(&b, "x");
  CHECK_EQ_INT(hg_buf_reserve(&b, SIZE_MAX), HG_ENOMEM);
  CHECK_EQ_STR(b.data, "x"); /* unchanged */
  hg_buf_free(&b);
}

static void errors_carry_code_and_message(void) {
  hg_err err;
  CHECK_EQ_INT(hg_err_set(&err, HG_EINVAL, "field '%s' must be %s", "capacity", "an integer"),
               HG_EINVAL);
  CHECK_EQ_INT(err.code, HG_EINVAL);
  CHECK_EQ_STR(err.msg, "field 'capacity' must be an integer");
  CHECK_EQ_INT(hg_err_prefix(&err, "%s:%d", "agent.lua", 7), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "agent.lua:7: field 'capacity' must be an integer");
  /* NULL is allowed where nobody wants the message. */
  CHECK_EQ_INT(hg_err_set(NULL, HG_EIO, "ignored"), HG_EIO);
  hg_err_clear(&err);
  CHECK_EQ_INT(err.code, 0);
  CHECK_EQ_STR(err.msg, "");
}

static void long_messages_are_cut_not_overrun(void) {
  hg_err err;
  char big[2000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  hg_err_set(&err, HG_EINVAL, "%s", big);
  CHECK_EQ_INT(strlen(err.msg), sizeof err.msg - 1);
  hg_err_prefix(&err, "%s", big); /* a prefix longer than the whole message */
  CHECK_EQ_INT(strlen(err.msg), sizeof err.msg - 1);
  /* A long prefix is cut so the message it qualifies still shows. */
  hg_err_set(&err, HG_EINVAL, "short");
  hg_err_prefix(&err, "%s", big);
  size_t n = strlen(err.msg);
  CHECK(n < sizeof err.msg - 1);
  CHECK_EQ_STR(err.msg + n - 7, ": short");
}

TEST_MAIN(T(appends_and_stays_terminated), T(grows_across_many_appends), T(consume_reset_steal),
          T(refuses_impossible_sizes), T(errors_carry_code_and_message),
          T(long_messages_are_cut_not_overrun))
