-- The remote scheduler: a run is a job on a remote service reached over HTTP.
--
--   start     POST {url}/jobs                    -> handle { job_id, url }
--   wait      GET  {handle.url}/log?from=LINE    streamed straight into ctx.stdout (the bytes
--                                                never enter Lua), then GET {handle.url} for
--                                                the exit code
--   cancel    POST {handle.url}/cancel {grace_s}
--   cleanup   DELETE {handle.url}
--   reattach  GET  {handle.url}: the job is still there, so watching resumes
--
-- Resuming without duplicates: the log is asked for from the first line the run's log does not
-- hold yet. ctx.stored_lines(stream) says how many complete lines of a stream the run's log
-- holds, counted again from the spool after a restart; lines the agent read but had not
-- stored when it died are asked for again, lines it stored are not.
--
-- Settings (schedulers.remote): url (the service's base URL, required), poll_ms (between
-- status checks while a log stream cannot be opened, default 200).
local http = require "hangar.http"
local json = require "hangar.json"
local timer = require "hangar.timer"
local config = require "hangar.config"

local scheduler = {}

local SETTINGS = {
  url = { type = "string", required = true, check = function(v)
    return v:match("^https?://[^/]+$") ~= nil, "must be http(s)://HOST:PORT"
  end },
  poll_ms = { type = "integer", default = 200, check = function(v) return v > 0, "must be positive" end },
  kill_grace_s = { type = "number" },
}

function scheduler.configure(settings)
  return config.check(settings or {}, SETTINGS, { label = "schedulers.remote" })
end

local function call(method, url, body)
  local res, err = http.request {
    method = method,
    url = url,
    json = body,
    headers = body and { ["Content-Type"] = "application/json" } or nil,
    timeout_ms = 10000,
  }
  if not res then
    return nil, err
  end
  local doc = nil
  if res.body and res.body ~= "" and (res.headers["content-type"] or ""):find("json", 1, true) then
    local ok, v = pcall(json.decode, res.body)
    doc = ok and v or nil
  end
  return res, doc
end

local function param(run, name, default)
  local v = type(run.params) == "table" and run.params[name]
  if v == nil or v == json.null then
    return default
  end
  return v
end

function scheduler.start(run, ctx)
  local base = ctx.settings.url
  local res, doc = call("POST", base .. "/jobs", {
    run_id = run.id,
    lines = param(run, "lines", 5),
    interval_ms = param(run, "interval_ms", 50),
    exit_code = param(run, "exit_code", 0),
    hold_after = param(run, "hold_after", nil),
    text = param(run, "text", "line"),
  })
  if not res then
    return nil, "the job service cannot be reached: " .. tostring(doc)
  end
  if res.status ~= 201 or type(doc) ~= "table" then
    return nil, ("the job service refused the job: HTTP %d %s"):format(res.status, tostring(res.body))
  end
  ctx.system(("remote job %s created"):format(doc.id))
  return { job_id = doc.id, url = base .. doc.url }
end

-- The first line of the job's log that the run's log does not hold yet.
local function resume_line(ctx, handle)
  if type(ctx.stored_lines) == "function" then
    return ctx.stored_lines("stdout")
  end
  if handle.reattached then
    ctx.log.warn("remote: the agent offers no ctx.stored_lines; resuming the log from its first line, so lines may repeat",
      { job = handle.job_id })
  end
  return 0
end

function scheduler.wait(run, handle, ctx)
  while true do
    local from = resume_line(ctx, handle)
    ctx.log.info("remote: streaming the job's log", { job = handle.job_id, from = from })
    local res, err = http.request {
      url = handle.url .. "/log?from=" .. from,
      sink = ctx.stdout,
      connect_timeout_ms = 5000,
    }
    if res and res.status == 404 then
      return { error = "the remote job " .. handle.job_id .. " is gone" }
    end
    local st, doc = call("GET", handle.url)
    if st and st.status == 200 and type(doc) == "table" and doc.state ~= "running" then
      if doc.exit_code == nil or doc.exit_code == json.null then
        return { error = "the remote job ended without an exit code" }
      end
      return { exit_code = doc.exit_code }
    end
    -- The stream broke, or the service is away: try again shortly, from what is stored.
    if not res then
      ctx.log.info("remote log stream interrupted", { job = handle.job_id, error = err })
    end
    timer.sleep(ctx.settings.poll_ms)
  end
end

function scheduler.cancel(run, handle, ctx, grace_s)
  local res, err = call("POST", handle.url .. "/cancel", { grace_s = grace_s })
  if not res then
    error("cannot reach the job service to cancel: " .. tostring(err))
  end
end

function scheduler.cleanup(run, handle, ctx)
  call("DELETE", handle.url)
end

function scheduler.reattach(run, handle, ctx)
  local res, doc = call("GET", handle.url)
  if not res then
    return nil, "the job service cannot be reached: " .. tostring(doc)
  end
  if res.status == 404 then
    return nil, "the remote job " .. handle.job_id .. " is gone"
  end
  return { job_id = handle.job_id, url = handle.url, reattached = true }
end

return scheduler
