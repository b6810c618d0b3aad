/* The agent's long-lived API key: read from a file, a file descriptor or an environment
 * variable (then scrubbed from the process's environment), and checked for its shape. The key
 * stays in C: Lua never sees it. */
#pragma once

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Appends the key held by path (surrounding whitespace trimmed) to out. A file that others
 * may read is accepted, and *loose is set nonzero so the caller can warn (loose may be NULL). */
int hg_agentkey_read_file(const char *path, hg_buf *out, int *loose, hg_err *err);
/* Reads fd to its end, closes it, and appends the key (trimmed) to out. */
int hg_agentkey_read_fd(int fd, hg_buf *out, hg_err *err);
/* Appends the value of the environment variable name (trimmed) to out, and leaves it there.
 * HG_ENOENT when it is not set. */
int hg_agentkey_read_env(const char *name, hg_buf *out, hg_err *err);
/* hg_agentkey_read_env, then overwrites the value's bytes where they live and removes the
 * variable, so neither the environment children inherit nor /proc/self/environ shows it any
 * longer. HG_ENOENT when it is not set. */
int hg_agentkey_take_env(const char *name, hg_buf *out, hg_err *err);
/* Checks the shape hgr_<12 of [a-z0-9]>_<43 of base64url>; the message never quotes the key.
 * `from` names where it came from ("key_file /etc/hangar/agent.key"). */
int hg_agentkey_check(const char *key, size_t len, const char *from, hg_err *err);
