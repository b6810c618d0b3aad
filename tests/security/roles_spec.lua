-- Each credential may do exactly what its role allows: a table of every endpoint against
-- every kind of credential (none, admin key, user key, agent key, agent session token, run
-- token of the run named and of another run, revoked key, token of an ended run, session of a
-- deregistered agent), each cell the status the protocol prescribes. A refusal has the error
-- document with the matching code and never echoes the credential.
local hubtest = require "hubtest"
local json = require "hangar.json"

local hub
local creds = {}   -- name -> credential text (false: none)
local secrets = {} -- texts no answer may contain
local ids = {}     -- run_a, run_b, agent, victim, key

local CREDS = { "none", "admin", "user", "agent_key", "session", "run_own", "run_other", "revoked", "run_ended", "session_dead" }
-- Credentials the hub does not accept at all: 401 everywhere but /healthz.
local INVALID = { none = true, revoked = true, run_ended = true, session_dead = true }

local n = 0
local function fresh(prefix)
  n = n + 1
  return ("%s-%d"):format(prefix, n)
end

-- A queued run nobody will ever take (its constraint matches no agent).
local function idle_run()
  local res = hub:post("/v1/runs", { task = "idle" })
  assert(res.status == 201, res.body)
  return res.json.run_id
end

setup(function()
  hub = hubtest.start { name = "sec-roles", args = { "--lease-ttl", "30", "--heartbeat-interval", "5" } }
  creds.none = false
  creds.admin = hub.admin_key
  creds.user = hub:make_key("user")
  creds.agent_key = hub:make_key("agent")
  local revoked, revoked_id = hub:make_key("admin", nil, "to-revoke")
  assert.equal(204, hub:delete("/v1/keys/" .. revoked_id).status)
  creds.revoked = revoked
  local _, throwaway = hub:make_key("user", nil, "throwaway")
  ids.key = throwaway

  assert(hub:post("/v1/tasks", { slug = "idle", command = { "true" }, constraints = { nowhere = "x" } }).status == 201)
  assert(hub:post("/v1/tasks", { slug = "held", command = { "true" }, constraints = { pool = "roles" } }).status == 201)
  local made = {}
  for i = 1, 3 do
    made[i] = hub:post("/v1/runs", { task = "held" }).json.run_id
  end
  local agent = hub:agent { labels = { pool = "roles" }, capacity = 3 }
  local tokens, taken = {}, 0
  while taken < 3 do
    local work = agent:work(5)
    assert(work.status == 200 and #work.json.assign > 0, "no run assigned: " .. tostring(work.body))
    for _, a in ipairs(work.json.assign) do
      local acc = agent:accept(a.run_id, a.lease_id)
      assert(acc.status == 200, acc.body)
      tokens[a.run_id] = acc.json.run.run_token
      taken = taken + 1
    end
  end
  ids.run_a, ids.run_b = made[1], made[2]
  assert.equal(200, agent:start(ids.run_a).status)
  creds.run_own, creds.run_other = tokens[made[1]], tokens[made[2]]
  -- The third run ends: its token with it.
  assert.equal(200, agent:finish(made[3], "succeeded", 0, 0).status)
  creds.run_ended = tokens[made[3]]
  creds.session = agent.token
  ids.agent = agent.id
  local victim = hub:agent {}
  ids.victim = victim.id
  local dead = hub:agent {}
  assert.equal(204, dead:deregister().status)
  creds.session_dead = dead.token
  for name, c in pairs(creds) do
    if c then
      -- keys: the secret after hgr_<id>_; tokens: all of it
      secrets[#secrets + 1] = c:match("^hgr_[a-z0-9]+_(.+)$") or c
    end
  end
end)

teardown(function()
  if hub then hub:cleanup() end
end)

local function register_body()
  return { name = "probe", labels = json.object(), capacity = 1, schedulers = json.array {},
           public_key = hubtest.random_public_key() }
end

-- Each row: method, path (text or function), body (table or function), and the status of
-- every credential allowed past the role check; any other valid credential gets 403, invalid
-- ones 401.
local ROWS = {
  { "GET", "/healthz", nil, { all = 200 } },
  { "GET", "/metrics", nil, { admin = 200, user = 200 } },
  { "POST", "/v1/keys", function() return { role = "user", name = fresh("k") } end, { admin = 201 } },
  { "GET", "/v1/keys", nil, { admin = 200 } },
  { "DELETE", function() return "/v1/keys/" .. ids.key end, nil, { admin = 204 } },
  { "POST", "/v1/tasks", function() return { slug = fresh("t"), command = { "true" } } end, { admin = 201, user = 201 } },
  { "GET", "/v1/tasks", nil, { admin = 200, user = 200 } },
  { "GET", "/v1/tasks/idle", nil, { admin = 200, user = 200 } },
  { "POST", "/v1/runs", { task = "idle" }, { admin = 201, user = 201, run_own = 201, run_other = 201 } },
  { "GET", "/v1/runs", nil, { admin = 200, user = 200 } },
  { "GET", function() return "/v1/runs/" .. ids.run_a end, nil, { admin = 200, user = 200, run_own = 200, run_other = 404 } },
  { "GET", function() return "/v1/runs/" .. ids.run_a .. "/events" end, nil,
    { admin = 200, user = 200, run_own = 200, run_other = 404 } },
  { "POST", function() return "/v1/runs/" .. idle_run() .. "/cancel" end, nil, { admin = 202, user = 202 } },
  { "PUT", "/v1/config-vars/roles_var", { value = "plain" }, { admin = 200, user = 200 } },
  { "GET", "/v1/config-vars", nil, { admin = 200, user = 200 } },
  { "DELETE", function()
      local name = fresh("gone")
      assert(hub:put("/v1/config-vars/" .. name, { value = "x" }).status == 200)
      return "/v1/config-vars/" .. name
    end, nil, { admin = 204, user = 204 } },
  { "POST", "/v1/agents", register_body, { admin = 201, agent_key = 201 } },
  { "GET", function() return "/v1/agents/" .. ids.agent .. "/work?wait=0" end, nil, { session = 200 } },
  -- Another agent's identity: no credential may poll, heartbeat or deregister it.
  { "GET", function() return "/v1/agents/" .. ids.victim .. "/work?wait=0" end, nil, {} },
  { "POST", function() return "/v1/agents/" .. ids.victim .. "/heartbeat" end, { runs = json.array {} }, {} },
  { "DELETE", function() return "/v1/agents/" .. ids.victim end, nil, {} },
  { "POST", function() return "/v1/agents/" .. ids.agent .. "/heartbeat" end,
    function() return { runs = json.array { { run_id = ids.run_a }, { run_id = ids.run_b } } } end, { session = 200 } },
  { "POST", function() return "/v1/runs/" .. ids.run_a .. "/accept" end, { lease_id = "lease_not_it" }, { session = 409 } },
  { "POST", function() return "/v1/runs/" .. ids.run_a .. "/start" end, json.object(), { session = 200 } },
  { "POST", function() return "/v1/runs/" .. ids.run_a .. "/events" end, { first_seq = 0, events = json.array {} }, { session = 200 } },
  { "POST", function() return "/v1/runs/" .. ids.run_a .. "/finish" end, { status = "succeeded", events_total = 1000 }, { session = 409 } },
  -- Paths no endpoint has, and a known path with the wrong method: 404 and 405 to anyone
  -- authenticated, 401 to anyone else (the hub does not tell strangers which paths exist).
  { "GET", "/v1/nothing-here", nil, { valid = 404 } },
  { "PATCH", "/v1/tasks", json.object(), { valid = 405 } },
}

local CODES = { [401] = "unauthorized", [403] = "forbidden", [404] = "not_found", [405] = "method_not_allowed", [409] = nil }

local function expected(allowed, cred)
  if allowed.all then
    return allowed.all
  end
  if INVALID[cred] then
    return 401
  end
  if allowed.valid then
    return allowed.valid
  end
  return allowed[cred] or 403
end

describe("every endpoint against every credential", function()
  for _, row in ipairs(ROWS) do
    local method, path, body, allowed = row[1], row[2], row[3], row[4]
    local label = type(path) == "string" and path or "(see the spec)"
    it(method .. " " .. label, function()
      local got, want = {}, {}
      for _, cred in ipairs(CREDS) do
        local p = type(path) == "function" and path() or path
        local b = type(body) == "function" and body() or body
        local res = assert(hub:request(method, p, { key = creds[cred], body = b }))
        local status = expected(allowed, cred)
        want[cred], got[cred] = status, res.status
        if res.status >= 400 then
          local e = res.json and res.json.error
          assert.is_table(e, method .. " " .. p .. " as " .. cred .. ": no error document: " .. tostring(res.body))
          if CODES[res.status] then
            assert.equal(CODES[res.status], e.code, res.body)
          end
          assert.is_string(e.message)
        end
        for _, s in ipairs(secrets) do
          assert.falsy((res.body or ""):find(s, 1, true), method .. " " .. p .. " as " .. cred .. " echoes a credential")
        end
      end
      assert.same(want, got)
    end)
  end
end)

describe("credentials", function()
  it("are refused when malformed, of another scheme, or with the right id and a wrong secret", function()
    local id = creds.admin:match("^hgr_([a-z0-9]+)_")
    local forged = "hgr_" .. id .. "_" .. ("A"):rep(43)
    for _, header in ipairs({ "Bearer", "Bearer ", "Basic " .. creds.admin, "Token " .. creds.admin, "Bearer " .. forged,
                              "Bearer hgr_" .. id, "Bearer hst_" .. ("x"):rep(43), "Bearer hrt_" .. ("x"):rep(43),
                              "Bearer " .. creds.admin .. "x", "Bearer " .. creds.admin:sub(1, -2) }) do
      local res = assert(hub:request("GET", "/v1/tasks", { key = false, headers = { Authorization = header } }))
      assert.equal(401, res.status, header)
      assert.equal("unauthorized", res.json.error.code)
      assert.falsy(res.body:find(creds.admin:sub(18), 1, true))
    end
  end)

  it("of an agent session end when the agent deregisters itself", function()
    local a = hub:agent {}
    assert.equal(200, a:work(0).status)
    assert.equal(204, a:deregister().status)
    assert.equal(401, a:work(0).status)
    assert.equal(401, a:heartbeat({}).status)
  end)

  it("of runs read only their own run: another run's id is 404, the run list 403", function()
    local res = hub:get("/v1/runs/" .. ids.run_b, creds.run_own)
    assert.equal(404, res.status)
    assert.equal(200, hub:get("/v1/runs/" .. ids.run_b, creds.run_other).status)
    assert.equal(403, hub:get("/v1/runs?task=held", creds.run_own).status)
    assert.equal(404, hub:get("/v1/runs/" .. ids.run_b .. "/events", creds.run_own).status)
  end)

  it("never show a key's secret or hash once created", function()
    local listed = hub:get("/v1/keys")
    assert.equal(200, listed.status)
    for _, k in ipairs(listed.json.keys) do
      assert.is_nil(k.key)
      assert.is_nil(k.secret_hash)
      assert.is_nil(k.hash)
    end
    for _, s in ipairs(secrets) do
      assert.falsy(listed.body:find(s, 1, true))
    end
  end)
end)
