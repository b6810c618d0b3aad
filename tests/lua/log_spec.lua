-- hangar.log: Lua code writes structured lines to the process's own log.
local json = require "hangar.json"

local function run_script(code)
  local bin = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN must name the hangar binary")
  local dir = os.getenv("HANGAR_TEST_TMP") or "/tmp"
  os.execute("mkdir -p '" .. dir .. "'")
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(code)
  f:close()
  local p = assert(io.popen("HANGAR_LOG_LEVEL=debug '" .. bin .. "' lua '" .. path .. "' 2>&1"))
  local out = p:read("a")
  p:close()
  os.remove(path)
  local lines = {}
  for line in out:gmatch("[^\n]+") do
    lines[#lines + 1] = assert(json.decode(line), "not a JSON line: " .. line)
  end
  return lines
end

describe("hangar.log", function()
  it("writes one JSON object a line with level, message and fields", function()
    local lines = run_script([[
      hangar.log.info("run started", { run = "r-1", attempt = 2 })
      hangar.log.warn("slow")
      hangar.log.debug("details", { list = { 1, 2 } })
      hangar.log.error("failed", { ok = false })
    ]])
    assert.equal(4, #lines)
    assert.equal("info", lines[1].level)
    assert.equal("run started", lines[1].msg)
    assert.equal("r-1", lines[1].run)
    assert.equal(2, lines[1].attempt)
    assert.is_string(lines[1].ts)
    assert.equal("warn", lines[2].level)
    assert.same({ 1, 2 }, { lines[3].list[1], lines[3].list[2] })
    assert.is_false(lines[4].ok)
  end)

  it("does not let fields override the fixed members", function()
    local lines = run_script([[hangar.log.info("real", { msg = "fake", level = "error" })]])
    assert.equal("real", lines[1].msg)
    assert.equal("info", lines[1].level)
  end)

  it("knows its level", function()
    assert.is_string(hangar.log.level())
    assert.is_true(hangar.log.enabled("error"))
    assert.has_error(function() hangar.log.enabled("loud") end)
    assert.has_error(function() hangar.log.info("x", "not a table") end)
  end)
end)
