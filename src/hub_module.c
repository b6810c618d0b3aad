/* `hangar hub`: the hub lives in the module hangar-hub.so (with SQLite and libh2o), which only
 * this command loads: an agent or a CLI never maps the hub's code or its libraries. */
#include <stdio.h>

#include "cmds.h"
#include "core/module.h"

#define HUB_MODULE "hangar-hub.so"

typedef int (*command_fn)(int argc, char **argv);

int cmd_hub(int argc, char **argv) {
  hg_err err = {0};
  void *module;
  if (hg_module_open(HUB_MODULE, &module, &err)) {
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    return 1;
  }
  command_fn fn;
  /* POSIX: a function's address survives the trip through dlsym's void *. */
  *(void **)&fn = hg_module_sym(module, HUB_MODULE, "cmd_hub", &err);
  if (!fn) {
    fprintf(stderr, "hangar hub: %s\n", err.msg);
    return 1;
  }
  if (fn == cmd_hub) { /* found this very function: would call itself forever */
    fprintf(stderr, "hangar hub: module %s has no cmd_hub of its own\n", HUB_MODULE);
    return 1;
  }
  return fn(argc, argv);
}
