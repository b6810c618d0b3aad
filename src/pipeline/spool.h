/* Per-run spool: a run's events in a CRC-checked append-only file, replayed after a restart. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/*
 * File format (all integers little-endian):
 *
 *   header   "HGSPOOL\0"  u32 version = 1  u32 reserved = 0            (16 bytes)
 *   record   u32 length   u32 CRC-32 of the payload   payload[length]   (repeated)
 *
 * Records are numbered from 0 in the order appended; what they hold is the run log's business
 * (runlog.c). A record is written whole or not at all as far as a reader can tell: on open, a
 * tail that is too short for its header or its payload, has a length above
 * HG_SPOOL_MAX_RECORD or fails its CRC ends the spool there, and the file is cut back to the
 * last good record before anything is appended. A damaged record in the middle therefore also
 * drops every record after it; nothing is ever misread.
 *
 * Appends go to a memory buffer (written early once it passes 1 MiB); hg_spool_sync writes
 * them and calls fdatasync. The caller decides when (for example every 100 ms while
 * hg_spool_dirty, and when the run finishes). A new spool has no file until records are
 * written to it (a flush, a sync, or an append past the early-write size): a spool without
 * records counts as none, so a run that stores nothing costs no file, and the header (and the
 * file's directory entry) become durable with the first sync of records. A file whose header
 * reads as zeros (a crash kept its size, not its bytes) is therefore started afresh like an
 * empty one. A spool holds an exclusive flock on its file from the open (an existing file) or
 * from its creation (a new one, created exclusively: a file that appeared meanwhile belongs to
 * another process). One thread, like the event loop that drives it.
 */

#define HG_SPOOL_VERSION 1
#define HG_SPOOL_HEADER_SIZE 16
#define HG_SPOOL_RECORD_OVERHEAD 8
#define HG_SPOOL_MAX_RECORD (64u * 1024 * 1024)

/* hg_spool_append stored the record, and the disk budget is now used up: stop reading the
 * producers (the run's pipes) until the budget's on_space callback says there is room again. */
#define HG_SPOOL_FULL 1

/* The disk space shared by all spools of an agent: the bytes of every open spool (header,
 * records and unsynced appends). Appends are never refused for lack of budget; they report
 * HG_SPOOL_FULL so that the producer pauses instead of losing data. Space comes back when a
 * spool is deleted or closed. */
typedef struct hg_spool_budget {
  uint64_t limit; /* 0: unlimited */
  uint64_t used;
  void (*on_space)(void *ud);
  void *on_space_ud;
} hg_spool_budget;

void hg_spool_budget_init(hg_spool_budget *b, uint64_t limit);
bool hg_spool_budget_full(const hg_spool_budget *b);
/* cb runs (synchronously, from hg_spool_delete or hg_spool_close) each time the budget goes
 * from full to not full. */
void hg_spool_budget_on_space(hg_spool_budget *b, void (*cb)(void *ud), void *ud);

typedef struct hg_spool hg_spool;

typedef struct hg_spool_info {
  uint64_t records;       /* good records found */
  uint64_t dropped_bytes; /* bytes of torn or corrupt tail cut off */
  bool created;           /* the file was new (or held only part of a header, or zeros) */
} hg_spool_info;

/* Opens the spool at path, checks every record and cuts off a damaged tail; a missing file is
 * created (mode 0600) when the first records are written. budget may be NULL; info may be NULL.
 * Returns 0, HG_EPROTO (not a spool file, or another version; the file is left alone),
 * HG_EAGAIN (another process holds it), HG_EIO or HG_ENOMEM, with err naming the file. */
int hg_spool_open(hg_spool **out, const char *path, hg_spool_budget *budget, hg_spool_info *info,
                  hg_err *err);

/* Appends one record: it becomes record hg_spool_count() - 1. Returns 0, HG_SPOOL_FULL (stored,
 * budget used up), HG_ETOOBIG (above HG_SPOOL_MAX_RECORD) or HG_ENOMEM; on error nothing was
 * stored. */
int hg_spool_append(hg_spool *s, const void *data, size_t len, hg_err *err);

/* Writes every appended record and makes it durable (fdatasync). On failure the records stay
 * buffered and a later sync tries again; a caller that cannot rely on the disk any more should
 * treat the run's log as unsafe. Returns 0, HG_EIO, or HG_EAGAIN (a new spool's file was
 * created by another process meanwhile). */
int hg_spool_sync(hg_spool *s, hg_err *err);

/* Syncing off the loop's thread, in two halves. hg_spool_flush writes the appended records to
 * the file without fdatasync and fills mark with what a sync of the file now covers (0 or
 * HG_EIO, as hg_spool_sync). hg_spool_sync_path(path, mark) then makes it durable from any
 * thread (it touches no hg_spool: fdatasync through a descriptor of its own, and the
 * directory's fsync when mark->dir) and returns 0 or an errno; once it succeeded,
 * hg_spool_mark_durable records that. A mark older than what is already durable changes
 * nothing. */
typedef struct hg_spool_mark {
  uint64_t bytes;   /* of the file */
  uint64_t records;
  bool dir;         /* the directory entry must be synced too (the spool's first sync) */
} hg_spool_mark;

int hg_spool_flush(hg_spool *s, hg_spool_mark *mark, hg_err *err);
int hg_spool_sync_path(const char *path, const hg_spool_mark *mark);
void hg_spool_mark_durable(hg_spool *s, const hg_spool_mark *mark);

bool hg_spool_dirty(const hg_spool *s);            /* appended records not yet durable */
uint64_t hg_spool_pending_bytes(const hg_spool *s); /* their bytes, for batching decisions */
uint64_t hg_spool_count(const hg_spool *s);         /* records, durable or not */
uint64_t hg_spool_durable_count(const hg_spool *s); /* records 0 .. n-1 survive a crash */
uint64_t hg_spool_size(const hg_spool *s);          /* bytes charged to the budget */
const char *hg_spool_path(const hg_spool *s);

/* Copies record index into out (replacing its contents). Durable or not, any appended record
 * can be read. Returns 0, HG_ENOENT (index >= count), HG_EIO (read error, or the CRC no longer
 * matches: the disk changed under us) or HG_ENOMEM. */
int hg_spool_read(hg_spool *s, uint64_t index, hg_buf *out, hg_err *err);

/* Reads records in order from a given index, including ones appended while iterating. Records
 * already written to the file are read a block at a time (one read for many small records). */
typedef struct hg_spool_iter {
  hg_spool *spool;
  uint64_t index;  /* of the next record */
  uint64_t offset; /* of the next record in the file */
  hg_buf record;
  hg_buf block;       /* file bytes [block_off, block_off + block.len) */
  uint64_t block_off;
} hg_spool_iter;

/* Positions it at record from (from == count is the end). 0, HG_ENOENT (from > count), HG_EIO. */
int hg_spool_iter_start(hg_spool_iter *it, hg_spool *s, uint64_t from, hg_err *err);
/* Positions it at record index, which starts at offset (both as a previous iterator saw them,
 * in it->index and it->offset before a hg_spool_iter_next): no search. 0, or HG_ENOENT when
 * they are past the end. */
int hg_spool_iter_resume(hg_spool_iter *it, hg_spool *s, uint64_t index, uint64_t offset,
                         hg_err *err);
/* 1 with *data and *len set to the next record (valid until the next call), its index in *index
 * (may be NULL); 0 at the end; a negative code on error. */
int hg_spool_iter_next(hg_spool_iter *it, const char **data, size_t *len, uint64_t *index,
                       hg_err *err);
void hg_spool_iter_end(hg_spool_iter *it);

/* Syncs, closes and frees (even when the sync fails, which is then returned). The file stays
 * for the next open; its bytes leave the budget. NULL is a no-op. */
int hg_spool_close(hg_spool *s, hg_err *err);

/* Removes the file and frees the spool without syncing: the run was delivered. Its bytes go
 * back to the budget. Returns 0 or HG_EIO (the file could not be removed; the spool is freed
 * all the same). */
int hg_spool_delete(hg_spool *s, hg_err *err);
