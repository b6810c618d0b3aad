-- The log pipeline's promise at scale: a task printing 1,000,000 lines, some with a secret
-- raw or encoded and some longer than an event may be, delivers exactly those lines, in order,
-- masked, to the hub, even when the hub is killed and restarted twice during the run.
local hubtest = require "hubtest"
local lines = require "pipeline_lines"
local pipeline = require "hangar.pipeline"
local process = require "hangar.process"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
local TMP = (os.getenv("HANGAR_TEST_TMP") or "/tmp") .. "/pipeline-million"
local N = 1000000

local hub

setup(function()
  os.execute("rm -rf '" .. TMP .. "' && mkdir -p '" .. TMP .. "'")
  hub = hubtest.start { name = "pipeline-million", args = { "--lease-ttl", "600", "--log-level", "warn" } }
end)

teardown(function()
  if hub then
    hub:cleanup()
  end
  os.execute("rm -rf '" .. TMP .. "'")
end)

describe("a task printing a million lines", function()
  it("reaches the hub exactly, in order and masked, through two hub restarts", function()
    assert.equal(201, hub:post("/v1/tasks", { slug = "million", command = { "true" } }).status)
    local agent = hub:agent {}
    local id = assert(hub:post("/v1/runs", { task = "million" })).json.run_id
    local rid, lease = agent:take(5)
    assert.equal(id, rid)
    assert.equal(200, agent:accept(id, lease).status)
    assert.equal(200, agent:start(id).status)

    local p = assert(pipeline.new { url = hub.url, token = agent.token, spool_dir = TMP,
                                    max_batch_bytes = agent.registered.max_batch_bytes,
                                    backoff_base_ms = 50, backoff_cap_ms = 500 })
    local rl = assert(p:runlog(id))
    assert.is_true(rl:add_secret(lines.secret, "DB_PASSWORD"))
    -- the task pauses half-way, so that the first restart happens while it is still running
    local task = assert(process.spawn {
      argv = { BIN, "lua", SRC .. "/tests/helpers/pipeline_lines.lua", tostring(N), tostring(N // 2), "3000" },
      env = { PATH = "/usr/bin:/bin" },
      stdout = rl.stdout,
      stderr = rl.stderr,
    })

    -- SIGKILL the hub mid-upload, twice; it comes back on the same store and port
    for _, at in ipairs { N // 10, N * 6 // 10 } do
      assert(hubtest.wait_for(function() return rl:acked() >= at end, 120000, 20),
             "the upload stalled at " .. rl:acked())
      hub:kill()
      hubtest.sleep(500)
      hub:restart()
    end
    local status = task:wait()
    assert.equal(0, status.exit_code)
    local ok, err = rl:finish { status = "succeeded", exit_code = 0 }
    assert.is_true(ok, err)
    assert.is_true(p:stats().reconnects >= 2)

    -- read everything back: lines joined from their partial pieces, compared one by one
    local i, after, pieces, bad, events = 1, -1, {}, {}, 0
    while true do
      local res = assert(hub:get("/v1/runs/" .. id .. "/events?after=" .. after .. "&limit=10000"))
      assert.equal(200, res.status)
      local got = res.json.events
      for k = 1, #got do
        local e = got[k]
        if e.seq ~= after + 1 or e.kind ~= "log" or e.stream ~= "stdout" then
          error(("event %d: unexpected %s %s %s"):format(after + 1, e.seq, e.kind, e.stream))
        end
        after = e.seq
        events = events + 1
        pieces[#pieces + 1] = e.text
        if not e.partial then
          local text = #pieces == 1 and pieces[1] or table.concat(pieces)
          pieces = {}
          if text ~= lines.expected(i) and #bad < 5 then
            bad[#bad + 1] = ("line %d: %q"):format(i, text:sub(1, 120))
          end
          i = i + 1
        end
      end
      if #got == 0 then
        break
      end
    end
    assert.same({}, bad)
    assert.equal(N, i - 1)
    assert.equal(0, #pieces)
    assert.equal(rl:count(), events)
    local run = hub:get("/v1/runs/" .. id).json
    assert.equal("succeeded", run.status)
    assert.equal(events, run.events)
    rl:close()
    p:close()
  end)
end)
