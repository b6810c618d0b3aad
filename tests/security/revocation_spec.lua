-- Revoking a key takes effect at once: every session opened with it answers 401 from the next
-- call on (an open long poll is answered immediately), so an agent learns of it within one
-- heartbeat; it stops its runs and exits 3 saying the key was revoked. The hub fails the runs
-- the agent held once their leases lapse (agent_lost), and the key never opens a session again.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"
local testutil = require "testutil"
local json = require "hangar.json"
local timer = require "hangar.timer"

local q = security.q

local LEASE_TTL = 4
local hub, drop

setup(function()
  hub = hubtest.start { name = "sec-revoke", args = { "--lease-ttl", tostring(LEASE_TTL), "--heartbeat-interval", "1", "--poll-wait", "30" } }
  drop = security.shared_dir("sec-revoke-drop")
end)

teardown(function()
  if hub then hub:cleanup() end
  if drop then os.execute("rm -rf " .. q(drop)) end
end)

describe("a revoked agent key", function()
  it("ends its sessions at once: the next heartbeat and an open long poll get 401", function()
    local key, key_id = hub:make_key("agent")
    local a = hub:agent { key = key }
    local b = hub:agent { key = key }
    local other = hub:agent {}
    local poll = hub:async("GET", a:path("/work?wait=30"), { key = a.token })
    hubtest.sleep(200)
    local t0 = timer.monotonic()
    assert.equal(204, hub:delete("/v1/keys/" .. key_id).status)
    local res = hubtest.await(poll)
    assert.equal(401, res.status)
    assert.equal("unauthorized", res.json.error.code)
    -- Answered at once, not when the 30 s wait ran out.
    assert.truthy(timer.monotonic() - t0 < 15000, "the open poll was not answered at once")
    assert.equal(401, b:heartbeat({}).status)
    assert.equal(401, b:work(0).status)
    -- Other keys' sessions go on.
    assert.equal(200, other:heartbeat({}).status)
    -- The key cannot open a session again, nor resume its identities.
    local again = assert(hub:post("/v1/agents", { public_key = hubtest.random_public_key(), agent_id = a.id }, key))
    assert.equal(401, again.status)
    local listed = hub:get("/v1/keys").json.keys
    local found
    for _, k in ipairs(listed) do
      if k.id == key_id then found = k end
    end
    assert.is_true(found.revoked)
  end)

  it("stops a real agent within a heartbeat: its run is killed, it exits 3 saying so, the hub fails the run", function()
    local agent = agenttest.start(hub, { kill_grace_s = 1 })
    local ok, err = pcall(function()
      local slug = agenttest.sh_task(hub, 'echo $$ > "$PARAM_DIR/pid"; while :; do sleep 0.1; done',
        { parameters = json.array { { slug = "dir", type = "string", required = true } } })
      local id = agenttest.run(hub, slug, { dir = drop })
      local pid = tonumber(agenttest.wait_file(drop .. "/pid", 20000))
      agenttest.wait_run(hub, id, 20000, "running")

      assert.equal(204, hub:delete("/v1/keys/" .. agent.key_id).status)
      -- The agent's open poll is answered 401 at once; the heartbeat interval is 1 s: ten
      -- seconds leave room for a loaded machine, not for a missed heartbeat's worth of retries.
      local code = agent:wait_exit(10000)
      assert.equal(3, code, "the agent did not exit 3 after its key was revoked:\n" .. agent:log())
      assert.truthy(agent:log():find("revoked", 1, true), agent:log())
      assert.falsy(agent:log():find(agent.key:sub(18), 1, true))
      assert.falsy(testutil.alive(pid), "the run's process still runs")

      -- Nobody can finish the run for it: the hub fails it once its lease lapses.
      local doc = agenttest.wait_run(hub, id, (LEASE_TTL + 10) * 1000)
      assert.equal("failed", doc.status)
      assert.equal("agent_lost", doc.error)

      -- Started again with the revoked key, it stops at once, the same way.
      agent:restart(false)
      assert.equal(3, agent:wait_exit(15000))
    end)
    agent:cleanup()
    assert(ok, err)
  end)
end)
