/* Reading the agent's API key from where the configuration says, and scrubbing it from the
 * environment it came from. */
#include "agent/agentkey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"

#define KEY_MAX 4096 /* far above a real key: anything longer is not a key */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Appends data[0..len) without surrounding whitespace. */
static int append_trimmed(hg_buf *out, const char *data, size_t len, hg_err *err) {
  while (len && is_space(data[0])) data++, len--;
  while (len && is_space(data[len - 1])) len--;
  if (hg_buf_append(out, data, len)) return hg_err_set(err, HG_ENOMEM, "out of memory");
  return 0;
}

/* Reads fd to its end (at most KEY_MAX bytes) into a buffer that is wiped afterwards. */
static int read_all(int fd, const char *what, hg_buf *out, hg_err *err) {
  char raw[KEY_MAX + 1];
  size_t len = 0;
  int rc = 0;
  for (;;) {
    if (len == sizeof raw) {
      rc = hg_err_set(err, HG_EINVAL, "%s holds more than %d bytes: not an API key", what, KEY_MAX);
      break;
    }
    ssize_t n = read(fd, raw + len, sizeof raw - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = hg_err_set(err, HG_EIO, "cannot read %s: %s", what, strerror(errno));
      break;
    }
    if (n == 0) break;
    len += (size_t)n;
  }
  if (!rc) rc = append_trimmed(out, raw, len, err);
  hg_crypto_wipe(raw, sizeof raw);
  return rc;
}

int hg_agentkey_read_file(const char *path, hg_buf *out, int *loose, hg_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return hg_err_set(err, errno == ENOENT ? HG_ENOENT : HG_EIO, "cannot read key_file %s: %s",
                      path, strerror(errno));
  struct stat st;
  if (loose) *loose = fstat(fd, &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0;
  char what[1100];
  snprintf(what, sizeof what, "key_file %s", path);
  int rc = read_all(fd, what, out, err);
  close(fd);
  return rc;
}

int hg_agentkey_read_fd(int fd, hg_buf *out, hg_err *err) {
  char what[48];
  snprintf(what, sizeof what, "key_fd %d", fd);
  if (fd < 0) return hg_err_set(err, HG_EINVAL, "%s: not a file descriptor", what);
  int rc = read_all(fd, what, out, err);
  close(fd);
  return rc;
}

int hg_agentkey_read_env(const char *name, hg_buf *out, hg_err *err) {
  const char *value = getenv(name);
  if (!value) return hg_err_set(err, HG_ENOENT, "key_env %s is not set", name);
  return append_trimmed(out, value, strlen(value), err);
}

int hg_agentkey_take_env(const char *name, hg_buf *out, hg_err *err) {
  int rc = hg_agentkey_read_env(name, out, err);
  if (rc == HG_ENOENT) return rc;
  char *value = getenv(name);
  size_t len = strlen(value);
  /* getenv points into the environment block itself (for variables inherited at exec, the
   * very bytes /proc/self/environ shows): overwrite them, then drop the variable. */
  hg_crypto_wipe(value, len);
  unsetenv(name);
  return rc;
}

static int b64url_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

int hg_agentkey_check(const char *key, size_t len, const char *from, hg_err *err) {
  /* hgr_ + 12 + _ + 43 */
  int ok = len == 4 + 12 + 1 + 43 && memcmp(key, "hgr_", 4) == 0 && key[16] == '_';
  for (size_t i = 4; ok && i < 16; i++)
    ok = (key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9');
  for (size_t i = 17; ok && i < len; i++) ok = b64url_char(key[i]);
  if (!ok)
    return hg_err_set(err, HG_EINVAL,
                      "%s does not hold a Hangar API key (expected hgr_<id>_<secret>, %d "
                      "characters; got %zu characters)",
                      from, 4 + 12 + 1 + 43, len);
  return 0;
}
