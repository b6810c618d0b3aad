/* Where Hangar finds its bundled Lua library, plugins and examples. */
#include "core/paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The installed data directory relative to the installed executable's directory. */
#ifndef HANGAR_DATA_RELDIR
#define HANGAR_DATA_RELDIR "../share/hangar"
#endif

int hg_paths_exe_dir(char *dir, size_t size, hg_err *err) {
  ssize_t n = readlink("/proc/self/exe", dir, size - 1);
  if (n <= 0 || (size_t)n >= size - 1)
    return hg_err_set(err, HG_ENOENT, "cannot find this executable (/proc/self/exe): %s",
                      n <= 0 ? strerror(errno) : "path too long");
  dir[n] = '\0';
  char *slash = strrchr(dir, '/');
  if (!slash) return hg_err_set(err, HG_ENOENT, "cannot find this executable's directory (%s)", dir);
  slash[slash == dir] = '\0'; /* "/hangar" keeps its "/" */
  return 0;
}

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static const char *find(char *cache, size_t size, const char *sub) {
  if (cache[0]) return cache;
  const char *home = getenv("HANGAR_HOME");
  if (home && *home) {
    snprintf(cache, size, "%s/%s", home, sub);
    return cache;
  }
  /* An installed tree finds its own files first, under whatever prefix it was installed with
   * (cmake --install --prefix, DESTDIR) or moved to. */
  char exe[PATH_MAX];
  hg_err ignored;
  if (hg_paths_exe_dir(exe, sizeof exe, &ignored) == 0) {
    int n = snprintf(cache, size, "%s/%s/%s", exe, HANGAR_DATA_RELDIR, sub);
    if (n > 0 && (size_t)n < size && is_dir(cache)) return cache;
  }
  snprintf(cache, size, "%s/%s", HANGAR_DATADIR, sub);
  if (is_dir(cache)) return cache;
  /* An uninstalled build runs from its source tree. */
  snprintf(cache, size, "%s/%s", HANGAR_SOURCE_DIR, sub);
  return cache;
}

const char *hg_paths_lua_dir(void) {
  static char dir[4096];
  return find(dir, sizeof dir, "lua");
}

const char *hg_paths_plugins_dir(void) {
  static char dir[4096];
  return find(dir, sizeof dir, "plugins");
}

const char *hg_paths_examples_dir(void) {
  static char dir[4096];
  return find(dir, sizeof dir, "examples");
}
