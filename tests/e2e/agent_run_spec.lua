-- A real `hangar hub` and `hangar agent`: tasks deployed and started with the CLI run through
-- the local scheduler; logs, outputs and exit codes come back; a run's environment is exactly
-- what the protocol says, without the agent's key or its own environment.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local json = require "hangar.json"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp = agenttest.q, agenttest.slurp

local hub, agent, dir

setup(function()
  hub = hubtest.start { name = "agent-run", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "5" } }
  dir = agenttest.tmpdir("agent-run")
  agent = agenttest.start(hub, {
    capacity = 2,
    key_source = "env",
    pass_env = { "LANG", "PASSED_THROUGH" },
    secret_env = { "AGENT_SECRET_FOR_REFS" },
    env = { AGENT_OWN_VAR = "agent-private-value", PASSED_THROUGH = "visible", AGENT_SECRET_FOR_REFS = "from-the-agent-env" },
  })
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, dir)
end)

-- `hangar ARGS...` as a user would run it; returns exit code, stdout, stderr.
local function hangar(args)
  local argv = { BIN }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return testutil.run(argv, { PATH = "/usr/bin:/bin", HOME = dir, HANGAR_HUB_URL = hub.url, HANGAR_TOKEN = hub.admin_key })
end

describe("hangar agent with the CLI", function()
  it("runs a deployed task through the local scheduler; logs and outputs arrive; exit code 0", function()
    local code, out, err = hangar { "task", "deploy", SRC .. "/examples/tasks/hello.task.yaml", SRC .. "/examples/tasks/fail.task.yaml" }
    assert.equal(0, code, err)
    code, out, err = hangar { "run", "hello", "--param", "name=Ada", "--param", "count=3", "--follow" }
    assert.equal(0, code, err)
    local _, n = out:gsub("Hello, Ada\n", "")
    assert.equal(3, n, out)
    local id = err:match("(run_[%w_-]+)")
    local doc = agenttest.get_run(hub, id)
    assert.equal("succeeded", doc.status)
    assert.equal(0, doc.exit_code)
    assert.same({ greeting = "Hello, Ada", count = 3 }, doc.outputs)
    assert.equal("test-agent", doc.agent.name)
  end)

  it("exits with the task's exit code, stderr included", function()
    local code, out, err = hangar { "run", "fail", "--follow" }
    assert.equal(3, code, err)
    assert.truthy(out:find("about to fail", 1, true), out)
    assert.truthy((out .. err):find("something went wrong", 1, true), out .. err)
    local id = err:match("(run_[%w_-]+)")
    local doc = agenttest.get_run(hub, id)
    assert.equal("failed", doc.status)
    assert.equal("exit code 3", doc.error)
  end)
end)

describe("a run's environment", function()
  it("holds the protocol's variables and pass-through names, never the agent's key or own variables", function()
    local slug = agenttest.sh_task(hub, [[
      echo $$ > "$PARAM_DIR/pid"
      env > "$PARAM_DIR/env"
      while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
      env | sort
    ]], {
      parameters = json.array {
        { slug = "dir", type = "string", required = true },
        { slug = "count", type = "integer", required = true },
        { slug = "ratio", type = "float", required = true },
        { slug = "flag", type = "boolean", required = true },
        { slug = "doc", type = "json", required = true },
        { slug = "day", type = "date", required = false },
      },
      env = { GREETING = "hi", FROM_REF = { ref = "env://AGENT_SECRET_FOR_REFS" } },
    })
    local rdir = agenttest.tmpdir("env-run")
    -- Written by hand: the json parameter's members are not in sorted order, and must stay so.
    local body = ('{"task":%s,"params":{"dir":%s,"count":7,"ratio":0.25,"flag":true,"doc":{"b":1,"a":[true]}}}')
      :format(json.encode(slug), json.encode(rdir))
    local created = assert(hub:request("POST", "/v1/runs", { body = body, headers = { ["Content-Type"] = "application/json" } }))
    assert.equal(201, created.status, created.body)
    local id = created.json.run_id
    local pid = tonumber(agenttest.wait_file(rdir .. "/pid"))
    agenttest.wait_file(rdir .. "/env")
    -- What the kernel says the process got, read while it runs.
    local environ = assert(slurp("/proc/" .. pid .. "/environ"))
    agenttest.write(rdir .. "/go", "")
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status, doc.error)

    local vars = {}
    for entry in environ:gmatch("[^%z]+") do
      local k, v = entry:match("^([^=]+)=(.*)$")
      vars[k] = v
    end
    assert.equal("7", vars.PARAM_COUNT)
    assert.equal("0.25", vars.PARAM_RATIO)
    assert.equal("true", vars.PARAM_FLAG)
    assert.equal('{"b":1,"a":[true]}', vars.PARAM_DOC)
    assert.is_nil(vars.PARAM_DAY)
    assert.equal(rdir, vars.PARAM_DIR)
    assert.same({ dir = rdir, count = 7, ratio = 0.25, flag = true, doc = { b = 1, a = { true } } }, json.decode(vars.HANGAR_PARAMS))
    assert.equal(id, vars.HANGAR_RUN_ID)
    assert.equal(slug, vars.HANGAR_TASK)
    assert.equal(hub.url, vars.HANGAR_HUB_URL)
    assert.truthy(vars.HANGAR_RUN_TOKEN and vars.HANGAR_RUN_TOKEN:match("^hrt_"))
    assert.equal("hi", vars.GREETING)
    assert.equal("from-the-agent-env", vars.FROM_REF)
    assert.equal("/usr/local/bin:/usr/bin:/bin", vars.PATH)
    assert.equal(agent.state_dir .. "/work/" .. id, vars.HOME)
    assert.equal("C.UTF-8", vars.LANG)
    assert.equal("visible", vars.PASSED_THROUGH)
    -- Nothing else of the agent's own environment, and never its key.
    assert.is_nil(vars.AGENT_OWN_VAR)
    assert.is_nil(vars.HANGAR_AGENT_KEY)
    assert.is_nil(vars.AGENT_SECRET_FOR_REFS)
    local key_secret = agent.key:sub(18)
    assert.falsy(environ:find(key_secret, 1, true))
    assert.falsy(environ:find("agent-private-value", 1, true))
    local printed = slurp(rdir .. "/env")
    assert.falsy(printed:find(key_secret, 1, true))
    local allowed = { PWD = true, SHLVL = true, _ = true, OLDPWD = true }
    for k in pairs(vars) do
      assert.truthy(k:match("^PARAM_") or k:match("^HANGAR_") or allowed[k] or k == "GREETING" or k == "FROM_REF"
        or k == "PATH" or k == "HOME" or k == "LANG" or k == "PASSED_THROUGH", "unexpected variable " .. k)
    end
    -- The run's log has the environment with the run token masked, and no key.
    local log = agenttest.log_text(hub, id, "stdout")
    assert.truthy(log:find("HANGAR_RUN_ID=" .. id, 1, true), log)
    assert.falsy(log:find(vars.HANGAR_RUN_TOKEN, 1, true))
    assert.falsy(log:find(key_secret, 1, true))
    os.execute("rm -rf " .. q(rdir))
  end)

  it("is not where the agent keeps its key: the agent's own environment no longer shows it", function()
    -- The agent is not dumpable: only root may read its environ (a test run as another user
    -- cannot, which is the point).
    local environ = slurp("/proc/" .. agent.pid .. "/environ")
    if not environ then
      return pending("only root may read a non-dumpable agent's /proc/PID/environ; run as root to check this")
    end
    assert.falsy(environ:find(agent.key:sub(18), 1, true))
    assert.truthy(environ:find("AGENT_OWN_VAR=agent-private-value", 1, true))
  end)

  it("gets the task's secret config variables, opened from the sealed box and masked in the log", function()
    local res = hub:put("/v1/config-vars/db_password", { value = "s3cret-Pa55word", secret = true })
    assert.equal(200, res.status, res.body)
    local slug = agenttest.sh_task(hub, 'echo "password=$DB_PASSWORD"; [ "$DB_PASSWORD" = s3cret-Pa55word ]',
      { env = { DB_PASSWORD = { config = "db_password" } } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status, doc.error)
    local log = agenttest.log_text(hub, id)
    assert.truthy(log:find("password=", 1, true), log)
    assert.falsy(log:find("s3cret-Pa55word", 1, true), log)
  end)

  it("refuses to start a run whose secret is too large to be masked in its log, naming it", function()
    local huge = ("0123456789abcdef"):rep(5000) -- 80,000 bytes: beyond what the redactor holds
    local res = hub:put("/v1/config-vars/huge_cert", { value = huge, secret = true })
    assert.equal(200, res.status, res.body)
    local slug = agenttest.sh_task(hub, 'echo started; echo "$BIG"', { env = { BIG = { config = "huge_cert" } } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("secret BIG", 1, true), doc.error)
    assert.truthy(doc.error:find("not started", 1, true), doc.error)
    local log = agenttest.log_text(hub, id)
    assert.falsy(("\n" .. log .. "\n"):find("\nstarted\n", 1, true), log) -- the task never ran
    assert.falsy(log:find("0123456789abcdef0123456789abcdef", 1, true))
  end)

  it("fails a run whose secret reference cannot be resolved, naming it, without starting it", function()
    local slug = agenttest.sh_task(hub, "echo started", { env = { TOKEN = { ref = "env://NOT_ALLOWED" } } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("secret TOKEN (env://NOT_ALLOWED)", 1, true), doc.error)
    assert.truthy(doc.error:find("secret_env", 1, true), doc.error)
    assert.falsy(agenttest.log_text(hub, id):find("started", 1, true))
    assert.is_nil(doc.started_at ~= json.null and doc.started_at or nil)
  end)

  it("removes the run's work directory, with what the run left in it, and its record", function()
    local keep = dir .. "/kept"
    assert(os.execute("mkdir -p " .. q(keep) .. " && echo x > " .. q(keep .. "/file")))
    local slug = agenttest.sh_task(hub, "mkdir -p deep/er && echo x > deep/er/file && ln -s " .. q(keep) .. " deep/link")
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status, doc.error)
    assert(hubtest.wait_for(function()
      return agent:record(id) == nil
    end, 5000), "the run's record is still there")
    local code = os.execute("test -e " .. q(agent.state_dir .. "/work/" .. id))
    assert.is_not.equal(true, code, "the run's work directory is still there")
    assert.equal("x\n", slurp(keep .. "/file"), "what a link in it pointed to is untouched")
  end)
end)
