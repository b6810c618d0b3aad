/* What every CLI command shares: the connection options, --help, error lines, exit codes,
 * and printing JSON and tables. */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>

#include "cli/args.h"
#include "cli/client.h"
#include "cli/settings.h"
#include "cli/table.h"
#include "core/err.h"

/* Exit codes of the CLI itself; a followed run exits with the run's own code instead. */
enum { HG_CLI_OK = 0, HG_CLI_FAILED = 1, HG_CLI_USAGE = 2 };

/* Options every command that talks to the hub accepts, and --help. */
#define HG_CLI_CONN_OPTS \
  {"hub", 0, 1}, {"token-file", 0, 1}, {"ca-file", 0, 1}, {"allow-http", 0, 0}, {"help", 'h', 0}
#define HG_CLI_JSON_OPT {"json", 0, 0}

/* A subcommand of a command group ("hangar key create"). */
typedef struct hg_cli_sub {
  const char *name;
  int (*fn)(int argc, char **argv); /* argv[0] is the subcommand's name */
  const char *summary;
} hg_cli_sub;

/* A connection to the hub, ready for calls. */
typedef struct hg_cli {
  hg_settings settings;
  hg_client client;
} hg_cli;

/* Runs the subcommand named by argv[1] ("hangar GROUP SUB ..."), or prints the group's
 * help for --help (exit 0) or nothing/an unknown name (exit 2). */
int hg_cli_dispatch(const char *group, const char *about, const hg_cli_sub *subs, size_t n,
                    int argc, char **argv);

/* Parses argv[1..] for the command cmd ("key create"). Returns 1 when the command is over:
 * --help printed help (exit code 0 in *code) or the arguments were wrong (the error and a
 * pointer to --help printed, *code 2). help is the command's own text; the connection
 * options' text is added when with_conn is set. */
int hg_cli_parse(hg_args *a, const hg_args_opt *opts, int argc, char **argv, const char *cmd,
                 const char *help, int with_conn, int *code);

/* Resolves the hub and key from a's connection options, the environment and the config
 * file, and prints any warning. Returns 0, or the exit code after printing the error. */
int hg_cli_open(hg_cli *cli, const hg_args *a, int need_token);
void hg_cli_close(hg_cli *cli);
/* hg_cli_open for a command that takes no positional argument: one is a usage error. On
 * failure a is freed and the exit code returned; on success both stay the caller's. */
int hg_cli_open_none(hg_cli *cli, hg_args *a, const char *cmd);
/* The same for a command that takes exactly one: missing is the usage error when there is
 * none ("which run? give its id"), extra when there are more ("give exactly one run id"). */
int hg_cli_open_one(hg_cli *cli, hg_args *a, const char *cmd, const char *missing,
                    const char *extra);

/* hg_client_call on prefix + name (escaped as one path segment) + suffix (NULL: none):
 * "/v1/runs/" ID "/cancel". */
int hg_cli_call_named(hg_cli *cli, const char *method, const char *prefix, const char *name,
                      const char *suffix, const cJSON *body, hg_client_res *res, hg_err *err);
/* GETs path and prints the list in the answer (hg_cli_array(answer, member)): the whole
 * answer as JSON with --json in a, else a table with ncols columns headed head, each
 * element's row added by row. Returns the exit code. */
int hg_cli_list(hg_cli *cli, const hg_args *a, const char *path, const char *member,
                size_t ncols, const char *const *head,
                void (*row)(hg_table *t, const cJSON *item));

/* "hangar CMD: message" plus "(see 'hangar CMD --help')" on stderr; returns 2. */
int hg_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "hangar: message" on stderr; returns 1. */
int hg_cli_fail(const hg_err *err);
void hg_cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Pretty JSON and a newline on stdout. */
int hg_cli_print_json(const cJSON *v);
/* Renders the table to stdout. */
int hg_cli_print_table(const hg_table *t);
/* The list in a hub's answer: the member named member when it is an array, else doc itself
 * when it is one, else NULL. */
const cJSON *hg_cli_array(const cJSON *doc, const char *member);
/* A member as table text: strings as they are, numbers and booleans printed, null or absent
 * as "-", objects and arrays as compact JSON. scratch holds what is not a string. */
const char *hg_cli_text(const cJSON *obj, const char *name, char *scratch, size_t cap);

/* The connection options' help text, shared by every command's --help. */
extern const char hg_cli_conn_help[];
