/* The CLI's HTTP client for the hub's user API: one blocking request at a time over libcurl's
 * easy interface, JSON in and out, and one line a human can read when something went wrong. */
#pragma once

#include <cjson/cJSON.h>
#include <signal.h>

#include "core/buf.h"
#include "core/err.h"

typedef struct hg_client {
  void *curl;                          /* CURL *, reused so that keep-alive works */
  char *base;                          /* hub URL without a trailing '/' */
  char *auth;                          /* "Authorization: Bearer ..."; wiped when freed */
  char *ca_file;                       /* NULL: the system's CAs */
  const volatile sig_atomic_t *stop;   /* when set and nonzero, a transfer aborts */
} hg_client;

typedef struct hg_client_res {
  long status;  /* HTTP status; 0 when no answer arrived */
  cJSON *json;  /* the parsed body; NULL when empty or not JSON */
} hg_client_res;

/* Seconds a request may take unless the caller says otherwise; a long poll adds its wait. */
#define HG_CLIENT_TIMEOUT_S 30
#define HG_CLIENT_POLL_SLACK_S 15

/* hub_url must be http:// or https://; plain http is refused unless the host is loopback or
 * allow_http is set, because the key would cross the network in clear. token may be NULL
 * (then no Authorization header). TLS verification is always on. */
int hg_client_init(hg_client *c, const char *hub_url, const char *token, const char *ca_file,
                   int allow_http, hg_err *err);
void hg_client_free(hg_client *c);

/* Sends method path (which starts with "/", query included) with body as JSON (NULL: none)
 * and waits at most timeout_s seconds (0: HG_CLIENT_TIMEOUT_S). res is filled whenever an
 * answer arrived. Returns 0 for a 2xx answer; HG_EPROTO for any other status, with
 * "hub said 400 bad_request: <message>" in err; HG_EIO with "cannot reach hub at URL: why"
 * when no answer came; HG_ETIMEDOUT; HG_ECANCELED when *stop was raised. */
int hg_client_call(hg_client *c, const char *method, const char *path, const cJSON *body,
                   long timeout_s, hg_client_res *res, hg_err *err);
void hg_client_res_free(hg_client_res *res);

/* Appends s to b percent-encoded for use as one path segment or query value. */
int hg_client_escape(hg_buf *b, const char *s);

/* Whether url's host is a loopback name or address (localhost, 127.0.0.0/8, ::1). */
int hg_client_is_loopback(const char *url);
