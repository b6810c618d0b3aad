/* The hub's SQLite store: schema versions, keys, runs, events, config variables, locking. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/buf.h"
#include "hub/store.h"

static char dir[256];

static void make_dir(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  char tmpl[200];
  snprintf(tmpl, sizeof tmpl, "%s/hubstoreXXXXXX", base && *base ? base : "/tmp");
  if (base && *base) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    if (system(cmd) != 0) snprintf(tmpl, sizeof tmpl, "/tmp/hubstoreXXXXXX");
  }
  snprintf(dir, sizeof dir, "%s", mkdtemp(tmpl) ? tmpl : "/tmp");
}

static void db_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

static hg_store *open_new(const char *name) {
  char path[320];
  db_path(path, sizeof path, name);
  hg_store_options o = {.sync = HG_STORE_SYNC_NORMAL, .create = true};
  hg_store *s = NULL;
  hg_err err = {0};
  int rc = hg_store_open(path, &o, &s, &err);
  if (rc) fprintf(stderr, "open: %s\n", err.msg);
  return s;
}

static void creates_schema_and_reopens(void) {
  hg_store *s = open_new("schema.db");
  CHECK(s != NULL);
  if (!s) return;
  CHECK_EQ_INT(hg_store_schema_version(s), 2);
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_meta_set(s, "x", "abc", 3, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_close(s);

  s = open_new("schema.db");
  CHECK(s != NULL);
  hg_buf v = HG_BUF_INIT;
  CHECK_EQ_INT(hg_store_meta_get(s, "x", &v, &err), 0);
  CHECK_EQ_STR(v.data, "abc");
  hg_buf_free(&v);
  CHECK_EQ_INT(hg_store_meta_get(s, "missing", &v, &err), HG_ENOENT);
  hg_store_close(s);
}

static void missing_store_is_enoent_unless_create(void) {
  char path[320];
  db_path(path, sizeof path, "nothing-here.db");
  hg_store_options o = {.create = false};
  hg_store *s = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_open(path, &o, &s, &err), HG_ENOENT);
  CHECK(s == NULL);
  CHECK(access(path, F_OK) != 0);
}

static void refuses_newer_schema(void) {
  char path[320];
  db_path(path, sizeof path, "future.db");
  sqlite3 *db;
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  hg_store_options o = {.create = false};
  hg_store *s = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_open(path, &o, &s, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "99") != NULL);
}

static void one_process_at_a_time(void) {
  hg_store *a = open_new("locked.db");
  CHECK(a != NULL);
  char path[320];
  db_path(path, sizeof path, "locked.db");
  hg_store_options o = {.create = false};
  hg_store *b = NULL;
  hg_err err = {0};
  /* flock locks belong to the open file description, so a second open in this process
   * conflicts just as a second process would. */
  CHECK_EQ_INT(hg_store_open(path, &o, &b, &err), HG_EEXIST);
  CHECK(strstr(err.msg, "another hub") != NULL);
  hg_store_close(a);
  CHECK_EQ_INT(hg_store_open(path, &o, &b, &err), 0);
  hg_store_close(b);
}

static void keys_roundtrip_revoke_touch(void) {
  hg_store *s = open_new("keys.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_key k = {.id = "abcdefghijkl", .role = "agent", .name = "staging", .labels = "{\"env\":\"staging\"}",
                    .created_ms = 1000};
  memset(k.secret_hash, 7, sizeof k.secret_hash);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_insert(s, &k, &err), 0);
  CHECK_EQ_INT(hg_store_key_insert(s, &k, &err), HG_EEXIST);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);

  hg_store_key got;
  CHECK_EQ_INT(hg_store_key_get(s, "abcdefghijkl", &got, &err), 0);
  CHECK_EQ_STR(got.role, "agent");
  CHECK_EQ_STR(got.labels, "{\"env\":\"staging\"}");
  CHECK_EQ_MEM(got.secret_hash, k.secret_hash, sizeof k.secret_hash);
  CHECK_EQ_INT(got.revoked_ms, 0);
  hg_store_key_clear(&got);
  CHECK_EQ_INT(hg_store_key_get(s, "nosuchkey000", &got, &err), HG_ENOENT);

  int64_t n = 0;
  CHECK_EQ_INT(hg_store_key_count_active(s, "agent", &n, &err), 0);
  CHECK_EQ_INT(n, 1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_touch(s, k.id, 5000, &err), 0);
  CHECK_EQ_INT(hg_store_key_revoke(s, k.id, 6000, &err), 0);
  CHECK_EQ_INT(hg_store_key_revoke(s, k.id, 7000, &err), 0); /* the first time counts */
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &got, &err), 0);
  CHECK_EQ_INT(got.last_used_ms, 5000);
  CHECK_EQ_INT(got.revoked_ms, 6000);
  hg_store_key_clear(&got);
  CHECK_EQ_INT(hg_store_key_count_active(s, "agent", &n, &err), 0);
  CHECK_EQ_INT(n, 0);

  hg_store_key *all = NULL;
  size_t count = 0;
  CHECK_EQ_INT(hg_store_key_list(s, &all, &count, &err), 0);
  CHECK_EQ_INT(count, 1);
  hg_store_keys_free(all, count);
  hg_store_close(s);
}

static void rollback_discards(void) {
  hg_store *s = open_new("rollback.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_key k = {.id = "rollbackkey0", .role = "user", .name = "", .labels = "{}"};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_begin(s, &err), HG_EINVAL); /* no nesting */
  CHECK_EQ_INT(hg_store_key_insert(s, &k, &err), 0);
  hg_store_rollback(s);
  hg_store_key got;
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &got, &err), HG_ENOENT);
  hg_store_close(s);
}

static void tasks_latest_revision(void) {
  hg_store *s = open_new("tasks.db");
  if (!s) return;
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  hg_store_task t1 = {.slug = "hello", .revision = 1, .definition = "{\"a\":1}", .canonical = "c1"};
  hg_store_task t2 = {.slug = "hello", .revision = 2, .definition = "{\"a\":2}", .canonical = "c2"};
  hg_store_task o = {.slug = "other", .revision = 1, .definition = "{}", .canonical = "c"};
  CHECK_EQ_INT(hg_store_task_insert(s, &t1, &err), 0);
  CHECK_EQ_INT(hg_store_task_insert(s, &t2, &err), 0);
  CHECK_EQ_INT(hg_store_task_insert(s, &o, &err), 0);
  CHECK_EQ_INT(hg_store_task_insert(s, &t2, &err), HG_EEXIST);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_task got;
  CHECK_EQ_INT(hg_store_task_get(s, "hello", 0, &got, &err), 0);
  CHECK_EQ_INT(got.revision, 2);
  CHECK_EQ_STR(got.definition, "{\"a\":2}");
  hg_store_task_clear(&got);
  CHECK_EQ_INT(hg_store_task_get(s, "hello", 1, &got, &err), 0);
  CHECK_EQ_STR(got.canonical, "c1");
  hg_store_task_clear(&got);
  hg_store_task *all;
  size_t n;
  CHECK_EQ_INT(hg_store_task_list(s, &all, &n, &err), 0);
  CHECK_EQ_INT(n, 2);
  if (n == 2) {
    CHECK_EQ_STR(all[0].slug, "hello");
    CHECK_EQ_INT(all[0].revision, 2);
  }
  hg_store_tasks_free(all, n);
  hg_store_close(s);
}

static hg_store_run new_run(const char *id, int64_t created) {
  hg_store_run r = {.id = (char *)id, .task = "hello", .revision = 1, .status = HG_RUN_QUEUED,
                    .params = "{}", .constraints = "{}", .timeout_s = 60, .created_ms = created};
  return r;
}

static size_t count_set(hg_store *s, hg_store_run_query *q) {
  hg_store_run *v = NULL;
  size_t n = 0;
  hg_err err = {0};
  if (hg_store_run_list(s, q, &v, &n, &err)) return (size_t)-1;
  hg_store_runs_free(v, n);
  return n;
}

/* An update writes every field, the indexed ones (task, status, agent, token) too, whether
 * they change alone, together or not at all, and lookups by them follow. */
static void run_update_writes_every_field(void) {
  hg_store *s = open_new("update.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_run a = new_run("run_u", 1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_query held = {.set = HG_RUNS_HELD, .agent_id = "agent_u"};
  hg_store_run_query queued = {.set = HG_RUNS_QUEUED};
  hg_store_run_query running = {.set = HG_RUNS_ALL, .status = HG_RUN_RUNNING};
  hg_store_run_query by_task = {.set = HG_RUNS_ALL, .status = -1, .task = "other"};
  uint8_t tok[HG_STORE_HASH_LEN];
  memset(tok, 7, sizeof tok);
  hg_store_run r;
  /* Agent and token set with the status unchanged. */
  CHECK_EQ_INT(hg_store_run_get(s, "run_u", &r, &err), 0);
  r.agent_id = strdup("agent_u");
  r.status = HG_RUN_ASSIGNED;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  r.status = HG_RUN_RUNNING;
  r.accepted = true;
  r.has_token = true;
  memcpy(r.token_hash, tok, sizeof tok);
  r.lease_expires_ms = 42;
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(count_set(s, &held), 1);
  CHECK_EQ_INT(count_set(s, &queued), 0);
  CHECK_EQ_INT(count_set(s, &running), 1);
  CHECK_EQ_INT(hg_store_run_by_token(s, tok, &r, &err), 0);
  CHECK_EQ_STR(r.agent_id, "agent_u");
  CHECK_EQ_INT(r.lease_expires_ms, 42);
  /* Nothing indexed changes: the rest is still written. */
  r.next_seq = 9;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_get(s, "run_u", &r, &err), 0);
  CHECK_EQ_INT(r.next_seq, 9);
  CHECK_EQ_INT(r.status, HG_RUN_RUNNING);
  /* Back to nothing: no agent, no token, queued again, another task. */
  free(r.agent_id);
  r.agent_id = NULL;
  r.has_token = false;
  r.status = HG_RUN_QUEUED;
  free(r.task);
  r.task = strdup("other");
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(count_set(s, &held), 0);
  CHECK_EQ_INT(count_set(s, &queued), 1);
  CHECK_EQ_INT(count_set(s, &running), 0);
  CHECK_EQ_INT(count_set(s, &by_task), 1);
  CHECK_EQ_INT(hg_store_run_by_token(s, tok, &r, &err), HG_ENOENT);
  CHECK_EQ_INT(hg_store_run_get(s, "run_u", &r, &err), 0);
  CHECK(r.agent_id == NULL);
  CHECK(!r.has_token);
  CHECK_EQ_INT(r.next_seq, 9);
  hg_store_run_clear(&r);
  /* A token another run holds is refused, and the transaction rolls back whole. */
  hg_store_run b = new_run("run_v", 2);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &b, &err), 0);
  b.has_token = true;
  memcpy(b.token_hash, tok, sizeof tok);
  CHECK_EQ_INT(hg_store_run_update(s, &b, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_u", &r, &err), 0);
  r.has_token = true;
  memcpy(r.token_hash, tok, sizeof tok);
  r.next_seq = 10;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK(hg_store_run_update(s, &r, &err) != 0);
  CHECK(strstr(err.msg, "run run_u") != NULL);
  hg_store_rollback(s);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_get(s, "run_u", &r, &err), 0);
  CHECK_EQ_INT(r.next_seq, 9);
  CHECK(!r.has_token);
  hg_store_run_clear(&r);
  hg_store_close(s);
}

/* A run read in the open transaction is updated without reading its indexed columns again.
 * What that read saw must not outlive an update of the run (a second update in the same
 * transaction) nor the transaction (a rollback undoes what a read after an update saw): the
 * status, agent and their indexes follow every update all the same. */
static void update_after_read_in_transaction(void) {
  hg_store *s = open_new("seen.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_run a = new_run("run_s", 1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_query queued = {.set = HG_RUNS_QUEUED};
  hg_store_run_query assigned = {.set = HG_RUNS_ALL, .status = HG_RUN_ASSIGNED};
  hg_store_run_query held = {.set = HG_RUNS_HELD, .agent_id = "agent_s"};
  int64_t counts[HG_RUN_STATUS_COUNT];
  hg_store_run r, r2;

  /* Read, then updated twice: the second update undoes the first. */
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_s", &r, &err), 0);
  r.status = HG_RUN_ASSIGNED;
  r.agent_id = strdup("agent_s");
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  r.status = HG_RUN_QUEUED;
  free(r.agent_id);
  r.agent_id = NULL;
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(count_set(s, &queued), 1);
  CHECK_EQ_INT(count_set(s, &assigned), 0);
  CHECK_EQ_INT(count_set(s, &held), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_s", &r, &err), 0);
  CHECK_EQ_INT(r.status, HG_RUN_QUEUED);
  CHECK(r.agent_id == NULL);
  hg_store_run_clear(&r);

  /* Updated, read again, rolled back; then the same change in a new transaction. */
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_s", &r, &err), 0);
  r.status = HG_RUN_ASSIGNED;
  r.agent_id = strdup("agent_s");
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_s", &r2, &err), 0);
  CHECK_EQ_INT(r2.status, HG_RUN_ASSIGNED);
  hg_store_rollback(s);
  CHECK_EQ_INT(count_set(s, &queued), 1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r2, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  hg_store_run_clear(&r2);
  CHECK_EQ_INT(count_set(s, &queued), 0);
  CHECK_EQ_INT(count_set(s, &assigned), 1);
  CHECK_EQ_INT(count_set(s, &held), 1);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 0);
  CHECK_EQ_INT(counts[HG_RUN_ASSIGNED], 1);
  hg_store_close(s);
}

/* A read transaction sees what was committed before it, does not nest, and ends with commit. */
static void read_transactions(void) {
  hg_store *s = open_new("read.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_run a = new_run("run_r", 1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run r;
  CHECK_EQ_INT(hg_store_begin_read(s, &err), 0);
  CHECK_EQ_INT(hg_store_begin(s, &err), HG_EINVAL);
  CHECK_EQ_INT(hg_store_begin_read(s, &err), HG_EINVAL);
  CHECK_EQ_INT(hg_store_run_get(s, "run_r", &r, &err), 0);
  CHECK_EQ_INT(r.status, HG_RUN_QUEUED);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_get(s, "run_none", &r, &err), HG_ENOENT);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  /* Ended: a write transaction opens again. */
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_r", &r, &err), 0);
  r.status = HG_RUN_CANCELLED;
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_get(s, "run_r", &r, &err), 0);
  CHECK_EQ_INT(r.status, HG_RUN_CANCELLED);
  hg_store_run_clear(&r);
  hg_store_close(s);
}

static void runs_sets_and_update(void) {
  hg_store *s = open_new("runs.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_run a = new_run("run_a", 1), b = new_run("run_b", 2), c = new_run("run_c", 3);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &b, &err), 0);
  CHECK_EQ_INT(hg_store_run_insert(s, &c, &err), 0);
  CHECK(a.seqno < b.seqno && b.seqno < c.seqno);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);

  /* Queued: oldest first. */
  hg_store_run_query qq = {.set = HG_RUNS_QUEUED};
  hg_store_run *v = NULL;
  size_t n = 0;
  CHECK_EQ_INT(hg_store_run_list(s, &qq, &v, &n, &err), 0);
  CHECK_EQ_INT(n, 3);
  if (n == 3) CHECK_EQ_STR(v[0].id, "run_a");
  hg_store_runs_free(v, n);
  /* A page of the queue after a given run. */
  hg_store_run_query qpage = {.set = HG_RUNS_QUEUED, .after_seqno = a.seqno, .limit = 1};
  CHECK_EQ_INT(hg_store_run_list(s, &qpage, &v, &n, &err), 0);
  CHECK_EQ_INT(n, 1);
  if (n == 1) CHECK_EQ_STR(v[0].id, "run_b");
  hg_store_runs_free(v, n);
  qpage.after_seqno = c.seqno;
  CHECK_EQ_INT(count_set(s, &qpage), 0);

  /* Assign a to agent x with a lease that lapses at 100; b accepted, lease at 500. */
  hg_store_run r;
  CHECK_EQ_INT(hg_store_run_get(s, "run_a", &r, &err), 0);
  r.status = HG_RUN_ASSIGNED;
  r.agent_id = strdup("agent_x");
  r.lease_id = strdup("lease_1");
  r.lease_expires_ms = 100;
  r.attempt = 1;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_get(s, "run_b", &r, &err), 0);
  r.status = HG_RUN_RUNNING;
  r.agent_id = strdup("agent_x");
  r.accepted = true;
  r.lease_expires_ms = 500;
  r.deadline_ms = 1000;
  r.has_token = true;
  memset(r.token_hash, 3, sizeof r.token_hash);
  r.has_exit_code = true;
  r.exit_code = -2;
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);

  CHECK_EQ_INT(hg_store_run_get(s, "run_b", &r, &err), 0);
  CHECK_EQ_INT(r.status, HG_RUN_RUNNING);
  CHECK(r.accepted);
  CHECK(r.has_token);
  CHECK(r.has_exit_code);
  CHECK_EQ_INT(r.exit_code, -2);
  CHECK(r.outputs == NULL);
  hg_store_run_clear(&r);

  uint8_t tok[HG_STORE_HASH_LEN];
  memset(tok, 3, sizeof tok);
  CHECK_EQ_INT(hg_store_run_by_token(s, tok, &r, &err), 0);
  CHECK_EQ_STR(r.id, "run_b");
  hg_store_run_clear(&r);

  hg_store_run_query held = {.set = HG_RUNS_HELD, .agent_id = "agent_x"};
  CHECK_EQ_INT(count_set(s, &held), 2);
  hg_store_run_query lapsed = {.set = HG_RUNS_LAPSED, .now_ms = 200};
  CHECK_EQ_INT(count_set(s, &lapsed), 1);
  lapsed.now_ms = 600;
  CHECK_EQ_INT(count_set(s, &lapsed), 2);
  hg_store_run_query overdue = {.set = HG_RUNS_OVERDUE, .now_ms = 1001};
  CHECK_EQ_INT(count_set(s, &overdue), 1);
  hg_store_run_query queued = {.set = HG_RUNS_QUEUED};
  CHECK_EQ_INT(count_set(s, &queued), 1);
  hg_store_run_query by_status = {.set = HG_RUNS_ALL, .status = HG_RUN_RUNNING};
  CHECK_EQ_INT(count_set(s, &by_status), 1);
  hg_store_run_query by_task = {.set = HG_RUNS_ALL, .status = -1, .task = "hello", .limit = 2};
  CHECK_EQ_INT(count_set(s, &by_task), 2);

  /* A restart moves live leases forward, so nobody is failed for the hub's absence. */
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_extend_leases(s, 10000, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  lapsed.now_ms = 9999;
  CHECK_EQ_INT(count_set(s, &lapsed), 0);
  overdue.now_ms = 9999;
  CHECK_EQ_INT(count_set(s, &overdue), 0);

  int64_t counts[HG_RUN_STATUS_COUNT];
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 1);
  CHECK_EQ_INT(counts[HG_RUN_ASSIGNED], 1);
  CHECK_EQ_INT(counts[HG_RUN_RUNNING], 1);

  hg_store_run ghost = new_run("run_ghost", 9);
  CHECK_EQ_INT(hg_store_run_update(s, &ghost, &err), HG_ENOENT);
  hg_store_close(s);
}

/* Stores count events "line first".."line first+count-1" of a run as one chunk. */
static int append_lines(hg_store *s, int64_t run, int64_t first, size_t count) {
  char text[4096];
  uint32_t starts[64];
  size_t len = 0;
  for (size_t i = 0; i < count; i++) {
    if (i) text[len++] = ',';
    starts[i] = (uint32_t)len;
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "{\"kind\":\"log\",\"text\":\"line %lld\"}",
                            (long long)(first + (int64_t)i));
  }
  hg_store_chunk c = {
      .first_seq = first, .count = count, .text = text, .len = len, .starts = starts};
  hg_err err = {0};
  return hg_store_event_append(s, run, &c, &err);
}

/* Reads events as "seq=json;..." so a test compares the whole answer at once. */
static void read_flat(hg_store *s, int64_t run, int64_t after, size_t limit, size_t max_bytes,
                      char *out, size_t size) {
  hg_store_chunk *v = NULL;
  size_t n = 0;
  hg_err err = {0};
  out[0] = '\0';
  if (hg_store_event_read(s, run, after, limit, max_bytes, &v, &n, &err) != 0) {
    snprintf(out, size, "error: %s", err.msg);
    return;
  }
  size_t used = 0;
  for (size_t k = 0; k < n; k++) {
    for (size_t i = 0; i < v[k].count; i++) {
      size_t from = v[k].starts[i];
      size_t to = i + 1 < v[k].count ? v[k].starts[i + 1] - 1 : v[k].len;
      used += (size_t)snprintf(out + used, size - used, "%lld=%.*s;",
                               (long long)(v[k].first_seq + (int64_t)i), (int)(to - from),
                               v[k].text + from);
    }
  }
  hg_store_chunks_free(v, n);
}

#define LINE(n) "{\"kind\":\"log\",\"text\":\"line " #n "\"}"

static void events_in_chunks(void) {
  hg_store *s = open_new("events.db");
  if (!s) return;
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(append_lines(s, 1, 0, 3), 0);
  CHECK_EQ_INT(append_lines(s, 1, 3, 2), 0);
  CHECK_EQ_INT(append_lines(s, 2, 0, 1), 0);
  /* A chunk starting at a seq the run has is refused: the caller trims retried events. */
  CHECK_EQ_INT(append_lines(s, 1, 3, 1), HG_EEXIST);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);

  char got[2048];
  read_flat(s, 1, -1, 0, 0, got, sizeof got);
  CHECK_EQ_STR(got, "0=" LINE(0) ";1=" LINE(1) ";2=" LINE(2) ";3=" LINE(3) ";4=" LINE(4) ";");
  /* Slices: from inside a chunk, across chunks, exactly limit events. */
  read_flat(s, 1, 0, 3, 0, got, sizeof got);
  CHECK_EQ_STR(got, "1=" LINE(1) ";2=" LINE(2) ";3=" LINE(3) ";");
  read_flat(s, 1, 2, 1, 0, got, sizeof got);
  CHECK_EQ_STR(got, "3=" LINE(3) ";");
  read_flat(s, 1, 3, 10, 0, got, sizeof got);
  CHECK_EQ_STR(got, "4=" LINE(4) ";");
  read_flat(s, 1, 4, 10, 0, got, sizeof got);
  CHECK_EQ_STR(got, "");
  read_flat(s, 2, -1, 10, 0, got, sizeof got);
  CHECK_EQ_STR(got, "0=" LINE(0) ";");
  /* A byte bound stops before the event that would pass it, but never returns nothing. */
  read_flat(s, 1, -1, 10, 60, got, sizeof got);
  CHECK_EQ_STR(got, "0=" LINE(0) ";1=" LINE(1) ";");
  read_flat(s, 1, 1, 10, 5, got, sizeof got);
  CHECK_EQ_STR(got, "2=" LINE(2) ";");
  hg_store_close(s);
}

/* A batch of megabytes is kept in several rows; reading it is the same. */
static void events_large_chunk(void) {
  hg_store *s = open_new("large.db");
  if (!s) return;
  size_t count = 40, each = 50000;
  char *text = malloc(count * (each + 40));
  uint32_t starts[40];
  size_t len = 0;
  for (size_t i = 0; i < count; i++) {
    if (i) text[len++] = ',';
    starts[i] = (uint32_t)len;
    len += (size_t)sprintf(text + len, "{\"n\":%zu,\"text\":\"", i);
    memset(text + len, 'a' + (int)(i % 26), each);
    len += each;
    len += (size_t)sprintf(text + len, "\"}");
  }
  hg_store_chunk c = {.first_seq = 0, .count = count, .text = text, .len = len, .starts = starts};
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_event_append(s, 3, &c, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_chunk *v = NULL;
  size_t n = 0;
  for (int64_t after = -1; after < 40; after += 7) {
    CHECK_EQ_INT(hg_store_event_read(s, 3, after, 10, 0, &v, &n, &err), 0);
    size_t got = 0;
    bool same = true;
    for (size_t k = 0; k < n; k++) {
      for (size_t i = 0; i < v[k].count; i++, got++) {
        size_t seq = (size_t)(after + 1) + got;
        size_t from = v[k].starts[i];
        size_t to = i + 1 < v[k].count ? v[k].starts[i + 1] - 1 : v[k].len;
        size_t want_to = seq + 1 < count ? starts[seq + 1] - 1 : len;
        if ((int64_t)seq != v[k].first_seq + (int64_t)i || to - from != want_to - starts[seq] ||
            memcmp(v[k].text + from, text + starts[seq], to - from) != 0)
          same = false;
      }
    }
    CHECK(same);
    CHECK_EQ_INT(got, after + 11 <= 40 ? 10 : (size_t)(39 - after));
    hg_store_chunks_free(v, n);
  }
  free(text);
  hg_store_close(s);
}

/* Log events in the usual shape, marked so by the caller, are kept compactly and read back
 * byte for byte as sent, in any slice; other events among them, and a mark that does not fit
 * the bytes, are kept as they are. */
static void events_compact(void) {
  hg_store *s = open_new("compact.db");
  if (!s) return;
  enum { N = 3000 };
  static const char *streams[] = {"stdout", "stderr", "system"};
  hg_buf text = HG_BUF_INIT;
  uint32_t *starts = calloc(N, sizeof *starts);
  hg_store_logref *logs = calloc(N, sizeof *logs);
  for (size_t i = 0; i < N; i++) {
    if (i) hg_buf_appendc(&text, ',');
    starts[i] = (uint32_t)text.len;
    if (i % 97 == 5) {
      hg_buf_printf(&text, "{\"kind\":\"output\",\"op\":\"set\",\"path\":\"n\",\"value\":%zu}", i);
      continue;
    }
    size_t before = text.len;
    int st = (int)(i % 3), partial = i % 11 == 0;
    hg_buf_printf(&text, "{\"kind\":\"log\",\"ts\":\"2026-11-28T10:00:%02zu.%03zuZ\",\"stream\":\"%s\","
                  "\"text\":\"line %zu%s\",\"partial\":%s}",
                  i / 1000 % 60, i / 7 % 1000, streams[st], i, i % 13 == 0 ? " \\\"q\\\" \\u00e9\\n" : "",
                  partial ? "true" : "false");
    logs[i] = (hg_store_logref){.usual = 1, .stream = (uint8_t)st, .partial = (uint8_t)partial,
                                .ts_len = 26};
    /* a mark that does not fit the bytes: kept as any other event */
    if (i % 101 == 7) logs[i].stream = (uint8_t)((st + 1) % 3);
    (void)before;
  }
  hg_store_chunk c = {.first_seq = 0, .count = N, .text = text.data, .len = text.len,
                      .starts = starts, .logs = logs};
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_event_append(s, 4, &c, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  /* whole, and slices from anywhere under a count and a byte bound */
  for (int64_t after = -1; after < N; after += 1 + (after + 2) / 3) {
    for (size_t limit = 1; limit <= 700; limit *= 7) {
      hg_store_chunk *v = NULL;
      size_t n = 0, got = 0, max_bytes = limit == 343 ? 5000 : 0;
      CHECK_EQ_INT(hg_store_event_read(s, 4, after, limit, max_bytes, &v, &n, &err), 0);
      bool same = true;
      size_t bytes = 0;
      for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < v[k].count; i++, got++) {
          size_t seq = (size_t)(after + 1) + got;
          size_t from = v[k].starts[i], to = i + 1 < v[k].count ? v[k].starts[i + 1] - 1 : v[k].len;
          size_t want_to = seq + 1 < N ? starts[seq + 1] - 1 : text.len;
          bytes += to - from;
          if ((int64_t)seq != v[k].first_seq + (int64_t)i || to - from != want_to - starts[seq] ||
              memcmp(v[k].text + from, text.data + starts[seq], to - from) != 0)
            same = false;
        }
        if (v[k].text[v[k].len] != '\0') same = false;
      }
      CHECK(same);
      size_t left = (size_t)(N - 1 - after);
      if (max_bytes)
        CHECK(got >= 1 && (bytes <= max_bytes || got == 1));
      else
        CHECK_EQ_INT(got, left < limit ? left : limit);
      hg_store_chunks_free(v, n);
    }
  }
  /* and in about half the space of the JSON */
  hg_store_close(s);
  char path[320];
  db_path(path, sizeof path, "compact.db");
  sqlite3 *db;
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  CHECK_EQ_INT(sqlite3_prepare_v2(db, "SELECT sum(length(events)), min(typeof(events)) FROM event_chunks WHERE run = 4", -1, &st, NULL), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK(sqlite3_column_int64(st, 0) < (sqlite3_int64)text.len * 2 / 3);
  CHECK_EQ_STR((const char *)sqlite3_column_text(st, 1), "blob");
  sqlite3_finalize(st);
  sqlite3_close(db);
  hg_buf_free(&text);
  free(starts);
  free(logs);
}

/* A store of schema 1 (one row per event) is brought up to date and its events read as before. */
static void upgrades_events_of_schema_1(void) {
  hg_store *s = open_new("v1.db");
  if (!s) return;
  hg_store_close(s);
  char path[320];
  db_path(path, sizeof path, "v1.db");
  sqlite3 *db;
  CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_EQ_INT(sqlite3_exec(db,
                            "DROP TABLE event_chunks;"
                            "CREATE TABLE events(run INTEGER NOT NULL, seq INTEGER NOT NULL,"
                            "  body TEXT NOT NULL, PRIMARY KEY(run, seq)) WITHOUT ROWID;"
                            "INSERT INTO events VALUES(7, 1, '{\"text\":\"b\"}'),"
                            "  (7, 0, '{\"text\":\"a\"}'), (8, 0, '{\"text\":\"other\"}');"
                            "PRAGMA user_version = 1;",
                            NULL, NULL, NULL),
               SQLITE_OK);
  sqlite3_close(db);
  s = open_new("v1.db");
  CHECK(s != NULL);
  if (!s) return;
  CHECK_EQ_INT(hg_store_schema_version(s), 2);
  char got[512];
  read_flat(s, 7, -1, 0, 0, got, sizeof got);
  CHECK_EQ_STR(got, "0={\"text\":\"a\"};1={\"text\":\"b\"};");
  /* New batches go on from there. */
  hg_err err = {0};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(append_lines(s, 7, 2, 2), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  read_flat(s, 7, 0, 2, 0, got, sizeof got);
  CHECK_EQ_STR(got, "1={\"text\":\"b\"};2=" LINE(2) ";");
  hg_store_close(s);
}

static void config_vars(void) {
  hg_store *s = open_new("config.db");
  if (!s) return;
  hg_err err = {0};
  uint8_t blob[] = {1, 0, 2, 0, 3};
  hg_store_config c = {.name = "db_password", .secret = true, .value = blob, .value_len = 5,
                       .updated_ms = 42};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_config_put(s, &c, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_config got;
  CHECK_EQ_INT(hg_store_config_get(s, "db_password", &got, &err), 0);
  CHECK(got.secret);
  CHECK_EQ_INT(got.value_len, 5);
  CHECK_EQ_MEM(got.value, blob, 5);
  hg_store_config_clear(&got);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_config_delete(s, "db_password", &err), 0);
  CHECK_EQ_INT(hg_store_config_delete(s, "db_password", &err), HG_ENOENT);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_config_get(s, "db_password", &got, &err), HG_ENOENT);
  hg_store_close(s);
}

static void agents_and_sessions(void) {
  hg_store *s = open_new("agents.db");
  if (!s) return;
  hg_err err = {0};
  hg_store_agent a = {.id = "agent_1", .key_id = "key000000001", .name = "a1", .capacity = 4,
                      .has_session = true, .registered_ms = 5};
  memset(a.session_hash, 9, sizeof a.session_hash);
  memset(a.public_key, 1, sizeof a.public_key);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_put(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_agent got;
  uint8_t h[HG_STORE_HASH_LEN];
  memset(h, 9, sizeof h);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h, &got, &err), 0);
  CHECK_EQ_STR(got.id, "agent_1");
  CHECK_EQ_INT(got.capacity, 4);
  CHECK_EQ_STR(got.labels, "{}");
  hg_store_agent_clear(&got);
  hg_store_agent *v;
  size_t n;
  CHECK_EQ_INT(hg_store_agent_list_sessions(s, "key000000001", &v, &n, &err), 0);
  CHECK_EQ_INT(n, 1);
  hg_store_agents_free(v, n);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_end_session(s, "agent_1", &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h, &got, &err), HG_ENOENT);
  CHECK_EQ_INT(hg_store_agent_get(s, "agent_1", &got, &err), 0);
  CHECK(!got.has_session);
  hg_store_agent_clear(&got);
  hg_store_close(s);
}

/* Runs per status, as /metrics shows them, follow inserts, status changes and rollbacks, and
 * agree with the runs listed by status. */
static void run_counts_follow_changes(void) {
  hg_store *s = open_new("counts.db");
  if (!s) return;
  hg_err err = {0};
  int64_t counts[HG_RUN_STATUS_COUNT];
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 0);
  const char *ids[] = {"run_n1", "run_n2", "run_n3"};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  for (int i = 0; i < 3; i++) {
    hg_store_run r = new_run(ids[i], i + 1);
    CHECK_EQ_INT(hg_store_run_insert(s, &r, &err), 0);
  }
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 3);
  hg_store_run r;
  /* A status change, and an update that changes no status. */
  CHECK_EQ_INT(hg_store_run_get(s, "run_n1", &r, &err), 0);
  r.status = HG_RUN_RUNNING;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  r.next_seq = 4;
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 2);
  CHECK_EQ_INT(counts[HG_RUN_RUNNING], 1);
  /* Rolled back: neither the change nor the new run counts. */
  CHECK_EQ_INT(hg_store_run_get(s, "run_n2", &r, &err), 0);
  r.status = HG_RUN_FAILED;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  hg_store_run extra = new_run("run_n4", 9);
  CHECK_EQ_INT(hg_store_run_insert(s, &extra, &err), 0);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_FAILED], 1);
  hg_store_rollback(s);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  CHECK_EQ_INT(counts[HG_RUN_QUEUED], 2);
  CHECK_EQ_INT(counts[HG_RUN_FAILED], 0);
  CHECK_EQ_INT(hg_store_run_get(s, "run_n3", &r, &err), 0);
  r.status = HG_RUN_SUCCEEDED;
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_clear(&r);
  CHECK_EQ_INT(hg_store_run_count_by_status(s, counts, &err), 0);
  for (int st = 0; st < HG_RUN_STATUS_COUNT; st++) {
    hg_store_run_query q = {.set = HG_RUNS_ALL, .status = st};
    CHECK_EQ_INT(counts[st], (int64_t)count_set(s, &q));
  }
  CHECK_EQ_INT(counts[HG_RUN_SUCCEEDED], 1);
  hg_store_close(s);
}

/* The cancels due to an agent: its cancelling runs whose cancel it was not told of and which
 * it has not finished, none of another agent's. */
static void cancels_pending_per_agent(void) {
  hg_store *s = open_new("cancels.db");
  if (!s) return;
  hg_err err = {0};
  const char *ids[] = {"run_c1", "run_c2", "run_c3", "run_c4", "run_c5"};
  const char *agents[] = {"agent_x", "agent_y", "agent_x", "agent_x", "agent_x"};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  for (int i = 0; i < 5; i++) {
    hg_store_run r = new_run(ids[i], i + 1);
    CHECK_EQ_INT(hg_store_run_insert(s, &r, &err), 0);
    r.agent_id = (char *)agents[i];
    r.accepted = true;
    r.status = i == 3 ? HG_RUN_RUNNING : HG_RUN_CANCELLING;
    r.cancel_notified = i == 2;
    r.agent_finished = i == 4;
    CHECK_EQ_INT(hg_store_run_update(s, &r, &err), 0);
  }
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_run_query qx = {.set = HG_RUNS_CANCEL_PENDING, .agent_id = "agent_x"};
  hg_store_run *v = NULL;
  size_t n = 0;
  CHECK_EQ_INT(hg_store_run_list(s, &qx, &v, &n, &err), 0);
  CHECK_EQ_INT(n, 1);
  if (n == 1) CHECK_EQ_STR(v[0].id, "run_c1");
  hg_store_runs_free(v, n);
  hg_store_run_query qy = {.set = HG_RUNS_CANCEL_PENDING, .agent_id = "agent_y"};
  CHECK_EQ_INT(count_set(s, &qy), 1);
  hg_store_run_query qz = {.set = HG_RUNS_CANCEL_PENDING, .agent_id = "agent_z"};
  CHECK_EQ_INT(count_set(s, &qz), 0);
  hg_store_close(s);
}

/* What authenticates a request (a session's agent, a key) is read again after every write
 * to it and after a rollback, however often it was read before. */
static void auth_lookups_follow_writes(void) {
  hg_store *s = open_new("auth.db");
  if (!s) return;
  hg_err err = {0};
  uint8_t h1[HG_STORE_HASH_LEN], h2[HG_STORE_HASH_LEN];
  memset(h1, 1, sizeof h1);
  memset(h2, 2, sizeof h2);
  hg_store_agent a = {.id = "agent_c", .key_id = "key00000000c", .name = "first", .capacity = 1,
                      .has_session = true};
  memcpy(a.session_hash, h1, sizeof h1);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_put(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_agent got;
  for (int i = 0; i < 2; i++) {
    CHECK_EQ_INT(hg_store_agent_by_session(s, h1, &got, &err), 0);
    CHECK_EQ_STR(got.name, "first");
    hg_store_agent_clear(&got);
  }
  /* Registered again: the new session and name, the old session gone. */
  a.name = "second";
  memcpy(a.session_hash, h2, sizeof h2);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_put(s, &a, &err), 0);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h2, &got, &err), 0);
  CHECK_EQ_STR(got.name, "second");
  hg_store_agent_clear(&got);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h1, &got, &err), HG_ENOENT);
  /* ... but rolled back: as before. */
  hg_store_rollback(s);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h2, &got, &err), HG_ENOENT);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h1, &got, &err), 0);
  CHECK_EQ_STR(got.name, "first");
  hg_store_agent_clear(&got);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_end_session(s, "agent_c", &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_agent_by_session(s, h1, &got, &err), HG_ENOENT);

  hg_store_key k = {.id = "keyc00000001", .role = "user", .name = "k", .labels = "{}"};
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_insert(s, &k, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  hg_store_key kg;
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &kg, &err), 0);
  CHECK_EQ_INT(kg.revoked_ms, 0);
  hg_store_key_clear(&kg);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_revoke(s, k.id, 77, &err), 0);
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &kg, &err), 0);
  CHECK_EQ_INT(kg.revoked_ms, 77);
  hg_store_key_clear(&kg);
  hg_store_rollback(s);
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &kg, &err), 0);
  CHECK_EQ_INT(kg.revoked_ms, 0);
  hg_store_key_clear(&kg);
  CHECK_EQ_INT(hg_store_begin(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_touch(s, k.id, 55, &err), 0);
  CHECK_EQ_INT(hg_store_key_revoke(s, k.id, 88, &err), 0);
  CHECK_EQ_INT(hg_store_commit(s, &err), 0);
  CHECK_EQ_INT(hg_store_key_get(s, k.id, &kg, &err), 0);
  CHECK_EQ_INT(kg.last_used_ms, 55);
  CHECK_EQ_INT(kg.revoked_ms, 88);
  hg_store_key_clear(&kg);
  hg_store_close(s);
}

static void cleanup(void) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (strstr(dir, "hubstore")) CHECK_EQ_INT(system(cmd), 0);
}

static void setup(void) { make_dir(); }

TEST_MAIN(T(setup), T(creates_schema_and_reopens), T(missing_store_is_enoent_unless_create),
          T(refuses_newer_schema), T(one_process_at_a_time), T(keys_roundtrip_revoke_touch),
          T(rollback_discards), T(tasks_latest_revision), T(runs_sets_and_update),
          T(run_update_writes_every_field), T(update_after_read_in_transaction),
          T(read_transactions),
          T(events_in_chunks), T(events_large_chunk), T(events_compact), T(upgrades_events_of_schema_1),
          T(config_vars), T(agents_and_sessions), T(auth_lookups_follow_writes),
          T(cancels_pending_per_agent), T(run_counts_follow_changes), T(cleanup))
