-- The bundled local scheduler on its own: a process per run with exactly the run's
-- environment, in the run's work directory and its own process group, output into the run's
-- sinks; exit codes, signals, cancel with a grace, cleanup.
local scheduler = require "hangar.schedulers.local"
local sink = require "hangar.sink"
local timer = require "hangar.timer"
local testutil = require "testutil"

local TMP = os.getenv("HANGAR_TEST_TMP") or "/tmp"

local n = 0
local function context(env)
  n = n + 1
  local dir = ("%s/local-sched-%d-%d"):format(TMP, os.time(), n)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return {
    run_id = "run_" .. n,
    workdir = dir,
    env = env or { PATH = "/usr/bin:/bin", HOME = dir },
    stdout = sink.buffer(),
    stderr = sink.buffer(),
    settings = {},
  }
end

local function run_doc(script, extra)
  local task = { slug = "t", command = { "/bin/sh", "-c", script } }
  for k, v in pairs(extra or {}) do task[k] = v end
  return { id = "run", task = task }
end

describe("the local scheduler", function()
  it("validates its settings", function()
    assert.truthy(scheduler.configure({ kill_grace_s = 3 }))
    local ok, err = scheduler.configure({ kill_grace_s = -1 })
    assert.is_nil(ok)
    assert.truthy(err:find("kill_grace_s", 1, true), err)
    ok, err = scheduler.configure({ kill_grace = 1 })
    assert.is_nil(ok)
    assert.truthy(err:find("unknown key", 1, true), err)
  end)

  it("runs the command with exactly the given environment, in the work directory", function()
    local ctx = context({ PATH = "/usr/bin:/bin", ONLY = "this" })
    local run = run_doc('env | sort; pwd; echo oops >&2; exit 7')
    local handle = assert(scheduler.start(run, ctx))
    assert.truthy(handle.pid > 0)
    local result = scheduler.wait(run, handle, ctx)
    scheduler.cleanup(run, handle, ctx)
    assert.same({ exit_code = 7 }, result)
    local out = ctx.stdout:contents()
    assert.truthy(out:find("ONLY=this\n", 1, true), out)
    assert.falsy(out:find("HOME=", 1, true), out)
    assert.truthy(out:find(ctx.workdir .. "\n", 1, true), out)
    assert.equal("oops\n", ctx.stderr:contents())
  end)

  it("runs a task's relative workdir inside the run's directory", function()
    local ctx = context()
    os.execute("mkdir -p '" .. ctx.workdir .. "/sub'")
    local run = run_doc("pwd", { workdir = "sub" })
    local handle = assert(scheduler.start(run, ctx))
    assert.same({ exit_code = 0 }, scheduler.wait(run, handle, ctx))
    scheduler.cleanup(run, handle, ctx)
    assert.equal(ctx.workdir .. "/sub\n", ctx.stdout:contents())
  end)

  it("reports a run killed by a signal", function()
    local ctx = context()
    local run = run_doc("kill -9 $$")
    local handle = assert(scheduler.start(run, ctx))
    assert.same({ error = "killed by signal 9" }, scheduler.wait(run, handle, ctx))
    scheduler.cleanup(run, handle, ctx)
  end)

  it("cancels the whole process group: SIGTERM, then SIGKILL after the grace", function()
    local ctx = context()
    -- The shell ignores TERM, and so does its child; the child would outlive signals sent to
    -- the shell alone.
    local run = run_doc("trap '' TERM; sleep 30 & echo started $!; wait")
    local handle = assert(scheduler.start(run, ctx))
    local child
    while not child do
      child = ctx.stdout:contents():match("started (%d+)\n")
      if not child then timer.sleep(10) end
    end
    local t0 = timer.monotonic()
    scheduler.cancel(run, handle, ctx, 0.3)
    local result = scheduler.wait(run, handle, ctx)
    scheduler.cleanup(run, handle, ctx)
    assert.truthy(result.error and result.error:match("^killed by signal"), result.error)
    assert.truthy(timer.monotonic() - t0 >= 250)
    assert.is_nil(io.open("/proc/" .. handle.pid .. "/stat"))
    -- SIGKILL reached the child too; it may take a moment to be gone.
    assert.is_true(testutil.wait_gone(child, 5000), "the run's child (pid " .. child .. ") outlived the cancel")
  end)

  it("refuses a task without a command", function()
    local ok, err = scheduler.start({ id = "run", task = { slug = "img", image = "alpine" } }, context())
    assert.is_nil(ok)
    assert.truthy(err:find("no command", 1, true))
  end)
end)
