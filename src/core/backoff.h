/* Capped exponential backoff with full jitter, for retrying calls to a peer that failed. */
#pragma once

#include <stdint.h>

#include "core/err.h"

/* A source of uniformly distributed 64-bit values; tests inject their own. */
typedef uint64_t (*hg_backoff_rand_fn)(void *ctx);

typedef struct hg_backoff {
  int64_t base_ms;         /* ceiling of the first delay */
  int64_t cap_ms;          /* no delay is ever longer */
  unsigned attempt;        /* failures since the last reset */
  hg_backoff_rand_fn rand; /* NULL: the built-in generator below */
  void *rand_ctx;
  uint64_t state;          /* the built-in generator's state */
} hg_backoff;

/* base_ms > 0 and cap_ms >= base_ms, else HG_EINVAL. Seeds the built-in generator from a
 * per-thread stream itself seeded once from the OpenSSL CSPRNG (again in a forked child), so
 * agents that fail together do not retry in lockstep and no two backoffs of a process, nor a
 * child and its parent, draw the same sequence. */
int hg_backoff_init(hg_backoff *b, int64_t base_ms, int64_t cap_ms, hg_err *err);
/* Makes the built-in generator deterministic (tests, reproducible runs). */
void hg_backoff_seed(hg_backoff *b, uint64_t seed);
/* Replaces the random source; fn NULL restores the built-in generator. */
void hg_backoff_set_rand(hg_backoff *b, hg_backoff_rand_fn fn, void *ctx);
/* The delay before the next retry: uniform in [0, min(cap, base * 2^attempt)]; then counts
 * the attempt. Never overflows, however many attempts were made. */
int64_t hg_backoff_next(hg_backoff *b);
/* min(cap, base * 2^attempt): the largest delay hg_backoff_next can return at that attempt. */
int64_t hg_backoff_ceiling(const hg_backoff *b, unsigned attempt);
/* After a success: the next delay is drawn from [0, base] again. */
void hg_backoff_reset(hg_backoff *b);
