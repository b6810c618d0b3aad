-- The fault suite's proxy on its own: each fault is what a client sees (reset, truncated,
-- refused, slow), the seed alone decides which connection meets which fault, the window ends
-- in a clean pass-through, and the control file and signals switch faults off and on.
local faultproxy = require "faultproxy"
local loopback = require "loopback"
local http = require "hangar.http"
local process = require "hangar.process"
local sink = require "hangar.sink"
local timer = require "hangar.timer"
local crypto = require "hangar.crypto"
local json = require "hangar.json"

local server

setup(function()
  server = loopback.test_server()
end)

teardown(function()
  if server then
    server.stop()
  end
end)

local function target_port()
  return tonumber(server.url:match(":(%d+)$"))
end

-- The body testhttpd.py serves for /bytes?n=N: byte i is i % 251.
local function pattern(n)
  local t = {}
  for i = 0, n - 1 do
    t[#t + 1] = string.char(i % 251)
  end
  return table.concat(t)
end

-- One request on a connection of its own (so each request meets the plan of a new
-- connection). Returns res (or nil), err, the bytes a sink received, elapsed ms.
local function fetch(fp, path, opts)
  opts = opts or {}
  local out = sink.buffer()
  local t0 = timer.monotonic()
  local res, err = http.request {
    method = opts.method or "GET",
    url = fp.url .. path,
    headers = { Connection = "close" },
    body = opts.body,
    sink = (not opts.body) and out or nil,
    timeout_ms = opts.timeout_ms or 30000,
  }
  return res, err, out:contents(), timer.monotonic() - t0
end

-- libcurl reports an RST either as the errno or as a failed poll of the socket.
local function assert_reset(err)
  assert.is_string(err)
  assert.truthy(err:match("reset by peer") or err:match("select/poll returned error"),
    "expected a reset connection, got: " .. err)
end

local function with_proxy(opts, fn)
  opts.target = opts.target or target_port()
  local fp = faultproxy.start(opts)
  local ok, err = pcall(fn, fp)
  fp:stop()
  if not ok then
    error(err, 0)
  end
end

local function events_of(fp, kind)
  local out = {}
  for _, e in ipairs(fp:events()) do
    if e.event == kind then
      out[#out + 1] = e
    end
  end
  return out
end

-- The proxy's "end" events, once there are n of them (it logs an end as it sees it).
local function ends(fp, n)
  local deadline = timer.monotonic() + 15000
  repeat
    local found = events_of(fp, "end")
    if #found >= n then
      return found
    end
    timer.sleep(20)
  until timer.monotonic() > deadline
  error("the proxy did not log " .. n .. " connection ends")
end

describe("faultproxy.py", function()
  it("passes bytes through unchanged both ways and counts connections and bytes", function()
    with_proxy({}, function(fp)
      local res, err, body = fetch(fp, "/bytes?n=1000000")
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal(1000000, #body)
      assert.is_true(body == pattern(1000000))
      local upload = crypto.random(700000)
      res, err = fetch(fp, "/sha256", { method = "POST", body = upload })
      assert.is_nil(err)
      local doc = json.decode(res.body)
      assert.equal(700000, doc.len)
      assert.equal(crypto.sha256(upload), doc.sha256)
      local s = fp:wait_stats(function(s) return s.connections == 2 and s.bytes_up > 700000 end)
      assert.truthy(s, "the proxy should count 2 connections")
      assert.equal(2, s.clean)
      assert.truthy(s.bytes_down > 1000000)
      assert.truthy(s.bytes_up > 700000)
    end)
  end)

  it("resets a connection after exactly the planned bytes went down", function()
    with_proxy({ reset = 1, at = 3000, down = 1 }, function(fp)
      local res, err, body = fetch(fp, "/bytes?n=100000")
      assert.is_nil(res)
      assert_reset(err)
      assert.truthy(#body < 3000, "at most the 3000 bytes forwarded (less the headers) arrive")
      assert.is_true(body == pattern(#body), "what arrived is the start of the real body")
      local e = ends(fp, 1)
      assert.equal(1, #e)
      assert.equal("reset", e[1].why)
      assert.equal(3000, e[1].down)
      assert.equal(1, fp:wait_stats(function(s) return s.struck.reset == 1 end).struck.reset)
    end)
  end)

  it("resets a connection in the middle of a request body going up", function()
    with_proxy({ reset = 1, at = 5000, down = 0 }, function(fp)
      local res, err = fetch(fp, "/sha256", { method = "POST", body = crypto.random(50000) })
      assert.is_nil(res)
      assert_reset(err)
      local e = ends(fp, 1)
      assert.equal(5000, e[1].up)
      assert.equal(0, e[1].down)
    end)
  end)

  it("closes cleanly after the planned bytes: the client sees a truncated response", function()
    with_proxy({ close = 1, at = 4000, down = 1 }, function(fp)
      local res, err, body = fetch(fp, "/bytes?n=100000")
      assert.is_nil(res)
      assert.matches("ended early", err)
      assert.truthy(#body > 0 and #body < 4000)
      assert.is_true(body == pattern(#body))
      local e = ends(fp, 1)
      assert.equal("closed", e[1].why)
      assert.equal(4000, e[1].down)
    end)
  end)

  it("makes a client see a response cut within its headers on a reused connection as an error", function()
    -- How many bytes one whole answer is (its headers name this machine's Python).
    local size
    with_proxy({}, function(fp)
      fetch(fp, "/bytes?n=100")
      size = fp:wait_stats(function(s) return s.bytes_down > 100 end).bytes_down
    end)
    -- The second request on the kept-alive connection is cut 20 bytes into its headers.
    with_proxy({ close = 1, at = size + 20, down = 1 }, function(fp)
      local first = assert(http.request { url = fp.url .. "/bytes?n=100", timeout_ms = 30000 })
      assert.equal(200, first.status)
      local res, err = http.request { url = fp.url .. "/bytes?n=100", timeout_ms = 30000 }
      assert.is_nil(res, "a cut answer must not pass for a response")
      assert.matches("closed the connection", err)
      assert.equal(1, #events_of(fp, "plan"), "both requests went over one connection")
    end)
  end)

  it("stalls a connection for the planned time, then delivers everything", function()
    with_proxy({ stall = 1, at = 0, stall_ms = 1500, ["repeat"] = false }, function(fp)
      local res, err, body, ms = fetch(fp, "/bytes?n=20000")
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.is_true(body == pattern(20000))
      assert.truthy(ms >= 1400, "the stall held the response back (took " .. ms .. " ms)")
      -- A client with a shorter timeout gives up on a stalled connection.
      res, err = fetch(fp, "/bytes?n=20000", { timeout_ms = 500 })
      assert.is_nil(res)
      assert.matches("timed out", err)
    end)
  end)

  it("drip-feeds the planned span in small pieces with pauses, and the bytes stay right", function()
    with_proxy({ delay = 1, at = 0, down = 1, delay_span = 1000, delay_chunk = 10, delay_ms = 10, ["repeat"] = false }, function(fp)
      local res, err, body, ms = fetch(fp, "/bytes?n=30000")
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.is_true(body == pattern(30000))
      -- 1000 bytes 10 at a time: 99 pauses of 10 ms at least.
      assert.truthy(ms >= 990, "drip-feeding took " .. ms .. " ms")
      assert.equal(1, #events_of(fp, "fault"))
    end)
  end)

  it("strikes again on a long connection after a stall is over, counting bytes from there", function()
    with_proxy({ stall = 1, at = 1000, down = 1, stall_ms = 300 }, function(fp)
      local res, err, body, ms = fetch(fp, "/bytes?n=5000")
      assert.is_nil(err)
      assert.equal(pattern(5000), body)
      -- headers and 5000 bytes: stalls at 1000, 2000, ..., 5000 bytes; the next at 6000
      -- never comes.
      local faults = events_of(fp, "fault")
      assert.equal(5, #faults)
      for i, f in ipairs(faults) do
        assert.equal(i * 1000, f.at)
        assert.equal(i, f.n)
      end
      assert.truthy(ms >= 1450, "five stalls of 300 ms took " .. ms .. " ms")
    end)
  end)

  it("refuses new connections for the planned time while keeping its port", function()
    with_proxy({ refuse = 1, refuse_ms = 60000 }, function(fp)
      local res, err = fetch(fp, "/bytes?n=10")
      assert.is_nil(res)
      assert_reset(err)
      -- A bare connect, not an HTTP request: libcurl may report a refused connect in more
      -- than one way, the kernel only one.
      local refused = process.spawn {
        argv = { "python3", "-c", ([[
import socket, sys
try:
    socket.create_connection(("127.0.0.1", %d), timeout=10)
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
]]):format(fp.port) },
        env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" },
      }
      assert.equal(0, refused:wait().exit_code, "a new connection was not refused")
      local s = fp:stats()
      assert.is_false(s.listening)
      -- Faults off ends the refusal at once, on the same port.
      fp:mode("clean")
      local body
      res, err, body = fetch(fp, "/bytes?n=10")
      assert.is_nil(err)
      assert.equal(pattern(10), body)
    end)
  end)

  it("becomes a clean pass-through when the window ends", function()
    with_proxy({ reset = 1, at = 0, window = 4 }, function(fp)
      local res, err = fetch(fp, "/bytes?n=100")
      assert.is_nil(res)
      assert_reset(err)
      assert.truthy(fp:wait_stats(function(s) return s.in_window == false end, 20000),
        "the window should end")
      for _ = 1, 5 do
        local body
        res, err, body = fetch(fp, "/bytes?n=5000")
        assert.is_nil(err)
        assert.equal(pattern(5000), body)
      end
      local s = fp:wait_stats(function(s) return s.connections == 6 end)
      assert.equal(5, s.clean)
      assert.equal(1, s.struck.reset)
    end)
  end)

  it("drops a stall in progress when the window ends", function()
    with_proxy({ stall = 1, at = 0, stall_ms = 600000, window = 2 }, function(fp)
      local res, err, body = fetch(fp, "/bytes?n=1000")
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal(pattern(1000), body)
    end)
  end)

  it("plans faults from the seed alone: same seed, same plans; another seed, others", function()
    local opts = { target = 1, reset = 0.2, stall = 0.2, delay = 0.2, close = 0.1, refuse = 0.1 }
    local a = faultproxy.plans(opts, 200)
    local b = faultproxy.plans(opts, 200)
    assert.same(a, b)
    local kinds = {}
    for _, p in ipairs(a) do
      kinds[p.kind] = (kinds[p.kind] or 0) + 1
    end
    for _, k in ipairs({ "clean", "reset", "stall", "delay", "close", "refuse" }) do
      assert.truthy(kinds[k] and kinds[k] > 5, "200 plans should include " .. k)
    end
    opts.seed = 2
    assert.are_not.same(a, faultproxy.plans(opts, 200))
  end)

  it("replays the same faults on the same connections in a live run with the same seed", function()
    local function outcomes(seed)
      local seen = {}
      with_proxy({ seed = seed, reset = 0.3, close = 0.3, at = "0-20000" }, function(fp)
        for i = 1, 25 do
          local res, err, body = fetch(fp, "/bytes?n=20000")
          -- What a reset discards on its way is up to the kernels; a truncation is exact.
          if res then
            seen[i] = "ok " .. #body
          elseif err:match("ended early") then
            seen[i] = "truncated " .. #body
          elseif err:match("closed the connection") then
            seen[i] = "closed before an answer"
          else
            assert_reset(err)
            seen[i] = "reset"
          end
        end
        local plans = {}
        for _, e in ipairs(events_of(fp, "plan")) do
          plans[#plans + 1] = e.kind .. " " .. tostring(e.at)
        end
        seen.plans = plans
      end)
      return seen
    end
    local first, second = outcomes(11), outcomes(11)
    assert.same(first, second)
    local failed = 0
    for i = 1, 25 do
      if first[i] ~= "ok 20000" then
        failed = failed + 1
      end
    end
    assert.truthy(failed > 3 and failed < 25, failed .. " of 25 requests failed")
    assert.are_not.same(first, outcomes(12))
  end)

  it("holds everything in hold mode and turns faults off and on by signal", function()
    with_proxy({ reset = 1, at = 0 }, function(fp)
      fp:mode("hold")
      local res, err = fetch(fp, "/bytes?n=10", { timeout_ms = 1000 })
      assert.is_nil(res)
      assert.matches("refused", err)
      fp:mode("faults")
      res, err = fetch(fp, "/bytes?n=10")
      assert_reset(err)
      fp:signal("USR1")
      assert.truthy(fp:wait_stats(function(s) return s.mode == "clean" end))
      local body
      res, err, body = fetch(fp, "/bytes?n=10")
      assert.is_nil(err)
      assert.equal(pattern(10), body)
      fp:signal("USR2")
      assert.truthy(fp:wait_stats(function(s) return s.mode == "faults" end))
      res, err = fetch(fp, "/bytes?n=10")
      assert_reset(err)
    end)
  end)

  it("freezes open connections in hold mode and lets them finish after", function()
    with_proxy({}, function(fp)
      local async = require "hangar.async"
      -- testhttpd sends /chunked a piece every 50 ms; the hold comes in between.
      local t = async.run(function()
        return fetch(fp, "/chunked?chunks=40&size=1000&delay_ms=50")
      end)
      assert.truthy(fp:wait_stats(function(s) return s.active == 1 and s.bytes_down > 0 end))
      fp:mode("hold")
      local before = fp:stats().bytes_down
      timer.sleep(500)
      assert.equal(before, fp:stats().bytes_down, "nothing moves while held")
      fp:mode("clean")
      local res, err, body = async.await(t)
      assert.is_nil(err)
      assert.equal(200, res.status)
      assert.equal(40000, #body)
    end)
  end)

  it("resets the client when the target is down, and counts it", function()
    -- A port nobody listens on: the proxy's own, once it is gone.
    local probe = faultproxy.start { target = target_port() }
    local dead = probe.port
    probe:stop()
    with_proxy({ target = dead }, function(fp)
      local res, err = fetch(fp, "/bytes?n=10")
      assert.is_nil(res)
      assert_reset(err)
      assert.equal(1, fp:wait_stats(function(s) return s.upstream_failed == 1 end).upstream_failed)
    end)
  end)

  it("refuses to send traffic anywhere but loopback", function()
    local process = require "hangar.process"
    for _, args in ipairs({ { "--target", "10.1.2.3:80" }, { "--target", "127.0.0.1:80", "--listen", "0.0.0.0:0" } }) do
      local argv = { "python3", faultproxy.script }
      for _, a in ipairs(args) do
        argv[#argv + 1] = a
      end
      local r = process.spawn { argv = argv, env = { PATH = os.getenv("PATH") }, stderr = "capture" }:wait()
      assert.equal(2, r.exit_code)
      assert.matches("not a loopback address", r.stderr)
    end
  end)
end)
