/* A byte sink: where a producer (a process pipe, an HTTP response body, a Lua ctx:write)
 * delivers bytes, and how a full sink pushes back on the producer. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct hg_sink hg_sink;

/* Returned by write when the sink wants the producer to stop until it calls resume. */
#define HG_SINK_PAUSE 1

typedef struct hg_sink_ops {
  /* Takes len bytes read at ts_ms (Unix ms). Returns 0, HG_SINK_PAUSE (the bytes were taken,
   * but send no more until the resume callback fires), or a negative code (the sink failed;
   * the producer stops and reports it). */
  int (*write)(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms);
  /* The producer has no more bytes (EOF, process exited, response ended). */
  void (*eof)(hg_sink *s, int64_t ts_ms);
} hg_sink_ops;

struct hg_sink {
  const hg_sink_ops *ops;
  void *data;
  /* Set by the producer while it is paused; the sink calls it once it can take more. */
  void (*resume)(void *producer);
  void *producer;
};

static inline int hg_sink_write(hg_sink *s, const char *bytes, size_t len, int64_t ts_ms) {
  return s->ops->write(s, bytes, len, ts_ms);
}

static inline void hg_sink_eof(hg_sink *s, int64_t ts_ms) {
  if (s->ops->eof) s->ops->eof(s, ts_ms);
}

/* The sink calls this when it can take bytes again; a no-op unless a producer waits. */
static inline void hg_sink_resume(hg_sink *s) {
  void (*resume)(void *) = s->resume;
  void *producer = s->producer;
  s->resume = NULL;
  s->producer = NULL;
  if (resume) resume(producer);
}
