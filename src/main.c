/* The hangar binary: one executable for the hub, the agent and the CLI. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

typedef struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *summary;
} command;

static const command commands[] = {
    {"dev", cmd_dev, "try everything on this machine: a hub, an agent and a followed run, then stop"},
    {"agent", cmd_agent, "run an agent: take runs from the hub and launch them where they belong"},
    {"hub", cmd_hub, "run the hub (the control plane agents and the CLI talk to), or create its store"},
    {"key", cmd_key, "create, list and revoke API keys"},
    {"task", cmd_task, "deploy task definitions (*.task.yaml), list and show tasks"},
    {"run", cmd_run, "start a run of a task, and follow it with --follow"},
    {"runs", cmd_runs, "list, show, read the logs of and cancel runs"},
    {"config", cmd_config, "set, list and delete the hub's config variables"},
    {"lua", cmd_lua, "run a Lua file in Hangar's runtime (scripts, busted specs)"},
    {"version", NULL, "print the version and the protocol version"},
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: hangar COMMAND [ARGS]\n\n"
          "Hangar runs operational tasks on your own infrastructure, coordinated by a hub.\n\n"
          "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'hangar COMMAND --help' describes a command.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
    printf("hangar %s (protocol 1)\n", HANGAR_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (commands[i].fn && strcmp(argv[1], commands[i].name) == 0) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "hangar: unknown command '%s' (see 'hangar --help')\n", argv[1]);
  return 2;
}
