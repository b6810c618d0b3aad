/* Where the CLI finds its hub and key: flags over environment, key files, their warnings. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cli/settings.h"

static char dir[256];

/* A fresh directory under $HANGAR_TEST_TMP for this process's files, made on first use. */
static void make_dir(void) {
  if (dir[0]) return;
  const char *base = getenv("HANGAR_TEST_TMP");
  if (!base || !*base) base = "/tmp";
  mkdir(base, 0700);
  snprintf(dir, sizeof dir, "%s/cli-settings-XXXXXX", base);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    exit(1);
  }
}

static const char *write_file(const char *name, const char *text, mode_t mode) {
  static char path[512];
  make_dir();
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  chmod(path, mode);
  return path;
}

static void clean_env(void) {
  make_dir();
  unsetenv("HANGAR_HUB_URL");
  unsetenv("HANGAR_TOKEN");
  unsetenv("HANGAR_CA_FILE");
  unsetenv("XDG_CONFIG_HOME");
  /* A config file that does not exist, so none is read. */
  char path[512];
  snprintf(path, sizeof path, "%s/no-such-cli.lua", dir);
  setenv("HANGAR_CLI_CONFIG", path, 1);
}

static void token_file_is_trimmed(void) {
  const char *path = write_file("key", "  hgr_abc_def\n\n", 0600);
  char *token = NULL;
  hg_buf warnings = HG_BUF_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_settings_read_token_file(path, &token, &warnings, &err), 0);
  CHECK_EQ_STR(token, "hgr_abc_def");
  CHECK_EQ_INT(warnings.len, 0);
  free(token);
  hg_buf_free(&warnings);
}

static void readable_token_file_warns(void) {
  const char *path = write_file("shared-key", "hgr_abc_def\n", 0644);
  char *token = NULL;
  hg_buf warnings = HG_BUF_INIT;
  CHECK_EQ_INT(hg_settings_read_token_file(path, &token, &warnings, NULL), 0);
  CHECK(warnings.data && strstr(warnings.data, "can be read by other users (mode 0644)"));
  /* The warning names the file and never the key. */
  CHECK(warnings.data && strstr(warnings.data, path));
  CHECK(warnings.data && !strstr(warnings.data, "hgr_abc_def"));
  free(token);
  hg_buf_free(&warnings);
}

static void bad_token_files(void) {
  char *token = NULL;
  hg_buf warnings = HG_BUF_INIT;
  hg_err err = {0};
  const char *empty = write_file("empty", " \n", 0600);
  CHECK_EQ_INT(hg_settings_read_token_file(empty, &token, &warnings, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "is empty") != NULL);
  const char *two = write_file("two", "hgr_one\nhgr_two\n", 0600);
  CHECK_EQ_INT(hg_settings_read_token_file(two, &token, &warnings, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "more than one word") != NULL);
  /* The message must not quote the file's content: it may be a key. */
  CHECK(strstr(err.msg, "hgr_one") == NULL);
  char missing[sizeof dir + 16];
  snprintf(missing, sizeof missing, "%s/missing", dir);
  CHECK_EQ_INT(hg_settings_read_token_file(missing, &token, &warnings, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "No such file") != NULL);
  CHECK(token == NULL);
  hg_buf_free(&warnings);
}

static void flags_win_over_environment(void) {
  clean_env();
  setenv("HANGAR_HUB_URL", "https://env.example", 1);
  setenv("HANGAR_TOKEN", "hgr_env", 1);
  const char *key = write_file("flagkey", "hgr_flag\n", 0600);
  hg_settings_flags flags = {"https://flag.example", key, "/ca.pem", 0};
  hg_settings s;
  hg_err err = {0};
  CHECK_EQ_INT(hg_settings_resolve(&s, &flags, &err), 0);
  CHECK_EQ_STR(s.hub_url, "https://flag.example");
  CHECK_EQ_STR(s.token, "hgr_flag");
  CHECK_EQ_STR(s.ca_file, "/ca.pem");
  hg_settings_free(&s);
  hg_settings_flags none = {0};
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), 0);
  CHECK_EQ_STR(s.hub_url, "https://env.example");
  CHECK_EQ_STR(s.token, "hgr_env");
  CHECK(s.ca_file == NULL);
  hg_settings_free(&s);
}

static void missing_hub_and_key_say_how_to_give_them(void) {
  clean_env();
  hg_settings_flags none = {0};
  hg_settings s;
  hg_err err = {0};
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "--hub URL") && strstr(err.msg, "HANGAR_HUB_URL"));
  setenv("HANGAR_HUB_URL", "https://hub.example", 1);
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), 0);
  CHECK(s.token == NULL);
  CHECK_EQ_INT(hg_settings_require_token(&s, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "--token-file") && strstr(err.msg, "HANGAR_TOKEN"));
  hg_settings_free(&s);
}

static void config_file_fills_what_is_unset(void) {
  clean_env();
  write_file("cfgkey", "hgr_from_config_file\n", 0600);
  /* token_file is relative: it starts at the config file's directory. */
  const char *cfg = write_file("cli.lua",
                               "hub_url = \"https://config.example\"\n"
                               "token_file = \"cfgkey\"\n"
                               "ca_file = \"/etc/hub-ca.pem\"\n",
                               0600);
  setenv("HANGAR_CLI_CONFIG", cfg, 1);
  hg_settings_flags none = {0};
  hg_settings s;
  hg_err err = {0};
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), 0);
  CHECK_EQ_STR(s.hub_url, "https://config.example");
  CHECK_EQ_STR(s.token, "hgr_from_config_file");
  CHECK_EQ_STR(s.ca_file, "/etc/hub-ca.pem");
  CHECK_EQ_INT(s.warnings.len, 0);
  hg_settings_free(&s);
  /* The environment still wins over the file. */
  setenv("HANGAR_HUB_URL", "https://env.example", 1);
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), 0);
  CHECK_EQ_STR(s.hub_url, "https://env.example");
  CHECK_EQ_STR(s.token, "hgr_from_config_file");
  hg_settings_free(&s);
}

static void config_file_with_a_key_readable_by_others_warns(void) {
  clean_env();
  const char *cfg = write_file("inline.lua",
                               "hub_url = \"https://config.example\"\n"
                               "token = \"hgr_inline_secret\"\n",
                               0644);
  setenv("HANGAR_CLI_CONFIG", cfg, 1);
  hg_settings_flags none = {0};
  hg_settings s;
  hg_err err = {0};
  CHECK_EQ_INT(hg_settings_resolve(&s, &none, &err), 0);
  CHECK_EQ_STR(s.token, "hgr_inline_secret");
  CHECK(s.warnings.data && strstr(s.warnings.data, "holds a key and can be read by other users"));
  CHECK(s.warnings.data && !strstr(s.warnings.data, "hgr_inline_secret"));
  hg_settings_free(&s);
}

static void config_file_mistakes_name_file_and_line(void) {
  clean_env();
  const char *cfg = write_file("typo.lua", "hub_url = \"https://x\"\ntoken_flie = \"k\"\n", 0600);
  setenv("HANGAR_CLI_CONFIG", cfg, 1);
  hg_settings_flags none = {0};
  hg_settings s;
  hg_err err = {0};
  CHECK(hg_settings_resolve(&s, &none, &err) < 0);
  CHECK(strstr(err.msg, "typo.lua:2:") != NULL);
  CHECK(strstr(err.msg, "token_flie") != NULL);
  /* The file runs sandboxed: it cannot run commands. */
  cfg = write_file("evil.lua", "os.execute(\"touch pwned\")\nhub_url = \"https://x\"\n", 0600);
  setenv("HANGAR_CLI_CONFIG", cfg, 1);
  CHECK(hg_settings_resolve(&s, &none, &err) < 0);
  CHECK(strstr(err.msg, "evil.lua:1:") != NULL);
}

TEST_MAIN(T(token_file_is_trimmed), T(readable_token_file_warns), T(bad_token_files),
          T(flags_win_over_environment), T(missing_hub_and_key_say_how_to_give_them),
          T(config_file_fills_what_is_unset), T(config_file_with_a_key_readable_by_others_warns),
          T(config_file_mistakes_name_file_and_line))
