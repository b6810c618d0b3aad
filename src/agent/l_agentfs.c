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

/* Puts path's directory entry on the disk (best effort: the data already is). */
static void sync_parent(const char *path) {
  char dir[4096];
  parent_of(path, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
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
  sync_parent(path);
  return 0;
}

/* Appends data to path (created with mode 0600); 0 or an errno. An append that fails leaves
 * nothing of itself (the file is cut back), so that the next one starts on a line of its own.
 * Durable: the bytes and the file's directory entry are on the disk when it returns. */
static int append_file(const char *path, const char *data, size_t len, int durable) {
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno;
  int e = 0;
  off_t end = lseek(fd, 0, SEEK_END);
  if (end < 0 || write_all(fd, data, len) || (durable && fdatasync(fd))) e = errno;
  if (e && end >= 0) {
    int cut = ftruncate(fd, end); /* should this fail too, the reader skips the broken line */
    (void)cut;
  }
  if (close(fd) && !e) e = errno;
  if (e || !durable) return e;
  sync_parent(path);
  return 0;
}

static int l_append(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int e = append_file(path, data, len, 0);
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

/* fs.write_durable, fs.append_durable and fs.remove_in_pool: write_atomic's and append's
 * durable writes, and remove_tree, done in libuv's thread pool while the calling task waits,
 * so that the loop (every other run, the polls, the uploads) never waits for the disk. A
 * removal waits for it too: freeing the blocks of a file that was synced, or of a directory,
 * can mean a discard request to the device, answered in a millisecond or more. */
enum { OP_WRITE, OP_APPEND, OP_REMOVE };

typedef struct durable_op {
  uv_work_t req;
  hg_lua_wait *w;
  char *path, *data;
  size_t len;
  int kind;
  int error;
  int abandoned;
} durable_op;

static void durable_free(void *data) {
  durable_op *op = data;
  free(op->path);
  free(op->data);
  free(op);
}

static void durable_in_pool(uv_work_t *req) {
  durable_op *op = req->data;
  op->error = op->kind == OP_REMOVE   ? remove_any(op->path)
              : op->kind == OP_APPEND ? append_file(op->path, op->data, op->len, 1)
                                      : hg_agentfs_write_file(op->path, op->data, op->len, 1);
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
  if (op->error)
    return fail(L, op->kind == OP_REMOVE ? "cannot remove" : "cannot write", op->path, op->error);
  return ok(L);
}

static void durable_abandon(void *data) {
  durable_op *op = data;
  op->abandoned = 1; /* the write goes on; durable_done frees */
}

static const hg_lua_wait_ops durable_ops = {durable_push, durable_abandon, durable_free};

static int in_pool(lua_State *L, int kind, const char *name) {
  const char *path = kind == OP_REMOVE ? check_removable(L) : luaL_checkstring(L, 1);
  size_t len = 0;
  const char *data = kind == OP_REMOVE ? "" : luaL_checklstring(L, 2, &len);
  hg_lua_wait *w = hg_lua_wait_new(L, name);
  durable_op *op = calloc(1, sizeof *op);
  if (op) {
    op->path = strdup(path);
    op->data = malloc(len ? len : 1);
  }
  if (!op || !op->path || !op->data) {
    if (op) durable_free(op);
    hg_lua_wait_discard(w);
    return luaL_error(L, "%s: out of memory", name);
  }
  memcpy(op->data, data, len);
  op->len = len;
  op->kind = kind;
  op->w = w;
  op->req.data = op;
  int rc = uv_queue_work(&hg_lua_loop(hg_lua_from(L))->uv, &op->req, durable_in_pool, durable_done);
  if (rc) {
    durable_free(op);
    hg_lua_wait_discard(w);
    return fail(L, kind == OP_REMOVE ? "cannot remove" : "cannot write", path, -rc);
  }
  return hg_lua_wait_yield(L, w, &durable_ops, op);
}

static int l_write_durable(lua_State *L) {
  return in_pool(L, OP_WRITE, "fs.write_durable");
}

static int l_append_durable(lua_State *L) {
  return in_pool(L, OP_APPEND, "fs.append_durable");
}

static int l_remove_in_pool(lua_State *L) {
  return in_pool(L, OP_REMOVE, "fs.remove_in_pool");
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
                                   {"write_durable", l_write_durable},
                                   {"append", l_append},     {"append_durable", l_append_durable},
                                   {"remove_in_pool", l_remove_in_pool},
                                   {"remove", l_remove},     {"list", l_list},
                                   {"exists", l_exists},     {NULL, NULL}};
  luaL_newlib(L, funcs);
}
