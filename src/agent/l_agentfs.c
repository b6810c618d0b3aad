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
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    int rc = mkdir(path, 0700);
    *p = '/';
    if (rc && errno != EEXIST) return -1;
  }
  if (mkdir(path, 0700) && errno != EEXIST) return -1;
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

static int l_remove_tree(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  luaL_argcheck(L, *path && strcmp(path, "/") != 0, 1, "refusing to remove this path");
  struct stat st;
  if (lstat(path, &st)) return errno == ENOENT ? ok(L) : fail(L, "cannot remove", path, errno);
  if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS)) return fail(L, "cannot remove", path, errno);
  return ok(L);
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

static int l_write_atomic(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  /* Without durable, the file is replaced as atomically (a crash of the process leaves the
   * old or the new text) but not waited for: after a power loss it may be missing, or empty
   * where there was none before. */
  int durable = lua_isnoneornil(L, 3) || lua_toboolean(L, 3);
  hg_buf tmp = HG_BUF_INIT;
  if (hg_buf_printf(&tmp, "%s.tmp%ld", path, (long)getpid())) return luaL_error(L, "out of memory");
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
  if (e) return fail(L, "cannot write", path, e);
  if (!durable) return ok(L);
  char dir[4096];
  parent_of(path, dir, sizeof dir);
  int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    fsync(dfd);
    close(dfd);
  }
  return ok(L);
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
                                   {"remove", l_remove},     {"list", l_list},
                                   {"exists", l_exists},     {NULL, NULL}};
  luaL_newlib(L, funcs);
}
