/* An asynchronous HTTP client: libcurl multi driven by the libuv loop. TLS verification is
 * always on; a CA bundle and a client certificate are options. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"

typedef struct hg_http hg_http;         /* one per loop: the multi handle and its sockets */
typedef struct hg_http_req hg_http_req; /* one request in flight */

/* Idle connections kept for reuse, per hg_http: enough that the requests of an agent with
 * 32 runs finishing at once (two each in flight at most) find one each; a larger burst
 * reconnects for the excess. */
#define HG_HTTP_KEEP_CONNECTIONS 64

typedef struct hg_http_tls {
  const char *ca_file;   /* PEM bundle that replaces the system CAs; NULL: system CAs */
  const char *cert_file; /* client certificate (PEM) for mTLS; NULL: none */
  const char *key_file;  /* its private key (PEM); NULL: read from cert_file */
} hg_http_tls;

/* Only http:// and https:// URLs are accepted; redirects are not followed (the caller sees
 * the 3xx). Connections are HTTP/1.1 and kept alive for reuse by later requests on the same
 * hg_http. Proxies: none unless `proxy` is set; the http_proxy/https_proxy/no_proxy
 * environment variables are deliberately ignored, so where requests (and credentials) go
 * never depends on the environment a process happened to inherit. Requests carry
 * "User-Agent: hangar/VERSION" unless the caller sets one; curl's default form content type
 * and "Expect: 100-continue" are left out unless set. */
typedef struct hg_http_request {
  const char *method;          /* "GET", "POST", ...; NULL: GET */
  const char *url;
  const char *const *headers;  /* "Name: value" strings, NULL-terminated; may be NULL */
  const char *body;            /* copied at start; may be NULL */
  size_t body_len;
  bool body_kept;              /* the caller keeps body as it is until the callback has run:
                                  it is not copied (nor wiped); for bodies of megabytes that
                                  hold no credential */
  int64_t timeout_ms;          /* whole request, 0: none */
  int64_t connect_timeout_ms;  /* 0: 10 s */
  hg_http_tls tls;             /* paths are copied at start */
  hg_sink *sink;               /* when set, a 2xx body streams here as it arrives (with
                                  backpressure) instead of into response.body; any other
                                  status's body is still buffered, so errors can be read.
                                  The sink must outlive the request's callback. */
  size_t max_body;             /* cap on a buffered body; 0: 64 MiB. Over it: HG_ETOOBIG */
  const char *proxy;           /* "http://host:port" or NULL for a direct connection */
} hg_http_request;

typedef struct hg_http_response {
  long status;                 /* HTTP status; 0 when no response arrived */
  hg_buf body;                 /* the body, unless it streamed into a sink; the callback
                                  may take it with hg_buf_steal */
  char **headers;              /* "name: value" (name lower-cased, value trimmed), in
                                  arrival order, NULL-terminated; never NULL */
} hg_http_response;

/* rc is 0 when a response arrived (whatever its status; msg is then ""), else a negative
 * code with msg saying what failed and with which host:port (never a request header or
 * body, nor the URL's credentials, path or query):
 *   HG_ECANCELED  hg_http_cancel or hg_http_free
 *   HG_ETIMEDOUT  the connect or total timeout passed ("timed out after 2000 ms")
 *   HG_ETOOBIG    a buffered body went over max_body
 *   HG_EIO        refused, reset, DNS or TLS failure (certificate not trusted, handshake)
 *   HG_EPROTO     the peer sent something that is not HTTP
 *   HG_ENOMEM     out of memory
 *   the sink's own negative code when its write failed.
 * res is never NULL: status, headers and the partial body show how far it got. The response
 * and its storage live until the callback returns; so does req, which is freed after. */
typedef void (*hg_http_done_cb)(hg_http_req *req, int rc, const char *msg,
                                hg_http_response *res, void *data);

int hg_http_new(hg_loop *loop, hg_http **out, hg_err *err);
/* Cancels every request still in flight (their callbacks run with HG_ECANCELED before this
 * returns, and none runs after), then frees once libuv has closed the handles, which needs
 * the loop to run once more (hg_loop_close does). May be called from any of its callbacks
 * (a done callback or a sink's). */
void hg_http_free(hg_http *h);
/* Starts a request; done runs exactly once, later, from the loop (never from inside this
 * call). On failure returns a negative code (HG_EINVAL: bad URL, method or header line, or
 * an unreadable TLS file; HG_ECANCELED: hg_http_free has begun) and never calls done.
 * out may be NULL. May be called from any callback, a sink's included. */
int hg_http_start(hg_http *h, const hg_http_request *r, hg_http_done_cb done, void *data,
                  hg_http_req **out, hg_err *err);
/* Aborts a request; its callback runs once, later from the loop, with HG_ECANCELED.
 * Safe from any callback (a sink's included); a no-op once the callback has started. */
void hg_http_cancel(hg_http_req *req);
/* Looks up a response header by name (case-insensitive); NULL when absent. */
const char *hg_http_header(const hg_http_response *res, const char *name);

/* Streaming into a sink, in order:
 *   - the sink's write gets each piece of a 2xx body as it arrives, stamped with the arrival
 *     time; returning HG_SINK_PAUSE pauses the transfer until the sink calls
 *     hg_sink_resume, and every byte is still delivered exactly once;
 *   - a negative return ends the request with that code;
 *   - eof runs once, before the done callback, whenever streaming began (a 2xx arrived)
 *     and the sink did not fail, also when the request then failed or was cancelled. */
