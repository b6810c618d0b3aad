/* Command-line parsing for the CLI's subcommands: long options, repeats, positionals. */
#pragma once

#include <stddef.h>

#include "core/err.h"

/* One accepted option. A list of them ends with an entry whose name is NULL. */
typedef struct hg_args_opt {
  const char *name;  /* "param" for --param */
  char short_name;   /* 'h' for -h, or 0 */
  int takes_value;   /* 1: --name VALUE or --name=VALUE; 0: a flag */
} hg_args_opt;

typedef struct hg_args_item {
  const hg_args_opt *opt;
  const char *value; /* points into argv; NULL for a flag */
} hg_args_item;

typedef struct hg_args {
  hg_args_item *items; /* options in the order given */
  size_t nitems;
  const char **pos;    /* positional arguments, in order */
  size_t npos;
} hg_args;

#define HG_ARGS_INIT {NULL, 0, NULL, 0}

/* Parses argv[first..argc-1] against opts. "--" ends the options; a lone "-" is positional
 * (it means stdin). An unknown option, a missing value or a value given to a flag is
 * HG_EINVAL with a message naming the option. On failure a is left empty. */
int hg_args_parse(hg_args *a, const hg_args_opt *opts, int argc, char **argv, int first,
                  hg_err *err);
/* Whether the option named name was given at least once. */
int hg_args_has(const hg_args *a, const char *name);
/* The value of the last --name given, or NULL. */
const char *hg_args_get(const hg_args *a, const char *name);
/* How many times --name was given, and the i-th value (in order). */
size_t hg_args_count(const hg_args *a, const char *name);
const char *hg_args_nth(const hg_args *a, const char *name, size_t i);
void hg_args_free(hg_args *a);
