/* The process's own structured log: one JSON object a line. */
#pragma once

#include <cjson/cJSON.h>
#include <stdio.h>

typedef enum { HG_LOG_DEBUG = 0, HG_LOG_INFO, HG_LOG_WARN, HG_LOG_ERROR, HG_LOG_OFF } hg_log_level;

/* Where the log goes (default stderr), the lowest level written, and the component
 * named in every line ("hub", "agent"). */
void hg_log_setup(FILE *out, hg_log_level min, const char *component);
hg_log_level hg_log_min_level(void);
/* Parses "debug|info|warn|error|off"; returns -1 when unknown. */
int hg_log_parse_level(const char *name);

/* Writes {"ts","level","component","msg", key: value...}. The variadic part is pairs of
 * const char * key and const char * value, ended by NULL. A NULL value is written as null. */
void hg_log(hg_log_level level, const char *msg, ...);
/* As hg_log, with fields from a JSON object, which this takes ownership of. */
void hg_log_obj(hg_log_level level, const char *msg, cJSON *fields);
