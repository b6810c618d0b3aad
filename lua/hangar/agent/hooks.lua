-- Hooks: functions from the configuration file and from plugins, run at fixed points of the
-- agent's and each run's life.
--
--   agent_start(agent)          the agent has registered; agent_stop(agent) before it exits
--   before_accept(run)          return false, "reason" to decline the run: it fails with that
--                               reason and nothing is started
--   environment(run, env)       edit env in place (or return a new table)
--   before_run(run, env)        last look before the scheduler starts the run
--   after_run(run, result)      result = { status, exit_code, error }
--
-- Hooks run in load order (the configuration's first, then each plugin's); after_* hooks run
-- in reverse, so what a before_* hook set up is torn down last-in first-out. A hook that
-- raises fails the run with "hook NAME (file:line): message".
local config = require "hangar.config"

local hooks = {}

-- Every hook the agent runs, in the order of an agent's life; the configuration schema and the
-- plugin loader check names against this list.
local NAMES = { "agent_start", "agent_stop", "before_accept", "environment", "before_run", "after_run" }
hooks.NAMES = NAMES
local REVERSED = { after_run = true, agent_stop = true }

local Set = {}
Set.__index = Set

local function add(set, name, fn, origin, where)
  local list = set.lists[name]
  list[#list + 1] = { fn = fn, origin = origin, where = where(fn) }
end

local function add_spec(set, name, spec, origin, where)
  if type(spec) == "function" then
    add(set, name, spec, origin, where)
  elseif type(spec) == "table" then
    for _, fn in ipairs(spec) do
      add(set, name, fn, origin, where)
    end
  end
end

-- Lua shortens long chunk names to "...tail": put back the whole path of a file we know.
local function expand(where, files)
  for _, f in ipairs(files or {}) do
    local full = config.full_position(where, f)
    if full ~= where then
      return full
    end
  end
  return where
end

--- Builds the hooks from the configuration's `hooks` table and the plugins' (each plugin a
--- table with `name` and `hooks`), in that order. where(fn) tells where a function was defined
--- ("file:line"; core.where in the agent). files: paths of the files hooks come from (the
--- configuration file), so that messages can name them in full.
function hooks.new(config_hooks, plugins, where, files)
  local set = setmetatable({ lists = {}, files = files }, Set)
  local raw = where
  where = function(fn)
    return expand(raw(fn), files)
  end
  for _, name in ipairs(NAMES) do
    set.lists[name] = {}
  end
  for _, name in ipairs(NAMES) do
    add_spec(set, name, (config_hooks or {})[name], "config", where)
    for _, plugin in ipairs(plugins or {}) do
      add_spec(set, name, (plugin.hooks or {})[name], "plugin " .. tostring(plugin.name), where)
    end
  end
  return set
end

--- The hooks of one kind, in the order they run.
function Set:list(name)
  local list = assert(self.lists[name], "no such hook: " .. tostring(name))
  if not REVERSED[name] then
    return list
  end
  local out = {}
  for i = #list, 1, -1 do
    out[#out + 1] = list[i]
  end
  return out
end

--- The message a failing hook's run fails with. Lua puts "file:line:" in front of a message
--- raised with error("..."): that is the most precise place, so it is kept; otherwise the
--- place the hook was defined is named.
function hooks.failure(name, hook, err, files)
  local text = type(err) == "string" and err or tostring(err)
  local where, rest = text:match("^([^%s:]+:%d+): (.*)$")
  if not where then
    where, rest = hook.where, text
  end
  return ("hook %s (%s): %s"):format(name, expand(where, files), rest)
end

--- Runs every hook of a kind with the arguments. Returns true, or nil and the failure message
--- (the first hook that raised; the ones after it do not run). For before_accept, a hook that
--- returns false declines: nil, reason, "declined". For environment, a hook that returns a
--- table replaces the environment: the final one is the second result on success. on_hook,
--- when given, is called with each hook before it runs (so a crash can be pinned on it).
function Set:run(name, args, on_hook)
  for _, hook in ipairs(self:list(name)) do
    if on_hook then
      on_hook(hook)
    end
    local ok, a, b = pcall(hook.fn, table.unpack(args, 1, args.n or #args))
    if not ok then
      return nil, hooks.failure(name, hook, a, self.files), "error"
    end
    if name == "before_accept" and a == false then
      local reason = b ~= nil and tostring(b) or ("declined by a before_accept hook (" .. hook.where .. ")")
      return nil, reason, "declined"
    end
    if name == "environment" and type(a) == "table" then
      args[2] = a
    end
  end
  if on_hook then
    on_hook(nil)
  end
  if name == "environment" then
    return true, args[2]
  end
  return true
end

return hooks
