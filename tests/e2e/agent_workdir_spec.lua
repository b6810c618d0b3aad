-- An agent's work directories after a restart: one of a run the agent does not hold (made
-- while an accept was on its way when the agent was killed, the hub never having had the
-- accept) is removed before the agent takes new runs.
local hubtest = require "hubtest"
local agenttest = require "agenttest"

describe("an agent restarting with work directories left behind", function()
  it("removes those of runs it does not hold", function()
    local _, agent = agenttest.hub_and_agent(finally, "agent-workdir")
    agent:kill()

    local stray = agent.state_dir .. "/work/run_never_accepted"
    os.execute("mkdir -p " .. agenttest.q(stray))
    agent:restart()
    agent:wait_log("removing the work directory of a run this agent no longer holds", 10000)
    assert(hubtest.wait_for(function() return not agenttest.exists(stray) end, 5000),
      "the stray work directory is left")
    assert.equal(1, agent:count_log("removing the work directory of a run this agent no longer holds"))
    assert.equal(0, agent:stop())
  end)
end)
