-- Log pipeline benchmark: a task writes SIZE of 100-byte lines (default 1 GiB) with 100
-- secrets registered. Measured in one run, on the same data:
--   pipe    `cat FILE | cat > /dev/null`: what a pipe carries on this machine
--   ingest  `cat FILE` into a run log's stdout sink: redactor, framer, output parser, events,
--           spool (fsync batched), no upload
--   e2e     the same into a run log whose uploader delivers to a real hub on loopback, until
--           the hub acknowledged the finish
--
--   HANGAR_BIN=build/hangar build/hangar lua bench/bench_pipeline.lua [SIZE_MB] [pipe|ingest|e2e ...]
--
-- Environment: HANGAR_BENCH_TMP (where the data, spools and hub store go; default
-- HANGAR_TEST_TMP or /tmp). Numbers are for the machine they ran on; the hub, the agent and the
-- task share it.
local SRC = os.getenv("HANGAR_SOURCE_DIR") or "."
package.path = SRC .. "/tests/helpers/?.lua;" .. package.path
local hubtest = require "hubtest"
local testutil = require "testutil"
local pipeline = require "hangar.pipeline"
local process = require "hangar.process"
local timer = require "hangar.timer"

local args = { ... }
local size_mb = tonumber(args[1]) or 1024
local which = {}
for k = tonumber(args[1]) and 2 or 1, #args do which[args[k]] = true end
if not next(which) then which = { pipe = true, ingest = true, e2e = true } end

local TMP = (os.getenv("HANGAR_BENCH_TMP") or os.getenv("HANGAR_TEST_TMP") or "/tmp") .. "/bench-pipeline"
os.execute("rm -rf '" .. TMP .. "' && mkdir -p '" .. TMP .. "/spool'")
-- HANGAR_BENCH_DATA=FILE keeps the data there and reuses it when its size fits (profiling)
local KEEP = os.getenv("HANGAR_BENCH_DATA")
local DATA = KEEP or TMP .. "/lines.txt"
local LINE = 100

local function now()
  return timer.monotonic() / 1000
end

local function report(name, value, unit)
  print(("%-52s %10.1f %s"):format(name, value, unit))
end

-- 100 secrets of 16 to 40 bytes.
local secrets = {}
for i = 1, 100 do
  secrets[i] = ("s3cr3t-%03d-%s"):format(i, ("abcdefghijklmnopqrstuvwxyz0123456789"):sub(1, 9 + i % 25))
end

-- The data: 100-byte lines (99 characters and a newline). One line in 100 carries a secret,
-- one in 10000 is an output line; the rest is ordinary text.
local function make_data(bytes)
  local f = assert(io.open(DATA, "wb"))
  local filler = ("The quick brown fox jumps over the lazy dog; 0123456789 "):rep(3)
  local n, batch, written = 0, {}, 0
  while written < bytes do
    n = n + 1
    local head
    if n % 10000 == 0 then
      head = ("hangar_output_set:progress %d "):format(n)
    elseif n % 100 == 0 then
      head = ("line %d token=%s "):format(n, secrets[n // 100 % 100 + 1])
    else
      head = ("line %d "):format(n)
    end
    batch[#batch + 1] = (head .. filler):sub(1, LINE - 1)
    written = written + LINE
    if #batch == 4096 then
      batch[#batch + 1] = ""
      f:write(table.concat(batch, "\n"))
      batch = {}
    end
  end
  if #batch > 0 then
    batch[#batch + 1] = ""
    f:write(table.concat(batch, "\n"))
  end
  f:close()
  return written, n
end

local function cpu_of(pid)
  return testutil.cpu_seconds(pid) or 0
end

local function self_cpu()
  return cpu_of("self")
end

local function existing(path, want)
  local f = io.open(path, "rb")
  if not f then return nil end
  local size = f:seek("end")
  f:close()
  if size < want or size > want + LINE then return nil end
  return size, size // LINE
end

local bytes, nlines
if KEEP then bytes, nlines = existing(KEEP, size_mb * 1024 * 1024 // LINE * LINE) end
if not bytes then bytes, nlines = make_data(size_mb * 1024 * 1024) end
print(("data: %d MB, %d lines of %d bytes, %d secrets registered"):format(bytes // 1000000, nlines, LINE, #secrets))

local function run_cat_into(rl)
  local proc = assert(process.spawn { argv = { "/bin/cat", DATA }, env = { PATH = "/usr/bin:/bin" },
                                      stdout = rl.stdout, stderr = rl.stderr })
  local st = proc:wait()
  assert(st.exit_code == 0, "cat failed")
end

local results = {}

-- The data is read once before anything is timed: the page cache may have let it go (this
-- machine reclaims idle cache), and the pipe's rate must be the pipe's, not the disk's.
local function warm()
  local p = assert(process.spawn { argv = { "/bin/sh", "-c", "cat '" .. DATA .. "' > /dev/null" },
                                   env = { PATH = "/usr/bin:/bin" } })
  assert(p:wait().exit_code == 0)
end

if which.pipe then
  warm()
  local t0 = now()
  local p = assert(process.spawn { argv = { "/bin/sh", "-c", "cat '" .. DATA .. "' | cat > /dev/null" },
                                   env = { PATH = "/usr/bin:/bin" } })
  assert(p:wait().exit_code == 0)
  local dt = now() - t0
  results.pipe = bytes / dt / 1e6
  report("pipe: cat FILE | cat > /dev/null", results.pipe, "MB/s")
end

if which.ingest then
  -- no hub: the uploader waits for a session that never comes; only ingestion is timed
  local p = assert(pipeline.new { url = "http://127.0.0.1:9", spool_dir = TMP .. "/spool" })
  local rl = assert(p:runlog("bench_ingest"))
  for _, s in ipairs(secrets) do assert(rl:add_secret(s, "S")) end
  warm()
  local cpu0, t0 = self_cpu(), now()
  run_cat_into(rl)
  local dt = now() - t0
  local cpu = self_cpu() - cpu0
  results.ingest = bytes / dt / 1e6
  local st = rl:stats()
  report("ingest: cat FILE into a run log (100 secrets)", results.ingest, "MB/s")
  report("ingest: agent CPU per MB", cpu / (bytes / 1e6) * 1000, "ms")
  report("ingest: events stored", st.events, "")
  if results.pipe then print(("%-52s %10.3f"):format("ingest / pipe", results.ingest / results.pipe)) end
  rl:close()
  p:close()
  os.execute("rm -f '" .. TMP .. "/spool/'*")
end

if which.e2e then
  local hub = hubtest.start { name = "bench-pipeline", args = { "--lease-ttl", "600", "--log-level", os.getenv("BENCH_HUB_LOG") or "warn",
                                                                 "--max-batch-bytes", tostring(8 * 1024 * 1024) } }
  hub:post("/v1/tasks", { slug = "bench", command = { "true" } })
  local agent = hub:agent {}
  local id = hub:post("/v1/runs", { task = "bench" }).json.run_id
  local rid, lease = agent:take(5)
  assert(rid == id and agent:accept(id, lease).status == 200 and agent:start(id).status == 200)
  local p = assert(pipeline.new { url = hub.url, token = agent.token, spool_dir = TMP .. "/spool",
                                  max_batch_bytes = agent.registered.max_batch_bytes })
  local rl = assert(p:runlog(id))
  for _, s in ipairs(secrets) do assert(rl:add_secret(s, "S")) end
  warm()
  local cpu0, hub0, t0 = self_cpu(), cpu_of(hub.pid), now()
  run_cat_into(rl)
  local t_ingested = now() - t0
  local ok, err = rl:finish { status = "succeeded", exit_code = 0 }
  assert(ok, err)
  local dt = now() - t0
  local cpu, hub_cpu = self_cpu() - cpu0, cpu_of(hub.pid) - hub0
  results.e2e = bytes / dt / 1e6
  local st = p:stats()
  report("e2e: cat FILE to the hub, acknowledged", results.e2e, "MB/s")
  report("e2e: lines per second delivered", nlines / dt, "")
  report("e2e: ingestion done after", t_ingested, "s")
  report("e2e: agent CPU per MB", cpu / (bytes / 1e6) * 1000, "ms")
  report("e2e: hub CPU per MB", hub_cpu / (bytes / 1e6) * 1000, "ms")
  report("e2e: requests", st.requests, "")
  report("e2e: MB of request bodies", st.bytes / 1e6, "")
  rl:close()
  p:close()
  -- BENCH_HUB_LOG=debug BENCH_KEEP_LOG=FILE: the hub's log (each request with its time) is kept
  if os.getenv("BENCH_KEEP_LOG") then
    local f = assert(io.open(os.getenv("BENCH_KEEP_LOG"), "w"))
    f:write(hub:log())
    f:close()
  end
  hub:cleanup()
end

os.execute("rm -rf '" .. TMP .. "'")
