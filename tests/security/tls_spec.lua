-- TLS verification cannot be turned off, silently or otherwise: the CLI, the agent and
-- hangar.http refuse a hub with a self-signed certificate, one another CA signed, or one made
-- out for another host name, whatever the environment says (SSL_CERT_FILE, SSL_CERT_DIR,
-- CURL_CA_BUNDLE pointing at the very certificate, HANGAR_INSECURE and friends), and an
-- `insecure` option is an unknown key, refused. Plain http:// to a host that is not loopback
-- is refused unless explicitly allowed, however the URL is dressed up. The key never reaches a
-- hub it did not verify.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"
local http = require "hangar.http"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, slurp, write = security.q, security.slurp, security.write

local dir, pki
local hubs = {} -- good (signed by ca for 127.0.0.1), self_signed, wrong_host

-- Variables that switch verification off or swap the trust store in other tools (and libraries
-- Hangar is built on); each points at whatever would make the bad hub pass. (HANGAR_CA_FILE is
-- the CLI's own documented way to name a CA bundle, as --ca-file is: not among them.)
local function hostile_env(trust)
  return {
    SSL_CERT_FILE = trust, SSL_CERT_DIR = dir, CURL_CA_BUNDLE = trust, REQUESTS_CA_BUNDLE = trust,
    HANGAR_INSECURE = "1", HANGAR_TLS_VERIFY = "0", HANGAR_SKIP_TLS_VERIFY = "1", HANGAR_HUB__INSECURE = "true",
    CURL_INSECURE = "1", GIT_SSL_NO_VERIFY = "1", NODE_TLS_REJECT_UNAUTHORIZED = "0",
    PYTHONHTTPSVERIFY = "0", OPENSSL_CONF = "/dev/null",
  }
end

-- The cases a client must refuse: hub, the CA file the client is given (nil: the system's),
-- and the file hostile variables point at.
local function bad_cases()
  return {
    { name = "self-signed", hub = hubs.self_signed, ca = nil, trust = pki.self_signed.cert },
    { name = "self-signed, another CA configured", hub = hubs.self_signed, ca = pki.ca.cert, trust = pki.self_signed.cert },
    { name = "signed by a CA not configured", hub = hubs.good, ca = pki.other_ca.cert, trust = pki.ca.cert },
    { name = "signed by a CA not in the system store", hub = hubs.good, ca = nil, trust = pki.ca.cert },
    { name = "made out for another host name", hub = hubs.wrong_host, ca = pki.ca.cert, trust = pki.ca.cert },
  }
end

local function env_prefix(env)
  local parts = { "env -i PATH=/usr/bin:/bin", "HOME=" .. q(dir) }
  for k, v in pairs(env or {}) do
    parts[#parts + 1] = k .. "=" .. q(v)
  end
  return table.concat(parts, " ")
end

-- `hangar ARGS` with exactly env; returns code, stdout and stderr together.
local function hangar(args, env)
  local cmd = env_prefix(env) .. " " .. q(BIN)
  for _, a in ipairs(args) do
    cmd = cmd .. " " .. q(a)
  end
  return security.sh(cmd .. " </dev/null")
end

setup(function()
  dir = agenttest.tmpdir("sec-tls")
  pki = security.pki(dir)
  hubs.good = security.tls_hub(pki, "server")
  hubs.self_signed = security.tls_hub(pki, "self_signed")
  hubs.wrong_host = security.tls_hub(pki, "wrong_host")
end)

teardown(function()
  for _, h in pairs(hubs) do
    h:cleanup()
  end
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

describe("a hub with a certificate the configured CA signed for its name", function()
  it("is trusted by the CLI, hangar.http and the agent (so the refusals below are about trust)", function()
    local code, out = hangar({ "task", "list", "--hub", hubs.good.url, "--ca-file", pki.ca.cert }, { HANGAR_TOKEN = hubs.good.admin_key })
    assert.equal(0, code, out)
    local res = security.call(hubs.good, "GET", "/v1/tasks", { ca_file = pki.ca.cert })
    assert.equal(200, res and res.status)
    local made = security.call(hubs.good, "POST", "/v1/keys", { ca_file = pki.ca.cert, body = { role = "agent", name = "tls" } })
    assert.equal(201, made and made.status)
    local agent = agenttest.start(hubs.good, { key = made.json.key, ca_file = pki.ca.cert })
    agent:cleanup()
  end)
end)

describe("a hub whose certificate does not verify", function()
  it("is refused by the CLI, whatever the environment says; the key is never sent", function()
    for _, case in ipairs(bad_cases()) do
      local before = security.requests_logged(case.hub)
      local args = { "task", "list", "--hub", case.hub.url }
      if case.ca then
        args[#args + 1] = "--ca-file"
        args[#args + 1] = case.ca
      end
      local env = hostile_env(case.trust)
      env.HANGAR_TOKEN = case.hub.admin_key
      local code, out = hangar(args, env)
      assert.are_not.equal(0, code, case.name .. ": " .. out)
      assert.truthy(out:lower():find("certificate", 1, true) or out:find("SSL", 1, true), case.name .. ": " .. out)
      assert.falsy(out:find(case.hub.admin_key, 1, true))
      assert.equal(before, security.requests_logged(case.hub), case.name .. ": a request reached the hub")
    end
  end)

  it("is refused by hangar.http, with or without an option that sounds like turning it off", function()
    for _, case in ipairs(bad_cases()) do
      local res, err = security.call(case.hub, "GET", "/v1/tasks", { ca_file = case.ca, timeout_ms = 10000 })
      assert.is_nil(res, case.name)
      assert.truthy(tostring(err):lower():find("certificate", 1, true), case.name .. ": " .. tostring(err))
    end
    for _, extra in ipairs({ { insecure = true }, { verify = false }, { ssl_verify_peer = false }, { tls = { verify = false } } }) do
      local req = { url = hubs.self_signed.url .. "/healthz", timeout_ms = 10000 }
      local name = next(extra)
      req[name] = extra[name]
      local ok, err = pcall(http.request, req)
      assert.is_false(ok, "hangar.http took '" .. name .. "' silently")
      assert.truthy(tostring(err):find(name, 1, true), tostring(err))
    end
  end)

  it("is refused by hangar.http in a process whose environment points the trust store at it", function()
    local script = dir .. "/probe.lua"
    local lines = { 'local http = require "hangar.http"' }
    for i, case in ipairs(bad_cases()) do
      lines[#lines + 1] = ("local res, err = http.request { url = %q, ca_file = %s, timeout_ms = 10000 }"):format(
        case.hub.url .. "/healthz", case.ca and ("%q"):format(case.ca) or "nil")
      lines[#lines + 1] = ('print(%d, res and res.status or "refused", err)'):format(i)
    end
    write(script, table.concat(lines, "\n") .. "\n")
    for _, case in ipairs(bad_cases()) do
      local code, out = security.sh(env_prefix(hostile_env(case.trust)) .. " " .. q(BIN) .. " lua " .. q(script))
      assert.equal(0, code, out)
      local _, refused = out:gsub("refused", "")
      assert.equal(#bad_cases(), refused, "with the environment of '" .. case.name .. "':\n" .. out)
    end
  end)

  it("is refused by the agent, whose key is never sent there", function()
    for _, case in ipairs(bad_cases()) do
      local before = security.requests_logged(case.hub)
      -- A well-formed key: the agent must not get as far as sending it.
      local key = "hgr_abcdefghijkl_" .. security.random_word(43)
      local agent = agenttest.start(case.hub, { key = key, ca_file = case.ca, env = hostile_env(case.trust), wait = false })
      local ok, err = pcall(function()
        agent:wait_log("cannot register with the hub", 20000)
        local line = agent:log():match('[^\n]*cannot register with the hub[^\n]*')
        assert.truthy(line:lower():find("certificate", 1, true), case.name .. ": " .. line)
        assert.falsy(agent:log():find("agent ready", 1, true))
        assert.equal(before, security.requests_logged(case.hub), case.name .. ": a request reached the hub")
        assert.falsy(case.hub:log():find(key:sub(18), 1, true))
      end)
      agent:cleanup()
      assert(ok, err)
    end
  end)
end)

describe("options that would turn verification off", function()
  local function agent_config(hub_fields, top)
    local path = dir .. "/agent-opt.lua"
    write(dir .. "/key", ("hgr_abcdefghijkl_" .. ("A"):rep(43)) .. "\n", "600")
    local fields = { ('url = %q'):format(hubs.good.url), ('key_file = %q'):format(dir .. "/key") }
    for _, f in ipairs(hub_fields) do
      fields[#fields + 1] = f
    end
    write(path, "hub = { " .. table.concat(fields, ", ") .. " }\n" .. ('state_dir = %q\n'):format(dir .. "/state") .. (top or ""))
    return path
  end

  it("are unknown keys to the agent's configuration", function()
    for _, case in ipairs({
      { { "insecure = true" }, nil, "hub.insecure" },
      { { "verify = false" }, nil, "hub.verify" },
      { { "tls_verify = false" }, nil, "hub.tls_verify" },
      { { "ssl_verify_peer = 0" }, nil, "hub.ssl_verify_peer" },
      { {}, "insecure = true\n", "insecure" },
      { {}, "tls = { verify = false }\n", "tls" },
    }) do
      local code, out = hangar({ "agent", "--config", agent_config(case[1], case[2]), "--check" })
      assert.equal(2, code, out)
      assert.truthy(out:find("unknown key '" .. case[3] .. "'", 1, true), out)
    end
  end)

  it("are unknown keys to the CLI's configuration", function()
    for _, key in ipairs({ "insecure = true", "verify = false", "tls_verify = false", "skip_tls_verify = true" }) do
      local path = dir .. "/cli.lua"
      write(path, ('hub_url = %q\n%s\n'):format(hubs.self_signed.url, key))
      local code, out = hangar({ "task", "list" }, { HANGAR_CLI_CONFIG = path, HANGAR_TOKEN = hubs.self_signed.admin_key })
      assert.are_not.equal(0, code, out)
      assert.truthy(out:find("unknown key '" .. key:match("^%S+") .. "'", 1, true), out)
    end
  end)
end)

describe("plain http://", function()
  local function check(url, extra)
    local path = dir .. "/agent-http.lua"
    write(dir .. "/key", ("hgr_abcdefghijkl_" .. ("A"):rep(43)) .. "\n", "600")
    write(path, ("hub = { url = %q, key_file = %q%s }\nstate_dir = %q\n"):format(url, dir .. "/key", extra or "", dir .. "/state"))
    return hangar({ "agent", "--config", path, "--check" })
  end

  local DISGUISED = {
    "http://10.9.9.9:8080",
    "http://hub.example.com",
    "http://127.0.0.1:1@10.9.9.9/",      -- userinfo: the host is 10.9.9.9
    "http://127.0.0.1@10.9.9.9:8080",
    "http://localhost:80@10.9.9.9",
    "http://127.0.0.1.nip.io:8080",
    "http://127.evil.example",
    "http://localhost.evil.example",
  }

  it("to a host that is not loopback is refused by the agent's configuration check", function()
    for _, url in ipairs(DISGUISED) do
      local code, out = check(url)
      assert.equal(2, code, url .. ": " .. out)
      assert.truthy(out:find("plain http", 1, true), url .. ": " .. out)
    end
  end)

  it("to loopback, or with allow_plain_http, is accepted by the agent's configuration check", function()
    for _, url in ipairs({ "http://127.0.0.1:8080", "http://localhost:8080", "http://[::1]:8080", "http://127.1.2.3" }) do
      local code, out = check(url)
      assert.equal(0, code, url .. ": " .. out)
    end
    local code, out = check("http://10.9.9.9:8080", ", allow_plain_http = true")
    assert.equal(0, code, out)
  end)

  it("to a host that is not loopback is refused by the CLI before it connects", function()
    for _, url in ipairs(DISGUISED) do
      local code, out = hangar({ "task", "list", "--hub", url }, { HANGAR_TOKEN = "hgr_abcdefghijkl_" .. ("A"):rep(43) })
      assert.equal(2, code, url .. ": " .. out)
      assert.truthy(out:find("not loopback", 1, true), url .. ": " .. out)
    end
  end)

  it("is refused by a hub asked to listen on an address that is not loopback without TLS", function()
    local db = dir .. "/plain.db"
    assert.equal(0, (hangar({ "hub", "init", "--db", db })))
    local code, out = hangar({ "hub", "serve", "--db", db, "--listen", "0.0.0.0:0" })
    assert.are_not.equal(0, code)
    assert.truthy(out:find("refusing plain HTTP", 1, true), out)
  end)
end)
