/* Hangar's public C ABI: what a plugin's Lua C module builds against. Versioned and kept small.
 *
 * A plugin directory may ship a Lua C module (a shared object). Its plugin.lua loads it with
 * `plugin.load_c("native.so")`; the agent dlopen()s it, reads the descriptor every module
 * exports (hangar_plugin_abi), refuses a module built for another HANGAR_ABI_VERSION, then calls
 * the descriptor's open function, a lua_CFunction that returns the module's value.
 *
 *   #include <hangar/plugin.h>
 *   static int l_hello(lua_State *L) { lua_pushliteral(L, "hello"); return 1; }
 *   static int open_native(lua_State *L) {
 *     static const luaL_Reg f[] = {{"hello", l_hello}, {NULL, NULL}};
 *     luaL_newlib(L, f);
 *     return 1;
 *   }
 *   HANGAR_MODULE("native", open_native);
 *
 * Build it as a shared object (-fPIC -shared) against this header and Lua 5.4's headers, and do
 * not link liblua nor anything of Hangar's: the hangar executable provides Lua's API and the
 * functions below when it loads the module. Give the module no constructor functions: loading
 * runs them before the agent can check the descriptor. Nothing else in it runs before open.
 *
 * Compatibility promise: HANGAR_ABI_VERSION changes whenever a change here could break a
 * module built earlier (a field moved, a function's meaning or signature changed, a function
 * removed). Adding a function or appending a field to hangar_module does not change it. The
 * first member of hangar_module is the version in every ABI, so any agent can read it. */
#pragma once

#include <lua.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI this header describes. */
#define HANGAR_ABI_VERSION 1

/* The name of the descriptor symbol each module exports. */
#define HANGAR_ABI_SYMBOL "hangar_plugin_abi"

#if defined(__GNUC__) || defined(__clang__)
#define HANGAR_EXPORT __attribute__((visibility("default")))
#else
#define HANGAR_EXPORT
#endif

/* A module's descriptor. */
typedef struct hangar_module {
  uint32_t abi_version; /* HANGAR_ABI_VERSION the module was built with; always first */
  uint32_t size;        /* sizeof(hangar_module) at build time */
  const char *name;     /* the module's name, for messages ("native") */
  lua_CFunction open;   /* called once, with the full path of the shared object as its
                           argument; returns one value: what load_c returns to Lua */
} hangar_module;

/* Defines the descriptor. Use once per shared object, at file scope. */
#define HANGAR_MODULE(module_name, open_fn)                                                  \
  HANGAR_EXPORT extern const hangar_module hangar_plugin_abi;                                \
  const hangar_module hangar_plugin_abi = {HANGAR_ABI_VERSION, (uint32_t)sizeof(hangar_module), \
                                           (module_name), (open_fn)}

/* ---- Functions the hangar executable provides to modules ---- */

/* The ABI the running agent speaks (equal to HANGAR_ABI_VERSION once a module is loaded). */
int hangar_abi_version(void);

/* The running Hangar's version, e.g. "0.1.0". */
const char *hangar_version(void);

typedef enum hangar_log_level {
  HANGAR_LOG_DEBUG = 0,
  HANGAR_LOG_INFO = 1,
  HANGAR_LOG_WARN = 2,
  HANGAR_LOG_ERROR = 3,
} hangar_log_level;

/* Writes one line to the agent's own structured log (JSON lines), as hangar.log does from Lua:
 * msg, then pairs of const char *key, const char *value (NULL value: JSON null), ended by a
 * NULL key. Never log a secret: the agent's log is not redacted. */
void hangar_log(hangar_log_level level, const char *msg, ...);

#ifdef __cplusplus
}
#endif
