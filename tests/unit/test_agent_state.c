/* The agent's run records (hangar.agent.state over core.fs's journal): restarts, removals,
 * rewrites, group commit and the upgrade from one file per run. */
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent/agentfs.h"
#include "check.h"
#include "lua/runtime.h"

static hg_loop loop;
static char base[4096];
static int n_dirs;

/* Runs code (Lua, full mode, blocking) with globals fs = core.fs, state = hangar.agent.state,
 * DIR = a fresh directory, and the helpers below; the chunk returns "ok" or fails. */
static const char *prelude =
    "state = require 'hangar.agent.state'\n"
    "function slurp(p) local f = io.open(p, 'rb') if not f then return nil end\n"
    "  local t = f:read('a') f:close() return t end\n"
    "function spit(p, t, mode) local f = assert(io.open(p, mode or 'wb')) f:write(t) f:close() end\n"
    "function open() return assert(state.open(DIR, fs, { journal_min = JOURNAL_MIN })) end\n"
    "function ids(recs) local t = {} for i, r in ipairs(recs) do t[i] = r.run_id .. '=' ..\n"
    "  tostring(r.phase) end return table.concat(t, ',') end\n"
    "function count(text, pat) local _, n = text:gsub(pat, '') return n end\n";

/* set_fsize(bytes | nil): the process's file size limit (writes past it fail with EFBIG). */
static int l_set_fsize(lua_State *L) {
  struct rlimit rl;
  getrlimit(RLIMIT_FSIZE, &rl);
  rl.rlim_cur = lua_isnoneornil(L, 1) ? rl.rlim_max : (rlim_t)luaL_checkinteger(L, 1);
  lua_pushboolean(L, setrlimit(RLIMIT_FSIZE, &rl) == 0);
  return 1;
}

/* set_nofile(extra | nil): the process's descriptor limit, extra above those open now (opens
 * past it fail with EMFILE); nil: back to the hard limit. */
static int l_set_nofile(lua_State *L) {
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (lua_isnoneornil(L, 1)) {
    rl.rlim_cur = rl.rlim_max;
  } else {
    int fd = open("/dev/null", O_RDONLY); /* the lowest free descriptor */
    if (fd < 0) return luaL_error(L, "set_nofile: cannot open /dev/null");
    close(fd);
    rl.rlim_cur = (rlim_t)(fd + luaL_checkinteger(L, 1));
  }
  lua_pushboolean(L, setrlimit(RLIMIT_NOFILE, &rl) == 0);
  return 1;
}

static void run_lua(const char *name, const char *code) {
  if (!*base) {
    const char *tmp = getenv("HANGAR_TEST_TMP");
    snprintf(base, sizeof base, "%s/test_agent_state.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    CHECK(mkdtemp(base) != NULL);
  }
  hg_err err;
  hg_lua_opts opts = {.mode = HG_LUA_FULL, .blocking = 1};
  hg_lua *rt = NULL;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  CHECK_EQ_INT(hg_lua_new(&loop, &opts, &rt, &err), 0);
  lua_State *L = hg_lua_state(rt);
  hg_agentfs_push(L);
  lua_setglobal(L, "fs");
  lua_pushcfunction(L, l_set_fsize);
  lua_setglobal(L, "set_fsize");
  lua_pushcfunction(L, l_set_nofile);
  lua_setglobal(L, "set_nofile");
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/%d", base, ++n_dirs);
  CHECK_EQ_INT(hg_agentfs_mkdir_p(dir), 0);
  lua_pushstring(L, dir);
  lua_setglobal(L, "DIR");
  CHECK_EQ_INT(hg_lua_load_string(rt, prelude, strlen(prelude), "=prelude", &err), 0);
  CHECK_EQ_INT(hg_lua_call(rt, 0, 0, &err), 0);
  int rc = hg_lua_load_string(rt, code, strlen(code), name, &err);
  if (!rc) rc = hg_lua_call(rt, 0, 1, &err);
  if (rc) fprintf(stderr, "%s: %s\n", name, err.msg);
  CHECK_EQ_INT(rc, 0);
  if (!rc) {
    CHECK_EQ_STR(lua_tostring(L, -1), "ok");
    lua_pop(L, 1);
  }
  hg_lua_free(rt);
  hg_loop_close(&loop);
}

/* A restart reads every record's latest version; a removal line drops one; the journal then
 * holds only the current lines. */
static void restart_reads_latest_versions_and_removals(void) {
  run_lua("=latest", "local s = open()\n"
                     "assert(#s:load_runs() == 0)\n"
                     "assert(s:save_run({ run_id = 'a', phase = 'running' }, false))\n"
                     "assert(s:save_run({ run_id = 'b', phase = 'running' }))\n"
                     "assert(s:save_run({ run_id = 'a', phase = 'finishing' }))\n"
                     "assert(s:save_run({ run_id = 'c', phase = 'running' }, false))\n"
                     "assert(s:remove_run('b'))\n"
                     "assert(not fs.exists(DIR .. '/runs/a.json'), 'one file per run')\n"
                     "s.journal:close()\n"
                     "local recs, bad = open():load_runs()\n"
                     "assert(ids(recs) == 'a=finishing,c=running', ids(recs))\n"
                     "assert(#bad == 0)\n"
                     "local text = slurp(DIR .. '/runs.journal')\n"
                     "assert(count(text, '\\n') == 2, text)\n"
                     "return 'ok'\n");
}

/* A save cut short (half a line, then zeros) leaves the version before it; lines of zeros
 * alone are no record; the next appends start on a clean line. */
static void torn_tail_leaves_the_version_before(void) {
  run_lua("=torn", "local s = open()\n"
                   "s:load_runs()\n"
                   "assert(s:save_run({ run_id = 'a', phase = 'running' }))\n"
                   "s.journal:close()\n"
                   "spit(DIR .. '/runs.journal', '{\"run_id\":\"a\",\"phase\":\"finishing\",\"res' ..\n"
                   "  string.rep('\\0', 100), 'ab')\n"
                   "local s2 = open()\n"
                   "local recs, bad = s2:load_runs()\n"
                   "assert(ids(recs) == 'a=running', ids(recs))\n"
                   "assert(#bad == 0, bad[1] and bad[1].error)\n"
                   "assert(s2:save_run({ run_id = 'a', phase = 'finishing' }))\n"
                   "s2.journal:close()\n"
                   "recs = open():load_runs()\n"
                   "assert(ids(recs) == 'a=finishing', ids(recs))\n"
                   "spit(DIR .. '/runs.journal', string.rep('\\0', 300) .. '\\n  \\n')\n"
                   "recs, bad = open():load_runs()\n"
                   "assert(#recs == 0 and #bad == 0)\n"
                   "return 'ok'\n");
}

/* A line that is not a record, before the last one, is reported and kept aside. */
static void garbage_inside_is_reported_and_kept(void) {
  run_lua("=garbage", "spit(DIR .. '/runs.journal', '{\"run_id\":\"a\",\"phase\":\"x\"}\\nnot json\\n'\n"
                      "  .. '{\"run_id\":\"b\",\"phase\":\"y\"}\\n')\n"
                      "local recs, bad = open():load_runs()\n"
                      "assert(ids(recs) == 'a=x,b=y', ids(recs))\n"
                      "assert(#bad == 1 and bad[1].path:find('runs.journal:2', 1, true), bad[1] and bad[1].path)\n"
                      "assert(slurp(DIR .. '/runs.journal.unreadable') == 'not json\\n')\n"
                      "spit(DIR .. '/runs.journal', '{\"run_id\":\"a\",\"phase\":\"x\"}\\n\\n\\nbad\\n'\n"
                      "  .. '{\"run_id\":\"b\",\"phase\":\"y\"}\\n')\n"
                      "recs, bad = open():load_runs()\n"
                      "assert(#bad == 1 and bad[1].path:find('runs.journal:4', 1, true), 'blank lines count: ' .. bad[1].path)\n"
                      "return 'ok'\n");
}

/* Once no record is left the journal is emptied in place (in the pool: a sync afterwards waits
 * for it): a finished run's lines (its run token) do not stay on the disk. Saves made while
 * it is emptied follow. */
static void last_removal_empties_the_journal(void) {
  run_lua("=empty", "local s = open()\n"
                    "s:load_runs()\n"
                    "assert(s:save_run({ run_id = 'a', phase = 'running', token = 'secret-token' }))\n"
                    "assert(s:save_run({ run_id = 'b', phase = 'running' }))\n"
                    "assert(s:remove_run('a'))\n"
                    "assert(slurp(DIR .. '/runs.journal'):find('secret-token', 1, true))\n"
                    "local function inode() local p = io.popen('stat -c %i ' .. DIR .. '/runs.journal')\n"
                    "  local i = p:read('l') p:close() return i end\n"
                    "local before = inode()\n"
                    "assert(s:remove_run('b'))\n"
                    "assert(s.journal:sync())\n"
                    "assert(slurp(DIR .. '/runs.journal') == '')\n"
                    "assert(s.journal:size() == 0)\n"
                    "assert(inode() == before, 'a new file')\n"
                    "assert(s:remove_run('never-saved'))\n"
                    "assert(s:save_run({ run_id = 'c', phase = 'running', token = 'secret-token' }))\n"
                    "assert(s:remove_run('c'))\n"
                    "assert(s:save_run({ run_id = 'd', phase = 'during' }, false))\n"
                    "assert(s:save_run({ run_id = 'e', phase = 'during' }))\n"
                    "local text = slurp(DIR .. '/runs.journal')\n"
                    "assert(not text:find('secret-token', 1, true), text)\n"
                    "assert(count(text, '\\n') == 2 and #text == s.journal:size(), text)\n"
                    "s.journal:close()\n"
                    "local recs = open():load_runs()\n"
                    "assert(ids(recs) == 'd=during,e=during', ids(recs))\n"
                    "return 'ok'\n");
}

/* The last removal empties the journal even when a rewrite or an emptying is in flight: a
 * finished run's token does not wait for the next run to finish. Saves after it are kept. */
static void last_removal_during_a_job_still_empties(void) {
  run_lua("=empty-busy", "local s = open()\n"
                         "s:load_runs()\n"
                         "assert(s:save_run({ run_id = 'a', phase = 'running' }))\n"
                         "assert(s:remove_run('a')) -- emptying, in flight\n"
                         "assert(s:save_run({ run_id = 'b', phase = 'running', token = 'secret-token' }, false))\n"
                         "assert(s:remove_run('b'))\n"
                         "assert(s.journal:sync())\n"
                         "assert(slurp(DIR .. '/runs.journal') == '', 'after an emptying')\n"
                         "assert(s:save_run({ run_id = 'c', phase = 'running', token = 'secret-token' }))\n"
                         "assert(s:save_run({ run_id = 'd', phase = 'running' }, false))\n"
                         "assert(s.journal:rewrite(s:current_text())) -- in flight\n"
                         "assert(s:remove_run('c'))\n"
                         "assert(s:remove_run('d'))\n"
                         "assert(s:save_run({ run_id = 'e', phase = 'after' }, false))\n"
                         "assert(s.journal:sync())\n"
                         "local text = slurp(DIR .. '/runs.journal')\n"
                         "assert(not text:find('secret-token', 1, true), 'after a rewrite: ' .. text)\n"
                         "assert(#text == s.journal:size(), text)\n"
                         "s.journal:close()\n"
                         "assert(ids(open():load_runs()) == 'e=after')\n"
                         "return 'ok'\n");
}

/* Past its bound the journal is rewritten with the current lines, in the pool, while saves go
 * on; nothing written meanwhile is lost. */
static void journal_is_rewritten_when_it_grows(void) {
  run_lua("=rewrite", "JOURNAL_MIN = 2000\n"
                      "local task = require 'hangar.task'\n"
                      "local s = open()\n"
                      "s:load_runs()\n"
                      "local pad = string.rep('x', 100)\n"
                      "local tasks = {}\n"
                      "for t = 1, 4 do tasks[t] = task.spawn(function()\n"
                      "  for i = 1, 200 do\n"
                      "    assert(s:save_run({ run_id = 'r' .. t, phase = 'p' .. i, pad = pad }, i % 3 ~= 0))\n"
                      "  end end) end\n"
                      "for _, t in ipairs(tasks) do t:wait() end\n"
                      "assert(s:save_run({ run_id = 'r1', phase = 'last', pad = pad }))\n"
                      "local size = #slurp(DIR .. '/runs.journal')\n"
                      "assert(size == s.journal:size(), size .. ' vs ' .. s.journal:size())\n"
                      "assert(size < 4000, 'the journal grew to ' .. size)\n"
                      "assert(not fs.exists(DIR .. '/runs.journal.tmp'))\n"
                      "s.journal:close()\n"
                      "local recs = open():load_runs()\n"
                      "assert(ids(recs) == 'r1=last,r2=p200,r3=p200,r4=p200', ids(recs))\n"
                      "return 'ok'\n");
}

/* A save that cannot be written leaves the version before it, on disk and for later rewrites. */
static void failed_save_leaves_the_version_before(void) {
  signal(SIGXFSZ, SIG_IGN);
  run_lua("=failed", "local s = open()\n"
                     "s:load_runs()\n"
                     "assert(s:save_run({ run_id = 'a', phase = 'one' }))\n"
                     "assert(set_fsize(s.journal:size() + 10))\n"
                     "local ok, err = s:save_run({ run_id = 'a', phase = 'two', pad = string.rep('x', 50) })\n"
                     "assert(set_fsize(nil))\n"
                     "assert(ok == nil and err:find('runs.journal', 1, true), tostring(err))\n"
                     "assert(s.journal:rewrite(s:current_text(), true))\n"
                     "local recs = open():load_runs()\n"
                     "assert(ids(recs) == 'a=one', ids(recs))\n"
                     "return 'ok'\n");
  signal(SIGXFSZ, SIG_DFL);
}

/* Closing the journal while it is being emptied keeps what was written meanwhile (the
 * emptying, in flight, finishes first). */
static void close_while_emptying_keeps_later_saves(void) {
  run_lua("=close-emptying", "local s = open()\n"
                             "s:load_runs()\n"
                             "assert(s:save_run({ run_id = 'a', phase = 'running' }))\n"
                             "assert(s:remove_run('a'))\n"
                             "assert(s:save_run({ run_id = 'b', phase = 'running' }, false))\n"
                             "s.journal:close()\n"
                             "return 'ok'\n");
  run_lua("=close-emptying-2", "DIR = DIR:gsub('(%d+)$', function(n) return tostring(n - 1) end)\n"
                               "local recs = open():load_runs()\n"
                               "assert(ids(recs) == 'b=running', ids(recs))\n"
                               "return 'ok'\n");
}

/* A rewrite's new name that cannot be put on the disk (its directory not synced) is reported
 * to the saves that wait for it, not answered as durable; the next sync tries again. */
static void unsynced_rename_is_not_durable(void) {
  run_lua("=dirsync", "local s = open()\n"
                      "s:load_runs()\n"
                      "assert(s:save_run({ run_id = 'a', phase = 'one' }))\n"
                      "assert(s:save_run({ run_id = 'a', phase = 'two' }, false))\n"
                      "assert(set_nofile(1)) -- the rewrite's file, not the directory for its sync\n"
                      "local ok, err = s.journal:rewrite(s:current_text(), true)\n"
                      "assert(set_nofile(nil))\n"
                      "assert(ok == nil and err:find('runs.journal: ', 1, true), tostring(ok) .. ' ' .. tostring(err))\n"
                      "assert(s:save_run({ run_id = 'a', phase = 'three' }))\n"
                      "assert(ids(open():load_runs()) == 'a=three')\n"
                      "return 'ok'\n");
}

/* A restart whose rewrite of the journal fails still has every record it read (the caller
 * would otherwise take each run the hub lists as one without a record, and finish it failed):
 * the failure is reported, an older agent's files stay for the next start, and a torn last line
 * does not swallow the next save. */
static void failed_rewrite_at_restart_keeps_the_records(void) {
  run_lua("=restart-rewrite", "spit(DIR .. '/runs.journal', '{\"run_id\":\"a\",\"phase\":\"finishing\"}\\n{\"run_i')\n"
                              "fs.mkdir_p(DIR .. '/runs')\n"
                              "spit(DIR .. '/runs/c.json', '{\"run_id\":\"c\",\"phase\":\"running\"}\\n')\n"
                              "fs.mkdir_p(DIR .. '/runs.journal.tmp') -- the rewrite cannot create its file\n"
                              "local s = open()\n"
                              "local recs, bad = s:load_runs()\n"
                              "assert(recs, 'no records: ' .. tostring(bad))\n"
                              "assert(ids(recs) == 'a=finishing,c=running', ids(recs))\n"
                              "assert(#bad == 1 and bad[1].error:find('runs.journal.tmp: ', 1, true), bad[1] and bad[1].error)\n"
                              "assert(fs.exists(DIR .. '/runs/c.json'), 'an older record removed, not in the journal')\n"
                              "assert(s:save_run({ run_id = 'b', phase = 'running' }))\n"
                              "s.journal:close()\n"
                              "fs.remove_tree(DIR .. '/runs.journal.tmp')\n"
                              "recs, bad = open():load_runs()\n"
                              "assert(ids(recs) == 'a=finishing,b=running,c=running', ids(recs))\n"
                              "return 'ok'\n");
}

/* Reading the records while a rewrite is in flight waits for it, then rewrites. */
static void load_waits_for_a_rewrite_in_flight(void) {
  run_lua("=inflight", "local s = open()\n"
                       "s:load_runs()\n"
                       "assert(s:save_run({ run_id = 'a', phase = 'one' }, false))\n"
                       "assert(s:save_run({ run_id = 'a', phase = 'two' }, false))\n"
                       "assert(s.journal:rewrite(s:current_text()))\n"
                       "local recs, bad = s:load_runs()\n"
                       "assert(recs, 'no records: ' .. tostring(bad))\n"
                       "assert(ids(recs) == 'a=two', ids(recs))\n"
                       "assert(count(slurp(DIR .. '/runs.journal'), '\\n') == 1)\n"
                       "return 'ok'\n");
}

/* Durable saves waiting at the same time share fdatasyncs: 32 at once need far fewer than 32,
 * but two at least: the first one's began before the others wrote, and cannot cover them. */
static void concurrent_durable_saves_share_syncs(void) {
  run_lua("=group", "local task = require 'hangar.task'\n"
                    "local s = open()\n"
                    "s:load_runs()\n"
                    "local before = s.journal:syncs()\n"
                    "local tasks = {}\n"
                    "for t = 1, 32 do tasks[t] = task.spawn(function()\n"
                    "  assert(s:save_run({ run_id = 'r' .. t, phase = 'finishing' }))\n"
                    "end) end\n"
                    "for _, t in ipairs(tasks) do t:wait() end\n"
                    "local syncs = s.journal:syncs() - before\n"
                    "assert(syncs >= 2 and syncs <= 3, syncs .. ' syncs for 32 saves')\n"
                    "assert(s:save_run({ run_id = 'r1', phase = 'again' }))\n"
                    "assert(s.journal:syncs() - before == syncs + 1, 'a save alone has its own sync')\n"
                    "return 'ok'\n");
}

/* An older agent's files runs/<id>.json are read (latest whole line; one of zeros is no record),
 * folded into the journal and removed; an unreadable one is reported and left in place. */
static void older_agents_record_files_are_folded(void) {
  run_lua("=upgrade", "fs.mkdir_p(DIR .. '/runs')\n"
                      "spit(DIR .. '/runs/a.json', '{\"run_id\":\"a\",\"phase\":\"running\"}\\n'\n"
                      "  .. '{\"run_id\":\"a\",\"phase\":\"finishing\",\"result\":{\"status\":\"succ')\n"
                      "spit(DIR .. '/runs/b.json', string.rep('\\0', 64))\n"
                      "spit(DIR .. '/runs/c.json', '{\"run_id\":\"c\",\"phase\":\"running\"}\\n')\n"
                      "local recs, bad = open():load_runs()\n"
                      "assert(ids(recs) == 'a=running,c=running', ids(recs))\n"
                      "assert(#bad == 0)\n"
                      "assert(not fs.exists(DIR .. '/runs'), 'the old directory stayed')\n"
                      "recs = open():load_runs()\n"
                      "assert(ids(recs) == 'a=running,c=running', ids(recs))\n"
                      "fs.mkdir_p(DIR .. '/runs')\n"
                      "spit(DIR .. '/runs/d.json', 'garbage')\n"
                      "spit(DIR .. '/runs/c.json', '{\"run_id\":\"c\",\"phase\":\"stale\"}\\n')\n"
                      "recs, bad = open():load_runs()\n"
                      "assert(ids(recs) == 'a=running,c=running', 'the journal is newer: ' .. ids(recs))\n"
                      "assert(#bad == 1 and bad[1].path:find('d.json', 1, true))\n"
                      "assert(slurp(DIR .. '/runs/d.json') == 'garbage')\n"
                      "assert(not fs.exists(DIR .. '/runs/c.json'))\n"
                      "fs.remove_tree(DIR .. '/runs')\n"
                      "spit(DIR .. '/runs', 'not a directory')\n"
                      "recs, bad = open():load_runs()\n"
                      "assert(ids(recs) == 'a=running,c=running', ids(recs))\n"
                      "assert(#bad == 1 and bad[1].error:find(DIR .. '/runs', 1, true), 'an unlistable runs/')\n"
                      "return 'ok'\n");
}

/* A rewrite cut short by a crash left runs.journal.tmp (with run tokens of runs that may be
 * over): opening the journal removes it. */
static void leftover_rewrite_file_is_removed(void) {
  run_lua("=leftover", "spit(DIR .. '/runs.journal.tmp', '{\"run_id\":\"a\",\"run_token\":\"t\"}\\n')\n"
                       "local s = open()\n"
                       "assert(not fs.exists(DIR .. '/runs.journal.tmp'), 'the leftover stays')\n"
                       "assert(#s:load_runs() == 0, 'the leftover was read as records')\n"
                       "return 'ok'\n");
}

TEST_MAIN(T(restart_reads_latest_versions_and_removals), T(leftover_rewrite_file_is_removed),
          T(torn_tail_leaves_the_version_before),
          T(garbage_inside_is_reported_and_kept), T(last_removal_empties_the_journal),
          T(journal_is_rewritten_when_it_grows), T(concurrent_durable_saves_share_syncs),
          T(older_agents_record_files_are_folded), T(load_waits_for_a_rewrite_in_flight),
          T(failed_save_leaves_the_version_before),
          T(close_while_emptying_keeps_later_saves), T(unsynced_rename_is_not_durable),
          T(last_removal_during_a_job_still_empties),
          T(failed_rewrite_at_restart_keeps_the_records))
