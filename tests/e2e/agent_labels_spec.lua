-- Labels keep prod runs and their secrets away from a staging agent: the hub never assigns
-- them to it, and a staging key cannot register as a prod agent.
local hubtest = require "hubtest"
local agenttest = require "agenttest"

local q = agenttest.q

local hub, staging

local SECRET = "prod-db-password-123456"

setup(function()
  hub = hubtest.start { name = "agent-labels", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "2" } }
  staging = agenttest.start(hub, { name = "staging-1", labels = { env = "staging" }, key_labels = { env = "staging" }, capacity = 2 })
end)

teardown(function()
  local ok, err = true, nil
  if staging then ok, err = pcall(staging.cleanup, staging) end
  if hub then hub:cleanup() end
  assert(ok, err)
end)

-- Every file under dir, read whole (the state directory of an agent).
local function all_files(dir)
  local p = assert(io.popen("find " .. q(dir) .. " -type f 2>/dev/null"))
  local text = {}
  for path in p:lines() do
    text[#text + 1] = agenttest.slurp(path) or ""
  end
  p:close()
  return table.concat(text, "\n")
end

describe("a staging agent", function()
  it("runs staging runs and never receives a prod run or its secrets", function()
    assert.equal(200, hub:put("/v1/config-vars/prod_db", { value = SECRET, secret = true }).status)
    local prod = agenttest.sh_task(hub, 'echo "prod sees $DB_PASSWORD"', {
      constraints = { env = "prod" }, env = { DB_PASSWORD = { config = "prod_db" } } })
    local stage = agenttest.sh_task(hub, "echo staging work", { constraints = { env = "staging" } })

    local prod_run = agenttest.run(hub, prod)
    local stage_run = agenttest.run(hub, stage)
    assert.equal("succeeded", agenttest.wait_run(hub, stage_run).status)
    -- Several polls later the prod run still waits for an agent that may have it.
    hubtest.sleep(2500)
    local doc = agenttest.get_run(hub, prod_run)
    assert.equal("queued", doc.status)
    assert.falsy(staging:log():find(prod_run, 1, true))
    assert.falsy(staging:log():find(SECRET, 1, true))
    assert.falsy(all_files(staging.state_dir):find(SECRET, 1, true))

    -- A prod agent takes it (so the run was runnable all along), and gets the secret.
    local prod_agent = agenttest.start(hub, { name = "prod-1", labels = { env = "prod" }, key_labels = { env = "prod" } })
    doc = agenttest.wait_run(hub, prod_run)
    assert.equal("succeeded", doc.status)
    assert.equal("prod-1", doc.agent.name)
    local log = agenttest.log_text(hub, prod_run)
    assert.truthy(log:find("prod sees", 1, true))
    assert.falsy(log:find(SECRET, 1, true))
    prod_agent:cleanup()
  end)

  it("cannot use its staging key to register as a prod agent", function()
    local agent = agenttest.start(hub, { key = staging.key, labels = { env = "prod" }, wait = false })
    assert.equal(2, agent:wait_exit(20000))
    assert.truthy(agent:log():find("refused to register", 1, true), agent:log())
    agent:cleanup()
  end)
end)
