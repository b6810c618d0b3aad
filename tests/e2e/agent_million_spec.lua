-- The log pipeline's promise through the real thing: a `hangar agent` runs a task (local
-- scheduler) that prints 1,000,000 lines, some with a secret config variable of the hub raw or
-- encoded and some longer than an event may be; the hub is SIGKILLed and restarted twice while
-- the task prints. The hub ends up with exactly those lines, in order, masked, and the run
-- succeeded.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local lines = require "pipeline_lines"
local crypto = require "hangar.crypto"
local json = require "hangar.json"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q = agenttest.q

local N = 1000000
-- The task stops after these lines until the test has killed the hub and says go.
local AT1, AT2 = 300000, 700000
local MAX_EVENT_TEXT = 64 * 1024

local hub, agent, dir

setup(function()
  hub = hubtest.start { name = "agent-million",
                        args = { "--lease-ttl", "60", "--heartbeat-interval", "2", "--poll-wait", "5", "--log-level", "warn" } }
  dir = agenttest.tmpdir("agent-million")
  agent = agenttest.start(hub, { log_level = "info" })
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, dir)
end)

-- Every form of the secret the task prints, and each as it would sit in a JSON string.
local function secret_forms()
  local s = lines.secret
  local forms = {
    s,
    crypto.base64_encode(s),
    (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)),
    (s:gsub('[\\"/]', { ["\\"] = "\\\\", ['"'] = '\\"', ["/"] = "\\/" })),
  }
  for i = 1, #forms do
    forms[#forms + 1] = json.encode(forms[i]):sub(2, -2)
  end
  return forms
end

-- The events the hub has for the run so far (its next_seq), nil while it is down.
local function hub_events(id)
  local res = hub:get("/v1/runs/" .. id .. "/events?after=1000000000000&limit=1")
  return res and res.status == 200 and res.json.next_seq or nil
end

describe("a real agent running a task that prints a million lines", function()
  it("delivers them exactly, in order and masked, through two hub restarts", function()
    -- The secret reaches the run the production way: a secret config variable on the hub,
    -- sealed to the agent at accept, put into the task's environment by the agent.
    local res = hub:put("/v1/config-vars/db_password", { value = lines.secret, secret = true })
    assert.equal(200, res.status, res.body)
    local slug = agenttest.task(hub, {
      command = { BIN, "lua", SRC .. "/tests/helpers/million_task.lua", tostring(N), dir, tostring(AT1), tostring(AT2) },
      env = { DB_PASSWORD = { config = "db_password" } },
      timeout = 900,
    })
    local id = agenttest.run(hub, slug)

    -- SIGKILL the hub while the agent is uploading and the task is still running (held at ATk
    -- until go), let the task print on while the hub is away, and bring the hub back on the
    -- same store and port.
    for k, at in ipairs { AT1 // 2, (AT1 + AT2) // 2 } do
      local reached = hubtest.wait_for(function()
        local n = hub_events(id)
        return n and n >= at
      end, 180000, 50)
      assert(reached, ("the hub got %s events, not %d:\n%s"):format(tostring(hub_events(id)), at, agent:log()))
      assert.equal("running", agenttest.get_run(hub, id).status)
      hub:kill()
      agenttest.write(dir .. "/go" .. k, "")
      hubtest.sleep(500)
      hub:restart()
    end

    local run = agent:wait_run(id, 300000)
    assert.equal("succeeded", run.status, run.error)
    assert.equal(0, run.exit_code)
    assert.equal(json.null, run.error)

    -- Read everything back: every event in seq order, lines joined from their partial pieces
    -- and compared one by one; no form of the secret anywhere in what the hub serves.
    local forms = secret_forms()
    local i, after, pieces, bad, events, split = 1, -1, {}, {}, 0, 0
    while true do
      res = assert(hub:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=10000"))
      assert.equal(200, res.status)
      local got = res.json.events
      -- in the JSON as served (every member of every event) and in the texts as decoded
      local texts = {}
      for k = 1, #got do
        texts[k] = got[k].text
      end
      for _, where in ipairs { res.body, table.concat(texts, "\n") } do
        for _, form in ipairs(forms) do
          local at = where:find(form, 1, true)
          if at then
            error(("the secret (as %q) reached the hub's events after seq %d: %s"):format(
              form:sub(1, 3) .. "...", after, where:sub(math.max(1, at - 80), at - 1)))
          end
        end
      end
      for k = 1, #got do
        local e = got[k]
        if e.seq ~= after + 1 or e.kind ~= "log" or e.stream ~= "stdout" then
          error(("event %d: unexpected %s %s %s %s"):format(after + 1, e.seq, e.kind, e.stream,
                                                           json.encode(e):sub(1, 200)))
        end
        after = e.seq
        events = events + 1
        assert(#e.text <= MAX_EVENT_TEXT, ("event %d holds %d bytes"):format(e.seq, #e.text))
        pieces[#pieces + 1] = e.text
        if not e.partial then
          local text = #pieces == 1 and pieces[1] or table.concat(pieces)
          if #pieces > 1 then
            split = split + 1
          end
          pieces = {}
          local want = lines.expected(i)
          if text ~= want and #bad < 5 then
            bad[#bad + 1] = ("line %d: %q, want %q"):format(i, text:sub(1, 120), want:sub(1, 120))
          end
          i = i + 1
        end
      end
      if #got == 0 then
        assert.is_true(res.json.done)
        break
      end
    end
    assert.same({}, bad)
    assert.equal(N, i - 1)
    assert.equal(0, #pieces)
    -- the ten lines of 100 KiB, each in pieces
    assert.equal(N // 100000, split)
    assert.equal(events, agenttest.get_run(hub, id).events)

    -- Nor in what the hub or the agent keep: the store, the logs, the agent's state.
    -- Every form, the JSON-escaped ones too: the store and the logs hold JSON.
    local patterns = {}
    for _, form in ipairs(forms) do
      patterns[#patterns + 1] = "-e " .. q(form)
    end
    local code, out = testutil.sh("grep -r -a -F -l " .. table.concat(patterns, " ") .. " "
      .. q(hub.dir) .. " " .. q(agent.dir))
    assert.equal(1, code, "the secret is in " .. out)
  end)
end)
