-- The bundled sandbox plugin: a `sandbox` scheduler that runs a task's command like the local
-- scheduler does, but inside bubblewrap (see sandbox/scheduler.lua for what a run can reach).
return {
  name = "sandbox",
  version = "1.0.0",
  description = "Runs local commands inside bubblewrap: read-only system, private /tmp, writable work directory only, no network unless allowed.",
  schedulers = {
    sandbox = require "sandbox.scheduler",
  },
}
