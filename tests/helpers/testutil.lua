-- What the test helpers and specs share: where the binary, the sources and the scratch space
-- are, shell quoting, reading and writing files, fresh directories, waiting for a condition,
-- and starting, stopping and checking background processes. Runs inside `hangar lua`.
--
--   local testutil = require "testutil"
--   local dir = testutil.tmpdir("case")
--   testutil.write(dir .. "/a.key", key .. "\n", "600")
--   local pid = testutil.spawn_bg({ testutil.BIN, "hub", "serve", ... }, dir .. "/hub.log")
--   testutil.wait_for(function() return testutil.slurp(dir .. "/ready") end, 15000)
--   testutil.stop_pid(pid, 10000); testutil.remove(dir)
local timer = require "hangar.timer"
local crypto = require "hangar.crypto"
local process = require "hangar.process"

local testutil = {}

--- The hangar binary under test, the source tree, and where tests may write.
testutil.BIN = os.getenv("HANGAR_BIN")
testutil.SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
testutil.TMP = os.getenv("HANGAR_TEST_TMP") or "/tmp"

--- The build tree: where the hangar binary (and the example plugins' modules) were built.
function testutil.build_dir()
  return (testutil.BIN or ""):match("^(.*)/[^/]+$") or "."
end

--- s quoted for the shell.
function testutil.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
local q = testutil.q

--- The whole file, or nil when it cannot be read.
function testutil.slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("a")
  f:close()
  return s
end
local slurp = testutil.slurp

--- Writes text to path (chmod mode when given, e.g. "600"); returns path.
function testutil.write(path, text, mode)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  if mode then
    os.execute("chmod " .. mode .. " " .. q(path))
  end
  return path
end

--- Runs a shell command; returns its exit code and its output (stdout and stderr).
function testutil.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

--- Runs argv to its end with exactly the environment env (nothing of this process's), in cwd
--- when given, stdin from /dev/null; returns its exit code, stdout and stderr.
function testutil.run(argv, env, cwd)
  local p = assert(process.spawn { argv = argv, env = env, cwd = cwd, stdout = "capture", stderr = "capture" })
  local r = p:wait()
  p:close()
  return r.exit_code, r.stdout, r.stderr
end

--- A fresh directory under HANGAR_TEST_TMP, named after name.
function testutil.tmpdir(name)
  local dir = ("%s/%s-%d-%s"):format(testutil.TMP, name or "test", os.time(), crypto.hex_encode(crypto.random(4)))
  assert(os.execute("mkdir -p " .. q(dir)))
  return dir
end

--- Removes dir and all below it, unless HANGAR_TEST_KEEP is set (to look at it afterwards).
function testutil.remove(dir)
  if not os.getenv("HANGAR_TEST_KEEP") then
    os.execute("rm -rf " .. q(dir))
  end
end

--- Sleeps ms milliseconds; other tasks (pending requests) run meanwhile.
function testutil.sleep(ms)
  timer.sleep(ms)
end

--- Waits until fn() returns a true value, polling every step ms for at most timeout ms; returns
--- that value, or nil when the time ran out.
function testutil.wait_for(fn, timeout, step)
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

-- ---- background processes ----

--- Seconds of CPU (user and system) process pid (or "self") used so far; nil when it is gone.
function testutil.cpu_seconds(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  if not stat then
    return nil
  end
  -- utime and stime are fields 14 and 15, in clock ticks (100 a second on Linux); the command
  -- name before them may hold spaces, so count from its closing parenthesis.
  local fields = {}
  for v in stat:match("%) (.*)$"):gmatch("%S+") do
    fields[#fields + 1] = v
  end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

--- Whether pid runs. A process that exited but was not reaped yet (started in the background,
--- it is not our child: whoever reaps it may take its time) counts as gone -- once all its
--- threads are: a killed process's first thread turns zombie while the others may still be
--- finishing a system call (an fsync), holding its files and locks open.
function testutil.alive(pid)
  local stat = slurp("/proc/" .. pid .. "/stat")
  if not stat then
    return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
  end
  if stat:match("%) (%a)") ~= "Z" then
    return true
  end
  local threads = tonumber((slurp("/proc/" .. pid .. "/status") or ""):match("\nThreads:%s*(%d+)"))
  return threads ~= nil and threads > 1
end

--- Waits (at most ms, default 10 s) until pid is gone; true when it is.
function testutil.wait_gone(pid, ms)
  return testutil.wait_for(function()
    return not testutil.alive(pid)
  end, ms or 10000, 20)
end

--- Starts argv (a list of words) in the background with env (extra variables) added to this
--- process's environment, stdout and stderr appended to log_path, stdin from /dev/null.
--- Returns its pid.
function testutil.spawn_bg(argv, log_path, env)
  local parts = { "env" }
  for k, v in pairs(env or {}) do
    parts[#parts + 1] = k .. "=" .. q(v)
  end
  for _, a in ipairs(argv) do
    parts[#parts + 1] = q(a)
  end
  local cmd = table.concat(parts, " ") .. " >>" .. q(log_path) .. " 2>&1 </dev/null & echo $!"
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  return assert(pid, "could not start " .. tostring(argv[1]))
end

--- SIGTERM, then waits up to timeout_ms for pid to exit (SIGKILL after that). True when it
--- exited by itself.
function testutil.stop_pid(pid, timeout_ms)
  os.execute("kill -TERM " .. pid .. " 2>/dev/null")
  local clean = testutil.wait_gone(pid, timeout_ms)
  if not clean then
    testutil.kill_pid(pid)
  end
  return clean and true or false
end

--- SIGKILL, and waits until pid is gone.
function testutil.kill_pid(pid)
  os.execute("kill -KILL " .. pid .. " 2>/dev/null")
  testutil.wait_gone(pid, 5000)
end

--- Raises when log (a process's output) holds a sanitizer report (builds with
--- HANGAR_SANITIZE); who names the process in the message ("the hub").
function testutil.check_sanitizers(log, who)
  for _, mark in ipairs({ "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:" }) do
    local at = log:find(mark, 1, true)
    if at then
      error(who .. "'s log has a sanitizer report:\n" .. log:sub(math.max(1, at - 200), at + 3000), 0)
    end
  end
end

--- Removes dir (testutil.remove) once its process has stopped, then raises when the process's
--- log held a sanitizer report (testutil.check_sanitizers).
function testutil.finish(dir, log, who)
  local ok, err = pcall(testutil.check_sanitizers, log, who)
  testutil.remove(dir)
  if not ok then
    error(err, 0)
  end
end

return testutil
