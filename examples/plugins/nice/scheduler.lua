-- The `nice` scheduler: a backend that wraps the local one. Each run's command starts as
--
--     nice -n LEVEL timeout --kill-after=GRACE CAP COMMAND...
--
-- so batch work yields the CPU to everything else on the machine, and no run outlives CAP
-- seconds whatever its task's timeout says. The backend contract (docs/plugins.md) asks for
-- configure, start, wait, cancel and cleanup; this one writes configure, start and wait, and
-- takes cancel and cleanup from the local scheduler unchanged.
--
-- Settings (schedulers.nice in the agent's configuration):
--   level         niceness, 0 (normal) to 19 (only idle CPU); default 10
--   cap_s         the most seconds a run may take; 0: no cap; default 3600
--   kill_after_s  after the cap: SIGTERM, then SIGKILL this many seconds later; default 5
--   nice, timeout the programs (absolute paths); default /usr/bin/nice, /usr/bin/timeout
local config = require "hangar.config"
local base = require "hangar.schedulers.local"

local scheduler = {}

-- timeout(1) exits with this code when the cap was reached.
local TIMED_OUT = 124

local function absolute(v)
  return v:sub(1, 1) == "/", "must be an absolute path"
end

local function non_negative(v)
  return v >= 0, "must not be negative"
end

local SETTINGS = {
  level = { type = "integer", default = 10, check = function(v) return v >= 0 and v <= 19, "must be 0 to 19" end,
            doc = "the niceness runs start with" },
  cap_s = { type = "integer", default = 3600, check = non_negative, doc = "the most seconds a run may take (0: no cap)" },
  kill_after_s = { type = "integer", default = 5, check = non_negative, doc = "SIGKILL this long after the cap's SIGTERM" },
  nice = { type = "string", default = "/usr/bin/nice", check = absolute },
  timeout = { type = "string", default = "/usr/bin/timeout", check = absolute },
}

-- Called at start and on every reload with the configuration's section; what it returns is
-- ctx.settings for each run. Errors name the key ("schedulers.nice: key 'level' ...").
function scheduler.configure(settings)
  return config.check(settings or {}, SETTINGS, { label = "schedulers.nice" })
end

-- The command line this scheduler runs for a task's command.
function scheduler.argv(command, settings)
  local argv = { settings.nice, "-n", tostring(settings.level) }
  if settings.cap_s > 0 then
    argv[#argv + 1] = settings.timeout
    argv[#argv + 1] = "--kill-after=" .. settings.kill_after_s
    argv[#argv + 1] = tostring(settings.cap_s)
  end
  for _, a in ipairs(command) do
    argv[#argv + 1] = a
  end
  return argv
end

function scheduler.start(run, ctx)
  local command = run.task.command
  if type(command) ~= "table" or #command == 0 then
    return nil, "the task has no command (the nice scheduler runs commands, not images)"
  end
  local s = ctx.settings
  -- A line of the scheduler's own in the run's log, so that whoever reads it knows why the
  -- run was slower than on a laptop.
  ctx.system(("nice scheduler: niceness %d, %s"):format(s.level,
    s.cap_s > 0 and ("stopped after " .. s.cap_s .. " s") or "no time cap"))
  -- The local scheduler runs run.task.command: hand it a copy of the run with ours.
  return base.start(base.with_command(run, scheduler.argv(command, s)), ctx)
end

-- The local scheduler's wait, with timeout(1)'s exit code turned into a reason. (A command
-- that itself exits with 124 would read the same: the price of wrapping a program we do not
-- control.)
function scheduler.wait(run, handle, ctx)
  local result = base.wait(run, handle, ctx)
  if result.exit_code == TIMED_OUT and ctx.settings.cap_s > 0 then
    return { exit_code = TIMED_OUT, error = ("stopped by the nice scheduler's cap of %d s"):format(ctx.settings.cap_s) }
  end
  return result
end

-- A cancel reaches nice's and timeout's whole process group, command included, exactly as
-- for the local scheduler; cleanup forgets the process.
scheduler.cancel = base.cancel
scheduler.cleanup = base.cleanup

return scheduler
