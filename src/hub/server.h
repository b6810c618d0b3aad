/* The hub's HTTP server: libh2o on the hub's libuv loop, plain HTTP or TLS, requests handed to
 * the API and long-polls parked until the hub answers them. */
#pragma once

#include <stdbool.h>

#include "core/err.h"
#include "core/loop.h"
#include "hub/hub.h"

typedef struct hg_server hg_server;

typedef struct hg_server_config {
  const char *listen;      /* "HOST:PORT", "[V6]:PORT" or ":PORT"; port 0 picks a free one */
  const char *tls_cert;    /* PEM certificate chain; NULL with tls_key NULL: plain HTTP */
  const char *tls_key;     /* PEM private key */
  bool allow_plain_http;   /* plain HTTP on an address other than loopback */
} hg_server_config;

/* Listens and serves hub's API on loop. Plain HTTP is refused on a non-loopback address unless
 * allow_plain_http is set. */
int hg_server_start(hg_loop *loop, hg_hub *hub, const hg_server_config *cfg, hg_server **out,
                    hg_err *err);
/* The base URL clients use, e.g. "https://10.0.0.5:8443" (with the real port for port 0). */
const char *hg_server_url(const hg_server *s);
/* Stops accepting and asks open connections to close once their requests are answered. */
void hg_server_shutdown(hg_server *s);
/* True once every connection has closed. */
bool hg_server_idle(const hg_server *s);
/* Frees the server after the loop has stopped; connections still open are dropped. */
void hg_server_free(hg_server *s);
