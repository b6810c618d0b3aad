/* Hangar's own loadable modules: the parts of the program only some commands need (the hub,
 * the agent's health listener), so that the others never map their libraries. */
#pragma once

#include "core/err.h"

/* Loads the module FILE (a bare name, "hangar-hub.so"): beside the running executable, as a
 * build tree has it, else where an installed tree has it, HANGAR_MODULE_RELDIR from the
 * executable's directory. HG_ENOENT names both paths when neither exists; HG_EINVAL gives the
 * loader's reason (a missing library, a file that is no module). Never unloaded. */
int hg_module_open(const char *file, void **out, hg_err *err);

/* The address of NAME in a module from hg_module_open (file: its name, for the message). */
void *hg_module_sym(void *module, const char *file, const char *name, hg_err *err);
