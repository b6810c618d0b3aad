-- The scheduler contract fits a remote backend: a test plugin (tests/e2e/backends/remote) runs
-- jobs on a loopback fake job service (tests/helpers/fakeservice.py). With a real hub and agent:
-- the job's log arrives line by line in order, its exit code decides the run, a cancel goes
-- through the service, cleanup deletes the job, and an agent SIGKILLed mid-run and restarted
-- reattaches and finishes the run with every line exactly once.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local sink = require "hangar.sink"
local http = require "hangar.http"
local json = require "hangar.json"

local hub, agent, service

-- Starts the fake service; it exits when its stdin closes.
local function start_service()
  local out = sink.buffer()
  local proc = assert(process.spawn {
    argv = { "python3", "-u", testutil.SRC .. "/tests/helpers/fakeservice.py" },
    env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" },
    stdout = out,
    stderr = out,
    stdin = true,
  })
  local port = hubtest.wait_for(function()
    return tonumber(out:contents():match("port=(%d+)"))
  end, 10000)
  assert(port, "the fake service did not start: " .. out:contents())
  local url = "http://127.0.0.1:" .. port
  local function call(method, path, body)
    local res = assert(http.request { method = method, url = url .. path, json = body, timeout_ms = 10000 })
    return res, res.body and res.body ~= "" and json.decode(res.body) or nil
  end
  return {
    url = url,
    call = call,
    stats = function()
      local _, doc = call("GET", "/stats")
      return doc
    end,
    jobs = function()
      local _, doc = call("GET", "/jobs")
      return doc.jobs
    end,
    stop = function()
      proc:close_stdin()
      proc:wait()
    end,
  }
end

local TASK = {
  slug = "remote-job",
  scheduler = "remote",
  image = "example/job:1",
  parameters = {
    { slug = "lines", type = "integer", required = false, default = 5 },
    { slug = "interval_ms", type = "integer", required = false, default = 20 },
    { slug = "exit_code", type = "integer", required = false, default = 0 },
    { slug = "hold_after", type = "integer", required = false },
  },
}

local function numbered(n, text)
  local out = {}
  for i = 1, n do
    out[i] = (text or "line") .. " " .. i
  end
  return out
end

-- The log requests the service saw for a job.
local function log_requests(job)
  local out = {}
  for _, r in ipairs(service.stats().log_requests) do
    if r.job == job then
      out[#out + 1] = r.from
    end
  end
  return out
end

local function job_of(system_lines)
  for _, l in ipairs(system_lines) do
    local id = l:match("^remote job (%S+) created$")
    if id then
      return id
    end
  end
end

setup(function()
  service = start_service()
  hub = hubtest.start { name = "hub-remote" }
  agent = agenttest.start(hub, {
    labels = { case = "remote" },
    extra = ([[
plugin_dirs = { %q }
schedulers = { remote = { url = %q, poll_ms = 100 } }
]]):format(testutil.SRC .. "/tests/e2e/backends", service.url),
  })
  agent:deploy(TASK)
end)

teardown(function()
  if agent then
    agent:cleanup()
  end
  if hub then
    hub:cleanup()
  end
  if service then
    service.stop()
  end
end)

describe("the remote backend", function()
  it("streams the job's log into the run, in order, and deletes the job after", function()
    local id = agent:start_run("remote-job", { lines = 40, interval_ms = 10 })
    local run = agent:wait_run(id)
    assert.equal("succeeded", run.status, run.error)
    assert.equal(0, run.exit_code)
    assert.same(numbered(40), agent:lines(id))
    local job = job_of(agent:lines(id, { system = true }))
    assert.truthy(job)
    assert.same({ 0 }, log_requests(job))
    assert.truthy(hubtest.wait_for(function()
      for _, j in ipairs(service.jobs()) do
        if j == job then
          return false
        end
      end
      return true
    end, 10000), "cleanup did not delete " .. job)
  end)

  it("fails the run with the job's exit code", function()
    local id = agent:start_run("remote-job", { lines = 2, exit_code = 3 })
    local run = agent:wait_run(id)
    assert.equal("failed", run.status)
    assert.equal(3, run.exit_code)
    assert.equal("exit code 3", run.error)
    assert.same(numbered(2), agent:lines(id))
  end)

  it("cancels through the service, with the agent's grace", function()
    local id = agent:start_run("remote-job", { lines = 100000, interval_ms = 20 })
    assert(hubtest.wait_for(function()
      return #agent:lines(id) >= 3
    end, 20000), "no line arrived")
    local res = hub:post("/v1/runs/" .. id .. "/cancel", {})
    assert.equal(202, res.status, res.body)
    local run = agent:wait_run(id)
    assert.equal("cancelled", run.status)
    local lines = agent:lines(id)
    assert.equal("line cancelled", lines[#lines])
    local job = job_of(agent:lines(id, { system = true }))
    local cancels = {}
    for _, c in ipairs(service.stats().cancels) do
      if c.job == job then
        cancels[#cancels + 1] = c.grace_s
      end
    end
    assert.same({ 2 }, cancels)
  end)

  it("reattaches after the agent is SIGKILLed mid-run: every line exactly once", function()
    -- The job stops after line 6 until released, so the agent dies at a known point.
    local id = agent:start_run("remote-job", { lines = 15, interval_ms = 20, hold_after = 6 })
    assert(hubtest.wait_for(function()
      return #agent:lines(id) >= 6
    end, 20000), "the first lines never arrived")
    local job = job_of(agent:lines(id, { system = true }))
    agent:kill()
    -- The job carries on without the agent.
    service.call("POST", "/jobs/" .. job .. "/release")
    assert(hubtest.wait_for(function()
      local _, doc = service.call("GET", "/jobs/" .. job)
      return doc.state ~= "running"
    end, 10000))
    agent:restart()
    local run = agent:wait_run(id)
    assert.equal("succeeded", run.status, run.error)
    assert.same(numbered(15), agent:lines(id))
    -- Watching resumed where the stored log ended, not from the start.
    local froms = log_requests(job)
    assert.equal(2, #froms, json.encode(froms))
    assert.equal(0, froms[1])
    assert.equal(6, froms[2])
    local system = table.concat(agent:lines(id, { system = true }), "\n")
    assert.truthy(system:find("reattached", 1, true), system)
  end)

  it("reattaches after a SIGKILL in the middle of a fast stream: nothing lost, nothing twice", function()
    -- Killed while lines pour in: some were read but not yet in the spool, some in the spool
    -- but not yet at the hub. The resumed stream must cover exactly the rest.
    local id = agent:start_run("remote-job", { lines = 300, interval_ms = 5 })
    assert(hubtest.wait_for(function()
      return #agent:lines(id) >= 40
    end, 20000), "the first lines never arrived")
    local job = job_of(agent:lines(id, { system = true }))
    agent:kill()
    agent:restart()
    local run = agent:wait_run(id)
    assert.equal("succeeded", run.status, run.error)
    assert.same(numbered(300), agent:lines(id))
    local froms = log_requests(job)
    assert.equal(2, #froms, json.encode(froms))
    assert.truthy(froms[2] >= 40, json.encode(froms))
  end)
end)
