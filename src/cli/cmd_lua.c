/* `hangar lua FILE [ARGS]`: runs a Lua file in Hangar's own runtime with every standard
 * library and the hangar modules, then waits for the tasks it started. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/l_runlog.h"
#include "cmds.h"
#include "core/log.h"
#include "lua/runtime.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: hangar lua FILE [ARGS...]\n\n"
          "Runs FILE ('-' for standard input) as Lua 5.4 inside Hangar's runtime: every standard\n"
          "library, plus the hangar modules (hangar.http, hangar.process, hangar.json, ...) as the\n"
          "global table 'hangar' and through require. The global 'arg' holds FILE at index 0\n"
          "and ARGS from 1, as the lua interpreter does; the chunk also receives ARGS as '...'.\n"
          "Asynchronous calls work in the main chunk (they run the event loop until done) and\n"
          "inside tasks (hangar.task.spawn). After the chunk returns, Hangar waits for the\n"
          "tasks it started.\n\n"
          "Exit status: 0; 1 when the chunk or a task nobody waited for failed (the error and\n"
          "its traceback go to stderr); or the code given to os.exit.\n\n"
          "Test suites run this way: hangar lua /usr/bin/busted SPEC.lua\n");
}

struct script_args {
  int argc;
  char **argv;
};

static int set_arg(lua_State *L) {
  struct script_args *a = lua_touserdata(L, 1);
  lua_createtable(L, a->argc, 2);
  /* As the lua interpreter does: the program at negative indices, the script at 0. argv[-1]
   * is the hangar binary: the dispatcher hands this command its own slice of main's argv. */
  lua_pushstring(L, a->argv[-1]);
  lua_rawseti(L, -2, -2);
  lua_pushstring(L, a->argv[0]);
  lua_rawseti(L, -2, -1);
  for (int i = 1; i < a->argc; i++) {
    lua_pushstring(L, a->argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");
  return 0;
}

int cmd_lua(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    usage(stdout);
    return 0;
  }
  const char *level = getenv("HANGAR_LOG_LEVEL");
  int min = level ? hg_log_parse_level(level) : HG_LOG_INFO;
  hg_log_setup(stderr, min < 0 ? HG_LOG_INFO : (hg_log_level)min, "lua");

  hg_err err;
  hg_loop loop;
  if (hg_loop_init(&loop, &err)) {
    fprintf(stderr, "hangar lua: %s\n", err.msg);
    return 1;
  }
  hg_lua_opts opts = {.mode = HG_LUA_FULL, .blocking = 1};
  hg_lua *rt;
  if (hg_lua_new(&loop, &opts, &rt, &err)) {
    fprintf(stderr, "hangar lua: %s\n", err.msg);
    hg_loop_close(&loop);
    return 1;
  }
  /* The agent's log pipeline, for scripts that drive it by hand (its tests, its benchmark). */
  if (hg_lua_preload(rt, "hangar.pipeline", hg_l_pipeline_open, &err)) {
    fprintf(stderr, "hangar lua: %s\n", err.msg);
    hg_lua_free(rt);
    hg_loop_close(&loop);
    return 1;
  }
  lua_State *L = hg_lua_state(rt);
  int status = 0;
  const char *file = strcmp(argv[1], "-") == 0 ? NULL : argv[1];
  struct script_args sa = {argc, argv};
  if (hg_lua_protect(rt, set_arg, &sa, &err) || hg_lua_load_file(rt, file, &err)) {
    fprintf(stderr, "hangar lua: %s\n", err.msg);
    status = 1;
  } else {
    int nargs = argc - 2;
    if (!lua_checkstack(L, nargs)) {
      fprintf(stderr, "hangar lua: too many arguments\n");
      status = 1;
      lua_pop(L, 1);
    } else {
      for (int i = 2; i < argc; i++) lua_pushstring(L, argv[i]);
      if (hg_lua_call(rt, nargs, 0, &err)) {
        fprintf(stderr, "hangar lua: %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        status = 1;
      }
    }
  }
  if (status == 0) {
    hg_loop_run(&loop);
    size_t left = hg_lua_task_count(rt);
    if (left) {
      fprintf(stderr, "hangar lua: %zu task%s never finished (each waits for something that "
              "cannot happen)\n", left, left == 1 ? "" : "s");
      status = 1;
    }
    if (hg_lua_task_unobserved_failures(rt)) status = 1;
  }
  /* Unobserved task failures are reported (logged) as their objects are collected. */
  hg_lua_free(rt);
  hg_loop_close(&loop);
  return status;
}
