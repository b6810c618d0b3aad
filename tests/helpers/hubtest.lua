-- Real hubs for tests: start `hangar hub` on a fresh store and a free loopback port, wait until
-- /healthz answers, make JSON requests with the first admin key (or any other), stop, SIGKILL
-- and restart it on the same store and port. Runs inside `hangar lua` (busted specs), whose
-- blocking mode lets a spec call hangar.http and hangar.timer outside a task.
--
--   local hubtest = require "hubtest"
--   local hub = hubtest.start{ args = { "--lease-ttl", "2" } }
--   local res = hub:post("/v1/tasks", { slug = "hello", command = { "true" } })
--   assert.equal(201, res.status); print(res.json.revision)
--   local agent = hub:agent{ labels = { env = "prod" } }       -- an agent key and a session
--   local poll = hub:async("GET", agent:path("/work?wait=10"), { key = agent.token })
--   ... local res = hubtest.await(poll)
--   hub:kill(); hub:restart(); hub:stop(); hub:cleanup()
--
-- Environment: HANGAR_BIN (the binary), HANGAR_TEST_TMP (where stores go; default /tmp).
local http = require "hangar.http"
local json = require "hangar.json"
local timer = require "hangar.timer"
local crypto = require "hangar.crypto"
local async = require "hangar.async"

local hubtest = {}

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

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- A process that exited but was not reaped yet (the hub is not our child: whoever reaps it
-- may take its time) counts as gone.
local function alive(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  if not stat then
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
  end
  return stat:match("%) (%a)") ~= "Z"
end

--- Sleeps ms milliseconds; other tasks (pending requests) run meanwhile.
function hubtest.sleep(ms)
  timer.sleep(ms)
end

--- Waits until fn() returns a true value, polling every step ms for at most timeout ms; returns
--- that value, or nil when the time ran out.
function hubtest.wait_for(fn, timeout, step)
  local deadline = os.time() + math.ceil((timeout or 10000) / 1000)
  repeat
    local v = fn()
    if v then
      return v
    end
    timer.sleep(step or 50)
  until os.time() > deadline
  return fn()
end

--- The result of an hub:async request (raises if it failed).
function hubtest.await(t)
  return async.await(t)
end

--- A random 32-byte public key in standard base64, for agents that never open secrets.
function hubtest.random_public_key()
  return crypto.base64_encode(crypto.random(32))
end

local Hub = {}
Hub.__index = Hub

--- Creates a store with `hangar hub init` and serves it. opts: args (extra serve flags), env
--- (extra environment for the hub), bin, name (part of the directory's name).
function hubtest.start(opts)
  opts = opts or {}
  local bin = opts.bin or BIN
  assert(bin, "HANGAR_BIN is not set")
  local name = (opts.name or "hub"):gsub("[^%w_-]", "_")
  local dir = ("%s/%s-%d-%s"):format(TMP, name, os.time(), crypto.hex_encode(crypto.random(4)))
  assert(os.execute("mkdir -p " .. q(dir)))
  local self = setmetatable({
    bin = bin,
    dir = dir,
    db = dir .. "/hub.db",
    master_key = dir .. "/hub.db.key",
    log_path = dir .. "/hub.log",
    args = opts.args or {},
    env = opts.env or {},
  }, Hub)
  local p = assert(io.popen(q(bin) .. " hub init --db " .. q(self.db) .. " 2>>" .. q(self.log_path)))
  self.admin_key = p:read("l")
  p:close()
  assert(self.admin_key and self.admin_key:match("^hgr_"), "hangar hub init failed: " .. (slurp(self.log_path) or ""))
  self:serve(0)
  return self
end

--- Starts the hub process on the store (port 0: a free one). Waits until /healthz answers.
function Hub:serve(port)
  local ready = self.dir .. "/ready"
  os.remove(ready)
  local parts = { "env" }
  for k, v in pairs(self.env) do
    parts[#parts + 1] = k .. "=" .. q(v)
  end
  parts[#parts + 1] = q(self.bin)
  for _, a in ipairs({ "hub", "serve", "--db", self.db, "--listen", "127.0.0.1:" .. port, "--ready-file", ready }) do
    parts[#parts + 1] = q(a)
  end
  for _, a in ipairs(self.args) do
    parts[#parts + 1] = q(a)
  end
  local cmd = table.concat(parts, " ") .. " >>" .. q(self.log_path) .. " 2>&1 </dev/null & echo $!"
  local p = assert(io.popen(cmd))
  self.pid = assert(tonumber(p:read("l")), "could not start the hub")
  p:close()
  local url = hubtest.wait_for(function()
    local text = slurp(ready)
    if text and text:match("\n$") then
      return text:match("^(%S+)")
    end
    if not alive(self.pid) then
      error("the hub exited at start:\n" .. (slurp(self.log_path) or ""), 0)
    end
  end, 15000, 20)
  assert(url, "the hub did not start listening:\n" .. (slurp(self.log_path) or ""))
  self.url = url
  self.port = tonumber(url:match(":(%d+)$"))
  local ok = hubtest.wait_for(function()
    local res = http.request { url = self.url .. "/healthz", timeout_ms = 2000 }
    return res and res.status == 200
  end, 10000)
  assert(ok, "the hub does not answer /healthz")
  return self
end

local function wait_gone(pid, ms)
  return hubtest.wait_for(function()
    return not alive(pid)
  end, ms or 10000, 20)
end

--- SIGTERM, then waits for the process to exit (SIGKILL after 10 s). True when it exited
--- by itself.
function Hub:stop()
  if not self.pid then
    return true
  end
  os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
  local clean = wait_gone(self.pid, 10000)
  if not clean then
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    wait_gone(self.pid, 5000)
  end
  self.pid = nil
  return clean and true or false
end

--- SIGKILL: the hub dies at once, mid-request if need be.
function Hub:kill()
  if not self.pid then
    return
  end
  os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
  wait_gone(self.pid, 5000)
  self.pid = nil
end

--- Serves the same store again, on the same port (so URLs and sessions stay valid).
function Hub:restart()
  if self.pid then
    self:stop()
  end
  return self:serve(self.port or 0)
end

--- The hub's own log (JSON lines) so far.
function Hub:log()
  return slurp(self.log_path) or ""
end

--- Raises when the hub's log holds a sanitizer report (builds with HANGAR_SANITIZE).
function Hub:check_sanitizers()
  local log = self:log()
  for _, mark in ipairs({ "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:" }) do
    local at = log:find(mark, 1, true)
    if at then
      error("the hub's log has a sanitizer report:\n" .. log:sub(math.max(1, at - 200), at + 3000), 0)
    end
  end
end

--- Stops the hub, checks its log for sanitizer reports, and removes its directory.
function Hub:cleanup()
  self:stop()
  local ok, err = pcall(self.check_sanitizers, self)
  os.execute("rm -rf " .. q(self.dir))
  if not ok then
    error(err, 0)
  end
end

--- One request. opts: key (default the admin key; false for none), body (a table is sent as
--- JSON, a string as is), headers, timeout_ms. Returns { status, headers, body, json }.
function Hub:request(method, path, opts)
  opts = opts or {}
  local headers = {}
  for k, v in pairs(opts.headers or {}) do
    headers[k] = v
  end
  local key = opts.key
  if key == nil then
    key = self.admin_key
  end
  if key then
    headers["Authorization"] = "Bearer " .. key
  end
  local body = opts.body
  if type(body) == "table" then
    body = json.encode(body)
    headers["Content-Type"] = "application/json"
  end
  local res, err = http.request {
    method = method,
    url = self.url .. path,
    headers = headers,
    body = body,
    timeout_ms = opts.timeout_ms or 90000,
  }
  if not res then
    return nil, err
  end
  local ctype = res.headers["content-type"] or ""
  if ctype:find("application/json", 1, true) and res.body and #res.body > 0 then
    local ok, v = pcall(json.decode, res.body)
    if ok then
      res.json = v
    end
  end
  return res
end

function Hub:get(path, key)
  return self:request("GET", path, { key = key })
end

function Hub:post(path, body, key)
  return self:request("POST", path, { body = body, key = key })
end

function Hub:put(path, body, key)
  return self:request("PUT", path, { body = body, key = key })
end

function Hub:delete(path, key)
  return self:request("DELETE", path, { key = key })
end

--- Starts a request in a task, for long-polls; hubtest.await(t) gives its response.
function Hub:async(method, path, opts)
  return async.run(function()
    return assert(self:request(method, path, opts))
  end)
end

--- Makes a key with the admin key: returns the key text and its id.
function Hub:make_key(role, labels, name)
  local res = assert(self:post("/v1/keys", { role = role, name = name or role, labels = labels }))
  assert(res.status == 201, "key create: " .. tostring(res.status) .. " " .. tostring(res.body))
  return res.json.key, res.json.id
end

local Agent = {}
Agent.__index = Agent

--- An agent session through the raw protocol. opts: key (default: a new agent key with
--- key_labels), labels, capacity, public_key (default random), agent_id (resume), name.
--- Registration must succeed (201); use hub:post("/v1/agents", ...) to test refusals.
function Hub:agent(opts)
  opts = opts or {}
  local key = opts.key or self:make_key("agent", opts.key_labels)
  local body = {
    name = opts.name or "test-agent",
    hostname = "localhost",
    version = "test",
    labels = opts.labels or json.object(),
    capacity = opts.capacity or 1,
    schedulers = json.array { "local" },
    public_key = opts.public_key or hubtest.random_public_key(),
    agent_id = opts.agent_id,
  }
  local res = assert(self:post("/v1/agents", body, key))
  assert(res.status == 201, "register: " .. tostring(res.status) .. " " .. tostring(res.body))
  return setmetatable({ hub = self, key = key, id = res.json.agent_id, token = res.json.session_token,
                        registered = res.json }, Agent)
end

--- "/v1/agents/<id>" .. suffix
function Agent:path(suffix)
  return "/v1/agents/" .. self.id .. (suffix or "")
end

function Agent:call(method, path, body)
  return assert(self.hub:request(method, path, { key = self.token, body = body }))
end

--- GET work with wait (default 0) and free (default: the hub's choice).
function Agent:work(wait, free)
  local q = "?wait=" .. (wait or 0) .. (free and ("&free=" .. free) or "")
  return self:call("GET", self:path("/work" .. q))
end

function Agent:accept(run_id, lease_id)
  return self:call("POST", "/v1/runs/" .. run_id .. "/accept", { lease_id = lease_id })
end

function Agent:start(run_id)
  return self:call("POST", "/v1/runs/" .. run_id .. "/start", { at = "2026-01-01T00:00:00.000Z" })
end

--- Posts events (a list of event tables) starting at first_seq.
function Agent:events(run_id, first_seq, events)
  return self:call("POST", "/v1/runs/" .. run_id .. "/events", { first_seq = first_seq, events = json.array(events) })
end

function Agent:heartbeat(runs, free)
  local list = {}
  for i, r in ipairs(runs or {}) do
    list[i] = type(r) == "table" and r or { run_id = r, status = "running" }
  end
  return self:call("POST", self:path("/heartbeat"), { runs = json.array(list), free = free })
end

function Agent:finish(run_id, status, events_total, exit_code, err)
  return self:call("POST", "/v1/runs/" .. run_id .. "/finish",
    { status = status, events_total = events_total, exit_code = exit_code, error = err })
end

function Agent:deregister()
  return self:call("DELETE", self:path())
end

--- Polls until the hub assigns a run; returns run_id, lease_id.
function Agent:take(wait)
  local res = self:work(wait or 5)
  assert(res.status == 200, "work: " .. tostring(res.status) .. " " .. tostring(res.body))
  local a = res.json.assign[1]
  if a then
    return a.run_id, a.lease_id
  end
end

--- A log event.
function hubtest.log_event(text, stream)
  return { kind = "log", ts = "2026-01-01T00:00:00.000Z", stream = stream or "stdout", text = text, partial = false }
end

--- An output event.
function hubtest.output_event(op, path, value)
  return { kind = "output", ts = "2026-01-01T00:00:00.000Z", op = op, path = path, value = value }
end

return hubtest
