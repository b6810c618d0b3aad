/* Timers on the event loop: one-shot, repeating, and "run this from the loop, not from here". */
#pragma once

#include <stdint.h>

#include "core/err.h"
#include "core/loop.h"

typedef struct hg_timer hg_timer;
typedef void (*hg_timer_cb)(hg_timer *t, void *data);
typedef void (*hg_timer_defer_cb)(void *data);

/* Creates a stopped timer that calls cb(t, data) when it fires. */
int hg_timer_new(hg_loop *loop, hg_timer_cb cb, void *data, hg_timer **out, hg_err *err);
/* Arms the timer: it fires after delay_ms (negative counts as 0), then every repeat_ms while
 * repeat_ms > 0. Arming a running timer replaces its schedule. 0 or a negative code. */
int hg_timer_start(hg_timer *t, int64_t delay_ms, int64_t repeat_ms);
/* Disarms: the callback is not called again until the next start. */
void hg_timer_stop(hg_timer *t);
/* Nonzero while armed (a one-shot that fired is no longer armed). */
int hg_timer_active(const hg_timer *t);
/* Stops and frees the timer; safe from inside its own callback. NULL is a no-op. */
void hg_timer_free(hg_timer *t);
/* Calls cb(data) once from the loop, never synchronously: after the current callback has
 * returned and before the loop next waits for I/O (a deferral made from inside a deferred
 * callback runs on the following loop iteration). It keeps the loop alive until it ran.
 * For a deferral that can be cancelled, start an hg_timer with delay 0 instead. */
int hg_timer_defer(hg_loop *loop, hg_timer_defer_cb cb, void *data, hg_err *err);
