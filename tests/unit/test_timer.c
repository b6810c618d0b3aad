/* Timers: one-shot and repeating firing, stop, free from inside a callback, deferred calls. */
#include "check.h"
#include "core/loop.h"
#include "core/timer.h"

typedef struct {
  int count;
  int stop_after; /* > 0: stop the timer on that firing */
  int free_after; /* > 0: free the timer on that firing */
} counter;

static void on_tick(hg_timer *t, void *data) {
  counter *c = data;
  c->count++;
  if (c->stop_after && c->count == c->stop_after) hg_timer_stop(t);
  if (c->free_after && c->count == c->free_after) hg_timer_free(t);
}

static void one_shot_fires_once(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  counter c = {0};
  hg_timer *t;
  CHECK_EQ_INT(hg_timer_new(&loop, on_tick, &c, &t, &err), 0);
  CHECK(!hg_timer_active(t));
  CHECK_EQ_INT(hg_timer_start(t, 5, 0), 0);
  CHECK(hg_timer_active(t));
  hg_loop_run(&loop); /* returns once nothing is armed */
  CHECK_EQ_INT(c.count, 1);
  CHECK(!hg_timer_active(t));
  hg_loop_run(&loop);
  CHECK_EQ_INT(c.count, 1);
  /* A fired one-shot can be armed again. */
  CHECK_EQ_INT(hg_timer_start(t, 0, 0), 0);
  hg_loop_run(&loop);
  CHECK_EQ_INT(c.count, 2);
  hg_timer_free(t);
  hg_loop_close(&loop);
}

static void repeating_timer_fires_until_stopped(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  counter c = {.stop_after = 5};
  hg_timer *t;
  CHECK_EQ_INT(hg_timer_new(&loop, on_tick, &c, &t, &err), 0);
  CHECK_EQ_INT(hg_timer_start(t, 1, 2), 0);
  hg_loop_run(&loop); /* would never return if stop did not disarm it */
  CHECK_EQ_INT(c.count, 5);
  CHECK(!hg_timer_active(t));
  hg_timer_free(t);
  hg_loop_close(&loop);
}

static void on_stop_other(hg_timer *t, void *data) {
  hg_timer_stop((hg_timer *)data);
  hg_timer_free(t);
}

static void stop_prevents_firing(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  counter c = {0};
  hg_timer *victim, *stopper;
  CHECK_EQ_INT(hg_timer_new(&loop, on_tick, &c, &victim, &err), 0);
  CHECK_EQ_INT(hg_timer_new(&loop, on_stop_other, victim, &stopper, &err), 0);
  CHECK_EQ_INT(hg_timer_start(victim, 200, 10), 0);
  CHECK_EQ_INT(hg_timer_start(stopper, 1, 0), 0);
  hg_loop_run(&loop);
  CHECK_EQ_INT(c.count, 0);
  /* Stopping one that never started, and stopping twice, are harmless. */
  hg_timer_stop(victim);
  hg_timer_free(victim);
  hg_loop_close(&loop);
}

typedef struct {
  char *log; /* shared by the timers of one test: the order they fired in */
  char mark;
} marker;

static void on_mark(hg_timer *t, void *data) {
  marker *m = data;
  size_t n = strlen(m->log);
  m->log[n] = m->mark;
  m->log[n + 1] = '\0';
  (void)t;
}

static void restart_replaces_the_schedule(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  char log[16] = "";
  marker a = {log, 'a'}, b = {log, 'b'};
  hg_timer *ta, *tb;
  CHECK_EQ_INT(hg_timer_new(&loop, on_mark, &a, &ta, &err), 0);
  CHECK_EQ_INT(hg_timer_new(&loop, on_mark, &b, &tb, &err), 0);
  CHECK_EQ_INT(hg_timer_start(ta, 1, 0), 0);
  CHECK_EQ_INT(hg_timer_start(tb, 30, 0), 0);
  CHECK_EQ_INT(hg_timer_start(ta, 300, 0), 0); /* re-armed: now due after tb, and only once */
  hg_loop_run(&loop);
  CHECK_EQ_STR(log, "ba");
  hg_timer_free(ta);
  hg_timer_free(tb);
  hg_loop_close(&loop);
}

static void shorter_delay_fires_first(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  char log[16] = "";
  marker late = {log, 'L'}, early = {log, 'E'};
  hg_timer *tl, *te;
  CHECK_EQ_INT(hg_timer_new(&loop, on_mark, &late, &tl, &err), 0);
  CHECK_EQ_INT(hg_timer_new(&loop, on_mark, &early, &te, &err), 0);
  CHECK_EQ_INT(hg_timer_start(tl, 40, 0), 0);
  CHECK_EQ_INT(hg_timer_start(te, 2, 0), 0);
  hg_loop_run(&loop);
  CHECK_EQ_STR(log, "EL");
  hg_timer_free(tl);
  hg_timer_free(te);
  hg_loop_close(&loop);
}

static void free_from_own_callback_is_safe(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  counter c = {.free_after = 3};
  hg_timer *t;
  CHECK_EQ_INT(hg_timer_new(&loop, on_tick, &c, &t, &err), 0);
  CHECK_EQ_INT(hg_timer_start(t, 1, 1), 0);
  hg_loop_run(&loop); /* returns: the freed repeating timer is gone from the loop */
  CHECK_EQ_INT(c.count, 3);
  hg_loop_close(&loop); /* valgrind/ASan: freed exactly once, never touched after */
}

static void free_armed_timer_never_fires(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  counter c = {0};
  hg_timer *t;
  CHECK_EQ_INT(hg_timer_new(&loop, on_tick, &c, &t, &err), 0);
  CHECK_EQ_INT(hg_timer_start(t, 0, 5), 0);
  hg_timer_free(t);
  hg_timer_free(NULL);
  hg_loop_run(&loop);
  CHECK_EQ_INT(c.count, 0);
  hg_loop_close(&loop);
}

typedef struct {
  hg_loop *loop;
  int first, second;
  int second_seen_in_first; /* second's count when first returned from deferring it */
} defer_state;

static void deferred_second(void *data) { ((defer_state *)data)->second++; }

static void deferred_first(void *data) {
  defer_state *s = data;
  s->first++;
  hg_err err;
  CHECK_EQ_INT(hg_timer_defer(s->loop, deferred_second, s, &err), 0);
  s->second_seen_in_first = s->second;
}

static void defer_runs_on_next_iteration(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  defer_state s = {.loop = &loop};
  CHECK_EQ_INT(hg_timer_defer(&loop, deferred_first, &s, &err), 0);
  CHECK_EQ_INT(s.first, 0); /* never synchronously */
  uv_run(&loop.uv, UV_RUN_NOWAIT);
  CHECK_EQ_INT(s.first, 1);
  CHECK_EQ_INT(s.second_seen_in_first, 0);
  CHECK_EQ_INT(s.second, 0); /* deferred from a deferred call: not in the same iteration */
  uv_run(&loop.uv, UV_RUN_NOWAIT);
  CHECK_EQ_INT(s.second, 1);
  hg_loop_run(&loop);
  CHECK_EQ_INT(s.first, 1);
  CHECK_EQ_INT(s.second, 1);
  hg_loop_close(&loop);
}

static void defer_from_timer(hg_timer *t, void *data) {
  defer_state *s = data;
  hg_err err;
  CHECK_EQ_INT(hg_timer_defer(s->loop, deferred_second, s, &err), 0);
  s->second_seen_in_first = s->second;
  s->first++;
  hg_timer_free(t);
}

static void defer_keeps_loop_alive_and_runs_after_callback(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  defer_state s = {.loop = &loop, .second_seen_in_first = -1};
  hg_timer *t;
  CHECK_EQ_INT(hg_timer_new(&loop, defer_from_timer, &s, &t, &err), 0);
  CHECK_EQ_INT(hg_timer_start(t, 1, 0), 0);
  hg_loop_run(&loop); /* returns only after the deferred call ran */
  CHECK_EQ_INT(s.first, 1);
  CHECK_EQ_INT(s.second_seen_in_first, 0);
  CHECK_EQ_INT(s.second, 1);
  hg_loop_close(&loop);
}

static void bad_arguments_are_errors(void) {
  hg_loop loop;
  hg_err err;
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  hg_timer *t = (hg_timer *)&loop;
  CHECK_EQ_INT(hg_timer_new(&loop, NULL, NULL, &t, &err), HG_EINVAL);
  CHECK(t == NULL);
  CHECK_EQ_INT(hg_timer_defer(&loop, NULL, NULL, &err), HG_EINVAL);
  hg_loop_close(&loop);
}

TEST_MAIN(T(one_shot_fires_once), T(repeating_timer_fires_until_stopped), T(stop_prevents_firing),
          T(restart_replaces_the_schedule), T(shorter_delay_fires_first),
          T(free_from_own_callback_is_safe), T(free_armed_timer_never_fires),
          T(defer_runs_on_next_iteration), T(defer_keeps_loop_alive_and_runs_after_callback),
          T(bad_arguments_are_errors))
