-- Capped exponential backoff with full jitter: after the n-th failure in a row, wait a random
-- time in [0, min(cap, base * 2^n)]. Agents that lost the hub together do not come back in
-- lockstep, and none retries in a tight loop.
local backoff = {}

local Backoff = {}
Backoff.__index = Backoff

function backoff.new(base_ms, cap_ms)
  return setmetatable({ base = base_ms or 500, cap = cap_ms or 30000, failures = 0 }, Backoff)
end

--- The delay before the next attempt, in ms; counts a failure.
function Backoff:next()
  local ceiling = math.min(self.cap, self.base * 2 ^ math.min(self.failures, 30))
  self.failures = self.failures + 1
  return math.random(0, math.floor(ceiling))
end

--- After a success.
function Backoff:reset()
  self.failures = 0
end

return backoff
