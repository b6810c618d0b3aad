/* A child process for test_proc: reports what a spawned program inherits, or plays the
 * intermediate parent that dies while its own spawned child still runs. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/proc.h"

/* Prints "fds:" and every open descriptor above 2, probing each so that listing them opens
 * none of its own. */
static int list_fds(void) {
  printf("fds:");
  for (int fd = 3; fd < 65536; fd++) {
    if (fcntl(fd, F_GETFD) >= 0) printf(" %d", fd);
  }
  printf("\n");
  return 0;
}

/* Prints the capacity of the pipes on stdout and stderr, once both hold a MiB or after 10 s:
 * the spawner may grow them just after the start. */
static int pipe_sizes(void) {
  int out = 0, err = 0;
  for (int i = 0; i < 1000; i++) {
    out = fcntl(1, F_GETPIPE_SZ);
    err = fcntl(2, F_GETPIPE_SZ);
    if (out >= (1 << 20) && err >= (1 << 20)) break;
    usleep(10000);
  }
  printf("pipes: %d %d\n", out, err);
  return 0;
}

/* Spawns argv through hg_proc, prints the child's pid, then waits to be killed. */
static int spawn_and_wait(char **argv) {
  hg_loop loop;
  hg_err err;
  if (hg_loop_init(&loop, &err)) return 2;
  const char *env[] = {"PATH=/usr/bin:/bin", NULL};
  hg_proc_opts opts = {.argv = (const char *const *)argv, .env = env, .new_pgroup = 1};
  hg_proc *p;
  if (hg_proc_spawn(&loop, &opts, &p, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 2;
  }
  printf("%d\n", (int)hg_proc_pid(p));
  fflush(stdout);
  hg_loop_run(&loop);
  hg_proc_free(p);
  hg_loop_close(&loop);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "fds") == 0) return list_fds();
  if (argc >= 2 && strcmp(argv[1], "pipes") == 0) return pipe_sizes();
  if (argc >= 3 && strcmp(argv[1], "spawn") == 0) return spawn_and_wait(argv + 2);
  fprintf(stderr, "usage: helper_proc fds | pipes | spawn PROGRAM [ARG...]\n");
  return 2;
}
