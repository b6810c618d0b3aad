-- A real agent working through a queue longer than its capacity: every run it is given, it
-- takes; none waits out a lease because the agent asked for more runs than it had slots; and
-- no more of its runs' processes run at once than it has slots.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local timer = require "hangar.timer"

describe("an agent with a queue of runs", function()
  local hub, agent

  teardown(function()
    agenttest.cleanup_all(agent, hub)
  end)

  it("runs them all at full capacity, never over-asking for work", function()
    -- A long lease: a run assigned beyond the agent's free slots would wait it out (a minute)
    -- before anyone got it, far past this test's patience.
    hub = hubtest.start { name = "agent-capacity", args = { "--lease-ttl", "60", "--heartbeat-interval", "1" } }
    -- Each run's process marks its start and its end in one file (appends of two bytes do
    -- not interleave); the sleep between keeps each process's marked span long enough that
    -- processes running at once would overlap in it (the shell's start and exit, outside the
    -- marks, are not counted).
    local marks = agenttest.tmpdir("agent-capacity") .. "/marks"
    local slug = agenttest.task(hub, {
      command = { "/bin/sh", "-c", ("echo + >> %s; sleep 0.02; echo - >> %s"):format(marks, marks) },
    })
    local ids = {}
    for i = 1, 60 do
      ids[i] = agenttest.run(hub, slug)
    end
    local capacity = 4
    agent = agenttest.start(hub, { capacity = capacity })
    local t0 = timer.monotonic()
    for _, id in ipairs(ids) do
      local doc = agenttest.wait_run(hub, id, 30000)
      assert.equal("succeeded", doc.status)
    end
    assert.is_true(timer.monotonic() - t0 < 30000)
    assert.equal(0, agent:count_log("not taking an assigned run"), agent:log())
    -- The hub's log, in order: a run is the agent's from "run assigned" to "run finished".
    local assigned, held, most_held = 0, 0, 0
    for msg in hub:log():gmatch('"msg":"(run %a+)"') do
      if msg == "run assigned" then
        assigned, held = assigned + 1, held + 1
        most_held = math.max(most_held, held)
      elseif msg == "run finished" then
        held = held - 1
      end
    end
    assert.equal(#ids, assigned, "every run is assigned once")
    -- The next poll goes out as a run's process ends, before its finish (which waits for the
    -- run's record to reach the disk): runs queued meanwhile are handed out before the hub
    -- has the finish.
    assert.is_true(most_held > capacity, "no run was handed out before the finish of the one it followed")
    -- A slot is free once its run's process ended, before the hub has the run's finish (the
    -- next poll asks for it meanwhile): the processes, not the runs the hub lists, fit the
    -- capacity, and they did fill it.
    local f = assert(io.open(marks))
    local text = f:read("a")
    f:close()
    local running, most, starts = 0, 0, 0
    for mark in text:gmatch("[+-]") do
      running = running + (mark == "+" and 1 or -1)
      starts = starts + (mark == "+" and 1 or 0)
      most = math.max(most, running)
    end
    assert.equal(#ids, starts)
    assert.equal(0, running)
    assert.is_true(most <= capacity, ("%d of the agent's processes ran at once"):format(most))
    assert.is_true(most > 1, "the runs never ran side by side")
  end)
end)
