/* A run's log: redactor, framer and output-line parser in front of the run's spool. */
#include "pipeline/runlog.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/jsoncheck.h"
#include "core/log.h"
#include "core/timer.h"
#include "pipeline/framer.h"
#include "pipeline/outline.h"
#include "pipeline/outputs.h"
#include "pipeline/redact.h"

/* The two producer streams, then the run's own system lines, which pass through a redactor
 * and a framer of their own (valid UTF-8, one event per line) but never the output parser. */
#define SYSTEM 2
#define NSTREAMS 3

static const char *const stream_names[NSTREAMS] = {"stdout", "stderr", "system"};

#define TRUNCATED_PREFIX "output truncated:"

/* Log events are assembled from the text cJSON prints for an event whose ts and text are
 * markers, split around them: head, ts, mid[stream], the text as a JSON string, tail[partial].
 * This keeps cJSON the author of every byte of JSON while a line costs no tree and no
 * allocation. */
#define TS_MARK "@@hangar-ts@@"
#define TEXT_MARK "@@hangar-text@@"

/*
 * How events are stored. The events one call stores (a sink write, a system line, the end of a
 * stream) make one spool record, a block; a log event keeps only what varies, and its JSON is
 * assembled from the templates when it is uploaded. A 100-byte line then costs ~103 bytes of
 * spool instead of ~200 of event JSON, and a record header and CRC per write, not per line.
 *
 *   block   u8 BLOCK_TAG, u32 count (little-endian), count events
 *   event   u8 flags, [ts], [raw length], varint length, bytes
 *     flags & FL_STREAM  stdout, stderr or system
 *     FL_PARTIAL         the line goes on in the next event
 *     FL_SAME_TS         ts is the previous event's; else a zigzag varint of the difference
 *                        from it (from 0 for a block's first event)
 *     FL_ESCAPED         the text needed JSON escaping: the raw text's length comes first
 *     FL_OUTPUT          an output op: bytes are its event JSON, as cJSON printed it (no ts)
 *   bytes of a log event: its text as it stands between the quotes of a JSON string, escaped
 *   by cJSON where it needed escaping; so the spool holds what the event JSON would.
 *
 * A record that starts with '{' is one event's JSON, as spools were written before blocks:
 * such a spool is replayed and uploaded as it is, and new events follow it as blocks.
 * Varints are LEB128.
 */
#define BLOCK_TAG 0x01
#define BLOCK_HEAD 5
#define FL_STREAM 0x03
#define FL_PARTIAL 0x04
#define FL_SAME_TS 0x08
#define FL_ESCAPED 0x10
#define FL_OUTPUT 0x20
/* A block past this size is sealed within its call: bounds the group's scratch buffer. */
#define BLOCK_MAX (1u << 20)
/* Every MARK_STRIDE-th record's first sequence number is kept, to find an event's record. */
#define MARK_STRIDE 64

struct hg_runlog_group {
  hg_loop *loop;
  hg_spool_budget budget;
  hg_runlog *runlogs;
  hg_timer *resume_timer; /* resumes paused producers from the loop, not from inside a close */
  hg_buf head, mid[NSTREAMS], tail[2];
  hg_buf blk;        /* the open block: events of the current call of blk_rl */
  hg_runlog *blk_rl;
  uint32_t blk_n;
  int64_t blk_ts;    /* ts of its last event */
  hg_buf tmp;        /* a piece copied out to be NUL-terminated */
  hg_buf esc;        /* text escaped by cJSON */
  hg_outline_result res;
};

typedef struct stream {
  hg_runlog *rl;
  int id;
  hg_sink sink;
  hg_redact_scanner *sc;
  hg_framer fr;
  bool prev_partial; /* the last piece was partial: the next one ends that line */
  bool paused;       /* the producer waits for hg_sink_resume */
} stream;

struct hg_runlog {
  hg_runlog_group *g;
  hg_runlog *next, **pprev;
  char *run_id;
  hg_spool *spool;
  hg_redact_set *secrets;
  hg_outline *ol;
  cJSON *outputs;
  stream st[NSTREAMS];
  hg_timer *sync_timer;
  bool sync_armed;
  struct sync_work *syncing; /* an fdatasync in the thread pool */
  int64_t sync_ms;
  uint64_t max_log;
  uint64_t log_bytes, dropped_lines, dropped_bytes;
  uint64_t lines[2]; /* complete stdout and stderr lines stored */
  uint64_t events;   /* stored, the open block's included */
  uint64_t sealed;   /* in records of the spool */
  uint64_t durable;  /* in records made durable */
  uint64_t *marks;   /* marks[k]: sequence number of record k * MARK_STRIDE's first event */
  size_t nmarks, capmarks;
  /* Where the uploader's last read ended: record cur_index at cur_offset of the spool starts
   * with event cur_first. */
  bool cur_valid;
  uint64_t cur_index, cur_offset, cur_first;
  int64_t rd_ts_ms; /* the ts last formatted for reading */
  char rd_ts[HG_TS_LEN];
  bool truncated, ended, sync_failed;
  int failed;  /* a write failed for good: every later write answers this */
  hg_err ferr; /* its message; also where callbacks leave theirs */
  int64_t ts_ms;
  char ts_text[HG_TS_LEN];
  void (*listener)(void *ud);
  void *listener_ud;
};

/* ---- the group ---- */

/* Splits what cJSON printed for one marker event into the constant parts. */
static int split_template(hg_runlog_group *g, int sid, int partial) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddStringToObject(o, "kind", "log") || !cJSON_AddStringToObject(o, "ts", TS_MARK) ||
      !cJSON_AddStringToObject(o, "stream", stream_names[sid]) ||
      !cJSON_AddStringToObject(o, "text", TEXT_MARK) || !cJSON_AddBoolToObject(o, "partial", partial)) {
    cJSON_Delete(o);
    return HG_ENOMEM;
  }
  char *text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!text) return HG_ENOMEM;
  char *ts = strstr(text, TS_MARK), *tx = strstr(text, "\"" TEXT_MARK "\"");
  int rc = HG_ENOMEM;
  if (!ts || !tx || tx < ts) goto out; /* cannot happen: cJSON keeps member order */
  char *after_ts = ts + strlen(TS_MARK), *after_tx = tx + strlen(TEXT_MARK) + 2;
  hg_buf *mid = &g->mid[sid], *tail = &g->tail[partial];
  hg_buf_reset(&g->head);
  hg_buf_reset(mid);
  hg_buf_reset(tail);
  if (hg_buf_append(&g->head, text, (size_t)(ts - text)) ||
      hg_buf_append(mid, after_ts, (size_t)(tx - after_ts)) || hg_buf_appends(tail, after_tx))
    goto out;
  rc = 0;
out:
  free(text);
  return rc;
}

static void resume_all(hg_runlog_group *g) {
  for (hg_runlog *rl = g->runlogs, *next; rl; rl = next) {
    next = rl->next;
    for (int i = 0; i < SYSTEM; i++) {
      stream *st = &rl->st[i];
      if (!st->paused) continue;
      if (hg_spool_budget_full(&g->budget)) return; /* they would only pause again */
      st->paused = false;
      hg_sink_resume(&st->sink);
    }
  }
}

static void on_resume_timer(hg_timer *t, void *data) {
  (void)t;
  resume_all(data);
}

/* From hg_spool_close/hg_spool_delete, possibly deep inside a caller: resume from the loop. */
static void on_space(void *ud) {
  hg_runlog_group *g = ud;
  if (g->resume_timer)
    hg_timer_start(g->resume_timer, 0, 0);
  else
    resume_all(g);
}

int hg_runlog_group_new(hg_runlog_group **out, hg_loop *loop, uint64_t budget_bytes, hg_err *err) {
  *out = NULL;
  hg_runlog_group *g = calloc(1, sizeof *g);
  if (!g) return hg_err_set(err, HG_ENOMEM, "runlog group: out of memory");
  g->loop = loop;
  hg_spool_budget_init(&g->budget, budget_bytes);
  hg_spool_budget_on_space(&g->budget, on_space, g);
  int rc = 0;
  for (int s = 0; s < NSTREAMS && !rc; s++)
    for (int p = 0; p < 2 && !rc; p++) rc = split_template(g, s, p);
  if (rc) {
    hg_runlog_group_free(g);
    return hg_err_set(err, HG_ENOMEM, "runlog group: out of memory");
  }
  if (loop && (rc = hg_timer_new(loop, on_resume_timer, g, &g->resume_timer, err))) {
    hg_runlog_group_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

void hg_runlog_group_free(hg_runlog_group *g) {
  if (!g) return;
  hg_timer_free(g->resume_timer);
  hg_buf_free(&g->head);
  for (int i = 0; i < NSTREAMS; i++) hg_buf_free(&g->mid[i]);
  hg_buf_free(&g->tail[0]);
  hg_buf_free(&g->tail[1]);
  hg_buf_wipe(&g->blk);
  hg_buf_wipe(&g->tmp);
  hg_buf_wipe(&g->esc);
  hg_outline_result_free(&g->res);
  free(g);
}

/* ---- storing events ---- */

static void arm_sync(hg_runlog *rl) {
  if (rl->sync_armed || !rl->sync_timer) return;
  if (hg_timer_start(rl->sync_timer, rl->sync_ms, 0) == 0) rl->sync_armed = true;
}

static const char *ts_text(hg_runlog *rl, int64_t ts) {
  if (ts != rl->ts_ms) {
    hg_clock_format(ts, rl->ts_text);
    rl->ts_ms = ts;
  }
  return rl->ts_text;
}

/* The inside of text's JSON string (without the quotes), printed by cJSON into g->esc: for
 * text with something to escape. */
static int json_escape(hg_runlog_group *g, const char *text, size_t len) {
  /* cJSON reads a C string: a piece cut from a longer text is copied out first. */
  if (text[len] != '\0') {
    hg_buf_reset(&g->tmp);
    if (hg_buf_append(&g->tmp, text, len)) return HG_ENOMEM;
    text = g->tmp.data;
  }
  /* Worst case every byte is a \u00XX; cJSON asks for a little slack. */
  size_t room = 6 * len + 16;
  hg_buf_reset(&g->esc);
  if (hg_buf_reserve(&g->esc, room)) return HG_ENOMEM;
  cJSON item;
  memset(&item, 0, sizeof item);
  item.type = cJSON_String | cJSON_IsReference;
  item.valuestring = (char *)text;
  if (!cJSON_PrintPreallocated(&item, g->esc.data, (int)g->esc.cap, 0)) return HG_ENOMEM;
  size_t n = strlen(g->esc.data);
  if (n < 2) return HG_ENOMEM; /* cannot happen: cJSON prints the quotes */
  memmove(g->esc.data, g->esc.data + 1, n - 2);
  g->esc.len = n - 2;
  return 0;
}

static inline unsigned char *put_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

static inline uint64_t zigzag(int64_t v) {
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t unzigzag(uint64_t v) {
  return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

static int add_mark(hg_runlog *rl, uint64_t record, uint64_t first) {
  if (record % MARK_STRIDE) return 0;
  if (rl->nmarks == rl->capmarks) {
    size_t cap = rl->capmarks ? rl->capmarks * 2 : 16;
    uint64_t *p = realloc(rl->marks, cap * sizeof *p);
    if (!p) return HG_ENOMEM;
    rl->marks = p;
    rl->capmarks = cap;
  }
  rl->marks[rl->nmarks++] = first;
  return 0;
}

/* Stores the open block, if rl has one, as a record of the spool. 0 or a negative code (its
 * events are then lost, and the runlog fails). */
static int seal(hg_runlog *rl) {
  hg_runlog_group *g = rl->g;
  if (g->blk_rl != rl) return 0;
  g->blk_rl = NULL;
  hg_buf *b = &g->blk;
  uint32_t n = g->blk_n;
  unsigned char *h = (unsigned char *)b->data + 1;
  h[0] = (unsigned char)n;
  h[1] = (unsigned char)(n >> 8);
  h[2] = (unsigned char)(n >> 16);
  h[3] = (unsigned char)(n >> 24);
  uint64_t record = hg_spool_count(rl->spool);
  bool marked = record % MARK_STRIDE == 0;
  int rc = add_mark(rl, record, rl->sealed);
  if (rc) {
    rc = hg_err_set(&rl->ferr, rc, "run %s: out of memory for an event", rl->run_id);
    marked = false;
  }
  if (!rc) rc = hg_spool_append(rl->spool, b->data, b->len, &rl->ferr);
  hg_buf_reset(b);
  /* A burst's buffer is not kept: an agent holds one group, most of its runs idle. */
  if (b->cap > 2 * BLOCK_MAX) hg_buf_wipe(b);
  if (rc < 0) {
    if (marked) rl->nmarks--; /* its record was not stored */
    rl->events = rl->sealed;
    return rc;
  }
  rl->sealed += n;
  arm_sync(rl);
  return 0;
}

/* Room for an event of at most n bytes in rl's open block, which is started if need be;
 * NULL when out of memory. */
static unsigned char *block_room(hg_runlog *rl, size_t n) {
  hg_runlog_group *g = rl->g;
  hg_buf *b = &g->blk;
  if (g->blk_rl != rl) {
    /* Another runlog's block is never open across calls; seal it all the same. */
    if (g->blk_rl && seal(g->blk_rl) < 0) g->blk_rl = NULL;
    hg_buf_reset(b);
    if (hg_buf_reserve(b, BLOCK_HEAD + n)) return NULL;
    memset(b->data, 0, BLOCK_HEAD);
    b->data[0] = BLOCK_TAG;
    b->len = BLOCK_HEAD;
    g->blk_rl = rl;
    g->blk_n = 0;
    g->blk_ts = 0;
  } else if (hg_buf_reserve(b, n)) {
    return NULL;
  }
  return (unsigned char *)b->data + b->len;
}

/* The event was written at p, ending at end: count it, and seal a block grown large. */
static int block_added(hg_runlog *rl, const unsigned char *end) {
  hg_runlog_group *g = rl->g;
  g->blk.len = (size_t)((const char *)end - g->blk.data);
  g->blk_n++;
  rl->events++;
  return g->blk.len >= BLOCK_MAX ? seal(rl) : 0;
}

/* plain: the framer already knows the text has nothing to escape. */
static int log_event(hg_runlog *rl, int sid, const char *text, size_t len, bool partial,
                     int64_t ts, bool plain) {
  hg_runlog_group *g = rl->g;
  /* Nothing to escape: the text is exactly what cJSON would print between the quotes. */
  if (!plain) plain = hg_jsoncheck_plain_len(text, len) == len;
  if (!plain && json_escape(g, text, len)) goto oom;
  const char *bytes = plain ? text : g->esc.data;
  size_t n = plain ? len : g->esc.len;
  /* flags, ts, two lengths */
  unsigned char *p = block_room(rl, 1 + 10 + 10 + 10 + n);
  if (!p) goto oom;
  unsigned flags = (unsigned)sid | (partial ? FL_PARTIAL : 0) | (plain ? 0 : FL_ESCAPED);
  bool same = g->blk_n > 0 && ts == g->blk_ts;
  *p++ = (unsigned char)(flags | (same ? FL_SAME_TS : 0));
  if (!same) p = put_varint(p, zigzag(ts - g->blk_ts));
  g->blk_ts = ts;
  if (!plain) p = put_varint(p, len);
  p = put_varint(p, n);
  memcpy(p, bytes, n);
  int rc = block_added(rl, p + n);
  if (rc >= 0 && sid != SYSTEM && !partial) rl->lines[sid]++;
  return rc;
oom:
  return hg_err_set(&rl->ferr, HG_ENOMEM, "run %s: out of memory for an event", rl->run_id);
}

/* Stores an output op's event, text as cJSON printed it. */
static int store_json(hg_runlog *rl, const char *text, size_t len) {
  unsigned char *p = block_room(rl, 1 + 10 + len);
  if (!p) return hg_err_set(&rl->ferr, HG_ENOMEM, "run %s: out of memory for an event", rl->run_id);
  *p++ = FL_OUTPUT;
  p = put_varint(p, len);
  memcpy(p, text, len);
  return block_added(rl, p + len);
}

/* A public call that may have stored events ends: its block becomes a record. rc is the
 * call's own result so far; the first failure wins. */
static int end_call(hg_runlog *rl, int rc) {
  int src = seal(rl);
  return rc < 0 ? rc : src < 0 ? src : rc;
}

static int system_text(hg_runlog *rl, const char *text, size_t len);

static int system_msg(hg_runlog *rl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int system_msg(hg_runlog *rl, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) return 0;
  return system_text(rl, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

static void describe_size(uint64_t bytes, char *out, size_t n) {
  if (bytes % (1024 * 1024) == 0)
    snprintf(out, n, "%" PRIu64 " MiB", bytes / (1024 * 1024));
  else
    snprintf(out, n, "%" PRIu64 " bytes", bytes);
}

/* A line (or piece) of stdout, stderr or system text, split into events of at most
 * HG_RUNLOG_MAX_TEXT bytes (only a reassembled chunk line can be longer), under the log
 * limit. */
static int log_text(hg_runlog *rl, int sid, const char *text, size_t len, bool partial,
                    int64_t ts, bool plain) {
  if (sid != SYSTEM) {
    if (rl->truncated || (rl->max_log && rl->log_bytes + len > rl->max_log)) {
      if (!rl->truncated) {
        rl->truncated = true;
        char limit[64];
        describe_size(rl->max_log, limit, sizeof limit);
        int rc = system_msg(rl, TRUNCATED_PREFIX " the run printed more than %s; further output is dropped",
                            limit);
        if (rc) return rc;
      }
      rl->dropped_lines++;
      rl->dropped_bytes += len;
      return 0;
    }
    rl->log_bytes += len;
  }
  while (len > HG_RUNLOG_MAX_TEXT) {
    size_t cut = HG_RUNLOG_MAX_TEXT;
    while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80) cut--;
    int rc = log_event(rl, sid, text, cut, true, ts, plain);
    if (rc) return rc;
    text += cut;
    len -= cut;
  }
  return log_event(rl, sid, text, len, partial, ts, plain);
}

static int output_event(hg_runlog *rl, const hg_outline_result *r, int64_t ts) {
  cJSON *o = cJSON_CreateObject();
  char *text = NULL;
  int rc = HG_ENOMEM;
  if (!o || !cJSON_AddStringToObject(o, "kind", "output") ||
      !cJSON_AddStringToObject(o, "ts", ts_text(rl, ts)) ||
      !cJSON_AddStringToObject(o, "op", hg_outputs_op_name(r->op)) ||
      !cJSON_AddStringToObject(o, "path", r->path_text.data ? r->path_text.data : "") ||
      !cJSON_AddItemReferenceToObject(o, "value", r->value) || !(text = cJSON_PrintUnformatted(o)))
    goto out;
  rc = store_json(rl, text, strlen(text));
out:
  if (rc == HG_ENOMEM) hg_err_set(&rl->ferr, rc, "run %s: out of memory for an output event", rl->run_id);
  free(text);
  cJSON_Delete(o);
  return rc;
}

/* A value the redactor did not take (rc of hg_redact_set_add, e its message): a system line
 * says so, naming what, never the value. */
static int warn_unmasked(hg_runlog *rl, int rc, const char *what, const hg_err *e) {
  if (rc == HG_REDACT_TOO_SHORT)
    return system_msg(rl, "%s is shorter than %d bytes and is not masked in the log", what,
                      HG_REDACT_MIN_LEN);
  return system_msg(rl, "%s is not masked in the log: %s", what, e->msg);
}

static int mask_value(hg_runlog *rl, const char *value, size_t len, const char *what) {
  hg_err e = {0};
  int rc = hg_redact_set_add(rl->secrets, value, len, &e);
  if (rc == 0) return 0;
  if (rc == HG_REDACT_TOO_SHORT || rc == HG_ETOOBIG) return warn_unmasked(rl, rc, what, &e);
  rl->ferr = e;
  return rc;
}

/* ---- lines ---- */

static int handle_line(hg_runlog *rl, stream *st, const char *text, size_t len, bool partial,
                       int64_t ts) {
  /* The framer looked at the line's bytes already: whether it has anything to escape. */
  bool plain = !st->fr.escapes;
  if (st->id == SYSTEM) return log_text(rl, SYSTEM, text, len, partial, ts, plain);
  bool piece = partial || st->prev_partial;
  st->prev_partial = partial;
  /* Every output, mask and chunk form starts with "hangar_" or "airplane_" (outline.h), and a
   * piece of a long line is never one: most lines need no parsing at all. */
  if (piece || len < 7 || (text[0] != 'h' && text[0] != 'a'))
    return log_text(rl, st->id, text, len, partial, ts, plain);
  hg_outline_result *r = &rl->g->res;
  int rc = hg_outline_line(rl->ol, text, len, piece, r);
  if (rc < 0) {
    /* Out of memory or the redact hook failed: say so; the run's log goes on. */
    int src = system_msg(rl, "%s", r->err.msg);
    return rc == HG_ENOMEM ? hg_err_set(&rl->ferr, rc, "run %s: out of memory", rl->run_id) : src;
  }
  /* A reassembled chunk line is a whole line however it was printed. */
  bool event_partial = r->text == text ? partial : false;
  if (r->log_line &&
      (rc = log_text(rl, st->id, r->text, r->text_len, event_partial, ts, r->text == text && plain)))
    return rc;
  switch (r->kind) {
  case HG_OUTLINE_LOG:
  case HG_OUTLINE_CHUNK:
    return 0;
  case HG_OUTLINE_OUTPUT: {
    hg_err e = {0};
    rc = hg_outputs_apply(&rl->outputs, r->op, &r->path, r->value, &e);
    if (rc == 0) return output_event(rl, r, ts);
    if (rc == HG_ENOMEM) {
      rl->ferr = e;
      return rc;
    }
    return system_msg(rl, "output not applied: %s", e.msg);
  }
  case HG_OUTLINE_MASK:
    return mask_value(rl, r->mask, r->mask_len, "a hangar_mask value");
  case HG_OUTLINE_ERROR:
    return system_msg(rl, "%s", r->err.msg);
  }
  return 0;
}

static int on_line(void *ud, const char *text, size_t len, bool partial, int64_t ts) {
  stream *st = ud;
  return handle_line(st->rl, st, text, len, partial, ts);
}

static int system_text(hg_runlog *rl, const char *text, size_t len) {
  stream *st = &rl->st[SYSTEM];
  hg_err e = {0};
  int64_t now = hg_clock_now_ms();
  int rc = hg_redact_scanner_write(st->sc, text, len, now, &e);
  if (!rc) rc = hg_redact_scanner_finish(st->sc, &e);
  if (!rc) rc = hg_framer_finish(&st->fr);
  if (rc && e.msg[0]) rl->ferr = e;
  return rc;
}

/* The redact hook of the output parser: a reassembled chunk line as a whole. */
static int collect(void *ud, const char *bytes, size_t len, int64_t ts) {
  (void)ts;
  return hg_buf_append(ud, bytes, len);
}

static int redact_whole(void *ud, const char *text, size_t len, hg_buf *out) {
  hg_runlog *rl = ud;
  hg_redact_scanner *sc = NULL;
  hg_err e = {0};
  int rc = hg_redact_scanner_new(&sc, rl->secrets, collect, out, &e);
  if (!rc) rc = hg_redact_scanner_write(sc, text, len, 0, &e);
  if (!rc) rc = hg_redact_scanner_finish(sc, &e);
  hg_redact_scanner_free(sc);
  return rc;
}

/* ---- writing ---- */

static int fail(hg_runlog *rl, int rc, hg_err *err) {
  if (!rl->failed) {
    rl->failed = rc;
    if (!rl->ferr.msg[0]) hg_err_set(&rl->ferr, rc, "run %s: the log pipeline failed", rl->run_id);
    hg_log(HG_LOG_ERROR, "run log failed; later output of the run is lost", "run", rl->run_id,
           "error", rl->ferr.msg, NULL);
  }
  return hg_err_set(err, rl->failed, "%s", rl->ferr.msg);
}

static int refuse(hg_runlog *rl, hg_err *err) {
  if (rl->failed) return hg_err_set(err, rl->failed, "%s", rl->ferr.msg);
  return hg_err_set(err, HG_ECANCELED, "run %s: its log has ended", rl->run_id);
}

int hg_runlog_write(hg_runlog *rl, hg_runlog_stream stream_id, const void *bytes, size_t len,
                    int64_t ts_ms, hg_err *err) {
  if (rl->failed || rl->ended) return refuse(rl, err);
  if ((unsigned)stream_id >= SYSTEM)
    return hg_err_set(err, HG_EINVAL, "run %s: no stream %d", rl->run_id, (int)stream_id);
  stream *st = &rl->st[stream_id];
  if (ts_ms <= 0) ts_ms = hg_clock_now_ms();
  hg_err_clear(&rl->ferr);
  int rc = end_call(rl, hg_redact_scanner_write(st->sc, bytes, len, ts_ms, &rl->ferr));
  if (rc < 0) return fail(rl, rc, err);
  if (hg_spool_budget_full(&rl->g->budget)) {
    st->paused = true;
    return HG_SINK_PAUSE;
  }
  return 0;
}

int hg_runlog_eof(hg_runlog *rl, hg_runlog_stream stream_id, hg_err *err) {
  if (rl->failed || rl->ended) return rl->failed ? refuse(rl, err) : 0;
  if ((unsigned)stream_id >= SYSTEM)
    return hg_err_set(err, HG_EINVAL, "run %s: no stream %d", rl->run_id, (int)stream_id);
  stream *st = &rl->st[stream_id];
  hg_err_clear(&rl->ferr);
  int rc = hg_redact_scanner_finish(st->sc, &rl->ferr);
  if (!rc) rc = hg_framer_finish(&st->fr);
  rc = end_call(rl, rc);
  st->prev_partial = false;
  return rc < 0 ? fail(rl, rc, err) : 0;
}

int hg_runlog_system(hg_runlog *rl, const char *text, hg_err *err) {
  if (rl->failed || rl->ended) return refuse(rl, err);
  hg_err_clear(&rl->ferr);
  int rc = end_call(rl, system_text(rl, text, strlen(text)));
  return rc < 0 ? fail(rl, rc, err) : 0;
}

int hg_runlog_add_secret(hg_runlog *rl, const void *value, size_t len, const char *name,
                         hg_err *err) {
  hg_err e = {0};
  int rc = hg_redact_set_add(rl->secrets, value, len, &e);
  if (rc == 0) return 0;
  if (rc == HG_ENOMEM) return hg_err_set(err, rc, "run %s: out of memory for a secret", rl->run_id);
  char what[256] = "a secret";
  if (name && *name) snprintf(what, sizeof what, "secret %s", name);
  if (!rl->failed && !rl->ended) {
    hg_err_clear(&rl->ferr);
    int wrc = end_call(rl, warn_unmasked(rl, rc, what, &e));
    if (wrc < 0) return fail(rl, wrc, err);
  }
  if (rc == HG_REDACT_TOO_SHORT)
    return hg_err_set(err, rc, "%s is shorter than %d bytes and is not masked", what,
                      HG_REDACT_MIN_LEN);
  return hg_err_set(err, rc, "%s: %s", what, e.msg);
}

/* ---- the sinks ---- */

static int sink_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  stream *st = s->data;
  hg_err e;
  return hg_runlog_write(st->rl, (hg_runlog_stream)st->id, bytes, len, ts_ms, &e);
}

static void sink_eof(hg_sink *s, int64_t ts_ms) {
  (void)ts_ms;
  stream *st = s->data;
  hg_err e;
  hg_runlog_eof(st->rl, (hg_runlog_stream)st->id, &e);
}

static const hg_sink_ops sink_ops = {sink_write, sink_eof};

hg_sink *hg_runlog_sink(hg_runlog *rl, hg_runlog_stream stream_id) {
  return (unsigned)stream_id < SYSTEM ? &rl->st[stream_id].sink : NULL;
}

/* ---- durability ---- */

static void notify(hg_runlog *rl) {
  if (rl->listener) rl->listener(rl->listener_ud);
}

int hg_runlog_sync(hg_runlog *rl, hg_err *err) {
  if (rl->sync_armed) {
    hg_timer_stop(rl->sync_timer);
    rl->sync_armed = false;
  }
  if (!hg_spool_dirty(rl->spool)) return 0;
  uint64_t before = hg_runlog_uploadable(rl);
  hg_err e = {0};
  int rc = hg_spool_sync(rl->spool, &e);
  if (rc) {
    if (!rl->sync_failed)
      hg_log(HG_LOG_ERROR, "run log: cannot make the spool durable; events are uploaded anyway",
             "run", rl->run_id, "error", e.msg, NULL);
    rl->sync_failed = true;
    arm_sync(rl); /* try again later */
  } else {
    rl->sync_failed = false;
    rl->durable = rl->sealed;
  }
  if (hg_runlog_uploadable(rl) != before) notify(rl);
  if (rc) return hg_err_set(err, rc, "%s", e.msg);
  return 0;
}

/* The timer's sync runs fdatasync in libuv's thread pool: on a loaded disk it takes from
 * milliseconds to seconds, which the loop (every run, heartbeats, uploads) must not wait for.
 * The loop's thread writes the records to the file; the pool's makes them durable, through a
 * descriptor of its own, so that the runlog may close meanwhile. */
typedef struct sync_work {
  uv_work_t req;
  hg_runlog *rl; /* NULL once the runlog closed: the result is dropped */
  char *path;
  hg_spool_mark mark;
  uint64_t events; /* in the records the mark covers */
  int error;       /* errno of open or fdatasync, 0 */
} sync_work;

static void sync_in_pool(uv_work_t *req) {
  sync_work *w = req->data;
  w->error = hg_spool_sync_path(w->path, &w->mark);
}

static void sync_done(uv_work_t *req, int status) {
  sync_work *w = req->data;
  hg_runlog *rl = w->rl;
  if (rl) {
    rl->syncing = NULL;
    uint64_t before = hg_runlog_uploadable(rl);
    if (status == 0 && w->error == 0) {
      hg_spool_mark_durable(rl->spool, &w->mark);
      if (w->events > rl->durable) rl->durable = w->events;
      rl->sync_failed = false;
    } else {
      if (!rl->sync_failed)
        hg_log(HG_LOG_ERROR, "run log: cannot make the spool durable; events are uploaded anyway",
               "run", rl->run_id, "error", strerror(w->error ? w->error : EIO), NULL);
      rl->sync_failed = true;
    }
    if (hg_spool_dirty(rl->spool)) arm_sync(rl);
    if (hg_runlog_uploadable(rl) != before) notify(rl);
  }
  free(w->path);
  free(w);
}

static void on_sync_timer(hg_timer *t, void *data) {
  (void)t;
  hg_runlog *rl = data;
  rl->sync_armed = false;
  if (rl->syncing) return; /* its completion re-arms the timer if needed */
  if (!hg_spool_dirty(rl->spool)) return;
  hg_err e = {0};
  sync_work *w = calloc(1, sizeof *w);
  if (w) *w = (sync_work){.req.data = w, .rl = rl, .events = rl->sealed};
  if (!w || !(w->path = strdup(hg_spool_path(rl->spool))) ||
      hg_spool_flush(rl->spool, &w->mark, &e) ||
      uv_queue_work(&rl->g->loop->uv, &w->req, sync_in_pool, sync_done)) {
    if (w) free(w->path);
    free(w);
    /* Out of memory or a write error: the synchronous path says so and tries again. */
    hg_runlog_sync(rl, &e);
    return;
  }
  rl->syncing = w;
}

uint64_t hg_runlog_uploadable(const hg_runlog *rl) {
  return rl->sync_failed ? rl->sealed : rl->durable;
}

int hg_runlog_end(hg_runlog *rl, hg_err *err) {
  if (rl->ended) return 0;
  if (!rl->failed) {
    hg_err e = {0};
    int rc = 0;
    for (int i = 0; i < SYSTEM && rc >= 0; i++) rc = hg_runlog_eof(rl, (hg_runlog_stream)i, &e);
    if (rc >= 0 && rl->dropped_lines) {
      char limit[64];
      describe_size(rl->max_log, limit, sizeof limit);
      hg_err_clear(&rl->ferr);
      rc = end_call(rl, system_msg(rl, TRUNCATED_PREFIX " %" PRIu64 " lines (%" PRIu64
                                   " bytes) printed after the log limit of %s were not stored",
                                   rl->dropped_lines, rl->dropped_bytes, limit));
      if (rc < 0) fail(rl, rc, &e);
    }
  }
  rl->ended = true;
  int rc = hg_runlog_sync(rl, err);
  notify(rl);
  return rc;
}

bool hg_runlog_ended(const hg_runlog *rl) {
  return rl->ended;
}

/* ---- reading stored events back ---- */

typedef struct event {
  bool output;
  int stream;
  bool partial;
  int64_t ts;
  const char *bytes; /* the text as inside a JSON string, or an output op's JSON */
  size_t len;
  size_t raw_len; /* of the text before escaping */
} event;

typedef struct block {
  const unsigned char *p, *end;
  uint32_t count, left;
  int64_t ts;
} block;

typedef enum { REC_OTHER = -1, REC_JSON = 0, REC_BLOCK = 1 } rec_kind;

/* What a record holds: a block (count set, ready for block_next), one event's JSON (count 1),
 * or neither (count 0: a record this code did not write; it holds no event). */
static rec_kind block_open(block *b, const char *data, size_t len) {
  memset(b, 0, sizeof *b);
  if (len >= 1 && data[0] == '{') {
    b->count = 1;
    return REC_JSON;
  }
  if (len < BLOCK_HEAD || (unsigned char)data[0] != BLOCK_TAG) return REC_OTHER;
  const unsigned char *h = (const unsigned char *)data + 1;
  b->count = b->left = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
  b->p = (const unsigned char *)data + BLOCK_HEAD;
  b->end = (const unsigned char *)data + len;
  return REC_BLOCK;
}

static bool get_varint(block *b, uint64_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; b->p < b->end && shift < 64; shift += 7) {
    unsigned char c = *b->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* 1 with the next event in *e; 0 at the block's end; -1 when the block is malformed (a record
 * passed its CRC, so only a bug writes one). */
static int block_next(block *b, event *e) {
  if (!b->left) return b->p == b->end ? 0 : -1;
  if (b->p >= b->end) return -1;
  unsigned f = *b->p++;
  uint64_t v;
  *e = (event){0};
  if (f & FL_OUTPUT) {
    e->output = true;
  } else {
    e->stream = (int)(f & FL_STREAM);
    if (e->stream >= NSTREAMS) return -1;
    e->partial = (f & FL_PARTIAL) != 0;
    if (!(f & FL_SAME_TS)) {
      if (!get_varint(b, &v)) return -1;
      b->ts = (int64_t)((uint64_t)b->ts + (uint64_t)unzigzag(v));
    }
    e->ts = b->ts;
    if (f & FL_ESCAPED) {
      if (!get_varint(b, &v)) return -1;
      e->raw_len = (size_t)v;
    }
  }
  if (!get_varint(b, &v) || v > (uint64_t)(b->end - b->p)) return -1;
  e->bytes = (const char *)b->p;
  e->len = (size_t)v;
  b->p += v;
  if (!(f & (FL_ESCAPED | FL_OUTPUT))) e->raw_len = e->len;
  b->left--;
  return 1;
}

static size_t event_json_len(const hg_runlog_group *g, const event *e) {
  if (e->output) return e->len;
  return g->head.len + HG_TS_LEN - 1 + g->mid[e->stream].len + e->len + 2 + g->tail[e->partial].len;
}

static inline char *put(char *p, const void *src, size_t n) {
  memcpy(p, src, n);
  return p + n;
}

/* Writes e's JSON at p (event_json_len bytes); returns the end. */
static char *event_json(hg_runlog *rl, const event *e, char *p) {
  if (e->output) return put(p, e->bytes, e->len);
  const hg_runlog_group *g = rl->g;
  if (e->ts != rl->rd_ts_ms) {
    hg_clock_format(e->ts, rl->rd_ts);
    rl->rd_ts_ms = e->ts;
  }
  p = put(p, g->head.data, g->head.len);
  p = put(p, rl->rd_ts, HG_TS_LEN - 1);
  p = put(p, g->mid[e->stream].data, g->mid[e->stream].len);
  *p++ = '"';
  p = put(p, e->bytes, e->len);
  *p++ = '"';
  return put(p, g->tail[e->partial].data, g->tail[e->partial].len);
}

static int damaged(hg_runlog *rl, uint64_t record, hg_err *err) {
  return hg_err_set(err, HG_EIO, "run %s: spool %s: record %llu is not a valid block of events",
                    rl->run_id, hg_spool_path(rl->spool), (unsigned long long)record);
}

/* Positions it at the record holding event `from` (or the first record after the events
 * before it); *first gets that record's first sequence number. */
static int seek_event(hg_runlog *rl, uint64_t from, hg_spool_iter *it, uint64_t *first,
                      hg_err *err) {
  if (rl->cur_valid && rl->cur_first <= from) {
    *first = rl->cur_first;
    return hg_spool_iter_resume(it, rl->spool, rl->cur_index, rl->cur_offset, err);
  }
  /* The last mark at or before from. */
  size_t lo = 0, hi = rl->nmarks;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (rl->marks[mid] <= from)
      lo = mid;
    else
      hi = mid;
  }
  *first = rl->nmarks ? rl->marks[lo] : 0;
  return hg_spool_iter_start(it, rl->spool, rl->nmarks ? (uint64_t)lo * MARK_STRIDE : 0, err);
}

int hg_runlog_read_events(hg_runlog *rl, uint64_t from, uint64_t end, size_t max_bytes,
                          hg_buf *out, uint64_t *next, hg_err *err) {
  *next = from;
  if (end > rl->sealed) end = rl->sealed;
  if (from >= end) return 0;
  hg_spool_iter it;
  uint64_t seq;
  int rc = seek_event(rl, from, &it, &seq, err);
  if (rc) return rc;
  size_t start = out->len;
  bool any = false, full = false;
  while (!full && seq < end) {
    uint64_t index = it.index, offset = it.offset;
    const char *data;
    size_t len;
    int got = hg_spool_iter_next(&it, &data, &len, NULL, err);
    if (got <= 0) {
      rc = got ? got : hg_err_set(err, HG_EIO, "run %s: the spool ended early", rl->run_id);
      break;
    }
    block b;
    rec_kind kind = block_open(&b, data, len);
    if (seq + b.count <= from) {
      seq += b.count;
      continue;
    }
    /* The next read most likely starts in this record, or after it. */
    rl->cur_valid = true;
    rl->cur_index = index;
    rl->cur_offset = offset;
    rl->cur_first = seq;
    event e = {.output = true, .bytes = data, .len = len};
    for (uint32_t k = 0; k < b.count && seq < end; k++, seq++) {
      if (kind == REC_BLOCK && block_next(&b, &e) != 1) {
        rc = damaged(rl, index, err);
        break;
      }
      if (seq < from) continue;
      size_t n = event_json_len(rl->g, &e);
      if (any && out->len - start + 1 + n > max_bytes) {
        full = true;
        break;
      }
      if (hg_buf_reserve(out, n + 1)) {
        rc = hg_err_set(err, HG_ENOMEM, "run %s: out of memory reading events", rl->run_id);
        break;
      }
      char *p = out->data + out->len;
      if (any) *p++ = ',';
      p = event_json(rl, &e, p);
      out->len = (size_t)(p - out->data);
      out->data[out->len] = '\0';
      any = true;
    }
    if (rc) break;
    if (!full && seq == rl->cur_first + b.count) {
      rl->cur_index = it.index;
      rl->cur_offset = it.offset;
      rl->cur_first = seq;
    }
  }
  hg_spool_iter_end(&it);
  if (rc) {
    rl->cur_valid = false;
    return rc;
  }
  *next = seq;
  return 0;
}

/* ---- opening: replay what a previous agent stored ---- */

static int replay_output(hg_runlog *rl, const cJSON *e, hg_err *err) {
  const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "op"));
  const char *path = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "path"));
  hg_err oe;
  if (op && hg_outputs_apply_text(&rl->outputs, op, path ? path : "",
                                  cJSON_GetObjectItemCaseSensitive(e, "value"), &oe) == HG_ENOMEM)
    return hg_err_set(err, HG_ENOMEM, "run %s: out of memory replaying outputs", rl->run_id);
  return 0;
}

/* What a log line stored before a restart means for the counts that go on. */
static void replay_log(hg_runlog *rl, int sid, const char *text, size_t len, size_t raw_len,
                       bool partial) {
  if (sid != SYSTEM) {
    rl->log_bytes += raw_len;
    if (!partial) rl->lines[sid]++;
  } else if (len >= strlen(TRUNCATED_PREFIX) && !memcmp(text, TRUNCATED_PREFIX, strlen(TRUNCATED_PREFIX))) {
    rl->truncated = true;
  }
}

/* A record holding one event's JSON, as spools were written before blocks. */
static int replay_json(hg_runlog *rl, const char *data, size_t len, hg_err *err) {
  cJSON *e = cJSON_ParseWithLength(data, len);
  if (!e) {
    hg_log(HG_LOG_WARN, "run log: a spooled event is not JSON; it is skipped on replay", "run",
           rl->run_id, NULL);
    return 0;
  }
  int rc = 0;
  const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "kind"));
  if (kind && !strcmp(kind, "output")) {
    rc = replay_output(rl, e, err);
  } else if (kind && !strcmp(kind, "log")) {
    const char *stream_name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "stream"));
    const char *text = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "text"));
    if (stream_name && text) {
      int sid = !strcmp(stream_name, "system") ? SYSTEM : !strcmp(stream_name, "stdout") ? 0 : 1;
      replay_log(rl, sid, text, strlen(text), strlen(text),
                 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "partial")));
    }
  }
  cJSON_Delete(e);
  return rc;
}

static int replay(hg_runlog *rl, hg_err *err) {
  hg_spool_iter it;
  int rc = hg_spool_iter_start(&it, rl->spool, 0, err);
  if (rc) return rc;
  const char *data;
  size_t len;
  uint64_t index, events = 0;
  while (!rc && (rc = hg_spool_iter_next(&it, &data, &len, &index, err)) == 1) {
    rc = 0;
    if (add_mark(rl, index, events)) {
      rc = hg_err_set(err, HG_ENOMEM, "run %s: out of memory replaying the spool", rl->run_id);
      break;
    }
    block b;
    rec_kind kind = block_open(&b, data, len);
    if (kind == REC_OTHER) {
      hg_log(HG_LOG_WARN, "run log: a spooled record holds no event; it is skipped", "run",
             rl->run_id, NULL);
      continue;
    }
    events += b.count;
    if (kind == REC_JSON) {
      rc = replay_json(rl, data, len, err);
      continue;
    }
    event e;
    int got = 0;
    while (!rc && (got = block_next(&b, &e)) == 1) {
      if (!e.output) {
        replay_log(rl, e.stream, e.bytes, e.len, e.raw_len, e.partial);
        continue;
      }
      cJSON *o = cJSON_ParseWithLength(e.bytes, e.len);
      if (o) rc = replay_output(rl, o, err);
      cJSON_Delete(o);
    }
    if (!rc && got < 0) rc = damaged(rl, index, err);
  }
  hg_spool_iter_end(&it);
  if (rc < 0) return rc;
  rl->events = rl->sealed = rl->durable = events;
  return 0;
}

static void runlog_free(hg_runlog *rl) {
  for (int i = 0; i < NSTREAMS; i++) {
    hg_redact_scanner_free(rl->st[i].sc);
    hg_framer_free(&rl->st[i].fr);
  }
  hg_outline_free(rl->ol);
  hg_redact_set_free(rl->secrets);
  cJSON_Delete(rl->outputs);
  hg_timer_free(rl->sync_timer);
  free(rl->marks);
  free(rl->run_id);
  free(rl);
}

int hg_runlog_open(hg_runlog **out, const hg_runlog_opts *o, hg_err *err) {
  *out = NULL;
  if (!o || !o->group || !o->spool_path)
    return hg_err_set(err, HG_EINVAL, "runlog: a group and a spool path are required");
  hg_runlog *rl = calloc(1, sizeof *rl);
  if (!rl || !(rl->run_id = strdup(o->run_id ? o->run_id : "?"))) {
    free(rl);
    return hg_err_set(err, HG_ENOMEM, "runlog: out of memory");
  }
  rl->g = o->group;
  rl->max_log = o->max_log_bytes;
  rl->sync_ms = o->sync_ms > 0 ? o->sync_ms : HG_RUNLOG_SYNC_MS;
  rl->ts_ms = INT64_MIN;
  rl->rd_ts_ms = INT64_MIN;
  int rc = hg_redact_set_new(&rl->secrets, err);
  hg_outline_config oc = {.max_chunk_bytes = o->max_chunk_bytes, .redact = redact_whole, .redact_ud = rl};
  if (!rc && hg_outline_new(&rl->ol, &oc)) rc = hg_err_set(err, HG_ENOMEM, "runlog: out of memory");
  for (int i = 0; i < NSTREAMS && !rc; i++) {
    stream *st = &rl->st[i];
    st->rl = rl;
    st->id = i;
    st->sink = (hg_sink){.ops = &sink_ops, .data = st};
    hg_framer_init(&st->fr, on_line, st);
    rc = hg_redact_scanner_new(&st->sc, rl->secrets, hg_framer_emit, &st->fr, err);
  }
  if (!rc && rl->g->loop) rc = hg_timer_new(rl->g->loop, on_sync_timer, rl, &rl->sync_timer, err);
  if (rc) {
    runlog_free(rl);
    return rc;
  }
  hg_spool_info info;
  if ((rc = hg_spool_open(&rl->spool, o->spool_path, &rl->g->budget, &info, err))) {
    runlog_free(rl);
    return rc;
  }
  if (info.records && (rc = replay(rl, err))) {
    hg_err ignored;
    hg_spool_close(rl->spool, &ignored);
    runlog_free(rl);
    return rc;
  }
  if (info.dropped_bytes)
    hg_log(HG_LOG_WARN, "run log: a torn or damaged tail of the spool was cut off", "run",
           rl->run_id, "path", o->spool_path, NULL);
  rl->next = rl->g->runlogs;
  if (rl->next) rl->next->pprev = &rl->next;
  rl->pprev = &rl->g->runlogs;
  rl->g->runlogs = rl;
  *out = rl;
  return 0;
}

/* ---- accessors ---- */

const cJSON *hg_runlog_outputs(const hg_runlog *rl) {
  return rl->outputs;
}

uint64_t hg_runlog_lines(const hg_runlog *rl, hg_runlog_stream which) {
  return rl->lines[which == HG_RUNLOG_STDERR ? 1 : 0];
}

uint64_t hg_runlog_count(const hg_runlog *rl) {
  return rl->events;
}

hg_spool *hg_runlog_spool(hg_runlog *rl) {
  return rl->spool;
}

const char *hg_runlog_run_id(const hg_runlog *rl) {
  return rl->run_id;
}

void hg_runlog_set_listener(hg_runlog *rl, void (*fn)(void *ud), void *ud) {
  rl->listener = fn;
  rl->listener_ud = fn ? ud : NULL;
}

void hg_runlog_stats_get(const hg_runlog *rl, hg_runlog_stats *out) {
  *out = (hg_runlog_stats){
      .events = rl->events,
      .durable = rl->durable,
      .log_bytes = rl->log_bytes,
      .dropped_lines = rl->dropped_lines,
      .dropped_bytes = rl->dropped_bytes,
      .truncated = rl->truncated,
      .paused = rl->st[0].paused || rl->st[1].paused,
  };
}

/* ---- closing ---- */

static void unlink_runlog(hg_runlog *rl) {
  /* Every call seals its block; one left open would be written into the next runlog's. */
  if (rl->g->blk_rl == rl) rl->g->blk_rl = NULL;
  if (rl->syncing) rl->syncing->rl = NULL;
  rl->syncing = NULL;
  *rl->pprev = rl->next;
  if (rl->next) rl->next->pprev = rl->pprev;
  /* A producer still registered for a resume would be called into freed memory. */
  for (int i = 0; i < SYSTEM; i++) {
    rl->st[i].sink.resume = NULL;
    rl->st[i].sink.producer = NULL;
  }
}

int hg_runlog_close(hg_runlog *rl, hg_err *err) {
  if (!rl) return 0;
  /* Lines still held (a run that goes on without this agent) are stored as they are: a line
   * cut in two is better than bytes lost. */
  if (!rl->ended && !rl->failed) {
    hg_err e;
    for (int i = 0; i < SYSTEM; i++) hg_runlog_eof(rl, (hg_runlog_stream)i, &e);
  }
  unlink_runlog(rl);
  int rc = hg_spool_close(rl->spool, err);
  runlog_free(rl);
  return rc;
}

int hg_runlog_delete(hg_runlog *rl, hg_err *err) {
  unlink_runlog(rl);
  int rc = hg_spool_delete(rl->spool, err);
  runlog_free(rl);
  return rc;
}
