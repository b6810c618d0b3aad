/* Process spawning: explicit argv, env and cwd; the child in its own process group; its
 * stdout and stderr delivered to sinks as bytes arrive; exit status; kill with a grace. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "core/err.h"
#include "core/loop.h"
#include "core/sink.h"

typedef struct hg_proc hg_proc;

/* After the process exited, its pipes get this long to reach EOF: a daemonized grandchild that
 * still holds them open must not hold on_exit back forever. Then what is already buffered in
 * them is delivered (while a sink is paused, that waits for its resume) and they are closed. */
#define HG_PROC_DRAIN_MS 2000

typedef struct hg_proc_exit {
  int exit_code;  /* when exited normally, else -1 */
  int signal;     /* the terminating signal, else 0 */
  int sink_error; /* 0, or the negative code a sink's write returned; the rest of that stream
                     was read and discarded so the child never blocked on it */
} hg_proc_exit;

typedef void (*hg_proc_exit_cb)(hg_proc *p, hg_proc_exit status, void *data);

typedef struct hg_proc_opts {
  const char *const *argv; /* argv[0] is the program: a path with a slash, or looked up in the
                              PATH of env (never in the agent's own PATH; no PATH in env: not
                              found) */
  const char *const *env;  /* "NAME=value", NULL-terminated; exactly the child's environment */
  const char *cwd;         /* NULL: the current directory */
  hg_sink *out;            /* stdout goes here; NULL: /dev/null */
  hg_sink *err;            /* stderr goes here; NULL: /dev/null. May be the same sink as out */
  int stdin_pipe;          /* nonzero: hg_proc_write feeds the child's stdin; else /dev/null */
  int new_pgroup;          /* nonzero (the usual): the child leads its own session and process
                              group (setsid: no controlling terminal) */
  hg_proc_exit_cb on_exit; /* once, after the process exited AND both pipes reached EOF (or
                              the drain above ended); each sink got its eof before */
  void *data;
} hg_proc_opts;

/* Starts the process. On failure (no such program, not executable, cwd missing, ...) returns
 * a negative code with a message ("cannot start '/no/such': No such file or directory") and
 * never calls on_exit. The child starts with no file descriptor but 0, 1 and 2, default signal
 * handling and an empty signal mask, and dies with SIGKILL if the thread that spawned it
 * (the loop's thread) exits. Sink writes carry hg_clock_now_ms() at read time; a sink that
 * returns HG_SINK_PAUSE stops reading of that pipe until hg_sink_resume, so a child that
 * writes too much blocks. Call hg_proc_free for every process spawned, before hg_loop_close. */
int hg_proc_spawn(hg_loop *loop, const hg_proc_opts *opts, hg_proc **out, hg_err *err);
pid_t hg_proc_pid(const hg_proc *p);
/* Writes to the child's stdin (copied; 0 or negative code). len 0 closes stdin once what was
 * written before has gone out. HG_EINVAL without stdin_pipe; -EPIPE once stdin is closed. */
int hg_proc_write(hg_proc *p, const char *data, size_t len);
/* Sends signum to the process group (or the process when it has none). Until on_exit the
 * group is still reachable after its leader exited; after on_exit: -ESRCH. */
int hg_proc_signal(hg_proc *p, int signum);
/* SIGTERM to the group now, SIGKILL to the group after grace_ms unless on_exit came first. */
int hg_proc_kill(hg_proc *p, int64_t grace_ms);
/* Frees the handle after on_exit has run (or detaches: a still-running child is sent SIGKILL,
 * still reaped, and no callback or sink is called again). Safe inside on_exit and sinks. */
void hg_proc_free(hg_proc *p);
