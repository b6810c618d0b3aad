-- Malformed and oversized requests are refused with the right status and the protocol's error
-- document naming what was wrong, on every endpoint, and the hub keeps serving: truncated
-- JSON, other JSON types, invalid UTF-8, deep nesting, trailing junk, wrong field types, huge
-- numbers, bodies over the limits (up to 20 MB, by length and chunked), bad query
-- parameters; and on the socket binary garbage, the HTTP/2 preface, HTTP/0.9 and 1.0, huge
-- and countless headers, headers and bodies dripped a byte at a time, hundreds of idle
-- connections, and more connections than the hub has file descriptors. Afterwards it answers
-- /healthz and ordinary requests, its log shows no crash, and it stops cleanly.
local hubtest = require "hubtest"
local security = require "security"
local json = require "hangar.json"

local q, write = security.q, security.write

local hub, agent, run_id, slow_headers, slow_body

setup(function()
  hub = hubtest.start { name = "sec-hostile", args = { "--lease-ttl", "60", "--heartbeat-interval", "5" } }
  -- Dripping clients take the hub's request timeout to be dropped: let them drip meanwhile.
  slow_headers = security.wire_async(hub, "slow-headers", { "40" })
  slow_body = security.wire_async(hub, "slow-body", { "40" })
  assert.equal(201, hub:post("/v1/tasks", {
    slug = "t", command = { "true" }, constraints = { pool = "hostile" },
    parameters = json.array { { slug = "n", type = "integer", required = false } },
  }).status)
  run_id = hub:post("/v1/runs", { task = "t" }).json.run_id
  agent = hub:agent { labels = { pool = "hostile" } }
  local rid, lease = agent:take(5)
  assert.equal(run_id, rid)
  assert.equal(200, agent:accept(rid, lease).status)
end)

teardown(function()
  if hub then hub:cleanup() end
end)

local registering_key
local function agent_key()
  registering_key = registering_key or hub:make_key("agent")
  return registering_key
end

-- Every endpoint that reads a body, with a credential that may call it.
local function endpoints()
  return {
    { "POST", "/v1/keys" },
    { "POST", "/v1/tasks" },
    { "POST", "/v1/runs" },
    { "POST", "/v1/runs/" .. run_id .. "/cancel" },
    { "PUT", "/v1/config-vars/hostile" },
    { "POST", "/v1/agents", agent_key() },
    { "POST", agent:path("/heartbeat"), agent.token },
    { "POST", "/v1/runs/" .. run_id .. "/accept", agent.token },
    { "POST", "/v1/runs/" .. run_id .. "/start", agent.token },
    { "POST", "/v1/runs/" .. run_id .. "/events", agent.token },
    { "POST", "/v1/runs/" .. run_id .. "/finish", agent.token },
  }
end

local function send(method, path, key, body)
  local res, err = hub:request(method, path, { key = key or hub.admin_key, body = body,
                                               headers = { ["Content-Type"] = "application/json" } })
  assert(res, err)
  return res
end

-- The answer is status with the error document of code, its message containing each of texts.
local function refused(res, status, code, texts, what)
  assert.equal(status, res.status, what .. ": " .. tostring(res.body):sub(1, 300))
  assert.truthy(res.json and res.json.error, what .. ": no error document: " .. tostring(res.body):sub(1, 300))
  assert.equal(code, res.json.error.code, what)
  assert.is_string(res.json.error.message)
  for _, t in ipairs(texts or {}) do
    assert.truthy(res.json.error.message:find(t, 1, true), what .. ": '" .. res.json.error.message .. "' does not name " .. t)
  end
  assert.equal("1", res.headers["hangar-protocol"], what)
end

describe("the hub", function()
  it("refuses bodies that are not one JSON object, on every endpoint, with 400 naming the body", function()
    local deep_arrays = ("["):rep(100000) .. ("]"):rep(100000)
    local deep_objects = ('{"a":'):rep(20000) .. "1" .. ("}"):rep(20000)
    local bodies = {
      truncated = '{"role": "user", "na',
      array = "[1, 2]",
      string = '"text"',
      number = "12",
      null = "null",
      ["invalid UTF-8 in a string"] = '{"name": "a\255\254b"}',
      ["invalid UTF-8 outside strings"] = "{\192\128}",
      ["trailing junk"] = '{"a": 1} {"b": 2}',
      ["deeply nested arrays"] = deep_arrays,
      ["deeply nested objects"] = deep_objects,
      ["binary garbage"] = "\0\1\2\255\128{\254",
    }
    for _, ep in ipairs(endpoints()) do
      for what, body in pairs(bodies) do
        refused(send(ep[1], ep[2], ep[3], body), 400, "bad_request", { "body" }, ep[1] .. " " .. ep[2] .. " with " .. what)
      end
      -- A lone surrogate escape is valid JSON that decodes to no character: whatever the
      -- endpoint makes of it, it is an answer, not a failure of the hub.
      local res = send(ep[1], ep[2], ep[3], '{"name": "\\ud800", "value": "\\udfff"}')
      assert.truthy(res.status < 500, ep[2] .. ": " .. tostring(res.body))
    end
  end)

  it("refuses raw control characters inside JSON strings (RFC 8259), instead of cutting the text at a NUL", function()
    for _, ep in ipairs(endpoints()) do
      for _, body in ipairs({ '{"name": "a\0b"}', '{"name": "a\1b"}', '{"first_seq": 0, "events": [{"kind": "log", '
          .. '"stream": "stdout", "text": "x\0y"}]}' }) do
        refused(send(ep[1], ep[2], ep[3], body), 400, "bad_request", { "body" }, ep[1] .. " " .. ep[2] .. " with a raw control byte")
      end
    end
  end)

  it("refuses a required body left out", function()
    for _, ep in ipairs(endpoints()) do
      if not ep[2]:find("/cancel$") and not ep[2]:find("/start$") then
        refused(send(ep[1], ep[2], ep[3], ""), 400, "bad_request", { "body" }, ep[1] .. " " .. ep[2] .. " without a body")
      end
    end
  end)

  it("refuses wrong types and numbers out of range with 400 naming the field", function()
    local cases = {
      { "POST", "/v1/keys", nil, '{"role": 5, "name": "x"}', "role" },
      { "POST", "/v1/keys", nil, '{"role": "agent", "name": "x", "labels": {"env": 1e400}}', "labels.env" },
      { "POST", "/v1/tasks", nil, '{"slug": "x", "command": "true"}', "command" },
      { "POST", "/v1/tasks", nil, '{"slug": "x", "command": ["true"], "timeout": 1e400}', "timeout" },
      { "POST", "/v1/tasks", nil, '{"slug": "x", "command": ["true"], "timeout": -1e308}', "timeout" },
      { "POST", "/v1/tasks", nil, '{"slug": "x", "command": ["true"], "timeout": 9007199254740993}', "timeout" },
      { "POST", "/v1/tasks", nil, '{"slug": ["x"], "command": ["true"]}', "slug" },
      { "POST", "/v1/runs", nil, '{"task": 5}', "task" },
      { "POST", "/v1/runs", nil, '{"task": "t", "params": {"n": 1e400}}', "params.n" },
      { "POST", "/v1/runs", nil, '{"task": "t", "params": {"n": 1e300}}', "params.n" },
      { "POST", "/v1/runs", nil, '{"task": "t", "params": {"n": 1.5}}', "params.n" },
      { "POST", "/v1/runs", nil, '{"task": "t", "params": []}', "params" },
      { "PUT", "/v1/config-vars/hostile", nil, '{"value": 5}', "value" },
      { "PUT", "/v1/config-vars/hostile", nil, '{"value": "v", "secret": "yes"}', "secret" },
      { "POST", "/v1/agents", "agent", '{"public_key": 5}', "public_key" },
      { "POST", "/v1/agents", "agent", '{"public_key": "' .. hubtest.random_public_key() .. '", "capacity": 1e400}', "capacity" },
      { "POST", "/v1/agents", "agent", '{"public_key": "' .. hubtest.random_public_key() .. '", "capacity": -5}', "capacity" },
      { "POST", "/v1/agents", "agent", '{"public_key": "' .. hubtest.random_public_key() .. '", "labels": [1]}', "labels" },
      { "POST", "heartbeat", "session", '{"runs": "x"}', "runs" },
      { "POST", "heartbeat", "session", '{"runs": [], "free": 1e400}', "free" },
      { "POST", "accept", "session", '{"lease_id": 5}', "lease_id" },
      { "POST", "start", "session", '{"at": 5}', "at" },
      { "POST", "start", "session", '{"at": "yesterday"}', "at" },
      { "POST", "events", "session", '{"first_seq": "0", "events": []}', "first_seq" },
      { "POST", "events", "session", '{"first_seq": 1e400, "events": []}', "first_seq" },
      { "POST", "events", "session", '{"first_seq": -1, "events": []}', "first_seq" },
      { "POST", "events", "session", '{"first_seq": 0, "events": {}}', "events" },
      { "POST", "events", "session", '{"first_seq": 0, "events": [{"kind": "log", "stream": "out", "text": "x"}]}', "events[0].stream" },
      { "POST", "events", "session", '{"first_seq": 0, "events": [{"kind": "log", "stream": "stdout", "text": 5}]}', "events[0].text" },
      { "POST", "events", "session", '{"first_seq": 0, "events": [{"kind": "output", "op": "set", "path": "", "value": '
        .. ('{"a":'):rep(5000) .. "1" .. ("}"):rep(5000) .. "}]}", "" },
      { "POST", "finish", "session", '{"status": 5, "events_total": 0}', "status" },
      { "POST", "finish", "session", '{"status": "failed", "events_total": 1e400}', "events_total" },
      { "POST", "finish", "session", '{"status": "exploded", "events_total": 0}', "status" },
    }
    for _, c in ipairs(cases) do
      local method, path, cred, body, field = c[1], c[2], c[3], c[4], c[5]
      local key
      if cred == "agent" then
        key = agent_key()
      elseif cred == "session" then
        key = agent.token
        path = path == "heartbeat" and agent:path("/heartbeat") or ("/v1/runs/" .. run_id .. "/" .. path)
      end
      local res = send(method, path, key, body)
      refused(res, 400, "bad_request", { field }, method .. " " .. path .. " " .. body:sub(1, 80))
    end
  end)

  it("refuses bodies over the limits with 413 too_large", function()
    local big = ('{"slug": "big", "description": "%s"}'):format(("a"):rep(2 * 1024 * 1024))
    for _, ep in ipairs(endpoints()) do
      if not ep[2]:find("/events$") then
        refused(send(ep[1], ep[2], ep[3], big), 413, "too_large", { "limit" }, ep[1] .. " " .. ep[2] .. " with 2 MiB")
      end
    end
    local events_path = "/v1/runs/" .. run_id .. "/events"
    local batch = ('{"first_seq": 0, "events": [{"kind": "log", "stream": "stdout", "text": "%s"}]}'):format(("a"):rep(9 * 1024 * 1024))
    refused(send("POST", events_path, agent.token, batch), 413, "too_large", { "limit" }, "a 9 MiB batch")
    local line = ('{"first_seq": 0, "events": [{"kind": "log", "stream": "stdout", "text": "%s"}]}'):format(("a"):rep(65 * 1024))
    refused(send("POST", events_path, agent.token, line), 413, "too_large", {}, "a 65 KiB event")
    -- 20 MB: the HTTP layer answers 413 before reading and closes, so an HTTP client still
    -- sending may see the connection go rather than the answer; the socket probes below
    -- read that answer.
    -- Nothing of them was stored.
    assert.equal(0, hub:get("/v1/runs/" .. run_id).json.events)
    assert.equal(404, hub:get("/v1/tasks/big").status)
  end)

  it("refuses query parameters that are not what they should be, naming them", function()
    local cases = {
      { agent:path("/work?wait=abc"), agent.token, "wait" },
      { agent:path("/work?wait=0&free=-1"), agent.token, "free" },
      { agent:path("/work?wait=0&free=1e400"), agent.token, "free" },
      { "/v1/runs?limit=0", nil, "limit" },
      { "/v1/runs?limit=99999999999999999999999", nil, "limit" },
      { "/v1/runs?status=exploded", nil, "status" },
      { "/v1/runs/" .. run_id .. "/events?after=x", nil, "after" },
      { "/v1/runs/" .. run_id .. "/events?after=1e400", nil, "after" },
      { "/v1/runs/" .. run_id .. "/events?limit=-3", nil, "limit" },
      { "/v1/runs/" .. run_id .. "/events?wait=%ff", nil, "wait" },
    }
    for _, c in ipairs(cases) do
      refused(assert(hub:get(c[1], c[2])), 400, "bad_request", { c[3] }, c[1])
    end
    -- Ids that are not ids are unknown, not errors of the hub.
    for _, p in ipairs({ "/v1/runs/%00", "/v1/runs/" .. ("x"):rep(5000), "/v1/runs/%ff%fe", "/v1/tasks/..%2f..%2fetc" }) do
      local res = assert(hub:get(p))
      assert.truthy(res.status == 404 or res.status == 400, p .. ": " .. res.status)
      assert.truthy(res.json and res.json.error, p)
    end
  end)

  it("survives hostile bytes on the socket, and answers each with a refusal", function()
    for _, mode in ipairs({ "garbage", "h2-preface", "http09", "huge-header", "many-headers" }) do
      local r = security.wire(hub, mode)
      assert.equal(400, r.status, mode .. ": " .. json.encode(r))
      assert.is_true(r.closed, mode .. ": the connection stayed open")
    end
    local r = security.wire(hub, "http10")
    assert.equal(200, r.status, json.encode(r))
    assert.equal('{"ok":true}', r.body)
    for _, chunked in ipairs({ "0", "1" }) do
      r = security.wire(hub, "big-body", { "20000000", chunked })
      assert.equal(413, r.status, json.encode(r))
      assert.equal("too_large", json.decode(r.body).error.code)
    end
    r = security.wire(hub, "many", { "400" })
    assert.equal(400, r.opened, json.encode(r))
    assert.equal(200, r.healthz_during, json.encode(r))
    assert.equal(200, r.healthz_after, json.encode(r))
  end)

  it("drops clients that send headers or a body a byte at a time, within a bounded time", function()
    for name, probe in pairs({ headers = slow_headers, body = slow_body }) do
      local r = probe.wait()
      assert.is_number(r.closed_after_s, "the hub kept a connection dripping " .. name .. " for 40 s")
      assert.truthy(r.closed_after_s < 30, name .. ": " .. json.encode(r))
    end
  end)

  it("keeps serving afterwards: /healthz, ordinary requests, no crash in its log, a clean stop", function()
    assert.equal(200, hub:get("/healthz", false).status)
    assert.equal(201, hub:post("/v1/tasks", { slug = "after", command = { "true" } }).status)
    assert.equal(201, hub:post("/v1/runs", { task = "after" }).status)
    assert.equal(200, agent:events(run_id, 0, { hubtest.log_event("still here") }).status)
    local log = hub:log()
    for _, mark in ipairs({ '"level":"error"', '"level":"fatal"', "Segmentation", "Assertion", "internal" }) do
      assert.falsy(log:find(mark, 1, true), "the hub's log shows " .. mark .. ":\n" .. log:sub(-3000))
    end
    assert.is_true(hub:stop(), "the hub did not stop by itself")
    hub:serve(hub.port)
  end)
end)

describe("a hub out of file descriptors", function()
  it("refuses connections it cannot take, and serves again once they are gone", function()
    local dir = security.shared_dir("sec-lowfd")
    local bin = dir .. "/hangar-lowfd"
    write(bin, ("#!/bin/sh\nulimit -n 64\nexec %s \"$@\"\n"):format(q(os.getenv("HANGAR_BIN"))), "755")
    local low = hubtest.start { name = "sec-lowfd", bin = bin }
    local ok, err = pcall(function()
      local r = security.wire(low, "many", { "300" })
      assert.truthy(r.opened >= 50, json.encode(r))
      assert.equal(200, r.healthz_after, json.encode(r))
      assert.equal(200, low:get("/v1/tasks").status)
      assert.falsy(low:log():find('"level":"error"', 1, true), low:log())
      assert.is_true(low:stop())
    end)
    low:cleanup()
    os.execute("rm -rf " .. q(dir))
    assert(ok, err)
  end)
end)
