/* RFC 3339 timestamps. */
#include "check.h"
#include "core/clock.h"
#include "core/err.h"

static void formats_utc_with_millis(void) {
  char ts[HG_TS_LEN];
  hg_clock_format(1795860000123LL, ts);
  CHECK_EQ_STR(ts, "2026-11-28T10:00:00.123Z");
  hg_clock_format(0, ts);
  CHECK_EQ_STR(ts, "1970-01-01T00:00:00.000Z");
}

static void parses_offsets_and_fractions(void) {
  int64_t ms = 0;
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T10:00:00.123Z", &ms), 0);
  CHECK_EQ_INT(ms, 1795860000123LL);
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T11:00:00+01:00", &ms), 0);
  CHECK_EQ_INT(ms, 1795860000000LL);
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T10:00:00.5Z", &ms), 0);
  CHECK_EQ_INT(ms, 1795860000500LL);
  CHECK_EQ_INT(hg_clock_parse("2024-02-29T00:00:00Z", &ms), 0);
}

static void refuses_malformed(void) {
  int64_t ms;
  CHECK_EQ_INT(hg_clock_parse("2026-11-28", &ms), HG_EINVAL);
  CHECK_EQ_INT(hg_clock_parse("2026-13-01T00:00:00Z", &ms), HG_EINVAL);
  CHECK_EQ_INT(hg_clock_parse("2023-02-29T00:00:00Z", &ms), HG_EINVAL);
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T10:00:00", &ms), HG_EINVAL);
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T10:00:00Zjunk", &ms), HG_EINVAL);
  CHECK_EQ_INT(hg_clock_parse("2026-11-28T10:00:00.Z", &ms), HG_EINVAL);
}

static void round_trips(void) {
  for (int64_t t = 0; t < 86400000LL * 365 * 200; t += 86400000LL * 37 + 12345) {
    char ts[HG_TS_LEN];
    int64_t back = 0;
    hg_clock_format(t, ts);
    CHECK_EQ_INT(hg_clock_parse(ts, &back), 0);
    CHECK_EQ_INT(back, t);
  }
}

TEST_MAIN(T(formats_utc_with_millis), T(parses_offsets_and_fractions), T(refuses_malformed),
          T(round_trips))
