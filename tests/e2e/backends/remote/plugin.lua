-- A test plugin: the `remote` scheduler, which runs jobs on a remote job service (in the tests,
-- tests/helpers/fakeservice.py). It shows that the scheduler contract fits a backend whose runs
-- live elsewhere: logs streamed over HTTP into the run's log without passing through Lua,
-- cancel through the service, and reattach after an agent restart.
return {
  name = "remote",
  version = "0.1.0",
  description = "Runs jobs on a remote job service (test backend).",
  schedulers = {
    remote = require "remote.scheduler",
  },
}
