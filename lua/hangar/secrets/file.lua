-- Secret references to files on the agent's machine: file:///run/secrets/db_password.
-- The value is the file's content without its final line break. With a fragment
-- (file:///etc/hangar/secrets.json#db.password) the file is JSON and the value is the string
-- at that dotted path. A resolver is a function (uri, run) -> value | nil, message; this
-- module makes one, and so would a Vault or AWS Secrets Manager resolver (over hangar.http).
local json = require "hangar.json"

local file = {}

--- Makes the resolver; fs reads files (the agent passes core.fs).
function file.resolver(fs)
  return function(uri)
    local path, fragment = uri:match("^file://([^#]*)#?(.*)$")
    if path and path:match("^localhost/") then
      path = path:sub(#"localhost" + 1)
    end
    if not path or path:sub(1, 1) ~= "/" then
      return nil, "expected file:///absolute/path[#member.path]"
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
