-- Helpers of the security suite (tests/security): every encoded form of a secret and a
-- byte-wise search for them in files, a throwaway PKI and hubs serving TLS with its
-- certificates, an agent run under an unprivileged uid, and raw-socket probes of a hub
-- (tests/helpers/security_wire.py). Runs inside `hangar lua` (busted specs).
--
--   local security = require "security"
--   local forms = security.forms("s3cret/\"value")         -- { {name=, text=}, ... }
--   local hits = security.scan({ hub.dir, agent.dir }, forms) -- { "hub.db-wal: base64 std @1", ... }
--   local pki = security.pki(dir)                          -- ca, other_ca, server, wrong_host, self_signed
--   local tls = security.tls_hub(pki, "server")            -- a hubtest hub serving HTTPS
--   local agent = security.agent(hub, { uid = 65534 })     -- `hangar agent` as that user
--   local r = security.wire(hub, "garbage")                -- what the hub answered on the socket
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local testutil = require "testutil"
local process = require "hangar.process"
local crypto = require "hangar.crypto"
local json = require "hangar.json"
local http = require "hangar.http"

local security = {}

local SRC = testutil.SRC
local q, slurp, write = testutil.q, testutil.slurp, testutil.write

security.q, security.slurp, security.write = q, slurp, write

--- Runs a shell command; returns its exit code and its output (stdout and stderr).
security.sh = testutil.sh

-- ---- encoded forms of a secret ----

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = {}
    for k = 3, 0, -1 do
      local v = (n >> (6 * k)) & 63
      chars[#chars + 1] = B64:sub(v + 1, v + 1)
    end
    if not b then
      chars[3], chars[4] = "=", "="
    elseif not c then
      chars[4] = "="
    end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end
security.b64 = b64

-- The base64 characters that depend on the secret alone when it starts `align` bytes into
-- the encoded data: whatever surrounds it, an encoding of it at that alignment holds them.
local function b64_core(secret, align)
  local lo = b64(("\0"):rep(align) .. secret .. "\0\0\0")
  local hi = b64(("\255"):rep(align) .. secret .. "\255\255\255")
  local first, last
  for i = 1, #lo do
    if lo:sub(i, i) == hi:sub(i, i) then
      first = first or i
      last = i
    elseif first then
      break
    end
  end
  return lo:sub(first, last)
end

local UNRESERVED = "[A-Za-z0-9%-%._~]"

local function percent(s, fmt)
  return (s:gsub(".", function(c)
    if c:match(UNRESERVED) then
      return c
    end
    return fmt:format(c:byte())
  end))
end

-- JSON string escaping as encoders write it (cJSON, Python's json): quote, backslash and
-- control characters; slash_too also writes "/" as "\/".
local function json_escape(s, slash_too)
  return (s:gsub('[%c"\\/]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "/" then return slash_too and "\\/" or "/" end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return ("\\u%04x"):format(c:byte())
  end))
end
security.json_escape = json_escape

--- Every form of a secret the redactor promises to mask (raw; base64 standard and URL-safe
--- at the three alignments, padded or not; percent-encoded with upper- and lower-case hex;
--- JSON-escaped with and without "\/"), plus each of those as it looks once stored inside a
--- JSON string (the spool, the hub's events): a form that escaped redaction shows up there
--- escaped, not as printed. Returns a list of { name, text }, without duplicates.
function security.forms(secret)
  local list, seen = {}, {}
  local function add(name, text)
    if not seen[text] then
      seen[text] = true
      list[#list + 1] = { name = name, text = text }
    end
  end
  add("raw", secret)
  for align = 0, 2 do
    local core = b64_core(secret, align)
    add("base64 std @" .. align, core)
    add("base64 url @" .. align, (core:gsub("[+/]", { ["+"] = "-", ["/"] = "_" })))
  end
  add("percent upper", percent(secret, "%%%02X"))
  add("percent lower", percent(secret, "%%%02x"))
  add("json", json_escape(secret))
  add("json \\/", json_escape(secret, true))
  for i = 1, #list do
    add(list[i].name .. " (stored in JSON)", json_escape(list[i].text))
  end
  return list
end

-- ---- searching files byte by byte ----

--- Every regular file under each path (a directory is walked; a file is itself).
function security.files(paths)
  local out = {}
  for _, path in ipairs(paths) do
    local p = assert(io.popen("find " .. q(path) .. " -type f 2>/dev/null"))
    for f in p:lines() do
      out[#out + 1] = f
    end
    p:close()
  end
  return out
end

--- Searches every file under paths for each form (a list of {name, text}, or a string: its
--- raw text). Returns the hits as "FILE: FORM" texts (empty when none). opts.except: a
--- function(path) true for files to skip.
function security.scan(paths, forms, opts)
  opts = opts or {}
  if type(forms) == "string" then
    forms = { { name = "raw", text = forms } }
  end
  local hits = {}
  for _, f in ipairs(security.files(paths)) do
    if not (opts.except and opts.except(f)) then
      local data = slurp(f) or ""
      for _, form in ipairs(forms) do
        if data:find(form.text, 1, true) then
          hits[#hits + 1] = f .. ": " .. form.name
        end
      end
    end
  end
  return hits
end

--- How many files the scan looked at (a scan that found nothing must have looked).
function security.count_files(paths)
  return #security.files(paths)
end

-- ---- certificates ----

--- A throwaway PKI in dir: ca (Test CA), other_ca (an unrelated CA), server (127.0.0.1 and
--- localhost, signed by ca), wrong_host (wrong.example, signed by ca), self_signed (127.0.0.1,
--- signed by itself). Returns name -> { cert = path, key = path }.
function security.pki(dir)
  local script = [[
set -e
cd "$1"
cat > ext.cnf <<'EOF'
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_local]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[leaf_wrong]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong.example
EOF
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
ca() { key "$1"; openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$1.pem"; }
leaf() {
  key "$1"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -extensions "$3" -out "$1.pem"
}
ca ca "Hangar Security Test CA"
ca other_ca "Unrelated Test CA"
leaf server 127.0.0.1 leaf_local
leaf wrong_host wrong.example leaf_wrong
key self_signed
openssl req -x509 -new -key self_signed.key -subj "/CN=127.0.0.1" -days 2 -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -out self_signed.pem
]]
  write(dir .. "/pki.sh", script)
  local code, out = security.sh("sh " .. q(dir .. "/pki.sh") .. " " .. q(dir))
  assert(code == 0, "making the test PKI failed:\n" .. out)
  local pki = {}
  for _, name in ipairs({ "ca", "other_ca", "server", "wrong_host", "self_signed" }) do
    pki[name] = { cert = dir .. "/" .. name .. ".pem", key = dir .. "/" .. name .. ".key" }
  end
  return pki
end

--- A hub (hubtest's, with its store and admin key) serving HTTPS with the certificate
--- pki[cert_name]. hub.url is its https:// URL; requests from the test go through
--- security.call with a CA file.
function security.tls_hub(pki, cert_name, opts)
  opts = opts or {}
  local hub = hubtest.start { name = "sec-tls-" .. cert_name, args = opts.args }
  hub:stop()
  local ready = hub.dir .. "/tls-ready"
  local argv = { testutil.BIN, "hub", "serve", "--db", hub.db, "--listen", "127.0.0.1:0", "--log-level", "debug",
                 "--tls-cert", pki[cert_name].cert, "--tls-key", pki[cert_name].key, "--ready-file", ready }
  for _, a in ipairs(opts.args or {}) do
    argv[#argv + 1] = a
  end
  hub.pid = testutil.spawn_bg(argv, hub.log_path)
  hub.url = hubtest.wait_for(function()
    local text = slurp(ready)
    return text and text:match("^(https://%S+)\n")
  end, 15000)
  assert(hub.url, "the TLS hub did not start:\n" .. hub:log())
  return hub
end

--- A request to a hub through hangar.http; opts: key (default the hub's admin key), body
--- (table: JSON), ca_file, timeout_ms. Returns the response (json decoded) or nil, message.
function security.call(hub, method, path, opts)
  opts = opts or {}
  local res, err = http.request {
    method = method,
    url = hub.url .. path,
    headers = { Authorization = "Bearer " .. (opts.key or hub.admin_key) },
    json = opts.body,
    ca_file = opts.ca_file,
    timeout_ms = opts.timeout_ms or 20000,
  }
  if res and res.body and #res.body > 0 and (res.headers["content-type"] or ""):find("json", 1, true) then
    local ok, doc = pcall(json.decode, res.body)
    res.json = ok and doc or nil
  end
  return res, err
end

--- The hub's debug log lines that record a request (what reached its API).
function security.requests_logged(hub)
  local n = 0
  for _ in hub:log():gmatch('"msg":"request"') do
    n = n + 1
  end
  return n
end

-- ---- an agent under another uid ----

--- `hangar agent` for hub (agenttest's), its key read from the environment (key_env, scrubbed
--- by the agent). When the suite runs as root, the agent (and so its runs) runs as opts.uid
--- (default 65534, nobody) through setpriv: a task then has exactly the rights of the agent's
--- user, as it would in a real deployment; otherwise it runs as the current user. opts: as
--- agenttest.start's (labels, extra, pass_env, secret_env, env, key, wait, ...).
function security.agent(hub, opts)
  local o = { name = "sec-agent", capacity = 2 }
  for k, v in pairs(opts or {}) do
    o[k] = v
  end
  o.key_source = "env"
  o.kill_grace_s = 1
  o.uid = o.uid or 65534
  return agenttest.start(hub, o)
end

--- A directory the agent's user (and so its runs) may write into, for a task to leave what
--- it found; the test reads it afterwards.
function security.shared_dir(name)
  local dir
  if agenttest.am_root() and not agenttest.cannot_run_as(65534) then
    -- Beside the agent's files, where its user can reach (the build tree may be closed to it).
    dir = agenttest.other_uid_home(65534) .. "/" .. (name or "sec-drop") .. "-" .. crypto.hex_encode(crypto.random(4))
    assert(os.execute("mkdir -p " .. q(dir)))
  else
    dir = testutil.tmpdir(name or "sec-drop")
  end
  assert(os.execute("chmod 777 " .. q(dir)))
  return dir
end

-- ---- raw sockets ----

--- Runs tests/helpers/security_wire.py MODE against the hub's port; returns its JSON report.
--- args: extra arguments (strings).
function security.wire(hub, mode, args)
  local port = assert(tonumber(hub.url:match(":(%d+)$")), "no port in " .. hub.url)
  local cmd = "python3 " .. q(SRC .. "/tests/helpers/security_wire.py") .. " " .. q(mode) .. " 127.0.0.1 " .. port
  for _, a in ipairs(args or {}) do
    cmd = cmd .. " " .. q(a)
  end
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  local ok, doc = pcall(json.decode, out)
  assert(ok and type(doc) == "table", "security_wire.py " .. mode .. " said:\n" .. out)
  return doc
end

--- Starts security_wire.py MODE in the background; :wait() gives its JSON report.
function security.wire_async(hub, mode, args)
  local port = assert(tonumber(hub.url:match(":(%d+)$")))
  local argv = { "python3", SRC .. "/tests/helpers/security_wire.py", mode, "127.0.0.1", tostring(port) }
  for _, a in ipairs(args or {}) do
    argv[#argv + 1] = a
  end
  local p = assert(process.spawn { argv = argv, env = { PATH = "/usr/bin:/bin" }, stdout = "capture", stderr = "capture" })
  return {
    wait = function()
      local r = p:wait()
      local ok, doc = pcall(json.decode, r.stdout or "")
      assert(ok and type(doc) == "table", "security_wire.py " .. mode .. " said:\n" .. tostring(r.stdout) .. tostring(r.stderr))
      return doc
    end,
  }
end

--- A random string of n bytes drawn from letters and digits.
function security.random_word(n)
  local alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
  local out = {}
  for i, b in ipairs({ crypto.random(n):byte(1, n) }) do
    local k = b % #alphabet + 1
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

return security
