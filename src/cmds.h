/* The subcommands of the hangar binary; main.c dispatches to them. Each returns the process
 * exit code and answers --help itself. */
#pragma once

