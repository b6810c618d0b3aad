-- The plugin loader: finds plugin directories, runs each plugin.lua, checks what it returns and
-- merges every plugin's schedulers, hooks and secret resolvers into one registry.
--
--   local plugins = require "hangar.agent.plugins"
--   local reg, err = plugins.load(config.plugin_dirs)
--   reg.schedulers.sandbox          --> the backend table
--   reg.hooks.before_run            --> { fn, fn, ... } in load order
--   reg.secret_resolvers.vault      --> fn(uri, run)
--   reg.plugins                     --> { { name, version, description, dir, schedulers,
--                                         hooks, secret_resolvers }, ... } in load order
--   reg[1], reg[2], ...             --> the same plugins: the registry is also their list
--
-- A plugin is a directory holding plugin.lua. The file is called with one argument, the
-- plugin's host table:
--
--   local plugin = ...
--   plugin.name, plugin.dir          -- its directory name and path
--   plugin.load_c("native.so")       -- a C module shipped in its directory (include/hangar/)
--   plugin.log                       -- hangar.log
--
-- and returns { name, version, description?, schedulers?, hooks?, secret_resolvers? }. Its
-- own Lua modules are required by "<directory name>.<module>", since every plugin directory
-- is a require root. See docs/plugins.md.
local hooks = require "hangar.agent.hooks"
local sorted_keys = require("hangar.tables").sorted_keys

local plugins = {}

-- Every hook the agent runs, as a set. after_* hooks run in reverse load order (the agent does
-- that).
plugins.HOOKS = {}
for _, name in ipairs(hooks.NAMES) do
  plugins.HOOKS[name] = true
end

-- The functions every scheduler backend has (the agent checks its bundled ones against it too).
plugins.BACKEND_REQUIRED = { "start", "wait", "cancel", "cleanup" }
local BACKEND_OPTIONAL = { "configure", "reattach" }
local FIELDS = {
  name = true,
  version = true,
  description = true,
  schedulers = true,
  hooks = true,
  secret_resolvers = true,
}

local function hook_names()
  return table.concat(sorted_keys(plugins.HOOKS), ", ")
end

-- Raised errors carry this table so that load() can tell them from bugs in this file.
local Problem = {}
Problem.__index = Problem
Problem.__tostring = function(p)
  return p.msg
end

local function problem(fmt, ...)
  error(setmetatable({ msg = fmt:format(...) }, Problem), 0)
end

-- Checks one plugin's table; the messages name the field.
local function validate(p, dirname)
  if type(p) ~= "table" then
    problem("plugin.lua must return a table, it returned %s", type(p))
  end
  for _, k in ipairs(sorted_keys(p)) do
    if not FIELDS[k] then
      problem("unknown field '%s' (fields: name, version, description, schedulers, hooks, secret_resolvers)",
        tostring(k))
    end
  end
  if type(p.name) ~= "string" or p.name == "" then
    problem("field 'name' must be a non-empty string")
  end
  if p.name ~= dirname then
    problem("name '%s' differs from its directory name '%s' (the directory name is how its modules are required)",
      p.name, dirname)
  end
  if type(p.version) ~= "string" or p.version == "" then
    problem("field 'version' must be a non-empty string")
  end
  if p.description ~= nil and type(p.description) ~= "string" then
    problem("field 'description' must be a string")
  end
  for _, field in ipairs({ "schedulers", "hooks", "secret_resolvers" }) do
    if p[field] ~= nil and type(p[field]) ~= "table" then
      problem("field '%s' must be a table", field)
    end
  end
  for _, name in ipairs(sorted_keys(p.schedulers or {})) do
    local b = p.schedulers[name]
    if type(name) ~= "string" or not name:match("^[%w_-]+$") then
      problem("schedulers: '%s' is not a scheduler name (letters, digits, '_', '-')", tostring(name))
    end
    if type(b) ~= "table" then
      problem("schedulers.%s must be a backend table, not %s", name, type(b))
    end
    for _, fn in ipairs(plugins.BACKEND_REQUIRED) do
      if type(b[fn]) ~= "function" then
        problem("schedulers.%s.%s must be a function (got %s)", name, fn, type(b[fn]))
      end
    end
    for _, fn in ipairs(BACKEND_OPTIONAL) do
      if b[fn] ~= nil and type(b[fn]) ~= "function" then
        problem("schedulers.%s.%s must be a function when present (got %s)", name, fn, type(b[fn]))
      end
    end
  end
  for _, hook in ipairs(sorted_keys(p.hooks or {})) do
    local h = p.hooks[hook]
    if not plugins.HOOKS[hook] then
      problem("hooks.%s is not a hook (hooks: %s)", tostring(hook), hook_names())
    end
    if type(h) == "table" then
      if #h == 0 then
        problem("hooks.%s must be a function or a non-empty list of functions", hook)
      end
      for i, fn in pairs(h) do
        if math.type(i) ~= "integer" or i < 1 or i > #h or type(fn) ~= "function" then
          problem("hooks.%s[%s] must be a function (a list of functions, in order)", hook, tostring(i))
        end
      end
    elseif type(h) ~= "function" then
      problem("hooks.%s must be a function or a list of functions (got %s)", hook, type(h))
    end
  end
  for _, scheme in ipairs(sorted_keys(p.secret_resolvers or {})) do
    if type(scheme) ~= "string" or not scheme:match("^[a-z][a-z0-9+.-]*$") then
      problem("secret_resolvers: '%s' is not a URI scheme (lower case letters, digits, '+', '-', '.')",
        tostring(scheme))
    end
    if type(p.secret_resolvers[scheme]) ~= "function" then
      problem("secret_resolvers.%s must be a function(uri, run)", scheme)
    end
  end
end

local function set_of(list)
  local s = {}
  for _, v in ipairs(list or {}) do
    s[v] = true
  end
  return s
end

-- The host table handed to one plugin.lua.
local function host_for(host, dirname, dir)
  return {
    name = dirname,
    dir = dir,
    log = require("hangar.log"),
    load_c = function(file)
      if type(file) ~= "string" or file == "" then
        error("load_c: expected a file name inside the plugin's directory", 2)
      end
      local path = file:sub(1, 1) == "/" and file or (dir .. "/" .. file)
      local value, err = host.load_c(path)
      if value == nil then
        problem("%s", err)
      end
      return value
    end,
  }
end

--- Loads the plugins of the bundled directory, then of each directory in dirs (in order);
--- within a directory, in bytewise order of the plugins' directory names.
--- opts (all optional):
---   bundled = false           skip the bundled plugins directory
---   builtin_schedulers        names taken by the agent's own backends (default { "local" })
---   builtin_resolvers         schemes taken by the agent's own resolvers (default file, env)
---   host                      the privileged loader (default require "hangar.plugin")
--- Returns the registry, or nil and a message naming the plugin, its directory and the field.
function plugins.load(dirs, opts)
  opts = opts or {}
  local host = opts.host or require("hangar.plugin")
  local reg = { plugins = {}, schedulers = {}, hooks = {}, secret_resolvers = {} }
  local owner = { schedulers = {}, secret_resolvers = {}, plugins = {} }
  local builtin_schedulers = set_of(opts.builtin_schedulers or { "local" })
  local builtin_resolvers = set_of(opts.builtin_resolvers or { "file", "env" })

  local roots = {}
  if opts.bundled ~= false and host.bundled_dir() then
    roots[#roots + 1] = host.bundled_dir()
  end
  for i, d in ipairs(dirs or {}) do
    if type(d) ~= "string" then
      return nil, ("plugin_dirs[%d] must be a string"):format(i)
    end
    roots[#roots + 1] = d
  end

  local seen_root = {}
  for _, root in ipairs(roots) do
    local names, real = host.list(root)
    if not names then
      return nil, real
    end
    -- The same directory listed twice (the bundled one named in plugin_dirs too): once.
    if not seen_root[real] then
      seen_root[real] = true
      for _, dirname in ipairs(names) do
        local dir = real .. "/" .. dirname
        local file = dir .. "/plugin.lua"
        local ok, lerr = pcall(function()
          if dirname == "hangar" then
            problem("the name 'hangar' is reserved for Hangar's own modules")
          end
          if owner.plugins[dirname] then
            problem("another plugin named '%s' was loaded from %s; plugin names must be unique",
              dirname, owner.plugins[dirname])
          end
          local chunk, cerr = host.load_file(file, dirname .. "/plugin.lua")
          if not chunk then
            problem("%s", cerr)
          end
          local p = chunk(host_for(host, dirname, dir))
          validate(p, dirname)
          for _, name in ipairs(sorted_keys(p.schedulers or {})) do
            if builtin_schedulers[name] then
              problem("scheduler '%s' is one of the agent's own schedulers", name)
            end
            if owner.schedulers[name] then
              problem("scheduler '%s' is already provided by plugin '%s'", name, owner.schedulers[name])
            end
          end
          for _, scheme in ipairs(sorted_keys(p.secret_resolvers or {})) do
            if builtin_resolvers[scheme] then
              problem("secret resolver '%s' is one of the agent's own resolvers", scheme)
            end
            if owner.secret_resolvers[scheme] then
              problem("secret resolver '%s' is already provided by plugin '%s'", scheme,
                owner.secret_resolvers[scheme])
            end
          end
          -- Checked: merge.
          owner.plugins[dirname] = dir
          local info = { name = p.name, version = p.version, description = p.description, dir = dir,
                         schedulers = p.schedulers or {}, hooks = p.hooks or {},
                         secret_resolvers = p.secret_resolvers or {} }
          reg.plugins[#reg.plugins + 1] = info
          reg[#reg + 1] = info
          for name, b in pairs(p.schedulers or {}) do
            reg.schedulers[name] = b
            owner.schedulers[name] = p.name
          end
          for scheme, fn in pairs(p.secret_resolvers or {}) do
            reg.secret_resolvers[scheme] = fn
            owner.secret_resolvers[scheme] = p.name
          end
          for _, hook in ipairs(sorted_keys(p.hooks or {})) do
            local list = reg.hooks[hook] or {}
            reg.hooks[hook] = list
            local h = p.hooks[hook]
            if type(h) == "function" then
              h = { h }
            end
            for _, fn in ipairs(h) do
              list[#list + 1] = fn
            end
          end
        end)
        if not ok then
          local msg = getmetatable(lerr) == Problem and lerr.msg or tostring(lerr)
          return nil, ("plugin '%s': %s (plugin directory %s)"):format(dirname, msg, dir)
        end
      end
    end
  end
  return reg
end

return plugins
