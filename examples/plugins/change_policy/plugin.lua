-- An example drop-in plugin with a policy hook: the agent declines runs that carry no change
-- ticket, and outside business hours it accepts emergency tickets only. A declined run fails
-- at once with the reason, and nothing of it starts on this machine.
--
-- A task opts in by declaring the parameter, and whoever starts a run names the ticket:
--   parameters:
--     - {slug: ticket, type: string, required: false, description: Change ticket, e.g. OPS-1234}
--   hangar run restart-db --param ticket=OPS-1234 --follow
--
-- Copy this directory into one of the agent's plugin_dirs. The rules themselves are in
-- policy.lua, where they can be changed (and tested) without an agent.
local policy = require "change_policy.policy"

return {
  name = "change_policy",
  version = "1.0.0",
  description = "Declines runs without a change ticket, and non-emergency ones outside business hours.",
  hooks = {
    -- Return false and a reason to decline; anything else lets the run go on.
    before_accept = function(run)
      return policy.decide(run, os.date("*t"))
    end,
  },
}
