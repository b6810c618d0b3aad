-- An agent's configuration: `hangar agent --config examples/agent.lua --env staging`.
-- Top-level assignments are the settings; `environments` sections are merged over them by
-- --env NAME (or HANGAR_ENV), and HANGAR_<KEY> variables override single keys
-- (HANGAR_CAPACITY=8, HANGAR_HUB__URL=https://...). `hangar agent --check` validates a file.

hub = {
  url = "https://hangar.example.com:8443",
  -- Where the API key (`hangar key create --role agent`) comes from: one of these.
  key_file = "/etc/hangar/agent.key", -- mode 0600
  -- key_env = "HANGAR_AGENT_KEY",    -- removed from the agent's environment once read
  -- key_fd = 3,                      -- read to its end, then closed
  -- A private CA and a client certificate, when the hub wants them:
  -- ca_file = "/etc/hangar/ca.pem",
  -- cert_file = "/etc/hangar/agent.pem", cert_key_file = "/etc/hangar/agent-key.pem",
}

name = "agent-1" -- default: the host name
labels = { env = "dev", region = "eu-west" } -- tasks' constraints must all be among these
capacity = 2 -- runs at once
state_dir = "/var/lib/hangar-agent"

-- The agent's own environment stays out of runs, except the variables named here.
pass_env = { "LANG", "TZ" }
-- Variables a task may read as secrets with {ref: "env://NAME"}.
secret_env = {}
-- Files (or directories, ending in /) a task may read as secrets with {ref: "file:///PATH"}.
secret_files = {}

scheduler = "local" -- for tasks that name none
schedulers = {
  ["local"] = { kill_grace_s = 10 },
}
kill_grace_s = 5 -- SIGTERM, then SIGKILL after this many seconds

-- Extra secret reference schemes: function(uri, run) -> value | nil, message.
-- file:// and env:// are built in; a Vault resolver would call hangar.http here.
secret_resolvers = {}

plugin_dirs = {}

-- Hooks: a function or a list of functions each.
hooks = {
  -- Policy: refuse tasks that want a container image on this machine.
  before_accept = function(run)
    if run.task.image and not run.task.command then
      return false, "this agent runs commands, not images"
    end
  end,
  -- Every run gets to know where it ran.
  environment = function(run, env)
    env.HANGAR_AGENT = "agent-1"
  end,
  after_run = function(run, result)
    local log = require "hangar.log"
    log.info("run ended", { run = run.id, task = run.task.slug, status = result.status })
  end,
}

log_level = "info"

environments = {
  staging = {
    hub = { url = "https://hangar-staging.example.com:8443", key_file = "/etc/hangar/staging-agent.key" },
    labels = { env = "staging" },
  },
  prod = {
    hub = { url = "https://hangar.example.com:8443", key_file = "/etc/hangar/prod-agent.key" },
    labels = { env = "prod" },
    capacity = 8,
    log_level = "warn",
  },
}
