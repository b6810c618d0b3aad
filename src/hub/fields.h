/* Reading typed members of request JSON with messages that name the field; canonical JSON. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Each reader looks up obj[name] (case-sensitive). A missing member or JSON null is "absent":
 * with required set that is HG_EINVAL "<where><name>: required", else the out value is left
 * alone (so callers preset defaults) and 0 is returned. A member of the wrong type is HG_EINVAL
 * "<where><name>: expected <type>, got <type>". where is a prefix such as "parameters[0]." or
 * "" for the top level. */
int hg_fields_string(const cJSON *obj, const char *name, const char *where, bool required,
                     const char **out, hg_err *err);
int hg_fields_int(const cJSON *obj, const char *name, const char *where, bool required,
                  int64_t *out, hg_err *err);
int hg_fields_bool(const cJSON *obj, const char *name, const char *where, bool required,
                   bool *out, hg_err *err);
/* An object (or, for _array, an array); *out points into obj. */
int hg_fields_object(const cJSON *obj, const char *name, const char *where, bool required,
                     const cJSON **out, hg_err *err);
int hg_fields_array(const cJSON *obj, const char *name, const char *where, bool required,
                    const cJSON **out, hg_err *err);
/* An object whose every member is a string (labels, constraints). */
int hg_fields_string_map(const cJSON *obj, const char *name, const char *where, bool required,
                         const cJSON **out, hg_err *err);

/* The JSON type of an item as a message names it: "null", "boolean", "number", "string", ... */
const char *hg_fields_type_name(const cJSON *item);
/* True when item is a number with an integral value that a double represents exactly
 * (|v| <= 2^53); *out receives it. */
bool hg_fields_is_int(const cJSON *item, int64_t *out);

/* Compact JSON with every object's members sorted by name (byte order), for "equal as JSON,
 * member order ignored". Returns a malloc'd string or NULL when out of memory. */
char *hg_fields_canonical(const cJSON *item);
/* Compact JSON as cJSON prints it; NULL when out of memory. */
char *hg_fields_print(const cJSON *item);

/* Parses a request body that must be one JSON object, with nothing but whitespace after it.
 * NULL with HG_EINVAL "body: malformed JSON near offset N", "body: expected a JSON object, got
 * array" ... The caller has checked that the body is UTF-8 and not empty. */
cJSON *hg_fields_parse_object(const char *body, size_t len, hg_err *err);

/* Checks the bytes of a request body before it is parsed: 0, or HG_EINVAL "body: not valid
 * UTF-8" or "body: a raw control character (0x01) at offset N ...". JSON allows no byte below
 * 0x20 but tab, line feed and carriage return outside strings, and none inside (cJSON takes
 * them, and cuts a string at a NUL): refusing every other one costs nothing in the same pass. */
int hg_fields_check_body(const char *s, size_t len, hg_err *err);

/* True when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF): request bodies must be. */
bool hg_fields_utf8_valid(const char *s, size_t len);
