/* Run parameters from the command line, typed by the task's declaration. */
#include "cli/params.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int hg_params_split(const char *arg, char *name_out, size_t cap, const char **value,
                    hg_err *err) {
  const char *eq = strchr(arg, '=');
  if (!eq) return hg_err_set(err, HG_EINVAL, "'%s' is not NAME=VALUE", arg);
  size_t len = (size_t)(eq - arg);
  if (len == 0) return hg_err_set(err, HG_EINVAL, "'%s' has no parameter name before '='", arg);
  if (len >= cap) return hg_err_set(err, HG_EINVAL, "parameter name '%.*s...' is too long", 32, arg);
  memcpy(name_out, arg, len);
  name_out[len] = '\0';
  *value = eq + 1;
  return 0;
}

/* Numbers go out as raw JSON text, because cJSON prints a double with 15 significant digits
 * and would send 9007199254740993 as a different number. */
static int parse_integer(const char *text, char *json, size_t cap) {
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || isspace((unsigned char)text[0]) || text[0] == '+') return -1;
  snprintf(json, cap, "%lld", v);
  return 0;
}

static int parse_float(const char *text, char *json, size_t cap) {
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || isspace((unsigned char)text[0]) || !isfinite(v)) return -1;
  /* strtod also reads hex and "inf"; JSON has neither. */
  for (const char *p = text; *p; p++)
    if (strchr("0123456789+-.eE", *p) == NULL) return -1;
  /* The shortest text that reads back as the same double. */
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(json, cap, "%.*g", digits, v);
    if (strtod(json, NULL) == v) break;
  }
  return 0;
}

static int parse_boolean(const char *text, int *out) {
  static const char *const yes[] = {"true", "yes", "1"}, *const no[] = {"false", "no", "0"};
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(text, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(text, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

int hg_params_convert(const char *name, const char *type, const char *text, cJSON **out,
                      hg_err *err) {
  cJSON *v = NULL;
  char number[64];
  if (type && strcmp(type, "integer") == 0) {
    if (parse_integer(text, number, sizeof number) < 0)
      return hg_err_set(err, HG_EINVAL, "parameter '%s' is an integer, not '%s'", name, text);
    v = cJSON_CreateRaw(number);
  } else if (type && strcmp(type, "float") == 0) {
    if (parse_float(text, number, sizeof number) < 0)
      return hg_err_set(err, HG_EINVAL, "parameter '%s' is a float, not '%s'", name, text);
    v = cJSON_CreateRaw(number);
  } else if (type && strcmp(type, "boolean") == 0) {
    int b;
    if (parse_boolean(text, &b) < 0)
      return hg_err_set(err, HG_EINVAL, "parameter '%s' is a boolean (true or false), not '%s'",
                        name, text);
    v = cJSON_CreateBool(b);
  } else if (type && strcmp(type, "json") == 0) {
    v = cJSON_ParseWithOpts(text, NULL, 1);
    if (!v) return hg_err_set(err, HG_EINVAL, "parameter '%s' is JSON, and '%s' is not valid JSON", name, text);
  } else {
    v = cJSON_CreateString(text);
  }
  if (!v) return hg_err_set(err, HG_ENOMEM, "out of memory");
  *out = v;
  return 0;
}

static const char *declared_type(const cJSON *declared, const char *name) {
  const cJSON *p;
  cJSON_ArrayForEach(p, declared) {
    const cJSON *slug = cJSON_GetObjectItemCaseSensitive(p, "slug");
    if (cJSON_IsString(slug) && strcmp(slug->valuestring, name) == 0) {
      const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
      return cJSON_IsString(type) ? type->valuestring : "string";
    }
  }
  return NULL;
}

/* A later value of the same name replaces the earlier one in place. */
static int set_member(cJSON *obj, const char *name, cJSON *v, hg_err *err) {
  if (cJSON_GetObjectItemCaseSensitive(obj, name)) {
    if (cJSON_ReplaceItemInObjectCaseSensitive(obj, name, v)) return 0;
  } else if (cJSON_AddItemToObject(obj, name, v)) {
    return 0;
  }
  cJSON_Delete(v);
  return hg_err_set(err, HG_ENOMEM, "out of memory");
}

int hg_params_build(const cJSON *declared, const char *const *texts, size_t ntexts,
                    const char *const *jsons, size_t njsons, cJSON **out, hg_err *err) {
  cJSON *params = cJSON_CreateObject();
  if (!params) return hg_err_set(err, HG_ENOMEM, "out of memory");
  char name[128];
  const char *value;
  int rc = 0;
  for (size_t i = 0; i < ntexts && rc == 0; i++) {
    cJSON *v;
    rc = hg_params_split(texts[i], name, sizeof name, &value, err);
    if (rc == 0) rc = hg_params_convert(name, declared_type(declared, name), value, &v, err);
    if (rc == 0) rc = set_member(params, name, v, err);
  }
  for (size_t i = 0; i < njsons && rc == 0; i++) {
    rc = hg_params_split(jsons[i], name, sizeof name, &value, err);
    if (rc < 0) break;
    cJSON *v = cJSON_ParseWithOpts(value, NULL, 1);
    if (!v) {
      rc = hg_err_set(err, HG_EINVAL, "--param-json %s: '%s' is not valid JSON", name, value);
      break;
    }
    rc = set_member(params, name, v, err);
  }
  if (rc < 0) {
    cJSON_Delete(params);
    return rc;
  }
  *out = params;
  return 0;
}
