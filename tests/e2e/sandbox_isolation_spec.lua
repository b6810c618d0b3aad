-- The bundled sandbox plugin in a real agent: a sandboxed run writes only in its work directory
-- and its private /tmp (not /etc, /usr, the root, the agent's home or state directory, not even
-- as root through a remount), sees none of the agent's files, reaches no network unless the task
-- asks and the agent allows it, gets exactly its own environment (never on a command line), and
-- a cancel's polite signal reaches it.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local sink = require "hangar.sink"

local q, write = testutil.q, testutil.write
local hub, agent, listener, shared
local usable, why_not

-- A TCP listener on the host's loopback that counts the connections it accepts.
local function start_listener()
  local out = sink.buffer()
  local proc = assert(process.spawn {
    argv = { "python3", "-u", "-c", [[
import socket, sys, threading
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print("port=%d" % s.getsockname()[1], flush=True)
def serve():
    while True:
        c, _ = s.accept()
        print("accepted", flush=True)
        c.close()
threading.Thread(target=serve, daemon=True).start()
sys.stdin.read()
]] },
    env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" },
    stdout = out,
    stdin = true,
  })
  local port = hubtest.wait_for(function()
    return tonumber(out:contents():match("port=(%d+)"))
  end, 10000)
  assert(port, "the listener did not start: " .. out:contents())
  return {
    port = port,
    accepted = function()
      local n = 0
      for _ in out:contents():gmatch("accepted") do
        n = n + 1
      end
      return n
    end,
    stop = function()
      proc:close_stdin()
      proc:wait()
    end,
  }
end

local case = 0
-- Runs a sandboxed task (scheduler sandbox) and returns the run with its lines.
local function sandboxed(def, params, a)
  case = case + 1
  def.slug = def.slug or ("sandboxed-" .. case)
  def.scheduler = "sandbox"
  return (a or agent):run_task(def, params)
end

local function sh(script, extra)
  local def = { command = { "/bin/sh", "-c", script } }
  for k, v in pairs(extra or {}) do
    def[k] = v
  end
  return def
end

local function has(lines, text)
  for _, l in ipairs(lines) do
    if l == text then
      return true
    end
  end
  return false
end

setup(function()
  -- bubblewrap needs user namespaces (or root) and the right to mount a fresh /proc (refused
  -- inside some containers); without them there is nothing to test. The probe mounts what the
  -- sandbox plugin mounts.
  local p = io.popen("bwrap --ro-bind / / --proc /proc --dev /dev --tmpfs /tmp --unshare-all "
    .. "--die-with-parent /bin/true 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  usable = out:match("rc=0%s*$") ~= nil
  why_not = "bubblewrap cannot create a sandbox here: " .. out
  if not usable then
    return
  end
  listener = start_listener()
  shared = testutil.tmpdir("sandbox-shared")
  assert(os.execute("mkdir -p " .. q(shared .. "/private")))
  write(shared .. "/public.txt", "public\n")
  write(shared .. "/private/secret.txt", "private\n")
  write(shared .. "/key.txt", "hgr_not_for_runs\n")
  hub = hubtest.start { name = "hub-sandbox" }
  agent = agenttest.start(hub, {
    labels = { case = "sandbox" },
    env = { SANDBOX_AGENT_ONLY = "agent-environment-value" },
    extra = ([[
schedulers = { sandbox = {
  ro_binds = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", %q },
  hide = { %q, %q, %q },
} }
]]):format(shared, shared .. "/private", shared .. "/key.txt", shared .. "/no-such-path"),
  })
end)

teardown(function()
  if agent then
    agent:cleanup()
  end
  if hub then
    hub:cleanup()
  end
  if listener then
    listener:stop()
  end
  if shared then
    os.execute("rm -rf " .. q(shared))
  end
end)

describe("a sandboxed run", function()
  it("writes in its work directory and /tmp, and nowhere else", function()
    if not usable then
      return pending(why_not)
    end
    local home = os.getenv("HOME") or "/root"
    -- Refused outright; the agent's own directories may lie below /tmp, where a write lands
    -- in the run's private /tmp: for those what matters is that the host never sees it.
    local denied = {
      "/etc/hangar-sandbox-escape", "/usr/hangar-sandbox-escape", "/hangar-sandbox-escape",
      shared .. "/hangar-sandbox-escape",
    }
    local targets = { agent.state_dir .. "/hangar-sandbox-escape", agent.dir .. "/hangar-sandbox-escape" }
    local home_target = home .. "/hangar-sandbox-escape"
    if home:match("^/tmp/") or home:match("^/var/tmp/") then
      targets[#targets + 1] = home_target
    else
      denied[#denied + 1] = home_target
    end
    for _, t in ipairs(denied) do
      targets[#targets + 1] = t
    end
    local script = [[
try() { if (echo x > "$1") 2>/dev/null; then echo "wrote $1"; else echo "denied $1"; fi; }
for p in "$@"; do try "$p"; done
try "$HOME/in-workdir"; try "$PWD/in-cwd"; try /tmp/in-tmp; try /var/tmp/in-vartmp
[ "$HOME" = "$PWD" ] && echo "home is the work directory"
# As root, a remount could make a read-only bind writable again; no capability, no remount.
if mount -o bind,remount,rw /etc 2>/dev/null && (echo x > /etc/hangar-sandbox-escape) 2>/dev/null; then
  echo "remounted /etc"; else echo "no remount"; fi
]]
    local def = { command = { "/bin/sh", "-c", script, "sh" } }
    for _, t in ipairs(targets) do
      def.command[#def.command + 1] = t
    end
    local run = sandboxed(def)
    assert.equal("succeeded", run.status, run.error)
    for _, t in ipairs(denied) do
      assert.truthy(has(run.lines, "denied " .. t), t .. ":\n" .. table.concat(run.lines, "\n"))
    end
    for _, t in ipairs(targets) do
      assert.is_nil(io.open(t), t .. " exists on the host")
    end
    for _, l in ipairs({ "in-workdir", "in-cwd", "/tmp/in-tmp", "/var/tmp/in-vartmp" }) do
      local found = false
      for _, line in ipairs(run.lines) do
        found = found or (line:match("^wrote ") and line:find(l, 1, true))
      end
      assert.truthy(found, l .. ":\n" .. table.concat(run.lines, "\n"))
    end
    assert.truthy(has(run.lines, "home is the work directory"), table.concat(run.lines, "\n"))
    assert.truthy(has(run.lines, "no remount"), table.concat(run.lines, "\n"))
  end)

  it("has a private /tmp: what it leaves there is gone for the next run and never on the host", function()
    if not usable then
      return pending(why_not)
    end
    local marker = "/tmp/hangar-sandbox-" .. case
    local first = sandboxed(sh("echo private > " .. marker .. " && echo made"))
    assert.same({ "made" }, first.lines)
    assert.is_nil(io.open(marker))
    local second = sandboxed(sh("cat " .. marker .. " 2>/dev/null || echo absent"))
    assert.same({ "absent" }, second.lines)
  end)

  it("sees none of the agent's files; hidden directories are empty, hidden files unreadable", function()
    if not usable then
      return pending(why_not)
    end
    local run = sandboxed(sh(([[
ls %s >/dev/null 2>&1 && echo "sees the agent's key" || echo "no agent key"
ls %s >/dev/null 2>&1 && echo "sees the state directory" || echo "no state directory"
cat %s
ls -A %s | wc -l
cat %s 2>/dev/null || echo "key unreadable"
]]):format(q(agent.key_path), q(agent.state_dir .. "/spool"), q(shared .. "/public.txt"),
      q(shared .. "/private"), q(shared .. "/key.txt"))))
    assert.equal("succeeded", run.status, run.error)
    assert.same({ "no agent key", "no state directory", "public", "0", "key unreadable" }, run.lines)
  end)

  it("reaches no network, not even the host's loopback", function()
    if not usable then
      return pending(why_not)
    end
    local before = listener.accepted()
    local run = sandboxed(sh(([[
python3 -c 'import socket; socket.create_connection(("127.0.0.1", %d), 3)' 2>/dev/null && echo connected || echo unreachable
]]):format(listener.port)))
    assert.same({ "unreachable" }, run.lines)
    assert.equal(before, listener.accepted())
  end)

  it("reaches the network when its task asks (resources.network) and the agent allows it", function()
    if not usable then
      return pending(why_not)
    end
    local before = listener.accepted()
    local run = sandboxed(sh(([[
python3 -c 'import socket; socket.create_connection(("127.0.0.1", %d), 3)' && echo connected || echo unreachable
]]):format(listener.port), { resources = { network = true } }))
    assert.same({ "connected" }, run.lines)
    assert.equal(before + 1, listener.accepted())
  end)

  it("gets exactly its environment, which no command line on the host shows", function()
    if not usable then
      return pending(why_not)
    end
    local value = "sandbox-env-" .. os.time() .. "-" .. math.random(1 << 30)
    local slug = "sandbox-env"
    agent:deploy { slug = slug, scheduler = "sandbox", env = { SANDBOX_TASK_VALUE = value },
                   command = { "/bin/sh", "-c", "env | cut -d= -f1 | sort; sleep 2" } }
    local id = agent:start_run(slug)
    -- While the run goes, no process's command line holds the value.
    local seen_running, in_cmdline = false, false
    hubtest.wait_for(function()
      local p = io.popen("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '")
      local all = p:read("a")
      p:close()
      if all:find("bwrap", 1, true) and all:find("--unshare-all", 1, true) then
        seen_running = true
      end
      in_cmdline = in_cmdline or all:find(value, 1, true) ~= nil
      return agent:get_run(id).status ~= "running" and seen_running
    end, 20000, 100)
    local run = agent:wait_run(id)
    assert.equal("succeeded", run.status, run.error)
    assert.truthy(seen_running, "never saw the sandbox running")
    assert.is_false(in_cmdline)
    local names = agent:lines(id)
    assert.truthy(has(names, "SANDBOX_TASK_VALUE"), table.concat(names, " "))
    assert.truthy(has(names, "HANGAR_RUN_ID"), table.concat(names, " "))
    assert.is_false(has(names, "SANDBOX_AGENT_ONLY"), table.concat(names, " "))
  end)

  it("gets the polite SIGTERM of a cancel before anything is forced", function()
    if not usable then
      return pending(why_not)
    end
    local slug = "sandbox-cancel"
    agent:deploy { slug = slug, scheduler = "sandbox", command = { "/bin/sh", "-c",
      'trap "echo got SIGTERM; exit 0" TERM; echo started; while :; do sleep 0.1; done' } }
    local id = agent:start_run(slug)
    assert(hubtest.wait_for(function()
      return has(agent:lines(id), "started")
    end, 20000), "the run never started")
    local res = hub:post("/v1/runs/" .. id .. "/cancel", {})
    assert.equal(202, res.status, res.body)
    local run = agent:wait_run(id)
    assert.equal("cancelled", run.status)
    -- (The shell may also report its sleep's death: "Terminated".)
    local lines = agent:lines(id)
    assert.equal("started", lines[1])
    assert.truthy(has(lines, "got SIGTERM"), table.concat(lines, "\n"))
  end)
end)

describe("a sandbox that never allows the network", function()
  it("fails a run whose task asks for it, saying why", function()
    if not usable then
      return pending(why_not)
    end
    local strict = agenttest.start(hub, {
      name = "strict",
      labels = { case = "sandbox-strict" },
      extra = 'schedulers = { sandbox = { network = "off" } }',
    })
    local ok, err = pcall(function()
      local run = sandboxed(sh("echo should not run", { resources = { network = true } }), nil, strict)
      assert.equal("failed", run.status)
      assert.truthy(run.error:find("never allows", 1, true), run.error)
      assert.same({}, run.lines)
    end)
    strict:cleanup()
    assert(ok, err)
  end)
end)

describe("the sandbox settings", function()
  it("are checked at start, naming the key", function()
    if not usable then
      return pending(why_not)
    end
    local bad = agenttest.start(hub, {
      name = "badsettings",
      labels = { case = "sandbox-bad" },
      extra = 'schedulers = { sandbox = { network = "sometimes", ro_binds = { "usr" } } }',
      wait = false,
    })
    local exited = hubtest.wait_for(function()
      return not bad:alive()
    end, 15000)
    local log = bad:log()
    bad:cleanup()
    assert.truthy(exited, log)
    assert.truthy(log:find("network", 1, true), log)
    assert.truthy(log:find("must be an absolute path", 1, true), log)
  end)
end)
