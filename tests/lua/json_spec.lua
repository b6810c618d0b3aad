-- hangar.json: round trips, the null sentinel, array/object markers, integers, errors.
local json = require "hangar.json"

describe("hangar.json", function()
  it("is the same module as the global hangar.json", function()
    assert.equal(hangar.json, json)
  end)

  it("encodes objects with sorted keys and arrays in order", function()
    assert.equal('{"a":1,"b":[true,false,"x"],"c":{"d":"e"}}',
      json.encode({ c = { d = "e" }, a = 1, b = { true, false, "x" } }))
  end)

  it("keeps integers integers both ways", function()
    assert.equal('[1,-2,9007199254740993,1.5]', json.encode({ 1, -2, 9007199254740993, 1.5 }))
    local v = json.decode('{"n": 42, "f": 0.5, "big": 1e3}')
    assert.equal("integer", math.type(v.n))
    assert.equal(42, v.n)
    assert.equal("float", math.type(v.f))
    assert.equal(1000, v.big)
  end)

  it("writes integers as their exact digits, 2^53 and -2^53 included", function()
    -- 2^53 once came out as 9.00719925474099e+15, which reads back as 2^53 - 2.
    local ints = { 9007199254740992, -9007199254740992, 1795900023419, 0, -7 }
    local text = json.encode(ints)
    assert.equal("[9007199254740992,-9007199254740992,1795900023419,0,-7]", text)
    assert.same(ints, json.decode(text))
    assert.equal('{\n\t"n":\t9007199254740992\n}', json.encode({ n = 9007199254740992 }, { pretty = true }))
  end)

  it("sorts the keys of an object of any size, nested in arrays and objects", function()
    local big, keys = {}, {}
    for i = 1, 40 do
      big[("k%02d"):format(41 - i)] = { i, { v = i } }
      keys[i] = ('"k%02d":[%d,{"v":%d}]'):format(i, 41 - i, 41 - i)
    end
    assert.equal('{"a":[' .. "{" .. table.concat(keys, ",") .. "}" .. "]}", json.encode({ a = { big } }))
    assert.has_error(function() json.encode({ a = { big, { b = { 1, print } } } }) end,
      "json.encode: cannot encode a function value at $.a[2].b[2]")
  end)

  it("refuses a key holding a NUL byte instead of cutting it short", function()
    -- Cut at the NUL, "a\0b" came out as a second "a" with the value of the first.
    assert.has_error(function() json.encode({ a = 1, ["a\0b"] = 2 }) end,
      "json.encode: key holds a NUL byte at $.a")
    assert.has_error(function() json.encode({ x = { ["k\0"] = 1 } }) end,
      "json.encode: key holds a NUL byte at $.x.k")
  end)

  it("maps null to json.null so keys survive", function()
    local v = json.decode('{"a": null, "b": [1, null, 3]}')
    assert.equal(json.null, v.a)
    assert.equal(3, #v.b)
    assert.equal(json.null, v.b[2])
    assert.equal('{"a":null,"b":[1,null,3]}', json.encode(v))
  end)

  it("encodes an empty table as an object unless marked as an array", function()
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(json.array {}))
    assert.equal('{"list":[],"map":{}}', json.encode({ list = json.array(), map = json.object() }))
  end)

  it("round-trips empty arrays and objects from decoded text", function()
    local v = json.decode('{"a": [], "b": {}}')
    assert.is_true(json.is_array(v.a))
    assert.equal('{"a":[],"b":{}}', json.encode(v))
  end)

  it("escapes strings and keeps UTF-8", function()
    local s = 'quote " backslash \\ newline \n tab \t é ✓'
    assert.equal(s, json.decode(json.encode(s)))
    assert.equal('"a\\"b"', json.encode('a"b'))
  end)

  it("pretty-prints on request", function()
    local text = json.encode({ a = 1 }, { pretty = true })
    assert.truthy(text:find("\n"))
    assert.same({ a = 1 }, json.decode(text))
  end)

  it("returns nil and a position for invalid text", function()
    local v, err = json.decode('{"a": 1,\n "b": tru}')
    assert.is_nil(v)
    assert.matches("invalid JSON at line 2, column %d+", err)
    v, err = json.decode('[1, 2] trailing')
    assert.is_nil(v)
    assert.matches("line 1, column 8", err)
    v, err = json.decode("")
    assert.is_nil(v)
    assert.matches("invalid JSON", err)
  end)

  it("refuses values JSON cannot hold, naming where", function()
    assert.has_error(function() json.encode({ hooks = { start = print } }) end,
      "json.encode: cannot encode a function value at $.hooks.start")
    assert.has_error(function() json.encode({ 1, 2, nil, 4 }) end)
    assert.has_error(function() json.encode({ 1, x = 2 }) end,
      "json.encode: table mixes array and object keys at $")
    assert.has_error(function() json.encode({ a = { 0 / 0 } }) end,
      "json.encode: cannot encode NaN at $.a[1]")
    local loop = {}
    loop.self = loop
    assert.has_error(function() json.encode(loop) end)
  end)
end)
