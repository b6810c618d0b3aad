/* HANGAR_HOME overrides where the bundled Lua library and plugins are found. */
#include <stdlib.h>

#include "check.h"
#include "core/paths.h"

static void home_wins(void) {
  setenv("HANGAR_HOME", "/opt/hangar-test", 1);
  CHECK_EQ_STR(hg_paths_lua_dir(), "/opt/hangar-test/lua");
  CHECK_EQ_STR(hg_paths_plugins_dir(), "/opt/hangar-test/plugins");
  /* Found once: a later change of the environment does not move the library under a running
   * process. */
  setenv("HANGAR_HOME", "/elsewhere", 1);
  CHECK_EQ_STR(hg_paths_lua_dir(), "/opt/hangar-test/lua");
}

TEST_MAIN(T(home_wins))
