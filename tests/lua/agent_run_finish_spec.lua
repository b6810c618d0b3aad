-- A run's finish: the order in which the slot is freed, the hub hears of the end, the agent lets
-- go of the run and the run's files go, with the agent, its state and the run log replaced by
-- recorders.
local run = require "hangar.agent.run"
local async = require "hangar.async"

-- An agent that notes what is done to it in events.
local function recording_agent(events)
  local function note(text) events[#events + 1] = text end
  return {
    core = { cond = function() return { notify = function() end, wait = function() end } end },
    hooks = {},
    state = {
      save_run = function() note("record saved") return true end,
      remove_run = function() note("record removed") return true end,
    },
    slot_released = function() note("slot released") end,
    run_ended = function(_, _, tidying) note(tidying and "let go, files still there" or "let go") end,
    tidied = function() note("files removed") end,
  }
end

local function recording_log(events)
  local function note(text) events[#events + 1] = text end
  return {
    complete = function() note("log complete") end,
    finish = function() note("hub has the end") return true end,
    close = function() note("log closed") end,
  }
end

describe("a run's finish", function()
  it("stops holding the run once the hub has its end, before the run's log and record are removed", function()
    local events = {}
    local r = run.new(recording_agent(events), "run_1", "lease_1")
    r.rl = recording_log(events)
    r.record = { run_id = "run_1", lease_id = "lease_1" }
    r:finish({ status = "succeeded", exit_code = 0 })
    assert.same({ "slot released", "log complete", "record saved", "hub has the end",
      "let go, files still there", "log closed", "record removed", "files removed" }, events)
    assert.equal("done", r.phase)
  end)

  it("keeps the slot of a run whose process may still run until the hub has its end", function()
    -- A run whose task failed while its process ran (its wait never returned).
    local events = {}
    local r = run.new(recording_agent(events), "run_5", "lease_5")
    r.rl = recording_log(events)
    r.handle = { pid = 1 }
    r:finish({ status = "failed", error = "the agent failed while handling the run" })
    assert.same({ "hub has the end", "let go, files still there", "log closed", "record removed",
      "files removed" }, events)
  end)

  it("lets the next work poll go out before the run's log and record are removed", function()
    -- As the agent does for a run that kept its slot: letting go of it starts the next poll in
    -- a task of its own.
    local events = {}
    local agent = recording_agent(events)
    local ended = agent.run_ended
    agent.run_ended = function(...)
      ended(...)
      async.run(function() events[#events + 1] = "next poll sent" end)
    end
    local r = run.new(agent, "run_4", "lease_4")
    r.rl = recording_log(events)
    r.handle = { pid = 1 }
    async.await(async.run(r.finish, r, { status = "succeeded", exit_code = 0 }))
    assert.same({ "hub has the end", "let go, files still there", "next poll sent", "log closed",
      "record removed", "files removed" }, events)
  end)

  it("tells the agent the files are gone even when removing them failed", function()
    local events = {}
    local agent = recording_agent(events)
    agent.state.remove_run = function() error("disk on fire", 0) end
    local r = run.new(agent, "run_3", "lease_3")
    r.rl = recording_log(events)
    local ok, err = pcall(r.finish, r, { status = "succeeded", exit_code = 0 })
    assert.is_false(ok)
    assert.equal("disk on fire", err)
    assert.same({ "slot released", "hub has the end", "let go, files still there", "log closed",
      "files removed" }, events)
  end)

  it("frees the slot of a run it cannot finish (the session is gone) without waiting for anything", function()
    local events = {}
    local r = run.new(recording_agent(events), "run_2", "lease_2")
    r.rl = recording_log(events)
    r.aborted = "the key was revoked"
    r:finish({ status = "cancelled" })
    assert.same({ "slot released", "let go" }, events)
  end)
end)
