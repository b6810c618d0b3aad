/* The hub's metrics in Prometheus text exposition format (version 0.0.4). */
#include "hub/metrics.h"

#include <string.h>

#include "core/err.h"

static const double bounds[HG_METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                  0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                  10,     60};
/* The same bounds as written in the le label ("%g" of each): formatting a double per bucket
 * line was most of rendering a scrape. */
static const char *const bound_text[HG_METRICS_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "10",    "60"};

void hg_metrics_request(hg_metrics *m, const char *route, int status, double seconds) {
  if (!route) route = "unknown";
  hg_metrics_route *r = NULL;
  for (size_t i = 0; i < m->n_routes && !r; i++)
    if (strcmp(m->routes[i].name, route) == 0) r = &m->routes[i];
  if (!r) {
    if (m->n_routes == HG_METRICS_ROUTES) return;
    r = &m->routes[m->n_routes++];
    r->name = route;
  }
  r->count++;
  r->sum += seconds;
  for (int i = 0; i < HG_METRICS_BUCKETS; i++)
    if (seconds <= bounds[i]) {
      r->buckets[i]++;
      break;
    }
  int cls = status / 100;
  if (cls >= 1 && cls <= 5) r->by_status[cls]++;
}

int hg_metrics_render(const hg_metrics *m, const hg_metrics_gauges *g, hg_buf *out) {
  int rc = 0;
  rc |= hg_buf_appends(out, "# HELP hangar_runs Runs by status.\n# TYPE hangar_runs gauge\n");
  for (size_t i = 0; i < g->n_status; i++)
    rc |= hg_buf_printf(out, "hangar_runs{status=\"%s\"} %lld\n", g->status_names[i],
                        (long long)g->runs_by_status[i]);
  rc |= hg_buf_printf(out,
                      "# HELP hangar_agents_connected Agents with a live session.\n"
                      "# TYPE hangar_agents_connected gauge\n"
                      "hangar_agents_connected %lld\n"
                      "# HELP hangar_long_polls_open Requests waiting for work or events.\n"
                      "# TYPE hangar_long_polls_open gauge\n"
                      "hangar_long_polls_open %lld\n"
                      "# HELP hangar_events_ingested_total Run events stored.\n"
                      "# TYPE hangar_events_ingested_total counter\n"
                      "hangar_events_ingested_total %llu\n"
                      "# HELP hangar_runs_created_total Runs created.\n"
                      "# TYPE hangar_runs_created_total counter\n"
                      "hangar_runs_created_total %llu\n",
                      (long long)g->agents_connected, (long long)g->long_polls_open,
                      (unsigned long long)m->events_ingested,
                      (unsigned long long)m->runs_created);
  rc |= hg_buf_appends(out,
                       "# HELP hangar_http_requests_total Answered requests by route and status "
                       "class.\n# TYPE hangar_http_requests_total counter\n");
  for (size_t i = 0; i < m->n_routes; i++)
    for (int c = 1; c <= 5; c++)
      if (m->routes[i].by_status[c])
        rc |= hg_buf_printf(out, "hangar_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                            m->routes[i].name, c,
                            (unsigned long long)m->routes[i].by_status[c]);
  rc |= hg_buf_appends(out,
                       "# HELP hangar_http_request_duration_seconds Time from a request's "
                       "arrival to its answer.\n"
                       "# TYPE hangar_http_request_duration_seconds histogram\n");
  for (size_t i = 0; i < m->n_routes; i++) {
    const hg_metrics_route *r = &m->routes[i];
    uint64_t cum = 0;
    for (int b = 0; b < HG_METRICS_BUCKETS; b++) {
      cum += r->buckets[b];
      rc |= hg_buf_printf(out,
                          "hangar_http_request_duration_seconds_bucket{route=\"%s\",le=\"%s\"} "
                          "%llu\n",
                          r->name, bound_text[b], (unsigned long long)cum);
    }
    rc |= hg_buf_printf(out,
                        "hangar_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                        "%llu\n"
                        "hangar_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                        "hangar_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        r->name, (unsigned long long)r->count, r->name, r->sum, r->name,
                        (unsigned long long)r->count);
  }
  return rc ? HG_ENOMEM : 0;
}
