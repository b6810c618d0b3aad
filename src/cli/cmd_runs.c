/* `hangar runs`: list, show, read the log of, and cancel runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "cmds.h"

static const char *const statuses[] = {"queued",     "assigned",  "accepted", "running",
                                       "cancelling", "succeeded", "failed",   "cancelled"};

static const char list_help[] =
    "usage: hangar runs list [--task SLUG] [--status STATUS] [--limit N] [--json]\n"
    "\n"
    "Lists runs, newest first.\n"
    "\n"
    "options:\n"
    "  --task SLUG      only runs of this task\n"
    "  --status STATUS  only runs in this state: queued, assigned, accepted, running,\n"
    "                   cancelling, succeeded, failed or cancelled\n"
    "  --limit N        at most N runs (the hub's default otherwise)\n"
    "  --json           print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar runs list --task hello --status failed --limit 5\n";

static const char show_help[] =
    "usage: hangar runs show ID [--json]\n"
    "\n"
    "Shows one run: its task, state, parameters, times, exit code, error, agent and outputs.\n"
    "\n"
    "options:\n"
    "  --json           print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar runs show r8f2k1x9q0aa\n";

static const char logs_help[] =
    "usage: hangar runs logs ID [--follow]\n"
    "\n"
    "Prints a run's log: its stdout lines on stdout, its stderr lines and Hangar's own notes\n"
    "(marked [hangar]) on stderr. With --follow, waits for new lines until the run ends;\n"
    "Ctrl-C stops following (the run goes on).\n"
    "\n"
    "options:\n"
    "  --follow, -f     keep printing lines as they arrive, until the run ends\n"
    "\n"
    "example:\n"
    "  hangar runs logs r8f2k1x9q0aa --follow\n";

static const char cancel_help[] =
    "usage: hangar runs cancel ID\n"
    "\n"
    "Cancels a run. A run no agent has accepted yet ends at once; a running one becomes\n"
    "'cancelling' until its agent has stopped it. Cancelling a run that already ended is\n"
    "an error.\n"
    "\n"
    "example:\n"
    "  hangar runs cancel r8f2k1x9q0aa\n";

static void run_row(hg_table *t, const cJSON *r) {
  char s[7][128];
  const cJSON *agent = cJSON_GetObjectItemCaseSensitive(r, "agent");
  const char *row[] = {hg_cli_text(r, "id", s[0], 128),          hg_cli_text(r, "task", s[1], 128),
                       hg_cli_text(r, "status", s[2], 128),      hg_cli_text(r, "exit_code", s[3], 128),
                       hg_cli_text(r, "created_at", s[4], 128), hg_cli_text(r, "finished_at", s[5], 128),
                       cJSON_IsObject(agent) ? hg_cli_text(agent, "name", s[6], 128) : "-"};
  hg_table_add(t, row);
}

static int runs_list(int argc, char **argv) {
  static const hg_args_opt opts[] = {{"task", 0, 1}, {"status", 0, 1},  {"limit", 0, 1},
                                     HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "runs list", list_help, 1, &code)) return code;
  const char *task = hg_args_get(&a, "task"), *status = hg_args_get(&a, "status"),
             *limit = hg_args_get(&a, "limit");
  if (a.npos) code = hg_cli_usage("runs list", "unexpected argument '%s'", a.pos[0]);
  if (!code && status) {
    int known = 0;
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
      known |= strcmp(status, statuses[i]) == 0;
    if (!known)
      code = hg_cli_usage("runs list", "--status '%s' is not a run state (queued, assigned, "
                          "accepted, running, cancelling, succeeded, failed, cancelled)", status);
  }
  if (!code && limit) {
    char *end;
    long n = strtol(limit, &end, 10);
    if (*limit < '0' || *limit > '9' || *end || n < 1 || n > 100000)
      code = hg_cli_usage("runs list", "--limit must be a positive number, not '%s'", limit);
  }
  hg_cli cli;
  if (code || (code = hg_cli_open(&cli, &a, 1)) != 0) {
    hg_args_free(&a);
    return code;
  }
  hg_buf path = HG_BUF_INIT;
  hg_buf_appends(&path, "/v1/runs");
  const char *names[] = {"task", "status", "limit"}, *values[] = {task, status, limit};
  char sep = '?';
  for (size_t i = 0; i < 3; i++) {
    if (!values[i]) continue;
    hg_buf_printf(&path, "%c%s=", sep, names[i]);
    hg_client_escape(&path, values[i]);
    sep = '&';
  }
  static const char *const head[] = {"ID", "TASK", "STATUS", "EXIT", "CREATED", "FINISHED", "AGENT"};
  code = hg_cli_list(&cli, &a, path.data, "runs", 7, head, run_row);
  hg_buf_free(&path);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

/* Opens the connection for a command that takes exactly one run id. */
static int one_id(hg_args *a, const char *cmd, hg_cli *cli) {
  return hg_cli_open_one(cli, a, cmd, "which run? give its id", "give exactly one run id");
}

static void print_field(const char *label, const char *value) { printf("%-12s %s\n", label, value); }

static void print_run(const cJSON *r) {
  char s[512];
  static const char *const fields[][2] = {
      {"id", "id"},           {"task", "task"},           {"status", "status"},
      {"created", "created_at"}, {"started", "started_at"}, {"finished", "finished_at"},
      {"exit code", "exit_code"}, {"error", "error"}};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    print_field(fields[i][0], hg_cli_text(r, fields[i][1], s, sizeof s));
  const cJSON *agent = cJSON_GetObjectItemCaseSensitive(r, "agent");
  if (cJSON_IsObject(agent)) {
    char name[256], id[256];
    snprintf(s, sizeof s, "%s (%s)", hg_cli_text(agent, "name", name, sizeof name),
             hg_cli_text(agent, "id", id, sizeof id));
    print_field("agent", s);
  } else {
    print_field("agent", "-");
  }
  const cJSON *params = cJSON_GetObjectItemCaseSensitive(r, "params"), *p;
  printf("params:%s\n", cJSON_GetArraySize(params) ? "" : " -");
  cJSON_ArrayForEach(p, params) printf("  %s = %s\n", p->string, hg_cli_text(p, NULL, s, sizeof s));
  const cJSON *outputs = cJSON_GetObjectItemCaseSensitive(r, "outputs");
  if (outputs && !cJSON_IsNull(outputs)) {
    char *text = cJSON_Print(outputs);
    printf("outputs:\n%s\n", text ? text : "?");
    cJSON_free(text);
  } else {
    printf("outputs:     -\n");
  }
  const cJSON *oe;
  cJSON_ArrayForEach(oe, cJSON_GetObjectItemCaseSensitive(r, "output_errors")) {
    char seq[32];
    printf("output error at event %s: %s\n", hg_cli_text(oe, "seq", seq, sizeof seq),
           hg_cli_text(oe, "error", s, sizeof s));
  }
}

static int runs_show(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "runs show", show_help, 1, &code)) return code;
  if ((code = one_id(&a, "runs show", &cli)) != 0) return code;
  hg_client_res res;
  hg_err err = {0};
  if (hg_cli_call_named(&cli, "GET", "/v1/runs/", a.pos[0], NULL, NULL, &res, &err) < 0)
    code = hg_cli_fail(&err);
  else if (hg_args_has(&a, "json"))
    hg_cli_print_json(res.json);
  else
    print_run(res.json);
  hg_client_res_free(&res);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

static int runs_logs(int argc, char **argv) {
  static const hg_args_opt opts[] = {{"follow", 'f', 0}, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "runs logs", logs_help, 1, &code)) return code;
  if ((code = one_id(&a, "runs logs", &cli)) != 0) return code;
  hg_follow f = {&cli.client, a.pos[0], hg_args_has(&a, "follow"), 0, stdout, stderr};
  if (f.follow) hg_follow_catch_interrupts(&cli.client);
  hg_err err = {0};
  long long last = -1;
  int rc = hg_follow_logs(&f, &last, &err);
  if (rc == HG_ECANCELED) {
    fprintf(stderr, "\nhangar: stopped following run %s\n", a.pos[0]);
    code = HG_FOLLOW_EXIT_INTERRUPTED;
  } else if (rc < 0) {
    code = hg_cli_fail(&err);
  }
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

static int runs_cancel(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "runs cancel", cancel_help, 1, &code)) return code;
  if ((code = one_id(&a, "runs cancel", &cli)) != 0) return code;
  hg_client_res res;
  hg_err err = {0};
  if (hg_cli_call_named(&cli, "POST", "/v1/runs/", a.pos[0], "/cancel", NULL, &res, &err) < 0) {
    code = hg_cli_fail(&err);
  } else {
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(res.json, "status");
    if (cJSON_IsString(status) && strcmp(status->valuestring, "cancelled") == 0)
      printf("cancelled run %s\n", a.pos[0]);
    else if (cJSON_IsString(status) && strcmp(status->valuestring, "cancelling") == 0)
      printf("cancelling run %s: its agent is stopping it\n", a.pos[0]);
    else
      printf("asked the hub to cancel run %s\n", a.pos[0]);
  }
  hg_client_res_free(&res);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

int cmd_runs(int argc, char **argv) {
  static const hg_cli_sub subs[] = {
      {"list", runs_list, "list runs"},
      {"show", runs_show, "show one run, its outputs included"},
      {"logs", runs_logs, "print a run's log (--follow to wait for more)"},
      {"cancel", runs_cancel, "cancel a run"},
  };
  return hg_cli_dispatch("runs", "Looks at and cancels runs. 'hangar run TASK' starts one.", subs,
                         sizeof subs / sizeof subs[0], argc, argv);
}
