-- System benchmarks: a real hub and a real agent on loopback, each figure beside its physical
-- floor measured in the same run.
--
--   dispatch    POST /v1/runs of a no-op task -> the task's process running on the agent, and
--               -> the run recorded as finished (the client's events long-poll answers done);
--               one run at a time, p50 and p99. Floor: fork + exec + wait of the same program
--               (floor_spawn), in blocks that take turns with the dispatch's (DISPATCH_BLOCK
--               runs each, 100).
--   throughput  no-op runs per second through one agent of capacity 32, with a queue that never
--               empties. Floor: the same program forked and reaped, 32 at a time.
--   memory      the agent's RSS and private dirty memory (/proc/PID/smaps_rollup) idle, with
--               100 runs sleeping at once (per run: what the second 50 added to the first
--               50), and idle again once they ended. Floor: floor_agent (libcurl with OpenSSL,
--               Lua, libuv loaded and initialised, nothing else).
--   hubmem      the hub's RSS and private dirty memory idle and with 1,000 agents long-polling.
--               Floor: floor_hub (the agent's libraries, SQLite and h2o).
--
--   HANGAR_BIN=build/hangar HANGAR_BENCH_BIN=build/bench build/hangar lua bench/bench_agent.lua [NAME ...]
--
-- Prints one "name value" line per figure (names end in their unit). Sizes come from the
-- environment: DISPATCH_RUNS (1000), THROUGHPUT_RUNS (2000), CONCURRENT_RUNS (100),
-- POLL_AGENTS (1000). DISPATCH_TIMES=FILE: dispatch also writes each run's POST and start
-- times there (see bench/split_dispatch.lua). Reading another process's smaps_rollup needs the
-- agent's user or root (the agent is not dumpable).
local SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
package.path = SRC .. "/tests/helpers/?.lua;" .. package.path
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local async = require "hangar.async"
local timer = require "hangar.timer"

local BENCH_BIN = assert(os.getenv("HANGAR_BENCH_BIN"), "HANGAR_BENCH_BIN (the build's bench directory) is not set")
if BENCH_BIN:sub(1, 1) ~= "/" then
  -- Runs start in their own work directory: the task's command needs an absolute path.
  BENCH_BIN = assert(os.getenv("PWD"), "PWD is not set") .. "/" .. BENCH_BIN
end
local NOOP = BENCH_BIN .. "/bench_noop"
local q = agenttest.q
local slurp = agenttest.slurp

local function size(name, default)
  return math.tointeger(tonumber(os.getenv(name) or "")) or default
end

local function put(name, value)
  if math.type(value) == "integer" then
    print(("%s %d"):format(name, value))
  else
    print(("%s %.1f"):format(name, value))
  end
  io.stdout:flush()
end

-- Nearest-rank percentile of a list of numbers.
local function percentile(list, p)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local k = math.max(1, math.ceil(p / 100 * #s))
  return s[k]
end

-- The "name value" lines a program prints, as a table.
local function run_program(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do
    local k, v = line:match("^(%S+) (%S+)$")
    if k then out[k] = tonumber(v) end
  end
  assert(p:close(), "failed: " .. cmd)
  return out
end

-- KiB of resident and private dirty memory of a process.
local function memory(pid)
  local text = assert(slurp("/proc/" .. pid .. "/smaps_rollup"), "cannot read /proc/" .. pid .. "/smaps_rollup")
  return { rss = tonumber(text:match("\nRss:%s+(%d+)")), private_dirty = tonumber(text:match("\nPrivate_Dirty:%s+(%d+)")) }
end

-- Seconds of CPU (user + system) a process used so far.
local function cpu(pid)
  return assert(testutil.cpu_seconds(pid), "no process " .. pid)
end

local function metric(hub, name)
  local body = hub:get("/metrics").body
  return tonumber(body:match("\n" .. name:gsub("[%[%]%(%)%.%-%+%*%?%^%$]", "%%%0") .. " (%d+)")) or 0
end

local function children(pid)
  local text = slurp(("/proc/%d/task/%d/children"):format(pid, pid)) or ""
  local n = 0
  for _ in text:gmatch("%d+") do n = n + 1 end
  return n
end

-- What a benchmark started, to stop should it fail halfway.
local started = {}

local function new_hub(name)
  local hub = hubtest.start { name = name, args = { "--lease-ttl", "120", "--log-level", "warn" } }
  started[#started + 1] = hub
  return hub
end

-- An agent as deployed: default log level, a local scheduler.
local function new_agent(hub, capacity)
  local agent = agenttest.start(hub, { capacity = capacity, log_level = "info", name = "bench-agent" })
  table.insert(started, 1, agent) -- agents go before their hub
  return agent
end

local function stamps_of(path)
  local out = {}
  for line in (slurp(path) or ""):gmatch("[^\n]+") do
    local id, ns = line:match("^(%S+) (%d+)$")
    if id then out[id] = tonumber(ns) end
  end
  return out
end

-- Waits until the run ended: the events long-poll answers done once the finish is recorded.
local function wait_done(hub, id)
  local after = nil
  while true do
    local res = assert(hub:get("/v1/runs/" .. id .. "/events?wait=30" .. (after and ("&after=" .. after) or "")))
    assert(res.status == 200, res.body)
    local doc = res.json
    if #doc.events > 0 then after = doc.events[#doc.events].seq end
    if doc.done then return doc.status end
  end
end

local benches = {}

function benches.dispatch()
  local runs = size("DISPATCH_RUNS", 1000)
  local block = math.min(runs, size("DISPATCH_BLOCK", 100))
  local dir = agenttest.tmpdir("bench-dispatch")
  local hub = new_hub("bench-dispatch")
  local agent = new_agent(hub, 1)
  local stamps = dir .. "/stamps"
  local slug = agenttest.task(hub, { command = { NOOP, stamps } })
  local function one()
    local t0 = timer.monotonic_ns()
    local res = assert(hub:post("/v1/runs", { task = slug }))
    assert(res.status == 201, res.body)
    local status = wait_done(hub, res.json.run_id)
    assert(status == "succeeded", "a no-op run ended " .. tostring(status))
    return res.json.run_id, t0, timer.monotonic_ns()
  end
  -- The floor's runs, one at a time, appended to floor_start and floor_reaped.
  local floor_start, floor_reaped, blocks = {}, {}, 0
  local function floor_block(n)
    blocks = blocks + 1
    local cmd = ("%s/floor_spawn %s %s %d 0"):format(q(BENCH_BIN), q(NOOP), q(dir .. "/floor." .. blocks), n)
    local p = assert(io.popen(cmd))
    for line in p:lines() do
      local running, reaped = line:match("^run (%S+) (%S+)$")
      if running then
        floor_start[#floor_start + 1] = tonumber(running)
        floor_reaped[#floor_reaped + 1] = tonumber(reaped)
      end
    end
    assert(p:close(), "failed: " .. cmd)
  end
  -- Warm up: connections, caches, Lua code; and the floor's program (its figures are dropped).
  local warm = math.max(5, math.min(runs, 200) // 10)
  for _ = 1, warm do one() end
  floor_block(warm)
  floor_start, floor_reaped = {}, {}
  -- A virtual machine's speed can change from one second to the next: the floor and the
  -- dispatch take turns, a block of each, so that both are measured over the same seconds.
  local t0s, to_start, to_done = {}, {}, {}
  local agent_cpu, hub_cpu = 0, 0
  local done = 0
  while done < runs do
    local n = math.min(block, runs - done)
    floor_block(n)
    local cpu0, hub_cpu0 = cpu(agent.pid), cpu(hub.pid)
    for _ = 1, n do
      local id, t0, t1 = one()
      t0s[id] = t0
      done = done + 1
      to_done[done] = (t1 - t0) / 1e3
    end
    agent_cpu, hub_cpu = agent_cpu + cpu(agent.pid) - cpu0, hub_cpu + cpu(hub.pid) - hub_cpu0
  end
  put("floor.spawn_to_running.p50_us", percentile(floor_start, 50))
  put("floor.spawn_to_running.p99_us", percentile(floor_start, 99))
  put("floor.spawn_to_reaped.p50_us", percentile(floor_reaped, 50))
  put("floor.spawn_to_reaped.p99_us", percentile(floor_reaped, 99))
  local started = stamps_of(stamps)
  for id, t0 in pairs(t0s) do
    to_start[#to_start + 1] = (assert(started[id], "no start time for run " .. id) - t0) / 1e3
  end
  local times = os.getenv("DISPATCH_TIMES")
  if times then
    -- Each run's POST and start (CLOCK_MONOTONIC ns), for bench/split_dispatch.lua.
    local f = assert(io.open(times, "w"))
    for id, t0 in pairs(t0s) do
      f:write(("%d %d\n"):format(t0, started[id]))
    end
    f:close()
  end
  put("dispatch.runs", runs)
  put("dispatch.to_running.p50_us", percentile(to_start, 50))
  put("dispatch.to_running.p99_us", percentile(to_start, 99))
  put("dispatch.to_finished.p50_us", percentile(to_done, 50))
  put("dispatch.to_finished.p99_us", percentile(to_done, 99))
  put("dispatch.agent_cpu_per_run_us", agent_cpu / runs * 1e6)
  put("dispatch.hub_cpu_per_run_us", hub_cpu / runs * 1e6)
  agent:cleanup()
  hub:cleanup()
  os.execute("rm -rf " .. q(dir))
end

function benches.throughput()
  local runs = size("THROUGHPUT_RUNS", 2000)
  local capacity = 32
  local dir = agenttest.tmpdir("bench-throughput")
  local floor = run_program(("%s/floor_spawn %s %s %d %d"):format(q(BENCH_BIN), q(NOOP), q(dir .. "/floor"), math.min(runs, 500), capacity))
  os.execute("rm -rf " .. q(dir))
  put("floor.parallel_runs_per_s", floor.runs_per_s)

  local hub = new_hub("bench-throughput")
  local slug = agenttest.task(hub, { command = { NOOP } })
  -- The queue is filled before the agent starts, so that it never runs dry and the client
  -- creating runs does not compete with the agent for the CPU.
  local list = {}
  for i = 1, runs do list[i] = i end
  async.map(list, function()
    local res = assert(hub:post("/v1/runs", { task = slug }))
    assert(res.status == 201, res.body)
  end, 8)
  local agent = new_agent(hub, capacity)
  local cpu0, hub_cpu0 = cpu(agent.pid), cpu(hub.pid)
  -- Runs finished over time, sampled; the rate is taken between 10% and 90% done, where the
  -- agent is at full capacity (not starting up, not finishing the last few). A sample is a
  -- /metrics scrape that the hub renders on the same cores as the runs, so it is taken every
  -- 100 ms, not more often: at 20 ms the scrapes were ~5% of the hub's CPU counted per run.
  -- The moment a count was reached is interpolated between the two samples around it.
  local samples = {}
  local t_begin = timer.monotonic_ns()
  while true do
    local done = metric(hub, 'hangar_runs{status="succeeded"}')
    local failed = metric(hub, 'hangar_runs{status="failed"}')
    assert(failed == 0, "a no-op run failed")
    samples[#samples + 1] = { t = timer.monotonic_ns(), n = done }
    if done >= runs then break end
    timer.sleep(100)
  end
  local agent_cpu, hub_cpu = cpu(agent.pid) - cpu0, cpu(hub.pid) - hub_cpu0
  local function reached(n)
    for i, s in ipairs(samples) do
      if s.n >= n then
        local p = samples[i - 1] -- p.n < n <= s.n: the two counts differ
        if not p then return s.t end
        return p.t + (s.t - p.t) * (n - p.n) / (s.n - p.n)
      end
    end
  end
  local from, to = runs // 10, runs * 9 // 10
  put("throughput.runs", runs)
  put("throughput.capacity", capacity)
  put("throughput.runs_per_s", (to - from) / ((reached(to) - reached(from)) / 1e9))
  put("throughput.all_runs_per_s", runs / ((reached(runs) - t_begin) / 1e9))
  put("throughput.agent_cpu_per_run_us", agent_cpu / runs * 1e6)
  put("throughput.hub_cpu_per_run_us", hub_cpu / runs * 1e6)
  agent:cleanup()
  hub:cleanup()
end

function benches.memory()
  local concurrent = size("CONCURRENT_RUNS", 100)
  local half = concurrent // 2
  local floor = run_program(q(BENCH_BIN .. "/floor_agent"))
  put("floor.agent.rss_kib", floor.rss_kib)
  put("floor.agent.private_dirty_kib", floor.private_dirty_kib)

  local hub = new_hub("bench-memory")
  local agent = new_agent(hub, concurrent)
  timer.sleep(3000) -- an agent settles its memory two seconds after it fell idle
  local idle = memory(agent.pid)
  put("agent.idle.rss_kib", idle.rss)
  put("agent.idle.private_dirty_kib", idle.private_dirty)

  -- Per run: what the second half of the sleeping runs adds to the first half, so that what
  -- the first runs allocate once (code paths, connections, buffers kept for reuse) is not
  -- counted per run.
  local sleepy = agenttest.task(hub, { command = { "/bin/sleep", "120" } })
  local ids = {}
  local function start_runs(n)
    for _ = 1, n do ids[#ids + 1] = agenttest.run(hub, sleepy) end
    assert(hubtest.wait_for(function() return children(agent.pid) >= #ids end, 60000, 50),
      "the agent did not start every run")
    timer.sleep(500)
    return memory(agent.pid)
  end
  local first = start_runs(half)
  local busy = start_runs(concurrent - half)
  put("agent.concurrent_runs", concurrent)
  put("agent.concurrent.rss_kib", busy.rss)
  put("agent.concurrent.private_dirty_kib", busy.private_dirty)
  put("agent.per_run.rss_kib", (busy.rss - first.rss) / (concurrent - half))
  put("agent.per_run.private_dirty_kib", (busy.private_dirty - first.private_dirty) / (concurrent - half))
  for _, id in ipairs(ids) do hub:post("/v1/runs/" .. id .. "/cancel") end
  for _, id in ipairs(ids) do wait_done(hub, id) end
  timer.sleep(3000)
  local after = memory(agent.pid)
  put("agent.idle_after.rss_kib", after.rss)
  put("agent.idle_after.private_dirty_kib", after.private_dirty)
  agent:cleanup()
  hub:cleanup()
end

function benches.hubmem()
  local n = size("POLL_AGENTS", 1000)
  local floor = run_program(q(BENCH_BIN .. "/floor_hub"))
  put("floor.hub.rss_kib", floor.rss_kib)
  put("floor.hub.private_dirty_kib", floor.private_dirty_kib)
  local hub = new_hub("bench-hubmem")
  timer.sleep(500)
  local idle = memory(hub.pid)
  put("hub.idle.rss_kib", idle.rss)
  put("hub.idle.private_dirty_kib", idle.private_dirty)
  local key = hub:make_key("agent")
  local agents, polls = {}, {}
  for i = 1, n do agents[i] = hub:agent { key = key, capacity = 1 } end
  for i, a in ipairs(agents) do
    polls[i] = hub:async("GET", a:path("/work?wait=60"), { key = a.token })
  end
  assert(hubtest.wait_for(function() return metric(hub, "hangar_long_polls_open") >= n end, 60000, 100),
    "the polls did not all arrive")
  timer.sleep(500)
  local busy = memory(hub.pid)
  put("hub.polling_agents", n)
  put("hub.polling.rss_kib", busy.rss)
  put("hub.polling.private_dirty_kib", busy.private_dirty)
  put("hub.per_agent.private_dirty_kib", (busy.private_dirty - idle.private_dirty) / n)
  hub:cleanup()
  for _, p in ipairs(polls) do pcall(async.await, p) end
end

local which = { ... }
if #which == 0 then which = { "dispatch", "throughput", "memory", "hubmem" } end
for _, name in ipairs(which) do
  assert(benches[name], "unknown benchmark " .. name)
  local ok, err = xpcall(benches[name], debug.traceback)
  if not ok then
    for _, thing in ipairs(started) do pcall(thing.cleanup, thing) end
    error(err, 0)
  end
  started = {}
end
