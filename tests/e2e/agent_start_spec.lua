-- The order of a run's start: the agent starts the run's process first and tells the hub
-- (`POST /v1/runs/{id}/start`) while it runs. A real hub and agent, with a proxy between them
-- that holds or refuses the start calls: the process runs before the hub answered; the run is
-- finished only after the answer; a refused start stops the process and fails the run; a
-- cancel while the start is out stops it too; a hub that cannot answer the start is retried
-- while the process carries on; a run reattached after a restart before its start was answered
-- is started then.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local sink = require "hangar.sink"
local http = require "hangar.http"
local json = require "hangar.json"
local timer = require "hangar.timer"

local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp = agenttest.q, agenttest.slurp

local hub, agent, gate_proc, gate_url, dir

setup(function()
  hub = hubtest.start { name = "agent-start", args = { "--lease-ttl", "30", "--heartbeat-interval", "1", "--poll-wait", "5" } }
  dir = agenttest.tmpdir("agent-start")
  local port_file = dir .. "/gate.port"
  gate_proc = assert(process.spawn {
    argv = { "/usr/bin/python3", SRC .. "/tests/helpers/startgate.py", port_file, tostring(hub.port) },
    env = { PATH = "/usr/bin:/bin" },
    stdin = true, -- the gate exits when this closes
  })
  local port = hubtest.wait_for(function() return tonumber(slurp(port_file) or "") end, 10000)
  assert(port, "the start gate did not start")
  gate_url = "http://127.0.0.1:" .. port
  agent = agenttest.start(hub, { hub_url = gate_url, kill_grace_s = 1 })
end)

teardown(function()
  agenttest.cleanup_all(agent, hub)
  if gate_proc then
    gate_proc:kill()
    gate_proc:close()
  end
  if dir then
    os.execute("rm -rf " .. q(dir))
  end
end)

local function gate(ctl)
  local res = assert(http.request { method = ctl and "POST" or "GET", url = gate_url .. "/_gate", json = ctl, timeout_ms = 5000 })
  assert(res.status == 200, res.body)
  return json.decode(res.body)
end

-- The gate's log of the run's calls: "request" and "answer" entries, in order.
local function calls(id)
  local out = {}
  for _, e in ipairs(gate().log) do
    local what = e.path:match("^/v1/runs/" .. id .. "/(%a+)$")
    if what then
      out[#out + 1] = { what = e.what, call = what, status = e.status }
    end
  end
  return out
end

local function index_of(list, what, call)
  for i, e in ipairs(list) do
    if e.what == what and e.call == call then
      return i
    end
  end
end

local function count(list, what, call)
  local n = 0
  for _, e in ipairs(list) do
    if e.what == what and e.call == call then
      n = n + 1
    end
  end
  return n
end

local n = 0
-- A fresh marker directory per test: the task writes its pid there.
local function marks()
  n = n + 1
  local m = dir .. "/m" .. n
  assert(os.execute("mkdir -p " .. q(m)))
  return m
end

-- Runs a shell task that writes its pid into the marker directory m, then runs script.
-- Returns the run's id and the pid, once written whole (the file exists before echo fills it).
local function run_task(m, script)
  local slug = agenttest.sh_task(hub, "echo $$ > " .. q(m .. "/pid") .. "; " .. script)
  local id = agenttest.run(hub, slug)
  local pid = hubtest.wait_for(function() return tonumber((slurp(m .. "/pid") or ""):match("^(%d+)\n")) end, 15000, 20)
  assert(pid, "the run's process wrote no pid to " .. m .. "/pid")
  return id, pid
end

describe("agent: starting a run", function()
  after_each(function()
    gate { start = "pass" }
  end)

  it("runs the process before the hub answered the start, and finishes only after the answer", function()
    gate { start = "hold" }
    local id, pid = run_task(marks(), "echo ran")
    -- The process ran (and ended) while the start call is still held.
    assert.is_true(hubtest.wait_for(function() return gate().held == 1 end, 10000))
    testutil.wait_gone(pid, 10000)
    timer.sleep(300) -- time enough for a finish that did not wait
    assert.is_nil(index_of(calls(id), "request", "finish"), "a finish went out before the start was answered")
    assert.equal("accepted", agenttest.get_run(hub, id).status)

    gate { start = "pass" }
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status)
    assert.is_string(doc.started_at)
    local log = calls(id)
    local answered, finish = index_of(log, "answer", "start"), index_of(log, "request", "finish")
    assert.truthy(answered and finish and answered < finish, json.encode(log))
    assert.equal("ran", agenttest.log_text(hub, id, "stdout"):match("[^\n]+"))
  end)

  it("stops the process and fails the run when the hub refuses the start", function()
    gate { start = "refuse", status = 409, code = "lease_lost" }
    local id, pid = run_task(marks(), "exec sleep 60")
    local doc = agenttest.wait_run(hub, id, 20000)
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("the hub refused to start the run: 409 lease_lost", 1, true), doc.error)
    assert.is_true(testutil.wait_gone(pid, 5000), "the run's process is still running")
    assert.equal(1, count(calls(id), "request", "start"))
  end)

  it("stops the process of a run cancelled while its start is out, and finishes it cancelled", function()
    gate { start = "hold" }
    local id, pid = run_task(marks(), "exec sleep 60")
    assert.is_true(hubtest.wait_for(function() return gate().held == 1 end, 10000))
    local res = assert(hub:post("/v1/runs/" .. id .. "/cancel", {}))
    assert.equal(202, res.status, res.body)
    -- The cancel reaches the agent through its poll; the start is still unanswered.
    assert.is_true(testutil.wait_gone(pid, 10000), "the cancelled run's process is still running")
    assert.equal(1, gate().held)
    assert.equal("cancelling", agenttest.get_run(hub, id).status)

    gate { start = "pass" }
    local doc = agenttest.wait_run(hub, id)
    assert.equal("cancelled", doc.status)
  end)

  it("retries a start the hub cannot answer (503) while the process carries on", function()
    gate { start = "refuse", status = 503, code = "unavailable" }
    local m = marks()
    local id, pid = run_task(m, "while [ ! -e " .. q(m .. "/go") .. " ]; do sleep 0.05; done")
    assert.is_true(hubtest.wait_for(function() return count(calls(id), "request", "start") >= 2 end, 10000))
    assert.is_true(testutil.alive(pid))
    assert.equal("accepted", agenttest.get_run(hub, id).status)

    gate { start = "pass" }
    agenttest.wait_run(hub, id, 10000, "running")
    testutil.write(m .. "/go", "")
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status)
  end)
end)

describe("agent: a reattached run whose start was never answered", function()
  local service_proc, service_url, ragent

  setup(function()
    local out = sink.buffer()
    service_proc = assert(process.spawn {
      argv = { "/usr/bin/python3", "-u", SRC .. "/tests/helpers/fakeservice.py" },
      env = { PATH = "/usr/bin:/bin" },
      stdout = out,
      stderr = out,
      stdin = true, -- the service exits when this closes
    })
    local port = hubtest.wait_for(function() return tonumber(out:contents():match("port=(%d+)")) end, 10000)
    assert(port, "the fake job service did not start: " .. out:contents())
    service_url = "http://127.0.0.1:" .. port
    ragent = agenttest.start(hub, {
      hub_url = gate_url,
      labels = { case = "start-remote" },
      extra = ([[
plugin_dirs = { %q }
schedulers = { remote = { url = %q, poll_ms = 100 } }
]]):format(SRC .. "/tests/e2e/backends", service_url),
    })
  end)

  teardown(function()
    if ragent then
      ragent:cleanup()
    end
    if service_proc then
      service_proc:close_stdin()
      service_proc:wait()
    end
  end)

  it("is started when the agent comes back and the hub still has it accepted", function()
    ragent:deploy {
      slug = "remote-start",
      scheduler = "remote",
      image = "example/job:1",
      parameters = {
        { slug = "lines", type = "integer", required = false, default = 3 },
        { slug = "hold_after", type = "integer", required = false },
      },
    }
    gate { start = "hold" }
    local id = ragent:start_run("remote-start", { lines = 3, hold_after = 1 })
    -- The job exists (its handle is in the record) and the start is held at the gate.
    assert(hubtest.wait_for(function() return (ragent:record(id) or ""):find('"phase":"running"', 1, true) end, 10000),
      "the run's job never started")
    assert.is_true(hubtest.wait_for(function() return gate().held == 1 end, 10000))
    -- The held start is refused as unreachable (so it never reaches the hub), and the agent dies.
    gate { start = "refuse", status = 503, code = "unavailable" }
    ragent:kill()
    assert.equal("accepted", agenttest.get_run(hub, id).status)

    gate { start = "pass" }
    ragent:restart()
    agenttest.wait_run(hub, id, 20000, "running")
    local jobs = assert(http.request { method = "GET", url = service_url .. "/jobs", timeout_ms = 5000 })
    for _, j in ipairs(json.decode(jobs.body).jobs) do
      http.request { method = "POST", url = service_url .. "/jobs/" .. j .. "/release", timeout_ms = 5000 }
    end
    local doc = agenttest.wait_run(hub, id)
    assert.equal("succeeded", doc.status, doc.error)
    assert.is_string(doc.started_at)
    local system = table.concat(ragent:lines(id, { system = true }), "\n")
    assert.truthy(system:find("reattached", 1, true), system)
  end)
end)
