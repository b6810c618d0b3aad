-- A real agent when things go wrong: the hub down for 20 s in the middle of a run (the run
-- finishes, every line arrives once, the agent does not hammer the dead hub), the agent
-- SIGKILLed mid-run and restarted (same identity, the spool uploaded, a clear end), and its
-- key revoked (runs stopped, exit 3 saying so).
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local process = require "hangar.process"
local sink = require "hangar.sink"
local json = require "hangar.json"
local timer = require "hangar.timer"
local testutil = require "testutil"

local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp = agenttest.q, agenttest.slurp

local dir

setup(function()
  dir = agenttest.tmpdir("agent-outage")
end)

teardown(function()
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

local DIR_PARAM = json.array { { slug = "dir", type = "string", required = true } }

local function fresh(name)
  local d = dir .. "/" .. name
  os.execute("mkdir -p " .. q(d))
  return d
end

-- The stdout lines of a run, in order, as the hub has them.
local function stdout_lines(hub, id)
  local lines = {}
  for _, e in ipairs(agenttest.events(hub, id, true)) do
    if e.kind == "log" and e.stream == "stdout" then lines[#lines + 1] = e.text end
  end
  return lines
end

local function expect_numbered(lines, n)
  assert.equal(n, #lines, table.concat(lines, "\n"))
  for i = 1, n do
    assert.equal("line " .. i, lines[i])
  end
end

-- A connection-counting proxy in front of the hub's port.
local function start_proxy(port, count_file)
  local out = sink.buffer()
  local p = assert(process.spawn {
    argv = { "/usr/bin/python3", SRC .. "/tests/helpers/countproxy.py", tostring(port), count_file },
    env = { PATH = "/usr/bin:/bin" },
    stdin = true,
    stdout = out,
  })
  local proxy_port = hubtest.wait_for(function() return tonumber(out:contents():match("port=(%d+)")) end, 10000)
  assert(proxy_port, "the proxy did not start")
  return p, proxy_port
end

local function counts(file)
  local text = slurp(file) or ""
  return tonumber(text:match("accepted=(%d+)")) or 0, tonumber(text:match("refused=(%d+)")) or 0
end

-- A hub with the given lease TTL and an agent started with agent_opts, both cleaned up when the
-- test ends.
local function hub_and_agent(name, lease_ttl_s, agent_opts)
  local hub = hubtest.start { name = name, args = { "--lease-ttl", tostring(lease_ttl_s), "--heartbeat-interval", "1", "--poll-wait", "5" } }
  local agent
  finally(function()
    agenttest.cleanup_all(agent, hub)
  end)
  agent = agenttest.start(hub, agent_opts)
  return hub, agent
end

describe("the hub down for 20 s in the middle of a run", function()
  it("does not stop the run; every line arrives exactly once; the agent backs off", function()
    local d = fresh("hub-down")
    local hub = hubtest.start { name = "agent-outage", args = { "--lease-ttl", "5", "--heartbeat-interval", "1", "--poll-wait", "5" } }
    local count_file = d .. "/counts"
    local proxy, port = start_proxy(hub.port, count_file)
    local agent
    finally(function()
      local ok, err = true, nil
      if agent then ok, err = pcall(agent.cleanup, agent) end
      proxy:close_stdin()
      proxy:wait()
      hub:cleanup()
      assert(ok, err)
    end)
    agent = agenttest.start(hub, { hub_url = "http://127.0.0.1:" .. port, retry_cap_ms = 5000 })
    local slug = agenttest.sh_task(hub, [[
      i=1; while [ $i -le 50 ]; do echo "line $i"; i=$((i+1)); done
      touch "$PARAM_DIR/first-half"
      while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
      while [ $i -le 150 ]; do echo "line $i"; i=$((i+1)); sleep 0.01; done
    ]], { parameters = DIR_PARAM })
    local id = agenttest.run(hub, slug, { dir = d })
    agenttest.wait_file(d .. "/first-half")

    hub:stop()
    local t0 = timer.monotonic()
    local _, refused_before = counts(count_file)
    agenttest.write(d .. "/go", "") -- the rest is printed, and the run ends, while the hub is down
    hubtest.sleep(20000 - (timer.monotonic() - t0))
    local _, refused_after = counts(count_file)
    -- The run ended while the hub was away: its events wait in the spool, and its record too,
    -- until the hub acknowledges the finish.
    local spool = agent.state_dir .. "/spool/" .. id .. ".spool"
    assert.truthy(slurp(spool), "the spool of a run the hub has not acknowledged is gone")
    assert.truthy(agent:record(id))
    hub:restart()

    local doc = agenttest.wait_run(hub, id, 60000)
    assert.equal("succeeded", doc.status, doc.error)
    expect_numbered(stdout_lines(hub, id), 150)
    -- Once the finish is acknowledged, the spool and the record go.
    assert.truthy(hubtest.wait_for(function()
      return slurp(spool) == nil and agent:record(id) == nil
    end, 10000), "the spool or record of an acknowledged run stayed")
    -- Each attempt on the dead hub is a connection the proxy could not pass on. Polls and
    -- uploads back off (capped at 5 s here), heartbeats slow down: a few per second at most
    -- all told, where a client retrying in a loop would make thousands.
    local attempts = refused_after - refused_before
    assert.truthy(attempts >= 1, "the agent never tried to reach the hub")
    assert.truthy(attempts <= 60, ("%d connection attempts in 20 s"):format(attempts))

    assert.equal(0, agent:stop())
  end)
end)

describe("an agent SIGKILLed in the middle of a run", function()
  it("comes back as the same agent, uploads the spooled lines and ends the run clearly", function()
    local d = fresh("killed")
    local hub, agent = hub_and_agent("agent-killed", 10, {})
    local agent_id = json.decode(slurp(agent.state_dir .. "/identity.json")).agent_id
    local slug = agenttest.sh_task(hub, [[
      echo $$ > "$PARAM_DIR/pid.tmp"; mv "$PARAM_DIR/pid.tmp" "$PARAM_DIR/pid"
      touch "$PARAM_DIR/started"
      while [ ! -e "$PARAM_DIR/go" ]; do sleep 0.05; done
      i=1; while [ $i -le 30 ]; do echo "line $i"; i=$((i+1)); done
      touch "$PARAM_DIR/printed"
      while :; do sleep 0.1; done
    ]], { parameters = DIR_PARAM })
    local id = agenttest.run(hub, slug, { dir = d })
    agenttest.wait_file(d .. "/started")
    assert.equal("running", agenttest.wait_run(hub, id, 10000, "running").status)

    -- With the hub away, the lines can only be in the agent's spool when it dies.
    hub:stop()
    agenttest.write(d .. "/go", "")
    agenttest.wait_file(d .. "/printed")
    hubtest.sleep(500) -- past the spool's batched fsync
    agent:kill()
    hub:restart()
    agent:restart()

    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.equal("agent restarted; the run's process was lost", doc.error)
    -- And it is lost indeed: it did not outlive the agent that started it.
    local pid = tonumber(slurp(d .. "/pid"))
    assert.truthy(pid)
    assert.truthy(hubtest.wait_for(function() return not testutil.alive(pid) end, 5000),
      "the run's process outlived the agent killed under it")
    assert.equal(agent_id, doc.agent.id)
    assert.equal(agent_id, json.decode(slurp(agent.state_dir .. "/identity.json")).agent_id)
    expect_numbered(stdout_lines(hub, id), 30)
    -- Nothing is left behind for the finished run.
    assert(hubtest.wait_for(function() return agent:record(id) == nil end, 5000))

    assert.equal(0, agent:stop())
  end)
end)

describe("a revoked key", function()
  it("stops the agent's runs and makes it exit 3 saying the key was revoked", function()
    local d = fresh("revoked")
    local hub, agent = hub_and_agent("agent-revoked", 5, { kill_grace_s = 1 })
    local slug = agenttest.sh_task(hub, [[
      echo $$ > "$PARAM_DIR/pid"
      while :; do sleep 0.1; done
    ]], { parameters = DIR_PARAM })
    agenttest.run(hub, slug, { dir = d })
    local pid = tonumber(agenttest.wait_file(d .. "/pid"))
    assert.equal(204, hub:delete("/v1/keys/" .. agent.key_id).status)
    assert.equal(3, agent:wait_exit(20000))
    -- Said plainly on stderr, besides the structured log.
    assert.truthy(agent:log():find("hangar agent: the hub refused the agent's API key (401): it was revoked", 1, true), agent:log())
    assert.falsy(testutil.alive(pid), "the run's process still runs")
  end)
end)
