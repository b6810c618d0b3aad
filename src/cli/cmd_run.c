/* `hangar run`: start a run of a task, and optionally follow it to its end. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/follow.h"
#include "cli/params.h"
#include "cmds.h"

static const char run_help[] =
    "usage: hangar run TASK [--param NAME=VALUE ...] [--param-json NAME=JSON ...]\n"
    "                       [--follow [--cancel-on-interrupt]]\n"
    "\n"
    "Starts a run of the deployed task TASK (its slug) and prints the run's id; with --follow,\n"
    "prints its log as it arrives (the run's stdout on stdout, its stderr and Hangar's own\n"
    "notes on stderr), then its outputs as JSON, and exits with the run's exit code.\n"
    "\n"
    "Parameter values are typed by the task's declaration, fetched from the hub: for an\n"
    "integer parameter '--param count=3' sends the number 3, for a boolean true/false (also\n"
    "yes/no, 1/0), for json the parsed JSON; string, text, date and datetime values are sent\n"
    "as written, and the hub checks them. A value that does not fit its type is an error here.\n"
    "--param-json sends its value as JSON, whatever the type, for the hub to check.\n"
    "\n"
    "options:\n"
    "  --param NAME=VALUE      a parameter's value, converted to the declared type\n"
    "  --param-json NAME=JSON  a parameter's value as JSON (wins over --param of that name)\n"
    "  --follow, -f            follow the run to its end\n"
    "  --cancel-on-interrupt   with --follow: Ctrl-C cancels the run and waits for it to end\n"
    "                          (a second Ctrl-C stops waiting). Without it, Ctrl-C only stops\n"
    "                          following, prints how to cancel, and the run goes on.\n"
    "\n"
    "exit status with --follow:\n"
    "  0 the run succeeded; N the run failed with exit code N (1..255); 1 it failed without\n"
    "  one (timed out, lost agent, could not start); 130 it was cancelled, or Ctrl-C stopped\n"
    "  the following. Without --follow: 0 once the run was created. Errors of the CLI itself:\n"
    "  1 (hub unreachable, hub refused), 2 (wrong usage, no hub URL or key).\n"
    "\n"
    "examples:\n"
    "  hangar run hello --param name=Ada --param count=2 --follow\n"
    "  hangar run report --param-json filters='{\"team\": \"ops\"}'\n";

/* The task's declared parameters, so that --param values can be typed. NULL when the hub
 * will not show the task to this key (a run token may start runs without reading tasks):
 * then values go as strings and the hub judges them. */
static int fetch_parameters(hg_cli *cli, const char *slug, cJSON **declared, hg_err *err) {
  *declared = NULL;
  hg_client_res res;
  int rc = hg_cli_call_named(cli, "GET", "/v1/tasks/", slug, NULL, NULL, &res, err);
  if (rc == HG_EPROTO && res.status == 403) {
    rc = 0;
  } else if (rc == 0) {
    cJSON *p = cJSON_DetachItemFromObjectCaseSensitive(res.json, "parameters");
    if (cJSON_IsArray(p))
      *declared = p;
    else
      cJSON_Delete(p);
  }
  hg_client_res_free(&res);
  return rc;
}

int cmd_run(int argc, char **argv) {
  static const hg_args_opt opts[] = {{"param", 0, 1},    {"param-json", 0, 1},
                                     {"follow", 'f', 0}, {"cancel-on-interrupt", 0, 0},
                                     HG_CLI_CONN_OPTS,   {NULL, 0, 0}};
  hg_args a;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "run", run_help, 1, &code)) return code;
  if (a.npos != 1)
    code = hg_cli_usage("run", "%s", a.npos ? "give exactly one task" : "which task? give its slug");
  else if (hg_args_has(&a, "cancel-on-interrupt") && !hg_args_has(&a, "follow"))
    code = hg_cli_usage("run", "--cancel-on-interrupt only makes sense with --follow");
  if (code) {
    hg_args_free(&a);
    return code;
  }
  size_t ntexts = hg_args_count(&a, "param"), njsons = hg_args_count(&a, "param-json");
  const char *texts[ntexts + 1], *jsons[njsons + 1];
  for (size_t i = 0; i < ntexts; i++) texts[i] = hg_args_nth(&a, "param", i);
  for (size_t i = 0; i < njsons; i++) jsons[i] = hg_args_nth(&a, "param-json", i);
  /* Malformed NAME=VALUE is caught before anything is asked of the hub. */
  hg_err err = {0};
  cJSON *params = NULL;
  if (hg_params_build(NULL, texts, ntexts, jsons, njsons, &params, &err) < 0) {
    hg_args_free(&a);
    return hg_cli_usage("run", "%s", err.msg);
  }
  cJSON_Delete(params);
  params = NULL;

  hg_cli cli;
  if ((code = hg_cli_open(&cli, &a, 1)) != 0) {
    hg_args_free(&a);
    return code;
  }
  const char *task = a.pos[0];
  cJSON *declared = NULL, *body = NULL;
  hg_client_res res = {0, NULL};
  if (ntexts && fetch_parameters(&cli, task, &declared, &err) < 0) {
    code = hg_cli_fail(&err);
    goto out;
  }
  if (hg_params_build(declared, texts, ntexts, jsons, njsons, &params, &err) < 0) {
    code = hg_cli_usage("run", "%s", err.msg);
    goto out;
  }
  body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "task", task);
  cJSON_AddItemToObject(body, "params", params);
  if (hg_client_call(&cli.client, "POST", "/v1/runs", body, 0, &res, &err) < 0) {
    code = hg_cli_fail(&err);
    goto out;
  }
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(res.json, "run_id");
  if (!cJSON_IsString(id)) {
    hg_err_set(&err, HG_EPROTO, "the hub's answer has no run_id");
    code = hg_cli_fail(&err);
    goto out;
  }
  if (!hg_args_has(&a, "follow")) {
    printf("%s\n", id->valuestring);
    goto out;
  }
  fprintf(stderr, "hangar: run %s of %s created; following it\n", id->valuestring, task);
  hg_follow_catch_interrupts(&cli.client);
  hg_follow f = {&cli.client, id->valuestring, 1, hg_args_has(&a, "cancel-on-interrupt"),
                 stdout, stderr};
  if (hg_follow_run(&f, &code, &err) < 0) code = hg_cli_fail(&err);
out:
  hg_client_res_free(&res);
  cJSON_Delete(body);
  cJSON_Delete(declared);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}
