-- The agent's state directory: what survives a restart.
--
--   identity.json      { "agent_id" }: a restarted agent resumes its identity
--   session.key        the session's private keys (written by the core, never by Lua)
--   runs/<id>.json     one record per run held, from its process's start (or its result, for
--                      one that never started): the accepted RUN document (its secrets still
--                      sealed), lease, scheduler and handle, phase, and the result once known
--   spool/<id>.spool   the run's events until the hub has them (the run log's)
--   work/<id>/         the run's working directory (HOME), removed once the run is over
-- A record file (mode 0600) is a journal of the record's versions, one JSON object a line,
-- each save appending one: the latest line that reads whole is the record. Appending costs the
-- file system far less than replacing a file (a temporary file and a rename: a new inode, and
-- an old one freed, per save), and is as safe: a save cut short leaves a last line that does
-- not parse, so the version before it stands. A restart rewrites a record of several lines as
-- its one current line. A record whose loss a power cut could not make worse is not waited
-- for on the disk (no fsync): a local process dies with the machine anyway, and the hub still
-- lists the run, so a restart finishes it failed either way. What exists nowhere else is
-- synced: a result, and the handle of a run a backend can reattach to. A file holding nothing
-- but zeros or blanks is what such a write cut short leaves of a new record: it is removed and
-- counts as no record.
local json = require "hangar.json"

local state = {}

local State = {}
State.__index = State

local ID = "^[A-Za-z0-9_-]+$"

--- Opens (creating what is missing) the state directory at dir, with fs = core.fs.
function state.open(dir, fs)
  local self = setmetatable({ dir = dir, fs = fs }, State)
  for _, sub in ipairs({ "", "/runs", "/spool", "/work" }) do
    local ok, err = fs.mkdir_p(dir .. sub)
    if not ok then
      return nil, err
    end
  end
  return self
end

local function read_json(fs, path)
  local text, err, missing = fs.read(path)
  if not text then
    return nil, err, missing
  end
  local ok, doc = pcall(json.decode, text)
  if not ok or type(doc) ~= "table" then
    return nil, path .. ": not a JSON object"
  end
  return doc
end

--- The agent id a previous run of the agent registered as, or nil.
function State:identity()
  local doc = read_json(self.fs, self.dir .. "/identity.json")
  if doc and type(doc.agent_id) == "string" and doc.agent_id:match(ID) then
    return doc.agent_id
  end
  return nil
end

function State:save_identity(agent_id)
  return self.fs.write_atomic(self.dir .. "/identity.json", json.encode({ agent_id = agent_id }) .. "\n")
end

function State:forget_identity()
  return self.fs.remove(self.dir .. "/identity.json")
end

--- The working directory of a run.
function State:workdir(run_id)
  return self.dir .. "/work/" .. run_id
end

function State:record_path(run_id)
  return self.dir .. "/runs/" .. run_id .. ".json"
end

--- Writes a run's record (a table with at least run_id); durable = false does not wait for
--- the disk (see above).
function State:save_run(record, durable)
  assert(type(record.run_id) == "string" and record.run_id:match(ID), "a run record needs a run_id")
  local path, text = self:record_path(record.run_id), json.encode(record) .. "\n"
  if durable == false then
    return self.fs.append(path, text)
  end
  return self.fs.append_durable(path, text) -- the disk's wait does not hold up other runs
end

-- In the thread pool (the calling task waits): a record that was synced frees disk blocks,
-- which can wait for the device.
function State:remove_run(run_id)
  return self.fs.remove_in_pool(self:record_path(run_id))
end

-- The current version of the record at path: the last line that is a JSON object of run id
-- id. A file of several lines is rewritten as that one line, so that appends go on from a
-- clean end. nil, nil: no record (nothing but zeros or blanks); nil, message: unreadable.
function State:read_record(path, id)
  local text, err = self.fs.read(path)
  if not text then
    return nil, err
  end
  local rec, line
  for l in text:gmatch("[^\n]+") do
    local ok, doc = pcall(json.decode, l)
    if ok and type(doc) == "table" and doc.run_id == id then
      rec, line = doc, l
    end
  end
  if not rec then
    if text:match("^[%z%s]*$") then
      return nil, nil
    end
    return nil, path .. ": no line is a JSON object of run_id " .. id
  end
  if text ~= line .. "\n" then
    -- Synced (it may hold a result), in the thread pool: a restart rewrites many records.
    local ok, werr = self.fs.write_durable(path, line .. "\n")
    if not ok then
      return nil, werr
    end
  end
  return rec
end

--- Every run record, in run id order. Unreadable records are reported in the second list
--- (path and error) and left in place for a human to look at.
function State:load_runs()
  local names, err = self.fs.list(self.dir .. "/runs")
  if not names then
    return nil, err
  end
  local records, bad = {}, {}
  for _, name in ipairs(names) do
    local id = name:match("^(.+)%.json$")
    local path = self.dir .. "/runs/" .. name
    if id and id:match(ID) then
      local rec, rerr = self:read_record(path, id)
      if rec then
        records[#records + 1] = rec
      elseif rerr == nil then
        self.fs.remove(path) -- a write that a power cut left empty: no record
      else
        bad[#bad + 1] = { path = path, error = rerr }
      end
    end
  end
  return records, bad
end

return state
