/* jsoncheck: what cJSON lets through but RFC 8259 refuses is refused, valid JSON still passes. */
#include <cjson/cJSON.h>
#include <string.h>

#include "check.h"
#include "core/jsoncheck.h"

/* Parses with cJSON, then checks; 0 when both accept. */
static int check(const char *text, hg_err *err) {
  cJSON *v = cJSON_ParseWithLength(text, strlen(text));
  if (!v) return -1;
  int rc = hg_jsoncheck(text, strlen(text), v, err);
  cJSON_Delete(v);
  return rc;
}

static void valid_json_passes(void) {
  const char *ok[] = {
      "0", "-0", "1", "-12", "1.5", "0.25", "1e5", "1E+5", "1e-5", "-0.0e0", "123456789012345678901",
      "\"\"", "\"a\\u0001b\"", "\"tab\\tnew\\nline\"", "\"\\\\u0000 is six characters\"",
      "\"\\u00e9\\ud83d\\ude00\"", "\"é😀\"", "[1,2,[3,{\"a\":-0.5}]]", "{\"k01\":\"01\",\"n\":10}",
      "true", "null", " [ 1 , 2 ] ", "1e-999",
  };
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    hg_err err = {0};
    int rc = check(ok[i], &err);
    if (rc) fprintf(stderr, "refused valid JSON %s: %s\n", ok[i], err.msg);
    CHECK_EQ_INT(rc, 0);
  }
}

static void lenient_forms_are_refused(void) {
  struct {
    const char *text, *says;
  } bad[] = {
      {"01", "leading zero at offset 0"},
      {"-01", "leading zero at offset 0"},
      {"[1, 00]", "leading zero at offset 4"},
      {"{\"a\":007}", "leading zero at offset 5"},
      {"1.", "after its point at offset 0"},
      {"1.e5", "after its point"},
      {"[2.]", "after its point at offset 1"},
      {"\"a\tb\"", "raw control character (0x09) inside a string at offset 2"},
      {"{\"k\x01\":1}", "raw control character (0x01)"},
      {"\"a\\u0000b\"", "\\u0000 inside a string at offset 2"},
      {"{\"a\\u0000\":1}", "\\u0000"},
      {"1e999", "too large for a double"},
      {"[1, {\"x\": -1e400}]", "too large for a double"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    hg_err err = {0};
    int rc = check(bad[i].text, &err);
    if (rc != HG_EINVAL) fprintf(stderr, "accepted %s\n", bad[i].text);
    CHECK_EQ_INT(rc, HG_EINVAL);
    CHECK_CONTAINS(err.msg, bad[i].says);
  }
}

static void the_range_check_needs_the_parsed_value(void) {
  hg_err err = {0};
  CHECK_EQ_INT(hg_jsoncheck("1e999", 5, NULL, &err), 0);
  CHECK_EQ_INT(hg_jsoncheck("01", 2, NULL, NULL), HG_EINVAL);
}

TEST_MAIN(T(valid_json_passes), T(lenient_forms_are_refused), T(the_range_check_needs_the_parsed_value))
