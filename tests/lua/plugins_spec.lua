-- The plugin loader's Lua side: load order, the registry it merges, and errors that name the
-- plugin, its directory and the field. The privileged host (hangar.plugin, which only the agent
-- registers) is stood in for by one built on the full runtime's io and loadfile; the real one is
-- exercised by the e2e plugin specs with a real agent.
local plugins = require "hangar.agent.plugins"

local TMP = os.getenv("HANGAR_TEST_TMP") or "/tmp"
local base

local function sh(cmd)
  assert(os.execute(cmd))
end

local function write(path, text)
  sh("mkdir -p '" .. path:match("^(.*)/[^/]*$") .. "'")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A host with the interface of hangar.plugin, over the test's directories.
local function fake_host(bundled, c_modules)
  return {
    bundled_dir = function()
      return bundled
    end,
    list = function(dir)
      local p = io.popen("cd '" .. dir .. "' 2>/dev/null && pwd -P && LC_ALL=C ls -1")
      local real = p:read("l")
      if not real then
        p:close()
        return nil, "cannot read plugin directory " .. dir .. ": No such file or directory"
      end
      local names = {}
      for name in p:lines() do
        local f = io.open(real .. "/" .. name .. "/plugin.lua")
        if f then
          f:close()
          names[#names + 1] = name
        end
      end
      p:close()
      return names, real
    end,
    load_file = function(path, name)
      local f = assert(io.open(path))
      local text = f:read("a")
      f:close()
      return load(text, "@" .. (name or path), "t")
    end,
    load_c = function(path)
      local m = (c_modules or {})[path:match("[^/]+$")]
      if type(m) == "string" then
        return nil, m
      end
      return m
    end,
  }
end

local n = 0
-- A fresh plugin directory with the given plugins ({ name = plugin.lua text, ["name/x.lua"] = text }).
local function plugin_dir(files)
  n = n + 1
  local dir = ("%s/p%d"):format(base, n)
  sh("mkdir -p '" .. dir .. "'")
  for name, text in pairs(files) do
    if name:find("/", 1, true) then
      write(dir .. "/" .. name, text)
    else
      write(dir .. "/" .. name .. "/plugin.lua", text)
    end
  end
  -- A plugin's own modules are required through its plugin directory, a require root.
  package.path = dir .. "/?.lua;" .. package.path
  return dir
end

local function simple(name, extra)
  return ([[
local plugin = ...
return { name = %q, version = "1.0"%s }
]]):format(name, extra and (", " .. extra) or "")
end

local BACKEND = [[{ start = function() end, wait = function() end, cancel = function() end, cleanup = function() end }]]

local function load(dirs, opts)
  opts = opts or {}
  opts.host = opts.host or fake_host(opts.bundled_dir)
  return plugins.load(dirs, opts)
end

setup(function()
  base = ("%s/plugins-spec-%d-%d"):format(TMP, os.time(), math.random(1 << 30))
  sh("mkdir -p '" .. base .. "'")
end)

teardown(function()
  sh("rm -rf '" .. base .. "'")
end)

describe("plugins.load", function()
  it("loads the bundled directory first, then the configured ones in order, each sorted by name", function()
    local order = {}
    _G.__plugin_order = order
    local function p(name)
      return ([[
local plugin = ...
table.insert(__plugin_order, plugin.name)
return { name = %q, version = "1", hooks = { before_run = function() return %q end } }
]]):format(name, name)
    end
    local bundled = plugin_dir { zeta = p("zeta") }
    local d1 = plugin_dir { beta = p("beta"), alpha = p("alpha"), ["Upper"] = p("Upper") }
    local d2 = plugin_dir { aaa = p("aaa") }
    local reg = assert(load({ d1, d2 }, { bundled_dir = bundled }))
    _G.__plugin_order = nil
    assert.same({ "zeta", "Upper", "alpha", "beta", "aaa" }, order)
    local got = {}
    for i, fn in ipairs(reg.hooks.before_run) do
      got[i] = fn()
    end
    assert.same(order, got)
    assert.same({ "zeta", "Upper", "alpha", "beta", "aaa" }, (function()
      local names = {}
      for i, info in ipairs(reg.plugins) do
        names[i] = info.name
      end
      return names
    end)())
    assert.equal(d1 .. "/alpha", reg.plugins[3].dir)
    -- The registry is also the list of plugins, each with what it provides.
    assert.equal(5, #reg)
    assert.equal(reg.plugins[3], reg[3])
    assert.is_function(reg[3].hooks.before_run)
  end)

  it("merges schedulers, resolvers and hooks given as a function or a list", function()
    local d = plugin_dir {
      one = simple("one", "schedulers = { remote = " .. BACKEND .. " }, secret_resolvers = { vault = function(uri) return 'v:' .. uri end }, hooks = { environment = function(run, env) env.A = '1' end }"),
      two = simple("two", "hooks = { environment = { function(run, env) env.B = '2' end, function(run, env) env.C = '3' end }, after_run = function() end }"),
    }
    local reg = assert(load({ d }))
    assert.is_function(reg.schedulers.remote.start)
    assert.equal("v:vault://x", reg.secret_resolvers.vault("vault://x"))
    assert.equal(3, #reg.hooks.environment)
    local env = {}
    for _, fn in ipairs(reg.hooks.environment) do
      fn({}, env)
    end
    assert.same({ A = "1", B = "2", C = "3" }, env)
    assert.equal(1, #reg.hooks.after_run)
    assert.is_nil(reg.hooks.before_accept)
  end)

  it("lets a plugin require its own modules by its directory name", function()
    local d = plugin_dir {
      mine = [[
local helper = require "mine.helper"
return { name = "mine", version = helper.version, schedulers = { mine = helper.backend } }
]],
      ["mine/helper.lua"] = "return { version = '2.5', backend = " .. BACKEND .. " }",
    }
    local reg = assert(load({ d }))
    assert.equal("2.5", reg.plugins[1].version)
    assert.is_table(reg.schedulers.mine)
  end)

  it("hands plugin.lua its name, directory and a C module loader scoped to its directory", function()
    local seen = {}
    local host = fake_host(nil, { ["native.so"] = { answer = 42 } })
    local load_c = host.load_c
    host.load_c = function(path)
      seen[#seen + 1] = path
      return load_c(path)
    end
    local d = plugin_dir {
      nat = [[
local plugin = ...
local native = plugin.load_c("native.so")
return { name = plugin.name, version = tostring(native.answer), description = plugin.dir }
]],
    }
    local reg = assert(load({ d }, { host = host }))
    assert.equal("42", reg.plugins[1].version)
    assert.equal(d .. "/nat", reg.plugins[1].description)
    assert.same({ d .. "/nat/native.so" }, seen)
  end)

  it("reports a refused C module with the plugin's name and the loader's reason", function()
    local host = fake_host(nil, { ["example.so"] = "example.so was built for Hangar ABI 2, this agent speaks ABI 1" })
    local d = plugin_dir { x = "local plugin = ...\nplugin.load_c('example.so')\nreturn { name = 'x', version = '1' }" }
    local reg, err = load({ d }, { host = host })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'x': example.so was built for Hangar ABI 2, this agent speaks ABI 1", 1, true), err)
    assert.truthy(err:find(d .. "/x", 1, true), err)
  end)

  it("loads a directory listed twice only once", function()
    local d = plugin_dir { once = simple("once") }
    local reg = assert(load({ d, d .. "/" }))
    assert.equal(1, #reg.plugins)
  end)

  it("ignores subdirectories without plugin.lua and hidden ones", function()
    local d = plugin_dir { real = simple("real"), ["notaplugin/readme.lua"] = "return 1", [".hidden"] = simple(".hidden") }
    local reg = assert(load({ d }))
    assert.equal(1, #reg.plugins)
    assert.equal("real", reg.plugins[1].name)
  end)

  it("names a plugin directory that cannot be read", function()
    local reg, err = load({ base .. "/no-such-dir" })
    assert.is_nil(reg)
    assert.truthy(err:find(base .. "/no-such-dir", 1, true), err)
  end)
end)

describe("plugins.load refuses", function()
  local cases = {
    { "a non-table result", "return 42", "plugin.lua must return a table, it returned number" },
    { "a missing name", "return { version = '1' }", "field 'name' must be a non-empty string" },
    { "a name other than the directory's", "return { name = 'other', version = '1' }", "name 'other' differs from its directory name" },
    { "a missing version", "return { name = '%s' }", "field 'version' must be a non-empty string" },
    { "an unknown field", "return { name = '%s', version = '1', schedluers = {} }", "unknown field 'schedluers'" },
    { "a scheduler without wait", "return { name = '%s', version = '1', schedulers = { s = { start = print, cancel = print, cleanup = print } } }", "schedulers.s.wait must be a function (got nil)" },
    { "a scheduler whose reattach is not a function", "return { name = '%s', version = '1', schedulers = { s = { start = print, wait = print, cancel = print, cleanup = print, reattach = 1 } } }", "schedulers.s.reattach must be a function when present" },
    { "a scheduler that is not a table", "return { name = '%s', version = '1', schedulers = { s = 'local' } }", "schedulers.s must be a backend table, not string" },
    { "an unknown hook", "return { name = '%s', version = '1', hooks = { before_runn = print } }", "hooks.before_runn is not a hook (hooks: after_run, agent_start" },
    { "a hook that is not a function", "return { name = '%s', version = '1', hooks = { before_run = 'x' } }", "hooks.before_run must be a function or a list of functions (got string)" },
    { "a hook list with a hole", "return { name = '%s', version = '1', hooks = { after_run = { print, 'x' } } }", "hooks.after_run[2] must be a function" },
    { "a resolver that is not a function", "return { name = '%s', version = '1', secret_resolvers = { vault = true } }", "secret_resolvers.vault must be a function(uri, run)" },
    { "a resolver scheme that is not one", "return { name = '%s', version = '1', secret_resolvers = { ['Vault://'] = print } }", "secret_resolvers: 'Vault://' is not a URI scheme" },
    { "the agent's own scheduler name", "return { name = '%s', version = '1', schedulers = { ['local'] = " .. BACKEND .. " } }", "scheduler 'local' is one of the agent's own schedulers" },
    { "the agent's own resolver scheme", "return { name = '%s', version = '1', secret_resolvers = { file = print } }", "secret resolver 'file' is one of the agent's own resolvers" },
  }
  for i, c in ipairs(cases) do
    it(c[1] .. ", naming the plugin, its directory and the field", function()
      local name = "case" .. i
      local d = plugin_dir { [name] = c[2]:format(name) }
      local reg, err = load({ d })
      assert.is_nil(reg)
      assert.truthy(err:find("plugin '" .. name .. "': ", 1, true), err)
      assert.truthy(err:find(c[3], 1, true), err)
      assert.truthy(err:find(d .. "/" .. name, 1, true), err)
    end)
  end

  it("an error raised by plugin.lua, with its file and line", function()
    local d = plugin_dir { boom = "local x = 1\nerror('no config for boom')\n" }
    local reg, err = load({ d })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'boom': boom/plugin.lua:2: no config for boom (plugin directory " .. d .. "/boom)", 1, true), err)
  end)

  it("two plugins with one directory name in different plugin directories", function()
    local d1 = plugin_dir { twin = simple("twin") }
    local d2 = plugin_dir { twin = simple("twin") }
    local reg, err = load({ d1, d2 })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'twin': another plugin named 'twin' was loaded from " .. d1 .. "/twin", 1, true), err)
  end)

  it("two plugins providing one scheduler", function()
    local d = plugin_dir {
      a1 = simple("a1", "schedulers = { remote = " .. BACKEND .. " }"),
      a2 = simple("a2", "schedulers = { remote = " .. BACKEND .. " }"),
    }
    local reg, err = load({ d })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'a2': scheduler 'remote' is already provided by plugin 'a1'", 1, true), err)
  end)

  it("two plugins providing one secret resolver", function()
    local d = plugin_dir {
      r1 = simple("r1", "secret_resolvers = { vault = print }"),
      r2 = simple("r2", "secret_resolvers = { vault = print }"),
    }
    local reg, err = load({ d })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'r2': secret resolver 'vault' is already provided by plugin 'r1'", 1, true), err)
  end)

  it("a plugin named hangar", function()
    local d = plugin_dir { hangar = simple("hangar") }
    local reg, err = load({ d })
    assert.is_nil(reg)
    assert.truthy(err:find("plugin 'hangar': the name 'hangar' is reserved", 1, true), err)
  end)
end)
