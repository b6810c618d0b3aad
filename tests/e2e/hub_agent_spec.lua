-- The hub's agent API over real HTTP: register, work long-polls and what wakes them, accept,
-- start, events (idempotent, gapped, limits), finish, heartbeat, leases that lapse, revoked
-- keys, deregistration, run tokens. Each test uses its own label so runs never cross tests.
local hubtest = require "hubtest"
local json = require "hangar.json"

local hub
local case = 0

setup(function()
  -- Short leases so that lapses happen within a test; long enough for a loaded machine to
  -- accept in time when a test means to.
  hub = hubtest.start { name = "hub-agent", args = { "--lease-ttl", "3", "--heartbeat-interval", "1" } }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

local function assert_error(res, status, code, text)
  assert.equal(status, res.status, res.body)
  assert.equal(code, res.json and res.json.error and res.json.error.code, res.body)
  if text then
    assert.truthy(res.json.error.message:find(text, 1, true), res.json.error.message)
  end
end

-- A fresh label value and a task constrained to it.
local function fresh_task(extra)
  case = case + 1
  local label = "case" .. case
  local def = { slug = "t-" .. label, command = { "true" }, constraints = { case = label } }
  for k, v in pairs(extra or {}) do def[k] = v end
  local res = hub:post("/v1/tasks", def)
  assert(res.status == 201, res.body)
  return def.slug, { case = label }
end

local function new_run(slug, params)
  local res = hub:post("/v1/runs", { task = slug, params = params })
  assert(res.status == 201, res.body)
  return res.json.run_id
end

local function run_status(id)
  return hub:get("/v1/runs/" .. id).json.status
end

-- Runs a run to "running" on agent a: returns run id and the accept answer's RUN.
local function running(a, slug)
  local id = new_run(slug)
  local rid, lease = a:take(5)
  assert.equal(id, rid)
  local res = a:accept(id, lease)
  assert.equal(200, res.status, res.body)
  assert.equal(200, a:start(id).status)
  return id, res.json.run
end

describe("register", function()
  it("opens a session and says how to behave", function()
    local a = hub:agent { labels = { zone = "a" }, capacity = 3 }
    local r = a.registered
    assert.matches("^[A-Za-z0-9_-]+$", r.agent_id)
    assert.is_string(r.session_token)
    assert.equal(1, r.heartbeat_interval_s)
    assert.equal(3, r.lease_ttl_s)
    assert.is_number(r.poll_wait_s)
    assert.is_number(r.max_batch_bytes)
    assert.equal(0, #r.runs)
  end)

  it("holds an agent key to its labels: other values are 403", function()
    local key = hub:make_key("agent", { env = "staging" })
    local body = { name = "x", labels = { env = "prod" }, capacity = 1, public_key = hubtest.random_public_key() }
    assert_error(hub:post("/v1/agents", body, key), 403, "forbidden", "env")
    body.labels = json.object()
    assert_error(hub:post("/v1/agents", body, key), 403, "forbidden", "env")
    body.labels = { env = "staging", extra = "fine" }
    assert.equal(201, hub:post("/v1/agents", body, key).status)
  end)

  it("refuses a public key that is not 32 bytes of base64, and bad types", function()
    local key = hub:make_key("agent")
    assert_error(hub:post("/v1/agents", { public_key = "AAAA" }, key), 400, "bad_request", "public_key")
    assert_error(hub:post("/v1/agents", {}, key), 400, "bad_request", "public_key")
    assert_error(hub:post("/v1/agents", { public_key = hubtest.random_public_key(), capacity = "2" }, key),
      400, "bad_request", "capacity")
  end)

  it("lets only the key that created an identity resume it", function()
    local a = hub:agent()
    local other = hub:make_key("agent")
    local res = hub:post("/v1/agents", { public_key = hubtest.random_public_key(), agent_id = a.id }, other)
    assert_error(res, 403, "forbidden", "agent_id")
    local again = hub:agent { key = a.key, agent_id = a.id }
    assert.equal(a.id, again.id)
    -- the old session is over
    assert_error(a:work(0), 401, "unauthorized")
    assert.equal(200, again:work(0).status)
  end)
end)

describe("work", function()
  it("answers a waiting poll as soon as a run is assigned", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local poll = hub:async("GET", a:path("/work?wait=20"), { key = a.token })
    hubtest.sleep(200)
    local id = new_run(slug)
    local res = hubtest.await(poll)
    assert.equal(200, res.status)
    assert.equal(1, #res.json.assign)
    assert.equal(id, res.json.assign[1].run_id)
    assert.is_string(res.json.assign[1].lease_id)
    assert.equal(0, #res.json.cancel)
    assert.equal("none", res.json.action)
    assert.equal("assigned", run_status(id))
  end)

  it("ends an older poll with an empty answer when the same agent polls again", function()
    local a = hub:agent()
    local first = hub:async("GET", a:path("/work?wait=30"), { key = a.token })
    hubtest.sleep(200)
    local second = hub:async("GET", a:path("/work?wait=1"), { key = a.token })
    local res = hubtest.await(first)
    assert.equal(200, res.status)
    assert.equal(0, #res.json.assign)
    assert.equal(200, hubtest.await(second).status)
  end)

  it("ends a poll with empty lists when its wait is over, and clamps the wait", function()
    local a = hub:agent()
    local res = a:work(1)
    assert.equal(200, res.status)
    assert.equal(0, #res.json.assign)
    assert.equal(200, a:call("GET", a:path("/work?wait=-5")).status)
    assert_error(a:call("GET", a:path("/work?wait=soon")), 400, "bad_request", "wait")
    assert_error(a:call("GET", a:path("/work?free=-1")), 400, "bad_request", "free")
  end)

  it("assigns only runs whose constraints are among the agent's labels, oldest first, up to free", function()
    local slug, labels = fresh_task()
    local wrong = hub:agent { labels = { case = "someone-else" } }
    local first, second, third = new_run(slug), new_run(slug), new_run(slug)
    assert.equal(0, #wrong:work(0).json.assign)
    local a = hub:agent { labels = labels, capacity = 5 }
    local res = a:work(0, 2)
    assert.equal(2, #res.json.assign)
    assert.equal(first, res.json.assign[1].run_id)
    assert.equal(second, res.json.assign[2].run_id)
    assert.equal(0, #a:work(0, 0).json.assign)
    -- free defaults to capacity minus what the agent holds (two assigned of five)
    res = a:work(0)
    assert.equal(1, #res.json.assign)
    assert.equal(third, res.json.assign[1].run_id)
  end)

  it("refuses another agent's path and non-session credentials", function()
    local a, b = hub:agent(), hub:agent()
    assert_error(a:call("GET", b:path("/work?wait=0")), 403, "forbidden")
    assert_error(hub:get(a:path("/work?wait=0")), 403, "forbidden")
    assert_error(hub:get(a:path("/work?wait=0"), a.key), 403, "forbidden")
    assert_error(hub:get(a:path("/work?wait=0"), false), 401, "unauthorized")
  end)
end)

describe("a run's life on an agent", function()
  it("accepts, starts, uploads events idempotently and finishes", function()
    local slug, labels = fresh_task { env = { GREETING = "hi", TOKEN = { ref = "vault://kv/app#token" } },
      parameters = { { slug = "n", type = "integer", default = 2 } } }
    local a = hub:agent { labels = labels }
    local id = new_run(slug)
    local rid, lease = a:take(5)
    assert.equal(id, rid)
    assert_error(a:accept(id, "lease_wrong"), 409, "lease_lost")
    local res = a:accept(id, lease)
    assert.equal(200, res.status, res.body)
    local run = res.json.run
    assert.equal(id, run.id)
    assert.equal(slug, run.task.slug)
    assert.same({ "true" }, { run.task.command[1] })
    assert.equal(3600, run.task.timeout_s)
    assert.equal("integer", run.task.parameters[1].type)
    assert.equal(2, run.params.n)
    assert.equal("hi", run.env.GREETING)
    assert.equal(json.null, run.secrets)
    assert.equal("vault://kv/app#token", run.secret_refs.TOKEN)
    assert.equal(1, run.attempt)
    assert.is_string(run.run_token)
    assert.is_string(run.deadline_at)
    -- the answer was lost: the same accept answers again with the same run
    local again = a:accept(id, lease)
    assert.equal(200, again.status)
    assert.equal(run.run_token, again.json.run.run_token)
    assert.equal("accepted", run_status(id))

    res = a:start(id)
    assert.equal(200, res.status)
    assert.equal("running", res.json.status)
    assert.equal("running", run_status(id))

    local E = hubtest.log_event
    res = a:events(id, 0, { E("one"), E("two"), hubtest.output_event("set", "result", { ok = true }) })
    assert.equal(200, res.status, res.body)
    assert.equal(3, res.json.next_seq)
    assert.equal("running", res.json.status)
    -- a retried batch overlapping what the hub has is harmless
    res = a:events(id, 1, { E("two"), hubtest.output_event("set", "result", { ok = true }), E("three") })
    assert.equal(200, res.status)
    assert.equal(4, res.json.next_seq)
    -- a batch past the end is a gap
    res = a:events(id, 6, { E("seven") })
    assert_error(res, 409, "seq_gap")
    assert.equal(4, res.json.next_seq)
    -- finishing with events missing is a gap too
    res = a:finish(id, "succeeded", 5, 0)
    assert_error(res, 409, "seq_gap")
    assert.equal(4, res.json.next_seq)
    res = a:finish(id, "succeeded", 4, 0)
    assert.equal(200, res.status)
    assert.equal("succeeded", res.json.status)
    -- identical repeat: 200; anything else: invalid_transition with the status
    assert.equal(200, a:finish(id, "succeeded", 4, 0).status)
    res = a:finish(id, "failed", 4, 1)
    assert_error(res, 409, "invalid_transition")
    assert.equal("succeeded", res.json.status)
    assert_error(a:events(id, 4, { E("late") }), 409, "invalid_transition")

    local view = hub:get("/v1/runs/" .. id).json
    assert.equal("succeeded", view.status)
    assert.equal(0, view.exit_code)
    assert.equal(a.id, view.agent.id)
    assert.is_true(view.outputs.result.ok)
    assert.is_string(view.started_at)
    assert.is_string(view.finished_at)

    local ev = hub:get("/v1/runs/" .. id .. "/events").json
    assert.equal(4, #ev.events)
    for i, e in ipairs(ev.events) do assert.equal(i - 1, e.seq) end
    assert.equal("one", ev.events[1].text)
    assert.equal("three", ev.events[4].text)
    assert.equal("output", ev.events[3].kind)
    assert.is_true(ev.done)
    ev = hub:get("/v1/runs/" .. id .. "/events?after=1&limit=1").json
    assert.equal(1, #ev.events)
    assert.equal(2, ev.events[1].seq)
    assert.is_false(ev.done)
  end)

  it("records output ops it cannot apply in output_errors, and keeps going", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = running(a, slug)
    local O = hubtest.output_event
    local res = a:events(id, 0, { O("set", "a", "text"), O("append", "a", 1), O("set", "b[", 1), O("append", "list", 5) })
    assert.equal(200, res.status)
    local view = hub:get("/v1/runs/" .. id).json
    assert.equal("text", view.outputs.a)
    assert.equal(5, view.outputs.list[1])
    assert.equal(2, #view.output_errors)
    assert.equal(1, view.output_errors[1].seq)
    assert.equal(2, view.output_errors[2].seq)
    assert.is_string(view.output_errors[1].error)
  end)

  it("refuses an event text over 64 KiB and a batch over 8 MiB with 413", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = running(a, slug)
    local res = a:events(id, 0, { hubtest.log_event(string.rep("x", 64 * 1024 + 1)) })
    assert_error(res, 413, "too_large", "events[0].text")
    res = a:events(id, 0, { hubtest.log_event(string.rep("x", 64 * 1024)) })
    assert.equal(200, res.status)
    local many = {}
    for i = 1, 140 do many[i] = hubtest.log_event(string.rep("y", 64 * 1024)) end
    assert_error(a:events(id, 1, many), 413, "too_large")
    -- nothing of a refused batch was stored
    assert.equal(1, hub:get("/v1/runs/" .. id).json.events)
    assert_error(a:events(id, 1, { { kind = "log", stream = "tty", text = "x" } }), 400, "bad_request", "events[0].stream")
    assert_error(a:events(id, 1, { { kind = "metric" } }), 400, "bad_request", "events[0].kind")
    assert_error(a:events(id, 1, { { kind = "output", op = "set", path = "a" } }), 400, "bad_request", "events[0].value")
  end)

  it("refuses calls on a run leased to another agent with lease_lost", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local b = hub:agent { labels = labels }
    local id = running(a, slug)
    assert_error(b:start(id), 409, "lease_lost")
    assert_error(b:events(id, 0, { hubtest.log_event("x") }), 409, "lease_lost")
    assert_error(b:finish(id, "succeeded", 0, 0), 409, "lease_lost")
    -- A run the hub does not hold is a lost lease too: the protocol lists no other refusal.
    assert_error(a:accept("run_nosuchrun", "lease_x"), 409, "lease_lost")
  end)
end)

describe("cancellation", function()
  it("reaches an agent's open poll at once, and every heartbeat until it finishes", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels, capacity = 1 }
    local id = running(a, slug)
    local poll = hub:async("GET", a:path("/work?wait=20"), { key = a.token })
    hubtest.sleep(200)
    local res = hub:post("/v1/runs/" .. id .. "/cancel")
    assert.equal(202, res.status)
    assert.equal("cancelling", res.json.status)
    res = hubtest.await(poll)
    assert.equal(200, res.status)
    assert.same({ id }, { res.json.cancel[1] })
    res = a:heartbeat({ id })
    assert.equal(id, res.json.cancel[1])
    -- the events answer tells a busy agent too
    assert.equal("cancelling", a:events(id, 0, { hubtest.log_event("stopping") }).json.status)
    assert.equal(200, a:finish(id, "cancelled", 1).status)
    assert.equal("cancelled", run_status(id))
    assert.equal(0, #a:heartbeat({}).json.cancel)
  end)

  it("lets a cancelling run start (200, still cancelling) and finish succeeded if it got there first", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = new_run(slug)
    local rid, lease = a:take(5)
    assert.equal(200, a:accept(rid, lease).status)
    assert.equal(202, hub:post("/v1/runs/" .. id .. "/cancel").status)
    local res = a:start(id)
    assert.equal(200, res.status)
    assert.equal("cancelling", res.json.status)
    assert.equal(200, a:finish(id, "succeeded", 0, 0).status)
    assert.equal("succeeded", run_status(id))
  end)

  it("ends an assigned run at once; the late accept finds its lease lost", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = new_run(slug)
    local _, lease = a:take(5)
    assert.equal(202, hub:post("/v1/runs/" .. id .. "/cancel").status)
    assert.equal("cancelled", run_status(id))
    assert_error(a:accept(id, lease), 409, "lease_lost")
  end)
end)

describe("leases and sessions", function()
  it("re-queues an assignment that is not accepted within the lease TTL", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = new_run(slug)
    local _, lease = a:take(5)
    -- Heartbeats keep the session alive but never renew an assignment.
    assert.truthy(hubtest.wait_for(function()
      assert.equal(200, a:heartbeat({ { run_id = id, status = "assigned" } }).status)
      return run_status(id) == "queued"
    end, 15000, 300))
    assert_error(a:accept(id, lease), 409, "lease_lost")
    -- and another agent gets it, as attempt 2
    local b = hub:agent { labels = labels }
    local rid, lease2 = b:take(5)
    assert.equal(id, rid)
    assert.equal(2, b:accept(id, lease2).json.run.attempt)
  end)

  it("keeps an accepted run while heartbeats come, fails it agent_lost when they stop", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = running(a, slug)
    -- 4.5 s of heartbeats, longer than the 3 s TTL: the run stays
    for _ = 1, 9 do
      hubtest.sleep(500)
      assert.equal(200, a:heartbeat({ id }).status)
    end
    assert.equal("running", run_status(id))
    assert.truthy(hubtest.wait_for(function() return run_status(id) == "failed" end, 15000, 100))
    local view = hub:get("/v1/runs/" .. id).json
    assert.equal("agent_lost", view.error)
    -- the session lapsed as well; registering again lists the run, and late logs still land
    assert_error(a:heartbeat({ id }), 401, "unauthorized")
    local back = hub:agent { key = a.key, agent_id = a.id, labels = labels }
    assert.equal(id, back.registered.runs[1].run_id)
    assert.equal("failed", back.registered.runs[1].status)
    local res = back:events(id, 0, { hubtest.log_event("late but kept") })
    assert.equal(200, res.status)
    assert.equal("failed", res.json.status)
    res = back:finish(id, "succeeded", 1, 0)
    assert_error(res, 409, "invalid_transition")
    assert.equal("failed", res.json.status)
    -- once finished it is no longer listed
    local again = hub:agent { key = a.key, agent_id = a.id, labels = labels }
    assert.equal(0, #again.registered.runs)
  end)

  it("ends a revoked key's sessions within a heartbeat: 401, an open poll at once", function()
    local a = hub:agent()
    local poll = hub:async("GET", a:path("/work?wait=20"), { key = a.token })
    hubtest.sleep(200)
    local id = a.key:sub(5, 16)
    assert.equal(204, hub:delete("/v1/keys/" .. id).status)
    assert_error(hubtest.await(poll), 401, "unauthorized")
    assert_error(a:heartbeat({}), 401, "unauthorized")
    assert_error(hub:post("/v1/agents", { public_key = hubtest.random_public_key(), agent_id = a.id }, a.key),
      401, "unauthorized")
  end)

  it("deregisters: held runs fail agent_lost, assignments go back, the session is dead", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels, capacity = 2 }
    local held = running(a, slug)
    local queued_again = new_run(slug)
    assert.equal(queued_again, (a:take(0)))
    assert.equal(204, a:deregister().status)
    assert.equal("failed", run_status(held))
    assert.equal("agent_lost", hub:get("/v1/runs/" .. held).json.error)
    assert.equal("queued", run_status(queued_again))
    assert_error(a:work(0), 401, "unauthorized")
    hub:post("/v1/runs/" .. queued_again .. "/cancel")
  end)
end)

describe("run tokens", function()
  it("read their own run and its events, start runs, and nothing else", function()
    local slug, labels = fresh_task()
    local other_slug = fresh_task()
    local a = hub:agent { labels = labels }
    local id, run = running(a, slug)
    local token = run.run_token
    local other = new_run(other_slug)
    assert.equal(200, hub:get("/v1/runs/" .. id, token).status)
    assert.equal(200, hub:get("/v1/runs/" .. id .. "/events", token).status)
    assert_error(hub:get("/v1/runs/" .. other, token), 404, "not_found")
    assert_error(hub:get("/v1/runs/" .. other .. "/events", token), 404, "not_found")
    assert_error(hub:get("/v1/runs", token), 403, "forbidden")
    assert_error(hub:get("/v1/tasks", token), 403, "forbidden")
    assert_error(hub:post("/v1/runs/" .. id .. "/cancel", nil, token), 403, "forbidden")
    assert_error(hub:post("/v1/runs/" .. id .. "/start", {}, token), 403, "forbidden")
    local child = hub:post("/v1/runs", { task = other_slug }, token)
    assert.equal(201, child.status)
    assert.equal(200, a:finish(id, "succeeded", 0, 0).status)
    assert_error(hub:get("/v1/runs/" .. id, token), 401, "unauthorized")
    hub:post("/v1/runs/" .. other .. "/cancel")
    hub:post("/v1/runs/" .. child.json.run_id .. "/cancel")
  end)
end)

describe("reading events while a run goes", function()
  it("long-polls until events arrive, and says done once the run ended", function()
    local slug, labels = fresh_task()
    local a = hub:agent { labels = labels }
    local id = running(a, slug)
    local reader = hub:async("GET", "/v1/runs/" .. id .. "/events?wait=20")
    hubtest.sleep(200)
    assert.equal(200, a:events(id, 0, { hubtest.log_event("hello") }).status)
    local res = hubtest.await(reader)
    assert.equal(200, res.status)
    assert.equal(1, #res.json.events)
    assert.equal("hello", res.json.events[1].text)
    assert.is_false(res.json.done)
    reader = hub:async("GET", "/v1/runs/" .. id .. "/events?after=0&wait=20")
    hubtest.sleep(200)
    assert.equal(200, a:finish(id, "failed", 1, 3, "exit status 3").status)
    res = hubtest.await(reader)
    assert.equal(0, #res.json.events)
    assert.is_true(res.json.done)
    assert.equal("failed", res.json.status)
    local view = hub:get("/v1/runs/" .. id).json
    assert.equal(3, view.exit_code)
    assert.equal("exit status 3", view.error)
  end)
end)
