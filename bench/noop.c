/* The no-op task of the system benchmarks: notes when it began running (CLOCK_MONOTONIC, the
 * clock hangar.timer.monotonic_ns reads) in a file, then exits 0 as /bin/true would. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (argc < 2) return 0;
  /* One line per start, appended in one write: runs started at once do not mix lines. */
  const char *id = getenv("HANGAR_RUN_ID");
  char line[160];
  int n = snprintf(line, sizeof line, "%s %lld\n", id ? id : "-",
                   (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
  int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return 1;
  int ok = write(fd, line, (size_t)n) == n;
  close(fd);
  return ok ? 0 : 1;
}
