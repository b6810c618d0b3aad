/* Timers on the event loop, and deferred calls. */
#include "core/timer.h"

#include <stdlib.h>

struct hg_timer {
  uv_timer_t handle;
  hg_timer_cb cb;
  void *data;
};

static void on_fire(uv_timer_t *h) {
  hg_timer *t = h->data;
  /* Nothing touches t after the callback: it may have freed the timer. */
  t->cb(t, t->data);
}

static void free_handle_data(uv_handle_t *h) { free(h->data); }

int hg_timer_new(hg_loop *loop, hg_timer_cb cb, void *data, hg_timer **out, hg_err *err) {
  *out = NULL;
  if (!cb) return hg_err_set(err, HG_EINVAL, "timer: no callback given");
  hg_timer *t = calloc(1, sizeof *t);
  if (!t) return hg_err_set(err, HG_ENOMEM, "timer: out of memory");
  int rc = uv_timer_init(&loop->uv, &t->handle);
  if (rc) {
    free(t);
    return hg_err_set(err, rc, "timer: %s", uv_strerror(rc));
  }
  t->handle.data = t;
  t->cb = cb;
  t->data = data;
  *out = t;
  return 0;
}

int hg_timer_start(hg_timer *t, int64_t delay_ms, int64_t repeat_ms) {
  if (uv_is_closing((uv_handle_t *)&t->handle)) return HG_EINVAL;
  /* libuv measures from the loop's cached time, which is stale after a long callback (Lua
   * code, a burst of I/O): refresh it so a delay counts from now. */
  uv_update_time(t->handle.loop);
  return uv_timer_start(&t->handle, on_fire, delay_ms > 0 ? (uint64_t)delay_ms : 0,
                        repeat_ms > 0 ? (uint64_t)repeat_ms : 0);
}

void hg_timer_stop(hg_timer *t) { uv_timer_stop(&t->handle); }

int hg_timer_active(const hg_timer *t) { return uv_is_active((const uv_handle_t *)&t->handle); }

void hg_timer_free(hg_timer *t) {
  if (!t || uv_is_closing((uv_handle_t *)&t->handle)) return;
  /* Closing stops it; the memory goes in the close callback, after any callback returned. */
  uv_close((uv_handle_t *)&t->handle, free_handle_data);
}

struct hg_timer_deferred {
  uv_idle_t handle;
  hg_timer_defer_cb cb;
  void *data;
};

static void on_deferred(uv_idle_t *h) {
  struct hg_timer_deferred *d = h->data;
  uv_close((uv_handle_t *)h, free_handle_data);
  d->cb(d->data);
}

int hg_timer_defer(hg_loop *loop, hg_timer_defer_cb cb, void *data, hg_err *err) {
  if (!cb) return hg_err_set(err, HG_EINVAL, "defer: no callback given");
  struct hg_timer_deferred *d = calloc(1, sizeof *d);
  if (!d) return hg_err_set(err, HG_ENOMEM, "defer: out of memory");
  int rc = uv_idle_init(&loop->uv, &d->handle);
  if (rc) {
    free(d);
    return hg_err_set(err, rc, "defer: %s", uv_strerror(rc));
  }
  d->handle.data = d;
  d->cb = cb;
  d->data = data;
  /* An idle handle runs after this pass's callbacks and keeps poll from blocking; one started
   * from inside an idle callback waits for the next pass. */
  rc = uv_idle_start(&d->handle, on_deferred);
  if (rc) {
    uv_close((uv_handle_t *)&d->handle, free_handle_data);
    return hg_err_set(err, rc, "defer: %s", uv_strerror(rc));
  }
  return 0;
}
