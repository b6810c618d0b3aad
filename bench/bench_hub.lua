-- Hub benchmark: event ingestion through the HTTP API (lines/s, MB/s), runs created and
-- completed per second by a scripted agent, and what 1000 idle long-polls cost.
--
--   HANGAR_BIN=build/hangar hangar lua bench/bench_hub.lua [events|runs|polls ...]
--
-- events: BATCHES (per run, default 40) batches of 1 MiB of LINE_BYTES-byte lines (default 100).
--
-- Numbers depend on the machine; the hub and this client share it, so they are a floor.
local SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
package.path = SRC .. "/tests/helpers/?.lua;" .. package.path
local hubtest = require "hubtest"
local testutil = require "testutil"
local async = require "hangar.async"
local json = require "hangar.json"

local timer = require "hangar.timer"

-- Seconds on a monotonic clock, with millisecond precision.
local function now()
  return timer.monotonic() / 1000
end

-- Seconds of CPU the process used so far, and its resident memory in KiB; nil when it is gone.
local function proc_stat(pid)
  local cpu = testutil.cpu_seconds(pid)
  if not cpu then return nil end
  local status = io.open("/proc/" .. pid .. "/status"):read("a")
  local rss = tonumber(status:match("VmRSS:%s+(%d+)"))
  return cpu, rss
end

local function report(name, value, unit)
  print(("%-46s %12.1f %s"):format(name, value, unit))
end

local benches = {}

-- The agent streams a run's log as batches of up to max_batch_bytes (1 MiB by default) of
-- {"kind":"log",...} events. Each batch's events are encoded once and reused, so that the
-- client spends its time sending rather than encoding JSON: the hub's share is what is measured.
function benches.events()
  local hub = hubtest.start { name = "bench-events", args = { "--lease-ttl", "120", "--log-level", "warn" } }
  hub:post("/v1/tasks", { slug = "bench", command = { "true" } })
  local line = string.rep("x", tonumber(os.getenv("LINE_BYTES") or "100"))
  local event = json.encode({ kind = "log", ts = "2026-01-01T00:00:00.000Z", stream = "stdout", text = line, partial = false })
  local per_batch = (1 << 20) // (#event + 1)
  local events = "[" .. string.rep(event, per_batch, ",") .. "]"
  local function batch(first)
    return '{"first_seq":' .. first .. ',"events":' .. events .. "}"
  end
  local batches = tonumber(os.getenv("BATCHES") or "40")
  for _, runs in ipairs({ 1, 4 }) do
    local agent = hub:agent { capacity = runs }
    local ids = {}
    for i = 1, runs do
      ids[i] = hub:post("/v1/runs", { task = "bench" }).json.run_id
    end
    local res = agent:work(1, runs)
    for _, a in ipairs(res.json.assign) do
      assert(agent:accept(a.run_id, a.lease_id).status == 200)
      agent:start(a.run_id)
    end
    local body_bytes = #batch(0)
    local t0 = now()
    local cpu0 = proc_stat(hub.pid)
    async.map(ids, function(id)
      for b = 0, batches - 1 do
        local r = hub:request("POST", "/v1/runs/" .. id .. "/events",
          { key = agent.token, body = batch(b * per_batch), headers = { ["Content-Type"] = "application/json" } })
        assert(r and r.status == 200, r and r.body)
      end
    end)
    local dt = now() - t0
    local cpu1 = proc_stat(hub.pid)
    local lines = per_batch * batches * runs
    report(("ingest, %d run(s) in parallel: lines/s"):format(runs), lines / dt, "")
    report(("ingest, %d run(s) in parallel: MB/s of batches"):format(runs), body_bytes * batches * runs / dt / 1e6, "")
    report(("ingest, %d run(s) in parallel: MB/s of line text"):format(runs), #line * lines / dt / 1e6, "")
    report(("ingest, %d run(s): hub CPU per line"):format(runs), (cpu1 - cpu0) / lines * 1e6, "us")
    if runs == 1 then
      -- What a follower (hangar run --follow) costs: the run read back in pages of 10000.
      local t2, cpu2, after, read = now(), proc_stat(hub.pid), -1, 0
      repeat
        local r = hub:get("/v1/runs/" .. ids[1] .. "/events?limit=10000&after=" .. after)
        assert(r.status == 200, r.body)
        local n = #r.json.events
        if n > 0 then after = r.json.events[n].seq end
        read = read + n
      until n == 0
      local cpu3 = proc_stat(hub.pid)
      report("read back in pages of 10000: lines/s", read / (now() - t2), "")
      report("read back: hub CPU per line", (cpu3 - cpu2) / read * 1e6, "us")
    end
  end
  hub:cleanup()
end

function benches.runs()
  local hub = hubtest.start { name = "bench-runs", args = { "--lease-ttl", "120", "--log-level", "warn" } }
  hub:post("/v1/tasks", { slug = "quick", command = { "true" } })
  local total, capacity = tonumber(os.getenv("RUNS") or "400"), 16
  local agent = hub:agent { capacity = capacity }
  local t0, cpu0 = now(), proc_stat(hub.pid)
  -- creating
  async.map((function() local t = {} for i = 1, total do t[i] = i end return t end)(), function()
    assert(hub:post("/v1/runs", { task = "quick" }).status == 201)
  end, 8)
  local t1, cpu1 = now(), proc_stat(hub.pid)
  -- the scripted agent: poll, then accept/start/events/finish each run, capacity at a time
  local done = 0
  while done < total do
    local res = agent:work(1)
    local assigned = res.json.assign
    async.map(assigned, function(a)
      assert(agent:accept(a.run_id, a.lease_id).status == 200)
      assert(agent:start(a.run_id).status == 200)
      assert(agent:events(a.run_id, 0, { hubtest.log_event("hello"), hubtest.output_event("set", "ok", true) }).status == 200)
      assert(agent:finish(a.run_id, "succeeded", 2, 0).status == 200)
    end)
    done = done + #assigned
  end
  local t2, cpu2 = now(), proc_stat(hub.pid)
  report("runs created per second (8 clients)", total / (t1 - t0), "")
  report(("runs completed per second (agent capacity %d)"):format(capacity), total / (t2 - t1), "")
  report("runs created and completed per second", total / (t2 - t0), "")
  -- The hub's own CPU: steadier than the rates, which share the machine with this client.
  report("hub CPU per run created", (cpu1 - cpu0) / total * 1e6, "us")
  report("hub CPU per run completed (work, accept, start, events, finish)", (cpu2 - cpu1) / total * 1e6, "us")
  hub:cleanup()
end

function benches.polls()
  local n = tonumber(os.getenv("POLLS") or "1000")
  local hub = hubtest.start { name = "bench-polls", args = { "--lease-ttl", "120", "--log-level", "warn" } }
  hub:post("/v1/tasks", { slug = "wake", command = { "true" } })
  -- Runs no agent here can take: every wake-up has to look past them.
  local unmatched = tonumber(os.getenv("QUEUED") or "0")
  hub:post("/v1/tasks", { slug = "elsewhere", command = { "true" }, constraints = { site = "mars" } })
  for _ = 1, unmatched do
    hub:post("/v1/runs", { task = "elsewhere" })
  end
  local key = hub:make_key("agent")
  local agents = {}
  for i = 1, n do
    agents[i] = hub:agent { key = key, capacity = 1 }
  end
  local cpu_before, rss_before = proc_stat(hub.pid)
  local polls = {}
  for i, a in ipairs(agents) do
    polls[i] = hub:async("GET", a:path("/work?wait=60"), { key = a.token })
  end
  -- wait until the hub holds them all
  assert(hubtest.wait_for(function()
    local m = hub:get("/metrics").body
    return tonumber(m:match("\nhangar_long_polls_open (%d+)")) == n
  end, 60000, 100), "the polls did not all arrive")
  local cpu0, rss0 = proc_stat(hub.pid)
  hubtest.sleep(5000)
  local cpu1, rss1 = proc_stat(hub.pid)
  report(("%d idle polls: hub RSS growth"):format(n), (rss0 - rss_before), "KiB")
  report(("%d idle polls: hub CPU over 5 s idle"):format(n), (cpu1 - cpu0) * 1000, "ms")
  -- one new run: how long until some poll holds it, with every poll re-evaluated
  local t0 = now()
  local cpu2 = proc_stat(hub.pid)
  assert(hub:post("/v1/runs", { task = "wake" }).status == 201)
  local got
  while not got do
    for i, p in ipairs(polls) do
      if p:done() then
        local res = async.await(p)
        if #res.json.assign > 0 then got = i end
        polls[i] = hub:async("GET", agents[i]:path("/work?wait=60"), { key = agents[i].token })
      end
    end
    if not got then hubtest.sleep(1) end
  end
  local dt = now() - t0
  hubtest.sleep(1000) -- the hub re-evaluates every other poll too; count that work
  local cpu3 = proc_stat(hub.pid)
  report(("%d polls, %d unmatched queued: new run to its assignment"):format(n, unmatched), dt * 1000, "ms")
  report(("%d polls, %d unmatched queued: hub CPU for that wake-up"):format(n, unmatched), (cpu3 - cpu2) * 1000, "ms")
  hub:cleanup()
  for _, p in ipairs(polls) do pcall(async.await, p) end
end

local which = { ... }
if #which == 0 then which = { "events", "runs", "polls" } end
for _, name in ipairs(which) do
  assert(benches[name], "unknown benchmark " .. name)
  benches[name]()
end
