/* The CLI's argument parser: options with values, repeats, flags, positionals, mistakes. */
#include "check.h"
#include "cli/args.h"

static const hg_args_opt opts[] = {
    {"param", 0, 1}, {"follow", 'f', 0}, {"hub", 0, 1}, {"help", 'h', 0}, {NULL, 0, 0}};

static void values_repeats_and_positionals(void) {
  char *argv[] = {"run", "hello", "--param", "a=1", "--param=b=2", "-f", "--hub", "https://x", "extra"};
  hg_args a;
  hg_err err = {0};
  CHECK_EQ_INT(hg_args_parse(&a, opts, 9, argv, 1, &err), 0);
  CHECK_EQ_INT(a.npos, 2);
  CHECK_EQ_STR(a.pos[0], "hello");
  CHECK_EQ_STR(a.pos[1], "extra");
  CHECK_EQ_INT(hg_args_count(&a, "param"), 2);
  CHECK_EQ_STR(hg_args_nth(&a, "param", 0), "a=1");
  /* Only the first '=' separates an inline value, so NAME=VALUE survives intact. */
  CHECK_EQ_STR(hg_args_nth(&a, "param", 1), "b=2");
  CHECK(hg_args_nth(&a, "param", 2) == NULL);
  CHECK(hg_args_has(&a, "follow"));
  CHECK(!hg_args_has(&a, "help"));
  CHECK_EQ_STR(hg_args_get(&a, "hub"), "https://x");
  hg_args_free(&a);
}

static void last_value_wins(void) {
  char *argv[] = {"x", "--hub", "one", "--hub", "two"};
  hg_args a;
  CHECK_EQ_INT(hg_args_parse(&a, opts, 5, argv, 1, NULL), 0);
  CHECK_EQ_STR(hg_args_get(&a, "hub"), "two");
  hg_args_free(&a);
}

static void dash_and_double_dash(void) {
  /* "-" is stdin, a value; after "--" even "--follow" is a positional. */
  char *argv[] = {"set", "NAME", "-", "--", "--follow", "-x"};
  hg_args a;
  CHECK_EQ_INT(hg_args_parse(&a, opts, 6, argv, 1, NULL), 0);
  CHECK_EQ_INT(a.npos, 4);
  CHECK_EQ_STR(a.pos[1], "-");
  CHECK_EQ_STR(a.pos[2], "--follow");
  CHECK_EQ_STR(a.pos[3], "-x");
  CHECK(!hg_args_has(&a, "follow"));
  hg_args_free(&a);
}

static void mistakes_name_the_option(void) {
  hg_args a;
  hg_err err = {0};
  char *unknown[] = {"x", "--colour"};
  CHECK_EQ_INT(hg_args_parse(&a, opts, 2, unknown, 1, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "unknown option '--colour'");
  CHECK(a.items == NULL && a.pos == NULL);
  char *missing[] = {"x", "--param"};
  CHECK_EQ_INT(hg_args_parse(&a, opts, 2, missing, 1, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "option '--param' needs a value");
  char *flag_value[] = {"x", "--follow=yes"};
  CHECK_EQ_INT(hg_args_parse(&a, opts, 2, flag_value, 1, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "option '--follow' takes no value");
  char *short_unknown[] = {"x", "-z"};
  CHECK_EQ_INT(hg_args_parse(&a, opts, 2, short_unknown, 1, &err), HG_EINVAL);
  CHECK_EQ_STR(err.msg, "unknown option '-z'");
}

static void short_help(void) {
  char *argv[] = {"x", "-h"};
  hg_args a;
  CHECK_EQ_INT(hg_args_parse(&a, opts, 2, argv, 1, NULL), 0);
  CHECK(hg_args_has(&a, "help"));
  hg_args_free(&a);
}

TEST_MAIN(T(values_repeats_and_positionals), T(last_value_wins), T(dash_and_double_dash),
          T(mistakes_name_the_option), T(short_help))
