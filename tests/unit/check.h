/* A minimal unit-test harness: CHECK records a failure and goes on; TEST_MAIN runs them all. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;

#define CHECK(cond)                                                        \
  do {                                                                     \
    check_count++;                                                         \
    if (!(cond)) {                                                         \
      check_failures++;                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                      \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                              \
  do {                                                                                  \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                     \
    check_count++;                                                                      \
    if (check_a_ != check_b_) {                                                         \
      check_failures++;                                                                 \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, \
              #b, check_a_, check_b_);                                                  \
    }                                                                                   \
  } while (0)

#define CHECK_EQ_STR(a, b)                                                                \
  do {                                                                                    \
    const char *check_a_ = (a), *check_b_ = (b);                                          \
    check_count++;                                                                        \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                     \
      check_failures++;                                                                   \
      fprintf(stderr, "%s:%d: %s == %s failed:\n  got:      %s\n  expected: %s\n", __FILE__, \
              __LINE__, #a, #b, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); \
    }                                                                                     \
  } while (0)

#define CHECK_CONTAINS(hay, needle)                                                       \
  do {                                                                                    \
    const char *check_h_ = (hay), *check_n_ = (needle);                                   \
    check_count++;                                                                        \
    if (!check_h_ || !check_n_ || !strstr(check_h_, check_n_)) {                          \
      check_failures++;                                                                   \
      fprintf(stderr, "%s:%d: %s does not contain %s:\n  text:   %s\n  wanted: %s\n", __FILE__, \
              __LINE__, #hay, #needle, check_h_ ? check_h_ : "(null)",                    \
              check_n_ ? check_n_ : "(null)");                                            \
    }                                                                                     \
  } while (0)

#define CHECK_EQ_MEM(a, b, n)                                                        \
  do {                                                                               \
    check_count++;                                                                   \
    if (memcmp((a), (b), (n)) != 0) {                                                \
      check_failures++;                                                              \
      fprintf(stderr, "%s:%d: memory %s == %s failed\n", __FILE__, __LINE__, #a, #b); \
    }                                                                                \
  } while (0)

typedef struct {
  const char *name;
  void (*fn)(void);
} check_test;

#define TEST_MAIN(...)                                                                  \
  int main(int argc, char **argv) {                                                     \
    check_test tests[] = {__VA_ARGS__};                                                 \
    size_t n = sizeof tests / sizeof tests[0];                                          \
    for (size_t i = 0; i < n; i++) {                                                    \
      if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;                    \
      int before = check_failures;                                                      \
      tests[i].fn();                                                                    \
      fprintf(stderr, "%s %s\n", check_failures == before ? "ok  " : "FAIL", tests[i].name); \
    }                                                                                   \
    fprintf(stderr, "%d checks, %d failed\n", check_count, check_failures);            \
    return check_failures ? 1 : (check_count ? 0 : 1);                                 \
  }

#define T(fn) {#fn, fn}
