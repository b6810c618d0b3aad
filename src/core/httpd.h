/* Serving HTTP with libh2o on the process's loop: the listen address, the listener, accepted
 * connections kept track of for shutdown, and one handler at "/". The hub's API server and
 * the agent's health listener are both built on it. */
#pragma once

#include <h2o.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "core/loop.h"

typedef struct hg_httpd hg_httpd;

/* A parsed "HOST:PORT". */
typedef struct hg_httpd_addr {
  struct sockaddr_storage sa;
  char host[80]; /* as given, "localhost" as 127.0.0.1 and, with any_host, "" or "*" as 0.0.0.0 */
  bool loopback;
  bool v6;
} hg_httpd_addr;

typedef struct hg_httpd_opts {
  const char *listen;             /* the address as configured, for messages */
  const char *server_name;        /* the Server header */
  size_t max_request_entity_size; /* larger bodies get h2o's own 413 */
  uint64_t req_timeout_ms;        /* how long a request may take to arrive; 0: h2o's default */
  int backlog;
  bool nodelay;                   /* TCP_NODELAY on accepted connections */
  SSL_CTX *ssl;                   /* NULL: plain HTTP; stays the caller's */
  /* Every request to any path. Returns 0 once it answered or took charge of req. */
  int (*on_req)(void *data, h2o_req_t *req);
  void *data;
  /* NULL, or an ostream filter set up for every response, h2o's own (unknown host, too large
   * a body) included. */
  void (*on_setup_ostream)(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot);
} hg_httpd_opts;

/* Parses "HOST:PORT" or "[V6]:PORT" (port 0: a free one); "localhost" means 127.0.0.1. With
 * any_host, an empty host or "*" means every IPv4 interface; without, a host is required.
 * Messages start with field ("listen", "health.listen") and quote the text. */
int hg_httpd_parse_listen(const char *text, const char *field, bool any_host, hg_httpd_addr *out,
                          hg_err *err);

/* Configures h2o and listens on addr. On failure nothing is left open or allocated and the
 * message names opts->listen. */
int hg_httpd_start(hg_loop *loop, const hg_httpd_addr *addr, const hg_httpd_opts *opts,
                   hg_httpd **out, hg_err *err);
/* The port actually bound (the one picked for port 0). */
int hg_httpd_port(const hg_httpd *h);
/* How many accepted connections are still open. */
size_t hg_httpd_conns(const hg_httpd *h);
/* Stops accepting. graceful: h2o finishes the answers in progress and closes each connection
 * after its current answer (the read side is shut, so idle keep-alive connections go too);
 * otherwise both directions are shut and answers in progress are cut short. Idempotent. */
void hg_httpd_shutdown(hg_httpd *h, bool graceful);
/* Closes the listener if still open and runs the loop (not running now) until its close is
 * done, then for at most drain_passes more turns while connections are closing. Frees
 * everything and returns true when none is left; otherwise returns false and leaves it all:
 * h2o cannot dispose of a context still in use, which only happens as the process exits.
 * NULL: true. */
bool hg_httpd_free(hg_httpd *h, int drain_passes);
