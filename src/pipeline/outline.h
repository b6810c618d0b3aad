/* Recognising output, mask and chunk lines among the framed lines a run prints. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"
#include "pipeline/jspath.h"
#include "pipeline/outputs.h"

/*
 * One hg_outline per run. It sees each line after redaction and framing (UTF-8, without its
 * newline) and says what to do with it. Every form below is also accepted with the prefix
 * `airplane_` instead of `hangar_`; a directive's name ends at ':', a space, a tab or the end
 * of the line, so `hangar_outputs are nice` and `hangar_output_set{...}` are ordinary lines.
 *
 *   line                                  kind     logged  notes
 *   ordinary line, or any partial piece   LOG      yes     pieces of a line longer than the
 *                                                          event limit are never recognised
 *   hangar_output_set[:PATH] JSON         OUTPUT   yes     PATH ends at the first space or tab
 *   hangar_output_append[:PATH] JSON      OUTPUT   yes     outside brackets; no PATH or an
 *                                                          empty one is the root; JSON is the
 *                                                          rest of the line, trimmed
 *   hangar_output[:NAME] VALUE            OUTPUT   yes     append to the top-level key NAME
 *                                                          (default "output"), NAME taken
 *                                                          verbatim; VALUE trimmed, as JSON if
 *                                                          it parses, else as a string
 *   ...an invalid PATH, no JSON value,    ERROR    yes     message for a `system` event; the
 *      invalid JSON, an empty NAME                         outputs are not touched
 *   hangar_mask VALUE                     MASK     no      VALUE: the rest after one space or
 *                                                          tab, trailing whitespace trimmed
 *   hangar_mask with no or a blank VALUE  ERROR    no
 *   hangar_chunk:KEY DATA                 CHUNK    no      DATA: the rest after one space or
 *                                                          tab, verbatim (may be empty)
 *   hangar_chunk_end:KEY                  (the reassembled line, classified as if printed
 *                                          whole; `text` is that line)
 *   ...chunk_end for a KEY with no data   ERROR    no
 *   ...chunks past the memory limit       ERROR    no      reported once; the rest of that
 *                                                          KEY's chunks and its end are dropped
 *   hangar_chunk / _end without a KEY,    ERROR    yes     not a well-formed chunk line, so
 *      or _end with text after the KEY                     nothing was consumed
 *
 * Several KEYs may be open at once; their pending data together is bounded per run by
 * max_chunk_bytes. The reassembled line goes through the redact hook (when set) before it is
 * classified, because a secret split across chunk lines was never whole in the raw stream.
 */

#define HG_OUTLINE_DEFAULT_CHUNK_BYTES (4u * 1024 * 1024)

typedef enum hg_outline_kind {
  HG_OUTLINE_LOG,    /* an ordinary line */
  HG_OUTLINE_OUTPUT, /* an output op: op, path, path_text, value */
  HG_OUTLINE_MASK,   /* mask, mask_len: mask this value from now on */
  HG_OUTLINE_CHUNK,  /* a chunk line was taken in; nothing to do */
  HG_OUTLINE_ERROR,  /* err.msg: text for a `system` log event */
} hg_outline_kind;

/* Redacts text into out (appending); returns 0 or a negative code. */
typedef int (*hg_outline_redact_fn)(void *ud, const char *text, size_t len, hg_buf *out);

typedef struct hg_outline_config {
  size_t max_chunk_bytes; /* 0: HG_OUTLINE_DEFAULT_CHUNK_BYTES */
  hg_outline_redact_fn redact;
  void *redact_ud;
} hg_outline_config;

/* Zero-initialise before first use; hg_outline_line clears it again on each call, so one result
 * can serve a whole run. */
typedef struct hg_outline_result {
  hg_outline_kind kind;
  bool log_line;      /* log `text` on the line's stream (before any system event) */
  const char *text;   /* the line to log: the input, or the reassembled line (then in `owned`) */
  size_t text_len;
  hg_outputs_op op;   /* OUTPUT */
  hg_jspath path;     /* OUTPUT */
  hg_buf path_text;   /* OUTPUT: the canonical text of path, "" for the root, for the event */
  cJSON *value;       /* OUTPUT: owned by the result */
  const char *mask;   /* MASK: points into text */
  size_t mask_len;
  hg_err err;         /* ERROR */
  hg_buf owned;
} hg_outline_result;

typedef struct hg_outline hg_outline;

/* cfg may be NULL for the defaults. Returns 0 or HG_ENOMEM. */
int hg_outline_new(hg_outline **out, const hg_outline_config *cfg);
void hg_outline_free(hg_outline *ol);

/* Classifies one framed line. partial: the text is a piece of a line split for the event limit,
 * and is then always LOG. Pass it for every piece, the last one included: the framer delivers
 * that one with partial = false, so the caller passes `partial || the previous piece of the
 * same stream was partial`. Returns 0, or a negative code (out of memory, or the redact hook's)
 * with r set to an unlogged ERROR. */
int hg_outline_line(hg_outline *ol, const char *line, size_t len, bool partial,
                    hg_outline_result *r);

/* Bytes of chunk data (and keys) held for keys that have not ended yet. */
size_t hg_outline_pending(const hg_outline *ol);

void hg_outline_result_free(hg_outline_result *r);
