-- hangar.yaml: YAML text to Lua values, typed per the YAML 1.2 core schema.
local yaml = require "hangar.yaml"
local json = require "hangar.json"

describe("hangar.yaml", function()
  it("decodes block and flow collections with typed scalars", function()
    local v = assert(yaml.decode([[
slug: hello
timeout: 30
ratio: 0.5
enabled: true
nothing: ~
quoted: "30"
command: [echo, "hi there"]
env:
  A: one
]]))
    assert.equal("hello", v.slug)
    assert.equal(30, v.timeout)
    assert.equal("integer", math.type(v.timeout))
    assert.equal(0.5, v.ratio)
    assert.is_true(v.enabled)
    assert.equal(json.null, v.nothing)
    assert.equal("30", v.quoted)
    assert.same({ "echo", "hi there" }, { v.command[1], v.command[2] })
    assert.equal("one", v.env.A)
  end)

  it("resolves anchors and aliases", function()
    local v = assert(yaml.decode("base: &b {image: alpine}\njob: *b\n"))
    assert.equal("alpine", v.job.image)
  end)

  it("reports errors with the name, line and column", function()
    local v, err = yaml.decode("slug: a\nenv:\n  X: 1\n  X: 2\n", "hello.task.yaml")
    assert.is_nil(v)
    assert.equal("hello.task.yaml:4:3: duplicate key 'X'", err)
    v, err = yaml.decode("a: 1\n---\nb: 2\n", "two.yaml")
    assert.is_nil(v)
    assert.matches("^two.yaml:2:1: a second document", err)
    v, err = yaml.decode("a: [1, 2\n")
    assert.is_nil(v)
    assert.matches("^<yaml>:%d+:%d+: ", err)
  end)

  it("converts to JSON faithfully", function()
    local v = assert(yaml.decode("list: []\nmap: {}\n"))
    assert.equal('{"list":[],"map":{}}', json.encode(v))
  end)
end)
