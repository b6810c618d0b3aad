/* The event loop: signals reach their handler on the loop; close releases everything. */
#include <signal.h>
#include <unistd.h>

#include "check.h"
#include "core/loop.h"

static int seen_signum;

static void on_usr1(hg_loop *loop, int signum, void *data) {
  seen_signum = signum;
  *(int *)data += 1;
  hg_loop_off_signal(loop, SIGUSR1);
}

static void raise_later(uv_timer_t *t) {
  kill(getpid(), SIGUSR1);
  uv_close((uv_handle_t *)t, NULL);
}

static void stop_loop(uv_timer_t *t) { uv_stop(t->loop); }

static void signal_reaches_handler(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  int count = 0;
  CHECK_EQ_INT(hg_loop_on_signal(&loop, SIGUSR1, on_usr1, &count, &err), 0);
  /* Keep the loop alive until the signal arrived: the watcher itself does not. */
  uv_timer_t keep, fire;
  uv_timer_init(&loop.uv, &fire);
  uv_timer_start(&fire, raise_later, 10, 0);
  uv_timer_init(&loop.uv, &keep);
  uv_timer_start(&keep, stop_loop, 2000, 0);
  while (count == 0 && uv_run(&loop.uv, UV_RUN_ONCE)) {
  }
  CHECK_EQ_INT(count, 1);
  CHECK_EQ_INT(seen_signum, SIGUSR1);
  uv_close((uv_handle_t *)&keep, NULL);
  hg_loop_close(&loop);
}

static void signal_watchers_do_not_keep_loop_alive(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  int count = 0;
  CHECK_EQ_INT(hg_loop_on_signal(&loop, SIGUSR2, on_usr1, &count, &err), 0);
  CHECK_EQ_INT(hg_loop_run(&loop), 0); /* returns at once: nothing else is active */
  hg_loop_close(&loop);
  CHECK_EQ_INT(count, 0);
}

TEST_MAIN(T(signal_reaches_handler), T(signal_watchers_do_not_keep_loop_alive))
