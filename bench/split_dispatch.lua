-- Where a dispatch's time goes: bench_agent.lua's dispatch benchmark, run under `perf record`
-- of the agent's vfork and of every exec, splits each run's "POST /v1/runs -> the no-op's
-- main" at the moment the agent spawned the process and at the moment the kernel had loaded
-- the program:
--
--   POST -> vfork     the client's request, the hub, the work poll's answer and the accept,
--                     the agent's own work: what Hangar adds
--   vfork -> exec     the child's set-up before its exec (signals, session, stdio, directory)
--                     and the exec itself
--   exec -> running   the program's own start-up (its loader and libc), up to its main
--
-- The last two are what the floor (fork + exec of the same program, measured in the same
-- run) stands for; the floor's own fork -> exec, recorded the same way, is printed beside them.
--
-- The bench's clock and perf's agree (perf records CLOCK_MONOTONIC), so the split needs no
-- change to the hub or the agent. Needs perf (Debian: linux-perf) and the right to trace
-- system calls (root, or kernel.perf_event_paranoid <= 1). Not part of bench/run.
--
--   HANGAR_SOURCE_DIR=$PWD HANGAR_BIN=build-release/hangar HANGAR_BENCH_BIN=build-release/bench \
--     build-release/hangar lua bench/split_dispatch.lua [ROUNDS]
--
-- DISPATCH_RUNS (default 300) runs a round, the floor's taking turns with them as in
-- bench_agent.lua. Prints one line a round: the split's p50 and quartiles, and the bench's own
-- p50 and floor beside them.
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
    .. " -e syscalls:sys_enter_vfork -e syscalls:sys_enter_clone -e sched:sched_process_exec"
    .. " -o %s -- %s lua %s dispatch 2>&1"):format(
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
  -- The agent's vforks, the floor's forks and the no-op's execs, each in order (seconds with
  -- nanoseconds). Only the agent (and the bench's client, which starts processes before the
  -- runs) is called hangar; floor_spawn forks with clone.
  local forks, floor_forks, execs = {}, {}, {}
  p = assert(io.popen(("perf script --ns -i %s -F comm,time,event,trace 2>&1"):format(q(data))))
  local text = {}
  for line in p:lines() do
    local comm, s, ns, event = line:match("^%s*(%S+)%s+(%d+)%.(%d+):%s+(%S+)")
    local t = s and tonumber(s) * 1000000000 + tonumber(ns)
    if event == "syscalls:sys_enter_vfork:" then
      if comm == "hangar" then forks[#forks + 1] = t end
    elseif event == "syscalls:sys_enter_clone:" then
      if comm == "floor_spawn" then floor_forks[#floor_forks + 1] = t end
    elseif event == "sched:sched_process_exec:" then
      if line:find("bench_noop", 1, true) then execs[#execs + 1] = t end
    elseif not event then
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
  -- Each run's spawn is the last vfork between its POST and its start, and its exec the last
  -- exec of the no-op between that vfork and the start.
  local function last_in(list, k, from, to)
    while k <= #list and list[k] < from do
      k = k + 1
    end
    local found
    while k <= #list and list[k] <= to do
      found = list[k]
      k = k + 1
    end
    return found, k
  end
  local before, setup, after = {}, {}, {}
  local k, e = 1, 1
  for _, r in ipairs(runs) do
    local spawn, exec
    spawn, k = last_in(forks, k, r[1], r[2])
    if spawn then
      exec, e = last_in(execs, e, spawn, r[2])
    end
    if exec then
      before[#before + 1] = (spawn - r[1]) / 1e3
      setup[#setup + 1] = (exec - spawn) / 1e3
      after[#after + 1] = (r[2] - exec) / 1e3
    end
  end
  assert(#before > 0,
    "no vfork of the agent and exec of the no-op fell between a run's POST and its start")
  -- The floor first starts its runs one at a time: each fork's exec is the first after it.
  local floor_setup = {}
  e = 1
  for i = 1, math.min(#floor_forks, #runs) do
    while e <= #execs and execs[e] < floor_forks[i] do
      e = e + 1
    end
    if e <= #execs and (i == #floor_forks or execs[e] < floor_forks[i + 1]) then
      floor_setup[#floor_setup + 1] = (execs[e] - floor_forks[i]) / 1e3
    end
  end
  local function q3(list)
    local a, b, c = quartiles(list)
    return ("p50 %.0f us (%.0f-%.0f)"):format(b, a, c)
  end
  local floor_exec = #floor_setup > 0 and select(2, quartiles(floor_setup)) or 0
  print(("POST -> vfork %s | vfork -> exec %s | exec -> running %s | bench p50 %.0f us,"
    .. " floor %.0f us (its fork -> exec %.0f us) | %d of %d runs"):format(q3(before), q3(setup),
    q3(after), figures["dispatch.to_running.p50_us"] or 0,
    figures["floor.spawn_to_running.p50_us"] or 0, floor_exec, #before, #runs))
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
