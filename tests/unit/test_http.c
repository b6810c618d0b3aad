/* The HTTP client against real loopback servers: plain HTTP, TLS with a test CA, and mTLS. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/clock.h"
#include "core/http.h"

#ifndef HANGAR_SOURCE_DIR
#define HANGAR_SOURCE_DIR "."
#endif

/* ---- the servers: one python process, three listeners, started on first use ---- */

static struct {
  bool tried, ok;
  pid_t pid;
  int stdin_fd;
  char dir[1024];
  int http, https, mtls;
  char ca[1100], other_ca[1100], client_cert[1100], client_key[1100];
} srv = {.stdin_fd = -1};

static const char *source_dir(void) {
  const char *s = getenv("HANGAR_SOURCE_DIR");
  return s && *s ? s : HANGAR_SOURCE_DIR;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void stop_servers(void) {
  if (srv.pid > 0) {
    close(srv.stdin_fd); /* the server exits when its stdin closes... */
    kill(srv.pid, SIGTERM); /* ...and is told so directly too */
    waitpid(srv.pid, NULL, 0);
    srv.pid = 0;
  }
  if (srv.dir[0]) nftw(srv.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool make_pki(void) {
  const char *base = getenv("HANGAR_TEST_TMP");
  if (base && *base) mkdir(base, 0700);
  else base = getenv("TMPDIR") ? getenv("TMPDIR") : P_tmpdir;
  snprintf(srv.dir, sizeof srv.dir, "%s/http-XXXXXX", base);
  if (!mkdtemp(srv.dir)) {
    fprintf(stderr, "mkdtemp %s: %s\n", srv.dir, strerror(errno));
    srv.dir[0] = '\0';
    return false;
  }
  char script[1024];
  snprintf(script, sizeof script, "%s/tests/helpers/testca.sh", source_dir());
  pid_t pid = fork();
  if (pid == 0) {
    execlp("sh", "sh", script, srv.dir, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
      WEXITSTATUS(status) != 0) {
    fprintf(stderr, "%s failed\n", script);
    return false;
  }
  snprintf(srv.ca, sizeof srv.ca, "%s/ca.pem", srv.dir);
  snprintf(srv.other_ca, sizeof srv.other_ca, "%s/other-ca.pem", srv.dir);
  snprintf(srv.client_cert, sizeof srv.client_cert, "%s/client.pem", srv.dir);
  snprintf(srv.client_key, sizeof srv.client_key, "%s/client.key", srv.dir);
  return true;
}

static bool servers(void) {
  if (srv.tried) return srv.ok;
  srv.tried = true;
  atexit(stop_servers);
  if (!make_pki()) return false;
  char script[1024], cert[1100], key[1100];
  snprintf(script, sizeof script, "%s/tests/helpers/testhttpd.py", source_dir());
  snprintf(cert, sizeof cert, "%s/server.pem", srv.dir);
  snprintf(key, sizeof key, "%s/server.key", srv.dir);
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) return false;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
    dup2(in[0], 0);
    dup2(out[1], 1);
    execlp("python3", "python3", script, "--https", cert, key, "--mtls", cert, key, srv.ca,
           (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  if (pid < 0) {
    close(in[1]);
    close(out[0]);
    return false;
  }
  srv.pid = pid;
  srv.stdin_fd = in[1];
  char line[256] = "";
  size_t len = 0;
  while (len < sizeof line - 1 && !strchr(line, '\n')) {
    struct pollfd p = {.fd = out[0], .events = POLLIN};
    if (poll(&p, 1, 30000) <= 0) break;
    ssize_t n = read(out[0], line + len, sizeof line - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    line[len] = '\0';
  }
  close(out[0]);
  srv.ok = sscanf(line, "http=%d https=%d mtls=%d", &srv.http, &srv.https, &srv.mtls) == 3;
  if (!srv.ok) fprintf(stderr, "test server did not start: \"%s\"\n", line);
  return srv.ok;
}

/* ---- a loop, a client and a watchdog per test ---- */

typedef struct {
  hg_loop loop;
  hg_http *http;
  uv_timer_t watchdog;
  bool expired;
} env;

static int done_count; /* completions in the current test */

static bool env_open(env *e) {
  hg_err err;
  done_count = 0;
  if (!servers()) {
    CHECK(!"the loopback test servers are running");
    return false;
  }
  if (hg_loop_init(&e->loop, &err) != 0) return false;
  int rc = hg_http_new(&e->loop, &e->http, &err);
  CHECK_EQ_INT(rc, 0);
  uv_timer_init(&e->loop.uv, &e->watchdog);
  e->watchdog.data = e;
  return rc == 0;
}

static void env_close(env *e) {
  hg_http_free(e->http);
  uv_close((uv_handle_t *)&e->watchdog, NULL);
  hg_loop_close(&e->loop);
}

static void on_watchdog(uv_timer_t *t) { ((env *)t->data)->expired = true; }

/* Runs the loop until `want` requests completed; false when timeout_ms passed first. */
static bool run_until(env *e, int want, int timeout_ms) {
  e->expired = false;
  uv_timer_start(&e->watchdog, on_watchdog, (uint64_t)timeout_ms, 0);
  while (done_count < want && !e->expired) uv_run(&e->loop.uv, UV_RUN_ONCE);
  uv_timer_stop(&e->watchdog);
  return done_count >= want;
}

/* ---- what a request's callback saw ---- */

typedef struct {
  int calls;
  bool starting;           /* inside hg_http_start */
  bool called_while_starting;
  int rc;
  long status;
  char msg[1024];
  char *body;
  size_t body_len;
  hg_buf headers;          /* every response header, one per line */
  bool headers_null;
  hg_http **free_client;   /* when set, the callback frees this client */
  int others_done_at_free; /* done_count right after that free */
} result;

static void on_done(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                    void *data) {
  (void)req;
  result *r = data;
  r->calls++;
  done_count++;
  if (r->starting) r->called_while_starting = true;
  r->rc = rc;
  snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "(null)");
  r->status = res->status;
  if (!res->headers) r->headers_null = true; /* callers may always iterate them */
  free(r->body);
  r->body_len = res->body.len;
  r->body = hg_buf_steal(&res->body);
  hg_buf_reset(&r->headers);
  for (size_t i = 0; res->headers && res->headers[i]; i++)
    hg_buf_printf(&r->headers, "%s\n", res->headers[i]);
  if (r->free_client) {
    hg_http_free(*r->free_client);
    *r->free_client = NULL;
    r->others_done_at_free = done_count;
  }
}

static void result_free(result *r) {
  free(r->body);
  hg_buf_free(&r->headers);
  memset(r, 0, sizeof *r);
}

static int start(env *e, const hg_http_request *rq, result *r, hg_http_req **out) {
  hg_err err = {0};
  r->starting = true;
  int rc = hg_http_start(e->http, rq, on_done, r, out, &err);
  r->starting = false;
  if (rc) snprintf(r->msg, sizeof r->msg, "%s", err.msg);
  return rc;
}

/* One request, run to its end. */
static void fetch(env *e, const hg_http_request *rq, result *r) {
  result_free(r);
  int before = done_count;
  CHECK_EQ_INT(start(e, rq, r, NULL), 0);
  CHECK(run_until(e, before + 1, 20000));
  CHECK_EQ_INT(r->calls, 1);
  CHECK(!r->called_while_starting);
}

static const char *json_string(cJSON *doc, const char *a, const char *b) {
  cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, a);
  if (b) v = cJSON_GetObjectItemCaseSensitive(v, b);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_pattern(const char *p, size_t len, size_t offset) {
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)p[i] != (offset + i) % 251) return false;
  return true;
}

/* ---- requests and responses ---- */

static void methods_headers_and_bodies_reach_the_server(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo?x=1", srv.http);
  const char *headers[] = {"X-Token: abc123", "Accept: application/json", NULL};
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .headers = headers}, &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 200);
  cJSON *doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "method", NULL), "GET");
  CHECK_EQ_STR(json_string(doc, "query", NULL), "x=1");
  CHECK_EQ_STR(json_string(doc, "headers", "x-token"), "abc123");
  CHECK_EQ_STR(json_string(doc, "headers", "accept"), "application/json");
  CHECK(json_string(doc, "headers", "user-agent") &&
        !strncmp(json_string(doc, "headers", "user-agent"), "hangar/", 7));
  cJSON_Delete(doc);

  /* A POST body arrives intact; no 100-continue and no invented content type. */
  char big[3000];
  for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (char)('a' + i % 26);
  big[sizeof big - 1] = '\0';
  fetch(&e, &(hg_http_request){.method = "POST", .url = url, .body = big,
                               .body_len = strlen(big)}, &r);
  CHECK_EQ_INT(r.status, 200);
  doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "method", NULL), "POST");
  CHECK_EQ_STR(json_string(doc, "body", NULL), big);
  CHECK(json_string(doc, "headers", "expect") == NULL);
  CHECK(json_string(doc, "headers", "content-type") == NULL);
  cJSON_Delete(doc);

  /* The body is copied at start: the caller's buffer may change right after. */
  char payload[] = "{\"state\":\"original\"}";
  const char *json_hdr[] = {"Content-Type: application/json", NULL};
  int before = done_count;
  CHECK_EQ_INT(start(&e, &(hg_http_request){.method = "PUT", .url = url, .headers = json_hdr,
                                            .body = payload, .body_len = strlen(payload)},
                     &r, NULL),
               0);
  memset(payload, 'X', strlen(payload));
  CHECK(run_until(&e, before + 1, 20000));
  doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "method", NULL), "PUT");
  CHECK_EQ_STR(json_string(doc, "body", NULL), "{\"state\":\"original\"}");
  CHECK_EQ_STR(json_string(doc, "headers", "content-type"), "application/json");
  cJSON_Delete(doc);

  fetch(&e, &(hg_http_request){.method = "DELETE", .url = url}, &r);
  doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "method", NULL), "DELETE");
  cJSON_Delete(doc);

  fetch(&e, &(hg_http_request){.method = "HEAD", .url = url}, &r);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, 0);
  result_free(&r);
  env_close(&e);
}

static void status_codes_are_responses_not_failures(void) {
  env e;
  if (!env_open(&e)) return;
  const int codes[] = {201, 204, 301, 404, 500, 503};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    char url[256], want[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/status/%d", srv.http, codes[i]);
    result r = {0};
    fetch(&e, &(hg_http_request){.url = url}, &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.status, codes[i]);
    snprintf(want, sizeof want, "status %d\n", codes[i]);
    if (codes[i] != 204) CHECK_EQ_STR(r.body, want);
    else CHECK_EQ_INT(r.body_len, 0);
    snprintf(want, sizeof want, "x-status: %d\n", codes[i]);
    CHECK(r.headers.data && strstr(r.headers.data, want)); /* a 301 is not followed */
    result_free(&r);
  }
  env_close(&e);
}

static const char *header_seen;
static const char *missing_seen;
static char header_copy[256];

static void on_headers(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                       void *data) {
  header_seen = hg_http_header(res, "X-MIXED-CASE");
  snprintf(header_copy, sizeof header_copy, "%s", header_seen ? header_seen : "(none)");
  missing_seen = hg_http_header(res, "x-not-sent");
  on_done(req, rc, msg, res, data);
}

static void response_headers_are_lower_cased_and_trimmed(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/headers", srv.http);
  result r = {0};
  CHECK_EQ_INT(hg_http_start(e.http, &(hg_http_request){.url = url}, on_headers, &r, NULL,
                             NULL),
               0);
  CHECK(run_until(&e, 1, 20000));
  CHECK_EQ_STR(header_copy, "Hello World");
  CHECK(missing_seen == NULL);
  const char *h = r.headers.data ? r.headers.data : "";
  CHECK(strstr(h, "x-mixed-case: Hello World\n") != NULL);
  CHECK(strstr(h, "x-padded: spaced value\n") != NULL);
  CHECK(strstr(h, "set-cookie: a=1\n") != NULL);
  CHECK(strstr(h, "set-cookie: b=2\n") != NULL);
  CHECK(strstr(h, "content-length: 2\n") != NULL);
  CHECK(strncmp(h, "HTTP/", 5) != 0 && !strstr(h, "\nHTTP/")); /* the status line is not one */
  result_free(&r);
  env_close(&e);
}

static void fifty_concurrent_requests_complete(void) {
  env e;
  if (!env_open(&e)) return;
  enum { N = 50 };
  static result rs[N];
  for (int i = 0; i < N; i++) {
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo?i=%d", srv.http, i);
    CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .timeout_ms = 30000}, &rs[i], NULL),
                 0);
  }
  CHECK(run_until(&e, N, 60000));
  int good = 0;
  for (int i = 0; i < N; i++) {
    char want[32];
    snprintf(want, sizeof want, "i=%d", i);
    cJSON *doc = cJSON_Parse(rs[i].body ? rs[i].body : "");
    const char *q = json_string(doc, "query", NULL);
    if (rs[i].calls == 1 && rs[i].rc == 0 && rs[i].status == 200 && q && !strcmp(q, want) &&
        !rs[i].called_while_starting)
      good++;
    else
      fprintf(stderr, "request %d: calls=%d rc=%d status=%ld %s\n", i, rs[i].calls, rs[i].rc,
              rs[i].status, rs[i].msg);
    cJSON_Delete(doc);
    result_free(&rs[i]);
  }
  CHECK_EQ_INT(good, N);
  env_close(&e);
}

static long connections_seen(env *e) {
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/conns", srv.http);
  result r = {0};
  fetch(e, &(hg_http_request){.url = url}, &r);
  long n = r.body ? strtol(r.body, NULL, 10) : -1;
  result_free(&r);
  return n;
}

static void sequential_requests_reuse_one_connection(void) {
  env e;
  if (!env_open(&e)) return;
  long before = connections_seen(&e); /* this request opens the client's connection */
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv.http);
  for (int i = 0; i < 5; i++) {
    result r = {0};
    fetch(&e, &(hg_http_request){.method = i % 2 ? "POST" : "GET", .url = url, .body = "x",
                                 .body_len = 1},
          &r);
    CHECK_EQ_INT(r.status, 200);
    result_free(&r);
  }
  long after = connections_seen(&e);
  CHECK(before > 0);
  CHECK_EQ_INT(after, before); /* the server accepted no new connection */
  env_close(&e);
}

/* A burst of requests at once opens a connection each; the next burst finds them all kept.
 * libcurl's default cache keeps 4 per request in flight at the moment one comes back, so as a
 * burst drains its last connections were closed, and an agent whose runs come in bursts
 * reconnected to its hub for one request in four. */
static void a_burst_finds_the_connections_of_the_last_one(void) {
  env e;
  if (!env_open(&e)) return;
  enum { N = 16 };
  static result rs[N];
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stall?ms=300", srv.http);
  long seen[3];
  for (int round = 0; round < 2; round++) {
    seen[round] = connections_seen(&e);
    int before = done_count;
    for (int i = 0; i < N; i++)
      CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .timeout_ms = 30000}, &rs[i], NULL),
                   0);
    CHECK(run_until(&e, before + N, 30000));
    for (int i = 0; i < N; i++) {
      CHECK_EQ_INT(rs[i].status, 200);
      result_free(&rs[i]);
    }
  }
  seen[2] = connections_seen(&e);
  CHECK(seen[1] - seen[0] >= N - 1); /* the first burst needed a connection per request */
  CHECK_EQ_INT(seen[2] - seen[1], 0); /* the second found them all */
  env_close(&e);
}

/* Connections the client closes after each answer: every request opens another, most often
 * with the descriptor number of the one before, whose stopped poll handle the client keeps and
 * serves the new socket with. Each must be watched as if its handle were new. */
static void requests_after_closed_connections_complete(void) {
  env e;
  if (!env_open(&e)) return;
  static const char *const closing[] = {"Connection: close", NULL};
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv.http);
  long before = connections_seen(&e);
  for (int i = 0; i < 6; i++) {
    result r = {0};
    fetch(&e, &(hg_http_request){.method = "POST", .url = url, .headers = closing, .body = "abc",
                                 .body_len = 3},
          &r);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"body\": \"abc\"")); /* the echo of what was sent */
    result_free(&r);
  }
  long after = connections_seen(&e);
  CHECK(after - before >= 5); /* the server saw a new connection for (nearly) each */
  env_close(&e);
}

static void environment_proxies_are_ignored(void) {
  env e;
  if (!env_open(&e)) return;
  /* Nothing listens on port 1: a client that used these would fail. */
  setenv("http_proxy", "http://127.0.0.1:1", 1);
  setenv("HTTPS_PROXY", "http://127.0.0.1:1", 1);
  setenv("ALL_PROXY", "http://127.0.0.1:1", 1);
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url}, &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 200);
  unsetenv("http_proxy");
  unsetenv("HTTPS_PROXY");
  unsetenv("ALL_PROXY");
  result_free(&r);
  env_close(&e);
}

static void a_configured_proxy_is_used(void) {
  env e;
  if (!env_open(&e)) return;
  /* The test server answers absolute-form requests, as a forward proxy would. */
  char proxy[128], url[] = "http://127.0.0.1:1/echo";
  snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .proxy = proxy}, &r);
  CHECK_EQ_INT(r.status, 200);
  cJSON *doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "target", NULL), url);
  cJSON_Delete(doc);

  /* A dead proxy is named as such, without the credentials in its URL. */
  fetch(&e, &(hg_http_request){.url = url, .proxy = "http://agent:pw@127.0.0.1:1"}, &r);
  CHECK_EQ_INT(r.rc, HG_EIO);
  CHECK_EQ_STR(r.msg, "connecting to proxy 127.0.0.1:1 for 127.0.0.1:1: Connection refused");
  result_free(&r);
  env_close(&e);
}

/* ---- failures ---- */

static void a_stalled_request_times_out(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256], want[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stall?ms=20000", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .timeout_ms = 300}, &r);
  CHECK_EQ_INT(r.rc, HG_ETIMEDOUT);
  CHECK_EQ_INT(r.status, 0);
  /* "request to" once connected, "connecting to" on a box too loaded to connect in time */
  snprintf(want, sizeof want, "127.0.0.1:%d", srv.http);
  CHECK(strstr(r.msg, want) != NULL);
  CHECK(strstr(r.msg, "timed out after 300 ms") != NULL);
  CHECK(!strstr(r.msg, "stall"));
  result_free(&r);
  env_close(&e);
}

static void a_refused_connection_names_the_host(void) {
  env e;
  if (!env_open(&e)) return;
  /* A bound socket that does not listen: connections are refused, and the port cannot be
   * taken by anyone else meanwhile. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  int port = ntohs(a.sin_port);
  char url[256], want[128];
  snprintf(url, sizeof url, "http://user:secret@127.0.0.1:%d/private?token=hunter2", port);
  const char *headers[] = {"Authorization: Bearer very-secret", NULL};
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .headers = headers, .body = "body-secret",
                               .body_len = 11},
        &r);
  CHECK_EQ_INT(r.rc, HG_EIO);
  snprintf(want, sizeof want, "connecting to 127.0.0.1:%d: Connection refused", port);
  CHECK_EQ_STR(r.msg, want);
  CHECK(!strstr(r.msg, "secret") && !strstr(r.msg, "hunter2"));
  CHECK(!r.headers_null);
  close(fd);
  result_free(&r);
  env_close(&e);
}

/* Reads what arrived on fd within timeout_ms, running the loop meanwhile when loop is set. */
static void read_arrived(int fd, uv_loop_t *loop, char *out, size_t cap, int timeout_ms) {
  out[0] = '\0';
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (loop) uv_run(loop, UV_RUN_NOWAIT);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10) == 1) {
      ssize_t n = recv(fd, out, cap - 1, 0);
      out[n > 0 ? n : 0] = '\0';
      return;
    }
  }
}

/* A request on a kept-alive connection leaves when it is started, not on the loop's next
 * pass: whatever the loop would run first (other tasks, other requests' set-up) does not
 * delay it. */
static void a_request_is_on_the_wire_when_start_returns(void) {
  env e;
  if (!env_open(&e)) return;
  int lfd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  CHECK_EQ_INT(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(listen(lfd, 4), 0);
  CHECK_EQ_INT(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
  char url[128], got[512];
  const char *answer = "HTTP/1.1 204 No Content\r\n\r\n";
  snprintf(url, sizeof url, "http://127.0.0.1:%d/first", ntohs(a.sin_port));
  result r1 = {0}, r2 = {0};
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .timeout_ms = 10000}, &r1, NULL), 0);
  int c = -1;
  for (int i = 0; i < 500 && c < 0; i++) {
    uv_run(&e.loop.uv, UV_RUN_NOWAIT);
    struct pollfd p = {.fd = lfd, .events = POLLIN};
    if (poll(&p, 1, 10) == 1) c = accept(lfd, NULL, NULL);
  }
  CHECK(c >= 0);
  if (c >= 0) {
    read_arrived(c, &e.loop.uv, got, sizeof got, 5000);
    CHECK(strncmp(got, "GET /first HTTP/1.1\r\n", 21) == 0);
    CHECK_EQ_INT(send(c, answer, strlen(answer), 0), (int)strlen(answer));
    CHECK(run_until(&e, 1, 10000));
    CHECK_EQ_INT(r1.status, 204);
    /* The loop does not run now: yet the request is in the connection. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/second", ntohs(a.sin_port));
    CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .timeout_ms = 10000}, &r2, NULL), 0);
    read_arrived(c, NULL, got, sizeof got, 2000);
    CHECK(strncmp(got, "GET /second HTTP/1.1\r\n", 22) == 0);
    CHECK_EQ_INT(r2.calls, 0);
    CHECK_EQ_INT(send(c, answer, strlen(answer), 0), (int)strlen(answer));
    CHECK(run_until(&e, 2, 10000));
    CHECK_EQ_INT(r2.status, 204);
    CHECK(!r2.called_while_starting);
    close(c);
  }
  close(lfd);
  result_free(&r1);
  result_free(&r2);
  env_close(&e);
}

static void bad_requests_fail_at_start_without_a_callback(void) {
  env e;
  if (!env_open(&e)) return;
  char ok_url[256], missing[1200];
  snprintf(ok_url, sizeof ok_url, "http://127.0.0.1:%d/echo", srv.http);
  snprintf(missing, sizeof missing, "%s/no-such-ca.pem", srv.dir);
  const char *injected[] = {"X-Token: secret-value\r\nX-Evil: 1", NULL};
  const char *nameless[] = {"no colon here", NULL};
  struct {
    hg_http_request rq;
    int rc;
    const char *says;
  } cases[] = {
      {{.url = "ftp://127.0.0.1/file"}, HG_EINVAL, "scheme ftp"},
      {{.url = "http://exa mple.com/"}, HG_EINVAL, "invalid URL"},
      {{.url = NULL}, HG_EINVAL, "no URL"},
      {{.url = ok_url, .method = "GE T"}, HG_EINVAL, "method"},
      {{.url = ok_url, .headers = injected}, HG_EINVAL, "header 1"},
      {{.url = ok_url, .headers = nameless}, HG_EINVAL, "header 1"},
      {{.url = ok_url, .tls.ca_file = missing}, HG_EINVAL, "no-such-ca.pem"},
      {{.url = ok_url, .body_len = 4}, HG_EINVAL, "body"},
  };
  result r = {0};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hg_http_req *req = (hg_http_req *)&r; /* must stay untouched on failure */
    int rc = start(&e, &cases[i].rq, &r, &req);
    CHECK_EQ_INT(rc, cases[i].rc);
    CHECK(strstr(r.msg, cases[i].says) != NULL);
    CHECK(!strstr(r.msg, "secret-value"));
    CHECK(req == (hg_http_req *)&r);
  }
  CHECK(!run_until(&e, 1, 200));
  CHECK_EQ_INT(r.calls, 0);
  result_free(&r);
  env_close(&e);
}

/* The client keeps finished requests' curl handles and the last URL's origin for the next
 * requests: nothing of one request may reach the next, and another origin is its own. */
static void a_request_takes_nothing_from_the_one_before(void) {
  env e;
  if (!env_open(&e)) return;
  char echo[256], bytes[256], spaced[256], other[256];
  snprintf(echo, sizeof echo, "http://127.0.0.1:%d/echo", srv.http);
  snprintf(bytes, sizeof bytes, "http://127.0.0.1:%d/bytes?n=5000", srv.http);
  snprintf(spaced, sizeof spaced, "http://127.0.0.1:%d/echo?a b", srv.http);
  const char *headers[] = {"X-Token: abc123", "Content-Type: application/json", NULL};
  result r = {0};
  fetch(&e, &(hg_http_request){.method = "PUT", .url = echo, .headers = headers,
                               .body = "{\"a\":1}", .body_len = 7},
        &r);
  CHECK_EQ_INT(r.status, 200);
  /* One that ends badly, in the middle of its body. */
  fetch(&e, &(hg_http_request){.url = bytes, .max_body = 100}, &r);
  CHECK_EQ_INT(r.rc, HG_ETOOBIG);
  fetch(&e, &(hg_http_request){.url = echo}, &r);
  CHECK_EQ_INT(r.status, 200);
  cJSON *doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "method", NULL), "GET");
  CHECK(json_string(doc, "headers", "x-token") == NULL);
  CHECK(json_string(doc, "headers", "content-type") == NULL);
  CHECK(json_string(doc, "headers", "content-length") == NULL);
  cJSON_Delete(doc);
  /* A space is refused at the start on a known origin as on a new one. */
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = spaced}, &r, NULL), HG_EINVAL);
  CHECK(strstr(r.msg, "invalid URL") != NULL);
  /* Another port is another origin: its failure names it. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t alen = sizeof a;
  CHECK_EQ_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_EQ_INT(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
  snprintf(other, sizeof other, "http://127.0.0.1:%d/echo", ntohs(a.sin_port));
  fetch(&e, &(hg_http_request){.url = other}, &r);
  char want[128];
  snprintf(want, sizeof want, "connecting to 127.0.0.1:%d: Connection refused", ntohs(a.sin_port));
  CHECK_EQ_STR(r.msg, want);
  close(fd);
  /* And the first origin still works after it. */
  fetch(&e, &(hg_http_request){.url = echo}, &r);
  CHECK_EQ_INT(r.status, 200);
  result_free(&r);
  env_close(&e);
}

static void over_max_body_fails_with_etoobig(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=100000", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .max_body = 1000}, &r);
  CHECK_EQ_INT(r.rc, HG_ETOOBIG);
  CHECK(strstr(r.msg, "1000-byte limit") != NULL);
  CHECK(r.body_len <= 1000);
  result_free(&r);

  snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=1000", srv.http);
  fetch(&e, &(hg_http_request){.url = url, .max_body = 1000}, &r); /* exactly at the cap */
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.body_len, 1000);
  result_free(&r);
  env_close(&e);
}

static void ten_megabyte_bodies_both_ways(void) {
  env e;
  if (!env_open(&e)) return;
  const size_t n = 10u << 20;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=%zu", srv.http, n);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .timeout_ms = 60000}, &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.body_len, n);
  CHECK(r.body && is_pattern(r.body, r.body_len, 0));
  result_free(&r);

  char *up = malloc(n);
  for (size_t i = 0; i < n; i++) up[i] = (char)(i * 7 + (i >> 12));
  unsigned char md[32];
  char hex[65];
  EVP_Digest(up, n, md, NULL, EVP_sha256(), NULL);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/sha256", srv.http);
  fetch(&e, &(hg_http_request){.method = "POST", .url = url, .body = up, .body_len = n,
                               .timeout_ms = 60000},
        &r);
  free(up);
  CHECK_EQ_INT(r.status, 200);
  cJSON *doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "sha256", NULL), hex);
  cJSON *len = cJSON_GetObjectItemCaseSensitive(doc, "len");
  CHECK(cJSON_IsNumber(len) && (size_t)len->valuedouble == n);
  cJSON_Delete(doc);
  result_free(&r);
  env_close(&e);
}

/* ---- cancellation and shutdown ---- */

typedef struct {
  hg_http_req *req;
  result *r;
  int calls_inside_cancel;
} canceller;

static void cancel_now(uv_timer_t *t) {
  canceller *c = t->data;
  hg_http_cancel(c->req);
  hg_http_cancel(c->req); /* twice: still one callback */
  c->calls_inside_cancel = c->r->calls;
}

static void cancel_ends_a_request_once(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stall?ms=10000", srv.http);
  result r = {0};
  hg_http_req *req = NULL;
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url}, &r, &req), 0);
  canceller c = {req, &r, -1};
  uv_timer_t t;
  uv_timer_init(&e.loop.uv, &t);
  t.data = &c;
  uv_timer_start(&t, cancel_now, 200, 0); /* in flight: connected and waiting */
  CHECK(run_until(&e, 1, 20000));
  CHECK_EQ_INT(c.calls_inside_cancel, 0); /* the callback came later, from the loop */
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.rc, HG_ECANCELED);
  CHECK(strstr(r.msg, "cancelled") != NULL);
  CHECK(!run_until(&e, 2, 200)); /* and never again */
  CHECK_EQ_INT(r.calls, 1);
  uv_close((uv_handle_t *)&t, NULL);

  /* Cancelled before the loop ever ran it. */
  result r2 = {0};
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url}, &r2, &req), 0);
  hg_http_cancel(req);
  CHECK_EQ_INT(r2.calls, 0);
  CHECK(run_until(&e, 2, 20000));
  CHECK_EQ_INT(r2.calls, 1);
  CHECK_EQ_INT(r2.rc, HG_ECANCELED);

  /* The client still works afterwards. */
  result r3 = {0};
  snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv.http);
  fetch(&e, &(hg_http_request){.url = url}, &r3);
  CHECK_EQ_INT(r3.status, 200);
  result_free(&r);
  result_free(&r2);
  result_free(&r3);
  env_close(&e);
}

static void free_cancels_what_is_in_flight(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stall?ms=10000", srv.http);
  result rs[3] = {{0}};
  for (int i = 0; i < 3; i++)
    CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url}, &rs[i], NULL), 0);
  CHECK(!run_until(&e, 1, 200)); /* they are connected and waiting */
  hg_http_free(e.http);
  e.http = NULL;
  for (int i = 0; i < 3; i++) { /* before hg_http_free returned */
    CHECK_EQ_INT(rs[i].calls, 1);
    CHECK_EQ_INT(rs[i].rc, HG_ECANCELED);
    result_free(&rs[i]);
  }
  env_close(&e); /* the loop closes cleanly: no handle left behind */
}

static void a_callback_may_free_the_client(void) {
  env e;
  if (!env_open(&e)) return;
  char stall[256], quick[256];
  snprintf(stall, sizeof stall, "http://127.0.0.1:%d/stall?ms=10000", srv.http);
  snprintf(quick, sizeof quick, "http://127.0.0.1:%d/echo", srv.http);
  result slow = {0}, fast = {0};
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = stall}, &slow, NULL), 0);
  fast.free_client = &e.http;
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = quick}, &fast, NULL), 0);
  CHECK(run_until(&e, 2, 20000));
  CHECK_EQ_INT(fast.rc, 0);
  CHECK_EQ_INT(fast.others_done_at_free, 2); /* the stalled one ended inside the free */
  CHECK_EQ_INT(slow.calls, 1);
  CHECK_EQ_INT(slow.rc, HG_ECANCELED);
  CHECK(e.http == NULL);
  result_free(&slow);
  result_free(&fast);
  env_close(&e);
}

/* ---- streaming into a sink ---- */

typedef struct {
  hg_sink sink;            /* first, so the sink is the struct */
  hg_buf got;
  int writes, eofs, pauses, writes_while_paused;
  bool pause_each_write, paused;
  size_t eof_at_len;
  bool bad_ts;
  int64_t t0;
  result *main;            /* the streaming request's result */
  int main_calls_at_eof;
  hg_http **free_client;   /* when set, the first write frees this client */
  uv_timer_t resume_timer;
  /* gated streaming: ask for the next chunk once a whole one arrived */
  env *e;
  int chunk_size, chunks, released;
  const char *gate_id;
  result releases[64];
} test_sink;

static void on_resume_timer(uv_timer_t *t) {
  test_sink *s = t->data;
  s->paused = false;
  hg_sink_resume(&s->sink);
}

static int sink_write(hg_sink *sink, const char *bytes, size_t len, int64_t ts) {
  test_sink *s = (test_sink *)sink;
  s->writes++;
  if (s->paused) s->writes_while_paused++;
  if (ts < s->t0 - 60000 || ts > hg_clock_now_ms() + 60000) s->bad_ts = true;
  hg_buf_append(&s->got, bytes, len);
  if (s->free_client && *s->free_client) {
    hg_http_free(*s->free_client); /* from inside the transfer's own write */
    *s->free_client = NULL;
    return 0;
  }
  while (s->e && s->released < s->chunks - 1 &&
         s->got.len >= (size_t)(s->released + 1) * (size_t)s->chunk_size) {
    /* Started from inside the transfer's own callback: the client must defer it. */
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/release?id=%s", srv.http, s->gate_id);
    CHECK_EQ_INT(start(s->e, &(hg_http_request){.url = url}, &s->releases[s->released], NULL),
                 0);
    s->released++;
  }
  if (s->pause_each_write) {
    s->paused = true;
    s->pauses++;
    uv_timer_start(&s->resume_timer, on_resume_timer, 2, 0);
    return HG_SINK_PAUSE;
  }
  return 0;
}

static void sink_eof(hg_sink *sink, int64_t ts) {
  test_sink *s = (test_sink *)sink;
  (void)ts;
  s->eofs++;
  s->eof_at_len = s->got.len;
  s->main_calls_at_eof = s->main ? s->main->calls : -1;
}

static const hg_sink_ops test_sink_ops = {sink_write, sink_eof};

static void sink_init(test_sink *s, env *e) {
  memset(s, 0, sizeof *s);
  s->sink.ops = &test_sink_ops;
  s->t0 = hg_clock_now_ms();
  uv_timer_init(&e->loop.uv, &s->resume_timer);
  s->resume_timer.data = s;
}

static void sink_close(test_sink *s) {
  uv_close((uv_handle_t *)&s->resume_timer, NULL);
  uv_run(s->resume_timer.loop, UV_RUN_NOWAIT); /* the handle is gone before s is reused */
  hg_buf_free(&s->got);
  for (int i = 0; i < 64; i++) result_free(&s->releases[i]);
}

static void streamed_bytes_arrive_before_the_response_ends(void) {
  env e;
  if (!env_open(&e)) return;
  test_sink s;
  sink_init(&s, &e);
  /* The server sends chunk i only after the client asked for it from inside the sink, so
   * this completes only if each chunk reached the sink while the response was still open. */
  char id[32], url[256];
  snprintf(id, sizeof id, "g%d", (int)getpid());
  s.e = &e;
  s.gate_id = id;
  s.chunks = 8;
  s.chunk_size = 3000;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/gated?id=%s&chunks=8&size=3000", srv.http,
           id);
  result r = {0};
  s.main = &r;
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .sink = &s.sink}, &r, NULL), 0);
  CHECK(run_until(&e, 1 + 7, 30000));
  CHECK_EQ_INT(s.main_calls_at_eof, 0); /* eof came before the callback */
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 200);
  CHECK_EQ_INT(r.body_len, 0); /* it went to the sink */
  CHECK_EQ_INT(s.got.len, 8 * 3000);
  CHECK(s.got.data && is_pattern(s.got.data, s.got.len, 0));
  CHECK_EQ_INT(s.released, 7);
  CHECK(s.writes >= 8);
  CHECK_EQ_INT(s.eofs, 1);
  CHECK_EQ_INT(s.eof_at_len, 8 * 3000);
  CHECK(!s.bad_ts);
  for (int i = 0; i < 7; i++) CHECK_EQ_INT(s.releases[i].status, 200);
  result_free(&r);
  sink_close(&s);
  env_close(&e);
}

static void a_pausing_sink_gets_every_byte_exactly_once(void) {
  env e;
  if (!env_open(&e)) return;
  const char *paths[] = {"chunked?chunks=64&size=16384", "bytes?n=1048576"};
  for (int p = 0; p < 2; p++) {
    test_sink s;
    sink_init(&s, &e);
    s.pause_each_write = true;
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/%s", srv.http, paths[p]);
    result r = {0};
    int before = done_count;
    CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .sink = &s.sink}, &r, NULL), 0);
    CHECK(run_until(&e, before + 1, 60000));
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(s.writes_while_paused, 0); /* a pause is honoured */
    CHECK(s.pauses > 1);
    CHECK_EQ_INT(s.pauses, s.writes);
    CHECK_EQ_INT(s.got.len, 1048576); /* nothing lost, nothing repeated */
    CHECK(s.got.data && is_pattern(s.got.data, s.got.len, 0));
    CHECK_EQ_INT(s.eofs, 1);
    CHECK_EQ_INT(s.eof_at_len, 1048576);
    result_free(&r);
    sink_close(&s);
  }
  env_close(&e);
}

static void an_error_body_is_buffered_not_streamed(void) {
  env e;
  if (!env_open(&e)) return;
  test_sink s;
  sink_init(&s, &e);
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/status/404", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .sink = &s.sink}, &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 404);
  CHECK_EQ_STR(r.body, "status 404\n");
  CHECK_EQ_INT(s.writes, 0);
  CHECK_EQ_INT(s.eofs, 0);
  result_free(&r);
  sink_close(&s);
  env_close(&e);
}

static void a_sink_may_free_the_client(void) {
  env e;
  if (!env_open(&e)) return;
  test_sink s;
  sink_init(&s, &e);
  s.free_client = &e.http;
  char url[256], stall[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/chunked?chunks=20&size=1000&delay_ms=5",
           srv.http);
  snprintf(stall, sizeof stall, "http://127.0.0.1:%d/stall?ms=10000", srv.http);
  result r = {0}, other = {0};
  s.main = &r;
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = stall}, &other, NULL), 0);
  CHECK_EQ_INT(start(&e, &(hg_http_request){.url = url, .sink = &s.sink}, &r, NULL), 0);
  CHECK(run_until(&e, 2, 20000));
  CHECK(e.http == NULL);
  CHECK_EQ_INT(r.calls, 1);
  CHECK_EQ_INT(r.rc, HG_ECANCELED);
  CHECK_EQ_INT(other.calls, 1);
  CHECK_EQ_INT(other.rc, HG_ECANCELED);
  CHECK_EQ_INT(s.writes, 1); /* nothing more after the free */
  CHECK_EQ_INT(s.eofs, 1);
  CHECK(!run_until(&e, 3, 100));
  result_free(&r);
  result_free(&other);
  sink_close(&s);
  env_close(&e);
}

static int failing_write(hg_sink *sink, const char *bytes, size_t len, int64_t ts) {
  (void)sink, (void)bytes, (void)len, (void)ts;
  return HG_EIO;
}

static void a_failing_sink_ends_the_request(void) {
  env e;
  if (!env_open(&e)) return;
  static const hg_sink_ops ops = {failing_write, NULL};
  hg_sink sink = {.ops = &ops};
  char url[256];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/bytes?n=100000", srv.http);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .sink = &sink}, &r);
  CHECK_EQ_INT(r.rc, HG_EIO);
  CHECK(strstr(r.msg, "sink") != NULL);
  result_free(&r);
  env_close(&e);
}

/* ---- TLS ---- */

static void tls_trusts_exactly_the_configured_ca(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/echo", srv.https);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .tls.ca_file = srv.ca}, &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 200);
  result_free(&r);

  snprintf(url, sizeof url, "https://localhost:%d/echo", srv.https);
  fetch(&e, &(hg_http_request){.url = url, .tls.ca_file = srv.ca}, &r);
  if (r.rc == 0) CHECK_EQ_INT(r.status, 200); /* localhost may resolve to ::1 only */
  result_free(&r);

  snprintf(url, sizeof url, "https://127.0.0.1:%d/echo", srv.https);
  fetch(&e, &(hg_http_request){.url = url, .tls.ca_file = srv.other_ca}, &r);
  CHECK_EQ_INT(r.rc, HG_EIO);
  CHECK_EQ_INT(r.status, 0);
  CHECK(strstr(r.msg, "certificate verify failed") != NULL);
  CHECK(strstr(r.msg, "127.0.0.1") != NULL);
  result_free(&r);

  fetch(&e, &(hg_http_request){.url = url}, &r); /* system CAs only */
  CHECK_EQ_INT(r.rc, HG_EIO);
  CHECK(strstr(r.msg, "certificate verify failed") != NULL);
  result_free(&r);
  env_close(&e);
}

static void mtls_needs_the_client_certificate(void) {
  env e;
  if (!env_open(&e)) return;
  char url[256];
  snprintf(url, sizeof url, "https://127.0.0.1:%d/whoami", srv.mtls);
  result r = {0};
  fetch(&e, &(hg_http_request){.url = url, .tls.ca_file = srv.ca}, &r);
  CHECK_EQ_INT(r.rc, HG_EIO);
  CHECK_EQ_INT(r.status, 0);
  CHECK(strstr(r.msg, "127.0.0.1") != NULL);
  CHECK(strstr(r.msg, "certificate") != NULL);
  result_free(&r);

  fetch(&e, &(hg_http_request){.url = url,
                               .tls = {.ca_file = srv.ca, .cert_file = srv.client_cert,
                                       .key_file = srv.client_key}},
        &r);
  CHECK_EQ_INT(r.rc, 0);
  CHECK_EQ_INT(r.status, 200);
  cJSON *doc = cJSON_Parse(r.body ? r.body : "");
  CHECK_EQ_STR(json_string(doc, "cn", NULL), "hangar-test-client");
  cJSON_Delete(doc);
  result_free(&r);
  env_close(&e);
}

TEST_MAIN(T(methods_headers_and_bodies_reach_the_server),
          T(status_codes_are_responses_not_failures),
          T(response_headers_are_lower_cased_and_trimmed),
          T(fifty_concurrent_requests_complete), T(sequential_requests_reuse_one_connection),
          T(a_burst_finds_the_connections_of_the_last_one),
          T(requests_after_closed_connections_complete),
          T(environment_proxies_are_ignored), T(a_configured_proxy_is_used), T(a_stalled_request_times_out),
          T(a_refused_connection_names_the_host), T(a_request_is_on_the_wire_when_start_returns),
          T(bad_requests_fail_at_start_without_a_callback),
          T(a_request_takes_nothing_from_the_one_before), T(over_max_body_fails_with_etoobig),
          T(ten_megabyte_bodies_both_ways), T(cancel_ends_a_request_once),
          T(free_cancels_what_is_in_flight), T(a_callback_may_free_the_client),
          T(streamed_bytes_arrive_before_the_response_ends),
          T(a_pausing_sink_gets_every_byte_exactly_once),
          T(an_error_body_is_buffered_not_streamed), T(a_sink_may_free_the_client), T(a_failing_sink_ends_the_request),
          T(tls_trusts_exactly_the_configured_ca), T(mtls_needs_the_client_certificate))
