/* Where Hangar finds its bundled Lua library, plugins and examples. */
#include "core/paths.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

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
