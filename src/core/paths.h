/* Where Hangar finds its bundled Lua library, plugins and examples. */
#pragma once

/* The directory holding lua/hangar/...: $HANGAR_HOME/lua if set, else the source tree of a
 * build that has not been installed, else the installed data directory. Never NULL. */
const char *hg_paths_lua_dir(void);
/* The directory holding the bundled plugins (sandbox, ...), found the same way. */
const char *hg_paths_plugins_dir(void);
/* The directory holding the examples (tasks/, plugins/, ...), found the same way. */
const char *hg_paths_examples_dir(void);
