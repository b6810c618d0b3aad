/* Backoff: full-jitter delays stay within the capped exponential ceiling and really spread. */
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Eight draws at a saturated attempt with a ~2^40 ms cap: two generators that agree on all
 * of them share their state. */
static void draw8(int64_t out[8]) {
  hg_backoff b;
  CHECK_EQ_INT(hg_backoff_init(&b, 1, INT64_C(1) << 40, NULL), 0);
  for (int i = 0; i < 8; i++) {
    b.attempt = 50;
    out[i] = hg_backoff_next(&b);
  }
}

static int same8(const int64_t a[8], const int64_t b[8]) {
  for (int i = 0; i < 8; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

static void backoffs_made_one_after_another_draw_their_own_sequences(void) {
  int64_t first[8], second[8], third[8];
  draw8(first);
  draw8(second);
  draw8(third);
  CHECK(!same8(first, second));
  CHECK(!same8(second, third));
  CHECK(!same8(first, third));
}

/* A child that inherited its parent's generator must not hand out the parent's next seeds:
 * agents forked from one process would retry in lockstep. */
static void a_forked_child_does_not_repeat_its_parent(void) {
  int64_t before[8];
  draw8(before); /* the parent's generator is seeded before the fork */
  int fds[2];
  CHECK_EQ_INT(pipe(fds), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    int64_t child[8];
    draw8(child);
    ssize_t n = write(fds[1], child, sizeof child);
    _exit(n == (ssize_t)sizeof child ? 0 : 1);
  }
  close(fds[1]);
  int64_t child[8], parent[8];
  CHECK_EQ_INT((int)read(fds[0], child, sizeof child), (int)sizeof child);
  close(fds[0]);
  int status = 0;
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  draw8(parent);
  CHECK(!same8(child, parent));
  CHECK(!same8(child, before));
}

TEST_MAIN(T(delays_stay_within_the_exponential_ceiling), T(cap_is_respected_and_reached),
          T(distribution_is_spread_around_half_the_cap), T(reset_starts_over_from_base),
          T(no_overflow_at_attempt_1000), T(random_source_is_injectable),
          T(bad_parameters_are_refused),
          T(backoffs_made_one_after_another_draw_their_own_sequences),
          T(a_forked_child_does_not_repeat_its_parent))
