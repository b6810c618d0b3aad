-- `hangar dev`: the whole system on this machine for a first look. In a temporary directory it
-- creates a hub's store, serves it on a free loopback port, creates an agent key, sets a
-- secret config variable, starts an agent with the local scheduler, deploys the example tasks,
-- starts one run and follows it live with the CLI, then stops everything cleanly and removes
-- the directory. Each step is the command a user would type, printed before it runs.
--
-- Runs in the runtime's full mode (src/cli/cmd_dev.c), which hands main() a host table:
--   host.self       this executable, started again for every step
--   host.examples   the examples directory (src/core/paths.h)
--   host.stdout, host.stderr   sinks writing to our own stdout and stderr: the followed run's
--                   output reaches the terminal as it is read
--   host.fs         mkdir_p, remove_tree, read, write_atomic (0600), ...
--   host.on_signal(fn)   fn("INT" | "TERM") runs as a task on each SIGINT or SIGTERM
--   host.mkdtemp(prefix) -> path | nil, message
local process = require "hangar.process"
local timer = require "hangar.timer"
local http = require "hangar.http"
local json = require "hangar.json"
local crypto = require "hangar.crypto"
local sink = require "hangar.sink"

local dev = {}

dev.USAGE = [[
usage: hangar dev [--task NAME] [--param NAME=VALUE ...] [--keep]

Tries Hangar on this machine in a few seconds, nothing installed or configured: in a
temporary directory it creates a hub's store, starts the hub on a free loopback port,
creates an agent key, sets a secret config variable (demo_token), starts an agent that
runs tasks as local processes, deploys the example tasks and runs one of them, following
its log live. Then the agent drains and deregisters, the hub stops, and the directory is
removed. Each step prints the command that does the same by hand.

The default task, 'secret', prints demo_token raw, base64, URL-encoded and JSON-escaped:
the log shows [REDACTED] for every one of them.

options:
  --task NAME         the example task to run: secret (default), hello, fail, sleepy
  --param NAME=VALUE  a parameter of the run (repeatable; as for 'hangar run')
  --keep              keep the temporary directory (store, keys, configuration, logs)
  -h, --help          show this help

Ctrl-C while the run is followed cancels it, then everything stops as usual.

exit status: 0 everything worked and the run succeeded; N the run failed with exit code N
(--task fail exits 3); 130 interrupted; 1 a step failed (the message names the step and
why); 2 wrong usage.
]]

-- Parameters for the example tasks that need some, when --param gives none.
local DEMO_PARAMS = {
  hello = { "name=Ada", "count=2" },
  sleepy = { "seconds=3" },
}

local STEPS = 8
local READY_TIMEOUT_MS = 15000
local STOP_TIMEOUT_MS = 20000

local function say(fmt, ...)
  io.stdout:write(fmt:format(...), "\n")
  io.stdout:flush()
end

local function lua_string(s)
  return ("%q"):format(s)
end

-- The last n lines of a text, indented.
local function tail(text, n)
  local lines = {}
  for line in (text or ""):gmatch("[^\n]+") do
    lines[#lines + 1] = line
  end
  local from = math.max(1, #lines - n + 1)
  local out = {}
  for i = from, #lines do
    out[#out + 1] = "    " .. lines[i]
  end
  return table.concat(out, "\n")
end

local function trim(s)
  return (s or ""):gsub("^%s+", ""):gsub("%s+$", "")
end

-- A step that failed: raised with error() and caught by main.
local Failure = {}
Failure.__index = Failure
Failure.__tostring = function(f)
  return f.why
end

local function fail(why, log_name, log_text)
  error(setmetatable({ why = why, log_name = log_name, log_text = log_text }, Failure), 0)
end

local function parse_args(args)
  local o = { task = "secret", params = {}, keep = false }
  local i = 1
  while i <= #args do
    local a = args[i]
    local name, value = a:match("^(%-%-[%w-]+)=(.*)$")
    name = name or a
    local function arg_value()
      if value then
        return value
      end
      i = i + 1
      if args[i] == nil then
        return nil, name .. " needs a value"
      end
      return args[i]
    end
    if name == "-h" or name == "--help" then
      o.help = true
    elseif name == "--keep" and not value then
      o.keep = true
    elseif name == "--task" then
      local v, err = arg_value()
      if not v then
        return nil, err
      end
      if not v:match("^[%w_.-]+$") then
        return nil, "--task: '" .. v .. "' is not a task's slug"
      end
      o.task = v
    elseif name == "--param" then
      local v, err = arg_value()
      if not v then
        return nil, err
      end
      if not v:match("^[^=]+=") then
        return nil, "--param: expected NAME=VALUE, got '" .. v .. "'"
      end
      o.params[#o.params + 1] = v
    else
      return nil, "unknown option '" .. a .. "'"
    end
    i = i + 1
  end
  return o
end

local Dev = {}
Dev.__index = Dev

-- The environment of every process we start: nothing of ours but what they need, and HOME in
-- the temporary directory, so that no CLI configuration of the user's is read.
function Dev:env(extra)
  local env = {
    PATH = os.getenv("PATH") or "/usr/local/bin:/usr/bin:/bin",
    HOME = self.dir,
    LANG = os.getenv("LANG") or "C.UTF-8",
  }
  -- Where an uninstalled copy finds its Lua library, and what a sanitizer build is told.
  for _, name in ipairs({ "TZ", "HANGAR_HOME", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS" }) do
    env[name] = os.getenv(name)
  end
  for k, v in pairs(extra or {}) do
    env[k] = v
  end
  return env
end

-- The CLI's environment: the hub and the admin key, as a user would export them.
function Dev:cli_env()
  return self:env({ HANGAR_HUB_URL = self.url, HANGAR_TOKEN = self.admin_key })
end

function Dev:path(name)
  return self.dir .. "/" .. name
end

function Dev:check_interrupted()
  if self.interrupted then
    fail("interrupted")
  end
end

function Dev:step(title, shown, always)
  if not always then
    self:check_interrupted()
  end
  self.n = self.n + 1
  self.current = title
  say("[%d/%d] %s", self.n, STEPS, title)
  if shown then
    say("      $ %s", shown)
  end
end

function Dev:note(fmt, ...)
  say("      " .. fmt, ...)
end

-- The command line of `hangar ARGS`: this executable, started again.
function Dev:argv(args)
  local argv = { self.host.self }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  return argv
end

-- Runs `hangar ARGS` to its end in the temporary directory; returns its stdout. A non-zero
-- exit fails the step with what it printed on stderr.
function Dev:hangar(args, env)
  local p, err = process.spawn { argv = self:argv(args), env = env or self:cli_env(), cwd = self.dir,
                                 stdout = "capture", stderr = "capture" }
  if not p then
    fail("cannot start " .. self.host.self .. ": " .. err)
  end
  local r = p:wait()
  p:close()
  if r.exit_code ~= 0 then
    fail(("'hangar %s' exited with %s: %s"):format(args[1] .. (args[2] and " " .. args[2] or ""),
      r.signal ~= 0 and ("signal " .. r.signal) or ("code " .. r.exit_code), trim(r.stderr)))
  end
  return r.stdout
end

-- Starts a long-lived `hangar ARGS` (the hub, the agent) with its output kept in memory.
function Dev:daemon(name, args)
  local log = sink.buffer()
  local p, err = process.spawn { argv = self:argv(args), env = self:env(), cwd = self.dir, stdout = log, stderr = log }
  if not p then
    fail("cannot start " .. self.host.self .. ": " .. err)
  end
  local d = { name = name, proc = p, log = log }
  self.daemons[#self.daemons + 1] = d
  return d
end

local function exit_text(r)
  if r.signal ~= 0 then
    return "was killed by signal " .. r.signal
  end
  return "exited with code " .. r.exit_code
end

-- Polls fn every 20 ms until it returns a true value; fails the step when the daemon d exits
-- first or the time runs out.
function Dev:wait_for(d, what, fn)
  local deadline = timer.monotonic() + READY_TIMEOUT_MS
  while true do
    local v = fn()
    if v then
      return v
    end
    if d.proc:done() then
      local r = d.proc:wait()
      fail(("the %s %s before %s"):format(d.name, exit_text(r), what), d.name, d.log:contents())
    end
    if timer.monotonic() > deadline then
      fail(("the %s did not %s within %d s"):format(d.name, what, READY_TIMEOUT_MS // 1000), d.name, d.log:contents())
    end
    self:check_interrupted()
    timer.sleep(20)
  end
end

-- The decoded JSON lines of a daemon's log with msg == text.
local function logged(d, text)
  for line in d.log:contents():gmatch("[^\n]+") do
    local ok, doc = pcall(json.decode, line)
    if ok and type(doc) == "table" and doc.msg == text then
      return doc
    end
  end
end

-- Asks the hub with the admin key; returns the decoded answer or fails the step.
function Dev:get(path)
  local res, err = http.request { url = self.url .. path, headers = { Authorization = "Bearer " .. self.admin_key },
                                  timeout_ms = 10000 }
  if not res then
    fail(err)
  end
  if res.status ~= 200 then
    fail(("GET %s: the hub answered %d: %s"):format(path, res.status, trim(res.body)))
  end
  return json.decode(res.body)
end

-- SIGTERM, then waits; SIGKILL when it does not exit in time. Returns the exit status.
local function stop(d, timeout_ms)
  if not d.proc:done() then
    d.proc:signal("TERM")
    local deadline = timer.monotonic() + timeout_ms
    while not d.proc:done() and timer.monotonic() < deadline do
      timer.sleep(20)
    end
    if not d.proc:done() then
      d.proc:kill(0)
      local r = d.proc:wait()
      r.timed_out = true
      return r
    end
  end
  return d.proc:wait()
end

-- ---- the steps ----

function Dev:create_store()
  self:step("Create the hub's store and its first admin key", "hangar hub init --db hub.db")
  local out = self:hangar({ "hub", "init", "--db", "hub.db" }, self:env())
  self.admin_key = trim(out)
  if not self.admin_key:match("^hgr_") then
    fail("'hangar hub init' printed no admin key")
  end
  assert(self.host.fs.write_atomic(self:path("admin.key"), self.admin_key .. "\n"))
  self:note("the admin key is in admin.key (mode 0600); it is shown only once")
end

function Dev:start_hub()
  self:step("Start the hub on a free loopback port", "hangar hub serve --db hub.db --listen 127.0.0.1:0")
  self.hub = self:daemon("hub", { "hub", "serve", "--db", "hub.db", "--listen", "127.0.0.1:0",
                                  "--ready-file", "hub.url" })
  local url = self:wait_for(self.hub, "listening", function()
    local text = self.host.fs.read(self:path("hub.url"))
    return text and text:match("^(http%S+)")
  end)
  self.url = url
  self:note("listening on %s", url)
  self:note("the commands below run with HANGAR_HUB_URL=%s HANGAR_TOKEN=$(cat admin.key)", url)
end

function Dev:create_agent_key()
  self:step("Create an API key for the agent", "hangar key create --role agent --name dev-agent --label env=dev > agent.key")
  local key = trim(self:hangar({ "key", "create", "--role", "agent", "--name", "dev-agent", "--label", "env=dev" }))
  if not key:match("^hgr_") then
    fail("'hangar key create' printed no key")
  end
  assert(self.host.fs.write_atomic(self:path("agent.key"), key .. "\n"))
end

function Dev:set_secret()
  self:step("Set a secret config variable", "hangar config set demo_token --secret --from-file demo_token.txt")
  -- Random, and holding the bytes each encoding treats specially: a quote, a backslash, a
  -- slash, a space and an ampersand.
  local value = "dev-" .. crypto.hex_encode(crypto.random(8)) .. [[/"quoted" & back\slash]]
  assert(self.host.fs.write_atomic(self:path("demo_token.txt"), value))
  self:hangar({ "config", "set", "demo_token", "--secret", "--from-file", "demo_token.txt" })
  self:note("stored encrypted; only the agent that runs a task using it can read it")
end

function Dev:start_agent()
  self:step("Start an agent that runs tasks as local processes", "hangar agent --config agent.lua")
  local config = table.concat({
    "-- Written by `hangar dev`: an agent for the hub it started. See examples/agent.lua.",
    "hub = { url = " .. lua_string(self.url) .. ", key_file = " .. lua_string(self:path("agent.key")) .. " }",
    'name = "dev-agent"',
    'labels = { env = "dev" }',
    "capacity = 2",
    "state_dir = " .. lua_string(self:path("agent-state")),
    'scheduler = "local"',
    "kill_grace_s = 2",
    'log_level = "info"',
    "",
  }, "\n")
  assert(self.host.fs.write_atomic(self:path("agent.lua"), config))
  self.agent = self:daemon("agent", { "agent", "--config", "agent.lua" })
  local ready = self:wait_for(self.agent, "registering with the hub", function()
    return logged(self.agent, "agent ready")
  end)
  self:note("agent '%s' registered (labels env=dev, capacity %s)", tostring(ready.name or "dev-agent"),
    tostring(ready.capacity or 2))
end

function Dev:deploy_tasks()
  local dir = self.host.examples .. "/tasks"
  self:step("Deploy the example tasks", "hangar task deploy " .. dir .. "/*.task.yaml")
  local list = self.host.fs.list(dir)
  local files = {}
  for _, name in ipairs(list or {}) do
    if name:match("%.task%.yaml$") then
      files[#files + 1] = dir .. "/" .. name
    end
  end
  if #files == 0 then
    fail("no *.task.yaml in " .. dir .. " (set HANGAR_HOME to the directory holding lua/ and examples/)")
  end
  local args = { "task", "deploy" }
  for _, f in ipairs(files) do
    args[#args + 1] = f
  end
  local out = self:hangar(args)
  for line in out:gmatch("[^\n]+") do
    self:note("%s", line)
  end
end

function Dev:follow_run()
  local params = #self.opts.params > 0 and self.opts.params or DEMO_PARAMS[self.opts.task] or {}
  local args = { "run", self.opts.task }
  for _, p in ipairs(params) do
    args[#args + 1] = "--param"
    args[#args + 1] = p
  end
  args[#args + 1] = "--follow"
  self:step(("Run '%s' and follow it live"):format(self.opts.task), "hangar " .. table.concat(args, " "))
  say("")
  args[#args + 1] = "--cancel-on-interrupt"
  -- The CLI writes straight to our stdout and stderr: the log appears as the agent uploads it.
  local p, err = process.spawn { argv = self:argv(args), env = self:cli_env(), cwd = self.dir,
                                 stdout = self.host.stdout, stderr = self.host.stderr }
  if not p then
    fail("cannot start " .. self.host.self .. ": " .. err)
  end
  self.follower = p
  local r = p:wait()
  self.follower = nil
  p:close()
  say("")
  local doc = self:get("/v1/runs?task=" .. self.opts.task .. "&limit=1")
  local run = doc.runs and doc.runs[1]
  if not run then
    fail(("'hangar run' %s and no run of '%s' exists (see its message above)"):format(exit_text(r), self.opts.task))
  end
  local agent = type(run.agent) == "table" and run.agent.name or "no agent"
  self:note("run %s of '%s': %s on %s%s", run.id, self.opts.task, run.status, agent,
    run.error ~= nil and run.error ~= json.null and (" (" .. tostring(run.error) .. ")") or "")
  self.run_status = run.status
  self.run_code = r.exit_code
  if self.interrupted and run.status ~= "cancelled" then
    fail("interrupted")
  end
end

function Dev:shut_down()
  -- Also after a Ctrl-C that cancelled the run: stopping is what the user asked for.
  self:step("Stop: the agent drains and deregisters, then the hub stops", nil, true)
  local r = stop(self.agent, STOP_TIMEOUT_MS)
  if r.timed_out then
    fail(("the agent did not stop within %d s of SIGTERM"):format(STOP_TIMEOUT_MS // 1000), "agent", self.agent.log:contents())
  end
  if r.exit_code ~= 0 then
    fail("the agent " .. exit_text(r) .. " on SIGTERM", "agent", self.agent.log:contents())
  end
  if not logged(self.agent, "deregistered from the hub") then
    fail("the agent exited without deregistering", "agent", self.agent.log:contents())
  end
  self:note("agent drained, deregistered and exited")
  r = stop(self.hub, STOP_TIMEOUT_MS)
  if r.timed_out or r.exit_code ~= 0 then
    fail("the hub " .. (r.timed_out and "did not stop in time" or exit_text(r)) .. " on SIGTERM", "hub", self.hub.log:contents())
  end
  self:note("hub stopped")
end

-- Whatever happened: every process stopped, the agent before the hub it deregisters from
-- (SIGKILL if need be), logs written when the directory is kept, else the directory removed.
function Dev:cleanup()
  for i = #self.daemons, 1, -1 do
    local d = self.daemons[i]
    if not d.proc:done() then
      stop(d, 5000)
    end
  end
  if self.opts.keep then
    for _, d in ipairs(self.daemons) do
      self.host.fs.write_atomic(self:path(d.name .. ".log"), d.log:contents())
    end
    return true
  end
  for _, d in ipairs(self.daemons) do
    d.proc:close()
  end
  return self.host.fs.remove_tree(self.dir)
end

function Dev:on_signal()
  self.signals = self.signals + 1
  self.interrupted = true
  if self.follower then
    -- The CLI cancels the run on the first, stops waiting on the second.
    self.follower:signal("INT")
  end
  if self.signals >= 3 then
    for _, d in ipairs(self.daemons) do
      if not d.proc:done() then
        d.proc:kill(0)
      end
    end
  end
end

function dev.main(host, ...)
  local opts, perr = parse_args({ ... })
  if not opts then
    io.stderr:write("hangar dev: ", perr, " (see 'hangar dev --help')\n")
    return 2
  end
  if opts.help then
    io.stdout:write(dev.USAGE)
    return 0
  end
  local started = timer.monotonic()
  local base = os.getenv("TMPDIR")
  if not base or base == "" then
    base = "/tmp"
  end
  local dir, derr = host.mkdtemp(base .. "/hangar-dev-")
  if not dir then
    io.stderr:write("hangar dev: ", derr, "\n")
    return 1
  end
  local self = setmetatable({ host = host, opts = opts, dir = dir, n = 0, daemons = {}, signals = 0 }, Dev)
  host.on_signal(function()
    self:on_signal()
  end)
  say("hangar dev: a hub, an agent and a run of '%s' on this machine, in %s", opts.task, dir)
  local ok, err = pcall(function()
    self:create_store()
    self:start_hub()
    self:create_agent_key()
    self:set_secret()
    self:start_agent()
    self:deploy_tasks()
    self:follow_run()
    self:shut_down()
  end)
  local cleaned, cerr = self:cleanup()
  local code
  if ok then
    local secs = (timer.monotonic() - started) / 1000
    if opts.keep then
      say("done in %.1f s; kept %s (hub.db, agent.lua, keys, hub.log, agent.log)", secs, dir)
    else
      say("done in %.1f s; removed %s (keep it with --keep)", secs, dir)
    end
    if self.run_status == "succeeded" then
      code = 0
    elseif self.run_status == "cancelled" then
      code = 130
    else
      code = (self.run_code and self.run_code > 0) and self.run_code or 1
    end
  else
    local f = getmetatable(err) == Failure and err or { why = tostring(err) }
    if f.why == "interrupted" then
      io.stderr:write(("hangar dev: interrupted during step %d/%d (%s); stopped everything\n"):format(self.n, STEPS,
        self.current or "start"))
      code = 130
    else
      io.stderr:write(("hangar dev: step %d/%d failed (%s): %s\n"):format(self.n, STEPS, self.current or "start", f.why))
      if f.log_text and f.log_text ~= "" then
        io.stderr:write(("the %s's last lines:\n%s\n"):format(f.log_name, tail(f.log_text, 15)))
      end
      if opts.keep then
        io.stderr:write("hangar dev: kept ", dir, " (hub.log, agent.log, ...)\n")
      else
        io.stderr:write("hangar dev: run again with --keep to look at its files\n")
      end
      code = 1
    end
  end
  if not cleaned then
    io.stderr:write("hangar dev: could not remove ", dir, ": ", tostring(cerr), "\n")
    code = code == 0 and 1 or code
  end
  return code
end

return dev
