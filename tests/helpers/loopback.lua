-- Loopback servers for busted specs, started through hangar.process so a spec exercises the
-- real modules: a static file server (python3 -m http.server) and the HTTP client's test
-- server (tests/helpers/testhttpd.py). Each binds 127.0.0.1 on a port the kernel picks.
local process = require "hangar.process"
local timer = require "hangar.timer"
local sink = require "hangar.sink"
local testutil = require "testutil"

local loopback = {}

local function env()
  return { PATH = os.getenv("PATH") or "/usr/bin:/bin" }
end

-- Waits until the server printed something matching pattern; returns the capture.
local function wait_for_output(out, proc, pattern, what)
  local deadline = timer.monotonic() + 15000
  while timer.monotonic() < deadline do
    local found = out:contents():match(pattern)
    if found then
      return found
    end
    if proc:done() then
      error(what .. " exited early: " .. out:contents(), 2)
    end
    timer.sleep(20)
  end
  error(what .. " did not start within 15 s: " .. out:contents(), 2)
end

--- A fresh directory under HANGAR_TEST_TMP (removed by loopback.remove).
loopback.tmpdir = testutil.tmpdir
loopback.remove = testutil.remove

--- Serves dir with python3 -m http.server. Returns { url = "http://127.0.0.1:P", stop = fn }.
function loopback.file_server(dir)
  local out = sink.buffer()
  local proc = assert(process.spawn {
    argv = { "python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", dir },
    env = env(),
    stdout = out,
    stderr = out,
  })
  local port = wait_for_output(out, proc, "port (%d+)", "python3 -m http.server")
  return {
    url = "http://127.0.0.1:" .. port,
    proc = proc,
    stop = function()
      proc:kill(1000)
      proc:wait()
    end,
  }
end

--- Starts tests/helpers/testhttpd.py (echo, status, headers, bytes, chunked, gated, stall).
--- It exits when its stdin closes, which stop() does.
function loopback.test_server()
  local out = sink.buffer()
  local proc = assert(process.spawn {
    argv = { "python3", "-u", testutil.SRC .. "/tests/helpers/testhttpd.py" },
    env = env(),
    stdout = out,
    stderr = out,
    stdin = true,
  })
  local port = wait_for_output(out, proc, "http=(%d+)", "testhttpd.py")
  return {
    url = "http://127.0.0.1:" .. port,
    proc = proc,
    stop = function()
      proc:close_stdin()
      local r = proc:wait()
      return r
    end,
  }
end

return loopback
