-- The config loader: a Lua file, its environment sections, HANGAR_* overrides, and schema
-- validation whose every error names the key and the file:line that set it.
local config = require "hangar.config"

-- A schema in the shape the agent's and hub's use.
local schema = {
  hub_url = { type = "string", required = true },
  capacity = { type = "integer", default = 4 },
  ratio = "number",
  debug = { type = "boolean", default = false },
  labels = { type = "list", of = "string", default = {} },
  scheduler = { type = "enum", values = { "local", "kubernetes" }, default = "local" },
  env = { type = "map", of = "string" },
  hooks = { type = "map", of = "function" },
  before_run = "function",
  health = {
    type = "table",
    fields = {
      listen = { type = "string", default = "127.0.0.1:9090" },
      enabled = { type = "boolean", default = true },
    },
  },
  port = { type = "integer", check = function(v) return v > 0 and v < 65536, "must be a TCP port" end },
}

local dir
local function write(name, text)
  local path = dir .. "/" .. name
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function load(name, text, opts)
  opts = opts or {}
  opts.path = write(name, text)
  opts.schema = opts.schema or schema
  return config.load(opts)
end

setup(function()
  dir = (os.getenv("HANGAR_TEST_TMP") or "/tmp") .. "/config_spec"
  os.execute("mkdir -p '" .. dir .. "'")
end)

teardown(function()
  os.execute("rm -rf '" .. dir .. "'")
end)

describe("hangar.config", function()
  it("turns top-level assignments into keys and fills in defaults", function()
    local cfg = assert(load("basic.lua", [[
hub_url = "https://hub.example.com"
labels = { "linux", "gpu" }
local helper = "not a key"
function before_run(run) return run.id end
health = { listen = "0.0.0.0:1" }
]]))
    assert.equal("https://hub.example.com", cfg.hub_url)
    assert.equal(4, cfg.capacity)
    assert.is_false(cfg.debug)
    assert.equal("local", cfg.scheduler)
    assert.same({ "linux", "gpu" }, cfg.labels)
    assert.equal("0.0.0.0:1", cfg.health.listen)
    assert.is_true(cfg.health.enabled)
    assert.equal(7, cfg.before_run({ id = 7 }))
    assert.is_nil(cfg.helper)
  end)

  it("accepts a returned table as the whole configuration", function()
    local cfg = assert(load("returned.lua", [[return { hub_url = "https://h", capacity = 2 }]]))
    assert.equal(2, cfg.capacity)
  end)

  it("fills in nested defaults for an absent section", function()
    local cfg = assert(load("nosection.lua", [[hub_url = "x"]]))
    assert.equal("127.0.0.1:9090", cfg.health.listen)
  end)

  describe("environments", function()
    local text = [[
hub_url = "https://dev.example.com"
capacity = 2
labels = { "dev" }
health = { listen = "127.0.0.1:9090", enabled = true }
environments = {
  prod = {
    hub_url = "https://prod.example.com",
    labels = { "prod", "big" },
    health = { listen = "0.0.0.0:9090" },
  },
  staging = { capacity = 3 },
}
]]
    it("deep-merges the named section over the base", function()
      local cfg = assert(load("envs.lua", text, { env = "prod" }))
      assert.equal("https://prod.example.com", cfg.hub_url)
      assert.equal(2, cfg.capacity)
      assert.same({ "prod", "big" }, cfg.labels) -- lists replace
      assert.equal("0.0.0.0:9090", cfg.health.listen)
      assert.is_true(cfg.health.enabled) -- kept from the base
      assert.is_nil(cfg.environments)
    end)

    it("takes the name from HANGAR_ENV", function()
      local cfg = assert(load("envs.lua", text, { environ = { HANGAR_ENV = "staging" } }))
      assert.equal(3, cfg.capacity)
      -- --env wins over HANGAR_ENV
      cfg = assert(load("envs.lua", text, { env = "prod", environ = { HANGAR_ENV = "staging" } }))
      assert.equal(2, cfg.capacity)
    end)

    it("uses the base alone when no environment is named", function()
      local cfg = assert(load("envs.lua", text))
      assert.equal("https://dev.example.com", cfg.hub_url)
    end)

    it("lists the known environments for an unknown name", function()
      local cfg, err = load("envs.lua", text, { env = "prd" })
      assert.is_nil(cfg)
      assert.matches("envs.lua: unknown environment 'prd' %(known: prod, staging%)", err)
      cfg, err = load("noenvs.lua", [[hub_url = "x"]], { env = "prod" })
      assert.is_nil(cfg)
      assert.matches("unknown environment 'prod' %(the file defines none%)", err)
    end)

    it("points errors from a section at the section's line", function()
      local cfg, err = load("envbad.lua", [[
hub_url = "x"
environments = {
  prod = {
    capacity = "many",
  },
}
]], { env = "prod" })
      assert.is_nil(cfg)
      assert.matches("envbad.lua:4: key 'capacity' must be an integer, got string \"many\"", err, 1, true)
    end)
  end)

  describe("HANGAR_* variables", function()
    it("override single keys, converted to the schema's type", function()
      local cfg = assert(load("over.lua", [[
hub_url = "https://file"
capacity = 2
]], {
        environ = {
          HANGAR_HUB_URL = "https://env",
          HANGAR_CAPACITY = "12",
          HANGAR_DEBUG = "yes",
          HANGAR_RATIO = "0.25",
          HANGAR_LABELS = "a, b,c",
          HANGAR_HEALTH__LISTEN = "127.0.0.1:1",
          HANGAR_SCHEDULER = "kubernetes",
          HANGAR_HOME = "/not/a/key", -- shares the prefix: ignored
        },
      }))
      assert.equal("https://env", cfg.hub_url)
      assert.equal(12, cfg.capacity)
      assert.equal("integer", math.type(cfg.capacity))
      assert.is_true(cfg.debug)
      assert.equal(0.25, cfg.ratio)
      assert.same({ "a", "b", "c" }, cfg.labels)
      assert.equal("127.0.0.1:1", cfg.health.listen)
      assert.equal("kubernetes", cfg.scheduler)
    end)

    it("win over the environment section", function()
      local cfg = assert(load("over2.lua", [[
hub_url = "x"
environments = { prod = { capacity = 3 } }
]], { env = "prod", environ = { HANGAR_CAPACITY = "5" } }))
      assert.equal(5, cfg.capacity)
    end)

    it("name the variable when the text does not fit", function()
      local cfg, err = load("over3.lua", [[hub_url = "x"]], { environ = { HANGAR_CAPACITY = "lots" } })
      assert.is_nil(cfg)
      assert.equal("HANGAR_CAPACITY: key 'capacity' must be an integer, got \"lots\"", err)
      cfg, err = load("over3.lua", [[hub_url = "x"]], { environ = { HANGAR_HOOKS = "x" } })
      assert.is_nil(cfg)
      assert.matches("HANGAR_HOOKS: key 'hooks' cannot be set from the environment", err)
      cfg, err = load("over3.lua", [[hub_url = "x"]], { environ = { HANGAR_SCHEDULER = "docker" } })
      assert.is_nil(cfg)
      assert.matches("HANGAR_SCHEDULER: key 'scheduler' must be one of local, kubernetes", err)
    end)
  end)

  describe("validation errors", function()
    it("name an unknown key, its line, and the closest known key", function()
      local cfg, err = load("typo.lua", [[
hub_url = "x"

capacty = 3
]])
      assert.is_nil(cfg)
      assert.equal(dir .. "/typo.lua:3: unknown key 'capacty' (did you mean 'capacity'?)", err)
    end)

    it("name an unknown nested key with its line", function()
      local cfg, err = load("nested.lua", [[
hub_url = "x"
health = {
  enabled = true,
  lisen = "0.0.0.0:1",
}
]])
      assert.is_nil(cfg)
      assert.equal(dir .. "/nested.lua:4: unknown key 'health.lisen' (did you mean 'listen'?)", err)
    end)

    it("name a key of the wrong type and its line", function()
      local cfg, err = load("types.lua", [[
hub_url = "x"
capacity = "four"
labels = { "a", 2 }
debug = 1
env = { PATH = "/bin", COUNT = 3 }
]])
      assert.is_nil(cfg)
      local lines = {}
      for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
      assert.same({
        dir .. "/types.lua:2: key 'capacity' must be an integer, got string \"four\"",
        dir .. "/types.lua:3: key 'labels[2]' must be a string, got number 2",
        dir .. "/types.lua:4: key 'debug' must be a boolean, got number 1",
        dir .. "/types.lua:5: key 'env.COUNT' must be a string, got number 3",
      }, lines)
    end)

    it("name a missing required key", function()
      local cfg, err = load("missing.lua", [[capacity = 1]])
      assert.is_nil(cfg)
      assert.equal(dir .. "/missing.lua: missing required key 'hub_url' (a string)", err)
      local nested_schema = { section = { type = "table", fields = { token = { type = "string", required = true } } } }
      cfg, err = load("missing2.lua", "x = 1\nsection = {\n  other = 1,\n}\n", { schema = { x = "integer", section = nested_schema.section } })
      assert.is_nil(cfg)
      assert.matches("missing2.lua:2: missing required key 'section.token' %(a string%)", err)
    end)

    it("report enum values and custom checks", function()
      local cfg, err = load("enum.lua", [[
hub_url = "x"
scheduler = "docker"
port = 70000
]])
      assert.is_nil(cfg)
      assert.matches("enum.lua:2: key 'scheduler' must be one of local, kubernetes, got \"docker\"", err, 1, true)
      assert.matches("enum.lua:3: key 'port': must be a TCP port", err, 1, true)
    end)

    it("report errors in the file itself with file:line", function()
      local cfg, err = load("syntax.lua", "hub_url = 'x'\ncapacity = = 3\n")
      assert.is_nil(cfg)
      assert.matches("syntax.lua:2:", err)
      cfg, err = load("runtime.lua", "hub_url = 'x'\nerror('refusing to start')\n")
      assert.is_nil(cfg)
      assert.matches("runtime.lua:2: refusing to start", err)
    end)
  end)

  it("validates a section on its own with config.check", function()
    local section, err = config.check({ namespace = 3 }, { namespace = "string", image = { type = "string", default = "alpine" } }, { label = "kubernetes" })
    assert.is_nil(section)
    assert.equal("kubernetes: key 'namespace' must be a string, got number 3", err)
    section = assert(config.check({ namespace = "ci" }, { namespace = "string", image = { type = "string", default = "alpine" } }))
    assert.equal("alpine", section.image)
  end)

  it("refuses a malformed schema clearly", function()
    local cfg, err = config.check({}, { x = { type = "strnig" } })
    assert.is_nil(cfg)
    assert.matches("schema: %(root%)%.x: unknown type 'strnig'", err)
  end)
end)
