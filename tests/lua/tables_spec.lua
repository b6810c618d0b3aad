-- hangar.tables: the order every listing of names in the agent and the configuration relies on.
local tables = require "hangar.tables"

describe("hangar.tables.sorted_keys", function()
  it("sorts string keys, whatever order the table was filled in", function()
    local t = {}
    for _, k in ipairs({ "zeta", "alpha", "Mid", "beta", "alpha2" }) do
      t[k] = true
    end
    assert.same({ "Mid", "alpha", "alpha2", "beta", "zeta" }, tables.sorted_keys(t))
  end)

  it("orders keys of mixed types by their text instead of failing", function()
    local keys = tables.sorted_keys({ b = 1, [10] = 1, [9] = 1, [true] = 1 })
    local text = {}
    for i, k in ipairs(keys) do
      text[i] = tostring(k)
    end
    assert.same({ "10", "9", "b", "true" }, text)
    assert.equal("number", type(keys[1])) -- the keys themselves, not their text
  end)

  it("gives an empty list for an empty table, and a new list each time", function()
    assert.same({}, tables.sorted_keys({}))
    local t = { a = 1 }
    local first = tables.sorted_keys(t)
    first[2] = "changed"
    assert.same({ "a" }, tables.sorted_keys(t))
  end)
end)
