/* A condition tasks wait on, for the agent's Lua: one task waits (with a timeout) until another
 * notifies, so a run can race its process against a cancel and its deadline without polling. */
#pragma once

#include <lua.h>

/* Pushes the constructor `core.cond()`, which returns an object with
 *   c:wait([timeout_ms]) -> true when notified, false when the timeout passed (suspends the
 *                           calling task; no timeout: waits for a notify)
 *   c:notify()           -> wakes every task waiting now (a notify nobody waits for is lost:
 *                           check your own state in a loop around wait)
 */
void hg_agentcond_push_new(lua_State *L);
