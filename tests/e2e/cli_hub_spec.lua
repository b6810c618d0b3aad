-- The CLI against a real `hangar hub`: deploying task files, runs with typed parameters,
-- following a run live to its exit code (a scripted agent plays the agent's part over the
-- protocol), runs list/show/logs/cancel, config variables and keys.
local hubtest = require "hubtest"
local testutil = require "testutil"
local process = require "hangar.process"
local json = require "hangar.json"

local BIN = assert(testutil.BIN, "HANGAR_BIN is not set")
local SRC = testutil.SRC
local TMP = testutil.TMP .. "/cli-hub"
os.execute("mkdir -p '" .. TMP .. "'")

local q, write = testutil.q, testutil.write

-- A file not written yet reads as empty.
local function slurp(path) return testutil.slurp(path) or "" end

local function escape(s) return (s:gsub("%p", "%%%0")) end

local hub

-- The environment a user of this hub would have.
local function user_env(extra)
  local env = { PATH = "/usr/bin:/bin", HOME = TMP .. "/home", HANGAR_HUB_URL = hub.url,
                HANGAR_TOKEN = hub.admin_key }
  for k, v in pairs(extra or {}) do env[k] = v or nil end
  return env
end

-- Runs `hangar ARGS...` to its end. opts: env (overrides; false removes), stdin (a file).
-- Returns code, stdout, stderr.
local function hangar(args, opts)
  opts = opts or {}
  local parts = { "env -i" }
  for k, v in pairs(user_env(opts.env)) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = q(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local cmd = table.concat(parts, " ") .. " 2>" .. q(TMP .. "/stderr") .. " <" .. q(opts.stdin or "/dev/null")
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, slurp(TMP .. "/stderr")
end

-- Starts `hangar ARGS...` in the background, its output going to files, so that a test can
-- act as the agent meanwhile and watch what the CLI prints as it prints it.
local n_bg = 0
local function hangar_bg(args)
  n_bg = n_bg + 1
  local out, err = ("%s/bg%d.out"):format(TMP, n_bg), ("%s/bg%d.err"):format(TMP, n_bg)
  -- A file left by an earlier run of this spec must not be read as this CLI's output.
  os.remove(out)
  os.remove(err)
  local words = { "exec", q(BIN) }
  for _, a in ipairs(args) do words[#words + 1] = q(a) end
  local line = table.concat(words, " ") .. " >" .. q(out) .. " 2>" .. q(err)
  local p = assert(process.spawn { argv = { "/bin/sh", "-c", line }, env = user_env() })
  local bg = { p = p }
  function bg.out() return slurp(out) end
  function bg.err() return slurp(err) end
  -- Waits (bounded) for the CLI to exit; returns its exit code.
  function bg.finish()
    local done = hubtest.wait_for(function() return p:done() end, 30000)
    if not done then p:kill(100) end
    local r = p:wait()
    assert(done, "the CLI did not exit; stderr:\n" .. bg.err())
    return r.exit_code
  end
  -- The run id the CLI announced on stderr.
  function bg.run_id()
    local id = hubtest.wait_for(function() return bg.err():match("hangar: run (%S+) of ") end, 10000)
    return assert(id, "no run id on stderr:\n" .. bg.err())
  end
  return bg
end

-- A task only the scripted agent of one test can receive (its constraints), so that runs
-- other tests leave queued never get in the way.
local function deploy_private(slug, extra)
  local file = write(TMP .. "/" .. slug .. ".task.yaml",
    "slug: " .. slug .. "\ncommand: [\"/bin/true\"]\nconstraints: {suite: " .. slug .. "}\n" .. (extra or ""))
  local code, _, err = hangar({ "task", "deploy", file })
  assert(code == 0, err)
end

local function agent_for(slug)
  return hub:agent { labels = { suite = slug }, key_labels = { suite = slug }, name = "scripted-" .. slug }
end

-- The scripted agent takes the given run, accepts and starts it.
local function take_and_start(agent, run_id)
  local got, lease = agent:take(10)
  assert.equal(run_id, got)
  assert.equal(200, agent:accept(run_id, lease).status)
  assert.equal(200, agent:start(run_id).status)
end

local function run_json(id)
  local code, out, err = hangar({ "runs", "show", id, "--json" })
  assert(code == 0, err)
  return json.decode(out)
end

describe("hangar CLI against a hub", function()
  setup(function()
    hub = hubtest.start { name = "cli" }
  end)
  teardown(function()
    if hub then hub:cleanup() end
  end)

  describe("task deploy", function()
    it("deploys task files, says new or unchanged, and keeps the revision of an unchanged one", function()
      local dir = SRC .. "/examples/tasks/"
      local code, out, err = hangar({ "task", "deploy", dir .. "hello.task.yaml", dir .. "fail.task.yaml",
        dir .. "sleepy.task.yaml" })
      assert.equal(0, code, err)
      assert.equal("hello: revision 1 (new task)\nfail: revision 1 (new task)\nsleepy: revision 1 (new task)\n", out)
      code, out = hangar({ "task", "deploy", dir .. "hello.task.yaml" })
      assert.equal(0, code)
      assert.equal("hello: revision 1 (unchanged)\n", out)
      -- A changed definition gets the next revision.
      local changed = slurp(dir .. "hello.task.yaml"):gsub("timeout: 60", "timeout: 61")
      code, out = hangar({ "task", "deploy", write(TMP .. "/hello2.task.yaml", changed) })
      assert.equal(0, code)
      assert.equal("hello: revision 2 (new revision)\n", out)
      hangar({ "task", "deploy", dir .. "hello.task.yaml" })
    end)

    it("shows a YAML error as file:line:column and sends nothing", function()
      local bad = write(TMP .. "/bad.task.yaml", "slug: nosuchtask\ncommand: [echo\n")
      local code, out, err = hangar({ "task", "deploy", SRC .. "/examples/tasks/fail.task.yaml", bad })
      assert.equal(1, code)
      assert.equal("", out)
      assert.truthy(err:match("^hangar: " .. escape(bad) .. ":3:1: "), err)
      local _, list = hangar({ "task", "list" })
      assert.falsy(list:find("nosuchtask", 1, true))
    end)

    it("shows the hub's refusal naming the file and the field", function()
      local bad = write(TMP .. "/badtype.task.yaml",
        "slug: badtype\ncommand: [echo]\nparameters:\n  - {slug: count, type: int}\n")
      local code, _, err = hangar({ "task", "deploy", bad })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: " .. escape(bad) .. ": hub said 400 bad_request: parameters%[0%]%.type"), err)
    end)

    it("lists and shows tasks, as tables or JSON", function()
      local code, out = hangar({ "task", "list" })
      assert.equal(0, code)
      assert.truthy(out:match("^SLUG%s+REVISION%s+NAME%s+DESCRIPTION\n"), out)
      assert.truthy(out:find("\nhello%s+%d+%s+Say hello%s+Greets someone"), out)
      code, out = hangar({ "task", "show", "hello" })
      assert.equal(0, code)
      assert.truthy(out:find("\n  count%s+integer%s+yes%s+%-%s+count%s+How many times\n"), out)
      assert.truthy(out:find("\n  name%s+string%s+no%s+world"), out)
      code, out = hangar({ "task", "show", "hello", "--json" })
      assert.equal(0, code)
      local task = json.decode(out)
      assert.equal("hello", task.slug)
      assert.equal("integer", task.parameters[2].type)
      local err
      code, out, err = hangar({ "task", "show", "nope" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 404 not_found: "), err)
    end)
  end)

  describe("run", function()
    it("creates a run with parameters typed by the task and prints its id", function()
      local code, out, err = hangar({ "run", "hello", "--param", "count=2", "--param", "name=007",
        "--param", "loud=yes" })
      assert.equal(0, code, err)
      local id = out:match("^(%S+)\n$")
      assert.truthy(id, out)
      local run = run_json(id)
      assert.equal("hello", run.task)
      -- count went as the number 2 and name stayed the string "007".
      assert.equal(2, run.params.count)
      assert.equal("integer", math.type(run.params.count))
      assert.equal("007", run.params.name)
      assert.equal(true, run.params.loud)
      assert.equal(0, (hangar({ "runs", "cancel", id })))
    end)

    it("passes --param-json values as JSON", function()
      local code, out = hangar({ "run", "hello", "--param-json", "count=5" })
      assert.equal(0, code)
      local id = out:match("^(%S+)")
      assert.equal(5, run_json(id).params.count)
      hangar({ "runs", "cancel", id })
    end)

    it("refuses a value that does not fit its type before asking the hub", function()
      local code, out, err = hangar({ "run", "hello", "--param", "count=lots" })
      assert.equal(2, code)
      assert.equal("", out)
      assert.truthy(err:find("parameter 'count' is an integer, not 'lots'", 1, true), err)
    end)

    it("shows the hub's 400 naming the parameter", function()
      local code, _, err = hangar({ "run", "hello" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 400 bad_request: [^\n]*count"), err)
      code, _, err = hangar({ "run", "hello", "--param", "count=1", "--param", "colour=red" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 400 bad_request: [^\n]*colour"), err)
      code, _, err = hangar({ "run", "no-such-task" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 404 not_found: "), err)
    end)
  end)

  describe("run --follow", function()
    it("prints log lines as they arrive, then the outputs, and exits with the run's exit code", function()
      deploy_private("follow-exit")
      local agent = agent_for("follow-exit")
      local cli = hangar_bg({ "run", "follow-exit", "--follow" })
      local id = cli.run_id()
      take_and_start(agent, id)
      agent:events(id, 0, { hubtest.log_event("first line") })
      -- Printed while the run is still going: live, not at the end.
      assert.truthy(hubtest.wait_for(function() return cli.out():find("first line\n", 1, true) end, 10000),
        "the first line did not appear while the run was running")
      assert.is_false(cli.p:done())
      agent:events(id, 1, {
        hubtest.log_event("to stderr", "stderr"),
        hubtest.log_event("second line"),
        hubtest.output_event("set", "greeting", "hi"),
      })
      assert.equal(200, agent:finish(id, "failed", 4, 3, "exit code 3").status)
      assert.equal(3, cli.finish())
      local out = cli.out()
      assert.truthy(out:match("^first line\nsecond line\n"), out)
      assert.truthy(out:find('"greeting":%s*"hi"'), out)
      local err = cli.err()
      assert.truthy(err:find("\nto stderr\n", 1, true), err)
      assert.falsy(out:find("to stderr", 1, true))
      assert.truthy(err:find("run " .. id .. " failed (exit code 3)", 1, true), err)
    end)

    it("exits 0 for a run that succeeded and 1 for one that failed without an exit code", function()
      deploy_private("follow-codes")
      local agent = agent_for("follow-codes")
      local cli = hangar_bg({ "run", "follow-codes", "-f" })
      local id = cli.run_id()
      take_and_start(agent, id)
      agent:finish(id, "succeeded", 0, 0)
      assert.equal(0, cli.finish())
      cli = hangar_bg({ "run", "follow-codes", "-f" })
      id = cli.run_id()
      take_and_start(agent, id)
      agent:finish(id, "failed", 0, nil, "timed out after 5 s")
      assert.equal(1, cli.finish())
      assert.truthy(cli.err():find("failed: timed out after 5 s", 1, true), cli.err())
    end)

    it("rides out a hub restart while following", function()
      deploy_private("follow-restart")
      local agent = agent_for("follow-restart")
      local cli = hangar_bg({ "run", "follow-restart", "--follow" })
      local id = cli.run_id()
      take_and_start(agent, id)
      agent:events(id, 0, { hubtest.log_event("before") })
      assert.truthy(hubtest.wait_for(function() return cli.out():find("before\n", 1, true) end, 10000))
      hub:kill()
      assert.truthy(hubtest.wait_for(function() return cli.err():find("retrying", 1, true) end, 10000),
        "the CLI did not notice the hub was gone")
      hub:restart()
      agent:events(id, 1, { hubtest.log_event("after") })
      agent:finish(id, "succeeded", 2, 0)
      assert.equal(0, cli.finish())
      assert.equal("before\nafter\n", cli.out())
    end)

    it("on Ctrl-C stops following, says how to cancel, and leaves the run going", function()
      deploy_private("follow-int")
      local agent = agent_for("follow-int")
      local cli = hangar_bg({ "run", "follow-int", "--follow" })
      local id = cli.run_id()
      take_and_start(agent, id)
      agent:events(id, 0, { hubtest.log_event("working") })
      assert.truthy(hubtest.wait_for(function() return cli.out():find("working", 1, true) end, 10000))
      cli.p:signal("INT")
      assert.equal(130, cli.finish())
      assert.truthy(cli.err():find("hangar runs cancel " .. id, 1, true), cli.err())
      assert.equal("running", run_json(id).status)
      agent:finish(id, "succeeded", 1, 0)
    end)

    it("with --cancel-on-interrupt, Ctrl-C cancels the run and waits for its end (exit 130)", function()
      deploy_private("follow-cancel")
      local agent = agent_for("follow-cancel")
      local cli = hangar_bg({ "run", "follow-cancel", "--follow", "--cancel-on-interrupt" })
      local id = cli.run_id()
      take_and_start(agent, id)
      agent:events(id, 0, { hubtest.log_event("working") })
      assert.truthy(hubtest.wait_for(function() return cli.out():find("working", 1, true) end, 10000))
      cli.p:signal("INT")
      assert.truthy(hubtest.wait_for(function() return run_json(id).status == "cancelling" end, 10000),
        "the CLI did not cancel the run")
      assert.is_false(cli.p:done())
      agent:events(id, 1, { hubtest.log_event("stopping", "stderr") })
      agent:finish(id, "cancelled", 2)
      assert.equal(130, cli.finish())
      assert.truthy(cli.err():find("run " .. id .. " was cancelled", 1, true), cli.err())
    end)
  end)

  describe("runs", function()
    local id
    setup(function()
      deploy_private("runs-cmds")
      local agent = agent_for("runs-cmds")
      local code, out = hangar({ "run", "runs-cmds" })
      assert(code == 0)
      id = out:match("^(%S+)")
      take_and_start(agent, id)
      agent:events(id, 0, { hubtest.log_event("out one"), hubtest.log_event("err one", "stderr"),
        hubtest.log_event("out two"), hubtest.output_event("set", "n", 7) })
      agent:finish(id, "failed", 4, 2, "exit code 2")
    end)

    it("lists runs, filtered by task, status and count", function()
      local code, out = hangar({ "runs", "list", "--task", "runs-cmds", "--status", "failed" })
      assert.equal(0, code)
      assert.truthy(out:match("^ID%s+TASK%s+STATUS%s+EXIT%s+CREATED%s+FINISHED%s+AGENT\n"), out)
      assert.truthy(out:find("\n" .. escape(id) .. "%s+runs%-cmds%s+failed%s+2%s"), out)
      code, out = hangar({ "runs", "list", "--task", "runs-cmds", "--status", "succeeded" })
      assert.equal(0, code)
      assert.falsy(out:find(id, 1, true))
      code, out = hangar({ "runs", "list", "--limit", "1", "--json" })
      assert.equal(0, code)
      assert.equal(1, #json.decode(out).runs)
    end)

    it("shows a run with its outputs", function()
      local code, out = hangar({ "runs", "show", id })
      assert.equal(0, code)
      assert.truthy(out:find("status%s+failed\n"), out)
      assert.truthy(out:find("exit code%s+2\n"), out)
      assert.truthy(out:find('"n":%s*7'), out)
      assert.truthy(out:find("scripted%-runs%-cmds"), out)
    end)

    it("prints a run's log, stdout lines on stdout and stderr lines on stderr", function()
      local code, out, err = hangar({ "runs", "logs", id })
      assert.equal(0, code)
      assert.equal("out one\nout two\n", out)
      assert.equal("err one\n", err)
      -- Following a run that ended prints the same and returns.
      code, out = hangar({ "runs", "logs", id, "--follow" })
      assert.equal(0, code)
      assert.equal("out one\nout two\n", out)
    end)

    it("follows a running run's log until it ends", function()
      local agent = agent_for("runs-cmds")
      local _, out = hangar({ "run", "runs-cmds" })
      local rid = out:match("^(%S+)")
      take_and_start(agent, rid)
      local cli = hangar_bg({ "runs", "logs", rid, "--follow" })
      agent:events(rid, 0, { hubtest.log_event("tick") })
      assert.truthy(hubtest.wait_for(function() return cli.out() == "tick\n" end, 10000), cli.out())
      agent:finish(rid, "succeeded", 1, 0)
      assert.equal(0, cli.finish())
    end)

    it("cancels a queued run at once and refuses to cancel an ended one", function()
      local _, out = hangar({ "run", "runs-cmds" })
      local rid = out:match("^(%S+)")
      local code, err
      code, out = hangar({ "runs", "cancel", rid })
      assert.equal(0, code)
      assert.equal("cancelled run " .. rid .. "\n", out)
      assert.equal("cancelled", run_json(rid).status)
      code, out, err = hangar({ "runs", "cancel", rid })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 409 invalid_transition: "), err)
    end)

    it("cancels a running run through its agent", function()
      local agent = agent_for("runs-cmds")
      local _, out = hangar({ "run", "runs-cmds" })
      local rid = out:match("^(%S+)")
      take_and_start(agent, rid)
      local code
      code, out = hangar({ "runs", "cancel", rid })
      assert.equal(0, code)
      assert.equal("cancelling run " .. rid .. ": its agent is stopping it\n", out)
      assert.equal("cancelling", run_json(rid).status)
      agent:finish(rid, "cancelled", 0)
    end)

    it("says which run does not exist", function()
      local code, _, err = hangar({ "runs", "show", "no_such_run" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 404 not_found: "), err)
    end)
  end)

  describe("config", function()
    it("sets, lists and deletes variables; a secret's value is never shown", function()
      local code, out, err = hangar({ "config", "set", "region", "eu-west-1" })
      assert.equal(0, code, err)
      assert.equal("set region\n", out)
      local secret_file = write(TMP .. "/secret.txt", "s3cr3t-from-file\n")
      code, out = hangar({ "config", "set", "db_password", "--secret", "--from-file", secret_file })
      assert.equal(0, code)
      assert.equal("set db_password (secret)\n", out)
      code = hangar({ "config", "set", "api_token", "--secret", "-" },
        { stdin = write(TMP .. "/stdin.txt", "s3cr3t-from-stdin\n") })
      assert.equal(0, code)
      code, out = hangar({ "config", "list" })
      assert.equal(0, code)
      assert.truthy(out:find("\nregion%s+no%s+eu%-west%-1%s"), out)
      assert.truthy(out:find("\ndb_password%s+yes%s+%(hidden%)%s"), out)
      assert.truthy(out:find("\napi_token%s+yes%s+%(hidden%)%s"), out)
      local _, js = hangar({ "config", "list", "--json" })
      for _, text in ipairs({ out, js }) do
        assert.falsy(text:find("s3cr3t", 1, true), "a secret value was printed")
      end
      code, out = hangar({ "config", "delete", "region" })
      assert.equal(0, code)
      assert.equal("deleted region\n", out)
      _, out = hangar({ "config", "list" })
      assert.falsy(out:find("region", 1, true))
      code, _, err = hangar({ "config", "delete", "region" })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 404 not_found: "), err)
    end)

    it("warns when a secret is given on the command line", function()
      local code, _, err = hangar({ "config", "set", "inline_secret", "--secret", "visible-value" })
      assert.equal(0, code)
      assert.truthy(err:find("warning: a secret given on the command line", 1, true), err)
      assert.falsy(err:find("visible-value", 1, true))
    end)
  end)

  describe("key", function()
    it("creates a key shown once, lists it, and revokes it", function()
      local code, out, err = hangar({ "key", "create", "--role", "user", "--name", "ci-bot" })
      assert.equal(0, code, err)
      local key = out:match("^(hgr_%S+)\n$")
      assert.truthy(key, out)
      assert.truthy(err:find("shown only this once", 1, true), err)
      assert.falsy(err:find(key, 1, true))
      local id = key:match("^hgr_([a-z0-9]+)_")
      code, out = hangar({ "key", "list" })
      assert.equal(0, code)
      assert.truthy(out:find("\n" .. id .. "%s+user%s+ci%-bot%s"), out)
      assert.falsy(out:find(key, 1, true), "key list printed a key")
      -- The new key works, within its role.
      code = hangar({ "task", "list" }, { env = { HANGAR_TOKEN = key } })
      assert.equal(0, code)
      code, _, err = hangar({ "key", "list" }, { env = { HANGAR_TOKEN = key } })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 403 forbidden: "), err)
      code, out = hangar({ "key", "revoke", id })
      assert.equal(0, code)
      assert.equal("revoked key " .. id .. "\n", out)
      code, _, err = hangar({ "task", "list" }, { env = { HANGAR_TOKEN = key } })
      assert.equal(1, code)
      assert.truthy(err:match("^hangar: hub said 401 unauthorized: "), err)
      assert.falsy(err:find(key, 1, true))
    end)

    it("creates an agent key with labels", function()
      local code, out = hangar({ "key", "create", "--role", "agent", "--name", "stage-runner",
        "--label", "env=staging", "--label", "zone=a" })
      assert.equal(0, code)
      local id = out:match("^hgr_([a-z0-9]+)_")
      _, out = hangar({ "key", "list" })
      assert.truthy(out:find("\n" .. id .. "%s+agent%s+stage%-runner%s+env=staging,zone=a%s")
        or out:find("\n" .. id .. "%s+agent%s+stage%-runner%s+zone=a,env=staging%s"), out)
    end)
  end)

  it("says when the key is wrong or missing, never printing it", function()
    local code, _, err = hangar({ "task", "list" }, { env = { HANGAR_TOKEN = "hgr_aaaaaaaaaaaa_wrongwrongwrong" } })
    assert.equal(1, code)
    assert.truthy(err:match("^hangar: hub said 401 unauthorized: "), err)
    assert.falsy(err:find("wrongwrongwrong", 1, true))
    code, _, err = hangar({ "task", "list" }, { env = { HANGAR_TOKEN = false } })
    assert.equal(2, code)
    assert.truthy(err:find("no API key", 1, true), err)
  end)

  it("says when the URL is not the hub's API", function()
    local code, _, err = hangar({ "task", "list", "--hub", hub.url .. "/v1" })
    assert.equal(1, code)
    assert.truthy(err:match("^hangar: hub said 404 "), err)
  end)
end)
