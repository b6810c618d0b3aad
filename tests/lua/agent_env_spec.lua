-- A run's environment as the protocol defines it: sources in order, PARAM_* text for every
-- parameter type, HANGAR_PARAMS, the HANGAR_* facts, the base PATH and HOME.
local env = require "hangar.agent.env"
local json = require "hangar.json"

local function run_doc(extra)
  local doc = {
    id = "run_1",
    run_token = "hrt_token",
    task = {
      slug = "t",
      parameters = {
        { slug = "s", type = "string" }, { slug = "n", type = "integer" }, { slug = "f", type = "float" },
        { slug = "b", type = "boolean" }, { slug = "d", type = "date" }, { slug = "dt", type = "datetime" },
        { slug = "txt", type = "text" }, { slug = "j", type = "json" },
      },
    },
    params = {},
    env = {},
  }
  for k, v in pairs(extra or {}) do doc[k] = v end
  return doc
end

describe("PARAM_* text", function()
  it("formats each type as the protocol says", function()
    assert.equal("hello world", env.param_text("hello world", "string"))
    assert.equal("line1\nline2", env.param_text("line1\nline2", "text"))
    assert.equal("2026-01-02", env.param_text("2026-01-02", "date"))
    assert.equal("2026-01-02T03:04:05Z", env.param_text("2026-01-02T03:04:05Z", "datetime"))
    assert.equal("42", env.param_text(42, "integer"))
    assert.equal("-7", env.param_text(-7, "integer"))
    assert.equal("true", env.param_text(true, "boolean"))
    assert.equal("false", env.param_text(false, "boolean"))
  end)

  it("gives floats the shortest text that reads back as the same number", function()
    assert.equal("0.1", env.param_text(0.1, "float"))
    assert.equal("2", env.param_text(2, "float"))
    assert.equal("2", env.param_text(2.0, "float"))
    assert.equal("1.5", env.param_text(1.5, "float"))
    assert.equal("0.30000000000000004", env.param_text(0.1 + 0.2, "float"))
    assert.equal("1e+300", env.param_text(1e300, "float"))
    for _, x in ipairs({ 0.1, 1 / 3, 123456.789, 5e-324, 1.7976931348623157e308, -2.5e-7 }) do
      assert.equal(x, tonumber(env.param_text(x, "float")))
    end
  end)

  it("writes json parameters as compact JSON, keeping the hub's member order when given", function()
    assert.equal('{"a":1,"b":[true,null]}', env.param_text(json.decode('{"b":[true,null],"a":1}'), "json"))
    assert.equal('{"b":[true,null],"a":1}', env.param_text({}, "json", '{"b":[true,null],"a":1}'))
    assert.equal('"x"', env.param_text("x", "json"))
  end)
end)

describe("env.build", function()
  it("layers pass-through, task env, secrets and references, then parameters and HANGAR_*", function()
    local doc = run_doc {
      env = { A = "task", B = "task", C = "task" },
      params = { s = "hi", n = 3, f = 0.5, b = false, j = json.decode('{"k":"v"}') },
    }
    local e = env.build {
      run = doc,
      pass = { LANG = "C.UTF-8", A = "pass" },
      secrets = { B = "sealed" },
      refs = { C = "ref" },
      hub_url = "https://hub",
      workdir = "/state/work/run_1",
    }
    assert.equal("C.UTF-8", e.LANG)
    assert.equal("task", e.A)
    assert.equal("sealed", e.B)
    assert.equal("ref", e.C)
    assert.equal("hi", e.PARAM_S)
    assert.equal("3", e.PARAM_N)
    assert.equal("0.5", e.PARAM_F)
    assert.equal("false", e.PARAM_B)
    assert.equal('{"k":"v"}', e.PARAM_J)
    assert.is_nil(e.PARAM_D) -- absent from params: unset
    assert.same({ s = "hi", n = 3, f = 0.5, b = false, j = { k = "v" } }, json.decode(e.HANGAR_PARAMS))
    assert.equal("run_1", e.HANGAR_RUN_ID)
    assert.equal("t", e.HANGAR_TASK)
    assert.equal("https://hub", e.HANGAR_HUB_URL)
    assert.equal("hrt_token", e.HANGAR_RUN_TOKEN)
    assert.equal("/usr/local/bin:/usr/bin:/bin", e.PATH)
    assert.equal("/state/work/run_1", e.HOME)
  end)

  it("uses the hub's own JSON text for HANGAR_PARAMS and json parameters when given", function()
    local doc = run_doc { params = { j = { z = 1, a = 2 }, s = "x" } }
    local e = env.build {
      run = doc, hub_url = "h", workdir = "/w",
      params_json = { all = '{"j":{"z":1,"a":2},"s":"x"}', each = { j = '{"z":1,"a":2}', s = '"x"' } },
    }
    assert.equal('{"j":{"z":1,"a":2},"s":"x"}', e.HANGAR_PARAMS)
    assert.equal('{"z":1,"a":2}', e.PARAM_J)
    assert.equal("x", e.PARAM_S)
  end)

  it("leaves PATH and HOME to the task or the pass-through list when they set them", function()
    local e = env.build { run = run_doc { env = { PATH = "/opt/bin" } }, pass = { HOME = "/home/agent" }, workdir = "/w" }
    assert.equal("/opt/bin", e.PATH)
    assert.equal("/home/agent", e.HOME)
  end)

  it("holds nothing it was not given", function()
    local e = env.build { run = run_doc(), hub_url = "h", workdir = "/w" }
    local names = {}
    for k in pairs(e) do names[#names + 1] = k end
    table.sort(names)
    assert.same({ "HANGAR_HUB_URL", "HANGAR_PARAMS", "HANGAR_RUN_ID", "HANGAR_RUN_TOKEN", "HANGAR_TASK", "HOME", "PATH" }, names)
    assert.equal("{}", e.HANGAR_PARAMS)
  end)
end)
