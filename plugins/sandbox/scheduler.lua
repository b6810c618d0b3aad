-- The sandbox scheduler: the local scheduler's runs, each inside bubblewrap (bwrap).
--
-- What a sandboxed run sees:
--   - the host's system directories read-only (ro_binds: /usr, /etc, ...), nothing else of the
--     host: no home directories, no agent state directory, no other run's files;
--   - its own work directory, writable, at the same path (it is also HOME), and a private,
--     empty /tmp and /var/tmp; the root and everything else read-only;
--   - a minimal /dev (null, zero, random, ...; not the agent's terminal) and its own /proc;
--   - its own network namespace with only a loopback interface: no network, unless allowed
--     (see `network` below);
--   - its own PID, IPC, UTS and cgroup namespaces, and no capabilities, even when the agent
--     runs as root;
--   - exactly the run's environment (the agent passes it to bwrap, which passes it on; never
--     as --setenv arguments, which anyone on the host could read in /proc/PID/cmdline).
-- The run dies with the agent (--die-with-parent on top of the agent's own guard).
--
-- Settings (schedulers.sandbox in the agent's configuration):
--   network      "task" (default): off unless the task sets resources.network = true;
--                "off": never (a task asking for it fails); "on": every run has the host's
--                network
--   ro_binds     host paths bound read-only at the same place, skipped when missing
--   hide         host paths covered inside the sandbox (a directory shows empty, a file cannot
--                be opened), skipped when missing; by default /etc/hangar, where the agent's
--                key usually lives
--   bwrap, env   the programs used (absolute paths)
--   kill_grace_s as for the local scheduler
--
-- Everything else is the local scheduler's: this module only rewrites the command it runs.
local config = require "hangar.config"
local process = require "hangar.process"
local base = require "hangar.schedulers.local"

local scheduler = {}

local function absolute(v)
  return v:sub(1, 1) == "/" and not v:find("\n", 1, true), "must be an absolute path"
end

local SETTINGS = {
  network = { type = "enum", values = { "task", "off", "on" }, default = "task",
              doc = "who decides whether a run has network access" },
  ro_binds = { type = "list", of = { type = "string", check = absolute },
               default = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc",
                           "/opt", "/run/systemd/resolve" },
               doc = "host paths bound read-only" },
  hide = { type = "list", of = { type = "string", check = absolute }, default = { "/etc/hangar" },
           doc = "host paths covered inside the sandbox" },
  bwrap = { type = "string", default = "/usr/bin/bwrap", check = absolute },
  env = { type = "string", default = "/usr/bin/env", check = absolute,
          doc = "GNU env, 8.31 or later (for --ignore-signal/--default-signal)" },
  kill_grace_s = { type = "number", check = function(v) return v >= 0, "must not be negative" end },
}

function scheduler.configure(settings)
  local s, err = config.check(settings or {}, SETTINGS, { label = "schedulers.sandbox" })
  if not s then
    return nil, err
  end
  local ok, lerr = base.configure({ kill_grace_s = s.kill_grace_s })
  if not ok then
    return nil, lerr
  end
  return s
end

-- Which of the hide paths exist, and whether each is a directory; asked once per agent (a
-- path that appears later is covered after a restart).
local hidden, hidden_for
local function find_hidden(settings, env)
  local key = table.concat(settings.hide, "\0")
  if hidden and hidden_for == key then
    return hidden
  end
  if #settings.hide == 0 then
    return {}
  end
  local argv = { "/bin/sh", "-c",
    'for p do if [ -d "$p" ]; then echo "d $p"; elif [ -e "$p" ]; then echo "f $p"; fi; done', "sh" }
  for _, p in ipairs(settings.hide) do
    argv[#argv + 1] = p
  end
  local proc, err = process.spawn { argv = argv, env = { PATH = env.PATH or "/usr/bin:/bin" }, stdout = "capture" }
  if not proc then
    return nil, "cannot look for the paths to hide: " .. tostring(err)
  end
  local r = proc:wait()
  proc:close()
  local found = {}
  for kind, path in (r.stdout or ""):gmatch("([df]) ([^\n]+)") do
    found[#found + 1] = { dir = kind == "d", path = path }
  end
  hidden, hidden_for = found, key
  return found
end

-- Whether this run gets the network, or nil and why not.
local function network(run, settings)
  local resources = type(run.task.resources) == "table" and run.task.resources or {}
  local asked = resources.network == true
  if settings.network == "on" then
    return true
  elseif settings.network == "off" then
    if asked then
      return nil, "the task asks for network access (resources.network), which this agent's sandbox never allows (schedulers.sandbox.network = \"off\")"
    end
    return false
  end
  return asked
end

--- The command line that runs run.task.command inside the sandbox.
function scheduler.argv(run, ctx, settings, hide)
  local net, err = network(run, settings)
  if net == nil then
    return nil, err
  end
  -- bwrap itself ignores SIGTERM, so a cancel's polite signal (sent to the whole process
  -- group) reaches the run, which gets SIGTERM's default back, instead of killing bwrap and
  -- with it, at once, the run. SIGKILL after the grace still takes everything down.
  -- The run stays in the agent's process group (no --new-session, which would put it out of
  -- the cancel's reach); the terminal-injection attack --new-session prevents needs the
  -- controlling terminal, and /dev/tty is covered below.
  local a = { settings.env, "--ignore-signal=TERM", settings.bwrap,
    "--die-with-parent", "--unshare-all", "--cap-drop", "ALL" }
  local function add(...)
    for _, v in ipairs({ ... }) do
      a[#a + 1] = v
    end
  end
  if net then
    add("--share-net")
  end
  -- Mounts in order, each over the ones before: the private /tmp first, so a bind below /tmp
  -- (a work directory there, say) is not covered by it.
  add("--dev", "/dev", "--ro-bind", "/dev/null", "/dev/tty", "--proc", "/proc",
    "--tmpfs", "/tmp", "--tmpfs", "/var/tmp")
  for _, p in ipairs(settings.ro_binds) do
    add("--ro-bind-try", p, p)
  end
  for _, h in ipairs(hide or {}) do
    if h.dir then
      add("--tmpfs", h.path)
    else
      add("--ro-bind", "/dev/null", h.path)
    end
  end
  add("--bind", ctx.workdir, ctx.workdir, "--remount-ro", "/", "--chdir", base.directory(run, ctx), "--",
    settings.env, "--default-signal=TERM")
  for _, v in ipairs(run.task.command) do
    a[#a + 1] = v
  end
  return a
end

function scheduler.start(run, ctx)
  local command = run.task.command
  if type(command) ~= "table" or #command == 0 then
    return nil, "the task has no command (the sandbox scheduler runs commands, not images)"
  end
  local settings = ctx.settings
  local hide, herr = find_hidden(settings, ctx.env)
  if not hide then
    return nil, herr
  end
  local argv, err = scheduler.argv(run, ctx, settings, hide)
  if not argv then
    return nil, err
  end
  -- The local scheduler runs what it finds in run.task.command: hand it the wrapped one.
  return base.start(base.with_command(run, argv), ctx)
end

-- A run inside bwrap that a signal killed exits with 128 + the signal's number, as in a
-- container: that is what wait reports.
scheduler.wait = base.wait
scheduler.cancel = base.cancel
scheduler.cleanup = base.cleanup

return scheduler
