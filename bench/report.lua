-- Runs every benchmark and rewrites the generated parts of docs/performance.md (bench/run
-- calls this; see there). The parts between <!-- bench/run:NAME --> and <!-- /bench/run:NAME -->
-- are replaced; everything else in the file (the hand-written analysis) is kept as it is.
--
-- Environment (bench/run sets it): HANGAR_SOURCE_DIR, HANGAR_BIN, HANGAR_BENCH_BIN,
-- HANGAR_TEST_TMP, BENCH_BUILD (the build directory as the reader should type it).
-- BENCH_DOC: the file to rewrite (default docs/performance.md). BENCH_SMALL=1: tiny sizes, for
-- checking that everything still runs (the figures then mean nothing).
local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local BUILD = os.getenv("BENCH_BUILD") or "build-release"
local DOC = os.getenv("BENCH_DOC") or (SRC .. "/docs/performance.md")
local SMALL = os.getenv("BENCH_SMALL") == "1"
local BENCH_BIN = assert(os.getenv("HANGAR_BENCH_BIN"), "HANGAR_BENCH_BIN is not set")

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return (out:gsub("%s+$", ""))
end

local function loadavg()
  return (slurp("/proc/loadavg") or ""):match("^(%S+ %S+ %S+)") or "?"
end

-- ---- the benchmarks ----

-- Each benchmark: what the reader types (relative to the source tree, with the build
-- directory), the environment it needs beyond bench/run's, and the sizes of a small run.
local BENCHES = {
  {
    name = "bench_agent.lua",
    title = "System: dispatch, throughput, memory",
    script = "bench/bench_agent.lua",
    small = "DISPATCH_RUNS=5 THROUGHPUT_RUNS=40 CONCURRENT_RUNS=4 POLL_AGENTS=10",
  },
  {
    name = "bench_pipeline.lua",
    title = "Log pipeline",
    script = "bench/bench_pipeline.lua",
    args = SMALL and "2" or "",
  },
  {
    name = "bench_hub.lua",
    title = "Hub",
    script = "bench/bench_hub.lua",
    small = "BATCHES=1 POLLS=10",
  },
}

local function command_line(b)
  local env = "HANGAR_SOURCE_DIR=$PWD HANGAR_BIN=" .. BUILD .. "/hangar HANGAR_BENCH_BIN=" .. BUILD .. "/bench"
  if SMALL and b.small then env = env .. " " .. b.small end
  local line = env .. " " .. BUILD .. "/hangar lua " .. b.script
  if b.args and b.args ~= "" then line = line .. " " .. b.args end
  return line
end

local function run_bench(b)
  local env = ("HANGAR_SOURCE_DIR=%s HANGAR_BIN=%s"):format(q(SRC), q(BIN))
  if SMALL and b.small then env = env .. " " .. b.small end
  local cmd = ("cd %s && env %s %s lua %s %s 2>&1"):format(q(SRC), env, q(BIN), q(b.script), b.args or "")
  io.stderr:write("bench/run: ", command_line(b), "\n")
  local t0 = os.time()
  local p = assert(io.popen(cmd))
  local lines = {}
  for line in p:lines() do
    lines[#lines + 1] = line
    io.stderr:write("  ", line, "\n")
  end
  local ok, _, code = p:close()
  if not ok then
    error(("%s failed (exit %s):\n%s"):format(b.script, tostring(code), table.concat(lines, "\n")), 0)
  end
  b.output = table.concat(lines, "\n")
  b.seconds = os.time() - t0
end

-- ---- the machine ----

local function machine()
  local cpu = (slurp("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  local mem = tonumber((slurp("/proc/meminfo") or ""):match("MemTotal:%s+(%d+)")) or 0
  return {
    nproc = sh("nproc"),
    cpu = cpu,
    kernel = sh("uname -sr"),
    memory = ("%.0f GiB"):format(mem / 1048576),
    commit = sh("cd " .. q(SRC) .. " && git rev-parse --short HEAD 2>/dev/null"),
    dirty = sh("cd " .. q(SRC) .. " && git status --porcelain --untracked-files=no 2>/dev/null") ~= "",
  }
end

-- ---- the figures ----

local function figures(text)
  local out = {}
  for k, v in text:gmatch("([%w_.]+) (%-?[%d.]+)\n") do out[k] = tonumber(v) end
  local last_k, last_v = text:match("([%w_.]+) (%-?[%d.]+)$")
  if last_k then out[last_k] = tonumber(last_v) end
  return out
end

local function num(v, decimals)
  if v == nil then return "?" end
  local s = ("%." .. (decimals or 0) .. "f"):format(v)
  -- thousands separators on the integer part
  local int, rest = s:match("^(%-?%d+)(.*)$")
  int = int:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^(%-?),", "%1")
  return int .. rest
end

local function us(v) return v and (num(v / 1000, 2) .. " ms") or "?" end
local function mib(kib) return kib and (num(kib / 1024, 1) .. " MiB") or "?" end
local function kib(v) return v and (num(v, 1) .. " KiB") or "?" end
local function ratio(a, b)
  if not a or not b or b == 0 then return "–" end
  return ("%.2f×"):format(a / b)
end
local function met(ok)
  if ok == nil then return "" end
  return ok and "**met**" or "**not met**"
end

local function system_table(f)
  local rows = {
    { "figure", "measured", "floor, same run", "ratio", "target", "" },
    { "dispatch p50: `POST /v1/runs` → no-op process running", us(f["dispatch.to_running.p50_us"]),
      us(f["floor.spawn_to_running.p50_us"]) .. " (fork + exec)", ratio(f["dispatch.to_running.p50_us"], f["floor.spawn_to_running.p50_us"]),
      "< 2 ms", met(f["dispatch.to_running.p50_us"] and f["dispatch.to_running.p50_us"] < 2000) },
    { "dispatch p99: → process running", us(f["dispatch.to_running.p99_us"]),
      us(f["floor.spawn_to_running.p99_us"]), ratio(f["dispatch.to_running.p99_us"], f["floor.spawn_to_running.p99_us"]), "", "" },
    { "p50: `POST /v1/runs` → run recorded as finished", us(f["dispatch.to_finished.p50_us"]),
      us(f["floor.spawn_to_reaped.p50_us"]) .. " (fork + exec + wait)", ratio(f["dispatch.to_finished.p50_us"], f["floor.spawn_to_reaped.p50_us"]), "", "" },
    { "p99: → run recorded as finished", us(f["dispatch.to_finished.p99_us"]),
      us(f["floor.spawn_to_reaped.p99_us"]), ratio(f["dispatch.to_finished.p99_us"], f["floor.spawn_to_reaped.p99_us"]), "", "" },
    { "CPU per dispatched run: agent / hub", us(f["dispatch.agent_cpu_per_run_us"]) .. " / " .. us(f["dispatch.hub_cpu_per_run_us"]),
      "", "", "", "" },
    { ("throughput, one agent of capacity %d: no-op runs/s"):format(f["throughput.capacity"] or 32), num(f["throughput.runs_per_s"]),
      num(f["floor.parallel_runs_per_s"]) .. " (fork + exec + wait, 32 at once)", ratio(f["throughput.runs_per_s"], f["floor.parallel_runs_per_s"]),
      "≥ 500", met(f["throughput.runs_per_s"] and f["throughput.runs_per_s"] >= 500) },
    { "CPU per run at full capacity: agent / hub", us(f["throughput.agent_cpu_per_run_us"]) .. " / " .. us(f["throughput.hub_cpu_per_run_us"]),
      "", "", "", "" },
    { "agent idle: RSS", mib(f["agent.idle.rss_kib"]), mib(f["floor.agent.rss_kib"]) .. " (floor_agent)",
      ratio(f["agent.idle.rss_kib"], f["floor.agent.rss_kib"]), "floor + 2 MiB",
      met(f["agent.idle.rss_kib"] and f["floor.agent.rss_kib"] and f["agent.idle.rss_kib"] - f["floor.agent.rss_kib"] <= 2048) },
    { "agent idle: private dirty", mib(f["agent.idle.private_dirty_kib"]), mib(f["floor.agent.private_dirty_kib"]),
      ratio(f["agent.idle.private_dirty_kib"], f["floor.agent.private_dirty_kib"]), "", "" },
    { ("agent with %d runs sleeping: RSS / private dirty"):format(f["agent.concurrent_runs"] or 100),
      mib(f["agent.concurrent.rss_kib"]) .. " / " .. mib(f["agent.concurrent.private_dirty_kib"]), "", "", "", "" },
    { "agent idle again once they ended: RSS / private dirty",
      mib(f["agent.idle_after.rss_kib"]) .. " / " .. mib(f["agent.idle_after.private_dirty_kib"]), "", "", "", "" },
    { "private dirty per concurrent run", kib(f["agent.per_run.private_dirty_kib"]), "", "", "< 100 KiB",
      met(f["agent.per_run.private_dirty_kib"] and f["agent.per_run.private_dirty_kib"] < 100) },
    { "hub idle: RSS / private dirty", mib(f["hub.idle.rss_kib"]) .. " / " .. mib(f["hub.idle.private_dirty_kib"]),
      mib(f["floor.hub.rss_kib"]) .. " / " .. mib(f["floor.hub.private_dirty_kib"]) .. " (floor_hub)",
      ratio(f["hub.idle.rss_kib"], f["floor.hub.rss_kib"]), "", "" },
    { ("hub with %s agents long-polling: RSS / private dirty"):format(num(f["hub.polling_agents"])),
      mib(f["hub.polling.rss_kib"]) .. " / " .. mib(f["hub.polling.private_dirty_kib"]), "", ratio(f["hub.polling.rss_kib"], f["floor.hub.rss_kib"]), "", "" },
    { "hub private dirty per polling agent", kib(f["hub.per_agent.private_dirty_kib"]), "", "", "", "" },
  }
  local out = {}
  for i, r in ipairs(rows) do
    out[#out + 1] = "| " .. table.concat(r, " | ") .. " |"
    if i == 1 then out[#out + 1] = "| --- | ---: | ---: | ---: | ---: | --- |" end
  end
  return table.concat(out, "\n")
end

-- ---- the redactor ----

-- The redactor's rate by number of registered secrets (bench/bench_redact.c, in memory). The
-- counts take turns within each round, so that a burst of load on the shared machine falls on
-- all of them alike; each count's figure is the median of its rounds.
local REDACT = {
  name = "bench_redact",
  counts = { 1, 100, 1000 },
  mib = SMALL and 4 or 256,
  rounds = SMALL and 1 or 5,
  pair_mib = SMALL and 4 or 32,
  pair_rounds = SMALL and 3 or 21,
}

function REDACT.command_line(count)
  return ("%s/bench/bench_redact %s %d"):format(BUILD, count, REDACT.mib)
end

local function rounds(n)
  return n == 1 and "1 round" or (n .. " rounds")
end

local function median(list)
  local s = {}
  for i, v in ipairs(list) do s[i] = v end
  table.sort(s)
  local n = #s
  if n == 0 then return nil end
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

local function run_redact()
  local r = REDACT
  r.rates, r.framer, r.none, r.lines = {}, {}, {}, {}
  for _, c in ipairs(r.counts) do r.rates[c] = {} end
  local t0 = os.time()
  for round = 1, r.rounds do
    for _, c in ipairs(r.counts) do
      io.stderr:write(("bench/run: %s (round %d of %d)\n"):format(r.command_line(c), round, r.rounds))
      local cmd = ("%s %d %d 2>&1"):format(q(BENCH_BIN .. "/bench_redact"), c, r.mib)
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      local ok, _, code = p:close()
      if not ok then
        error(("bench_redact %d failed (exit %s):\n%s"):format(c, tostring(code), out), 0)
      end
      io.stderr:write((out:gsub("[^\n]+", "  %0")))
      local rate = out:match("redactor %(" .. c .. " secrets%) %+ framer:%s*([%d.]+) MB/s")
      local framer = out:match("framer only:%s*([%d.]+) MB/s")
      local none = out:match("redactor %(no secrets%) %+ framer:%s*([%d.]+) MB/s")
      if not (rate and framer and none) then
        error("bench_redact printed no figures:\n" .. out, 0)
      end
      table.insert(r.rates[c], tonumber(rate))
      table.insert(r.framer, tonumber(framer))
      table.insert(r.none, tonumber(none))
      r.lines[#r.lines + 1] = ("round %d: %s"):format(round, (out:match("(redactor %(%d+ secrets%)[^\n]*)") or ""))
    end
  end
  -- The verdict: the fewest and the most secrets alternating within one process, on CPU time,
  -- so that both meet the same load and the same state of the caches' other tenants.
  local first, last = r.counts[1], r.counts[#r.counts]
  r.pair_command = ("%s/bench/bench_redact pair %d %d %d %d"):format(BUILD, first, last, r.pair_mib, r.pair_rounds)
  io.stderr:write(("bench/run: %s\n"):format(r.pair_command))
  local p = assert(io.popen(("%s pair %d %d %d %d 2>&1"):format(q(BENCH_BIN .. "/bench_redact"), first, last,
    r.pair_mib, r.pair_rounds)))
  local out = p:read("a")
  local ok, _, code = p:close()
  if not ok then
    error(("bench_redact pair failed (exit %s):\n%s"):format(tostring(code), out), 0)
  end
  io.stderr:write((out:gsub("[^\n]+", "  %0")))
  local ratio, lo, hi = out:match("ratio ([%d.]+) %(quartiles ([%d.]+)%-([%d.]+)%)")
  if not ratio then
    error("bench_redact pair printed no ratio:\n" .. out, 0)
  end
  r.pair = { ratio = tonumber(ratio), lo = tonumber(lo), hi = tonumber(hi), line = out:match("[^\n]+") }
  r.lines[#r.lines + 1] = "pair: " .. r.pair.line
  r.seconds = os.time() - t0
end

-- Met when the rate with the most secrets is at least this share of the rate with one: the
-- cost per byte scanned must not grow with the number of secrets.
local REDACT_TARGET = 0.9

local function redact_section()
  local r = REDACT
  local first, last = r.counts[1], r.counts[#r.counts]
  local base = median(r.rates[first])
  local rows = {
    "| secrets registered | redactor + framer (median) | each round | vs 1 secret |",
    "| ---: | ---: | ---: | ---: |",
  }
  for _, c in ipairs(r.counts) do
    local each = {}
    for i, v in ipairs(r.rates[c]) do each[i] = num(v) end
    local m = median(r.rates[c])
    rows[#rows + 1] = ("| %s | %s MB/s | %s | %s |"):format(num(c), num(m), table.concat(each, " / "),
      m and base and base > 0 and ("%.2f×"):format(m / base) or "–")
  end
  local share = r.pair and r.pair.ratio
  local commands = {}
  for _, c in ipairs(r.counts) do commands[#commands + 1] = r.command_line(c) end
  return table.concat({
    table.concat(rows, "\n"),
    "",
    ("Floors, same runs (median): framer alone %s MB/s; redactor with no secret + framer %s MB/s."):format(
      num(median(r.framer)), num(median(r.none))),
    "",
    ("%s secrets against %s: **%s** of the rate; target ≥ %.2f× (the cost per byte scanned must"):format(
      num(last), num(first), share and ("%.2f×"):format(share) or "?", REDACT_TARGET),
    ("not grow with the number of secrets): %s. The figure is the median per-round ratio of"):format(
      share and met(share >= REDACT_TARGET) or "?"),
    ("`%s` (%d rounds), which alternates the two sets in one process and"):format(r.pair_command or "?", r.pair_rounds),
    ("times CPU, not the wall clock (quartiles %s–%s); separate runs, as above, vary more."):format(
      r.pair and ("%.2f"):format(r.pair.lo) or "?", r.pair and ("%.2f"):format(r.pair.hi) or "?"),
    "",
    ("Commands: `%s`; %s, the counts in turn within each round."):format(table.concat(commands, "`, `"), rounds(r.rounds)),
    "",
    ("- %s MiB of generated 100-byte lines in memory, one line in 100 carrying one of the registered"):format(num(r.mib)),
    "  secrets (24 random letters and digits, each also matched in its base64, URL and JSON",
    "  forms), written in 64 KiB pieces to the redactor, whose output goes to the framer. Every",
    "  count gets lines of the same make: only the number of patterns changes, not how many lines",
    "  carry a secret, nor how long a secret is (the shortest pattern sets how far the scan may",
    "  skip ahead, and a match costs by its length).",
    "  Before it is timed, each run builds the redactor's automaton on the first 8 MiB.",
  }, "\n")
end

-- ---- the document ----

local function block(name, text)
  return ("<!-- bench/run:%s -->\n%s\n<!-- /bench/run:%s -->"):format(name, text, name)
end

-- Replaces the block NAME in doc, or inserts it where place(doc, text) says.
local function put_block(doc, name, text, place)
  local open, close = "<!-- bench/run:" .. name .. " -->", "<!-- /bench/run:" .. name .. " -->"
  local a = doc:find(open, 1, true)
  local _, b = doc:find(close, 1, true)
  local new = block(name, text)
  if a and b then
    return doc:sub(1, a - 1) .. new .. doc:sub(b + 1)
  end
  return place(doc, new)
end

local function main()
  local m = machine()
  local load_before = loadavg()
  local started = os.time()
  local stamp = os.date("!%Y-%m-%d %H:%M UTC")
  for _, b in ipairs(BENCHES) do run_bench(b) end
  run_redact()
  local load_after = loadavg()
  local minutes = (os.time() - started) / 60
  local f = figures(BENCHES[1].output)

  local header = table.concat({
    "Every figure in a section marked *generated* comes from one command, run from the source tree:",
    "",
    "```sh",
    "bench/run [BUILD_DIR]    # default build-release",
    "```",
    "",
    "It configures and builds a Release tree in BUILD_DIR if there is none, runs every benchmark",
    "(`bench/bench_agent.lua`, `bench/bench_pipeline.lua`, `bench/bench_hub.lua`,",
    "`bench/bench_redact.c`), each beside its",
    "physical floor measured in the same run, and rewrites the generated parts of this file; the",
    "hand-written analysis around them stays. It takes a few minutes (the last run's time is",
    "below), plus the build the first time. The memory figures read `/proc/PID/smaps_rollup` of",
    "the agent and the hub: run it as root or as their user.",
    "",
    ("Last run: %s, commit %s%s, %s, %.1f minutes."):format(stamp, m.commit ~= "" and m.commit or "?",
      m.dirty and " with local changes" or "", SMALL and "**small sizes (a smoke test: the figures mean nothing)**" or "full sizes", minutes),
    ("Machine: %s × %s, %s, %s of memory. Load average (1, 5, 15 min) before: %s; after: %s."):format(
      m.nproc, m.cpu, m.kernel, m.memory, load_before, load_after),
    "Numbers from a shared machine are a floor, not a promise: rerun the command before relying on one.",
  }, "\n")

  local system = table.concat({
    system_table(f),
    "",
    "Command: `" .. command_line(BENCHES[1]) .. "`; its full output is at the end of this file.",
    "",
    "- *dispatch*: " .. num(f["dispatch.runs"]) .. " runs, one at a time, of a no-op task (`bench/noop.c`: notes when it",
    "  began, exits 0), on a hub and an agent of capacity 1 on loopback, after a warm-up. *Running*",
    "  is the time the task's `main` noted; *finished* is when the client's",
    "  `GET /v1/runs/{id}/events?wait=` answers `done`. Floor: `bench/floor_spawn.c` forks, execs",
    "  and reaps the same program one at a time, as many times. The two take turns in blocks of 100,",
    "  so that both are measured over the same seconds (a virtual machine's speed can change from",
    "  one second to the next).",
    "- *throughput*: the queue is filled first, then an agent of capacity 32 starts; the rate is",
    "  taken between 10% and 90% of the runs finished. Floor: the same program forked and reaped",
    "  32 at a time.",
    "- *memory*: RSS and private dirty memory from `/proc/PID/smaps_rollup`; idle is three seconds",
    "  after registering; per run is what the second half of the sleeping runs added to the",
    "  first half (what the first runs allocate once is not counted per run). Floor:",
    "  `bench/floor_libs.c`, which only loads and initialises libcurl with OpenSSL, Lua and",
    "  libuv (and, as `floor_hub`, SQLite and h2o).",
  }, "\n")

  local raw = {}
  for _, b in ipairs(BENCHES) do
    raw[#raw + 1] = ("### %s (%d s)\n\n```sh\n%s\n```\n\n```text\n%s\n```"):format(b.name, b.seconds, command_line(b), b.output)
  end
  raw[#raw + 1] = ("### %s (%d s)\n\n```sh\nfor n in %s; do %s; done   # %s\n```\n\n```text\n%s\n```"):format(
    REDACT.name, REDACT.seconds, table.concat(REDACT.counts, " "), REDACT.command_line("$n"), rounds(REDACT.rounds),
    table.concat(REDACT.lines, "\n"))

  local doc = slurp(DOC) or "# Performance\n"
  doc = put_block(doc, "header", header, function(d, new)
    local title_end = select(2, d:find("^# [^\n]*\n")) or 0
    -- Without a header yet, the title's own introduction gives way to it.
    local rest = d:sub(title_end + 1):gsub("^\n*[^#][^\n]*\n[^#]*", "", 1)
    return d:sub(1, title_end) .. "\n" .. new .. "\n\n" .. rest:gsub("^\n*", "")
  end)
  doc = put_block(doc, "system", system, function(d, new)
    local _, e = d:find("<!-- /bench/run:header -->", 1, true)
    return d:sub(1, e) .. "\n\n## System: dispatch, throughput, memory (generated)\n\n" .. new .. d:sub(e + 1)
  end)
  doc = put_block(doc, "redact", redact_section(), function(d, new)
    local heading = "## Redactor: cost by number of secrets (generated)\n\n" .. new .. "\n\n"
    local a = d:find("## Output of the last run (generated)", 1, true)
    if a then return d:sub(1, a - 1) .. heading .. d:sub(a) end
    return d:gsub("\n*$", "") .. "\n\n" .. heading
  end)
  doc = put_block(doc, "raw", table.concat(raw, "\n\n"), function(d, new)
    return d:gsub("\n*$", "") .. "\n\n## Output of the last run (generated)\n\n" .. new .. "\n"
  end)
  local out = assert(io.open(DOC, "wb"))
  out:write(doc)
  out:close()
  io.stderr:write(("bench/run: wrote %s (%.1f minutes)\n"):format(DOC, minutes))
end

main()
