/* Command-line parsing for the CLI's subcommands. */
#include "cli/args.h"

#include <stdlib.h>
#include <string.h>

static const hg_args_opt *find_long(const hg_args_opt *opts, const char *name, size_t len) {
  for (const hg_args_opt *o = opts; o->name; o++)
    if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
  return NULL;
}

static const hg_args_opt *find_short(const hg_args_opt *opts, char c) {
  for (const hg_args_opt *o = opts; o->name; o++)
    if (o->short_name && o->short_name == c) return o;
  return NULL;
}

static int push_item(hg_args *a, const hg_args_opt *opt, const char *value, hg_err *err) {
  hg_args_item *items = realloc(a->items, (a->nitems + 1) * sizeof *items);
  if (!items) return hg_err_set(err, HG_ENOMEM, "out of memory");
  a->items = items;
  a->items[a->nitems].opt = opt;
  a->items[a->nitems].value = value;
  a->nitems++;
  return 0;
}

static int push_pos(hg_args *a, const char *value, hg_err *err) {
  const char **pos = realloc(a->pos, (a->npos + 1) * sizeof *pos);
  if (!pos) return hg_err_set(err, HG_ENOMEM, "out of memory");
  a->pos = pos;
  a->pos[a->npos++] = value;
  return 0;
}

static int parse(hg_args *a, const hg_args_opt *opts, int argc, char **argv, int first,
                 hg_err *err) {
  int only_pos = 0;
  for (int i = first; i < argc; i++) {
    const char *arg = argv[i];
    int rc;
    if (only_pos || arg[0] != '-' || arg[1] == '\0') {
      rc = push_pos(a, arg, err);
    } else if (strcmp(arg, "--") == 0) {
      only_pos = 1;
      continue;
    } else if (arg[1] == '-') {
      const char *name = arg + 2, *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      const hg_args_opt *o = find_long(opts, name, len);
      if (!o) return hg_err_set(err, HG_EINVAL, "unknown option '--%.*s'", (int)len, name);
      const char *value = NULL;
      if (o->takes_value) {
        if (eq) {
          value = eq + 1;
        } else if (i + 1 < argc) {
          value = argv[++i];
        } else {
          return hg_err_set(err, HG_EINVAL, "option '--%s' needs a value", o->name);
        }
      } else if (eq) {
        return hg_err_set(err, HG_EINVAL, "option '--%s' takes no value", o->name);
      }
      rc = push_item(a, o, value, err);
    } else {
      /* Short options stand alone (-h); bundling is not worth its ambiguity here. */
      const hg_args_opt *o = arg[2] == '\0' ? find_short(opts, arg[1]) : NULL;
      if (!o) return hg_err_set(err, HG_EINVAL, "unknown option '%s'", arg);
      const char *value = NULL;
      if (o->takes_value) {
        if (i + 1 >= argc) return hg_err_set(err, HG_EINVAL, "option '%s' needs a value", arg);
        value = argv[++i];
      }
      rc = push_item(a, o, value, err);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

int hg_args_parse(hg_args *a, const hg_args_opt *opts, int argc, char **argv, int first,
                  hg_err *err) {
  a->items = NULL;
  a->nitems = 0;
  a->pos = NULL;
  a->npos = 0;
  int rc = parse(a, opts, argc, argv, first, err);
  if (rc < 0) hg_args_free(a);
  return rc;
}

size_t hg_args_count(const hg_args *a, const char *name) {
  size_t n = 0;
  for (size_t i = 0; i < a->nitems; i++)
    if (strcmp(a->items[i].opt->name, name) == 0) n++;
  return n;
}

int hg_args_has(const hg_args *a, const char *name) { return hg_args_count(a, name) > 0; }

const char *hg_args_nth(const hg_args *a, const char *name, size_t n) {
  for (size_t i = 0; i < a->nitems; i++)
    if (strcmp(a->items[i].opt->name, name) == 0 && n-- == 0) return a->items[i].value;
  return NULL;
}

const char *hg_args_get(const hg_args *a, const char *name) {
  const char *last = NULL;
  for (size_t i = 0; i < a->nitems; i++)
    if (strcmp(a->items[i].opt->name, name) == 0) last = a->items[i].value;
  return last;
}

void hg_args_free(hg_args *a) {
  free(a->items);
  free(a->pos);
  a->items = NULL;
  a->pos = NULL;
  a->nitems = a->npos = 0;
}
