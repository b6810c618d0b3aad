-- An example drop-in plugin with a C module: each run learns the agent's kernel through an
-- environment hook, and the agent declines new runs while its host is overloaded.
-- Build hostinfo.so with the CMakeLists.txt beside this file and copy it here (docs/plugins.md).
local plugin = ...

-- Loaded from this directory; refused if it was built for another Hangar ABI.
local native = plugin.load_c("hostinfo.so")

-- Runs are declined above this one-minute load average (per the whole host).
local MAX_LOAD = 64

return {
  name = "hostinfo",
  version = "1.0.0",
  description = "Sets HANGAR_AGENT_KERNEL in every run; declines runs while the host is overloaded.",
  hooks = {
    before_accept = function(run)
      local load = native.load()
      if load and load > MAX_LOAD then
        return false, ("the agent's host is overloaded (load %.1f)"):format(load)
      end
      return true
    end,
    environment = function(run, env)
      env.HANGAR_AGENT_KERNEL = assert(native.kernel())
    end,
  },
}
