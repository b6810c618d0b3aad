-- The hub's /metrics values, not just their names: a hub of its own is driven to a known state
-- (one agent, one succeeded run with a known number of events, one queued run, two parked
-- long-polls) and every gauge and counter must say exactly that.
local hubtest = require "hubtest"
local json = require "hangar.json"
local timer = require "hangar.timer"

local hub

setup(function()
  hub = hubtest.start { name = "hub-metrics" }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

local STATUSES = { "queued", "assigned", "accepted", "running", "cancelling", "succeeded", "failed", "cancelled" }

-- Scrapes /metrics into { ["name{labels}"] = number }.
local function scrape()
  local res = hub:get("/metrics")
  assert.equal(200, res.status, res.body)
  local m = {}
  for line in res.body:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local k, v = line:match("^(%S+) (%S+)$")
      assert(k, "not a sample line: " .. line)
      m[k] = assert(tonumber(v), line)
    end
  end
  return m, res.body
end

local function runs(m, status)
  return m['hangar_runs{status="' .. status .. '"}']
end

local function hist(m, route, what)
  return m["hangar_http_request_duration_seconds_" .. what .. '{route="' .. route .. '"}']
end

-- The cumulative buckets of a route's histogram, in order, ending with +Inf.
local function buckets(body, route)
  local list = {}
  local prefix = 'hangar_http_request_duration_seconds_bucket{route="' .. route .. '",le="'
  for line in body:gmatch("[^\n]+") do
    if line:sub(1, #prefix) == prefix then
      list[#list + 1] = tonumber(line:match(" (%S+)$"))
    end
  end
  return list
end

local function log(text)
  return hubtest.log_event(text)
end

describe("hub metrics", function()
  it("count exactly what happened: runs by status, agents, events, long-polls, request times", function()
    -- A fresh hub: nothing counted yet.
    local m = scrape()
    for _, s in ipairs(STATUSES) do
      assert.equal(0, runs(m, s), s)
    end
    assert.equal(0, m.hangar_agents_connected)
    assert.equal(0, m.hangar_long_polls_open)
    assert.equal(0, m.hangar_events_ingested_total)
    assert.equal(0, m.hangar_runs_created_total)

    assert.equal(201, hub:post("/v1/tasks", { slug = "work", command = { "true" } }).status)
    -- No agent has this label: its run stays queued.
    assert.equal(201, hub:post("/v1/tasks", { slug = "stuck", command = { "true" },
      constraints = { zone = "nowhere" } }).status)
    local a = hub:agent()

    -- One run through to success with 5 events in 2 uploads, the second overlapping the first
    -- (a retry after a lost answer): only new events count.
    local created = hub:post("/v1/runs", { task = "work" })
    assert.equal(201, created.status, created.body)
    local id = created.json.run_id
    local rid, lease = a:take(5)
    assert.equal(id, rid)
    assert.equal(200, a:accept(id, lease).status)
    assert.equal(200, a:start(id).status)
    local res = a:events(id, 0, { log("one"), log("two"), log("three"), log("four") })
    assert.equal(200, res.status, res.body)
    res = a:events(id, 2, { log("three"), log("four"), log("five") })
    assert.equal(200, res.status, res.body)
    assert.equal(5, res.json.next_seq)
    -- A batch the hub refuses counts as a request of its route, never as events.
    res = a:call("POST", "/v1/runs/" .. id .. "/events", { first_seq = "zero", events = json.array { log("x") } })
    assert.equal(400, res.status, res.body)
    assert.equal(200, a:finish(id, "succeeded", 5, 0).status)

    local queued = hub:post("/v1/runs", { task = "stuck" })
    assert.equal(201, queued.status, queued.body)
    local queued_id = queued.json.run_id

    -- Two long-polls: the agent waiting for work and a reader waiting for the queued run's events.
    local poll = hub:async("GET", a:path("/work?wait=30"), { key = a.token })
    local reader = hub:async("GET", "/v1/runs/" .. queued_id .. "/events?wait=30")
    local body
    m = hubtest.wait_for(function()
      local s, b = scrape()
      body = b
      return s.hangar_long_polls_open == 2 and s
    end, 10000, 50)
    assert(m, "the two long-polls never showed as open:\n" .. tostring(body))
    local parked_at = timer.monotonic()

    assert.equal(2, m.hangar_long_polls_open)
    assert.equal(1, m.hangar_agents_connected)
    assert.equal(5, m.hangar_events_ingested_total)
    assert.equal(2, m.hangar_runs_created_total)
    assert.equal(1, runs(m, "succeeded"))
    assert.equal(1, runs(m, "queued"))
    for _, s in ipairs { "assigned", "accepted", "running", "cancelling", "failed", "cancelled" } do
      assert.equal(0, runs(m, s), s)
    end
    -- Every event upload was timed, the refused one too; the histogram agrees with itself.
    assert.equal(3, hist(m, "post_events", "count"))
    assert.equal(2, m['hangar_http_requests_total{route="post_events",code="2xx"}'])
    assert.equal(1, m['hangar_http_requests_total{route="post_events",code="4xx"}'])
    assert.is_true(hist(m, "post_events", "sum") > 0)
    local b = buckets(body, "post_events")
    assert.equal(15, #b)
    assert.equal(3, b[#b])
    for i = 2, #b do
      assert.is_true(b[i] >= b[i - 1], "buckets must be cumulative")
    end
    assert.equal(1, hist(m, "finish", "count"))
    assert.equal(1, hist(m, "accept", "count"))
    assert.equal(2, hist(m, "create_run", "count"))

    -- Hold both polls a while, then end them: the agent polls again (ending its older poll) and
    -- the queued run is cancelled (its reader learns the run is over).
    hubtest.sleep(600)
    local held_ms = timer.monotonic() - parked_at
    assert.equal(200, a:work(0).status)
    local cancel = hub:post("/v1/runs/" .. queued_id .. "/cancel").status
    assert.is_true(cancel == 200 or cancel == 202, tostring(cancel))
    assert.equal(200, hubtest.await(poll).status)
    res = hubtest.await(reader)
    assert.equal(200, res.status)
    assert.is_true(res.json.done)

    m, body = scrape()
    assert.equal(0, m.hangar_long_polls_open)
    assert.equal(1, m.hangar_agents_connected)
    assert.equal(5, m.hangar_events_ingested_total)
    assert.equal(1, runs(m, "succeeded"))
    assert.equal(1, runs(m, "cancelled"))
    assert.equal(0, runs(m, "queued"))
    -- A long-poll's time is its wait: at least as long as it was seen parked.
    assert.equal(1, hist(m, "read_events", "count"))
    assert.is_true(hist(m, "read_events", "sum") >= held_ms / 1000,
      "read_events took " .. hist(m, "read_events", "sum") .. " s, held " .. held_ms .. " ms")
    b = buckets(body, "read_events")
    assert.equal(1, b[#b])
    assert.is_true(hist(m, "work", "count") >= 3)
    assert.is_true(hist(m, "work", "sum") >= held_ms / 1000)
    -- Counters never go back, and scrapes count themselves.
    assert.is_true(hist(m, "metrics", "count") >= 2)

    -- An agent that deregisters is no longer connected, at once: with a second one connected,
    -- and the first deregistering while its work poll is open.
    local other = hub:agent()
    assert.equal(200, other:work(0).status)
    local open = hub:async("GET", a:path("/work?wait=30"), { key = a.token })
    assert(hubtest.wait_for(function()
      return scrape().hangar_long_polls_open == 1
    end, 10000, 50), "the poll never showed as open")
    assert.equal(2, scrape().hangar_agents_connected)
    assert.equal(204, a:deregister().status)
    hubtest.await(open)
    m = scrape()
    assert.equal(1, m.hangar_agents_connected)
    assert.equal(0, m.hangar_long_polls_open)
  end)
end)
