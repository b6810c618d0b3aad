/* JS-style paths into run outputs: `a.b[0]["odd \"key\""]` as a list of key/index segments. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * Grammar (offsets in messages count bytes from the start of the path text):
 *
 *   path     = ""                        ; the root
 *            / head *tail
 *   head     = name / bracket
 *   tail     = "." name / bracket
 *   name     = 1*( ALPHA / DIGIT / "_" / "$" / "-" )      ; ASCII only, always an object key,
 *                                                        ; so `a.0` is the key "0"
 *   bracket  = "[" *SP ( index / dquoted / squoted ) *SP "]"
 *   index    = 1*DIGIT                   ; decimal, leading zeros allowed, at most 2147483647
 *   dquoted  = a JSON string, decoded by cJSON with JSON's escapes
 *   squoted  = "'" *( char / "\" ( "\" / "'" / DQUOTE / "n" / "r" / "t" ) ) "'"
 *
 * Spaces are allowed only inside brackets, around the index or quoted key; anywhere else a space
 * ends the path (hg_jspath_scan) or is an error (hg_jspath_parse). Quoted keys may hold any
 * UTF-8 text except NUL and raw control characters (write them as escapes); any other escape in
 * a single-quoted key is an error.
 *
 * The canonical text (hg_jspath_format) writes keys of the form [A-Za-z_$][A-Za-z0-9_$]* as
 * names, indices as [N], and every other key as a double-quoted JSON string; parsing it gives
 * back the same segments.
 */

#define HG_JSPATH_MAX_INDEX 2147483647u

typedef enum hg_jspath_kind {
  HG_JSPATH_KEY,   /* an object member */
  HG_JSPATH_INDEX, /* an array element */
} hg_jspath_kind;

typedef struct hg_jspath_seg {
  hg_jspath_kind kind;
  char *key;    /* HG_JSPATH_KEY: the decoded member name, NUL-terminated; else NULL */
  size_t index; /* HG_JSPATH_INDEX */
} hg_jspath_seg;

typedef struct hg_jspath {
  hg_jspath_seg *segs;
  size_t n; /* 0 is the root */
} hg_jspath;

#define HG_JSPATH_INIT {NULL, 0}

/* Parses the whole of text[0..len) as a path. On success fills *path (free it with
 * hg_jspath_free); on failure *path is empty and err says "invalid path at offset N: ...".
 * Returns 0, HG_EINVAL or HG_ENOMEM. */
int hg_jspath_parse(hg_jspath *path, const char *text, size_t len, hg_err *err);

/* Parses a path at the start of text and stops at the first space or tab outside brackets (or
 * at len), storing where it stopped in *end. For paths embedded in a line: `a.b {"x":1}`. */
int hg_jspath_scan(hg_jspath *path, const char *text, size_t len, size_t *end, hg_err *err);

/* Appends the canonical text of path to out (nothing for the root). 0 or HG_ENOMEM. */
int hg_jspath_format(const hg_jspath *path, hg_buf *out);

/* Appends the canonical text of the first n segments; the root is written as "(root)", so that
 * messages always name something. 0 or HG_ENOMEM. */
int hg_jspath_describe(const hg_jspath *path, size_t n, hg_buf *out);

/* Appends one key segment: a single-key path, as the legacy `hangar_output:NAME` form needs. */
int hg_jspath_push_key(hg_jspath *path, const char *key, size_t len);

bool hg_jspath_equal(const hg_jspath *a, const hg_jspath *b);

/* Frees the segments and leaves path empty (the root). */
void hg_jspath_free(hg_jspath *path);
