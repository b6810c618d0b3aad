-- The hub's configuration schema (`hangar hub --config hub.lua`); examples/hub.lua shows every
-- key in use. Flags given on the command line override what the file says.
local function between(lo, hi)
  return function(v)
    return v >= lo and v <= hi, ("must be between %d and %d"):format(lo, hi)
  end
end

return {
  listen = {
    type = "string",
    default = "127.0.0.1:8080",
    doc = "HOST:PORT, [V6]:PORT or :PORT to listen on; port 0 picks a free port",
  },
  db = { type = "string", required = true, doc = "the SQLite store, created by 'hangar hub init'" },
  master_key = {
    type = "string",
    doc = "the master key file that encrypts secret config variables (default: db .. '.key')",
  },
  tls = {
    type = "table",
    doc = "serve HTTPS; without it the hub serves plain HTTP, on loopback only unless allowed",
    fields = {
      cert = { type = "string", doc = "PEM certificate chain (with key)" },
      key = { type = "string", doc = "PEM private key (with cert)" },
    },
  },
  allow_plain_http = {
    type = "boolean",
    default = false,
    doc = "serve plain HTTP on an address other than loopback (behind a TLS proxy, say)",
  },
  heartbeat_interval_s = { type = "integer", default = 10, check = between(1, 3600) },
  poll_wait_s = { type = "integer", default = 30, check = between(1, 60) },
  lease_ttl_s = { type = "integer", default = 30, check = between(1, 86400) },
  max_batch_bytes = { type = "integer", default = 1048576, check = between(1024, 8388608) },
  sweep_interval_ms = {
    type = "integer",
    check = between(10, 60000),
    doc = "how often leases and deadlines are checked (default: a tenth of lease_ttl_s)",
  },
  sync = {
    type = "enum",
    values = { "normal", "full" },
    default = "normal",
    doc = "normal: an acknowledged write survives the hub's process dying; full: also power loss",
  },
  log_level = { type = "enum", values = { "debug", "info", "warn", "error" }, default = "info" },
}
