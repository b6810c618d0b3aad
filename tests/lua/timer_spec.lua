-- hangar.timer and hangar.task: sleeping suspends only the caller; tasks run concurrently.
local timer = require "hangar.timer"
local task = require "hangar.task"
local async = require "hangar.async"

describe("hangar.timer", function()
  it("sleeps about the time asked for", function()
    local t0 = timer.monotonic()
    timer.sleep(50)
    -- libuv's loop clock may be a coarse one, a few milliseconds behind this clock.
    assert.is_true(timer.monotonic() - t0 >= 40)
  end)

  it("refuses a negative duration", function()
    assert.has_error(function() timer.sleep(-1) end)
  end)

  it("gives wall-clock and monotonic milliseconds", function()
    assert.is_true(math.abs(timer.now() - os.time() * 1000) < 2000)
    assert.equal("integer", math.type(timer.monotonic()))
  end)
end)

describe("hangar.task", function()
  it("runs tasks concurrently", function()
    -- Two 200 ms sleeps in two tasks overlap: both started before either finished.
    local events = {}
    local function sleeper(name)
      events[#events + 1] = "start " .. name
      timer.sleep(200)
      events[#events + 1] = "end " .. name
      return name
    end
    local a = task.spawn(sleeper, "a")
    local b = task.spawn(sleeper, "b")
    assert.equal("a", a:wait())
    assert.equal("b", b:wait())
    assert.same({ "start a", "start b", "end a", "end b" }, events)
  end)

  it("orders wake-ups by deadline, not by start", function()
    local order = {}
    local slow = task.spawn(function() timer.sleep(300) order[#order + 1] = "slow" end)
    local fast = task.spawn(function() timer.sleep(10) order[#order + 1] = "fast" end)
    slow:wait()
    fast:wait()
    assert.same({ "fast", "slow" }, order)
  end)

  it("returns every result and re-raises a task's error unchanged", function()
    local t = task.spawn(function(x, y) return x + y, "two" end, 1, 2)
    local r1, r2 = t:wait()
    assert.equal(3, r1)
    assert.equal("two", r2)
    local bad = task.spawn(function() error("it broke") end)
    local ok, err = pcall(bad.wait, bad)
    assert.is_false(ok)
    assert.matches("timer_spec.lua:%d+: it broke$", err)
    -- Waiting again gives the same answer; error objects survive as they are.
    assert.has_error(function() bad:wait() end)
    local obj = { code = 7 }
    local t2 = task.spawn(function() error(obj) end)
    local _, e2 = pcall(t2.wait, t2)
    assert.equal(obj, e2)
  end)

  it("lets tasks wait for each other", function()
    local first = task.spawn(function() timer.sleep(20) return 10 end)
    local second = task.spawn(function() return first:wait() * 2 end)
    assert.equal(20, second:wait())
    assert.is_true(first:done())
  end)

  it("knows the current task", function()
    assert.is_nil(task.current())
    local t
    t = task.spawn(function() return task.current() == t end)
    assert.is_true(t:wait())
  end)

  it("lets a task yield to others", function()
    local log = {}
    local a = task.spawn(function() for i = 1, 3 do log[#log + 1] = "a" .. i task.yield() end end)
    local b = task.spawn(function() for i = 1, 3 do log[#log + 1] = "b" .. i task.yield() end end)
    a:wait()
    b:wait()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)
end)

describe("hangar.async", function()
  it("maps with bounded concurrency and keeps the order of results", function()
    local running, peak = 0, 0
    local out = async.map({ 30, 10, 20, 5, 15 }, function(ms, i)
      running = running + 1
      peak = math.max(peak, running)
      timer.sleep(ms)
      running = running - 1
      return i * 10
    end, 2)
    assert.same({ 10, 20, 30, 40, 50 }, out)
    assert.equal(2, peak)
  end)

  it("raises the first error once every call finished", function()
    local finished = 0
    assert.has_error(function()
      async.map({ 1, 2, 3 }, function(i)
        timer.sleep(5)
        finished = finished + 1
        if i == 2 then error("item two failed", 0) end
      end)
    end, "item two failed")
    assert.equal(3, finished)
  end)

  it("joins tasks whatever their outcome", function()
    local r = async.join({
      async.run(function() return 1, 2 end),
      async.run(function() error("nope", 0) end),
    })
    assert.is_true(r[1].ok)
    assert.equal(2, r[1][2])
    assert.is_false(r[2].ok)
    assert.equal("nope", r[2].err)
    assert.same({ 1, 2 }, async.all({ function() return 1 end, function() return 2 end }))
  end)
end)
