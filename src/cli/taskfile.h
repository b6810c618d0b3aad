/* Reading a task definition file (*.task.yaml) into the JSON the hub's POST /v1/tasks takes. */
#pragma once

#include <cjson/cJSON.h>

#include "core/err.h"

/* Reads path and converts its YAML to JSON. The document must be a mapping (one task).
 * Errors name the file and, for YAML errors, the line and column: "hello.task.yaml:3:7: ...". */
int hg_taskfile_load(const char *path, cJSON **out, hg_err *err);
