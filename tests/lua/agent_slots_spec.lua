-- An agent's slots: a run's slot frees when its process ended, while its finish is on its way;
-- runs only waiting for their finish count as free up to the capacity; and a new work poll is
-- asked for only when a slot really freed. The agent is the real one, its session and core
-- replaced by recorders.
local main = require "hangar.agent.main"

local function agent_with(capacity)
  local polls, gauges = { n = 0 }, {}
  local agent = setmetatable({
    config = { capacity = capacity },
    core = { metrics_set = function(name, value) gauges[name] = value end },
    session = { slot_freed = function() polls.n = polls.n + 1 end },
    wake = { notify = function() end },
    runs = {},
    held = 0,
    finishing = 0,
    tidying = 0,
    mode = "serving",
  }, main.Agent)
  agent.fell_idle = function() end
  return agent, polls, gauges
end

-- A run the agent took (as Agent:offer does), its process running.
local function take(agent, id)
  local r = { id = id, phase = "running" }
  agent.runs[id] = r
  agent.held = agent.held + 1
  return r
end

describe("an agent's slots", function()
  it("free as a run's process ends, and the run's finish frees none again", function()
    local agent, polls, gauges = agent_with(2)
    local r1, r2 = take(agent, "run_1"), take(agent, "run_2")
    assert.equal(0, agent:free_slots())
    agent:slot_released(r1)
    assert.equal(1, agent:free_slots())
    assert.equal(1, polls.n)
    assert.equal(1, gauges['runs{state="finishing"}'])
    assert.equal(1, gauges['runs{state="running"}'])
    agent:slot_released(r1) -- once only
    assert.equal(1, agent.finishing)
    assert.equal(1, polls.n)
    agent:run_ended(r1, true)
    assert.equal(1, agent:free_slots())
    assert.equal(1, polls.n) -- the open poll already asked for that slot
    assert.equal(0, agent.finishing)
    assert.equal(0, gauges['runs{state="finishing"}'])
    agent:run_ended(r2, true) -- its task failed while its process ran: the slot frees now
    assert.equal(2, agent:free_slots())
    assert.equal(2, polls.n)
    assert.equal(0, agent.held)
  end)

  it("counts at most as many runs waiting for their finish as free as it has slots", function()
    local agent, polls = agent_with(1)
    local r1 = take(agent, "run_1")
    agent:slot_released(r1)
    assert.equal(1, agent:free_slots())
    local r2 = take(agent, "run_2") -- run_1's finish is held up meanwhile
    assert.equal(0, agent:free_slots())
    agent:slot_released(r2)
    assert.equal(0, agent:free_slots()) -- two finishes waiting, one slot
    assert.equal(1, polls.n)
    agent:run_ended(r1, true)
    assert.equal(1, agent:free_slots())
    assert.equal(2, polls.n)
    agent:run_ended(r2, true)
    assert.equal(1, agent:free_slots())
    assert.equal(2, polls.n)
  end)

  it("asks for no poll while it does not serve", function()
    local agent, polls = agent_with(1)
    local r = take(agent, "run_1")
    agent.mode = "draining"
    agent:slot_released(r)
    agent:run_ended(r, true)
    assert.equal(0, polls.n)
    assert.equal(0, agent:free_slots())
    assert.equal(0, agent.held)
  end)
end)
