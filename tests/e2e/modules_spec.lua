-- The hub and the agent's health listener are modules (hangar-hub.so, hangar-health.so) that
-- only what needs them loads: the executable links neither SQLite nor libh2o, an agent maps
-- them only with health.listen set, and a copy of the executable without its modules still
-- runs agents and the CLI, while `hangar hub` and a health listener name the module missing.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, slurp, write = agenttest.q, agenttest.slurp, agenttest.write
local KEY = "hgr_abcdefghij12_" .. string.rep("A", 41) .. "-_"

local dir, copy

setup(function()
  dir = agenttest.tmpdir("modules")
  -- The executable alone, as if installed without its modules.
  copy = dir .. "/bin/hangar"
  assert(os.execute("mkdir -p " .. q(dir .. "/bin") .. " && cp " .. q(BIN) .. " " .. q(copy)))
end)

teardown(function()
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

local function run(argv)
  return testutil.run(argv, { PATH = "/usr/bin:/bin" })
end

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

-- The libraries a process maps, or nil when its maps cannot be read (the agent is not
-- dumpable: only root reads them).
local function mapped(pid)
  return slurp("/proc/" .. pid .. "/maps")
end

describe("hangar's modules", function()
  it("leave SQLite and libh2o out of the executable", function()
    local code, dyn = testutil.sh("readelf -d " .. q(BIN))
    if code ~= 0 then
      pending("readelf is missing")
      return
    end
    assert.truthy(has(dyn, "liblua5.4"), dyn) -- it did list the libraries
    assert.falsy(has(dyn, "libsqlite3"), dyn)
    assert.falsy(has(dyn, "libh2o"), dyn)
  end)

  it("run `hangar hub` from the hub's module", function()
    local code, out = run { BIN, "hub", "--help" }
    assert.equal(0, code)
    assert.truthy(has(out, "usage: hangar hub init --db PATH"), out)
  end)

  it("are not needed by the CLI or an agent's check; hub names the one missing", function()
    local code, out, err = run { copy, "version" }
    assert.equal(0, code, err)
    assert.truthy(has(out, "hangar "), out)
    code, out = run { copy, "agent", "--help" }
    assert.equal(0, code)
    assert.truthy(has(out, "usage: hangar agent"), out)
    local key_file = write(dir .. "/agent.key", KEY .. "\n", "600")
    local config = write(dir .. "/agent.lua", ('hub = { url = "http://127.0.0.1:1", key_file = %q }\n'
      .. 'state_dir = %q\n'):format(key_file, dir .. "/state"))
    code, out, err = run { copy, "agent", "--config", config, "--check" }
    assert.equal(0, code, err)
    assert.truthy(has(out, "the configuration is valid"), out)

    code, out, err = run { copy, "hub", "--help" }
    assert.equal(1, code, out)
    -- Both places it looks: beside the executable (a build tree) and the installed one.
    assert.truthy(has(err, "module hangar-hub.so is missing"), err)
    assert.truthy(has(err, dir .. "/bin/hangar-hub.so"), err)
    assert.truthy(err:find(dir:gsub("%p", "%%%0") .. "/bin/%S*lib%S*/hangar/hangar%-hub%.so"), err)
  end)

  it("refuse a file that is no module, naming it", function()
    write(dir .. "/bin/hangar-hub.so", "not a shared object\n")
    local code, _, err = run { copy, "hub", "--help" }
    os.remove(dir .. "/bin/hangar-hub.so")
    assert.equal(1, code)
    assert.truthy(has(err, "cannot load module " .. dir .. "/bin/hangar-hub.so"), err)
  end)

  it("stop an agent whose health listener's module is missing, naming it", function()
    local key_file = write(dir .. "/agent.key", KEY .. "\n", "600")
    local config = write(dir .. "/health.lua", ('hub = { url = "http://127.0.0.1:1", key_file = %q }\n'
      .. 'state_dir = %q\nhealth = { listen = "127.0.0.1:0" }\n'):format(key_file, dir .. "/state"))
    -- Bounded: an agent that went on would retry the unreachable hub for ever.
    local code, _, err = run { "timeout", "30", copy, "agent", "--config", config }
    assert.equal(1, code, err)
    assert.truthy(has(err, "health.listen: module hangar-health.so is missing"), err)
    assert.truthy(has(err, dir .. "/bin/hangar-health.so"), err)
  end)

  it("keep an agent free of the hub's libraries, and of libh2o until health.listen", function()
    local hub = hubtest.start { name = "modules" }
    local plain = agenttest.start(hub, { name = "plain" })
    local health = agenttest.start(hub, { name = "health", extra = 'health = { listen = "127.0.0.1:0" }' })
    local plain_maps, health_maps = mapped(plain.pid), mapped(health.pid)
    pcall(plain.cleanup, plain)
    agenttest.cleanup_all(health, hub)
    if not plain_maps or plain_maps == "" then
      pending("cannot read an agent's /proc/PID/maps (not root)")
      return
    end
    assert.truthy(has(plain_maps, "liblua5.4"), plain_maps)
    for _, lib in ipairs({ "hangar-hub.so", "libsqlite3", "hangar-health.so", "libh2o" }) do
      assert.falsy(has(plain_maps, lib), lib .. " is mapped by an agent without health.listen")
    end
    assert.truthy(has(health_maps, "hangar-health.so"), health_maps)
    assert.truthy(has(health_maps, "libh2o"), health_maps)
    assert.falsy(has(health_maps, "libsqlite3"), health_maps)
  end)
end)
