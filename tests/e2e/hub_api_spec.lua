-- The hub's user API over real HTTP against a running `hangar hub`: the protocol header, the
-- error format and the order of checks, keys, tasks, runs, config variables, metrics, limits.
local hubtest = require "hubtest"
local json = require "hangar.json"

local hub

setup(function()
  hub = hubtest.start { name = "hub-api" }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

-- Asserts an error answer: status, code, and (optionally) text the message must contain.
local function assert_error(res, status, code, text)
  assert.equal(status, res.status, res.body)
  assert.is_table(res.json, res.body)
  assert.equal(code, res.json.error.code, res.body)
  assert.is_string(res.json.error.message)
  if text then
    assert.truthy(res.json.error.message:find(text, 1, true), res.json.error.message)
  end
end

local hello = {
  slug = "hello",
  name = "Say hello",
  description = "Greets someone.",
  parameters = {
    { slug = "name", type = "string", required = false, default = "world" },
    { slug = "count", type = "integer", required = true },
    { slug = "when", type = "date" },
    { slug = "extra", type = "json" },
  },
  command = { "/bin/sh", "-c", "echo \"Hello, $PARAM_NAME\"" },
  env = { GREETING = "hi" },
  timeout = 600,
}

describe("hub protocol basics", function()
  it("answers /healthz without a credential, with the protocol header", function()
    local res = hub:get("/healthz", false)
    assert.equal(200, res.status)
    assert.equal("1", res.headers["hangar-protocol"])
    assert.is_true(res.json.ok)
  end)

  it("puts Hangar-Protocol: 1 on errors too, including ones the HTTP layer makes", function()
    assert.equal("1", hub:get("/v1/runs", false).headers["hangar-protocol"])
    assert.equal("1", hub:get("/nowhere").headers["hangar-protocol"])
    local huge = hub:request("POST", "/v1/tasks", { body = string.rep("x", 17 * 1024 * 1024) })
    if huge then -- the hub may close before the client has sent it all
      assert_error(huge, 413, "too_large")
      assert.equal("1", huge.headers["hangar-protocol"])
    end
  end)

  it("checks authentication before the method: 401 before 405", function()
    assert_error(hub:request("DELETE", "/v1/tasks", { key = false }), 401, "unauthorized")
    local res = hub:request("DELETE", "/v1/tasks")
    assert_error(res, 405, "method_not_allowed")
    assert.truthy(res.headers["allow"]:find("POST", 1, true))
  end)

  it("refuses unknown and malformed credentials with 401", function()
    assert_error(hub:get("/v1/tasks", "hgr_abcdefghijkl_" .. string.rep("A", 43)), 401, "unauthorized")
    assert_error(hub:get("/v1/tasks", "not-a-key"), 401, "unauthorized")
    assert_error(hub:request("GET", "/v1/tasks", { key = false, headers = { Authorization = "Basic eDp5" } }),
      401, "unauthorized")
    -- The right key id with a wrong secret is just as unknown.
    local wrong = hub.admin_key:sub(1, -2) .. (hub.admin_key:sub(-1) == "A" and "B" or "A")
    assert_error(hub:get("/v1/tasks", wrong), 401, "unauthorized")
  end)

  it("answers 404 for unknown paths and 405 for known paths with another method", function()
    assert_error(hub:get("/v1/nothing"), 404, "not_found")
    assert_error(hub:get("/v1/runs/x/y/z"), 404, "not_found")
    assert_error(hub:request("PATCH", "/v1/runs"), 405, "method_not_allowed")
    assert_error(hub:get("/v1/config-vars/x"), 405, "method_not_allowed")
    assert_error(hub:request("POST", "/healthz", { key = false }), 405, "method_not_allowed")
  end)

  it("answers malformed JSON and wrong types with 400 naming the field", function()
    assert_error(hub:request("POST", "/v1/tasks", { body = "{\"slug\": " }), 400, "bad_request", "body")
    assert_error(hub:request("POST", "/v1/tasks", { body = "[1, 2]" }), 400, "bad_request", "body")
    assert_error(hub:request("POST", "/v1/tasks", { body = "{} trailing" }), 400, "bad_request", "body")
    assert_error(hub:request("POST", "/v1/tasks", { body = "{\"slug\": \"\255\"}" }), 400, "bad_request", "UTF-8")
    assert_error(hub:post("/v1/keys", { role = 7 }), 400, "bad_request", "role")
    assert_error(hub:post("/v1/runs", { task = "hello", params = "x" }), 400, "bad_request", "params")
  end)

  it("limits bodies to 1 MiB outside event batches", function()
    local res = hub:request("POST", "/v1/tasks", { body = "{\"slug\":\"" .. string.rep("a", 1100000) .. "\"}" })
    assert_error(res, 413, "too_large")
    res = hub:request("PUT", "/v1/config-vars/big", { body = { value = string.rep("v", 1048576) } })
    assert_error(res, 413, "too_large")
  end)
end)

describe("hub keys", function()
  it("creates keys of each role, shows the key once and never its secret again", function()
    local res = hub:post("/v1/keys", { role = "user", name = "ci" })
    assert.equal(201, res.status)
    local key, id = res.json.key, res.json.id
    assert.matches("^hgr_[a-z0-9]+_[A-Za-z0-9_-]+$", key)
    assert.equal(12, #id)
    assert.equal(4 + 12 + 1 + 43, #key)
    assert.equal("hgr_" .. id .. "_", key:sub(1, 17))
    local list = hub:get("/v1/keys")
    assert.equal(200, list.status)
    assert.falsy(list.body:find(key:sub(18), 1, true))
    local found
    for _, k in ipairs(list.json.keys) do
      if k.id == id then found = k end
    end
    assert.equal("user", found.role)
    assert.equal("ci", found.name)
    assert.is_false(found.revoked)
    -- the user key works, and may not manage keys
    assert.equal(200, hub:get("/v1/tasks", key).status)
    assert_error(hub:get("/v1/keys", key), 403, "forbidden")
    assert_error(hub:post("/v1/keys", { role = "admin" }, key), 403, "forbidden")
    -- last use is recorded
    list = hub:get("/v1/keys")
    for _, k in ipairs(list.json.keys) do
      if k.id == id then assert.is_string(k.last_used_at) end
    end
  end)

  it("refuses bad roles and labels on non-agent keys", function()
    assert_error(hub:post("/v1/keys", { role = "root" }), 400, "bad_request", "role")
    assert_error(hub:post("/v1/keys", { name = "x" }), 400, "bad_request", "role")
    assert_error(hub:post("/v1/keys", { role = "user", labels = { env = "prod" } }), 400, "bad_request", "labels")
    assert_error(hub:post("/v1/keys", { role = "agent", labels = { env = 1 } }), 400, "bad_request", "labels.env")
  end)

  it("revokes a key: 204, then 401 for it; unknown ids are 404", function()
    local key, id = hub:make_key("user")
    assert.equal(204, hub:delete("/v1/keys/" .. id).status)
    assert_error(hub:get("/v1/tasks", key), 401, "unauthorized")
    assert.equal(204, hub:delete("/v1/keys/" .. id).status)
    assert_error(hub:delete("/v1/keys/nosuchkey000"), 404, "not_found")
    local list = hub:get("/v1/keys")
    for _, k in ipairs(list.json.keys) do
      if k.id == id then
        assert.is_true(k.revoked)
        assert.is_string(k.revoked_at)
      end
    end
  end)

  it("keeps agent keys and run tokens off the user API", function()
    local akey = hub:make_key("agent")
    assert_error(hub:get("/v1/tasks", akey), 403, "forbidden")
    assert_error(hub:get("/metrics", akey), 403, "forbidden")
    local ukey = hub:make_key("user")
    assert_error(hub:post("/v1/agents", { public_key = hubtest.random_public_key() }, ukey), 403, "forbidden")
  end)
end)

describe("hub tasks", function()
  it("deploys a definition: 201 with a revision, 200 when unchanged, 201 when changed", function()
    local res = hub:post("/v1/tasks", hello)
    assert.equal(201, res.status, res.body)
    assert.equal("hello", res.json.slug)
    local rev = res.json.revision
    res = hub:post("/v1/tasks", hello)
    assert.equal(200, res.status)
    assert.equal(rev, res.json.revision)
    -- Member order does not matter: the same definition with its keys written the other way.
    local text = '{"timeout":600,"env":{"GREETING":"hi"},"command":["/bin/sh","-c","echo \\"Hello, $PARAM_NAME\\""],'
      .. '"parameters":[{"default":"world","required":false,"type":"string","slug":"name"},'
      .. '{"required":true,"type":"integer","slug":"count"},{"type":"date","slug":"when"},'
      .. '{"type":"json","slug":"extra"}],"description":"Greets someone.","name":"Say hello","slug":"hello"}'
    res = hub:request("POST", "/v1/tasks", { body = text })
    assert.equal(200, res.status, res.body)
    assert.equal(rev, res.json.revision)
    local changed = {}
    for k, v in pairs(hello) do changed[k] = v end
    changed.description = "Greets someone warmly."
    res = hub:post("/v1/tasks", changed)
    assert.equal(201, res.status)
    assert.equal(rev + 1, res.json.revision)
    res = hub:post("/v1/tasks", hello)
    assert.equal(201, res.status)
    assert.equal(rev + 2, res.json.revision)
  end)

  it("shows and lists tasks", function()
    local res = hub:get("/v1/tasks/hello")
    assert.equal(200, res.status)
    assert.equal("Say hello", res.json.name)
    assert.equal(600, res.json.timeout)
    assert.equal("integer", res.json.parameters[2].type)
    assert.is_true(res.json.parameters[2].required)
    assert.is_number(res.json.revision)
    res = hub:get("/v1/tasks/hello?revision=1")
    assert.equal(1, res.json.revision)
    res = hub:get("/v1/tasks")
    assert.equal(200, res.status)
    local slugs = {}
    for _, t in ipairs(res.json.tasks) do slugs[t.slug] = t end
    assert.equal("Say hello", slugs.hello.name)
    assert_error(hub:get("/v1/tasks/absent"), 404, "not_found")
  end)

  it("fills in defaults: timeout 3600, name from slug", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "min", command = { "true" } }).status)
    local t = hub:get("/v1/tasks/min").json
    assert.equal(3600, t.timeout)
    assert.equal("min", t.name)
    assert.equal(201, hub:post("/v1/tasks", { slug = "img-only", image = "alpine:3.20" }).status)
  end)

  local bad = {
    { { slug = "x", command = { "a" }, comand = { "b" } }, "comand" },
    { { command = { "a" } }, "slug" },
    { { slug = "Not Valid", command = { "a" } }, "slug" },
    { { slug = string.rep("a", 65), command = { "a" } }, "slug" },
    { { slug = "x" }, "command" },
    { { slug = "x", command = "echo hi" }, "command" },
    { { slug = "x", command = json.array {} }, "command" },
    { { slug = "x", command = { "a" }, timeout = 0 }, "timeout" },
    { { slug = "x", command = { "a" }, timeout = 43201 }, "timeout" },
    { { slug = "x", command = { "a" }, timeout = 1.5 }, "timeout" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "Bad", type = "string" } } }, "parameters[0].slug" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "a-b", type = "string" } } }, "parameters[0].slug" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n", type = "int" } } }, "parameters[0].type" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n" } } }, "parameters[0].type" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n", type = "string", colour = "red" } } }, "parameters[0].colour" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n", type = "integer", default = "3" } } }, "parameters[0].default" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n", type = "boolean", required = "yes" } } }, "parameters[0].required" },
    { { slug = "x", command = { "a" }, parameters = { { slug = "n", type = "string" }, { slug = "n", type = "string" } } }, "parameters[1].slug" },
    { { slug = "x", command = { "a" }, env = { ["1BAD"] = "v" } }, "env.1BAD" },
    { { slug = "x", command = { "a" }, env = { A = 1 } }, "env.A" },
    { { slug = "x", command = { "a" }, env = { A = { secret = "y" } } }, "env.A" },
    { { slug = "x", command = { "a" }, constraints = { env = true } }, "constraints.env" },
    { { slug = "x", command = { "a" }, resources = "big" }, "resources" },
  }
  for i, case in ipairs(bad) do
    it("refuses an invalid definition (" .. i .. ": " .. case[2] .. ") naming the field", function()
      local res = hub:post("/v1/tasks", case[1])
      assert_error(res, 400, "bad_request")
      assert.equal(case[2], res.json.error.message:sub(1, #case[2]), res.json.error.message)
    end)
  end
end)

describe("hub runs (user side)", function()
  it("creates a run with defaults filled in and correct JSON types", function()
    local res = hub:post("/v1/runs", { task = "hello", params = { count = 3, extra = { a = { 1, 2 } }, when = "2026-02-28" } })
    assert.equal(201, res.status, res.body)
    local id = res.json.run_id
    assert.matches("^[A-Za-z0-9_-]+$", id)
    res = hub:get("/v1/runs/" .. id)
    assert.equal(200, res.status)
    local run = res.json
    assert.equal(id, run.id)
    assert.equal("hello", run.task)
    assert.equal("queued", run.status)
    assert.equal("world", run.params.name)
    assert.equal(3, run.params.count)
    assert.equal(math.type(3), math.type(run.params.count))
    assert.same({ 1, 2 }, { run.params.extra.a[1], run.params.extra.a[2] })
    assert.equal(json.null, run.outputs)
    assert.equal(0, #run.output_errors)
    assert.equal(json.null, run.started_at)
    assert.equal(json.null, run.agent)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", run.created_at)
  end)

  local params_bad = {
    { {}, "params.count" },
    { { count = "3" }, "params.count" },
    { { count = 2.5 }, "params.count" },
    { { count = 1, name = 5 }, "params.name" },
    { { count = 1, when = "2026-02-30" }, "params.when" },
    { { count = 1, when = "yesterday" }, "params.when" },
    { { count = 1, nope = 1 }, "params.nope" },
  }
  for i, case in ipairs(params_bad) do
    it("refuses bad params (" .. i .. ") naming the parameter", function()
      local res = hub:post("/v1/runs", { task = "hello", params = case[1] })
      assert_error(res, 400, "bad_request", case[2])
    end)
  end

  it("answers 404 for an unknown task and an unknown run", function()
    assert_error(hub:post("/v1/runs", { task = "no-such-task" }), 404, "not_found")
    assert_error(hub:get("/v1/runs/run_doesnotexist"), 404, "not_found")
    assert_error(hub:get("/v1/runs/run_doesnotexist/events"), 404, "not_found")
    assert_error(hub:post("/v1/runs/run_doesnotexist/cancel"), 404, "not_found")
  end)

  it("lists runs newest first, filtered by task and status, with a limit", function()
    local a = hub:post("/v1/runs", { task = "min" }).json.run_id
    local b = hub:post("/v1/runs", { task = "min" }).json.run_id
    local res = hub:get("/v1/runs?task=min&limit=2")
    assert.equal(200, res.status)
    assert.equal(2, #res.json.runs)
    assert.equal(b, res.json.runs[1].id)
    assert.equal(a, res.json.runs[2].id)
    res = hub:get("/v1/runs?status=queued&task=min")
    for _, r in ipairs(res.json.runs) do assert.equal("queued", r.status) end
    assert_error(hub:get("/v1/runs?status=sleeping"), 400, "bad_request", "status")
    assert_error(hub:get("/v1/runs?limit=0"), 400, "bad_request", "limit")
    assert_error(hub:get("/v1/runs?limit=many"), 400, "bad_request", "limit")
  end)

  it("cancels a queued run at once; a second cancel is 409 invalid_transition", function()
    local id = hub:post("/v1/runs", { task = "min" }).json.run_id
    local res = hub:post("/v1/runs/" .. id .. "/cancel")
    assert.equal(202, res.status)
    assert.equal("cancelled", hub:get("/v1/runs/" .. id).json.status)
    res = hub:post("/v1/runs/" .. id .. "/cancel")
    assert_error(res, 409, "invalid_transition")
    assert.equal("cancelled", res.json.status)
  end)

  it("reads the events of a run with no events: empty, done once it ended", function()
    local id = hub:post("/v1/runs", { task = "min" }).json.run_id
    local res = hub:get("/v1/runs/" .. id .. "/events")
    assert.equal(200, res.status)
    assert.equal(0, #res.json.events)
    assert.equal(0, res.json.next_seq)
    assert.is_false(res.json.done)
    hub:post("/v1/runs/" .. id .. "/cancel")
    res = hub:get("/v1/runs/" .. id .. "/events?after=-1&wait=5")
    assert.is_true(res.json.done)
    assert_error(hub:get("/v1/runs/" .. id .. "/events?after=x"), 400, "bad_request", "after")
  end)
end)

describe("hub config variables", function()
  it("sets, lists and deletes variables; secret values come back null", function()
    local res = hub:put("/v1/config-vars/db_host", { value = "db.internal" })
    assert.equal(200, res.status)
    res = hub:put("/v1/config-vars/db_password", { value = "hunter2-hunter2", secret = true })
    assert.equal(200, res.status)
    assert.is_true(res.json.secret)
    res = hub:get("/v1/config-vars")
    assert.equal(200, res.status)
    local vars = {}
    for _, v in ipairs(res.json.config_vars) do vars[v.name] = v end
    assert.equal("db.internal", vars.db_host.value)
    assert.is_false(vars.db_host.secret)
    assert.equal(json.null, vars.db_password.value)
    assert.is_true(vars.db_password.secret)
    assert.falsy(res.body:find("hunter2", 1, true))
    local user = hub:make_key("user")
    res = hub:get("/v1/config-vars", user)
    assert.falsy(res.body:find("hunter2", 1, true))
    assert.equal(204, hub:delete("/v1/config-vars/db_host").status)
    assert_error(hub:delete("/v1/config-vars/db_host"), 404, "not_found")
  end)

  it("refuses bad names and values", function()
    assert_error(hub:put("/v1/config-vars/bad%20name", { value = "x" }), 400, "bad_request", "name")
    assert_error(hub:put("/v1/config-vars/x", { value = 5 }), 400, "bad_request", "value")
    assert_error(hub:put("/v1/config-vars/x", {}), 400, "bad_request", "value")
    assert_error(hub:put("/v1/config-vars/x", { value = "v", secret = "yes" }), 400, "bad_request", "secret")
  end)

  it("refuses a run whose task needs a config variable that is not set", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "needs-var", command = { "true" },
      env = { TOKEN = { config = "not_set_anywhere" } } }).status)
    assert_error(hub:post("/v1/runs", { task = "needs-var" }), 400, "bad_request", "env.TOKEN")
  end)
end)

describe("hub metrics", function()
  it("serves Prometheus text to admin and user keys", function()
    local res = hub:get("/metrics")
    assert.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("text/plain", 1, true))
    assert.truthy(res.body:find('hangar_runs{status="queued"}', 1, true))
    assert.truthy(res.body:find("hangar_agents_connected", 1, true))
    assert.truthy(res.body:find("hangar_long_polls_open", 1, true))
    assert.truthy(res.body:find("hangar_events_ingested_total", 1, true))
    assert.truthy(res.body:find("hangar_http_request_duration_seconds_bucket", 1, true))
    assert.equal(200, hub:get("/metrics", hub:make_key("user")).status)
    assert_error(hub:get("/metrics", false), 401, "unauthorized")
  end)
end)
