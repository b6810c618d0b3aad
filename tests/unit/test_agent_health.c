/* The agent's health listener over real loopback HTTP: /healthz, /metrics in Prometheus text,
 * errors for other paths and methods, the loopback-only rule, shutting down with a connection
 * still open. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/health.h"
#include "check.h"
#include "core/http.h"

typedef struct fetch {
  int done;
  int rc;
  long status;
  char body[8192];
  char type[128];
  char allow[64];
} fetch;

static void on_done(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                    void *data) {
  (void)req, (void)msg;
  fetch *f = data;
  f->done = 1;
  f->rc = rc;
  f->status = res->status;
  snprintf(f->body, sizeof f->body, "%s", res->body.data ? res->body.data : "");
  const char *t = hg_http_header(res, "content-type");
  snprintf(f->type, sizeof f->type, "%s", t ? t : "");
  const char *a = hg_http_header(res, "allow");
  snprintf(f->allow, sizeof f->allow, "%s", a ? a : "");
}

/* One request to the listener, on the loop both share. */
static fetch get(hg_loop *loop, hg_http *http, hg_health *h, const char *method, const char *path) {
  fetch f = {0};
  char url[256];
  snprintf(url, sizeof url, "%s%s", hg_health_url(h), path);
  hg_http_request r = {.method = method, .url = url, .timeout_ms = 5000};
  hg_err err = {0};
  if (hg_http_start(http, &r, on_done, &f, NULL, &err)) {
    fprintf(stderr, "request: %s\n", err.msg);
    f.rc = -1;
    return f;
  }
  while (!f.done) uv_run(&loop->uv, UV_RUN_ONCE);
  return f;
}

typedef struct agent_state {
  int healthy;
  int scrapes;
} agent_state;

static int check(char *why, size_t size, void *data) {
  agent_state *st = data;
  if (st->healthy) return 0;
  snprintf(why, size, "no session with the hub for 120 s");
  return 1;
}

static void metrics(hg_health_scrape *s, void *data) {
  agent_state *st = data;
  st->scrapes++;
  hg_health_gauge(s, "runs{state=\"running\"}", 2);
  hg_health_gauge(s, "runs{state=\"finishing\"}", 1);
  hg_health_gauge(s, "events_unacknowledged", 1234);
  hg_health_counter(s, "reconnects_total", 3);
  hg_health_gauge(s, "spool bytes", 0.5);            /* a name with a space: made valid */
  hg_health_gauge(s, "bad{state=\"x\nmore\"}", 1);   /* a newline in a label: dropped */
  hg_health_gauge(s, "bad2{state=unquoted}", 1);     /* malformed: dropped */
  hg_health_gauge(s, "hangar_uploader_requests_total", 7);
}

typedef struct env {
  hg_loop loop;
  hg_http *http;
  hg_health *h;
  agent_state st;
} env;

static int setup(env *e, const char *listen) {
  hg_err err = {0};
  memset(e, 0, sizeof *e);
  e->st.healthy = 1;
  if (hg_loop_init(&e->loop, &err) || hg_http_new(&e->loop, &e->http, &err)) {
    fprintf(stderr, "setup: %s\n", err.msg);
    return -1;
  }
  hg_health_opts o = {.listen = listen, .metrics = metrics, .check = check, .data = &e->st};
  if (hg_health_start(&e->loop, &o, &e->h, &err)) {
    fprintf(stderr, "start: %s\n", err.msg);
    return -1;
  }
  return 0;
}

static void teardown(env *e) {
  hg_http_free(e->http);
  hg_health_free(e->h);
  hg_loop_close(&e->loop);
}

static void test_healthz(void) {
  env e;
  CHECK(setup(&e, "127.0.0.1:0") == 0);
  CHECK(strncmp(hg_health_url(e.h), "http://127.0.0.1:", 17) == 0);
  fetch f = get(&e.loop, e.http, e.h, "GET", "/healthz");
  CHECK_EQ_INT(f.rc, 0);
  CHECK_EQ_INT(f.status, 200);
  CHECK_EQ_STR(f.body, "{\"ok\":true}");
  CHECK_EQ_STR(f.type, "application/json");
  e.st.healthy = 0;
  f = get(&e.loop, e.http, e.h, "GET", "/healthz?verbose=1");
  CHECK_EQ_INT(f.status, 503);
  CHECK_EQ_STR(f.body, "{\"ok\":false,\"reason\":\"no session with the hub for 120 s\"}");
  teardown(&e);
}

static void test_metrics(void) {
  env e;
  CHECK(setup(&e, "localhost:0") == 0);
  fetch f = get(&e.loop, e.http, e.h, "GET", "/metrics");
  CHECK_EQ_INT(f.status, 200);
  CHECK(strncmp(f.type, "text/plain; version=0.0.4", 25) == 0);
  char expected[1024];
  snprintf(expected, sizeof expected,
           "# TYPE hangar_agent_info gauge\n"
           "hangar_agent_info{version=\"%s\"} 1\n"
           "# TYPE hangar_agent_runs gauge\n"
           "hangar_agent_runs{state=\"running\"} 2\n"
           "hangar_agent_runs{state=\"finishing\"} 1\n"
           "# TYPE hangar_agent_events_unacknowledged gauge\n"
           "hangar_agent_events_unacknowledged 1234\n"
           "# TYPE hangar_agent_reconnects_total counter\n"
           "hangar_agent_reconnects_total 3\n"
           "# TYPE hangar_agent_spool_bytes gauge\n"
           "hangar_agent_spool_bytes 0.5\n"
           "# TYPE hangar_uploader_requests_total gauge\n"
           "hangar_uploader_requests_total 7\n",
           HANGAR_VERSION);
  CHECK_EQ_STR(f.body, expected);
  /* Every scrape asks again: the values are live. */
  get(&e.loop, e.http, e.h, "GET", "/metrics");
  CHECK_EQ_INT(e.st.scrapes, 2);
  teardown(&e);
}

static void test_other_paths_and_methods(void) {
  env e;
  CHECK(setup(&e, "127.0.0.1:0") == 0);
  fetch f = get(&e.loop, e.http, e.h, "GET", "/v1/agents");
  CHECK_EQ_INT(f.status, 404);
  CHECK(strstr(f.body, "/healthz and /metrics") != NULL);
  f = get(&e.loop, e.http, e.h, "POST", "/metrics");
  CHECK_EQ_INT(f.status, 405);
  CHECK_EQ_STR(f.allow, "GET, HEAD");
  CHECK_EQ_INT(e.st.scrapes, 0);
  teardown(&e);
}

static void test_refuses_remote_addresses(void) {
  hg_loop loop;
  hg_err err = {0};
  CHECK(hg_loop_init(&loop, &err) == 0);
  hg_health *h = NULL;
  hg_health_opts o = {.listen = "0.0.0.0:0"};
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), HG_EINVAL);
  CHECK(h == NULL);
  CHECK(strstr(err.msg, "refusing 0.0.0.0:0, which is not a loopback address") != NULL);
  CHECK(strstr(err.msg, "health.allow_remote") != NULL);
  o.listen = "[::]:0";
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), HG_EINVAL);
  o.listen = "9101";
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "'9101' is not HOST:PORT") != NULL);
  o.listen = "127.0.0.1:http";
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "no valid port") != NULL);
  o.listen = "example.com:9101";
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "not an IP address") != NULL);
  /* Explicitly allowed: it listens. */
  o.listen = "0.0.0.0:0";
  o.allow_remote = true;
  CHECK_EQ_INT(hg_health_start(&loop, &o, &h, &err), 0);
  hg_health_free(h);
  hg_loop_close(&loop);
}

static void test_port_in_use(void) {
  env e;
  CHECK(setup(&e, "127.0.0.1:0") == 0);
  const char *url = hg_health_url(e.h);
  char listen[64];
  snprintf(listen, sizeof listen, "%s", url + strlen("http://"));
  hg_health *second = NULL;
  hg_err err = {0};
  hg_health_opts o = {.listen = listen};
  CHECK(hg_health_start(&e.loop, &o, &second, &err) < 0);
  CHECK(second == NULL);
  CHECK(strstr(err.msg, "cannot listen on") != NULL);
  CHECK(strstr(err.msg, listen) != NULL);
  teardown(&e);
}

/* A client that connected and never sent a request must not hold the agent's exit up. */
static void test_free_with_idle_connection(void) {
  env e;
  CHECK(setup(&e, "127.0.0.1:0") == 0);
  int port = atoi(strrchr(hg_health_url(e.h), ':') + 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
  for (int i = 0; i < 20; i++) uv_run(&e.loop.uv, UV_RUN_NOWAIT); /* accepted */
  teardown(&e);
  /* The listener closed the connection: the client reads EOF. */
  char c;
  CHECK_EQ_INT(read(fd, &c, 1), 0);
  close(fd);
}

TEST_MAIN(T(test_healthz), T(test_metrics), T(test_other_paths_and_methods),
          T(test_refuses_remote_addresses), T(test_port_in_use),
          T(test_free_with_idle_connection))
