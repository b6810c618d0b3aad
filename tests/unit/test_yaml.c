/* YAML to JSON: structure, core-schema scalar types, anchors, and errors with positions. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/yaml.h"

static cJSON *parse_ok(const char *text) {
  cJSON *out = NULL;
  hg_err err = {0};
  int rc = hg_yaml_parse(text, strlen(text), "t.yaml", &out, &err);
  CHECK_EQ_INT(rc, 0);
  if (rc) fprintf(stderr, "  unexpected error: %s\n", err.msg);
  return out;
}

/* The compact JSON for the YAML text. */
static void expect_json(const char *yaml, const char *json) {
  cJSON *v = parse_ok(yaml);
  char *text = v ? cJSON_PrintUnformatted(v) : NULL;
  CHECK_EQ_STR(text, json);
  free(text);
  cJSON_Delete(v);
}

static void expect_error(const char *yaml, int code, const char *msg) {
  cJSON *out = NULL;
  hg_err err = {0};
  int rc = hg_yaml_parse(yaml, strlen(yaml), "t.yaml", &out, &err);
  CHECK_EQ_INT(rc, code);
  CHECK(out == NULL);
  if (!strstr(err.msg, msg)) fprintf(stderr, "  message: %s\n  wanted:  %s\n", err.msg, msg);
  CHECK(strstr(err.msg, msg) != NULL);
}

static void block_and_flow_collections(void) {
  expect_json("slug: hello\n"
              "command: [echo, hi]\n"
              "env:\n"
              "  A: one\n"
              "  B: {nested: [1, 2]}\n"
              "list:\n"
              "  - a\n"
              "  - - b\n"
              "    - c\n"
              "  - k: v\n",
              "{\"slug\":\"hello\",\"command\":[\"echo\",\"hi\"],\"env\":{\"A\":\"one\",\"B\":"
              "{\"nested\":[1,2]}},\"list\":[\"a\",[\"b\",\"c\"],{\"k\":\"v\"}]}");
  expect_json("[]", "[]");
  expect_json("{}", "{}");
  expect_json("- x\n", "[\"x\"]");
}

static void core_schema_scalars(void) {
  expect_json("[~, null, Null, NULL, true, True, FALSE, false]",
              "[null,null,null,null,true,true,false,false]");
  expect_json("empty:\nnext: 1\n", "{\"empty\":null,\"next\":1}");
  expect_json("[0, 12, -7, +3, 0o17, 0x1F, 1.5, -0.25, 1e3, .5, 2.]",
              "[0,12,-7,3,15,31,1.5,-0.25,1000,0.5,2]");
  /* Not core-schema values: strings (YAML 1.1's yes/no/on/off included). */
  expect_json("[yes, no, on, off, 0b101, 1_000, 12:30, 0x, .e3, 1.2.3, 'true', \"12\"]",
              "[\"yes\",\"no\",\"on\",\"off\",\"0b101\",\"1_000\",\"12:30\",\"0x\",\".e3\","
              "\"1.2.3\",\"true\",\"12\"]");
  /* Block scalars are strings. */
  expect_json("a: |\n  line one\n  line two\nb: >\n  folded\n  text\nc: |-\n  42\n",
              "{\"a\":\"line one\\nline two\\n\",\"b\":\"folded text\\n\",\"c\":\"42\"}");
  cJSON *v = parse_ok("[.inf, -.Inf, .NaN]");
  CHECK(v && isinf(cJSON_GetArrayItem(v, 0)->valuedouble) && cJSON_GetArrayItem(v, 0)->valuedouble > 0);
  CHECK(v && isinf(cJSON_GetArrayItem(v, 1)->valuedouble) && cJSON_GetArrayItem(v, 1)->valuedouble < 0);
  CHECK(v && isnan(cJSON_GetArrayItem(v, 2)->valuedouble));
  cJSON_Delete(v);
  /* Keys stay text whatever they look like. */
  expect_json("1: a\ntrue: b\nnull: c\n", "{\"1\":\"a\",\"true\":\"b\",\"null\":\"c\"}");
}

static void explicit_tags(void) {
  expect_json("[!!str 12, !!int \"7\", !!float 3, !!bool true, !!null ~, ! 5]",
              "[\"12\",7,3,true,null,\"5\"]");
  expect_json("!!map {a: !!seq [1]}", "{\"a\":[1]}");
  expect_error("a: !!int twelve\n", HG_EINVAL, "t.yaml:1:4: 'twelve' is not a valid int");
  expect_error("a: !custom x\n", HG_EINVAL, "t.yaml:1:4: unsupported tag '!custom'");
}

static void anchors_and_aliases(void) {
  expect_json("base: &b {image: alpine, tag: 3}\n"
              "one: *b\n"
              "name: &n hello\n"
              "again: *n\n"
              "list: &l [1, *n]\n"
              "copy: *l\n",
              "{\"base\":{\"image\":\"alpine\",\"tag\":3},\"one\":{\"image\":\"alpine\",\"tag\":3},"
              "\"name\":\"hello\",\"again\":\"hello\",\"list\":[1,\"hello\"],\"copy\":[1,\"hello\"]}");
  /* An anchored key can be reused as a key. */
  expect_json("&k key: 1\nother: *k\n", "{\"key\":1,\"other\":\"key\"}");
  expect_error("a: *nowhere\n", HG_EINVAL, "t.yaml:1:4: unknown anchor 'nowhere'");
  expect_error("a: &x [1, *x]\n", HG_EINVAL, "t.yaml:1:11: alias *x refers to a node that contains it");
}

static void alias_bomb_is_stopped(void) {
  const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                     "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                     "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                     "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                     "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                     "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n";
  expect_error(bomb, HG_ETOOBIG, "an alias bomb?");
}

static void one_document_only(void) {
  expect_error("a: 1\n---\nb: 2\n", HG_EINVAL, "t.yaml:2:1: a second document");
  expect_json("---\na: 1\n...\n", "{\"a\":1}");
  expect_json("", "null");
  expect_json("# only a comment\n", "null");
}

static void duplicate_keys_are_refused(void) {
  expect_error("slug: a\n"
               "name: b\n"
               "env:\n"
               "  X: 1\n"
               "  Y: 2\n"
               "  X: 3\n",
               HG_EINVAL, "t.yaml:6:3: duplicate key 'X'");
  expect_error("{a: 1, a: 2}", HG_EINVAL, "t.yaml:1:8: duplicate key 'a'");
  /* The same key in different mappings is fine. */
  expect_json("a: {x: 1}\nb: {x: 2}\n", "{\"a\":{\"x\":1},\"b\":{\"x\":2}}");
}

static void syntax_errors_say_where(void) {
  expect_error("a: 1\nb: [1, 2\nc: 3\n", HG_EINVAL, "t.yaml:");
  expect_error("a: b: c\n", HG_EINVAL, "t.yaml:1:5: mapping values are not allowed");
  expect_error("key: \"unterminated\n", HG_EINVAL, "t.yaml:2:1:");
  expect_error("? [a, b]\n: c\n", HG_EINVAL, "t.yaml:1:3: a mapping key must be a scalar");
  /* No trailing NUL needed, and an embedded NUL is not silently cut. */
  cJSON *out = NULL;
  hg_err err;
  CHECK_EQ_INT(hg_yaml_parse("a: 1XXXX", 4, "t.yaml", &out, &err), 0);
  char *text = cJSON_PrintUnformatted(out);
  CHECK_EQ_STR(text, "{\"a\":1}");
  free(text);
  cJSON_Delete(out);
  CHECK(hg_yaml_parse("a: \"x\\0y\"", 9, "t.yaml", &out, &err) < 0);
}

static void deep_nesting_is_bounded(void) {
  size_t n = 10000;
  char *text = malloc(2 * n + 1);
  memset(text, '[', n);
  memset(text + n, ']', n);
  text[2 * n] = 0;
  cJSON *out = NULL;
  hg_err err;
  CHECK_EQ_INT(hg_yaml_parse(text, 2 * n, "deep.yaml", &out, &err), HG_ETOOBIG);
  CHECK(strstr(err.msg, "deep.yaml:1:257: nested deeper than 256 levels") != NULL);
  free(text);
}

static void parses_files(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  char path[512];
  snprintf(path, sizeof path, "%s/test_yaml_%d.yaml", base && *base ? base : "/tmp", (int)getpid());
  char dir[512];
  snprintf(dir, sizeof dir, "mkdir -p '%s'", base && *base ? base : "/tmp");
  CHECK_EQ_INT(system(dir), 0);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs("slug: hello\nslug: again\n", f);
  fclose(f);
  cJSON *out = NULL;
  hg_err err;
  CHECK_EQ_INT(hg_yaml_parse_file(path, &out, &err), HG_EINVAL);
  char want[600];
  snprintf(want, sizeof want, "%s:2:1: duplicate key 'slug'", path);
  CHECK_EQ_STR(err.msg, want);
  remove(path);
  CHECK_EQ_INT(hg_yaml_parse_file(path, &out, &err), HG_ENOENT);
}

TEST_MAIN(T(block_and_flow_collections), T(core_schema_scalars), T(explicit_tags),
          T(anchors_and_aliases), T(alias_bomb_is_stopped), T(one_document_only),
          T(duplicate_keys_are_refused), T(syntax_errors_say_where), T(deep_nesting_is_bounded),
          T(parses_files))
