-- The agent's Lua is sandboxed, also for the configuration file's own code and the hooks it
-- defines, checked through a real agent: no file access (io, dofile, loadfile, a require path
-- of one's own), no os.execute, os.getenv or os.exit, no debug library, no C loader, no
-- bytecode; a hook that spins or eats memory is stopped, fails its run naming the hook, and the
-- agent carries on. (The runtime's unit tests cover each piece; this is the end-to-end check.)
-- What configuration code can do is what Hangar's own modules offer it (hangar.http,
-- hangar.process, ...): it is the operator's code, and docs/security.md says so.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, write = security.q, security.write

local hub, agent, dir

-- Each probe tries one way out of the sandbox and returns the value it got; a probe "leaks"
-- when it returns something other than nil/false without raising.
local HOOKS = [==[
local probes = {
  { "io", function() return io end },
  { "io.open", function() return io.open("/etc/passwd") end },
  { "io.popen", function() return io.popen("id") end },
  { "os.execute", function() return os.execute end },
  { "os.getenv", function() return os.getenv end },
  { "os.remove", function() return os.remove end },
  { "os.rename", function() return os.rename end },
  { "os.exit", function() return os.exit end },
  { "os.tmpname", function() return os.tmpname end },
  { "debug", function() return debug end },
  { "dofile", function() return dofile end },
  { "loadfile", function() return loadfile end },
  { "package.loadlib", function() return package.loadlib end },
  { "string.dump", function() return string.dump end },
  { "load of a binary chunk", function() return load("\27LuaT\0\25\147\13\10\26\10\4\8\8xV") end },
  { "load of a binary chunk through a reader", function()
      local parts = { "\27", "LuaT\0\25\147\13\10\26\10\4\8\8xV" }
      local i = 0
      return load(function() i = i + 1 return parts[i] end, "=reader", "b")
    end },
  { "require 'io'", function() return require("io") end },
  { "require 'os'", function() return require("os").execute end },
  { "require 'debug'", function() return require("debug") end },
  { "require through a path of one's own", function()
      package.path = "/etc/?;/etc/?.lua;/tmp/?.lua"
      package.cpath = "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
      return require("passwd")
    end },
  { "require of a system C module", function() return require("posix") end },
  { "a searcher of one's own", function()
      -- Even a searcher that could reach files would need io; put back what was there after.
      local searchers = package.searchers
      if not searchers then return nil end
      table.insert(searchers, 1, function(name) return loadfile and loadfile("/etc/" .. name) or "\n\tno" end)
      local ok, v = pcall(require, "passwd")
      table.remove(searchers, 1)
      return ok and v or nil
    end },
}

hooks = {
  before_accept = function(run)
    if run.task.slug == "probe" then
      local leaks, tried = {}, 0
      for _, p in ipairs(probes) do
        tried = tried + 1
        local ok, v = pcall(p[2])
        if ok and v then
          leaks[#leaks + 1] = p[1]
        end
      end
      return false, ("sandbox probes: tried=%d leaks=%s"):format(tried, #leaks > 0 and table.concat(leaks, ",") or "none")
    end
    return true
  end,
  before_run = function(run)
    if run.task.slug == "spin" then
      while true do end
    elseif run.task.slug == "hog" then
      local t = {}
      for i = 1, 1e9 do
        t[i] = ("x"):rep(1 << 20) .. i
      end
    end
  end,
}
]==]

setup(function()
  hub = hubtest.start { name = "sec-lua", args = { "--lease-ttl", "30", "--heartbeat-interval", "1", "--poll-wait", "5" } }
  agent = agenttest.start(hub, { extra = HOOKS })
  dir = agenttest.tmpdir("sec-lua")
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, dir)
end)

local function run_of(slug)
  agenttest.task(hub, { slug = slug, command = { "/bin/sh", "-c", "echo ran " .. slug } })
  local id = agenttest.run(hub, slug)
  return id, agenttest.wait_run(hub, id, 40000)
end

describe("a hook in the agent's configuration", function()
  it("has no io, os.execute, os.getenv, debug library, C loader, require path of its own or bytecode", function()
    local id, doc = run_of("probe")
    assert.equal("failed", doc.status)
    local tried, leaks = doc.error:match("sandbox probes: tried=(%d+) leaks=(.*)$")
    assert.truthy(tried, doc.error)
    assert.equal(22, tonumber(tried))
    assert.equal("none", leaks)
    assert.falsy(agenttest.log_text(hub, id):find("ran probe", 1, true))
  end)

  it("that never returns is stopped: its run fails naming it, and the agent carries on", function()
    local _, doc = run_of("spin")
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("hook before_run (" .. agent.config_path, 1, true), doc.error)
    local id2, ok = run_of("after-spin")
    assert.equal("succeeded", ok.status, ok.error)
    assert.truthy(agenttest.log_text(hub, id2):find("ran after-spin", 1, true))
  end)

  it("that eats memory is stopped: its run fails naming it, and the agent carries on", function()
    local _, doc = run_of("hog")
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("hook before_run (" .. agent.config_path, 1, true), doc.error)
    local _, ok = run_of("after-hog")
    assert.equal("succeeded", ok.status, ok.error)
  end)
end)

describe("the configuration file's own code", function()
  it("cannot read a file or load bytecode: the agent refuses to start, naming the line", function()
    for _, code in ipairs({
      'local f = io.open("/etc/passwd")',
      'local text = dofile("/etc/hostname")',
      'assert(load("\\27LuaT\\0"))',
      'os.execute("touch ' .. dir .. '/pwned")',
    }) do
      local path = dir .. "/agent.lua"
      write(path, ('hub = { url = "http://127.0.0.1:1", key_env = "K" }\nstate_dir = %q\n%s\n'):format(dir .. "/state", code))
      local code_, out = security.sh("env -i PATH=/usr/bin:/bin K=x " .. q(BIN) .. " agent --config " .. q(path) .. " --check")
      assert.equal(2, code_, code .. ": " .. out)
      assert.truthy(out:find("agent.lua:3:", 1, true), code .. ": " .. out)
    end
    assert.is_nil(security.slurp(dir .. "/pwned"))
  end)
end)
