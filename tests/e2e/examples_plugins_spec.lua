-- The example plugins written in Lua, dropped onto real agents: the `nice` scheduler
-- (examples/plugins/nice) runs commands at its niceness, under its time cap, still cancellable;
-- the change policy hook (examples/plugins/change_policy) declines runs without a ticket and
-- lets an emergency ticket through, and its business-hours rule decides by the clock.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local json = require "hangar.json"

local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q = agenttest.q

local hub, dir

setup(function()
  hub = hubtest.start { name = "examples-plugins", args = { "--lease-ttl", "5", "--heartbeat-interval", "1" } }
  dir = agenttest.tmpdir("examples-plugins")
end)

teardown(function()
  if hub then hub:cleanup() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

-- A plugin directory holding copies of the named example plugins, as an operator installs them.
local function plugin_dir(name, ...)
  local pdir = dir .. "/" .. name
  assert(os.execute("mkdir -p " .. q(pdir)))
  for _, plugin in ipairs({ ... }) do
    assert(os.execute(("cp -R %s %s"):format(q(SRC .. "/examples/plugins/" .. plugin), q(pdir .. "/"))))
  end
  return pdir
end

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

describe("the nice scheduler example", function()
  local agent

  setup(function()
    agent = agenttest.start(hub, {
      labels = { lane = "nice" },
      capacity = 2,
      extra = ("plugin_dirs = { %q }\nschedulers = { nice = { level = 7, cap_s = 2, kill_after_s = 1 } }\n")
        :format(plugin_dir("nice-plugins", "nice")),
    })
  end)

  teardown(function()
    if agent then agent:cleanup() end
  end)

  local function task(script, extra)
    local def = { scheduler = "nice", constraints = { lane = "nice" } }
    for k, v in pairs(extra or {}) do def[k] = v end
    return agenttest.sh_task(hub, script, def)
  end

  it("runs a task's command at the configured niceness, and says so in the run's log", function()
    local id = agenttest.run(hub, task('echo "niceness $(nice)"; echo "args $*"; exit 4'))
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    assert.equal(4, doc.exit_code)
    assert.equal("exit code 4", doc.error)
    -- nice -n adds to the niceness the agent runs at (this test's, often 0), up to 19.
    local p = assert(io.popen("nice"))
    local own = assert(tonumber(p:read("a")))
    p:close()
    assert.equal("niceness " .. math.min(19, own + 7), agenttest.log_text(hub, id, "stdout"):match("niceness %d+"))
    assert.truthy(has(agenttest.log_text(hub, id, "system"), "nice scheduler: niceness 7, stopped after 2 s"))
  end)

  it("stops a run at its cap, whatever the task's timeout, and names the cap", function()
    local id = agenttest.run(hub, task("echo started; sleep 60; echo never", { timeout = 600 }))
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("stopped by the nice scheduler's cap of 2 s", doc.error)
    assert.equal(124, doc.exit_code)
    assert.equal("started", agenttest.log_text(hub, id, "stdout"))
  end)

  it("leaves cancelling to the local scheduler: a cancel stops the whole wrapped command", function()
    local marker = dir .. "/cancel-started"
    local id = agenttest.run(hub, task(("echo $$ > %s.tmp && mv %s.tmp %s; sleep 60"):format(q(marker), q(marker), q(marker))))
    local pid = assert(tonumber(agenttest.wait_file(marker)))
    assert.equal(202, hub:post("/v1/runs/" .. id .. "/cancel").status)
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("cancelled", doc.status)
    -- The task's shell, below nice and timeout, is gone.
    assert.truthy(hubtest.wait_for(function() return agenttest.slurp("/proc/" .. pid .. "/stat") == nil end, 10000, 20))
  end)

  it("refuses bad settings at start, naming the key", function()
    local bad = agenttest.start(hub, {
      labels = { lane = "nice-bad" },
      wait = false,
      extra = ("plugin_dirs = { %q }\nschedulers = { nice = { level = 40 } }\n"):format(dir .. "/nice-plugins"),
    })
    local code = bad:wait_exit(20000)
    local log = bad:log()
    bad:cleanup()
    assert.equal(2, code, log)
    assert.truthy(has(log, "level") and has(log, "must be 0 to 19"), log)
  end)
end)

describe("the change policy hook example", function()
  local agent
  local PARAMS = json.array { { slug = "ticket", type = "string", required = false } }

  setup(function()
    agent = agenttest.start(hub, {
      labels = { lane = "policy" },
      extra = ("plugin_dirs = { %q }\n"):format(plugin_dir("policy-plugins", "change_policy")),
    })
  end)

  teardown(function()
    if agent then agent:cleanup() end
  end)

  local function run(params)
    local marker = dir .. "/ran-" .. tostring(os.time()) .. "-" .. math.random(1e9)
    local slug = agenttest.sh_task(hub, ("touch %s; echo ran"):format(q(marker)),
      { parameters = PARAMS, constraints = { lane = "policy" } })
    local doc = agenttest.wait_run(hub, agenttest.run(hub, slug, params))
    return doc, agenttest.slurp(marker) ~= nil, slug
  end

  it("declines a run without a ticket: it fails with the policy's reason and nothing starts", function()
    local doc, ran, slug = run(nil)
    assert.equal("failed", doc.status)
    assert.equal(("change policy: a run of '%s' needs a change ticket (--param ticket=OPS-1234)"):format(slug), doc.error)
    assert.is_false(ran)
    assert.truthy(has(agenttest.log_text(hub, doc.id, "system"), "declined: change policy"))
  end)

  it("declines a ticket that is not a ticket id", function()
    local doc, ran = run({ ticket = "please" })
    assert.equal("failed", doc.status)
    assert.equal("change policy: 'please' is not a ticket id (like OPS-1234)", doc.error)
    assert.is_false(ran)
  end)

  it("accepts an emergency ticket at any hour", function()
    local doc, ran = run({ ticket = "EMERG-17" })
    assert.equal("succeeded", doc.status, doc.error)
    assert.is_true(ran)
  end)

  it("decides by the clock: ordinary tickets in business hours only", function()
    package.path = SRC .. "/examples/plugins/?.lua;" .. package.path
    local policy = require "change_policy.policy"
    local r = { task = { slug = "restart-db" }, params = { ticket = "OPS-1234" } }
    -- os.date's wday: 1 is Sunday.
    assert.is_true(policy.decide(r, { wday = 3, hour = 10, min = 0 }))
    assert.is_true(policy.decide(r, { wday = 6, hour = 17, min = 59 }))
    local ok, why = policy.decide(r, { wday = 3, hour = 18, min = 0 })
    assert.is_false(ok)
    assert.equal("change policy: outside business hours (Tuesday 18:00); only EMERG- tickets run now", why)
    assert.is_false((policy.decide(r, { wday = 1, hour = 10, min = 0 })))
    assert.is_false((policy.decide(r, { wday = 7, hour = 12, min = 30 })))
    assert.is_true(policy.decide({ task = r.task, params = { ticket = "EMERG-1" } }, { wday = 1, hour = 3, min = 0 }))
    -- A task without parameters: params is JSON null.
    assert.is_false((policy.decide({ task = r.task, params = json.null }, { wday = 3, hour = 10, min = 0 })))
    -- And through the agent: a run with an ordinary ticket goes exactly when the clock says.
    local open = policy.decide(r, os.date("*t"))
    local doc, ran = run({ ticket = "OPS-1234" })
    if open == policy.decide(r, os.date("*t")) then -- the clock crossed no boundary meanwhile
      assert.equal(open and "succeeded" or "failed", doc.status, doc.error)
      assert.equal(open, ran)
    end
  end)
end)
