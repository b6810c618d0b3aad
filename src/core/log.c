/* The process's own structured log: one JSON object a line. */
#include "core/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

static FILE *log_out;
static hg_log_level log_min = HG_LOG_INFO;
static char log_component[32] = "hangar";

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void hg_log_setup(FILE *out, hg_log_level min, const char *component) {
  log_out = out;
  log_min = min;
  if (component) snprintf(log_component, sizeof log_component, "%s", component);
}

hg_log_level hg_log_min_level(void) { return log_min; }

int hg_log_parse_level(const char *name) {
  for (int i = 0; i <= HG_LOG_OFF; i++)
    if (strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

void hg_log_obj(hg_log_level level, const char *msg, cJSON *fields) {
  if (level < log_min || level >= HG_LOG_OFF) {
    cJSON_Delete(fields);
    return;
  }
  char ts[HG_TS_LEN];
  hg_clock_format(hg_clock_now_ms(), ts);
  cJSON *line = cJSON_CreateObject();
  cJSON_AddStringToObject(line, "ts", ts);
  cJSON_AddStringToObject(line, "level", level_names[level]);
  cJSON_AddStringToObject(line, "component", log_component);
  cJSON_AddStringToObject(line, "msg", msg);
  if (fields) {
    cJSON *f = fields->child;
    while (f) {
      cJSON *next = f->next;
      cJSON_DetachItemViaPointer(fields, f);
      if (cJSON_GetObjectItemCaseSensitive(line, f->string))
        cJSON_Delete(f); /* the fixed fields win */
      else
        cJSON_AddItemToObject(line, f->string, f);
      f = next;
    }
    cJSON_Delete(fields);
  }
  char *text = cJSON_PrintUnformatted(line);
  cJSON_Delete(line);
  if (!text) return;
  FILE *out = log_out ? log_out : stderr;
  fprintf(out, "%s\n", text);
  fflush(out);
  free(text);
}

void hg_log(hg_log_level level, const char *msg, ...) {
  if (level < log_min || level >= HG_LOG_OFF) return;
  cJSON *fields = cJSON_CreateObject();
  va_list ap;
  va_start(ap, msg);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key) break;
    const char *value = va_arg(ap, const char *);
    if (value)
      cJSON_AddStringToObject(fields, key, value);
    else
      cJSON_AddNullToObject(fields, key);
  }
  va_end(ap);
  hg_log_obj(level, msg, fields);
}
