-- The agent's optional health listener with a real agent: off unless configured, /healthz and
-- /metrics (Prometheus text) on loopback, a non-loopback address refused unless allowed, gone
-- when the agent exits.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local http = require "hangar.http"
local json = require "hangar.json"
local timer = require "hangar.timer"

local hub

setup(function()
  hub = hubtest.start { name = "hub-health" }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

-- Starts an agent with the given health section; returns it and the listener's URL.
local function agent_with(health, labels)
  local agent = agenttest.start(hub, { labels = labels, extra = "health = " .. health })
  local ok, url = pcall(agent.wait_match, agent, '"msg":"health listener"[^\n]-"url":"([^"]+)"')
  if not ok then
    agent:cleanup()
    error(url, 0)
  end
  return agent, url
end

local function get(url)
  return http.request { url = url, timeout_ms = 5000 }
end

describe("the health listener", function()
  it("answers /healthz and /metrics on loopback", function()
    local agent, url = agent_with('{ listen = "127.0.0.1:0" }', { case = "health" })
    local ok, err = pcall(function()
      assert.truthy(url:match("^http://127%.0%.0%.1:%d+$"), url)
      local res = assert(get(url .. "/healthz"))
      assert.equal(200, res.status)
      assert.same({ ok = true }, json.decode(res.body))
      res = assert(get(url .. "/metrics"))
      assert.equal(200, res.status)
      assert.truthy(res.headers["content-type"]:find("text/plain; version=0.0.4", 1, true), res.headers["content-type"])
      assert.truthy(res.body:find("# TYPE hangar_agent_info gauge\nhangar_agent_info{version=\"", 1, true), res.body)
      -- Every line is a comment or "name{labels} value".
      for line in res.body:gmatch("[^\n]+") do
        assert.truthy(line:match("^# ") or line:match("^[%a_:][%w_:]*{?.-}? %S+$"), line)
      end
      res = assert(get(url .. "/v1/agents"))
      assert.equal(404, res.status)
    end)
    agent:cleanup()
    assert(ok, err)
  end)

  it("shows the runs going on", function()
    local agent, url = agent_with('{ listen = "127.0.0.1:0" }', { case = "health-runs" })
    local ok, err = pcall(function()
      agent:deploy { slug = "health-sleep", command = { "/bin/sh", "-c", "echo up; sleep 3" } }
      local id = agent:start_run("health-sleep")
      assert(hubtest.wait_for(function()
        return #agent:lines(id) > 0
      end, 20000), "the run did not start")
      local body = assert(get(url .. "/metrics")).body
      assert.truthy(body:find('hangar_agent_runs{state="running"} 1\n', 1, true), body)
      agent:wait_run(id)
    end)
    agent:cleanup()
    assert(ok, err)
  end)

  it("counts events the hub has not acknowledged while it is away, and the reconnects after", function()
    local own = hubtest.start { name = "hub-health-outage" }
    local agent = agenttest.start(own, { labels = { case = "health-outage" }, extra = 'health = { listen = "127.0.0.1:0" }' })
    local ok, err = pcall(function()
      local url = select(1, agent:wait_match('"msg":"health listener"[^\n]-"url":"([^"]+)"'))
      local function metric(name)
        local body = assert(get(url .. "/metrics")).body
        return tonumber(body:match("\nhangar_agent_" .. name .. " (%S+)\n")), body
      end
      assert.equal(0, metric("hub_reconnects_total"))
      assert.equal(0, metric("upload_reconnects_total"))
      agent:deploy { slug = "health-chatty", command = { "/bin/sh", "-c", "for i in $(seq 1 40); do echo line $i; sleep 0.1; done" } }
      local id = agent:start_run("health-chatty")
      assert(hubtest.wait_for(function()
        return #agent:lines(id) > 0
      end, 20000), "the run did not start")
      own:kill()
      -- The run goes on printing; what it prints waits in the spool, counted.
      local waiting = hubtest.wait_for(function()
        local n = metric("events_unacked")
        return n and n > 0 and n
      end, 10000)
      assert.truthy(waiting, select(2, metric("events_unacked")))
      -- Long enough for uploads and polls to fail a few times.
      timer.sleep(1500)
      own:restart()
      local doc = agent:wait_run(id)
      assert.equal("succeeded", doc.status)
      assert.equal(40, #agent:lines(id))
      local reconnected = hubtest.wait_for(function()
        return (metric("hub_reconnects_total") or 0) >= 1 and (metric("upload_reconnects_total") or 0) >= 1
          and metric("events_unacked") == 0
      end, 20000)
      local _, body = metric("events_unacked")
      assert.truthy(reconnected, body .. "\n" .. agent:log())
      assert.truthy(body:find("# TYPE hangar_agent_hub_reconnects_total counter", 1, true), body)
    end)
    agent:cleanup()
    own:cleanup()
    assert(ok, err)
  end)

  it("is off unless configured", function()
    local agent = agenttest.start(hub, { labels = { case = "health-off" } })
    local log = agent:log()
    agent:cleanup()
    assert.is_nil(log:find('"msg":"health listener"', 1, true), log)
  end)

  it("refuses an address that is not loopback, unless explicitly allowed", function()
    local agent = agenttest.start(hub, {
      labels = { case = "health-remote" },
      extra = 'health = { listen = "0.0.0.0:0" }',
      wait = false,
    })
    local exited = hubtest.wait_for(function()
      return not agent:alive()
    end, 15000)
    local log = agent:log()
    agent:cleanup()
    assert.truthy(exited, log)
    assert.truthy(log:find("refusing 0.0.0.0:0, which is not a loopback address", 1, true), log)
    assert.truthy(log:find("health.allow_remote", 1, true), log)

    local allowed, url = agent_with('{ listen = "0.0.0.0:0", allow_remote = true }', { case = "health-allowed" })
    local res = get(url .. "/healthz")
    allowed:cleanup()
    assert.equal(200, res and res.status)
  end)

  it("closes with the agent", function()
    local agent, url = agent_with('{ listen = "127.0.0.1:0" }', { case = "health-stop" })
    assert.equal(200, assert(get(url .. "/healthz")).status)
    assert.equal(0, agent:stop())
    local res, err = get(url .. "/healthz")
    agent:cleanup()
    assert.is_nil(res)
    assert.truthy(err)
  end)
end)
