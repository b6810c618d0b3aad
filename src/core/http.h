/* An asynchronous HTTP client: libcurl multi driven by the libuv loop. TLS verification is
 * always on; a CA bundle and a client certificate are options. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"

typedef struct hg_http hg_http;         /* one per loop: the multi handle and its sockets */
typedef struct hg_http_req hg_http_req; /* one request in flight */

typedef struct hg_http_tls {
  const char *ca_file;   /* PEM bundle that replaces the system CAs; NULL: system CAs */
  const char *cert_file; /* client certificate (PEM) for mTLS; NULL: none */
  const char *key_file;  /* its private key (PEM) */
} hg_http_tls;

typedef struct hg_http_request {
  const char *method;          /* "GET", "POST", ... */
  const char *url;
  const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL */
  const char *body;            /* copied at start; may be NULL */
  size_t body_len;
  int64_t timeout_ms;          /* whole request, 0: none */
  int64_t connect_timeout_ms;  /* 0: 10 s */
  hg_http_tls tls;             /* paths are copied at start */
  hg_sink *sink;               /* when set, a 2xx body streams here as it arrives (with
                                  backpressure) instead of into response.body; any other
                                  status's body is still buffered, so errors can be read */
  size_t max_body;             /* cap on a buffered body; 0: 64 MiB. Over it: HG_ETOOBIG */
} hg_http_request;

typedef struct hg_http_response {
  long status;                 /* HTTP status; 0 when no response arrived */
  hg_buf body;                 /* the body, unless it streamed into a sink */
  char **headers;              /* "name: value" (name lower-cased), NULL-terminated */
} hg_http_response;

/* rc is 0 when a response arrived (whatever its status), else a negative code with msg
 * saying why (connect refused, TLS verification failed, timed out, cancelled). The
 * response and its storage live until the callback returns. */
typedef void (*hg_http_done_cb)(hg_http_req *req, int rc, const char *msg,
                                hg_http_response *res, void *data);

int hg_http_new(hg_loop *loop, hg_http **out, hg_err *err);
/* Cancels every request still in flight (their callbacks run with HG_ECANCELED), then frees
 * once libuv has closed the handles. */
void hg_http_free(hg_http *h);
/* Starts a request; done runs exactly once, later, from the loop (never from inside this
 * call). On failure returns a negative code and never calls done. */
int hg_http_start(hg_http *h, const hg_http_request *r, hg_http_done_cb done, void *data,
                  hg_http_req **out, hg_err *err);
/* Aborts a request; its callback runs with HG_ECANCELED. */
void hg_http_cancel(hg_http_req *req);
/* Looks up a response header by name (case-insensitive); NULL when absent. */
const char *hg_http_header(const hg_http_response *res, const char *name);
