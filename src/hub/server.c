/* The hub's HTTP server on libh2o (built on libuv): accepting, TLS, requests to the API, parked
 * long-polls, and the protocol header and error format on every response, h2o's own included. */
#include "hub/server.h"

#include <h2o.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/httpd.h"
#include "core/log.h"
#include "hub/api.h"

/* h2o reads a whole body before the handler sees it. Bodies up to this size are read and
 * answered 413 by the API with the protocol's error document (a client that is still sending
 * would otherwise see a reset instead of the answer); larger ones get h2o's own 413 at once. */
#define ENTITY_READ_LIMIT (16u << 20)

struct hg_server {
  hg_hub *hub;
  hg_httpd *httpd;
  SSL_CTX *ssl;
  char url[128];
};

/* One request in flight: lives in the request's pool, and its dispose callback runs when h2o
 * frees the request (answered, or its connection gone), so a parked poll is never answered
 * through a dangling pointer. */
typedef struct inflight {
  hg_server *server;
  h2o_req_t *req;
  hg_api_req api;
  hg_hub_waiter waiter;
  int64_t started_ns;
} inflight;

static const char *reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 413: return "Payload Too Large";
  case 429: return "Too Many Requests";
  case 503: return "Service Unavailable";
  default: return status >= 500 ? "Internal Server Error" : "Unknown";
  }
}

static void respond(inflight *f, hg_api_res *res) {
  h2o_req_t *req = f->req;
  hg_buf body = HG_BUF_INIT;
  int status = res->status ? res->status : 500;
  if (hg_api_res_body(res, &body)) status = 500;
  req->res.status = status;
  req->res.reason = reason(status);
  const char *type = res->json ? "application/json" : res->content_type;
  if (type && status != 204)
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type, strlen(type));
  /* Answers carry keys and tokens: no cache may keep them. */
  h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                 H2O_STRLIT("no-store"));
  if (res->allow[0])
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, res->allow,
                   strlen(res->allow));
  double secs = (double)(hg_clock_mono_ns() - f->started_ns) / 1e9;
  hg_metrics_request(&f->server->hub->metrics, res->route, status, secs);
  if (hg_log_min_level() <= HG_LOG_DEBUG) {
    char st[8], ms[32];
    snprintf(st, sizeof st, "%d", status);
    snprintf(ms, sizeof ms, "%.3f", secs * 1000);
    hg_log(HG_LOG_DEBUG, "request", "method", f->api.method, "path", f->api.path, "status", st,
           "ms", ms, NULL);
  }
  size_t len = status == 204 ? 0 : body.len;
  req->res.content_length = status == 204 ? SIZE_MAX : len;
  h2o_send_inline(req, body.data ? body.data : "", len);
  hg_buf_free(&body);
}

static void deliver(hg_hub_waiter *w, hg_api_res *res) { respond(w->data, res); }

static void answer_early(hg_api_req *req, hg_api_res *res) { respond(req->answer_data, res); }

static void on_inflight_dispose(void *p) {
  inflight *f = p;
  /* The request is going away: a parked poll must not be answered any more. */
  if (f->waiter.parked) hg_hub_unpark(f->server->hub, &f->waiter);
}

static char *pool_str(h2o_mem_pool_t *pool, const char *s, size_t n) {
  char *p = h2o_mem_alloc_pool(pool, n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

static int on_req(void *data, h2o_req_t *req) {
  hg_server *s = data;
  inflight *f = h2o_mem_alloc_shared(&req->pool, sizeof *f, on_inflight_dispose);
  memset(f, 0, sizeof *f);
  f->server = s;
  f->req = req;
  f->started_ns = hg_clock_mono_ns();
  size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
  f->api.method = pool_str(&req->pool, req->method.base, req->method.len);
  f->api.path = pool_str(&req->pool, req->path.base, plen);
  if (req->query_at != SIZE_MAX)
    f->api.query = pool_str(&req->pool, req->path.base + plen + 1, req->path.len - plen - 1);
  ssize_t h = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (h != -1)
    f->api.authorization = pool_str(&req->pool, req->headers.entries[h].value.base,
                                    req->headers.entries[h].value.len);
  f->api.body = req->entity.base;
  f->api.body_len = req->entity.base ? req->entity.len : 0;
  f->api.answer = answer_early;
  f->api.answer_data = f;

  hg_api_res res;
  memset(&res, 0, sizeof res);
  hg_api_handle(s->hub, &f->api, &res);
  if (res.sent) {
    /* Answered inside the handler (a work poll's assignment, before its commit). */
    hg_hub_flush(s->hub);
  } else if (res.park) {
    f->waiter.kind = res.park_kind;
    snprintf(f->waiter.key, sizeof f->waiter.key, "%s", res.park_key);
    f->waiter.deadline_ms = res.park_deadline_ms;
    f->waiter.req = &f->api;
    f->waiter.deliver = deliver;
    f->waiter.data = f;
    hg_hub_park(s->hub, &f->waiter);
    hg_hub_flush(s->hub);
  } else if (s->hub->wake_queued.n) {
    /* A run was queued: a parked work poll that takes it is answered before this request,
     * so that the run reaches its agent without waiting for its creator's answer to be
     * written (both come after the commit they report). */
    hg_hub_flush(s->hub);
    respond(f, &res);
  } else {
    /* Otherwise this request first: an agent's finish frees its slot for the next run
     * sooner than a reader of the run would gain from hearing of its end first. */
    respond(f, &res);
    hg_hub_flush(s->hub);
  }
  hg_api_res_clear(&res);
  return 0;
}

/* ---- every response: the protocol header, and h2o's own errors in the protocol's form ---- */

typedef struct replace_ostream {
  h2o_ostream_t super;
  h2o_iovec_t body;
} replace_ostream;

static void replace_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs,
                            size_t bufcnt, h2o_send_state_t state) {
  (void)bufs;
  (void)bufcnt;
  replace_ostream *r = (replace_ostream *)self;
  if (h2o_send_state_is_in_progress(state)) {
    h2o_ostream_send_next(&r->super, req, NULL, 0, state);
    return;
  }
  h2o_ostream_send_next(&r->super, req, &r->body, 1, state);
}

static void on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot) {
  (void)self;
  h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("hangar-protocol"), 0,
                        H2O_STRLIT("1"), 1);
  ssize_t ct = h2o_find_header(&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
  bool json = ct != -1 && req->res.headers.entries[ct].value.len >= 16 &&
              !memcmp(req->res.headers.entries[ct].value.base, "application/json", 16);
  if (req->res.status >= 400 && !json) {
    /* An error h2o produced itself (413 for a huge body, 404 for an unknown host ...). */
    char doc[200];
    int n = snprintf(doc, sizeof doc, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}",
                     hg_api_error_code(req->res.status), reason(req->res.status));
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   H2O_STRLIT("application/json"), 1);
    req->res.content_length = (size_t)n;
    replace_ostream *r = (replace_ostream *)h2o_add_ostream(req, sizeof *r, slot);
    r->super.do_send = replace_do_send;
    r->body = h2o_strdup(&req->pool, doc, (size_t)n);
    slot = &r->super.next;
  }
  h2o_setup_next_ostream(req, slot);
}

/* ---- listening ---- */

static int setup_tls(hg_server *s, const hg_server_config *cfg, hg_err *err) {
  s->ssl = SSL_CTX_new(TLS_server_method());
  if (!s->ssl) return hg_err_set(err, HG_ENOMEM, "TLS: cannot create a context");
  SSL_CTX_set_min_proto_version(s->ssl, TLS1_2_VERSION);
  SSL_CTX_set_options(s->ssl, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  char why[256] = "";
  const char *what = NULL;
  if (SSL_CTX_use_certificate_chain_file(s->ssl, cfg->tls_cert) != 1)
    what = cfg->tls_cert;
  else if (SSL_CTX_use_PrivateKey_file(s->ssl, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
           SSL_CTX_check_private_key(s->ssl) != 1)
    what = cfg->tls_key;
  if (what) {
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    return hg_err_set(err, HG_EINVAL, "TLS: cannot use %s: %s", what, why[0] ? why : "unknown error");
  }
  return 0;
}

int hg_server_start(hg_loop *loop, hg_hub *hub, const hg_server_config *cfg, hg_server **out,
                    hg_err *err) {
  *out = NULL;
  hg_httpd_addr addr;
  int rc = hg_httpd_parse_listen(cfg->listen ? cfg->listen : "127.0.0.1:8080", "listen", true,
                                 &addr, err);
  if (rc) return rc;
  bool tls = cfg->tls_cert || cfg->tls_key;
  if (tls && !(cfg->tls_cert && cfg->tls_key))
    return hg_err_set(err, HG_EINVAL, "TLS needs both a certificate and a key");
  if (!tls && !addr.loopback && !cfg->allow_plain_http)
    return hg_err_set(err, HG_EINVAL,
                      "refusing plain HTTP on %s: configure a TLS certificate and key, listen on "
                      "loopback, or allow plain HTTP explicitly",
                      cfg->listen);
  hg_server *s = calloc(1, sizeof *s);
  if (!s) return hg_err_set(err, HG_ENOMEM, "out of memory");
  s->hub = hub;
  if (tls && (rc = setup_tls(s, cfg, err))) {
    hg_server_free(s);
    return rc;
  }
  hg_httpd_opts ho = {
      .listen = cfg->listen,
      .server_name = "hangar-hub",
      .max_request_entity_size = ENTITY_READ_LIMIT,
      .backlog = 1024,
      .nodelay = true,
      .ssl = s->ssl,
      .on_req = on_req,
      .data = s,
      .on_setup_ostream = on_setup_ostream,
  };
  if ((rc = hg_httpd_start(loop, &addr, &ho, &s->httpd, err))) {
    hg_server_free(s);
    return rc;
  }
  const char *shown = addr.host;
  if (!strcmp(shown, "0.0.0.0")) shown = "127.0.0.1";
  if (!strcmp(shown, "::")) shown = "::1";
  snprintf(s->url, sizeof s->url, addr.v6 ? "%s://[%s]:%d" : "%s://%s:%d", tls ? "https" : "http",
           shown, hg_httpd_port(s->httpd));
  *out = s;
  return 0;
}

const char *hg_server_url(const hg_server *s) { return s->url; }

void hg_server_shutdown(hg_server *s) { hg_httpd_shutdown(s->httpd, true); }

bool hg_server_idle(const hg_server *s) { return hg_httpd_conns(s->httpd) == 0; }

void hg_server_free(hg_server *s) {
  if (!s) return;
  /* A connection still open here outlived the grace: its client kept sending on it (on Linux
   * a socket shut for reading still takes new data). It is cut, or closing the loop would go
   * on serving it. */
  hg_httpd_shutdown(s->httpd, false);
  if (!hg_httpd_free(s->httpd, 200)) {
    /* A connection that would not close: h2o cannot dispose of a context still in use, and
     * the process is exiting anyway. */
    hg_log(HG_LOG_WARN, "connections still open at exit", NULL);
    return;
  }
  if (s->ssl) SSL_CTX_free(s->ssl);
  free(s);
}
