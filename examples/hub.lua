-- An example configuration for `hangar hub --config examples/hub.lua`. Every key is optional
-- except db; flags (--listen, --db, ...) and HANGAR_<KEY> variables override what is here.

-- Where the hub listens. Plain HTTP is allowed on loopback; anywhere else configure tls
-- below, or set allow_plain_http = true when a TLS-terminating proxy sits in front.
listen = "127.0.0.1:8080"

-- The store and the key that encrypts secret config variables at rest. Create both with
--   hangar hub init --db /var/lib/hangar/hub.db --master-key /etc/hangar/master.key
-- Keep the master key out of the store's backups.
db = "/var/lib/hangar/hub.db"
master_key = "/etc/hangar/master.key"

-- tls = { cert = "/etc/hangar/hub.crt", key = "/etc/hangar/hub.key" }
-- allow_plain_http = false

-- What agents are told: heartbeat every 10 s, long-poll for work for up to 30 s, and a
-- session or lease lapses after 30 silent seconds. Agents upload events in batches of
-- about max_batch_bytes (the hub accepts up to 8 MiB).
heartbeat_interval_s = 10
poll_wait_s = 30
lease_ttl_s = 30
max_batch_bytes = 1048576

-- "normal": an acknowledged write survives the hub's process being killed; "full": it also
-- survives a power loss, at the cost of a disk flush per write.
sync = "normal"

log_level = "info"

environments = {
  -- `hangar hub --config hub.lua --env dev` for a quick local hub with short leases.
  dev = {
    db = "hub-dev.db",
    master_key = "hub-dev.db.key",
    lease_ttl_s = 5,
    heartbeat_interval_s = 2,
    log_level = "debug",
  },
}
