/* Task definitions: validation into a normal form, and a run's parameters checked against one. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "core/err.h"

#define HG_TASK_TIMEOUT_DEFAULT 3600
#define HG_TASK_TIMEOUT_MAX 43200

/* Validates a definition as deployed (JSON; the CLI converts YAML) and builds its normal form:
 * every field present, in the order slug, name, description, parameters, command, image,
 * workdir, env, constraints, scheduler, resources, timeout; each parameter as slug, name,
 * description, type, required, then default and options when given. Unknown fields are refused.
 * On failure returns HG_EINVAL with "<field>: <reason>" (e.g. "parameters[1].type: 'int' is not
 * one of string, text, ...") and *normal is NULL. */
int hg_task_normalize(const cJSON *def, cJSON **normal, hg_err *err);

/* Checks a run's params (an object, or NULL for none) against a normalised definition and
 * builds the params the run carries: every given value, plus defaults for the parameters not
 * given; optional parameters with neither are absent. Refuses unknown parameters, missing
 * required ones and values of the wrong type, with "params.<slug>: <reason>". */
int hg_task_params(const cJSON *normal, const cJSON *given, cJSON **params, hg_err *err);

bool hg_task_slug_valid(const char *slug);
/* Config variable names: [A-Za-z0-9_.-]{1,128}. */
bool hg_task_config_name_valid(const char *name);
