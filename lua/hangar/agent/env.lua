-- A run's environment, built exactly as the protocol says: the variables the agent's
-- configuration passes through, the task's env, its secrets (sealed and referenced), each
-- parameter as PARAM_<SLUG>, all of them as HANGAR_PARAMS, the HANGAR_* facts of the run, and
-- a base PATH and HOME. Nothing else of the agent's own environment ever gets in.
local json = require "hangar.json"

local env = {}

local BASE_PATH = "/usr/local/bin:/usr/bin:/bin"

-- The shortest decimal text that reads back as the same double.
local function shortest(x)
  if x == math.floor(x) and math.abs(x) < (1 << 53) then
    return string.format("%d", math.tointeger(x) or x)
  end
  for digits = 1, 17 do
    local text = string.format("%." .. digits .. "g", x)
    if tonumber(text) == x then
      return text
    end
  end
  return string.format("%.17g", x)
end

--- The text of a parameter's value in PARAM_<SLUG>. json_text, when given, is the value's
--- compact JSON as the hub sent it (member order kept); it is used for `json` parameters.
function env.param_text(value, ptype, json_text)
  if ptype == "json" then
    return json_text or json.encode(value)
  elseif ptype == "boolean" then
    return value and "true" or "false"
  elseif ptype == "integer" then
    return math.type(value) == "integer" and tostring(value) or shortest(value)
  elseif ptype == "float" then
    return shortest(value)
  elseif type(value) == "string" then
    -- string, text, date, datetime: as they are
    return value
  end
  -- A parameter the task no longer declares: strings as they are, anything else as JSON.
  return json_text or json.encode(value)
end

--- The variable a parameter's value goes into.
function env.param_name(slug)
  return "PARAM_" .. slug:upper()
end

local function put_all(into, from)
  for k, v in pairs(from or {}) do
    if type(k) == "string" and type(v) == "string" then
      into[k] = v
    end
  end
end

--- Builds the environment. opts:
---   run          the RUN document (task, params, env, run_token, id)
---   pass         { NAME = value } the agent passes through (already read from its environment)
---   secrets      { NAME = value } opened from the sealed secrets
---   refs         { NAME = value } resolved secret references
---   hub_url      the hub the run talks back to
---   workdir      the run's work directory (HOME unless set otherwise)
---   params_json  optional: { all = compact JSON of run.params, each = { slug = JSON } } as the
---                hub sent them (member order kept); without it, they are encoded here
--- Later sources win over earlier ones, in the order listed above, then the parameters and the
--- HANGAR_* variables; PATH and HOME are set only when nothing else set them.
function env.build(opts)
  local run = opts.run
  local task = run.task or {}
  local out = {}
  put_all(out, opts.pass)
  put_all(out, run.env ~= json.null and run.env or nil)
  put_all(out, opts.secrets)
  put_all(out, opts.refs)

  local types = {}
  for _, p in ipairs(task.parameters ~= json.null and task.parameters or {}) do
    types[p.slug] = p.type
  end
  local params = run.params ~= json.null and run.params or {}
  local each = opts.params_json and opts.params_json.each or {}
  for slug, value in pairs(params) do
    if value ~= json.null then
      out[env.param_name(slug)] = env.param_text(value, types[slug], each[slug])
    end
  end
  out.HANGAR_PARAMS = opts.params_json and opts.params_json.all or json.encode(json.object(params))
  out.HANGAR_RUN_ID = run.id
  out.HANGAR_TASK = task.slug
  out.HANGAR_HUB_URL = opts.hub_url
  out.HANGAR_RUN_TOKEN = run.run_token ~= json.null and run.run_token or nil

  if out.PATH == nil then
    out.PATH = BASE_PATH
  end
  if out.HOME == nil then
    out.HOME = opts.workdir
  end
  return out
end

return env
