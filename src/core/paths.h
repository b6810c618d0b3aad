/* Where Hangar finds its bundled Lua library, plugins and examples. */
#pragma once

#include <stddef.h>

#include "core/err.h"

/* The directory of the running executable (from /proc/self/exe), into dir. */
int hg_paths_exe_dir(char *dir, size_t size, hg_err *err);

/* The directory holding lua/hangar/...: $HANGAR_HOME/lua if set; else the installed data
 * directory beside the executable (share/hangar under the prefix the executable is installed
 * in, wherever that tree was installed or moved to); else the data directory the build was
 * configured for; else the source tree of a build that has not been installed. Never NULL. */
const char *hg_paths_lua_dir(void);
/* The directory holding the bundled plugins (sandbox, ...), found the same way. */
const char *hg_paths_plugins_dir(void);
/* The directory holding the examples (tasks/, plugins/, ...), found the same way. */
const char *hg_paths_examples_dir(void);
