/* The hub's request-JSON helpers: UTF-8 validation, canonical JSON, integer checks, messages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "hub/fields.h"
#include "hub/task.h"

static bool valid(const char *s) { return hg_fields_utf8_valid(s, strlen(s)); }

static void utf8(void) {
  CHECK(valid(""));
  CHECK(valid("plain ascii, long enough to take the eight-byte path twice over"));
  CHECK(valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9a\x80"));          /* é € rocket */
  CHECK(valid("0123456789abcdef\xc3\xa9"));                           /* after a fast run */
  CHECK(!valid("\xc3"));                                              /* truncated */
  CHECK(!valid("0123456789abcdef\xe2\x82"));                          /* truncated at the end */
  CHECK(!valid("\xc0\xaf"));                                          /* overlong '/' */
  CHECK(!valid("\xe0\x80\xaf"));                                      /* overlong */
  CHECK(!valid("\xed\xa0\x80"));                                      /* a surrogate */
  CHECK(!valid("\xf4\x90\x80\x80"));                                  /* past U+10FFFF */
  CHECK(!valid("\xff"));
  CHECK(!valid("abc\x80" "def"));                                     /* stray continuation */
}

static int body(const char *s, size_t n, hg_err *err) { return hg_fields_check_body(s, n, err); }

static void bodies_without_raw_control_bytes(void) {
  hg_err err = {0};
  const char *ok = "{\"a\": \"caf\xc3\xa9 \xf0\x9f\x9a\x80\",\r\n\t\"b\": [1, 2]}";
  CHECK_EQ_INT(body(ok, strlen(ok), &err), 0);
  /* A NUL or another control byte anywhere, inside a string or not, at any place in a word. */
  char text[64];
  for (size_t at = 0; at < 24; at++) {
    memset(text, 'x', sizeof text);
    text[at] = at % 2 ? '\x01' : '\0';
    CHECK_EQ_INT(body(text, sizeof text, &err), HG_EINVAL);
    char want[100];
    snprintf(want, sizeof want, "body: a raw control character (0x%02x) at offset %zu; JSON wants "
             "it escaped", at % 2 ? 1 : 0, at);
    CHECK_EQ_STR(err.msg, want);
  }
  CHECK_EQ_INT(body("{\"a\":\"\x1f\"}", 7, &err), HG_EINVAL);
  CHECK_EQ_INT(body("0123456789abcdef\xe2\x82", 18, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "body: not valid UTF-8 at offset 16");
  CHECK_EQ_INT(body("\xed\xa0\x80", 3, &err), HG_EINVAL);
  CHECK_EQ_INT(body("\x7f \xc3\xa9", 4, &err), 0);
}

/* Long bodies are skimmed many bytes a step: a single byte that matters is seen at every offset
 * of a step and across the ends of steps, and the bytes at the edges of the allowed ranges (' ',
 * DEL, a tab) do not stop the skim wrongly. */
static void long_bodies_byte_by_byte(void) {
  hg_err err = {0};
  char text[100], want[100];
  for (size_t at = 0; at < sizeof text; at++) {
    memset(text, ' ', sizeof text);
    text[at] = '\x1f';
    CHECK_EQ_INT(body(text, sizeof text, &err), HG_EINVAL);
    snprintf(want, sizeof want, "body: a raw control character (0x1f) at offset %zu; JSON wants "
             "it escaped", at);
    CHECK_EQ_STR(err.msg, want);
    text[at] = '\x80';
    CHECK_EQ_INT(body(text, sizeof text, &err), HG_EINVAL);
    snprintf(want, sizeof want, "body: not valid UTF-8 at offset %zu", at);
    CHECK_EQ_STR(err.msg, want);
    text[at] = at % 2 ? '\x7f' : '\t';
    CHECK_EQ_INT(body(text, sizeof text, &err), 0);
    if (at + 1 < sizeof text) {
      memcpy(text + at, "\xc3\xa9", 2);
      CHECK_EQ_INT(body(text, sizeof text, &err), 0);
    }
  }
}

/* A body cJSON would read differently from what was sent is refused, not stored changed. */
static void bodies_parse_strictly(void) {
  static const char *bad[] = {
      "{\"value\": \"v\\u0000w\"}", "{\"timeout\": 0100}", "{\"timeout\": 1.}",
      "{\"value\": \"a\tb\"}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hg_err err = {0};
    cJSON *doc = hg_fields_parse_object(bad[i], strlen(bad[i]), &err);
    CHECK(doc == NULL);
    cJSON_Delete(doc);
    CHECK_EQ_INT(err.code, HG_EINVAL);
    CHECK_CONTAINS(err.msg, "body: ");
  }
  hg_err err = {0};
  const char *ok = "{\"value\": \"tab\\there \\u00e9\", \"n\": 0.5, \"m\": -0, \"e\": 1e3}";
  cJSON *doc = hg_fields_parse_object(ok, strlen(ok), &err);
  CHECK(doc != NULL);
  cJSON_Delete(doc);
}

static void canonical_ignores_member_order(void) {
  cJSON *a = cJSON_Parse("{\"b\":1,\"a\":{\"y\":[{\"q\":1,\"p\":2}],\"x\":null}}");
  cJSON *b = cJSON_Parse("{\"a\":{\"x\":null,\"y\":[{\"p\":2,\"q\":1}]},\"b\":1}");
  cJSON *c = cJSON_Parse("{\"a\":{\"x\":null,\"y\":[{\"p\":2,\"q\":1}]},\"b\":2}");
  char *ca = hg_fields_canonical(a), *cb = hg_fields_canonical(b), *cc = hg_fields_canonical(c);
  CHECK_EQ_STR(ca, cb);
  CHECK_EQ_STR(ca, "{\"a\":{\"x\":null,\"y\":[{\"p\":2,\"q\":1}]},\"b\":1}");
  CHECK(strcmp(ca, cc) != 0);
  free(ca);
  free(cb);
  free(cc);
  cJSON_Delete(a);
  cJSON_Delete(b);
  cJSON_Delete(c);
}

static void integers_and_messages(void) {
  cJSON *o = cJSON_Parse("{\"n\":3,\"f\":2.5,\"big\":1e300,\"s\":\"x\",\"z\":null}");
  int64_t v = 0;
  hg_err err = {0};
  CHECK_EQ_INT(hg_fields_int(o, "n", "", true, &v, &err), 0);
  CHECK_EQ_INT(v, 3);
  CHECK_EQ_INT(hg_fields_int(o, "f", "", true, &v, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "f: expected an integer, got 2.5");
  CHECK_EQ_INT(hg_fields_int(o, "big", "", true, &v, &err), HG_EINVAL);
  CHECK_EQ_INT(hg_fields_int(o, "s", "runs[2].", true, &v, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "runs[2].s: expected an integer, got string");
  /* null is absent: an error only when required, else the default stays */
  v = 7;
  CHECK_EQ_INT(hg_fields_int(o, "z", "", false, &v, &err), 0);
  CHECK_EQ_INT(v, 7);
  CHECK_EQ_INT(hg_fields_int(o, "z", "", true, &v, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "z: required");
  cJSON_Delete(o);
}

static void params_against_a_definition(void) {
  cJSON *def = cJSON_Parse(
      "{\"slug\":\"t\",\"command\":[\"x\"],\"parameters\":["
      "{\"slug\":\"when\",\"type\":\"datetime\"},"
      "{\"slug\":\"ratio\",\"type\":\"float\",\"default\":0.5},"
      "{\"slug\":\"mode\",\"type\":\"string\",\"options\":[\"fast\",{\"label\":\"Slow\",\"value\":\"slow\"}],"
      "\"default\":\"fast\"},"
      "{\"slug\":\"flag\",\"type\":\"boolean\",\"required\":true}]}");
  cJSON *normal = NULL, *params = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_task_normalize(def, &normal, &err), 0);
  cJSON *given = cJSON_Parse("{\"flag\":false,\"mode\":\"slow\",\"when\":\"2026-11-28T10:00:00+01:00\"}");
  CHECK_EQ_INT(hg_task_params(normal, given, &params, &err), 0);
  char *text = cJSON_PrintUnformatted(params);
  CHECK_EQ_STR(text, "{\"when\":\"2026-11-28T10:00:00+01:00\",\"ratio\":0.5,\"mode\":\"slow\",\"flag\":false}");
  free(text);
  cJSON_Delete(params);
  cJSON_Delete(given);
  given = cJSON_Parse("{\"flag\":true,\"mode\":\"medium\"}");
  CHECK_EQ_INT(hg_task_params(normal, given, &params, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "params.mode: not one of the parameter's options");
  cJSON_Delete(given);
  given = cJSON_Parse("{\"flag\":true,\"when\":\"2026-11-28 10:00\"}");
  CHECK_EQ_INT(hg_task_params(normal, given, &params, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "params.when: expected an RFC 3339 date-time") == err.msg);
  if (strstr(err.msg, "params.when") != err.msg) fprintf(stderr, "  %s\n", err.msg);
  cJSON_Delete(given);
  /* an optional parameter with no default and no value is absent */
  given = cJSON_Parse("{\"flag\":true}");
  CHECK_EQ_INT(hg_task_params(normal, given, &params, &err), 0);
  CHECK(cJSON_GetObjectItemCaseSensitive(params, "when") == NULL);
  cJSON_Delete(params);
  cJSON_Delete(given);
  cJSON_Delete(normal);
  cJSON_Delete(def);
  def = cJSON_Parse("{\"slug\":\"t\",\"command\":[\"x\"],\"parameters\":[{\"slug\":\"m\",\"type\":\"string\","
                    "\"options\":[\"a\"],\"default\":\"b\"}]}");
  CHECK_EQ_INT(hg_task_normalize(def, &normal, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "parameters[0].default: not one of the parameter's options");
  cJSON_Delete(def);
}

TEST_MAIN(T(utf8), T(bodies_without_raw_control_bytes), T(long_bodies_byte_by_byte), T(bodies_parse_strictly), T(canonical_ignores_member_order), T(integers_and_messages),
          T(params_against_a_definition))
