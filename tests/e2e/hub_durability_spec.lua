-- What the hub acknowledged survives it being killed: SIGKILL while an agent uploads events,
-- restart on the same store, and every acknowledged event is there exactly once; sessions and
-- leases carry over the restart; an acknowledged finish stays finished.
local hubtest = require "hubtest"
local async = require "hangar.async"

local hub

setup(function()
  hub = hubtest.start { name = "hub-durability", args = { "--lease-ttl", "20" } }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

local function running_run(a, slug)
  local id = assert(hub:post("/v1/runs", { task = slug })).json.run_id
  local rid, lease = a:take(5)
  assert.equal(id, rid)
  assert.equal(200, a:accept(id, lease).status)
  assert.equal(200, a:start(id).status)
  return id
end

-- Reads every event of a run, page by page (pages that do not line up with the batches).
local function all_events(id)
  local out, after = {}, -1
  while true do
    local res = assert(hub:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=777"))
    assert.equal(200, res.status)
    for _, e in ipairs(res.json.events) do
      out[#out + 1] = e
      after = e.seq
    end
    if #res.json.events == 0 or res.json.done then
      return out, res.json
    end
  end
end

describe("a hub killed with SIGKILL", function()
  it("keeps every event it acknowledged, exactly once, and the agent carries on", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "chatty", command = { "true" }, constraints = { role = "durable" } }).status)
    local a = hub:agent { labels = { role = "durable" } }
    local id = running_run(a, "chatty")
    local total = 6000
    local acked, failures, done = 0, 0, false

    -- The agent: batches of varying size back to back; on any failure it retries from what
    -- the hub last said, the way the protocol's agents do (a retried batch is harmless). Its
    -- retries also reach back before that, so that the hub has to skip the part it stored.
    local producer = async.run(function()
      local next_seq, n, retrying = 0, 0, false
      while next_seq < total do
        n = n + 1
        local first = retrying and math.max(0, next_seq - 17) or next_seq
        local batch = {}
        for i = 0, (n * 37) % 120 do
          if first + i < total then
            batch[#batch + 1] = hubtest.log_event("event " .. (first + i))
          end
        end
        local res = hub:request("POST", "/v1/runs/" .. id .. "/events",
          { key = a.token, body = { first_seq = first, events = batch }, timeout_ms = 10000 })
        if res and res.status == 200 then
          assert(res.json.next_seq >= first + #batch, "the hub went backwards")
          next_seq = res.json.next_seq
          acked = next_seq
          retrying = false
        elseif res and res.status == 409 and res.json.error.code == "seq_gap" then
          -- Resending from what the hub has would hide a loss: it must have all it acknowledged.
          assert(res.json.next_seq >= acked, ("the hub lost acknowledged events: it acknowledged %d, now has %d")
            :format(acked, res.json.next_seq))
          next_seq = res.json.next_seq
        else
          failures = failures + 1
          retrying = true
          hubtest.sleep(50)
        end
      end
      done = true
    end)

    assert.truthy(hubtest.wait_for(function() return acked >= 1500 end, 60000, 5))
    local before = acked
    hub:kill()
    hub:restart()
    async.await(producer)
    assert.is_true(done)
    assert.truthy(failures > 0, "the kill should have interrupted the upload")
    assert.truthy(before < total)

    -- The session outlived the restart: the same token finishes the run.
    assert.equal(200, a:finish(id, "succeeded", total, 0).status)
    local events, last = all_events(id)
    assert.equal(total, #events)
    for i, e in ipairs(events) do
      assert.equal(i - 1, e.seq)
      assert.equal("event " .. (i - 1), e.text)
    end
    assert.is_true(last.done)
    assert.equal(total, last.next_seq)
  end)

  it("keeps an acknowledged finish, status and outputs", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "quick", command = { "true" }, constraints = { role = "quick" } }).status)
    local a = hub:agent { labels = { role = "quick" } }
    local id = running_run(a, "quick")
    assert.equal(200, a:events(id, 0, { hubtest.output_event("set", "answer", 42), hubtest.log_event("bye") }).status)
    assert.equal(200, a:finish(id, "failed", 2, 7, "exit status 7").status)
    local queued = hub:post("/v1/runs", { task = "quick" }).json.run_id
    hub:kill()
    hub:restart()
    local view = hub:get("/v1/runs/" .. id).json
    assert.equal("failed", view.status)
    assert.equal(7, view.exit_code)
    assert.equal("exit status 7", view.error)
    assert.equal(42, view.outputs.answer)
    assert.equal("queued", hub:get("/v1/runs/" .. queued).json.status)
    -- an identical finish is still recognised after the restart
    assert.equal(200, a:finish(id, "failed", 2, 7, "exit status 7").status)
  end)

  it("gives leases a fresh TTL after a restart instead of failing the runs", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "long", command = { "true" }, constraints = { role = "long" } }).status)
    local a = hub:agent { labels = { role = "long" } }
    local id = running_run(a, "long")
    hub:kill()
    hub:restart()
    assert.equal("running", hub:get("/v1/runs/" .. id).json.status)
    assert.equal(200, a:heartbeat({ id }).status)
    assert.equal(200, a:finish(id, "succeeded", 0, 0).status)
  end)
end)
