/* Serving HTTP with libh2o on the process's loop: listening, accepting, shutting down. */
#include "core/httpd.h"

#include <arpa/inet.h>
#include <h2o/socket/uv-binding.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct handler {
  h2o_handler_t super;
  hg_httpd *httpd;
} handler;

/* An accepted connection; kept in a list so that shutting down can close idle ones. */
typedef struct conn {
  uv_tcp_t tcp; /* first: h2o's close callback gets the handle */
  hg_httpd *httpd;
  struct conn *prev, *next;
} conn;

struct hg_httpd {
  hg_loop *loop;
  int (*on_req)(void *data, h2o_req_t *req);
  void *data;
  bool nodelay;
  h2o_globalconf_t globalconf;
  h2o_context_t ctx;
  h2o_accept_ctx_t accept_ctx;
  uv_tcp_t listener;
  bool listening;     /* not asked to close yet */
  bool listener_open; /* its close callback has not run yet */
  conn *conns;
  size_t n_conns;
  int port;
};

int hg_httpd_parse_listen(const char *text, const char *field, bool any_host, hg_httpd_addr *out,
                          hg_err *err) {
  memset(out, 0, sizeof *out);
  const char *colon = strrchr(text, ':');
  if (!colon) return hg_err_set(err, HG_EINVAL, "%s: '%s' is not HOST:PORT", field, text);
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || colon[1] == '\0' || port < 0 || port > 65535)
    return hg_err_set(err, HG_EINVAL, "%s: '%s' has no valid port", field, text);
  const char *host = text;
  size_t hlen = (size_t)(colon - text);
  if (hlen >= 2 && text[0] == '[' && text[hlen - 1] == ']') {
    host++;
    hlen -= 2;
  }
  if (hlen == 0 && !any_host)
    return hg_err_set(err, HG_EINVAL, "%s: '%s' names no host (use 127.0.0.1:PORT)", field, text);
  if (hlen >= sizeof out->host)
    return hg_err_set(err, HG_EINVAL, "%s: '%s' has a host longer than %zu bytes", field, text,
                      sizeof out->host - 1);
  memcpy(out->host, host, hlen);
  out->host[hlen] = '\0';
  if (any_host && (hlen == 0 || !strcmp(out->host, "*")))
    snprintf(out->host, sizeof out->host, "0.0.0.0");
  if (!strcmp(out->host, "localhost")) snprintf(out->host, sizeof out->host, "127.0.0.1");
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
  if (uv_ip4_addr(out->host, (int)port, v4) == 0) {
    out->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
  } else if (uv_ip6_addr(out->host, (int)port, v6) == 0) {
    out->v6 = true;
    out->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
  } else {
    return hg_err_set(err, HG_EINVAL, "%s: '%s' is not an IP address (or localhost)", field,
                      out->host);
  }
  return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  hg_httpd *h = ((handler *)self)->httpd;
  return h->on_req(h->data, req);
}

static void on_conn_closed(uv_handle_t *handle) {
  conn *c = (conn *)handle;
  hg_httpd *h = c->httpd;
  if (c->prev)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  h->n_conns--;
  free(c);
}

static void on_accept(uv_stream_t *listener, int status) {
  hg_httpd *h = listener->data;
  if (status != 0) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(listener->loop, &c->tcp);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return;
  }
  if (h->nodelay) uv_tcp_nodelay(&c->tcp, 1);
  c->httpd = h;
  c->next = h->conns;
  if (c->next) c->next->prev = c;
  h->conns = c;
  h->n_conns++;
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
  h2o_accept(&h->accept_ctx, sock);
}

static void on_listener_closed(uv_handle_t *handle) {
  hg_httpd *h = handle->data;
  h->listener_open = false;
}

static void close_listener(hg_httpd *h) {
  if (!h->listening) return;
  uv_close((uv_handle_t *)&h->listener, on_listener_closed);
  h->listening = false;
}

int hg_httpd_start(hg_loop *loop, const hg_httpd_addr *addr, const hg_httpd_opts *opts,
                   hg_httpd **out, hg_err *err) {
  *out = NULL;
  hg_httpd *h = calloc(1, sizeof *h);
  if (!h) return hg_err_set(err, HG_ENOMEM, "out of memory");
  h->loop = loop;
  h->on_req = opts->on_req;
  h->data = opts->data;
  h->nodelay = opts->nodelay;
  h2o_config_init(&h->globalconf);
  h->globalconf.server_name = h2o_iovec_init(opts->server_name, strlen(opts->server_name));
  h->globalconf.max_request_entity_size = opts->max_request_entity_size;
  if (opts->req_timeout_ms) h->globalconf.http1.req_timeout = opts->req_timeout_ms;
  h->globalconf.http1.upgrade_to_http2 = 0;
  h2o_hostconf_t *host =
      h2o_config_register_host(&h->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  handler *hd = (handler *)h2o_create_handler(path, sizeof *hd);
  hd->super.on_req = on_req;
  hd->httpd = h;
  if (opts->on_setup_ostream) {
    h2o_filter_t *f = h2o_create_filter(path, sizeof *f);
    f->on_setup_ostream = opts->on_setup_ostream;
    f = h2o_create_filter(&host->fallback_path, sizeof *f);
    f->on_setup_ostream = opts->on_setup_ostream;
  }
  h2o_context_init(&h->ctx, &loop->uv, &h->globalconf);
  h->accept_ctx.ctx = &h->ctx;
  h->accept_ctx.hosts = h->globalconf.hosts;
  h->accept_ctx.ssl_ctx = opts->ssl;

  uv_tcp_init(&loop->uv, &h->listener);
  h->listener.data = h;
  h->listening = h->listener_open = true;
  int rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr->sa, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&h->listener, opts->backlog, on_accept);
  if (rc) {
    hg_err_set(err, rc, "cannot listen on %s: %s", opts->listen, uv_strerror(rc));
    hg_httpd_free(h, 0);
    return rc;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&h->listener, (struct sockaddr *)&bound, &len);
  h->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  *out = h;
  return 0;
}

int hg_httpd_port(const hg_httpd *h) { return h->port; }

size_t hg_httpd_conns(const hg_httpd *h) { return h->n_conns; }

void hg_httpd_shutdown(hg_httpd *h, bool graceful) {
  if (!h) return;
  close_listener(h);
  if (graceful) h2o_context_request_shutdown(&h->ctx);
  /* h2o 2.2 leaves idle HTTP/1 keep-alive connections open until their timeout: ending the
   * read side makes h2o see the client leave and close each one after its current answer;
   * ending both makes it close at once. */
  for (conn *c = h->conns; c; c = c->next) {
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) shutdown(fd, graceful ? SHUT_RD : SHUT_RDWR);
  }
}

bool hg_httpd_free(hg_httpd *h, int drain_passes) {
  if (!h) return true;
  close_listener(h);
  /* Each pass runs the close callbacks due: the listener's, and for connections the EOF h2o
   * reads or the close it started. */
  for (int i = 0; h->listener_open || (i < drain_passes && h->n_conns); i++)
    uv_run(&h->loop->uv, UV_RUN_NOWAIT);
  if (h->n_conns) return false;
  /* Requesting a graceful shutdown armed a one-second timer for HTTP/2 GOAWAYs we have no use
   * for. */
  if (h2o_timeout_is_linked(&h->ctx.http2._graceful_shutdown_timeout))
    h2o_timeout_unlink(&h->ctx.http2._graceful_shutdown_timeout);
  h2o_context_dispose(&h->ctx);
  h2o_config_dispose(&h->globalconf);
  free(h);
  return true;
}
