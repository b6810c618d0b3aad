/* Run parameters from the command line: `--param k=v` text converted to the JSON type the
 * task declares, `--param-json k=JSON` taken as JSON. */
#pragma once

#include <cjson/cJSON.h>

#include "core/err.h"

/* Splits "name=value" at the first '='. The name is copied into name_out (size cap); value
 * points into arg. HG_EINVAL when there is no '=' or the name is empty or too long. */
int hg_params_split(const char *arg, char *name_out, size_t cap, const char **value,
                    hg_err *err);

/* Converts the text of parameter name to a JSON value of the declared type:
 * string, text, date, datetime and unknown types stay strings (the hub checks date formats);
 * integer: a decimal integer (64-bit); float: a finite
 * decimal number; boolean: true/false, yes/no, 1/0 (any case); json: parsed as JSON.
 * type NULL (a parameter the task does not declare) keeps the text as a string, so that the
 * hub can name it. HG_EINVAL names the parameter, the type and the value. */
int hg_params_convert(const char *name, const char *type, const char *text, cJSON **out,
                      hg_err *err);

/* Builds the "params" object of a new run. declared is the task's "parameters" array (each
 * {"slug", "type"}; NULL when unknown). texts are "k=v" (--param) and jsons "k=JSON"
 * (--param-json), applied in that order, so a later value of the same name wins. */
int hg_params_build(const cJSON *declared, const char *const *texts, size_t ntexts,
                    const char *const *jsons, size_t njsons, cJSON **out, hg_err *err);
