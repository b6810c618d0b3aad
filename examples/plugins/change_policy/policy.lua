-- The rules of the change_policy plugin, as a function of the run and the agent's local time,
-- so that they read (and test) apart from the agent:
--
--   policy.decide(run, now) -> true | false, reason      (now: os.date("*t") or alike)
--
-- 1. Tasks listed in policy.exempt run freely.
-- 2. Every other run needs the parameter `ticket`, shaped like OPS-1234.
-- 3. A ticket of the emergency project (EMERG-17) runs at any time; others only during
--    business hours: Monday to Friday, from 08:00 to 18:00 local time.
local policy = {}

policy.exempt = {} -- task slugs, e.g. { ["disk-usage"] = true }
policy.emergency_project = "EMERG"
policy.open_days = { [2] = true, [3] = true, [4] = true, [5] = true, [6] = true } -- os.date's wday: 1 is Sunday
policy.open_from_hour, policy.open_until_hour = 8, 18

local DAYS = { "Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday" }

local function open(now)
  return policy.open_days[now.wday] == true and now.hour >= policy.open_from_hour and now.hour < policy.open_until_hour
end

function policy.decide(run, now)
  local slug = run.task.slug
  if policy.exempt[slug] then
    return true
  end
  -- params is a JSON object from the hub: a table, or hangar.json.null when there are none.
  local ticket = type(run.params) == "table" and run.params.ticket or nil
  if type(ticket) ~= "string" or ticket == "" then
    return false, ("change policy: a run of '%s' needs a change ticket (--param ticket=OPS-1234)"):format(slug)
  end
  local project = ticket:match("^(%u[%u%d]*)%-%d+$")
  if not project then
    return false, ("change policy: '%s' is not a ticket id (like OPS-1234)"):format(ticket)
  end
  if project == policy.emergency_project then
    return true
  end
  if not open(now) then
    return false, ("change policy: outside business hours (%s %02d:%02d); only %s- tickets run now")
      :format(DAYS[now.wday], now.hour, now.min, policy.emergency_project)
  end
  return true
end

return policy
