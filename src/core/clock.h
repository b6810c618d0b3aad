/* Wall-clock and monotonic time, and RFC 3339 timestamps. */
#pragma once

#include <stdint.h>

#define HG_TS_LEN 25 /* "2026-11-28T10:00:00.123Z" plus NUL */

int64_t hg_clock_now_ms(void);      /* Unix time in milliseconds */
int64_t hg_clock_mono_ms(void);     /* monotonic milliseconds, for intervals */
int64_t hg_clock_mono_ns(void);
/* Formats Unix milliseconds as RFC 3339 UTC with milliseconds. */
void hg_clock_format(int64_t unix_ms, char out[HG_TS_LEN]);
/* Parses RFC 3339 (any offset, optional fraction); 0 on success, HG_EINVAL otherwise. */
int hg_clock_parse(const char *text, int64_t *unix_ms);
