/* What a program's own start-up costs on this machine, apart from Hangar: the part of the
 * dispatch floor (and of every dispatch) that the started program spends before its main.
 *
 *   startup_cost [-n RUNS] PROGRAM [ARG...]
 *
 * Prints "name value" lines:
 *   cpuid_us            one cpuid instruction (x86-64 only), the median of 5 loops of 200: in a
 *                       virtual machine it may trap to the hypervisor
 *   reap_p50_us         fork + exec + exit + wait of PROGRAM, RUNS times (default 200)
 *   start_instructions  the instructions PROGRAM executes from its exec to its exit, counted
 *                       by single-stepping it under ptrace
 *   start_cpuids        how many of them are cpuid
 * PROGRAM's output goes to /dev/null. Exits 3, saying why, when this process may not trace
 * its own child (a seccomp profile or a Yama setting can forbid it). */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

/* A child with stdout and stderr on /dev/null, stopped for its parent's ptrace when traced. */
static pid_t start(char **argv, int traced) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    if (traced && ptrace(PTRACE_TRACEME, 0, NULL, NULL) != 0) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static int reap_p50(char **argv, int runs, double *out_us) {
  long long *t = calloc((size_t)runs, sizeof *t);
  if (!t) return -1;
  for (int i = 0; i < runs; i++) {
    long long t0 = now_ns();
    pid_t pid = start(argv, 0);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) == 127) {
      free(t);
      return -1;
    }
    t[i] = now_ns() - t0;
  }
  qsort(t, (size_t)runs, sizeof *t, cmp);
  *out_us = (double)t[runs / 2] / 1e3;
  free(t);
  return 0;
}

/* Steps the child one instruction at a time from its exec to its exit. Returns 0, -1 on a
 * failure to start, -2 when tracing is refused. */
static int count_start(char **argv, long *instructions, long *cpuids) {
  pid_t pid = start(argv, 1);
  if (pid < 0) return -1;
  int st;
  if (waitpid(pid, &st, 0) != pid) return -1;
  if (WIFEXITED(st)) return WEXITSTATUS(st) == 126 ? -2 : -1;
  *instructions = *cpuids = 0;
  for (;;) {
#if defined(__x86_64__)
    struct user_regs_struct regs;
    if (ptrace(PTRACE_GETREGS, pid, NULL, &regs) == 0) {
      errno = 0;
      long word = ptrace(PTRACE_PEEKTEXT, pid, (void *)regs.rip, NULL);
      if (errno == 0 && (word & 0xffff) == 0xa20f) (*cpuids)++; /* 0f a2: cpuid */
    }
#endif
    if (ptrace(PTRACE_SINGLESTEP, pid, NULL, NULL) != 0) break;
    if (waitpid(pid, &st, 0) != pid || WIFEXITED(st) || WIFSIGNALED(st)) break;
    (*instructions)++;
  }
  return 0;
}

#if defined(__x86_64__)
static double cpuid_us(void) {
  long long loops[5];
  for (int r = 0; r < 5; r++) {
    unsigned a, b, c, d;
    long long t0 = now_ns();
    for (int i = 0; i < 200; i++) __cpuid_count(0, 0, a, b, c, d);
    loops[r] = now_ns() - t0;
    (void)a, (void)b, (void)c, (void)d;
  }
  qsort(loops, 5, sizeof loops[0], cmp);
  return (double)loops[2] / 200 / 1e3;
}
#endif

int main(int argc, char **argv) {
  int runs = 200, i = 1;
  if (i + 1 < argc && strcmp(argv[i], "-n") == 0) {
    runs = atoi(argv[i + 1]);
    i += 2;
  }
  if (i >= argc || runs < 1 || strcmp(argv[i], "--help") == 0) {
    fprintf(stderr, "usage: startup_cost [-n RUNS] PROGRAM [ARG...]\n");
    return 2;
  }
  char **target = argv + i;
  if (target[0][0] != '/') {
    fprintf(stderr, "startup_cost: %s: give the program's absolute path\n", target[0]);
    return 2;
  }
#if defined(__x86_64__)
  printf("cpuid_us %.2f\n", cpuid_us());
#endif
  double p50;
  if (reap_p50(target, runs, &p50) != 0) {
    fprintf(stderr, "startup_cost: %s did not start, or exited 127\n", target[0]);
    return 1;
  }
  printf("reap_p50_us %.1f\n", p50);
  long instructions, cpuids;
  int rc = count_start(target, &instructions, &cpuids);
  if (rc == -2) {
    fprintf(stderr, "startup_cost: this process may not trace its child here\n");
    return 3;
  }
  if (rc != 0) {
    fprintf(stderr, "startup_cost: %s could not be traced\n", target[0]);
    return 1;
  }
  printf("start_instructions %ld\n", instructions);
  printf("start_cpuids %ld\n", cpuids);
  return 0;
}
