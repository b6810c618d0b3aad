/* Where the CLI finds its hub and its key. */
#include "cli/settings.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOKEN_FILE_MAX 4096

static void warn_if_shared(const char *path, const char *what, hg_buf *warnings) {
  struct stat st;
  if (stat(path, &st) == 0 && (st.st_mode & 077))
    hg_buf_printf(warnings,
                  "%s %s can be read by other users (mode %04o); run 'chmod 600 %s'\n", what,
                  path, (unsigned)(st.st_mode & 07777), path);
}

int hg_settings_read_token_file(const char *path, char **token, hg_buf *warnings, hg_err *err) {
  *token = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return hg_err_set(err, HG_EINVAL, "cannot read key file %s: %s", path, strerror(errno));
  char data[TOKEN_FILE_MAX + 1];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof data && (n = read(fd, data + len, sizeof data - len)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      memset(data, 0, sizeof data);
      return hg_err_set(err, HG_EINVAL, "cannot read key file %s: %s", path, strerror(e));
    }
    len += (size_t)n;
  }
  close(fd);
  int rc = 0;
  size_t start = 0, end = len;
  while (start < end && isspace((unsigned char)data[start])) start++;
  while (end > start && isspace((unsigned char)data[end - 1])) end--;
  if (len > TOKEN_FILE_MAX) {
    rc = hg_err_set(err, HG_EINVAL, "key file %s is larger than %d bytes: is it a key?", path,
                    TOKEN_FILE_MAX);
  } else if (start == end) {
    rc = hg_err_set(err, HG_EINVAL, "key file %s is empty", path);
  } else {
    for (size_t i = start; i < end && rc == 0; i++)
      if (isspace((unsigned char)data[i]) || !isprint((unsigned char)data[i]))
        rc = hg_err_set(err, HG_EINVAL, "key file %s holds more than one word: it should hold only the key",
                        path);
  }
  if (rc == 0) {
    *token = strndup(data + start, end - start);
    if (!*token) rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  memset(data, 0, sizeof data);
  if (rc == 0) warn_if_shared(path, "key file", warnings);
  return rc;
}

char *hg_settings_config_path(void) {
  const char *explicit = getenv("HANGAR_CLI_CONFIG");
  if (explicit && *explicit) return strdup(explicit);
  hg_buf b = HG_BUF_INIT;
  const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
  if (xdg && *xdg)
    hg_buf_printf(&b, "%s/hangar/cli.lua", xdg);
  else if (home && *home)
    hg_buf_printf(&b, "%s/.config/hangar/cli.lua", home);
  return hg_buf_steal(&b);
}

/* TODO(config loader): read hub_url, token_file, token, ca_file, allow_http. */
static int hg_settings_load_config(hg_settings *s, const char *path, hg_err *err) {
  (void)s;
  return hg_err_set(err, HG_EINVAL, "%s: CLI config files are not read yet", path);
}

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

static int set_str(char **slot, const char *value, hg_err *err) {
  if (*slot || !value) return 0;
  *slot = strdup(value);
  return *slot ? 0 : hg_err_set(err, HG_ENOMEM, "out of memory");
}

int hg_settings_resolve(hg_settings *s, const hg_settings_flags *flags, hg_err *err) {
  memset(s, 0, sizeof *s);
  int rc = 0;
  /* Flags first. */
  if (rc == 0) rc = set_str(&s->hub_url, flags->hub_url, err);
  if (rc == 0) rc = set_str(&s->ca_file, flags->ca_file, err);
  if (rc == 0 && flags->token_file)
    rc = hg_settings_read_token_file(flags->token_file, &s->token, &s->warnings, err);
  s->allow_http = flags->allow_http;
  /* Then the environment. */
  if (rc == 0) rc = set_str(&s->hub_url, env("HANGAR_HUB_URL"), err);
  if (rc == 0) rc = set_str(&s->token, env("HANGAR_TOKEN"), err);
  if (rc == 0) rc = set_str(&s->ca_file, env("HANGAR_CA_FILE"), err);
  /* Then the config file, for whatever is still unset. */
  if (rc == 0 && (!s->hub_url || !s->token || !s->ca_file)) {
    char *path = hg_settings_config_path();
    if (path && access(path, F_OK) == 0) {
      s->config_path = path;
      rc = hg_settings_load_config(s, path, err);
    } else {
      free(path);
    }
  }
  if (rc == 0 && !s->hub_url) {
    char *path = s->config_path ? NULL : hg_settings_config_path();
    rc = hg_err_set(err, HG_EINVAL,
                    "no hub URL: pass --hub URL, set HANGAR_HUB_URL, or set hub_url in %s",
                    s->config_path ? s->config_path : path ? path : "~/.config/hangar/cli.lua");
    free(path);
  }
  if (rc < 0) hg_settings_free(s);
  return rc;
}

int hg_settings_require_token(const hg_settings *s, hg_err *err) {
  if (s->token) return 0;
  return hg_err_set(err, HG_EINVAL,
                    "no API key: pass --token-file FILE, set HANGAR_TOKEN, or set token_file "
                    "in the CLI config file (%s)",
                    s->config_path ? s->config_path : "$HANGAR_CLI_CONFIG or ~/.config/hangar/cli.lua");
}

void hg_settings_free(hg_settings *s) {
  if (s->token) {
    memset(s->token, 0, strlen(s->token));
    free(s->token);
  }
  free(s->hub_url);
  free(s->ca_file);
  free(s->config_path);
  hg_buf_free(&s->warnings);
  memset(s, 0, sizeof *s);
}
