/* A run's log: the bytes a run prints, redacted, framed into lines, read for output and mask
 * lines, and stored as protocol events in the run's spool, ready for the uploader. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"
#include "pipeline/spool.h"

/*
 * One hg_runlog per run. Bytes go, per stream, through the redactor (the run's secret set, one
 * scanner per stream), the line framer, and the output-line parser; what comes out is stored as
 * protocol events, numbered from 0 in the order stored (an event's sequence number). The
 * events one call stores make one spool record, compactly; hg_runlog_read_events gives them
 * back as the JSON text of each event. Nothing is sent from here; the uploader reads them.
 *
 *   log line     {"kind":"log","ts","stream":"stdout|stderr|system","text","partial"}
 *   output op    {"kind":"output","ts","op":"set|append","path","value"}
 *
 * - Timestamps are the read time the producer passes with the bytes (the time a line began).
 * - Output lines are logged, then applied to the run's own copy of the outputs; only an op
 *   that applied is stored (the hub replays exactly those). One that does not apply, and any
 *   malformed output, chunk or mask line, becomes a `system` line naming the error.
 * - `hangar_mask VALUE` is not logged; VALUE is masked from the next byte on, in every stream,
 *   even later in the same write. A reassembled chunk line is redacted again as a whole.
 * - System lines (hg_runlog_system, and the pipeline's own messages) are redacted too, and
 *   like every other line are valid UTF-8 of at most 64 KiB per event (longer: partial pieces).
 * - Log limit (max_log_bytes, counting the text of stdout and stderr lines): the line that would
 *   pass it is dropped and one `system` line says the output was truncated; later log lines are
 *   counted but not stored, and hg_runlog_end adds one line saying how many were dropped.
 *   Output ops, mask lines and system lines keep working: outputs are the run's result and are
 *   small, and the spool budget still bounds the disk.
 * - Backpressure: every runlog of a group shares one spool budget. A sink write that finds it
 *   used up has still stored its bytes, and answers HG_SINK_PAUSE; the producer waits until the
 *   group resumes it, when a spool is closed or deleted and the budget has room again. Nothing
 *   is dropped for lack of space. (A budget smaller than the runs' spools together can
 *   therefore hold runs paused until another run's spool is delivered and deleted: size it at
 *   least capacity x max_log_bytes.)
 * - Durability: sync_ms after the first unsynced append a timer writes the records to the file
 *   and has libuv's thread pool fdatasync it (the loop never waits for the disk; needs the
 *   group's loop); hg_runlog_sync and hg_runlog_end sync at once, on the calling thread. The
 *   uploader sends only durable events (hg_runlog_uploadable), so the hub never has an event
 *   the spool could lose in a crash, and a restarted agent never numbers a new event like one
 *   already sent.
 * - Reopening a spool that holds events (agent restart) counts them and rebuilds the outputs
 *   and the log-limit state from them; new events continue the numbering. The secret set is
 *   not persisted: the owner registers the run's secrets again.
 * - Memory: nothing is preallocated per stream; buffers grow with long lines and bursts and
 *   shrink back, so an idle run costs a few KiB. Event text is built in the group's scratch
 *   buffer, without an allocation per line.
 *
 * One thread (the loop's). Callbacks run from the loop or from inside the calls named.
 */

/* Text of one log event at most (bytes of UTF-8); longer lines travel as partial pieces. */
#define HG_RUNLOG_MAX_TEXT 65536
#define HG_RUNLOG_SYNC_MS 100

typedef enum hg_runlog_stream {
  HG_RUNLOG_STDOUT = 0,
  HG_RUNLOG_STDERR = 1,
} hg_runlog_stream;

typedef struct hg_runlog_group hg_runlog_group;
typedef struct hg_runlog hg_runlog;

/* The runlogs of one agent: the shared spool budget (budget_bytes, 0: unlimited), the loop for
 * sync timers and deferred resumes (NULL: no timers; syncs only when asked), and scratch space
 * shared by all of them. Returns 0 or HG_ENOMEM. */
int hg_runlog_group_new(hg_runlog_group **out, hg_loop *loop, uint64_t budget_bytes, hg_err *err);
/* Every runlog of the group must be closed first. NULL is a no-op. */
void hg_runlog_group_free(hg_runlog_group *g);

typedef struct hg_runlog_opts {
  hg_runlog_group *group; /* required */
  const char *run_id;     /* names the run in messages */
  const char *spool_path; /* required; reopened, or created (0600) with the first events stored */
  uint64_t max_log_bytes; /* log limit; 0: none */
  size_t max_chunk_bytes; /* pending chunk data per run; 0: the outline default (4 MiB) */
  int64_t sync_ms;        /* 0: HG_RUNLOG_SYNC_MS */
} hg_runlog_opts;

/* Opens (or reopens and replays) the run's spool. A run that stores no event never creates the
 * file. Errors: those of hg_spool_open (HG_EAGAIN: another process holds it; HG_EPROTO: not a
 * spool), HG_EINVAL (missing option), HG_ENOMEM. A new spool that another process creates
 * before this one stores its first events is refused then, by the sync (HG_EAGAIN). */
int hg_runlog_open(hg_runlog **out, const hg_runlog_opts *opts, hg_err *err);

/* The sink producers write a stream's raw bytes into. Its write answers 0, HG_SINK_PAUSE, or a
 * negative code once the runlog failed or ended (the producer then stops). Its eof is
 * hg_runlog_eof. The sink lives as long as the runlog. */
hg_sink *hg_runlog_sink(hg_runlog *rl, hg_runlog_stream stream);

/* What the sink's write does: raw bytes read at ts_ms (<= 0: now). Returns 0, HG_SINK_PAUSE
 * (stored; the budget is full), HG_ECANCELED (after hg_runlog_end), or the code of a failure
 * (out of memory, a spool error), after which every write fails the same way. */
int hg_runlog_write(hg_runlog *rl, hg_runlog_stream stream, const void *bytes, size_t len,
                    int64_t ts_ms, hg_err *err);
/* End of a stream: its unterminated last line is stored. The stream may take more bytes later
 * (a second producer), as a new line. */
int hg_runlog_eof(hg_runlog *rl, hg_runlog_stream stream, hg_err *err);
/* Stores text as `system` lines (one per line of text; redacted). 0 or a negative code. */
int hg_runlog_system(hg_runlog *rl, const char *text, hg_err *err);
/* Registers a secret for redaction from the next byte on. Returns 0; HG_REDACT_TOO_SHORT when
 * the value is shorter than HG_REDACT_MIN_LEN (not registered: a `system` warning naming
 * `name`, never the value, was stored); HG_ETOOBIG (a set limit; also warned about) or
 * HG_ENOMEM. */
int hg_runlog_add_secret(hg_runlog *rl, const void *value, size_t len, const char *name,
                         hg_err *err);

/* The run's output is complete: flushes both streams' last lines, adds the line counting
 * what the log limit dropped, and syncs. Later writes answer HG_ECANCELED. Idempotent.
 * Returns 0 or the sync's error (the events are stored all the same). */
int hg_runlog_end(hg_runlog *rl, hg_err *err);
bool hg_runlog_ended(const hg_runlog *rl);

/* The outputs so far (NULL means JSON null); owned by the runlog. */
const cJSON *hg_runlog_outputs(const hg_runlog *rl);
/* Events stored so far: the next event's sequence number, and events_total at finish. */
uint64_t hg_runlog_count(const hg_runlog *rl);
/* Complete lines of a stream stored as log events so far (events with partial false), counted
 * again from the spool when it is reopened: where a producer that can replay its output (a
 * remote job's log) resumes after a restart. */
uint64_t hg_runlog_lines(const hg_runlog *rl, hg_runlog_stream which);
/* Events the uploader may send: the durable ones, or all once a sync failed (the disk no longer
 * keeps them, and holding them back would only lose them with the process). */
uint64_t hg_runlog_uploadable(const hg_runlog *rl);
/* Appends the JSON texts of events from, from + 1, ... (before end, and stored), joined by
 * commas, to out: as many as fit in max_bytes (commas included), and always at least one.
 * *next gets the sequence number after the last one appended (from when none). Reading on
 * from where the last read stopped costs no search. 0, HG_EIO (the spool cannot be read) or
 * HG_ENOMEM. */
int hg_runlog_read_events(hg_runlog *rl, uint64_t from, uint64_t end, size_t max_bytes,
                          hg_buf *out, uint64_t *next, hg_err *err);
/* Makes every stored event durable now. 0, HG_EIO or HG_EAGAIN (see hg_runlog_open); retried
 * by the timer. */
int hg_runlog_sync(hg_runlog *rl, hg_err *err);
hg_spool *hg_runlog_spool(hg_runlog *rl);
const char *hg_runlog_run_id(const hg_runlog *rl);

/* fn(ud) runs whenever more events became uploadable (after a sync) and when the runlog ends:
 * the uploader's cue. One listener; NULL removes it. */
void hg_runlog_set_listener(hg_runlog *rl, void (*fn)(void *ud), void *ud);

typedef struct hg_runlog_stats {
  uint64_t events;        /* stored */
  uint64_t durable;       /* synced */
  uint64_t log_bytes;     /* text of stdout/stderr lines stored, counted for the limit */
  uint64_t dropped_lines; /* lines (or pieces) the log limit dropped */
  uint64_t dropped_bytes;
  bool truncated;         /* the log limit was reached */
  bool paused;            /* a producer of this run waits for the budget */
} hg_runlog_stats;

void hg_runlog_stats_get(const hg_runlog *rl, hg_runlog_stats *out);

/* Syncs and closes; the spool file stays for a later reopen. Producers must have stopped
 * writing to the sinks. Returns 0 or the sync's error (the runlog is freed all the same).
 * NULL is a no-op. */
int hg_runlog_close(hg_runlog *rl, hg_err *err);
/* Closes and removes the spool file: the run was delivered and finished. 0 or HG_EIO (freed
 * all the same). */
int hg_runlog_delete(hg_runlog *rl, hg_err *err);
