/* The process log: one JSON object a line, levels filtered, fields kept, text escaped. */
#include <cjson/cJSON.h>

#include "check.h"
#include "core/log.h"

static char *captured;
static size_t captured_len;

static void capture(void (*emit)(void)) {
  FILE *f = open_memstream(&captured, &captured_len);
  hg_log_setup(f, HG_LOG_INFO, "test");
  emit();
  fclose(f);
  hg_log_setup(NULL, HG_LOG_INFO, "hangar");
}

static void emit_two(void) {
  hg_log(HG_LOG_DEBUG, "below the level", NULL);
  hg_log(HG_LOG_INFO, "run accepted", "run_id", "run_1", "note", NULL, NULL);
  cJSON *f = cJSON_CreateObject();
  cJSON_AddNumberToObject(f, "count", 3);
  cJSON_AddStringToObject(f, "msg", "a field may not replace the message");
  hg_log_obj(HG_LOG_ERROR, "quote \" newline \n tab \t", f);
}

static void lines_are_json_objects(void) {
  capture(emit_two);
  char *text = captured;
  char *nl = strchr(text, '\n');
  CHECK(nl != NULL);
  *nl = '\0';
  cJSON *first = cJSON_Parse(text);
  cJSON *second = cJSON_Parse(nl + 1);
  CHECK(first && second);
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "msg")), "run accepted");
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "level")), "info");
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "component")), "test");
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(first, "run_id")), "run_1");
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(first, "note")));
  const char *ts = cJSON_GetStringValue(cJSON_GetObjectItem(first, "ts"));
  CHECK(ts && strlen(ts) == 24 && ts[23] == 'Z');
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(second, "msg")), "quote \" newline \n tab \t");
  CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetObjectItem(second, "level")), "error");
  CHECK_EQ_INT(cJSON_GetNumberValue(cJSON_GetObjectItem(second, "count")), 3);
  /* Nothing below the level, and exactly two lines. */
  CHECK(strstr(nl + 1, "below the level") == NULL && strstr(text, "below the level") == NULL);
  CHECK(strchr(nl + 1, '\n') && strchr(nl + 1, '\n')[1] == '\0');
  cJSON_Delete(first);
  cJSON_Delete(second);
  free(text);
}

static void level_names(void) {
  CHECK_EQ_INT(hg_log_parse_level("debug"), HG_LOG_DEBUG);
  CHECK_EQ_INT(hg_log_parse_level("warn"), HG_LOG_WARN);
  CHECK_EQ_INT(hg_log_parse_level("off"), HG_LOG_OFF);
  CHECK_EQ_INT(hg_log_parse_level("verbose"), -1);
}

static void off_writes_nothing(void) {
  FILE *f = open_memstream(&captured, &captured_len);
  hg_log_setup(f, HG_LOG_OFF, "test");
  hg_log(HG_LOG_ERROR, "silenced", NULL);
  hg_log_obj(HG_LOG_ERROR, "silenced too", cJSON_CreateObject());
  fclose(f);
  CHECK_EQ_INT(captured_len, 0);
  free(captured);
  hg_log_setup(NULL, HG_LOG_INFO, "hangar");
}

TEST_MAIN(T(lines_are_json_objects), T(level_names), T(off_writes_nothing))
