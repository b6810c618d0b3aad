-- The hub behind a faulty network and SIGKILLed mid-stream: a scripted agent (the protocol's
-- retry rules, nothing more) takes 100 runs through tests/helpers/faultproxy.py, which resets,
-- truncates, stalls, drip-feeds and refuses its connections, while the hub is killed and
-- restarted twice. Every run must end succeeded with each of its events stored exactly once,
-- in order, and its outputs right: what the hub acknowledged survives, and a retried batch,
-- accept, start or finish is harmless.
local hubtest = require "hubtest"
local faultproxy = require "faultproxy"
local http = require "hangar.http"
local json = require "hangar.json"
local async = require "hangar.async"
local timer = require "hangar.timer"

local RUNS = 100
local EVENTS = 50 -- per run: numbered log lines and output ops, uploaded in uneven batches

local hub, fp

setup(function()
  -- A work answer the proxy cut is an assignment the agent never saw: the run goes back to
  -- the queue after the lease TTL, so keep it short (heartbeats renew the runs held).
  hub = hubtest.start { name = "fault-hub", args = { "--lease-ttl", "10" } }
  fp = faultproxy.start {
    target = hub.port, seed = 20261128, window = 30,
    reset = 0.25, close = 0.15, stall = 0.15, delay = 0.15, refuse = 0.05,
    at = "0-3000", stall_ms = "200-1500", delay_ms = "2-20", refuse_ms = "100-600",
  }
end)

teardown(function()
  if fp then
    fp:stop()
  end
  if hub then
    hub:cleanup()
  end
end)

-- One request from the scripted agent, through the proxy. Returns the response (with json)
-- or nil and the transport error.
local function call(token, method, path, body)
  local res, err = http.request {
    method = method,
    url = fp.url .. path,
    headers = { Authorization = "Bearer " .. token, ["Content-Type"] = body and "application/json" or nil },
    body = body and json.encode(body) or nil,
    timeout_ms = 10000,
  }
  if res and res.body and #res.body > 0 and (res.headers["content-type"] or ""):find("json", 1, true) then
    local ok, doc = pcall(json.decode, res.body)
    res.json = ok and doc or nil
  end
  return res, err
end

-- What run number n prints: event i (0-based) of it.
local function event_of(n, i)
  if i % 10 == 9 then
    return { kind = "output", ts = "2026-01-01T00:00:00.000Z", op = "append", path = "progress", value = i }
  end
  return { kind = "log", ts = "2026-01-01T00:00:00.000Z", stream = i % 7 == 3 and "stderr" or "stdout",
           text = ("run %d line %d"):format(n, i), partial = false }
end

-- The scripted agent: the protocol's client rules for every call. Retries transport errors
-- and 5xx after a short pause (the proxy and the hub's restarts make both), trusts the hub's
-- next_seq, and never gives up within the deadline.
local Scripted = {}
Scripted.__index = Scripted

local function retrying(self, what, fn)
  local deadline = timer.monotonic() + 120000
  while timer.monotonic() < deadline do
    local res, err = fn()
    if res and res.status < 500 then
      return res
    end
    self.retries = self.retries + 1
    self.last_error = what .. ": " .. tostring(err or (res and res.status))
    timer.sleep(50 + math.random(0, 150))
  end
  error("gave up on " .. what .. " after 120 s; last error: " .. tostring(self.last_error))
end

function Scripted:run(run_id, lease_id)
  local res = retrying(self, "accept", function()
    return call(self.token, "POST", "/v1/runs/" .. run_id .. "/accept", { lease_id = lease_id })
  end)
  if res.status == 409 then
    -- The lease went elsewhere (it was given to another poll after a lost answer): the hub
    -- will assign the run again.
    self.lost_leases = self.lost_leases + 1
    return
  end
  assert(res.status == 200, "accept " .. run_id .. ": " .. res.status .. " " .. tostring(res.body))
  local n = tonumber(res.json.run.params.n)
  res = retrying(self, "start", function()
    return call(self.token, "POST", "/v1/runs/" .. run_id .. "/start", { at = "2026-01-01T00:00:00.000Z" })
  end)
  assert(res.status == 200, "start: " .. res.status .. " " .. tostring(res.body))
  -- Uneven batches, each retried from what the hub says it has.
  local next_seq, size = 0, 1
  while next_seq < EVENTS do
    local batch = {}
    for i = next_seq, math.min(EVENTS, next_seq + size) - 1 do
      batch[#batch + 1] = event_of(n, i)
    end
    local first = next_seq
    res = retrying(self, "events", function()
      return call(self.token, "POST", "/v1/runs/" .. run_id .. "/events", { first_seq = first, events = json.array(batch) })
    end)
    if res.status == 200 then
      assert(res.json.next_seq >= first + #batch, "the hub acknowledged less than a whole batch")
      next_seq = res.json.next_seq
    elseif res.status == 409 and res.json and res.json.error.code == "seq_gap" then
      -- Everything before next_seq was acknowledged: the hub may not have less.
      assert(res.json.next_seq >= next_seq, ("the hub lost acknowledged events of %s: it acknowledged %d, now has %d")
        :format(run_id, next_seq, res.json.next_seq))
      next_seq = res.json.next_seq
    else
      error("events: " .. res.status .. " " .. tostring(res.body))
    end
    size = size % 7 + 2
  end
  res = retrying(self, "finish", function()
    return call(self.token, "POST", "/v1/runs/" .. run_id .. "/finish",
      { status = "succeeded", exit_code = 0, events_total = EVENTS, at = "2026-01-01T00:00:00.000Z" })
  end)
  assert(res.status == 200, "finish: " .. res.status .. " " .. tostring(res.body))
  self.finished = self.finished + 1
end

-- Polls for work and runs what it gets, up to `capacity` at once, until stop is set.
function Scripted:serve(capacity)
  local running = {}
  while not self.stop do
    local free = capacity
    for id, t in pairs(running) do
      if t:done() then
        t:wait() -- raises the run's error here
        running[id] = nil
      else
        free = free - 1
      end
    end
    if free > 0 then
      local res = call(self.token, "GET", "/v1/agents/" .. self.id .. "/work?wait=1&free=" .. free)
      if res and res.status == 200 then
        for _, a in ipairs(res.json.assign) do
          if not running[a.run_id] then
            running[a.run_id] = async.run(self.run, self, a.run_id, a.lease_id)
          end
        end
        -- Lets the hub know the runs are still held, as a real agent's heartbeat does.
        local list = {}
        for id in pairs(running) do
          list[#list + 1] = { run_id = id, status = "running" }
        end
        call(self.token, "POST", "/v1/agents/" .. self.id .. "/heartbeat", { runs = json.array(list), free = free })
      else
        timer.sleep(100)
      end
    else
      timer.sleep(20)
    end
  end
  for _, t in pairs(running) do
    t:wait()
  end
end

local function all_events(id)
  local out, after = {}, -1
  while true do
    local res = assert(hub:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=1000"))
    assert.equal(200, res.status)
    for _, e in ipairs(res.json.events) do
      out[#out + 1] = e
      after = e.seq
    end
    if #res.json.events == 0 then
      return out, res.json
    end
  end
end

describe("the hub behind a faulty network, killed twice", function()
  it("stores every event of 100 runs exactly once, in order, with the right outputs", function()
    assert.equal(201, hub:post("/v1/tasks", {
      slug = "fault-scripted", command = { "true" }, constraints = { suite = "fault-hub" },
      parameters = json.array { { slug = "n", type = "integer", required = true } },
    }).status)
    local a = hub:agent { labels = { suite = "fault-hub" }, capacity = 6 }
    local agent = setmetatable({ id = a.id, token = a.token, retries = 0, finished = 0, lost_leases = 0 }, Scripted)
    local ids = {}
    for n = 1, RUNS do
      local res = assert(hub:post("/v1/runs", { task = "fault-scripted", params = { n = n } }))
      assert.equal(201, res.status)
      ids[n] = res.json.run_id
    end
    local serving = async.run(agent.serve, agent, 6)

    -- Kill the hub twice in the middle of the traffic, at points set by progress, not time.
    for _, at in ipairs({ 25, 60 }) do
      assert.truthy(hubtest.wait_for(function()
        assert(not serving:done() or serving:wait())
        return agent.finished >= at
      end, 90000, 20), "the scripted agent finished only " .. agent.finished .. " runs")
      hub:kill()
      timer.sleep(300)
      hub:restart()
    end
    assert.truthy(hubtest.wait_for(function()
      assert(not serving:done() or serving:wait())
      return agent.finished >= RUNS
    end, 120000, 50), "the scripted agent finished only " .. agent.finished .. " runs; last error: "
      .. tostring(agent.last_error))
    agent.stop = true
    async.await(serving)

    for n, id in ipairs(ids) do
      local run = hub:get("/v1/runs/" .. id).json
      assert.equal("succeeded", run.status, "run " .. n)
      assert.equal(0, run.exit_code)
      local events, last = all_events(id)
      assert.equal(EVENTS, #events, "run " .. n .. " has " .. #events .. " events")
      local progress = {}
      for i, e in ipairs(events) do
        local want = event_of(n, i - 1)
        assert.equal(i - 1, e.seq)
        assert.equal(want.kind, e.kind)
        if want.kind == "log" then
          assert.equal(want.text, e.text)
          assert.equal(want.stream, e.stream)
        else
          assert.equal(want.value, e.value)
          progress[#progress + 1] = want.value
        end
      end
      assert.is_true(last.done)
      assert.same({ progress = progress }, run.outputs)
    end

    -- The faults happened: otherwise this test proves nothing.
    local s = fp:stats()
    for _, kind in ipairs({ "reset", "close", "stall", "delay" }) do
      assert.truthy(s.struck[kind] > 0, "no " .. kind .. " fault struck: " .. json.encode(s))
    end
    assert.truthy(agent.retries > 0)
    hub:check_sanitizers()
  end)
end)
