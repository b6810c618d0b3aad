-- An example drop-in plugin whose scheduler is written in Lua: `nice` runs a task's command as
-- the local scheduler does, but at a lower CPU priority and under a hard time cap. Copy this
-- directory into one of the agent's plugin_dirs; a task picks the scheduler with
-- `scheduler: nice`, or an agent makes it its default with `scheduler = "nice"`, and tunes it
-- with `schedulers = { nice = { level = 15, cap_s = 600 } }`.
return {
  name = "nice",
  version = "1.0.0",
  description = "Runs commands like the local scheduler, under nice(1) and timeout(1).",
  schedulers = {
    -- The plugin's directory is a require root: nice/scheduler.lua is "nice.scheduler".
    nice = require "nice.scheduler",
  },
}
