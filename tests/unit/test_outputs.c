/* Output ops on ordered JSON: set/append rules, member order, clashes that change nothing. */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "pipeline/outputs.h"

/* Applies op PATH VALUE (VALUE as JSON text) to *root; returns the code, err gets the message. */
static int apply(cJSON **root, const char *op, const char *path, const char *value, hg_err *err) {
  cJSON *v = cJSON_Parse(value);
  CHECK(v != NULL);
  int rc = hg_outputs_apply_text(root, op, path, v, err);
  cJSON_Delete(v);
  return rc;
}

static char *doc(const cJSON *root) {
  return root ? cJSON_PrintUnformatted(root) : strdup("null");
}

static void expect_doc(const cJSON *root, const char *want) {
  char *got = doc(root);
  CHECK_EQ_STR(got, want);
  free(got);
}

static cJSON *from(const char *json) {
  return strcmp(json, "null") == 0 ? NULL : cJSON_Parse(json);
}

/* Applies an op that must fail: checks the message and that the document did not change. */
static void clash(const char *start, const char *op, const char *path, const char *value,
                  const char *want_msg) {
  cJSON *root = from(start);
  hg_err err = {0};
  CHECK_EQ_INT(apply(&root, op, path, value, &err), HG_EINVAL);
  if (!strstr(err.msg, want_msg)) fprintf(stderr, "  message: %s\n  wanted: %s\n", err.msg, want_msg);
  CHECK(strstr(err.msg, want_msg) != NULL);
  expect_doc(root, start);
  cJSON_Delete(root);
}

static void ok(const char *start, const char *op, const char *path, const char *value,
               const char *want) {
  cJSON *root = from(start);
  hg_err err = {0};
  int rc = apply(&root, op, path, value, &err);
  if (rc) fprintf(stderr, "  %s %s %s on %s: %s\n", op, path, value, start, err.msg);
  CHECK_EQ_INT(rc, 0);
  expect_doc(root, want);
  cJSON_Delete(root);
}

static void set_rules(void) {
  ok("null", "set", "", "{\"a\":1}", "{\"a\":1}");
  ok("{\"x\":[1,2]}", "set", "", "5", "5");
  ok("[1]", "set", "", "null", "null");
  /* a path through a null root makes it an object */
  ok("null", "set", "a.b", "1", "{\"a\":{\"b\":1}}");
  /* objects are created through null or missing members */
  ok("{\"a\":null}", "set", "a.b.c", "true", "{\"a\":{\"b\":{\"c\":true}}}");
  ok("{\"a\":{}}", "set", "a.b.c", "\"s\"", "{\"a\":{\"b\":{\"c\":\"s\"}}}");
  /* an existing index is replaced in place */
  ok("{\"l\":[1,2,3]}", "set", "l[1]", "{\"k\":0}", "{\"l\":[1,{\"k\":0},3]}");
  ok("[[0],[1]]", "set", "[1][0]", "9", "[[0],[9]]");
  /* a null array element is a null member like any other */
  ok("[null]", "set", "[0].x", "1", "[{\"x\":1}]");
  /* quoted keys reach members no plain name can */
  ok("{}", "set", "[\"odd \\\"key\\\"\"]['a b']", "1", "{\"odd \\\"key\\\"\":{\"a b\":1}}");
  /* set replaces whatever was there, whatever its type */
  ok("{\"a\":[1]}", "set", "a", "\"x\"", "{\"a\":\"x\"}");
}

static void set_clashes(void) {
  clash("{\"l\":[1,2]}", "set", "l[5]", "0",
        "cannot set l[5]: index 5 is out of range (l has 2 elements)");
  clash("{\"l\":[]}", "set", "l[0]", "0", "index 0 is out of range (l has 0 elements)");
  clash("{\"s\":\"text\"}", "set", "s[0]", "0", "cannot set s[0]: s is a string, not an array");
  clash("{\"s\":\"text\"}", "set", "s.q", "0", "cannot set s.q: s is a string, not an object");
  clash("{\"l\":[1]}", "set", "l.x", "0", "cannot set l.x: l is an array, not an object");
  clash("{\"o\":{}}", "set", "o[0]", "0", "cannot set o[0]: o is an object, not an array");
  clash("[1]", "set", "x", "0", "cannot set x: (root) is an array, not an object");
  clash("7", "set", "x", "0", "(root) is a number, not an object");
  clash("{\"b\":true}", "set", "b.c", "0", "b is a boolean, not an object");
  /* only objects are created: an index below null or missing must exist */
  clash("null", "set", "[0]", "0", "cannot set [0]: (root) is null, and an array index must exist");
  clash("{\"a\":null}", "set", "a[0]", "0", "a is null, and an array index must exist");
  clash("{}", "set", "a.b[0]", "0", "cannot set a.b[0]: a.b is missing, and an array index must exist");
  clash("{}", "set", "a[0]", "0", "a is missing");
}

static void append_rules(void) {
  ok("null", "append", "", "1", "[1]");
  ok("[1]", "append", "", "[2]", "[1,[2]]");
  ok("null", "append", "list", "3", "{\"list\":[3]}");
  ok("{\"list\":null}", "append", "list", "3", "{\"list\":[3]}");
  ok("{\"list\":[3]}", "append", "list", "{\"a\":4}", "{\"list\":[3,{\"a\":4}]}");
  ok("{}", "append", "a.b.c", "1", "{\"a\":{\"b\":{\"c\":[1]}}}");
  ok("{\"l\":[[1],null]}", "append", "l[0]", "2", "{\"l\":[[1,2],null]}");
  ok("{\"l\":[[1],null]}", "append", "l[1]", "2", "{\"l\":[[1],[2]]}");
}

static void append_clashes(void) {
  clash("{\"a\":1}", "append", "", "0", "cannot append to (root): (root) is an object, not an array");
  clash("5", "append", "", "0", "(root) is a number, not an array");
  clash("{\"z\":2}", "append", "z", "0", "cannot append to z: z is a number, not an array");
  clash("{\"o\":{\"k\":1}}", "append", "o", "0", "o is an object, not an array");
  clash("{\"s\":\"x\"}", "append", "s.t", "0", "cannot append to s.t: s is a string, not an object");
  clash("{\"l\":[]}", "append", "l[0]", "0", "index 0 is out of range");
  clash("{}", "append", "l[0]", "0", "l is missing, and an array index must exist");
}

static void member_order_kept(void) {
  /* the sequence of the protocol's example: replaced members stay in place, new ones go last */
  cJSON *root = cJSON_CreateObject();
  hg_err err = {0};
  CHECK_EQ_INT(apply(&root, "set", "z", "1", &err), 0);
  CHECK_EQ_INT(apply(&root, "set", "a.b", "{\"x\":1}", &err), 0);
  CHECK_EQ_INT(apply(&root, "append", "list", "3", &err), 0);
  CHECK_EQ_INT(apply(&root, "append", "list", "4", &err), 0);
  CHECK_EQ_INT(apply(&root, "set", "list[0]", "9", &err), 0);
  CHECK_EQ_INT(apply(&root, "set", "n", "null", &err), 0);
  CHECK_EQ_INT(apply(&root, "set", "n.k", "1", &err), 0);
  CHECK_EQ_INT(apply(&root, "set", "z", "2", &err), 0);
  expect_doc(root, "{\"z\":2,\"a\":{\"b\":{\"x\":1}},\"list\":[9,4],\"n\":{\"k\":1}}");
  /* a value's own member order survives the copy */
  CHECK_EQ_INT(apply(&root, "set", "a", "{\"q\":1,\"b\":2,\"a\":3}", &err), 0);
  expect_doc(root, "{\"z\":2,\"a\":{\"q\":1,\"b\":2,\"a\":3},\"list\":[9,4],\"n\":{\"k\":1}}");
  /* member names are case-sensitive */
  CHECK_EQ_INT(apply(&root, "set", "Z", "3", &err), 0);
  expect_doc(root, "{\"z\":2,\"a\":{\"q\":1,\"b\":2,\"a\":3},\"list\":[9,4],\"n\":{\"k\":1},\"Z\":3}");
  cJSON_Delete(root);
}

static void value_is_copied(void) {
  cJSON *root = NULL, *v = cJSON_Parse("{\"k\":[1]}");
  hg_jspath p = HG_JSPATH_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_jspath_parse(&p, "a", 1, &err), 0);
  CHECK_EQ_INT(hg_outputs_apply(&root, HG_OUTPUTS_SET, &p, v, &err), 0);
  CHECK_EQ_INT(hg_outputs_apply(&root, HG_OUTPUTS_APPEND, &p, v, &err), HG_EINVAL);
  cJSON_AddNumberToObject(v, "later", 2);
  expect_doc(root, "{\"a\":{\"k\":[1]}}");
  CHECK_EQ_INT(hg_outputs_apply(&root, HG_OUTPUTS_SET, &p, NULL, &err), HG_EINVAL);
  hg_jspath_free(&p);
  cJSON_Delete(v);
  cJSON_Delete(root);
}

static void legacy_form(void) {
  cJSON *root = NULL, *x = cJSON_CreateString("x"), *one = cJSON_CreateNumber(1);
  hg_err err = {0};
  /* a null root becomes an object; the default name is "output" */
  CHECK_EQ_INT(hg_outputs_legacy(&root, NULL, x, &err), 0);
  expect_doc(root, "{\"output\":[\"x\"]}");
  CHECK_EQ_INT(hg_outputs_legacy(&root, "", one, &err), 0);
  expect_doc(root, "{\"output\":[\"x\",1]}");
  /* the name is a key taken verbatim, not a path */
  CHECK_EQ_INT(hg_outputs_legacy(&root, "a.b[0]", one, &err), 0);
  expect_doc(root, "{\"output\":[\"x\",1],\"a.b[0]\":[1]}");
  cJSON_Delete(root);

  root = cJSON_Parse("[1]");
  CHECK_EQ_INT(hg_outputs_legacy(&root, "n", one, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "cannot append to n: (root) is an array, not an object") != NULL);
  expect_doc(root, "[1]");
  cJSON_Delete(root);
  cJSON_Delete(x);
  cJSON_Delete(one);
}

static void text_form_errors(void) {
  cJSON *root = cJSON_Parse("{\"a\":1}"), *v = cJSON_CreateTrue();
  hg_err err = {0};
  CHECK_EQ_INT(hg_outputs_apply_text(&root, "merge", "a", v, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "unknown output op \"merge\"") != NULL);
  CHECK_EQ_INT(hg_outputs_apply_text(&root, "set", "a[", v, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "invalid path at offset 2") != NULL);
  CHECK_EQ_INT(hg_outputs_apply_text(&root, NULL, "a", v, &err), HG_EINVAL);
  expect_doc(root, "{\"a\":1}");
  hg_outputs_op op;
  CHECK_EQ_INT(hg_outputs_op_from_name("append", &op), 0);
  CHECK_EQ_INT(op, HG_OUTPUTS_APPEND);
  CHECK_EQ_STR(hg_outputs_op_name(op), "append");
  CHECK_EQ_STR(hg_outputs_op_name(HG_OUTPUTS_SET), "set");
  cJSON_Delete(root);
  cJSON_Delete(v);
}

static bool valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p) {
    int n = *p < 0x80 ? 0 : (*p & 0xe0) == 0xc0 ? 1 : (*p & 0xf0) == 0xe0 ? 2 : (*p & 0xf8) == 0xf0 ? 3 : -1;
    if (n < 0) return false;
    p++;
    for (int i = 0; i < n; i++, p++)
      if ((*p & 0xc0) != 0x80) return false;
  }
  return true;
}

static void long_path_message_stays_short(void) {
  /* a clash deep in a long path of non-ASCII keys still gives one readable, valid UTF-8 message
   * that fits the error buffer and keeps the detail at its end */
  hg_buf path = HG_BUF_INIT;
  /* a 9-byte first name puts the cut inside an "\xc3\xa9" */
  hg_buf_appends(&path, "s12345678");
  for (int i = 0; i < 200; i++) hg_buf_appends(&path, "[\"\xc3\xa9t\xc3\xa9\"]");
  cJSON *root = cJSON_Parse("{\"s12345678\":\"x\"}");
  hg_err err = {0};
  CHECK_EQ_INT(apply(&root, "set", path.data, "1", &err), HG_EINVAL);
  CHECK(strstr(err.msg, "cannot set s12345678[\"\xc3\xa9t\xc3\xa9\"][\"\xc3\xa9t\xc3\xa9\"]") == err.msg);
  CHECK(strstr(err.msg, "...: s12345678 is a string, not an object") != NULL);
  CHECK(valid_utf8(err.msg));
  hg_buf_free(&path);
  cJSON_Delete(root);
}

/* Allocation failure at every possible point of an op leaves the document as it was. */
static int allocs_left;

static void *failing_malloc(size_t n) {
  if (allocs_left-- <= 0) return NULL;
  return malloc(n);
}

static void atomic_when_out_of_memory(void) {
  static const char *const cases[][4] = {
      {"{\"a\":null,\"z\":0}", "set", "a.b.c", "{\"deep\":[1,2,{\"x\":\"y\"}]}"},
      {"{\"z\":0}", "set", "new.b", "[1,2]"},
      {"{\"a\":[1]}", "append", "a", "{\"k\":\"v\"}"},
      {"{\"z\":0}", "append", "m.n", "\"v\""},
      {"{\"z\":0}", "set", "z", "{\"k\":\"v\"}"},
      {"null", "append", "", "[1]"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    cJSON *value = cJSON_Parse(cases[c][3]);
    hg_jspath p = HG_JSPATH_INIT;
    hg_err err = {0};
    CHECK_EQ_INT(hg_jspath_parse(&p, cases[c][2], strlen(cases[c][2]), &err), 0);
    hg_outputs_op op;
    CHECK_EQ_INT(hg_outputs_op_from_name(cases[c][1], &op), 0);
    int rc = HG_ENOMEM;
    for (int budget = 0; rc == HG_ENOMEM && budget < 100; budget++) {
      cJSON *root = from(cases[c][0]);
      allocs_left = budget;
      cJSON_Hooks hooks = {failing_malloc, free};
      cJSON_InitHooks(&hooks);
      rc = hg_outputs_apply(&root, op, &p, value, &err);
      cJSON_InitHooks(NULL);
      if (rc == HG_ENOMEM) expect_doc(root, cases[c][0]);
      else CHECK_EQ_INT(rc, 0);
      cJSON_Delete(root);
    }
    CHECK_EQ_INT(rc, 0);
    hg_jspath_free(&p);
    cJSON_Delete(value);
  }
}

TEST_MAIN(T(set_rules), T(set_clashes), T(append_rules), T(append_clashes), T(member_order_kept),
          T(value_is_copied), T(legacy_form), T(text_form_errors),
          T(long_path_message_stays_short), T(atomic_when_out_of_memory))
