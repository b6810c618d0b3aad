/* The agent's C capabilities for its Lua (the `core` table that hangar.agent.main gets): the
 * API key and the session's X25519 keys, which never reach Lua; registering with the hub;
 * opening sealed secrets; the state directory's files; signals; reloading the configuration;
 * a condition for tasks; the hand-over of each new session to the uploader.
 *
 * What Lua sees (lua/hangar/agent/main.lua documents its use):
 *   core.session_key()            -> base64 public key of a fresh X25519 pair (the private key
 *                                    joins the keyring in state_dir/session.key, mode 0600)
 *   core.open_secrets(sealed, run_id) -> { NAME = value } | nil, err (tries every key kept)
 *   core.register(body)           -> status, answer | nil, err   (POST /v1/agents with the key)
 *   core.set_session(agent_id, token, max_batch_bytes)
 *   core.on_signal("TERM"|"INT"|"HUP", fn)   fn runs as a new task on each signal
 *   core.on_event("unauthorized"|"cancel", fn) fn(arg) runs as a new task on each
 *                                    hg_agentcore_emit (the uploader's 401s and cancels)
 *   core.reload_config()          -> config | nil, err (the file read again, validated)
 *   core.params_json(accept_body) -> params_text, { slug = text } | nil, err (compact JSON,
 *                                    member order as the hub sent it)
 *   core.where(fn)                -> "file:line" where fn was defined
 *   core.getenv(name)             -> the agent's own environment variable, or nil
 *   core.hostname()               -> the host's name
 *   core.metrics_set(name, number)
 *   core.set_log_level("debug"|"info"|"warn"|"error")
 *   core.release_memory()         a full Lua collection, then free C heap pages go back to the
 *                                    system (when the agent falls idle)
 *   core.cond()                   (src/agent/agentcond.h)
 *   core.fs                       (src/agent/agentfs.h)
 *   core.state_dir, core.version, core.hub_url, core.config_path */
#pragma once

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/http.h"
#include "lua/config.h"
#include "lua/runtime.h"

typedef struct hg_agentcore hg_agentcore;

typedef struct hg_agentcore_opts {
  hg_lua *rt;
  hg_http *http;          /* borrowed; shared with hangar.http and the uploader */
  const char *hub_url;    /* base URL; a trailing slash is dropped */
  hg_http_tls tls;        /* copied */
  const char *state_dir;  /* an existing directory (absolute, so runs' cwd do not depend on
                             the agent's own) */
  const char *config_path; /* what core.reload_config reads, with config_env */
  const char *config_env;
  const char *schema;     /* schema module for reloads ("hangar.schema.agent") */
} hg_agentcore_opts;

/* Called by core.set_session: the uploader's seam. */
typedef void (*hg_agentcore_session_cb)(const char *agent_id, const char *token,
                                        int64_t max_batch_bytes, void *data);

int hg_agentcore_new(const hg_agentcore_opts *opts, hg_agentcore **out, hg_err *err);
/* Takes a copy of the API key (the caller wipes its own). */
int hg_agentcore_set_key(hg_agentcore *c, const char *key, size_t len, hg_err *err);
void hg_agentcore_on_session(hg_agentcore *c, hg_agentcore_session_cb cb, void *data);
/* The configuration the agent started with, so that a reload can release it; the core owns
 * it from here on. */
void hg_agentcore_adopt_config(hg_agentcore *c, hg_lua_config *cfg);
/* Pushes the `core` table. Call from a Lua C function or inside hg_lua_protect. Extra fields
 * (core.runlog) can be set on it afterwards. */
void hg_agentcore_push(hg_agentcore *c, lua_State *L);
/* Runs the Lua handler core.on_event registered for event, as a new task, with arg (the
 * token that was refused, a run id). No handler: nothing happens. From the loop only. */
void hg_agentcore_emit(hg_agentcore *c, const char *event, const char *arg);
/* The last value core.metrics_set gave name; 0 and HG_ENOENT when none. */
int hg_agentcore_metric(const hg_agentcore *c, const char *name, double *out);
/* Calls fn for every metric core.metrics_set gave, in the order they first appeared. */
void hg_agentcore_metrics_each(const hg_agentcore *c,
                               void (*fn)(const char *name, double value, void *data), void *data);
/* Stops the signal handlers, releases the configuration, wipes the key and the keyring.
 * Call once no Lua code runs any more, before hg_lua_free (the runtime must still be alive;
 * waits still pending are abandoned by hg_lua_free without touching the core). NULL: no-op. */
void hg_agentcore_free(hg_agentcore *c);
