/* What every CLI command shares: options, help, errors, output. */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char hg_cli_conn_help[] =
    "connection options:\n"
    "  --hub URL          the hub; else $HANGAR_HUB_URL, else hub_url in the CLI config file\n"
    "                     ($HANGAR_CLI_CONFIG, else ~/.config/hangar/cli.lua)\n"
    "  --token-file FILE  a file holding the API key; else $HANGAR_TOKEN, else token_file in\n"
    "                     the CLI config file. The key is never printed.\n"
    "  --ca-file FILE     PEM bundle of the CAs that sign the hub's certificate; else\n"
    "                     $HANGAR_CA_FILE, else ca_file in the CLI config file\n"
    "  --allow-http       allow plain http:// to a host that is not loopback\n"
    "  -h, --help         show this help\n";

int hg_cli_usage(const char *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "hangar %s: ", cmd);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see 'hangar %s --help')\n", cmd);
  va_end(ap);
  return HG_CLI_USAGE;
}

int hg_cli_fail(const hg_err *err) {
  fprintf(stderr, "hangar: %s\n", err->msg[0] ? err->msg : "failed");
  return HG_CLI_FAILED;
}

void hg_cli_warn(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "hangar: warning: ");
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
}

int hg_cli_dispatch(const char *group, const char *about, const hg_cli_sub *subs, size_t n,
                    int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : NULL;
  int help = sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0);
  if (sub && !help)
    for (size_t i = 0; i < n; i++)
      if (strcmp(sub, subs[i].name) == 0) return subs[i].fn(argc - 1, argv + 1);
  FILE *out = help ? stdout : stderr;
  if (sub && !help) fprintf(stderr, "hangar %s: unknown subcommand '%s'\n\n", group, sub);
  fprintf(out, "usage: hangar %s SUBCOMMAND [ARGS]\n\n%s\n\nsubcommands:\n", group, about);
  for (size_t i = 0; i < n; i++) fprintf(out, "  %-8s %s\n", subs[i].name, subs[i].summary);
  fprintf(out, "\n'hangar %s SUBCOMMAND --help' describes one.\n", group);
  return help ? HG_CLI_OK : HG_CLI_USAGE;
}

int hg_cli_parse(hg_args *a, const hg_args_opt *opts, int argc, char **argv, const char *cmd,
                 const char *help, int with_conn, int *code) {
  hg_err err = {0};
  *code = HG_CLI_OK;
  if (hg_args_parse(a, opts, argc, argv, 1, &err) < 0) {
    *code = hg_cli_usage(cmd, "%s", err.msg);
    return 1;
  }
  if (hg_args_has(a, "help")) {
    fputs(help, stdout);
    if (with_conn) printf("\n%s", hg_cli_conn_help);
    hg_args_free(a);
    *code = HG_CLI_OK;
    return 1;
  }
  return 0;
}

int hg_cli_open(hg_cli *cli, const hg_args *a, int need_token) {
  memset(cli, 0, sizeof *cli);
  hg_err err = {0};
  hg_settings_flags flags = {
      .hub_url = hg_args_get(a, "hub"),
      .token_file = hg_args_get(a, "token-file"),
      .ca_file = hg_args_get(a, "ca-file"),
      .allow_http = hg_args_has(a, "allow-http"),
  };
  if (hg_settings_resolve(&cli->settings, &flags, &err) < 0) {
    hg_cli_fail(&err);
    return HG_CLI_USAGE;
  }
  if (cli->settings.warnings.len) {
    char *line = cli->settings.warnings.data, *nl;
    while ((nl = strchr(line, '\n'))) {
      *nl = '\0';
      hg_cli_warn("%s", line);
      line = nl + 1;
    }
  }
  if (need_token && hg_settings_require_token(&cli->settings, &err) < 0) {
    hg_settings_free(&cli->settings);
    hg_cli_fail(&err);
    return HG_CLI_USAGE;
  }
  if (hg_client_init(&cli->client, cli->settings.hub_url, cli->settings.token,
                     cli->settings.ca_file, cli->settings.allow_http, &err) < 0) {
    hg_settings_free(&cli->settings);
    hg_cli_fail(&err);
    return err.code == HG_EINVAL ? HG_CLI_USAGE : HG_CLI_FAILED;
  }
  return 0;
}

void hg_cli_close(hg_cli *cli) {
  hg_client_free(&cli->client);
  hg_settings_free(&cli->settings);
}

int hg_cli_open_none(hg_cli *cli, hg_args *a, const char *cmd) {
  int code = a->npos ? hg_cli_usage(cmd, "unexpected argument '%s'", a->pos[0]) : 0;
  if (!code) code = hg_cli_open(cli, a, 1);
  if (code) hg_args_free(a);
  return code;
}

int hg_cli_open_one(hg_cli *cli, hg_args *a, const char *cmd, const char *missing,
                    const char *extra) {
  int code = a->npos != 1 ? hg_cli_usage(cmd, "%s", a->npos ? extra : missing) : 0;
  if (!code) code = hg_cli_open(cli, a, 1);
  if (code) hg_args_free(a);
  return code;
}

int hg_cli_call_named(hg_cli *cli, const char *method, const char *prefix, const char *name,
                      const char *suffix, const cJSON *body, hg_client_res *res, hg_err *err) {
  hg_buf path = HG_BUF_INIT;
  int rc = hg_buf_appends(&path, prefix);
  if (rc == 0) rc = hg_client_escape(&path, name);
  if (rc == 0 && suffix) rc = hg_buf_appends(&path, suffix);
  if (rc < 0) {
    /* res is filled whatever happens, as hg_client_call does. */
    res->status = 0;
    res->json = NULL;
    rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  } else {
    rc = hg_client_call(&cli->client, method, path.data, body, 0, res, err);
  }
  hg_buf_free(&path);
  return rc;
}

int hg_cli_list(hg_cli *cli, const hg_args *a, const char *path, const char *member,
                size_t ncols, const char *const *head,
                void (*row)(hg_table *t, const cJSON *item)) {
  int code = HG_CLI_OK;
  hg_client_res res;
  hg_err err = {0};
  if (hg_client_call(&cli->client, "GET", path, NULL, 0, &res, &err) < 0) {
    code = hg_cli_fail(&err);
  } else if (hg_args_has(a, "json")) {
    hg_cli_print_json(res.json);
  } else {
    hg_table t;
    hg_table_init(&t, ncols, head);
    const cJSON *item;
    cJSON_ArrayForEach(item, hg_cli_array(res.json, member)) row(&t, item);
    hg_cli_print_table(&t);
    hg_table_free(&t);
  }
  hg_client_res_free(&res);
  return code;
}

int hg_cli_print_json(const cJSON *v) {
  char *text = cJSON_Print(v);
  if (!text) return HG_ENOMEM;
  puts(text);
  cJSON_free(text);
  return 0;
}

int hg_cli_print_table(const hg_table *t) {
  hg_buf b = HG_BUF_INIT;
  int rc = hg_table_render(t, &b);
  if (rc == 0 && b.len) fwrite(b.data, 1, b.len, stdout);
  hg_buf_free(&b);
  return rc;
}

const cJSON *hg_cli_array(const cJSON *doc, const char *member) {
  const cJSON *m = cJSON_GetObjectItemCaseSensitive(doc, member);
  if (cJSON_IsArray(m)) return m;
  return cJSON_IsArray(doc) ? doc : NULL;
}

const char *hg_cli_text(const cJSON *obj, const char *name, char *scratch, size_t cap) {
  const cJSON *v = name ? cJSON_GetObjectItemCaseSensitive(obj, name) : obj;
  if (!v || cJSON_IsNull(v)) return "-";
  if (cJSON_IsString(v)) return v->valuestring;
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
  char *text = cJSON_PrintUnformatted(v);
  snprintf(scratch, cap, "%s", text ? text : "?");
  cJSON_free(text);
  return scratch;
}
