/* Reading an event batch: the body's few structural characters walked here, every key, value
 * and event parsed by cJSON on its own, each event's bytes kept as sent. */
#include "hub/batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsoncheck.h"
#include "hub/fields.h"
#include "hub/hub.h"
#include "hub/logshape.h"

enum { KIND_LOG, KIND_OUTPUT };

/* Checks one event; its kind, or HG_EINVAL / HG_ETOOBIG with err naming the field. */
static int check_event(const cJSON *e, size_t i, hg_err *err) {
  char where[48];
  snprintf(where, sizeof where, "events[%zu].", i);
  if (!cJSON_IsObject(e))
    return hg_err_set(err, HG_EINVAL, "events[%zu]: expected an object, got %s", i,
                      hg_fields_type_name(e));
  const char *kind = NULL, *ts = NULL, *stream = NULL, *text = NULL, *op = NULL, *path = NULL;
  bool partial = false;
  if (hg_fields_string(e, "kind", where, true, &kind, err) ||
      hg_fields_string(e, "ts", where, false, &ts, err))
    return HG_EINVAL;
  if (!strcmp(kind, "log")) {
    if (hg_fields_string(e, "stream", where, true, &stream, err) ||
        hg_fields_string(e, "text", where, true, &text, err) ||
        hg_fields_bool(e, "partial", where, false, &partial, err))
      return HG_EINVAL;
    if (strcmp(stream, "stdout") && strcmp(stream, "stderr") && strcmp(stream, "system"))
      return hg_err_set(err, HG_EINVAL, "%sstream: '%.20s' is not stdout, stderr or system",
                        where, stream);
    size_t len = strlen(text);
    if (len > HG_HUB_EVENT_TEXT_LIMIT)
      return hg_err_set(err, HG_ETOOBIG,
                        "%stext: %zu bytes, over the 64 KiB limit of one event (send a long "
                        "line as partial events)",
                        where, len);
    return KIND_LOG;
  }
  if (!strcmp(kind, "output")) {
    if (hg_fields_string(e, "op", where, true, &op, err) ||
        hg_fields_string(e, "path", where, false, &path, err))
      return HG_EINVAL;
    if (strcmp(op, "set") && strcmp(op, "append"))
      return hg_err_set(err, HG_EINVAL, "%sop: '%.20s' is not set or append", where, op);
    if (!cJSON_GetObjectItemCaseSensitive(e, "value"))
      return hg_err_set(err, HG_EINVAL, "%svalue: required", where);
    return KIND_OUTPUT;
  }
  return hg_err_set(err, HG_EINVAL, "%skind: '%.20s' is not log or output", where, kind);
}

/* Nearly every event is a well-formed log line. One pass over its members, without the names
 * and messages an error needs, tells those apart (a member's first occurrence counts, as for a
 * lookup; null is absent); anything else goes through check_event, which says what is wrong. */
static int quick_kind(const cJSON *e, bool *nested) {
  const cJSON *kind = NULL, *ts = NULL, *stream = NULL, *text = NULL, *partial = NULL;
  for (const cJSON *m = e->child; m; m = m->next) {
    if (cJSON_IsArray(m) || cJSON_IsObject(m)) *nested = true;
    const char *n = m->string;
    const cJSON **slot = NULL;
    switch (n[0]) {
    case 'k': slot = !strcmp(n, "kind") ? &kind : NULL; break;
    case 't': slot = !strcmp(n, "text") ? &text : !strcmp(n, "ts") ? &ts : NULL; break;
    case 's': slot = !strcmp(n, "stream") ? &stream : NULL; break;
    case 'p': slot = !strcmp(n, "partial") ? &partial : NULL; break;
    default: break;
    }
    if (slot && !*slot) *slot = m;
  }
  if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "log")) return -1;
  if (ts && !cJSON_IsNull(ts) && !cJSON_IsString(ts)) return -1;
  if (partial && !cJSON_IsNull(partial) && !cJSON_IsBool(partial)) return -1;
  if (!cJSON_IsString(stream) || !cJSON_IsString(text)) return -1;
  const char *st = stream->valuestring;
  if (strcmp(st, "stdout") && strcmp(st, "stderr") && strcmp(st, "system")) return -1;
  if (strlen(text->valuestring) > HG_HUB_EVENT_TEXT_LIMIT) return -1;
  return KIND_LOG;
}

/* ---- the usual log event, read by its shape ----
 *
 * Agents print a log event with cJSON, always the same way: {"kind":"log","ts":T,"stream":S,
 * "text":X,"partial":P}. An event whose bytes are exactly that, around two strings, is a valid
 * log event as soon as cJSON reads T and X as strings (and X is within the limit): its five
 * members need not become a tree of fifteen allocations to be checked one by one. The constant
 * parts are what cJSON prints for such an event; any other event, or the same one spelt
 * differently (spaces, another member order, escapes in a name), goes the general way. */

static bool match(const char *s, size_t n, size_t *i, const char *part, size_t len) {
  if (n - *i < len || memcmp(s + *i, part, len) != 0) return false;
  *i += len;
  return true;
}

/* The JSON string at s[*i..n), read by cJSON: its decoded length, or -1 (not a string). */
static long string_at(const char *s, size_t n, size_t *i) {
  if (*i >= n || s[*i] != '"') return -1;
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(s + *i, n - *i, &end, 0);
  long len = cJSON_IsString(v) ? (long)strlen(v->valuestring) : -1;
  cJSON_Delete(v);
  if (len >= 0) *i = (size_t)(end - s);
  return len;
}

/* A log event in the usual shape at s[i]: true with *end past it and *ref saying its parts.
 * *last is the previous usual event's ts string (quotes included): a run's lines come hundreds
 * to a millisecond, and bytes equal to a string cJSON read, up to and including its closing
 * quote, are that same string, so cJSON need not read it again. */
static bool usual_log(const hg_logshape *sh, const char *s, size_t n, size_t i, size_t *end,
                      hg_store_logref *ref, const char **last, size_t *last_len, bool *new_ts,
                      size_t *text_at) {
  size_t from = i;
  if (!sh || !match(s, n, &i, sh->head, sh->head_len)) return false;
  size_t ts = i;
  *new_ts = !(*last && n - i > *last_len && !memcmp(s + i, *last, *last_len));
  if (!*new_ts)
    i += *last_len;
  else if (string_at(s, n, &i) < 0)
    return false;
  size_t ts_len = i - ts;
  int st = 0;
  while (st < 3 && !match(s, n, &i, sh->mid[st], sh->mid_len[st])) st++;
  if (st == 3) return false;
  *text_at = i;
  long text = string_at(s, n, &i);
  if (text < 0 || (size_t)text > HG_HUB_EVENT_TEXT_LIMIT) return false;
  int p = 0;
  while (p < 2 && !match(s, n, &i, sh->tail[p], sh->tail_len[p])) p++;
  if (p == 2 || ts_len > UINT32_MAX || i - from > UINT32_MAX) return false;
  *end = i;
  *ref = (hg_store_logref){.usual = 1, .stream = (uint8_t)st, .partial = (uint8_t)p,
                           .ts_len = (uint32_t)ts_len};
  *last = s + ts;
  *last_len = ts_len;
  return true;
}

/* ---- building the chunk ---- */

/* Adds the event json[0..len). While each event of the body follows the one before it after
 * exactly one comma, the batch's text is that stretch of the body (in_body): no copy. Anything
 * else between two events, or an event that is not in the body, makes it a copy in own from
 * there on. Batches are at most 8 MiB (16 MiB read), far inside 32-bit offsets. */
static int add_event(hg_batch *b, const char *json, size_t len, bool in_body, size_t body_len,
                     const hg_store_logref *ref) {
  if (b->count == b->starts_cap) {
    size_t ncap = b->starts_cap ? b->starts_cap * 2 : 64;
    uint32_t *p = realloc(b->starts, ncap * sizeof *p);
    if (!p) return HG_ENOMEM;
    b->starts = p;
    hg_store_logref *l = realloc(b->logs, ncap * sizeof *l);
    if (!l) return HG_ENOMEM;
    b->logs = l;
    b->starts_cap = ncap;
  }
  b->logs[b->count] = ref ? *ref : (hg_store_logref){0};
  bool copying = b->own.data != NULL;
  if (in_body && !copying && (b->count == 0 || (b->text + b->len + 1 == json && json[-1] == ','))) {
    if (b->count == 0) b->text = json;
    b->starts[b->count++] = (uint32_t)(json - b->text);
    b->len = (size_t)(json + len - b->text);
    return 0;
  }
  if (!copying) {
    /* The events take about the body's size. */
    if (hg_buf_reserve(&b->own, (body_len > b->len ? body_len : b->len) + 1) ||
        hg_buf_append(&b->own, b->count ? b->text : "", b->count ? b->len : 0))
      return HG_ENOMEM;
  }
  if (b->count && hg_buf_appendc(&b->own, ',')) return HG_ENOMEM;
  b->starts[b->count] = (uint32_t)b->own.len;
  if (hg_buf_append(&b->own, json, len)) return HG_ENOMEM;
  b->count++;
  b->text = b->own.data;
  b->len = b->own.len;
  return 0;
}

static int add_output(hg_batch *b, size_t index, cJSON *event) {
  if (b->n_outputs == b->outputs_cap) {
    size_t ncap = b->outputs_cap ? b->outputs_cap * 2 : 8;
    hg_batch_output *p = realloc(b->outputs, ncap * sizeof *p);
    if (!p) return HG_ENOMEM;
    b->outputs = p;
    b->outputs_cap = ncap;
  }
  b->outputs[b->n_outputs++] = (hg_batch_output){.index = index, .event = event};
  return 0;
}

/* ---- the fast way: a walk over the structure ---- */

/* Parsing the batch as one tree, checking it, then printing every event again cost more than
 * all the rest of storing it. Here each event is parsed by cJSON alone and freed at once (its
 * memory is reused for the next while it is still in cache), and its bytes are stored as sent.
 * Only the brackets, colons and commas between them are looked at here. Anything unusual (a
 * byte-order mark, a repeated "events", a non-object event, nesting near cJSON's limit, a syntax
 * error) gives up: the body is then read as one document, which accepts or refuses it with the
 * same words as any other request body. */

typedef enum { WALK_OK, WALK_OTHER, WALK_NOMEM } walk_result;

static bool ws(char ch) { return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t'; }

static size_t skip_ws(const char *s, size_t n, size_t i) {
  while (i < n && ws(s[i])) i++;
  return i;
}

/* The one JSON value at s[*i..n), parsed by cJSON; *i moves past it. Only a byte that can begin
 * a value is let through: cJSON would skip a byte-order mark, which only a document's very first
 * bytes may be. */
static cJSON *value_at(const char *s, size_t n, size_t *i) {
  if (*i >= n || !s[*i] || !strchr("{[\"-0123456789tfn", s[*i])) return NULL;
  const char *end = NULL;
  cJSON *v = cJSON_ParseWithLengthOpts(s + *i, n - *i, &end, 0);
  if (v) *i = (size_t)(end - s);
  return v;
}

/* Containers nested in v, v included. cJSON refuses a document nested CJSON_NESTING_LIMIT deep;
 * a value parsed alone starts shallower than inside the body, so the walk checks the limit the
 * whole body would have met. */
static int depth(const cJSON *v) {
  if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return 0;
  int d = 0;
  for (const cJSON *c = v->child; c; c = c->next) {
    int k = depth(c);
    if (k > d) d = k;
  }
  return d + 1;
}

typedef struct walk_state {
  cJSON *top;        /* the body's members but events (only first_seq is kept) */
  bool has_events;
  int event_rc;      /* the first event's refusal */
  hg_err event_err;
  /* The rules of JSON cJSON leaves unchecked (hg_jsoncheck), applied as the walk goes, in the
   * body's order: body[0, checked) is done; the first breach found is kept. */
  size_t checked;
  int check_rc;
  hg_err check_err;
} walk_state;

/* Checks body[w->checked, to) unless a breach was found already. */
static void check_upto(walk_state *w, const char *s, size_t to) {
  if (!w->check_rc && to > w->checked) w->check_rc = hg_jsoncheck_span(s, w->checked, to, &w->check_err);
  if (to > w->checked) w->checked = to;
}

/* The events array, from its '['. An event that fails its checks is remembered, and the walk
 * goes on: a syntax error further on, or a bad first_seq, is what the answer names first. */
static walk_result walk_events(hg_batch *b, walk_state *w, const char *s, size_t n, size_t *pi) {
  size_t i = skip_ws(s, n, *pi + 1);
  if (i < n && s[i] == ']') {
    *pi = i + 1;
    return WALK_OK;
  }
  const hg_logshape *sh = hg_logshape_get();
  const char *last_ts = NULL;
  size_t last_ts_len = 0;
  for (size_t k = 0;; k++) {
    if (i >= n || s[i] != '{') return WALK_OTHER;
    size_t from = i, end;
    hg_store_logref ref;
    bool new_ts;
    size_t text_at;
    if (!w->event_rc && usual_log(sh, s, n, i, &end, &ref, &last_ts, &last_ts_len, &new_ts, &text_at)) {
      /* Of a usual event only its two strings can break a rule (its other bytes are the
       * shape's): checked now, while in the cache, and a ts equal to the one before not again. */
      check_upto(w, s, from);
      size_t ts_at = (size_t)(last_ts - s);
      if (new_ts && !w->check_rc) w->check_rc = hg_jsoncheck_span(s, ts_at, ts_at + last_ts_len, &w->check_err);
      w->checked = text_at;
      check_upto(w, s, end);
      if (add_event(b, s + from, end - from, true, n, &ref)) return WALK_NOMEM;
      i = skip_ws(s, n, end);
      if (i < n && s[i] == ',') {
        i = skip_ws(s, n, i + 1);
        continue;
      }
      if (i < n && s[i] == ']') {
        *pi = i + 1;
        return WALK_OK;
      }
      return WALK_OTHER;
    }
    cJSON *ev = value_at(s, n, &i);
    if (!ev) return WALK_OTHER;
    bool nested = false;
    int quick = quick_kind(ev, &nested);
    /* the body, the array and the event itself are three levels */
    if (nested && depth(ev) > CJSON_NESTING_LIMIT - 2) {
      cJSON_Delete(ev);
      return WALK_OTHER;
    }
    int kind = KIND_LOG;
    if (!w->event_rc && quick != KIND_LOG) {
      kind = check_event(ev, k, &w->event_err);
      if (kind < 0) {
        w->event_rc = kind;
        kind = KIND_LOG;
      }
    }
    if (!w->event_rc && add_event(b, s + from, i - from, true, n, NULL)) {
      cJSON_Delete(ev);
      return WALK_NOMEM;
    }
    if (kind == KIND_OUTPUT && !w->event_rc) {
      if (add_output(b, k, ev)) {
        cJSON_Delete(ev);
        return WALK_NOMEM;
      }
    } else {
      cJSON_Delete(ev);
    }
    i = skip_ws(s, n, i);
    if (i < n && s[i] == ',') {
      i = skip_ws(s, n, i + 1);
      continue;
    }
    if (i < n && s[i] == ']') {
      *pi = i + 1;
      return WALK_OK;
    }
    return WALK_OTHER;
  }
}

static walk_result walk(hg_batch *b, walk_state *w, const char *s, size_t n) {
  size_t i = skip_ws(s, n, 0);
  if (i >= n || s[i] != '{') return WALK_OTHER;
  i = skip_ws(s, n, i + 1);
  if (i < n && s[i] == '}') {
    i++;
  } else {
    for (;;) {
      if (i >= n || s[i] != '"') return WALK_OTHER;
      cJSON *key = value_at(s, n, &i);
      if (!key) return WALK_OTHER;
      bool events = !strcmp(key->valuestring, "events");
      bool first = !strcmp(key->valuestring, "first_seq");
      cJSON_Delete(key);
      i = skip_ws(s, n, i);
      if (i >= n || s[i] != ':') return WALK_OTHER;
      i = skip_ws(s, n, i + 1);
      if (events) {
        /* A second "events" would be ignored by a whole-document read: let it decide. */
        if (w->has_events || i >= n || s[i] != '[') return WALK_OTHER;
        w->has_events = true;
        walk_result r = walk_events(b, w, s, n, &i);
        if (r != WALK_OK) return r;
      } else {
        cJSON *v = value_at(s, n, &i);
        /* the body is one level */
        if (!v || depth(v) > CJSON_NESTING_LIMIT - 1) {
          cJSON_Delete(v);
          return WALK_OTHER;
        }
        /* The first of repeated members is the one a lookup finds. */
        if (first && !cJSON_GetObjectItemCaseSensitive(w->top, "first_seq"))
          cJSON_AddItemToObject(w->top, "first_seq", v);
        else
          cJSON_Delete(v);
      }
      i = skip_ws(s, n, i);
      if (i < n && s[i] == ',') {
        i = skip_ws(s, n, i + 1);
        continue;
      }
      if (i < n && s[i] == '}') {
        i++;
        break;
      }
      return WALK_OTHER;
    }
  }
  return skip_ws(s, n, i) == n ? WALK_OK : WALK_OTHER;
}

/* ---- the general way: the body as one document ---- */

int hg_batch_read_document(hg_batch *b, const char *s, size_t n, hg_err *err) {
  memset(b, 0, sizeof *b);
  const cJSON *events = NULL;
  int64_t first = 0;
  b->document = hg_fields_parse_object(s, n, err);
  if (!b->document) return HG_EINVAL;
  int rc = hg_fields_int(b->document, "first_seq", "", true, &first, err);
  if (!rc) rc = hg_fields_array(b->document, "events", "", true, &events, err);
  if (rc) return rc;
  if (first < 0) return hg_err_set(err, HG_EINVAL, "first_seq: must not be negative");
  size_t k = 0;
  for (const cJSON *e = events->child; e; e = e->next, k++) {
    int kind = check_event(e, k, err);
    if (kind < 0) return kind;
  }
  k = 0;
  for (cJSON *e = events->child; e; e = e->next, k++) {
    char *json = hg_fields_print(e);
    rc = json ? add_event(b, json, strlen(json), false, n, NULL) : HG_ENOMEM;
    free(json);
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "kind"));
    if (!rc && !strcmp(kind, "output")) rc = add_output(b, k, e);
    if (rc) return hg_err_set(err, HG_ENOMEM, "reading an event batch: out of memory");
  }
  b->first_seq = first;
  return 0;
}

int hg_batch_read(hg_batch *b, const char *s, size_t n, hg_err *err) {
  memset(b, 0, sizeof *b);
  walk_state w = {.top = cJSON_CreateObject()};
  if (!w.top) return hg_err_set(err, HG_ENOMEM, "reading an event batch: out of memory");
  walk_result r = walk(b, &w, s, n);
  if (r == WALK_NOMEM) {
    cJSON_Delete(w.top);
    return hg_err_set(err, HG_ENOMEM, "reading an event batch: out of memory");
  }
  if (r == WALK_OTHER) {
    cJSON_Delete(w.top);
    hg_batch_free(b);
    return hg_batch_read_document(b, s, n, err);
  }
  /* The checks in the order a whole-document read makes them: the rules of JSON cJSON leaves
   * unchecked, then the fields. */
  check_upto(&w, s, n);
  if (w.check_rc) {
    if (err) *err = w.check_err;
    hg_err_prefix(err, "body");
    cJSON_Delete(w.top);
    return HG_EINVAL;
  }
  int64_t first = 0;
  const cJSON *none = NULL;
  int rc = hg_fields_int(w.top, "first_seq", "", true, &first, err);
  if (!rc && !w.has_events) rc = hg_fields_array(w.top, "events", "", true, &none, err);
  cJSON_Delete(w.top);
  if (rc) return rc;
  if (first < 0) return hg_err_set(err, HG_EINVAL, "first_seq: must not be negative");
  if (w.event_rc) {
    if (err) *err = w.event_err;
    return w.event_rc;
  }
  b->first_seq = first;
  return 0;
}

void hg_batch_chunk(hg_batch *b, size_t skip, hg_store_chunk *out) {
  memset(out, 0, sizeof *out);
  out->first_seq = b->first_seq + (int64_t)skip;
  if (skip >= b->count) return;
  uint32_t base = b->starts[skip];
  for (size_t i = skip; i < b->count; i++) b->starts[i] -= base;
  out->count = b->count - skip;
  out->text = (char *)b->text + base; /* the store only reads it */
  out->len = b->len - base;
  out->starts = b->starts + skip;
  out->logs = b->logs + skip;
}

void hg_batch_free(hg_batch *b) {
  /* Read as one document, the output events are part of it. */
  if (!b->document)
    for (size_t i = 0; i < b->n_outputs; i++) cJSON_Delete(b->outputs[i].event);
  cJSON_Delete(b->document);
  hg_buf_free(&b->own);
  free(b->starts);
  free(b->logs);
  free(b->outputs);
  memset(b, 0, sizeof *b);
}
