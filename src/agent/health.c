/* The agent's health listener: /healthz and /metrics served by libh2o on the agent's libuv
 * loop, loopback only unless allowed otherwise, one answer per connection. */
#include "agent/health.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <h2o.h>
#include <h2o/socket/uv-binding.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/buf.h"
#include "core/log.h"

/* A connection that sends nothing is dropped after this long. */
#define IDLE_TIMEOUT_MS 10000

typedef struct health_handler {
  h2o_handler_t super;
  hg_health *health;
} health_handler;

typedef struct conn {
  uv_tcp_t tcp; /* first: h2o's close callback gets the handle */
  hg_health *health;
  struct conn *prev, *next;
} conn;

struct hg_health {
  hg_loop *loop;
  hg_health_opts opts;
  h2o_globalconf_t globalconf;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  uv_tcp_t listener;
  bool listening;
  bool ctx_ready;
  conn *conns;
  size_t n_conns;
  char url[128];
};

struct hg_health_scrape {
  hg_buf *out;
  char family[128]; /* the metric whose TYPE line was written last */
  int failed;
};

/* ---- Prometheus text ---- */

static int name_char(char c, int first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

/* `a="x",b="y"` with the escapes the format allows. */
static int valid_labels(const char *p, size_t n) {
  const char *end = p + n;
  while (p < end) {
    if (!name_char(*p, 1)) return 0;
    while (p < end && name_char(*p, 0)) p++;
    if (end - p < 2 || p[0] != '=' || p[1] != '"') return 0;
    p += 2;
    while (p < end && *p != '"') {
      if (*p == '\n') return 0;
      if (*p == '\\') {
        if (p + 1 >= end || (p[1] != '\\' && p[1] != '"' && p[1] != 'n')) return 0;
        p++;
      }
      p++;
    }
    if (p >= end) return 0;
    p++;
    if (p < end) {
      if (*p != ',') return 0;
      p++;
    }
  }
  return 1;
}

static void sample(hg_health_scrape *s, const char *type, const char *name, double value) {
  if (s->failed || !name || !*name) return;
  const char *brace = strchr(name, '{');
  size_t nlen = brace ? (size_t)(brace - name) : strlen(name);
  const char *labels = NULL;
  size_t llen = 0;
  if (brace) {
    size_t rest = strlen(brace);
    if (rest < 2 || brace[rest - 1] != '}') return;
    labels = brace + 1;
    llen = rest - 2;
    if (!valid_labels(labels, llen)) return;
  }
  char family[128];
  const char *prefix = strncmp(name, "hangar_", 7) == 0 ? "" : "hangar_agent_";
  size_t plen = strlen(prefix);
  if (nlen == 0 || plen + nlen >= sizeof family) return;
  memcpy(family, prefix, plen);
  for (size_t i = 0; i < nlen; i++) family[plen + i] = name_char(name[i], 0) ? name[i] : '_';
  family[plen + nlen] = '\0';
  if (!name_char(family[0], 1)) family[0] = '_';

  int rc = 0;
  if (strcmp(family, s->family) != 0) {
    rc |= hg_buf_printf(s->out, "# TYPE %s %s\n", family, type);
    snprintf(s->family, sizeof s->family, "%s", family);
  }
  rc |= hg_buf_appends(s->out, family);
  if (labels) rc |= hg_buf_printf(s->out, "{%.*s}", (int)llen, labels);
  if (isnan(value))
    rc |= hg_buf_appends(s->out, " NaN\n");
  else if (isinf(value))
    rc |= hg_buf_appends(s->out, value > 0 ? " +Inf\n" : " -Inf\n");
  else if (value == floor(value) && fabs(value) < 1e15)
    rc |= hg_buf_printf(s->out, " %.0f\n", value);
  else
    rc |= hg_buf_printf(s->out, " %.17g\n", value);
  if (rc) s->failed = 1;
}

void hg_health_gauge(hg_health_scrape *s, const char *name, double value) {
  sample(s, "gauge", name, value);
}

void hg_health_counter(hg_health_scrape *s, const char *name, double value) {
  sample(s, "counter", name, value);
}

/* ---- requests ---- */

static void answer(h2o_req_t *req, int status, const char *reason, const char *type,
                   const char *body, size_t len) {
  req->res.status = status;
  req->res.reason = reason;
  /* One answer per connection: nothing lingers for shutdown to wait on. */
  req->http1_is_persistent = 0;
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                 H2O_STRLIT("no-store"));
  req->res.content_length = len;
  /* h2o copies nothing: the body must live in the request's pool. */
  char *copy = h2o_mem_alloc_pool(&req->pool, len + 1);
  memcpy(copy, body, len);
  h2o_send_inline(req, copy, len);
}

static void answer_json(h2o_req_t *req, int status, const char *reason, cJSON *doc) {
  char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
  cJSON_Delete(doc);
  if (!text) {
    static const char oom[] = "{\"ok\":false,\"reason\":\"out of memory\"}";
    answer(req, 500, "Internal Server Error", "application/json", oom, sizeof oom - 1);
    return;
  }
  answer(req, status, reason, "application/json", text, strlen(text));
  free(text);
}

static void on_healthz(hg_health *h, h2o_req_t *req) {
  char why[256] = "";
  int bad = h->opts.check ? h->opts.check(why, sizeof why, h->opts.data) : 0;
  cJSON *doc = cJSON_CreateObject();
  if (doc) {
    cJSON_AddBoolToObject(doc, "ok", !bad);
    if (bad) cJSON_AddStringToObject(doc, "reason", why[0] ? why : "unhealthy");
  }
  if (bad)
    answer_json(req, 503, "Service Unavailable", doc);
  else
    answer_json(req, 200, "OK", doc);
}

static void on_metrics(hg_health *h, h2o_req_t *req) {
  hg_buf out = HG_BUF_INIT;
  hg_health_scrape s = {.out = &out};
  char info[96];
  snprintf(info, sizeof info, "hangar_agent_info{version=\"%s\"}", HANGAR_VERSION);
  hg_health_gauge(&s, info, 1);
  if (h->opts.metrics) h->opts.metrics(&s, h->opts.data);
  if (s.failed || !out.data) {
    hg_buf_free(&out);
    static const char oom[] = "out of memory\n";
    answer(req, 500, "Internal Server Error", "text/plain", oom, sizeof oom - 1);
    return;
  }
  answer(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
  hg_buf_free(&out);
}

static int path_is(h2o_req_t *req, const char *path) {
  size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  return plen == strlen(path) && memcmp(req->path.base, path, plen) == 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  hg_health *h = ((health_handler *)self)->health;
  int healthz = path_is(req, "/healthz"), metrics = path_is(req, "/metrics");
  if (!healthz && !metrics) {
    cJSON *doc = cJSON_CreateObject();
    if (doc) cJSON_AddStringToObject(doc, "error", "not found: this listener serves /healthz and /metrics");
    answer_json(req, 404, "Not Found", doc);
    return 0;
  }
  if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
      !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"))) {
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
    cJSON *doc = cJSON_CreateObject();
    if (doc) cJSON_AddStringToObject(doc, "error", "method not allowed: use GET");
    answer_json(req, 405, "Method Not Allowed", doc);
    return 0;
  }
  if (healthz)
    on_healthz(h, req);
  else
    on_metrics(h, req);
  return 0;
}

/* ---- listening ---- */

static void on_conn_closed(uv_handle_t *handle) {
  conn *c = (conn *)handle;
  hg_health *h = c->health;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  h->n_conns--;
  free(c);
}

static void on_accept(uv_stream_t *listener, int status) {
  hg_health *h = listener->data;
  if (status != 0) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(listener->loop, &c->tcp);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  c->health = h;
  c->next = h->conns;
  if (c->next) c->next->prev = c;
  h->conns = c;
  h->n_conns++;
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  h2o_accept(&h->accept_ctx, sock);
}

typedef struct listen_addr {
  struct sockaddr_storage sa;
  char host[80];
  bool loopback;
  bool v6;
} listen_addr;

static int parse_listen(const char *text, listen_addr *out, hg_err *err) {
  memset(out, 0, sizeof *out);
  const char *colon = strrchr(text, ':');
  if (!colon) return hg_err_set(err, HG_EINVAL, "health.listen: '%s' is not HOST:PORT", text);
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || colon[1] == '\0' || port < 0 || port > 65535)
    return hg_err_set(err, HG_EINVAL, "health.listen: '%s' has no valid port", text);
  size_t hlen = (size_t)(colon - text);
  if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
    text++;
    hlen -= 2;
  }
  if (hlen == 0 || hlen >= sizeof out->host)
    return hg_err_set(err, HG_EINVAL, "health.listen: '%s' names no host (use 127.0.0.1:PORT)",
                      text);
  memcpy(out->host, text, hlen);
  out->host[hlen] = '\0';
  if (!strcmp(out->host, "localhost")) snprintf(out->host, sizeof out->host, "127.0.0.1");
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
  if (uv_ip4_addr(out->host, (int)port, v4) == 0) {
    out->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (uv_ip6_addr(out->host, (int)port, v6) == 0) {
    out->v6 = true;
    out->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  } else {
    return hg_err_set(err, HG_EINVAL, "health.listen: '%s' is not an IP address (or localhost)",
                      out->host);
  }
  return 0;
}

static void noop_close(uv_handle_t *handle) { (void)handle; }

int hg_health_start(hg_loop *loop, const hg_health_opts *opts, hg_health **out, hg_err *err) {
  *out = NULL;
  if (!opts->listen) return hg_err_set(err, HG_EINVAL, "health.listen: no address given");
  listen_addr addr;
  int rc = parse_listen(opts->listen, &addr, err);
  if (rc) return rc;
  if (!addr.loopback && !opts->allow_remote)
    return hg_err_set(err, HG_EINVAL,
                      "health.listen: refusing %s, which is not a loopback address: the health "
                      "listener has no authentication (set health.allow_remote = true to serve "
                      "it there anyway)",
                      opts->listen);
  hg_health *h = calloc(1, sizeof *h);
  if (!h) return hg_err_set(err, HG_ENOMEM, "out of memory");
  h->loop = loop;
  h->opts = *opts;
  h->opts.listen = NULL; /* not kept: the caller's string */
  h2o_config_init(&h->globalconf);
  h->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("hangar-agent"));
  h->globalconf.max_request_entity_size = 4096;
  h->globalconf.http1.req_timeout = IDLE_TIMEOUT_MS;
  h->globalconf.http1.upgrade_to_http2 = 0;
  h2o_hostconf_t *host =
      h2o_config_register_host(&h->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  health_handler *handler = (health_handler *)h2o_create_handler(path, sizeof *handler);
  handler->super.on_req = on_req;
  handler->health = h;
  h2o_context_init(&h->ctx, &loop->uv, &h->globalconf);
  h->ctx_ready = true;
  h->accept_ctx.ctx = &h->ctx;
  h->accept_ctx.hosts = h->globalconf.hosts;

  uv_tcp_init(&loop->uv, &h->listener);
  h->listener.data = h;
  h->listening = true;
  rc = uv_tcp_bind(&h->listener, (struct sockaddr *)&addr.sa, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&h->listener, 64, on_accept);
  if (rc) {
    hg_err_set(err, rc, "health.listen: cannot listen on %s: %s", opts->listen, uv_strerror(rc));
    hg_health_free(h);
    return rc;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &len);
  int port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  snprintf(h->url, sizeof h->url, addr.v6 ? "http://[%s]:%d" : "http://%s:%d", addr.host, port);
  *out = h;
  return 0;
}

const char *hg_health_url(const hg_health *h) { return h->url; }

void hg_health_shutdown(hg_health *h) {
  if (!h) return;
  if (h->listening) {
    uv_close((uv_handle_t *)&h->listener, noop_close);
    h->listening = false;
  }
  /* Both directions: h2o sees the peer gone at once and closes the socket itself. */
  for (conn *c = h->conns; c; c = c->next) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, SHUT_RDWR);
  }
}

void hg_health_free(hg_health *h) {
  if (!h) return;
  hg_health_shutdown(h);
  /* Let the listener's and the connections' close callbacks run. Each pass handles the EOF
   * h2o reads or the close it started; a bounded number of passes covers both. */
  for (int i = 0; i < 200 && (h->n_conns || i == 0); i++) uv_run(&h->loop->uv, UV_RUN_NOWAIT);
  if (h->n_conns) {
    /* h2o cannot dispose of a context still in use, and the process is about to exit. */
    hg_log(HG_LOG_WARN, "health listener: connections still open at exit", NULL);
    return;
  }
  if (h->ctx_ready) {
    h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->globalconf);
  }
  free(h);
}
