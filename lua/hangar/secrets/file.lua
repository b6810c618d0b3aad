-- Secret references to files on the agent's machine: file:///run/secrets/db_password.
-- The value is the file's content without its final line break. With a fragment
-- (file:///etc/hangar/secrets.json#db.password) the file is JSON and the value is the string
-- at that dotted path. A resolver is a function (uri, run) -> value | nil, message; this
-- module makes one, and so would a Vault or AWS Secrets Manager resolver (over hangar.http).
--
-- Only the files the configuration lists in `secret_files` can be read this way (a path, or
-- a directory ending in "/" for every file below it): a task author must not be able to pull
-- the agent's key file, its session key or anything else the agent may read into a run.
local json = require "hangar.json"

local file = {}

-- Whether path is one of the allowed entries or below an allowed directory ("dir/"). A path
-- with "." or ".." segments, or an empty one, is never allowed: it could climb out.
local function listed(path, allowed)
  for seg in path:gmatch("/([^/]*)") do
    if seg == "" or seg == "." or seg == ".." then
      return false
    end
  end
  for _, entry in ipairs(allowed) do
    if path == entry or (entry:sub(-1) == "/" and path:sub(1, #entry) == entry) then
      return true
    end
  end
  return false
end

--- Makes the resolver; fs reads files (the agent passes core.fs), allowed lists the files
--- and directories (ending in "/") that may be read.
function file.resolver(fs, allowed)
  allowed = allowed or {}
  return function(uri)
    local path, fragment = uri:match("^file://([^#]*)#?(.*)$")
    if path and path:match("^localhost/") then
      path = path:sub(#"localhost" + 1)
    end
    if not path or path:sub(1, 1) ~= "/" then
      return nil, "expected file:///absolute/path[#member.path]"
    end
    if not listed(path, allowed) then
      return nil, path .. " is not listed in the agent's secret_files"
    end
    local text, err = fs.read(path)
    if not text then
      return nil, err
    end
    if fragment == "" then
      return (text:gsub("\r?\n$", ""))
    end
    local ok, doc = pcall(json.decode, text)
    if not ok then
      return nil, path .. " is not JSON, so it has no member " .. fragment
    end
    local v = doc
    for key in fragment:gmatch("[^.]+") do
      v = type(v) == "table" and v[key] or nil
    end
    if type(v) ~= "string" then
      return nil, path .. " has no string at " .. fragment
    end
    return v
  end
end

return file
