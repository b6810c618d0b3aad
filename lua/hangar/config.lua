-- Configuration files for the agent and the hub: a Lua file run in the sandbox, an optional
-- environment section merged over it, HANGAR_* environment variables over that, then
-- validation against a schema. The C side (src/lua/config.c) calls config.load; backends and
-- plugins can validate their own sections with config.check.
--
-- A configuration file sets keys at top level (or returns a table, which is then the whole
-- configuration):
--
--   hub_url = "https://hub.example.com"
--   capacity = 4
--   labels = { "linux", "gpu" }
--   health = { listen = "127.0.0.1:9090" }
--   function before_run(run) ... end          -- values may be functions (hooks)
--   environments = {
--     staging = { hub_url = "https://staging.example.com" },
--     prod = { capacity = 16, health = { listen = "0.0.0.0:9090" } },
--   }
--
-- Precedence, lowest first: the file; environments[NAME] deep-merged over it when an
-- environment is chosen (nested tables merge key by key; lists, scalars and functions
-- replace); HANGAR_<KEY> environment variables. A double underscore separates nesting
-- levels (HANGAR_HEALTH__LISTEN sets health.listen; HANGAR_HUB_URL sets hub_url) and the
-- text is converted to the schema's type: integers and numbers as written, booleans from
-- true/false/yes/no/on/off/1/0, lists of scalars from comma-separated text. Variables that
-- name no key of the schema are ignored (HANGAR_HOME and friends share the prefix); tables,
-- maps and functions cannot be set this way.
--
-- A schema maps each key to a spec; a spec is a type name or a table:
--
--   { type = "string" | "integer" | "number" | "boolean" | "function" | "any"
--          | "table"            -- with `fields = { ... }`: a nested schema, checked strictly
--          | "list"             -- `of = spec`: a sequence of such values
--          | "map"              -- `of = spec`: string keys to such values
--          | "enum",            -- `values = { "a", "b" }`
--     required = true,          -- missing is an error
--     default = value,          -- used when missing (tables are copied)
--     check = function(v) return ok, message end,  -- a further test of the value
--     doc = "what it is for" }
--
-- Errors name the key and where it was set: "agent.lua:7: unknown key 'capacty' (did you
-- mean 'capacity'?)", "agent.lua:3: key 'capacity' must be an integer, got string \"four\"",
-- "HANGAR_CAPACITY: key 'capacity' must be an integer, got \"lots\"". Every error found is
-- reported, one a line, in the order of the file.
--
-- How a key's line is found: the loader scans the file's text. For a.b.c it finds the
-- first line assigning `a` (`a =`, `["a"] =` or `function a(`), then from there the first
-- line assigning `b`, then `c`; a key that came from environments.NAME is looked up under
-- that section. This is a heuristic (a comment mentioning `b =` first can mislead it); when
-- a key is not found, the line of its nearest parent is used. A missing key has no line:
-- its nearest present parent's, or none at the top level.

local sorted_keys = require("hangar.tables").sorted_keys
local config = {}

local SIMPLE = { string = true, integer = true, number = true, boolean = true, ["function"] = true, any = true }

-- ---- schemas ----

local function normalize(spec, where)
  if type(spec) == "string" then
    spec = { type = spec }
  end
  if type(spec) ~= "table" or type(spec.type) ~= "string" then
    error("schema: " .. where .. ": a spec is a type name or a table with a 'type'", 0)
  end
  local t = spec.type
  local out = {}
  for k, v in pairs(spec) do
    out[k] = v
  end
  if t == "list" or t == "map" then
    out.of = normalize(spec.of or "any", where .. "[]")
  elseif t == "table" then
    if spec.fields ~= nil then
      local fields = {}
      for name, f in pairs(spec.fields) do
        fields[name] = normalize(f, where .. "." .. tostring(name))
      end
      out.fields = fields
    end
  elseif t == "enum" then
    if type(spec.values) ~= "table" or #spec.values == 0 then
      error("schema: " .. where .. ": an enum needs a non-empty 'values' list", 0)
    end
  elseif not SIMPLE[t] then
    error("schema: " .. where .. ": unknown type '" .. t .. "'", 0)
  end
  return out
end

local function normalize_schema(schema)
  if type(schema) ~= "table" then
    error("schema: must be a table of key specs", 0)
  end
  return normalize({ type = "table", fields = schema }, "(root)")
end

local function describe(spec)
  local t = spec.type
  if t == "list" then
    return "a list of " .. describe(spec.of)
  elseif t == "map" then
    return "a map of " .. describe(spec.of)
  elseif t == "enum" then
    local names = {}
    for i, v in ipairs(spec.values) do
      names[i] = tostring(v)
    end
    return "one of " .. table.concat(names, ", ")
  elseif t == "integer" then
    return "an integer"
  elseif t == "any" then
    return "any value"
  elseif t == "table" then
    return "a table"
  end
  return "a " .. t
end

local function show(v)
  if type(v) == "string" then
    return string.format("%q", #v > 40 and v:sub(1, 40) .. "..." or v)
  elseif type(v) == "number" or type(v) == "boolean" then
    return tostring(v)
  end
  return type(v)
end

-- ---- keys, paths and lines ----

local function path_text(path)
  local parts = {}
  for i, k in ipairs(path) do
    if type(k) == "number" then
      parts[#parts + 1] = "[" .. k .. "]"
    else
      parts[#parts + 1] = (i > 1 and "." or "") .. k
    end
  end
  return table.concat(parts)
end

local function escape_pattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function assigns(line, key)
  local k = escape_pattern(key)
  return line:find("%f[%w_]" .. k .. "%s*=[^=]") or line:find("%f[%w_]" .. k .. "%s*=$")
    or line:find("%[%s*[\"']" .. k .. "[\"']%s*%]%s*=")
    or line:find("function%s+" .. k .. "%s*%(")
end

-- The line where the value at path is written, per the scan described above.
local function find_line(lines, path)
  if not lines then
    return nil
  end
  local at, found = 1, nil
  for _, key in ipairs(path) do
    if type(key) ~= "string" then
      break
    end
    local hit
    for n = at, #lines do
      if assigns(lines[n], key) then
        hit = n
        break
      end
    end
    if not hit then
      break
    end
    at, found = hit, hit
  end
  return found
end

local function distance(a, b)
  if math.abs(#a - #b) > 3 then
    return 99
  end
  local prev = {}
  for j = 0, #b do
    prev[j] = j
  end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

local function suggest(key, fields)
  local best, best_d
  for name in pairs(fields) do
    local d = distance(key:lower(), name:lower())
    if d <= math.max(1, #name // 3) and (not best_d or d < best_d or (d == best_d and name < best)) then
      best, best_d = name, d
    end
  end
  return best
end

-- ---- validation ----

local function copy(v)
  if type(v) ~= "table" then
    return v
  end
  local t = {}
  for k, x in pairs(v) do
    t[k] = copy(x)
  end
  return t
end

local function is_sequence(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then
      return false
    end
    n = n + 1
  end
  return n == #t
end

local check_value

local function check_fields(tbl, spec, path, ctx)
  local fields = spec.fields
  for _, k in ipairs(sorted_keys(tbl)) do
    local sub = { table.unpack(path) }
    sub[#sub + 1] = k
    if type(k) ~= "string" then
      ctx.fail(path, "key " .. path_text(path) .. "[" .. tostring(k) .. "] is not a name")
    elseif not fields[k] then
      local hint = suggest(k, fields)
      ctx.fail(sub, "unknown key '" .. path_text(sub) .. "'" .. (hint and (" (did you mean '" .. hint .. "'?)") or ""))
    end
  end
  for _, name in ipairs(sorted_keys(fields)) do
    local f = fields[name]
    local sub = { table.unpack(path) }
    sub[#sub + 1] = name
    local v = tbl[name]
    if v == nil then
      if f.required then
        ctx.fail(path, "missing required key '" .. path_text(sub) .. "' (" .. describe(f) .. ")", true)
      elseif f.default ~= nil then
        tbl[name] = copy(f.default)
        check_value(tbl[name], f, sub, ctx)
      elseif f.type == "table" and f.fields then
        -- An absent section still gets its fields' defaults (and its required fields'
        -- errors).
        tbl[name] = {}
        check_value(tbl[name], f, sub, ctx)
      end
    else
      check_value(v, f, sub, ctx)
    end
  end
end

check_value = function(v, spec, path, ctx)
  local t = spec.type
  local function wrong()
    local got = type(v)
    if got == "string" or got == "number" or got == "boolean" then
      got = got .. " " .. show(v)
    end
    ctx.fail(path, "key '" .. path_text(path) .. "' must be " .. describe(spec) .. ", got " .. got)
  end
  if t == "any" then
    -- anything goes
  elseif t == "integer" then
    if math.type(v) ~= "integer" then
      local i = math.type(v) == "float" and math.tointeger(v)
      if not i then
        return wrong()
      end
      ctx.set(path, i)
    end
  elseif t == "enum" then
    local ok = false
    for _, allowed in ipairs(spec.values) do
      if v == allowed then
        ok = true
      end
    end
    if not ok then
      return ctx.fail(path, "key '" .. path_text(path) .. "' must be " .. describe(spec) .. ", got " .. show(v))
    end
  elseif t == "list" then
    if type(v) ~= "table" or not is_sequence(v) then
      return wrong()
    end
    for i, x in ipairs(v) do
      local sub = { table.unpack(path) }
      sub[#sub + 1] = i
      check_value(x, spec.of, sub, ctx)
    end
  elseif t == "map" then
    if type(v) ~= "table" then
      return wrong()
    end
    for k, x in pairs(v) do
      local sub = { table.unpack(path) }
      sub[#sub + 1] = tostring(k)
      if type(k) ~= "string" then
        ctx.fail(path, "key '" .. path_text(path) .. "' must have string keys, found " .. show(k))
      else
        check_value(x, spec.of, sub, ctx)
      end
    end
  elseif t == "table" then
    if type(v) ~= "table" then
      return wrong()
    end
    if spec.fields then
      check_fields(v, spec, path, ctx)
    end
  elseif type(v) ~= t then
    return wrong()
  end
  if spec.check then
    local ok, msg = spec.check(ctx.get(path))
    if not ok then
      ctx.fail(path, "key '" .. path_text(path) .. "': " .. tostring(msg or "invalid value"))
    end
  end
end

local function get_at(root, path)
  local v = root
  for _, k in ipairs(path) do
    if type(v) ~= "table" then
      return nil
    end
    v = v[k]
  end
  return v
end

local function set_at(root, path, value)
  local t = root
  for i = 1, #path - 1 do
    local k = path[i]
    if type(t[k]) ~= "table" then
      t[k] = {}
    end
    t = t[k]
  end
  t[path[#path]] = value
end

-- Validates tbl against schema in place (defaults filled in). opts: label (for messages:
-- a file name), lines (the file's lines, for line numbers), origin (path text -> a prefix
-- path or an environment variable name, for keys that came from elsewhere).
local function validate(tbl, schema, opts)
  local errors = {}
  local label = opts.label or "config"
  local origin = opts.origin or {}
  local ctx = {}
  function ctx.get(path)
    return get_at(tbl, path)
  end
  function ctx.set(path, v)
    set_at(tbl, path, v)
  end
  function ctx.fail(path, msg, missing)
    -- Find who set this key: an environment variable, an environment section, the file.
    local where, line
    for n = #path, 1, -1 do
      local o = origin[path_text({ table.unpack(path, 1, n) })]
      if type(o) == "string" then
        where = o
        break
      elseif type(o) == "table" then
        local full = { table.unpack(o) }
        for _, k in ipairs(path) do
          full[#full + 1] = k
        end
        line = find_line(opts.lines, full)
        break
      end
    end
    if not where then
      if line == nil and (not missing or #path > 0) then
        line = find_line(opts.lines, path)
      end
      where = label .. (line and (":" .. line) or "")
    end
    errors[#errors + 1] = { where = where, line = line or (where == label and 0) or math.huge, msg = msg }
  end
  local ok, err = pcall(check_value, tbl, schema, {}, ctx)
  if not ok then
    errors[#errors + 1] = { where = label, line = 0, msg = tostring(err) }
  end
  if #errors > 0 then
    table.sort(errors, function(a, b)
      if a.line ~= b.line then
        return a.line < b.line
      end
      return a.msg < b.msg
    end)
    local out = {}
    for i, e in ipairs(errors) do
      out[i] = e.where .. ": " .. e.msg
    end
    return nil, table.concat(out, "\n")
  end
  return tbl
end

--- Validates a table (a backend's section, say) against a schema: returns the table with
--- defaults filled in, or nil and the errors. opts.label names it in messages.
function config.check(tbl, schema, opts)
  opts = opts or {}
  local ok, norm = pcall(normalize_schema, schema)
  if not ok then
    return nil, norm
  end
  return validate(tbl, norm, opts)
end

-- ---- loading ----

local function deep_merge(base, over, path, origin, section)
  for k, v in pairs(over) do
    local sub = { table.unpack(path) }
    sub[#sub + 1] = k
    if type(v) == "table" and type(base[k]) == "table" and not is_sequence(v) and not is_sequence(base[k]) then
      deep_merge(base[k], v, sub, origin, section)
    else
      base[k] = copy(v)
      origin[path_text(sub)] = section
    end
  end
end

local TRUE = { ["true"] = true, yes = true, on = true, ["1"] = true }
local FALSE = { ["false"] = true, no = true, off = true, ["0"] = true }

local function convert(text, spec)
  local t = spec.type
  if t == "string" or t == "any" then
    return text
  elseif t == "integer" then
    local n = math.tointeger(tonumber(text))
    if n then
      return n
    end
  elseif t == "number" then
    local n = tonumber(text)
    if n then
      return n
    end
  elseif t == "boolean" then
    local l = text:lower()
    if TRUE[l] then
      return true
    elseif FALSE[l] then
      return false
    end
  elseif t == "enum" then
    for _, v in ipairs(spec.values) do
      if tostring(v) == text then
        return v
      end
    end
  elseif t == "list" and SIMPLE[spec.of.type] or (t == "list" and spec.of.type == "enum") then
    local out = {}
    for item in text:gmatch("[^,]+") do
      local v, err = convert(item:match("^%s*(.-)%s*$"), spec.of)
      if err then
        return nil, err
      end
      out[#out + 1] = v
    end
    return out
  else
    return nil, "cannot be set from the environment (it is " .. describe(spec) .. ")"
  end
  return nil, "must be " .. describe(spec) .. ", got " .. show(text)
end

local function apply_environ(cfg, schema, environ, origin)
  local errors = {}
  for _, name in ipairs(sorted_keys(environ)) do
    local rest = name:match("^HANGAR_(.+)$")
    if rest and name ~= "HANGAR_ENV" then
      local path, spec = {}, schema
      for seg in (rest:lower() .. "__"):gmatch("(.-)__") do
        local fields = spec and spec.type == "table" and spec.fields
        spec = fields and fields[seg]
        path[#path + 1] = seg
        if not spec then
          break
        end
      end
      if spec then
        local v, err = convert(environ[name], spec)
        if err then
          errors[#errors + 1] = name .. ": key '" .. path_text(path) .. "' " .. err
        else
          set_at(cfg, path, v)
          origin[path_text(path)] = name
        end
      end
    end
  end
  if #errors > 0 then
    return nil, table.concat(errors, "\n")
  end
  return true
end

local function split_lines(source)
  local lines = {}
  for line in (source .. "\n"):gmatch("(.-)\r?\n") do
    lines[#lines + 1] = line
  end
  return lines
end

--- Lua keeps only the last ~56 characters of a long file name in a "file:line" (an error's,
--- a function's position), behind "...": puts the whole name back when path is that file,
--- so the message says which file. msg unchanged otherwise.
function config.full_position(msg, path)
  msg = tostring(msg)
  if msg:sub(1, 3) ~= "..." then
    return msg
  end
  for l = math.min(#path, 64), 1, -1 do
    if msg:sub(4, 3 + l) == path:sub(-l) and msg:sub(4 + l, 4 + l) == ":" then
      return path .. msg:sub(4 + l)
    end
  end
  return msg
end

--- Loads a configuration file. opts:
---   path     the file (names it in messages; read with io when source is not given)
---   source   the file's text
---   schema   the schema table (see the top of this file)
---   env      the environment section to merge (NAME); default environ.HANGAR_ENV
---   environ  environment variables, name -> value (HANGAR_* are used); default none
--- Returns the validated table (defaults filled in, `environments` removed), or nil and the
--- errors, one a line.
function config.load(opts)
  local path = opts.path or "config"
  local label = path
  local source = opts.source
  if not source then
    local io_lib = rawget(_G, "io")
    if not io_lib then
      return nil, path .. ": no source given, and this runtime cannot read files"
    end
    local f, err = io_lib.open(path, "r")
    if not f then
      return nil, "cannot read " .. tostring(err)
    end
    source = f:read("a")
    f:close()
  end
  local ok, schema = pcall(normalize_schema, opts.schema)
  if not ok then
    return nil, schema
  end

  -- Run the file in a fresh environment: its top-level assignments are the keys.
  local env = setmetatable({}, { __index = _G })
  local chunk, err = load(source, "@" .. path, "t", env)
  if not chunk then
    return nil, config.full_position(err, path)
  end
  local ran, result = pcall(chunk)
  if not ran then
    return nil, config.full_position(result, path)
  end
  local cfg
  if type(result) == "table" then
    cfg = result
  elseif result ~= nil then
    return nil, path .. ": the file returned a " .. type(result) .. "; return a table or nothing"
  else
    cfg = {}
    for k, v in pairs(env) do
      cfg[k] = v
    end
  end

  local origin = {}
  local environ = opts.environ or {}
  local env_name = opts.env or environ.HANGAR_ENV
  if env_name == "" then
    env_name = nil
  end
  local envs = cfg.environments
  cfg.environments = nil
  if envs ~= nil and type(envs) ~= "table" then
    return nil, label .. ":" .. (find_line(split_lines(source), { "environments" }) or 1)
      .. ": 'environments' must be a table of NAME = { ... } sections"
  end
  if env_name then
    local section = envs and envs[env_name]
    if type(section) ~= "table" then
      local known = {}
      for name in pairs(envs or {}) do
        known[#known + 1] = tostring(name)
      end
      table.sort(known)
      return nil, path .. ": unknown environment '" .. env_name .. "' ("
        .. (#known > 0 and ("known: " .. table.concat(known, ", ")) or "the file defines none") .. ")"
    end
    deep_merge(cfg, section, {}, origin, { "environments", env_name })
  end

  local applied, env_err = apply_environ(cfg, schema, environ, origin)
  if not applied then
    return nil, env_err
  end
  return validate(cfg, schema, { label = label, lines = split_lines(source), origin = origin })
end

return config
