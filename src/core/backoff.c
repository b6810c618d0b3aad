/* Capped exponential backoff with full jitter. */
#include "core/backoff.h"

#include <openssl/rand.h>
#include <stdbool.h>

#include "core/forks.h"

/* SplitMix64: tiny, fast and statistically sound enough for spreading retries; the
 * unpredictability that matters comes from the CSPRNG seed. */
static uint64_t splitmix64(void *ctx) {
  uint64_t *state = ctx;
  uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

/* Where each backoff's seed comes from: a SplitMix64 stream per thread, seeded once from the
 * CSPRNG. A call into the DRBG costs ~17 us when its state went cold, as it does between two
 * runs an agent launches; the seeds only have to spread retries apart, and successive outputs
 * of the stream are distinct (SplitMix64's output is a bijection of its counter), so each
 * backoff of a process still draws its own sequence. Dropped in a forked child, which would
 * otherwise hand out its parent's next seeds. */
typedef struct seed_stream {
  uint64_t state;
  bool seeded;
  unsigned long forks; /* hg_forks_generation() when it was seeded */
} seed_stream;

static _Thread_local seed_stream stream;

static int next_seed(uint64_t *seed) {
  unsigned long forks = hg_forks_generation();
  if (!stream.seeded || stream.forks != forks) {
    unsigned char bytes[sizeof stream.state];
    if (RAND_bytes(bytes, sizeof bytes) != 1) return -1;
    stream.state = 0;
    for (size_t i = 0; i < sizeof bytes; i++) stream.state = (stream.state << 8) | bytes[i];
    stream.seeded = true;
    stream.forks = forks;
  }
  *seed = splitmix64(&stream.state);
  return 0;
}

int hg_backoff_init(hg_backoff *b, int64_t base_ms, int64_t cap_ms, hg_err *err) {
  if (base_ms <= 0)
    return hg_err_set(err, HG_EINVAL, "backoff base must be positive, got %lld ms",
                      (long long)base_ms);
  if (cap_ms < base_ms)
    return hg_err_set(err, HG_EINVAL, "backoff cap (%lld ms) is below its base (%lld ms)",
                      (long long)cap_ms, (long long)base_ms);
  b->base_ms = base_ms;
  b->cap_ms = cap_ms;
  b->attempt = 0;
  b->rand = NULL;
  b->rand_ctx = NULL;
  if (next_seed(&b->state))
    return hg_err_set(err, HG_EIO, "cannot seed the backoff generator from the system CSPRNG");
  return 0;
}

void hg_backoff_seed(hg_backoff *b, uint64_t seed) { b->state = seed; }

void hg_backoff_set_rand(hg_backoff *b, hg_backoff_rand_fn fn, void *ctx) {
  b->rand = fn;
  b->rand_ctx = ctx;
}

int64_t hg_backoff_ceiling(const hg_backoff *b, unsigned attempt) {
  /* base * 2^attempt > cap  <=>  base > cap >> attempt, which cannot overflow. */
  if (attempt >= 63 || b->base_ms > (b->cap_ms >> attempt)) return b->cap_ms;
  return b->base_ms << attempt;
}

static uint64_t draw(hg_backoff *b) {
  return b->rand ? b->rand(b->rand_ctx) : splitmix64(&b->state);
}

int64_t hg_backoff_next(hg_backoff *b) {
  uint64_t ceiling = (uint64_t)hg_backoff_ceiling(b, b->attempt);
  if (b->attempt < UINT32_MAX) b->attempt++;
  /* Uniform over the ceiling + 1 values 0..ceiling; rejection avoids modulo bias. */
  uint64_t range = ceiling + 1;
  uint64_t limit = UINT64_MAX - UINT64_MAX % range;
  /* The retry bound keeps a broken injected source from spinning forever. */
  uint64_t x = draw(b);
  for (int tries = 0; x >= limit && tries < 64; tries++) x = draw(b);
  return (int64_t)(x % range);
}

void hg_backoff_reset(hg_backoff *b) { b->attempt = 0; }
