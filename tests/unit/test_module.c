/* Hangar's own modules: found beside the executable (a build tree) or in the installed module
 * directory relative to it; a missing or broken one is named with the paths it was looked for. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

#include "check.h"
#include "core/module.h"

static char dir[PATH_MAX];

/* This test's own directory, where the loader looks first. */
static void find_dir(void) {
  if (dir[0]) return;
  ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
  CHECK(n > 0);
  dir[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
}

static void names_both_places_when_missing(void) {
  find_dir();
  char file[64], beside[PATH_MAX + 64], installed_end[96];
  snprintf(file, sizeof file, "hangar-test-missing-%d.so", (int)getpid());
  snprintf(beside, sizeof beside, "%s/%s", dir, file);
  snprintf(installed_end, sizeof installed_end, "/hangar/%s", file);
  void *m = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_module_open(file, &m, &err), HG_ENOENT);
  CHECK(m == NULL);
  CHECK_CONTAINS(err.msg, beside);
  CHECK_CONTAINS(err.msg, installed_end);
  CHECK_CONTAINS(err.msg, "is missing");
}

static void names_a_file_that_is_no_module(void) {
  find_dir();
  char file[64], path[PATH_MAX + 64];
  snprintf(file, sizeof file, "hangar-test-junk-%d.so", (int)getpid());
  snprintf(path, sizeof path, "%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs("not a shared object\n", f);
  fclose(f);
  void *m = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_module_open(file, &m, &err), HG_EINVAL);
  CHECK(m == NULL);
  CHECK_CONTAINS(err.msg, path);
  unlink(path);
}

/* A real shared object beside the executable (a link to the C library): loaded, its symbols
 * found. */
static void loads_what_lies_beside_the_executable(void) {
  find_dir();
  void *sym = dlsym(RTLD_DEFAULT, "gnu_get_libc_version");
  Dl_info info;
  CHECK(sym && dladdr(sym, &info) != 0 && info.dli_fname);
  if (!sym) return;
  char file[64], path[PATH_MAX + 64];
  snprintf(file, sizeof file, "hangar-test-lib-%d.so", (int)getpid());
  snprintf(path, sizeof path, "%s/%s", dir, file);
  CHECK(symlink(info.dli_fname, path) == 0);
  void *m = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_module_open(file, &m, &err), 0);
  CHECK(m != NULL);
  if (m) {
    CHECK(hg_module_sym(m, file, "gnu_get_libc_version", &err) == sym);
    CHECK(hg_module_sym(m, file, "hangar_no_such_symbol", &err) == NULL);
    CHECK_CONTAINS(err.msg, "hangar_no_such_symbol");
    CHECK_CONTAINS(err.msg, file);
    dlclose(m);
  }
  unlink(path);
}

TEST_MAIN(T(names_both_places_when_missing), T(names_a_file_that_is_no_module),
          T(loads_what_lies_beside_the_executable))
