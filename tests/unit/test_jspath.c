/* JS paths: which texts parse to which segments, which are refused and where, canonical form. */
#include <string.h>

#include "check.h"
#include "pipeline/jspath.h"

/* Segments as "k:name|i:3" so that one string comparison shows the whole parse. */
static char *render(const hg_jspath *p) {
  hg_buf b = HG_BUF_INIT;
  for (size_t k = 0; k < p->n; k++) {
    if (k) hg_buf_appendc(&b, '|');
    if (p->segs[k].kind == HG_JSPATH_INDEX)
      hg_buf_printf(&b, "i:%zu", p->segs[k].index);
    else
      hg_buf_printf(&b, "k:%s", p->segs[k].key);
  }
  return hg_buf_steal(&b);
}

static void parses_to(const char *text, const char *want) {
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  int rc = hg_jspath_parse(&p, text, strlen(text), &err);
  if (rc) fprintf(stderr, "  parsing <%s>: %s\n", text, err.msg);
  CHECK_EQ_INT(rc, 0);
  char *got = render(&p);
  CHECK_EQ_STR(got, want);
  free(got);
  hg_jspath_free(&p);
}

static void refused(const char *text, const char *want_msg) {
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  int rc = hg_jspath_parse(&p, text, strlen(text), &err);
  CHECK_EQ_INT(rc, HG_EINVAL);
  CHECK_EQ_INT(p.n, 0);
  CHECK(p.segs == NULL);
  if (!strstr(err.msg, want_msg))
    fprintf(stderr, "  <%s>: message \"%s\" lacks \"%s\"\n", text, err.msg, want_msg);
  CHECK(strstr(err.msg, want_msg) != NULL);
}

static void plain_paths(void) {
  parses_to("", "");
  parses_to("a", "k:a");
  parses_to("a.b.c", "k:a|k:b|k:c");
  parses_to("a.b[0]", "k:a|k:b|i:0");
  parses_to("[3]", "i:3");
  parses_to("[0][1].x", "i:0|i:1|k:x");
  parses_to("$x._y-z", "k:$x|k:_y-z");
  /* a name made of digits is still a member name, never an index */
  parses_to("a.0", "k:a|k:0");
  parses_to("list[007]", "k:list|i:7");
  parses_to("a[2147483647]", "k:a|i:2147483647");
}

static void quoted_keys(void) {
  parses_to("a.b[0][\"odd \\\"key\\\"\"]", "k:a|k:b|i:0|k:odd \"key\"");
  parses_to("['single']", "k:single");
  parses_to("['x y'].z", "k:x y|k:z");
  parses_to("[\"a.b\"][\"[0]\"]", "k:a.b|k:[0]");
  parses_to("[\"\"]", "k:");
  parses_to("['']", "k:");
  /* JSON escapes in double quotes, decoded by cJSON */
  parses_to("[\"tab\\there\\u00e9\\/\\\\\"]", "k:tab\there\xc3\xa9/\\");
  /* our escapes in single quotes */
  parses_to("['it\\'s \\\"q\\\" \\\\ \\n\\r\\t']", "k:it's \"q\" \\ \n\r\t");
  /* the other quote needs no escape */
  parses_to("['say \"hi\"']", "k:say \"hi\"");
  parses_to("[\"it's\"]", "k:it's");
  /* UTF-8 passes through untouched */
  parses_to("[\"\xc3\xa9t\xc3\xa9\"]", "k:\xc3\xa9t\xc3\xa9");
  /* a closing bracket or quote of the other kind inside a key is just a character */
  parses_to("[\"a]b\"]['c\"]']", "k:a]b|k:c\"]");
}

static void whitespace(void) {
  /* spaces are allowed inside brackets only */
  parses_to("a[ 0 ]", "k:a|i:0");
  parses_to("[  'k' ]", "k:k");
  refused(" a", "offset 0");
  refused("a ", "invalid path at offset 1: expected the end of the path, found a space");
  refused("a .b", "offset 1");
  refused("a. b", "offset 2: expected a member name, found a space");
  refused("a\t", "found a tab");
  refused("a[\t0]", "offset 2");
}

static void invalid_paths(void) {
  refused("a.", "invalid path at offset 2: expected a member name, found the end of the path");
  refused("a[", "invalid path at offset 2: expected an array index or a quoted key");
  refused("a[x]", "offset 2: expected an array index or a quoted key, found 'x'");
  refused(".a", "offset 0: expected a member name, found '.'");
  refused("a..b", "offset 2: expected a member name");
  refused("a[0", "invalid path at offset 3: expected ']', found the end of the path");
  refused("a[0}", "offset 3: expected ']', found '}'");
  refused("a[-1]", "offset 2");
  refused("a[1.5]", "offset 3: expected ']'");
  refused("a[\"x\"", "offset 5: expected ']'");
  refused("a[\"x", "offset 2: unterminated quoted key");
  refused("a['x", "offset 2: unterminated quoted key");
  refused("a['x\\", "offset 2: unterminated quoted key");
  refused("a[\"x\\", "offset 2: unterminated quoted key");
  refused("a b", "offset 1");
  refused("ab{", "offset 2: expected '.' or '[', found '{'");
  refused("a[0]b", "offset 4: expected '.' or '['");
  refused("a\xc3\xa9", "offset 1: expected '.' or '[', found byte 0xc3");
  refused("a[\"\\q\"]", "invalid escape in the quoted key starting at offset 2");
  refused("a['\\q']", "offset 3: unknown escape \\'q' in a single-quoted key");
  refused("a[\"x\\u0000\"]", "a key may not contain NUL");
  refused("a[\"x\ty\"]", "control character 0x09");
  refused("a['x\ny']", "control character 0x0a");
  refused("[]", "offset 1: expected an array index or a quoted key, found ']'");
}

static void huge_index(void) {
  refused("a[2147483648]", "invalid path at offset 2: array index too large (at most 2147483647)");
  refused("a[99999999999999999999999999999]", "array index too large");
  /* also with leading zeros, which do not count */
  parses_to("a[0000000000000000000000000001]", "k:a|i:1");
}

static void embedded_nul(void) {
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_jspath_parse(&p, "a\0b", 3, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 1") != NULL);
  CHECK_EQ_INT(hg_jspath_parse(&p, "['a\0b']", 7, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "control character 0x00") != NULL);
}

static void scan_stops_at_whitespace(void) {
  const char *line = "a.b[ 0 ][\"x y\"] {\"v\": 1}";
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  size_t end = 0;
  CHECK_EQ_INT(hg_jspath_scan(&p, line, strlen(line), &end, &err), 0);
  CHECK_EQ_INT(end, 15);
  char *got = render(&p);
  CHECK_EQ_STR(got, "k:a|k:b|i:0|k:x y");
  free(got);
  hg_jspath_free(&p);

  CHECK_EQ_INT(hg_jspath_scan(&p, "\tx", 2, &end, &err), 0);
  CHECK_EQ_INT(end, 0);
  CHECK_EQ_INT(p.n, 0);

  CHECK_EQ_INT(hg_jspath_scan(&p, "a{\"v\":1}", 8, &end, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 1: expected '.' or '['") != NULL);
}

static void canonical(const char *text, const char *want) {
  hg_jspath p = HG_JSPATH_INIT, q = HG_JSPATH_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_jspath_parse(&p, text, strlen(text), &err), 0);
  hg_buf b = HG_BUF_INIT;
  CHECK_EQ_INT(hg_jspath_format(&p, &b), 0);
  CHECK_EQ_STR(b.data, want);
  /* the canonical text reads back as the same path */
  CHECK_EQ_INT(hg_jspath_parse(&q, b.data, b.len, &err), 0);
  CHECK(hg_jspath_equal(&p, &q));
  hg_buf_free(&b);
  hg_jspath_free(&p);
  hg_jspath_free(&q);
}

static void round_trip(void) {
  canonical("", "");
  canonical("a.b[0]", "a.b[0]");
  canonical("['a'][ 1 ]", "a[1]");
  canonical("[\"$ok_1\"]._x", "$ok_1._x");
  canonical("a-b", "[\"a-b\"]");
  canonical("a.0", "a[\"0\"]");
  canonical("['odd \"key\"'].x", "[\"odd \\\"key\\\"\"].x");
  canonical("['tab\\t\\\\ \\'q\\'']", "[\"tab\\t\\\\ 'q'\"]");
  canonical("[\"\\u00e9\"]", "[\"\xc3\xa9\"]");
  canonical("list[007]", "list[7]");
  canonical("['']", "[\"\"]");
}

static void describe_names_root(void) {
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_jspath_parse(&p, "a[1].b", 6, &err), 0);
  hg_buf b = HG_BUF_INIT;
  hg_jspath_describe(&p, 0, &b);
  CHECK_EQ_STR(b.data, "(root)");
  hg_buf_reset(&b);
  hg_jspath_describe(&p, 2, &b);
  CHECK_EQ_STR(b.data, "a[1]");
  hg_buf_free(&b);

  hg_jspath q = HG_JSPATH_INIT;
  CHECK_EQ_INT(hg_jspath_parse(&q, "a[1]", 4, &err), 0);
  CHECK(!hg_jspath_equal(&p, &q));
  CHECK_EQ_INT(hg_jspath_push_key(&q, "b", 1), 0);
  CHECK(hg_jspath_equal(&p, &q));
  CHECK_EQ_INT(hg_jspath_push_key(&q, "x\0y", 3), HG_EINVAL);
  hg_jspath_free(&p);
  hg_jspath_free(&q);
}

TEST_MAIN(T(plain_paths), T(quoted_keys), T(whitespace), T(invalid_paths), T(huge_index),
          T(embedded_nul), T(scan_stops_at_whitespace), T(round_trip), T(describe_names_root))
