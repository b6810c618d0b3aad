-- Hooks: configuration hooks before plugin hooks, after_* in reverse, declines with a reason,
-- environment edits, and failures named by hook and file:line.
local hooks = require "hangar.agent.hooks"

local function where(fn)
  local info = debug.getinfo(fn, "S")
  return info.short_src .. ":" .. info.linedefined
end

describe("agent hooks", function()
  it("run configuration hooks first, then plugins' in load order; after_run in reverse", function()
    local order = {}
    local function mark(tag) return function() order[#order + 1] = tag end end
    local set = hooks.new(
      { before_run = { mark("config1"), mark("config2") }, after_run = mark("config") },
      { { name = "p1", hooks = { before_run = mark("p1"), after_run = mark("p1") } },
        { name = "p2", hooks = { before_run = mark("p2"), after_run = mark("p2") } } },
      where)
    assert.is_true(set:run("before_run", { {}, {}, n = 2 }))
    assert.is_true(set:run("after_run", { {}, {}, n = 2 }))
    assert.same({ "config1", "config2", "p1", "p2", "p2", "p1", "config" }, order)
  end)

  it("lets before_accept decline with a reason, and stops there", function()
    local later = false
    local set = hooks.new({ before_accept = {
      function(run) if run.task.slug == "rm-rf" then return false, "not on this agent" end end,
      function() later = true end,
    } }, nil, where)
    local ok, reason, why = set:run("before_accept", { { task = { slug = "rm-rf" } }, n = 1 })
    assert.is_nil(ok)
    assert.equal("not on this agent", reason)
    assert.equal("declined", why)
    assert.is_false(later)
    assert.is_true(set:run("before_accept", { { task = { slug = "ok" } }, n = 1 }))
    assert.is_true(later)
  end)

  it("lets environment hooks edit the environment or replace it", function()
    local set = hooks.new({ environment = {
      function(_, env) env.ADDED = "1"; env.REMOVED = nil end,
      function(_, env) local copy = { NEW = "table" }; for k, v in pairs(env) do copy[k] = v end; return copy end,
    } }, nil, where)
    local ok, env = set:run("environment", { {}, { REMOVED = "x", KEPT = "y" }, n = 2 })
    assert.is_true(ok)
    assert.same({ ADDED = "1", KEPT = "y", NEW = "table" }, env)
  end)

  it("names the failing hook and the file:line of the failure", function()
    local set = hooks.new({ before_run = function() error("no disk left") end }, nil, where)
    local ok, msg, why = set:run("before_run", { {}, {}, n = 2 })
    assert.is_nil(ok)
    assert.equal("error", why)
    assert.truthy(msg:match("^hook before_run %(.*agent_hooks_spec%.lua:%d+%): no disk left$"), msg)
  end)

  it("names the whole file when Lua shortened its name to '...tail'", function()
    local file = "/etc/hangar/a-directory-whose-name-alone-is-longer-than-lua-keeps/agent.lua"
    local short = "..." .. file:sub(-50)
    local set = hooks.new({ before_run = function() error(short .. ":7: no disk left", 0) end }, nil,
      function() return short .. ":5" end, { "/elsewhere/agent.lua", file })
    local _, msg = set:run("before_run", { {}, {}, n = 2 })
    assert.equal("hook before_run (" .. file .. ":7): no disk left", msg)
    set = hooks.new({ after_run = function() error({ code = 1 }) end }, nil, function() return short .. ":5" end, { file })
    _, msg = set:run("after_run", { {}, {}, n = 2 })
    assert.truthy(msg:find("hook after_run (" .. file .. ":5): ", 1, true), msg)
  end)

  it("falls back to where the hook was defined when the error carries no position", function()
    local fn = function() error({ code = 1 }) end
    local set = hooks.new({ after_run = fn }, nil, where)
    local _, msg = set:run("after_run", { {}, {}, n = 2 })
    assert.truthy(msg:find("hook after_run (" .. where(fn) .. "): ", 1, true), msg)
  end)
end)
