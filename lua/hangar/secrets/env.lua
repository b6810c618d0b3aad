-- Secret references to the agent's own environment variables: env://DB_PASSWORD.
-- Only the variables the configuration lists in `secret_env` can be read this way: a task
-- author must not be able to pull arbitrary values out of the agent's environment.
local env = {}

--- Makes the resolver; getenv reads the agent's environment (core.getenv), allowed lists the
--- names that may be read.
function env.resolver(getenv, allowed)
  local ok = {}
  for _, name in ipairs(allowed or {}) do
    ok[name] = true
  end
  return function(uri)
    local name = uri:match("^env://([A-Za-z_][A-Za-z0-9_]*)$")
    if not name then
      return nil, "expected env://NAME"
    end
    if not ok[name] then
      return nil, name .. " is not listed in the agent's secret_env"
    end
    local value = getenv(name)
    if value == nil then
      return nil, name .. " is not set in the agent's environment"
    end
    return value
  end
end

return env
