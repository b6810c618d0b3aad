-- The agent's API key never reaches a run. A task that looks everywhere a process of the
-- agent's own user can look (its environment, every ancestor's environ and command line, the
-- agent's memory, every process on the host, its work directory) finds nothing, and so
-- cannot print it; what the kernel shows of the run's processes, the files of its work
-- directory and its log hold no trace of the key either. Asking for the key by name (pass_env,
-- an env:// reference) gets nothing.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"
local json = require "hangar.json"

local q, slurp, write = security.q, security.slurp, security.write

local hub, agent, drop

-- What a curious task does with the rights of the agent's user. It reports, per place, what
-- it could read and whether an API key was in it, and prints all it read (so a key it found
-- would be in its log for anyone to see).
local SNOOP = [==[
import json, os, re, sys
drop, agent = os.environ["PARAM_DROP"], int(os.environ["PARAM_AGENT"])
KEY = re.compile(rb"hgr_[a-z0-9]{12}_[A-Za-z0-9_-]{43}")
report, keys = [], []
def look(what, path, data=None):
    try:
        if data is None:
            with open(path, "rb") as f:
                data = f.read(4 << 20)
        found = [m.decode() for m in KEY.findall(data)]
        keys.extend(found)
        report.append({"what": what, "path": path, "read": True, "keys": len(found)})
        sys.stdout.buffer.write(data.replace(b"\0", b"\n")[:65536] + b"\n")
    except OSError as e:
        report.append({"what": what, "path": path, "read": False, "error": type(e).__name__})

look("own environment", None, b"\n".join(k.encode() + b"=" + v.encode() for k, v in os.environ.items()))
look("own environ", "/proc/self/environ")
pid = os.getppid()
while pid > 1:
    look("ancestor environ", "/proc/%d/environ" % pid)
    look("ancestor cmdline", "/proc/%d/cmdline" % pid)
    with open("/proc/%d/stat" % pid) as f:
        pid = int(f.read().rsplit(")", 1)[1].split()[1])
look("agent environ", "/proc/%d/environ" % agent)
# The agent's memory, region by region, as a debugger would read it.
try:
    with open("/proc/%d/maps" % agent) as maps, open("/proc/%d/mem" % agent, "rb", 0) as mem:
        seen = 0
        for line in maps:
            addr, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            seen += len(data)
            found = [m.decode() for m in KEY.findall(data)]
            keys.extend(found)
        report.append({"what": "agent memory", "path": "/proc/%d/mem" % agent, "read": seen > 0, "keys": len(keys)})
except OSError as e:
    report.append({"what": "agent memory", "path": "/proc/%d/mem" % agent, "read": False, "error": type(e).__name__})
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != os.getpid():
        look("process environ", "/proc/%s/environ" % p)
        look("process cmdline", "/proc/%s/cmdline" % p)
for root, dirs, files in os.walk(os.environ["HOME"]):
    for f in files:
        look("work dir file", os.path.join(root, f))
with open(os.path.join(drop, "report.json"), "w") as f:
    json.dump({"places": report, "keys": keys, "pid": os.getpid()}, f)
# What it found also stays in its work directory, as a careless task's files would.
with open(os.path.join(os.environ["HOME"], "found.json"), "w") as f:
    json.dump({"places": report, "env": dict(os.environ)}, f)
open(os.path.join(drop, "ready"), "w").close()
while not os.path.exists(os.path.join(drop, "go")):
    import time; time.sleep(0.05)
print("snoop done")
]==]

-- Why these tests cannot run on this machine (nil: they can).
local skip = agenttest.cannot_run_as(65534)

setup(function()
  if skip then
    return
  end
  hub = hubtest.start { name = "sec-key", args = { "--lease-ttl", "10", "--heartbeat-interval", "1", "--poll-wait", "5", "--log-level", "debug" } }
  -- The key comes from the environment and is scrubbed; the configuration even asks to pass
  -- that variable on to runs and to let tasks reference it.
  agent = security.agent(hub, {
    pass_env = { "HANGAR_AGENT_KEY", "LANG" },
    secret_env = { "HANGAR_AGENT_KEY" },
  })
  drop = security.shared_dir("sec-key-drop")
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, drop)
end)

-- Every process below pid (its children, theirs, ...).
local function descendants(pid)
  local parent = {}
  local p = assert(io.popen("ls /proc"))
  for name in p:lines() do
    local stat = name:match("^%d+$") and slurp("/proc/" .. name .. "/stat")
    local ppid = stat and stat:match("%) %a (%d+)")
    if ppid then
      parent[tonumber(name)] = tonumber(ppid)
    end
  end
  p:close()
  local out = {}
  for child in pairs(parent) do
    local up = parent[child]
    while up and up ~= pid and up > 1 do
      up = parent[up]
    end
    if up == pid then
      out[#out + 1] = child
    end
  end
  return out
end

describe("the agent's API key", function()
  it("is nowhere a run of the agent's user can look, nor in what the run shows or prints", function()
    if skip then
      return pending(skip)
    end
    local secret = agent.key:sub(18)
    local slug = agenttest.task(hub, {
      command = { "/usr/bin/python3", "-c", SNOOP },
      parameters = json.array {
        { slug = "drop", type = "string", required = true },
        { slug = "agent", type = "integer", required = true },
      },
    })
    local id = agenttest.run(hub, slug, { drop = drop, agent = agent.pid })
    agenttest.wait_file(drop .. "/ready", 30000)

    -- While it runs: what the kernel shows of every process the agent started.
    local kids = descendants(agent.pid)
    assert.truthy(#kids >= 1, "the run's process was not found below the agent")
    for _, pid in ipairs(kids) do
      for _, what in ipairs({ "environ", "cmdline" }) do
        local data = slurp("/proc/" .. pid .. "/" .. what) or ""
        assert.falsy(data:find(secret, 1, true), "the key is in /proc/" .. pid .. "/" .. what)
        assert.falsy(data:find("HANGAR_AGENT_KEY", 1, true), "/proc/" .. pid .. "/" .. what .. " names the key's variable")
      end
    end
    -- The agent's own environment no longer holds it either (read as root, or as its user).
    local environ = slurp("/proc/" .. agent.pid .. "/environ")
    if environ then
      assert.falsy(environ:find(secret, 1, true), "the key is still in the agent's environ")
    end
    -- Nothing in its work directory.
    local workdir = agent.state_dir .. "/work/" .. id
    assert.truthy(security.count_files({ workdir }) >= 1, "nothing in the run's work directory to search")
    assert.same({}, security.scan({ workdir }, secret))

    agenttest.write(drop .. "/go", "")
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("succeeded", doc.status, doc.error)

    local report = json.decode(assert(slurp(drop .. "/report.json")))
    local places = {}
    for _, p in ipairs(report.places) do
      places[p.what] = places[p.what] or {}
      table.insert(places[p.what], p)
    end
    -- It did look: its own environment, its ancestors (the agent among them), other processes.
    assert.truthy(places["own environ"][1].read)
    assert.truthy(#(places["ancestor cmdline"] or {}) >= 1)
    assert.truthy(#(places["process cmdline"] or {}) >= 2)
    -- And found no key anywhere: not in its environment, not in the agent's environment or
    -- command line, not in the agent's memory (which it may not even open).
    assert.same({}, report.keys)
    local mem = places["agent memory"][1]
    assert.is_false(mem.read, "a run could read the agent's memory: " .. json.encode(mem))
    assert.is_false(places["agent environ"][1].read, "a run could read the agent's environ")
    -- The run's log (everything it printed) has no key.
    local log = agenttest.log_text(hub, id)
    assert.truthy(log:find("snoop done", 1, true), log:sub(-2000))
    assert.falsy(log:find(secret, 1, true))
    assert.falsy(log:find("HANGAR_AGENT_KEY=", 1, true))
  end)

  it("is not handed to a task that asks for it through an env:// reference", function()
    if skip then
      return pending(skip)
    end
    local slug = agenttest.sh_task(hub, 'echo "got $STOLEN"', { env = { STOLEN = { ref = "env://HANGAR_AGENT_KEY" } } })
    local id = agenttest.run(hub, slug)
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("failed", doc.status)
    assert.truthy(doc.error:find("STOLEN", 1, true), doc.error)
    assert.falsy(doc.error:find(agent.key:sub(18), 1, true))
    local log = agenttest.log_text(hub, id)
    assert.falsy(log:find("got", 1, true), log)
    assert.falsy(log:find(agent.key:sub(18), 1, true))
  end)

  it("nor the agent's files are handed to a task through file:// references, unless listed", function()
    if skip then
      return pending(skip)
    end
    -- An agent whose key is in a file, as most are.
    local dir = security.shared_dir("sec-key-files")
    write(dir .. "/db_password", "listed-file-secret\n", "644")
    local a = agenttest.start(hub, { labels = { files = "yes" }, extra = ("secret_files = { %q }"):format(dir .. "/db_password") })
    local here = { files = "yes" }
    local ok, err = pcall(function()
      for _, path in ipairs({ a.dir .. "/agent.key", a.state_dir .. "/session.key", a.config_path, "/etc/passwd",
                              dir .. "/db_password/../db_password", dir .. "/./db_password" }) do
        local slug = agenttest.sh_task(hub, 'echo "got $STOLEN"', { env = { STOLEN = { ref = "file://" .. path } }, constraints = here })
        local id = agenttest.run(hub, slug)
        local doc = agenttest.wait_run(hub, id, 30000)
        assert.equal("failed", doc.status, path)
        assert.truthy(doc.error:find("STOLEN", 1, true), doc.error)
        assert.truthy(doc.error:find("secret_files", 1, true), doc.error)
        assert.falsy(agenttest.log_text(hub, id):find("got", 1, true))
      end
      -- A listed file is read.
      local slug = agenttest.sh_task(hub, '[ "$DB" = listed-file-secret ] && echo matched', { env = { DB = { ref = "file://" .. dir .. "/db_password" } }, constraints = here })
      local id = agenttest.run(hub, slug)
      local done = agenttest.wait_run(hub, id, 30000)
      assert.equal("succeeded", done.status, done.error)
      assert.truthy(agenttest.log_text(hub, id):find("matched", 1, true))
    end)
    a:cleanup()
    os.execute("rm -rf " .. q(dir))
    assert(ok, err)
  end)

  it("never reaches the hub's store or logs, nor the agent's state directory or log", function()
    if skip then
      return pending(skip)
    end
    local secret = agent.key:sub(18)
    local files = security.count_files({ hub.dir, agent.dir })
    assert.truthy(files >= 4, "nothing to scan")
    assert.same({}, security.scan({ hub.dir, agent.dir }, secret))
  end)
end)
