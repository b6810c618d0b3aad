/* Configuration files for the agent and the hub, loaded by lua/hangar/config.lua inside the
 * runtime (so values may be functions: hooks), with C accessors for scalar settings.
 *
 * The file runs in the runtime's mode (sandboxed for the agent and hub) in a fresh
 * environment: its top-level assignments are the keys, or it returns a table. Then
 * environments[NAME] is deep-merged over it (NAME from opts->env, else HANGAR_ENV), then
 * HANGAR_<KEY> variables override single keys ("__" separates nesting levels:
 * HANGAR_HEALTH__LISTEN sets health.listen), then the result is validated against the schema.
 * lua/hangar/config.lua documents the schema language and every rule in full. Errors name
 * the key and the file:line (or the HANGAR_* variable) that set it, one a line.
 *
 * The file's code runs under the runtime's CPU budget and memory cap. It may call async
 * functions only if the runtime is in blocking mode (hg_lua_set_blocking) while loading. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "lua/runtime.h"

typedef struct hg_lua_config hg_lua_config;

typedef struct hg_lua_config_opts {
  const char *path;           /* the configuration file */
  const char *schema;         /* module returning the schema table, found by require in the
                                 runtime's roots (e.g. "hangar.schema.agent") */
  const char *env;            /* environment section to merge (--env); NULL: HANGAR_ENV */
  const char *const *environ; /* "NAME=value" strings to take HANGAR_* from, NULL-terminated;
                                 NULL: the process's environment */
} hg_lua_config_opts;

/* Loads, merges and validates. On success *out holds the configuration table (kept in the
 * runtime's registry until hg_lua_config_free). Errors: HG_ENOENT (no such file), HG_EINVAL
 * (the file failed or did not validate: the message lists every problem), HG_ENOMEM,
 * HG_ETIMEDOUT (the file overran the CPU budget). */
int hg_lua_config_load(hg_lua *rt, const hg_lua_config_opts *opts, hg_lua_config **out,
                       hg_err *err);
/* Releases the table (the runtime must still be alive). NULL is a no-op. */
void hg_lua_config_free(hg_lua_config *cfg);
/* Pushes the configuration table onto the runtime's main stack. */
void hg_lua_config_push(hg_lua_config *cfg);

/* Scalar settings by dotted key ("health.listen"). Each returns 0 and the value, HG_ENOENT
 * when the key holds nothing (an optional key without default), or HG_EINVAL when it holds
 * another type; the message names the key. */
/* A copy the caller frees. */
int hg_lua_config_string(hg_lua_config *cfg, const char *key, char **out, hg_err *err);
int hg_lua_config_int(hg_lua_config *cfg, const char *key, int64_t *out, hg_err *err);
int hg_lua_config_number(hg_lua_config *cfg, const char *key, double *out, hg_err *err);
int hg_lua_config_bool(hg_lua_config *cfg, const char *key, int *out, hg_err *err);
/* A list of strings: a NULL-terminated array of copies; free it with
 * hg_lua_config_strings_free. */
int hg_lua_config_strings(hg_lua_config *cfg, const char *key, char ***out, hg_err *err);
void hg_lua_config_strings_free(char **list);
