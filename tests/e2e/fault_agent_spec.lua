-- The whole system through a faulty network, with crashes: a real `hangar agent` talks to a
-- real hub through tests/helpers/faultproxy.py (resets, truncations, stalls, drip-feeding,
-- refusals from a fixed seed), while the hub and the agent are each SIGKILLed and restarted,
-- once both at the same time. 200 runs print numbered lines, a secret raw and base64-encoded,
-- and outputs. Every run must end the way what happened to it says it must (below), each
-- line it printed must be stored exactly once and in order, its outputs must follow its
-- output lines, and the secret must appear nowhere on the hub (store files and log) nor in
-- the agent's state or log.
--
-- What each run must end as. At every agent kill the spec notes, once the agent is gone,
-- each run's status at the hub and whether its process had started ("N.started") and
-- reached its end ("N.done"). A run the hub saw assigned to, accepted by or running on the
-- agent at a kill is "caught" by it:
--   * its process had started and not reached its end: it died with the agent, so the run
--     is failed with an agent-restart error and its stdout is a prefix of what it prints;
--   * otherwise: either succeeded with everything (it had finished, or it was only
--     assigned and went back to the queue), or failed with an agent-restart error and a
--     prefix (the agent died before it recorded the exit, or between accept and start).
-- A run no kill caught must succeed with exit code 0, every line and every output.
-- Killing the hub only delays things: it makes no run fail.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local faultproxy = require "faultproxy"
local security = require "security"
local json = require "hangar.json"
local crypto = require "hangar.crypto"
local timer = require "hangar.timer"

local RUNS = 200
local LINES = 24
local CAPACITY = 6
local RESTART_ERRORS = {
  ["agent restarted; the run's process was lost"] = true,
  ["agent restarted before the run started"] = true,
  ["agent restarted; the run's record was lost"] = true,
}
local ENDED = { succeeded = true, failed = true, cancelled = true }
local HELD = { assigned = true, accepted = true, running = true, cancelling = true }

-- Each run: LINES numbered lines on stdout with the secret raw after line 5 and encoded after
-- line 10, a progress output and a numbered stderr line every 8 lines, a result output last.
local SCRIPT = [[
d="$PARAM_DIR"; n="$PARAM_N"
: > "$d/$n.started"
i=1
while [ $i -le ]] .. LINES .. [[ ]; do
  echo "run $n line $i"
  case $i in
    5) echo "secret: $FAULT_TOKEN" ;;
    10) echo "encoded: $(printf %s "$FAULT_TOKEN" | base64)" ;;
  esac
  if [ $((i % 8)) -eq 0 ]; then
    echo "hangar_output_append:progress $i"
    echo "run $n err $((i / 8))" >&2
    sleep 0.1
  fi
  i=$((i + 1))
done
echo "hangar_output_set:result {\"n\": $n, \"lines\": ]] .. LINES .. [[}"
: > "$d/$n.done"
]]

local function expected_stdout(n)
  local out = {}
  for i = 1, LINES do
    out[#out + 1] = ("run %d line %d"):format(n, i)
    if i == 5 then
      out[#out + 1] = "secret: [REDACTED]"
    elseif i == 10 then
      out[#out + 1] = "encoded: [REDACTED]"
    end
    if i % 8 == 0 then
      out[#out + 1] = "hangar_output_append:progress " .. i
    end
  end
  out[#out + 1] = ('hangar_output_set:result {"n": %d, "lines": %d}'):format(n, LINES)
  return out
end

local function expected_stderr(n)
  local out = {}
  for k = 1, LINES // 8 do
    out[k] = ("run %d err %d"):format(n, k)
  end
  return out
end

local hub, fp, agent, dir

setup(function()
  dir = agenttest.tmpdir("fault-agent")
end)

teardown(function()
  local errs = {}
  if agent then
    local ok, err = pcall(agent.cleanup, agent)
    errs[#errs + 1] = not ok and err or nil
  end
  if fp then
    fp:stop()
  end
  if hub then
    local ok, err = pcall(hub.cleanup, hub)
    errs[#errs + 1] = not ok and err or nil
  end
  os.execute("rm -rf " .. agenttest.q(dir))
  assert(#errs == 0, table.concat(errs, "\n"))
end)

local function exists(path)
  local f = io.open(path, "rb")
  if f then
    f:close()
  end
  return f ~= nil
end

-- Every run of the spec's task by id, from one list call.
local function statuses(slug)
  local res = assert(hub:get("/v1/runs?task=" .. slug .. "&limit=1000"))
  assert(res.status == 200, "listing runs: " .. tostring(res.status))
  local out = {}
  for _, r in ipairs(res.json.runs) do
    out[r.id] = r.status
  end
  return out
end

local function count_ended(st)
  local n = 0
  for _, s in pairs(st) do
    if ENDED[s] then
      n = n + 1
    end
  end
  return n
end

-- Every event of a run, page by page, once the hub says it has all of them.
local function all_events(id)
  local out, after = {}, -1
  while true do
    local res = assert(hub:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=1000"))
    assert(res.status == 200, "events of " .. id .. ": " .. tostring(res.status))
    for _, e in ipairs(res.json.events) do
      out[#out + 1] = e
      after = e.seq
    end
    if #res.json.events == 0 then
      assert(res.json.done, "the hub does not have every event of " .. id)
      return out
    end
  end
end

-- JSON null arrives as json.null.
local function absent(v)
  return v == nil or v == json.null
end

local function is_prefix(got, want)
  if #got > #want then
    return false
  end
  for i = 1, #got do
    if got[i] ~= want[i] then
      return false
    end
  end
  return true
end

local function show(list)
  return table.concat(list, "\n  ")
end

-- Applies a run's output events the way the hub does for these two forms.
local function fold_outputs(events)
  local doc = nil
  for _, e in ipairs(events) do
    if e.kind == "output" then
      doc = doc or {}
      if e.op == "append" then
        doc[e.path] = doc[e.path] or {}
        table.insert(doc[e.path], e.value)
      else
        doc[e.path] = e.value
      end
    end
  end
  return doc
end

-- Checks one run against what happened to it; returns its kind of ending.
local function check_run(n, id, caught)
  local doc = assert(hub:get("/v1/runs/" .. id)).json
  local events = all_events(id)
  local stdout, stderr, system = {}, {}, {}
  for i, e in ipairs(events) do
    assert.equal(i - 1, e.seq)
    if e.kind == "log" then
      assert.is_false(e.partial)
      local list = e.stream == "stdout" and stdout or e.stream == "stderr" and stderr or system
      list[#list + 1] = e.text
      -- An output line's op follows it at once (unless the log was cut right there).
      if e.text:match("^hangar_output_") and events[i + 1] then
        assert.equal("output", events[i + 1].kind, ("run %d: no output op after %q"):format(n, e.text))
      end
    end
  end
  local want_out, want_err = expected_stdout(n), expected_stderr(n)
  local where = ("run %d (%s, %s, %s)"):format(n, id, doc.status,
    caught and ("caught %s, started %s, done %s"):format(caught.status, caught.started, caught.done) or "not caught")
  local outputs = not absent(doc.outputs) and doc.outputs or nil
  assert.same(fold_outputs(events), outputs, where .. ": outputs do not follow the output ops")
  if doc.status == "succeeded" then
    assert.equal(0, doc.exit_code, where)
    assert.truthy(absent(doc.error), where .. ": " .. tostring(doc.error))
    assert.same(want_out, stdout, where .. " stdout:\n  " .. show(stdout))
    assert.same(want_err, stderr, where .. " stderr:\n  " .. show(stderr))
    assert.same({ progress = { 8, 16, 24 }, result = { n = n, lines = LINES } }, outputs, where)
    -- A process a kill interrupted cannot have succeeded.
    assert.is_falsy(caught and caught.started and not caught.done,
      where .. ": its process was killed with the agent")
    return "succeeded"
  end
  assert.truthy(caught, where .. ": failed, but no agent kill caught it: " .. tostring(doc.error))
  assert.equal("failed", doc.status, where)
  assert.truthy(RESTART_ERRORS[doc.error], where .. ": not an agent-restart error: " .. tostring(doc.error))
  assert.truthy(absent(doc.exit_code), where .. ": exit code " .. tostring(doc.exit_code))
  assert.truthy(is_prefix(stdout, want_out), where .. " stdout is not a prefix:\n  " .. show(stdout))
  assert.truthy(is_prefix(stderr, want_err), where .. " stderr is not a prefix:\n  " .. show(stderr))
  if not caught.started then
    assert.same({}, stdout, where .. ": a process that never started printed")
  end
  local said = false
  for _, text in ipairs(system) do
    said = said or text == doc.error
  end
  assert.truthy(said, where .. ": the log does not say why it failed:\n  " .. show(system))
  return doc.error
end

describe("200 runs through a faulty network while the hub and the agent are SIGKILLed", function()
  it("end as what happened to them says, every line once and in order, no secret on the hub", function()
    hub = hubtest.start {
      name = "fault-agent",
      -- A work answer the proxy cut is an assignment the agent never saw: it goes back to the
      -- queue after the lease TTL, so a short one keeps the tail short.
      args = { "--lease-ttl", "10", "--heartbeat-interval", "1", "--poll-wait", "5" },
    }
    fp = faultproxy.start {
      target = hub.port, seed = 424242, window = 60,
      reset = 0.15, close = 0.1, stall = 0.15, delay = 0.15, refuse = 0.03,
      at = "0-6000", stall_ms = "200-1500", delay_ms = "1-10", delay_span = "256-4096",
      refuse_ms = "100-500",
    }
    local secret = crypto.hex_encode(crypto.random(12)) -- 24 characters: base64 without padding
    assert.equal(200, hub:put("/v1/config-vars/fault_token", { value = secret, secret = true }).status)
    local slug = agenttest.sh_task(hub, SCRIPT, {
      parameters = json.array {
        { slug = "n", type = "integer", required = true },
        { slug = "dir", type = "string", required = true },
      },
      env = { FAULT_TOKEN = { config = "fault_token" } },
      timeout = 600,
    })
    agent = agenttest.start(hub, { hub_url = fp.url, capacity = CAPACITY, retry_cap_ms = 1000, log_level = "info" })

    local ids, by_id = {}, {}
    for n = 1, RUNS do
      ids[n] = agenttest.run(hub, slug, { n = n, dir = dir })
      by_id[ids[n]] = n
    end

    local caught = {} -- run number -> { started, done } as seen at the first kill that caught it
    local kills = { agent = 0, hub = 0 }
    local function note_agent_kill()
      kills.agent = kills.agent + 1
      local st = statuses(slug)
      for id, status in pairs(st) do
        local n = by_id[id]
        if HELD[status] and not caught[n] then
          caught[n] = { status = status, started = exists(("%s/%d.started"):format(dir, n)),
                        done = exists(("%s/%d.done"):format(dir, n)) }
        elseif caught[n] and not caught[n].started then
          -- Caught again by a later kill (assigned again after a re-queue): keep what
          -- says most about its process.
          caught[n].started = exists(("%s/%d.started"):format(dir, n))
          caught[n].done = exists(("%s/%d.done"):format(dir, n))
        end
      end
    end
    local function restart_agent()
      local from = #agent:log()
      agent:restart(false)
      agent:wait_log('"msg":"agent ready"', 60000, from)
    end

    -- Crashes at points set by progress, not by time, so a slow machine sees the same story.
    local plan = {
      { at = 25, what = "agent" },
      { at = 60, what = "hub" },
      { at = 95, what = "agent" },
      { at = 130, what = "hub" },
      { at = 165, what = "both" },
    }
    local in_flight_at_hub_kill = 0
    for _, step in ipairs(plan) do
      local st
      assert.truthy(hubtest.wait_for(function()
        st = statuses(slug)
        return count_ended(st) >= step.at
      end, 120000, 100), ("only %d runs ended before the %s kill at %d"):format(count_ended(st or {}), step.what, step.at))
      if step.what == "agent" then
        agent:kill()
        note_agent_kill()
        restart_agent()
      elseif step.what == "hub" then
        in_flight_at_hub_kill = in_flight_at_hub_kill + (#ids - count_ended(st))
        hub:kill()
        kills.hub = kills.hub + 1
        timer.sleep(500)
        hub:restart()
      else
        hub:kill()
        kills.hub = kills.hub + 1
        agent:kill()
        hub:restart()
        note_agent_kill()
        restart_agent()
      end
    end

    local st
    assert.truthy(hubtest.wait_for(function()
      st = statuses(slug)
      return count_ended(st) == RUNS
    end, 150000, 200), ("only %d of %d runs ended"):format(count_ended(st or {}), RUNS))

    local endings = {}
    for n, id in ipairs(ids) do
      local how = check_run(n, id, caught[n])
      endings[how] = (endings[how] or 0) + 1
    end

    -- The story happened as planned: otherwise this spec proves less than it says.
    assert.equal(3, kills.agent)
    assert.equal(3, kills.hub)
    assert.truthy(endings["agent restarted; the run's process was lost"],
      "no agent kill caught a running process: " .. json.encode(endings))
    assert.truthy((endings.succeeded or 0) >= RUNS - 3 * CAPACITY * 2, json.encode(endings))
    assert.truthy(in_flight_at_hub_kill > 0)
    local s = fp:stats()
    for _, kind in ipairs({ "reset", "close", "stall", "delay" }) do
      assert.truthy(s.struck[kind] > 0, "no " .. kind .. " fault struck: " .. json.encode(s))
    end

    -- No form of the secret anywhere on the hub (store files, its log) or in the agent's
    -- state and log, once both are stopped and have written what they will write.
    -- The drain and deregistration are not what this spec is about: no faults for them.
    fp:mode("clean")
    assert.equal(0, agent:stop(30000))
    hub:stop()
    local forms = security.forms(secret)
    local places = { hub.dir, agent.dir }
    assert.truthy(security.count_files(places) >= 4)
    assert.same({}, security.scan(places, forms))
  end)
end)
