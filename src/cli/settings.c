/* Where the CLI finds its hub and its key. */
#include "cli/settings.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/loop.h"
#include "lua/config.h"
#include "lua/runtime.h"

#define TOKEN_FILE_MAX 4096

/* extra goes between the path and "can be read", to say why the file matters. */
static void warn_if_shared(const char *path, const char *what, const char *extra, hg_buf *warnings) {
  struct stat st;
  if (stat(path, &st) == 0 && (st.st_mode & 077))
    hg_buf_printf(warnings, "%s %s%s can be read by other users (mode %04o); run 'chmod 600 %s'\n",
                  what, path, extra, (unsigned)(st.st_mode & 07777), path);
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
  if (rc == 0) warn_if_shared(path, "key file", "", warnings);
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

/* A path from the config file: "~/" is the home directory, and a relative path starts at
 * the config file's directory (not wherever the CLI happens to run). */
static char *config_relative(const char *config_path, const char *p) {
  hg_buf b = HG_BUF_INIT;
  const char *home = getenv("HOME");
  if (strncmp(p, "~/", 2) == 0 && home && *home) {
    hg_buf_printf(&b, "%s/%s", home, p + 2);
  } else if (p[0] != '/') {
    const char *slash = strrchr(config_path, '/');
    if (slash)
      hg_buf_printf(&b, "%.*s/%s", (int)(slash - config_path), config_path, p);
    else
      hg_buf_appends(&b, p);
  } else {
    hg_buf_appends(&b, p);
  }
  return hg_buf_steal(&b);
}

static int config_string(hg_lua_config *cfg, const char *key, char **out, hg_err *err) {
  *out = NULL;
  int rc = hg_lua_config_string(cfg, key, out, err);
  return rc == HG_ENOENT ? 0 : rc;
}

/* Reads the CLI config file with the project's sandboxed config loader and fills in what is
 * still unset. */
static int load_config_file(hg_settings *s, const char *path, hg_err *err) {
  hg_loop loop;
  int rc = hg_loop_init(&loop, err);
  if (rc < 0) return rc;
  hg_lua_opts lo = {.mode = HG_LUA_SANDBOXED, .mem_limit = 16u << 20, .cpu_budget_ms = 2000};
  hg_lua *rt = NULL;
  hg_lua_config *cfg = NULL;
  char *hub_url = NULL, *token = NULL, *token_file = NULL, *ca_file = NULL;
  rc = hg_lua_new(&loop, &lo, &rt, err);
  hg_lua_config_opts co = {.path = path, .schema = "hangar.schema.cli"};
  if (rc == 0) rc = hg_lua_config_load(rt, &co, &cfg, err);
  if (rc == 0) rc = config_string(cfg, "hub_url", &hub_url, err);
  if (rc == 0) rc = config_string(cfg, "token", &token, err);
  if (rc == 0) rc = config_string(cfg, "token_file", &token_file, err);
  if (rc == 0) rc = config_string(cfg, "ca_file", &ca_file, err);
  if (rc == 0 && !s->allow_http) {
    int allow = 0;
    if (hg_lua_config_bool(cfg, "allow_http", &allow, NULL) == 0) s->allow_http = allow;
  }
  if (rc == 0 && !s->hub_url && hub_url) {
    s->hub_url = hub_url;
    hub_url = NULL;
  }
  if (rc == 0 && !s->ca_file && ca_file) {
    s->ca_file = config_relative(path, ca_file);
    if (!s->ca_file) rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  if (rc == 0 && !s->token && token_file) {
    char *full = config_relative(path, token_file);
    rc = full ? hg_settings_read_token_file(full, &s->token, &s->warnings, err)
              : hg_err_set(err, HG_ENOMEM, "out of memory");
    free(full);
  } else if (rc == 0 && !s->token && token) {
    s->token = token;
    token = NULL;
    warn_if_shared(path, "config file", " holds a key and", &s->warnings);
  }
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  free(hub_url);
  free(token_file);
  free(ca_file);
  hg_lua_config_free(cfg);
  hg_lua_free(rt);
  hg_loop_close(&loop);
  return rc;
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
      rc = load_config_file(s, path, err);
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
