-- A run's accept: its log is opened while the accept is on its way to the hub, and a run the
-- hub did not let the agent accept leaves neither a log nor a finish behind. The agent, its
-- session and the run log are replaced by recorders.
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
          finish = function() note("finish sent") return true end,
          system = function() end,
        }
      end,
    },
    hooks = {},
    session = {
      lease_ttl_s = 30,
      call = function(_, method, path)
        note(method .. " " .. path)
        timer.sleep(20)
        note("accept answered")
        return res, kind
      end,
    },
    run_ended = function() note("slot freed") end,
  }
end

describe("a run's accept", function()
  it("opens the run's log while the accept is on its way, and closes it when the hub refuses the run", function()
    local events, note = recorder()
    local refused = { status = 409, json = { error = { code = "lease_lost", message = "the lease lapsed" } } }
    local r = run.new(agent_answering(note, refused, "conflict"), "run_1", "lease_1")
    r:execute()
    assert.same({ "POST /v1/runs/run_1/accept", "log opened for run_1", "accept answered", "log closed",
      "slot freed" }, events)
    assert.is_nil(r.rl)
    assert.equal("done", r.phase)
  end)

  it("releases a run whose task failed before the hub answered the accept: nothing to finish", function()
    local events, note = recorder()
    local r = run.new(agent_answering(note), "run_2", "lease_2")
    r.accepting = true
    r.rl = r.core.runlog("run_2")
    r:crashed("boom")
    assert.same({ "log opened for run_2", "log closed", "slot freed" }, events)
  end)
end)
