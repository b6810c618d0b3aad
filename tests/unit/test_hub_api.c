/* The hub's API without HTTP: auth order, keys, tasks, the run state machine, leases,
 * long-polls and their wake-ups, sealed secrets, run tokens. A fake clock drives time. */
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/log.h"
#include "core/sealbox.h"
#include "hub/api.h"
#include "hub/hub.h"

static char dir[256];
static int64_t fake_now = 1800000000000LL;
static int64_t clock_fn(void *d) {
  (void)d;
  return fake_now;
}

typedef struct reply {
  int status;
  cJSON *json;
  char *text;
} reply;

static void reply_free(reply *r) {
  cJSON_Delete(r->json);
  free(r->text);
  memset(r, 0, sizeof *r);
}

static reply to_reply(hg_api_res *res) {
  reply r = {.status = res->status};
  /* Printed and parsed again, as a client over HTTP would see it (an answer may hold raw
   * JSON text). */
  if (res->json) {
    char *text = cJSON_PrintUnformatted(res->json);
    r.json = text ? cJSON_Parse(text) : NULL;
    free(text);
  }
  if (res->text.len) r.text = strdup(res->text.data);
  return r;
}

/* A parked request, answered later through deliver. */
typedef struct pending {
  hg_hub_waiter w;
  hg_api_req req;
  char path[256], query[256], auth[160];
  bool answered;
  reply r;
} pending;

static void deliver(hg_hub_waiter *w, hg_api_res *res) {
  pending *p = w->data;
  p->answered = true;
  p->r = to_reply(res);
}

static hg_hub *hub;
static char admin[HG_APIKEY_LEN + 1];

/* ---- a VFS over the default one that can make the store's WAL writes fail ---- */
/* A commit writes its pages to the WAL: failing those writes makes the commit fail at the
 * moment a test chooses, as a full or failing disk would. */

typedef struct wrap_file {
  sqlite3_file base;
  sqlite3_file *real;
  bool wal;
} wrap_file;

static sqlite3_vfs *real_vfs;
static bool fail_wal_writes;

#define REAL(f) (((wrap_file *)(f))->real)
static int w_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int w_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o) {
  return REAL(f)->pMethods->xRead(REAL(f), b, n, o);
}
static int w_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o) {
  if (((wrap_file *)f)->wal && fail_wal_writes) return SQLITE_IOERR_WRITE;
  return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int w_truncate(sqlite3_file *f, sqlite3_int64 size) {
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int w_sync(sqlite3_file *f, int flags) { return REAL(f)->pMethods->xSync(REAL(f), flags); }
static int w_size(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int w_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int w_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int w_reserved(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int w_control(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int w_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int w_devchar(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int w_shm_map(sqlite3_file *f, int pg, int size, int extend, void volatile **out) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, size, extend, out);
}
static int w_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void w_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int w_shm_unmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int w_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **out) {
  return REAL(f)->pMethods->xFetch(REAL(f), o, n, out);
}
static int w_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p) {
  return REAL(f)->pMethods->xUnfetch(REAL(f), o, p);
}

static const sqlite3_io_methods wrap_methods = {
    3, w_close, w_read, w_write, w_truncate, w_sync, w_size, w_lock, w_unlock, w_reserved,
    w_control, w_sector, w_devchar, w_shm_map, w_shm_lock, w_shm_barrier, w_shm_unmap,
    w_fetch, w_unfetch};

static int w_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                  int *out_flags) {
  (void)vfs;
  wrap_file *w = (wrap_file *)f;
  w->real = (sqlite3_file *)(w + 1);
  w->wal = (flags & SQLITE_OPEN_WAL) != 0;
  int rc = real_vfs->xOpen(real_vfs, name, w->real, flags, out_flags);
  w->base.pMethods = w->real->pMethods ? &wrap_methods : NULL;
  return rc;
}

static int w_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  (void)vfs;
  return real_vfs->xDelete(real_vfs, name, sync_dir);
}
static int w_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
  (void)vfs;
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int w_full(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static sqlite3_vfs wrap_vfs;

/* Installed as the default before the hub opens its store. */
static void wrap_vfs_install(void) {
  real_vfs = sqlite3_vfs_find(NULL);
  CHECK(real_vfs != NULL && real_vfs->iVersion >= 2);
  wrap_vfs = *real_vfs;
  wrap_vfs.zName = "test-failwal";
  wrap_vfs.pNext = NULL;
  wrap_vfs.szOsFile = (int)sizeof(wrap_file) + real_vfs->szOsFile;
  wrap_vfs.xOpen = w_open;
  wrap_vfs.xDelete = w_delete;
  wrap_vfs.xAccess = w_access;
  wrap_vfs.xFullPathname = w_full;
  CHECK_EQ_INT(sqlite3_vfs_register(&wrap_vfs, 1), SQLITE_OK);
}

/* One request; a parked one goes into *park when given (else it is an error). */
static reply callp(pending *park, const char *method, const char *url, const char *auth,
                   const char *body) {
  static char path[256], query[256], authz[160];
  snprintf(path, sizeof path, "%s", url);
  char *q = strchr(path, '?');
  if (q) *q++ = '\0';
  snprintf(query, sizeof query, "%s", q ? q : "");
  if (auth) snprintf(authz, sizeof authz, "Bearer %s", auth);
  hg_api_req req = {.method = method, .path = path, .query = q ? query : NULL,
                    .authorization = auth ? authz : NULL, .body = body,
                    .body_len = body ? strlen(body) : 0};
  hg_api_res res;
  memset(&res, 0, sizeof res);
  reply r = {0};
  if (park) {
    memset(park, 0, sizeof *park);
    snprintf(park->path, sizeof park->path, "%s", path);
    snprintf(park->query, sizeof park->query, "%s", query);
    snprintf(park->auth, sizeof park->auth, "%s", auth ? authz : "");
    park->req = req;
    park->req.path = park->path;
    park->req.query = q ? park->query : NULL;
    park->req.authorization = auth ? park->auth : NULL;
    hg_api_handle(hub, &park->req, &res);
  } else {
    hg_api_handle(hub, &req, &res);
  }
  if (res.park) {
    if (park) {
      park->w.kind = res.park_kind;
      snprintf(park->w.key, sizeof park->w.key, "%s", res.park_key);
      park->w.deadline_ms = res.park_deadline_ms;
      park->w.req = &park->req;
      park->w.deliver = deliver;
      park->w.data = park;
      hg_hub_park(hub, &park->w);
    }
    r.status = -1; /* parked */
  } else {
    r = to_reply(&res);
  }
  hg_api_res_clear(&res);
  hg_hub_flush(hub);
  return r;
}

static reply call(const char *method, const char *url, const char *auth, const char *body) {
  return callp(NULL, method, url, auth, body);
}

static const char *str(const cJSON *j, const char *name) {
  return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, name));
}

static double num(const cJSON *j, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *err_code(const reply *r) {
  return str(cJSON_GetObjectItemCaseSensitive(r->json, "error"), "code");
}

static const char *err_msg(const reply *r) {
  return str(cJSON_GetObjectItemCaseSensitive(r->json, "error"), "message");
}

/* status + error code in one check */
#define EXPECT(r, st, code)                                               \
  do {                                                                    \
    CHECK_EQ_INT((r).status, st);                                         \
    if ((code) != NULL) CHECK_EQ_STR(err_code(&(r)), (const char *)(code)); \
  } while (0)

static char *make_key(const char *role, const char *labels) {
  char body[256];
  snprintf(body, sizeof body, "{\"role\":\"%s\",\"name\":\"t\"%s%s}", role,
           labels ? ",\"labels\":" : "", labels ? labels : "");
  reply r = call("POST", "/v1/keys", admin, body);
  CHECK_EQ_INT(r.status, 201);
  char *key = strdup(str(r.json, "key") ? str(r.json, "key") : "");
  reply_free(&r);
  return key;
}

typedef struct agent {
  char id[80], token[80];
  uint8_t pub[32], priv[32];
} agent;

static int register_agent(agent *a, const char *key, const char *labels, int capacity,
                          const char *resume) {
  hg_crypto_x25519_keygen(a->pub, a->priv, NULL);
  hg_buf b64 = HG_BUF_INIT;
  hg_crypto_b64_encode(&b64, a->pub, 32, HG_CRYPTO_B64_STD, NULL);
  char body[512];
  snprintf(body, sizeof body,
           "{\"name\":\"a\",\"labels\":%s,\"capacity\":%d,\"public_key\":\"%s\"%s%s%s}",
           labels ? labels : "{}", capacity, b64.data, resume ? ",\"agent_id\":\"" : "",
           resume ? resume : "", resume ? "\"" : "");
  hg_buf_free(&b64);
  reply r = call("POST", "/v1/agents", key, body);
  int st = r.status;
  if (st == 201) {
    snprintf(a->id, sizeof a->id, "%s", str(r.json, "agent_id"));
    snprintf(a->token, sizeof a->token, "%s", str(r.json, "session_token"));
  }
  reply_free(&r);
  return st;
}

static void setup(void) {
  hg_log_setup(stderr, HG_LOG_WARN, "hub-test");
  const char *base = getenv("HANGAR_TEST_TMP");
  char tmpl[200];
  if (base && *base) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
    CHECK_EQ_INT(system(cmd), 0);
  }
  snprintf(tmpl, sizeof tmpl, "%s/hubapiXXXXXX", base && *base ? base : "/tmp");
  CHECK(mkdtemp(tmpl) != NULL);
  snprintf(dir, sizeof dir, "%s", tmpl);
  char db[300], mk[300];
  snprintf(db, sizeof db, "%s/hub.db", dir);
  snprintf(mk, sizeof mk, "%s/hub.key", dir);
  hg_err err = {0};
  wrap_vfs_install();
  CHECK_EQ_INT(hg_hub_init_store(db, mk, HG_STORE_SYNC_NORMAL, admin, &err), 0);
  char again[HG_APIKEY_LEN + 1];
  CHECK_EQ_INT(hg_hub_init_store(db, mk, HG_STORE_SYNC_NORMAL, again, &err), HG_EEXIST);
  hg_hub_config cfg;
  hg_hub_config_defaults(&cfg);
  cfg.db_path = db;
  cfg.master_key_path = mk;
  cfg.lease_ttl_s = 10;
  CHECK_EQ_INT(hg_hub_open(&cfg, NULL, &hub, &err), 0);
  if (!hub) {
    fprintf(stderr, "open: %s\n", err.msg);
    exit(1);
  }
  hg_hub_set_clock(hub, clock_fn, NULL);
}

static void auth_comes_first(void) {
  reply r = call("GET", "/healthz", NULL, NULL);
  EXPECT(r, 200, NULL);
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "ok")));
  reply_free(&r);
  r = call("DELETE", "/v1/tasks", NULL, NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
  r = call("DELETE", "/v1/tasks", admin, NULL);
  EXPECT(r, 405, "method_not_allowed");
  reply_free(&r);
  r = call("GET", "/v1/nothing", admin, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  r = call("GET", "/v1/tasks", "hgr_abcdefghijkl_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
  /* A wrong secret for a real key id is as unknown as a made-up key. */
  char forged[HG_APIKEY_LEN + 1];
  memcpy(forged, admin, sizeof forged);
  forged[HG_APIKEY_LEN - 1] = forged[HG_APIKEY_LEN - 1] == 'A' ? 'B' : 'A';
  r = call("GET", "/v1/tasks", forged, NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
}

static void keys_roles(void) {
  char *user = make_key("user", NULL);
  reply r = call("POST", "/v1/keys", user, "{\"role\":\"admin\"}");
  EXPECT(r, 403, "forbidden");
  reply_free(&r);
  r = call("POST", "/v1/keys", admin, "{\"role\":\"root\"}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "role") != NULL);
  reply_free(&r);
  r = call("POST", "/v1/keys", admin, "{\"role\":\"user\",\"labels\":{\"env\":\"x\"}}");
  EXPECT(r, 400, "bad_request");
  reply_free(&r);
  r = call("POST", "/v1/keys", admin, "{\"role\":");
  EXPECT(r, 400, "bad_request");
  reply_free(&r);
  r = call("GET", "/v1/keys", admin, NULL);
  EXPECT(r, 200, NULL);
  char *text = cJSON_PrintUnformatted(r.json);
  /* The list shows no secret: not the user key's, not the admin's. */
  CHECK(strstr(text, user + 17) == NULL);
  CHECK(strstr(text, admin + 17) == NULL);
  free(text);
  reply_free(&r);
  char path[64];
  snprintf(path, sizeof path, "/v1/keys/%.12s", user + 4);
  r = call("DELETE", path, admin, NULL);
  EXPECT(r, 204, NULL);
  reply_free(&r);
  r = call("GET", "/v1/tasks", user, NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
  r = call("DELETE", "/v1/keys/nosuchkey123", admin, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  free(user);
}

static void task_validation_and_revisions(void) {
  struct {
    const char *body, *field;
  } bad[] = {
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"comand\":1}", "comand"},
      {"{\"slug\":\"Bad Slug\",\"command\":[\"a\"]}", "slug"},
      {"{\"slug\":\"x\"}", "command"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"timeout\":0}", "timeout"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"timeout\":43201}", "timeout"},
      {"{\"slug\":\"x\",\"command\":[1]}", "command[0]"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"parameters\":[{\"slug\":\"9x\",\"type\":\"string\"}]}",
       "parameters[0].slug"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"parameters\":[{\"slug\":\"n\",\"type\":\"int\"}]}",
       "parameters[0].type"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"parameters\":[{\"slug\":\"n\",\"type\":\"integer\","
       "\"default\":\"1\"}]}",
       "parameters[0].default"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"parameters\":[{\"slug\":\"n\",\"type\":\"date\","
       "\"default\":\"2026-02-30\"}]}",
       "parameters[0].default"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"parameters\":[{\"slug\":\"n\",\"type\":\"string\","
       "\"colour\":1}]}",
       "parameters[0].colour"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"env\":{\"A\":{\"config\":\"x\",\"ref\":\"y\"}}}", "env.A"},
      {"{\"slug\":\"x\",\"command\":[\"a\"],\"constraints\":{\"env\":1}}", "constraints.env"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    reply r = call("POST", "/v1/tasks", admin, bad[i].body);
    EXPECT(r, 400, "bad_request");
    const char *m = err_msg(&r);
    CHECK(m && strncmp(m, bad[i].field, strlen(bad[i].field)) == 0);
    if (!m || strncmp(m, bad[i].field, strlen(bad[i].field)) != 0)
      fprintf(stderr, "  body %s -> %s\n", bad[i].body, m ? m : "(none)");
    reply_free(&r);
  }
  /* An image alone is enough. */
  reply r = call("POST", "/v1/tasks", admin, "{\"slug\":\"img\",\"image\":\"alpine:3.20\"}");
  EXPECT(r, 201, NULL);
  reply_free(&r);

  const char *v1 = "{\"slug\":\"hello\",\"name\":\"Hello\",\"command\":[\"/bin/echo\",\"hi\"],"
                   "\"parameters\":[{\"slug\":\"name\",\"type\":\"string\",\"default\":\"world\"},"
                   "{\"slug\":\"count\",\"type\":\"integer\",\"required\":true}]}";
  const char *v1_reordered = "{\"parameters\":[{\"type\":\"string\",\"slug\":\"name\","
                             "\"default\":\"world\"},{\"required\":true,\"slug\":\"count\","
                             "\"type\":\"integer\"}],\"command\":[\"/bin/echo\",\"hi\"],"
                             "\"name\":\"Hello\",\"slug\":\"hello\"}";
  r = call("POST", "/v1/tasks", admin, v1);
  EXPECT(r, 201, NULL);
  CHECK_EQ_INT(num(r.json, "revision"), 1);
  reply_free(&r);
  r = call("POST", "/v1/tasks", admin, v1_reordered);
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "revision"), 1);
  reply_free(&r);
  r = call("POST", "/v1/tasks", admin,
           "{\"slug\":\"hello\",\"name\":\"Hello!\",\"command\":[\"/bin/echo\",\"hi\"],"
           "\"parameters\":[{\"slug\":\"name\",\"type\":\"string\",\"default\":\"world\"},"
           "{\"slug\":\"count\",\"type\":\"integer\",\"required\":true}]}");
  EXPECT(r, 201, NULL);
  CHECK_EQ_INT(num(r.json, "revision"), 2);
  reply_free(&r);
  r = call("GET", "/v1/tasks/hello", admin, NULL);
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "timeout"), 3600);
  CHECK_EQ_STR(str(r.json, "name"), "Hello!");
  reply_free(&r);
  r = call("GET", "/v1/tasks/nope", admin, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
}

static void run_params(void) {
  reply r = call("POST", "/v1/runs", admin, "{\"task\":\"nope\"}");
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"hello\",\"params\":{}}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "params.count") != NULL);
  reply_free(&r);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"hello\",\"params\":{\"count\":\"3\"}}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "params.count") != NULL);
  reply_free(&r);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"hello\",\"params\":{\"count\":3,\"x\":1}}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "params.x") != NULL);
  reply_free(&r);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"hello\",\"params\":{\"count\":3}}");
  EXPECT(r, 201, NULL);
  char path[128];
  snprintf(path, sizeof path, "/v1/runs/%s", str(r.json, "run_id"));
  reply_free(&r);
  r = call("GET", path, admin, NULL);
  EXPECT(r, 200, NULL);
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(r.json, "params");
  CHECK_EQ_STR(str(params, "name"), "world");
  CHECK_EQ_INT(num(params, "count"), 3);
  CHECK_EQ_STR(str(r.json, "status"), "queued");
  CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "outputs")));
  reply_free(&r);
  /* Tidy: cancel it, so later tests start with an empty queue. */
  snprintf(path + strlen(path), sizeof path - strlen(path), "/cancel");
  r = call("POST", path, admin, NULL);
  EXPECT(r, 202, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "cancelled");
  reply_free(&r);
  r = call("POST", path, admin, NULL);
  EXPECT(r, 409, "invalid_transition");
  CHECK_EQ_STR(str(r.json, "status"), "cancelled");
  reply_free(&r);
}

static char *create_run(const char *task, const char *params) {
  char body[512];
  snprintf(body, sizeof body, "{\"task\":\"%s\",\"params\":%s}", task, params ? params : "{}");
  reply r = call("POST", "/v1/runs", admin, body);
  CHECK_EQ_INT(r.status, 201);
  char *id = strdup(r.status == 201 ? str(r.json, "run_id") : "none");
  reply_free(&r);
  return id;
}

/* Polls work for the agent without waiting; returns the first assignment's lease. */
static int poll_work(agent *a, char *run_id, char *lease, size_t n) {
  char url[160];
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0", a->id);
  reply r = call("GET", url, a->token, NULL);
  int got = 0;
  if (r.status == 200) {
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(r.json, "assign");
    got = cJSON_GetArraySize(as);
    if (got && run_id) {
      snprintf(run_id, n, "%s", str(as->child, "run_id"));
      snprintf(lease, n, "%s", str(as->child, "lease_id"));
    }
  } else {
    got = -r.status;
  }
  reply_free(&r);
  return got;
}

/* POST /v1/runs/{run}/accept with the lease. */
static reply accept_lease(agent *a, const char *run, const char *lease) {
  char url[200], body[200];
  snprintf(url, sizeof url, "/v1/runs/%s/accept", run);
  snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
  return call("POST", url, a->token, body);
}

/* Polls work for the agent, which must be offered run, and accepts run with its lease. */
static reply accept_offered(agent *a, const char *run) {
  char run_id[80] = "", lease[80] = "";
  CHECK_EQ_INT(poll_work(a, run_id, lease, sizeof run_id), 1);
  CHECK_EQ_STR(run_id, run);
  return accept_lease(a, run, lease);
}

static void full_run_lifecycle(void) {
  char *akey = make_key("agent", "{\"env\":\"prod\"}");
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"staging\"}", 2, NULL), 403);
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\",\"zone\":\"b\"}", 2, NULL), 201);
  reply r = call("POST", "/v1/tasks", admin,
                 "{\"slug\":\"job\",\"command\":[\"true\"],\"constraints\":{\"env\":\"prod\"},"
                 "\"env\":{\"GREETING\":\"hi\",\"TOKEN\":{\"ref\":\"vault://kv/x#t\"}}}");
  EXPECT(r, 201, NULL);
  reply_free(&r);
  char *run = create_run("job", NULL);
  char run_id[80], lease[80], url[200];
  CHECK_EQ_INT(poll_work(&a, run_id, lease, sizeof run_id), 1);
  CHECK_EQ_STR(run_id, run);

  snprintf(url, sizeof url, "/v1/runs/%s/accept", run);
  r = call("POST", url, a.token, "{\"lease_id\":\"wrong\"}");
  EXPECT(r, 409, "lease_lost");
  reply_free(&r);
  char body[300];
  snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
  /* Only the session may accept: a user key is forbidden, not unauthorised. */
  r = call("POST", url, admin, body);
  EXPECT(r, 403, "forbidden");
  reply_free(&r);
  r = call("POST", url, a.token, body);
  EXPECT(r, 200, NULL);
  const cJSON *doc = cJSON_GetObjectItemCaseSensitive(r.json, "run");
  CHECK_EQ_STR(str(doc, "id"), run);
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(doc, "env"), "GREETING"), "hi");
  CHECK(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(doc, "secrets")));
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(doc, "secret_refs"), "TOKEN"),
               "vault://kv/x#t");
  CHECK_EQ_INT(num(cJSON_GetObjectItemCaseSensitive(doc, "task"), "timeout_s"), 3600);
  char token[80];
  snprintf(token, sizeof token, "%s", str(doc, "run_token"));
  reply_free(&r);
  /* The first answer was lost: the same accept answers again with the same run. */
  r = call("POST", url, a.token, body);
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(r.json, "run"), "run_token"), token);
  reply_free(&r);

  snprintf(url, sizeof url, "/v1/runs/%s/start", run);
  r = call("POST", url, a.token, "{\"at\":\"2027-01-01T00:00:00.000Z\"}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "running");
  reply_free(&r);

  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  r = call("POST", url, a.token,
           "{\"first_seq\":0,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"a\"},"
           "{\"kind\":\"output\",\"op\":\"set\",\"path\":\"x\",\"value\":[1]}]}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 2);
  reply_free(&r);
  /* A retried batch is harmless; one past the end is a gap. */
  r = call("POST", url, a.token,
           "{\"first_seq\":1,\"events\":[{\"kind\":\"output\",\"op\":\"set\",\"path\":\"x\","
           "\"value\":[1]},{\"kind\":\"output\",\"op\":\"append\",\"path\":\"x\",\"value\":2}]}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 3);
  reply_free(&r);
  r = call("POST", url, a.token,
           "{\"first_seq\":5,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"z\"}]}");
  EXPECT(r, 409, "seq_gap");
  CHECK_EQ_INT(num(r.json, "next_seq"), 3);
  reply_free(&r);
  r = call("POST", url, a.token, "{\"first_seq\":3,\"events\":[{\"kind\":\"log\",\"stream\":\"x\","
                                 "\"text\":\"z\"}]}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "events[0].stream") != NULL);
  reply_free(&r);

  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a.token, "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":4}");
  EXPECT(r, 409, "seq_gap");
  CHECK_EQ_INT(num(r.json, "next_seq"), 3);
  reply_free(&r);
  r = call("POST", url, a.token, "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":3}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = call("POST", url, a.token,
           "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":3,\"at\":\"2027-01-01T00:00:01Z\"}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = call("POST", url, a.token, "{\"status\":\"failed\",\"exit_code\":1,\"events_total\":3}");
  EXPECT(r, 409, "invalid_transition");
  CHECK_EQ_STR(str(r.json, "status"), "succeeded");
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  r = call("POST", url, a.token, "{\"first_seq\":3,\"events\":[]}");
  EXPECT(r, 409, "invalid_transition");
  reply_free(&r);

  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "succeeded");
  char *outputs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.json, "outputs"));
  CHECK_EQ_STR(outputs, "{\"x\":[1,2]}");
  free(outputs);
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(r.json, "agent"), "id"), a.id);
  reply_free(&r);
  /* The run token died with its run. */
  r = call("GET", url, token, NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);

  snprintf(url, sizeof url, "/v1/runs/%s/events?after=0", run);
  r = call("GET", url, admin, NULL);
  EXPECT(r, 200, NULL);
  const cJSON *evs = cJSON_GetObjectItemCaseSensitive(r.json, "events");
  CHECK_EQ_INT(cJSON_GetArraySize(evs), 2);
  CHECK_EQ_INT(num(evs->child, "seq"), 1);
  CHECK(!strcmp(evs->child->child->string, "seq"));
  CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "done")));
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/events?limit=1", run);
  r = call("GET", url, admin, NULL);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r.json, "done")));
  reply_free(&r);

  free(run);
  free(akey);
}

/* A run of "job" that a has accepted. */
static char *accepted_run(agent *a) {
  char *run = create_run("job", NULL);
  reply r = accept_offered(a, run);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  return run;
}

static void output_errors_recorded(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char *run = accepted_run(&a);
  char url[200];
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  reply r = call("POST", url, a.token,
           "{\"first_seq\":0,\"events\":[{\"kind\":\"output\",\"op\":\"set\",\"path\":\"a\","
           "\"value\":\"s\"},{\"kind\":\"output\",\"op\":\"append\",\"path\":\"a\",\"value\":1},"
           "{\"kind\":\"output\",\"op\":\"set\",\"path\":\"b[\",\"value\":1}]}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  const cJSON *errs = cJSON_GetObjectItemCaseSensitive(r.json, "output_errors");
  CHECK_EQ_INT(cJSON_GetArraySize(errs), 2);
  if (cJSON_GetArraySize(errs) == 2) {
    CHECK_EQ_INT(num(errs->child, "seq"), 1);
    CHECK(str(errs->child, "error") != NULL);
  }
  char *outputs = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(r.json, "outputs"));
  CHECK_EQ_STR(outputs, "{\"a\":\"s\"}");
  free(outputs);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/agents/%s", a.id);
  r = call("DELETE", url, a.token, NULL);
  EXPECT(r, 204, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  CHECK_EQ_STR(str(r.json, "error"), "agent_lost");
  reply_free(&r);
  /* The session is gone. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0", a.id);
  r = call("GET", url, a.token, NULL);
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
  free(run);
  free(akey);
}

/* Reads a run's events as "seq:text|..." (text of log events, "-" for others), checking that
 * seq comes first in each event. */
static void events_text(const char *run, const char *query, char *out, size_t size,
                        reply *keep) {
  char url[256];
  snprintf(url, sizeof url, "/v1/runs/%s/events%s", run, query);
  reply r = call("GET", url, admin, NULL);
  CHECK_EQ_INT(r.status, 200);
  size_t used = 0;
  out[0] = '\0';
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r.json, "events")) {
    CHECK(e->child && !strcmp(e->child->string, "seq"));
    const char *text = str(e, "text");
    if (used < size)
      used += (size_t)snprintf(out + used, size - used, "%d:%s|", (int)num(e, "seq"),
                               text ? text : "-");
  }
  if (keep)
    *keep = r;
  else
    reply_free(&r);
}

/* Batches are stored as sent (whatever their layout), retried events are skipped, refused
 * batches leave nothing behind, and reading slices them exactly. */
static void event_batches(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char *run = accepted_run(&a);
  char url[200];
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  /* Spacing, member order, escapes, an agent's own "seq" and extra members. */
  reply r = call("POST", url, a.token,
                 " { \"events\" : [ {\"text\":\"caf\\u00e9\",\"kind\":\"log\",\"stream\":\"stdout\","
                 "\"seq\":99} ,\n\t{\"kind\":\"log\",\"stream\":\"stderr\",\"text\":\"b\","
                 "\"partial\":true,\"extra\":{\"k\":[1,2]}} ] , \"first_seq\" : 0 } \n");
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 2);
  reply_free(&r);
  /* Overlapping what the hub has: only the new part is stored. */
  r = call("POST", url, a.token,
           "{\"first_seq\":1,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"B\"},"
           "{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"c\"},"
           "{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"d\"}]}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 4);
  reply_free(&r);
  /* A byte-order mark, and a repeated "events" (the first counts), read as before. */
  r = call("POST", url, a.token,
           "\xEF\xBB\xBF{\"first_seq\":4,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\","
           "\"text\":\"e\"}]}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = call("POST", url, a.token,
           "{\"first_seq\":5,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"f\"}],"
           "\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"ignored\"}]}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 6);
  reply_free(&r);

  /* Refusals name what a whole-document read names first, and store nothing. */
  static const struct {
    const char *body, *msg;
    bool exact; /* the whole message, else a part of it */
  } refusals[] = {
      {"{\"events\":[{\"kind\":\"log\",\"stream\":\"x\",\"text\":\"a\"}],\"first_seq\":\"6\"}",
       "first_seq", false},
      {"{\"first_seq\":6,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"ok\"},"
       "{\"kind\":\"log\",\"stream\":\"out\",\"text\":\"a\"}]}",
       "events[1].stream", false},
      {"{\"first_seq\":6,\"events\":[{\"kind\":\"log\",\"stream\":\"x\",\"text\":\"a\"}],}",
       "malformed JSON", false},
      {"{\"first_seq\":6}", "events: required", true},
      {"{\"first_seq\":6,\"events\":[{\"kind\":\"log\"},1]}", "events[0].stream: required", true},
      {"{\"first_seq\":6,\"events\":[1]}", "events[0]: expected an object, got number", true},
      {"{\"first_seq\":-1,\"events\":[]}", "first_seq: must not be negative", true},
  };
  for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
    r = call("POST", url, a.token, refusals[i].body);
    EXPECT(r, 400, "bad_request");
    if (refusals[i].exact)
      CHECK_EQ_STR(err_msg(&r), refusals[i].msg);
    else
      CHECK_CONTAINS(err_msg(&r), refusals[i].msg);
    reply_free(&r);
  }
  size_t big = (64u << 10) + 1;
  char *body = malloc(big + 200);
  int n = snprintf(body, 200, "{\"first_seq\":6,\"events\":[{\"kind\":\"log\",\"stream\":"
                              "\"stdout\",\"text\":\"");
  memset(body + n, 'x', big);
  snprintf(body + n + big, 200, "\"}]}");
  r = call("POST", url, a.token, body);
  EXPECT(r, 413, "too_large");
  CHECK(strstr(err_msg(&r), "events[0].text") != NULL);
  reply_free(&r);
  /* Nesting: what a whole-document read of the body allows is allowed, and reads back. */
  size_t depth = CJSON_NESTING_LIMIT - 3;
  for (int deeper = 0; deeper < 2; deeper++) {
    n = snprintf(body, 200, "{\"first_seq\":6,\"events\":[{\"kind\":\"output\",\"op\":\"set\","
                            "\"path\":\"deep\",\"value\":");
    for (size_t i = 0; i < depth + (size_t)deeper; i++) body[n++] = '[';
    for (size_t i = 0; i < depth + (size_t)deeper; i++) body[n++] = ']';
    snprintf(body + n, 200, "}]}");
    r = call("POST", url, a.token, body);
    EXPECT(r, deeper ? 400 : 200, NULL);
    reply_free(&r);
  }
  free(body);
  char got[4096];
  events_text(run, "?after=-1", got, sizeof got, NULL);
  CHECK_EQ_STR(got, "0:caf\xC3\xA9|1:b|2:c|3:d|4:e|5:f|6:-|");
  /* An agent's "seq" never shadows the hub's; other members come back as sent. */
  events_text(run, "?limit=2", got, sizeof got, &r);
  const cJSON *evs = cJSON_GetObjectItemCaseSensitive(r.json, "events");
  CHECK_EQ_INT(num(cJSON_GetArrayItem(evs, 0), "seq"), 0);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetArrayItem(evs, 0)), 4);
  char *second = cJSON_PrintUnformatted(cJSON_GetArrayItem(evs, 1));
  CHECK_EQ_STR(second, "{\"seq\":1,\"kind\":\"log\",\"stream\":\"stderr\",\"text\":\"b\","
                       "\"partial\":true,\"extra\":{\"k\":[1,2]}}");
  free(second);
  CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(r.json, "done")));
  reply_free(&r);
  /* limit is exact, inside a chunk and across chunks. */
  events_text(run, "?after=0&limit=3", got, sizeof got, NULL);
  CHECK_EQ_STR(got, "1:b|2:c|3:d|");
  events_text(run, "?after=2&limit=1", got, sizeof got, NULL);
  CHECK_EQ_STR(got, "3:d|");

  /* A long batch is paged through exactly. */
  size_t lines = 2500;
  body = malloc(lines * 80 + 100);
  n = snprintf(body, 100, "{\"first_seq\":7,\"events\":[");
  for (size_t i = 0; i < lines; i++)
    n += snprintf(body + n, 80, "%s{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"l%zu\"}",
                  i ? "," : "", 7 + i);
  snprintf(body + n, 100, "]}");
  r = call("POST", url, a.token, body);
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "next_seq"), 7 + (double)lines);
  reply_free(&r);
  free(body);
  int64_t after = 6, seen = 0;
  bool ordered = true;
  for (int page = 0; page < 10 && after < 7 + (int64_t)lines - 1; page++) {
    char q[64];
    snprintf(q, sizeof q, "?after=%lld&limit=999", (long long)after);
    events_text(run, q, got, 16, &r);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(r.json, "events")) {
      char want[32];
      snprintf(want, sizeof want, "l%lld", (long long)after + 1);
      if ((int64_t)num(e, "seq") != after + 1 || strcmp(str(e, "text"), want)) ordered = false;
      after++;
      seen++;
    }
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "events")),
                 seen == (int64_t)lines ? (int)(lines % 999) : 999);
    reply_free(&r);
  }
  CHECK(ordered);
  CHECK_EQ_INT(seen, (int64_t)lines);
  free(run);
  free(akey);
}

static void leases_lapse(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 2, NULL), 201);
  char *r1 = create_run("job", NULL);
  char *r2 = create_run("job", NULL);
  char run_id[80], lease1[80], lease2[80], url[200], body[200];
  char url2[200];
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0", a.id);
  reply r = call("GET", url, a.token, NULL);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(r.json, "assign");
  CHECK_EQ_INT(cJSON_GetArraySize(as), 2);
  snprintf(lease1, sizeof lease1, "%s", str(as->child, "lease_id"));
  snprintf(lease2, sizeof lease2, "%s", str(as->child->next, "lease_id"));
  CHECK_EQ_STR(str(as->child, "run_id"), r1); /* oldest first */
  reply_free(&r);
  r = accept_lease(&a, r1, lease1);
  EXPECT(r, 200, NULL);
  reply_free(&r);

  /* Heartbeats keep the accepted run; nothing keeps the unaccepted one. */
  fake_now += 6000;
  snprintf(url, sizeof url, "/v1/agents/%s/heartbeat", a.id);
  snprintf(body, sizeof body, "{\"runs\":[{\"run_id\":\"%s\",\"status\":\"accepted\"},"
                              "{\"run_id\":\"%s\",\"status\":\"assigned\"}],\"free\":0}", r1, r2);
  r = call("POST", url, a.token, body);
  EXPECT(r, 200, NULL);
  CHECK_EQ_INT(num(r.json, "lease_ttl_s"), 10);
  reply_free(&r);
  fake_now += 6000;
  hg_hub_sweep(hub);
  snprintf(url2, sizeof url2, "/v1/runs/%s", r2);
  r = call("GET", url2, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "queued");
  reply_free(&r);
  snprintf(url2, sizeof url2, "/v1/runs/%s", r1);
  r = call("GET", url2, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "accepted");
  reply_free(&r);
  /* The late accept of the re-queued run finds its lease gone. */
  r = accept_lease(&a, r2, lease2);
  EXPECT(r, 409, "lease_lost");
  reply_free(&r);

  /* Silence past the TTL: the accepted run fails agent_lost, the session lapses... */
  fake_now += 11000;
  hg_hub_sweep(hub);
  snprintf(url2, sizeof url2, "/v1/runs/%s", r1);
  r = call("GET", url2, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  CHECK_EQ_STR(str(r.json, "error"), "agent_lost");
  reply_free(&r);
  r = call("POST", url, a.token, "{}");
  EXPECT(r, 401, "unauthorized");
  reply_free(&r);
  /* ...but the agent comes back, finds its run listed, and may still upload and finish it. */
  char old_id[80];
  snprintf(old_id, sizeof old_id, "%s", a.id);
  agent b;
  CHECK_EQ_INT(register_agent(&b, akey, "{\"env\":\"prod\"}", 2, old_id), 201);
  CHECK_EQ_STR(b.id, old_id);
  snprintf(url2, sizeof url2, "/v1/runs/%s/events", r1);
  r = call("POST", url2, b.token,
           "{\"first_seq\":0,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"late\"}]}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  reply_free(&r);
  snprintf(url2, sizeof url2, "/v1/runs/%s/finish", r1);
  r = call("POST", url2, b.token, "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":1}");
  EXPECT(r, 409, "invalid_transition");
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  reply_free(&r);
  /* Another key may not take over the identity. */
  char *other = make_key("agent", NULL);
  agent c;
  CHECK_EQ_INT(register_agent(&c, other, "{}", 1, old_id), 403);
  free(other);

  /* Drain the queue (r2) so later tests start clean. */
  snprintf(url2, sizeof url2, "/v1/runs/%s/cancel", r2);
  r = call("POST", url2, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);
  (void)run_id;
  free(r1);
  free(r2);
  free(akey);
}

static void long_polls_wake(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char url[200];
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30", a.id);
  pending p1, p2;
  reply r = callp(&p1, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  CHECK_EQ_INT(hub->n_waiters, 1);
  /* A newer poll ends the older with nothing in it. */
  r = callp(&p2, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  CHECK(p1.answered);
  CHECK_EQ_INT(p1.r.status, 200);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p1.r.json, "assign")), 0);
  reply_free(&p1.r);
  CHECK_EQ_INT(hub->n_waiters, 1);
  /* A new run reaches the waiting poll at once. */
  char *run = create_run("job", NULL);
  CHECK(p2.answered);
  CHECK_EQ_INT(p2.r.status, 200);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(p2.r.json, "assign");
  CHECK_EQ_INT(cJSON_GetArraySize(as), 1);
  char lease[80];
  snprintf(lease, sizeof lease, "%s", as->child ? str(as->child, "lease_id") : "");
  reply_free(&p2.r);

  r = accept_lease(&a, run, lease);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  /* A reader waiting on events wakes when they arrive. */
  pending reader;
  snprintf(url, sizeof url, "/v1/runs/%s/events?wait=20", run);
  r = callp(&reader, "GET", url, admin, NULL);
  CHECK_EQ_INT(r.status, -1);
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  r = call("POST", url, a.token,
           "{\"first_seq\":0,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"x\"}]}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  CHECK(reader.answered);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reader.r.json, "events")), 1);
  reply_free(&reader.r);

  /* A cancel reaches the agent's open poll at once, and the heartbeat repeats it. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30&free=0", a.id);
  r = callp(&p1, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", run);
  r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "cancelling");
  reply_free(&r);
  CHECK(p1.answered);
  const cJSON *cancel = cJSON_GetObjectItemCaseSensitive(p1.r.json, "cancel");
  CHECK_EQ_INT(cJSON_GetArraySize(cancel), 1);
  CHECK_EQ_STR(cJSON_GetStringValue(cancel->child), run);
  reply_free(&p1.r);
  snprintf(url, sizeof url, "/v1/agents/%s/heartbeat", a.id);
  r = call("POST", url, a.token, "{\"runs\":[]}");
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "cancel")), 1);
  reply_free(&r);
  /* start of a cancelling run: 200, stays cancelling */
  snprintf(url, sizeof url, "/v1/runs/%s/start", run);
  r = call("POST", url, a.token, NULL);
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "cancelling");
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a.token, "{\"status\":\"cancelled\",\"events_total\":1}");
  EXPECT(r, 200, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "cancelled");
  reply_free(&r);

  /* An unanswered poll ends with its wait. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=5", a.id);
  r = callp(&p1, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  fake_now += 5000;
  hg_hub_expire_waits(hub);
  CHECK(p1.answered);
  CHECK_EQ_INT(p1.r.status, 200);
  reply_free(&p1.r);
  CHECK_EQ_INT(hub->n_waiters, 0);

  /* Revoking the key answers its agent's open poll with 401. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30", a.id);
  r = callp(&p1, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  char path[64];
  snprintf(path, sizeof path, "/v1/keys/%.12s", akey + 4);
  r = call("DELETE", path, admin, NULL);
  EXPECT(r, 204, NULL);
  reply_free(&r);
  CHECK(p1.answered);
  CHECK_EQ_INT(p1.r.status, 401);
  reply_free(&p1.r);
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, a.id), 401);
  free(run);
  free(akey);
}

/* A new run that a parked poll can take is assigned by the request that creates it: the poll is
 * answered inside that request, before its creator, with no wake-up pass left over, and the
 * assignment is as real as one a poll makes (the run is assigned, the lease accepts). A poll
 * that gave no free count still gets its run from the wake-up pass; one whose labels do not
 * meet the task's constraints gets nothing. */
static void parked_poll_takes_new_run_at_once(void) {
  char *akey = make_key("agent", NULL);
  agent staging, a;
  CHECK_EQ_INT(register_agent(&staging, akey, "{\"env\":\"staging\"}", 2, NULL), 201);
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 2, NULL), 201);
  char url[200];
  pending other, p;
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30&free=2", staging.id);
  reply r = callp(&other, "GET", url, staging.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30&free=2", a.id);
  r = callp(&p, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);

  hg_api_req req = {.method = "POST", .path = "/v1/runs", .body = "{\"task\":\"job\"}"};
  char authz[160];
  snprintf(authz, sizeof authz, "Bearer %s", admin);
  req.authorization = authz;
  req.body_len = strlen(req.body);
  hg_api_res res;
  memset(&res, 0, sizeof res);
  hg_api_handle(hub, &req, &res);
  CHECK(p.answered); /* before the creator's answer is even returned */
  CHECK_EQ_INT((int)hub->wake_queued.n, 0);
  reply created = to_reply(&res);
  hg_api_res_clear(&res);
  hg_hub_flush(hub);
  EXPECT(created, 201, NULL);
  char run[80];
  snprintf(run, sizeof run, "%s", str(created.json, "run_id") ? str(created.json, "run_id") : "");
  reply_free(&created);
  CHECK(!other.answered);
  CHECK_EQ_INT(p.r.status, 200);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(p.r.json, "assign");
  CHECK_EQ_INT(cJSON_GetArraySize(as), 1);
  char lease[80];
  snprintf(lease, sizeof lease, "%s", as && as->child ? str(as->child, "lease_id") : "");
  CHECK_EQ_STR(as && as->child ? str(as->child, "run_id") : "", run);
  reply_free(&p.r);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "assigned");
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(r.json, "agent"), "id"), a.id);
  CHECK_EQ_INT((int)num(r.json, "attempt"), 1);
  reply_free(&r);
  r = accept_lease(&a, run, lease);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", run);
  r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);
  CHECK_EQ_INT(poll_work(&a, NULL, NULL, 0), 0); /* hears of the cancel */
  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a.token, "{\"status\":\"cancelled\",\"events_total\":0}");
  EXPECT(r, 200, NULL);
  reply_free(&r);

  /* Without a free count: the wake-up pass hands it over. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30", a.id);
  r = callp(&p, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  memset(&res, 0, sizeof res);
  hg_api_handle(hub, &req, &res);
  CHECK(!p.answered);
  created = to_reply(&res);
  hg_api_res_clear(&res);
  hg_hub_flush(hub);
  CHECK(p.answered);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p.r.json, "assign")), 1);
  reply_free(&p.r);
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", str(created.json, "run_id"));
  reply_free(&created);
  r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);

  /* The staging agent's poll never could take a prod run: its wait ends empty. */
  CHECK(!other.answered);
  hg_hub_release_waits(hub);
  CHECK(other.answered);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(other.r.json, "assign")), 0);
  reply_free(&other.r);
  free(akey);
}

/* What a connection of its own (another process, or the hub after a restart) finds of a run:
 * its rows, -1 if the store could not be read. */
static int run_rows(const char *run) {
  char db[300];
  snprintf(db, sizeof db, "%s/hub.db", dir);
  sqlite3 *q = NULL;
  sqlite3_stmt *st = NULL;
  int n = -1;
  if (sqlite3_open_v2(db, &q, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(q, "SELECT count(*) FROM runs WHERE id = ?", -1, &st, NULL) ==
          SQLITE_OK) {
    sqlite3_bind_text(st, 1, run, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(q);
  return n;
}

static int offered_rows;          /* run_rows of the offered run as its offer was written */
static bool fail_commit_at_offer; /* the writes of the commit after the offer fail */

static void deliver_probe(hg_hub_waiter *w, hg_api_res *res) {
  deliver(w, res);
  pending *p = w->data;
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(p->r.json, "assign");
  offered_rows = as && as->child ? run_rows(str(as->child, "run_id")) : -2;
  if (fail_commit_at_offer) fail_wal_writes = true;
  /* A server may free an answered request at once: what the hub still needs of the waiter
   * (the agent the run goes to) must have been taken before. */
  memset(w->key, 'x', sizeof w->key - 1);
}

/* Cancels an accepted run and has its agent finish it so. */
static void cancel_accepted(agent *a, const char *run) {
  char url[200];
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", run);
  reply r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);
  CHECK_EQ_INT(poll_work(a, NULL, NULL, 0), 0);
  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a->token, "{\"status\":\"cancelled\",\"events_total\":0}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
}

/* A parked poll that takes a new run is answered before the creating transaction commits
 * (the creator after it). An offer binds nothing: the accept does. So when that commit
 * fails, the agent holds an offer of a run the store never had, and its accept is refused:
 * nothing runs, and the hub goes on. */
static void new_run_offered_before_commit(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char url[200], poll_url[200], run[80] = "", lease[80] = "";
  pending p;
  snprintf(poll_url, sizeof poll_url, "/v1/agents/%s/work?wait=30&free=1", a.id);
  reply r = callp(&p, "GET", poll_url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  p.w.deliver = deliver_probe;
  offered_rows = -2;
  reply created = call("POST", "/v1/runs", admin, "{\"task\":\"job\"}");
  EXPECT(created, 201, NULL);
  CHECK(p.answered);
  CHECK_EQ_INT(offered_rows, 0); /* offered while the run was not yet committed */
  snprintf(run, sizeof run, "%s", str(created.json, "run_id") ? str(created.json, "run_id") : "");
  reply_free(&created);
  CHECK_EQ_INT(run_rows(run), 1); /* and committed before its creator heard of it */
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(p.r.json, "assign");
  CHECK_EQ_STR(as && as->child ? str(as->child, "run_id") : "", run);
  snprintf(lease, sizeof lease, "%s", as && as->child ? str(as->child, "lease_id") : "");
  reply_free(&p.r);
  r = accept_lease(&a, run, lease);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  cancel_accepted(&a, run);

  /* The commit after the offer fails. */
  r = callp(&p, "GET", poll_url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  p.w.deliver = deliver_probe;
  fail_commit_at_offer = true;
  created = call("POST", "/v1/runs", admin, "{\"task\":\"job\"}");
  fail_commit_at_offer = false;
  fail_wal_writes = false;
  EXPECT(created, 500, NULL);
  CHECK(str(created.json, "run_id") == NULL);
  reply_free(&created);
  CHECK(p.answered);
  CHECK_EQ_INT(p.r.status, 200);
  as = cJSON_GetObjectItemCaseSensitive(p.r.json, "assign");
  CHECK_EQ_INT(cJSON_GetArraySize(as), 1);
  snprintf(run, sizeof run, "%s", as && as->child ? str(as->child, "run_id") : "");
  snprintf(lease, sizeof lease, "%s", as && as->child ? str(as->child, "lease_id") : "");
  reply_free(&p.r);
  CHECK_EQ_INT(run_rows(run), 0);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  r = accept_lease(&a, run, lease);
  EXPECT(r, 409, "lease_lost");
  reply_free(&r);
  CHECK_EQ_INT(poll_work(&a, NULL, NULL, 0), 0); /* nothing was queued either */

  /* The store goes on: the next run is created, taken and accepted. */
  char *next = create_run("job", NULL);
  r = accept_offered(&a, next);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  cancel_accepted(&a, next);
  free(next);
  free(akey);
}

/* Accepts a run with its lease; returns the answer's run token (heap), or NULL. */
static char *accept_token(agent *a, const char *run, const char *lease) {
  reply r = accept_lease(a, run, lease);
  EXPECT(r, 200, NULL);
  const char *t = str(cJSON_GetObjectItemCaseSensitive(r.json, "run"), "run_token");
  char *out = t ? strdup(t) : NULL;
  reply_free(&r);
  return out;
}

/* The run token of a run offered to a parked poll is made ahead, for its accept; every accept
 * still answers its own run's token (the run id and attempt under the vault's key), whatever
 * runs were offered or accepted in between, and a repeated accept the same again. */
static void run_tokens_made_ahead(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 2, NULL), 201);
  char url[200], run1[80] = "", lease1[80] = "", run2[80] = "", lease2[80] = "";
  pending p;
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30&free=2", a.id);
  reply r = callp(&p, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"job\"}");
  EXPECT(r, 201, NULL);
  reply_free(&r);
  CHECK(p.answered);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(p.r.json, "assign");
  snprintf(run1, sizeof run1, "%s", as && as->child ? str(as->child, "run_id") : "");
  snprintf(lease1, sizeof lease1, "%s", as && as->child ? str(as->child, "lease_id") : "");
  reply_free(&p.r);
  char *queued = create_run("job", NULL); /* no poll waiting: queued, then polled */
  CHECK_EQ_STR(hub->token_memo.run_id, run1);
  CHECK_EQ_INT(poll_work(&a, run2, lease2, sizeof run2), 1);
  CHECK_EQ_STR(run2, queued);
  /* The memo holds one token: the run the poll took from the queue now has it, and run1's is
   * made again at its accept. */
  CHECK_EQ_STR(hub->token_memo.run_id, run2);
  CHECK_EQ_INT(hub->token_memo.attempt, 1);

  char want1[HG_APIKEY_TOKEN_LEN + 1], want2[HG_APIKEY_TOKEN_LEN + 1];
  uint8_t hash[HG_APIKEY_HASH_LEN];
  CHECK_EQ_INT(hg_vault_run_token(&hub->vault, run1, 1, want1, hash, NULL), 0);
  CHECK_EQ_INT(hg_vault_run_token(&hub->vault, run2, 1, want2, hash, NULL), 0);
  char *got1 = accept_token(&a, run1, lease1); /* the one made ahead is run2's */
  CHECK_EQ_STR(got1 ? got1 : "", want1);
  CHECK_EQ_STR(hub->token_memo.run_id, run2);
  char *got2 = accept_token(&a, run2, lease2);
  CHECK_EQ_STR(got2 ? got2 : "", want2);
  CHECK_EQ_INT(hub->token_memo.run_id[0], '\0'); /* taken and wiped */
  char *again = accept_token(&a, run1, lease1);
  CHECK_EQ_STR(again ? again : "", want1);
  /* Both tokens are the runs' own credentials. */
  snprintf(url, sizeof url, "/v1/runs/%s", run1);
  r = call("GET", url, got1 ? got1 : "", NULL);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  free(got1);
  free(got2);
  free(again);
  hg_crypto_wipe(want1, sizeof want1);
  hg_crypto_wipe(want2, sizeof want2);
  cancel_accepted(&a, run1);
  cancel_accepted(&a, run2);

  /* A run handed out a second time (its first lease lapsed unaccepted) has its second
   * attempt's token made ahead, not its first's. */
  char *again_q = create_run("job", NULL);
  char run3[80] = "", lease3[80] = "";
  CHECK_EQ_INT(poll_work(&a, run3, lease3, sizeof run3), 1);
  fake_now += 6000;
  snprintf(url, sizeof url, "/v1/agents/%s/heartbeat", a.id);
  r = call("POST", url, a.token, "{\"runs\":[],\"free\":0}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  fake_now += 6000;
  hg_hub_sweep(hub);
  CHECK_EQ_INT(poll_work(&a, run3, lease3, sizeof run3), 1);
  CHECK_EQ_STR(run3, again_q);
  CHECK_EQ_STR(hub->token_memo.run_id, run3);
  CHECK_EQ_INT(hub->token_memo.attempt, 2);
  char want3[HG_APIKEY_TOKEN_LEN + 1], first3[HG_APIKEY_TOKEN_LEN + 1];
  CHECK_EQ_INT(hg_vault_run_token(&hub->vault, run3, 2, want3, hash, NULL), 0);
  CHECK_EQ_INT(hg_vault_run_token(&hub->vault, run3, 1, first3, hash, NULL), 0);
  char *got3 = accept_token(&a, run3, lease3);
  CHECK_EQ_STR(got3 ? got3 : "", want3);
  CHECK(strcmp(want3, first3) != 0);
  free(got3);
  hg_crypto_wipe(want3, sizeof want3);
  hg_crypto_wipe(first3, sizeof first3);
  cancel_accepted(&a, run3);
  free(again_q);
  free(queued);
  free(akey);
}

/* The run token made ahead for an offered run does not outlive the run's chance of an accept:
 * a cancel before the accept wipes it, without waiting for another run's offer. */
static void run_token_made_ahead_goes_with_its_run(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char url[200], run[80] = "";
  pending p;
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30&free=1", a.id);
  reply r = callp(&p, "GET", url, a.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  r = call("POST", "/v1/runs", admin, "{\"task\":\"job\"}");
  EXPECT(r, 201, NULL);
  snprintf(run, sizeof run, "%s", str(r.json, "run_id") ? str(r.json, "run_id") : "");
  reply_free(&r);
  CHECK(p.answered);
  reply_free(&p.r);
  CHECK_EQ_STR(hub->token_memo.run_id, run); /* made ahead for its accept */
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", run);
  r = call("POST", url, admin, NULL);
  CHECK(r.status >= 200 && r.status < 300);
  reply_free(&r);
  CHECK_EQ_INT(hub->token_memo.run_id[0], '\0');
  static const uint8_t zero[sizeof hub->token_memo.token] = {0};
  CHECK_EQ_MEM(hub->token_memo.token, zero, sizeof zero);
  free(akey);
}

/* A run's status as a connection of its own finds it ("" if none). */
static void run_status_elsewhere(const char *run, char *out, size_t n) {
  char db[300];
  snprintf(db, sizeof db, "%s/hub.db", dir);
  sqlite3 *q = NULL;
  sqlite3_stmt *st = NULL;
  snprintf(out, n, "%s", "");
  if (sqlite3_open_v2(db, &q, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2(q, "SELECT status FROM runs WHERE id = ?", -1, &st, NULL) ==
          SQLITE_OK) {
    sqlite3_bind_text(st, 1, run, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) snprintf(out, n, "%s", sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(q);
}

static reply early_reply;       /* what a request's answer callback was given */
static char early_status[32];   /* its run's status elsewhere at that moment */

static void answer_probe(hg_api_req *req, hg_api_res *res) {
  (void)req;
  early_reply = to_reply(res);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(early_reply.json, "assign");
  run_status_elsewhere(as && as->child ? str(as->child, "run_id") : "", early_status,
                       sizeof early_status);
  if (fail_commit_at_offer) fail_wal_writes = true;
}

/* A work poll through a server that can answer early; returns whether it did. */
static bool poll_answered_early(agent *a) {
  char path[160], authz[160];
  snprintf(path, sizeof path, "/v1/agents/%s/work", a->id);
  snprintf(authz, sizeof authz, "Bearer %s", a->token);
  hg_api_req req = {.method = "GET", .path = path, .query = "wait=30&free=1",
                    .authorization = authz, .answer = answer_probe};
  hg_api_res res;
  memset(&res, 0, sizeof res);
  memset(&early_reply, 0, sizeof early_reply);
  early_status[0] = '\0';
  hg_api_handle(hub, &req, &res);
  bool sent = res.sent;
  CHECK(!res.park);
  hg_api_res_clear(&res);
  hg_hub_flush(hub);
  return sent;
}

/* A poll that takes queued runs is answered before its transaction commits, when the server
 * can write the answer early. If that commit fails, the runs stay queued under their old
 * lease: the agent's accept is refused (lease_lost) and the next poll hands them out again. */
static void queued_run_handed_out_before_commit(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 2, NULL), 201);
  char url[200], lease[80] = "";
  char *run = create_run("job", NULL);
  CHECK(poll_answered_early(&a));
  CHECK_EQ_INT(early_reply.status, 200);
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(early_reply.json, "assign");
  CHECK_EQ_STR(as && as->child ? str(as->child, "run_id") : "", run);
  snprintf(lease, sizeof lease, "%s", as && as->child ? str(as->child, "lease_id") : "");
  reply_free(&early_reply);
  CHECK_EQ_STR(early_status, "queued"); /* answered before the assignment was committed */
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  reply r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "assigned");
  reply_free(&r);
  r = accept_lease(&a, run, lease);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  cancel_accepted(&a, run);
  free(run);

  /* The commit after the answer fails. */
  run = create_run("job", NULL);
  fail_commit_at_offer = true;
  CHECK(poll_answered_early(&a));
  fail_commit_at_offer = false;
  fail_wal_writes = false;
  as = cJSON_GetObjectItemCaseSensitive(early_reply.json, "assign");
  CHECK_EQ_STR(as && as->child ? str(as->child, "run_id") : "", run);
  snprintf(lease, sizeof lease, "%s", as && as->child ? str(as->child, "lease_id") : "");
  reply_free(&early_reply);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "queued");
  reply_free(&r);
  r = accept_lease(&a, run, lease);
  EXPECT(r, 409, "lease_lost");
  reply_free(&r);
  r = accept_offered(&a, run); /* handed out again, and accepted */
  EXPECT(r, 200, NULL);
  reply_free(&r);
  cancel_accepted(&a, run);
  free(run);
  free(akey);
}

/* A reader waiting on a run's events is evaluated again only when something it waits for
 * happens: an accept and a start bring neither events nor the run's end, so they leave no
 * wake-up for it; the run's first events answer it. */
static void readers_not_woken_by_accept_or_start(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char *run = create_run("job", NULL);
  char run_id[80] = "", lease[80] = "", url[200], body[200], authz[160];
  CHECK_EQ_INT(poll_work(&a, run_id, lease, sizeof run_id), 1);
  CHECK_EQ_STR(run_id, run);
  pending reader;
  snprintf(url, sizeof url, "/v1/runs/%s/events?wait=20", run);
  reply r = callp(&reader, "GET", url, admin, NULL);
  CHECK_EQ_INT(r.status, -1);

  snprintf(authz, sizeof authz, "Bearer %s", a.token);
  snprintf(body, sizeof body, "{\"lease_id\":\"%s\"}", lease);
  const char *steps[][2] = {{"accept", body}, {"start", NULL}};
  for (int i = 0; i < 2; i++) {
    snprintf(url, sizeof url, "/v1/runs/%s/%s", run, steps[i][0]);
    hg_api_req req = {.method = "POST", .path = url, .authorization = authz,
                      .body = steps[i][1], .body_len = steps[i][1] ? strlen(steps[i][1]) : 0};
    hg_api_res res;
    memset(&res, 0, sizeof res);
    hg_api_handle(hub, &req, &res);
    CHECK_EQ_INT(res.status, 200);
    CHECK_EQ_INT((int)hub->wake_runs.n, 0);
    hg_api_res_clear(&res);
    hg_hub_flush(hub);
    CHECK(!reader.answered);
  }
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  r = call("POST", url, a.token,
           "{\"first_seq\":0,\"events\":[{\"kind\":\"log\",\"stream\":\"stdout\",\"text\":\"x\"}]}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  CHECK(reader.answered);
  CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(reader.r.json, "events")), 1);
  reply_free(&reader.r);
  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a.token, "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":1}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  free(run);
  free(akey);
}

static void secrets_are_sealed(void) {
  reply r = call("PUT", "/v1/config-vars/db_password", admin,
                 "{\"value\":\"s3cret-pa55word\",\"secret\":true}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = call("PUT", "/v1/config-vars/db_host", admin, "{\"value\":\"db.internal\"}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = call("PUT", "/v1/config-vars/bad name", admin, "{\"value\":\"x\"}");
  EXPECT(r, 400, "bad_request");
  reply_free(&r);
  r = call("PUT", "/v1/config-vars/x", admin, "{\"value\":1}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "value") != NULL);
  reply_free(&r);
  r = call("GET", "/v1/config-vars", admin, NULL);
  char *text = cJSON_PrintUnformatted(r.json);
  CHECK(strstr(text, "s3cret") == NULL);
  CHECK(strstr(text, "db.internal") != NULL);
  free(text);
  reply_free(&r);

  r = call("POST", "/v1/tasks", admin,
           "{\"slug\":\"db\",\"command\":[\"true\"],\"env\":{\"DB_PASSWORD\":{\"config\":"
           "\"db_password\"},\"DB_HOST\":{\"config\":\"db_host\"}}}");
  EXPECT(r, 201, NULL);
  reply_free(&r);
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{}", 1, NULL), 201);
  char *run = create_run("db", NULL);
  char url[200];
  r = accept_offered(&a, run);
  EXPECT(r, 200, NULL);
  text = cJSON_PrintUnformatted(r.json);
  CHECK(strstr(text, "s3cret") == NULL);
  free(text);
  const cJSON *doc = cJSON_GetObjectItemCaseSensitive(r.json, "run");
  CHECK_EQ_STR(str(cJSON_GetObjectItemCaseSensitive(doc, "env"), "DB_HOST"), "db.internal");
  const cJSON *sealed = cJSON_GetObjectItemCaseSensitive(doc, "secrets");
  CHECK_EQ_STR(str(sealed, "alg"), "X25519-HKDF-SHA256-A256GCM");
  hg_buf plain = HG_BUF_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_sealbox_open(sealed, a.priv, run, &plain, &err), 0);
  CHECK_EQ_STR(plain.data, "{\"DB_PASSWORD\":\"s3cret-pa55word\"}");
  hg_buf_wipe(&plain);
  reply_free(&r);

  /* A run whose config variable vanished before accept fails, saying which. */
  char *run2 = create_run("db", NULL);
  r = call("DELETE", "/v1/config-vars/db_host", admin, NULL);
  EXPECT(r, 204, NULL);
  reply_free(&r);
  r = call("DELETE", "/v1/config-vars/db_host", admin, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/finish", run);
  r = call("POST", url, a.token, "{\"status\":\"succeeded\",\"exit_code\":0,\"events_total\":0}");
  EXPECT(r, 200, NULL);
  reply_free(&r);
  r = accept_offered(&a, run2);
  EXPECT(r, 409, "invalid_transition");
  CHECK(strstr(err_msg(&r), "db_host") != NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", run2);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  CHECK(strstr(str(r.json, "error"), "db_host") != NULL);
  reply_free(&r);
  /* Creating a run that needs it is refused up front. */
  r = call("POST", "/v1/runs", admin, "{\"task\":\"db\"}");
  EXPECT(r, 400, "bad_request");
  CHECK(strstr(err_msg(&r), "env.DB_HOST") != NULL);
  reply_free(&r);
  free(run);
  free(run2);
  free(akey);
}

static void run_tokens(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"env\":\"prod\"}", 1, NULL), 201);
  char *run = create_run("job", NULL);
  char *other = create_run("img", NULL);
  char url[200];
  reply r = accept_offered(&a, run);
  char token[80];
  snprintf(token, sizeof token, "%s", str(cJSON_GetObjectItemCaseSensitive(r.json, "run"), "run_token"));
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, token, NULL);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/events", run);
  r = call("GET", url, token, NULL);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", other);
  r = call("GET", url, token, NULL);
  EXPECT(r, 404, "not_found");
  reply_free(&r);
  r = call("GET", "/v1/runs", token, NULL);
  EXPECT(r, 403, "forbidden");
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", run);
  r = call("POST", url, token, NULL);
  EXPECT(r, 403, "forbidden");
  reply_free(&r);
  r = call("POST", "/v1/runs", token, "{\"task\":\"img\"}");
  EXPECT(r, 201, NULL);
  /* Leave the queue empty for the next test. */
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", str(r.json, "run_id"));
  reply_free(&r);
  r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s/cancel", other);
  r = call("POST", url, admin, NULL);
  EXPECT(r, 202, NULL);
  reply_free(&r);
  free(run);
  free(other);
  free(akey);
}

static void deadline_backstop(void) {
  reply r = call("POST", "/v1/tasks", admin,
                 "{\"slug\":\"short\",\"command\":[\"sleep\",\"1000\"],\"timeout\":5,"
                 "\"constraints\":{\"kind\":\"short\"}}");
  EXPECT(r, 201, NULL);
  reply_free(&r);
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{\"kind\":\"short\"}", 1, NULL), 201);
  char *run = create_run("short", NULL);
  char url[200], body[300];
  r = accept_offered(&a, run);
  EXPECT(r, 200, NULL);
  reply_free(&r);
  snprintf(url, sizeof url, "/v1/runs/%s", run);
  r = call("GET", url, admin, NULL);
  const char *deadline = str(r.json, "deadline_at");
  int64_t accepted_ms = 0, deadline_ms = 0;
  CHECK(deadline != NULL);
  hg_clock_parse(str(r.json, "accepted_at"), &accepted_ms);
  hg_clock_parse(deadline, &deadline_ms);
  /* accept + timeout_s + 60 s */
  CHECK_EQ_INT(deadline_ms - accepted_ms, 65000);
  reply_free(&r);
  /* The agent keeps heartbeating but goes quiet about the run's end: the hub fails it at the
   * deadline all the same. */
  char hb[200];
  snprintf(hb, sizeof hb, "/v1/agents/%s/heartbeat", a.id);
  snprintf(body, sizeof body, "{\"runs\":[{\"run_id\":\"%s\",\"status\":\"running\"}]}", run);
  for (int i = 0; i < 12; i++) {
    fake_now += 5000;
    r = call("POST", hb, a.token, body);
    EXPECT(r, 200, NULL);
    reply_free(&r);
    hg_hub_sweep(hub);
  }
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "accepted");
  reply_free(&r);
  fake_now += 5001;
  r = call("POST", hb, a.token, body);
  reply_free(&r);
  hg_hub_sweep(hub);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "failed");
  CHECK_EQ_STR(str(r.json, "error"), "timed out after 5 s");
  reply_free(&r);
  free(run);
  free(akey);
}

static void wake_ups_reach_the_right_agents(void) {
  reply r = call("POST", "/v1/tasks", admin,
                 "{\"slug\":\"zoned\",\"command\":[\"true\"],\"parameters\":[{\"slug\":\"z\","
                 "\"type\":\"string\"}],\"constraints\":{\"zone\":\"north\"}}");
  EXPECT(r, 201, NULL);
  reply_free(&r);
  char *akey = make_key("agent", NULL);
  agent north, south;
  CHECK_EQ_INT(register_agent(&north, akey, "{\"zone\":\"north\"}", 1, NULL), 201);
  CHECK_EQ_INT(register_agent(&south, akey, "{\"zone\":\"south\"}", 1, NULL), 201);
  char url[200];
  pending pn, ps;
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30", south.id);
  r = callp(&ps, "GET", url, south.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=30", north.id);
  r = callp(&pn, "GET", url, north.token, NULL);
  CHECK_EQ_INT(r.status, -1);
  /* A northern run goes to the northern poll; the southern one keeps waiting. */
  char *run = create_run("zoned", NULL);
  CHECK(pn.answered);
  CHECK(!ps.answered);
  CHECK_EQ_INT(hub->n_waiters, 1);
  if (pn.answered) {
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(pn.r.json, "assign");
    CHECK_EQ_INT(cJSON_GetArraySize(as), 1);
    reply_free(&pn.r);
  }
  /* A second northern run, with no northern poll open, stays queued and wakes no one. */
  char *run2 = create_run("zoned", NULL);
  CHECK(!ps.answered);
  snprintf(url, sizeof url, "/v1/runs/%s", run2);
  r = call("GET", url, admin, NULL);
  CHECK_EQ_STR(str(r.json, "status"), "queued");
  reply_free(&r);
  /* An unconstrained run can go anywhere: the southern poll takes it. */
  char *anywhere = create_run("img", NULL);
  CHECK(ps.answered);
  if (ps.answered) {
    const cJSON *as = cJSON_GetObjectItemCaseSensitive(ps.r.json, "assign");
    CHECK_EQ_INT(cJSON_GetArraySize(as), 1);
    CHECK_EQ_STR(as->child ? str(as->child, "run_id") : "", anywhere);
    reply_free(&ps.r);
  }
  const char *ids[] = {run, run2, anywhere};
  for (int i = 0; i < 3; i++) {
    snprintf(url, sizeof url, "/v1/runs/%s/cancel", ids[i]);
    r = call("POST", url, admin, NULL);
    reply_free(&r);
  }
  free(run);
  free(run2);
  free(anywhere);
  free(akey);
}

/* Assigned ids of a work answer, in order, into ids (at most max); returns how many. */
static int assigned(const reply *r, char ids[][40], int max) {
  int n = 0;
  const cJSON *as = cJSON_GetObjectItemCaseSensitive(r->json, "assign");
  for (const cJSON *a = as ? as->child : NULL; a && n < max; a = a->next)
    snprintf(ids[n++], 40, "%s", str(a, "run_id") ? str(a, "run_id") : "");
  return n;
}

/* A poll takes the oldest runs its labels allow, however far into a long queue they are, and
 * never more than it has room for: the queue is read a page at a time. */
static void long_queue_taken_in_order(void) {
  enum { ZONED = 140, FREE = 65 };
  char *akey = make_key("agent", NULL);
  agent north, south;
  CHECK_EQ_INT(register_agent(&north, akey, "{\"zone\":\"north\"}", 200, NULL), 201);
  CHECK_EQ_INT(register_agent(&south, akey, "{\"zone\":\"south\"}", 200, NULL), 201);
  char *zoned[ZONED], *anyw[3];
  for (int i = 0; i < ZONED; i++) zoned[i] = create_run("zoned", NULL);
  for (int i = 0; i < 3; i++) anyw[i] = create_run("img", NULL);
  static char got[200][40];
  char url[200];
  /* Behind more northern runs than a page holds: the southern agent finds the open ones. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0&free=2", south.id);
  reply r = call("GET", url, south.token, NULL);
  EXPECT(r, 200, NULL);
  int n = assigned(&r, got, 200);
  CHECK_EQ_INT(n, 2);
  if (n == 2) {
    CHECK_EQ_STR(got[0], anyw[0]);
    CHECK_EQ_STR(got[1], anyw[1]);
  }
  reply_free(&r);
  /* The northern agent takes exactly what it has room for, oldest first, page after page. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0&free=%d", north.id, FREE);
  for (int k = 0; k < 2; k++) {
    r = call("GET", url, north.token, NULL);
    EXPECT(r, 200, NULL);
    n = assigned(&r, got, 200);
    CHECK_EQ_INT(n, FREE);
    for (int i = 0; i < n && i < FREE; i++) CHECK_EQ_STR(got[i], zoned[k * FREE + i]);
    reply_free(&r);
  }
  /* The rest: the last northern ones, then the one open run left, and nothing more. */
  snprintf(url, sizeof url, "/v1/agents/%s/work?wait=0&free=%d", north.id, 100);
  r = call("GET", url, north.token, NULL);
  n = assigned(&r, got, 200);
  CHECK_EQ_INT(n, ZONED - 2 * FREE + 1);
  if (n == ZONED - 2 * FREE + 1) {
    CHECK_EQ_STR(got[0], zoned[2 * FREE]);
    CHECK_EQ_STR(got[n - 1], anyw[2]);
  }
  reply_free(&r);
  for (int i = 0; i < ZONED + 3; i++) {
    char *id = i < ZONED ? zoned[i] : anyw[i - ZONED];
    snprintf(url, sizeof url, "/v1/runs/%s/cancel", id);
    r = call("POST", url, admin, NULL);
    reply_free(&r);
    free(id);
  }
  free(akey);
}

static void metrics_text(void) {
  /* The server records each answered request; here, without it, one is recorded by hand. */
  hg_metrics_request(&hub->metrics, "create_run", 201, 0.003);
  reply r = call("GET", "/metrics", admin, NULL);
  EXPECT(r, 200, NULL);
  CHECK(r.text && strstr(r.text, "hangar_runs{status=\"succeeded\"}") != NULL);
  CHECK(r.text && strstr(r.text, "hangar_events_ingested_total") != NULL);
  /* A route's histogram: every bucket's bound, in order, then +Inf. */
  static const char *const le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                   "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                   "1",      "2.5",   "10",     "60",    "+Inf"};
  const char *at = r.text;
  for (size_t i = 0; i < sizeof le / sizeof le[0] && at; i++) {
    char line[160];
    snprintf(line, sizeof line,
             "\nhangar_http_request_duration_seconds_bucket{route=\"create_run\",le=\"%s\"} ",
             le[i]);
    at = strstr(at, line);
    CHECK(at != NULL);
  }
  reply_free(&r);
}

/* Each accept describes its own run's task revision, whichever revision or task the accept
 * before it described (the hub keeps the last one it used). */
static void accepts_follow_task_revisions(void) {
  char *akey = make_key("agent", NULL);
  agent a;
  CHECK_EQ_INT(register_agent(&a, akey, "{}", 8, NULL), 201);
  struct {
    const char *deploy, *task, *command, *env_a;
    int revision;
    double timeout;
  } steps[] = {
      {"{\"slug\":\"memo\",\"command\":[\"one\"],\"timeout\":100}", "memo", "one", NULL, 1, 100},
      {NULL, "memo", "one", NULL, 1, 100},
      {"{\"slug\":\"memo\",\"command\":[\"two\"],\"env\":{\"A\":\"x\"},\"parameters\":"
       "[{\"slug\":\"n\",\"type\":\"integer\",\"default\":3}]}",
       "memo", "two", "x", 2, 3600},
      {"{\"slug\":\"memo2\",\"name\":\"Memo two\",\"command\":[\"three\"]}", "memo2", "three",
       NULL, 1, 3600},
      {NULL, "memo", "two", "x", 2, 3600},
      {NULL, "memo", "two", "x", 2, 3600},
  };
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (steps[i].deploy) {
      reply d = call("POST", "/v1/tasks", admin, steps[i].deploy);
      CHECK_EQ_INT(d.status, 201);
      reply_free(&d);
    }
    char *run = create_run(steps[i].task, NULL);
    reply r = accept_offered(&a, run);
    CHECK_EQ_INT(r.status, 200);
    const cJSON *doc = cJSON_GetObjectItemCaseSensitive(r.json, "run");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(doc, "task");
    CHECK_EQ_STR(str(doc, "id"), run);
    CHECK_EQ_STR(str(task, "slug"), steps[i].task);
    CHECK_EQ_INT((int)num(task, "revision"), steps[i].revision);
    CHECK(num(task, "timeout_s") == steps[i].timeout);
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(task, "command");
    CHECK_EQ_INT(cJSON_GetArraySize(cmd), 1);
    CHECK_EQ_STR(cJSON_GetStringValue(cJSON_GetArrayItem(cmd, 0)), steps[i].command);
    CHECK(cJSON_HasObjectItem(task, "name") && cJSON_HasObjectItem(task, "image"));
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(task, "parameters");
    CHECK_EQ_INT(cJSON_GetArraySize(params), steps[i].revision == 2 ? 1 : 0);
    const cJSON *env = cJSON_GetObjectItemCaseSensitive(doc, "env");
    if (steps[i].env_a)
      CHECK_EQ_STR(str(env, "A"), steps[i].env_a);
    else
      CHECK_EQ_INT(cJSON_GetArraySize(env), 0);
    if (steps[i].revision == 2 && !strcmp(steps[i].task, "memo"))
      CHECK((int)num(cJSON_GetObjectItemCaseSensitive(doc, "params"), "n") == 3);
    reply_free(&r);
    free(run);
  }
  free(akey);
}

static void teardown(void) {
  hg_hub_close(hub);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (strstr(dir, "hubapi")) CHECK_EQ_INT(system(cmd), 0);
}

TEST_MAIN(T(setup), T(accepts_follow_task_revisions), T(auth_comes_first), T(keys_roles), T(task_validation_and_revisions),
          T(run_params), T(full_run_lifecycle), T(output_errors_recorded), T(event_batches),
          T(leases_lapse),
          T(long_polls_wake), T(parked_poll_takes_new_run_at_once),
          T(new_run_offered_before_commit), T(run_tokens_made_ahead),
          T(run_token_made_ahead_goes_with_its_run),
          T(queued_run_handed_out_before_commit), T(readers_not_woken_by_accept_or_start),
          T(secrets_are_sealed), T(run_tokens), T(deadline_backstop),
          T(wake_ups_reach_the_right_agents), T(long_queue_taken_in_order), T(metrics_text),
          T(teardown))
