/* `hangar config`: the hub's config variables, plain or secret, that tasks read through env. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cmds.h"

#define VALUE_MAX (512u << 10)

static const char set_help[] =
    "usage: hangar config set NAME VALUE [--secret]\n"
    "       hangar config set NAME --from-file FILE [--secret]\n"
    "       hangar config set NAME - [--secret]          (the value from stdin)\n"
    "\n"
    "Sets a config variable on the hub. A task's env refers to it as {config: NAME}. A secret\n"
    "is stored encrypted, never shown again, and reaches only the agent that runs the task.\n"
    "Give a secret with --from-file or on stdin, so that it stays out of your shell history;\n"
    "one trailing newline of a file or of stdin is dropped.\n"
    "\n"
    "options:\n"
    "  --secret          store the value as a secret (write-only)\n"
    "  --from-file FILE  read the value from FILE\n"
    "\n"
    "examples:\n"
    "  hangar config set region eu-west-1\n"
    "  hangar config set db_password --secret --from-file ./db_password.txt\n"
    "  vault read -field=pw secret/db | hangar config set db_password --secret -\n";

static const char list_help[] =
    "usage: hangar config list [--json]\n"
    "\n"
    "Lists the hub's config variables. Secret values are never shown.\n"
    "\n"
    "options:\n"
    "  --json           print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar config list\n";

static const char delete_help[] =
    "usage: hangar config delete NAME\n"
    "\n"
    "Deletes a config variable. Runs of tasks that refer to it can no longer start.\n"
    "\n"
    "example:\n"
    "  hangar config delete region\n";

/* Reads all of fd into b, at most VALUE_MAX bytes, dropping one trailing newline (the one
 * `echo` or an editor adds). */
static int read_value(int fd, const char *what, hg_buf *b, hg_err *err) {
  char chunk[4096];
  ssize_t n;
  while ((n = read(fd, chunk, sizeof chunk)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      return hg_err_set(err, HG_EIO, "cannot read %s: %s", what, strerror(errno));
    }
    if (b->len + (size_t)n > VALUE_MAX) {
      memset(chunk, 0, sizeof chunk);
      return hg_err_set(err, HG_ETOOBIG, "%s is larger than %u KiB", what, VALUE_MAX >> 10);
    }
    if (hg_buf_append(b, chunk, (size_t)n) < 0) return hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  memset(chunk, 0, sizeof chunk);
  if (b->len && b->data[b->len - 1] == '\n') b->data[--b->len] = '\0';
  if (b->len && b->data[b->len - 1] == '\r') b->data[--b->len] = '\0';
  if (memchr(b->data ? b->data : "", '\0', b->len))
    return hg_err_set(err, HG_EINVAL, "%s holds a NUL byte: a config value is text", what);
  return 0;
}

static int config_set(int argc, char **argv) {
  static const hg_args_opt opts[] = {{"secret", 0, 0}, {"from-file", 0, 1}, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "config set", set_help, 1, &code)) return code;
  const char *file = hg_args_get(&a, "from-file");
  int secret = hg_args_has(&a, "secret");
  if (a.npos == 0)
    code = hg_cli_usage("config set", "which variable? give its name");
  else if (file && a.npos != 1)
    code = hg_cli_usage("config set", "give the value either as an argument or with --from-file, not both");
  else if (!file && a.npos != 2)
    code = hg_cli_usage("config set", "%s", a.npos == 1 ? "no value: give VALUE, '-' for stdin, or --from-file FILE"
                                                       : "too many arguments (quote a value with spaces)");
  if (code) {
    hg_args_free(&a);
    return code;
  }
  const char *name = a.pos[0];
  hg_buf value = HG_BUF_INIT;
  hg_err err = {0};
  int rc = 0;
  if (file) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      rc = hg_err_set(&err, HG_EINVAL, "cannot open %s: %s", file, strerror(errno));
    } else {
      rc = read_value(fd, file, &value, &err);
      close(fd);
    }
  } else if (strcmp(a.pos[1], "-") == 0) {
    rc = read_value(STDIN_FILENO, "stdin", &value, &err);
  } else {
    if (secret)
      hg_cli_warn("a secret given on the command line may be kept in your shell history and is "
                  "visible to other processes; prefer --from-file or '-' (stdin)");
    rc = hg_buf_appends(&value, a.pos[1]);
  }
  hg_cli cli;
  if (rc < 0) {
    code = hg_cli_fail(&err);
  } else if ((code = hg_cli_open(&cli, &a, 1)) == 0) {
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "value", value.data ? value.data : "");
    cJSON_AddBoolToObject(body, "secret", secret);
    hg_client_res res;
    if (hg_cli_call_named(&cli, "PUT", "/v1/config-vars/", name, NULL, body, &res, &err) < 0)
      code = hg_cli_fail(&err);
    else
      printf("set %s%s\n", name, secret ? " (secret)" : "");
    /* The secret's copy inside the cJSON tree must not linger in freed memory either. */
    cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "value");
    if (cJSON_IsString(v)) memset(v->valuestring, 0, strlen(v->valuestring));
    cJSON_Delete(body);
    hg_client_res_free(&res);
    hg_cli_close(&cli);
  }
  hg_buf_wipe(&value);
  hg_args_free(&a);
  return code;
}

static void config_row(hg_table *t, const cJSON *v) {
  char s[3][256];
  int is_secret = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "secret"));
  const char *row[] = {hg_cli_text(v, "name", s[0], 256), is_secret ? "yes" : "no",
                       is_secret ? "(hidden)" : hg_cli_text(v, "value", s[1], 256),
                       hg_cli_text(v, "updated_at", s[2], 256)};
  hg_table_add(t, row);
}

static int config_list(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  static const char *const head[] = {"NAME", "SECRET", "VALUE", "UPDATED"};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "config list", list_help, 1, &code)) return code;
  if ((code = hg_cli_open_none(&cli, &a, "config list")) != 0) return code;
  code = hg_cli_list(&cli, &a, "/v1/config-vars", "config_vars", 4, head, config_row);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

static int config_delete(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "config delete", delete_help, 1, &code)) return code;
  if ((code = hg_cli_open_one(&cli, &a, "config delete", "which variable? give its name",
                              "give exactly one name")) != 0)
    return code;
  hg_client_res res;
  hg_err err = {0};
  if (hg_cli_call_named(&cli, "DELETE", "/v1/config-vars/", a.pos[0], NULL, NULL, &res, &err) < 0)
    code = hg_cli_fail(&err);
  else
    printf("deleted %s\n", a.pos[0]);
  hg_client_res_free(&res);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

int cmd_config(int argc, char **argv) {
  static const hg_cli_sub subs[] = {
      {"set", config_set, "set a config variable (--secret for a secret)"},
      {"list", config_list, "list config variables (secret values hidden)"},
      {"delete", config_delete, "delete a config variable"},
  };
  return hg_cli_dispatch("config", "Manages the hub's config variables, which tasks use through their env.",
                         subs, sizeof subs / sizeof subs[0], argc, argv);
}
