/* Where the CLI finds its hub and its key: flags first, then the environment
 * (HANGAR_HUB_URL, HANGAR_TOKEN, HANGAR_CA_FILE), then the CLI config file
 * ($HANGAR_CLI_CONFIG, else ~/.config/hangar/cli.lua), read with the sandboxed config loader
 * against lua/hangar/schema/cli.lua: hub_url, token_file, token, ca_file, allow_http. */
#pragma once

#include "core/buf.h"
#include "core/err.h"

/* What the command line said; NULL or 0 for an option not given. */
typedef struct hg_settings_flags {
  const char *hub_url;
  const char *token_file;
  const char *ca_file;
  int allow_http;
} hg_settings_flags;

typedef struct hg_settings {
  char *hub_url;
  char *token;       /* the API key; wiped when freed, never printed */
  char *ca_file;     /* NULL: the system's CAs */
  int allow_http;
  char *config_path; /* the config file that was read, or NULL */
  hg_buf warnings;   /* lines to show the user (a key file others can read) */
} hg_settings;

/* Resolves every setting. A missing hub URL is HG_EINVAL with a message that says the three
 * ways to give one; a missing key is not an error here (token stays NULL), as some calls need
 * none: use hg_settings_require_token before calls that do. */
int hg_settings_resolve(hg_settings *s, const hg_settings_flags *flags, hg_err *err);
int hg_settings_require_token(const hg_settings *s, hg_err *err);
void hg_settings_free(hg_settings *s);

/* Reads a key from path: the first line, surrounding white space trimmed. Adds a warning to
 * warnings when the file is readable by group or others. HG_EINVAL when it is empty or
 * holds more than one line. */
int hg_settings_read_token_file(const char *path, char **token, hg_buf *warnings, hg_err *err);

/* The path of the CLI config file this process would read (it may not exist); the caller
 * frees it. */
char *hg_settings_config_path(void);
