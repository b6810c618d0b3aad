-- The agent: `hangar agent` runs main.run(config, core) as a task and exits with its result.
--
-- config is the validated configuration (hangar.schema.agent); core holds what must stay in C
-- (src/agent/agentcore.h: the API key and session keys, register, sealed secrets, files,
-- signals, reloading). This file wires the pieces together and owns the agent's own life:
--
--   serving   polling for work, running what comes, up to `capacity` at once
--   draining  first SIGTERM/SIGINT (or the hub's `drain`): no new runs; once the running ones
--             finished, deregister and exit 0
--   stopping  second signal (or the hub's `stop`): the running runs are cancelled with their
--             grace, then as draining; a third signal exits at once (the state directory
--             keeps what a restart needs)
-- SIGHUP reloads the configuration file: hooks, secret resolvers, scheduler settings,
-- capacity, pass_env, secret_env, kill_grace_s, retry and log_level take effect for runs
-- accepted from then on; hub, name, labels, state_dir, plugin_dirs, spool and health need a
-- restart (a warning says so). Runs already going keep what they started with.
--
-- Plugins: hangar.agent.plugins loads them into a registry: the list of plugins (each with its
-- name and hooks) and their schedulers and secret resolvers merged by name.
local json = require "hangar.json"
local log = require "hangar.log"
local async = require "hangar.async"
local timer = require "hangar.timer"
local sorted_keys = require("hangar.tables").sorted_keys
local state = require "hangar.agent.state"
local hooks = require "hangar.agent.hooks"
local plugin_loader = require "hangar.agent.plugins"
local session = require "hangar.agent.session"
local run = require "hangar.agent.run"
local file_secrets = require "hangar.secrets.file"
local env_secrets = require "hangar.secrets.env"

local main = {}

local EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_REVOKED = 0, 1, 2, 3

-- ---- plugins, schedulers, resolvers ----

-- The plugins' registry (hangar.agent.plugins), or nil and a message.
local function load_plugins(config)
  local reg, err = plugin_loader.load(config.plugin_dirs)
  if not reg then
    return nil, "plugins: " .. tostring(err)
  end
  return reg
end

-- The backend modules by name: the bundled ones on demand, the plugins', and any other
-- hangar.schedulers.NAME the configuration names.
local function find_backend(name, plugins)
  if plugins.schedulers[name] then
    return plugins.schedulers[name]
  end
  if not name:match("^[%w_]+$") then
    return nil, "no scheduler named '" .. name .. "'"
  end
  local ok, mod = pcall(require, "hangar.schedulers." .. name)
  if not ok then
    if tostring(mod):find("not found", 1, true) then
      return nil, "no scheduler named '" .. name .. "' (neither bundled nor from a plugin)"
    end
    return nil, "scheduler " .. name .. ": " .. tostring(mod)
  end
  return mod
end

-- Configures every scheduler the agent offers: the default one, each with a settings section,
-- and the plugins'. Returns { name = { backend = module, settings = table } }.
local function configure_schedulers(config, plugins)
  local names = { [config.scheduler] = true }
  for name in pairs(config.schedulers) do
    names[name] = true
  end
  for name in pairs(plugins.schedulers) do
    names[name] = true
  end
  local out, errors = {}, {}
  for _, name in ipairs(sorted_keys(names)) do
    local backend, err = find_backend(name, plugins)
    if backend then
      for _, fn in ipairs(plugin_loader.BACKEND_REQUIRED) do
        if type(backend[fn]) ~= "function" then
          err = ("scheduler %s has no %s function"):format(name, fn)
        end
      end
    end
    local settings = config.schedulers[name] or {}
    if backend and not err and backend.configure then
      local ok, result, msg = pcall(backend.configure, settings)
      if not ok then
        err = result
      elseif result == nil and msg ~= nil then
        err = msg
      elseif type(result) == "table" then
        settings = result
      end
      if err then
        err = ("schedulers.%s: %s"):format(name, tostring(err))
      end
    end
    if err then
      errors[#errors + 1] = err
    else
      out[name] = { backend = backend, settings = settings }
    end
  end
  if #errors > 0 then
    return nil, table.concat(errors, "\n")
  end
  return out
end

local function make_resolvers(config, core, plugins)
  local out = {
    file = file_secrets.resolver(core.fs, config.secret_files),
    env = env_secrets.resolver(core.getenv, config.secret_env),
  }
  for scheme, fn in pairs(plugins.secret_resolvers) do
    out[scheme] = fn
  end
  for scheme, fn in pairs(config.secret_resolvers) do
    out[scheme] = fn
  end
  return out
end

local function agent_name(config, core)
  if config.name then
    return config.name
  end
  local host = core.hostname():gsub("[^%w_.-]", "-"):sub(1, 64)
  return host ~= "" and host or "agent"
end

--- Validates what the schema cannot: the schedulers' own settings. For `hangar agent --check`.
function main.check(config)
  local plugins, err = load_plugins(config)
  if not plugins then
    return nil, err
  end
  local ok, serr = configure_schedulers(config, plugins)
  if not ok then
    return nil, serr
  end
  return true
end

-- ---- the agent ----

local Agent = {}
Agent.__index = Agent

local function new_agent(config, core)
  local st, err = state.open(config.state_dir, core.fs)
  if not st then
    return nil, err
  end
  local plugins, perr = load_plugins(config)
  if not plugins then
    return nil, perr
  end
  local scheds, serr = configure_schedulers(config, plugins)
  if not scheds then
    return nil, serr
  end
  local self = setmetatable({
    config = config,
    core = core,
    state = st,
    plugins = plugins,
    schedulers = scheds,
    hooks = hooks.new(config.hooks, plugins, core.where, { core.config_path }),
    resolvers = make_resolvers(config, core, plugins),
    name = agent_name(config, core),
    labels = config.labels,
    runs = {},
    held = 0,
    finishing = 0, -- runs held whose process ended, their finish on its way (Agent:slot_released)
    tidying = 0, -- runs ended whose log and record are still being removed
    mode = "starting",
    signals = 0,
    wake = core.cond(),
  }, Agent)
  self.session = session.new(self)
  return self
end

--- Information about the agent for agent_start/agent_stop hooks.
function Agent:info()
  return {
    name = self.name,
    agent_id = self.session.agent_id,
    labels = self.labels,
    capacity = self.config.capacity,
    state_dir = self.config.state_dir,
    hub_url = self.config.hub.url,
  }
end

function Agent:scheduler_names()
  return sorted_keys(self.schedulers)
end

--- The slots taken: runs held, less those only waiting for their finish. At most as many of
--- those as the capacity count as free: finishes held up (a hub slow to take a run's last
--- events) stop the agent taking more runs, as a full slot does.
function Agent:busy()
  return self.held - math.min(self.finishing, self.config.capacity)
end

function Agent:free_slots()
  if self.mode ~= "serving" then
    return 0
  end
  return math.max(0, self.config.capacity - self:busy())
end

function Agent:polling()
  return self.mode == "serving" or self.mode == "draining" or self.mode == "stopping"
end

function Agent:alive()
  return self.exit_code == nil
end

function Agent:stopping_before_start()
  return not self.started and (self.mode == "draining" or self.mode == "stopping")
end

--- The runs held now, for heartbeats.
function Agent:held_runs()
  local list = {}
  for id, r in pairs(self.runs) do
    list[#list + 1] = { run_id = id, status = r:hub_status() }
  end
  table.sort(list, function(a, b) return a.run_id < b.run_id end)
  return list
end

--- Values of the pass_env variables the agent has.
function Agent:pass_env_values()
  local out = {}
  for _, name in ipairs(self.config.pass_env) do
    out[name] = self.core.getenv(name)
  end
  return out
end

--- Publishes the run counts for the health listener's /metrics.
function Agent:update_metrics()
  local counts = { accepted = 0, running = 0, finishing = 0 }
  for _, r in pairs(self.runs) do
    local kind = r.slot_released and "finishing" or r.phase == "running" and "running" or "accepted"
    counts[kind] = counts[kind] + 1
  end
  self.core.metrics_set('runs{state="accepted"}', counts.accepted)
  self.core.metrics_set('runs{state="running"}', counts.running)
  self.core.metrics_set('runs{state="finishing"}', counts.finishing)
  self.core.metrics_set("capacity", self.config.capacity)
  self.core.metrics_set("draining", self.mode == "serving" and 0 or 1)
end

--- Whether s is an id as the protocol defines them: 1 to 64 of [A-Za-z0-9_-].
local function valid_id(s)
  return #s <= 64 and s:match("^[A-Za-z0-9_%-]+$") ~= nil
end

--- An assignment from the work poll.
function Agent:offer(a)
  if type(a) ~= "table" or type(a.run_id) ~= "string" or type(a.lease_id) ~= "string" then
    return
  end
  -- A run id names files in the state directory and goes into URLs: one outside the id
  -- alphabet (docs/protocol.md) is never taken, whoever sent it.
  if not valid_id(a.run_id) or not valid_id(a.lease_id) then
    log.warn("refusing an assignment with a malformed id", { run = a.run_id:sub(1, 80) })
    return
  end
  if self.runs[a.run_id] then
    return
  end
  if self.mode ~= "serving" or self:busy() >= self.config.capacity then
    -- Not accepting lets the lease lapse: the hub gives the run to someone else.
    log.info("not taking an assigned run", { run = a.run_id, reason = self.mode ~= "serving" and self.mode or "at capacity" })
    return
  end
  self.held = self.held + 1
  local r = run.new(self, a.run_id, a.lease_id)
  self.runs[a.run_id] = r
  self:update_metrics()
  run.spawn(r)
end

--- A run's process has ended (or never started) and only its finish is left: its slot is
--- free. The next work poll asks for it while the run's end is on its way to the hub, so that a
--- run queued meanwhile (by whoever waited for this one's end) finds a poll open. The run stays
--- held, for heartbeats and a drain, until Agent:run_ended.
function Agent:slot_released(r)
  if self.runs[r.id] ~= r or r.slot_released then
    return
  end
  local before = self:busy()
  r.slot_released = true
  self.finishing = self.finishing + 1
  self:update_metrics()
  self:slots_changed(before)
end

-- Tells the session when fewer slots are taken than `before` (Agent:busy() earlier): a slot
-- that did not really free (a run whose slot was released already, or finishes beyond the
-- capacity holding it) asks for no new poll, which would only ask for what the open one did.
function Agent:slots_changed(before)
  if self.mode == "serving" and self:busy() < before then
    self.session:slot_freed()
  end
end

--- A run is over (finished, dropped or handed back): the agent lets go of it, and of its slot
--- if Agent:slot_released did not free that already. tidying: its log and record are still
--- being removed; Agent:tidied follows once they are.
function Agent:run_ended(r, tidying)
  local before = self:busy()
  if self.runs[r.id] == r then
    self.runs[r.id] = nil
    self.held = self.held - 1
    if r.slot_released then
      self.finishing = self.finishing - 1
    end
  end
  if tidying then
    self.tidying = self.tidying + 1
  end
  self:update_metrics()
  self:slots_changed(before)
  if self.held == 0 then
    self:fell_idle()
  end
  self.wake:notify()
end

function Agent:tidied()
  self.tidying = self.tidying - 1
  self.wake:notify()
end

-- Once the agent has held no run for a while, what the last runs used goes back to the system
-- (a full collection costs about a millisecond: not after every run of a steady trickle).
local SETTLE_MS = 2000

function Agent:fell_idle()
  self.idle_since = timer.monotonic()
  if self.settling or not self.core.release_memory then
    return
  end
  self.settling = true
  async.run(function()
    local wait = SETTLE_MS
    while wait > 0 and self:alive() do
      timer.sleep(wait)
      wait = self.idle_since + SETTLE_MS - timer.monotonic()
    end
    self.settling = false
    if self.held == 0 and self:alive() then
      self.core.release_memory()
    end
  end)
end

function Agent:cancel_run(run_id, reason)
  local r = self.runs[run_id]
  if r then
    r:cancel(reason)
  end
end

function Agent:hub_action(action)
  if action == "drain" then
    self:drain("the hub asked the agent to drain")
  elseif action == "stop" then
    self:drain("the hub asked the agent to stop")
    self:stop("the hub asked the agent to stop")
  end
end

function Agent:exit(code, message)
  if self.exit_code == nil then
    self.exit_code = code
    self.exit_message = message
  end
  self.wake:notify()
end

-- Waits until no run is held (and the last ones' files are removed), then deregisters and
-- exits 0.
local function finish_drain(self)
  while (self.held > 0 or self.tidying > 0) and self.exit_code == nil do
    self.wake:wait(1000)
  end
  if self.exit_code == nil then
    self.session:deregister()
    self:exit(EXIT_OK)
  end
end

function Agent:drain(why)
  if self.mode ~= "serving" and self.mode ~= "starting" then
    return
  end
  local before = self.mode
  self.mode = "draining"
  if before == "serving" then
    self.session:kick() -- a poll with free=0 replaces the open one; cancels still arrive
    async.run(finish_drain, self)
  end
  log.info("draining: no new runs; exiting once the running ones finished", { reason = why, running = self.held })
  self.wake:notify() -- a registration still retrying gives up
end

function Agent:stop(why)
  if self.mode == "stopping" then
    return
  end
  self.mode = "stopping"
  log.info("stopping: cancelling the running runs", { reason = why, running = self.held })
  for _, r in pairs(self.runs) do
    r:cancel("cancelled: the agent was stopped")
  end
end

function Agent:on_shutdown_signal(name)
  self.signals = self.signals + 1
  if self.signals == 1 then
    self:drain("SIG" .. name)
  elseif self.signals == 2 then
    self:stop("a second SIG" .. name)
  else
    log.warn("exiting at once; a restart picks up the runs still held", { signal = name })
    self:exit(EXIT_ERROR, "stopped by a third signal before the running runs ended")
  end
end

--- The session ended for good (the key was revoked, or the hub refused to register us).
function Agent:session_lost(message, why)
  if self.exit_code ~= nil then
    return
  end
  local code = why == "revoked" and EXIT_REVOKED or (why == "stopped" and EXIT_OK or EXIT_CONFIG)
  log.error(message)
  self.mode = "stopping"
  async.run(function()
    for _, r in pairs(self.runs) do
      r:abort(message)
    end
    -- Runs cannot be finished without a session: give their processes their grace to stop.
    local deadline = timer.monotonic() + (self.config.kill_grace_s + 2) * 1000
    while (next(self.runs) or self.tidying > 0) and timer.monotonic() < deadline do
      local all_stopped = true
      for _, r in pairs(self.runs) do
        if not r:stopped() then
          all_stopped = false
        end
      end
      if all_stopped then
        break
      end
      self.wake:wait(200)
    end
    self:exit(code, message)
  end)
end

-- ---- reloading ----

local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b
  end
  for k, v in pairs(a) do
    if not same(v, b[k]) then
      return false
    end
  end
  for k in pairs(b) do
    if a[k] == nil then
      return false
    end
  end
  return true
end

local FIXED = { "hub", "name", "labels", "state_dir", "plugin_dirs", "spool", "health" }

function Agent:reload()
  log.info("SIGHUP: reloading the configuration")
  local cfg, err = self.core.reload_config()
  if not cfg then
    log.error("the configuration did not reload; keeping the one in use", { error = err })
    return
  end
  cfg.state_dir = self.config.state_dir -- made absolute at start; it does not change
  local scheds, serr = configure_schedulers(cfg, self.plugins)
  if not scheds then
    log.error("the configuration did not reload; keeping the one in use", { error = serr })
    return
  end
  for _, key in ipairs(FIXED) do
    if not same(cfg[key], self.config[key]) then
      log.warn("a changed setting takes effect only after a restart", { key = key })
      cfg[key] = self.config[key]
    end
  end
  local old_capacity = self.config.capacity
  self.config = cfg
  self.schedulers = scheds
  self.hooks = hooks.new(cfg.hooks, self.plugins, self.core.where, { self.core.config_path })
  self.resolvers = make_resolvers(cfg, self.core, self.plugins)
  self.session:retry_settings(cfg)
  self.core.set_log_level(cfg.log_level)
  log.info("configuration reloaded", { capacity = cfg.capacity, schedulers = table.concat(self:scheduler_names(), ",") })
  if cfg.capacity ~= old_capacity and self.mode == "serving" then
    self.session:kick()
  end
end

-- ---- restart: runs held before ----

-- Matches the run records in the state directory with the runs the hub says this identity
-- holds: those are resumed (spool uploaded, then finished or reattached); records the hub
-- no longer lists are left-overs of finished runs; runs the hub lists without a record
-- (the agent died between accept and writing it) are finished failed.
function Agent:reconcile(hub_runs)
  local listed = {}
  for _, r in ipairs(type(hub_runs) == "table" and hub_runs or {}) do
    if type(r) == "table" and type(r.run_id) == "string" then
      listed[r.run_id] = r.status or "unknown"
    end
  end
  local records, bad = self.state:load_runs()
  if not records then
    -- Without them every run the hub lists would look lost and be finished failed, results
    -- and reattachable runs included: stop instead, and leave the runs to their leases.
    return nil, bad
  end
  for _, b in ipairs(bad) do
    log.error("unreadable run record left in place", b)
  end
  for _, rec in ipairs(records) do
    if listed[rec.run_id] then
      local r = run.from_record(self, rec, listed[rec.run_id])
      listed[rec.run_id] = nil
      self.held = self.held + 1
      self.runs[rec.run_id] = r
      run.spawn(r)
    else
      log.info("dropping the record of a run the hub no longer assigns to this agent", { run = rec.run_id })
      run.discard_leftovers(self, rec)
    end
  end
  for id, status in pairs(listed) do
    self.held = self.held + 1
    local r = run.orphan(self, id, status)
    self.runs[id] = r
    run.spawn(r)
  end
  -- A work directory of no run held now: one made while an accept was on its way (the agent
  -- stopped before the hub answered, or the hub refused it), or a finished run's whose
  -- removal did not happen. No run has started yet, so nothing else is writing there.
  for _, id in ipairs(self.state:workdir_ids()) do
    if not self.runs[id] then
      log.info("removing the work directory of a run this agent no longer holds", { run = id })
      self.core.fs.remove_in_pool(self.state:workdir(id))
    end
  end
  return true
end

-- ---- main ----

--- Runs the agent until it stops; returns the exit code and, on failure, a message.
function main.run(config, core)
  local self, err = new_agent(config, core)
  if not self then
    return EXIT_CONFIG, err
  end
  core.on_signal("TERM", function(name) self:on_shutdown_signal(name) end)
  core.on_signal("INT", function(name) self:on_shutdown_signal(name) end)
  core.on_signal("HUP", function() self:reload() end)
  -- From the uploader: a 401 on an upload (the session lapsed), a cancel seen in an answer.
  core.on_event("unauthorized", function(token) self.session:renew(token, "event upload") end)
  core.on_event("cancel", function(run_id) self:cancel_run(run_id, "cancelled") end)

  local doc, rerr, why = self.session:register()
  if not doc then
    if why == "stopped" then
      log.info("agent exiting before it registered", { code = EXIT_OK })
      return EXIT_OK
    end
    log.error(rerr)
    return why == "revoked" and EXIT_REVOKED or EXIT_CONFIG, rerr
  end
  self.started = true
  if self.mode == "starting" then
    self.mode = "serving"
  end
  local ok, herr = self.hooks:run("agent_start", { self:info(), n = 1 })
  if not ok then
    log.error("an agent_start hook failed; stopping", { error = herr })
    self.session:deregister()
    return EXIT_CONFIG, herr
  end
  local rok, rerr = self:reconcile(doc.runs)
  if not rok then
    log.error("cannot read the run records; stopping, the runs the hub lists left as they are", { error = rerr })
    return EXIT_CONFIG, rerr
  end
  self:update_metrics()
  self.session:serve()
  if self.mode == "draining" then
    async.run(finish_drain, self)
  end
  log.info("agent ready", { name = self.name, capacity = config.capacity, labels = json.encode(json.object(self.labels)) })
  if self.held == 0 then
    self:fell_idle() -- what starting up used (compiling, the configuration) goes too
  end

  while self.exit_code == nil do
    self.wake:wait()
  end
  local sok, serr = self.hooks:run("agent_stop", { self:info(), n = 1 })
  if not sok then
    log.error("an agent_stop hook failed", { error = serr })
  end
  log.info("agent exiting", { code = self.exit_code })
  return self.exit_code, self.exit_message
end

-- The agent's methods, for the specs that drive its bookkeeping without a hub.
main.Agent = Agent

return main
