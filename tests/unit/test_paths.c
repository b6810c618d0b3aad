/* Finding the bundled Lua library and plugins: HANGAR_HOME first, else the data directory or
 * the source tree of an uninstalled build. */
#include <stdlib.h>
#include <sys/stat.h>

#include "check.h"
#include "core/paths.h"

static void finds_a_tree_that_has_the_library(void) {
  const char *lua = hg_paths_lua_dir();
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/hangar/config.lua", lua);
  struct stat st;
  CHECK(stat(probe, &st) == 0);
  snprintf(probe, sizeof probe, "%s/sandbox/plugin.lua", hg_paths_plugins_dir());
  CHECK(stat(probe, &st) == 0);
}

TEST_MAIN(T(finds_a_tree_that_has_the_library))
