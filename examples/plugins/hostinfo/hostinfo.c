/* The example plugin's C module: facts about the agent's host that Lua cannot read in the
 * agent's sandbox (the kernel, the load), built against Hangar's public C ABI. */
#include <hangar/plugin.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>

/* hostinfo.kernel() -> "Linux 6.1.0-13-amd64", or nil and a message. */
static int l_kernel(lua_State *L) {
  struct utsname u;
  if (uname(&u) != 0) {
    luaL_pushfail(L);
    lua_pushliteral(L, "uname failed");
    return 2;
  }
  lua_pushfstring(L, "%s %s", u.sysname, u.release);
  return 1;
}

/* hostinfo.load() -> the one-minute load average, or nil and a message. */
static int l_load(lua_State *L) {
  double avg[1];
  if (getloadavg(avg, 1) != 1) {
    luaL_pushfail(L);
    lua_pushliteral(L, "the load average is not available");
    return 2;
  }
  lua_pushnumber(L, avg[0]);
  return 1;
}

/* Called once by the agent, with the module's path. */
static int open_hostinfo(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  static const luaL_Reg funcs[] = {{"kernel", l_kernel}, {"load", l_load}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  char abi[16];
  snprintf(abi, sizeof abi, "%d", hangar_abi_version());
  /* Through the agent's own log, to show a module can use what the executable provides. */
  hangar_log(HANGAR_LOG_INFO, "hostinfo module loaded", "path", path, "abi", abi, "hangar",
             hangar_version(), NULL);
  return 1;
}

HANGAR_MODULE("hostinfo", open_hostinfo);
