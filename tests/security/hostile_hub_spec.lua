-- A hub that hands out assignments with malformed ids (path traversal, separators, control
-- characters, overlong) gets no accept for them, and the agent writes nothing outside its state
-- directory because of them: run ids name files there and go into URLs. A well-formed
-- assignment from the same hub right after is still accepted, so the agent kept serving.
local agenttest = require "agenttest"
local testutil = require "testutil"
local json = require "hangar.json"
local http = require "hangar.http"

local q, slurp = testutil.q, testutil.slurp

local BAD = {
  { run_id = "../../escaped", lease_id = "lease_1" },
  { run_id = "run_a/../../escaped2", lease_id = "lease_2" },
  { run_id = "run_b\n", lease_id = "lease_3" },
  { run_id = "run_" .. string.rep("x", 61), lease_id = "lease_4" }, -- 65 characters
  { run_id = "", lease_id = "lease_5" },
  { run_id = "run_c", lease_id = "../lease" },
  { run_id = "run d", lease_id = "lease_6" },
}
local GOOD = { run_id = "run_well_formed-1", lease_id = "lease_good" }

describe("an agent under a hub sending malformed ids", function()
  local dir, hub_pid, agent

  after_each(function()
    if agent then
      agent:kill()
      agent:cleanup()
      agent = nil
    end
    if hub_pid then
      testutil.kill_pid(hub_pid)
      hub_pid = nil
    end
    if dir then
      testutil.remove(dir)
    end
  end)

  it("accepts none of them, writes nothing outside its state directory, and keeps serving", function()
    dir = testutil.tmpdir("hostile-hub")
    local assignments = {}
    for _, a in ipairs(BAD) do
      assignments[#assignments + 1] = a
    end
    assignments[#assignments + 1] = GOOD
    local port_file = dir .. "/port"
    hub_pid = testutil.spawn_bg({ "python3", testutil.SRC .. "/tests/helpers/scriptedhub.py", port_file,
                                  json.encode(assignments) }, dir .. "/hub.log")
    local port = testutil.wait_for(function()
      local text = slurp(port_file)
      return text and text:match("^(%d+)\n")
    end, 10000)
    assert(port, "the scripted hub did not start: " .. (slurp(dir .. "/hub.log") or ""))
    local url = "http://127.0.0.1:" .. port

    -- The agent's own directory sits two levels below dir: "../../escaped" from its state
    -- directory's runs would land in dir or next to it.
    assert(os.execute("mkdir -p " .. q(dir .. "/a/b")))
    agent = agenttest.start({ url = url }, {
      dir = dir .. "/a/b", key = "hgr_abcdefghij12_" .. string.rep("A", 43), capacity = 4,
    })

    local function requests()
      local res = http.request { url = url .. "/_requests", timeout_ms = 5000 }
      return res and res.status == 200 and json.decode(res.body) or {}
    end
    -- The well-formed assignment comes last: once it is accepted, every bad one was seen.
    local accepted = testutil.wait_for(function()
      for _, r in ipairs(requests()) do
        if r.method == "POST" and r.path == "/v1/runs/" .. GOOD.run_id .. "/accept" then
          return true
        end
      end
    end, 20000)
    assert.is_true(accepted, "the agent never accepted the well-formed assignment:\n" .. agent:log())

    for _, r in ipairs(requests()) do
      if r.path:match("^/v1/runs/") then
        assert.equal("/v1/runs/" .. GOOD.run_id .. "/accept", r.path)
      end
    end
    assert.equal(#BAD, agent:count_log("refusing an assignment with a malformed id"))
    -- Nothing named after a bad id anywhere under dir.
    local p = assert(io.popen("find " .. q(dir) .. " -name '*escaped*' -o -name 'run_b*' -o -name 'run d*' -o -name 'run_xxx*'"))
    local found = p:read("a")
    p:close()
    assert.equal("", found)
  end)
end)
