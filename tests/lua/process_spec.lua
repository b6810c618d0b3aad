-- hangar.process: spawning with an exact environment, capturing or sinking output, stdin,
-- exit status, signals, kill with a grace, and cleanup of abandoned children.
local process = require "hangar.process"
local sink = require "hangar.sink"
local task = require "hangar.task"
local timer = require "hangar.timer"
local testutil = require "testutil"

local PATH = os.getenv("PATH")

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

describe("hangar.process", function()
  it("reports the exit code and captures both streams", function()
    local p = assert(process.spawn {
      argv = { "/bin/sh", "-c", "echo out; echo err >&2; exit 3" },
      stdout = "capture",
      stderr = "capture",
    })
    local r = p:wait()
    assert.equal(3, r.exit_code)
    assert.equal(0, r.signal)
    assert.equal("out\n", r.stdout)
    assert.equal("err\n", r.stderr)
    assert.is_true(p:done())
    -- Waiting again gives the same result.
    assert.equal(3, p:wait().exit_code)
  end)

  it("gives the child exactly the environment it was given", function()
    local p = assert(process.spawn {
      argv = { "/bin/sh", "-c", 'echo "home=$HOME token=$TOKEN"' },
      env = { TOKEN = "t-1" },
      stdout = "capture",
    })
    assert.equal("home= token=t-1\n", p:wait().stdout)
  end)

  it("finds the program in the given PATH only, and runs in cwd", function()
    local p = assert(process.spawn { argv = { "pwd" }, env = { PATH = PATH }, cwd = "/", stdout = "capture" })
    assert.equal("/\n", p:wait().stdout)
    local none, err = process.spawn { argv = { "pwd" }, env = {} }
    assert.is_nil(none)
    assert.matches("cannot start 'pwd'", err)
    none, err = process.spawn { argv = { "/bin/true" }, cwd = "/no/such/dir" }
    assert.is_nil(none)
    assert.is_string(err)
  end)

  it("feeds stdin", function()
    local p = assert(process.spawn { argv = { "/bin/cat" }, stdin = true, stdout = "capture" })
    assert.is_true(p:write("one "))
    assert.is_true(p:write("two"))
    assert.is_true(p:close_stdin())
    assert.equal("one two", p:wait().stdout)
  end)

  it("sends output to a sink, both streams to one if asked", function()
    local buf = sink.buffer()
    local p = assert(process.spawn {
      argv = { "/bin/sh", "-c", "echo a; sleep 0.05; echo b >&2; sleep 0.05; echo c" },
      stdout = buf,
      stderr = buf,
    })
    local r = p:wait()
    assert.is_nil(r.stdout)
    assert.equal("a\nb\nc\n", buf:contents())
  end)

  it("kills the process group: SIGTERM, then SIGKILL after the grace", function()
    local p = assert(process.spawn { argv = { "/bin/sleep", "30" } })
    assert.is_true(p:kill(2000))
    local r = p:wait()
    assert.equal(-1, r.exit_code)
    assert.equal(15, r.signal)
    -- A shell that ignores TERM, and a child of it that does too (ignoring is inherited): only
    -- a SIGKILL to the whole group ends both.
    local out = sink.buffer()
    local stubborn = assert(process.spawn {
      argv = { "/bin/sh", "-c", "trap '' TERM; sleep 30 & echo ready $!; while :; do sleep 0.05; done" },
      stdout = out,
    })
    local child
    while not child do
      child = out:contents():match("ready (%d+)\n")
      if not child then timer.sleep(10) end
    end
    assert.is_true(stubborn:kill(100))
    assert.equal(9, stubborn:wait().signal)
    assert.is_true(testutil.wait_gone(child, 5000), "the shell's child (pid " .. child .. ") outlived the kill")
  end)

  it("sends signals by name or number", function()
    -- Signalled once its trap is set (it says so), however slow the machine.
    local out = sink.buffer()
    local p = assert(process.spawn {
      argv = { "/bin/sh", "-c", "trap 'echo got-hup; exit 0' HUP; echo ready; while :; do sleep 0.05; done" },
      stdout = out,
    })
    while not out:contents():find("ready\n", 1, true) do
      timer.sleep(10)
    end
    assert.is_true(p:signal("HUP"))
    local r = p:wait()
    assert.equal(0, r.exit_code)
    assert.matches("got%-hup", out:contents())
    local nil_, err = p:signal("TERM")
    assert.is_nil(nil_)
    assert.is_string(err)
    assert.has_error(function() p:signal("NOPE") end)
  end)

  it("kills a child whose object is closed or collected", function()
    local pid
    do
      local p <close> = assert(process.spawn { argv = { "/bin/sleep", "30" } })
      pid = p:pid()
      assert.is_true(alive(pid))
    end
    timer.sleep(100)
    assert.is_false(alive(pid))
    pid = assert(process.spawn { argv = { "/bin/sleep", "30" } }):pid()
    collectgarbage()
    collectgarbage()
    timer.sleep(100)
    assert.is_false(alive(pid))
  end)

  it("lets several tasks wait for one process", function()
    local p = assert(process.spawn { argv = { "/bin/sh", "-c", "sleep 0.1; exit 7" } })
    local a = task.spawn(function() return p:wait().exit_code end)
    local b = task.spawn(function() return p:wait().exit_code end)
    assert.equal(7, a:wait())
    assert.equal(7, b:wait())
  end)

  it("raises on misuse", function()
    assert.has_error(function() process.spawn {} end)
    assert.has_error(function() process.spawn { argv = {} } end)
    assert.has_error(function() process.spawn { argv = { "/bin/true" }, env = { A = {} } } end)
    assert.has_error(function() process.spawn { argv = { "/bin/true" }, stdout = "file" } end)
    local p = assert(process.spawn { argv = { "/bin/true" } })
    assert.has_error(function() p:write("x") end) -- no stdin pipe
    p:wait()
  end)
end)
