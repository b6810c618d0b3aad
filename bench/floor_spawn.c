/* The floor of dispatch: what a bare fork + exec + wait of the no-op task costs on this machine.
 *
 *   floor_spawn NOOP STAMPS RUNS [PARALLEL]
 *
 * First RUNS one at a time: from before fork to the task running (the time NOOP writes to
 * STAMPS) and to its exit being reaped; then RUNS again with up to PARALLEL (default 32) at
 * once, for runs per second (PARALLEL 0: not). STAMPS must not exist yet. Prints "name value"
 * lines, and a line "run RUNNING_US REAPED_US" for each run of the first part, in order, for a
 * caller that pools several calls (bench_agent.lua's dispatch). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static pid_t start(char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static int reap(pid_t pid) {
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of n sorted values. */
static long long pct(const long long *v, int n, int p) {
  int k = (p * n + 99) / 100;
  return v[k < 1 ? 0 : k - 1];
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: floor_spawn NOOP STAMPS RUNS [PARALLEL]\n");
    return 2;
  }
  int runs = atoi(argv[3]), parallel = argc > 4 ? atoi(argv[4]) : 32;
  if (runs < 1 || parallel < 0) return 2;
  char *targv[] = {argv[1], argv[2], NULL};
  long long *t0 = calloc((size_t)runs, sizeof *t0), *exec = calloc((size_t)runs, sizeof *exec),
            *done = calloc((size_t)runs, sizeof *done);
  int rc = 1;
  if (!t0 || !exec || !done) goto out;
  /* STAMPS must be new: the task appends to it, and a stale line would be read as a start. */
  int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "floor_spawn: %s: %s (it must not exist yet)\n", argv[2], strerror(errno));
    goto out;
  }
  close(fd);
  for (int i = 0; i < runs; i++) {
    t0[i] = now_ns();
    pid_t pid = start(targv);
    if (pid < 0 || reap(pid)) {
      fprintf(stderr, "floor_spawn: %s failed\n", argv[1]);
      goto out;
    }
    done[i] = now_ns() - t0[i];
  }
  /* The task wrote one start time per line, in order. */
  FILE *f = fopen(argv[2], "r");
  if (!f) goto out;
  char id[128];
  for (int i = 0; i < runs; i++) {
    if (fscanf(f, "%127s %lld", id, &exec[i]) != 2) {
      fclose(f);
      goto out;
    }
    exec[i] -= t0[i];
  }
  fclose(f);
  for (int i = 0; i < runs; i++) printf("run %.1f %.1f\n", exec[i] / 1e3, done[i] / 1e3);
  qsort(exec, (size_t)runs, sizeof *exec, cmp);
  qsort(done, (size_t)runs, sizeof *done, cmp);
  printf("spawn_to_running_p50_us %.1f\n", pct(exec, runs, 50) / 1e3);
  printf("spawn_to_running_p99_us %.1f\n", pct(exec, runs, 99) / 1e3);
  printf("spawn_to_reaped_p50_us %.1f\n", pct(done, runs, 50) / 1e3);
  printf("spawn_to_reaped_p99_us %.1f\n", pct(done, runs, 99) / 1e3);

  if (parallel == 0) {
    rc = 0;
    goto out;
  }
  char *quiet[] = {argv[1], NULL};
  long long begin = now_ns();
  int started = 0, running = 0;
  while (started < runs || running > 0) {
    while (started < runs && running < parallel) {
      if (start(quiet) < 0) goto out;
      started++, running++;
    }
    int st;
    if (wait(&st) < 0) {
      if (errno == EINTR) continue;
      goto out;
    }
    running--;
  }
  double secs = (now_ns() - begin) / 1e9;
  printf("parallel %d\n", parallel);
  printf("runs_per_s %.0f\n", runs / secs);
  rc = 0;
out:
  free(t0);
  free(exec);
  free(done);
  return rc;
}
