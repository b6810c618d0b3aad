-- `hangar agent` before it talks to anyone: --help, --check of examples/agent.lua in each of
-- its environments, configuration errors named by file:line, API keys from a file, an fd or
-- the environment (and what it says when one is missing or malformed, never quoting it).
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp, write = agenttest.q, agenttest.slurp, agenttest.write

local dir, key_file
local KEY = "hgr_abcdefghij12_" .. string.rep("A", 41) .. "-_"

setup(function()
  dir = agenttest.tmpdir("agent-config")
  key_file = write(dir .. "/agent.key", KEY .. "\n", "600")
end)

teardown(function()
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

-- `hangar agent ARGS...` with env (NAME = value); returns exit code, stdout, stderr.
local function agent(args, env)
  local vars = { PATH = "/usr/bin:/bin" }
  for k, v in pairs(env or {}) do vars[k] = v end
  local argv = { BIN, "agent" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return testutil.run(argv, vars)
end

describe("hangar agent", function()
  it("explains itself with --help and refuses a missing --config", function()
    local code, out = agent { "--help" }
    assert.equal(0, code)
    assert.truthy(out:find("usage: hangar agent --config FILE", 1, true), out)
    assert.truthy(out:find("SIGHUP", 1, true), out)
    local err
    code, _, err = agent {}
    assert.equal(2, code)
    assert.truthy(err:find("--config FILE is required", 1, true), err)
  end)

  it("checks examples/agent.lua, and each of its environments", function()
    for _, env in ipairs({ {}, { "--env", "staging" }, { "--env", "prod" } }) do
      local args = { "--config", SRC .. "/examples/agent.lua", "--check" }
      for _, a in ipairs(env) do args[#args + 1] = a end
      local code, out, err = agent(args, { HANGAR_HUB__KEY_FILE = key_file })
      assert.equal(0, code, err)
      assert.truthy(out:find("the configuration is valid", 1, true), out)
    end
    local code, _, err = agent({ "--config", SRC .. "/examples/agent.lua", "--env", "qa", "--check" },
      { HANGAR_HUB__KEY_FILE = key_file })
    assert.equal(2, code)
    assert.truthy(err:find("unknown environment 'qa' (known: prod, staging)", 1, true), err)
  end)

  it("names the file and line of every configuration error", function()
    local path = write(dir .. "/bad.lua", table.concat({
      'hub = { url = "http://hub.example.com", key_file = ' .. string.format("%q", key_file) .. ' }',
      "capacty = 3",
      "hooks = { before_run = 42 }",
      'schedulers = { ["local"] = { kill_grace_s = -1 } }',
    }, "\n") .. "\n")
    local code, _, err = agent { "--config", path, "--check" }
    assert.equal(2, code)
    assert.truthy(err:find(path .. ":1: key 'hub': url: plain http:// only on loopback", 1, true), err)
    assert.truthy(err:find(path .. ":2: unknown key 'capacty' (did you mean 'capacity'?)", 1, true), err)
    assert.truthy(err:find(path .. ":3: key 'hooks.before_run': must be a function or a list of functions", 1, true), err)

    path = write(dir .. "/sched.lua", 'hub = { url = "https://hub", key_file = ' .. string.format("%q", key_file) .. ' }\n'
      .. 'schedulers = { ["local"] = { kill_grace_s = -1 } }\n')
    code, _, err = agent { "--config", path, "--check" }
    assert.equal(2, code)
    assert.truthy(err:find("schedulers.local", 1, true) and err:find("must not be negative", 1, true), err)
  end)

  it("says where a key was expected and never prints a malformed one", function()
    local base = 'hub = { url = "https://hub", %s }\n'
    local path = write(dir .. "/nokey.lua", base:format('key_file = "' .. dir .. '/missing.key"'))
    local code, _, err = agent { "--config", path, "--check" }
    assert.equal(2, code)
    assert.truthy(err:find("cannot read key_file " .. dir .. "/missing.key", 1, true), err)

    path = write(dir .. "/envkey.lua", base:format('key_env = "MY_AGENT_KEY"'))
    code, _, err = agent { "--config", path, "--check" }
    assert.equal(2, code)
    assert.truthy(err:find("key_env MY_AGENT_KEY is not set", 1, true), err)
    code, _, err = agent({ "--config", path, "--check" }, { MY_AGENT_KEY = "not-a-key-but-a-secret-value" })
    assert.equal(2, code)
    assert.truthy(err:find("does not hold a Hangar API key", 1, true), err)
    assert.falsy(err:find("not-a-key-but-a-secret-value", 1, true), err)
    code = agent({ "--config", path, "--check" }, { MY_AGENT_KEY = KEY })
    assert.equal(0, code)

    path = write(dir .. "/twokeys.lua", base:format('key_env = "A", key_file = "b"'))
    code, _, err = agent { "--config", path, "--check" }
    assert.equal(2, code)
    assert.truthy(err:find("set exactly one of key_file, key_env or key_fd", 1, true), err)
  end)
end)

describe("an agent whose key comes from a file descriptor", function()
  it("reads it, closes the descriptor and registers", function()
    local hub = hubtest.start { name = "agent-keyfd", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "5" } }
    local a
    finally(function()
      local ok, err = true, nil
      if a then ok, err = pcall(a.cleanup, a) end
      hub:cleanup()
      assert(ok, err)
    end)
    a = agenttest.start(hub, { key_source = "fd" })
    -- The descriptor was closed once read: no descriptor of the agent refers to the key's file.
    local p = assert(io.popen("ls -l /proc/" .. a.pid .. "/fd/ 2>/dev/null"))
    local fds = p:read("a")
    p:close()
    assert.truthy(fds:find("->", 1, true), fds)
    assert.falsy(fds:find("fd.key", 1, true), fds)
    local slug = agenttest.sh_task(hub, "echo from an fd-keyed agent", {})
    local id = agenttest.run(hub, slug)
    assert.equal("succeeded", agenttest.wait_run(hub, id).status)
  end)
end)
