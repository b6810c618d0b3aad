-- Secret config variables: sealed to the agent's key at accept (opened here by an independent
-- implementation of the sealed box), never in plain text in any answer, in the store's files
-- or in the hub's log, and never readable back with a user key.
local hubtest = require "hubtest"
local testutil = require "testutil"
local json = require "hangar.json"
local crypto = require "hangar.crypto"

local SEALBOX = testutil.SRC .. "/tests/interop/sealbox.py"

local hub
-- A value no other test would produce, and long enough to be unmistakable.
local SECRET = "s3cr3t-" .. crypto.hex_encode(crypto.random(12))

local q = testutil.q

-- A file that is gone reads as empty.
local function slurp(path) return testutil.slurp(path) or "" end

-- Runs sealbox.py with args, stdin from text; returns exit code and stdout.
local function sealbox(args, input)
  local inpath = testutil.write(hub.dir .. "/sealbox.in", input or "")
  return testutil.sh("python3 " .. q(SEALBOX) .. " " .. args .. " <" .. q(inpath))
end

setup(function()
  -- Debug logging: every request is logged, and still no secret may appear.
  hub = hubtest.start { name = "hub-secrets", args = { "--log-level", "debug" } }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

describe("secret config variables", function()
  local run_id, sealed, private_key, accept_body, session, run_token

  it("are sealed to the accepting agent's key, keyed by the env variable's name", function()
    if sealbox("check") ~= 0 then
      pending("python3 with the cryptography module is not available")
      return
    end
    assert.equal(200, hub:put("/v1/config-vars/db_password", { value = SECRET, secret = true }).status)
    assert.equal(200, hub:put("/v1/config-vars/db_host", { value = "db.internal" }).status)
    assert.equal(201, hub:post("/v1/tasks", {
      slug = "uses-db",
      command = { "true" },
      constraints = { role = "db" },
      env = { DB_PASSWORD = { config = "db_password" }, DB_HOST = { config = "db_host" }, MODE = "ro" },
    }).status)
    local code, keys = sealbox("keygen")
    assert.equal(0, code, keys)
    keys = json.decode(keys)
    private_key = keys.private
    local a = hub:agent { labels = { role = "db" }, public_key = keys.public }
    session = a.token
    run_id = hub:post("/v1/runs", { task = "uses-db" }).json.run_id
    local rid, lease = a:take(5)
    assert.equal(run_id, rid)
    local res = a:accept(run_id, lease)
    assert.equal(200, res.status, res.body)
    accept_body = res.body
    local run = res.json.run
    run_token = run.run_token
    assert.equal("db.internal", run.env.DB_HOST)
    assert.equal("ro", run.env.MODE)
    assert.is_nil(run.env.DB_PASSWORD)
    sealed = run.secrets
    assert.equal("X25519-HKDF-SHA256-A256GCM", sealed.alg)
    code, res = sealbox("open " .. q(private_key) .. " " .. q(run_id), json.encode(sealed))
    assert.equal(0, code, res)
    local plain = json.decode(res)
    assert.equal(SECRET, plain.DB_PASSWORD)
    assert.is_nil(plain.db_password)
    -- bound to the run: another run id as associated data does not open it
    code = sealbox("open " .. q(private_key) .. " " .. q("run_other"), json.encode(sealed))
    assert.are_not.equal(0, code)
    -- a repeated accept seals afresh: a new ephemeral key, the same secret inside
    local again = a:accept(run_id, lease)
    assert.equal(200, again.status)
    assert.are_not.equal(sealed.epk, again.json.run.secrets.epk)
    code, res = sealbox("open " .. q(private_key) .. " " .. q(run_id), json.encode(again.json.run.secrets))
    assert.equal(0, code, res)
    assert.equal(SECRET, json.decode(res).DB_PASSWORD)
    assert.equal(200, a:start(run_id).status)
    assert.equal(200, a:finish(run_id, "succeeded", 0, 0).status)
  end)

  it("never appear in an answer: not in the accept, the config list or the run", function()
    if not accept_body then
      pending("needs the sealed-secret test above")
      return
    end
    assert.falsy(accept_body:find(SECRET, 1, true))
    local user = hub:make_key("user")
    for _, key in ipairs({ user, hub.admin_key }) do
      local res = hub:get("/v1/config-vars", key)
      assert.equal(200, res.status)
      assert.falsy(res.body:find(SECRET, 1, true))
      for _, v in ipairs(res.json.config_vars) do
        if v.name == "db_password" then
          assert.equal(json.null, v.value)
        end
      end
      res = hub:get("/v1/runs/" .. run_id, key)
      assert.falsy(res.body:find(SECRET, 1, true))
    end
    -- there is no endpoint that reads one variable back
    assert.equal(405, hub:get("/v1/config-vars/db_password", user).status)
  end)

  it("never appear in the store's files or the hub's log, nor do keys and tokens", function()
    if not accept_body then
      pending("needs the sealed-secret test above")
      return
    end
    -- Overwrite the secret too, so an old version could linger in free pages or the WAL.
    assert.equal(200, hub:put("/v1/config-vars/db_password", { value = SECRET .. "-v2", secret = true }).status)
    local files = { hub.db, hub.db .. "-wal", hub.db .. "-shm" }
    local seen = 0
    for _, path in ipairs(files) do
      local bytes = slurp(path)
      seen = seen + #bytes
      assert.falsy(bytes:find(SECRET, 1, true), path .. " holds the secret in plain text")
      assert.falsy(bytes:find(hub.admin_key, 1, true), path .. " holds the admin key")
      assert.falsy(bytes:find(session, 1, true), path .. " holds a session token")
      assert.falsy(bytes:find(run_token, 1, true), path .. " holds a run token")
    end
    assert.truthy(seen > 0)
    hub:stop() -- checkpoints the WAL into the database file; check that too
    local bytes = slurp(hub.db)
    assert.falsy(bytes:find(SECRET, 1, true))
    local log = hub:log()
    assert.truthy(log:find('"msg":"request"', 1, true), "debug logging was on")
    for _, needle in ipairs({ SECRET, hub.admin_key, hub.admin_key:sub(18), session, run_token }) do
      assert.falsy(log:find(needle, 1, true), "the log holds a secret, key or token")
    end
    hub:restart()
  end)

  it("are refused to a hub started with another master key", function()
    hub:stop()
    local other = hub.dir .. "/other.key"
    local f = assert(io.open(other, "wb"))
    f:write(crypto.random(32))
    f:close()
    local p = assert(io.popen(q(hub.bin) .. " hub serve --db " .. q(hub.db) .. " --master-key " .. q(other)
      .. " --listen 127.0.0.1:0 2>&1"))
    local out = p:read("a")
    local _, _, code = p:close()
    assert.are_not.equal(0, code)
    assert.truthy(out:find("master key", 1, true), out)
    hub:restart()
    assert.equal(200, hub:get("/healthz", false).status)
  end)
end)
