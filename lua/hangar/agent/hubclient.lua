-- The agent's calls to the hub's agent API (everything but register, which the core makes
-- with the API key): JSON in and out with a session token, TLS settings, and a classification
-- of each answer that tells the caller what to do next.
local http = require "hangar.http"
local json = require "hangar.json"

local hubclient = {}

local Client = {}
Client.__index = Client

--- opts: url (the hub's base URL), tls = { ca_file, cert_file, key_file }, timeout_ms.
function hubclient.new(opts)
  return setmetatable({
    url = (opts.url:gsub("/+$", "")),
    tls = opts.tls or {},
    timeout_ms = opts.timeout_ms or 30000,
  }, Client)
end

--- What an answer means for the caller:
---   "ok"            2xx
---   "retry"         no answer (refused, reset, timeout), 5xx or 429: try again after a backoff
---   "unauthorized"  401: the session lapsed (register again) or the key was revoked
---   "conflict"      409 (res.json.error.code says which)
---   "refused"       any other 4xx: retrying will not help
function hubclient.classify(res)
  if not res then
    return "retry"
  end
  local s = res.status
  if s >= 200 and s < 300 then
    return "ok"
  elseif s == 401 then
    return "unauthorized"
  elseif s == 409 then
    return "conflict"
  elseif s >= 500 or s == 429 then
    return "retry"
  end
  return "refused"
end

--- The error code of an error answer ("lease_lost"), or nil.
function hubclient.error_code(res)
  local e = res and type(res.json) == "table" and res.json.error
  return type(e) == "table" and e.code or nil
end

--- A short description of an answer, for logs and messages (never the body of a 2xx).
function hubclient.describe(res, err)
  if not res then
    return tostring(err)
  end
  local e = type(res.json) == "table" and res.json.error
  if type(e) == "table" then
    return ("%d %s: %s"):format(res.status, tostring(e.code), tostring(e.message))
  end
  return ("HTTP %d"):format(res.status)
end

--- One call. opts: token (the session token to send; the caller keeps it, so that it can tell
--- which session a 401 ended), body (a table, sent as JSON), timeout_ms. Returns the response
--- with `json` decoded (when the body is JSON), or nil and a message when no answer came.
function Client:call(method, path, opts)
  opts = opts or {}
  local res, err = http.request {
    method = method,
    url = self.url .. path,
    headers = { ["Authorization"] = "Bearer " .. tostring(opts.token) },
    json = opts.body,
    timeout_ms = opts.timeout_ms or self.timeout_ms,
    ca_file = self.tls.ca_file,
    cert_file = self.tls.cert_file,
    key_file = self.tls.key_file,
  }
  if not res then
    return nil, err
  end
  local ctype = res.headers["content-type"] or ""
  if ctype:find("json", 1, true) and res.body and #res.body > 0 then
    local ok, doc = pcall(json.decode, res.body)
    if ok then
      res.json = doc
    end
  end
  return res
end

return hubclient
