-- The Lua face of a run's log (what the agent's run code and scheduler backends use), without
-- a hub: sinks, ctx:write, secrets, outputs, counts, reopening, closing, and a finish cut short.
local pipeline = require "hangar.pipeline"
local process = require "hangar.process"
local sink = require "hangar.sink"
local task = require "hangar.task"

local TMP = (os.getenv("HANGAR_TEST_TMP") or "/tmp") .. "/pipeline-binding"

local p, dir, n = nil, nil, 0

-- fn raises an error that says message.
local function refused(fn, message)
  local ok, err = pcall(fn)
  assert.is_false(ok, "no error: " .. message)
  assert.truthy(tostring(err):find(message, 1, true), tostring(err))
end

before_each(function()
  n = n + 1
  dir = ("%s/%d-%d"):format(TMP, os.time(), n)
  os.execute("rm -rf '" .. dir .. "' && mkdir -p '" .. dir .. "'")
  -- nobody listens there, and there is no session: nothing is ever uploaded
  p = assert(pipeline.new { url = "http://127.0.0.1:9", spool_dir = dir .. "/spool", sync_ms = 10 })
end)

after_each(function()
  p:close()
  os.execute("rm -rf '" .. dir .. "'")
end)

describe("a run log in Lua", function()
  it("offers its streams as sinks for producers", function()
    local rl = assert(p:runlog("run_sinks"))
    assert.is_true(sink.is_sink(rl.stdout))
    assert.equal(rl.stdout, rl.stdout) -- the same object each time
    assert.are_not.equal(rl.stdout, rl.stderr)
    local proc = assert(process.spawn { argv = { "/bin/sh", "-c", "echo out; echo err >&2; printf tail" },
                                        env = { PATH = "/usr/bin:/bin" },
                                        stdout = rl.stdout, stderr = rl.stderr })
    assert.equal(0, proc:wait().exit_code)
    -- "tail" has no newline: stored when its stream ended
    assert.equal(3, rl:count())
    rl:close()
  end)

  it("takes ctx:write, system lines, secrets and output lines", function()
    local rl = assert(p:runlog("run_write"))
    assert.equal("null", rl:outputs())
    assert.is_true(rl:add_secret("correct-horse", "PW"))
    assert.is_false(rl:add_secret("tiny", "PIN")) -- too short: a system line says so
    assert.equal(1, rl:count())
    assert.is_true(rl:write("stdout", "hello correct-horse\nhangar_output_set:answer 42\n", 1795860000123))
    assert.is_true(rl:write("stderr", "oops\n"))
    assert.is_true(rl:system("from the agent"))
    assert.equal(6, rl:count())
    assert.equal('{"answer":42}', rl:outputs())
    local st = rl:stats()
    assert.equal(6, st.events)
    assert.equal(0, st.acked)
    assert.is_false(st.truncated)
    assert.is_false(st.paused)
    refused(function() rl:write("system", "x") end, 'stream must be "stdout" or "stderr", not "system"')
    refused(function() rl:write("stdout") end, "string expected, got no value")
    rl:close()
  end)

  it("reopens a closed log with its events and outputs, for an agent that restarted", function()
    local rl = assert(p:runlog("run_reopen"))
    rl:write("stdout", "hangar_output_append:list 1\nsome line\n")
    local out = rl.stdout
    rl:close()
    rl:close() -- twice is fine
    assert.is_false(out:valid()) -- producers can no longer write into it
    assert.has_error(function() rl:write("stdout", "late\n") end, "the run log is closed")
    refused(function() return rl.stdout end, "the run log is closed")
    assert.equal(3, rl:count()) -- what it knew when it closed
    local again = assert(p:runlog("run_reopen"))
    assert.equal(3, again:count())
    assert.equal('{"list":[1]}', again:outputs())
    again:write("stdout", "hangar_output_append:list 2\n")
    assert.equal('{"list":[1,2]}', again:outputs())
    -- one owner at a time
    local other, err = p:runlog("run_reopen")
    assert.is_nil(other)
    assert.truthy(err:find("in use", 1, true))
    again:close()
  end)

  it("refuses a run id that is not one, and a pipeline closed under open logs", function()
    local not_an_id = "a run id is 1 to 64 characters of A-Z a-z 0-9 _ -"
    refused(function() p:runlog("../escape") end, not_an_id)
    refused(function() p:runlog("") end, not_an_id)
    local rl = assert(p:runlog("run_open"))
    refused(function() p:close() end, "pipeline:close: 1 run log(s) still open")
    rl:close()
  end)

  it("ends a finish still waiting when the log is closed", function()
    local rl = assert(p:runlog("run_cut"))
    rl:write("stdout", "line\n")
    local t = task.spawn(function()
      return rl:finish { status = "succeeded", exit_code = 0 }
    end)
    -- no session: the finish cannot reach a hub and waits
    require("hangar.timer").sleep(200)
    assert.is_false(t:done())
    rl:close()
    local ok, err = t:wait()
    assert.is_nil(ok)
    assert.truthy(err:find("closed before the hub acknowledged", 1, true))
    -- the spool stays for a later agent: the run is not finished
    assert.equal("run_cut.spool\n", io.popen("ls '" .. dir .. "/spool'"):read("a"))
  end)

  it("checks a finish's status", function()
    local rl = assert(p:runlog("run_status"))
    local t = task.spawn(function()
      return rl:finish { status = "great" }
    end)
    refused(function() t:wait() end, "status must be succeeded, failed or cancelled")
    refused(function() rl:finish {} end, "status is required")
    rl:close()
  end)
end)
