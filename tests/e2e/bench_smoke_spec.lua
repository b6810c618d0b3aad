-- The benchmarks still run: bench/report.lua (what bench/run executes) on tiny sizes, writing a
-- copy of the performance document. Checks that every benchmark ran and that the figures
-- parse and land in the document with the hand-written text around them kept; never how fast
-- anything was.
local agenttest = require "agenttest"

local SRC = assert(os.getenv("HANGAR_SOURCE_DIR"), "HANGAR_SOURCE_DIR is not set")
local BIN = assert(os.getenv("HANGAR_BIN"), "HANGAR_BIN is not set")
local q, slurp = agenttest.q, agenttest.slurp

describe("bench/run's report", function()
  local dir

  teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("runs every benchmark on small sizes and rewrites only the generated parts", function()
    dir = agenttest.tmpdir("bench-smoke")
    local doc = dir .. "/performance.md"
    agenttest.write(doc, "# Performance\n\nAn introduction.\n\n## Hub\n\nHand-written analysis of the hub.\n")
    local bench_bin = BIN:match("^(.*)/[^/]+$") .. "/bench"
    local cmd = ("cd %s && env HANGAR_BENCH_BIN=%s HANGAR_TEST_TMP=%s BENCH_DOC=%s BENCH_SMALL=1 %s lua bench/report.lua 2>%s"):format(
      q(SRC), q(bench_bin), q(dir), q(doc), q(BIN), q(dir .. "/log"))
    local ok = os.execute(cmd)
    assert(ok, "bench/report.lua failed:\n" .. (slurp(dir .. "/log") or ""))

    local text = slurp(doc)
    -- The hand-written section is kept; the generated ones are there, once each.
    assert.truthy(text:find("Hand-written analysis of the hub.", 1, true))
    assert.falsy(text:find("An introduction.", 1, true))
    for _, name in ipairs({ "header", "system", "redact", "raw" }) do
      local _, n = text:gsub("<!%-%- bench/run:" .. name .. " %-%->", "")
      assert.equal(1, n, name)
    end
    assert.truthy(text:find("bench/run [BUILD_DIR]", 1, true))
    assert.truthy(text:match("Machine: %d+ × "))
    -- Every row of the system table has a measured figure, none missing.
    local system = text:match("<!%-%- bench/run:system %-%->(.-)<!%-%- /bench/run:system %-%->")
    local rows = 0
    for line in system:gmatch("[^\n]+") do
      if line:match("^| ") and not line:match("^| figure") and not line:match("^| %-%-%-") then
        rows = rows + 1
        local measured = line:match("^| [^|]+ | ([^|]+) |")
        assert.truthy(measured and measured:match("%d"), line)
        assert.falsy(line:find("?", 1, true), line)
      end
    end
    assert.is_true(rows >= 10)
    -- The redactor's rate for 1, 100 and 1,000 secrets, each against the rate with one.
    local redact = text:match("<!%-%- bench/run:redact %-%->(.-)<!%-%- /bench/run:redact %-%->")
    for _, count in ipairs({ "1", "100", "1,000" }) do
      local rate, share = redact:match("\n| " .. count .. " | ([%d,]+) MB/s | [^|]+ | ([%d.]+)× |")
      assert.truthy(rate, count .. " secrets:\n" .. redact)
      assert.truthy(tonumber(share), count)
    end
    assert.truthy(redact:match("1,000 secrets against 1: %*%*[%d.]+×%*%*"), redact)
    assert.truthy(redact:find("bench/bench_redact 1000 ", 1, true), redact)
    -- The verdict comes from the two sets alternating in one process.
    assert.truthy(redact:find("bench/bench_redact pair 1 1000 ", 1, true), redact)
    assert.truthy(redact:match("quartiles [%d.]+–[%d.]+"), redact)
    assert.falsy(redact:find("?", 1, true), redact)
    -- The output of each benchmark is in the document.
    for _, name in ipairs({ "bench_agent.lua", "bench_pipeline.lua", "bench_hub.lua", "bench_redact" }) do
      assert.truthy(text:find("### " .. name, 1, true), name)
    end
    assert.truthy(text:find("dispatch.to_running.p50_us", 1, true))
    assert.truthy(text:find("ingest", 1, true))
    assert.truthy(text:find("runs created per second", 1, true))
    -- No absolute path of the machine the document was written on.
    assert.falsy(text:find(SRC, 1, true))
  end)

  it("gives each dispatched run's POST and start times to bench/split_dispatch.lua when asked, the floor taking turns", function()
    dir = dir or agenttest.tmpdir("bench-smoke")
    local times = dir .. "/times"
    local bench_bin = BIN:match("^(.*)/[^/]+$") .. "/bench"
    local cmd = ("cd %s && env HANGAR_BENCH_BIN=%s HANGAR_TEST_TMP=%s DISPATCH_RUNS=3 DISPATCH_BLOCK=2 DISPATCH_TIMES=%s %s lua bench/bench_agent.lua dispatch >%s 2>&1"):format(
      q(SRC), q(bench_bin), q(dir), q(times), q(BIN), q(dir .. "/dispatch.log"))
    assert(os.execute(cmd), "bench_agent.lua dispatch failed:\n" .. (slurp(dir .. "/dispatch.log") or ""))
    local n = 0
    for line in assert(io.lines(times)) do
      local t0, started = line:match("^(%d+) (%d+)$")
      assert.truthy(t0, line)
      -- Nanoseconds of CLOCK_MONOTONIC: the start follows the POST, within seconds.
      local took = tonumber(started) - tonumber(t0)
      assert.is_true(took > 0 and took < 10e9, line)
      n = n + 1
    end
    assert.equal(3, n)
    -- The floor's runs, pooled from its blocks (two of 2 and 1 runs, after its warm-up), are
    -- reported like the dispatch's.
    local log = slurp(dir .. "/dispatch.log") or ""
    assert.truthy(log:match("floor%.spawn_to_running%.p50_us [%d.]+\n"), log)
    assert.truthy(log:match("floor%.spawn_to_reaped%.p99_us [%d.]+\n"), log)
    assert.truthy(log:match("\ndispatch%.runs 3\n"), log)
  end)
  it("counts what a program's own start-up runs, with bench/startup_cost", function()
    dir = dir or agenttest.tmpdir("bench-smoke")
    local bench_bin = BIN:match("^(.*)/[^/]+$") .. "/bench"
    local out = dir .. "/startup_cost.out"
    local ok, _, code = os.execute(("%s/startup_cost -n 3 /bin/true >%s 2>&1"):format(q(bench_bin), q(out)))
    local text = slurp(out) or ""
    if not ok and code == 3 then
      pending("this machine lets no process trace its child: " .. text)
      return
    end
    assert(ok, "startup_cost failed:\n" .. text)
    assert.truthy(text:match("reap_p50_us [%d.]+\n"), text)
    local instructions = tonumber(text:match("start_instructions (%d+)\n"))
    assert.truthy(instructions and instructions > 1000, text)
    local uname = assert(io.popen("uname -m"))
    local arch = uname:read("l")
    uname:close()
    if arch == "x86_64" then
      -- glibc asks the processor what it is while it starts, whatever the program.
      assert.truthy(tonumber(text:match("start_cpuids (%d+)\n")) > 0, text)
      assert.truthy(text:match("cpuid_us [%d.]+\n"), text)
    end
  end)
end)
