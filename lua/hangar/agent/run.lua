-- One run on this agent, from the hub's assignment to its finish, as one task:
--
--   accept (its log opened and its work directory made meanwhile) -> before_accept hooks ->
--   open the sealed secrets, resolve secret references, hand every secret to the redactor ->
--   build the environment -> environment hooks -> before_run hooks -> scheduler start ->
--   record it in the state directory, and tell the hub it started (the answer comes while the
--   process runs) -> wait, racing the timeout, a cancel and a refused start -> scheduler
--   cleanup -> after_run hooks -> finish (once every event reached the hub, and the start was
--   answered)
--
-- The outcome: succeeded (exit code 0), failed ("exit code N", "killed by signal N",
-- "timed out after N s", "hook NAME (file:line): message", a decline's reason, ...) or
-- cancelled. Whatever goes wrong, the run is finished: a run never just disappears.
local json = require "hangar.json"
local log = require "hangar.log"
local timer = require "hangar.timer"
local sorted_keys = require("hangar.tables").sorted_keys
local async = require "hangar.async"
local task = require "hangar.task"
local env = require "hangar.agent.env"
local hooks = require "hangar.agent.hooks"
local hubclient = require "hangar.agent.hubclient"

local run = {}

local Run = {}
Run.__index = Run

local function present(v)
  if v == nil or v == json.null then
    return nil
  end
  return v
end

-- JSON nulls become plain absences, so that hooks and backends can test `run.task.image`.
local function strip_nulls(v)
  if type(v) ~= "table" then
    return v
  end
  for k, x in pairs(v) do
    if x == json.null then
      v[k] = nil
    else
      strip_nulls(x)
    end
  end
  return v
end

local function rfc3339(ms)
  return os.date("!%Y-%m-%dT%H:%M:%S", ms // 1000) .. string.format(".%03dZ", ms % 1000)
end

local function failed(message, exit_code)
  return { status = "failed", error = message, exit_code = exit_code }
end

local function first_line(text)
  return (tostring(text):match("^[^\n]*"))
end

--- A run the hub assigned under lease_id.
function run.new(agent, run_id, lease_id)
  return setmetatable({
    agent = agent,
    core = agent.core,
    id = run_id,
    lease_id = lease_id,
    phase = "assigned",
    hooks = agent.hooks, -- a reload does not change the hooks of a run already going
    offered_at = timer.monotonic(),
    cond = agent.core.cond(),
  }, Run)
end

--- A run found in the state directory after a restart, which the hub says this agent holds
--- (hub_status: the run's status in the hub's register answer).
function run.from_record(agent, rec, hub_status)
  local r = run.new(agent, rec.run_id, rec.lease_id)
  r.resumed = rec
  r.hub_status_at_resume = hub_status
  return r
end

--- A run the hub says this agent holds but that has no record (the agent stopped between
--- accepting it and starting its process, or the record was lost); hub_status: the run's
--- status in the hub's register answer.
function run.orphan(agent, run_id, hub_status)
  local r = run.new(agent, run_id, nil)
  r.orphaned = true
  r.hub_status_at_resume = hub_status
  return r
end

--- What is left of a run the hub no longer lists: its record, spool and work directory.
function run.discard_leftovers(agent, rec)
  local st, fs = agent.state, agent.core.fs
  local sched = agent.schedulers[rec.scheduler or ""]
  if sched and rec.handle ~= nil and rec.run then
    pcall(sched.backend.cleanup, rec.run, rec.handle, { run_id = rec.run_id, settings = sched.settings, log = log })
  end
  fs.remove_in_pool(st:workdir(rec.run_id))
  fs.remove(st.dir .. "/spool/" .. rec.run_id .. ".spool")
  st:remove_run(rec.run_id)
end

-- ---- small pieces ----

--- The status to report in heartbeats.
function Run:hub_status()
  if self.cancel_reason then
    return "cancelling"
  end
  return self.phase == "running" and "running" or "accepted"
end

--- Asks the run to stop: before it starts, it is finished cancelled without starting; while
--- it runs, the scheduler cancels it (polite signal, then force after the grace).
function Run:cancel(reason)
  if self.cancel_reason or self.phase == "done" then
    return
  end
  self.cancel_reason = reason or "cancelled"
  log.info("cancelling a run", { run = self.id, reason = self.cancel_reason })
  self.cond:notify()
end

--- The session is gone for good: stop the run's process; it cannot be finished.
function Run:abort(message)
  self.aborted = message
  self:cancel("cancelled: " .. tostring(message))
end

--- Whether nothing of the run is executing any more.
function Run:stopped()
  return self.phase ~= "running" or self.watch_done == true
end

-- durable = false: a record a power cut could lose without harm (see hangar.agent.state).
function Run:save(durable)
  local ok, err = self.agent.state:save_run(self.record, durable)
  if not ok then
    log.error("cannot write the run's record; a restart will not find it", { run = self.id, error = err })
  end
end

function Run:system(text)
  if self.rl then
    self.rl:system(text)
  end
end

-- Runs the hooks of a kind, remembering which one runs (a hook that blows the CPU budget
-- kills the task; the guardian below then names it).
function Run:hook(name, ...)
  local args = table.pack(...)
  return self.hooks:run(name, args, function(h)
    self.current_hook = h and { name = name, hook = h } or nil
  end)
end

-- ---- the hub ----

function Run:accept()
  local session = self.agent.session
  local ttl_ms = session.lease_ttl_s * 1000
  local res, kind = session:call("POST", "/v1/runs/" .. self.id .. "/accept", {
    body = { lease_id = self.lease_id },
    -- An assignment not accepted within the lease TTL goes back to the queue anyway.
    give_up = function()
      return timer.monotonic() - self.offered_at > ttl_ms
    end,
  })
  if kind == "ok" and type(res.json) == "table" and type(res.json.run) == "table" then
    return strip_nulls(res.json.run), res.body
  end
  log.info("run not accepted", { run = self.id, answer = hubclient.describe(res, kind) })
  return nil
end

function Run:tell_started(at_ms)
  local res, kind = self.agent.session:call("POST", "/v1/runs/" .. self.id .. "/start", { body = { at = rfc3339(at_ms) } })
  if kind ~= "ok" then
    return nil, "the hub refused to start the run: " .. hubclient.describe(res, kind)
  end
  if type(res.json) == "table" and res.json.status == "cancelling" then
    self:cancel("cancelled")
  end
  return true
end

-- Tells the hub the run started at at_ms, in a task of its own: the process is already
-- running, and the round trip to the hub need not delay it. An answer that refuses the start
-- (a lost lease, a run the hub ended, a session that ended for good) stops the process; while
-- the hub cannot be reached, the call retries as any other. The run is not finished before
-- the answer came (see Run:await_start), so that the hub never sees a finish before the start.
function Run:announce_start(at_ms)
  self.start_pending = true
  async.run(function()
    local ok, told, err = pcall(self.tell_started, self, at_ms)
    if not ok then
      err = "the agent failed while telling the hub the run started: " .. first_line(told)
    end
    if not (ok and told) then
      self.start_refused = err
      log.info("the hub refused the run's start; the run is stopped", { run = self.id, error = err })
    end
    self.start_pending = false
    self.cond:notify()
  end)
end

-- Waits for the answer to the start call, if one is still out.
function Run:await_start()
  while self.start_pending do
    self.cond:wait(1000)
  end
end

-- ---- secrets ----

function Run:resolve_refs()
  local refs = present(self.doc.secret_refs) or {}
  local out = {}
  for _, name in ipairs(sorted_keys(refs)) do
    local uri = refs[name]
    local scheme = type(uri) == "string" and uri:match("^(%a[%w+.-]*)://")
    local resolver = scheme and self.agent.resolvers[scheme]
    if not resolver then
      local have = sorted_keys(self.agent.resolvers)
      return nil, ("secret %s: no resolver for %s on this agent (it has: %s)"):format(
        name, scheme and (scheme .. "://") or tostring(uri), table.concat(have, ", "))
    end
    local ok, value, err = pcall(resolver, uri, self.doc)
    if not ok then
      return nil, ("secret %s (%s): the resolver failed: %s"):format(name, uri, first_line(value))
    end
    if type(value) ~= "string" then
      return nil, ("secret %s (%s): %s"):format(name, uri, tostring(err or "no value"))
    end
    out[name] = value
  end
  return out
end

-- Opens the sealed secrets and resolves the references, and tells the redactor about every
-- value (and the run token) before anything can print them.
function Run:secrets()
  local secrets, err = self.core.open_secrets(present(self.doc.secrets), self.id)
  if not secrets then
    return nil, err
  end
  local refs, rerr = self:resolve_refs()
  if not refs then
    return nil, rerr
  end
  for _, set in ipairs({ secrets, refs }) do
    for name, value in pairs(set) do
      -- A secret the redactor cannot hold would reach the log in plain text: refuse the run.
      local ok, why = self.rl:add_secret(value, name)
      if ok == nil then
        return nil, ("%s; the run was not started because its log could not be masked"):format(why)
      end
    end
  end
  if type(self.doc.run_token) == "string" then
    self.rl:add_secret(self.doc.run_token, "HANGAR_RUN_TOKEN")
  end
  return secrets, refs
end

-- ---- the scheduler's view of the run ----

function Run:context(run_env)
  local rl = self.rl
  local ctx = {
    run_id = self.id,
    workdir = self.agent.state:workdir(self.id),
    env = run_env,
    stdout = rl.stdout,
    stderr = rl.stderr,
    settings = self.sched.settings,
    log = log,
  }
  -- Callable as ctx:write(...) and ctx.system(...) alike.
  function ctx.write(c, stream, text, ts)
    if c ~= ctx then
      c, stream, text, ts = ctx, c, stream, text
    end
    return rl:write(stream, text, ts)
  end
  function ctx.system(c, text)
    return rl:system(c == ctx and text or c)
  end
  function ctx.stored_lines(c, stream)
    return rl:lines(c == ctx and stream or c)
  end
  function ctx.secret(c, value, name)
    if c ~= ctx then
      c, value, name = ctx, c, value
    end
    return rl:add_secret(value, name)
  end
  return ctx
end

-- ---- running ----

-- Before anything runs: scheduler choice, before_accept, secrets, environment, before_run.
-- Returns the environment, or nil and the result to finish with.
function Run:prepare()
  local doc, agent = self.doc, self.agent
  local task = doc.task or {}
  local name = present(task.scheduler) or agent.config.scheduler
  self.sched_name, self.sched = name, agent.schedulers[name]
  self.record.scheduler = name
  if not self.sched then
    return nil, failed(("no scheduler '%s' on this agent (it has: %s)"):format(name, table.concat(agent:scheduler_names(), ", ")))
  end

  local ok, msg, why = self:hook("before_accept", doc)
  if not ok then
    self:system(why == "declined" and ("declined: " .. msg) or msg)
    return nil, failed(msg)
  end
  if self.cancel_reason then
    return nil, { status = "cancelled", error = self.cancel_reason }
  end

  local secrets, refs = self:secrets()
  if not secrets then
    self:system(refs)
    return nil, failed(refs)
  end

  -- The parameters' text as the hub sent it (member order, number formatting), from the accept's
  -- body; a run without parameters has none to take, and its body is not parsed again.
  local params_all, params_each
  if type(doc.params) == "table" and next(doc.params) ~= nil then
    params_all, params_each = self.core.params_json(self.accept_body or json.encode({ run = doc }))
  end
  local run_env = env.build {
    run = doc,
    pass = agent:pass_env_values(),
    secrets = secrets,
    refs = refs,
    hub_url = agent.config.hub.url,
    workdir = agent.state:workdir(self.id),
    params_json = params_all and { all = params_all, each = params_each } or nil,
  }
  local eok, edited = self:hook("environment", doc, run_env)
  if not eok then
    self:system(edited)
    return nil, failed(edited)
  end
  for k, v in pairs(edited) do
    if type(k) ~= "string" or (type(v) ~= "string" and math.type(v) ~= "integer") then
      local m = ("the environment hooks left %s = %s; names and values must be strings"):format(tostring(k), type(v))
      self:system(m)
      return nil, failed(m)
    end
    edited[k] = tostring(v)
  end

  self.ran_before_run = true
  local bok, bmsg = self:hook("before_run", doc, edited)
  if not bok then
    self:system(bmsg)
    return nil, failed(bmsg)
  end
  return edited
end

-- Stops the backend's run (in its own task: a remote backend's cancel may take a while).
function Run:stop_backend(why)
  local grace = self.sched.settings.kill_grace_s or self.agent.config.kill_grace_s
  self:system(("%s: stopping the run (SIGTERM, then SIGKILL after %s s)"):format(why, grace))
  async.run(function()
    local ok, err = pcall(self.sched.backend.cancel, self.doc, self.handle, self.ctx, grace)
    if not ok then
      self:system("the scheduler could not cancel the run: " .. first_line(err))
    end
  end)
end

-- Waits for the run to end, racing its timeout and a cancel. Returns the result.
function Run:watch()
  local timeout_s = math.tointeger(present((self.doc.task or {}).timeout_s)) or 3600
  local deadline = self.started_mono + timeout_s * 1000
  local outcome = {}
  async.run(function()
    local ok, r, err = pcall(self.sched.backend.wait, self.doc, self.handle, self.ctx)
    outcome.ok, outcome.r, outcome.err = ok, r, err
    outcome.done = true
    self.watch_done = true
    self.cond:notify()
  end)
  local stopping
  while not outcome.done do
    if not stopping then
      if self.start_refused then
        stopping = "refused"
        self:stop_backend(self.start_refused)
      elseif self.cancel_reason then
        stopping = "cancel"
        self:stop_backend(self.cancel_reason)
      elseif timer.monotonic() >= deadline then
        stopping = "timeout"
        self:stop_backend(("timed out after %d s"):format(timeout_s))
      end
    end
    if not outcome.done then
      self.cond:wait(stopping and 1000 or math.max(1, deadline - timer.monotonic()))
    end
  end

  self:await_start()
  if not outcome.ok then
    return failed(("scheduler %s: waiting for the run failed: %s"):format(self.sched_name, first_line(outcome.r)))
  end
  local r = type(outcome.r) == "table" and outcome.r or { error = outcome.err or "the scheduler reported no result" }
  local code = math.tointeger(present(r.exit_code))
  if self.start_refused then
    -- Whatever the process did, the hub never had the run running.
    return failed(self.start_refused, code)
  elseif stopping == "timeout" then
    return failed(("timed out after %d s"):format(timeout_s), code)
  elseif stopping == "cancel" then
    return { status = "cancelled", error = self.cancel_reason, exit_code = code }
  elseif present(r.error) then
    return failed(tostring(r.error), code)
  elseif code == 0 then
    return { status = "succeeded", exit_code = 0 }
  elseif code then
    return failed(("exit code %d"):format(code), code)
  end
  return failed("the scheduler reported neither an exit code nor an error")
end

function Run:cleanup()
  if self.handle ~= nil then
    local ok, err = pcall(self.sched.backend.cleanup, self.doc, self.handle, self.ctx)
    if not ok then
      self:system("the scheduler's cleanup failed: " .. first_line(err))
    end
  end
  self:remove_workdir()
end

-- In the thread pool: removing a directory frees its block, which can wait for the device,
-- and a run can leave a large tree behind.
function Run:remove_workdir()
  self.workdir_made = nil
  self.core.fs.remove_in_pool(self.agent.state:workdir(self.id))
end

-- The work directory made early (Run:prepare_early) of a run whose process did not start.
function Run:remove_unstarted_workdir()
  if self.workdir_made and self.handle == nil then
    self:remove_workdir()
  end
end

-- Starts the run through the scheduler, then tells the hub (the answer comes while the
-- process runs), waits, cleans up.
function Run:launch(run_env)
  if self.cancel_reason then
    return { status = "cancelled", error = self.cancel_reason }
  end
  -- Usually made while the accept was on its way (Run:prepare_early): then it is in place,
  -- and nothing is asked of the file system on the way to the start (a second mkdir_p was a
  -- failed mkdir and a stat a run). Nothing removes it meanwhile but Run:remove_workdir,
  -- which clears workdir_made.
  if not self.workdir_made then
    local made, merr = self.core.fs.mkdir_p(self.agent.state:workdir(self.id))
    if not made then
      return failed(merr)
    end
    self.workdir_made = true
  end
  self.ctx = self:context(run_env)
  self.phase = "running"
  self.agent:update_metrics()
  self.started_mono = timer.monotonic()
  self.record.started_at = timer.now()
  local sok, handle, serr = pcall(self.sched.backend.start, self.doc, self.ctx)
  if not sok or handle == nil then
    self:cleanup()
    local m = ("scheduler %s could not start the run: %s"):format(self.sched_name, first_line(sok and serr or handle))
    self:system(m)
    return failed(m)
  end
  self.handle = handle
  self:announce_start(self.record.started_at)
  self.record.handle = handle
  self.record.phase = "running"
  -- The handle matters after a power cut only when the run outlives the machine (a backend
  -- that can reattach); a local process does not.
  self:save(self.sched.backend.reattach ~= nil)
  local result = self:watch()
  self:cleanup()
  return result
end

-- after_run hooks see the result; one that fails turns a success into a failure.
function Run:after_run(result)
  local seen = { status = result.status, exit_code = result.exit_code, error = result.error }
  local ok, msg = self:hook("after_run", self.doc, seen)
  if not ok then
    self:system(msg)
    if result.status == "succeeded" then
      return failed(msg, result.exit_code)
    end
  end
  return result
end

-- Finishes the run at the hub (after every event reached it), then forgets it.
function Run:finish(result)
  -- No process of the run is left (none started, or its wait returned): its slot is free while
  -- the end goes to the hub. A run whose task failed while its process ran keeps the slot until
  -- the end is told.
  if self.handle == nil or self.watch_done then
    self.agent:slot_released(self)
  end
  if self.record then
    -- A restart that finds a result finishes the run with the spool as it is: the output
    -- must be on disk before the result that ends it is.
    if self.rl and not self.aborted then
      self.rl:complete()
    end
    self.record.result = result
    self.record.phase = "finishing"
    self:save()
  end
  if not self.aborted then
    local ok, err, hub_status = self.rl:finish { status = result.status, exit_code = result.exit_code, error = result.error }
    -- The hub has the run's end (or refused it, and asking again would not change that): the
    -- run is no longer held. Its slot was freed above, unless its task failed while its
    -- process ran; then the next work poll goes out now, before anything else is done here:
    -- the yield lets the poll's task send it, and only then is this run logged and its log
    -- and record removed. A drain still waits for the files (Agent:tidied).
    self.phase = "done"
    self.agent:run_ended(self, true)
    task.yield()
    if ok then
      log.info("run finished", { run = self.id, status = result.status, error = result.error })
    elseif hub_status then
      log.info("the hub had already ended the run", { run = self.id, status = hub_status, ours = result.status })
    else
      log.error("the hub refused the run's finish", { run = self.id, error = err })
    end
    local tidy_ok, tidy_err = pcall(function()
      self.rl:close()
      self.agent.state:remove_run(self.id)
    end)
    self.agent:tidied() -- even if that failed, or a drain would wait for ever
    if not tidy_ok then
      error(tidy_err, 0)
    end
    return
  end
  self.phase = "done"
  self.agent:run_ended(self)
end

function Run:release()
  if self.accepting then
    -- The accept did not go through: the log and work directory made beside it go
    -- (Run:prepare_early).
    self.accepting = false
    if self.rl then
      self.rl:close()
      self.rl = nil
    end
    self:remove_unstarted_workdir()
  end
  self.phase = "done"
  self.agent:run_ended(self)
end

-- Opens the run log and makes the work directory in a task of its own, which runs while the
-- accept is on its way to the hub rather than after its answer (the directory is the run's
-- first inode, 40-130 us). The log creates no file until the run writes; the directory of a
-- run not accepted goes with Run:release, and one left by an agent stopped meanwhile goes at
-- its restart (Agent:reconcile). A restart does not take the directory as a sign that the
-- process started (Run:execute).
function Run:prepare_early()
  async.run(function()
    if self.accepting and not self.rl then
      local ok, rl = pcall(self.core.runlog, self.id)
      if ok and self.accepting and not self.rl then
        self.rl = rl
      elseif ok then
        rl:close()
      end
    end
    if self.accepting and not self.workdir_made then
      -- If it fails, Run:launch tries again and reports why.
      self.workdir_made = self.core.fs.mkdir_p(self.agent.state:workdir(self.id)) and true or nil
    end
  end)
end

-- After a restart: finish with the result recorded, reattach, or report the run lost.
function Run:resume()
  local rec = self.resumed
  self.record = rec
  self.doc = rec.run
  self.rl = self.core.runlog(self.id)
  if rec.result then
    return self:finish(rec.result)
  end
  local sched = self.agent.schedulers[rec.scheduler or ""]
  self.sched_name, self.sched = rec.scheduler, sched
  if rec.phase == "running" and sched and sched.backend.reattach and rec.handle ~= nil and self.doc then
    local ok, err = self:secrets()
    if ok then
      self.ctx = self:context(nil)
      local rok, handle, rerr = pcall(sched.backend.reattach, self.doc, rec.handle, self.ctx)
      if rok and handle then
        self.handle = handle == true and rec.handle or handle
        if self.hub_status_at_resume == "accepted" then
          -- The agent stopped between starting the process and the hub's answer to the start.
          self:announce_start(math.tointeger(rec.started_at) or timer.now())
        end
        self.phase = "running"
        self.ran_before_run = true
        local elapsed = math.max(0, timer.now() - (math.tointeger(rec.started_at) or timer.now()))
        self.started_mono = timer.monotonic() - elapsed
        self:system("the agent restarted and reattached to the run")
        local result = self:watch()
        self:cleanup()
        return self:finish(self:after_run(result))
      end
      err = rok and rerr or handle
    end
    self:system("the agent restarted and could not reattach to the run: " .. first_line(err))
  end
  if sched and rec.handle ~= nil and self.doc then
    self.ctx = self:context(nil)
    pcall(sched.backend.cleanup, self.doc, rec.handle, self.ctx)
  end
  self.core.fs.remove_in_pool(self.agent.state:workdir(self.id))
  local message = rec.phase == "running" and "agent restarted; the run's process was lost"
    or "agent restarted before the run started"
  self:system(message)
  return self:finish(failed(message))
end

-- The whole life of a run; see the top of this file.
function Run:execute()
  if self.orphaned then
    self.rl = self.core.runlog(self.id)
    -- The record is first written once the process started (Run:launch). Without one, the
    -- work directory proves nothing (it is made while the accept is on its way): the hub's
    -- status does. Running: the hub had the start, so the process ran and its record was
    -- lost. Accepted: the agent stopped before the start reached the hub, so before the
    -- process started (or, after a power cut in the moment between the two, with its record).
    -- Cancelling tells neither: the directory decides, as it did when it was made at the start.
    local wd = self.agent.state:workdir(self.id)
    local message = "agent restarted before the run started"
    if self.hub_status_at_resume == "running"
      or (self.hub_status_at_resume ~= "accepted" and self.core.fs.exists(wd)) then
      message = "agent restarted; the run's record was lost"
    end
    self.core.fs.remove_in_pool(wd)
    self:system(message)
    return self:finish(failed(message))
  end
  if self.resumed then
    return self:resume()
  end
  self.accepting = true
  self:prepare_early()
  local doc, body = self:accept()
  if not doc then
    return self:release()
  end
  self.accepting = false
  self.doc, self.accept_body = doc, body
  self.phase = "accepted"
  -- Written first once the process started (Run:launch), or with the result: before that a
  -- restart has nothing of the run to stop or clean up (it finds the run without a record, and
  -- finishes it failed as it would an accepted one), and the file's creation does not delay
  -- the start.
  self.record = { run_id = self.id, lease_id = self.lease_id, run = doc, phase = "accepted", accepted_at = timer.now() }
  self.rl = self.rl or self.core.runlog(self.id) -- if it could not open early, it says why now
  local run_env, result = self:prepare()
  if run_env then
    result = self:launch(run_env)
  end
  self:remove_unstarted_workdir()
  if self.ran_before_run then
    result = self:after_run(result)
  end
  return self:finish(result)
end

-- When the run's task died (a bug, or a hook that blew the CPU budget or memory cap), the run
-- is still stopped and finished, failed, with the reason.
function Run:crashed(err)
  local message
  if self.current_hook then
    -- A CPU budget or memory cap error is raised again wherever the task is when it unwinds
    -- (the agent's own code, by then): the place to name is the hook's.
    local text = first_line(err):gsub("^[^%s:]+:%d+: ", "")
    message = hooks.failure(self.current_hook.name, self.current_hook.hook, text, self.hooks.files)
  else
    message = "the agent failed while handling the run: " .. first_line(err)
  end
  log.error("a run's task failed", { run = self.id, error = tostring(err) })
  if self.phase == "done" then
    return
  end
  if self.handle ~= nil and not self.watch_done then
    pcall(self.sched.backend.cancel, self.doc, self.handle, self.ctx, 0)
  end
  if not self.rl or self.accepting then
    return self:release() -- never accepted: nothing to finish
  end
  self:remove_unstarted_workdir()
  self:system(message)
  local ok, ferr = pcall(self.finish, self, failed(message))
  if not ok then
    log.error("cannot finish a failed run", { run = self.id, error = tostring(ferr) })
    if self.phase ~= "done" then
      self:release()
    end
  end
end

--- Starts the run's task, and a guardian that finishes the run if the task dies.
function run.spawn(r)
  local t = async.run(r.execute, r)
  async.run(function()
    local ok, err = pcall(t.wait, t)
    if not ok then
      r:crashed(err)
    end
  end)
  return t
end

return run
