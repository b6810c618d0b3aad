-- The CLI without a hub: --help for every command, usage errors (exit 2), and the errors a
-- user sees before any request succeeds (no hub URL, no key, unreachable hub, bad YAML).
local testutil = require "testutil"

local BIN = assert(testutil.BIN, "HANGAR_BIN is not set")
local SRC = testutil.SRC
local TMP = testutil.TMP .. "/cli-usage"
os.execute("mkdir -p '" .. TMP .. "'")

local q = testutil.q

-- A file not written yet reads as empty.
local function slurp(path) return testutil.slurp(path) or "" end

-- Runs `hangar ARGS...` with only the environment given (plus PATH), so that the developer's
-- own HANGAR_* variables or config file cannot leak in. Returns code, stdout, stderr.
local function hangar(args, env, stdin)
  local parts = { "env -i PATH=/usr/bin:/bin", "HOME=" .. q(TMP .. "/home") }
  for k, v in pairs(env or {}) do parts[#parts + 1] = k .. "=" .. q(v) end
  parts[#parts + 1] = q(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  local cmd = table.concat(parts, " ") .. " 2>" .. q(TMP .. "/stderr")
  if stdin then cmd = cmd .. " <" .. q(stdin) else cmd = cmd .. " </dev/null" end
  local p = assert(io.popen(cmd, "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out, slurp(TMP .. "/stderr")
end

-- A port on loopback where nothing listens: bind one, note it, close it.
local function closed_port()
  local p = assert(io.popen("python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1]); s.close()'"))
  local port = p:read("l")
  p:close()
  return assert(tonumber(port))
end

describe("hangar CLI usage", function()
  -- The hub's client commands, then the others (client = false).
  local commands = {
    { "key" }, { "key", "create" }, { "key", "list" }, { "key", "revoke" },
    { "task" }, { "task", "deploy" }, { "task", "list" }, { "task", "show" },
    { "run" },
    { "runs" }, { "runs", "list" }, { "runs", "show" }, { "runs", "logs" }, { "runs", "cancel" },
    { "config" }, { "config", "set" }, { "config", "list" }, { "config", "delete" },
    { "dev", client = false }, { "agent", client = false }, { "hub", client = false },
    { "hub", "init", client = false }, { "hub", "serve", client = false },
    { "hub", "admin-key", client = false }, { "lua", client = false },
  }
  for _, c in ipairs(commands) do
    local name = table.concat(c, " ")
    it("answers 'hangar " .. name .. " --help' with usage, on stdout, exit 0", function()
      local args = { table.unpack(c) }
      args[#args + 1] = "--help"
      local code, out, err = hangar(args)
      assert.equal(0, code)
      assert.equal("", err)
      if c.client == false then
        -- (The hub's subcommands share one help, which shows each.)
        assert.truthy(out:find("^usage: hangar " .. c[1]), out)
        assert.truthy(out:find("hangar " .. name:gsub("^hub serve$", "hub [serve]"), 1, true), out)
        return
      end
      assert.truthy(out:find("usage: hangar " .. name, 1, true), out)
      if #c == 2 or c[1] == "run" then
        -- A command's help has an example, and says where the hub and key come from.
        assert.truthy(out:find("example", 1, true), out)
        assert.truthy(out:find("--token-file FILE", 1, true), out)
        assert.truthy(out:find("HANGAR_HUB_URL", 1, true), out)
      end
    end)
  end

  it("lists the CLI's commands in 'hangar --help'", function()
    local code, out = hangar({ "--help" })
    assert.equal(0, code)
    for _, c in ipairs({ "key", "task", "run", "runs", "config" }) do
      assert.truthy(out:find("\n  " .. c .. " ", 1, true), c)
    end
  end)

  it("exits 2 with a one-line reason for wrong usage", function()
    local cases = {
      { { "key", "create", "--name", "x" }, "--role is required" },
      { { "key", "create", "--role", "root", "--name", "x" }, "--role must be admin, user or agent, not 'root'" },
      { { "key", "frobnicate" }, "unknown subcommand 'frobnicate'" },
      { { "run" }, "which task?" },
      { { "run", "hello", "--param", "novalue" }, "'novalue' is not NAME=VALUE" },
      { { "run", "hello", "--param-json", "x={" }, "--param-json x: '{' is not valid JSON" },
      { { "run", "hello", "--cancel-on-interrupt" }, "only makes sense with --follow" },
      { { "run", "hello", "--colour" }, "unknown option '--colour'" },
      { { "runs", "list", "--status", "done" }, "--status 'done' is not a run state" },
      { { "runs", "list", "--limit", "-3" }, "--limit must be a positive number" },
      { { "runs", "show" }, "which run?" },
      { { "config", "set", "name" }, "no value" },
      { { "task", "deploy" }, "which files?" },
    }
    for _, case in ipairs(cases) do
      local code, out, err = hangar(case[1], { HANGAR_HUB_URL = "http://127.0.0.1:1", HANGAR_TOKEN = "t" })
      assert.equal(2, code, table.concat(case[1], " "))
      assert.equal("", out)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.truthy(err:find("^hangar "), err)
    end
  end)

  it("says how to give a hub URL when there is none", function()
    local code, out, err = hangar({ "task", "list" }, { HANGAR_TOKEN = "t" })
    assert.equal(2, code)
    assert.equal("", out)
    assert.truthy(err:find("no hub URL: pass --hub URL, set HANGAR_HUB_URL", 1, true), err)
  end)

  it("says how to give a key when there is none", function()
    local code, _, err = hangar({ "runs", "list" }, { HANGAR_HUB_URL = "http://127.0.0.1:1" })
    assert.equal(2, code)
    assert.truthy(err:find("no API key: pass --token-file FILE, set HANGAR_TOKEN", 1, true), err)
  end)

  it("names the hub it cannot reach, and why", function()
    local url = "http://127.0.0.1:" .. closed_port()
    local code, out, err = hangar({ "task", "list", "--hub", url }, { HANGAR_TOKEN = "hgr_secret_value" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("hangar: cannot reach hub at " .. url .. ": Connection refused\n", err)
  end)

  it("refuses to send a key over plain http to a host that is not loopback", function()
    local code, _, err = hangar({ "task", "list", "--hub", "http://hub.example.com" }, { HANGAR_TOKEN = "t" })
    assert.equal(2, code)
    assert.truthy(err:find("plain http", 1, true), err)
  end)

  it("reads the key from --token-file and warns when others can read that file", function()
    local key = TMP .. "/shared.key"
    local f = assert(io.open(key, "w"))
    f:write("hgr_abcdefghijkl_notarealsecretnotarealsecretnotarealsecre\n")
    f:close()
    os.execute("chmod 644 " .. q(key))
    local url = "http://127.0.0.1:" .. closed_port()
    local code, _, err = hangar({ "task", "list", "--hub", url, "--token-file", key })
    assert.equal(1, code)
    assert.truthy(err:find("warning: key file " .. key .. " can be read by other users", 1, true), err)
    assert.falsy(err:find("notarealsecret", 1, true), "the key was printed")
  end)

  it("shows a task file's YAML error as file:line:column and deploys nothing", function()
    local bad = TMP .. "/broken.task.yaml"
    local f = assert(io.open(bad, "w"))
    f:write("slug: broken\ncommand: [echo, hi\nname: x\n")
    f:close()
    -- The hub is unreachable: a YAML error must be found before anything is sent.
    local code, out, err = hangar({ "task", "deploy", SRC .. "/examples/tasks/hello.task.yaml", bad },
      { HANGAR_HUB_URL = "http://127.0.0.1:" .. closed_port(), HANGAR_TOKEN = "t" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.truthy(err:find("^hangar: " .. bad:gsub("%p", "%%%0") .. ":%d+:%d+: "), err)
  end)
end)
