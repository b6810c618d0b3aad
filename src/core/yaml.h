/* YAML to JSON: one YAML document (task files, kubeconfig) read with libyaml into a cJSON
 * tree, with scalars typed by the YAML 1.2 core schema.
 *
 * - Mappings become objects, sequences arrays, block and flow styles alike. Keys must be
 *   scalars and are kept as their text ("1: a" has the key "1"); a key given twice in one
 *   mapping is an error.
 * - Plain scalars resolve per the core schema: null (~, null, Null, NULL, empty), booleans
 *   (true/True/TRUE, false/False/FALSE), integers (123, -4, 0o17, 0x1F), floats (1.5, 1e3,
 *   .inf, -.Inf, .nan); everything else is a string. Quoted and block (| >) scalars are
 *   strings. cJSON holds numbers as doubles: integers beyond 2^53 lose precision.
 * - Explicit tags: !!str, !!int, !!float, !!bool, !!null, !!map, !!seq and the non-specific
 *   "!" are honoured (a value that does not fit its tag is an error); any other tag is an
 *   error. The merge key "<<" has no special meaning (YAML 1.2 dropped it).
 * - Anchors and aliases are resolved by copying the anchored node. Copies count against
 *   HG_YAML_MAX_ALIAS_NODES per document, which stops "billion laughs" expansion; an alias
 *   to a node that contains it is an error.
 * - Exactly one document: a stream with a second document is an error; an empty stream is
 *   null.
 * - Every error says where: "NAME:LINE:COLUMN: message", e.g.
 *   "hello.task.yaml:7:3: duplicate key 'slug'" (1-based line and column). */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "core/err.h"

#define HG_YAML_MAX_DEPTH 256
#define HG_YAML_MAX_ALIAS_NODES 100000

/* Parses len bytes of text (need not be NUL-terminated). name labels messages (a file
 * name; NULL: "<yaml>"). On success *out is a new tree the caller frees with cJSON_Delete.
 * Errors: HG_EINVAL (bad YAML, with the position), HG_ETOOBIG (a limit), HG_ENOMEM. */
int hg_yaml_parse(const char *text, size_t len, const char *name, cJSON **out, hg_err *err);
/* Reads and parses a file; messages are labelled with path. HG_ENOENT/HG_EIO when it cannot
 * be read. */
int hg_yaml_parse_file(const char *path, cJSON **out, hg_err *err);
