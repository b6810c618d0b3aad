/* `hangar task`: deploy task definitions from *.task.yaml files, list and show tasks. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/taskfile.h"
#include "cmds.h"

static const char deploy_help[] =
    "usage: hangar task deploy FILE...\n"
    "\n"
    "Deploys task definitions: each FILE (usually NAME.task.yaml) holds one task, as described\n"
    "in the task definition format (slug, name, parameters, command, env, ...). Every file is\n"
    "read first and nothing is deployed when one of them does not parse (the error says\n"
    "file:line:column). Then each is sent to the hub, which checks it and names the field that\n"
    "is wrong; deploying stops at the first one it refuses. For each task, prints its slug,\n"
    "its revision and whether that revision is new: an unchanged definition keeps its\n"
    "revision.\n"
    "\n"
    "example:\n"
    "  hangar task deploy tasks/*.task.yaml\n";

static const char list_help[] =
    "usage: hangar task list [--json]\n"
    "\n"
    "Lists the deployed tasks: slug, revision, name and description.\n"
    "\n"
    "options:\n"
    "  --json           print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar task list\n";

static const char show_help[] =
    "usage: hangar task show SLUG [--json]\n"
    "\n"
    "Shows a deployed task's definition: its parameters, command, env, constraints, ...\n"
    "\n"
    "options:\n"
    "  --json           print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar task show hello\n";

static int task_deploy(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "task deploy", deploy_help, 1, &code)) return code;
  if (a.npos == 0) {
    hg_args_free(&a);
    return hg_cli_usage("task deploy", "which files? give one or more *.task.yaml");
  }
  cJSON *defs[a.npos];
  memset(defs, 0, sizeof defs);
  hg_err err = {0};
  for (size_t i = 0; i < a.npos && code == 0; i++)
    if (hg_taskfile_load(a.pos[i], &defs[i], &err) < 0) code = hg_cli_fail(&err);
  hg_cli cli;
  if (code == 0 && (code = hg_cli_open(&cli, &a, 1)) == 0) {
    for (size_t i = 0; i < a.npos && code == 0; i++) {
      hg_client_res res;
      if (hg_client_call(&cli.client, "POST", "/v1/tasks", defs[i], 0, &res, &err) < 0) {
        hg_err_prefix(&err, "%s", a.pos[i]);
        code = hg_cli_fail(&err);
      } else {
        char slug[256], rev[64];
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(res.json, "revision");
        const char *what = res.status == 200                           ? "unchanged"
                           : cJSON_IsNumber(r) && r->valuedouble == 1 ? "new task"
                                                                       : "new revision";
        printf("%s: revision %s (%s)\n", hg_cli_text(res.json, "slug", slug, sizeof slug),
               hg_cli_text(res.json, "revision", rev, sizeof rev), what);
      }
      hg_client_res_free(&res);
    }
    hg_cli_close(&cli);
  }
  for (size_t i = 0; i < a.npos; i++) cJSON_Delete(defs[i]);
  hg_args_free(&a);
  return code;
}

static void task_row(hg_table *t, const cJSON *task) {
  char s[4][256];
  const char *row[] = {hg_cli_text(task, "slug", s[0], 256), hg_cli_text(task, "revision", s[1], 256),
                       hg_cli_text(task, "name", s[2], 256), hg_cli_text(task, "description", s[3], 256)};
  hg_table_add(t, row);
}

static int task_list(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  static const char *const head[] = {"SLUG", "REVISION", "NAME", "DESCRIPTION"};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "task list", list_help, 1, &code)) return code;
  if ((code = hg_cli_open_none(&cli, &a, "task list")) != 0) return code;
  code = hg_cli_list(&cli, &a, "/v1/tasks", "tasks", 4, head, task_row);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

static void print_task(const cJSON *task) {
  char s[1024];
  static const char *const fields[][2] = {
      {"slug", "slug"},       {"name", "name"},         {"revision", "revision"},
      {"description", "description"}, {"command", "command"}, {"image", "image"},
      {"workdir", "workdir"}, {"scheduler", "scheduler"}, {"timeout", "timeout"},
      {"constraints", "constraints"}, {"resources", "resources"}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    printf("%-12s %s\n", fields[i][0], hg_cli_text(task, fields[i][1], s, sizeof s));
  const cJSON *env = cJSON_GetObjectItemCaseSensitive(task, "env"), *e;
  printf("env:%s\n", cJSON_GetArraySize(env) ? "" : "         -");
  cJSON_ArrayForEach(e, env) printf("  %s = %s\n", e->string, hg_cli_text(e, NULL, s, sizeof s));
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(task, "parameters"), *p;
  if (!cJSON_GetArraySize(params)) {
    printf("parameters:  -\n");
    return;
  }
  printf("parameters:\n");
  static const char *const head[] = {"SLUG", "TYPE", "REQUIRED", "DEFAULT", "NAME", "DESCRIPTION"};
  hg_table t;
  hg_table_init(&t, 6, head);
  cJSON_ArrayForEach(p, params) {
    char c[6][256];
    const cJSON *def = cJSON_GetObjectItemCaseSensitive(p, "default");
    const char *row[] = {hg_cli_text(p, "slug", c[0], 256),
                         hg_cli_text(p, "type", c[1], 256),
                         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "required")) ? "yes" : "no",
                         def ? hg_cli_text(def, NULL, c[3], 256) : "-",
                         hg_cli_text(p, "name", c[4], 256),
                         hg_cli_text(p, "description", c[5], 256)};
    hg_table_add(&t, row);
  }
  hg_buf b = HG_BUF_INIT;
  hg_table_render(&t, &b);
  /* Indent the table under its heading. */
  for (char *line = b.data, *nl; line && (nl = strchr(line, '\n')); line = nl + 1)
    printf("  %.*s\n", (int)(nl - line), line);
  hg_buf_free(&b);
  hg_table_free(&t);
}

static int task_show(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "task show", show_help, 1, &code)) return code;
  if ((code = hg_cli_open_one(&cli, &a, "task show", "which task? give its slug",
                              "give exactly one task")) != 0)
    return code;
  hg_client_res res;
  hg_err err = {0};
  if (hg_cli_call_named(&cli, "GET", "/v1/tasks/", a.pos[0], NULL, NULL, &res, &err) < 0)
    code = hg_cli_fail(&err);
  else if (hg_args_has(&a, "json"))
    hg_cli_print_json(res.json);
  else
    print_task(res.json);
  hg_client_res_free(&res);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

int cmd_task(int argc, char **argv) {
  static const hg_cli_sub subs[] = {
      {"deploy", task_deploy, "deploy task definitions from *.task.yaml files"},
      {"list", task_list, "list deployed tasks"},
      {"show", task_show, "show a task's definition"},
  };
  return hg_cli_dispatch("task", "Deploys and inspects task definitions.", subs,
                         sizeof subs / sizeof subs[0], argc, argv);
}
