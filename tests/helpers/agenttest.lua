-- Real agents for tests: `hangar agent` started on a generated configuration against a hub
-- from hubtest, with its own key and state directory; waiting for what it logs, signals,
-- SIGKILL and restart on the same state; tasks and runs, through the hub or constrained to
-- one agent's labels. Runs inside `hangar lua` (busted specs).
--
--   local hub = hubtest.start { args = { "--lease-ttl", "5", "--heartbeat-interval", "1" } }
--   local agent = agenttest.start(hub, { labels = { env = "staging" }, capacity = 2 })
--   local slug = agenttest.task(hub, { command = { "/bin/sh", "-c", "echo hi" } })
--   local run = agenttest.run(hub, slug)             -- run id
--   local doc = agenttest.wait_run(hub, run)         -- its document once it ended
--   print(agenttest.log_text(hub, run))              -- its stdout/stderr/system lines
--   local r = agent:run_task { slug = "t", command = { "echo", "hi" } }  -- on this agent
--   r.status, r.lines                                -- { "hi" }: stdout and stderr, in order
--   agent:signal("TERM"); assert.equal(0, agent:wait_exit())
--   agent:cleanup()
local hubtest = require "hubtest"
local testutil = require "testutil"
local process = require "hangar.process"
local json = require "hangar.json"
local timer = require "hangar.timer"
local crypto = require "hangar.crypto"

local agenttest = {}

local q, slurp, write = testutil.q, testutil.slurp, testutil.write

agenttest.slurp = slurp
agenttest.write = write
agenttest.q = q

--- A fresh directory under HANGAR_TEST_TMP.
function agenttest.tmpdir(name)
  return testutil.tmpdir(name or "agent")
end

-- A Lua literal for a value (strings, numbers, booleans, tables of them).
local function literal(v, indent)
  indent = indent or ""
  if type(v) == "string" then
    return string.format("%q", v)
  elseif type(v) ~= "table" then
    return tostring(v)
  end
  local parts = {}
  if #v > 0 then
    for _, x in ipairs(v) do
      parts[#parts + 1] = literal(x, indent .. "  ")
    end
  else
    local keys = {}
    for k in pairs(v) do
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do
      parts[#parts + 1] = "[" .. string.format("%q", k) .. "] = " .. literal(v[k], indent .. "  ")
    end
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end
agenttest.literal = literal

local Agent = {}
Agent.__index = Agent

--- Starts an agent for hub. opts:
---   key          the agent key (default: a new one, bound to key_labels)
---   key_labels   labels the new key is bound to
---   key_source   "file" (default), "env" (HANGAR_AGENT_KEY) or "fd"
---   labels, capacity, name, pass_env, secret_env, kill_grace_s, log_level   as in the
---                configuration
---   hub_url      default hub.url; ca_file, cert_file, cert_key_file
---   extra        Lua text appended to the configuration (hooks, schedulers, ...)
---   env          extra environment variables of the agent process
---   uid          when the tests run as root: run the agent (and so its runs) as this user,
---                through setpriv, its directory handed to it
---   dir          reuse this directory (state and all), e.g. after a kill
---   wait         false: do not wait for the agent to register
--- When waiting fails, the agent is killed before the error is raised.

local am_root
--- Whether the tests run as root (and so may run an agent as another user).
function agenttest.am_root()
  if am_root == nil then
    local _, me = testutil.sh("id -u")
    am_root = tonumber(me:match("%d+")) == 0
  end
  return am_root
end

local other_homes = {}
local other_users = {} -- uid -> agents started with its copy and not yet cleaned up
--- A directory under /tmp that uid may read, holding a copy of the hangar binary (bin/hangar)
--- and of the bundled Lua library and plugins (home/, for HANGAR_HOME): the build tree itself
--- may be out of that user's reach. Made once per uid and test process.
function agenttest.other_uid_home(uid)
  if other_homes[uid] then
    return other_homes[uid]
  end
  local code, out = testutil.sh("mktemp -d /tmp/hangar-uid" .. uid .. "-XXXXXX")
  assert(code == 0, out)
  local base = out:match("[^\n]+")
  local src = testutil.SRC
  assert(os.execute(table.concat({
    "mkdir -p " .. q(base .. "/bin") .. " " .. q(base .. "/home"),
    "cp " .. q(testutil.BIN) .. " " .. q(base .. "/bin/hangar"),
    "cp -R " .. q(src .. "/lua") .. " " .. q(src .. "/plugins") .. " " .. q(base .. "/home/"),
    "chmod -R a+rX " .. q(base),
  }, " && ")))
  -- The agent must be able to run at all as that user (a root directory of mode 0700, as in
  -- some build containers, forbids even loading libc).
  local ok = os.execute("setpriv --reuid=" .. uid .. " --regid=" .. uid .. " --clear-groups -- "
    .. q(base .. "/bin/hangar") .. " --version >/dev/null 2>&1")
  assert(ok, agenttest.cannot_run_as(uid) or ("uid %d cannot run %s"):format(uid, base .. "/bin/hangar"))
  other_homes[uid] = base
  return base
end

--- Nil when an agent can run as uid here (or the tests do not run as root, and agents run as
--- the current user); otherwise why not: on a machine whose root directory only root may
--- enter (some build containers), another user cannot even load libc.
local cannot_run = {} -- uid -> false or why not
function agenttest.cannot_run_as(uid)
  if not agenttest.am_root() then
    return nil
  end
  if cannot_run[uid] == nil then
    local ok = os.execute("setpriv --reuid=" .. uid .. " --regid=" .. uid .. " --clear-groups -- /bin/sh -c : >/dev/null 2>&1")
    cannot_run[uid] = not ok and ("uid %d cannot run programs on this machine (is / closed to other users?): "
      .. "the agent cannot run as another user here"):format(uid)
  end
  return cannot_run[uid] or nil
end

--- Whether path exists (a file, a directory, or anything else).
function agenttest.exists(path)
  return os.execute("test -e " .. q(path)) == true
end

--- A hub named name (lease 5 s, heartbeats every second) and an agent on it started with
--- agent_opts, both cleaned up when the test ends through on_end: the test's busted
--- `finally`, which a helper cannot name itself. Returns hub, agent.
function agenttest.hub_and_agent(on_end, name, agent_opts)
  local args = { "--lease-ttl", "5", "--heartbeat-interval", "1" }
  local hub = hubtest.start { name = name, args = args }
  local agent
  on_end(function()
    agenttest.cleanup_all(agent, hub)
  end)
  agent = agenttest.start(hub, agent_opts or {})
  return hub, agent
end

function agenttest.start(hub, opts)
  opts = opts or {}
  local self = setmetatable({ hub = hub, opts = opts, labels = opts.labels or {} }, Agent)
  local as_other = opts.uid and agenttest.am_root()
  if as_other and not opts.dir then
    -- The build tree may sit where that user cannot reach (a clone under /root, mode 0700):
    -- its files, the binary and the Lua library go where it can.
    self.dir = agenttest.other_uid_home(opts.uid) .. "/agent-" .. crypto.hex_encode(crypto.random(4))
    assert(os.execute("mkdir -p " .. q(self.dir)))
  else
    self.dir = opts.dir or agenttest.tmpdir("agent")
  end
  self.state_dir = self.dir .. "/state"
  self.log_path = self.dir .. "/agent.log"
  self.config_path = self.dir .. "/agent.lua"
  if opts.key then
    self.key = opts.key
  else
    self.key, self.key_id = hub:make_key("agent", opts.key_labels)
  end
  self:write_config()
  self.prefix = ""
  if opts.uid then
    self.uid = agenttest.am_root() and 0 or -1
    if as_other then
      self.uid = opts.uid
      self.bin = agenttest.other_uid_home(opts.uid) .. "/bin/hangar"
      other_users[self.uid] = (other_users[self.uid] or 0) + 1
      self.home = agenttest.other_uid_home(opts.uid) .. "/home"
      -- The agent's own files belong to its user; the directories above are world-searchable.
      assert(os.execute("chown -R " .. self.uid .. ":" .. self.uid .. " " .. q(self.dir)))
      assert(os.execute("chmod 755 " .. q(self.dir)))
      self.prefix = "setpriv --reuid=" .. self.uid .. " --regid=" .. self.uid .. " --clear-groups -- "
    end
  end
  self:launch()
  if opts.wait ~= false then
    local ok, err = pcall(self.wait_log, self, '"msg":"agent ready"', 20000)
    if not ok then
      -- A failing spec must not leave the agent running.
      self:kill()
      error(err, 0)
    end
  end
  return self
end

--- (Re)writes the configuration file from opts (and overrides, merged over them).
function Agent:write_config(overrides)
  local o = {}
  for k, v in pairs(self.opts) do
    o[k] = v
  end
  for k, v in pairs(overrides or {}) do
    o[k] = v
  end
  self.key_source = o.key_source or "file"
  local hub_section = { url = o.hub_url or self.hub.url, ca_file = o.ca_file, cert_file = o.cert_file,
                        cert_key_file = o.cert_key_file }
  if self.key_source == "file" then
    self.key_path = write(self.dir .. "/agent.key", self.key .. "\n", "600")
    hub_section.key_file = self.key_path
  elseif self.key_source == "env" then
    hub_section.key_env = "HANGAR_AGENT_KEY"
  else
    hub_section.key_fd = 3
  end
  local lines = {
    "-- generated by tests/helpers/agenttest.lua",
    "hub = " .. literal(hub_section),
    "name = " .. literal(o.name or "test-agent"),
    "labels = " .. literal(o.labels or {}),
    "capacity = " .. literal(o.capacity or 1),
    "state_dir = " .. literal(self.state_dir),
    "pass_env = " .. literal(o.pass_env or {}),
    "secret_env = " .. literal(o.secret_env or {}),
    "kill_grace_s = " .. literal(o.kill_grace_s or 2),
    "retry = { base_ms = 100, cap_ms = " .. (o.retry_cap_ms or 1000) .. " }",
    "log_level = " .. literal(o.log_level or "debug"),
    o.extra or "",
  }
  write(self.config_path, table.concat(lines, "\n") .. "\n")
end

--- Starts the agent process on the configuration and state directory.
function Agent:launch()
  local env = { PATH = "/usr/bin:/bin", HOME = self.dir, LANG = "C.UTF-8", HANGAR_HOME = self.home }
  for k, v in pairs(self.opts.env or {}) do
    env[k] = v
  end
  local redirect = ""
  if self.key_source == "env" then
    env.HANGAR_AGENT_KEY = self.key
  elseif self.key_source == "fd" then
    redirect = " 3<" .. q(write(self.dir .. "/fd.key", self.key .. "\n", "600"))
  end
  local line = "exec " .. (self.prefix or "") .. q(self.bin or testutil.BIN) .. " agent --config " .. q(self.config_path)
    .. redirect .. " >>" .. q(self.log_path) .. " 2>&1"
  self.launched_at = #self:log()
  self.proc = assert(process.spawn { argv = { "/bin/sh", "-c", line }, env = env })
  self.pid = self.proc:pid()
  self.exit_code = nil
end

--- The agent's log so far.
function Agent:log()
  return slurp(self.log_path) or ""
end

--- The agent's log lines as decoded JSON objects (lines that are not JSON are skipped).
function Agent:log_entries()
  local out = {}
  for line in self:log():gmatch("[^\n]+") do
    local ok, doc = pcall(json.decode, line)
    if ok and type(doc) == "table" then
      out[#out + 1] = doc
    end
  end
  return out
end

--- Waits until the log holds text (plain); raises with the log when it does not in time.
--- from: only look after this many bytes of the log.
function Agent:wait_log(text, timeout_ms, from)
  local found = hubtest.wait_for(function()
    local log = self:log()
    if log:find(text, (from or 0) + 1, true) then
      return true
    end
    if self.proc:done() then
      error("the agent exited while waiting for " .. text .. ":\n" .. log, 0)
    end
  end, timeout_ms or 15000, 20)
  if not found then
    error("the agent's log does not show " .. text .. ":\n" .. self:log(), 0)
  end
end

--- Waits until the agent logged something matching pattern since it was last launched;
--- returns the captures (or the match). Raises with the log when it exits first or time runs
--- out.
function Agent:wait_match(pattern, timeout_ms)
  local found = hubtest.wait_for(function()
    local m = { self:log():sub(self.launched_at + 1):match(pattern) }
    if #m > 0 then
      return m
    end
    if self.proc:done() then
      error("the agent exited while waiting for " .. pattern .. ":\n" .. self:log(), 0)
    end
  end, timeout_ms or 15000, 50)
  if not found then
    error("the agent's log does not show " .. pattern .. ":\n" .. self:log(), 0)
  end
  return table.unpack(found)
end

--- How many times text occurs in the log.
function Agent:count_log(text)
  local n, at = 0, 1
  local log = self:log()
  while true do
    local a, b = log:find(text, at, true)
    if not a then
      return n
    end
    n, at = n + 1, b + 1
  end
end

function Agent:signal(name)
  os.execute("kill -" .. name .. " " .. self.pid .. " 2>/dev/null")
end

--- Whether the agent process still runs.
function Agent:alive()
  return not self.proc:done()
end

--- Waits for the agent process to exit; returns its exit code (nil when it did not in time).
function Agent:wait_exit(timeout_ms)
  if self.exit_code then
    return self.exit_code
  end
  local done = hubtest.wait_for(function() return self.proc:done() end, timeout_ms or 20000, 20)
  if not done then
    return nil
  end
  self.exit_code = self.proc:wait().exit_code
  return self.exit_code
end

--- SIGKILL: the agent dies at once.
function Agent:kill()
  if not self.proc:done() then
    self.proc:signal("KILL")
  end
  self:wait_exit(10000)
end

--- Starts it again on the same configuration and state; waits until it is ready again.
function Agent:restart(wait)
  local from = #self:log()
  self:launch()
  if wait ~= false then
    self:wait_log('"msg":"agent ready"', 20000, from)
  end
  return self
end

--- SIGTERM (drain), then SIGKILL if it does not exit in time. Returns the exit code.
function Agent:stop(timeout_ms)
  if self.proc:done() then
    return self:wait_exit()
  end
  self:signal("TERM")
  local code = self:wait_exit(timeout_ms or 15000)
  if code == nil then
    self:kill()
  end
  return code
end

--- Raises when the agent's log holds a sanitizer report.
function Agent:check_sanitizers()
  testutil.check_sanitizers(self:log(), "the agent")
end

--- Stops the agent (SIGKILL if need be), checks its log, removes its directory (kept when
--- HANGAR_TEST_KEEP is set, to look at afterwards).
function Agent:cleanup()
  self:kill()
  local log = self:log()
  if self.bin then
    -- The copy made for another user goes with its last agent.
    local base = agenttest.other_uid_home(self.uid)
    other_users[self.uid] = (other_users[self.uid] or 1) - 1
    if other_users[self.uid] <= 0 then
      other_homes[self.uid] = nil
      testutil.finish(base, log, "the agent")
      return
    end
  end
  testutil.finish(self.dir, log, "the agent")
end

--- Cleans up what a test started, whatever fails on the way: agent (whose cleanup raises on a
--- sanitizer report), then hub, then the directories; any of them may be nil. Raises the first
--- failure once all is done.
function agenttest.cleanup_all(agent, hub, ...)
  local ok, err = true, nil
  if agent then
    ok, err = pcall(agent.cleanup, agent)
  end
  if hub then
    local hub_ok, hub_err = pcall(hub.cleanup, hub)
    if ok and not hub_ok then
      ok, err = hub_ok, hub_err
    end
  end
  for i = 1, select("#", ...) do
    local dir = select(i, ...)
    if dir then
      testutil.remove(dir)
    end
  end
  if not ok then
    error(err, 0)
  end
end

-- ---- tasks and runs ----

local n_tasks = 0

--- Deploys a task (a definition table; slug defaults to a fresh one). Returns the slug.
function agenttest.task(hub, def)
  n_tasks = n_tasks + 1
  def.slug = def.slug or ("t%d-%s"):format(n_tasks, crypto.hex_encode(crypto.random(3)))
  local res = assert(hub:post("/v1/tasks", def))
  assert(res.status == 201 or res.status == 200, "task deploy: " .. tostring(res.status) .. " " .. tostring(res.body))
  return def.slug
end

--- A shell-script task: command = { "/bin/sh", "-c", script }.
function agenttest.sh_task(hub, script, def)
  def = def or {}
  def.command = { "/bin/sh", "-c", script }
  return agenttest.task(hub, def)
end

--- Creates a run; returns its id.
function agenttest.run(hub, slug, params)
  local res = assert(hub:post("/v1/runs", { task = slug, params = params and json.object(params) or nil }))
  assert(res.status == 201, "run: " .. tostring(res.status) .. " " .. tostring(res.body))
  return res.json.run_id
end

local ENDED = { succeeded = true, failed = true, cancelled = true }

--- The run's document.
function agenttest.get_run(hub, id)
  return assert(hub:get("/v1/runs/" .. id)).json
end

--- Waits until the run's status is one of statuses (default: ended); returns its document.
function agenttest.wait_run(hub, id, timeout_ms, statuses)
  local want = statuses or ENDED
  if type(want) == "string" then
    want = { [want] = true }
  end
  local doc
  local ok = hubtest.wait_for(function()
    doc = agenttest.get_run(hub, id)
    return doc and want[doc.status]
  end, timeout_ms or 20000, 50)
  assert(ok, "run " .. id .. " did not reach the expected status; it is " .. tostring(doc and doc.status))
  return doc
end

--- Every event of a run (waits until the hub says done, when wait_done).
function agenttest.events(hub, id, wait_done)
  local events, after = {}, nil
  local deadline = timer.monotonic() + 20000
  while true do
    local path = "/v1/runs/" .. id .. "/events?limit=1000" .. (after and ("&after=" .. after) or "")
      .. (wait_done and "&wait=1" or "")
    local doc = assert(hub:get(path)).json
    for _, e in ipairs(doc.events) do
      events[#events + 1] = e
      after = e.seq
    end
    if #doc.events == 0 and (doc.done or not wait_done or timer.monotonic() > deadline) then
      return events
    end
  end
end

--- The run's log lines (stream "stdout", "stderr", "system", or all when nil), joined.
function agenttest.log_text(hub, id, stream)
  local lines = {}
  for _, e in ipairs(agenttest.events(hub, id, true)) do
    if e.kind == "log" and (stream == nil or e.stream == stream) then
      lines[#lines + 1] = e.text
    end
  end
  return table.concat(lines, "\n")
end

-- ---- tasks and runs on one agent ----

--- Deploys a task constrained to this agent's labels (def.constraints default to them).
--- Returns the slug.
function Agent:deploy(def)
  def.constraints = def.constraints or self.labels
  return agenttest.task(self.hub, def)
end

--- Starts a run of slug; returns its id.
function Agent:start_run(slug, params)
  return agenttest.run(self.hub, slug, params)
end

--- The run as the hub shows it.
function Agent:get_run(id)
  return agenttest.get_run(self.hub, id)
end

--- Waits until the run ended (default 60 s); returns it. The error shows the agent's log.
function Agent:wait_run(id, timeout_ms)
  local ok, doc = pcall(agenttest.wait_run, self.hub, id, timeout_ms or 60000)
  assert(ok, tostring(doc) .. "\n" .. json.encode(self:get_run(id)) .. "\n" .. self:log())
  return doc
end

--- The texts of a run's log lines of the given streams (a set; default stdout and stderr).
function Agent:lines(id, streams)
  streams = streams or { stdout = true, stderr = true }
  local out = {}
  for _, e in ipairs(agenttest.events(self.hub, id)) do
    if e.kind == "log" and streams[e.stream] then
      out[#out + 1] = e.text
    end
  end
  return out
end

--- Deploys def, runs it and waits for the end. Returns the run (from the hub) with `lines`
--- (stdout and stderr) and `system` (the system lines) added.
function Agent:run_task(def, params, timeout_ms)
  local id = self:start_run(self:deploy(def), params)
  local run = self:wait_run(id, timeout_ms)
  run.lines = self:lines(id)
  run.system = self:lines(id, { system = true })
  return run
end

--- Waits until path exists.
function agenttest.wait_file(path, timeout_ms)
  local ok = hubtest.wait_for(function()
    return slurp(path) ~= nil
  end, timeout_ms or 15000, 20)
  assert(ok, "no file " .. path)
  return slurp(path)
end

--- The current record of run id in the agent's state directory, as the text of its journal
--- line (nil: none, or removed), and the journal's path.
function Agent:record(id)
  local path = self.state_dir .. "/runs.journal"
  local line
  for l in (slurp(path) or ""):gmatch("[^\n]+") do
    local ok, doc = pcall(json.decode, l)
    if ok and type(doc) == "table" and doc.run_id == id then
      line = l
    elseif ok and type(doc) == "table" and doc.removed == id then
      line = nil
    end
  end
  return line, path
end

return agenttest
