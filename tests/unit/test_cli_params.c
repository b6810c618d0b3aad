/* Typing `--param k=v` by the task's declared parameter types, and `--param-json`. */
#include "check.h"
#include "cli/params.h"

static char *json_of(const char *type, const char *text, hg_err *err) {
  cJSON *v = NULL;
  if (hg_params_convert("p", type, text, &v, err) < 0) return NULL;
  char *s = cJSON_PrintUnformatted(v);
  cJSON_Delete(v);
  return s;
}

#define CHECK_CONVERTS(type, text, expected)        \
  do {                                              \
    hg_err e_ = {0};                                \
    char *s_ = json_of(type, text, &e_);            \
    CHECK_EQ_STR(s_ ? s_ : e_.msg, expected);       \
    cJSON_free(s_);                                 \
  } while (0)

#define CHECK_REFUSES(type, text, message)           \
  do {                                               \
    hg_err e_ = {0};                                 \
    char *s_ = json_of(type, text, &e_);             \
    CHECK(s_ == NULL);                               \
    CHECK_EQ_STR(e_.msg, message);                   \
    cJSON_free(s_);                                  \
  } while (0)

static void integers(void) {
  CHECK_CONVERTS("integer", "3", "3");
  CHECK_CONVERTS("integer", "-42", "-42");
  CHECK_CONVERTS("integer", "007", "7");
  /* Exactly as typed, even where a double would round it. */
  CHECK_CONVERTS("integer", "9007199254740993", "9007199254740993");
  CHECK_CONVERTS("integer", "-9223372036854775808", "-9223372036854775808");
  CHECK_REFUSES("integer", "3.5", "parameter 'p' is an integer, not '3.5'");
  CHECK_REFUSES("integer", "", "parameter 'p' is an integer, not ''");
  CHECK_REFUSES("integer", " 3", "parameter 'p' is an integer, not ' 3'");
  CHECK_REFUSES("integer", "0x10", "parameter 'p' is an integer, not '0x10'");
  CHECK_REFUSES("integer", "9223372036854775808", "parameter 'p' is an integer, not '9223372036854775808'");
}

static void floats(void) {
  CHECK_CONVERTS("float", "2.5", "2.5");
  CHECK_CONVERTS("float", "-1e3", "-1000");
  CHECK_CONVERTS("float", "7", "7");
  CHECK_CONVERTS("float", "0.1", "0.1");
  CHECK_CONVERTS("float", "0.30000000000000004", "0.30000000000000004");
  CHECK_REFUSES("float", "nan", "parameter 'p' is a float, not 'nan'");
  CHECK_REFUSES("float", "inf", "parameter 'p' is a float, not 'inf'");
  CHECK_REFUSES("float", "0x1p3", "parameter 'p' is a float, not '0x1p3'");
  CHECK_REFUSES("float", "1,5", "parameter 'p' is a float, not '1,5'");
}

static void booleans(void) {
  CHECK_CONVERTS("boolean", "true", "true");
  CHECK_CONVERTS("boolean", "YES", "true");
  CHECK_CONVERTS("boolean", "1", "true");
  CHECK_CONVERTS("boolean", "False", "false");
  CHECK_CONVERTS("boolean", "no", "false");
  CHECK_CONVERTS("boolean", "0", "false");
  CHECK_REFUSES("boolean", "maybe", "parameter 'p' is a boolean (true or false), not 'maybe'");
}

static void strings_stay_as_written(void) {
  CHECK_CONVERTS("string", "42", "\"42\"");
  CHECK_CONVERTS("text", "a \"quoted\"\nline", "\"a \\\"quoted\\\"\\nline\"");
  /* Dates are checked by the hub, which knows the calendar; the CLI passes them through. */
  CHECK_CONVERTS("date", "2026-02-30", "\"2026-02-30\"");
  CHECK_CONVERTS("datetime", "2026-11-28T10:00:00Z", "\"2026-11-28T10:00:00Z\"");
  CHECK_CONVERTS("some-future-type", "x", "\"x\"");
  /* Undeclared: a string, so that the hub's answer names the unknown parameter. */
  CHECK_CONVERTS(NULL, "7", "\"7\"");
  CHECK_CONVERTS("string", "", "\"\"");
}

static void json_values(void) {
  CHECK_CONVERTS("json", "{\"a\": [1, true]}", "{\"a\":[1,true]}");
  CHECK_CONVERTS("json", "\"s\"", "\"s\"");
  CHECK_REFUSES("json", "{a:1}", "parameter 'p' is JSON, and '{a:1}' is not valid JSON");
  CHECK_REFUSES("json", "1 2", "parameter 'p' is JSON, and '1 2' is not valid JSON");
}

static void build_uses_declared_types(void) {
  cJSON *declared = cJSON_Parse(
      "[{\"slug\":\"count\",\"type\":\"integer\"},{\"slug\":\"name\",\"type\":\"string\"},"
      "{\"slug\":\"loud\",\"type\":\"boolean\"},{\"slug\":\"meta\",\"type\":\"json\"}]");
  const char *texts[] = {"count=3", "name=007", "loud=yes", "other=1", "name=Ada=Lovelace"};
  const char *jsons[] = {"meta={\"k\":[1]}", "count=4"};
  cJSON *params = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_params_build(declared, texts, 5, jsons, 2, &params, &err), 0);
  char *s = cJSON_PrintUnformatted(params);
  /* A later value replaces an earlier one of the same name (--param-json comes last); the
   * value keeps everything after the first '='. */
  CHECK_EQ_STR(s, "{\"count\":4,\"name\":\"Ada=Lovelace\",\"loud\":true,\"other\":\"1\",\"meta\":{\"k\":[1]}}");
  cJSON_free(s);
  cJSON_Delete(params);
  cJSON_Delete(declared);
}

static void build_refuses_with_the_parameter_named(void) {
  cJSON *declared = cJSON_Parse("[{\"slug\":\"count\",\"type\":\"integer\"}]");
  cJSON *params = NULL;
  hg_err err = {0};
  const char *bad_type[] = {"count=three"};
  CHECK_EQ_INT(hg_params_build(declared, bad_type, 1, NULL, 0, &params, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "parameter 'count' is an integer, not 'three'");
  CHECK(params == NULL);
  const char *no_eq[] = {"count"};
  CHECK_EQ_INT(hg_params_build(declared, no_eq, 1, NULL, 0, &params, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "'count' is not NAME=VALUE");
  const char *no_name[] = {"=3"};
  CHECK_EQ_INT(hg_params_build(declared, no_name, 1, NULL, 0, &params, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "'=3' has no parameter name before '='");
  const char *bad_json[] = {"count=[1,"};
  CHECK_EQ_INT(hg_params_build(declared, NULL, 0, bad_json, 1, &params, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "--param-json count: '[1,' is not valid JSON");
  cJSON_Delete(declared);
}

TEST_MAIN(T(integers), T(floats), T(booleans), T(strings_stay_as_written), T(json_values),
          T(build_uses_declared_types), T(build_refuses_with_the_parameter_named))
