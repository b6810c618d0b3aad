-- The agent's state directory after a crash: a journal of run records that a power cut left
-- as zeros (the agent does not wait for the disk when it writes the record of a run it started
-- locally) holds no record; the run is finished failed and nothing is left behind. A record
-- whose last save was cut short is read as the version before it. A run's record is first
-- written once its process started: an agent stopped before that finds the run without one.
-- An older agent's record file (runs/<id>.json) is read and folded into the journal.
local hubtest = require "hubtest"
local agenttest = require "agenttest"

local slurp = agenttest.slurp

local exists = agenttest.exists

-- A hub and an agent (both cleaned up when the test ends) with one run running forever;
-- returns them, the run's id and the path of the agent's journal of run records.
local function running_run(name)
  local hub, agent = agenttest.hub_and_agent(finally, name)
  local slug = agenttest.sh_task(hub, "echo started; while :; do sleep 0.1; done")
  local id = agenttest.run(hub, slug)
  assert.equal("running", agenttest.wait_run(hub, id, 10000, "running").status)
  return hub, agent, id, agent.state_dir .. "/runs.journal"
end

describe("an agent restarting on its state directory", function()
  it("treats a journal of zeros as no record: rewritten, and the run finished failed", function()
    local hub, agent, id, journal = running_run("agent-state")
    assert(hubtest.wait_for(function() return agent:record(id) end, 5000), "the running run has a record")

    agent:kill()
    -- What a power cut can leave of appends not waited for: the file's length, in zeros.
    agenttest.write(journal, string.rep("\0", #slurp(journal)))
    agent:restart()

    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted; the run's record was lost", doc.error)
    assert(hubtest.wait_for(function() return slurp(journal) == "" end, 5000), "the zeros stayed")
    assert(hubtest.wait_for(function() return not exists(agent.state_dir .. "/work/" .. id) end, 5000),
      "the run's work directory is gone")
    assert.equal(0, agent:count_log("unreadable run record"))
    assert.equal(0, agent:stop())
  end)

  it("stops at start-up when the journal cannot be read, leaving the runs the hub lists alone", function()
    local hub, agent, id, journal = running_run("agent-state-unreadable")
    assert(hubtest.wait_for(function() return agent:record(id) end, 5000), "the running run has a record")
    agent:kill()
    local size = #slurp(journal)
    -- Larger than the agent reads a state file (64 MiB), as a sparse file: the read fails
    -- even for root, which a permission would not make it.
    assert(os.execute("truncate -s 65M " .. agenttest.q(journal)))
    agent:restart(false)
    assert.equal(2, agent:wait_exit(20000))
    assert(hubtest.wait_for(function() return agent:count_log("cannot read the run records") == 1 end, 5000),
      "no message about the records")
    assert(agent:log():find("runs.journal", 1, true), "the message does not name the journal")
    assert.equal("running", agenttest.get_run(hub, id).status)

    -- Mended, the journal gives the run's record back: the agent knows what became of it (a
    -- local process does not outlive its agent) rather than finding it without a record.
    assert(os.execute("truncate -s " .. size .. " " .. agenttest.q(journal)))
    agent.exit_code = nil
    agent:restart()
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted; the run's process was lost", doc.error)
  end)

  it("writes no record before the run's process starts; stopped before that, the run is finished failed", function()
    local hub, agent = agenttest.hub_and_agent(finally, "agent-state-early", { extra = [[
hooks = { before_run = function(run)
  require("hangar.log").info("before_run holds the run", { run = run.id })
  require("hangar.timer").sleep(60000)
end }
]] })
    local slug = agenttest.sh_task(hub, "echo never")
    local id = agenttest.run(hub, slug)
    agent:wait_log("before_run holds the run", 10000)
    assert.is_nil(agent:record(id), "a record was written before the run started")
    assert.equal("accepted", agenttest.get_run(hub, id).status)

    agent:kill()
    agent:restart()
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted before the run started", doc.error)
  end)

  it("reads a record's latest whole line: a save cut short leaves the version before it", function()
    local hub, agent, id, journal = running_run("agent-state-torn")
    assert(hubtest.wait_for(function() return (agent:record(id) or ""):find('"phase":"running"', 1, true) end, 5000),
      "the record says the run is running")

    agent:kill()
    -- A save the crash cut off: half a line, claiming a result that was never written whole.
    local f = assert(io.open(journal, "a"))
    f:write('{"run_id":"' .. id .. '","phase":"finishing","result":{"status":"succ')
    f:close()
    agent:restart()

    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted; the run's process was lost", doc.error)
    assert.equal(0, agent:count_log("unreadable run record"))
    assert(hubtest.wait_for(function() return agent:record(id) == nil end, 5000), "the record is gone once finished")
    assert.is_false(exists(agent.state_dir .. "/work/" .. id), "the lost run's work directory is left")
    assert.equal(0, agent:stop())
  end)

  it("reads an older agent's record file, folds it into the journal and removes it", function()
    local hub, agent, id, journal = running_run("agent-state-upgrade")
    assert(hubtest.wait_for(function() return (agent:record(id) or ""):find('"phase":"running"', 1, true) end, 5000),
      "the record says the run is running")

    agent:kill()
    -- The layout of an older agent: one file per run, no journal.
    local line = agent:record(id)
    os.execute("mkdir -p " .. agenttest.q(agent.state_dir .. "/runs"))
    agenttest.write(agent.state_dir .. "/runs/" .. id .. ".json", line .. "\n")
    os.remove(journal)
    agent:restart()

    -- Had the record not been read, the error would say that it was lost.
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted; the run's process was lost", doc.error)
    assert.is_false(exists(agent.state_dir .. "/runs"), "the older agent's record directory is left")
    assert(hubtest.wait_for(function() return slurp(journal) == "" end, 5000), "the record is gone once finished")
    assert.equal(0, agent:count_log("unreadable run record"))
    assert.equal(0, agent:stop())
  end)
end)
