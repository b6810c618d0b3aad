/* The agent's API key: read from a file, a descriptor or the environment; the environment's
 * copy is gone afterwards, from the variables and from /proc/self/environ; shape checks that
 * never quote the key. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agentkey.h"
#include "check.h"

#define KEY "hgr_abcdefghij12_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_aa"
#define CHILD_VAR "HANGAR_TEST_AGENT_KEY"

static char *tmp_path(const char *name) {
  static char path[512];
  const char *base = getenv("HANGAR_TEST_TMP");
  snprintf(path, sizeof path, "%s/agentkey-%d-%s", base ? base : "/tmp", (int)getpid(), name);
  return path;
}

static void write_file(const char *path, const char *text, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  CHECK(fd >= 0);
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  close(fd);
  chmod(path, mode);
}

static void key_file_is_trimmed_and_loose_modes_noticed(void) {
  char *path = tmp_path("key");
  write_file(path, "  " KEY "\n", 0600);
  hg_buf key = HG_BUF_INIT;
  hg_err err;
  int loose = -1;
  CHECK_EQ_INT(hg_agentkey_read_file(path, &key, &loose, &err), 0);
  CHECK_EQ_STR(key.data, KEY);
  CHECK_EQ_INT(loose, 0);
  CHECK_EQ_INT(hg_agentkey_check(key.data, key.len, "key_file", &err), 0);
  hg_buf_wipe(&key);

  write_file(path, KEY, 0644);
  CHECK_EQ_INT(hg_agentkey_read_file(path, &key, &loose, &err), 0);
  CHECK_EQ_INT(loose, 1);
  hg_buf_wipe(&key);
  unlink(path);

  CHECK_EQ_INT(hg_agentkey_read_file(path, &key, NULL, &err), HG_ENOENT);
  CHECK(strstr(err.msg, path) != NULL);
}

static void key_fd_is_read_to_its_end_and_closed(void) {
  int fds[2];
  CHECK_EQ_INT(pipe(fds), 0);
  CHECK(write(fds[1], KEY "\n", strlen(KEY) + 1) > 0);
  close(fds[1]);
  hg_buf key = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_agentkey_read_fd(fds[0], &key, &err), 0);
  CHECK_EQ_STR(key.data, KEY);
  CHECK(fcntl(fds[0], F_GETFD) == -1); /* closed */
  hg_buf_wipe(&key);
}

static void shape_errors_never_quote_the_key(void) {
  hg_err err;
  const char *bad[] = {"hgr_abc_def", "xyz_abcdefghij12_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_aa",
                       "hgr_ABCDEFGHIJ12_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA-_aa",
                       "hgr_abcdefghij12_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+/aa", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_EQ_INT(hg_agentkey_check(bad[i], strlen(bad[i]), "key_env X", &err), HG_EINVAL);
    CHECK(strstr(err.msg, "key_env X") != NULL);
    if (*bad[i]) CHECK(strstr(err.msg, bad[i]) == NULL);
  }
}

/* Runs in a child started with CHILD_VAR in its initial environment (the bytes
 * /proc/self/environ shows): takes the key and looks for it there. */
static void scrub_child(void) {
  if (!getenv(CHILD_VAR)) return; /* only in the child */
  hg_buf key = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_agentkey_take_env(CHILD_VAR, &key, &err), 0);
  CHECK_EQ_STR(key.data, KEY);
  CHECK(getenv(CHILD_VAR) == NULL);
  int fd = open("/proc/self/environ", O_RDONLY);
  CHECK(fd >= 0);
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  close(fd);
  CHECK(n > 0);
  CHECK(memmem(buf, (size_t)n, &KEY[4], strlen(KEY) - 4) == NULL);
  hg_buf_wipe(&key);
}

static void key_env_is_scrubbed_from_the_process_environment(void) {
  if (getenv(CHILD_VAR)) return;
  /* Under valgrind /proc/self/exe is the tool, not this test: the re-exec is then skipped. */
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  if (n > 0 && strstr(self, "test_agent_key")) {
    pid_t pid = fork();
    if (pid == 0) {
      char *argv[] = {"test_agent_key", "scrub_child", NULL};
      char *envp[] = {CHILD_VAR "=" KEY, "OTHER=1", NULL};
      execve(self, argv, envp);
      _exit(127);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }

  hg_buf key = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_agentkey_take_env("HANGAR_TEST_NO_SUCH_VAR", &key, &err), HG_ENOENT);
  CHECK(strstr(err.msg, "HANGAR_TEST_NO_SUCH_VAR") != NULL);
}

/* `hangar agent --check` reads the key the way the agent does (trimmed) but leaves it set. */
static void key_env_read_is_trimmed_and_left_in_place(void) {
  CHECK_EQ_INT(setenv("HANGAR_TEST_READ_KEY", "  " KEY "\n", 1), 0);
  hg_buf key = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_agentkey_read_env("HANGAR_TEST_READ_KEY", &key, &err), 0);
  CHECK_EQ_STR(key.data, KEY);
  const char *still = getenv("HANGAR_TEST_READ_KEY");
  CHECK(still && strcmp(still, "  " KEY "\n") == 0);
  hg_buf_wipe(&key);
  CHECK_EQ_INT(unsetenv("HANGAR_TEST_READ_KEY"), 0);
  CHECK_EQ_INT(hg_agentkey_read_env("HANGAR_TEST_READ_KEY", &key, &err), HG_ENOENT);
  CHECK(strstr(err.msg, "HANGAR_TEST_READ_KEY") != NULL);
}

TEST_MAIN(T(key_file_is_trimmed_and_loose_modes_noticed), T(key_env_read_is_trimmed_and_left_in_place), T(key_fd_is_read_to_its_end_and_closed),
          T(shape_errors_never_quote_the_key), T(key_env_is_scrubbed_from_the_process_environment),
          T(scrub_child))
