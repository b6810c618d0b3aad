-- Where a dispatch's time goes: bench_agent.lua's dispatch benchmark, run under `perf record`
-- of the agent's vfork, splits each run's "POST /v1/runs -> the no-op's main" at the moment
-- the agent spawned the process:
--
--   POST -> vfork     the client's request, the hub, the work poll's answer and the accept,
--                     the agent's own work: what Hangar adds
--   vfork -> running  the child's exec and the no-op's start-up: what the floor (fork + exec
--                     of the same program, measured in the same run) stands for
--
-- The bench's clock and perf's agree (perf records CLOCK_MONOTONIC), so the split needs no
-- change to the hub or the agent. Needs perf (Debian: linux-perf) and the right to trace
-- system calls (root, or kernel.perf_event_paranoid <= 1). Not part of bench/run.
--
--   HANGAR_SOURCE_DIR=$PWD HANGAR_BIN=build-release/hangar HANGAR_BENCH_BIN=build-release/bench \
--     build-release/hangar lua bench/split_dispatch.lua [ROUNDS]
--
-- DISPATCH_RUNS (default 300) runs a round. Prints one line a round: the split's quartiles,
-- and the bench's own p50 and floor beside them.
local SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN (the hangar to measure) is not set")

local function q(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

local function quartiles(list)
  table.sort(list)
  local function at(p)
    return list[math.max(1, math.ceil(p * #list))]
  end
  return at(0.25), at(0.5), at(0.75)
end

local function round(dir)
  local data, times = dir .. "/perf.data", dir .. "/times"
  local cmd = ("DISPATCH_RUNS=%d DISPATCH_TIMES=%s perf record -q -a -k CLOCK_MONOTONIC"
    .. " -e syscalls:sys_enter_vfork -o %s -- %s lua %s dispatch 2>&1"):format(
    math.tointeger(tonumber(os.getenv("DISPATCH_RUNS") or "")) or 300, q(times), q(data), q(BIN),
    q(SRC .. "/bench/bench_agent.lua"))
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  local ok = p:close()
  if not ok then
    error("the dispatch benchmark under perf failed:\n" .. out, 0)
  end
  local figures = {}
  for name, value in out:gmatch("(%S+) (%-?[%d.]+)\n") do
    figures[name] = tonumber(value)
  end
  -- The vfork calls, in order (seconds with nanoseconds).
  local forks = {}
  p = assert(io.popen(("perf script --ns -i %s -F time 2>&1"):format(q(data))))
  local text = {}
  for line in p:lines() do
    local s, ns = line:match("(%d+)%.(%d+):")
    if s then
      forks[#forks + 1] = tonumber(s) * 1000000000 + tonumber(ns)
    else
      text[#text + 1] = line
    end
  end
  if not p:close() then
    error("perf script could not read " .. data .. ":\n" .. table.concat(text, "\n"), 0)
  end
  local runs = {}
  for line in io.lines(times) do
    local t0, started = line:match("^(%d+) (%d+)$")
    runs[#runs + 1] = { math.tointeger(tonumber(t0)), math.tointeger(tonumber(started)) }
  end
  table.sort(runs, function(a, b) return a[1] < b[1] end)
  -- Each run's spawn is the last vfork between its POST and its start.
  local before, after, k = {}, {}, 1
  for _, r in ipairs(runs) do
    while k <= #forks and forks[k] < r[1] do
      k = k + 1
    end
    local spawn
    while k <= #forks and forks[k] <= r[2] do
      spawn = forks[k]
      k = k + 1
    end
    if spawn then
      before[#before + 1] = (spawn - r[1]) / 1e3
      after[#after + 1] = (r[2] - spawn) / 1e3
    end
  end
  assert(#before > 0, "no vfork of the agent fell between a run's POST and its start")
  local b25, b50, b75 = quartiles(before)
  local a25, a50, a75 = quartiles(after)
  print(("POST -> vfork p50 %.0f us (quartiles %.0f-%.0f) | vfork -> running p50 %.0f us (%.0f-%.0f)"
    .. " | bench p50 %.0f us, floor %.0f us | %d of %d runs"):format(b50, b25, b75, a50, a25, a75,
    figures["dispatch.to_running.p50_us"] or 0, figures["floor.spawn_to_running.p50_us"] or 0,
    #before, #runs))
  io.stdout:flush()
end

local rounds = math.tointeger(tonumber(arg and arg[1] or "")) or 1
for _ = 1, rounds do
  local mk = assert(io.popen("mktemp -d"))
  local dir = assert(mk:read("l"), "mktemp -d made no directory")
  mk:close()
  local ok, err = pcall(round, dir)
  os.execute("rm -rf " .. q(dir))
  if not ok then
    io.stderr:write("split_dispatch: ", tostring(err), "\n")
    os.exit(1)
  end
end
