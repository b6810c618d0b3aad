-- An agent key bound to env=staging cannot register as a prod agent (403), cannot take over a
-- prod agent's identity, and its sessions never receive a prod run or its secrets, however
-- they ask. A real agent configured that way stops, saying why.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"
local json = require "hangar.json"

local hub, staging_key, prod_key

local PROD_SECRET = "prod-db-" .. security.random_word(16)

setup(function()
  hub = hubtest.start { name = "sec-labels", args = { "--lease-ttl", "10", "--heartbeat-interval", "1", "--poll-wait", "2" } }
  staging_key = hub:make_key("agent", { env = "staging" }, "staging")
  prod_key = hub:make_key("agent", { env = "prod" }, "prod")
end)

teardown(function()
  if hub then hub:cleanup() end
end)

local function register(key, labels, agent_id)
  return assert(hub:post("/v1/agents", {
    name = "probe", labels = labels and json.object(labels) or json.object(), capacity = 5,
    schedulers = json.array { "local" }, public_key = hubtest.random_public_key(), agent_id = agent_id,
  }, key))
end

local function no_secret(text)
  for _, f in ipairs(security.forms(PROD_SECRET)) do
    assert.falsy((text or ""):find(f.text, 1, true), "the prod secret (" .. f.name .. ") reached a staging session")
  end
end

describe("a staging agent key", function()
  it("cannot register with prod labels, or without its bound label", function()
    for _, labels in ipairs({ { env = "prod" }, {}, { env = "Staging" }, { env = "staging " }, { ENV = "staging" } }) do
      local res = register(staging_key, labels)
      assert.equal(403, res.status, json.encode(labels) .. ": " .. res.body)
      assert.equal("forbidden", res.json.error.code)
      assert.truthy(res.json.error.message:find("labels.env", 1, true), res.json.error.message)
    end
    assert.equal(201, register(staging_key, { env = "staging" }).status)
  end)

  it("cannot take over a prod agent's identity", function()
    local prod = register(prod_key, { env = "prod" })
    assert.equal(201, prod.status)
    local res = register(staging_key, { env = "staging" }, prod.json.agent_id)
    assert.equal(403, res.status, res.body)
    -- The prod agent's session was not touched by the attempt.
    local poll = assert(hub:get("/v1/agents/" .. prod.json.agent_id .. "/work?wait=0", prod.json.session_token))
    assert.equal(200, poll.status)
  end)

  it("never gets a prod run or its secrets, however its session asks", function()
    assert.equal(200, hub:put("/v1/config-vars/prod_db", { value = PROD_SECRET, secret = true }).status)
    local slug = agenttest.sh_task(hub, "true", { constraints = { env = "prod" }, env = { DB = { config = "prod_db" } } })
    local run_id = agenttest.run(hub, slug)

    local res = register(staging_key, { env = "staging", tier = "prod" })
    assert.equal(201, res.status)
    local session, agent_id = res.json.session_token, res.json.agent_id
    local function call(method, path, body)
      return assert(hub:request(method, path, { key = session, body = body }))
    end
    -- Polls assign nothing, with or without an explicit free count.
    for _, q in ipairs({ "?wait=1", "?wait=1&free=100", "?wait=0&free=1" }) do
      local work = call("GET", "/v1/agents/" .. agent_id .. "/work" .. q)
      assert.equal(200, work.status)
      assert.same({}, work.json.assign)
      no_secret(work.body)
    end
    -- Naming the run does not help: accept, start, events, finish, heartbeat, reading it.
    local answers = {
      call("POST", "/v1/runs/" .. run_id .. "/accept", { lease_id = "lease_guess" }),
      call("POST", "/v1/runs/" .. run_id .. "/start", json.object()),
      call("POST", "/v1/runs/" .. run_id .. "/events", { first_seq = 0, events = json.array {} }),
      call("POST", "/v1/runs/" .. run_id .. "/finish", { status = "failed", events_total = 0 }),
    }
    for _, a in ipairs(answers) do
      assert.equal(409, a.status, a.body)
      assert.equal("lease_lost", a.json.error.code)
      no_secret(a.body)
    end
    local hb = call("POST", "/v1/agents/" .. agent_id .. "/heartbeat", { runs = json.array { { run_id = run_id } } })
    assert.equal(200, hb.status)
    no_secret(hb.body)
    assert.equal(403, call("GET", "/v1/runs/" .. run_id).status)
    assert.equal(403, call("GET", "/v1/config-vars").status)
    assert.equal("queued", agenttest.get_run(hub, run_id).status)

    -- A prod agent gets it at once, sealed: the run was runnable all along.
    local prod = hub:agent { key = prod_key, labels = { env = "prod" } }
    local rid, lease = prod:take(5)
    assert.equal(run_id, rid)
    local acc = prod:accept(rid, lease)
    assert.equal(200, acc.status)
    assert.equal("X25519-HKDF-SHA256-A256GCM", acc.json.run.secrets.alg)
  end)

  it("makes a real agent configured with prod labels stop, saying it was refused", function()
    local agent = agenttest.start(hub, { key = staging_key, labels = { env = "prod" }, wait = false })
    local code = agent:wait_exit(20000)
    local log = agent:log()
    agent:cleanup()
    assert.equal(2, code, log)
    assert.truthy(log:find("refused to register", 1, true), log)
    assert.truthy(log:find("labels.env", 1, true), log)
    assert.falsy(log:find(staging_key:sub(18), 1, true))
  end)
end)
