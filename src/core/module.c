/* Hangar's own loadable modules, found relative to the running executable. */
#include "core/module.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/paths.h"

#ifndef HANGAR_MODULE_RELDIR
#define HANGAR_MODULE_RELDIR "../lib/hangar"
#endif

int hg_module_open(const char *file, void **out, hg_err *err) {
  char dir[PATH_MAX], beside[PATH_MAX + 64], installed[PATH_MAX + 256];
  int rc = hg_paths_exe_dir(dir, sizeof dir, err);
  if (rc) return rc;
  snprintf(beside, sizeof beside, "%s/%s", dir, file);
  snprintf(installed, sizeof installed, "%s/%s/%s", dir, HANGAR_MODULE_RELDIR, file);
  const char *path = access(beside, F_OK) == 0 ? beside : installed;
  if (access(path, F_OK) != 0)
    return hg_err_set(err, HG_ENOENT,
                      "module %s is missing: it is installed with the hangar executable, as %s "
                      "(or lies beside it in a build tree, as %s)",
                      file, installed, beside);
  /* RTLD_NOW: a symbol the executable lacks (a module of another build) fails here, named. */
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char *why = dlerror();
    return hg_err_set(err, HG_EINVAL, "cannot load module %s: %s", path, why ? why : "unknown error");
  }
  *out = h;
  return 0;
}

void *hg_module_sym(void *module, const char *file, const char *name, hg_err *err) {
  dlerror();
  void *p = dlsym(module, name);
  if (!p) hg_err_set(err, HG_EINVAL, "module %s has no %s: it is not from this build of hangar", file, name);
  return p;
}
