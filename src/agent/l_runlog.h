/* Lua binding of a run's log (hg_runlog + its upload), and hangar.pipeline for scripts. */
#pragma once

#include <lua.h>
#include <stdint.h>

#include "pipeline/runlog.h"
#include "pipeline/uploader.h"

/*
 * A run log object, as the agent's Lua sees it:
 *
 *   rl.stdout, rl.stderr        sink objects: give them to hangar.process.spawn / http.request
 *   rl:write(stream, text [, ts_ms])   "stdout" | "stderr"; true | nil, err (ctx:write)
 *   rl:system(text)             a `system` line (redacted like the rest); true | nil, err
 *   rl:add_secret(value, name)  true, or false when too short (a `system` warning names it)
 *   rl:outputs()                the outputs so far as JSON text ("null" at first)
 *   rl:count()                  events stored so far
 *   rl:acked()                  events the hub has acknowledged
 *   rl:stats()                  { events, durable, acked, log_bytes, dropped_lines, truncated,
 *                                 paused, hub_status }
 *   rl:finish{status=, exit_code=, error=}
 *       suspends until the hub recorded the finish (after every event): true; or nil, message,
 *       hub_status when the hub had already ended the run otherwise; or nil, message when the
 *       hub refused the run. Whatever the outcome the upload is then over and the spool file
 *       is deleted; the sinks become invalid.
 *   rl:close()                  stops uploading and closes the log; the spool file stays (unless
 *                               finished) so that a restarted agent can reopen it. Only once
 *                               the producers writing to rl.stdout/rl.stderr have ended.
 *                               Idempotent; also what the collector does.
 * Misuse (a bad stream name, a closed log) raises; expected failures return nil, message.
 */

/* Opens (or reopens) the run's log with o (o->run_id names the run) and adds it to up. Pushes
 * the object and returns 1, or pushes nil and a message and returns 2. The uploader and
 * o->group must outlive every object (free them after hg_lua_free). */
int hg_l_runlog_push_new(lua_State *L, hg_uploader *up, const hg_runlog_opts *o);

/* What core.runlog needs to open a run's log by its id. Strings are copied. */
typedef struct hg_l_runlog_env {
  hg_uploader *up;
  hg_runlog_group *group;
  const char *spool_dir;  /* the run's spool is spool_dir/<run_id>.spool; the first open makes it */
  uint64_t max_log_bytes; /* per run; 0: no limit */
} hg_l_runlog_env;

/* Sets t.runlog = function(run_id) on the table at idx: opens the log of a run whose id is
 * [A-Za-z0-9_-]{1,64}; returns the object, or nil and a message. */
void hg_l_runlog_register(lua_State *L, int idx, const hg_l_runlog_env *env);

/* require "hangar.pipeline" (for `hangar lua` scripts, tests and benchmarks): a private
 * uploader and runlog group.
 *   local p = pipeline.new{ url =, token =, spool_dir =, max_batch_bytes =, budget_mb =,
 *                           max_run_log_mb =, sync_ms =, backoff_base_ms =, backoff_cap_ms =,
 *                           ca_file =, cert_file =, key_file = }
 *   p:runlog(run_id) -> rl | nil, err     p:set_session(token [, max_batch_bytes])
 *   p:stats() -> { runs, unacked, acked, requests, retries, reconnects, bytes, unauthorized,
 *                  cancels = { run_id, ... } }
 *   p:close()  (every run log closed first) */
int hg_l_pipeline_open(lua_State *L);
