/* The subcommands of the hangar binary; main.c dispatches to them. Each returns the process
 * exit code and answers --help itself. */
#pragma once

/* The CLI, which drives the hub's user API (src/cli). */
int cmd_key(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_runs(int argc, char **argv);
int cmd_config(int argc, char **argv);

/* The hub (src/hub), in the module hangar-hub.so: this cmd_hub (src/hub_module.c) loads it and
 * runs the module's own. */
int cmd_hub(int argc, char **argv);

/* The agent (src/agent). */
int cmd_agent(int argc, char **argv);

/* The whole system on this machine in one command, for a first look (src/cli/cmd_dev.c). */
int cmd_dev(int argc, char **argv);

/* Hangar's Lua runtime (src/lua). */
int cmd_lua(int argc, char **argv);
