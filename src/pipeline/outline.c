/* Output, mask and chunk lines of a run: classification and chunk reassembly. */
#include "pipeline/outline.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsoncheck.h"

/* What an open key costs besides its data: the bookkeeping, so that a flood of distinct keys
 * with no data still reaches the limit. */
#define KEY_OVERHEAD 64

typedef struct chunk {
  struct chunk *next;
  char *key;
  size_t key_len;
  hg_buf data;
  bool dropped; /* went past the limit: swallow the rest of this key quietly */
} chunk;

struct hg_outline {
  hg_outline_config cfg;
  chunk *chunks;
  size_t pending;
};

int hg_outline_new(hg_outline **out, const hg_outline_config *cfg) {
  hg_outline *ol = calloc(1, sizeof *ol);
  if (!ol) return HG_ENOMEM;
  if (cfg) ol->cfg = *cfg;
  if (!ol->cfg.max_chunk_bytes) ol->cfg.max_chunk_bytes = HG_OUTLINE_DEFAULT_CHUNK_BYTES;
  *out = ol;
  return 0;
}

static void chunk_free(chunk *c) {
  free(c->key);
  hg_buf_free(&c->data);
  free(c);
}

void hg_outline_free(hg_outline *ol) {
  if (!ol) return;
  for (chunk *c = ol->chunks, *next; c; c = next) {
    next = c->next;
    chunk_free(c);
  }
  free(ol);
}

size_t hg_outline_pending(const hg_outline *ol) {
  return ol->pending;
}

static void result_clear(hg_outline_result *r) {
  hg_jspath_free(&r->path);
  hg_buf_free(&r->path_text);
  cJSON_Delete(r->value);
  hg_buf_free(&r->owned);
  *r = (hg_outline_result){0};
}

void hg_outline_result_free(hg_outline_result *r) {
  result_clear(r);
}

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Trims whitespace at both ends of [*s, *s + *n). */
static void trim(const char **s, size_t *n) {
  while (*n && is_space(**s)) (*s)++, (*n)--;
  while (*n && is_space((*s)[*n - 1])) (*n)--;
}

/* How much of a user-supplied name to quote in a message: at most 64 bytes, cut at a character
 * boundary so that the message stays valid UTF-8. */
static int quote_len(const char *s, size_t n) {
  if (n <= 64) return (int)n;
  n = 64;
  while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  return (int)n;
}

static int error(hg_outline_result *r, bool log_line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int error(hg_outline_result *r, bool log_line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  hg_err_setv(&r->err, HG_EINVAL, fmt, ap);
  va_end(ap);
  hg_jspath_free(&r->path);
  hg_buf_free(&r->path_text);
  r->kind = HG_OUTLINE_ERROR;
  r->log_line = log_line;
  return 0;
}

/* Parses text as exactly one JSON value (whitespace around it allowed). JSON means RFC 8259:
 * what cJSON would let through besides (a leading zero, "1.", a raw tab in a string, \u0000, a
 * number beyond a double) is refused too, so that a value is never stored other than printed.
 * On failure, why says what is wrong and where. */
static cJSON *parse_json(const char *text, size_t len, hg_err *why) {
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
  if (!v) {
    size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
    hg_err_set(why, HG_EINVAL, "error at offset %zu of the value", at);
    return NULL;
  }
  size_t at = (size_t)(end - text);
  while (at < len && is_space(text[at])) at++;
  if (at < len) {
    cJSON_Delete(v);
    hg_err_set(why, HG_EINVAL, "error at offset %zu of the value", at);
    return NULL;
  }
  if (hg_jsoncheck(text, len, v, why)) {
    cJSON_Delete(v);
    return NULL;
  }
  return v;
}

static int output_op(const char *line, size_t len, size_t pos, const char *name, int name_len,
                     hg_outputs_op op, hg_outline_result *r) {
  if (pos < len && line[pos] == ':') {
    size_t end = 0;
    hg_err perr = {0};
    int rc = hg_jspath_scan(&r->path, line + pos + 1, len - pos - 1, &end, &perr);
    if (rc == HG_ENOMEM) return rc;
    if (rc) return error(r, true, "%.*s: %s", name_len, name, perr.msg);
    pos += 1 + end;
  }
  const char *json = line + pos;
  size_t json_len = len - pos;
  trim(&json, &json_len);
  if (!json_len) return error(r, true, "%.*s: missing JSON value after the path", name_len, name);
  hg_err why = {0};
  r->value = parse_json(json, json_len, &why);
  if (!r->value)
    return error(r, true, "%.*s: invalid JSON value (%s)", name_len, name, why.msg);
  if (hg_jspath_format(&r->path, &r->path_text)) return HG_ENOMEM;
  r->kind = HG_OUTLINE_OUTPUT;
  r->op = op;
  r->log_line = true;
  return 0;
}

static int legacy(const char *line, size_t len, size_t pos, const char *name, int name_len,
                  hg_outline_result *r) {
  const char *key = HG_OUTPUTS_LEGACY_NAME;
  size_t key_len = strlen(key);
  if (pos < len && line[pos] == ':') {
    key = line + ++pos;
    while (pos < len && !is_space(line[pos])) pos++;
    key_len = (size_t)(line + pos - key);
    if (!key_len) return error(r, true, "%.*s: missing NAME after ':'", name_len, name);
  }
  int rc = hg_jspath_push_key(&r->path, key, key_len);
  if (rc == HG_EINVAL) return error(r, true, "%.*s: NAME contains a NUL byte", name_len, name);
  if (rc) return rc;
  const char *val = line + pos;
  size_t val_len = len - pos;
  trim(&val, &val_len);
  r->value = parse_json(val, val_len, NULL);
  if (!r->value) {
    /* Not JSON: the trimmed text itself, as a string. */
    char *s = malloc(val_len + 1);
    if (!s) return HG_ENOMEM;
    memcpy(s, val, val_len);
    s[val_len] = '\0';
    r->value = cJSON_CreateString(s);
    free(s);
    if (!r->value) return HG_ENOMEM;
  }
  if (hg_jspath_format(&r->path, &r->path_text)) return HG_ENOMEM;
  r->kind = HG_OUTLINE_OUTPUT;
  r->op = HG_OUTPUTS_APPEND;
  r->log_line = true;
  return 0;
}

static int mask(const char *line, size_t len, size_t pos, const char *name, int name_len,
                hg_outline_result *r) {
  if (pos < len && line[pos] == ':') {
    r->kind = HG_OUTLINE_LOG; /* `hangar_mask:x` is not the mask form */
    r->log_line = true;
    return 0;
  }
  size_t start = pos < len ? pos + 1 : len, end = len;
  while (end > start && is_space(line[end - 1])) end--;
  if (end == start)
    return error(r, false, "%.*s: no value given, nothing is masked", name_len, name);
  r->kind = HG_OUTLINE_MASK;
  r->log_line = false;
  r->mask = line + start;
  r->mask_len = end - start;
  return 0;
}

static chunk *find_chunk(hg_outline *ol, const char *key, size_t key_len, chunk ***link) {
  chunk **l = &ol->chunks;
  for (; *l; l = &(*l)->next)
    if ((*l)->key_len == key_len && memcmp((*l)->key, key, key_len) == 0) break;
  if (link) *link = l;
  return *l;
}

/* KEY after the ':' at line[pos]; *key_len 0 when there is none. */
static size_t chunk_key(const char *line, size_t len, size_t pos, const char **key, size_t *key_len) {
  if (pos >= len || line[pos] != ':') {
    *key = NULL;
    *key_len = 0;
    return pos;
  }
  *key = line + ++pos;
  while (pos < len && !is_space(line[pos])) pos++;
  *key_len = (size_t)(line + pos - *key);
  return pos;
}

static int chunk_add(hg_outline *ol, const char *line, size_t len, size_t pos, const char *name,
                     int name_len, hg_outline_result *r) {
  const char *key;
  size_t key_len;
  pos = chunk_key(line, len, pos, &key, &key_len);
  if (!key_len) return error(r, true, "%.*s: missing :KEY", name_len, name);
  const char *data = pos < len ? line + pos + 1 : line + len;
  size_t data_len = (size_t)(line + len - data);
  size_t limit = ol->cfg.max_chunk_bytes;

  r->kind = HG_OUTLINE_CHUNK;
  r->log_line = false;
  chunk *c = find_chunk(ol, key, key_len, NULL);
  if (c && c->dropped) return 0;
  if (!c) {
    size_t cost = key_len + KEY_OVERHEAD;
    if (cost > limit || ol->pending > limit - cost)
      return error(r, false,
                   "%.*s:%.*s: too much chunk data is pending (limit %zu bytes per run); this "
                   "chunk is dropped",
                   name_len, name, quote_len(key, key_len), key, limit);
    c = calloc(1, sizeof *c);
    if (!c || !(c->key = malloc(key_len + 1))) {
      free(c);
      return HG_ENOMEM;
    }
    memcpy(c->key, key, key_len);
    c->key[key_len] = '\0';
    c->key_len = key_len;
    c->next = ol->chunks;
    ol->chunks = c;
    ol->pending += cost;
  }
  if (data_len > limit || ol->pending > limit - data_len) {
    /* Keep the key as a marker so its later chunks and its end pass quietly: one error per
     * oversized line, not one per chunk. */
    ol->pending -= c->data.len;
    hg_buf_free(&c->data);
    c->dropped = true;
    return error(r, false,
                 "%.*s:%.*s: the chunked line is larger than the limit of %zu bytes of pending "
                 "chunk data per run; it is dropped",
                 name_len, name, quote_len(key, key_len), key, limit);
  }
  if (hg_buf_append(&c->data, data, data_len)) return HG_ENOMEM;
  ol->pending += data_len;
  return 0;
}

/* On success *whole holds the reassembled line (possibly empty) to classify next; it stays
 * NULL-data when there is nothing more to do. */
static int chunk_end(hg_outline *ol, const char *line, size_t len, size_t pos, const char *name,
                     int name_len, hg_outline_result *r, hg_buf *whole) {
  const char *key;
  size_t key_len;
  pos = chunk_key(line, len, pos, &key, &key_len);
  if (!key_len) return error(r, true, "%.*s: missing :KEY", name_len, name);
  for (size_t i = pos; i < len; i++)
    if (!is_space(line[i]))
      return error(r, true, "%.*s:%.*s: unexpected text after the key", name_len, name,
                   quote_len(key, key_len), key);
  chunk **link;
  chunk *c = find_chunk(ol, key, key_len, &link);
  if (!c)
    return error(r, false, "%.*s:%.*s: no chunks were received for this key", name_len, name,
                 quote_len(key, key_len), key);
  *link = c->next;
  ol->pending -= c->key_len + KEY_OVERHEAD + c->data.len;
  r->kind = HG_OUTLINE_CHUNK;
  r->log_line = false;
  if (!c->dropped) {
    *whole = c->data;
    c->data = (hg_buf)HG_BUF_INIT;
    if (!whole->data && hg_buf_append(whole, "", 0)) {
      chunk_free(c);
      return HG_ENOMEM;
    }
  }
  chunk_free(c);
  return 0;
}

static bool starts_with(const char *s, size_t len, const char *prefix, size_t plen) {
  return len >= plen && memcmp(s, prefix, plen) == 0;
}

static bool word_is(const char *w, size_t n, const char *name) {
  return strlen(name) == n && memcmp(w, name, n) == 0;
}

/* One classification step; a completed chunk_end hands back the reassembled line in *whole. */
static int classify(hg_outline *ol, const char *line, size_t len, hg_outline_result *r,
                    hg_buf *whole) {
  r->kind = HG_OUTLINE_LOG;
  r->log_line = true;
  size_t plen;
  if (starts_with(line, len, "hangar_", 7))
    plen = 7;
  else if (starts_with(line, len, "airplane_", 9))
    plen = 9;
  else
    return 0;
  size_t pos = plen;
  while (pos < len && line[pos] != ':' && line[pos] != ' ' && line[pos] != '\t') pos++;
  const char *w = line + plen, *name = line;
  size_t wn = pos - plen;
  int name_len = (int)pos;
  if (word_is(w, wn, "output_set"))
    return output_op(line, len, pos, name, name_len, HG_OUTPUTS_SET, r);
  if (word_is(w, wn, "output_append"))
    return output_op(line, len, pos, name, name_len, HG_OUTPUTS_APPEND, r);
  if (word_is(w, wn, "output")) return legacy(line, len, pos, name, name_len, r);
  if (word_is(w, wn, "mask")) return mask(line, len, pos, name, name_len, r);
  if (word_is(w, wn, "chunk")) return chunk_add(ol, line, len, pos, name, name_len, r);
  if (word_is(w, wn, "chunk_end")) return chunk_end(ol, line, len, pos, name, name_len, r, whole);
  return 0;
}

int hg_outline_line(hg_outline *ol, const char *line, size_t len, bool partial,
                    hg_outline_result *r) {
  result_clear(r);
  r->text = line;
  r->text_len = len;
  r->kind = HG_OUTLINE_LOG;
  r->log_line = true;
  if (partial) return 0;
  int rc;
  for (;;) {
    hg_buf whole = HG_BUF_INIT;
    rc = classify(ol, r->text, r->text_len, r, &whole);
    if (rc || !whole.data) {
      hg_buf_free(&whole);
      break;
    }
    /* The reassembled line replaces the chunk_end line and is handled as if printed whole,
     * chunk forms included (each round ends one key, so this terminates). */
    hg_buf redacted = HG_BUF_INIT;
    if (ol->cfg.redact) {
      rc = ol->cfg.redact(ol->cfg.redact_ud, whole.data, whole.len, &redacted);
      hg_buf_wipe(&whole);
      if (!rc && !redacted.data) rc = hg_buf_append(&redacted, "", 0);
      if (rc) {
        hg_buf_wipe(&redacted);
        break;
      }
    } else {
      redacted = whole;
    }
    hg_buf_free(&r->owned);
    r->owned = redacted;
    r->text = r->owned.data;
    r->text_len = r->owned.len;
  }
  if (rc) {
    const char *text = r->text;
    size_t text_len = r->text_len;
    hg_buf owned = r->owned;
    r->owned = (hg_buf)HG_BUF_INIT;
    result_clear(r);
    r->owned = owned;
    r->text = text;
    r->text_len = text_len;
    r->kind = HG_OUTLINE_ERROR;
    r->log_line = false;
    hg_err_set(&r->err, rc, "could not handle an output line: %s",
               rc == HG_ENOMEM ? "out of memory" : "the redactor failed");
  }
  return rc;
}
