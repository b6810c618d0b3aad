/* Run outputs: `set` and `append` ops at JS paths on an ordered JSON document (agent and hub). */
#pragma once

#include <cjson/cJSON.h>

#include "core/err.h"
#include "pipeline/jspath.h"

/*
 * The document is a cJSON tree whose root pointer may be NULL, which means JSON null: a run's
 * outputs start that way. Member order is kept: a member that is replaced stays where it was,
 * a new member goes last.
 *
 * set PATH VALUE     replaces the value at PATH. Members that are null or missing on the way are
 *                    created as objects; an array index must already exist. An empty PATH
 *                    replaces the whole document.
 * append PATH VALUE  adds VALUE to the end of the array at PATH; a null or missing value there
 *                    becomes [VALUE]. An empty PATH appends to the root (null becomes [VALUE]).
 *
 * Indexing into something that is not an array, a key into something that is not an object, an
 * index out of range, or an append to something that is not an array is an error whose message
 * names the path. On any error (including running out of memory) the document is unchanged.
 */

typedef enum hg_outputs_op {
  HG_OUTPUTS_SET,
  HG_OUTPUTS_APPEND,
} hg_outputs_op;

/* The default top-level key of the legacy `hangar_output VALUE` form. */
#define HG_OUTPUTS_LEGACY_NAME "output"

/* "set" or "append" (as events spell them) to the op; HG_EINVAL for anything else. */
int hg_outputs_op_from_name(const char *name, hg_outputs_op *op);
const char *hg_outputs_op_name(hg_outputs_op op);

/* Applies one op; value is copied, not taken. Returns 0, HG_EINVAL (a clash: err names the path
 * and what was found there) or HG_ENOMEM. */
int hg_outputs_apply(cJSON **root, hg_outputs_op op, const hg_jspath *path, const cJSON *value,
                     hg_err *err);

/* The same with the op and path as an output event carries them ("set", "a.b[0]"). A path that
 * does not parse is HG_EINVAL with the parser's message. */
int hg_outputs_apply_text(cJSON **root, const char *op, const char *path, const cJSON *value,
                          hg_err *err);

/* The legacy form: appends value to the array at the top-level key name (NULL or "" means
 * HG_OUTPUTS_LEGACY_NAME); a null root becomes an object. The name is taken verbatim, not as a
 * path. */
int hg_outputs_legacy(cJSON **root, const char *name, const cJSON *value, hg_err *err);
