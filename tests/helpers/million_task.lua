-- A task's program for the agent's million-line spec: prints pipeline_lines' lines 1..N with
-- the secret it got in its environment, stopping at two points until the test says go.
--
--   hangar lua tests/helpers/million_task.lua N DIR AT1 AT2
--       DB_PASSWORD must hold the secret pipeline_lines prints (exit 3 otherwise, before any
--       line). After line ATk it creates DIR/atk and waits for DIR/gok (exit 4 after 5 min).
package.path = (arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local lines = require "pipeline_lines"
local timer = require "hangar.timer"

local n, dir, at1, at2 = tonumber(arg[1]), arg[2], tonumber(arg[3]), tonumber(arg[4])

-- The lines spell the secret pipeline_lines knows; the run must have been handed that very
-- value, or the spec would be checking masking of something the run never got.
if os.getenv("DB_PASSWORD") ~= lines.secret then
  io.stderr:write("DB_PASSWORD is not the expected secret\n")
  os.exit(3)
end

local function touch(path)
  local f = assert(io.open(path, "w"))
  f:close()
end

local function wait_for_go(k)
  touch(dir .. "/at" .. k)
  for _ = 1, 5 * 60 * 50 do
    local f = io.open(dir .. "/go" .. k)
    if f then
      f:close()
      return
    end
    timer.sleep(20)
  end
  io.stderr:write("no go" .. k .. " within 5 minutes\n")
  os.exit(4)
end

local buf = {}
for i = 1, n do
  buf[#buf + 1] = lines.printed(i)
  local stop = i == at1 and 1 or i == at2 and 2 or nil
  if #buf == 512 or i == n or stop then
    buf[#buf + 1] = ""
    io.stdout:write(table.concat(buf, "\n"))
    buf = {}
  end
  if stop then
    io.stdout:flush()
    wait_for_go(stop)
  end
end
io.stdout:flush()
