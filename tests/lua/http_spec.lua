-- hangar.http against a loopback server: methods, headers, bodies, statuses, sinks,
-- line streams with backpressure, timeouts and failures.
local http = require "hangar.http"
local json = require "hangar.json"
local sink = require "hangar.sink"
local crypto = require "hangar.crypto"
local task = require "hangar.task"
local loopback = require "loopback"

describe("hangar.http", function()
  local server

  setup(function()
    server = loopback.test_server()
  end)

  teardown(function()
    if server then server.stop() end
  end)

  it("sends the method, headers and body, and returns status, headers and body", function()
    local res = assert(http.request {
      method = "PUT",
      url = server.url .. "/echo?x=1",
      headers = { ["X-Token"] = "abc", ["Content-Type"] = "text/plain" },
      body = "payload",
    })
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    local echo = assert(json.decode(res.body))
    assert.equal("PUT", echo.method)
    assert.equal("x=1", echo.query)
    assert.equal("abc", echo.headers["x-token"])
    assert.equal("payload", echo.body)
  end)

  it("encodes a json body and sets its content type", function()
    local res = assert(http.request { method = "POST", url = server.url .. "/echo", json = { a = { 1, 2 } } })
    local echo = json.decode(res.body)
    assert.equal('{"a":[1,2]}', echo.body)
    assert.equal("application/json", echo.headers["content-type"])
  end)

  it("treats any status as a response", function()
    local res, err = http.request { url = server.url .. "/status/404" }
    assert.is_nil(err)
    assert.equal(404, res.status)
    assert.equal("status 404\n", res.body)
    assert.equal("404", res.headers["x-status"])
  end)

  it("lower-cases header names and joins repeated ones", function()
    local res = assert(http.request { url = server.url .. "/headers" })
    assert.equal("Hello World", res.headers["x-mixed-case"])
    assert.equal("a=1, b=2", res.headers["set-cookie"])
  end)

  it("streams a 2xx body into a sink, never into Lua", function()
    local buf = sink.buffer()
    local res = assert(http.request { url = server.url .. "/bytes?n=3000000", sink = buf })
    assert.equal(200, res.status)
    assert.is_nil(res.body)
    assert.equal(3000000, #buf:contents())
    assert.is_true(buf:closed())
    local whole = assert(http.request { url = server.url .. "/bytes?n=3000000" })
    assert.equal(crypto.sha256(whole.body), crypto.sha256(buf:contents()))
    -- A refusing sink ends the request with an error.
    local small = sink.buffer { limit = 1000 }
    local res2, err = http.request { url = server.url .. "/bytes?n=100000", sink = small }
    assert.is_nil(res2)
    assert.matches("^GET http://127.0.0.1:%d+/bytes%?n=100000: ", err)
  end)

  it("iterates over a body's lines as they arrive", function()
    -- /gated sends its next chunk only after /release: a client that waited for the whole
    -- body would never see it. Each 251-byte chunk holds exactly one "\n".
    local id = tostring(math.random(1 << 30))
    local stream = http.lines { url = server.url .. "/gated?chunks=4&size=251&id=" .. id }
    local got = {}
    for line in stream do
      got[#got + 1] = line
      if #got < 4 then
        assert(http.request { url = server.url .. "/release?id=" .. id })
      end
    end
    local res = assert(stream:result())
    assert.equal(200, res.status)
    assert.equal(5, #got) -- four newlines, then the rest after the last one
    assert.equal(10, #got[1])
  end)

  it("splits a large body into the same lines a whole read gives", function()
    local whole = assert(http.request { url = server.url .. "/bytes?n=4000000" }).body
    local lines = {}
    for line in http.lines { url = server.url .. "/bytes?n=4000000" } do
      lines[#lines + 1] = line
    end
    assert.equal(whole, table.concat(lines, "\n"))
  end)

  it("ends a line stream on an error status and reports it", function()
    local stream = http.lines { url = server.url .. "/status/500" }
    local n = 0
    for _ in stream do n = n + 1 end
    assert.equal(0, n)
    local res = assert(stream:result())
    assert.equal(500, res.status)
    assert.equal("status 500\n", res.body)
  end)

  it("can stop a stream early", function()
    local first
    do
      local stream <close> = http.lines { url = server.url .. "/chunked?chunks=1000&size=251&delay_ms=5" }
      first = stream()
    end
    assert.equal(10, #first)
  end)

  it("returns nil and a message when no response comes", function()
    local res, err = http.request { url = server.url .. "/stall?ms=3000", timeout_ms = 200 }
    assert.is_nil(res)
    assert.matches("timed out", err)
    res, err = http.request { url = "http://127.0.0.1:1/" }
    assert.is_nil(res)
    assert.matches("^GET http://127.0.0.1:1/: ", err)
    res, err = http.request { url = "ftp://example.com/" }
    assert.is_nil(res)
    assert.is_string(err)
  end)

  it("runs requests from many tasks at once", function()
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = task.spawn(function()
        local res = assert(http.request { url = server.url .. "/echo?i=" .. i })
        return json.decode(res.body).query
      end)
    end
    for i = 1, 20 do
      assert.equal("i=" .. i, tasks[i]:wait())
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() http.request { } end)
    assert.has_error(function() http.request { url = "http://x", headers = { ["Bad\r\nName"] = "v" } } end)
    assert.has_error(function() http.request { url = "http://x", body = {} } end)
    assert.has_error(function() http.request { url = "http://x", body = "a", json = {} } end)
    assert.has_error(function() http.request { url = "http://x", timeout_ms = -1 } end)
    assert.has_error(function() http.request { url = "http://x", sink = "capture" } end)
  end)
end)
