-- Starts tests/helpers/faultproxy.py from busted specs: a loopback TCP proxy in front of a hub
-- that resets, stalls, drip-feeds, truncates and refuses connections from a fixed seed for a
-- bounded window, then passes everything through.
--
--   local faultproxy = require "faultproxy"
--   local fp = faultproxy.start{ target = hub.port, seed = 7, window = 20,
--                                reset = 0.1, stall = 0.05, stall_ms = "200-800" }
--   ... point the agent at fp.url ...
--   fp:mode("hold")  fp:mode("clean")  fp:mode("faults")   -- through the control file
--   fp:signal("USR1")                                      -- faults off (USR2: on)
--   local s = fp:stats()   -- { connections=, struck={reset=,...}, bytes_up=, in_window=, ... }
--   fp:events()            -- the proxy's JSON-lines log, decoded
--   fp:stop()
--
-- Options map to the proxy's flags: seed, window, reset, stall, delay, close, refuse (rates),
-- at, down, stall_ms, delay_span, delay_chunk, delay_ms, refuse_ms (ranges as "MIN-MAX" or a
-- number). The proxy exits when this Lua state goes (its stdin closes with the process object).
local process = require "hangar.process"
local timer = require "hangar.timer"
local json = require "hangar.json"
local testutil = require "testutil"

local faultproxy = {}

faultproxy.script = testutil.SRC .. "/tests/helpers/faultproxy.py"

local FLAGS = {
  seed = "--seed", window = "--window", reset = "--reset", stall = "--stall", delay = "--delay",
  close = "--close", refuse = "--refuse", at = "--at", down = "--down", stall_ms = "--stall-ms",
  delay_span = "--delay-span", delay_chunk = "--delay-chunk", delay_ms = "--delay-ms",
  refuse_ms = "--refuse-ms",
}

local slurp = testutil.slurp

-- Whole or not at all: the proxy reads the file while it may be being written.
local function write(path, text)
  assert(os.rename(testutil.write(path .. ".tmp", text), path))
end

local Proxy = {}
Proxy.__index = Proxy

--- Builds the argument list for opts (also used to run --plan-only).
function faultproxy.argv(opts)
  local target = opts.target
  if type(target) == "number" then
    target = "127.0.0.1:" .. target
  end
  local argv = { "python3", "-u", faultproxy.script, "--target", (assert(target, "target is required")) }
  local names = {}
  for k in pairs(FLAGS) do
    names[#names + 1] = k
  end
  table.sort(names)
  for _, k in ipairs(names) do
    if opts[k] ~= nil then
      argv[#argv + 1] = FLAGS[k]
      argv[#argv + 1] = tostring(opts[k])
    end
  end
  if opts["repeat"] == false then
    argv[#argv + 1] = "--no-repeat"
  end
  return argv
end

--- Starts a proxy; returns it once it listens. Raises when it cannot start.
function faultproxy.start(opts)
  local dir = testutil.tmpdir("faultproxy")
  local self = setmetatable({ dir = dir, ready = dir .. "/ready", stats_path = dir .. "/stats.json",
                              log_path = dir .. "/log.jsonl", control = dir .. "/control",
                              out = dir .. "/out" }, Proxy)
  local argv = faultproxy.argv(opts)
  for _, a in ipairs({ "--ready-file", self.ready, "--stats", self.stats_path, "--log", self.log_path,
                       "--control", self.control, "--exit-with-stdin" }) do
    argv[#argv + 1] = a
  end
  for _, a in ipairs(opts.extra or {}) do
    argv[#argv + 1] = a
  end
  self.proc = assert(process.spawn {
    argv = argv,
    env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" },
    stdin = true,
    stderr = "capture",
  })
  local deadline = timer.monotonic() + 15000
  while timer.monotonic() < deadline do
    local text = slurp(self.ready)
    if text and text:match("\n$") then
      self.port = tonumber(text:match(":(%d+)"))
      self.url = "http://127.0.0.1:" .. self.port
      return self
    end
    if self.proc:done() then
      local r = self.proc:wait()
      error("faultproxy.py exited at start: " .. tostring(r.stderr), 2)
    end
    timer.sleep(20)
  end
  error("faultproxy.py did not start listening within 15 s", 2)
end

--- Runs the proxy's --plan-only N for opts: the plans of connections 1..N (decoded).
function faultproxy.plans(opts, n)
  local argv = faultproxy.argv(opts)
  argv[#argv + 1] = "--plan-only"
  argv[#argv + 1] = tostring(n)
  local p = assert(process.spawn { argv = argv, env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" },
                                   stdout = "capture", stderr = "capture" })
  local r = p:wait()
  assert(r.exit_code == 0, "faultproxy.py --plan-only failed: " .. tostring(r.stderr))
  local out = {}
  for line in r.stdout:gmatch("[^\n]+") do
    out[#out + 1] = json.decode(line)
  end
  return out
end

--- The counters as the proxy last wrote them (written at most 50 ms after a change).
function Proxy:stats()
  local text = slurp(self.stats_path)
  return text and json.decode(text) or {}
end

--- Waits (bounded) until fn(stats) holds; returns the stats, or nil when time ran out.
function Proxy:wait_stats(fn, timeout_ms)
  local deadline = timer.monotonic() + (timeout_ms or 15000)
  repeat
    local s = self:stats()
    if s.connections and fn(s) then
      return s
    end
    timer.sleep(25)
  until timer.monotonic() > deadline
end

--- The proxy's log so far: one table per plan, fault, mode change and connection end.
function Proxy:events()
  local out = {}
  for line in (slurp(self.log_path) or ""):gmatch("[^\n]+") do
    out[#out + 1] = json.decode(line)
  end
  return out
end

--- Sets the mode through the control file ("faults", "clean" or "hold") and waits until the
--- proxy reports it.
function Proxy:mode(word)
  write(self.control, word .. "\n")
  local s = self:wait_stats(function(s)
    return s.mode == word
  end)
  assert(s, "the proxy did not switch to mode " .. word)
end

--- Sends a signal by name (USR1: faults off, USR2: faults on, TERM: exit).
function Proxy:signal(name)
  self.proc:signal(name)
end

--- Stops the proxy (closes its stdin) and removes its directory; returns its exit status.
function Proxy:stop(keep)
  local r
  if self.proc then
    self.proc:close_stdin()
    local deadline = timer.monotonic() + 10000
    while not self.proc:done() and timer.monotonic() < deadline do
      timer.sleep(20)
    end
    if not self.proc:done() then
      self.proc:kill(500)
    end
    r = self.proc:wait()
    self.proc = nil
  end
  if not keep then
    testutil.remove(self.dir)
  end
  return r
end

return faultproxy
