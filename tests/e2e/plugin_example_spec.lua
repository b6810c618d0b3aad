-- Drop-in plugins in a real agent: the example plugin's C module (built against
-- include/hangar/) loads and its hook changes what a run sees; modules built for another ABI,
-- without the ABI descriptor, outside the plugin directory or writable by anyone are refused
-- with a message naming the plugin and the file; a broken plugin stops the agent at start.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"

local q, write = testutil.q, testutil.write
local SRC = testutil.SRC
local hub, scratch

local function sh(cmd)
  return os.execute(cmd)
end

-- Runs `hangar agent --check` on a configuration using plugin_dirs; returns ok, output.
local function check_config(plugin_dir)
  local dir = testutil.tmpdir("check")
  local key = dir .. "/agent.key"
  write(key, "hgr_aaaaaaaaaaaa_" .. ("A"):rep(43) .. "\n", "600")
  local cfg = dir .. "/agent.lua"
  write(cfg, ("hub = { url = %q, key_file = %q }\nstate_dir = %q\nplugin_dirs = { %q }\n"):format(
    "http://127.0.0.1:1", key, dir .. "/state", plugin_dir))
  local p = io.popen(q(os.getenv("HANGAR_BIN")) .. " agent --check --config " .. q(cfg) .. " 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, out
end

-- Builds a module from C source with the system compiler, as a plugin author would outside
-- Hangar's tree. Returns the path, or nil when no compiler is there.
local function build_module(dir, name, source)
  local c = dir .. "/" .. name .. ".c"
  write(c, source)
  local cmd = ("cc -shared -fPIC $(pkg-config --cflags lua5.4) -I%s -o %s %s 2>&1"):format(
    q(SRC .. "/include"), q(dir .. "/" .. name .. ".so"), q(c))
  local p = io.popen(cmd .. "; echo rc=$?")
  local out = p:read("a")
  p:close()
  if not out:match("rc=0%s*$") then
    return nil, out
  end
  os.remove(c)
  return dir .. "/" .. name .. ".so"
end

-- A plugin directory holding one plugin named name whose plugin.lua is text.
local function plugin_dir(name, text)
  local dir = testutil.tmpdir("plugins")
  sh("mkdir -p " .. q(dir .. "/" .. name))
  write(dir .. "/" .. name .. "/plugin.lua", text)
  return dir, dir .. "/" .. name
end

setup(function()
  hub = hubtest.start { name = "hub-plugins" }
  scratch = testutil.tmpdir("plugin-scratch")
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
  if scratch then
    sh("rm -rf " .. q(scratch))
  end
end)

describe("the example plugin (hostinfo)", function()
  it("loads its C module in a real agent, and its environment hook reaches the run", function()
    local built = testutil.build_dir() .. "/examples/plugins/hostinfo/hostinfo.so"
    assert(io.open(built), "the example module was not built: " .. built)
    local dir = testutil.tmpdir("plugins")
    sh("mkdir -p " .. q(dir .. "/hostinfo"))
    sh(("cp %s %s && cp %s %s"):format(q(SRC .. "/examples/plugins/hostinfo/plugin.lua"), q(dir .. "/hostinfo/"),
      q(built), q(dir .. "/hostinfo/")))
    local agent = agenttest.start(hub, {
      labels = { case = "hostinfo" },
      extra = ("plugin_dirs = { %q }"):format(dir),
    })
    local ok, err = pcall(function()
      local run = agent:run_task { slug = "kernel", command = { "/bin/sh", "-c", 'echo "kernel=$HANGAR_AGENT_KERNEL"' } }
      assert.equal("succeeded", run.status, run.error)
      local p = io.popen("uname -sr")
      local expected = p:read("l")
      p:close()
      assert.same({ "kernel=" .. expected }, run.lines)
      -- The module wrote to the agent's own log through hangar_log(), a function the
      -- executable exports: its symbols resolved against the running agent.
      local line = agent:log():match('[^\n]*"msg":"hostinfo module loaded"[^\n]*')
      assert.truthy(line, agent:log())
      assert.truthy(line:find('"abi":"1"', 1, true), line)
      assert.truthy(line:find(dir .. "/hostinfo/hostinfo.so", 1, true), line)
    end)
    agent:cleanup()
    sh("rm -rf " .. q(dir))
    assert(ok, err)
  end)
end)

describe("a C module", function()
  local function future_source(extra_call)
    return ([[
#include <hangar/plugin.h>
%s
static int open_future(lua_State *L) { %s lua_pushboolean(L, 1); return 1; }
HANGAR_EXPORT const hangar_module hangar_plugin_abi = {HANGAR_ABI_VERSION + 1, sizeof(hangar_module), "future", open_future};
]]):format(extra_call and "void hangar_helper_of_a_later_abi(void);" or "",
      extra_call and "hangar_helper_of_a_later_abi();" or "")
  end

  local function refused_with(dir, plugin, file, message)
    local rc, out = check_config(dir)
    assert.equal(2, rc, out)
    assert.truthy(out:find(("plugin '%s': %s"):format(plugin, message), 1, true), out)
    assert.truthy(out:find(file, 1, true), out)
  end

  it("built for another ABI is refused with both versions named", function()
    local dir, pdir = plugin_dir("future", 'local plugin = ...\nplugin.load_c("future.so")\nreturn { name = "future", version = "1" }\n')
    local so, err = build_module(pdir, "future", future_source(false))
    if not so then
      return pending("no working C compiler: " .. tostring(err))
    end
    refused_with(dir, "future", "future", "future.so was built for Hangar ABI 2, this agent speaks ABI 1")
  end)

  it("built for another ABI and calling a function this agent lacks is refused the same way", function()
    local dir, pdir = plugin_dir("later", 'local plugin = ...\nplugin.load_c("later.so")\nreturn { name = "later", version = "1" }\n')
    local so, err = build_module(pdir, "later", future_source(true))
    if not so then
      return pending("no working C compiler: " .. tostring(err))
    end
    refused_with(dir, "later", "later", "later.so was built for Hangar ABI 2, this agent speaks ABI 1")
  end)

  it("without the ABI descriptor is refused", function()
    local dir, pdir = plugin_dir("plain", 'local plugin = ...\nplugin.load_c("plain.so")\nreturn { name = "plain", version = "1" }\n')
    local so, err = build_module(pdir, "plain", "#include <lua.h>\nint luaopen_plain(lua_State *L) { lua_pushboolean(L, 1); return 1; }\n")
    if not so then
      return pending("no working C compiler: " .. tostring(err))
    end
    refused_with(dir, "plain", "plain", "plain.so does not export hangar_plugin_abi")
  end)

  it("outside the plugin directories is refused", function()
    local outside = testutil.build_dir() .. "/examples/plugins/hostinfo/hostinfo.so"
    local dir = plugin_dir("escape", ('local plugin = ...\nplugin.load_c(%q)\nreturn { name = "escape", version = "1" }\n'):format(outside))
    refused_with(dir, "escape", outside, "C module " .. outside .. " is not inside a plugin directory")
  end)

  it("that every user may write is refused", function()
    local dir, pdir = plugin_dir("loose", 'local plugin = ...\nplugin.load_c("hostinfo.so")\nreturn { name = "loose", version = "1" }\n')
    sh(("cp %s %s && chmod 0666 %s"):format(q(testutil.build_dir() .. "/examples/plugins/hostinfo/hostinfo.so"),
      q(pdir .. "/hostinfo.so"), q(pdir .. "/hostinfo.so")))
    refused_with(dir, "loose", pdir, "C module " .. pdir .. "/hostinfo.so is writable by every user; refusing to load it")
  end)
end)

describe("a broken plugin", function()
  it("stops the agent at start with a message naming the plugin, its file and the field", function()
    local dir = plugin_dir("typo", 'return { name = "typo", version = "1", hooks = { before_rnu = function() end } }\n')
    local agent = agenttest.start(hub, {
      labels = { case = "typo" },
      extra = ("plugin_dirs = { %q }"):format(dir),
      wait = false,
    })
    local exited = hubtest.wait_for(function()
      return not agent:alive()
    end, 15000)
    local log = agent:log()
    agent:cleanup()
    assert.truthy(exited, "the agent kept running with a broken plugin:\n" .. log)
    assert.truthy(log:find("plugin 'typo': hooks.before_rnu is not a hook", 1, true), log)
    assert.truthy(log:find(dir .. "/typo", 1, true), log)
  end)

  it("is reported by --check, and two plugins offering one scheduler too", function()
    local dir = testutil.tmpdir("plugins")
    for _, name in ipairs({ "one", "two" }) do
      sh("mkdir -p " .. q(dir .. "/" .. name))
      write(dir .. "/" .. name .. "/plugin.lua", ([[
return { name = %q, version = "1", schedulers = { shared = {
  start = function() end, wait = function() end, cancel = function() end, cleanup = function() end } } }
]]):format(name))
    end
    local rc, out = check_config(dir)
    assert.equal(2, rc, out)
    assert.truthy(out:find("plugin 'two': scheduler 'shared' is already provided by plugin 'one'", 1, true), out)
  end)
end)
