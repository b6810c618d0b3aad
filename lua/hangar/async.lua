-- Straight-line concurrency on top of hangar.task: start work, wait for it, and run many
-- pieces of work with a bound on how many run at once.
--
--   local async = require "hangar.async"
--   local t = async.run(fetch, url)          -- starts now, runs alongside the caller
--   local body = async.await(t)              -- the results of fetch, or its error raised
--   local pages = async.map(urls, fetch, 4)  -- at most 4 fetches at a time, results in order
--
-- Every function here works inside a task and, where the runtime allows blocking calls
-- (hangar lua, busted specs), in a main chunk too.
local task = require "hangar.task"

local async = {}

--- Starts fn(...) as a new task and returns the task; it first runs once the caller yields
--- (waits for something) or returns to the loop.
function async.run(fn, ...)
  return task.spawn(fn, ...)
end

--- Waits for a task and returns its results; a task that failed raises its error here.
function async.await(t)
  return t:wait()
end

--- Waits for every task in the list, whatever happens to the others. Returns a list with,
--- for each task in order, { ok = true, n = <count>, ... results } or { ok = false, err = msg }.
function async.join(tasks)
  local out = {}
  for i, t in ipairs(tasks) do
    local r = table.pack(pcall(t.wait, t))
    if r[1] then
      out[i] = table.pack(table.unpack(r, 2, r.n))
      out[i].ok = true
    else
      out[i] = { ok = false, err = r[2] }
    end
  end
  return out
end

--- Calls fn(item, index) for every item of the list, with at most `limit` calls in flight
--- (default: all at once). Returns the list of first results, in the items' order. When a
--- call fails, the others still finish; then the first error (by index) is raised.
function async.map(items, fn, limit)
  local n = #items
  limit = math.min(limit or n, n)
  if limit < 1 then
    return {}
  end
  local results, errors = {}, {}
  local next_index = 0
  local function worker()
    while true do
      next_index = next_index + 1
      local i = next_index
      if i > n then
        return
      end
      local ok, value = pcall(fn, items[i], i)
      if ok then
        results[i] = value
      else
        errors[i] = value
      end
    end
  end
  local workers = {}
  for w = 1, limit do
    workers[w] = task.spawn(worker)
  end
  for _, w in ipairs(workers) do
    w:wait()
  end
  for i = 1, n do
    if errors[i] ~= nil then
      error(errors[i], 0)
    end
  end
  return results
end

--- Runs the functions concurrently (at most `limit` at once) and returns their first
--- results in order; raises the first error once all have finished.
function async.all(fns, limit)
  return async.map(fns, function(fn) return fn() end, limit)
end

return async
