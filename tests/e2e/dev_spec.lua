-- `hangar dev`, the first command a new user runs: the whole system comes up, one run is
-- followed live with its outputs, the secret appears only as [REDACTED], and nothing is left
-- behind (no process, no temporary directory); failures and Ctrl-C say what happened.
local agenttest = require "agenttest"
local hubtest = require "hubtest"
local testutil = require "testutil"
local process = require "hangar.process"
local sink = require "hangar.sink"
local crypto = require "hangar.crypto"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, slurp = agenttest.q, agenttest.slurp

local base -- the TMPDIR every `hangar dev` of this file runs with

setup(function()
  base = agenttest.tmpdir("dev")
end)

teardown(function()
  if base then os.execute("rm -rf " .. q(base)) end
end)

local function env()
  return { PATH = "/usr/local/bin:/usr/bin:/bin", HOME = base, LANG = "C.UTF-8", TMPDIR = base,
           ASAN_OPTIONS = os.getenv("ASAN_OPTIONS"), UBSAN_OPTIONS = os.getenv("UBSAN_OPTIONS") }
end

-- `hangar dev ARGS...` to its end: exit code, stdout, stderr.
local function dev(args)
  local argv = { BIN, "dev" }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  return testutil.run(argv, env())
end

-- What a directory holds (names).
local function entries(dir)
  local p = assert(io.popen("ls -A " .. q(dir)))
  local out = {}
  for name in p:lines() do out[#out + 1] = name end
  p:close()
  return out
end

-- Processes whose working directory is below our TMPDIR: the hub and agent `hangar dev`
-- started run there, so any left over shows up.
local function leftover_processes()
  local p = assert(io.popen("for d in /proc/[0-9]*; do l=$(readlink $d/cwd 2>/dev/null) && " ..
    "case \"$l\" in " .. q(base) .. "/*) echo \"${d#/proc/} $l\";; esac; done"))
  local out = p:read("a")
  p:close()
  return out
end

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

-- The encodings the secret task prints, computed here independently of it.
local function url_encode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end
local function json_escape(s)
  return (s:gsub('[\\"]', "\\%0"))
end

describe("hangar dev", function()
  it("answers --help, and refuses an unknown option with exit code 2", function()
    local code, out = dev { "--help" }
    assert.equal(0, code)
    assert.truthy(has(out, "usage: hangar dev"), out)
    for _, opt in ipairs({ "--task", "--param", "--keep" }) do
      assert.truthy(has(out, opt), opt)
    end
    local err
    code, out, err = dev { "--frobnicate" }
    assert.equal(2, code)
    assert.truthy(has(err, "unknown option '--frobnicate'"), err)
  end)

  it("brings up a hub and an agent, follows a run live with its outputs and the secret redacted, "
    .. "and stops leaving nothing behind", function()
    local code, out, err = dev()
    assert.equal(0, code, out .. err)
    -- Every step, in order.
    local at = 0
    for i = 1, 8 do
      local next_at = out:find("[" .. i .. "/8]", at + 1, true)
      assert.truthy(next_at, "step " .. i .. " missing:\n" .. out)
      at = next_at
    end
    -- The run's log, from stdout and stderr as the CLI prints them, each encoding masked.
    assert.truthy(has(out, "Hello, world. This run got a secret of"), out)
    for _, line in ipairs({ "raw:     [REDACTED]", "base64:  [REDACTED]",
                            "url:     https://api.example.com/login?token=[REDACTED]",
                            'json:    {"token": "[REDACTED]"}' }) do
      assert.truthy(has(out, line), line .. " not in:\n" .. out)
    end
    assert.truthy(has(err, "stderr:  [REDACTED]"), err)
    -- Its outputs, then the summary naming the agent.
    assert.truthy(out:find('"who":%s*"world"'), out)
    assert.truthy(has(out, "of 'secret': succeeded on dev-agent"), out)
    assert.truthy(has(out, "agent drained, deregistered and exited"), out)
    assert.truthy(has(out, "hub stopped"), out)
    assert.truthy(has(out, "removed " .. base .. "/hangar-dev-"), out)
    -- Nothing left: no directory in TMPDIR, no process working in one.
    assert.same({}, entries(base))
    assert.equal("", leftover_processes())
  end)

  it("with --keep keeps its directory, and the secret is in none of the output in any encoding", function()
    local code, out, err = dev { "--keep", "--param", "who=Ada" }
    assert.equal(0, code, out .. err)
    local dir = out:match("kept (" .. base:gsub("%p", "%%%0") .. "/hangar%-dev%-%w+)")
    assert.truthy(dir, out)
    local secret = assert(slurp(dir .. "/demo_token.txt"))
    assert.truthy(#secret >= 20, secret)
    local forms = { secret, crypto.base64_encode(secret), url_encode(secret), json_escape(secret) }
    local agent_log, hub_log = assert(slurp(dir .. "/agent.log")), assert(slurp(dir .. "/hub.log"))
    for _, form in ipairs(forms) do
      for name, text in pairs({ stdout = out, stderr = err, agent_log = agent_log, hub_log = hub_log }) do
        assert.falsy(has(text, form), ("the secret (as %q) is in %s"):format(form, name))
      end
    end
    assert.truthy(out:find('"who":%s*"Ada"'), out)
    assert.truthy(has(agent_log, "deregistered from the hub"), agent_log)
    for _, f in ipairs({ "hub.db", "agent.lua", "agent.key", "admin.key" }) do
      assert.truthy(slurp(dir .. "/" .. f), f .. " not kept")
    end
    assert.equal("", leftover_processes())
    os.execute("rm -rf " .. q(dir))
  end)

  it("exits with a failed run's exit code, after stopping cleanly", function()
    local code, out, err = dev { "--task", "fail" }
    assert.equal(3, code, out .. err)
    assert.truthy(has(out, "about to fail"), out)
    assert.truthy(has(out, "of 'fail': failed on dev-agent (exit code 3)"), out)
    assert.truthy(has(out, "agent drained, deregistered and exited"), out)
    assert.same({}, entries(base))
    assert.equal("", leftover_processes())
  end)

  it("names the step that failed and why, exits 1, and still cleans up", function()
    local code, out, err = dev { "--task", "nosuchtask" }
    assert.equal(1, code, out .. err)
    assert.truthy(has(err, "hangar dev: step 7/8 failed (Run 'nosuchtask' and follow it live)"), err)
    assert.truthy(has(err, "task 'nosuchtask' not found"), err)
    assert.same({}, entries(base))
    assert.equal("", leftover_processes())
  end)

  it("streams the log while the run goes on; Ctrl-C cancels the run and stops everything (exit 130)", function()
    local out, err = sink.buffer(), sink.buffer()
    local p = assert(process.spawn { argv = { BIN, "dev", "--task", "sleepy", "--param", "seconds=120" },
                                     env = env(), stdout = out, stderr = err })
    -- Ticks arrive while the run still has minutes to go: the log is followed live.
    local seen = hubtest.wait_for(function() return has(out:contents(), "tick 1\n") end, 30000, 20)
    assert.truthy(seen, out:contents() .. err:contents())
    assert.falsy(p:done())
    p:signal("INT")
    local done = hubtest.wait_for(function() return p:done() end, 30000, 20)
    assert.truthy(done, "hangar dev did not stop after Ctrl-C:\n" .. out:contents() .. err:contents())
    local r = p:wait()
    p:close()
    local text = out:contents() .. err:contents()
    assert.equal(130, r.exit_code, text)
    assert.truthy(has(text, "of 'sleepy': cancelled on dev-agent"), text)
    assert.truthy(has(text, "agent drained, deregistered and exited"), text)
    assert.same({}, entries(base))
    assert.equal("", leftover_processes())
  end)
end)
