-- A real agent working through a queue longer than its capacity: every run it is given, it
-- takes; none waits out a lease because the agent asked for more runs than it had slots.
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
    local slug = agenttest.task(hub, { command = { "/bin/true" } })
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
    -- The hub never held more of the agent's runs than it has slots for: assigned and
    -- running runs together, as the hub saw them (its log, in order: a run is the agent's
    -- from "run assigned" to "run finished"), fit the capacity.
    local assigned, held, most = 0, 0, 0
    for msg in hub:log():gmatch('"msg":"(run %a+)"') do
      if msg == "run assigned" then
        assigned, held = assigned + 1, held + 1
        most = math.max(most, held)
      elseif msg == "run finished" then
        held = held - 1
      end
    end
    assert.equal(#ids, assigned, "every run is assigned once")
    assert.is_true(most <= capacity, ("the hub held %d of the agent's runs at once"):format(most))
  end)
end)
