/* The event loop and signal handling. One loop per process, carried as an argument. */
#pragma once

#include <uv.h>

#include "core/err.h"

typedef struct hg_loop hg_loop;
typedef void (*hg_signal_cb)(hg_loop *loop, int signum, void *data);

struct hg_loop {
  uv_loop_t uv;
  struct hg_loop_signal *signals; /* private */
  struct hg_proc_reaper *reaper;  /* private to proc.c: one SIGCHLD watcher for its children */
  int closing;
};

int hg_loop_init(hg_loop *loop, hg_err *err);
/* Runs until nothing is active or hg_loop_stop. Returns 0. */
int hg_loop_run(hg_loop *loop);
void hg_loop_stop(hg_loop *loop);
/* Calls cb on the loop whenever signum arrives (SIGINT, SIGTERM, SIGHUP, ...). */
int hg_loop_on_signal(hg_loop *loop, int signum, hg_signal_cb cb, void *data, hg_err *err);
/* Stops handling signum, restoring the default action. */
void hg_loop_off_signal(hg_loop *loop, int signum);
/* Closes every handle still open (signals included), runs the loop until their close
 * callbacks ran, then closes the loop. */
void hg_loop_close(hg_loop *loop);
