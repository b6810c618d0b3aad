-- The async bridge end to end: one coroutine makes an HTTP request, runs a process and
-- sleeps, each written as a plain call, and other tasks keep running meanwhile.
local http = require "hangar.http"
local process = require "hangar.process"
local timer = require "hangar.timer"
local task = require "hangar.task"
local loopback = require "loopback"

describe("the async bridge", function()
  local dir, server

  setup(function()
    dir = loopback.tmpdir("bridge")
    local f = assert(io.open(dir .. "/greeting.txt", "w"))
    f:write("hello from the server\n")
    f:close()
    server = loopback.file_server(dir)
  end)

  teardown(function()
    if server then server.stop() end
    loopback.remove(dir)
  end)

  it("requests, spawns and sleeps in straight lines inside one task", function()
    local steps = {}
    local t = task.spawn(function()
      local res = assert(http.request { url = server.url .. "/greeting.txt" })
      steps[#steps + 1] = "http"
      local p = assert(process.spawn {
        argv = { "/bin/sh", "-c", 'printf "%s" "$BODY" | tr a-z A-Z' },
        env = { BODY = res.body, PATH = os.getenv("PATH") },
        stdout = "capture",
      })
      local r = p:wait()
      steps[#steps + 1] = "process"
      local t0 = timer.monotonic()
      timer.sleep(100)
      steps[#steps + 1] = "sleep"
      return res.status, r.exit_code, r.stdout, timer.monotonic() - t0
    end)
    local status, code, upper, slept = t:wait()
    assert.equal(200, status)
    assert.equal(0, code)
    assert.equal("HELLO FROM THE SERVER\n", upper)
    assert.is_true(slept >= 90)
    assert.same({ "http", "process", "sleep" }, steps)
  end)

  it("does the same outside a task, blocking the caller only", function()
    local res = assert(http.request { url = server.url .. "/greeting.txt" })
    local r = process.spawn({ argv = { "/bin/cat" }, stdin = true, stdout = "capture" })
    r:write(res.body)
    r:close_stdin()
    timer.sleep(10)
    assert.equal("hello from the server\n", r:wait().stdout)
  end)

  it("keeps other tasks running while one waits", function()
    local order = {}
    local waiter = task.spawn(function()
      -- Long enough for three loopback fetches on a busy machine.
      local p = assert(process.spawn { argv = { "/bin/sleep", "2" } })
      p:wait()
      order[#order + 1] = "process done"
    end)
    local fetcher = task.spawn(function()
      for _ = 1, 3 do
        assert(http.request { url = server.url .. "/greeting.txt" })
        order[#order + 1] = "fetched"
      end
    end)
    waiter:wait()
    fetcher:wait()
    assert.same({ "fetched", "fetched", "fetched", "process done" }, order)
  end)
end)
