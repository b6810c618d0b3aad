/* The hub's HTTP API, independent of the HTTP server: a request in, a response (or "wait") out.
 * Routing, authentication, and every endpoint of the agent and user APIs. */
#pragma once

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "hub/hub.h"

typedef struct hg_api_res hg_api_res;

typedef struct hg_api_req {
  const char *method;        /* NUL-terminated */
  const char *path;          /* without the query */
  const char *query;         /* after '?', or NULL */
  const char *authorization; /* the Authorization header, or NULL */
  const char *body;
  size_t body_len;
  bool resumed;              /* evaluated again after a wake-up */
  bool final;                /* its wait is over: answer now, whatever there is */
  /* Set by a server that can write this request's answer before the handler returns (NULL:
   * it cannot). A handler that uses it sets res->sent; the caller then writes nothing. */
  void (*answer)(struct hg_api_req *req, hg_api_res *res);
  void *answer_data;
} hg_api_req;

struct hg_api_res {
  int status;
  cJSON *json;               /* the body, or NULL for text (or none, 204) */
  hg_buf text;
  const char *content_type;  /* of text */
  char allow[64];            /* Allow header of a 405 */
  const char *route;         /* static name of the route, for metrics and logs */
  /* set when the request waits instead of being answered */
  bool park;
  hg_hub_wait_kind park_kind;
  char park_key[HG_HUB_ID_MAX + 1];
  int64_t park_deadline_ms;
  bool sent;                 /* already written through req->answer */
};

/* Handles one request. Unless res->park is set, res holds the answer; the caller then calls
 * hg_hub_flush to run the wake-ups the request caused. */
void hg_api_handle(hg_hub *hub, hg_api_req *req, hg_api_res *res);
/* The body to send (JSON printed compactly, or the text). */
int hg_api_res_body(hg_api_res *res, hg_buf *out);
void hg_api_res_clear(hg_api_res *res);
/* The protocol's error document for a status the HTTP layer produced itself. */
const char *hg_api_error_code(int status);
