-- The examples a user copies first, run for real: a hub served from examples/hub.lua (its dev
-- environment), an agent from examples/agent.lua (its staging environment, hub and key given
-- by HANGAR_* variables), and every task of examples/tasks deployed and run through the CLI
-- with the logs, outputs and exit codes their comments promise; the secret task's secret only
-- ever reaches the hub as [REDACTED], in each encoding it prints.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local sink = require "hangar.sink"
local json = require "hangar.json"
local crypto = require "hangar.crypto"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, write = agenttest.q, agenttest.write

local hub, dir, agent, agent_log
-- Holds every character the task's encodings treat specially.
local SECRET = "ex-" .. crypto.hex_encode(crypto.random(8)) .. [[/"quoted" & back\slash%+=?]]

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

-- `hangar ARGS...` as a user would type it, with the hub and the admin key exported.
local function hangar(args)
  local argv = { BIN }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return testutil.run(argv, { PATH = "/usr/bin:/bin", HOME = dir, HANGAR_HUB_URL = hub.url, HANGAR_TOKEN = hub.admin_key }, dir)
end

setup(function()
  dir = agenttest.tmpdir("examples-tasks")
  -- Served again on the example's configuration: hubtest's --db and --listen win over the
  -- file, and --master-key points at the key `hub init` made (the file's path is relative).
  hub = hubtest.start { name = "examples-hub" }
  hub:stop()
  hub.args = { "--config", SRC .. "/examples/hub.lua", "--env", "dev", "--master-key", hub.master_key }
  hub:serve(0)
  -- A key bound to env=staging, as the example's staging section declares.
  local key = hub:make_key("agent", { env = "staging" }, "examples-agent")
  local key_file = write(dir .. "/agent.key", key .. "\n", "600")
  agent_log = sink.buffer()
  agent = assert(process.spawn {
    argv = { BIN, "agent", "--config", SRC .. "/examples/agent.lua", "--env", "staging" },
    env = { PATH = "/usr/bin:/bin", HOME = dir, LANG = "C.UTF-8", HANGAR_HUB__URL = hub.url,
            HANGAR_HUB__KEY_FILE = key_file, HANGAR_STATE_DIR = dir .. "/state", HANGAR_LOG_LEVEL = "debug" },
    stdout = agent_log, stderr = agent_log })
  local ready = hubtest.wait_for(function()
    return has(agent_log:contents(), '"msg":"agent ready"') or agent:done()
  end, 20000, 20)
  assert(ready and not agent:done(), "the example agent did not come up:\n" .. agent_log:contents())
end)

teardown(function()
  if agent then
    agent:signal("TERM")
    hubtest.wait_for(function() return agent:done() end, 15000, 20)
    agent:close()
  end
  if hub then hub:cleanup() end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("the example configurations", function()
  it("serve a hub with examples/hub.lua's dev settings", function()
    local res = assert(hub:post("/v1/agents", { name = "probe", labels = { env = "staging" },
      schedulers = json.array { "local" }, public_key = hubtest.random_public_key() },
      hub:make_key("agent", { env = "staging" })))
    assert.equal(201, res.status, res.body)
    -- environments.dev: heartbeat_interval_s = 2, lease_ttl_s = 5.
    assert.equal(2, res.json.heartbeat_interval_s)
    assert.equal(5, res.json.lease_ttl_s)
  end)

  it("run an agent with examples/agent.lua's staging section: its labels and environment hook", function()
    local slug = agenttest.sh_task(hub, 'echo "agent=$HANGAR_AGENT"', { constraints = { env = "staging" } })
    local doc = agenttest.wait_run(hub, agenttest.run(hub, slug))
    assert.equal("succeeded", doc.status, doc.error)
    assert.equal("agent-1", doc.agent.name)
    assert.equal("agent=agent-1", agenttest.log_text(hub, doc.id, "stdout"))
  end)
end)

describe("the example tasks", function()
  setup(function()
    local tasks = {}
    for _, name in ipairs({ "fail", "hello", "secret", "sleepy" }) do
      tasks[#tasks + 1] = SRC .. "/examples/tasks/" .. name .. ".task.yaml"
    end
    write(dir .. "/demo_token.txt", SECRET)
    local code, _, err = hangar { "config", "set", "demo_token", "--secret", "--from-file", "demo_token.txt" }
    assert(code == 0, err)
    code, _, err = hangar { "task", "deploy", table.unpack(tasks) }
    assert(code == 0, err)
  end)

  it("hello greets with its parameters and returns outputs", function()
    local code, out, err = hangar { "run", "hello", "--param", "name=Ada", "--param", "count=2", "--follow" }
    assert.equal(0, code, err)
    local _, n = out:gsub("Hello, Ada\n", "")
    assert.equal(2, n, out)
    local id = err:match("(run_[%w_-]+)")
    assert.same({ greeting = "Hello, Ada", count = 2 }, agenttest.get_run(hub, id).outputs)
    code, out = hangar { "run", "hello", "--param", "count=1", "--param", "loud=true", "--follow" }
    assert.equal(0, code)
    assert.truthy(has(out, "HELLO, WORLD\n"), out)
  end)

  it("fail fails with exit code 3 and its stderr", function()
    local code, out, err = hangar { "run", "fail", "--follow" }
    assert.equal(3, code, err)
    assert.truthy(has(out, "about to fail"), out)
    assert.truthy(has(err, "something went wrong"), err)
    local doc = agenttest.get_run(hub, err:match("(run_[%w_-]+)"))
    assert.equal("failed", doc.status)
    assert.equal("exit code 3", doc.error)
  end)

  it("sleepy ticks until it is cancelled, and says so", function()
    local id = agenttest.run(hub, "sleepy", { seconds = 300 })
    -- Ticks arrive while the run goes on (the events read so far, without waiting for its end).
    assert.truthy(hubtest.wait_for(function()
      for _, e in ipairs(agenttest.events(hub, id, false)) do
        if e.kind == "log" and e.text == "tick 1" then return true end
      end
    end, 20000, 100))
    local code, _, err = hangar { "runs", "cancel", id }
    assert.equal(0, code, err)
    local doc = agenttest.wait_run(hub, id)
    assert.equal("cancelled", doc.status)
    assert.truthy(has(agenttest.log_text(hub, id, "stderr"), "cancelled after"), agenttest.log_text(hub, id))
  end)

  it("secret prints its secret in every encoding, and each reaches the hub as [REDACTED]", function()
    local code, out, err = hangar { "run", "secret", "--param", "who=Ada", "--follow" }
    assert.equal(0, code, err)
    for _, line in ipairs({ "raw:     [REDACTED]\n", "base64:  [REDACTED]\n",
                            "url:     https://api.example.com/login?token=[REDACTED]\n",
                            'json:    {"token": "[REDACTED]"}\n' }) do
      assert.truthy(has(out, line), line .. " not in:\n" .. out)
    end
    assert.truthy(has(err, "stderr:  [REDACTED]\n"), err)
    assert.truthy(has(out, "secret of " .. #SECRET .. " bytes"), out)
    -- Every event the hub stored, and the outputs, hold no form of the secret.
    local id = err:match("(run_[%w_-]+)")
    local stored = json.encode(agenttest.events(hub, id, true))
    local url = SECRET:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)
    local escaped = SECRET:gsub('[\\"]', "\\%0")
    for _, form in ipairs({ SECRET, crypto.base64_encode(SECRET), url, escaped, json.encode(SECRET) }) do
      assert.falsy(has(stored, form), "the hub has the secret as " .. form)
      assert.falsy(has(out .. err, form), "the CLI printed the secret as " .. form)
    end
    local doc = agenttest.get_run(hub, id)
    assert.equal("succeeded", doc.status)
    assert.same({ who = "Ada", printed = { "raw", "base64", "url", "json", "stderr" } }, doc.outputs)
  end)
end)
