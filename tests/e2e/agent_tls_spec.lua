-- The agent and TLS: it refuses a hub whose certificate is not signed by the CA its
-- configuration names (and so never sends its key there), and works with one that is.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local http = require "hangar.http"
local json = require "hangar.json"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp = agenttest.q, agenttest.slurp

local hub, pki, key, slug

-- A user-API call to the TLS hub, trusting the test CA.
local function call(method, path, body)
  local res = assert(http.request {
    method = method,
    url = hub.url .. path,
    headers = { Authorization = "Bearer " .. hub.admin_key },
    json = body,
    ca_file = pki .. "/ca.pem",
    timeout_ms = 30000,
  })
  if res.body and #res.body > 0 then
    res.json = json.decode(res.body)
  end
  return res
end

setup(function()
  pki = agenttest.tmpdir("agent-pki")
  assert(os.execute("sh " .. q(SRC .. "/tests/helpers/testca.sh") .. " " .. q(pki) .. " >/dev/null 2>&1"))
  hub = hubtest.start { name = "agent-tls" }
  key = hub:make_key("agent")
  slug = agenttest.sh_task(hub, "echo over TLS", {})
  -- Serve the same store over HTTPS instead.
  hub:stop()
  local ready = hub.dir .. "/tls-ready"
  local p = assert(io.popen(q(BIN) .. " hub serve --db " .. q(hub.db) .. " --listen 127.0.0.1:0"
    .. " --lease-ttl 5 --heartbeat-interval 1 --poll-wait 5"
    .. " --tls-cert " .. q(pki .. "/server.pem") .. " --tls-key " .. q(pki .. "/server.key")
    .. " --ready-file " .. q(ready) .. " >>" .. q(hub.log_path) .. " 2>&1 </dev/null & echo $!"))
  hub.pid = tonumber(p:read("l"))
  p:close()
  hub.url = assert(hubtest.wait_for(function()
    local text = slurp(ready)
    return text and text:match("^(https://%S+)\n")
  end, 15000), "the TLS hub did not start:\n" .. hub:log())
end)

teardown(function()
  if hub then hub:cleanup() end
  if pki then os.execute("rm -rf " .. q(pki)) end
end)

describe("an agent with a CA bundle", function()
  it("refuses a hub whose certificate another CA signed, and keeps trying without registering", function()
    local agent = agenttest.start(hub, { key = key, ca_file = pki .. "/other-ca.pem", wait = false })
    agent:wait_log("cannot register with the hub", 15000)
    hubtest.sleep(500)
    assert.falsy(agent:log():find("registered with the hub", 1, true))
    assert.falsy(hub:log():find("agent registered", 1, true))
    local msg = agent:log():match('"msg":"cannot register with the hub","error":"([^"]*)"') or agent:log()
    assert.truthy(msg:lower():find("certificate", 1, true) or msg:lower():find("tls", 1, true)
      or msg:lower():find("ssl", 1, true), msg)
    agent:signal("TERM")
    assert.equal(0, agent:wait_exit(10000))
    agent:cleanup()
  end)

  it("works with a hub whose certificate that CA signed", function()
    local agent = agenttest.start(hub, { key = key, ca_file = pki .. "/ca.pem" })
    local res = call("POST", "/v1/runs", { task = slug })
    assert.equal(201, res.status, res.body)
    local id = res.json.run_id
    local doc
    assert(hubtest.wait_for(function()
      doc = call("GET", "/v1/runs/" .. id).json
      return doc.status == "succeeded" or doc.status == "failed"
    end, 20000))
    assert.equal("succeeded", doc.status, doc.error)
    local events = call("GET", "/v1/runs/" .. id .. "/events").json.events
    assert.equal("over TLS", events[1] and events[1].text)
    assert.equal(0, agent:stop())
    agent:cleanup()
  end)
end)
