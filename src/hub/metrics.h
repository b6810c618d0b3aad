/* The hub's metrics in Prometheus text format: counters kept here, gauges read when scraped. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define HG_METRICS_ROUTES 32
#define HG_METRICS_BUCKETS 14

typedef struct hg_metrics_route {
  const char *name; /* a static route name, e.g. "post_events" */
  uint64_t buckets[HG_METRICS_BUCKETS]; /* cumulative on output, per bucket here */
  uint64_t count;
  double sum;
  uint64_t by_status[6]; /* 1xx .. 5xx, index status / 100 */
} hg_metrics_route;

typedef struct hg_metrics {
  uint64_t events_ingested;
  uint64_t runs_created;
  hg_metrics_route routes[HG_METRICS_ROUTES];
  size_t n_routes;
} hg_metrics;

/* The gauges, read from the hub's state when scraped. */
typedef struct hg_metrics_gauges {
  const char *const *status_names;
  const int64_t *runs_by_status;
  size_t n_status;
  int64_t agents_connected;
  int64_t long_polls_open;
} hg_metrics_gauges;

/* Records one answered request: the route's static name, its HTTP status and how long it took
 * (long-polls included: their time is their wait). */
void hg_metrics_request(hg_metrics *m, const char *route, int status, double seconds);
int hg_metrics_render(const hg_metrics *m, const hg_metrics_gauges *g, hg_buf *out);
