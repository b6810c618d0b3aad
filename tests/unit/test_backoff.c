/* Backoff: full-jitter delays stay within the capped exponential ceiling and really spread. */
#include <stdint.h>

#include "check.h"
#include "core/backoff.h"

static void delays_stay_within_the_exponential_ceiling(void) {
  hg_backoff b;
  hg_err err;
  CHECK_EQ_INT(hg_backoff_init(&b, 100, 30000, &err), 0);
  hg_backoff_seed(&b, 42);
  int out_of_bounds = 0;
  for (unsigned a = 0; a < 200; a++) {
    int64_t ceiling = hg_backoff_ceiling(&b, a);
    int64_t expect = a < 9 ? (100LL << a) : 30000; /* 100 * 2^9 = 51200 > cap */
    if (ceiling != expect) out_of_bounds++;
    CHECK_EQ_INT(b.attempt, a);
    int64_t d = hg_backoff_next(&b);
    if (d < 0 || d > ceiling) out_of_bounds++;
  }
  CHECK_EQ_INT(out_of_bounds, 0);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 0), 100);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 3), 800);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 8), 25600);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 9), 30000);
}

static void cap_is_respected_and_reached(void) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 50, 5000, NULL), 0);
  hg_backoff_seed(&b, 7);
  int64_t max = 0;
  int over = 0;
  for (int i = 0; i < 10000; i++) {
    b.attempt = 20; /* saturated */
    int64_t d = hg_backoff_next(&b);
    if (d > 5000 || d < 0) over++;
    if (d > max) max = d;
  }
  CHECK_EQ_INT(over, 0);
  CHECK(max > 4900); /* the whole range is used, not just the bottom of it */
}

static void distribution_is_spread_around_half_the_cap(void) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 100, 10000, NULL), 0); /* CSPRNG seed */
  double sum = 0;
  int64_t min = INT64_MAX;
  int below_quarter = 0, above_three_quarters = 0;
  const int n = 10000;
  for (int i = 0; i < n; i++) {
    b.attempt = 30;
    int64_t d = hg_backoff_next(&b);
    sum += (double)d;
    if (d < min) min = d;
    if (d < 2500) below_quarter++;
    if (d > 7500) above_three_quarters++;
  }
  double mean = sum / n;
  CHECK(mean > 4700 && mean < 5300); /* expected 5000, sd of the mean ~29 */
  CHECK(min < 100);
  /* Each quarter should hold ~2500 draws. */
  CHECK(below_quarter > 2000 && below_quarter < 3000);
  CHECK(above_three_quarters > 2000 && above_three_quarters < 3000);
}

static void reset_starts_over_from_base(void) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 10, 100000, NULL), 0);
  for (int i = 0; i < 12; i++) hg_backoff_next(&b);
  CHECK_EQ_INT(b.attempt, 12);
  hg_backoff_reset(&b);
  CHECK_EQ_INT(b.attempt, 0);
  int over = 0;
  for (int i = 0; i < 1000; i++) {
    hg_backoff_reset(&b);
    if (hg_backoff_next(&b) > 10) over++;
  }
  CHECK_EQ_INT(over, 0);
}

static void no_overflow_at_attempt_1000(void) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 1, INT64_MAX, NULL), 0);
  int bad = 0;
  for (int i = 0; i < 1000; i++) {
    int64_t d = hg_backoff_next(&b);
    if (d < 0 || d > hg_backoff_ceiling(&b, b.attempt - 1)) bad++;
  }
  CHECK_EQ_INT(b.attempt, 1000);
  CHECK_EQ_INT(bad, 0);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 1000), INT64_MAX);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 62), INT64_C(1) << 62);

  CHECK_EQ_INT(hg_backoff_init(&b, INT64_MAX / 3, INT64_MAX / 2, NULL), 0);
  b.attempt = 1000;
  int64_t d = hg_backoff_next(&b);
  CHECK(d >= 0 && d <= INT64_MAX / 2);
  CHECK_EQ_INT(hg_backoff_ceiling(&b, 1), INT64_MAX / 2);
  b.attempt = UINT32_MAX; /* the counter saturates instead of wrapping to 0 */
  hg_backoff_next(&b);
  CHECK_EQ_INT(b.attempt, UINT32_MAX);
}

static uint64_t fixed_source(void *ctx) { return *(uint64_t *)ctx; }

static void random_source_is_injectable(void) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 100, 1000, NULL), 0);
  uint64_t value = 250;
  hg_backoff_set_rand(&b, fixed_source, &value);
  CHECK_EQ_INT(hg_backoff_next(&b), 250 % 101); /* attempt 0: uniform over 0..100 */
  CHECK_EQ_INT(hg_backoff_next(&b), 250 % 201); /* attempt 1: 0..200 */
  value = 0;
  CHECK_EQ_INT(hg_backoff_next(&b), 0);
  value = UINT64_MAX; /* always rejected: the draw must still end */
  int64_t d = hg_backoff_next(&b);
  CHECK(d >= 0 && d <= 800);

  /* Same seed, same sequence; another seed, another sequence. */
  hg_backoff x, y, z;
  hg_backoff_init(&x, 100, 100000, NULL);
  hg_backoff_init(&y, 100, 100000, NULL);
  hg_backoff_init(&z, 100, 100000, NULL);
  hg_backoff_seed(&x, 1234);
  hg_backoff_seed(&y, 1234);
  hg_backoff_seed(&z, 1235);
  int same = 1, differ = 0;
  for (int i = 0; i < 20; i++) {
    int64_t a = hg_backoff_next(&x), c = hg_backoff_next(&y), e = hg_backoff_next(&z);
    if (a != c) same = 0;
    if (a != e) differ = 1;
  }
  CHECK(same);
  CHECK(differ);
}

static void bad_parameters_are_refused(void) {
  hg_backoff b;
  hg_err err;
  CHECK_EQ_INT(hg_backoff_init(&b, 0, 100, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "base") != NULL);
  CHECK_EQ_INT(hg_backoff_init(&b, 200, 100, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "cap") != NULL);
}

TEST_MAIN(T(delays_stay_within_the_exponential_ceiling), T(cap_is_respected_and_reached),
          T(distribution_is_spread_around_half_the_cap), T(reset_starts_over_from_base),
          T(no_overflow_at_attempt_1000), T(random_source_is_injectable),
          T(bad_parameters_are_refused))
