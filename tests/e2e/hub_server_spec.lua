-- Running the hub: `hangar hub init`, TLS, the plain-HTTP rule, the config file and its
-- overrides, one hub per store, file modes, and a clean stop that answers waiting polls.
local hubtest = require "hubtest"
local testutil = require "testutil"
local http = require "hangar.http"
local crypto = require "hangar.crypto"

local BIN = assert(testutil.BIN, "HANGAR_BIN is not set")
local SRC = testutil.SRC
local TMP = testutil.TMP .. "/hub-server-" .. crypto.hex_encode(crypto.random(4))

local q, write = testutil.q, testutil.write

-- Runs `hangar ARGS` to completion (with a time limit); returns exit code and all output.
local function hangar(args, seconds)
  local parts = { "timeout", tostring(seconds or 20), q(BIN) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local p = assert(io.popen(table.concat(parts, " ") .. " 2>&1 </dev/null"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local function mode(path)
  local p = assert(io.popen("stat -c %a " .. q(path)))
  local m = p:read("l")
  p:close()
  return m
end

setup(function()
  assert(os.execute("mkdir -p " .. q(TMP)))
end)

teardown(function()
  os.execute("rm -rf " .. q(TMP))
end)

describe("hangar hub init", function()
  it("creates a private store and master key and prints the first admin key once", function()
    local db = TMP .. "/init.db"
    local code, out = hangar({ "hub", "init", "--db", db })
    assert.equal(0, code, out)
    assert.truthy(out:match("hgr_[a-z0-9]+_[A-Za-z0-9_-]+"), out)
    assert.equal("600", mode(db))
    assert.equal("600", mode(db .. ".key"))
    local f = assert(io.open(db .. ".key", "rb"))
    assert.equal(32, #f:read("a"))
    f:close()
    code, out = hangar({ "hub", "init", "--db", db })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("already", 1, true), out)
    assert.falsy(out:match("hgr_[a-z0-9]+_"))
  end)

  it("uses a master key file it is given, and needs --db", function()
    local key = TMP .. "/given.key"
    write(key, crypto.random(32))
    local code, out = hangar({ "hub", "init", "--db", TMP .. "/given.db", "--master-key", key })
    assert.equal(0, code, out)
    code, out = hangar({ "hub", "init" })
    assert.equal(2, code)
    assert.truthy(out:find("--db", 1, true), out)
  end)

  it("adds a recovery admin key to a store no hub is serving", function()
    local hub = hubtest.start { name = "recover" }
    local id = hub.admin_key:sub(5, 16)
    assert.equal(204, hub:delete("/v1/keys/" .. id).status)
    assert.equal(401, hub:get("/v1/keys").status)
    local code, out = hangar({ "hub", "admin-key", "--db", hub.db })
    assert.are_not.equal(0, code) -- the hub still has the store open
    assert.truthy(out:find("another hub", 1, true), out)
    hub:stop()
    code, out = hangar({ "hub", "admin-key", "--db", hub.db, "--name", "break-glass" })
    assert.equal(0, code, out)
    local key = out:match("(hgr_[a-z0-9]+_[A-Za-z0-9_-]+)")
    assert.truthy(key, out)
    hub:serve(0)
    local res = hub:get("/v1/keys", key)
    assert.equal(200, res.status)
    local names = {}
    for _, k in ipairs(res.json.keys) do names[k.name] = k end
    assert.equal("admin", names["break-glass"].role)
    hub:cleanup()
  end)

  it("refuses to serve a store that was never created", function()
    local code, out = hangar({ "hub", "--db", TMP .. "/absent.db", "--listen", "127.0.0.1:0" })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("hangar hub init", 1, true), out)
  end)
end)

describe("hangar hub serve", function()
  it("refuses plain HTTP on a non-loopback address unless allowed", function()
    local hub = hubtest.start { name = "plain" }
    hub:stop()
    local code, out = hangar({ "hub", "--db", hub.db, "--listen", "0.0.0.0:0" })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("plain HTTP", 1, true), out)
    hub.args = { "--allow-plain-http" }
    -- allowed explicitly, it serves (on every address, loopback included)
    hub:serve(0)
    assert.equal(200, hub:get("/healthz", false).status)
    hub:cleanup()
  end)

  it("serves HTTPS with a certificate and key, verified by clients", function()
    assert(os.execute("sh " .. q(SRC .. "/tests/helpers/testca.sh") .. " " .. q(TMP) .. " >/dev/null 2>&1"))
    local hub = hubtest.start { name = "tls" }
    hub:stop()
    local code, out = hangar({ "hub", "--db", hub.db, "--listen", "127.0.0.1:0", "--tls-cert", TMP .. "/server.pem" })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("certificate and a key", 1, true), out)
    -- hubtest waits for /healthz over plain HTTP; start this one by hand
    local ready = hub.dir .. "/tls-ready"
    local p = assert(io.popen(q(BIN) .. " hub --db " .. q(hub.db) .. " --listen 0.0.0.0:0 --tls-cert "
      .. q(TMP .. "/server.pem") .. " --tls-key " .. q(TMP .. "/server.key") .. " --ready-file " .. q(ready)
      .. " >>" .. q(hub.log_path) .. " 2>&1 </dev/null & echo $!"))
    hub.pid = tonumber(p:read("l"))
    p:close()
    local url = hubtest.wait_for(function()
      local f = io.open(ready)
      if not f then return nil end
      local u = f:read("l")
      f:close()
      return u
    end, 10000)
    assert.truthy(url and url:match("^https://"), url)
    local res, err = http.request { url = url .. "/healthz", ca_file = TMP .. "/ca.pem" }
    assert.is_table(res, err)
    assert.equal(200, res.status)
    assert.equal("1", res.headers["hangar-protocol"])
    res = http.request { url = url .. "/v1/keys", ca_file = TMP .. "/ca.pem", headers = { Authorization = "Bearer " .. hub.admin_key } }
    assert.equal(200, res.status)
    -- a client that does not trust the CA refuses the hub
    res, err = http.request { url = url .. "/healthz", ca_file = TMP .. "/other-ca.pem" }
    assert.is_nil(res)
    assert.is_string(err)
    hub:cleanup()
  end)

  it("reads a config file; flags and HANGAR_* variables override it; errors name file:line", function()
    local hub = hubtest.start { name = "config" }
    hub:stop()
    local cfg = hub.dir .. "/hub.lua"
    write(cfg, ('db = %q\nlease_ttl_s = 7\nheartbeat_interval_s = 3\nenvironments = { dev = { lease_ttl_s = 11 } }\n')
      :format(hub.db))
    hub.args = { "--config", cfg }
    hub:serve(0)
    local a = hub:agent()
    assert.equal(7, a.registered.lease_ttl_s)
    assert.equal(3, a.registered.heartbeat_interval_s)
    hub:stop()
    hub.args = { "--config", cfg, "--lease-ttl", "9" }
    hub:serve(0)
    assert.equal(9, hub:agent().registered.lease_ttl_s)
    hub:stop()
    hub.args = { "--config", cfg, "--env", "dev" }
    hub:serve(0)
    assert.equal(11, hub:agent().registered.lease_ttl_s)
    hub:stop()
    hub.args = { "--config", cfg }
    hub.env = { HANGAR_LEASE_TTL_S = "13" }
    hub:serve(0)
    assert.equal(13, hub:agent().registered.lease_ttl_s)
    hub:stop()
    write(cfg, ('db = %q\nleese_ttl_s = 7\n'):format(hub.db))
    local code, out = hangar({ "hub", "--config", cfg })
    assert.equal(2, code)
    assert.truthy(out:find("hub.lua:2", 1, true), out)
    assert.truthy(out:find("leese_ttl_s", 1, true), out)
    write(cfg, ('db = %q\npoll_wait_s = 600\n'):format(hub.db))
    code, out = hangar({ "hub", "--config", cfg })
    assert.equal(2, code)
    assert.truthy(out:find("poll_wait_s", 1, true), out)
    hub.env = {}
    hub:cleanup()
  end)

  it("accepts the example configuration file", function()
    local hub = hubtest.start { name = "example" }
    hub:stop()
    hub.args = { "--config", SRC .. "/examples/hub.lua", "--db", hub.db, "--master-key", hub.master_key }
    hub:serve(0)
    assert.equal(30, hub:agent().registered.lease_ttl_s)
    hub:cleanup()
  end)

  it("lets only one hub serve a store", function()
    local hub = hubtest.start { name = "single" }
    local code, out = hangar({ "hub", "--db", hub.db, "--listen", "127.0.0.1:0" })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("another hub", 1, true), out)
    hub:cleanup()
  end)

  it("stops cleanly on SIGTERM, answering a waiting poll first", function()
    local hub = hubtest.start { name = "stop" }
    local a = hub:agent()
    local poll = hub:async("GET", a:path("/work?wait=30"), { key = a.token })
    hubtest.sleep(200)
    assert.is_true(hub:stop())
    local res = hubtest.await(poll)
    assert.equal(200, res.status)
    assert.equal(0, #res.json.assign)
    assert.truthy(hub:log():find("shutting down", 1, true))
    hub:cleanup()
  end)

  it("prints usage for --help", function()
    local code, out = hangar({ "hub", "--help" })
    assert.equal(0, code)
    assert.truthy(out:find("usage: hangar hub init", 1, true), out)
    assert.truthy(out:find("--lease-ttl", 1, true), out)
    code, out = hangar({ "hub", "--bogus" })
    assert.equal(2, code)
  end)
end)
