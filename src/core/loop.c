/* The event loop and signal handling. */
#include "core/loop.h"

#include <signal.h>
#include <stdlib.h>

struct hg_loop_signal {
  uv_signal_t handle;
  hg_loop *loop;
  int signum;
  hg_signal_cb cb;
  void *data;
  struct hg_loop_signal *next;
};

int hg_loop_init(hg_loop *loop, hg_err *err) {
  loop->signals = NULL;
  loop->reaper = NULL;
  loop->closing = 0;
  int rc = uv_loop_init(&loop->uv);
  if (rc) return hg_err_set(err, rc, "cannot create the event loop: %s", uv_strerror(rc));
  loop->uv.data = loop;
  /* A peer that vanishes must surface as EPIPE on a write, not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

int hg_loop_run(hg_loop *loop) {
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  return 0;
}

void hg_loop_stop(hg_loop *loop) { uv_stop(&loop->uv); }

static void on_signal(uv_signal_t *h, int signum) {
  struct hg_loop_signal *s = h->data;
  s->cb(s->loop, signum, s->data);
}

int hg_loop_on_signal(hg_loop *loop, int signum, hg_signal_cb cb, void *data, hg_err *err) {
  struct hg_loop_signal *s = calloc(1, sizeof *s);
  if (!s) return hg_err_set(err, HG_ENOMEM, "out of memory");
  int rc = uv_signal_init(&loop->uv, &s->handle);
  if (rc) {
    free(s);
    return hg_err_set(err, rc, "cannot watch signal %d: %s", signum, uv_strerror(rc));
  }
  s->handle.data = s;
  s->loop = loop;
  s->signum = signum;
  s->cb = cb;
  s->data = data;
  rc = uv_signal_start(&s->handle, on_signal, signum);
  if (rc) {
    uv_close((uv_handle_t *)&s->handle, (uv_close_cb)free);
    return hg_err_set(err, rc, "cannot watch signal %d: %s", signum, uv_strerror(rc));
  }
  /* Signal watchers must not keep the loop alive on their own. */
  uv_unref((uv_handle_t *)&s->handle);
  s->next = loop->signals;
  loop->signals = s;
  return 0;
}

static void free_signal(uv_handle_t *h) { free(h->data); }

void hg_loop_off_signal(hg_loop *loop, int signum) {
  struct hg_loop_signal **pp = &loop->signals;
  while (*pp) {
    struct hg_loop_signal *s = *pp;
    if (s->signum == signum) {
      *pp = s->next;
      uv_close((uv_handle_t *)&s->handle, free_signal);
    } else {
      pp = &s->next;
    }
  }
}

static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

void hg_loop_close(hg_loop *loop) {
  loop->closing = 1;
  while (loop->signals) {
    struct hg_loop_signal *s = loop->signals;
    loop->signals = s->next;
    uv_close((uv_handle_t *)&s->handle, free_signal);
  }
  /* Owners should have closed their handles; anything left is closed here so the loop
   * can be released rather than leaked. */
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  uv_walk(&loop->uv, close_any, NULL);
  uv_run(&loop->uv, UV_RUN_DEFAULT);
  uv_loop_close(&loop->uv);
}
