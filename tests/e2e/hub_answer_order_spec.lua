-- Which answer the hub writes first when one request wakes a parked one. A new run goes to
-- the agent waiting for it before its creator is answered; a finish is answered before the
-- run's waiting reader, so that the agent moves on to its next run. Read from the hub's debug
-- log, which has a "request" line per answer, in the order the answers were written.
local hubtest = require "hubtest"
local json = require "hangar.json"

local hub, agent

setup(function()
  hub = hubtest.start { name = "hub-answer-order", args = { "--log-level", "debug" } }
  assert(hub:post("/v1/tasks", { slug = "order", command = { "true" } }).status == 201)
  agent = hub:agent { capacity = 1 }
end)

teardown(function()
  if hub then hub:cleanup() end
end)

local function open_polls()
  local body = hub:get("/metrics").body
  return tonumber(body:match("\nhangar_long_polls_open (%d+)")) or 0
end

-- The "request" lines of the hub's log from line `from` on, as {method, path, status} (all
-- of its records when every is true).
local function answers(from, every)
  local out, n = {}, 0
  for line in hub:log():gmatch("[^\n]+") do
    n = n + 1
    local ok, rec = pcall(json.decode, line)
    if n >= from and ok and type(rec) == "table" and (every or rec.msg == "request") then
      out[#out + 1] = rec
    end
  end
  return out, n
end

local function log_lines()
  local _, n = answers(math.huge)
  return n
end

-- Position of the first answer to method + path (a Lua pattern) in list.
local function position(list, method, pattern)
  for i, rec in ipairs(list) do
    if rec.method == method and rec.path:match(pattern) then return i end
  end
end

-- The index in list of the first record logging msg about run id.
local function logged(list, msg, id)
  for i, rec in ipairs(list) do
    if rec.msg == msg and rec.run == id then return i end
  end
end

-- Parks a work poll with the given query, creates a run, and checks that the poll was
-- answered with it before the creator; returns the creation's and the poll's answers.
local function create_with_parked_poll(query)
  local poll = hub:async("GET", agent:path("/work?" .. query), { key = agent.token })
  assert(hubtest.wait_for(function() return open_polls() >= 1 end, 10000, 20), "the poll did not park")
  local from = log_lines() + 1
  local created = hub:post("/v1/runs", { task = "order" })
  assert.equal(201, created.status, created.body)
  local res = hubtest.await(poll)
  assert.equal(200, res.status, res.body)
  assert.equal(created.json.run_id, res.json.assign[1].run_id)
  local list = answers(from)
  local work, create = position(list, "GET", "/work$"), position(list, "POST", "^/v1/runs$")
  assert.is_number(work, "no answer to the work poll logged")
  assert.is_number(create, "no answer to POST /v1/runs logged")
  assert.is_true(work < create, "the creator was answered before the parked poll")
  return created, res, from
end

describe("a request that wakes a parked one", function()
  it("creating a run answers the agent's parked work poll first, then the creator", function()
    local created, res = create_with_parked_poll("wait=30")

    -- The agent's finish is answered before the reader waiting for the run's end.
    local id, lease = created.json.run_id, res.json.assign[1].lease_id
    assert.equal(200, agent:accept(id, lease).status)
    assert.equal(200, agent:start(id).status)
    local reader = hub:async("GET", "/v1/runs/" .. id .. "/events?wait=30")
    assert(hubtest.wait_for(function() return open_polls() >= 1 end, 10000, 20), "the reader did not park")
    local from = log_lines() + 1
    assert.equal(200, agent:finish(id, "succeeded", 0, 0).status)
    local read = hubtest.await(reader)
    assert.equal(200, read.status, read.body)
    assert.is_true(read.json.done)
    local list = answers(from)
    local events, finish = position(list, "GET", "/events$"), position(list, "POST", "/finish$")
    assert.is_number(events, "no answer to the reader logged")
    assert.is_number(finish, "no answer to the finish logged")
    assert.is_true(finish < events, "the parked reader was answered before the agent")
  end)

  -- That the run is assigned inside the creating request is the unit test's (test_hub_api);
  -- the order of the answers on the wire, which the wake-up pass gave as well, is this one's.
  it("a poll that gave its free slots is answered with the new run before the creator", function()
    local created, res, from = create_with_parked_poll("wait=30&free=1")
    local id, lease = created.json.run_id, res.json.assign[1].lease_id
    -- Even before the creating transaction commits: "run created" is logged after the commit.
    local list = answers(from, true)
    local work = position(list, "GET", "/work$")
    local made = logged(list, "run created", id)
    assert.is_number(made, "no \"run created\" logged")
    assert.is_true(work < made, "the poll was answered after the commit")
    assert.equal("assigned", hub:get("/v1/runs/" .. id).json.status)
    assert.equal(200, agent:accept(id, lease).status)
    assert.equal(200, agent:start(id).status)
    assert.equal(200, agent:finish(id, "succeeded", 0, 0).status)
  end)

  it("a poll that takes a queued run is answered before the assignment is committed", function()
    local created = hub:post("/v1/runs", { task = "order" })
    assert.equal(201, created.status, created.body)
    local id = created.json.run_id
    local from = log_lines() + 1
    local res =
      hubtest.await(hub:async("GET", agent:path("/work?wait=0&free=1"), { key = agent.token }))
    assert.equal(200, res.status, res.body)
    assert.equal(id, res.json.assign[1].run_id)
    -- "run assigned" is logged after the commit, which comes after the answer the agent has
    -- just read: it is waited for, not expected at once.
    local list, assigned
    hubtest.wait_for(function()
      list = answers(from, true)
      assigned = logged(list, "run assigned", id)
      return assigned ~= nil
    end, 10000, 10)
    local work = position(list, "GET", "/work$")
    assert.is_number(work, "no answer to the work poll logged")
    assert.is_number(assigned, "no \"run assigned\" logged within 10 s")
    assert.is_true(work < assigned, "the poll was answered after the commit")
    assert.equal(200, agent:accept(id, res.json.assign[1].lease_id).status)
    assert.equal(200, agent:start(id).status)
    assert.equal(200, agent:finish(id, "succeeded", 0, 0).status)
  end)
end)
