/* `hangar key`: create, list and revoke API keys (admin only). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/params.h"
#include "cmds.h"

static const char create_help[] =
    "usage: hangar key create --role admin|user|agent --name NAME [--label KEY=VALUE ...]\n"
    "\n"
    "Creates an API key and prints it on stdout. The hub keeps only a hash: the key is shown\n"
    "this once, so store it now (a file only you can read, a secret store).\n"
    "\n"
    "options:\n"
    "  --role ROLE          admin (everything), user (tasks, runs, config) or agent\n"
    "  --name NAME          what the key is for, shown by 'hangar key list'\n"
    "  --label KEY=VALUE    (agent keys, repeatable) labels an agent using this key must\n"
    "                       declare, so a staging key cannot register as a prod agent\n"
    "\n"
    "example:\n"
    "  hangar key create --role agent --name staging-runner --label env=staging > agent.key\n";

static const char list_help[] =
    "usage: hangar key list [--json]\n"
    "\n"
    "Lists the hub's API keys: id, role, name, labels, creation and last use. Never the keys.\n"
    "\n"
    "options:\n"
    "  --json               print the hub's answer as JSON\n"
    "\n"
    "example:\n"
    "  hangar key list\n";

static const char revoke_help[] =
    "usage: hangar key revoke ID\n"
    "\n"
    "Revokes the key with this id (the id column of 'hangar key list', also the part of the\n"
    "key after 'hgr_'). Agents using it lose their session within a heartbeat.\n"
    "\n"
    "example:\n"
    "  hangar key revoke k3j9x0a1b2c3\n";

static int key_create(int argc, char **argv) {
  static const hg_args_opt opts[] = {
      {"role", 0, 1}, {"name", 0, 1}, {"label", 0, 1}, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "key create", create_help, 1, &code)) return code;
  const char *role = hg_args_get(&a, "role"), *name = hg_args_get(&a, "name");
  if (a.npos)
    code = hg_cli_usage("key create", "unexpected argument '%s'", a.pos[0]);
  else if (!role)
    code = hg_cli_usage("key create", "--role is required (admin, user or agent)");
  else if (strcmp(role, "admin") && strcmp(role, "user") && strcmp(role, "agent"))
    code = hg_cli_usage("key create", "--role must be admin, user or agent, not '%s'", role);
  else if (!name)
    code = hg_cli_usage("key create", "--name is required");
  if (code) {
    hg_args_free(&a);
    return code;
  }
  cJSON *body = cJSON_CreateObject(), *labels = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "role", role);
  cJSON_AddStringToObject(body, "name", name);
  cJSON_AddItemToObject(body, "labels", labels);
  hg_err err = {0};
  for (size_t i = 0; i < hg_args_count(&a, "label"); i++) {
    char key[128];
    const char *value;
    if (hg_params_split(hg_args_nth(&a, "label", i), key, sizeof key, &value, &err) < 0) {
      cJSON_Delete(body);
      hg_args_free(&a);
      return hg_cli_usage("key create", "--label: %s", err.msg);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(labels, key);
    cJSON_AddStringToObject(labels, key, value);
  }
  hg_cli cli;
  if ((code = hg_cli_open(&cli, &a, 1)) == 0) {
    hg_client_res res;
    if (hg_client_call(&cli.client, "POST", "/v1/keys", body, 0, &res, &err) < 0) {
      code = hg_cli_fail(&err);
    } else {
      const cJSON *key = cJSON_GetObjectItemCaseSensitive(res.json, "key");
      const cJSON *id = cJSON_GetObjectItemCaseSensitive(res.json, "id");
      if (!cJSON_IsString(key)) {
        hg_err_set(&err, HG_EPROTO, "the hub's answer has no key");
        code = hg_cli_fail(&err);
      } else {
        printf("%s\n", key->valuestring);
        fflush(stdout);
        fprintf(stderr,
                "hangar: created %s key %s (%s). The key above is shown only this once: store "
                "it now.\n",
                role, cJSON_IsString(id) ? id->valuestring : "?", name);
      }
    }
    hg_client_res_free(&res);
    hg_cli_close(&cli);
  }
  cJSON_Delete(body);
  hg_args_free(&a);
  return code;
}

static void labels_text(const cJSON *labels, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  const cJSON *l;
  cJSON_ArrayForEach(l, labels) {
    if (!cJSON_IsString(l) || n >= cap) continue;
    int w = snprintf(out + n, cap - n, "%s%s=%s", n ? "," : "", l->string, l->valuestring);
    if (w > 0) n += (size_t)w;
  }
  if (!out[0]) snprintf(out, cap, "-");
}

static void key_row(hg_table *t, const cJSON *k) {
  char s[7][256], labels[256];
  labels_text(cJSON_GetObjectItemCaseSensitive(k, "labels"), labels, sizeof labels);
  const cJSON *revoked = cJSON_GetObjectItemCaseSensitive(k, "revoked");
  const char *row[] = {
      hg_cli_text(k, "id", s[0], 256),         hg_cli_text(k, "role", s[1], 256),
      hg_cli_text(k, "name", s[2], 256),       labels,
      hg_cli_text(k, "created_at", s[4], 256), hg_cli_text(k, "last_used_at", s[5], 256),
      cJSON_IsTrue(revoked) ? "yes" : "no"};
  hg_table_add(t, row);
}

static int key_list(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_JSON_OPT, HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  static const char *const head[] = {"ID", "ROLE", "NAME", "LABELS", "CREATED", "LAST USED", "REVOKED"};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "key list", list_help, 1, &code)) return code;
  if ((code = hg_cli_open_none(&cli, &a, "key list")) != 0) return code;
  code = hg_cli_list(&cli, &a, "/v1/keys", "keys", 7, head, key_row);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

static int key_revoke(int argc, char **argv) {
  static const hg_args_opt opts[] = {HG_CLI_CONN_OPTS, {NULL, 0, 0}};
  hg_args a;
  hg_cli cli;
  int code;
  if (hg_cli_parse(&a, opts, argc, argv, "key revoke", revoke_help, 1, &code)) return code;
  if ((code = hg_cli_open_one(&cli, &a, "key revoke", "which key? give its id",
                              "give exactly one key id")) != 0)
    return code;
  hg_client_res res;
  hg_err err = {0};
  if (hg_cli_call_named(&cli, "DELETE", "/v1/keys/", a.pos[0], NULL, NULL, &res, &err) < 0)
    code = hg_cli_fail(&err);
  else
    printf("revoked key %s\n", a.pos[0]);
  hg_client_res_free(&res);
  hg_cli_close(&cli);
  hg_args_free(&a);
  return code;
}

int cmd_key(int argc, char **argv) {
  static const hg_cli_sub subs[] = {
      {"create", key_create, "create an API key (shown once)"},
      {"list", key_list, "list API keys"},
      {"revoke", key_revoke, "revoke an API key"},
  };
  return hg_cli_dispatch("key", "Manages the hub's API keys (needs an admin key).", subs,
                         sizeof subs / sizeof subs[0], argc, argv);
}
