/* The agent's side of plugins: the `hangar.plugin` Lua module (listing plugin directories,
 * loading plugin.lua files, loading C modules with the ABI check of include/hangar/plugin.h)
 * and the functions that public header promises to C modules. */
#pragma once

#include "core/err.h"
#include "lua/runtime.h"

/* Makes `require "hangar.plugin"` available in rt, for lua/hangar/agent/plugins.lua.
 *
 * The plugin directories are the bundled one (hg_paths_plugins_dir(), skipped when it does not
 * exist) followed by dirs (NULL-terminated; may be NULL), in that order. Each becomes a require
 * root, so plugin `foo` requires its own modules as "foo.x" (foo/x.lua). They are the only
 * places hangar.plugin reads plugin.lua files and C modules from: loading native code is a
 * privilege of the agent, not of sandboxed Lua. A configured directory that does not exist is
 * an error naming it. Call once, after the configuration is loaded, before Lua loads plugins. */
int hg_plugin_abi_register(hg_lua *rt, const char *const *dirs, hg_err *err);
