-- A run's accept: its log is opened and its work directory made while the accept is on its way
-- to the hub, and a run the hub did not let the agent accept leaves neither a log, a directory
-- nor a finish behind. A restart that finds a run without a record tells from the hub's status,
-- not from the directory, whether its process started. The agent, its session, its files and
-- the run log are replaced by recorders.
local run = require "hangar.agent.run"
local timer = require "hangar.timer"

local function recorder()
  local events = {}
  return events, function(text) events[#events + 1] = text end
end

-- An agent whose accept call waits a little (as a call to the hub does) and answers with res.
local function agent_answering(note, res, kind)
  return {
    core = {
      cond = function() return { notify = function() end, wait = function() end } end,
      runlog = function(id)
        note("log opened for " .. id)
        return {
          close = function() note("log closed") end,
          complete = function() end,
          finish = function(_, result) note("finish sent: " .. tostring(result.error)) return true end,
          system = function() end,
        }
      end,
      fs = {
        mkdir_p = function(path) note("made " .. path) return true end,
        remove_in_pool = function(path) note("removed " .. path) end,
        exists = function() return true end, -- the directory made while the accept was on its way
      },
    },
    hooks = {},
    state = {
      workdir = function(_, id) return "work/" .. id end,
      remove_run = function() return true end,
    },
    session = {
      lease_ttl_s = 30,
      call = function(_, method, path)
        note(method .. " " .. path)
        timer.sleep(20)
        note("accept answered")
        return res, kind
      end,
    },
    slot_released = function() note("slot released") end,
    run_ended = function() note("run ended") end,
    tidied = function() end,
  }
end

describe("a run's accept", function()
  it("opens the run's log while the accept is on its way, and closes it when the hub refuses the run", function()
    local events, note = recorder()
    local refused = { status = 409, json = { error = { code = "lease_lost", message = "the lease lapsed" } } }
    local r = run.new(agent_answering(note, refused, "conflict"), "run_1", "lease_1")
    r:execute()
    assert.same({ "POST /v1/runs/run_1/accept", "log opened for run_1", "made work/run_1", "accept answered",
      "log closed", "removed work/run_1", "run ended" }, events)
    assert.is_nil(r.rl)
    assert.equal("done", r.phase)
  end)

  it("releases a run whose task failed before the hub answered the accept: nothing to finish", function()
    local events, note = recorder()
    local r = run.new(agent_answering(note), "run_2", "lease_2")
    r.accepting = true
    r.rl = r.core.runlog("run_2")
    r.workdir_made = true
    r:crashed("boom")
    assert.same({ "log opened for run_2", "log closed", "removed work/run_2", "run ended" }, events)
  end)

  it("removes the work directory made early for an accepted run that never started", function()
    local events, note = recorder()
    local accepted = { status = 200, json = { run = { id = "run_5", task = {} } }, body = "{}" }
    local agent = agent_answering(note, accepted, "ok")
    agent.schedulers = {}
    agent.config = { scheduler = "nowhere" }
    agent.scheduler_names = function() return { "local" } end
    local r = run.new(agent, "run_5", "lease_5")
    r.save = function() end
    r:execute()
    assert.same({ "POST /v1/runs/run_5/accept", "log opened for run_5", "made work/run_5", "accept answered",
      "removed work/run_5", "slot released", "finish sent: no scheduler 'nowhere' on this agent (it has: local)",
      "run ended",
      "log closed" }, events)
  end)

  for _, case in ipairs {
    { status = "accepted", error = "agent restarted before the run started" },
    { status = "running", error = "agent restarted; the run's record was lost" },
    { status = "cancelling", error = "agent restarted; the run's record was lost" },
  } do
    it("says after a restart, for a run without a record that the hub lists as " .. case.status .. ": " .. case.error,
      function()
        local events, note = recorder()
        local r = run.orphan(agent_answering(note), "run_4", case.status)
        r:execute()
        assert.same({ "log opened for run_4", "removed work/run_4", "slot released", "finish sent: " .. case.error,
          "run ended", "log closed" }, events)
      end)
  end
end)
