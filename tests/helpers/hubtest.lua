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
local crypto = require "hangar.crypto"
local async = require "hangar.async"
local testutil = require "testutil"

local hubtest = {}

local q, slurp = testutil.q, testutil.slurp

--- Sleeps ms milliseconds; other tasks (pending requests) run meanwhile.
hubtest.sleep = testutil.sleep

--- Waits until fn() returns a true value, polling every step ms for at most timeout ms; returns
--- that value, or nil when the time ran out.
hubtest.wait_for = testutil.wait_for

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
  local bin = opts.bin or testutil.BIN
  assert(bin, "HANGAR_BIN is not set")
  local name = (opts.name or "hub"):gsub("[^%w_-]", "_")
  local dir = testutil.tmpdir(name)
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
  local argv = { self.bin, "hub", "serve", "--db", self.db, "--listen", "127.0.0.1:" .. port, "--ready-file", ready }
  for _, a in ipairs(self.args) do
    argv[#argv + 1] = a
  end
  self.pid = testutil.spawn_bg(argv, self.log_path, self.env)
  local url = hubtest.wait_for(function()
    local text = slurp(ready)
    if text and text:match("\n$") then
      return text:match("^(%S+)")
    end
    if not testutil.alive(self.pid) then
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

--- SIGTERM, then waits for the process to exit (SIGKILL after 10 s). True when it exited
--- by itself.
function Hub:stop()
  if not self.pid then
    return true
  end
  local clean = testutil.stop_pid(self.pid, 10000)
  self.pid = nil
  return clean
end

--- SIGKILL: the hub dies at once, mid-request if need be.
function Hub:kill()
  if not self.pid then
    return
  end
  testutil.kill_pid(self.pid)
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
  testutil.check_sanitizers(self:log(), "the hub")
end

--- Stops the hub, checks its log for sanitizer reports, and removes its directory.
function Hub:cleanup()
  self:stop()
  testutil.finish(self.dir, self:log(), "the hub")
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
