-- Signals to a real agent: the first SIGTERM drains (no new runs, the running one finishes,
-- deregister, exit 0), a second one cancels what runs, SIGHUP reloads the configuration
-- without dropping the run going on.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local json = require "hangar.json"

local q, slurp = agenttest.q, agenttest.slurp

local hub, dir

setup(function()
  hub = hubtest.start { name = "agent-signals", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "5" } }
  dir = agenttest.tmpdir("agent-signals")
end)

teardown(function()
  if hub then hub:cleanup() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

local DIR_PARAM = json.array { { slug = "dir", type = "string", required = true } }

-- A task that marks itself started and waits for a "go" file; each test its own lane label.
local function gated_task(lane, extra)
  local def = { parameters = DIR_PARAM, constraints = { lane = lane } }
  for k, v in pairs(extra or {}) do def[k] = v end
  return agenttest.sh_task(hub, [[
    trap 'echo "TERM received"; exit 143' TERM
    touch "$PARAM_DIR/started.$HANGAR_RUN_ID"
    while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
    echo "finished normally"
  ]], def)
end

local function fresh(name)
  local d = dir .. "/" .. name
  os.execute("mkdir -p " .. q(d))
  return d
end

describe("SIGTERM", function()
  it("drains: no new runs, the running one finishes, the agent deregisters and exits 0", function()
    local d = fresh("drain")
    local agent = agenttest.start(hub, { labels = { lane = "drain" }, capacity = 2 })
    local slug = gated_task("drain")
    local first = agenttest.run(hub, slug, { dir = d })
    agenttest.wait_file(d .. "/started." .. first)
    agent:signal("TERM")
    agent:wait_log("draining")
    local second = agenttest.run(hub, slug, { dir = d })
    hubtest.sleep(1500)
    -- A poll the hub answered just before it heard of the drain may have handed the run over;
    -- the draining agent does not accept it, and its lease lapses back to the queue.
    local s2 = agenttest.get_run(hub, second).status
    assert.truthy(s2 == "queued" or s2 == "assigned", s2)
    assert.is_nil(agent:wait_exit(100)) -- still there while its run runs
    agenttest.write(d .. "/go", "")
    local doc = agenttest.wait_run(hub, first)
    assert.equal("succeeded", doc.status)
    assert.equal(0, agent:wait_exit(15000))
    assert.truthy(agent:log():find("deregistered from the hub", 1, true))
    -- Deregistering ends the open poll with 401: that must not look like a lapsed session.
    assert.equal(0, agent:count_log("lapsed"))
    assert.equal("queued", agenttest.wait_run(hub, second, 15000, "queued").status)
    assert.is_nil(slurp(d .. "/started." .. second))
    -- Never taken: it is still in the queue, and can be cancelled there.
    assert.equal(202, hub:post("/v1/runs/" .. second .. "/cancel", {}).status)
    assert.equal("cancelled", agenttest.get_run(hub, second).status)
    agent:cleanup()
  end)

  it("a second one cancels the running runs (with their grace) and the agent exits 0", function()
    local d = fresh("stop")
    local agent = agenttest.start(hub, { labels = { lane = "stop" }, kill_grace_s = 1 })
    local id = agenttest.run(hub, gated_task("stop"), { dir = d })
    agenttest.wait_file(d .. "/started." .. id)
    agent:signal("TERM")
    agent:wait_log("draining")
    agent:signal("TERM")
    local doc = agenttest.wait_run(hub, id, 15000)
    assert.equal("cancelled", doc.status)
    assert.equal("cancelled: the agent was stopped", doc.error)
    assert.truthy(agenttest.log_text(hub, id):find("TERM received", 1, true))
    assert.equal(0, agent:wait_exit(15000))
    agent:cleanup()
  end)
end)

describe("SIGHUP", function()
  it("reloads hooks and capacity from the file without dropping the run going on", function()
    local d = fresh("reload")
    local function hook(version)
      return ("hooks = { environment = function(run, env) env.HOOK_VERSION = %q end }"):format(version)
    end
    local agent = agenttest.start(hub, { labels = { lane = "reload" }, extra = hook("one") })
    local slug = agenttest.sh_task(hub, [[
      echo "version=$HOOK_VERSION"
      touch "$PARAM_DIR/started.$HANGAR_RUN_ID"
      while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
    ]], { parameters = DIR_PARAM, constraints = { lane = "reload" } })
    local long = agenttest.run(hub, slug, { dir = d })
    agenttest.wait_file(d .. "/started." .. long)

    -- A new hook and capacity 2: the second run can start while the first still runs.
    agent:write_config { extra = hook("two"), capacity = 2 }
    local from = #agent:log()
    agent:signal("HUP")
    agent:wait_log("configuration reloaded", 10000, from)
    local second = agenttest.run(hub, slug, { dir = d })
    agenttest.wait_file(d .. "/started." .. second)
    assert.equal("running", agenttest.get_run(hub, long).status)

    -- A broken file is refused; the agent keeps what it has.
    agenttest.write(agent.config_path, agenttest.slurp(agent.config_path) .. "\ncapacity = 'lots'\n")
    from = #agent:log()
    agent:signal("HUP")
    agent:wait_log("did not reload", 10000, from)

    agenttest.write(d .. "/go", "")
    assert.equal("succeeded", agenttest.wait_run(hub, long).status)
    assert.equal("succeeded", agenttest.wait_run(hub, second).status)
    assert.truthy(agenttest.log_text(hub, long):find("version=one", 1, true))
    assert.truthy(agenttest.log_text(hub, second):find("version=two", 1, true))
    assert.equal(0, agent:stop())
    agent:cleanup()
  end)
end)
