-- The agent's configuration schema (`hangar agent --config agent.lua`); examples/agent.lua
-- shows every key in use. lua/hangar/config.lua describes the schema language.
local HOOKS = require("hangar.agent.hooks").NAMES

local function at_least(lo)
  return function(v)
    return v >= lo, ("must be at least %s"):format(lo)
  end
end

local function loopback(host)
  return host == "127.0.0.1" or host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- The scheme and the host a URL names, as an HTTP client reads it: the host comes after any
-- user:password@ and before the port ("http://127.0.0.1:1@hub.example" is hub.example).
local function scheme_host(url)
  local scheme, authority = url:match("^(%a[%w+.-]*)://([^/?#]*)")
  if not scheme then
    return nil
  end
  authority = authority:gsub("^.*@", "")
  local host = authority:match("^%[[^%]]*%]") or authority:match("^[^:]*")
  return scheme:lower(), host:lower()
end

-- The hub section: where the hub is, how to trust it, and where the API key comes from.
local function check_hub(hub)
  local sources = 0
  for _, k in ipairs({ "key_file", "key_env", "key_fd" }) do
    if hub[k] ~= nil then
      sources = sources + 1
    end
  end
  if sources ~= 1 then
    return false, "set exactly one of key_file, key_env or key_fd (where the agent's API key comes from)"
  end
  local scheme, host = scheme_host(tostring(hub.url))
  if scheme ~= "https" and scheme ~= "http" then
    return false, "url must be an https:// (or, on loopback, http://) URL, got " .. string.format("%q", tostring(hub.url))
  end
  if scheme == "http" and not loopback(host) and not hub.allow_plain_http then
    return false, "url: plain http:// only on loopback; use https:// (or set allow_plain_http behind a TLS proxy)"
  end
  if hub.cert_key_file and not hub.cert_file then
    return false, "cert_key_file needs cert_file"
  end
  return true
end

-- A hook is a function or a list of functions.
local function check_hook(v)
  if type(v) == "function" then
    return true
  end
  if type(v) == "table" then
    for i, f in ipairs(v) do
      if type(f) ~= "function" then
        return false, ("item %d is a %s, not a function"):format(i, type(f))
      end
    end
    local n = 0
    for _ in pairs(v) do
      n = n + 1
    end
    if n == #v then
      return true
    end
  end
  return false, "must be a function or a list of functions"
end

local hook_fields = {}
for _, name in ipairs(HOOKS) do
  hook_fields[name] = { type = "any", check = check_hook }
end

local function check_name(v)
  return v:match("^[%w_.-]+$") ~= nil and #v <= 64, "must be 1 to 64 of [A-Za-z0-9_.-]"
end

return {
  hub = {
    type = "table",
    required = true,
    check = check_hub,
    fields = {
      url = { type = "string", required = true, doc = "the hub's base URL" },
      key_file = { type = "string", doc = "a file holding the agent's API key (mode 0600)" },
      key_env = { type = "string", doc = "an environment variable holding the key; removed from the agent's environment once read" },
      key_fd = { type = "integer", check = at_least(0), doc = "a file descriptor to read the key from (closed after)" },
      ca_file = { type = "string", doc = "PEM bundle of the CAs that may sign the hub's certificate (default: the system's)" },
      cert_file = { type = "string", doc = "client certificate (PEM) for mutual TLS" },
      cert_key_file = { type = "string", doc = "its private key, when not in cert_file" },
      allow_plain_http = { type = "boolean", default = false, doc = "allow http:// to a non-loopback hub (behind a TLS proxy)" },
    },
  },
  name = { type = "string", check = check_name, doc = "the agent's name (default: the host name)" },
  labels = { type = "map", of = "string", default = {}, doc = "labels runs' constraints are matched against" },
  capacity = { type = "integer", default = 1, check = at_least(1), doc = "runs at once" },
  state_dir = { type = "string", default = "./hangar-agent-state", doc = "identity, run records, spools, work directories" },
  pass_env = { type = "list", of = "string", default = {}, doc = "the agent's environment variables passed to runs, by name" },
  secret_env = {
    type = "list",
    of = "string",
    default = {},
    doc = "the agent's environment variables a task may read through env://NAME secret references",
  },
  secret_files = {
    type = "list",
    of = { type = "string", check = function(v)
      return v:sub(1, 1) == "/", "must be an absolute path (a directory ends in /)"
    end },
    default = {},
    doc = "files (or directories, ending in /) a task may read through file:// secret references",
  },
  scheduler = { type = "string", default = "local", doc = "the scheduler of tasks that name none" },
  schedulers = { type = "map", of = "table", default = {}, doc = "each scheduler's settings, by name" },
  hooks = { type = "table", fields = hook_fields, doc = "functions run at fixed points of the agent's and each run's life" },
  plugin_dirs = { type = "list", of = "string", default = {}, doc = "directories holding plugins" },
  secret_resolvers = {
    type = "map",
    of = "function",
    default = {},
    doc = "scheme -> function(uri, run) returning the secret's value, or nil and a message",
  },
  health = {
    type = "table",
    doc = "the optional health and metrics listener (GET /healthz, GET /metrics)",
    fields = {
      listen = { type = "string", doc = "HOST:PORT; loopback unless allow_remote" },
      allow_remote = { type = "boolean", default = false, doc = "listen on a non-loopback address (it has no authentication)" },
    },
  },
  kill_grace_s = { type = "number", default = 5, check = at_least(0), doc = "between SIGTERM and SIGKILL when a run is stopped" },
  spool = {
    type = "table",
    fields = {
      budget_mb = { type = "integer", default = 1024, check = at_least(1) },
      max_run_log_mb = { type = "integer", default = 512, check = at_least(1) },
    },
  },
  retry = {
    type = "table",
    doc = "capped full-jitter backoff when the hub cannot be reached or answers 5xx",
    fields = {
      base_ms = { type = "integer", default = 500, check = at_least(1) },
      cap_ms = { type = "integer", default = 30000, check = at_least(1) },
    },
  },
  log_level = { type = "enum", values = { "debug", "info", "warn", "error" }, default = "info" },
}
