/* An event batch, the body of POST /v1/runs/{id}/events: read and checked in one pass, each
 * event's JSON kept as it was sent, ready to be stored as one chunk. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "hub/store.h"

typedef struct hg_batch_output {
  size_t index;  /* the event's place in the batch */
  cJSON *event;  /* the event, parsed */
} hg_batch_output;

typedef struct hg_batch {
  int64_t first_seq;
  size_t count;
  /* The events' JSON objects joined by commas: where the body already has them so (nothing
   * but a comma between them, as agents send them) a part of the body itself, which must then
   * outlive the batch; else a copy in own. */
  const char *text;
  size_t len;
  hg_buf own;
  uint32_t *starts;         /* where each one starts in text */
  hg_store_logref *logs;    /* what is known of each one's shape */
  size_t starts_cap;
  /* The output events, in order: the hub applies them to the run's outputs. Log events, nearly
   * all of a batch, are not kept parsed. */
  hg_batch_output *outputs;
  size_t n_outputs, outputs_cap;
  cJSON *document;          /* the whole body, when it was read as one document (outputs point
                               into it then) */
} hg_batch;

/* Reads and checks a batch. 0; HG_EINVAL (400) or HG_ETOOBIG (413: an event's text over 64 KiB)
 * with err naming the field, exactly as for a body parsed whole; HG_ENOMEM. b needs
 * hg_batch_free either way, and may point into body until then. The body must already be
 * known to be UTF-8. */
int hg_batch_read(hg_batch *b, const char *body, size_t len, hg_err *err);
/* Reads the body as one document, the way hg_batch_read does when its walk meets anything
 * unusual: the reference the fast way is held to (same result, same refusals). */
int hg_batch_read_document(hg_batch *b, const char *body, size_t len, hg_err *err);
/* The events from index skip on (those the run does not have yet) as a chunk starting at seq
 * first_seq + skip. The chunk points into b, whose offsets it rebases: call it once. */
void hg_batch_chunk(hg_batch *b, size_t skip, hg_store_chunk *out);
void hg_batch_free(hg_batch *b);
