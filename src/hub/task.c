/* Task definitions: validation into a normal form; a run's parameters checked against one. */
#include "hub/task.h"

#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "hub/fields.h"

static const char *const task_fields[] = {"slug",    "name",       "description", "parameters",
                                          "command", "image",      "workdir",     "env",
                                          "constraints", "scheduler", "resources", "timeout",
                                          NULL};
static const char *const param_fields[] = {"slug",     "name",    "description", "type",
                                           "required", "default", "options",     NULL};
static const char *const param_types[] = {"string", "text", "integer", "float", "boolean",
                                          "date",   "datetime", "json", NULL};

static bool in_list(const char *s, const char *const *list) {
  for (size_t i = 0; list[i]; i++)
    if (strcmp(s, list[i]) == 0) return true;
  return false;
}

static bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool hg_task_slug_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 64) return false;
  for (size_t i = 0; i < n; i++)
    if (!is_lower_alnum(s[i]) && s[i] != '_' && s[i] != '-') return false;
  return true;
}

static bool param_slug_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z')) return false;
  for (size_t i = 1; i < n; i++)
    if (!is_lower_alnum(s[i]) && s[i] != '_') return false;
  return true;
}

static bool env_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 256 || (!is_alpha(s[0]) && s[0] != '_')) return false;
  for (size_t i = 1; i < n; i++)
    if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_') return false;
  return true;
}

bool hg_task_config_name_valid(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 128) return false;
  for (size_t i = 0; i < n; i++)
    if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
      return false;
  return true;
}

/* scheme://rest, the scheme as RFC 3986 spells it. */
static bool ref_valid(const char *s) {
  if (!is_alpha(s[0])) return false;
  size_t i = 1;
  while (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.') i++;
  return strncmp(s + i, "://", 3) == 0 && s[i + 3] != '\0';
}

static bool date_valid(const char *s) {
  if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return false;
  for (int i = 0; i < 10; i++)
    if (i != 4 && i != 7 && !is_digit(s[i])) return false;
  int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  int m = (s[5] - '0') * 10 + (s[6] - '0');
  int d = (s[8] - '0') * 10 + (s[9] - '0');
  static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m < 1 || m > 12 || d < 1) return false;
  int max = days[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
  return d <= max;
}

/* Whether v is a value of the parameter type; *expected names the type for a message. */
static bool value_ok(const char *type, const cJSON *v, const char **expected) {
  if (!strcmp(type, "string") || !strcmp(type, "text")) {
    *expected = "a string";
    return cJSON_IsString(v);
  }
  if (!strcmp(type, "integer")) {
    *expected = "an integer";
    return hg_fields_is_int(v, NULL);
  }
  if (!strcmp(type, "float")) {
    *expected = "a number";
    return cJSON_IsNumber(v);
  }
  if (!strcmp(type, "boolean")) {
    *expected = "a boolean";
    return cJSON_IsBool(v);
  }
  if (!strcmp(type, "date")) {
    *expected = "a date (YYYY-MM-DD)";
    return cJSON_IsString(v) && date_valid(v->valuestring);
  }
  if (!strcmp(type, "datetime")) {
    *expected = "an RFC 3339 date-time";
    int64_t ms;
    return cJSON_IsString(v) && hg_clock_parse(v->valuestring, &ms) == 0;
  }
  *expected = "any JSON";
  return true; /* json */
}

static int value_error(const char *where, const char *type, const cJSON *v, const char *expected,
                       hg_err *err) {
  if (cJSON_IsString(v) && (!strcmp(type, "date") || !strcmp(type, "datetime")))
    return hg_err_set(err, HG_EINVAL, "%s: expected %s, got \"%.64s\"", where, expected,
                      v->valuestring);
  return hg_err_set(err, HG_EINVAL, "%s: expected %s, got %s", where, expected,
                    hg_fields_type_name(v));
}

static int unknown_fields(const cJSON *obj, const char *const *known, const char *where,
                          const char *what, hg_err *err) {
  for (const cJSON *m = obj->child; m; m = m->next)
    if (!in_list(m->string, known))
      return hg_err_set(err, HG_EINVAL, "%s%s: unknown field of %s", where, m->string, what);
  return 0;
}

/* The value of one option: either the value itself or {"label", "value"}. */
static const cJSON *option_value(const cJSON *opt) {
  if (cJSON_IsObject(opt)) return cJSON_GetObjectItemCaseSensitive(opt, "value");
  return opt;
}

static int check_options(const cJSON *options, const char *type, const char *where,
                         hg_err *err) {
  int i = 0;
  for (const cJSON *o = options->child; o; o = o->next, i++) {
    char at[96];
    snprintf(at, sizeof at, "%soptions[%d]", where, i);
    const cJSON *v = o;
    if (cJSON_IsObject(o)) {
      for (const cJSON *m = o->child; m; m = m->next)
        if (strcmp(m->string, "label") != 0 && strcmp(m->string, "value") != 0)
          return hg_err_set(err, HG_EINVAL, "%s.%s: unknown field of an option", at, m->string);
      const cJSON *label = cJSON_GetObjectItemCaseSensitive(o, "label");
      if (label && !cJSON_IsString(label))
        return hg_err_set(err, HG_EINVAL, "%s.label: expected a string, got %s", at,
                          hg_fields_type_name(label));
      v = cJSON_GetObjectItemCaseSensitive(o, "value");
      if (!v) return hg_err_set(err, HG_EINVAL, "%s.value: required", at);
      snprintf(at, sizeof at, "%soptions[%d].value", where, i);
    }
    const char *expected;
    if (strcmp(type, "json") != 0 && !value_ok(type, v, &expected))
      return value_error(at, type, v, expected, err);
  }
  return 0;
}

static bool among_options(const cJSON *options, const cJSON *v) {
  for (const cJSON *o = options->child; o; o = o->next) {
    const cJSON *ov = option_value(o);
    if (ov && cJSON_Compare(ov, v, 1)) return true;
  }
  return false;
}

static cJSON *dup(const cJSON *v) { return cJSON_Duplicate(v, 1); }

static int oom(hg_err *err) { return hg_err_set(err, HG_ENOMEM, "out of memory"); }

static int normalize_param(const cJSON *p, int i, cJSON *seen, cJSON **out, hg_err *err) {
  char where[48];
  snprintf(where, sizeof where, "parameters[%d].", i);
  if (!cJSON_IsObject(p))
    return hg_err_set(err, HG_EINVAL, "parameters[%d]: expected an object, got %s", i,
                      hg_fields_type_name(p));
  int rc = unknown_fields(p, param_fields, where, "a parameter", err);
  const char *slug = NULL, *name = NULL, *description = "", *type = NULL;
  bool required = false;
  const cJSON *options = NULL;
  if (rc || (rc = hg_fields_string(p, "slug", where, true, &slug, err))) return rc;
  if (!param_slug_valid(slug))
    return hg_err_set(err, HG_EINVAL, "%sslug: '%.80s' does not match [a-z][a-z0-9_]{0,63}",
                      where, slug);
  if (cJSON_GetObjectItemCaseSensitive(seen, slug))
    return hg_err_set(err, HG_EINVAL, "%sslug: duplicate parameter '%s'", where, slug);
  name = slug;
  if ((rc = hg_fields_string(p, "name", where, false, &name, err)) ||
      (rc = hg_fields_string(p, "description", where, false, &description, err)) ||
      (rc = hg_fields_string(p, "type", where, true, &type, err)) ||
      (rc = hg_fields_bool(p, "required", where, false, &required, err)) ||
      (rc = hg_fields_array(p, "options", where, false, &options, err)))
    return rc;
  if (!in_list(type, param_types))
    return hg_err_set(err, HG_EINVAL,
                      "%stype: '%.40s' is not one of string, text, integer, float, boolean, "
                      "date, datetime, json",
                      where, type);
  if (options && (rc = check_options(options, type, where, err))) return rc;
  const cJSON *def = cJSON_GetObjectItemCaseSensitive(p, "default");
  if (def && cJSON_IsNull(def)) def = NULL;
  if (def) {
    const char *expected;
    char at[64];
    snprintf(at, sizeof at, "%sdefault", where);
    if (!value_ok(type, def, &expected)) return value_error(at, type, def, expected, err);
    if (options && !among_options(options, def))
      return hg_err_set(err, HG_EINVAL, "%s: not one of the parameter's options", at);
  }
  cJSON *n = cJSON_CreateObject();
  if (!n) return oom(err);
  cJSON_AddStringToObject(n, "slug", slug);
  cJSON_AddStringToObject(n, "name", name);
  cJSON_AddStringToObject(n, "description", description);
  cJSON_AddStringToObject(n, "type", type);
  cJSON_AddBoolToObject(n, "required", required);
  if (def) cJSON_AddItemToObject(n, "default", dup(def));
  if (options) cJSON_AddItemToObject(n, "options", dup(options));
  cJSON_AddTrueToObject(seen, slug);
  *out = n;
  return 0;
}

static int normalize_env(const cJSON *env, cJSON *out, hg_err *err) {
  for (const cJSON *e = env->child; e; e = e->next) {
    if (!env_name_valid(e->string))
      return hg_err_set(err, HG_EINVAL, "env.%.80s: not a valid environment variable name",
                        e->string);
    if (cJSON_IsString(e)) {
      cJSON_AddStringToObject(out, e->string, e->valuestring);
      continue;
    }
    const cJSON *one = cJSON_IsObject(e) ? e->child : NULL;
    if (one && !one->next && cJSON_IsString(one)) {
      if (!strcmp(one->string, "config")) {
        if (!hg_task_config_name_valid(one->valuestring))
          return hg_err_set(err, HG_EINVAL,
                            "env.%s.config: '%.80s' does not match [A-Za-z0-9_.-]{1,128}",
                            e->string, one->valuestring);
        cJSON *c = cJSON_AddObjectToObject(out, e->string);
        cJSON_AddStringToObject(c, "config", one->valuestring);
        continue;
      }
      if (!strcmp(one->string, "ref")) {
        if (!ref_valid(one->valuestring))
          return hg_err_set(err, HG_EINVAL, "env.%s.ref: expected a URI such as vault://path",
                            e->string);
        cJSON *c = cJSON_AddObjectToObject(out, e->string);
        cJSON_AddStringToObject(c, "ref", one->valuestring);
        continue;
      }
    }
    return hg_err_set(err, HG_EINVAL,
                      "env.%s: expected a string, {\"config\": NAME} or {\"ref\": URI}",
                      e->string);
  }
  return 0;
}

int hg_task_normalize(const cJSON *def, cJSON **normal, hg_err *err) {
  *normal = NULL;
  if (!cJSON_IsObject(def))
    return hg_err_set(err, HG_EINVAL, "body: expected a task definition object, got %s",
                      hg_fields_type_name(def));
  int rc = unknown_fields(def, task_fields, "", "a task definition", err);
  if (rc) return rc;
  const char *slug = NULL, *name = NULL, *description = "", *image = NULL, *workdir = NULL,
             *scheduler = NULL;
  const cJSON *params = NULL, *command = NULL, *env = NULL, *constraints = NULL,
              *resources = NULL;
  int64_t timeout = HG_TASK_TIMEOUT_DEFAULT;
  if ((rc = hg_fields_string(def, "slug", "", true, &slug, err))) return rc;
  if (!hg_task_slug_valid(slug))
    return hg_err_set(err, HG_EINVAL, "slug: '%.80s' does not match [a-z0-9_-]{1,64}", slug);
  name = slug;
  if ((rc = hg_fields_string(def, "name", "", false, &name, err)) ||
      (rc = hg_fields_string(def, "description", "", false, &description, err)) ||
      (rc = hg_fields_array(def, "parameters", "", false, &params, err)) ||
      (rc = hg_fields_string(def, "image", "", false, &image, err)) ||
      (rc = hg_fields_array(def, "command", "", image == NULL, &command, err)) ||
      (rc = hg_fields_string(def, "workdir", "", false, &workdir, err)) ||
      (rc = hg_fields_object(def, "env", "", false, &env, err)) ||
      (rc = hg_fields_string_map(def, "constraints", "", false, &constraints, err)) ||
      (rc = hg_fields_string(def, "scheduler", "", false, &scheduler, err)) ||
      (rc = hg_fields_object(def, "resources", "", false, &resources, err)) ||
      (rc = hg_fields_int(def, "timeout", "", false, &timeout, err)))
    return rc;
  if (rc == 0 && !image && !command)
    return hg_err_set(err, HG_EINVAL, "command: required unless image is set");
  if (command) {
    if (!command->child) return hg_err_set(err, HG_EINVAL, "command: must not be empty");
    int i = 0;
    for (const cJSON *c = command->child; c; c = c->next, i++)
      if (!cJSON_IsString(c))
        return hg_err_set(err, HG_EINVAL, "command[%d]: expected a string, got %s", i,
                          hg_fields_type_name(c));
  }
  if (timeout < 1 || timeout > HG_TASK_TIMEOUT_MAX)
    return hg_err_set(err, HG_EINVAL, "timeout: %lld is outside 1..%d seconds",
                      (long long)timeout, HG_TASK_TIMEOUT_MAX);

  cJSON *n = cJSON_CreateObject();
  cJSON *plist = cJSON_CreateArray();
  cJSON *seen = cJSON_CreateObject();
  cJSON *nenv = cJSON_CreateObject();
  if (!n || !plist || !seen || !nenv) {
    cJSON_Delete(n);
    cJSON_Delete(plist);
    cJSON_Delete(seen);
    cJSON_Delete(nenv);
    return oom(err);
  }
  int i = 0;
  for (const cJSON *p = params ? params->child : NULL; p && !rc; p = p->next, i++) {
    cJSON *np = NULL;
    rc = normalize_param(p, i, seen, &np, err);
    if (!rc) cJSON_AddItemToArray(plist, np);
  }
  cJSON_Delete(seen);
  if (!rc && env) rc = normalize_env(env, nenv, err);
  if (rc) {
    cJSON_Delete(n);
    cJSON_Delete(plist);
    cJSON_Delete(nenv);
    return rc;
  }
  cJSON_AddStringToObject(n, "slug", slug);
  cJSON_AddStringToObject(n, "name", name);
  cJSON_AddStringToObject(n, "description", description);
  cJSON_AddItemToObject(n, "parameters", plist);
  cJSON_AddItemToObject(n, "command", command ? dup(command) : cJSON_CreateNull());
  cJSON_AddItemToObject(n, "image", image ? cJSON_CreateString(image) : cJSON_CreateNull());
  cJSON_AddItemToObject(n, "workdir", workdir ? cJSON_CreateString(workdir) : cJSON_CreateNull());
  cJSON_AddItemToObject(n, "env", nenv);
  cJSON_AddItemToObject(n, "constraints", constraints ? dup(constraints) : cJSON_CreateObject());
  cJSON_AddItemToObject(n, "scheduler",
                        scheduler ? cJSON_CreateString(scheduler) : cJSON_CreateNull());
  cJSON_AddItemToObject(n, "resources", resources ? dup(resources) : cJSON_CreateObject());
  cJSON_AddNumberToObject(n, "timeout", (double)timeout);
  *normal = n;
  return 0;
}

int hg_task_params(const cJSON *normal, const cJSON *given, cJSON **params, hg_err *err) {
  *params = NULL;
  const cJSON *plist = cJSON_GetObjectItemCaseSensitive(normal, "parameters");
  const char *slug = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(normal, "slug"));
  if (given && !cJSON_IsObject(given))
    return hg_err_set(err, HG_EINVAL, "params: expected an object, got %s",
                      hg_fields_type_name(given));
  for (const cJSON *g = given ? given->child : NULL; g; g = g->next) {
    bool known = false;
    for (const cJSON *p = plist ? plist->child : NULL; p && !known; p = p->next)
      known = !strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "slug")),
                      g->string);
    if (!known)
      return hg_err_set(err, HG_EINVAL, "params.%.80s: unknown parameter of task '%s'",
                        g->string, slug ? slug : "?");
  }
  cJSON *out = cJSON_CreateObject();
  if (!out) return oom(err);
  for (const cJSON *p = plist ? plist->child : NULL; p; p = p->next) {
    const char *ps = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "slug"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(p, "options");
    const cJSON *v = given ? cJSON_GetObjectItemCaseSensitive(given, ps) : NULL;
    if (v && cJSON_IsNull(v)) v = NULL;
    char where[96];
    snprintf(where, sizeof where, "params.%s", ps);
    if (v) {
      const char *expected;
      if (!value_ok(type, v, &expected)) {
        cJSON_Delete(out);
        return value_error(where, type, v, expected, err);
      }
      if (options && !among_options(options, v)) {
        cJSON_Delete(out);
        return hg_err_set(err, HG_EINVAL, "%s: not one of the parameter's options", where);
      }
      cJSON_AddItemToObject(out, ps, dup(v));
      continue;
    }
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(p, "default");
    if (def) {
      cJSON_AddItemToObject(out, ps, dup(def));
    } else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required"))) {
      cJSON_Delete(out);
      return hg_err_set(err, HG_EINVAL, "%s: required parameter is missing", where);
    }
  }
  *params = out;
  return 0;
}
