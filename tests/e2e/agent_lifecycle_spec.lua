-- A run's life on a real agent: capacity, timeouts, cancels (queued and running, polite and
-- forced), and the hooks (before_accept declining, a failing hook named by file:line, the
-- environment hook editing the environment, after_run seeing the result).
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local json = require "hangar.json"
local testutil = require "testutil"

local q, slurp = agenttest.q, agenttest.slurp

local hub, agent, dir

-- Hooks of the test agent. Line numbers in failures point into the generated agent.lua.
local HOOKS = [[
hooks = {
  before_accept = function(run)
    if run.task.slug:match("^declined") then
      return false, "this agent does not run " .. run.task.slug
    end
  end,
  environment = {
    function(run, env)
      env.FROM_HOOK = "added by the environment hook"
      env.GREETING = nil
    end,
  },
  before_run = function(run, env)
    if run.task.slug:match("^brokenhook") then
      error("the before_run hook refuses")
    end
  end,
  after_run = function(run, result)
    require("hangar.log").info("after_run saw", { run = run.id, status = result.status, exit_code = result.exit_code, error = result.error })
  end,
}
]]

setup(function()
  hub = hubtest.start { name = "agent-life", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "5" } }
  dir = agenttest.tmpdir("agent-life")
  agent = agenttest.start(hub, { capacity = 2, kill_grace_s = 1, labels = { lane = "life" }, extra = HOOKS })
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, dir)
end)

-- A directory of its own for each test's files.
local function fresh(name)
  local d = dir .. "/" .. name
  os.execute("mkdir -p " .. q(d))
  return d
end

local DIR_PARAM = json.array { { slug = "dir", type = "string", required = true } }

local function status(id)
  return agenttest.get_run(hub, id).status
end

describe("capacity", function()
  it("never runs more than `capacity` runs at once; the others wait in the queue", function()
    local d = fresh("capacity")
    -- Each run marks itself running, records how many were running then, and waits for "go".
    local slug = agenttest.sh_task(hub, [[
      touch "$PARAM_DIR/running.$HANGAR_RUN_ID"
      ls "$PARAM_DIR" | grep -c '^running' > "$PARAM_DIR/seen.$HANGAR_RUN_ID"
      while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
      rm "$PARAM_DIR/running.$HANGAR_RUN_ID"
    ]], { parameters = DIR_PARAM, constraints = { lane = "life" } })
    local ids = {}
    for i = 1, 4 do ids[i] = agenttest.run(hub, slug, { dir = d }) end
    assert(hubtest.wait_for(function()
      local n = 0
      for _, id in ipairs(ids) do
        if slurp(d .. "/seen." .. id) then n = n + 1 end
      end
      return n == 2
    end, 15000))
    -- Two run; the other two are still queued, not held back by an agent that took them.
    hubtest.sleep(1500)
    local counts = { running = 0, queued = 0 }
    for _, id in ipairs(ids) do
      local s = status(id)
      counts[s] = (counts[s] or 0) + 1
    end
    assert.same({ running = 2, queued = 2 }, counts)
    agenttest.write(d .. "/go", "")
    for _, id in ipairs(ids) do
      assert.equal("succeeded", agenttest.wait_run(hub, id).status)
      local seen = tonumber(slurp(d .. "/seen." .. id))
      assert.truthy(seen >= 1 and seen <= 2, "a run saw " .. tostring(seen) .. " runs at once")
    end
  end)
end)

describe("timeouts", function()
  it("fail a run that outlives its timeout: SIGTERM first", function()
    local slug = agenttest.sh_task(hub, [[
      trap 'echo "got TERM"; exit 143' TERM
      echo started
      while :; do sleep 0.1; done
    ]], { timeout = 2, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("timed out after 2 s", doc.error)
    local log = agenttest.log_text(hub, id)
    assert.truthy(log:find("got TERM", 1, true), log)
    assert.truthy(log:find("timed out after 2 s: stopping the run", 1, true), log)
  end)

  it("kill a run that ignores SIGTERM once the grace has passed", function()
    local slug = agenttest.sh_task(hub, [[
      trap '' TERM
      echo ignoring
      while :; do sleep 0.1; done
    ]], { timeout = 1, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("timed out after 1 s", doc.error)
  end)
end)

describe("cancel", function()
  it("of a queued run ends it before any agent sees it", function()
    local slug = agenttest.sh_task(hub, "echo should-not-run", { constraints = { lane = "nobody-has-this" } })
    local id = agenttest.run(hub, slug)
    local res = hub:post("/v1/runs/" .. id .. "/cancel", {})
    assert.equal(202, res.status, res.body)
    assert.equal("cancelled", agenttest.wait_run(hub, id).status)
    assert.equal("", agenttest.log_text(hub, id))
  end)

  -- Runs a task that sets trap_term as its SIGTERM trap and then loops forever, and cancels the
  -- run once its process started; returns the run's id and the pid of its shell.
  local function cancel_once_started(name, trap_term)
    local d = fresh(name)
    local slug = agenttest.sh_task(hub, "trap " .. trap_term .. [[ TERM
      echo $$ > "$PARAM_DIR/started.tmp"; mv "$PARAM_DIR/started.tmp" "$PARAM_DIR/started"
      while :; do sleep 0.1; done
    ]], { parameters = DIR_PARAM, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug, { dir = d })
    local pid = tonumber(agenttest.wait_file(d .. "/started"))
    assert.equal(202, hub:post("/v1/runs/" .. id .. "/cancel", {}).status)
    return id, pid
  end

  it("of a running run stops it politely and finishes it cancelled", function()
    local id = cancel_once_started("cancel", [['echo "stopping on TERM"; exit 143']])
    local doc = agenttest.wait_run(hub, id, 10000)
    assert.equal("cancelled", doc.status)
    assert.equal("cancelled", doc.error)
    assert.equal(143, doc.exit_code)
    assert.truthy(agenttest.log_text(hub, id):find("stopping on TERM", 1, true))
  end)

  it("of a run that ignores SIGTERM forces it after the grace", function()
    local id, pid = cancel_once_started("cancel-force", "''")
    local doc = agenttest.wait_run(hub, id, 15000)
    assert.equal("cancelled", doc.status)
    -- Cancelled in name and in fact: the process that ignored SIGTERM is gone.
    assert.truthy(pid)
    assert.truthy(testutil.wait_gone(pid, 5000), "the process that ignored SIGTERM outlived the cancel")
  end)
end)

describe("hooks", function()
  it("before_accept declines a run: it fails with the hook's reason and nothing starts", function()
    local d = fresh("decline")
    local slug = agenttest.sh_task(hub, 'touch "$PARAM_DIR/ran"', {
      slug = "declined-" .. os.time(), parameters = DIR_PARAM, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug, { dir = d })
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    assert.equal("this agent does not run " .. slug, doc.error)
    assert.is_nil(slurp(d .. "/ran"))
    assert.equal(json.null, doc.started_at)
  end)

  it("a failing hook fails the run, naming the hook and its file:line", function()
    local d = fresh("broken")
    local slug = agenttest.sh_task(hub, 'touch "$PARAM_DIR/ran"', {
      slug = "brokenhook-" .. os.time(), parameters = DIR_PARAM, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug, { dir = d })
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    -- The line of error(...) in the generated configuration.
    local line
    local n = 0
    for text in (slurp(agent.config_path) .. "\n"):gmatch("(.-)\n") do
      n = n + 1
      if text:find("the before_run hook refuses", 1, true) then line = n end
    end
    assert.equal(("hook before_run (%s:%d): the before_run hook refuses"):format(agent.config_path, line), doc.error)
    assert.is_nil(slurp(d .. "/ran"))
  end)

  it("the environment hook edits the run's environment; after_run sees the result", function()
    local slug = agenttest.sh_task(hub, 'echo "hook=$FROM_HOOK greeting=${GREETING:-unset}"; exit 4', {
      env = { GREETING = "from the task" }, constraints = { lane = "life" } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    assert.equal("exit code 4", doc.error)
    assert.truthy(agenttest.log_text(hub, id):find("hook=added by the environment hook greeting=unset", 1, true))
    local seen
    assert(hubtest.wait_for(function()
      for _, e in ipairs(agent:log_entries()) do
        if e.msg == "after_run saw" and e.run == id then seen = e end
      end
      return seen
    end, 10000))
    assert.equal("failed", seen.status)
    assert.equal(4, seen.exit_code)
    assert.equal("exit code 4", seen.error)
  end)
end)
