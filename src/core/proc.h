/* Process spawning: explicit argv, env and cwd; the child in its own process group; its
 * stdout and stderr delivered to sinks as bytes arrive; exit status; kill with a grace. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"

typedef struct hg_proc hg_proc;

typedef struct hg_proc_exit {
  int exit_code; /* when exited normally, else -1 */
  int signal;    /* the terminating signal, else 0 */
} hg_proc_exit;

typedef void (*hg_proc_exit_cb)(hg_proc *p, hg_proc_exit status, void *data);

typedef struct hg_proc_opts {
  const char *const *argv; /* argv[0] is the program: an absolute path, or looked up in the
                              PATH of env (never in the agent's own PATH) */
  const char *const *env;  /* "NAME=value", NULL-terminated; exactly the child's environment */
  const char *cwd;         /* NULL: the current directory */
  hg_sink *out;            /* stdout goes here; NULL: /dev/null */
  hg_sink *err;            /* stderr goes here; NULL: /dev/null */
  int stdin_pipe;          /* nonzero: hg_proc_write feeds the child's stdin; else /dev/null */
  int new_pgroup;          /* nonzero (the usual): the child leads its own process group */
  hg_proc_exit_cb on_exit; /* after the process exited AND both pipes reached EOF */
  void *data;
} hg_proc_opts;

/* Starts the process. On failure (no such program, cwd missing, ...) returns a negative code
 * with a message and never calls on_exit. The child dies with SIGKILL if this process dies. */
int hg_proc_spawn(hg_loop *loop, const hg_proc_opts *opts, hg_proc **out, hg_err *err);
pid_t hg_proc_pid(const hg_proc *p);
/* Writes to the child's stdin (copied; 0 or negative code). len 0 closes stdin. */
int hg_proc_write(hg_proc *p, const char *data, size_t len);
/* Sends signum to the process group (or the process when it has none). */
int hg_proc_signal(hg_proc *p, int signum);
/* SIGTERM to the group now, SIGKILL to the group after grace_ms if it has not exited. */
int hg_proc_kill(hg_proc *p, int64_t grace_ms);
/* Frees the handle after on_exit has run (or detaches: a still-running child is killed). */
void hg_proc_free(hg_proc *p);
