-- Real agents for the plugin, sandbox, remote-backend and health specs: writes a configuration,
-- starts `hangar agent` against a hubtest hub, waits for it to register, runs tasks through the
-- hub and reads their logs, and stops, SIGKILLs or restarts the agent on the same state.
--
--   local pluginagent = require "pluginagent"
--   local hub = hubtest.start{}
--   local agent = pluginagent.start(hub, { labels = { case = "x" }, extra = 'plugin_dirs = { "..." }' })
--   local run = agent:run_task{ slug = "t", command = { "echo", "hi" } }    -- waits for the end
--   run.status, run.lines            -- { "hi" }: the stdout/stderr lines, in order
--   agent:kill(); agent:restart(); agent:stop(); agent:log()
local hubtest = require "hubtest"
local json = require "hangar.json"
local crypto = require "hangar.crypto"

local pluginagent = {}

local BIN = os.getenv("HANGAR_BIN")
local TMP = os.getenv("HANGAR_TEST_TMP") or "/tmp"

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end

local function write(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then
    os.execute("chmod " .. mode .. " " .. q(path))
  end
end

local function alive(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  return stat ~= nil and stat:match("%) (%a)") ~= "Z"
end

pluginagent.q = q
pluginagent.slurp = slurp
pluginagent.write = write

--- A fresh directory under HANGAR_TEST_TMP.
function pluginagent.tmpdir(name)
  local dir = ("%s/%s-%d-%s"):format(TMP, name, os.time(), crypto.hex_encode(crypto.random(4)))
  assert(os.execute("mkdir -p " .. q(dir)))
  return dir
end

--- The source tree (for plugin directories kept in it).
function pluginagent.source_dir()
  return os.getenv("HANGAR_SOURCE_DIR") or "."
end

--- The build tree: where the hangar binary (and the example plugin's module) were built.
function pluginagent.build_dir()
  return (BIN or ""):match("^(.*)/[^/]+$") or "."
end

local Agent = {}
Agent.__index = Agent

--- Starts an agent registered with hub. opts: labels (map), capacity, extra (Lua text
--- appended to the configuration file), env (extra environment), name, wait (false: do not
--- wait for registration).
function pluginagent.start(hub, opts)
  opts = opts or {}
  local dir = pluginagent.tmpdir(opts.name or "agent")
  local key = hub:make_key("agent", nil, "agent")
  local self = setmetatable({
    hub = hub,
    dir = dir,
    state_dir = dir .. "/state",
    config_path = dir .. "/agent.lua",
    key_path = dir .. "/agent.key",
    log_path = dir .. "/agent.log",
    env = opts.env or {},
    labels = opts.labels or {},
  }, Agent)
  write(self.key_path, key .. "\n", "600")
  local labels = {}
  for k, v in pairs(self.labels) do
    labels[#labels + 1] = ("[%q] = %q"):format(k, v)
  end
  write(self.config_path, table.concat({
    ("hub = { url = %q, key_file = %q }"):format(hub.url, self.key_path),
    ("name = %q"):format(opts.name or "test-agent"),
    ("labels = { %s }"):format(table.concat(labels, ", ")),
    ("capacity = %d"):format(opts.capacity or 2),
    ("state_dir = %q"):format(self.state_dir),
    "kill_grace_s = 2",
    opts.extra or "",
  }, "\n") .. "\n")
  self:launch()
  if opts.wait ~= false then
    local ok, err = pcall(self.wait_registered, self)
    if not ok then
      -- A failing spec must not leave the agent running.
      self:kill()
      error(err, 0)
    end
  end
  return self
end

function Agent:launch()
  local parts = { "env" }
  for k, v in pairs(self.env) do
    parts[#parts + 1] = k .. "=" .. q(v)
  end
  parts[#parts + 1] = q(BIN)
  parts[#parts + 1] = "agent --config " .. q(self.config_path)
  local cmd = table.concat(parts, " ") .. " >>" .. q(self.log_path) .. " 2>&1 </dev/null & echo $!"
  local p = assert(io.popen(cmd))
  self.pid = assert(tonumber(p:read("l")), "could not start the agent")
  p:close()
  self.launched_at = #(slurp(self.log_path) or "")
end

--- The agent's log (JSON lines) since it was first started.
function Agent:log()
  return slurp(self.log_path) or ""
end

--- Waits until the agent logged a line matching pattern (after its latest launch); returns the
--- captures or the line. Fails when it exits first.
function Agent:wait_log(pattern, timeout)
  local found = hubtest.wait_for(function()
    local text = self:log():sub(self.launched_at + 1)
    local m = { text:match(pattern) }
    if #m > 0 then
      return m
    end
    if not alive(self.pid) then
      error("the agent exited:\n" .. self:log(), 0)
    end
  end, timeout or 15000, 50)
  assert(found, "the agent never logged " .. pattern .. ":\n" .. self:log())
  return table.unpack(found)
end

function Agent:wait_registered()
  return self:wait_log('"msg":"agent ready"')
end

local function wait_gone(pid, ms)
  return hubtest.wait_for(function()
    return not alive(pid)
  end, ms or 10000, 20)
end

--- SIGTERM (drain), waiting for the exit; SIGKILL after 20 s. True when it exited by itself.
function Agent:stop()
  if not self.pid then
    return true
  end
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local clean = wait_gone(self.pid, 20000)
  if not clean then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    wait_gone(self.pid, 5000)
  end
  self.pid = nil
  return clean and true or false
end

--- SIGKILL: the agent dies at once, mid-run if need be.
function Agent:kill()
  if self.pid then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    wait_gone(self.pid, 5000)
    self.pid = nil
  end
end

--- Starts the agent again on the same configuration and state directory.
function Agent:restart()
  if self.pid then
    self:stop()
  end
  self:launch()
  local ok, err = pcall(self.wait_registered, self)
  if not ok then
    self:kill()
    error(err, 0)
  end
  return self
end

--- Whether the agent process still runs.
function Agent:alive()
  return self.pid ~= nil and alive(self.pid)
end

--- Raises when the agent's log holds a sanitizer report.
function Agent:check_sanitizers()
  local log = self:log()
  for _, mark in ipairs({ "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:" }) do
    local at = log:find(mark, 1, true)
    if at then
      error("the agent's log has a sanitizer report:\n" .. log:sub(math.max(1, at - 200), at + 3000), 0)
    end
  end
end

--- Stops the agent, checks its log for sanitizer reports, removes its directory.
function Agent:cleanup()
  self:stop()
  local ok, err = pcall(self.check_sanitizers, self)
  os.execute("rm -rf " .. q(self.dir))
  if not ok then
    error(err, 0)
  end
end

--- Deploys a task constrained to this agent's labels (def.constraints default to them).
function Agent:deploy(def)
  def.constraints = def.constraints or self.labels
  local res = assert(self.hub:post("/v1/tasks", def))
  assert(res.status == 201 or res.status == 200, "deploy: " .. tostring(res.body))
  return def.slug
end

--- Starts a run of slug; returns its id.
function Agent:start_run(slug, params)
  local res = assert(self.hub:post("/v1/runs", { task = slug, params = params or json.object() }))
  assert(res.status == 201, "run: " .. tostring(res.body))
  return res.json.run_id
end

--- The run as the hub shows it.
function Agent:get_run(id)
  return assert(self.hub:get("/v1/runs/" .. id)).json
end

local ENDED = { succeeded = true, failed = true, cancelled = true }

--- Waits until the run ended (default 60 s); returns it.
function Agent:wait_run(id, timeout)
  local run = hubtest.wait_for(function()
    local r = self:get_run(id)
    return ENDED[r.status] and r or nil
  end, timeout or 60000, 100)
  assert(run, "run " .. id .. " did not end:\n" .. json.encode(self:get_run(id)) .. "\n" .. self:log())
  return run
end

--- Every event of a run the hub holds (seq order).
function Agent:events(id)
  local out, after = {}, nil
  while true do
    local path = "/v1/runs/" .. id .. "/events?limit=1000" .. (after and ("&after=" .. after) or "")
    local res = assert(self.hub:get(path))
    assert(res.status == 200, res.body)
    for _, e in ipairs(res.json.events) do
      out[#out + 1] = e
      after = e.seq
    end
    if #res.json.events == 0 then
      return out
    end
  end
end

--- The texts of a run's log lines of the given streams (default stdout and stderr).
function Agent:lines(id, streams)
  streams = streams or { stdout = true, stderr = true }
  local out = {}
  for _, e in ipairs(self:events(id)) do
    if e.kind == "log" and streams[e.stream] then
      out[#out + 1] = e.text
    end
  end
  return out
end

--- Deploys def, runs it and waits for the end. Returns the run (from the hub) with `lines`
--- (stdout and stderr) and `system` (the system lines) added.
function Agent:run_task(def, params, timeout)
  local slug = self:deploy(def)
  local id = self:start_run(slug, params)
  local run = self:wait_run(id, timeout)
  run.lines = self:lines(id)
  run.system = self:lines(id, { system = true })
  return run
end

return pluginagent
