-- The agent's log pipeline (run log + uploader, through hangar.pipeline) against a real
-- `hangar hub`: processes print into a run's sinks and the hub ends up with exactly their
-- lines, in order, once, masked; the hub going away, the agent restarting mid-upload, a cancel
-- and a lapsed session are ridden out.
local hubtest = require "hubtest"
local pipeline = require "hangar.pipeline"
local process = require "hangar.process"
local json = require "hangar.json"
local timer = require "hangar.timer"
local async = require "hangar.async"
local crypto = require "hangar.crypto"

local TMP = (os.getenv("HANGAR_TEST_TMP") or "/tmp") .. "/pipeline-hub"
os.execute("mkdir -p '" .. TMP .. "'")

local hub
local n_dirs = 0

setup(function()
  hub = hubtest.start { name = "pipeline-hub", args = { "--lease-ttl", "600" } }
  assert.equal(201, hub:post("/v1/tasks", { slug = "printer", command = { "true" } }).status)
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
end)

-- A fresh directory, its name this run's own: two runs of the spec at once do not share one.
local RUN_TAG = crypto.hex_encode(crypto.random(4))
local function spool_dir()
  n_dirs = n_dirs + 1
  local dir = ("%s/spool-%s-%d"):format(TMP, RUN_TAG, n_dirs)
  os.execute("rm -rf '" .. dir .. "'")
  return dir
end

-- A run the given agent holds, started.
local function running_run(agent)
  local id = assert(hub:post("/v1/runs", { task = "printer" })).json.run_id
  local rid, lease = agent:take(5)
  assert.equal(id, rid)
  assert.equal(200, agent:accept(id, lease).status)
  assert.equal(200, agent:start(id).status)
  return id
end

local function new_pipeline(agent, dir, extra)
  local opts = { url = hub.url, token = agent.token, spool_dir = dir,
                 max_batch_bytes = agent.registered.max_batch_bytes,
                 backoff_base_ms = 50, backoff_cap_ms = 500, sync_ms = 20 }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(pipeline.new(opts))
end

-- Every event of a run at the hub, in seq order (checked), page by page.
local function hub_events(id, h)
  h = h or hub
  local out, after = {}, -1
  while true do
    local res = assert(h:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=5000"))
    assert.equal(200, res.status)
    for _, e in ipairs(res.json.events) do
      assert.equal(after + 1, e.seq)
      out[#out + 1] = e
      after = e.seq
    end
    if #res.json.events == 0 then
      return out
    end
  end
end

-- The texts of a run's stdout/stderr lines at the hub, partial pieces joined.
local function hub_lines(id, stream)
  local lines, pieces = {}, {}
  for _, e in ipairs(hub_events(id)) do
    if e.kind == "log" and e.stream == stream then
      pieces[#pieces + 1] = e.text
      if not e.partial then
        lines[#lines + 1] = table.concat(pieces)
        pieces = {}
      end
    end
  end
  return lines
end

local function sh(script, rl)
  return process.spawn { argv = { "/bin/sh", "-c", script }, env = { PATH = "/usr/bin:/bin" },
                         stdout = rl.stdout, stderr = rl.stderr }
end

describe("the log pipeline against a real hub", function()
  it("delivers parallel runs' lines in order, exactly once, masked, with their outputs", function()
    local agent = hub:agent { capacity = 3 }
    local dir = spool_dir()
    local p = new_pipeline(agent, dir)
    local runs = {}
    for i = 1, 3 do
      local id = running_run(agent)
      local rl = assert(p:runlog(id))
      assert.is_true(rl:add_secret("open-sesame-" .. i, "DOOR"))
      local script = ([[
        i=0
        while [ $i -lt 3000 ]; do echo "run %d line $i"; i=$((i+1)); done
        echo "the door says open-sesame-%d"
        echo "hangar_mask later-secret-%d"
        echo "later-secret-%d and again later-secret-%d" >&2
        echo 'hangar_output_set:run %d'
        echo 'hangar_output_append:items {"n": 1}'
      ]]):format(i, i, i, i, i, i)
      runs[i] = { id = id, rl = rl, proc = sh(script, rl) }
    end
    async.map(runs, function(r)
      assert.equal(0, r.proc:wait().exit_code)
      local ok, err = r.rl:finish { status = "succeeded", exit_code = 0 }
      assert.is_true(ok, err)
    end)
    for i, r in ipairs(runs) do
      local out = hub_lines(r.id, "stdout")
      assert.equal(3003, #out)
      for k = 0, 2999 do
        if out[k + 1] ~= ("run %d line %d"):format(i, k) then
          error(("run %d line %d: %q"):format(i, k, out[k + 1]))
        end
      end
      assert.equal("the door says [REDACTED]", out[3001])
      assert.equal(("hangar_output_set:run %d"):format(i), out[3002])
      assert.same({ "[REDACTED] and again [REDACTED]" }, hub_lines(r.id, "stderr"))
      local res = hub:get("/v1/runs/" .. r.id)
      assert.equal("succeeded", res.json.status)
      assert.same({ run = i, items = { { n = 1 } } }, res.json.outputs)
      -- the agent's copy and the hub's agree, member order included
      assert.equal(('{"run":%d,"items":[{"n":1}]}'):format(i), r.rl:outputs())
      assert.truthy(res.body:find('"outputs":' .. r.rl:outputs(), 1, true))
      assert.equal(#hub_events(r.id), r.rl:count())
      r.rl:close()
    end
    -- delivered runs leave nothing behind
    local left = io.popen("ls -A '" .. dir .. "'"):read("a")
    assert.equal("", left)
    assert.equal(0, p:stats().unacked)
    p:close()
  end)

  it("rides out a hub that is down for a while, without a tight loop", function()
    local agent = hub:agent {}
    local id = running_run(agent)
    local p = new_pipeline(agent, spool_dir(), { backoff_base_ms = 100, backoff_cap_ms = 800 })
    local rl = assert(p:runlog(id))
    for i = 1, 500 do
      rl:write("stdout", ("before %d\n"):format(i))
    end
    assert(hubtest.wait_for(function() return rl:acked() == 500 end, 10000, 10))
    hub:kill()
    local before = p:stats().requests
    for i = 1, 500 do
      rl:write("stdout", ("during %d\n"):format(i))
    end
    hubtest.sleep(3000)
    local tries = p:stats().requests - before
    -- backoff from 100 ms doubling to 800 ms: a handful of tries in 3 s, never hundreds
    assert.is_true(tries >= 2 and tries <= 25, "requests while down: " .. tries)
    hub:restart()
    for i = 1, 500 do
      rl:write("stdout", ("after %d\n"):format(i))
    end
    local ok, err = rl:finish { status = "succeeded", exit_code = 0 }
    assert.is_true(ok, err)
    local out = hub_lines(id, "stdout")
    assert.equal(1500, #out)
    for i = 1, 500 do
      assert.equal(("before %d"):format(i), out[i])
      assert.equal(("during %d"):format(i), out[500 + i])
      assert.equal(("after %d"):format(i), out[1000 + i])
    end
    assert.is_true(p:stats().reconnects >= 1)
    rl:close()
    p:close()
  end)

  it("continues after an agent restart in the middle of an upload, exactly once", function()
    local agent = hub:agent {}
    local id = running_run(agent)
    local dir = spool_dir()
    local p = new_pipeline(agent, dir, { max_batch_bytes = 16 * 1024 })
    local rl = assert(p:runlog(id))
    local function lines(from, to)
      local chunk = {}
      for i = from, to do
        chunk[#chunk + 1] = ("first life %d\n"):format(i)
      end
      return table.concat(chunk)
    end
    rl:write("stdout", lines(1, 10000))
    assert(hubtest.wait_for(function() return rl:acked() == 10000 end, 10000, 5))
    -- The hub stops answering (SIGSTOP) while the rest goes out: the upload is cut in its
    -- middle however fast this machine uploads, with batches sent and not answered.
    local hub_pid = hub.pid
    assert(os.execute("kill -STOP " .. hub_pid))
    finally(function() os.execute("kill -CONT " .. hub_pid) end)
    local sent = p:stats().requests
    rl:write("stdout", lines(10001, 20000))
    assert(hubtest.wait_for(function() return p:stats().requests > sent end, 10000, 5))
    local acked = rl:acked()
    assert.equal(10000, acked)
    -- the agent goes away: its run log and uploader close, the spool stays
    rl:close()
    p:close()
    assert(os.execute("kill -CONT " .. hub_pid))
    -- what the hub holds (a batch cancelled in flight may still have arrived)
    local held, last = -1, nil
    repeat
      last = held
      hubtest.sleep(200)
      held = hub:get("/v1/runs/" .. id).json.events
    until held == last
    assert.is_true(held >= acked and held < 20000)
    -- the new agent reopens the spool, learns where the hub is, and carries on
    local p2 = new_pipeline(agent, dir)
    local rl2 = assert(p2:runlog(id))
    assert.equal(20000, rl2:count())
    rl2:write("stdout", "second life\n")
    local ok, err = rl2:finish { status = "succeeded", exit_code = 0 }
    assert.is_true(ok, err)
    local out = hub_lines(id, "stdout")
    assert.equal(20001, #out)
    for i = 1, 20000 do
      if out[i] ~= ("first life %d"):format(i) then
        error(("line %d: %q"):format(i, out[i]))
      end
    end
    assert.equal("second life", out[20001])
    -- the new agent sent only what the hub lacked
    assert.equal(20001 - held, p2:stats().acked)
    rl2:close()
    p2:close()
  end)

  it("tells of a cancel the events' answer carries", function()
    local agent = hub:agent {}
    local id = running_run(agent)
    local p = new_pipeline(agent, spool_dir())
    local rl = assert(p:runlog(id))
    rl:write("stdout", "working\n")
    assert(hubtest.wait_for(function() return rl:acked() == 1 end, 10000, 10))
    assert.equal(202, hub:post("/v1/runs/" .. id .. "/cancel", {}).status)
    rl:write("stdout", "still working\n")
    assert(hubtest.wait_for(function() return #p:stats().cancels > 0 end, 10000, 10))
    assert.same({ id }, p:stats().cancels)
    assert.equal("cancelling", rl:stats().hub_status)
    local ok, err = rl:finish { status = "cancelled", error = "cancelled" }
    assert.is_true(ok, err)
    assert.equal("cancelled", hub:get("/v1/runs/" .. id).json.status)
    rl:close()
    p:close()
  end)
end)

describe("the log pipeline when its session lapses", function()
  local short

  setup(function()
    short = hubtest.start { name = "pipeline-lapse", args = { "--lease-ttl", "2" } }
    assert.equal(201, short:post("/v1/tasks", { slug = "printer", command = { "true" } }).status)
  end)

  teardown(function()
    if short then
      short:cleanup()
    end
  end)

  it("waits on a 401 for a new session, then delivers the late lines of a run the hub failed", function()
    local agent = short:agent {}
    local id = assert(short:post("/v1/runs", { task = "printer" })).json.run_id
    local rid, lease = agent:take(5)
    assert.equal(id, rid)
    assert.equal(200, agent:accept(id, lease).status)
    local p = assert(pipeline.new { url = short.url, token = agent.token, spool_dir = spool_dir(),
                                    backoff_base_ms = 50, backoff_cap_ms = 200, sync_ms = 20 })
    local rl = assert(p:runlog(id))
    rl:write("stdout", "one\n")
    assert(hubtest.wait_for(function() return rl:acked() == 1 end, 10000, 10))
    -- no heartbeat: the session and the run's lease lapse
    hubtest.sleep(4500)
    rl:write("stdout", "two\n")
    assert(hubtest.wait_for(function() return p:stats().unauthorized == 1 end, 10000, 10))
    local requests = p:stats().requests
    hubtest.sleep(500)
    assert.equal(requests, p:stats().requests) -- waiting, not retrying
    -- register again, resuming the identity, and hand over the new session
    local again = short:agent { key = agent.key, agent_id = agent.id }
    p:set_session(again.token)
    local ok, err, hub_status = rl:finish { status = "succeeded", exit_code = 0 }
    assert.is_nil(ok)
    assert.equal("failed", hub_status, err) -- the hub ended it (agent_lost) meanwhile
    -- late logs are never refused: both lines are there
    local texts = {}
    for _, e in ipairs(hub_events(id, short)) do
      texts[#texts + 1] = e.text
    end
    assert.same({ "one", "two" }, texts)
    rl:close()
    p:close()
  end)
end)
