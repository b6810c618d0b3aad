-- The deployment examples, checked without systemd running them or a docker engine:
--
-- examples/systemd/hangar-agent.service: parsed; the hardening it promises is there; its
-- ExecStart and reload check, paths substituted and the credential and state directory
-- specifiers filled in, are valid `hangar agent` invocations (--check against the example
-- configuration); every directive is one systemd knows, by `systemd-analyze verify` when it
-- is installed, and always by a list of the directives of systemd 252 (Debian 12) this unit
-- may use, taken from systemd.unit(5), systemd.service(5), systemd.exec(5) and systemd.kill(5):
-- a new directive in the unit must be added to KNOWN below after checking it there.
--
-- examples/docker/Dockerfile: two stages on Debian bookworm; the sources it copies exist; the
-- final stage installs no build tools, only Debian packages that exist (`apt-cache show`) and
-- at least those providing every library the hangar binary and its modules link; its
-- ENTRYPOINT and CMD, with the environment it sets, are a valid `hangar agent` invocation
-- (--check).
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local json = require "hangar.json"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local q, slurp, write = agenttest.q, agenttest.slurp, agenttest.write

local dir

setup(function()
  dir = agenttest.tmpdir("examples-deploy")
end)

teardown(function()
  if dir then os.execute("rm -rf " .. q(dir)) end
end)

local function has(text, s)
  return text:find(s, 1, true) ~= nil
end

-- Runs argv with exactly env; returns exit code, stdout .. stderr.
local function run(argv, env)
  local code, out, err = testutil.run(argv, env)
  return code, out .. err
end

local function sh(cmd)
  local p = assert(io.popen("{ " .. cmd .. "; } 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local function words(s)
  local out = {}
  for w in s:gmatch("%S+") do out[#out + 1] = w end
  return out
end

-- A key file as `hangar key create` would have written it.
local function key_file(path)
  return write(path, "hgr_abcdefghij12_" .. string.rep("A", 43) .. "\n", "600")
end

describe("examples/systemd/hangar-agent.service", function()
  local path = SRC .. "/examples/systemd/hangar-agent.service"
  local unit -- { {section, key, value, line}, ... }

  -- systemd's unit syntax: [Section] lines, Key=Value lines, # and ; comments, keys that may
  -- repeat. (No continuation lines are used in this unit.)
  local function parse(text)
    local out, section, n = {}, nil, 0
    for line in (text .. "\n"):gmatch("(.-)\n") do
      n = n + 1
      if line:match("^%s*$") or line:match("^%s*[#;]") then
        -- nothing
      elseif line:match("^%[.+%]$") then
        section = line:sub(2, -2)
      else
        assert(not line:match("\\$"), ("line %d: continuation lines are not expected"):format(n))
        local k, v = line:match("^([%w]+)=(.*)$")
        assert(k and section, ("line %d is neither a section nor Key=Value: %s"):format(n, line))
        out[#out + 1] = { section = section, key = k, value = v, line = n }
      end
    end
    return out
  end

  local function values(section, key)
    local out = {}
    for _, e in ipairs(unit) do
      if e.section == section and e.key == key then out[#out + 1] = e.value end
    end
    return out
  end

  local function value(section, key)
    local v = values(section, key)
    return v[#v]
  end

  -- Directives of systemd 252 this unit may use (see the file's header).
  local KNOWN = {
    Unit = { Description = true, Documentation = true, After = true, Wants = true, Requires = true,
             StartLimitIntervalSec = true, StartLimitBurst = true },
    Service = {
      -- systemd.service(5)
      Type = true, ExecStart = true, ExecStartPre = true, ExecReload = true, Restart = true, RestartSec = true,
      RestartPreventExitStatus = true, TimeoutStopSec = true,
      -- systemd.kill(5)
      KillMode = true, KillSignal = true,
      -- systemd.exec(5)
      User = true, Group = true, Environment = true, LoadCredential = true, StateDirectory = true,
      StateDirectoryMode = true, ReadWritePaths = true, NoNewPrivileges = true, ProtectSystem = true, ProtectHome = true,
      PrivateTmp = true, PrivateDevices = true, ProtectKernelTunables = true, ProtectKernelModules = true,
      ProtectKernelLogs = true, ProtectControlGroups = true, ProtectClock = true, ProtectHostname = true,
      ProtectProc = true, RestrictSUIDSGID = true, RestrictRealtime = true, RestrictAddressFamilies = true,
      LockPersonality = true, SystemCallArchitectures = true, CapabilityBoundingSet = true,
      AmbientCapabilities = true, UMask = true, LimitNOFILE = true,
    },
    Install = { WantedBy = true },
  }
  local BOOLEAN = { NoNewPrivileges = true, PrivateTmp = true, PrivateDevices = true, ProtectKernelTunables = true,
                    ProtectKernelModules = true, ProtectKernelLogs = true, ProtectControlGroups = true,
                    ProtectClock = true, ProtectHostname = true, RestrictSUIDSGID = true, RestrictRealtime = true,
                    LockPersonality = true }

  setup(function()
    unit = parse(assert(slurp(path)))
  end)

  it("uses only directives systemd 252 knows, with valid booleans", function()
    for _, e in ipairs(unit) do
      assert.truthy(KNOWN[e.section], ("line %d: unknown section [%s]"):format(e.line, e.section))
      assert.truthy(KNOWN[e.section][e.key], ("line %d: %s= is not in the checked list for [%s]"):format(e.line, e.key, e.section))
      if BOOLEAN[e.key] then
        assert.truthy(e.value == "yes" or e.value == "no", ("line %d: %s=%s is not yes or no"):format(e.line, e.key, e.value))
      end
    end
  end)

  it("passes systemd-analyze verify, when systemd is installed", function()
    if not sh("command -v systemd-analyze >/dev/null") then
      pending("systemd-analyze is not installed; the directive list above is the check")
      return
    end
    -- The binary must exist for verify: the one under test stands in for /usr/local/bin/hangar.
    local copy = write(dir .. "/hangar-agent.service", (assert(slurp(path)):gsub("/usr/local/bin/hangar", BIN)))
    local ok, out = sh("systemd-analyze verify " .. q(copy))
    assert.truthy(ok, out)
    -- verify only warns about unknown keys and bad values; any warning about this file fails.
    assert.falsy(has(out, copy), out)
  end)

  it("is hardened: no new privileges, read-only system, own state directory, key as a credential, drain on stop", function()
    assert.equal("yes", value("Service", "NoNewPrivileges"))
    assert.equal("strict", value("Service", "ProtectSystem"))
    assert.equal("yes", value("Service", "ProtectHome"))
    assert.equal("hangar-agent", value("Service", "StateDirectory"))
    assert.equal("", value("Service", "CapabilityBoundingSet"))
    assert.equal("agent.key:/etc/hangar/agent.key", value("Service", "LoadCredential"))
    assert.truthy(value("Service", "User") and value("Service", "User") ~= "root")
    -- SIGTERM to the agent alone: the runs it is draining must not get it too.
    assert.equal("mixed", value("Service", "KillMode"))
    assert.same({ "2", "3" }, words(value("Service", "RestartPreventExitStatus")))
  end)

  -- The unit's environment with the specifiers filled in: %d the credentials directory
  -- (holding the LoadCredential= files), %S the state directories' root.
  local function unit_env()
    local creds, state = dir .. "/credentials", dir .. "/state"
    assert(os.execute("mkdir -p " .. q(creds) .. " " .. q(state)))
    for _, lc in ipairs(values("Service", "LoadCredential")) do
      key_file(creds .. "/" .. assert(lc:match("^([^:]+):")))
    end
    local env = { PATH = "/usr/bin:/bin" }
    for _, assignment in ipairs(values("Service", "Environment")) do
      local k, v = assignment:match("^([%w_]+)=(.*)$")
      assert(k, "Environment=" .. assignment)
      env[k] = v:gsub("%%d", creds):gsub("%%S", state)
    end
    return env
  end

  local function check_command(line, env)
    local argv = {}
    for _, w in ipairs(words(line)) do
      if w == "/usr/local/bin/hangar" then
        w = BIN
      elseif w == "/etc/hangar/agent.lua" then
        w = SRC .. "/examples/agent.lua"
      end
      argv[#argv + 1] = w
    end
    assert.equal(BIN, argv[1], line)
    assert.equal("agent", argv[2], line)
    if argv[#argv] ~= "--check" then argv[#argv + 1] = "--check" end
    return run(argv, env)
  end

  it("starts a valid agent: ExecStart with --check, and the reload's own check", function()
    local env = unit_env()
    assert.truthy(has(env.HANGAR_HUB__KEY_FILE, dir .. "/credentials/"), env.HANGAR_HUB__KEY_FILE)
    local code, out = check_command(value("Service", "ExecStart"), env)
    assert.equal(0, code, out)
    local reloads = values("Service", "ExecReload")
    assert.equal(2, #reloads)
    assert.truthy(reloads[1]:match("%-%-check$"), reloads[1])
    code, out = check_command(reloads[1], env)
    assert.equal(0, code, out)
    assert.equal("/bin/kill -HUP $MAINPID", reloads[2])
    -- Without the credential the same command line fails, naming the key file.
    env.HANGAR_HUB__KEY_FILE = dir .. "/credentials/missing.key"
    code, out = check_command(value("Service", "ExecStart"), env)
    assert.are_not.equal(0, code)
    assert.truthy(has(out, "missing.key"), out)
  end)
end)

describe("examples/docker/Dockerfile", function()
  local path = SRC .. "/examples/docker/Dockerfile"
  local stages -- { { from = "...", as = "...", instructions = { {op, args}, ... } }, ... }

  -- Dockerfile syntax: comments, `\` continuations, INSTRUCTION args; FROM opens a stage.
  local function parse(text)
    local out, logical = {}, {}
    local current = ""
    for line in (text .. "\n"):gmatch("(.-)\n") do
      if not line:match("^%s*#") then
        if line:match("\\%s*$") then
          current = current .. line:gsub("\\%s*$", "") .. " "
        else
          current = current .. line
          if not current:match("^%s*$") then logical[#logical + 1] = current end
          current = ""
        end
      end
    end
    for _, l in ipairs(logical) do
      local op, args = l:match("^%s*(%u+)%s+(.*)$")
      assert(op, "not an instruction: " .. l)
      if op == "FROM" then
        local image, as = args:match("^(%S+)%s+AS%s+(%S+)")
        out[#out + 1] = { from = image or args:match("^(%S+)"), as = as, instructions = {} }
      else
        assert(#out > 0, op .. " before FROM")
        table.insert(out[#out].instructions, { op = op, args = args })
      end
    end
    return out
  end

  local function instructions(stage, op)
    local list = {}
    for _, i in ipairs(stage.instructions) do
      if i.op == op then list[#list + 1] = i.args end
    end
    return list
  end

  -- The packages an `apt-get install` in RUN lines installs (options and shell syntax skipped).
  local function installed(stage)
    local pkgs = {}
    for _, r in ipairs(instructions(stage, "RUN")) do
      for cmd in (r .. "&&"):gmatch("(.-)&&") do
        local list = cmd:match("apt%-get%s+install%s+(.*)$")
        if list then
          for _, w in ipairs(words(list)) do
            if not w:match("^%-") then pkgs[#pkgs + 1] = w end
          end
        end
      end
    end
    return pkgs
  end

  setup(function()
    stages = parse(assert(slurp(path)))
  end)

  it("builds in one Debian bookworm stage and ships another, with no build tools in it", function()
    assert.equal(2, #stages)
    for _, s in ipairs(stages) do
      assert.truthy(s.from:match("^debian:bookworm"), s.from)
    end
    assert.equal("build", stages[1].as)
    local final = stages[2]
    for _, p in ipairs(installed(final)) do
      assert.falsy(p:match("%-dev$") or p == "build-essential" or p == "cmake" or p == "pkg-config" or p == "gcc",
        p .. " is a build tool in the final stage")
    end
    -- The final stage takes the built tree from the first and nothing else of it.
    local copies = instructions(final, "COPY")
    assert.truthy(has(table.concat(copies, "\n"), "--from=build "), table.concat(copies, "\n"))
    assert.same({ "hangar-agent" }, instructions(final, "USER"))
  end)

  it("copies sources that exist, and enough of them to configure the tree", function()
    local sources = {}
    for _, c in ipairs(instructions(stages[1], "COPY")) do
      local w = words(c)
      for i = 1, #w - 1 do
        assert.truthy(slurp(SRC .. "/" .. w[i]) or sh("test -d " .. q(SRC .. "/" .. w[i])), w[i] .. " does not exist")
        sources[w[i]] = true
      end
    end
    -- Whatever the top CMakeLists.txt adds unconditionally must be copied.
    for sub in assert(slurp(SRC .. "/CMakeLists.txt")):gmatch("\nadd_subdirectory%((%w+)%)") do
      assert.truthy(sources[sub], sub .. "/ is needed to configure and is not copied")
    end
    for _, d in ipairs({ "CMakeLists.txt", "src", "lua", "include" }) do
      assert.truthy(sources[d], d .. " is not copied")
    end
  end)

  it("installs Debian packages that exist, covering every library hangar and its modules link", function()
    local pkgs = installed(stages[2])
    assert.truthy(#pkgs > 0)
    local have_lists = sh("ls /var/lib/apt/lists/ | grep -q _Packages")
    local set, args = {}, {}
    for _, p in ipairs(pkgs) do
      set[p] = true
      args[#args + 1] = q(p)
    end
    -- One query for all (each one reads apt's whole cache): it fails if any is unknown.
    local ok, out = sh("apt-cache show --no-all-versions " .. table.concat(args, " "))
    if not ok and not have_lists then
      pending("apt has no package lists here (run apt-get update)")
      return
    end
    for _, p in ipairs(pkgs) do
      assert.truthy(has(out, "\nPackage: " .. p .. "\n") or out:sub(1, #p + 10) == "Package: " .. p .. "\n",
        p .. " is not a Debian package:\n" .. out:sub(1, 2000))
    end
    if not sh("command -v readelf >/dev/null && command -v dpkg >/dev/null") then
      pending("readelf or dpkg missing: cannot map the binary's libraries to packages")
      return
    end
    -- The executable and the modules installed with it (the hub's, the health listener's).
    local bin_dir = BIN:match("^(.*)/[^/]*$") or "."
    local _, dyn = sh("readelf -d " .. q(BIN) .. " " .. q(bin_dir) .. "/hangar-*.so")
    local _, ldd = sh("ldd " .. q(BIN) .. " " .. q(bin_dir) .. "/hangar-*.so")
    assert.truthy(has(dyn, "libsqlite3"), "the hub's module is not beside " .. BIN)
    local checked = 0
    for lib in dyn:gmatch("Shared library: %[([^%]]+)%]") do
      local pat = lib:gsub("%p", "%%%0")
      -- The dynamic loader (needed by a module with thread-local data) is listed by its path.
      local file = ldd:match("\n%s*" .. pat .. " => (%S+)") or ldd:match("\n%s*(/%S*/" .. pat .. ") %(")
      assert.truthy(file, lib .. " not resolved:\n" .. ldd)
      -- A merged /usr: dpkg may know the file under /usr or without it.
      local pkg
      for _, candidate in ipairs({ file, "/usr" .. file, (file:gsub("^/usr", "")) }) do
        local found, owner = sh("dpkg -S " .. q(candidate) .. " 2>/dev/null")
        pkg = pkg or (found and owner:match("^([^:,%s]+)"))
      end
      assert.truthy(pkg, lib .. ": no package owns " .. file)
      -- libc6 is in every Debian image; a sanitizer build's runtimes are no part of the image.
      if pkg ~= "libc6" and not lib:match("^libasan") and not lib:match("^libubsan") and not pkg:match("^libgcc") then
        assert.truthy(set[pkg], ("%s comes from %s, which the final stage does not install"):format(lib, pkg))
        checked = checked + 1
      end
    end
    -- Lua, libcurl, cJSON, libuv, libyaml, libh2o, SQLite and OpenSSL at least.
    assert.truthy(checked >= 8, "only " .. checked .. " libraries checked")
  end)

  it("starts a valid agent: ENTRYPOINT and CMD with the image's environment pass --check", function()
    local final = stages[2]
    local entry = json.decode(instructions(final, "ENTRYPOINT")[1])
    local cmd = json.decode(instructions(final, "CMD")[1])
    -- tini as PID 1, then the agent.
    assert.equal("/usr/bin/tini", entry[1])
    assert.equal("--", entry[2])
    local argv = {}
    for i = 3, #entry do argv[#argv + 1] = entry[i] end
    for _, a in ipairs(cmd) do argv[#argv + 1] = a end
    assert.same({ "/usr/local/bin/hangar", "agent", "--config", "/etc/hangar/agent.lua" }, argv)
    -- The configuration it names is the example the image copies there.
    local copied
    for _, c in ipairs(instructions(final, "COPY")) do
      local w = words(c)
      if w[#w] == "/etc/hangar/agent.lua" then copied = w[1] end
    end
    assert.equal("examples/agent.lua", copied)
    -- ENV lines (NAME=value pairs), with the key and state paths moved into our directory.
    local env = { PATH = "/usr/bin:/bin" }
    for _, e in ipairs(instructions(final, "ENV")) do
      for k, v in e:gmatch("([%w_]+)=(%S+)") do env[k] = v end
    end
    assert.equal("/run/secrets/hangar-agent-key", env.HANGAR_HUB__KEY_FILE)
    env.HANGAR_HUB__KEY_FILE = key_file(dir .. "/hangar-agent-key")
    env.HANGAR_STATE_DIR = dir .. "/docker-state"
    argv[1] = BIN
    argv[4] = SRC .. "/" .. copied
    argv[#argv + 1] = "--check"
    local code, out = run(argv, env)
    assert.equal(0, code, out)
    -- And with --env prod, as the header's `docker run` example passes.
    argv[#argv] = "--env"
    argv[#argv + 1] = "prod"
    argv[#argv + 1] = "--check"
    code, out = run(argv, env)
    assert.equal(0, code, out)
  end)
end)
