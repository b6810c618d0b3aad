/* Per-run spool files: length + CRC framed records, torn-tail recovery, batched fdatasync. */
#include "pipeline/spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/crc32.h"

static const char MAGIC[8] = {'H', 'G', 'S', 'P', 'O', 'O', 'L', '\0'};

/* Every INDEX_STRIDE-th record's offset is kept, so finding record i reads at most
 * INDEX_STRIDE - 1 record headers while the index costs 8 bytes per 64 records. */
#define INDEX_STRIDE 64
/* Appends past this many buffered bytes are written at once (still synced only on request). */
#define EARLY_WRITE_BYTES (1u << 20)
#define SCAN_BLOCK (256u * 1024)
/* Largest append buffer kept after its records were written. */
#define WBUF_KEEP_BYTES (16u * 1024)

struct hg_spool {
  int fd;
  char *path;
  hg_spool_budget *budget;
  uint64_t charged;       /* bytes counted in the budget: file_len + wbuf.len */
  uint64_t file_len;      /* bytes written to the file */
  uint64_t synced_len;    /* bytes made durable */
  uint64_t count;         /* records, written or buffered */
  uint64_t written_count; /* records wholly within file_len */
  uint64_t synced_count;  /* records wholly within synced_len */
  hg_buf wbuf;            /* records after file_len */
  bool early_failed;      /* an early write failed: leave retrying to hg_spool_sync */
  bool dir_pending;       /* the file's directory entry is not known durable yet */
  bool unborn;            /* no file yet (fd -1): created by the first write of records */
  uint64_t *index;        /* index[k]: offset of record k * INDEX_STRIDE */
  size_t index_n, index_cap;
};

/* ---- budget ---- */

void hg_spool_budget_init(hg_spool_budget *b, uint64_t limit) {
  *b = (hg_spool_budget){.limit = limit};
}

bool hg_spool_budget_full(const hg_spool_budget *b) {
  return b && b->limit && b->used >= b->limit;
}

void hg_spool_budget_on_space(hg_spool_budget *b, void (*cb)(void *ud), void *ud) {
  b->on_space = cb;
  b->on_space_ud = ud;
}

static void charge(hg_spool *s, uint64_t bytes) {
  s->charged += bytes;
  if (s->budget) s->budget->used += bytes;
}

/* Gives all of s's bytes back; true when that made room in a full budget. */
static bool release(hg_spool *s) {
  hg_spool_budget *b = s->budget;
  if (!b) return false;
  bool was_full = hg_spool_budget_full(b);
  b->used -= s->charged < b->used ? s->charged : b->used;
  s->charged = 0;
  return was_full && !hg_spool_budget_full(b) && b->on_space;
}

/* The callback runs last, when the spool is gone, so it may open or delete other spools. */
static void notify(hg_spool_budget *b, bool room) {
  if (room) b->on_space(b->on_space_ud);
}

/* ---- little helpers ---- */

static void put_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static uint32_t get_le32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void make_header(unsigned char h[HG_SPOOL_HEADER_SIZE]) {
  memcpy(h, MAGIC, sizeof MAGIC);
  put_le32(h + 8, HG_SPOOL_VERSION);
  put_le32(h + 12, 0);
}

static int io_error(hg_err *err, const char *what, const char *path, int e) {
  return hg_err_set(err, HG_EIO, "spool %s: %s: %s", path, what, strerror(e));
}

static int pread_full(int fd, void *dst, size_t n, uint64_t off, size_t *got) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = pread(fd, (char *)dst + done, n - done, (off_t)(off + done));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    done += (size_t)r;
  }
  *got = done;
  return 0;
}

static int pwrite_full(int fd, const void *src, size_t n, uint64_t off) {
  size_t done = 0;
  while (done < n) {
    ssize_t w = pwrite(fd, (const char *)src + done, n - done, (off_t)(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -1;
    if (w == 0) {
      errno = EIO;
      return -1;
    }
    done += (size_t)w;
  }
  return 0;
}

/* A new directory entry is durable only once its directory is synced. */
static int sync_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
  if (!dir) return -1;
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  free(dir);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

static int index_note(hg_spool *s, uint64_t offset) {
  if (s->count % INDEX_STRIDE) return 0;
  if (s->index_n == s->index_cap) {
    size_t cap = s->index_cap ? s->index_cap * 2 : 16;
    uint64_t *p = realloc(s->index, cap * sizeof *p);
    if (!p) return HG_ENOMEM;
    s->index = p;
    s->index_cap = cap;
  }
  s->index[s->index_n++] = offset;
  return 0;
}

/* Bytes [off, off + n) of the spool as appended so far, from the file and/or the buffer. */
static int read_at(hg_spool *s, uint64_t off, void *dst, size_t n, hg_err *err) {
  char *d = dst;
  if (off < s->file_len) {
    size_t from_file = s->file_len - off < n ? (size_t)(s->file_len - off) : n, got;
    if (pread_full(s->fd, d, from_file, off, &got)) return io_error(err, "read", s->path, errno);
    if (got < from_file)
      return hg_err_set(err, HG_EIO, "spool %s: the file is shorter than expected", s->path);
    d += from_file;
    off += from_file;
    n -= from_file;
  }
  if (n) memcpy(d, s->wbuf.data + (off - s->file_len), n);
  return 0;
}

/* ---- open: check every record, cut a damaged tail ---- */

typedef struct scanner {
  int fd;
  uint64_t size;
  char *buf;
  size_t cap;
  uint64_t start;
  size_t len;
} scanner;

/* Points *p at bytes [off, off + n) of the file: 0, 1 when the file ends first, -1 on error. */
static int scan_get(scanner *sc, uint64_t off, size_t n, const unsigned char **p) {
  if (sc->size < off || sc->size - off < n) return 1;
  if (off < sc->start || off + n > sc->start + sc->len) {
    size_t want = n > SCAN_BLOCK ? n : SCAN_BLOCK;
    if (sc->size - off < want) want = (size_t)(sc->size - off);
    if (want > sc->cap) {
      char *b = realloc(sc->buf, want);
      if (!b) {
        errno = ENOMEM;
        return -1;
      }
      sc->buf = b;
      sc->cap = want;
    }
    size_t got;
    if (pread_full(sc->fd, sc->buf, want, off, &got)) return -1;
    sc->start = off;
    sc->len = got;
    if (got < n) return 1; /* shrank under us */
  }
  *p = (const unsigned char *)sc->buf + (off - sc->start);
  return 0;
}

static int scan(hg_spool *s, uint64_t size, hg_err *err) {
  scanner sc = {.fd = s->fd, .size = size};
  uint64_t off = HG_SPOOL_HEADER_SIZE;
  int rc = 0;
  for (;;) {
    const unsigned char *h, *payload;
    int r = scan_get(&sc, off, HG_SPOOL_RECORD_OVERHEAD, &h);
    if (r > 0) break;
    if (r < 0) goto read_error;
    uint32_t len = get_le32(h), crc = get_le32(h + 4);
    if (len > HG_SPOOL_MAX_RECORD) break;
    r = scan_get(&sc, off + HG_SPOOL_RECORD_OVERHEAD, len, &payload);
    if (r > 0) break;
    if (r < 0) goto read_error;
    if (hg_crc32(payload, len) != crc) break;
    if ((rc = index_note(s, off))) {
      hg_err_set(err, rc, "spool %s: out of memory", s->path);
      goto done;
    }
    off += HG_SPOOL_RECORD_OVERHEAD + len;
    s->count++;
  }
  s->file_len = off;
  goto done;
read_error:
  rc = errno == ENOMEM ? hg_err_set(err, HG_ENOMEM, "spool %s: out of memory", s->path)
                       : io_error(err, "read", s->path, errno);
done:
  free(sc.buf);
  return rc;
}

static void spool_free(hg_spool *s) {
  if (s->fd >= 0) close(s->fd); /* also drops the flock */
  free(s->path);
  hg_buf_free(&s->wbuf);
  free(s->index);
  free(s);
}

int hg_spool_open(hg_spool **out, const char *path, hg_spool_budget *budget, hg_spool_info *info,
                  hg_err *err) {
  hg_spool *s = calloc(1, sizeof *s);
  if (!s || !(s->path = strdup(path))) {
    free(s);
    return hg_err_set(err, HG_ENOMEM, "spool %s: out of memory", path);
  }
  s->fd = open(path, O_RDWR | O_CLOEXEC);
  int rc;
  if (s->fd < 0 && errno == ENOENT) {
    /* A new spool: no file until records are written to it (birth below), so that a run
     * that prints nothing costs no file. Records are numbered and placed as if the header
     * were there. */
    s->unborn = true;
    s->file_len = s->synced_len = HG_SPOOL_HEADER_SIZE;
    s->dir_pending = true;
    s->budget = budget;
    charge(s, s->file_len);
    if (info) *info = (hg_spool_info){0, 0, true};
    *out = s;
    return 0;
  }
  if (s->fd < 0) {
    rc = io_error(err, "open", path, errno);
    goto fail;
  }
  if (flock(s->fd, LOCK_EX | LOCK_NB)) {
    rc = errno == EWOULDBLOCK
             ? hg_err_set(err, HG_EAGAIN, "spool %s: in use by another process", path)
             : io_error(err, "lock", path, errno);
    goto fail;
  }
  struct stat st;
  if (fstat(s->fd, &st)) {
    rc = io_error(err, "stat", path, errno);
    goto fail;
  }
  uint64_t size = (uint64_t)st.st_size;
  unsigned char want[HG_SPOOL_HEADER_SIZE], have[HG_SPOOL_HEADER_SIZE];
  make_header(want);
  size_t got = 0;
  size_t head = size < HG_SPOOL_HEADER_SIZE ? (size_t)size : HG_SPOOL_HEADER_SIZE;
  if (pread_full(s->fd, have, head, 0, &got) || got < head) {
    rc = io_error(err, "read", path, got < head ? EIO : errno);
    goto fail;
  }
  bool created = false;
  static const unsigned char zeros[HG_SPOOL_HEADER_SIZE];
  if (size < HG_SPOOL_HEADER_SIZE || memcmp(have, zeros, sizeof zeros) == 0) {
    /* Empty, or a creation cut short: but never overwrite what is not the start of a spool.
     * A header of zeros is one a crash kept the size of but not the bytes: it was never
     * synced, so neither was anything after it. */
    if (size < HG_SPOOL_HEADER_SIZE && memcmp(have, want, head) != 0) {
      rc = hg_err_set(err, HG_EPROTO, "spool %s: not a spool file (bad header)", path);
      goto fail;
    }
    /* Not synced here: a spool holding no record is, to a restart, the same as no spool, so
     * the header becomes durable with the first records (hg_spool_sync, hg_spool_sync_path),
     * and a run that prints nothing never waits for the disk. */
    if ((size > HG_SPOOL_HEADER_SIZE && ftruncate(s->fd, HG_SPOOL_HEADER_SIZE)) ||
        pwrite_full(s->fd, want, sizeof want, 0)) {
      rc = io_error(err, "write header", path, errno);
      goto fail;
    }
    created = true;
    size = HG_SPOOL_HEADER_SIZE;
  } else {
    if (memcmp(have, MAGIC, sizeof MAGIC) != 0) {
      rc = hg_err_set(err, HG_EPROTO, "spool %s: not a spool file (bad magic)", path);
      goto fail;
    }
    uint32_t version = get_le32(have + 8);
    if (version != HG_SPOOL_VERSION || get_le32(have + 12) != 0) {
      rc = hg_err_set(err, HG_EPROTO, "spool %s: unsupported version %u (this build reads %d)",
                      path, version, HG_SPOOL_VERSION);
      goto fail;
    }
  }
  if ((rc = scan(s, size, err))) goto fail;
  if (s->file_len < size) {
    /* New records must follow the last good one, or a reader would stop at the old tail. */
    if (ftruncate(s->fd, (off_t)s->file_len) || fdatasync(s->fd)) {
      rc = io_error(err, "cut the damaged tail", path, errno);
      goto fail;
    }
  }
  s->synced_len = s->file_len;
  s->written_count = s->synced_count = s->count;
  /* A file an earlier process created may not have its entry on the disk either (it died
   * before its first sync): the first sync of records makes sure, once per open. */
  s->dir_pending = true;
  s->budget = budget;
  charge(s, s->file_len);
  if (info) *info = (hg_spool_info){s->count, size - s->file_len, created};
  *out = s;
  return 0;
fail:
  spool_free(s);
  return rc;
}

/* ---- appending and syncing ---- */

/* Creates the file of a spool opened without one, with its header, locked. Refused when the
 * file appeared meanwhile: another process has this spool, and its records are not ours to
 * overwrite. */
static int birth(hg_spool *s, hg_err *err) {
  int fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 && errno == EEXIST)
    return hg_err_set(err, HG_EAGAIN, "spool %s: in use by another process (created meanwhile)",
                      s->path);
  if (fd < 0) return io_error(err, "create", s->path, errno);
  unsigned char h[HG_SPOOL_HEADER_SIZE];
  make_header(h);
  if (flock(fd, LOCK_EX | LOCK_NB)) {
    /* Another process locked the file we created before we could: it is theirs now, and
     * removing it would take their records away. */
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      return hg_err_set(err, HG_EAGAIN, "spool %s: in use by another process", s->path);
    return io_error(err, "lock", s->path, e);
  }
  if (pwrite_full(fd, h, sizeof h, 0)) {
    int e = errno;
    unlink(s->path); /* locked by us: a file without its header is nobody's */
    close(fd);
    return io_error(err, "write header", s->path, e);
  }
  s->fd = fd;
  s->unborn = false;
  return 0;
}

static int write_pending(hg_spool *s, hg_err *err) {
  if (!s->wbuf.len) return 0;
  if (s->unborn) {
    int rc = birth(s, err);
    if (rc) return rc;
  }
  if (pwrite_full(s->fd, s->wbuf.data, s->wbuf.len, s->file_len))
    return io_error(err, "write", s->path, errno);
  s->file_len += s->wbuf.len;
  s->written_count = s->count;
  hg_buf_reset(&s->wbuf);
  return 0;
}

int hg_spool_append(hg_spool *s, const void *data, size_t len, hg_err *err) {
  if (len > HG_SPOOL_MAX_RECORD)
    return hg_err_set(err, HG_ETOOBIG, "spool %s: a record of %zu bytes is above the limit of %u",
                      s->path, len, HG_SPOOL_MAX_RECORD);
  unsigned char h[HG_SPOOL_RECORD_OVERHEAD];
  put_le32(h, (uint32_t)len);
  put_le32(h + 4, hg_crc32(data, len));
  size_t before = s->wbuf.len, index_before = s->index_n;
  if (index_note(s, s->file_len + s->wbuf.len) || hg_buf_reserve(&s->wbuf, sizeof h + len)) {
    s->index_n = index_before;
    return hg_err_set(err, HG_ENOMEM, "spool %s: out of memory", s->path);
  }
  hg_buf_append(&s->wbuf, h, sizeof h);
  hg_buf_append(&s->wbuf, data, len);
  s->count++;
  charge(s, s->wbuf.len - before);
  if (s->wbuf.len >= EARLY_WRITE_BYTES && !s->early_failed) {
    /* Only bounds memory: a failure here is reported by the next hg_spool_sync, and not
     * retried on every append (each retry would rewrite the whole, growing buffer). */
    hg_err ignored;
    s->early_failed = write_pending(s, &ignored) != 0;
  }
  return hg_spool_budget_full(s->budget) ? HG_SPOOL_FULL : 0;
}

int hg_spool_flush(hg_spool *s, hg_spool_mark *mark, hg_err *err) {
  int rc = write_pending(s, err);
  if (rc) return rc;
  s->early_failed = false;
  /* A buffer a burst made large is let go here, not at every early write (which would make a
   * busy spool fault in fresh pages for each MiB): an agent holds one spool per run, most of
   * them idle. */
  if (s->wbuf.cap > WBUF_KEEP_BYTES) hg_buf_free(&s->wbuf);
  *mark = (hg_spool_mark){s->file_len, s->written_count, s->dir_pending};
  return 0;
}

int hg_spool_sync(hg_spool *s, hg_err *err) {
  hg_spool_mark mark;
  int rc = hg_spool_flush(s, &mark, err);
  if (rc || mark.bytes <= s->synced_len) return rc;
  if (fdatasync(s->fd)) return io_error(err, "fdatasync", s->path, errno);
  if (mark.dir && sync_dir(s->path)) return io_error(err, "sync its directory", s->path, errno);
  hg_spool_mark_durable(s, &mark);
  return 0;
}

int hg_spool_sync_path(const char *path, const hg_spool_mark *mark) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int e = fd < 0 || fdatasync(fd) ? errno : 0;
  if (fd >= 0) close(fd);
  if (!e && mark->dir && sync_dir(path)) e = errno;
  return e;
}

void hg_spool_mark_durable(hg_spool *s, const hg_spool_mark *mark) {
  if (mark->dir) s->dir_pending = false;
  if (mark->bytes <= s->synced_len || mark->bytes > s->file_len) return;
  s->synced_len = mark->bytes;
  s->synced_count = mark->records;
}

bool hg_spool_dirty(const hg_spool *s) {
  return s->synced_len < s->file_len + s->wbuf.len;
}

uint64_t hg_spool_pending_bytes(const hg_spool *s) {
  return s->file_len + s->wbuf.len - s->synced_len;
}

uint64_t hg_spool_count(const hg_spool *s) {
  return s->count;
}

uint64_t hg_spool_durable_count(const hg_spool *s) {
  return s->synced_count;
}

uint64_t hg_spool_size(const hg_spool *s) {
  return s->file_len + s->wbuf.len;
}

const char *hg_spool_path(const hg_spool *s) {
  return s->path;
}

/* ---- reading ---- */

static int header_at(hg_spool *s, uint64_t off, uint32_t *len, uint32_t *crc, hg_err *err) {
  unsigned char h[HG_SPOOL_RECORD_OVERHEAD];
  int rc = read_at(s, off, h, sizeof h, err);
  if (rc) return rc;
  *len = get_le32(h);
  if (crc) *crc = get_le32(h + 4);
  if (*len > HG_SPOOL_MAX_RECORD || off + sizeof h + *len > hg_spool_size(s))
    return hg_err_set(err, HG_EIO, "spool %s: record at offset %llu is damaged", s->path,
                      (unsigned long long)off);
  return 0;
}

static int locate(hg_spool *s, uint64_t index, uint64_t *offset, hg_err *err) {
  if (index > s->count)
    return hg_err_set(err, HG_ENOENT, "spool %s: no record %llu (it has %llu)", s->path,
                      (unsigned long long)index, (unsigned long long)s->count);
  if (index == s->count) {
    *offset = hg_spool_size(s);
    return 0;
  }
  uint64_t i = index / INDEX_STRIDE * INDEX_STRIDE, off = s->index[index / INDEX_STRIDE];
  for (; i < index; i++) {
    uint32_t len;
    int rc = header_at(s, off, &len, NULL, err);
    if (rc) return rc;
    off += HG_SPOOL_RECORD_OVERHEAD + len;
  }
  *offset = off;
  return 0;
}

/* Reads the record at off into out; *next gets the offset after it. */
static int record_at(hg_spool *s, uint64_t index, uint64_t off, hg_buf *out, uint64_t *next,
                     hg_err *err) {
  uint32_t len, crc;
  int rc = header_at(s, off, &len, &crc, err);
  if (rc) return rc;
  hg_buf_reset(out);
  if (hg_buf_reserve(out, len)) return hg_err_set(err, HG_ENOMEM, "spool %s: out of memory", s->path);
  if ((rc = read_at(s, off + HG_SPOOL_RECORD_OVERHEAD, out->data, len, err))) return rc;
  out->len = len;
  out->data[len] = '\0';
  if (hg_crc32(out->data, len) != crc)
    return hg_err_set(err, HG_EIO, "spool %s: record %llu fails its CRC check", s->path,
                      (unsigned long long)index);
  *next = off + HG_SPOOL_RECORD_OVERHEAD + len;
  return 0;
}

int hg_spool_read(hg_spool *s, uint64_t index, hg_buf *out, hg_err *err) {
  if (index >= s->count)
    return hg_err_set(err, HG_ENOENT, "spool %s: no record %llu (it has %llu)", s->path,
                      (unsigned long long)index, (unsigned long long)s->count);
  uint64_t off, next;
  int rc = locate(s, index, &off, err);
  return rc ? rc : record_at(s, index, off, out, &next, err);
}

int hg_spool_iter_start(hg_spool_iter *it, hg_spool *s, uint64_t from, hg_err *err) {
  *it = (hg_spool_iter){.spool = s, .index = from};
  return locate(s, from, &it->offset, err);
}

int hg_spool_iter_resume(hg_spool_iter *it, hg_spool *s, uint64_t index, uint64_t offset,
                         hg_err *err) {
  *it = (hg_spool_iter){.spool = s, .index = index, .offset = offset};
  if (index > s->count || offset > hg_spool_size(s))
    return hg_err_set(err, HG_ENOENT, "spool %s: no record %llu (it has %llu)", s->path,
                      (unsigned long long)index, (unsigned long long)s->count);
  return 0;
}

/* Points *p at file bytes [off, off + n) through the iterator's block, reading the block
 * afresh (SCAN_BLOCK bytes or more) when they are not in it. The range is within file_len. */
static int block_get(hg_spool_iter *it, uint64_t off, size_t n, const char **p, hg_err *err) {
  hg_spool *s = it->spool;
  if (off < it->block_off || off + n > it->block_off + it->block.len) {
    uint64_t left = s->file_len - off;
    size_t want = n > SCAN_BLOCK ? n : SCAN_BLOCK, got;
    if (want > left) want = (size_t)left;
    hg_buf_reset(&it->block);
    if (hg_buf_reserve(&it->block, want))
      return hg_err_set(err, HG_ENOMEM, "spool %s: out of memory", s->path);
    if (pread_full(s->fd, it->block.data, want, off, &got))
      return io_error(err, "read", s->path, errno);
    if (got < n)
      return hg_err_set(err, HG_EIO, "spool %s: the file is shorter than expected", s->path);
    it->block.len = got;
    it->block_off = off;
  }
  *p = it->block.data + (off - it->block_off);
  return 0;
}

/* A record wholly in the file, read through the block: no copy, and one read for many. */
static int file_record(hg_spool_iter *it, const char **data, size_t *len, hg_err *err) {
  hg_spool *s = it->spool;
  const char *h;
  int rc = block_get(it, it->offset, HG_SPOOL_RECORD_OVERHEAD, &h, err);
  if (rc) return rc;
  uint32_t n = get_le32((const unsigned char *)h), crc = get_le32((const unsigned char *)h + 4);
  if (n > HG_SPOOL_MAX_RECORD || it->offset + HG_SPOOL_RECORD_OVERHEAD + n > s->file_len)
    return hg_err_set(err, HG_EIO, "spool %s: record at offset %llu is damaged", s->path,
                      (unsigned long long)it->offset);
  const char *payload;
  if ((rc = block_get(it, it->offset, HG_SPOOL_RECORD_OVERHEAD + n, &payload, err))) return rc;
  payload += HG_SPOOL_RECORD_OVERHEAD;
  if (hg_crc32(payload, n) != crc)
    return hg_err_set(err, HG_EIO, "spool %s: record %llu fails its CRC check", s->path,
                      (unsigned long long)it->index);
  *data = payload;
  *len = n;
  it->offset += HG_SPOOL_RECORD_OVERHEAD + n;
  return 0;
}

int hg_spool_iter_next(hg_spool_iter *it, const char **data, size_t *len, uint64_t *index,
                       hg_err *err) {
  if (it->index >= it->spool->count) return 0;
  int rc;
  if (it->offset < it->spool->file_len) {
    /* Records never straddle file_len: the append buffer is written whole. */
    if ((rc = file_record(it, data, len, err))) return rc;
  } else {
    uint64_t next;
    if ((rc = record_at(it->spool, it->index, it->offset, &it->record, &next, err))) return rc;
    *data = it->record.data;
    *len = it->record.len;
    it->offset = next;
  }
  if (index) *index = it->index;
  it->index++;
  return 1;
}

void hg_spool_iter_end(hg_spool_iter *it) {
  hg_buf_free(&it->record);
  hg_buf_free(&it->block);
}

/* ---- closing ---- */

int hg_spool_close(hg_spool *s, hg_err *err) {
  if (!s) return 0;
  int rc = hg_spool_sync(s, err);
  hg_spool_budget *b = s->budget;
  bool room = release(s);
  spool_free(s);
  notify(b, room);
  return rc;
}

int hg_spool_delete(hg_spool *s, hg_err *err) {
  int rc = 0;
  if (!s->unborn && unlink(s->path) && errno != ENOENT) rc = io_error(err, "remove", s->path, errno);
  hg_spool_budget *b = s->budget;
  bool room = release(s);
  spool_free(s);
  notify(b, room);
  return rc;
}
