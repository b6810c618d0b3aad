-- Secrets are never stored or logged in plain text: not in the hub's store (the database, its
-- -wal and -shm), not in the hub's log at debug level, not in the agent's state directory
-- (run records, spools, work directories) or its debug log. A task prints every secret it has
-- (a secret config variable, a secret reference the agent resolved, its run token, a value it
-- masked itself with hangar_mask) raw, in base64 with both alphabets at the three alignments,
-- padded or not, percent-encoded in upper- and lower-case hex, JSON-escaped, split across
-- writes, on stdout, stderr and in output lines; every file is then searched byte by byte for
-- each of those forms, while the run goes and after it ended.
local hubtest = require "hubtest"
local agenttest = require "agenttest"
local security = require "security"
local json = require "hangar.json"

local q, slurp = security.q, security.slurp

local hub, agent, drop

-- Special characters on purpose: quote, backslash, slash, space, plus and percent make every
-- encoded form differ from the raw text (and the base64 alphabets from each other).
local CONFIG_SECRET = 'Hq7/"x\\ p+%d~>?Wz3!' .. security.random_word(6)
local REF_SECRET = "ref/secret+" .. security.random_word(10) .. "\\end"

local PRINTER = [==[
import base64, json, os, re, sys, time, urllib.parse
drop = os.environ["PARAM_DROP"]
secrets = {"config": os.environ["DB_PASSWORD"], "ref": os.environ["REF_SECRET"],
           "token": os.environ["HANGAR_RUN_TOKEN"]}
# A value only the run knows, masked from here on; the second one is masked and printed in
# the very same write.
masked = "m/" + os.urandom(9).hex() + '"q\\'
masked2 = "n+" + os.urandom(9).hex() + "/z"
with open(os.path.join(drop, "run-secrets.json"), "w") as f:
    json.dump({"masked": masked, "masked2": masked2, "token": secrets["token"]}, f)
out, err = sys.stdout, sys.stderr
out.write("hangar_mask " + masked + "\n"); out.flush()
out.write("hangar_mask " + masked2 + "\nsame write: " + masked2 + "\n"); out.flush()
secrets["masked"] = masked

def forms(v):
    b = v.encode()
    fs = [v]
    for k in range(3):
        for enc in (base64.b64encode, base64.urlsafe_b64encode):
            e = enc(b"x" * k + b + b"yz").decode()
            fs += [e, e.rstrip("=")]
    up = urllib.parse.quote(v, safe="")
    fs += [up, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), up)]
    j = json.dumps(v)[1:-1]
    fs += [j, j.replace("/", "\\/")]
    return fs

n = 0
for name, v in secrets.items():
    for f in forms(v):
        n += 1
        out.write("%s form %d: %s\n" % (name, n, f)); out.flush()
        err.write("%s on stderr: %s\n" % (name, f)); err.flush()
        # In an output line the form travels JSON-escaped; a form that JSON escaping would
        # change again (the JSON form itself) is left out: escaped twice it is no promised form.
        if json.dumps(f)[1:-1] == f or f == v:
            out.write("hangar_output_set:leak.f%d %s\n" % (n, json.dumps(f))); out.flush()
    # Split across writes, with time between them.
    out.write(name + " split: " + v[:5]); out.flush()
    time.sleep(0.15)
    out.write(v[5:] + " (end)\n"); out.flush()
    e = base64.b64encode(v.encode()).decode()
    out.write(name + " split base64: " + e[:7]); out.flush()
    time.sleep(0.15)
    out.write(e[7:] + "\n"); out.flush()
# Not a secret: printed the same ways, it must be found where the secrets are not (the search
# looks at the right files, in the right forms).
canary = "canary/" + os.environ["HANGAR_RUN_ID"][::-1] + '"x\\'
for f in forms(canary):
    out.write("canary: %s\n" % f); out.flush()
out.write("hangar_output_set:env " + json.dumps(dict(os.environ)) + "\n"); out.flush()
print("printed %d forms" % n, flush=True)
open(os.path.join(drop, "ready"), "w").close()
while not os.path.exists(os.path.join(drop, "go")):
    time.sleep(0.05)
]==]

-- Why these tests cannot run on this machine (nil: they can).
local skip = agenttest.cannot_run_as(65534)

setup(function()
  if skip then
    return
  end
  hub = hubtest.start { name = "sec-rest", args = { "--lease-ttl", "10", "--heartbeat-interval", "1", "--poll-wait", "5", "--log-level", "debug" } }
  agent = security.agent(hub, { secret_env = { "AGENT_SIDE_SECRET" }, env = { AGENT_SIDE_SECRET = REF_SECRET } })
  drop = security.shared_dir("sec-rest-drop")
end)

teardown(function()
  agenttest.cleanup_all(agent, hub, drop)
end)

local function all_forms(values)
  local list = {}
  for label, v in pairs(values) do
    for _, f in ipairs(security.forms(v)) do
      list[#list + 1] = { name = label .. " " .. f.name, text = f.text }
    end
  end
  return list
end

describe("secrets at rest", function()
  it("are in no file of the hub or the agent, in any encoding, while a run prints them and after", function()
    if skip then
      return pending(skip)
    end
    -- The test is only as strong as its forms: they must differ from each other.
    local forms = security.forms(CONFIG_SECRET)
    local by_name = {}
    for _, f in ipairs(forms) do by_name[f.name] = f.text end
    assert.are_not.equal(by_name["base64 std @0"], by_name["base64 url @0"])
    assert.are_not.equal(by_name["raw"], by_name["json"])
    assert.are_not.equal(by_name["percent upper"], by_name["percent lower"])

    assert.equal(200, hub:put("/v1/config-vars/db_password", { value = CONFIG_SECRET, secret = true }).status)
    local slug = agenttest.task(hub, {
      command = { "/usr/bin/python3", "-c", PRINTER },
      parameters = json.array { { slug = "drop", type = "string", required = true } },
      env = { DB_PASSWORD = { config = "db_password" }, REF_SECRET = { ref = "env://AGENT_SIDE_SECRET" } },
    })
    local id = agenttest.run(hub, slug, { drop = drop })
    agenttest.wait_file(drop .. "/ready", 30000)
    local known = json.decode(assert(slurp(drop .. "/run-secrets.json")))
    local secrets = { config = CONFIG_SECRET, ref = REF_SECRET, masked = known.masked, masked2 = known.masked2 }
    local everything = all_forms(secrets)
    local token_forms = all_forms({ token = known.token })

    -- While the run goes: its spool and record exist, the hub's WAL holds its events. Wait
    -- until both have everything printed so far (the last line, and the canary).
    local canary = security.forms("canary/" .. id:reverse() .. '"x\\')
    local spool = agent.state_dir .. "/spool/" .. id .. ".spool"
    assert(hubtest.wait_for(function()
      local seen = false
      for _, e in ipairs(agenttest.events(hub, id)) do
        seen = seen or (e.text or ""):find("printed %d+ forms") ~= nil
      end
      return seen and #security.scan({ spool }, canary) > 0
    end, 20000), "the run's lines did not reach the hub and the spool")
    assert.truthy(security.count_files({ agent.state_dir .. "/spool" }) >= 1, "no spool to search")
    assert.truthy(agent:record(id), "no run record to search")
    assert.truthy(hub:log():find('"level":"debug"', 1, true), "the hub does not log at debug level")
    assert.same({}, security.scan({ hub.dir, agent.dir }, everything))
    assert.same({}, security.scan({ hub.dir }, token_forms))
    for _, where in ipairs({ spool, hub.db .. "-wal" }) do
      local found = {}
      for _, hit in ipairs(security.scan({ where }, canary)) do
        found[hit:match(": (.*)$")] = true
      end
      for _, name in ipairs({ "json", "base64 std @0", "base64 std @1", "base64 std @2", "percent upper", "percent lower", "json (stored in JSON)" }) do
        assert.truthy(found[name], "the canary's " .. name .. " form is not in " .. where)
      end
    end
    -- Nobody but their owner may read the agent's state or the hub's store and key (the run's
    -- own files in its work directory are its business).
    local loose = {}
    local p = assert(io.popen("find " .. q(agent.state_dir) .. " " .. q(hub.dir)
      .. " -path '*/work/*' -prune -o \\( -perm /077 -print \\)"))
    for line in p:lines() do
      -- In the hub's directory only the store and its key are the hub's to protect (the
      -- test made the directory, the log and the ready file).
      if line:sub(1, #agent.state_dir) == agent.state_dir or line:find("/hub%.db[^/]*$") then
        loose[#loose + 1] = line
      end
    end
    p:close()
    assert.same({}, loose)
    -- The run token sits in the run's record (the agent needs it to rebuild the run's
    -- environment after a restart); nowhere else of the agent's.
    assert.same({}, security.scan({ agent.dir }, token_forms, {
      except = function(path) return path:find("/runs.journal", 1, true) end }))

    agenttest.write(drop .. "/go", "")
    local doc = agenttest.wait_run(hub, id, 30000)
    assert.equal("succeeded", doc.status, doc.error)

    -- What the run printed arrived, masked.
    local log = agenttest.log_text(hub, id)
    assert.truthy(log:find("printed %d+ forms"), log:sub(-500))
    assert.truthy(log:find("config form 1: [REDACTED]", 1, true), log:sub(1, 2000))
    assert.truthy(log:find("same write: [REDACTED]", 1, true), log:sub(1, 2000))
    assert.falsy(log:find("hangar_mask", 1, true))
    local _, masked_count = log:gsub("%[REDACTED%]", "")
    assert.truthy(masked_count >= 4 * 16, "only " .. masked_count .. " masks")
    assert.equal("[REDACTED]", doc.outputs.leak.f1)
    assert.equal("[REDACTED]", doc.outputs.env.DB_PASSWORD)

    -- After the run, and once the hub has checkpointed its WAL into the database. The agent
    -- drops the run's record once the hub took the finish (its journal, holding no other
    -- record, is emptied in the thread pool), so the record may outlive the hub's
    -- answer by a moment: wait for it to go, then nothing may be left.
    assert(hubtest.wait_for(function()
      local rec, journal = agent:record(id)
      return rec == nil and slurp(journal) == ""
    end, 5000), "the run's record outlived the run")
    assert.same({}, security.scan({ hub.dir, agent.dir }, everything))
    assert.same({}, security.scan({ hub.dir, agent.dir }, token_forms))
    assert.truthy(hub:stop(), "the hub did not stop cleanly:\n" .. hub:log():sub(-3000))
    assert.same({}, security.scan({ hub.dir }, everything))
    assert.same({}, security.scan({ hub.dir }, token_forms))
    assert.truthy(security.count_files({ hub.dir }) >= 3)
    hub:serve(hub.port)
  end)

  it("never leave the hub in an answer: secret values read back as null, a run gets them sealed", function()
    if skip then
      return pending(skip)
    end
    assert.equal(200, hub:put("/v1/config-vars/api_secret", { value = CONFIG_SECRET, secret = true }).status)
    local listed = hub:get("/v1/config-vars")
    assert.equal(200, listed.status)
    for _, v in ipairs(listed.json.config_vars) do
      if v.secret then
        assert.equal(json.null, v.value)
      end
    end
    local slug = agenttest.sh_task(hub, "true", { env = { A = { config = "api_secret" } }, constraints = { only = "raw" } })
    local run_id = agenttest.run(hub, slug)
    local texts = { listed.body, hub:get("/v1/runs/" .. run_id).body, hub:get("/v1/tasks/" .. slug).body }
    -- An agent speaking the raw protocol receives it sealed to its session key only.
    local raw = hub:agent { labels = { only = "raw" } }
    local rid, lease = raw:take(5)
    assert.equal(run_id, rid)
    local accepted = raw:accept(rid, lease)
    assert.equal(200, accepted.status, accepted.body)
    assert.equal("X25519-HKDF-SHA256-A256GCM", accepted.json.run.secrets.alg)
    texts[#texts + 1] = accepted.body
    for _, text in ipairs(texts) do
      for _, f in ipairs(security.forms(CONFIG_SECRET)) do
        assert.falsy(text:find(f.text, 1, true), f.name .. " of the secret in " .. text:sub(1, 300))
      end
    end
    assert.same({}, security.scan({ hub.dir }, security.forms(CONFIG_SECRET)))
  end)
end)
