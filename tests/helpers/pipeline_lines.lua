-- The lines a test task prints through the agent's log pipeline, and what the hub must end up
-- with: some carry a secret raw, base64-encoded, percent-encoded or JSON-escaped (each masked
-- as [REDACTED]), some are longer than one event may be (delivered as partial pieces).
--
--   local lines = require "pipeline_lines"
--   lines.printed(i), lines.expected(i)        line i (from 1) as printed and as delivered
--   hangar lua tests/helpers/pipeline_lines.lua N [AT MS]
--       prints lines 1..N to stdout, pausing MS milliseconds after line AT
local M = {}

-- 12 bytes (base64 ends on a group boundary); '/', '"', '+', '@' and '!' change under the
-- encodings.
M.secret = 'p@ss/w"rd+Z!'

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    for k = 3, 0, -1 do
      local v = (n >> (6 * k)) & 63
      out[#out + 1] = B64:sub(v + 1, v + 1)
    end
  end
  return table.concat(out)
end

local function percent(s)
  return (s:gsub("[^%w%-%._~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function json_escaped(s)
  return (s:gsub('[\\"/]', { ["\\"] = "\\\\", ['"'] = '\\"', ["/"] = "\\/" }))
end

local FORMS = {
  [7] = M.secret,
  [17] = base64(M.secret),
  [27] = percent(M.secret),
  [37] = json_escaped(M.secret),
}

local FILL = ("abcdefghijklmnopqrstuvwxyz0123456789"):rep(3)
local LONG = 100 * 1024

-- The line with the secret's form spelled `secret`, so that printed and expected differ only
-- there.
local function line(i, masked)
  local form = FORMS[i % 1000]
  if form then
    return ("line %d has %s in it"):format(i, masked and "[REDACTED]" or form)
  end
  if i % 100000 == 50 then
    -- longer than an event: a run of digits cut at 100 KiB, tagged with the line number
    local head = ("line %d long "):format(i)
    return head .. ("0123456789"):rep(LONG // 10):sub(1, LONG - #head)
  end
  return ("line %d %s"):format(i, FILL:sub(1, i % 97))
end

function M.printed(i)
  return line(i, false)
end

function M.expected(i)
  return line(i, true)
end

-- As a program: print lines 1..N, in large writes.
if arg and arg[0] and arg[0]:match("pipeline_lines%.lua$") then
  local n, pause_at, pause_ms = ...
  n, pause_at, pause_ms = tonumber(n) or 1000, tonumber(pause_at), tonumber(pause_ms)
  local buf = {}
  for i = 1, n do
    buf[#buf + 1] = line(i, false)
    if #buf == 512 or i == n or i == pause_at then
      buf[#buf + 1] = ""
      io.stdout:write(table.concat(buf, "\n"))
      buf = {}
    end
    if i == pause_at then
      io.stdout:flush()
      require("hangar.timer").sleep(pause_ms)
    end
  end
  io.stdout:flush()
end

return M
