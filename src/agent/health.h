/* The agent's optional health listener: GET /healthz and GET /metrics (Prometheus text) over
 * libh2o on the agent's loop, on loopback unless a remote address is explicitly allowed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "core/err.h"
#include "core/loop.h"

typedef struct hg_health hg_health;
/* One scrape being written; handed to the metrics callback. */
typedef struct hg_health_scrape hg_health_scrape;

typedef struct hg_health_opts {
  const char *listen; /* "127.0.0.1:9101", "[::1]:9101", "localhost:0" (port 0: a free one) */
  /* A non-loopback address is refused unless this is set: the listener has no
   * authentication, and the agent's security model says it opens no inbound port. */
  bool allow_remote;
  /* Called on each GET /metrics to add the agent's samples (hg_health_gauge/counter). NULL:
   * only hangar_agent_info. */
  void (*metrics)(hg_health_scrape *s, void *data);
  /* Called on each GET /healthz: 0 when healthy, else nonzero with a reason in why (no
   * secret: anyone on the host may read it). NULL: healthy while the loop runs. */
  int (*check)(char *why, size_t size, void *data);
  void *data;
} hg_health_opts;

/* Starts listening. Errors name the address: not HOST:PORT, not loopback without
 * allow_remote, in use. */
int hg_health_start(hg_loop *loop, const hg_health_opts *opts, hg_health **out, hg_err *err);
/* "http://127.0.0.1:9101" with the real port. */
const char *hg_health_url(const hg_health *h);
/* Stops accepting and closes the open connections (their answers are cut short). Idempotent;
 * hg_health_free does it too. */
void hg_health_shutdown(hg_health *h);
/* Shuts down, lets the loop close the connections, then frees. Call with the loop not running
 * (it runs it briefly itself). NULL is a no-op. */
void hg_health_free(hg_health *h);

/* A sample, from the metrics callback. name is a metric name, "hangar_agent_" prepended
 * unless it starts with "hangar_"; it may carry labels in braces: `runs{state="running"}`
 * (also a form core.metrics_set accepts). Characters a metric name cannot hold become '_';
 * a sample with malformed labels is dropped. Emit the samples of one metric together: its
 * TYPE line is written before its first sample only. */
void hg_health_gauge(hg_health_scrape *s, const char *name, double value);
void hg_health_counter(hg_health_scrape *s, const char *name, double value);
