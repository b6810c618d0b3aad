/* The agent's health listener: /healthz and /metrics served by libh2o on the agent's libuv
 * loop, loopback only unless allowed otherwise, one answer per connection. */
#include "agent/health.h"

#include <cjson/cJSON.h>
#include <h2o.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/httpd.h"
#include "core/log.h"

/* A connection that sends nothing is dropped after this long. */
#define IDLE_TIMEOUT_MS 10000

struct hg_health {
  hg_health_opts opts;
  hg_httpd *httpd;
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

static int on_req(void *data, h2o_req_t *req) {
  hg_health *h = data;
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

int hg_health_start(hg_loop *loop, const hg_health_opts *opts, hg_health **out, hg_err *err) {
  *out = NULL;
  if (!opts->listen) return hg_err_set(err, HG_EINVAL, "health.listen: no address given");
  hg_httpd_addr addr;
  int rc = hg_httpd_parse_listen(opts->listen, "health.listen", false, &addr, err);
  if (rc) return rc;
  if (!addr.loopback && !opts->allow_remote)
    return hg_err_set(err, HG_EINVAL,
                      "health.listen: refusing %s, which is not a loopback address: the health "
                      "listener has no authentication (set health.allow_remote = true to serve "
                      "it there anyway)",
                      opts->listen);
  hg_health *h = calloc(1, sizeof *h);
  if (!h) return hg_err_set(err, HG_ENOMEM, "out of memory");
  h->opts = *opts;
  h->opts.listen = NULL; /* not kept: the caller's string */
  hg_httpd_opts ho = {
      .listen = opts->listen,
      .server_name = "hangar-agent",
      .max_request_entity_size = 4096,
      .req_timeout_ms = IDLE_TIMEOUT_MS,
      .backlog = 64,
      .on_req = on_req,
      .data = h,
  };
  if ((rc = hg_httpd_start(loop, &addr, &ho, &h->httpd, err))) {
    hg_err_prefix(err, "health.listen");
    free(h);
    return rc;
  }
  snprintf(h->url, sizeof h->url, addr.v6 ? "http://[%s]:%d" : "http://%s:%d", addr.host,
           hg_httpd_port(h->httpd));
  *out = h;
  return 0;
}

const char *hg_health_url(const hg_health *h) { return h->url; }

void hg_health_shutdown(hg_health *h) {
  /* Both directions: h2o sees the peer gone at once and closes the socket itself. */
  if (h) hg_httpd_shutdown(h->httpd, false);
}

void hg_health_free(hg_health *h) {
  if (!h) return;
  hg_health_shutdown(h);
  /* A bounded number of loop passes lets the connections close. */
  if (!hg_httpd_free(h->httpd, 200)) {
    /* h2o cannot dispose of a context still in use, and the process is about to exit. */
    hg_log(HG_LOG_WARN, "health listener: connections still open at exit", NULL);
    return;
  }
  free(h);
}
