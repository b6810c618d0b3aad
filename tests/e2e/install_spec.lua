-- An installed Hangar uses its own files: `cmake --install --prefix P` puts the executable, the
-- modules and the Lua library, plugins and examples under P, and the executable finds them
-- relative to itself, also once the tree is moved elsewhere, not in the prefix the build was
-- configured for nor in the source tree.
local testutil = require "testutil"

local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, write = testutil.q, testutil.write
local BUILD = BIN:match("^(.*)/[^/]+$")

local function run(argv)
  return testutil.run(argv, { PATH = "/usr/bin:/bin" })
end

describe("an installed tree", function()
  local dir

  before_each(function()
    dir = testutil.tmpdir("install")
  end)

  after_each(function()
    testutil.remove(dir)
  end)

  it("finds its own Lua library, plugins and modules under the prefix it was installed or moved to", function()
    if not testutil.slurp(BUILD .. "/CMakeCache.txt") then
      pending("HANGAR_BIN is not in a CMake build tree (" .. BUILD .. "): nothing to install")
      return
    end
    local code, out, err = run { "cmake", "--install", BUILD, "--prefix", dir .. "/first" }
    assert.equal(0, code, out .. err)
    -- Moved after the install: nothing may point at the old place.
    assert(os.execute("mv " .. q(dir .. "/first") .. " " .. q(dir .. "/moved")))
    local root = dir .. "/moved"
    local hangar = root .. "/bin/hangar"
    for _, path in ipairs({ "/share/hangar/lua/hangar/config.lua", "/share/hangar/plugins", "/share/hangar/examples/hub.lua" }) do
      assert.truthy(os.execute("test -e " .. q(root .. path)), path .. " is not installed")
    end

    -- A module only the installed library has: found only if the installed tree is used.
    write(root .. "/share/hangar/lua/hangar/install_probe.lua", 'return "from the installed tree"\n')
    write(dir .. "/probe.lua", 'print(require("hangar.install_probe"))\n')
    code, out, err = run { hangar, "lua", dir .. "/probe.lua" }
    assert.equal(0, code, err)
    local value, file = out:match("^(.-)\t(.-)\n$")
    assert.equal("from the installed tree", value, out)
    assert.equal(root .. "/bin/../share/hangar/lua/hangar/install_probe.lua", file)

    -- The hub's module, from lib/hangar beside bin/.
    code, out, err = run { hangar, "hub", "--help" }
    assert.equal(0, code, err)
    assert.truthy(out:find("usage: hangar hub", 1, true), out)
  end)
end)
