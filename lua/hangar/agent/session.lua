-- The agent's session with the hub: register (a fresh session key each time, resuming the
-- identity kept in the state directory), keep one work long-poll open, heartbeat, and pass
-- what the hub sends (assignments, cancels, actions) to the agent.
--
-- Failures: when the hub cannot be reached or answers 5xx, the poll retries after a capped
-- full-jitter backoff (never in a tight loop) while running runs carry on. A 401 means the
-- session lapsed: register again, resuming the identity; a 401 on register means the key was
-- revoked, and the agent stops.
local json = require "hangar.json"
local log = require "hangar.log"
local timer = require "hangar.timer"
local async = require "hangar.async"
local task = require "hangar.task"
local hubclient = require "hangar.agent.hubclient"
local backoff = require "hangar.agent.backoff"

local session = {}

local Session = {}
Session.__index = Session

local classify, describe = hubclient.classify, hubclient.describe

--- agent: the agent (main.lua) this session serves.
function session.new(agent)
  local cfg = agent.config
  local self = setmetatable({
    agent = agent,
    core = agent.core,
    hub = hubclient.new {
      url = cfg.hub.url,
      tls = { ca_file = cfg.hub.ca_file, cert_file = cfg.hub.cert_file, key_file = cfg.hub.cert_key_file },
    },
    agent_id = agent.state:identity(),
    token = nil,
    heartbeat_s = 10,
    poll_wait_s = 30,
    lease_ttl_s = 30,
    max_batch_bytes = 1 << 20,
    poll_gen = 0,
    renewing = false,
    renewed = agent.core.cond(),
    poll_backoff = backoff.new(cfg.retry.base_ms, cfg.retry.cap_ms),
  }, Session)
  return self
end

function Session:retry_settings(cfg)
  self.poll_backoff.base, self.poll_backoff.cap = cfg.retry.base_ms, cfg.retry.cap_ms
end

-- ---- registering ----

local function register_body(self, public_key)
  local agent = self.agent
  return {
    name = agent.name,
    hostname = self.core.hostname(),
    version = "hangar-agent/" .. self.core.version,
    labels = json.object(agent.labels),
    capacity = agent.config.capacity,
    schedulers = json.array(agent:scheduler_names()),
    public_key = public_key,
    agent_id = self.agent_id,
  }
end

--- Registers, retrying while the hub cannot be reached. Returns the register answer, or nil,
--- a message and why: "revoked" (401: the key is revoked or unknown), "refused" (another 4xx:
--- the configuration does not suit the key), "stopped" (the agent began to stop meanwhile).
function Session:register()
  local bo = backoff.new(self.agent.config.retry.base_ms, self.agent.config.retry.cap_ms)
  local dropped_identity = false
  -- One key for all the attempts: the core keeps the last few, for runs reattached later.
  local public_key = self.core.session_key()
  while true do
    if self.agent:stopping_before_start() then
      return nil, "the agent was stopped before it could register", "stopped"
    end
    local status, doc = self.core.register(register_body(self, public_key))
    local res = status and { status = status, json = doc } or nil
    local kind = classify(res)
    if kind == "ok" and type(doc) == "table" and type(doc.session_token) == "string" then
      self:adopt(doc)
      return doc
    elseif kind == "unauthorized" then
      return nil, "the hub refused the agent's API key (401): it was revoked, or is not an agent key of this hub", "revoked"
    elseif res and res.status == 403 and self.agent_id and not dropped_identity then
      -- The identity in the state directory belongs to another key (the key was replaced):
      -- start a new identity rather than fail.
      log.warn("the hub refused to resume this agent's identity; registering as a new agent",
        { agent_id = self.agent_id, error = describe(res) })
      self.agent_id = nil
      self.agent.state:forget_identity()
      dropped_identity = true
    elseif kind == "retry" then
      local delay = bo:next()
      log.warn("cannot register with the hub; retrying", { error = describe(res, doc), retry_in_ms = delay })
      self.agent.wake:wait(delay) -- a signal to stop cuts the wait short
    else
      return nil, "the hub refused to register the agent: " .. describe(res, doc), "refused"
    end
  end
end

function Session:adopt(doc)
  self.agent_id = doc.agent_id
  self.token = doc.session_token
  self.heartbeat_s = math.max(1, math.tointeger(doc.heartbeat_interval_s) or 10)
  self.poll_wait_s = math.max(1, math.min(60, math.tointeger(doc.poll_wait_s) or 30))
  self.lease_ttl_s = math.tointeger(doc.lease_ttl_s) or 30
  self.max_batch_bytes = math.tointeger(doc.max_batch_bytes) or (1 << 20)
  self.core.set_session(self.agent_id, self.token, self.max_batch_bytes)
  if not self.reconnects then
    self.reconnects = 0
    self.core.metrics_set("hub_reconnects_total", 0)
  end
  local ok, err = self.agent.state:save_identity(self.agent_id)
  if not ok then
    log.error("cannot save the agent's identity; a restart will register as a new agent", { error = err })
  end
  log.info("registered with the hub", { agent_id = self.agent_id, url = self.hub.url })
end

--- The session lapsed (a call with stale_token got 401): registers again, once, whoever asks.
--- Returns true when a live session exists afterwards. When the key turns out revoked, the
--- agent is told and nil comes back.
function Session:renew(stale_token, what)
  if self.closing then
    -- Deregistering ends the session: the open poll's 401 is expected, not a lapse.
    return nil, "the session is closing"
  end
  if stale_token ~= self.token then
    return true
  end
  while self.renewing do
    self.renewed:wait(1000)
  end
  if stale_token ~= self.token then
    return self.token ~= nil
  end
  self.renewing = true
  log.info("the session with the hub lapsed; registering again", { call = what })
  local doc, err, why = self:register()
  self.renewing = false
  self.renewed:notify()
  if not doc then
    self.token = nil
    self.agent:session_lost(err, why)
    return nil, err
  end
  self:kick()
  return true
end

-- ---- calls made for runs ----

--- A call with the session token that rides out hub outages: transport errors, 5xx and 429
--- are retried after a backoff until opts.give_up() (when given) says to stop, and a lapsed
--- session is renewed. Returns the response, its kind (hubclient.classify), or nil and a
--- message. opts: body, timeout_ms, give_up.
function Session:call(method, path, opts)
  opts = opts or {}
  local bo = backoff.new(self.agent.config.retry.base_ms, self.agent.config.retry.cap_ms)
  while true do
    local token = self.token
    if not token then
      return nil, "no session with the hub"
    end
    local res, err = self.hub:call(method, path, { body = opts.body, token = token, timeout_ms = opts.timeout_ms })
    local kind = classify(res)
    if kind == "unauthorized" then
      if not self:renew(token, method .. " " .. path) then
        return nil, "the session with the hub ended"
      end
    elseif kind == "retry" then
      if opts.give_up and opts.give_up() then
        return nil, describe(res, err)
      end
      local delay = bo:next()
      log.warn("hub call failed; retrying", { call = method .. " " .. path, error = describe(res, err), retry_in_ms = delay })
      timer.sleep(delay)
    else
      return res, kind
    end
  end
end

-- ---- the work long-poll ----

local function handle_work(self, doc)
  if type(doc) ~= "table" then
    return
  end
  local assigned = type(doc.assign) == "table" and doc.assign or {}
  for _, a in ipairs(assigned) do
    self.agent:offer(a)
  end
  for _, id in ipairs(type(doc.cancel) == "table" and doc.cancel or {}) do
    self.agent:cancel_run(id, "cancelled")
  end
  self.agent:hub_action(doc.action)
  return #assigned > 0
end

--- A call reached the hub. After calls that could not (the hub down, unreachable or answering
--- 5xx), that is one reconnect, counted for the health listener's /metrics.
function Session:reached()
  if self.unreachable then
    self.unreachable = false
    self.reconnects = (self.reconnects or 0) + 1
    self.core.metrics_set("hub_reconnects_total", self.reconnects)
  end
end

-- One poll loop; a newer one (kick) replaces it, and the hub ends the older request.
function Session:poll_loop(gen)
  while gen == self.poll_gen and self.agent:polling() do
    local token = self.token
    if not token then
      return
    end
    local free = self.agent:free_slots()
    local path = ("/v1/agents/%s/work?wait=%d&free=%d"):format(self.agent_id, self.poll_wait_s, free)
    self.poll_asked = free
    local res, err = self.hub:call("GET", path, { token = token, timeout_ms = (self.poll_wait_s + 15) * 1000 })
    if gen == self.poll_gen then
      self.poll_asked = nil
    end
    local kind = classify(res)
    if kind == "ok" then
      self.poll_backoff:reset()
      self:reached()
      if handle_work(self, res.json) then
        -- The runs just offered send their accepts before the next poll goes out.
        task.yield()
      end
    elseif kind == "unauthorized" then
      -- A newer registration ends this session's poll with 401 too: only a 401 for the
      -- current token means the session lapsed.
      if token == self.token and not self:renew(token, "work poll") then
        return
      end
    elseif gen == self.poll_gen then
      self.unreachable = true
      local delay = self.poll_backoff:next()
      log.warn("the hub's work poll failed; retrying", { error = describe(res, err), retry_in_ms = delay })
      timer.sleep(delay)
    end
  end
end

--- Opens a new poll now (the agent began to drain, the capacity changed, a new session
--- started); the one open before ends.
function Session:kick()
  self.poll_gen = self.poll_gen + 1
  self.poll_asked = nil
  async.run(self.poll_loop, self, self.poll_gen)
end

--- A slot is free (a run's process ended, or the run did). Only a poll that asked for no run
--- at all is replaced at once: the hub may already have answered one that asked for some (the
--- answer is on its way), and a new poll counting the same slots again would bring more runs
--- than there are slots; those the agent cannot take sit out their lease before anyone else
--- gets them. The next poll, sent as soon as the open one returns, asks for every free slot.
function Session:slot_freed()
  if self.poll_asked and self.poll_asked > 0 then
    return
  end
  self:kick()
end

-- ---- heartbeats ----

function Session:heartbeat_loop()
  local failures = 0
  while self.agent:alive() do
    -- At the hub's interval; while the hub cannot be reached, less often (but within half a
    -- lease, so leases survive once it is back).
    local delay = self.heartbeat_s * 1000
    if failures > 0 then
      local ceiling = math.max(delay, self.lease_ttl_s * 500)
      delay = math.min(ceiling, delay * 2 ^ math.min(failures, 16))
    end
    timer.sleep(math.floor(delay))
    local token = self.token
    if token and self.agent:alive() then
      local res, err = self.hub:call("POST", ("/v1/agents/%s/heartbeat"):format(self.agent_id), {
        token = token,
        body = { runs = json.array(self.agent:held_runs()), free = self.agent:free_slots() },
        timeout_ms = math.max(5000, self.heartbeat_s * 1000),
      })
      local kind = classify(res)
      if kind == "ok" then
        self:reached()
        local doc = type(res.json) == "table" and res.json or {}
        for _, id in ipairs(type(doc.cancel) == "table" and doc.cancel or {}) do
          self.agent:cancel_run(id, "cancelled")
        end
        self.agent:hub_action(doc.action)
        self.lease_ttl_s = math.tointeger(doc.lease_ttl_s) or self.lease_ttl_s
        if failures > 0 then
          -- The hub is back: do not leave the poll asleep in its backoff.
          failures = 0
          self.poll_backoff:reset()
          self:kick()
        end
      elseif kind == "unauthorized" then
        self:renew(token, "heartbeat")
      else
        failures = failures + 1
        self.unreachable = true
        log.debug("heartbeat failed", { error = describe(res, err) })
      end
    end
  end
end

--- Starts polling and heartbeating.
function Session:serve()
  self:kick()
  async.run(self.heartbeat_loop, self)
end

--- Ends the session: DELETE /v1/agents/{id}. A few tries; the hub fails what the agent still
--- holds, so an agent that cannot reach it just goes.
function Session:deregister()
  if not self.token then
    return
  end
  self.closing = true
  local deadline = timer.monotonic() + 10000
  local res, kind = self:call("DELETE", "/v1/agents/" .. self.agent_id, {
    timeout_ms = 5000,
    give_up = function()
      return timer.monotonic() > deadline
    end,
  })
  if kind == "ok" then
    log.info("deregistered from the hub", { agent_id = self.agent_id })
  else
    log.warn("could not deregister from the hub", { error = describe(res, kind) })
  end
  self.token = nil
end

return session
