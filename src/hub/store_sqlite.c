/* The SQLite store: WAL journal, versioned schema, one cached prepared statement per query. */
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hub/logshape.h"
#include "hub/store_backend.h"

/* ---- schema: migrations[i] takes the store from version i to i + 1 ---- */

static const char *const migrations[] = {
    /* 1: the first schema */
    "CREATE TABLE meta(name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE api_keys("
    "  id TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL, labels TEXT NOT NULL,"
    "  secret_hash BLOB NOT NULL, created_ms INTEGER NOT NULL,"
    "  last_used_ms INTEGER NOT NULL DEFAULT 0, revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE tasks("
    "  slug TEXT NOT NULL, revision INTEGER NOT NULL, definition TEXT NOT NULL,"
    "  canonical TEXT NOT NULL, created_ms INTEGER NOT NULL,"
    "  PRIMARY KEY(slug, revision)) WITHOUT ROWID;"
    "CREATE TABLE agents("
    "  id TEXT PRIMARY KEY, key_id TEXT NOT NULL, name TEXT NOT NULL, hostname TEXT NOT NULL,"
    "  version TEXT NOT NULL, labels TEXT NOT NULL, schedulers TEXT NOT NULL,"
    "  capacity INTEGER NOT NULL, public_key BLOB NOT NULL, session_hash BLOB UNIQUE,"
    "  registered_ms INTEGER NOT NULL);"
    "CREATE INDEX agents_by_key ON agents(key_id);"
    "CREATE TABLE runs("
    "  seqno INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, task TEXT NOT NULL,"
    "  revision INTEGER NOT NULL, status TEXT NOT NULL, params TEXT NOT NULL,"
    "  constraints TEXT NOT NULL, timeout_s INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    "  accepted_ms INTEGER NOT NULL DEFAULT 0, started_ms INTEGER NOT NULL DEFAULT 0,"
    "  finished_ms INTEGER NOT NULL DEFAULT 0, exit_code INTEGER, error TEXT, agent_id TEXT,"
    "  lease_id TEXT, lease_expires_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempt INTEGER NOT NULL DEFAULT 0, deadline_ms INTEGER NOT NULL DEFAULT 0,"
    "  token_hash BLOB UNIQUE, accepted INTEGER NOT NULL DEFAULT 0,"
    "  agent_finished INTEGER NOT NULL DEFAULT 0, finish TEXT,"
    "  finish_status INTEGER NOT NULL DEFAULT 0, cancel_notified INTEGER NOT NULL DEFAULT 0,"
    "  next_seq INTEGER NOT NULL DEFAULT 0, outputs TEXT, output_errors TEXT);"
    "CREATE INDEX runs_by_status ON runs(status, seqno);"
    "CREATE INDEX runs_by_task ON runs(task, seqno);"
    "CREATE INDEX runs_by_agent ON runs(agent_id) WHERE agent_id IS NOT NULL;"
    "CREATE TABLE events(run INTEGER NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,"
    "  PRIMARY KEY(run, seq)) WITHOUT ROWID;"
    "CREATE TABLE config_vars(name TEXT PRIMARY KEY, secret INTEGER NOT NULL,"
    "  value BLOB NOT NULL, updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
    /* 2: events in chunks, one row per stored batch: a row (and its index entry) per event made
     * SQLite the larger part of ingesting a log line. starts is NULL for a single event, else
     * count little-endian 32-bit offsets; the text comes last so that reading the small
     * columns does not walk its overflow pages. An old store's events become chunks of one. */
    "CREATE TABLE event_chunks(run INTEGER NOT NULL, first_seq INTEGER NOT NULL,"
    "  count INTEGER NOT NULL, starts BLOB, events TEXT NOT NULL, PRIMARY KEY(run, first_seq));"
    "INSERT INTO event_chunks(run, first_seq, count, starts, events)"
    "  SELECT run, seq, 1, NULL, body FROM events ORDER BY run, seq;"
    "DROP TABLE events;",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- statements, prepared once at open ---- */

#define RUN_COLS                                                                              \
  "seqno, id, task, revision, status, params, constraints, timeout_s, created_ms, accepted_ms," \
  " started_ms, finished_ms, exit_code, error, agent_id, lease_id, lease_expires_ms, attempt,"   \
  " deadline_ms, token_hash, accepted, agent_finished, finish, finish_status, cancel_notified,"  \
  " next_seq, outputs, output_errors"
#define AGENT_COLS                                                                   \
  "id, key_id, name, hostname, version, labels, schedulers, capacity, public_key," \
  " session_hash, registered_ms"
#define KEY_COLS "id, role, name, labels, secret_hash, created_ms, last_used_ms, revoked_ms"
#define HELD_STATUSES "('assigned','accepted','running','cancelling')"
#define ACTIVE_STATUSES "('accepted','running','cancelling')"

enum {
  Q_BEGIN,
  Q_BEGIN_READ,
  Q_COMMIT,
  Q_ROLLBACK,
  Q_META_GET,
  Q_META_SET,
  Q_KEY_INSERT,
  Q_KEY_GET,
  Q_KEY_LIST,
  Q_KEY_REVOKE,
  Q_KEY_TOUCH,
  Q_KEY_COUNT,
  Q_TASK_INSERT,
  Q_TASK_GET,
  Q_TASK_LATEST,
  Q_TASK_LIST,
  Q_AGENT_PUT,
  Q_AGENT_GET,
  Q_AGENT_BY_SESSION,
  Q_AGENT_SESSIONS,
  Q_AGENT_SESSIONS_OF_KEY,
  Q_AGENT_END_SESSION,
  Q_RUN_INSERT,
  Q_RUN_GET,
  Q_RUN_BY_TOKEN,
  Q_RUN_STATUS,
  Q_RUNS_ALL,
  Q_RUNS_BY_TASK,
  Q_RUNS_BY_STATUS,
  Q_RUNS_BY_TASK_STATUS,
  Q_RUNS_QUEUED,
  Q_RUNS_HELD,
  Q_RUNS_LAPSED,
  Q_RUNS_OVERDUE,
  Q_RUNS_CANCEL_PENDING,
  Q_RUNS_COUNT,
  Q_RUNS_EXTEND_LEASES,
  Q_RUNS_EXTEND_DEADLINES,
  Q_EVENT_APPEND,
  Q_EVENT_READ,
  Q_CONFIG_PUT,
  Q_CONFIG_GET,
  Q_CONFIG_LIST,
  Q_CONFIG_DELETE,
  Q_COUNT
};

static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_BEGIN_READ] = "BEGIN",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_META_GET] = "SELECT value FROM meta WHERE name = ?1",
    [Q_META_SET] = "INSERT OR REPLACE INTO meta(name, value) VALUES(?1, ?2)",
    [Q_KEY_INSERT] = "INSERT INTO api_keys(" KEY_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
    [Q_KEY_GET] = "SELECT " KEY_COLS " FROM api_keys WHERE id = ?1",
    [Q_KEY_LIST] = "SELECT " KEY_COLS " FROM api_keys ORDER BY created_ms, id",
    [Q_KEY_REVOKE] = "UPDATE api_keys SET revoked_ms = ?2 WHERE id = ?1 AND revoked_ms = 0",
    [Q_KEY_TOUCH] = "UPDATE api_keys SET last_used_ms = ?2 WHERE id = ?1",
    [Q_KEY_COUNT] = "SELECT count(*) FROM api_keys WHERE role = ?1 AND revoked_ms = 0",
    [Q_TASK_INSERT] = "INSERT INTO tasks(slug, revision, definition, canonical, created_ms)"
                      " VALUES(?1,?2,?3,?4,?5)",
    [Q_TASK_GET] = "SELECT slug, revision, definition, canonical, created_ms FROM tasks"
                   " WHERE slug = ?1 AND revision = ?2",
    [Q_TASK_LATEST] = "SELECT slug, revision, definition, canonical, created_ms FROM tasks"
                      " WHERE slug = ?1 ORDER BY revision DESC LIMIT 1",
    [Q_TASK_LIST] = "SELECT t.slug, t.revision, t.definition, t.canonical, t.created_ms"
                    " FROM tasks t WHERE t.revision ="
                    " (SELECT max(revision) FROM tasks u WHERE u.slug = t.slug) ORDER BY t.slug",
    [Q_AGENT_PUT] = "INSERT OR REPLACE INTO agents(" AGENT_COLS ")"
                    " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)",
    [Q_AGENT_GET] = "SELECT " AGENT_COLS " FROM agents WHERE id = ?1",
    [Q_AGENT_BY_SESSION] = "SELECT " AGENT_COLS " FROM agents WHERE session_hash = ?1",
    [Q_AGENT_SESSIONS] = "SELECT " AGENT_COLS " FROM agents WHERE session_hash IS NOT NULL"
                         " ORDER BY id",
    [Q_AGENT_SESSIONS_OF_KEY] = "SELECT " AGENT_COLS " FROM agents"
                                " WHERE session_hash IS NOT NULL AND key_id = ?1 ORDER BY id",
    [Q_AGENT_END_SESSION] = "UPDATE agents SET session_hash = NULL WHERE id = ?1",
    [Q_RUN_INSERT] = "INSERT INTO runs(" RUN_COLS ") VALUES(NULL,?2,?3,?4,?5,?6,?7,?8,?9,?10,"
                     "?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26,?27,?28)",
    [Q_RUN_GET] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1",
    [Q_RUN_BY_TOKEN] = "SELECT " RUN_COLS " FROM runs WHERE token_hash = ?1",
    /* A run's update reads the indexed columns (status, agent, token, task) first; its one
     * UPDATE (run_update_stmt) names the columns no index covers and only those indexed ones
     * whose value changes. An UPDATE that names an indexed column rewrites the column's index
     * entry even when the value is the same, so writing every column every time dirtied five
     * index pages and more per commit, where most updates change the status alone or no
     * indexed column at all (5.4-5.8 WAL frames per commit of a run's usual updates, against
     * 3.0 this way). */
    [Q_RUN_STATUS] = "SELECT status, agent_id, token_hash, task FROM runs WHERE id = ?1",
    [Q_RUNS_ALL] = "SELECT " RUN_COLS " FROM runs ORDER BY seqno DESC LIMIT ?1",
    [Q_RUNS_BY_TASK] = "SELECT " RUN_COLS " FROM runs WHERE task = ?2 ORDER BY seqno DESC LIMIT ?1",
    [Q_RUNS_BY_STATUS] = "SELECT " RUN_COLS " FROM runs WHERE status = ?3"
                         " ORDER BY seqno DESC LIMIT ?1",
    [Q_RUNS_BY_TASK_STATUS] = "SELECT " RUN_COLS " FROM runs WHERE task = ?2 AND status = ?3"
                              " ORDER BY seqno DESC LIMIT ?1",
    [Q_RUNS_QUEUED] = "SELECT " RUN_COLS " FROM runs WHERE status = 'queued' AND seqno > ?2"
                      " ORDER BY seqno LIMIT ?1",
    [Q_RUNS_HELD] = "SELECT " RUN_COLS " FROM runs WHERE agent_id = ?2 AND agent_finished = 0"
                    " AND (status = 'assigned' OR accepted = 1) ORDER BY seqno LIMIT ?1",
    [Q_RUNS_LAPSED] = "SELECT " RUN_COLS " FROM runs WHERE status IN " HELD_STATUSES
                      " AND lease_expires_ms < ?2 ORDER BY seqno LIMIT ?1",
    [Q_RUNS_OVERDUE] = "SELECT " RUN_COLS " FROM runs WHERE status IN " ACTIVE_STATUSES
                       " AND deadline_ms > 0 AND deadline_ms < ?2 ORDER BY seqno LIMIT ?1",
    /* By status (few runs are ever cancelling at once), not by agent: '+' keeps SQLite off
     * the agent index, which walked every run the agent ever had on every work poll. */
    [Q_RUNS_CANCEL_PENDING] = "SELECT " RUN_COLS " FROM runs WHERE status = 'cancelling'"
                              " AND +agent_id = ?2 AND cancel_notified = 0"
                              " AND agent_finished = 0 ORDER BY seqno LIMIT ?1",
    [Q_RUNS_COUNT] = "SELECT status, count(*) FROM runs GROUP BY status",
    [Q_RUNS_EXTEND_LEASES] = "UPDATE runs SET lease_expires_ms = ?1 WHERE status IN "
                             HELD_STATUSES " AND lease_expires_ms < ?1",
    [Q_RUNS_EXTEND_DEADLINES] = "UPDATE runs SET deadline_ms = ?1 WHERE status IN "
                                ACTIVE_STATUSES " AND deadline_ms > 0 AND deadline_ms < ?1",
    [Q_EVENT_APPEND] = "INSERT INTO event_chunks(run, first_seq, count, starts, events)"
                       " VALUES(?1, ?2, ?3, ?4, ?5)",
    /* From the chunk holding seq ?2 (the last one starting at or before it) onwards. */
    [Q_EVENT_READ] = "SELECT first_seq, count, starts, events FROM event_chunks"
                     " WHERE run = ?1 AND first_seq >= (SELECT coalesce(max(first_seq), 0)"
                     " FROM event_chunks WHERE run = ?1 AND first_seq <= ?2) ORDER BY first_seq",
    [Q_CONFIG_PUT] = "INSERT OR REPLACE INTO config_vars(name, secret, value, updated_ms)"
                     " VALUES(?1, ?2, ?3, ?4)",
    [Q_CONFIG_GET] = "SELECT name, secret, value, updated_ms FROM config_vars WHERE name = ?1",
    [Q_CONFIG_LIST] = "SELECT name, secret, value, updated_ms FROM config_vars ORDER BY name",
    [Q_CONFIG_DELETE] = "DELETE FROM config_vars WHERE name = ?1",
};

/* Checkpoints run on a thread of their own, through a connection of their own: copying the
 * WAL's pages into the database and the two fdatasyncs that go with it were a third of storing
 * a batch of events, all of it on the loop's thread (every other request waited). A commit
 * that leaves CKPT_FRAMES or more frames in the WAL wakes the thread, which copies what it can
 * without waiting for anyone. The WAL starts over only at a write that finds it wholly copied,
 * which a thread always a commit behind never leaves it: once it holds CKPT_LIMIT frames
 * (64 MiB), the thread also copies the rest while holding writers off (they wait, for about
 * one batch's copy), so that the next write starts the WAL afresh. Should the thread not keep
 * up at all, the committing connection checkpoints itself past twice that, as SQLite would by
 * default. None of it changes what a commit guarantees: a committed transaction is in the WAL
 * either way. */
#define CKPT_FRAMES 1000
#define CKPT_LIMIT 16384

#define AUTH_CACHE_SLOTS 64

typedef struct checkpointer {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started, wanted, stop;
  sqlite3 *db;
} checkpointer;

typedef struct sqlite_store {
  hg_store base;
  sqlite3 *db;
  sqlite3_stmt *st[Q_COUNT];
  int lock_fd;
  int version;
  bool in_tx;
  checkpointer ckpt;
  hg_buf row; /* a compact row being built */
  /* Rows read to authenticate a request (a session's agent, an API key), kept so that most
   * requests do not open a read transaction for them: each costs the file locks of one (a
   * dozen fcntl calls) where the hub's own work on a request is often less. Exact because
   * this process is the store's only writer (the flock above): any write to an agent or a
   * key drops the copies it could change, and the rollback of a transaction that wrote one
   * drops them all (a row read after that write may never have been committed). */
  bool auth_written; /* the open transaction wrote an agent or a key */
  /* Runs per status, kept up to date by every insert and status change once counted, so that
   * /metrics does not count the whole table on every scrape; a rollback sends the next count
   * back to the table. */
  bool counts_valid;
  int64_t counts[HG_RUN_STATUS_COUNT];
  /* A run's update, one statement per set of indexed columns it changes (bit i: the i-th of
   * status, agent, token, task), prepared when first needed. */
  sqlite3_stmt *run_update[16];
  /* The indexed columns of the run last read by id (run_get) in the open transaction, as
   * stored, so that its update need not read them again. Only a run's update writes those
   * columns (the bulk lease and deadline updates do not), and it forgets them, as does the
   * end of the transaction (a rollback may undo what was read). */
  struct {
    bool valid;
    int status; /* parsed: a status this build cannot name is not kept */
    bool has_agent, has_token;
    char id[96], agent[96], task[128];
    uint8_t token[HG_STORE_HASH_LEN];
  } seen;
  struct {
    bool used;
    hg_store_agent a;
  } agents[AUTH_CACHE_SLOTS];
  struct {
    bool used;
    hg_store_key k;
  } keys[AUTH_CACHE_SLOTS];
} sqlite_store;

static sqlite_store *S(hg_store *s) { return (sqlite_store *)s; }

/* ---- the authentication cache ---- */

static char *dup_or_null(const char *v, bool *oom) {
  if (!v) return NULL;
  char *c = strdup(v);
  if (!c) *oom = true;
  return c;
}

static bool agent_copy(hg_store_agent *dst, const hg_store_agent *src) {
  bool oom = false;
  *dst = *src;
  dst->id = dup_or_null(src->id, &oom);
  dst->key_id = dup_or_null(src->key_id, &oom);
  dst->name = dup_or_null(src->name, &oom);
  dst->hostname = dup_or_null(src->hostname, &oom);
  dst->version = dup_or_null(src->version, &oom);
  dst->labels = dup_or_null(src->labels, &oom);
  dst->schedulers = dup_or_null(src->schedulers, &oom);
  if (oom) hg_store_agent_clear(dst);
  return !oom;
}

static bool key_copy(hg_store_key *dst, const hg_store_key *src) {
  bool oom = false;
  *dst = *src;
  dst->id = dup_or_null(src->id, &oom);
  dst->role = dup_or_null(src->role, &oom);
  dst->name = dup_or_null(src->name, &oom);
  dst->labels = dup_or_null(src->labels, &oom);
  if (oom) hg_store_key_clear(dst);
  return !oom;
}

/* Session hashes are uniformly random: their first bytes pick the slot. */
static size_t agent_slot(const uint8_t *hash) {
  return ((size_t)hash[0] | (size_t)hash[1] << 8) % AUTH_CACHE_SLOTS;
}

static size_t key_slot(const char *id) {
  uint32_t h = 2166136261u;
  for (const unsigned char *p = (const unsigned char *)id; *p; p++) h = (h ^ *p) * 16777619u;
  return h % AUTH_CACHE_SLOTS;
}

/* Before a write to an agent. */
static void agents_forget(sqlite_store *s) {
  s->auth_written = true;
  for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) {
    if (s->agents[i].used) hg_store_agent_clear(&s->agents[i].a);
    s->agents[i].used = false;
  }
}

static void key_slot_clear(sqlite_store *s, size_t slot) {
  if (s->keys[slot].used) hg_store_key_clear(&s->keys[slot].k);
  s->keys[slot].used = false;
}

/* Before a write to a key. */
static void key_forget(sqlite_store *s, size_t slot) {
  s->auth_written = true;
  key_slot_clear(s, slot);
}

static void auth_forget(sqlite_store *s) {
  agents_forget(s);
  for (size_t i = 0; i < AUTH_CACHE_SLOTS; i++) key_slot_clear(s, i);
}

static int db_fail(sqlite_store *s, hg_err *err, const char *what) {
  int code = sqlite3_errcode(s->db);
  int rc = code == SQLITE_CONSTRAINT ? HG_EEXIST
           : code == SQLITE_NOMEM    ? HG_ENOMEM
           : code == SQLITE_FULL     ? HG_EIO
                                     : HG_EIO;
  return hg_err_set(err, rc, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Fetches a cached statement, reset and with no bindings left over. */
static sqlite3_stmt *q(sqlite_store *s, int which) {
  sqlite3_stmt *st = s->st[which];
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return st;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  if (v)
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static void bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n) {
  if (v)
    sqlite3_bind_blob64(st, i, v, n, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

/* Column readers; *oom is set when a copy cannot be made. */
static char *col_str(sqlite3_stmt *st, int i, bool *oom) {
  if (sqlite3_column_type(st, i) == SQLITE_NULL) return NULL;
  const unsigned char *t = sqlite3_column_text(st, i);
  int n = sqlite3_column_bytes(st, i);
  char *p = malloc((size_t)n + 1);
  if (!p) {
    *oom = true;
    return NULL;
  }
  if (n) memcpy(p, t, (size_t)n);
  p[n] = '\0';
  return p;
}

static void col_hash(sqlite3_stmt *st, int i, uint8_t *out, size_t len, bool *present) {
  const void *b = sqlite3_column_blob(st, i);
  int n = sqlite3_column_bytes(st, i);
  bool ok = b && (size_t)n == len;
  if (ok) memcpy(out, b, len);
  if (present) *present = ok;
}

/* Runs a statement that returns no rows. */
static int exec_step(sqlite_store *s, sqlite3_stmt *st, hg_err *err, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_fail(s, err, what);
  return 0;
}

/* Collects the rows of a query into a growing array by a per-row reader. */
typedef int (*row_reader)(sqlite3_stmt *st, void *item);

static int collect(sqlite_store *s, sqlite3_stmt *st, size_t item_size, row_reader read,
                   void (*clear)(void *), void **out, size_t *n, hg_err *err, const char *what) {
  char *items = NULL;
  size_t count = 0, cap = 0;
  int rc;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    if (count == cap) {
      size_t ncap = cap ? cap * 2 : 8;
      char *p = realloc(items, ncap * item_size);
      if (!p) goto oom;
      items = p;
      cap = ncap;
    }
    void *item = items + count * item_size;
    memset(item, 0, item_size);
    count++;
    if (read(st, item)) goto oom;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) {
    for (size_t i = 0; i < count; i++) clear(items + i * item_size);
    free(items);
    return db_fail(s, err, what);
  }
  *out = items;
  *n = count;
  return 0;
oom:
  sqlite3_reset(st);
  for (size_t i = 0; i < count; i++) clear(items + i * item_size);
  free(items);
  return hg_err_set(err, HG_ENOMEM, "store: %s: out of memory", what);
}

/* Reads the single row of a query; HG_ENOENT when there is none. */
static int one(sqlite_store *s, sqlite3_stmt *st, row_reader read, void (*clear)(void *),
               void *out, hg_err *err, const char *what) {
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return hg_err_set(err, HG_ENOENT, "store: %s: not found", what);
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return db_fail(s, err, what);
  }
  int r = read(st, out);
  sqlite3_reset(st);
  if (r) {
    clear(out);
    return hg_err_set(err, HG_ENOMEM, "store: %s: out of memory", what);
  }
  return 0;
}

/* ---- opening ---- */

static int exec_sql(sqlite_store *s, const char *text, hg_err *err, const char *what) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, text, NULL, NULL, &msg) != SQLITE_OK) {
    hg_err_set(err, HG_EIO, "store: %s: %s", what, msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return HG_EIO;
  }
  return 0;
}

static int read_user_version(sqlite_store *s, int *version, hg_err *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return db_fail(s, err, "reading the schema version");
  int rc = sqlite3_step(st);
  *version = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : db_fail(s, err, "reading the schema version");
}

static int migrate(sqlite_store *s, const char *path, hg_err *err) {
  int version;
  if (read_user_version(s, &version, err)) return err ? err->code : HG_EIO;
  if (version > SCHEMA_VERSION)
    return hg_err_set(err, HG_EINVAL,
                      "store %s has schema version %d, newer than this hangar knows (%d)", path,
                      version, SCHEMA_VERSION);
  if (version == SCHEMA_VERSION) {
    s->version = version;
    return 0;
  }
  if (exec_sql(s, "BEGIN IMMEDIATE", err, "migrating")) return HG_EIO;
  for (int v = version; v < SCHEMA_VERSION; v++) {
    if (exec_sql(s, migrations[v], err, "migrating")) {
      exec_sql(s, "ROLLBACK", NULL, "migrating");
      return hg_err_prefix(err, "schema version %d", v + 1);
    }
  }
  char set[64];
  snprintf(set, sizeof set, "PRAGMA user_version = %d", SCHEMA_VERSION);
  if (exec_sql(s, set, err, "migrating") || exec_sql(s, "COMMIT", err, "migrating")) {
    exec_sql(s, "ROLLBACK", NULL, "migrating");
    return HG_EIO;
  }
  s->version = SCHEMA_VERSION;
  return 0;
}

static void *checkpoint_loop(void *arg) {
  checkpointer *c = arg;
  pthread_mutex_lock(&c->mu);
  for (;;) {
    while (!c->wanted && !c->stop) pthread_cond_wait(&c->cv, &c->mu);
    if (c->stop) break;
    c->wanted = false;
    pthread_mutex_unlock(&c->mu);
    int frames = 0;
    sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, NULL);
    if (frames >= CKPT_LIMIT)
      sqlite3_wal_checkpoint_v2(c->db, NULL, SQLITE_CHECKPOINT_RESTART, NULL, NULL);
    pthread_mutex_lock(&c->mu);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* After every commit, with the WAL's size in frames (SQLite's own auto-checkpoint is this hook,
 * replaced). */
static int on_wal_commit(void *ud, sqlite3 *db, const char *name, int frames) {
  sqlite_store *s = ud;
  checkpointer *c = &s->ckpt;
  if (frames >= 2 * CKPT_LIMIT || (!c->started && frames >= CKPT_FRAMES)) {
    sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
  } else if (frames >= CKPT_FRAMES) {
    pthread_mutex_lock(&c->mu);
    c->wanted = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
  }
  return SQLITE_OK;
}

/* Starts the checkpoint thread; without it (no memory, no thread) the committing connection
 * checkpoints, as before. */
static void checkpointer_start(sqlite_store *s, const char *path, const char *sync) {
  checkpointer *c = &s->ckpt;
  sqlite3_wal_hook(s->db, on_wal_commit, s);
  if (sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
      sqlite3_exec(c->db, sync, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(c->db, "PRAGMA wal_autocheckpoint=0;", NULL, NULL, NULL) != SQLITE_OK)
    goto fail;
  sqlite3_busy_timeout(c->db, 5000);
  if (pthread_mutex_init(&c->mu, NULL)) goto fail;
  if (pthread_cond_init(&c->cv, NULL)) {
    pthread_mutex_destroy(&c->mu);
    goto fail;
  }
  if (pthread_create(&c->thread, NULL, checkpoint_loop, c)) {
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    goto fail;
  }
  c->started = true;
  return;
fail:
  sqlite3_close(c->db);
  c->db = NULL;
}

static void checkpointer_stop(checkpointer *c) {
  if (c->started) {
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    c->started = false;
  }
  /* First: the store's own connection, closed last, checkpoints everything and removes the
   * WAL, as it always did. */
  if (c->db) sqlite3_close(c->db);
  c->db = NULL;
}

static void sq_close(hg_store *base) {
  sqlite_store *s = S(base);
  checkpointer_stop(&s->ckpt);
  auth_forget(s);
  hg_buf_free(&s->row);
  for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(s->st[i]);
  for (int i = 0; i < 16; i++) sqlite3_finalize(s->run_update[i]);
  if (s->db) sqlite3_close(s->db);
  /* Closed last: closing any descriptor of the file drops the process's POSIX locks, which
   * SQLite holds while the connection is open. */
  if (s->lock_fd >= 0) close(s->lock_fd);
  free(s);
}

static const hg_store_ops sqlite_ops;

int hg_store_sqlite_open(const char *path, const hg_store_options *opts, hg_store **out,
                         hg_err *err) {
  *out = NULL;
  sqlite_store *s = calloc(1, sizeof *s);
  if (!s) return hg_err_set(err, HG_ENOMEM, "store: out of memory");
  s->base.ops = &sqlite_ops;
  s->lock_fd = -1;
  if (opts->create) {
    /* The store holds key hashes and sealed secrets: only its owner reads it. SQLite gives the
     * -wal and -shm files the mode of the database file. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) close(fd);
  }
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (opts->create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path, &s->db, flags, NULL);
  if (rc != SQLITE_OK) {
    int code = rc == SQLITE_CANTOPEN && !opts->create ? HG_ENOENT : HG_EIO;
    hg_err_set(err, code, "cannot open the store %s: %s", path,
               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    sq_close(&s->base);
    return code;
  }
  sqlite3_extended_result_codes(s->db, 0);
  /* One hub per store: the in-memory half of its state (open polls, sessions' liveness)
   * would be wrong for a second process. */
  s->lock_fd = open(path, O_RDONLY | O_CLOEXEC);
  if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    hg_err_set(err, HG_EEXIST, "the store %s is in use by another hub process", path);
    sq_close(&s->base);
    return HG_EEXIST;
  }
  sqlite3_busy_timeout(s->db, 5000);
  const char *sync = opts->sync == HG_STORE_SYNC_FULL ? "PRAGMA synchronous=FULL;"
                                                       : "PRAGMA synchronous=NORMAL;";
  if (exec_sql(s, "PRAGMA journal_mode=WAL;", err, "enabling WAL") ||
      exec_sql(s, sync, err, "setting synchronous") ||
      exec_sql(s, "PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY;", err, "configuring") ||
      migrate(s, path, err)) {
    sq_close(&s->base);
    return err ? err->code : HG_EIO;
  }
  for (int i = 0; i < Q_COUNT; i++) {
    if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL) !=
        SQLITE_OK) {
      db_fail(s, err, sql[i]);
      sq_close(&s->base);
      return HG_EIO;
    }
  }
  checkpointer_start(s, path, sync);
  *out = &s->base;
  return 0;
}

static int sq_schema_version(hg_store *s) { return S(s)->version; }

static int begin_with(hg_store *base, int which, hg_err *err) {
  sqlite_store *s = S(base);
  s->seen.valid = false;
  if (s->in_tx) return hg_err_set(err, HG_EINVAL, "store: a transaction is already open");
  if (exec_step(s, q(s, which), err, "begin")) return HG_EIO;
  s->in_tx = true;
  return 0;
}

static int sq_begin(hg_store *base, hg_err *err) { return begin_with(base, Q_BEGIN, err); }

/* Deferred: its first read takes the read lock, and it never asks for the write lock. */
static int sq_begin_read(hg_store *base, hg_err *err) {
  return begin_with(base, Q_BEGIN_READ, err);
}

static int sq_commit(hg_store *base, hg_err *err) {
  sqlite_store *s = S(base);
  s->seen.valid = false;
  int rc = exec_step(s, q(s, Q_COMMIT), err, "commit");
  if (rc) {
    /* A failed COMMIT may leave the transaction open; nothing of it counts. */
    if (!sqlite3_get_autocommit(s->db)) exec_step(s, q(s, Q_ROLLBACK), NULL, "rollback");
    if (s->auth_written) auth_forget(s);
    s->counts_valid = false;
  }
  s->auth_written = false;
  s->in_tx = false;
  return rc;
}

static void sq_rollback(hg_store *base) {
  sqlite_store *s = S(base);
  s->seen.valid = false;
  if (!sqlite3_get_autocommit(s->db)) exec_step(s, q(s, Q_ROLLBACK), NULL, "rollback");
  s->in_tx = false;
  if (s->auth_written) auth_forget(s);
  s->auth_written = false;
  s->counts_valid = false;
}

/* ---- meta ---- */

static int sq_meta_get(hg_store *base, const char *name, hg_buf *value, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_META_GET);
  bind_text(st, 1, name);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    const void *b = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    int r = hg_buf_append(value, b ? b : "", (size_t)n);
    sqlite3_reset(st);
    return r ? hg_err_set(err, HG_ENOMEM, "store: out of memory") : 0;
  }
  sqlite3_reset(st);
  if (rc == SQLITE_DONE) return hg_err_set(err, HG_ENOENT, "store: no meta value %s", name);
  return db_fail(s, err, "reading meta");
}

static int sq_meta_set(hg_store *base, const char *name, const void *value, size_t len,
                       hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_META_SET);
  bind_text(st, 1, name);
  sqlite3_bind_blob64(st, 2, len ? value : "", len, SQLITE_STATIC);
  return exec_step(s, st, err, "writing meta");
}

/* ---- keys ---- */

static int read_key(sqlite3_stmt *st, void *item) {
  hg_store_key *k = item;
  bool oom = false;
  k->id = col_str(st, 0, &oom);
  k->role = col_str(st, 1, &oom);
  k->name = col_str(st, 2, &oom);
  k->labels = col_str(st, 3, &oom);
  col_hash(st, 4, k->secret_hash, HG_STORE_HASH_LEN, NULL);
  k->created_ms = sqlite3_column_int64(st, 5);
  k->last_used_ms = sqlite3_column_int64(st, 6);
  k->revoked_ms = sqlite3_column_int64(st, 7);
  return oom;
}

static void clear_key(void *p) { hg_store_key_clear(p); }

static int sq_key_insert(hg_store *base, const hg_store_key *k, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_KEY_INSERT);
  bind_text(st, 1, k->id);
  bind_text(st, 2, k->role);
  bind_text(st, 3, k->name ? k->name : "");
  bind_text(st, 4, k->labels ? k->labels : "{}");
  bind_blob(st, 5, k->secret_hash, HG_STORE_HASH_LEN);
  sqlite3_bind_int64(st, 6, k->created_ms);
  sqlite3_bind_int64(st, 7, k->last_used_ms);
  sqlite3_bind_int64(st, 8, k->revoked_ms);
  key_forget(s, key_slot(k->id));
  return exec_step(s, st, err, "inserting a key");
}

static int sq_key_get(hg_store *base, const char *id, hg_store_key *out, hg_err *err) {
  sqlite_store *s = S(base);
  size_t slot = key_slot(id);
  if (s->keys[slot].used && !strcmp(s->keys[slot].k.id, id) && key_copy(out, &s->keys[slot].k))
    return 0;
  sqlite3_stmt *st = q(s, Q_KEY_GET);
  bind_text(st, 1, id);
  memset(out, 0, sizeof *out);
  int rc = one(s, st, read_key, clear_key, out, err, "key");
  if (!rc) {
    key_slot_clear(s, slot);
    s->keys[slot].used = key_copy(&s->keys[slot].k, out);
  }
  return rc;
}

static int sq_key_list(hg_store *base, hg_store_key **out, size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  return collect(s, q(s, Q_KEY_LIST), sizeof **out, read_key, clear_key, (void **)out, n, err,
                 "listing keys");
}

static int sq_key_revoke(hg_store *base, const char *id, int64_t at_ms, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_KEY_REVOKE);
  key_forget(s, key_slot(id));
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, at_ms);
  return exec_step(s, st, err, "revoking a key");
}

static int sq_key_touch(hg_store *base, const char *id, int64_t at_ms, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_KEY_TOUCH);
  key_forget(s, key_slot(id));
  bind_text(st, 1, id);
  sqlite3_bind_int64(st, 2, at_ms);
  return exec_step(s, st, err, "recording a key's use");
}

static int sq_key_count_active(hg_store *base, const char *role, int64_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_KEY_COUNT);
  bind_text(st, 1, role);
  int rc = sqlite3_step(st);
  *n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_reset(st);
  return rc == SQLITE_ROW ? 0 : db_fail(s, err, "counting keys");
}

/* ---- tasks ---- */

static int read_task(sqlite3_stmt *st, void *item) {
  hg_store_task *t = item;
  bool oom = false;
  t->slug = col_str(st, 0, &oom);
  t->revision = sqlite3_column_int64(st, 1);
  t->definition = col_str(st, 2, &oom);
  t->canonical = col_str(st, 3, &oom);
  t->created_ms = sqlite3_column_int64(st, 4);
  return oom;
}

static void clear_task(void *p) { hg_store_task_clear(p); }

static int sq_task_insert(hg_store *base, const hg_store_task *t, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_TASK_INSERT);
  bind_text(st, 1, t->slug);
  sqlite3_bind_int64(st, 2, t->revision);
  bind_text(st, 3, t->definition);
  bind_text(st, 4, t->canonical);
  sqlite3_bind_int64(st, 5, t->created_ms);
  return exec_step(s, st, err, "inserting a task revision");
}

static int sq_task_get(hg_store *base, const char *slug, int64_t revision, hg_store_task *out,
                       hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, revision > 0 ? Q_TASK_GET : Q_TASK_LATEST);
  bind_text(st, 1, slug);
  if (revision > 0) sqlite3_bind_int64(st, 2, revision);
  memset(out, 0, sizeof *out);
  return one(s, st, read_task, clear_task, out, err, "task");
}

static int sq_task_list(hg_store *base, hg_store_task **out, size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  return collect(s, q(s, Q_TASK_LIST), sizeof **out, read_task, clear_task, (void **)out, n, err,
                 "listing tasks");
}

/* ---- agents ---- */

static int read_agent(sqlite3_stmt *st, void *item) {
  hg_store_agent *a = item;
  bool oom = false;
  a->id = col_str(st, 0, &oom);
  a->key_id = col_str(st, 1, &oom);
  a->name = col_str(st, 2, &oom);
  a->hostname = col_str(st, 3, &oom);
  a->version = col_str(st, 4, &oom);
  a->labels = col_str(st, 5, &oom);
  a->schedulers = col_str(st, 6, &oom);
  a->capacity = sqlite3_column_int64(st, 7);
  col_hash(st, 8, a->public_key, HG_STORE_PUBKEY_LEN, NULL);
  col_hash(st, 9, a->session_hash, HG_STORE_HASH_LEN, &a->has_session);
  a->registered_ms = sqlite3_column_int64(st, 10);
  return oom;
}

static void clear_agent(void *p) { hg_store_agent_clear(p); }

static int sq_agent_put(hg_store *base, const hg_store_agent *a, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_AGENT_PUT);
  agents_forget(s);
  bind_text(st, 1, a->id);
  bind_text(st, 2, a->key_id);
  bind_text(st, 3, a->name ? a->name : "");
  bind_text(st, 4, a->hostname ? a->hostname : "");
  bind_text(st, 5, a->version ? a->version : "");
  bind_text(st, 6, a->labels ? a->labels : "{}");
  bind_text(st, 7, a->schedulers ? a->schedulers : "[]");
  sqlite3_bind_int64(st, 8, a->capacity);
  bind_blob(st, 9, a->public_key, HG_STORE_PUBKEY_LEN);
  if (a->has_session)
    bind_blob(st, 10, a->session_hash, HG_STORE_HASH_LEN);
  sqlite3_bind_int64(st, 11, a->registered_ms);
  return exec_step(s, st, err, "writing an agent");
}

static int sq_agent_get(hg_store *base, const char *id, hg_store_agent *out, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_AGENT_GET);
  bind_text(st, 1, id);
  memset(out, 0, sizeof *out);
  return one(s, st, read_agent, clear_agent, out, err, "agent");
}

static int sq_agent_by_session(hg_store *base, const uint8_t *hash, hg_store_agent *out,
                               hg_err *err) {
  sqlite_store *s = S(base);
  size_t slot = agent_slot(hash);
  if (s->agents[slot].used &&
      !memcmp(s->agents[slot].a.session_hash, hash, HG_STORE_HASH_LEN) &&
      agent_copy(out, &s->agents[slot].a))
    return 0;
  sqlite3_stmt *st = q(s, Q_AGENT_BY_SESSION);
  bind_blob(st, 1, hash, HG_STORE_HASH_LEN);
  memset(out, 0, sizeof *out);
  int rc = one(s, st, read_agent, clear_agent, out, err, "session");
  if (!rc && out->has_session) {
    if (s->agents[slot].used) hg_store_agent_clear(&s->agents[slot].a);
    s->agents[slot].used = agent_copy(&s->agents[slot].a, out);
  }
  return rc;
}

static int sq_agent_list_sessions(hg_store *base, const char *key_id, hg_store_agent **out,
                                  size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, key_id ? Q_AGENT_SESSIONS_OF_KEY : Q_AGENT_SESSIONS);
  if (key_id) bind_text(st, 1, key_id);
  return collect(s, st, sizeof **out, read_agent, clear_agent, (void **)out, n, err,
                 "listing sessions");
}

static int sq_agent_end_session(hg_store *base, const char *id, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_AGENT_END_SESSION);
  agents_forget(s);
  bind_text(st, 1, id);
  return exec_step(s, st, err, "ending a session");
}

/* ---- runs ---- */

static int read_run(sqlite3_stmt *st, void *item) {
  hg_store_run *r = item;
  bool oom = false;
  r->seqno = sqlite3_column_int64(st, 0);
  r->id = col_str(st, 1, &oom);
  r->task = col_str(st, 2, &oom);
  r->revision = sqlite3_column_int64(st, 3);
  const char *status = (const char *)sqlite3_column_text(st, 4);
  int parsed = status ? hg_store_run_status_parse(status) : -1;
  r->status = parsed < 0 ? HG_RUN_FAILED : (hg_store_run_status)parsed;
  r->params = col_str(st, 5, &oom);
  r->constraints = col_str(st, 6, &oom);
  r->timeout_s = sqlite3_column_int64(st, 7);
  r->created_ms = sqlite3_column_int64(st, 8);
  r->accepted_ms = sqlite3_column_int64(st, 9);
  r->started_ms = sqlite3_column_int64(st, 10);
  r->finished_ms = sqlite3_column_int64(st, 11);
  r->has_exit_code = sqlite3_column_type(st, 12) != SQLITE_NULL;
  r->exit_code = sqlite3_column_int64(st, 12);
  r->error = col_str(st, 13, &oom);
  r->agent_id = col_str(st, 14, &oom);
  r->lease_id = col_str(st, 15, &oom);
  r->lease_expires_ms = sqlite3_column_int64(st, 16);
  r->attempt = sqlite3_column_int64(st, 17);
  r->deadline_ms = sqlite3_column_int64(st, 18);
  col_hash(st, 19, r->token_hash, HG_STORE_HASH_LEN, &r->has_token);
  r->accepted = sqlite3_column_int(st, 20) != 0;
  r->agent_finished = sqlite3_column_int(st, 21) != 0;
  r->finish = col_str(st, 22, &oom);
  r->finish_status = sqlite3_column_int(st, 23);
  r->cancel_notified = sqlite3_column_int(st, 24) != 0;
  r->next_seq = sqlite3_column_int64(st, 25);
  r->outputs = col_str(st, 26, &oom);
  r->output_errors = col_str(st, 27, &oom);
  return oom;
}

static void clear_run(void *p) { hg_store_run_clear(p); }

/* Binds every column but seqno (1) to ?2..?28, the same for insert and update. */
static void bind_run(sqlite3_stmt *st, const hg_store_run *r) {
  bind_text(st, 2, r->id);
  bind_text(st, 3, r->task);
  sqlite3_bind_int64(st, 4, r->revision);
  bind_text(st, 5, hg_store_run_status_name(r->status));
  bind_text(st, 6, r->params ? r->params : "{}");
  bind_text(st, 7, r->constraints ? r->constraints : "{}");
  sqlite3_bind_int64(st, 8, r->timeout_s);
  sqlite3_bind_int64(st, 9, r->created_ms);
  sqlite3_bind_int64(st, 10, r->accepted_ms);
  sqlite3_bind_int64(st, 11, r->started_ms);
  sqlite3_bind_int64(st, 12, r->finished_ms);
  if (r->has_exit_code) sqlite3_bind_int64(st, 13, r->exit_code);
  bind_text(st, 14, r->error);
  bind_text(st, 15, r->agent_id);
  bind_text(st, 16, r->lease_id);
  sqlite3_bind_int64(st, 17, r->lease_expires_ms);
  sqlite3_bind_int64(st, 18, r->attempt);
  sqlite3_bind_int64(st, 19, r->deadline_ms);
  if (r->has_token) bind_blob(st, 20, r->token_hash, HG_STORE_HASH_LEN);
  sqlite3_bind_int(st, 21, r->accepted);
  sqlite3_bind_int(st, 22, r->agent_finished);
  bind_text(st, 23, r->finish);
  sqlite3_bind_int(st, 24, r->finish_status);
  sqlite3_bind_int(st, 25, r->cancel_notified);
  sqlite3_bind_int64(st, 26, r->next_seq);
  bind_text(st, 27, r->outputs);
  bind_text(st, 28, r->output_errors);
}

static int sq_run_insert(hg_store *base, hg_store_run *r, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_RUN_INSERT);
  bind_run(st, r);
  if (exec_step(s, st, err, "inserting a run")) return err ? err->code : HG_EIO;
  r->seqno = sqlite3_last_insert_rowid(s->db);
  if (r->status >= 0 && r->status < HG_RUN_STATUS_COUNT) s->counts[r->status]++;
  return 0;
}

/* Keeps the indexed columns of the run just read (see sqlite_store.seen), when they fit. */
static void run_seen(sqlite_store *s, sqlite3_stmt *st, const hg_store_run *r) {
  s->seen.valid = false;
  /* Outside a transaction nothing is kept: no status parsed again on a plain read. */
  if (!s->in_tx) return;
  const char *status = (const char *)sqlite3_column_text(st, 4);
  int parsed = status ? hg_store_run_status_parse(status) : -1;
  const void *token = sqlite3_column_blob(st, 19);
  if (token && sqlite3_column_bytes(st, 19) != HG_STORE_HASH_LEN) return;
  if (parsed < 0 || !r->id || !r->task || strlen(r->id) >= sizeof s->seen.id ||
      strlen(r->task) >= sizeof s->seen.task ||
      (r->agent_id && strlen(r->agent_id) >= sizeof s->seen.agent))
    return;
  s->seen.status = parsed;
  snprintf(s->seen.id, sizeof s->seen.id, "%s", r->id);
  snprintf(s->seen.task, sizeof s->seen.task, "%s", r->task);
  s->seen.has_agent = r->agent_id != NULL;
  snprintf(s->seen.agent, sizeof s->seen.agent, "%s", r->agent_id ? r->agent_id : "");
  s->seen.has_token = r->has_token;
  memcpy(s->seen.token, r->token_hash, HG_STORE_HASH_LEN);
  s->seen.valid = true;
}

static int sq_run_get(hg_store *base, const char *id, hg_store_run *out, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_RUN_GET);
  bind_text(st, 1, id);
  memset(out, 0, sizeof *out);
  s->seen.valid = false;
  int rc = sqlite3_step(st);
  if (rc == SQLITE_DONE) {
    sqlite3_reset(st);
    return hg_err_set(err, HG_ENOENT, "store: run: not found");
  }
  if (rc != SQLITE_ROW) {
    sqlite3_reset(st);
    return db_fail(s, err, "run");
  }
  if (read_run(st, out)) {
    sqlite3_reset(st);
    clear_run(out);
    return hg_err_set(err, HG_ENOMEM, "store: run: out of memory");
  }
  run_seen(s, st, out);
  sqlite3_reset(st);
  return 0;
}

static int sq_run_by_token(hg_store *base, const uint8_t *hash, hg_store_run *out, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_RUN_BY_TOKEN);
  bind_blob(st, 1, hash, HG_STORE_HASH_LEN);
  memset(out, 0, sizeof *out);
  return one(s, st, read_run, clear_run, out, err, "run token");
}

/* Equal strings, NULL equal only to NULL (SQL's IS). */
static bool same_text(const char *a, const char *b) {
  return a == b || (a && b && !strcmp(a, b));
}

#define RUN_UPDATE_SET                                                                     \
  "UPDATE runs SET revision=?4, params=?6, constraints=?7, timeout_s=?8, created_ms=?9,"     \
  " accepted_ms=?10, started_ms=?11, finished_ms=?12, exit_code=?13, error=?14, lease_id=?16," \
  " lease_expires_ms=?17, attempt=?18, deadline_ms=?19, accepted=?21, agent_finished=?22,"     \
  " finish=?23, finish_status=?24, cancel_notified=?25, next_seq=?26, outputs=?27,"           \
  " output_errors=?28"

/* The UPDATE of a run's unindexed columns and of the indexed ones in mask (see
 * sqlite_store.run_update), bound as bind_run binds. */
static sqlite3_stmt *run_update_stmt(sqlite_store *s, unsigned mask, hg_err *err) {
  sqlite3_stmt **st = &s->run_update[mask & 15];
  if (!*st) {
    static const char *const keyed[] = {", status=?5", ", agent_id=?15", ", token_hash=?20",
                                        ", task=?3"};
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "%s", RUN_UPDATE_SET);
    for (unsigned i = 0; i < 4; i++)
      if (mask & (1u << i)) n += (size_t)snprintf(text + n, sizeof text - n, "%s", keyed[i]);
    snprintf(text + n, sizeof text - n, " WHERE id = ?2");
    if (sqlite3_prepare_v3(s->db, text, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK) {
      db_fail(s, err, "preparing a run's update");
      return NULL;
    }
  }
  sqlite3_reset(*st);
  sqlite3_clear_bindings(*st);
  return *st;
}

static int sq_run_update(hg_store *base, const hg_store_run *r, hg_err *err) {
  sqlite_store *s = S(base);
  /* Named, so that a refusal (a token another run holds) says which run it was. */
  char what[96];
  snprintf(what, sizeof what, "updating run %s", r->id ? r->id : "(no id)");
  /* The indexed columns as stored, read first (or kept from the run's read in this
   * transaction): the one UPDATE then names those whose value changes (most updates change
   * the status alone, or none) besides the unindexed ones. */
  const char *status = hg_store_run_status_name(r->status);
  bool seen = s->seen.valid && r->id && !strcmp(s->seen.id, r->id);
  s->seen.valid = false;
  sqlite3_stmt *st = q(s, Q_RUN_STATUS);
  const char *was_status, *was_agent, *was_task;
  const void *was_token;
  int was_token_len;
  if (seen) {
    was_status = hg_store_run_status_name(s->seen.status);
    was_agent = s->seen.has_agent ? s->seen.agent : NULL;
    was_token = s->seen.has_token ? s->seen.token : NULL;
    was_token_len = s->seen.has_token ? HG_STORE_HASH_LEN : 0;
    was_task = s->seen.task;
  } else {
    bind_text(st, 1, r->id);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
      sqlite3_reset(st);
      if (rc == SQLITE_DONE) return hg_err_set(err, HG_ENOENT, "store: run %s not found", r->id);
      return db_fail(s, err, what);
    }
    was_status = (const char *)sqlite3_column_text(st, 0);
    was_agent = (const char *)sqlite3_column_text(st, 1);
    was_token = sqlite3_column_blob(st, 2);
    was_token_len = sqlite3_column_bytes(st, 2);
    was_task = (const char *)sqlite3_column_text(st, 3);
  }
  int before = was_status ? hg_store_run_status_parse(was_status) : -1;
  bool change[4] = {
      !same_text(was_status, status),
      !same_text(was_agent, r->agent_id),
      r->has_token ? !(was_token && was_token_len == HG_STORE_HASH_LEN &&
                       !memcmp(was_token, r->token_hash, HG_STORE_HASH_LEN))
                   : was_token != NULL,
      !same_text(was_task, r->task),
  };
  sqlite3_reset(st); /* the column pointers above are not used past here */
  /* A status this build cannot name: count the table again next time. */
  if (s->counts_valid && before < 0) s->counts_valid = false;
  unsigned mask = 0;
  for (unsigned i = 0; i < 4; i++)
    if (change[i]) mask |= 1u << i;
  st = run_update_stmt(s, mask, err);
  if (!st) return HG_EIO;
  bind_run(st, r);
  if (exec_step(s, st, err, what)) return err ? err->code : HG_EIO;
  if (sqlite3_changes(s->db) != 1)
    return hg_err_set(err, HG_ENOENT, "store: run %s not found", r->id);
  if (change[0] && s->counts_valid && before >= 0 && r->status >= 0 &&
      r->status < HG_RUN_STATUS_COUNT) {
    s->counts[before]--;
    s->counts[r->status]++;
  }
  return 0;
}

static int sq_run_list(hg_store *base, const hg_store_run_query *qr, hg_store_run **out,
                       size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st;
  switch (qr->set) {
  case HG_RUNS_ALL:
    if (qr->task && qr->status >= 0)
      st = q(s, Q_RUNS_BY_TASK_STATUS);
    else if (qr->task)
      st = q(s, Q_RUNS_BY_TASK);
    else if (qr->status >= 0)
      st = q(s, Q_RUNS_BY_STATUS);
    else
      st = q(s, Q_RUNS_ALL);
    if (qr->task) bind_text(st, 2, qr->task);
    if (qr->status >= 0) bind_text(st, 3, hg_store_run_status_name(qr->status));
    break;
  case HG_RUNS_QUEUED:
    st = q(s, Q_RUNS_QUEUED);
    sqlite3_bind_int64(st, 2, qr->after_seqno);
    break;
  case HG_RUNS_HELD:
    st = q(s, Q_RUNS_HELD);
    bind_text(st, 2, qr->agent_id);
    break;
  case HG_RUNS_LAPSED:
    st = q(s, Q_RUNS_LAPSED);
    sqlite3_bind_int64(st, 2, qr->now_ms);
    break;
  case HG_RUNS_OVERDUE:
    st = q(s, Q_RUNS_OVERDUE);
    sqlite3_bind_int64(st, 2, qr->now_ms);
    break;
  case HG_RUNS_CANCEL_PENDING:
    st = q(s, Q_RUNS_CANCEL_PENDING);
    bind_text(st, 2, qr->agent_id);
    break;
  default:
    return hg_err_set(err, HG_EINVAL, "store: unknown run query");
  }
  sqlite3_bind_int64(st, 1, qr->limit ? (sqlite3_int64)qr->limit : -1);
  return collect(s, st, sizeof **out, read_run, clear_run, (void **)out, n, err, "listing runs");
}

static int sq_run_count_by_status(hg_store *base, int64_t *counts, hg_err *err) {
  sqlite_store *s = S(base);
  if (s->counts_valid) {
    memcpy(counts, s->counts, sizeof s->counts);
    return 0;
  }
  sqlite3_stmt *st = q(s, Q_RUNS_COUNT);
  for (int i = 0; i < HG_RUN_STATUS_COUNT; i++) counts[i] = 0;
  int rc;
  bool known = true;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int i = name ? hg_store_run_status_parse(name) : -1;
    if (i >= 0)
      counts[i] = sqlite3_column_int64(st, 1);
    else
      known = false;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_fail(s, err, "counting runs");
  memcpy(s->counts, counts, sizeof s->counts);
  s->counts_valid = known;
  return 0;
}

static int sq_run_extend_leases(hg_store *base, int64_t until_ms, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_RUNS_EXTEND_LEASES);
  sqlite3_bind_int64(st, 1, until_ms);
  if (exec_step(s, st, err, "extending leases")) return HG_EIO;
  st = q(s, Q_RUNS_EXTEND_DEADLINES);
  sqlite3_bind_int64(st, 1, until_ms);
  return exec_step(s, st, err, "extending deadlines");
}

/* ---- events ---- */

/* A row holds at most this much text (or one event, if larger): a read of a page of events
 * copies whole rows, so an 8 MiB batch of short lines is not copied again for every page. */
#define CHUNK_ROW_BYTES (1u << 20)

/*
 * Compact rows. Where the caller knows a chunk's log events to be in the usual shape
 * (hub/logshape.h: every one an agent sends), a row keeps of each only what varies, and reading
 * writes its JSON again around that: the same bytes, in about half the space. The WAL, the
 * checkpoint and the disk then carry ~105 bytes for a 100-byte line instead of ~200 (and on a
 * machine where fresh page cache is dear, writing the database's new pages was the largest
 * cost of storing events). Such a row's events column is a BLOB, where a row of JSON is TEXT,
 * and its starts column is NULL (events are found by reading the row from its start):
 *
 *   row     u8 ROW_COMPACT, then count events
 *   event   u8 flags: & EV_STREAM stream, EV_PARTIAL, EV_OTHER: any other event (varint length,
 *           its JSON); else, unless EV_SAME_TS (the ts of the row's previous log event),
 *           varint length and the inside of the ts string; then varint length and the inside
 *           of the text string (both as sent, escapes and all)
 */
#define ROW_COMPACT 1
#define EV_STREAM 0x03
#define EV_PARTIAL 0x04
#define EV_SAME_TS 0x08
#define EV_OTHER 0x10

/* Stores events [from, to) of c as one row. */
static int append_row(sqlite_store *s, int64_t run_seqno, const hg_store_chunk *c, size_t from,
                      size_t to, unsigned char *starts, hg_err *err) {
  size_t base = c->starts[from], end = to < c->count ? c->starts[to] - 1 : c->len;
  size_t count = to - from;
  for (size_t i = 0; count > 1 && i < count; i++) {
    uint32_t v = c->starts[from + i] - (uint32_t)base;
    starts[i * 4] = (unsigned char)v;
    starts[i * 4 + 1] = (unsigned char)(v >> 8);
    starts[i * 4 + 2] = (unsigned char)(v >> 16);
    starts[i * 4 + 3] = (unsigned char)(v >> 24);
  }
  sqlite3_stmt *st = q(s, Q_EVENT_APPEND);
  sqlite3_bind_int64(st, 1, run_seqno);
  sqlite3_bind_int64(st, 2, c->first_seq + (int64_t)from);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)count);
  bind_blob(st, 4, count > 1 ? starts : NULL, count * 4);
  sqlite3_bind_text64(st, 5, c->text + base, end - base, SQLITE_STATIC, SQLITE_UTF8);
  return exec_step(s, st, err, "storing events");
}

static unsigned char *put_varint(unsigned char *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

/* Where the usual log event json[0..len) keeps its two strings' insides, if its bytes are
 * what ref says (else it is stored as any other event). */
static bool split_log(const hg_logshape *sh, const hg_store_logref *ref, const char *json,
                      size_t len, const char **ts, size_t *ts_len, const char **text,
                      size_t *text_len) {
  if (!sh || !ref->usual || ref->stream > 2 || ref->partial > 1 || ref->ts_len < 2) return false;
  size_t mid = sh->head_len + ref->ts_len, tx = mid + sh->mid_len[ref->stream];
  size_t tail = sh->tail_len[ref->partial];
  if (tx + 2 + tail > len || memcmp(json, sh->head, sh->head_len) ||
      memcmp(json + mid, sh->mid[ref->stream], sh->mid_len[ref->stream]) ||
      memcmp(json + len - tail, sh->tail[ref->partial], tail) || json[sh->head_len] != '"' ||
      json[mid - 1] != '"' || json[tx] != '"' || json[len - tail - 1] != '"')
    return false;
  *ts = json + sh->head_len + 1;
  *ts_len = ref->ts_len - 2;
  *text = json + tx + 1;
  *text_len = len - tail - 1 - (tx + 1);
  return true;
}

static int insert_compact(sqlite_store *s, int64_t run_seqno, int64_t first, size_t count,
                          hg_err *err) {
  sqlite3_stmt *st = q(s, Q_EVENT_APPEND);
  sqlite3_bind_int64(st, 1, run_seqno);
  sqlite3_bind_int64(st, 2, first);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)count);
  sqlite3_bind_null(st, 4);
  sqlite3_bind_blob64(st, 5, s->row.data, s->row.len, SQLITE_STATIC);
  return exec_step(s, st, err, "storing events");
}

/* The chunk as compact rows of about CHUNK_ROW_BYTES each. */
static int append_compact(sqlite_store *s, int64_t run_seqno, const hg_store_chunk *c,
                          const hg_logshape *sh, hg_err *err) {
  hg_buf *row = &s->row;
  size_t row_first = 0, n = 0;
  const char *prev_ts = NULL;
  size_t prev_ts_len = 0;
  int rc = 0;
  for (size_t i = 0; i < c->count && !rc; i++) {
    const char *json = c->text + c->starts[i];
    size_t len = (i + 1 < c->count ? c->starts[i + 1] - 1 : c->len) - c->starts[i];
    const char *ts, *text;
    size_t ts_len, text_len;
    bool log = split_log(sh, &c->logs[i], json, len, &ts, &ts_len, &text, &text_len);
    if (n == 0) {
      hg_buf_reset(row);
      if (hg_buf_appendc(row, ROW_COMPACT)) goto oom;
      prev_ts = NULL;
      row_first = i;
    }
    if (hg_buf_reserve(row, 1 + 10 + 10 + len)) goto oom;
    unsigned char *p = (unsigned char *)row->data + row->len;
    if (log) {
      bool same = prev_ts && prev_ts_len == ts_len && !memcmp(prev_ts, ts, ts_len);
      *p++ = (unsigned char)(c->logs[i].stream | (c->logs[i].partial ? EV_PARTIAL : 0) |
                             (same ? EV_SAME_TS : 0));
      if (!same) {
        p = put_varint(p, ts_len);
        memcpy(p, ts, ts_len);
        p += ts_len;
        prev_ts = ts;
        prev_ts_len = ts_len;
      }
      p = put_varint(p, text_len);
      memcpy(p, text, text_len);
      p += text_len;
    } else {
      *p++ = EV_OTHER;
      p = put_varint(p, len);
      memcpy(p, json, len);
      p += len;
    }
    row->len = (size_t)((char *)p - row->data);
    n++;
    if (row->len >= CHUNK_ROW_BYTES || i + 1 == c->count) {
      rc = insert_compact(s, run_seqno, c->first_seq + (int64_t)row_first, n, err);
      n = 0;
    }
  }
  /* A burst's buffer is not kept past a row's size. */
  if (row->cap > 2 * CHUNK_ROW_BYTES) hg_buf_free(row);
  return rc;
oom:
  return hg_err_set(err, HG_ENOMEM, "store: storing events: out of memory");
}

static int sq_event_append(hg_store *base, int64_t run_seqno, const hg_store_chunk *c,
                           hg_err *err) {
  sqlite_store *s = S(base);
  if (c->count == 0) return 0;
  const hg_logshape *sh = c->logs ? hg_logshape_get() : NULL;
  if (sh) return append_compact(s, run_seqno, c, sh, err);
  unsigned char *starts = malloc(c->count * 4);
  if (!starts) return hg_err_set(err, HG_ENOMEM, "store: storing events: out of memory");
  int rc = 0;
  size_t from = 0;
  while (!rc && from < c->count) {
    size_t to = from + 1;
    while (to < c->count && c->starts[to] - c->starts[from] < CHUNK_ROW_BYTES) to++;
    /* the event at to - 1 ends before starts[to]; the last one may pass the bound a little */
    rc = append_row(s, run_seqno, c, from, to, starts, err);
    from = to;
  }
  free(starts);
  return rc;
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Where event i of a stored chunk starts, and where it ends (before the comma after it). */
typedef struct chunk_view {
  const unsigned char *starts; /* NULL for a chunk of one */
  size_t count, len;
} chunk_view;

static size_t view_start(const chunk_view *v, size_t i) {
  return v->starts ? get_u32(v->starts + i * 4) : 0;
}

static size_t view_end(const chunk_view *v, size_t i) {
  return i + 1 < v->count ? view_start(v, i + 1) - 1 : v->len;
}

/* A chunk whose offsets do not fit its text is damaged, not something to slice through. */
static bool view_sound(const chunk_view *v) {
  if (v->count == 0 || (v->count > 1 && !v->starts) || view_start(v, 0) != 0) return false;
  for (size_t i = 1; i < v->count; i++)
    if (view_start(v, i) < view_start(v, i - 1) + 3 || view_start(v, i) >= v->len) return false;
  return true;
}

/* Reading a compact row: one event at a time, from its start. */
typedef struct compact_reader {
  const unsigned char *p, *end;
  const char *ts; /* the inside of the last ts string */
  size_t ts_len;
} compact_reader;

typedef struct compact_event {
  bool other;
  unsigned stream, partial;
  const char *ts, *text; /* for any other event, text is its JSON */
  size_t ts_len, text_len;
} compact_event;

static bool get_varint(compact_reader *r, size_t *out) {
  uint64_t v = 0;
  for (unsigned shift = 0; r->p < r->end && shift < 64; shift += 7) {
    unsigned char c = *r->p++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (!(c & 0x80)) {
      if (v > (uint64_t)(r->end - r->p)) return false; /* every length is of bytes that follow */
      *out = (size_t)v;
      return true;
    }
  }
  return false;
}

/* The next event, or false when the row is damaged. */
static bool compact_next(compact_reader *r, compact_event *e) {
  if (r->p >= r->end) return false;
  unsigned f = *r->p++;
  size_t len;
  *e = (compact_event){.other = (f & EV_OTHER) != 0};
  if (!e->other) {
    e->stream = f & EV_STREAM;
    e->partial = (f & EV_PARTIAL) != 0;
    if (e->stream > 2) return false;
    if (!(f & EV_SAME_TS)) {
      if (!get_varint(r, &len)) return false;
      r->ts = (const char *)r->p;
      r->ts_len = len;
      r->p += len;
    } else if (!r->ts) {
      return false;
    }
    e->ts = r->ts;
    e->ts_len = r->ts_len;
  }
  if (!get_varint(r, &len)) return false;
  e->text = (const char *)r->p;
  e->text_len = len;
  r->p += len;
  return true;
}

static size_t compact_json_len(const hg_logshape *sh, const compact_event *e) {
  if (e->other) return e->text_len;
  return sh->head_len + e->ts_len + 2 + sh->mid_len[e->stream] + e->text_len + 2 +
         sh->tail_len[e->partial];
}

static char *put_bytes(char *p, const void *src, size_t n) {
  memcpy(p, src, n);
  return p + n;
}

/* Writes e's JSON, as it was sent, at p; returns the end. */
static char *compact_json(const hg_logshape *sh, const compact_event *e, char *p) {
  if (e->other) return put_bytes(p, e->text, e->text_len);
  p = put_bytes(p, sh->head, sh->head_len);
  *p++ = '"';
  p = put_bytes(p, e->ts, e->ts_len);
  *p++ = '"';
  p = put_bytes(p, sh->mid[e->stream], sh->mid_len[e->stream]);
  *p++ = '"';
  p = put_bytes(p, e->text, e->text_len);
  *p++ = '"';
  return put_bytes(p, sh->tail[e->partial], sh->tail_len[e->partial]);
}

/* Events [from, ...) of a compact row of count events as a chunk slice at c (c->first_seq and
 * the rest are set here), as many as want and max_bytes allow; *got and *bytes count on, *full
 * says the byte bound stopped it. 0, HG_EIO (damaged) or HG_ENOMEM. */
static int compact_slice(const unsigned char *row, size_t row_len, int64_t first, size_t count,
                         size_t from, size_t want, size_t max_bytes, size_t *got, size_t *bytes,
                         bool *full, hg_store_chunk *c) {
  const hg_logshape *sh = hg_logshape_get();
  if (!sh || row_len < 1 || row[0] != ROW_COMPACT) return HG_EIO;
  compact_reader r = {.p = row + 1, .end = row + row_len};
  compact_event e;
  for (size_t k = 0; k < from; k++)
    if (!compact_next(&r, &e)) return HG_EIO;
  /* First the size, then the bytes: one allocation. */
  compact_reader start = r;
  size_t take = 0, total = 0;
  for (size_t k = from; k < count && *got + take < want; k++) {
    if (!compact_next(&r, &e)) return HG_EIO;
    size_t elen = compact_json_len(sh, &e);
    if (*got + take > 0 && max_bytes && *bytes + elen > max_bytes) {
      *full = true;
      break;
    }
    *bytes += elen;
    total += elen + (take ? 1 : 0);
    take++;
  }
  if (!take) return 0;
  c->first_seq = first + (int64_t)from;
  c->count = take;
  c->len = total;
  c->text = malloc(total + 1);
  c->starts = malloc(take * sizeof *c->starts);
  if (!c->text || !c->starts) return HG_ENOMEM;
  char *p = c->text;
  r = start;
  for (size_t k = 0; k < take; k++) {
    compact_next(&r, &e);
    if (k) *p++ = ',';
    c->starts[k] = (uint32_t)(p - c->text);
    p = compact_json(sh, &e, p);
  }
  *p = '\0';
  *got += take;
  return 0;
}

/* The next of the chunks being read, zeroed (not yet counted); NULL when out of memory. */
static hg_store_chunk *chunk_slot(hg_store_chunk **v, size_t count, size_t *cap) {
  if (count == *cap) {
    size_t ncap = *cap ? *cap * 2 : 4;
    hg_store_chunk *p = realloc(*v, ncap * sizeof *p);
    if (!p) return NULL;
    *v = p;
    *cap = ncap;
  }
  memset(&(*v)[count], 0, sizeof **v);
  return &(*v)[count];
}

static int chunk_damaged(sqlite3_stmt *st, hg_store_chunk *v, size_t count, int64_t run_seqno,
                         int64_t first, hg_err *err) {
  sqlite3_reset(st);
  hg_store_chunks_free(v, count);
  return hg_err_set(err, HG_EIO, "store: the event chunk of run %lld at seq %lld is damaged",
                    (long long)run_seqno, (long long)first);
}

static int sq_event_read(hg_store *base, int64_t run_seqno, int64_t after, size_t limit,
                         size_t max_bytes, hg_store_chunk **out, size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  *out = NULL;
  *n = 0;
  int64_t lo = after + 1; /* the first seq wanted */
  size_t want = limit ? limit : SIZE_MAX, got = 0, bytes = 0, count = 0, cap = 0;
  hg_store_chunk *v = NULL;
  bool full = false;
  int rc = SQLITE_DONE;
  sqlite3_stmt *st = q(s, Q_EVENT_READ);
  sqlite3_bind_int64(st, 1, run_seqno);
  sqlite3_bind_int64(st, 2, lo);
  while (!full && got < want && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t first = sqlite3_column_int64(st, 0);
    int64_t stored = sqlite3_column_int64(st, 1);
    if (stored <= 0 || first + stored <= lo) continue;
    if (sqlite3_column_type(st, 3) == SQLITE_BLOB) {
      hg_store_chunk *c = chunk_slot(&v, count, &cap);
      if (!c) goto oom;
      size_t from = lo > first ? (size_t)(lo - first) : 0;
      int src = compact_slice(sqlite3_column_blob(st, 3), (size_t)sqlite3_column_bytes(st, 3), first,
                              (size_t)stored, from, want, max_bytes, &got, &bytes, &full, c);
      if (c->count || c->text || c->starts) count++;
      if (src == HG_ENOMEM) goto oom;
      if (src) return chunk_damaged(st, v, count, run_seqno, first, err);
      continue;
    }
    chunk_view cv = {.starts = sqlite3_column_blob(st, 2), .count = (size_t)stored};
    size_t starts_len = (size_t)sqlite3_column_bytes(st, 2);
    const char *text = sqlite3_column_blob(st, 3);
    cv.len = (size_t)sqlite3_column_bytes(st, 3);
    if (cv.count == 1) cv.starts = NULL;
    if ((cv.starts && starts_len != cv.count * 4) || !text || !view_sound(&cv))
      return chunk_damaged(st, v, count, run_seqno, first, err);
    size_t from = lo > first ? (size_t)(lo - first) : 0, to = from;
    while (to < cv.count && got < want) {
      size_t elen = view_end(&cv, to) - view_start(&cv, to);
      if (got > 0 && max_bytes && bytes + elen > max_bytes) {
        full = true;
        break;
      }
      bytes += elen;
      got++;
      to++;
    }
    if (to == from) continue;
    hg_store_chunk *c = chunk_slot(&v, count, &cap);
    if (!c) goto oom;
    count++;
    size_t base_off = view_start(&cv, from);
    c->first_seq = first + (int64_t)from;
    c->count = to - from;
    c->len = view_end(&cv, to - 1) - base_off;
    c->text = malloc(c->len + 1);
    c->starts = malloc(c->count * sizeof *c->starts);
    if (!c->text || !c->starts) goto oom;
    memcpy(c->text, text + base_off, c->len);
    c->text[c->len] = '\0';
    for (size_t i = 0; i < c->count; i++)
      c->starts[i] = (uint32_t)(view_start(&cv, from + i) - base_off);
  }
  sqlite3_reset(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    hg_store_chunks_free(v, count);
    return db_fail(s, err, "reading events");
  }
  *out = v;
  *n = count;
  return 0;
oom:
  sqlite3_reset(st);
  hg_store_chunks_free(v, count);
  return hg_err_set(err, HG_ENOMEM, "store: reading events: out of memory");
}

/* ---- config variables ---- */

static int read_config(sqlite3_stmt *st, void *item) {
  hg_store_config *c = item;
  bool oom = false;
  c->name = col_str(st, 0, &oom);
  c->secret = sqlite3_column_int(st, 1) != 0;
  const void *b = sqlite3_column_blob(st, 2);
  int n = sqlite3_column_bytes(st, 2);
  c->value = malloc((size_t)n + 1);
  if (!c->value) return 1;
  if (n) memcpy(c->value, b, (size_t)n);
  c->value[n] = 0;
  c->value_len = (size_t)n;
  c->updated_ms = sqlite3_column_int64(st, 3);
  return oom;
}

static void clear_config(void *p) { hg_store_config_clear(p); }

static int sq_config_put(hg_store *base, const hg_store_config *c, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_CONFIG_PUT);
  bind_text(st, 1, c->name);
  sqlite3_bind_int(st, 2, c->secret);
  sqlite3_bind_blob64(st, 3, c->value_len ? (const void *)c->value : "", c->value_len,
                      SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, c->updated_ms);
  return exec_step(s, st, err, "writing a config variable");
}

static int sq_config_get(hg_store *base, const char *name, hg_store_config *out, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_CONFIG_GET);
  bind_text(st, 1, name);
  memset(out, 0, sizeof *out);
  return one(s, st, read_config, clear_config, out, err, "config variable");
}

static int sq_config_list(hg_store *base, hg_store_config **out, size_t *n, hg_err *err) {
  sqlite_store *s = S(base);
  return collect(s, q(s, Q_CONFIG_LIST), sizeof **out, read_config, clear_config, (void **)out,
                 n, err, "listing config variables");
}

static int sq_config_delete(hg_store *base, const char *name, hg_err *err) {
  sqlite_store *s = S(base);
  sqlite3_stmt *st = q(s, Q_CONFIG_DELETE);
  bind_text(st, 1, name);
  if (exec_step(s, st, err, "deleting a config variable")) return HG_EIO;
  if (sqlite3_changes(s->db) == 0)
    return hg_err_set(err, HG_ENOENT, "config variable %s not found", name);
  return 0;
}

static const hg_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .begin_read = sq_begin_read,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .meta_get = sq_meta_get,
    .meta_set = sq_meta_set,
    .key_insert = sq_key_insert,
    .key_get = sq_key_get,
    .key_list = sq_key_list,
    .key_revoke = sq_key_revoke,
    .key_touch = sq_key_touch,
    .key_count_active = sq_key_count_active,
    .task_insert = sq_task_insert,
    .task_get = sq_task_get,
    .task_list = sq_task_list,
    .agent_put = sq_agent_put,
    .agent_get = sq_agent_get,
    .agent_by_session = sq_agent_by_session,
    .agent_list_sessions = sq_agent_list_sessions,
    .agent_end_session = sq_agent_end_session,
    .run_insert = sq_run_insert,
    .run_get = sq_run_get,
    .run_by_token = sq_run_by_token,
    .run_update = sq_run_update,
    .run_list = sq_run_list,
    .run_count_by_status = sq_run_count_by_status,
    .run_extend_leases = sq_run_extend_leases,
    .event_append = sq_event_append,
    .event_read = sq_event_read,
    .config_put = sq_config_put,
    .config_get = sq_config_get,
    .config_list = sq_config_list,
    .config_delete = sq_config_delete,
};
