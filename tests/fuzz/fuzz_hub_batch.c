/* Fuzz target for the hub's event batch reader: the fast walk over a body must give exactly what
 * reading it as one document gives (the same refusal and message, or the same first_seq and
 * the same events, read back as the hub serves them), and never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/batch.h"
#include "hub/fields.h"

/* Events [0, count) as the hub would read them back: parsed, printed compactly. */
static char *read_back(const hg_batch *b) {
  hg_buf t = HG_BUF_INIT;
  if (hg_buf_appendc(&t, '[') || hg_buf_append(&t, b->count ? b->text : "", b->len) ||
      hg_buf_appendc(&t, ']'))
    abort();
  cJSON *arr = cJSON_ParseWithLength(t.data, t.len);
  hg_buf_free(&t);
  if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != b->count) {
    fprintf(stderr, "stored events do not read back as %zu events\n", b->count);
    abort();
  }
  char *out = cJSON_PrintUnformatted(arr);
  cJSON_Delete(arr);
  if (!out) abort();
  return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  /* The API refuses a body that is not UTF-8, or holds raw control bytes, before it reads it. */
  if (size == 0 || hg_fields_check_body(body, size, NULL)) return 0;
  hg_batch fast, doc;
  hg_err efast = {0}, edoc = {0};
  int rfast = hg_batch_read(&fast, body, size, &efast);
  int rdoc = hg_batch_read_document(&doc, body, size, &edoc);
  if (rfast != rdoc || (rfast && strcmp(efast.msg, edoc.msg) != 0)) {
    fprintf(stderr, "fast: %d %s\ndocument: %d %s\n", rfast, efast.msg, rdoc, edoc.msg);
    abort();
  }
  if (!rfast) {
    if (fast.first_seq != doc.first_seq || fast.count != doc.count ||
        fast.n_outputs != doc.n_outputs)
      abort();
    for (size_t i = 0; i < fast.n_outputs; i++) {
      /* printed, since cJSON_Compare never finds an infinity equal to itself */
      char *x = cJSON_PrintUnformatted(fast.outputs[i].event);
      char *y = cJSON_PrintUnformatted(doc.outputs[i].event);
      if (!x || !y || fast.outputs[i].index != doc.outputs[i].index || strcmp(x, y) != 0) abort();
      free(x);
      free(y);
    }
    char *a = read_back(&fast), *b = read_back(&doc);
    if (strcmp(a, b) != 0) {
      fprintf(stderr, "fast: %s\ndocument: %s\n", a, b);
      abort();
    }
    free(a);
    free(b);
    /* A chunk cut anywhere keeps its events whole. */
    hg_store_chunk c;
    hg_batch_chunk(&fast, fast.count / 2, &c);
    for (size_t i = 0; i < c.count; i++)
      if (c.starts[i] >= c.len || c.text[c.starts[i]] != '{') abort();
  }
  hg_batch_free(&fast);
  hg_batch_free(&doc);
  return 0;
}
