-- The agent's state directory: what survives a restart.
--
--   identity.json      { "agent_id" }: a restarted agent resumes its identity
--   session.key        the session's private keys (written by the core, never by Lua)
--   runs.journal       the records of the runs held, one JSON object a line (below)
--   spool/<id>.spool   the run's events until the hub has them (the run log's; from its first)
--   work/<id>/         the run's working directory (HOME), removed once the run is over
--   runs/<id>.json     an older agent's record of one run: a restart folds it into the journal
-- A run's record exists from its process's start (or its result, for one that never started):
-- the accepted RUN document (its secrets still sealed), lease, scheduler and handle, phase, and
-- the result once known. The journal (mode 0600) holds every record: each save appends the
-- record's new version as one line, the removal of a record appends { "removed": id }, and the
-- latest line of a run id that reads whole is its record. One file for all runs costs the file
-- system far less than a file per run (an inode allocated and freed per run, a directory entry
-- to sync per durable save), and is as safe: a save cut short leaves a last line that does not
-- parse, so the version before it stands; lines of zeros or blanks (what a power cut leaves of
-- appends not waited for) are no record. The journal is rewritten with only the current lines
-- when it has grown past a bound relative to them (a temporary file synced, then renamed over
-- it, in the thread pool; appends made meanwhile are carried over), when a restart has read it
-- (so that appends go on from a clean end), and emptied in place (in the pool) once no record
-- is left, so that a finished run's lines, its run token among them, do not stay on the disk.
-- A record whose loss a power cut could not make worse is not waited for on the disk (no
-- fsync): a local process dies with the machine anyway, and the hub still lists the run, so a
-- restart finishes it failed either way. What exists nowhere else is synced before the save
-- returns: a result, and the handle of a run a backend can reattach to. Durable saves that wait
-- at the same time share one fdatasync (group commit), so runs finishing together do not pay
-- a sync each. A removal is not synced: lost, it leaves a finished run's record, which a
-- restart finishes again and the hub answers as already ended.
local json = require "hangar.json"
local sorted_keys = require("hangar.tables").sorted_keys

local state = {}

local State = {}
State.__index = State

local ID = "^[A-Za-z0-9_-]+$"

-- The journal is rewritten once it is larger than this many bytes and JOURNAL_FACTOR times
-- its current lines: at capacity 32 about every few hundred runs, a temporary file each time.
local JOURNAL_MIN = 1024 * 1024
local JOURNAL_FACTOR = 4

--- Opens (creating what is missing) the state directory at dir, with fs = core.fs.
--- opts.journal_min: the journal's bound in bytes (tests).
function state.open(dir, fs, opts)
  local self = setmetatable({ dir = dir, fs = fs, lines = {}, live_bytes = 0,
    journal_min = opts and opts.journal_min or JOURNAL_MIN }, State)
  for _, sub in ipairs({ "", "/spool", "/work" }) do
    local ok, err = fs.mkdir_p(dir .. sub)
    if not ok then
      return nil, err
    end
  end
  local j, err = fs.journal(self:journal_path())
  if not j then
    return nil, err
  end
  self.journal = j
  return self
end

function State:journal_path()
  return self.dir .. "/runs.journal"
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

-- The run ids that have a work directory; none when the directory cannot be listed.
function State:workdir_ids()
  local names = self.fs.list(self.dir .. "/work")
  return type(names) == "table" and names or {}
end

-- Where an older agent kept a run's record (read once by load_runs, then folded).
function State:record_path(run_id)
  return self.dir .. "/runs/" .. run_id .. ".json"
end

-- Every current line, for a rewrite of the journal.
function State:current_text()
  local ids = sorted_keys(self.lines)
  local parts = {}
  for i, id in ipairs(ids) do
    parts[i] = self.lines[id]
  end
  return table.concat(parts)
end

-- Appends a line, then keeps the journal small: emptied once no record is left, rewritten
-- with the current lines once it outgrew them.
function State:append(id, line)
  local ok, err = self.journal:write(line or json.encode({ removed = id }) .. "\n")
  if not ok then
    return nil, err -- nothing of it is in the journal: the version before stands
  end
  local old = self.lines[id]
  self.lines[id] = line
  self.live_bytes = self.live_bytes - (old and #old or 0) + (line and #line or 0)
  if self.live_bytes == 0 then
    -- In the pool (freeing a synced file's blocks can wait for the device: a discard); a
    -- rewrite or an emptying in flight is followed by this one.
    self.journal:empty()
    return true
  end
  local size = self.journal:size()
  if size > self.journal_min and size > JOURNAL_FACTOR * self.live_bytes then
    self.journal:rewrite(self:current_text()) -- in the pool; appends meanwhile are carried over
  end
  return true
end

--- Writes a run's record (a table with at least run_id); durable = false does not wait for
--- the disk (see above).
function State:save_run(record, durable)
  assert(type(record.run_id) == "string" and record.run_id:match(ID), "a run record needs a run_id")
  local ok, err = self:append(record.run_id, json.encode(record) .. "\n")
  if not ok or durable == false then
    return ok, err
  end
  return self.journal:sync() -- the disk's wait does not hold up other runs, and is shared
end

--- Forgets a run's record (not waited for on the disk: see above).
function State:remove_run(run_id)
  if not self.lines[run_id] then
    return true
  end
  return self:append(run_id, nil)
end

-- The current version of an older agent's record at path: the last line that is a JSON object
-- of run id id. nil, nil: no record (nothing but zeros or blanks); nil, message: unreadable.
function State:read_record(path, id)
  local text, err = self.fs.read(path)
  if not text then
    return nil, err
  end
  local rec
  for l in text:gmatch("[^\n]+") do
    local ok, doc = pcall(json.decode, l)
    if ok and type(doc) == "table" and doc.run_id == id then
      rec = doc
    end
  end
  if not rec then
    if text:match("^[%z%s]*$") then
      return nil, nil
    end
    return nil, path .. ": no line is a JSON object of run_id " .. id
  end
  return rec
end

-- The journal's records, as { line, doc } by run id (false: removed), and its text. A line
-- that is neither a record nor a removal is a save cut short when it is the last one (ignored);
-- before that, it is reported in bad and kept aside in runs.journal.unreadable for a human.
function State:read_journal(bad)
  local path = self:journal_path()
  local text, err, missing = self.fs.read(path)
  if not text then
    if missing then
      return {}, ""
    end
    return nil, err
  end
  local all, last = {}, 0
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do -- blank lines too: they are counted in path:line
    local body = l:gsub("^[%z%s]+", "")
    all[#all + 1] = body
    if body ~= "" then
      last = #all
    end
  end
  local records, unreadable = {}, {}
  for n, body in ipairs(all) do
    if body ~= "" then
      local ok, doc = pcall(json.decode, body)
      if ok and type(doc) == "table" and type(doc.run_id) == "string" and doc.run_id:match(ID) then
        records[doc.run_id] = { line = body .. "\n", doc = doc }
      elseif ok and type(doc) == "table" and type(doc.removed) == "string" then
        records[doc.removed] = false
      elseif n ~= last then
        bad[#bad + 1] = { path = path .. ":" .. n, error = "not a run record" }
        unreadable[#unreadable + 1] = body .. "\n"
      end
    end
  end
  if #unreadable > 0 then
    self.fs.append(path .. ".unreadable", table.concat(unreadable))
  end
  return records, text
end

--- Every run record, in run id order. Unreadable records are reported in the second list
--- (path and error); an older agent's unreadable record file is left in place for a human
--- to look at. The journal is rewritten with the current records, those of an older agent's
--- files included (which are then removed), and on the disk before this returns; a rewrite
--- that fails is reported in the second list too, the records returned all the same.
function State:load_runs()
  local bad = {}
  local found, text = self:read_journal(bad)
  if not found then
    return nil, text
  end
  local folded = {}
  local names = {}
  if self.fs.exists(self.dir .. "/runs") then -- an older agent's: not to be skipped unsaid
    local listed, lerr = self.fs.list(self.dir .. "/runs")
    if listed then
      names = listed
    else
      bad[#bad + 1] = { path = self.dir .. "/runs", error = lerr }
    end
  end
  for _, name in ipairs(names) do
    local id = name:match("^(.+)%.json$")
    local path = self.dir .. "/runs/" .. name
    if id and id:match(ID) then
      local rec, rerr = self:read_record(path, id)
      if rec then
        if found[id] == nil then -- the journal's version, when there is one, is newer
          found[id] = { line = json.encode(rec) .. "\n", doc = rec }
        end
        folded[#folded + 1] = path
      elseif rerr == nil then
        folded[#folded + 1] = path -- a write that a power cut left empty: no record
      else
        bad[#bad + 1] = { path = path, error = rerr }
      end
    end
  end
  local records = {}
  self.lines, self.live_bytes = {}, 0
  for id, r in pairs(found) do
    if r then
      records[#records + 1] = r.doc
      self.lines[id] = r.line
      self.live_bytes = self.live_bytes + #r.line
    end
  end
  table.sort(records, function(a, b) return a.run_id < b.run_id end)
  local current = self:current_text()
  if current ~= text or #folded > 0 then
    local ok, werr = self.journal:rewrite(current, true)
    while ok == false do -- one is in flight: a sync returns once it is done
      self.journal:sync()
      ok, werr = self.journal:rewrite(current, true)
    end
    if not ok then
      -- Only a clean-up failed: every record read stands (the journal still holds its lines),
      -- the older agent's files stay for the next start, and a torn last line is ended so
      -- that the next save is a line of its own.
      bad[#bad + 1] = { path = self:journal_path(), error = werr }
      if text:find("[^\n]$") then
        self.journal:write("\n")
      end
      return records, bad
    end
  end
  for _, path in ipairs(folded) do
    self.fs.remove(path)
  end
  if #folded == #names and #names > 0 then
    self.fs.remove_tree(self.dir .. "/runs") -- empty now: an older agent's layout is gone
  end
  return records, bad
end

return state
