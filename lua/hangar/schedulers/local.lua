-- The local scheduler: each run is a process on the agent's own machine.
--
-- This file is also the reference for writing a scheduler backend. A backend is a module that
-- returns a table of functions; the agent calls them in this order for every run:
--
--   configure(settings)              once at start (and on reload) with the configuration's
--                                    schedulers.<name> section; return the settings to use
--                                    (defaults filled in), or nil and a message
--   start(run, ctx) -> handle        launch the run; the handle is a plain table the agent
--                                    writes to its state directory
--   wait(run, handle, ctx) -> result suspends until the run ended:
--                                    { exit_code = N } or { error = "why", exit_code = N|nil }
--   cancel(run, handle, ctx, grace_s) stop it: a polite signal now, force after grace_s
--   cleanup(run, handle, ctx)        always called last, after wait returned
--   reattach(run, handle, ctx)       optional: after an agent restart, find the run again
--                                    (remote backends); return the handle or nil, message
--
-- `run` is the run as the hub sent it (run.task.command, run.task.image, run.params, ...).
-- `ctx` holds what the agent prepared: ctx.env (the exact environment), ctx.workdir (an
-- empty directory for the run, removed after cleanup), ctx.stdout and ctx.stderr (sinks:
-- hand them to a producer and the bytes flow through the redactor to the hub without
-- passing through Lua), ctx:write(stream, text) for output a backend receives as text,
-- ctx.system(text) for a line of the backend's own, ctx.settings, ctx.log.
local process = require "hangar.process"
local config = require "hangar.config"

local scheduler = {}

local SETTINGS = {
  kill_grace_s = { type = "number", check = function(v) return v >= 0, "must not be negative" end,
                   doc = "between SIGTERM and SIGKILL when a run is stopped (default: the agent's kill_grace_s)" },
}

-- The running processes by run id. The process object must stay referenced while the
-- process should live: collecting it kills the process.
local processes = {}

function scheduler.configure(settings)
  return config.check(settings or {}, SETTINGS, { label = "schedulers.local" })
end

--- The directory the command runs in: the run's own work directory, or the task's `workdir`
--- (relative to it, or absolute).
function scheduler.directory(run, ctx)
  local wd = run.task.workdir
  if type(wd) ~= "string" or wd == "" then
    return ctx.workdir
  end
  if wd:sub(1, 1) == "/" then
    return wd
  end
  return ctx.workdir .. "/" .. wd
end

--- For a backend that wraps this one (it runs the task's command inside another program):
--- a copy of run whose task's command is argv, to hand to start. run itself stays as the hub
--- sent it, since hooks and the agent's state directory see that one.
function scheduler.with_command(run, argv)
  local task = {}
  for k, v in pairs(run.task) do
    task[k] = v
  end
  task.command = argv
  local wrapped = {}
  for k, v in pairs(run) do
    wrapped[k] = v
  end
  wrapped.task = task
  return wrapped
end

function scheduler.start(run, ctx)
  local argv = run.task.command
  if type(argv) ~= "table" or #argv == 0 then
    return nil, "the task has no command (the local scheduler runs commands, not images)"
  end
  -- The process gets exactly ctx.env (nothing of the agent's own environment), runs in its
  -- own process group (so a cancel reaches its children too), and writes straight into the
  -- run's log sinks.
  local proc, err = process.spawn {
    argv = argv,
    env = ctx.env,
    cwd = scheduler.directory(run, ctx),
    stdout = ctx.stdout,
    stderr = ctx.stderr,
  }
  if not proc then
    return nil, err
  end
  processes[ctx.run_id] = proc
  return { pid = proc:pid() }
end

function scheduler.wait(run, handle, ctx)
  local proc = processes[ctx.run_id]
  if not proc then
    return { error = "the run's process is gone" }
  end
  local status = proc:wait()
  if status.signal ~= 0 then
    return { error = "killed by signal " .. status.signal }
  end
  return { exit_code = status.exit_code }
end

function scheduler.cancel(run, handle, ctx, grace_s)
  local proc = processes[ctx.run_id]
  if proc and not proc:done() then
    -- SIGTERM to the whole process group now, SIGKILL after the grace.
    proc:kill(math.floor(grace_s * 1000))
  end
end

function scheduler.cleanup(run, handle, ctx)
  local proc = processes[ctx.run_id]
  processes[ctx.run_id] = nil
  if proc then
    proc:close()
  end
end

-- No reattach: a local process dies with the agent that started it (its pipes did too), so
-- after a restart the agent reports the run as lost.

return scheduler
