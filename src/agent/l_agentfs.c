/* core.fs: the agent's state-directory file operations for Lua. */
#include "agent/agentfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/loop.h"
#include "lua/runtime.h"

#define READ_MAX ((size_t)64 << 20) /* state files are small; refuse to slurp anything huge */

static int fail(lua_State *L, const char *what, const char *path, int e) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
  return 2;
}

static int ok(lua_State *L) {
  lua_pushboolean(L, 1);
  return 1;
}

static int mkdir_p(char *path) {
  size_t len = strlen(path);
  while (len > 1 && path[len - 1] == '/') path[--len] = '\0';
  /* Usually only the last component is missing (a run's work directory): one call. */
  if (mkdir(path, 0700) == 0) return 0;
  if (errno == ENOENT) {
    for (char *p = path + 1; *p; p++) {
      if (*p != '/') continue;
      *p = '\0';
      int rc = mkdir(path, 0700);
      *p = '/';
      if (rc && errno != EEXIST) return -1;
    }
    if (mkdir(path, 0700) && errno != EEXIST) return -1;
  } else if (errno != EEXIST) {
    return -1;
  }
  struct stat st;
  if (stat(path, &st)) return -1;
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

int hg_agentfs_mkdir_p(const char *path) {
  char *copy = strdup(path);
  if (!copy) return -1;
  int rc = mkdir_p(copy);
  int e = errno;
  free(copy);
  errno = e;
  return rc;
}

static int l_mkdir_p(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  return hg_agentfs_mkdir_p(path) ? fail(L, "cannot create directory", path, errno) : ok(L);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
  return rc && errno != ENOENT ? -1 : 0;
}

/* Removes path, a file or a whole tree (a missing one is fine); 0 or an errno. */
static int remove_any(const char *path) {
  /* Usually an empty directory (a run's work directory that nothing wrote to): one call. */
  if (rmdir(path) == 0 || errno == ENOENT) return 0;
  if (errno == ENOTDIR) return unlink(path) && errno != ENOENT ? errno : 0;
  struct stat st;
  if (lstat(path, &st)) return errno == ENOENT ? 0 : errno;
  if (!S_ISDIR(st.st_mode)) return unlink(path) && errno != ENOENT ? errno : 0;
  if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS)) return errno ? errno : EIO;
  return 0;
}

static const char *check_removable(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_argcheck(L, *path && strcmp(path, "/") != 0, 1, "refusing to remove this path");
  return path;
}

static int l_remove_tree(lua_State *L) {
  const char *path = check_removable(L);
  int e = remove_any(path);
  return e ? fail(L, "cannot remove", path, e) : ok(L);
}

static int l_read(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    fail(L, "cannot read", path, e);
    if (e != ENOENT) return 2;
    lua_pushliteral(L, "missing");
    return 3;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t total = 0;
  for (;;) {
    char *p = luaL_prepbuffer(&b);
    ssize_t n = read(fd, p, LUAL_BUFFERSIZE);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (total += (size_t)(n > 0 ? n : 0)) > READ_MAX) {
      int e = n < 0 ? errno : EFBIG;
      close(fd);
      return fail(L, "cannot read", path, e);
    }
    if (n == 0) break;
    luaL_addsize(&b, (size_t)n);
  }
  close(fd);
  luaL_pushresult(&b);
  return 1;
}

static int write_all(int fd, const char *data, size_t len) {
  while (len) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

/* The directory part of path ("." when there is none), for the fsync that makes a rename
 * durable. */
static void parent_of(const char *path, char *out, size_t cap) {
  const char *slash = strrchr(path, '/');
  if (!slash) {
    snprintf(out, cap, ".");
  } else if (slash == path) {
    snprintf(out, cap, "/");
  } else {
    snprintf(out, cap, "%.*s", (int)(slash - path), path);
  }
}

/* Puts path's directory entry on the disk; 0 or an errno. */
static int sync_parent(const char *path) {
  char dir[4096];
  parent_of(path, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  int e = fsync(dfd) ? errno : 0;
  close(dfd);
  return e;
}

int hg_agentfs_write_file(const char *path, const char *data, size_t len, int durable) {
  hg_buf tmp = HG_BUF_INIT;
  if (hg_buf_printf(&tmp, "%s.tmp%ld", path, (long)getpid())) return ENOMEM;
  int fd = open(tmp.data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int e = 0;
  if (fd < 0) {
    e = errno;
  } else {
    if (write_all(fd, data, len) || (durable && fsync(fd))) e = errno;
    if (close(fd) && !e) e = errno;
    if (!e && rename(tmp.data, path)) e = errno;
    if (e) unlink(tmp.data);
  }
  hg_buf_free(&tmp);
  if (e || !durable) return e;
  (void)sync_parent(path); /* best effort: the data is on the disk */
  return 0;
}

/* Appends data to path (created with mode 0600); 0 or an errno. An append that fails leaves
 * nothing of itself (the file is cut back), so that the next one starts on a line of its own. */
static int append_file(const char *path, const char *data, size_t len) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  int e = 0;
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0 || write_all(fd, data, len)) e = errno;
  if (e && end >= 0) {
    int cut = ftruncate(fd, end); /* should this fail too, the reader skips the broken line */
    (void)cut;
  }
  if (close(fd) && !e) e = errno;
  return e;
}

static int l_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int e = append_file(path, data, len);
  if (e) return fail(L, "cannot write", path, e);
  return ok(L);
}

static int l_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int durable = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  int e = hg_agentfs_write_file(path, data, len, durable);
  if (e) return fail(L, "cannot write", path, e);
  return ok(L);
}

/* fs.remove_in_pool: remove_tree, done in libuv's thread pool while the calling task waits,
 * so that the loop (every other run, the polls, the uploads) never waits for the disk: freeing
 * the blocks of a file that was synced, or of a directory, can mean a discard request to the
 * device, answered in a millisecond or more. */

typedef struct durable_op {
  uv_work_t req;
  hg_lua_wait *w;
  char *path;
  int error;
  int abandoned;
} durable_op;

static void durable_free(void *data) {
  durable_op *op = data;
  free(op->path);
  free(op);
}

static void durable_in_pool(uv_work_t *req) {
  durable_op *op = req->data;
  op->error = remove_any(op->path);
}

static void durable_done(uv_work_t *req, int status) {
  durable_op *op = req->data;
  if (status == UV_ECANCELED && !op->error) op->error = ECANCELED;
  if (op->abandoned) {
    durable_free(op);
    return;
  }
  hg_lua_wait_done(op->w);
}

static int durable_push(lua_State *L, void *data) {
  durable_op *op = data;
  if (op->error) return fail(L, "cannot remove", op->path, op->error);
  return ok(L);
}

static void durable_abandon(void *data) {
  durable_op *op = data;
  op->abandoned = 1; /* the write goes on; durable_done frees */
}

static const hg_lua_wait_ops durable_ops = {durable_push, durable_abandon, durable_free};

static int l_remove_in_pool(lua_State *L) {
  const char *path = check_removable(L);
  hg_lua_wait *w = hg_lua_wait_new(L, "fs.remove_in_pool");
  durable_op *op = calloc(1, sizeof *op);
  if (op) op->path = strdup(path);
  if (!op || !op->path) {
    if (op) durable_free(op);
    hg_lua_wait_discard(w);
    return luaL_error(L, "fs.remove_in_pool: out of memory");
  }
  op->w = w;
  op->req.data = op;
  int rc = uv_queue_work(&hg_lua_loop(hg_lua_from(L))->uv, &op->req, durable_in_pool, durable_done);
  if (rc) {
    durable_free(op);
    hg_lua_wait_discard(w);
    return fail(L, "cannot remove", path, -rc);
  }
  return hg_lua_wait_yield(L, w, &durable_ops, op);
}

/* fs.journal: one append-only file shared by many writers on the loop, made durable by
 * group commit. Writes go to the page cache on the loop, in call order; j:sync() waits for an
 * fdatasync (in the thread pool) that starts after it was called, and every sync asked for
 * while one is in flight shares the next one: N runs finishing together wait for two syncs at
 * most, not N. j:rewrite() replaces the file with a shorter text (a temporary file written and
 * synced in the pool, then renamed over it on the loop) while writes go on: what is written in
 * the meantime goes to the old file and is kept aside, then appended to the new one before the
 * rename, so that no line is lost and none is read twice out of order. One pool job at a time
 * (a sync or a rewrite's write), so that the file never changes under a job but by appends. */
#define JOURNAL_MT "hangar.agentfs.journal"

typedef struct jwait {
  hg_lua_wait *w;
  struct jwait *next;
  int error;
  int completed, abandoned;
  char msg[256];
} jwait;

enum { JOB_NONE, JOB_SYNC, JOB_REWRITE, JOB_EMPTY };

typedef struct journal {
  uv_loop_t *loop;
  uv_work_t req;
  char *path, *tmp;
  int fd;
  off_t size;
  int job;        /* JOB_*: the pool job in flight */
  int collected;  /* the Lua object is gone: free once no job is in flight */
  int rewriting;  /* a rewrite was asked for and is not finished: writes go to tail too */
  int emptying;   /* an emptying was asked for and is not finished: writes go to tail only
                   * (during a rewrite too: that rewrite is then dropped) */
  int dir_dirty;  /* a rename to put on the disk (fsync of the directory) */
  int old_fd;     /* the replaced file, closed (and so freed) in the pool */
  jwait *pending; /* waiting for the next sync */
  jwait *inflight;
  jwait *rewrite_waiters; /* waiting for the rewrite to be on the disk */
  hg_buf snapshot, tail;
  int sync_fd, job_error, new_fd, closing_fd;
  long syncs;     /* fdatasyncs done, for tests of group commit */
} journal;

/* Answers every waiter of list; error: with "cannot write path: ...". */
static void jwait_complete_at(const char *path, jwait *list, int error) {
  while (list) {
    jwait *next = list->next;
    list->next = NULL;
    list->error = error;
    if (error) snprintf(list->msg, sizeof list->msg, "cannot write %s: %s", path, strerror(error));
    list->completed = 1;
    if (list->abandoned) {
      free(list);
    } else {
      hg_lua_wait_done(list->w);
    }
    list = next;
  }
}

static void jwait_complete(journal *j, jwait *list, int error) {
  jwait_complete_at(j->path, list, error);
}

static int jwait_push(lua_State *L, void *data) {
  jwait *jw = data;
  if (jw->error) {
    lua_pushnil(L);
    lua_pushstring(L, jw->msg);
    return 2;
  }
  return ok(L);
}

static void jwait_abandon(void *data) {
  jwait *jw = data;
  if (jw->completed) {
    free(jw);
  } else {
    jw->abandoned = 1; /* the journal frees it once its job is done */
  }
}

static void jwait_release(void *data) {
  free(data);
}

static const hg_lua_wait_ops jwait_ops = {jwait_push, jwait_abandon, jwait_release};

static void journal_free(journal *j) {
  if (j->fd >= 0) close(j->fd);
  if (j->old_fd >= 0) close(j->old_fd);
  hg_buf_free(&j->snapshot);
  hg_buf_free(&j->tail);
  free(j->path);
  free(j->tmp);
  free(j);
}

static void journal_in_pool(uv_work_t *req) {
  journal *j = req->data;
  j->job_error = 0;
  if (j->job == JOB_EMPTY) {
    if (ftruncate(j->sync_fd, 0)) j->job_error = errno; /* frees the blocks, off the loop */
    return;
  }
  if (j->job == JOB_SYNC) {
    if (fdatasync(j->sync_fd)) j->job_error = errno;
    /* The name matters as much as the data: after a rewrite, the saves waiting are synced in
     * the new file only, which a lost rename would leave without a name. */
    if (!j->job_error && j->dir_dirty) j->job_error = sync_parent(j->path);
    if (j->closing_fd >= 0) close(j->closing_fd); /* frees the replaced file's blocks */
    return;
  }
  int fd = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    j->job_error = errno;
    return;
  }
  if (write_all(fd, j->snapshot.data ? j->snapshot.data : "", j->snapshot.len) || fdatasync(fd)) {
    j->job_error = errno;
    close(fd);
    unlink(j->tmp);
    return;
  }
  j->new_fd = fd;
}

static void journal_after(uv_work_t *req, int status);

/* Starts the next pool job if none is in flight: a requested rewrite or emptying first (the
 * sync after it covers what waits meanwhile), else a sync if anything waits for one. 0 or a
 * libuv code. */
static int journal_kick(journal *j) {
  if (j->job != JOB_NONE || j->collected) return 0;
  if (j->rewriting) {
    j->job = JOB_REWRITE;
    j->new_fd = -1;
  } else if (j->emptying) {
    j->job = JOB_EMPTY;
    j->sync_fd = j->fd;
  } else if (j->pending || j->dir_dirty || j->old_fd >= 0) {
    j->job = JOB_SYNC;
    j->inflight = j->pending;
    j->pending = NULL;
    j->sync_fd = j->fd;
    j->closing_fd = j->old_fd;
    j->old_fd = -1;
  } else {
    return 0;
  }
  j->req.data = j;
  int rc = uv_queue_work(j->loop, &j->req, journal_in_pool, journal_after);
  if (rc) {
    if (j->job == JOB_SYNC) {
      j->pending = j->inflight;
      j->inflight = NULL;
      j->old_fd = j->closing_fd;
    }
    j->job = JOB_NONE;
  }
  return rc;
}

/* The rewrite's file is written and synced: append what was written since, and put it in
 * place of the journal. The sync that follows puts the rename on the disk. */
static int journal_swap(journal *j) {
  if (j->tail.len && write_all(j->new_fd, j->tail.data, j->tail.len)) return errno;
  if (rename(j->tmp, j->path)) return errno;
  j->old_fd = j->fd;
  j->fd = j->new_fd;
  j->new_fd = -1;
  j->size = (off_t)(j->snapshot.len + j->tail.len);
  j->dir_dirty = 1;
  return 0;
}

/* The file is emptied (or, e != 0, was not): what was written meanwhile follows. A durable
 * write among it that cannot be written is answered with the error by the next sync. */
static void journal_emptied(journal *j, int e) {
  j->emptying = 0;
  off_t end = e ? j->size - (off_t)j->tail.len : 0;
  if (j->tail.len && write_all(j->fd, j->tail.data, j->tail.len)) {
    int we = errno;
    int cut = ftruncate(j->fd, end);
    (void)cut;
    jwait *lost = j->pending;
    j->pending = NULL;
    jwait_complete(j, lost, we);
    j->size = end;
  } else {
    j->size = end + (off_t)j->tail.len;
  }
  hg_buf_free(&j->tail);
}

static void journal_after(uv_work_t *req, int status) {
  journal *j = req->data;
  int kind = j->job, e = j->job_error;
  if (status == UV_ECANCELED && !e) e = ECANCELED;
  j->job = JOB_NONE;
  if (kind == JOB_EMPTY) {
    journal_emptied(j, e); /* collected too: what was written meanwhile is not dropped */
  } else if (kind == JOB_SYNC) {
    j->syncs++;
    j->closing_fd = -1;
    if (!e) j->dir_dirty = 0;
    jwait *done = j->inflight;
    j->inflight = NULL;
    jwait_complete(j, done, e);
  } else {
    /* Emptied meanwhile: the text is dead, and what was written since is in tail only. */
    if (!e && !j->collected && !j->emptying) e = journal_swap(j);
    if (j->new_fd >= 0) {
      close(j->new_fd);
      unlink(j->tmp);
      j->new_fd = -1;
    }
    jwait *waiters = j->rewrite_waiters;
    j->rewrite_waiters = NULL;
    j->rewriting = 0;
    hg_buf_free(&j->snapshot);
    if (!j->emptying) hg_buf_free(&j->tail);
    if (j->emptying && j->collected) journal_emptied(j, ECANCELED); /* kept, not emptied */
    if (e || j->collected) {
      /* A failed rewrite names its own file, the one that could not be written. */
      jwait_complete_at(e ? j->tmp : j->path, waiters, e ? e : ECANCELED);
    } else {
      /* Their text is in the new file: they wait for the sync that puts it and its name on
       * the disk, as do the writes kept aside meanwhile. */
      jwait **end = &j->pending;
      while (*end) end = &(*end)->next;
      *end = waiters;
    }
  }
  if (j->collected) {
    jwait *left = j->pending;
    j->pending = NULL;
    jwait_complete(j, left, ECANCELED);
    journal_free(j);
    return;
  }
  if (journal_kick(j)) {
    jwait *all = j->pending;
    j->pending = NULL;
    jwait_complete(j, all, EIO);
  }
}

static journal *check_journal(lua_State *L) {
  journal **ud = luaL_checkudata(L, 1, JOURNAL_MT);
  luaL_argcheck(L, *ud != NULL, 1, "the journal is closed");
  return *ud;
}

static int l_journal_write(lua_State *L) {
  journal *j = check_journal(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  if ((j->rewriting || j->emptying) && hg_buf_append(&j->tail, data, len))
    return luaL_error(L, "journal: out of memory");
  if (j->emptying) { /* written once the file is empty (journal_emptied) */
    j->size += (off_t)len;
    return ok(L);
  }
  if (write_all(j->fd, data, len)) {
    int e = errno;
    int cut = ftruncate(j->fd, j->size); /* should this fail too, the reader skips the line */
    (void)cut;
    if (j->rewriting) j->tail.len -= len;
    return fail(L, "cannot write", j->path, e);
  }
  j->size += (off_t)len;
  return ok(L);
}

static int journal_wait(lua_State *L, journal *j, jwait **list, const char *what) {
  hg_lua_wait *w = hg_lua_wait_new(L, what);
  jwait *jw = calloc(1, sizeof *jw);
  if (!jw) {
    hg_lua_wait_discard(w);
    return luaL_error(L, "%s: out of memory", what);
  }
  jw->w = w;
  jw->next = *list;
  *list = jw;
  int rc = journal_kick(j);
  if (rc) {
    *list = jw->next;
    free(jw);
    hg_lua_wait_discard(w);
    return fail(L, "cannot sync", j->path, -rc);
  }
  return hg_lua_wait_yield(L, w, &jwait_ops, jw);
}

/* Starts the job *flag asks for (rewriting, emptying); one that cannot start is not asked
 * for any more. */
static int kick_flagged(lua_State *L, journal *j, int *flag, const char *what) {
  int rc = journal_kick(j);
  if (!rc) return ok(L);
  *flag = 0;
  return fail(L, what, j->path, -rc);
}

static int l_journal_sync(lua_State *L) {
  journal *j = check_journal(L);
  return journal_wait(L, j, &j->pending, "journal:sync");
}

static int l_journal_rewrite(lua_State *L) {
  journal *j = check_journal(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int wait = lua_toboolean(L, 3);
  if (j->rewriting || j->emptying) {
    lua_pushboolean(L, 0);
    return 1;
  }
  hg_buf_reset(&j->snapshot);
  hg_buf_reset(&j->tail);
  if (hg_buf_append(&j->snapshot, data, len)) return luaL_error(L, "journal: out of memory");
  j->rewriting = 1;
  if (wait) return journal_wait(L, j, &j->rewrite_waiters, "journal:rewrite");
  return kick_flagged(L, j, &j->rewriting, "cannot rewrite");
}

/* Empties the journal in place (same file: no inode to allocate), in the pool: freeing the
 * blocks of a synced file can wait for the device. Everything written before the call is
 * dropped: while an emptying is in flight, what it kept aside; while a rewrite is, the
 * rewrite, which is then followed by the emptying. Not synced: lost, the file keeps lines that
 * hold no current record. */
static int l_journal_empty(lua_State *L) {
  journal *j = check_journal(L);
  int in_flight = j->emptying || j->rewriting; /* journal_after starts this emptying */
  if (j->emptying) j->size -= (off_t)j->tail.len;
  hg_buf_reset(&j->tail);
  j->emptying = 1;
  if (in_flight) return ok(L);
  return kick_flagged(L, j, &j->emptying, "cannot empty");
}

static int l_journal_size(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_journal(L)->size);
  return 1;
}

static int l_journal_syncs(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_journal(L)->syncs);
  return 1;
}

static int l_journal_gc(lua_State *L) {
  journal **ud = luaL_checkudata(L, 1, JOURNAL_MT);
  journal *j = *ud;
  *ud = NULL;
  if (!j) return 0;
  j->collected = 1;
  if (j->job == JOB_NONE) journal_free(j); /* else journal_after frees */
  return 0;
}

static int l_journal(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  journal **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  if (luaL_newmetatable(L, JOURNAL_MT)) {
    static const luaL_Reg methods[] = {{"write", l_journal_write},     {"sync", l_journal_sync},
                                       {"rewrite", l_journal_rewrite}, {"empty", l_journal_empty},
                                       {"size", l_journal_size},       {"syncs", l_journal_syncs},
                                       {"close", l_journal_gc},        {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_journal_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  journal *j = calloc(1, sizeof *j);
  if (!j) return luaL_error(L, "fs.journal: out of memory");
  j->fd = j->old_fd = j->new_fd = j->closing_fd = -1;
  j->path = strdup(path);
  size_t n = strlen(path) + 5;
  j->tmp = malloc(n);
  if (!j->path || !j->tmp) {
    journal_free(j);
    return luaL_error(L, "fs.journal: out of memory");
  }
  snprintf(j->tmp, n, "%s.tmp", path);
  j->loop = &hg_lua_loop(hg_lua_from(L))->uv;
  j->fd = open(path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
  if (j->fd < 0 && errno == ENOENT) {
    /* A new file: the first sync puts its name on the disk too. */
    j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    j->dir_dirty = 1;
  }
  struct stat st;
  if (j->fd < 0 || fstat(j->fd, &st)) {
    int e = errno;
    journal_free(j);
    return fail(L, "cannot open", path, e);
  }
  j->size = st.st_size;
  /* A rewrite a crash cut short leaves its temporary file, holding the lines (run tokens
   * among them) of runs that may have ended since: nothing reads it. Should it not go, the
   * next rewrite, which writes that path, reports why. */
  (void)unlink(j->tmp);
  *ud = j;
  return 1;
}

static int l_remove(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (unlink(path) && errno != ENOENT) return fail(L, "cannot remove", path, errno);
  return ok(L);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int l_list(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *d = opendir(path);
  if (!d) return fail(L, "cannot list", path, errno);
  lua_newtable(L);
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    lua_pushstring(L, de->d_name);
    lua_rawseti(L, -2, ++n);
  }
  closedir(d);
  /* Sorted, so that callers (and their logs) see the same order every time. */
  const char **names = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *names, 0);
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, -2, i + 1);
    names[i] = lua_tostring(L, -1);
    lua_pop(L, 1); /* the table keeps the string alive */
  }
  qsort(names, (size_t)n, sizeof *names, cmp_names);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    lua_pushstring(L, names[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_exists(lua_State *L) {
  struct stat st;
  lua_pushboolean(L, stat(luaL_checkstring(L, 1), &st) == 0);
  return 1;
}

void hg_agentfs_push(lua_State *L) {
  static const luaL_Reg funcs[] = {{"mkdir_p", l_mkdir_p},   {"remove_tree", l_remove_tree},
                                   {"read", l_read},         {"write_atomic", l_write_atomic},
                                   {"append", l_append},
                                   {"remove_in_pool", l_remove_in_pool},
                                   {"remove", l_remove},     {"list", l_list},
                                   {"exists", l_exists},     {"journal", l_journal},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
}
