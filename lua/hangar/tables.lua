-- Small helpers for Lua tables.
local tables = {}

--- The keys of t, sorted (string keys as Lua orders strings; keys of other types by their
--- text), so that what walks or lists them does so in the same order on every run.
function tables.sorted_keys(t)
  local keys, all_strings = {}, true
  for k in pairs(t) do
    keys[#keys + 1] = k
    all_strings = all_strings and type(k) == "string"
  end
  if all_strings then
    table.sort(keys)
  else
    table.sort(keys, function(a, b)
      return tostring(a) < tostring(b)
    end)
  end
  return keys
end

return tables
