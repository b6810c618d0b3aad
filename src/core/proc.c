/* Process spawning on the event loop: fork/exec with a clean slate, pipes into sinks, reaping. */
#include "core/proc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/clock.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define READ_CHUNK 65536
/* A child's stdout and stderr pipes hold a MiB: a process printing fast then fills the pipe
 * while the reader works instead of waiting on it for every 64 KiB (each wait a wake-up of
 * the other side), and a wake-up of the reader finds more to read (libuv reads again while
 * there is). A run printing 1 GiB into the agent: ~8% faster. */
#define PIPE_BYTES (1 << 20)
/* After the drain deadline a pipe is read for what is already in it, but a grandchild that
 * keeps writing must not keep us reading forever. */
#define FINAL_DRAIN_MAX (1 << 20)

typedef struct hg_proc_stream {
  hg_proc *proc;
  uv_pipe_t pipe;
  hg_sink *sink; /* NULL: the child's end is /dev/null and there is no pipe */
  int open;      /* the pipe handle exists and is not closing */
  int done;      /* no more bytes will be delivered */
  int paused;    /* the sink asked us to wait for its resume */
  int expired;   /* the drain deadline passed: deliver what is buffered, then close */
  int failed;    /* the sink returned an error: read on, deliver nothing */
  size_t drained;
} hg_proc_stream;

/* One SIGCHLD watcher per loop serves all its children. With one per child, libuv would queue
 * a message per watcher for every SIGCHLD, and when many children exit while the loop is busy
 * its signal pipe fills and notifications are dropped: children never reaped. */
struct hg_proc_reaper {
  uv_signal_t handle;
  hg_loop *loop;
  hg_proc *procs; /* spawned and not reaped yet */
};

struct hg_proc {
  hg_loop *loop;
  pid_t pid;
  int pgroup;
  hg_proc_exit_cb on_exit;
  void *data;
  struct hg_proc_reaper *reaper;
  hg_proc *next, *prev; /* in reaper->procs while registered */
  hg_proc *next_exited; /* reaped in the current sweep */
  int registered;
  uv_timer_t kill_timer;
  uv_timer_t drain_timer;
  uv_pipe_t in;
  int has_stdin;
  int in_open;    /* the stdin pipe exists and is not closing */
  int in_ending;  /* a zero-length write asked to close it once pending writes are out */
  int in_pending; /* writes queued and not yet completed */
  int timers_open;
  hg_proc_stream out, err;
  int exited;
  int reported;
  int freed;
  int handles; /* initialized handles whose close callback has not run yet */
  int sink_error;
  hg_proc_exit status;
};

/* ---- handles and teardown ---- */

static void on_handle_closed(uv_handle_t *h) {
  hg_proc *p = h->data;
  /* The timers are closed only once the handle was freed, so reaching zero means it was; a
   * child still to be reaped keeps the memory until it is. */
  if (--p->handles == 0 && !p->registered) free(p);
}

static void init_handle(hg_proc *p, uv_handle_t *h) {
  h->data = p;
  p->handles++;
}

static hg_proc_stream *other_stream(hg_proc_stream *s) {
  return s == &s->proc->out ? &s->proc->err : &s->proc->out;
}

static void on_resume(void *producer);

/* A sink remembers one producer; when stdout and stderr share a sink, either stream can hold
 * that slot and its resume wakes both. */
static void detach_sink(hg_proc_stream *s) {
  hg_sink *k = s->sink;
  if (!k || k->producer != s) return;
  hg_proc_stream *o = other_stream(s);
  if (o->open && o->paused && o->sink == k) {
    k->producer = o;
  } else {
    k->resume = NULL;
    k->producer = NULL;
  }
}

static void stream_close(hg_proc_stream *s) {
  if (!s->open) return;
  s->open = 0;
  detach_sink(s);
  uv_close((uv_handle_t *)&s->pipe, on_handle_closed);
}

static void stdin_close(hg_proc *p) {
  if (!p->in_open) return;
  p->in_open = 0;
  /* Writes still queued complete with UV_ECANCELED and free their copies. */
  uv_close((uv_handle_t *)&p->in, on_handle_closed);
}

/* Closes every handle; the memory goes with the last close callback, or with the reaping of a
 * child that was still running. */
static void release(hg_proc *p) {
  p->freed = 1;
  stream_close(&p->out);
  stream_close(&p->err);
  stdin_close(p);
  if (p->timers_open) {
    p->timers_open = 0;
    uv_close((uv_handle_t *)&p->kill_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->drain_timer, on_handle_closed);
  }
}

/* ---- exit ---- */

static void maybe_finish(hg_proc *p) {
  if (p->reported || p->freed || !p->exited || !p->out.done || !p->err.done) return;
  p->reported = 1;
  uv_timer_stop(&p->kill_timer);
  uv_timer_stop(&p->drain_timer);
  stdin_close(p);
  hg_proc_exit status = p->status;
  status.sink_error = p->sink_error;
  if (p->on_exit) p->on_exit(p, status, p->data);
}

static void stream_done(hg_proc_stream *s) {
  if (s->done) return;
  hg_proc *p = s->proc;
  hg_proc_stream *o = other_stream(s);
  s->done = 1;
  stream_close(s);
  /* A sink shared by both pipes hears of the end once, when neither has more. */
  if (s->sink && (o->sink != s->sink || o->done)) hg_sink_eof(s->sink, hg_clock_now_ms());
  maybe_finish(p);
}

/* ---- reading ---- */

/* "Send no more" holds for every pipe feeding that sink. */
static void stream_pause(hg_proc_stream *s) {
  hg_proc_stream *o = other_stream(s);
  s->paused = 1;
  uv_read_stop((uv_stream_t *)&s->pipe);
  if (o->sink == s->sink && o->open) {
    o->paused = 1;
    uv_read_stop((uv_stream_t *)&o->pipe);
  }
  hg_sink *k = s->sink;
  k->resume = on_resume;
  k->producer = s;
}

static void deliver(hg_proc_stream *s, const char *bytes, size_t len) {
  hg_proc *p = s->proc;
  if (s->failed) return;
  int rc = hg_sink_write(s->sink, bytes, len, hg_clock_now_ms());
  if (p->freed || !s->open) return; /* the sink freed the process */
  if (rc == HG_SINK_PAUSE) {
    stream_pause(s);
  } else if (rc < 0) {
    /* Reading on keeps the child from blocking on a pipe nobody empties. */
    hg_proc_stream *o = other_stream(s);
    s->failed = 1;
    if (o->sink == s->sink) o->failed = 1;
    if (!p->sink_error) p->sink_error = rc;
  }
}

/* A read buffer lives only for one read: reads are delivered synchronously, and a process
 * that waits (most of them, most of the time) should hold no 64 KiB buffer while it does. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  char *b = malloc(READ_CHUNK);
  *buf = uv_buf_init(b, b ? READ_CHUNK : 0); /* none: libuv reports UV_ENOBUFS */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  hg_proc *p = stream->data;
  hg_proc_stream *s = (uv_pipe_t *)stream == &p->out.pipe ? &p->out : &p->err;
  if (nread > 0) {
    deliver(s, buf->base, (size_t)nread);
  } else if (nread < 0) {
    stream_done(s); /* EOF, or an error after which nothing more can be read */
  }
  free(buf->base);
}

/* Past the deadline: hand over what the pipe already holds, then close it. */
static void final_drain(hg_proc_stream *s) {
  hg_proc *p = s->proc;
  uv_os_fd_t fd;
  uv_read_stop((uv_stream_t *)&s->pipe);
  char *buf = malloc(READ_CHUNK);
  if (buf && uv_fileno((uv_handle_t *)&s->pipe, &fd) == 0) {
    while (s->drained < FINAL_DRAIN_MAX) {
      ssize_t n = read(fd, buf, READ_CHUNK);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break; /* EOF, or nothing more buffered (the fd is non-blocking) */
      s->drained += (size_t)n;
      deliver(s, buf, (size_t)n);
      if (p->freed || !s->open || s->paused) {
        free(buf);
        return;
      }
    }
  }
  free(buf);
  stream_done(s);
}

static void on_drain_timer(uv_timer_t *t) {
  hg_proc *p = t->data;
  hg_proc_stream *streams[2] = {&p->out, &p->err};
  for (int i = 0; i < 2; i++) {
    hg_proc_stream *s = streams[i];
    if (!s->open || s->done) continue;
    s->expired = 1;
    if (!s->paused) final_drain(s);
    if (p->freed || p->reported) return;
  }
}

static void stream_resume(hg_proc_stream *s) {
  if (!s->open || !s->paused) return;
  hg_proc *p = s->proc;
  s->paused = 0;
  if (s->expired) {
    /* Not from inside the sink's resume call: the drain writes to the sink again. */
    uv_timer_start(&p->drain_timer, on_drain_timer, 0, 0);
  } else {
    uv_read_start((uv_stream_t *)&s->pipe, on_alloc, on_read);
  }
}

static void on_resume(void *producer) {
  hg_proc_stream *s = producer;
  hg_proc_stream *o = other_stream(s);
  stream_resume(s);
  if (o->sink == s->sink) stream_resume(o);
}

/* ---- reaping ---- */

static void free_reaper(uv_handle_t *h) { free(h->data); }

static void reaper_close_if_idle(struct hg_proc_reaper *r) {
  if (r->procs) return;
  /* The next spawn on this loop starts a new one; pending signals for this one are dropped. */
  if (r->loop->reaper == r) r->loop->reaper = NULL;
  uv_close((uv_handle_t *)&r->handle, free_reaper);
}

static void reaper_remove(hg_proc *p) {
  struct hg_proc_reaper *r = p->reaper;
  if (!p->registered) return;
  if (p->prev) {
    p->prev->next = p->next;
  } else {
    r->procs = p->next;
  }
  if (p->next) p->next->prev = p->prev;
  p->next = p->prev = NULL;
  p->registered = 0;
}

/* Collects the exit status if the child has exited. */
static int reap(hg_proc *p) {
  int st = 0;
  pid_t r;
  do {
    r = waitpid(p->pid, &st, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  p->exited = 1;
  if (r < 0) {
    /* Someone else reaped it (waitpid(-1) elsewhere in the process): the status is lost. */
    p->status.exit_code = -1;
  } else if (WIFEXITED(st)) {
    p->status.exit_code = WEXITSTATUS(st);
  } else {
    p->status.exit_code = -1;
    p->status.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  }
  return 1;
}

static void after_exit(hg_proc *p) {
  if (p->freed) {
    if (p->handles == 0) free(p);
    return;
  }
  if (!p->out.done || !p->err.done) {
    uv_timer_start(&p->drain_timer, on_drain_timer, HG_PROC_DRAIN_MS, 0);
  }
  maybe_finish(p);
}

static void on_sigchld(uv_signal_t *h, int signum) {
  struct hg_proc_reaper *r = h->data;
  (void)signum;
  /* Waits only for our own pids, so libuv's uv_spawn children (and anyone else's) are left
   * to their owners. Callbacks run after the sweep: they may spawn or free processes. */
  hg_proc *exited = NULL, **tail = &exited;
  for (hg_proc *p = r->procs, *next; p; p = next) {
    next = p->next;
    if (!reap(p)) continue;
    reaper_remove(p);
    p->next_exited = NULL;
    *tail = p;
    tail = &p->next_exited;
  }
  reaper_close_if_idle(r);
  for (hg_proc *p = exited, *next; p; p = next) {
    next = p->next_exited;
    after_exit(p);
  }
}

/* Registers p before its fork, so that no exit can slip past unwatched. */
static int reaper_add(hg_proc *p) {
  hg_loop *loop = p->loop;
  struct hg_proc_reaper *r = loop->reaper;
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return HG_ENOMEM;
    int rc = uv_signal_init(&loop->uv, &r->handle);
    if (rc) {
      free(r);
      return rc;
    }
    r->handle.data = r;
    r->loop = loop;
    rc = uv_signal_start(&r->handle, on_sigchld, SIGCHLD);
    if (rc) {
      uv_close((uv_handle_t *)&r->handle, free_reaper);
      return rc;
    }
    loop->reaper = r;
  }
  p->reaper = r;
  p->prev = NULL;
  p->next = r->procs;
  if (r->procs) r->procs->prev = p;
  r->procs = p;
  p->registered = 1;
  return 0;
}

/* ---- the child ---- */

enum { STAGE_PGROUP = 1, STAGE_PDEATHSIG, STAGE_FDS, STAGE_CWD, STAGE_EXEC };

typedef struct spawn_report {
  int stage; /* 0: none */
  int code;  /* errno */
} spawn_report;

typedef struct child_plan {
  int fds[3];    /* what becomes the child's 0, 1, 2 */
  int report_fd; /* -1: none, the report goes into the plan only */
  /* Written by the child into our memory, which vfork shares: once vfork returns, the child
   * has exec'd (past the point where exec can fail) or written its report and exited, so
   * there is nothing to wait for. Where vfork is a fork in disguise (valgrind), shared stays
   * 0 and the report comes through report_fd. Volatile: the compiler cannot see the child. */
  volatile int shared;
  volatile spawn_report report;
  pid_t parent;
  int pgroup;
  const char *cwd;
  char **candidates; /* paths to try, in order */
  char *const *argv;
  char *const *envp;
} child_plan;

/* Only async-signal-safe calls from here to exec: the parent may have other threads. */

/* _exit: nothing of the parent's copied state (atexit handlers, stdio buffers) may run. */
static _Noreturn void child_exit(void) { _exit(127); }

static _Noreturn void child_fail(child_plan *c, int fd, int stage, int code) {
  c->report.code = code;
  c->report.stage = stage;
  spawn_report r = {stage, code};
  while (fd >= 0 && write(fd, &r, sizeof r) < 0 && errno == EINTR) {
  }
  child_exit();
}

static _Noreturn void child_run(child_plan *c) {
  c->shared = 1;
  /* Handlers installed here (libuv's among them) must not run in the child; ignored signals
   * such as SIGPIPE would stay ignored across exec. */
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; sig++) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, NULL);
  }

  /* A session of its own also leads a process group of its own (the group kill), and leaves
   * the child without a controlling terminal it could inject input into. */
  if (c->pgroup && setsid() < 0) child_fail(c, c->report_fd, STAGE_PGROUP, errno);

  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) child_fail(c, c->report_fd, STAGE_PDEATHSIG, errno);
  /* The parent may have died before prctl took effect: then nobody would kill us. */
  if (getppid() != c->parent) child_exit();

  /* Move every fd we still need out of 0..2 before filling 0..2, so no dup2 clobbers one. */
  int rep = c->report_fd;
  if (rep >= 0 && rep < 3) {
    rep = fcntl(rep, F_DUPFD_CLOEXEC, 3);
    if (rep < 0) child_exit();
  }
  int src[3];
  for (int i = 0; i < 3; i++) {
    src[i] = c->fds[i];
    if (src[i] < 3 && src[i] != i) {
      src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 3);
      if (src[i] < 0) child_fail(c, rep, STAGE_FDS, errno);
    }
  }
  for (int i = 0; i < 3; i++) {
    int rc = src[i] == i ? fcntl(i, F_SETFD, 0) : dup2(src[i], i);
    if (rc < 0) child_fail(c, rep, STAGE_FDS, errno);
  }
  /* Nothing but 0..2 may reach the program, whatever some library opened without O_CLOEXEC.
   * Marking them close-on-exec (rather than closing) keeps the report pipe until exec. */
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                   ? (long)rl.rlim_cur
                   : 65536;
    for (long fd = 3; fd < max; fd++) {
      if (fd != rep) close((int)fd);
    }
  }

  if (c->cwd && chdir(c->cwd) < 0) child_fail(c, rep, STAGE_CWD, errno);

  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);

  /* The PATH search of execvp, over the candidates the parent computed from opts->env. */
  int saw_eacces = 0;
  int code = ENOENT;
  for (char **cand = c->candidates; *cand; cand++) {
    execve(*cand, c->argv, c->envp);
    code = errno;
    if (code == EACCES) {
      saw_eacces = 1;
    } else if (code != ENOENT && code != ENOTDIR && code != ESTALE && code != ENODEV &&
               code != ETIMEDOUT) {
      child_fail(c, rep, STAGE_EXEC, code);
    }
  }
  child_fail(c, rep, STAGE_EXEC, c->candidates[0] && !c->candidates[1] ? code
                              : saw_eacces                          ? EACCES
                                                                    : ENOENT);
}

/* ---- spawning ---- */

/* 1 once a child was seen to write into our memory: vfork shares it, here as it will for the
 * rest of the process, so the report needs no pipe (its creation and two closes, 2-5 us of
 * each spawn before the vfork). Until then, and for good where vfork is a fork in disguise
 * (valgrind), the child also writes its report into a pipe. */
static atomic_int vfork_shares;

static void free_candidates(char **cands) {
  if (!cands) return;
  for (char **c = cands; *c; c++) free(*c);
  free(cands);
}

static const char *env_path(const char *const *env) {
  for (const char *const *e = env; *e; e++) {
    if (strncmp(*e, "PATH=", 5) == 0) return *e + 5;
  }
  return NULL;
}

/* The paths execve should try for argv[0]: itself when it has a slash, else each PATH entry of
 * the child's environment (an empty entry is the child's working directory). */
static int find_candidates(const char *name, const char *path, char ***out, hg_err *err) {
  size_t n = 1;
  if (!strchr(name, '/')) {
    if (!path) {
      return hg_err_set(err, HG_ENOENT,
                        "cannot start '%s': not found (its environment has no PATH)", name);
    }
    for (const char *c = path; *c; c++) n += *c == ':';
  }
  char **cands = calloc(n + 1, sizeof *cands);
  if (!cands) return hg_err_set(err, HG_ENOMEM, "cannot start '%s': out of memory", name);
  if (strchr(name, '/')) {
    cands[0] = strdup(name);
  } else {
    const char *seg = path;
    for (size_t i = 0; i < n; i++) {
      const char *end = strchr(seg, ':');
      size_t len = end ? (size_t)(end - seg) : strlen(seg);
      size_t size = len + 1 + strlen(name) + 1;
      cands[i] = malloc(size);
      if (!cands[i]) break;
      if (len == 0) {
        memcpy(cands[i], name, strlen(name) + 1);
      } else {
        memcpy(cands[i], seg, len);
        cands[i][len] = '/';
        memcpy(cands[i] + len + 1, name, strlen(name) + 1);
      }
      seg = end ? end + 1 : seg + len;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (!cands[i]) {
      free_candidates(cands);
      return hg_err_set(err, HG_ENOMEM, "cannot start '%s': out of memory", name);
    }
  }
  *out = cands;
  return 0;
}

static int check_opts(const hg_proc_opts *o, hg_err *err) {
  if (!o || !o->argv || !o->argv[0] || !o->argv[0][0]) {
    return hg_err_set(err, HG_EINVAL, "cannot start a process: argv[0] is missing or empty");
  }
  if (!o->env) {
    return hg_err_set(err, HG_EINVAL, "cannot start '%s': no environment given (env is NULL)",
                      o->argv[0]);
  }
  for (size_t i = 0; o->env[i]; i++) {
    /* The entry is not quoted: it may hold a secret. */
    if (o->env[i][0] == '=' || !strchr(o->env[i], '=')) {
      return hg_err_set(err, HG_EINVAL, "cannot start '%s': env[%zu] is not NAME=value",
                        o->argv[0], i);
    }
  }
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* Best effort: the user's pipe quota may refuse, and the pipe then keeps its 64 KiB. */
static void grow_pipe(uv_pipe_t *pipe) {
  uv_os_fd_t fd;
  if (uv_fileno((const uv_handle_t *)pipe, &fd) == 0) fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES);
}

/* Wraps our end *fd of a pipe in a handle of p's (stdin, stdout or stderr), which owns it from
 * then on; *open tells that the handle must be closed. */
static int open_pipe(hg_proc *p, uv_pipe_t *pipe, int *open, int *fd, const char *name,
                     hg_err *err) {
  int rc = uv_pipe_init(&p->loop->uv, pipe, 0);
  if (rc) return hg_err_set(err, rc, "cannot start '%s': %s", name, uv_strerror(rc));
  init_handle(p, (uv_handle_t *)pipe);
  *open = 1;
  rc = uv_pipe_open(pipe, *fd);
  if (rc) return hg_err_set(err, rc, "cannot start '%s': %s", name, uv_strerror(rc));
  *fd = -1; /* the handle owns it now */
  return 0;
}

static int report_error(const spawn_report *r, const hg_proc_opts *o, const char *path,
                        hg_err *err) {
  const char *name = o->argv[0];
  int code = r->code > 0 ? -r->code : HG_EIO;
  const char *why = strerror(r->code > 0 ? r->code : EIO);
  switch (r->stage) {
    case STAGE_CWD:
      return hg_err_set(err, code, "cannot start '%s': cannot change directory to '%s': %s",
                        name, o->cwd, why);
    case STAGE_PGROUP:
      return hg_err_set(err, code, "cannot start '%s': cannot give it a session and process group of its own: %s",
                        name, why);
    case STAGE_PDEATHSIG:
      return hg_err_set(err, code, "cannot start '%s': cannot tie its life to ours: %s", name,
                        why);
    case STAGE_FDS:
      return hg_err_set(err, code, "cannot start '%s': cannot set up its stdio: %s", name, why);
    default:
      if (!strchr(name, '/')) {
        return hg_err_set(err, code, "cannot start '%s': %s (looked up in PATH=%s)", name, why,
                          path);
      }
      return hg_err_set(err, code, "cannot start '%s': %s", name, why);
  }
}

int hg_proc_spawn(hg_loop *loop, const hg_proc_opts *o, hg_proc **out, hg_err *err) {
  *out = NULL;
  int rc = check_opts(o, err);
  if (rc) return rc;
  const char *name = o->argv[0];
  const char *path = env_path(o->env);
  char **cands = NULL;
  rc = find_candidates(name, path, &cands, err);
  if (rc) return rc;

  hg_proc *p = calloc(1, sizeof *p);
  if (!p) {
    free_candidates(cands);
    return hg_err_set(err, HG_ENOMEM, "cannot start '%s': out of memory", name);
  }
  p->loop = loop;
  p->pgroup = o->new_pgroup != 0;
  p->on_exit = o->on_exit;
  p->data = o->data;
  p->has_stdin = o->stdin_pipe != 0;
  p->out.proc = p->err.proc = p;
  p->out.sink = o->out;
  p->err.sink = o->err;
  p->out.done = !o->out;
  p->err.done = !o->err;

  /* Every fd is O_CLOEXEC so a fork elsewhere in the process cannot leak it to a program. */
  int devnull = -1, child_in = -1, child_out = -1, child_err = -1;
  int parent_in = -1, parent_out = -1, parent_err = -1, report[2] = {-1, -1};
  int fds[2];
  if (!o->stdin_pipe || !o->out || !o->err) {
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
      rc = hg_err_set(err, -errno, "cannot start '%s': cannot open /dev/null: %s", name,
                      strerror(errno));
      goto fail;
    }
  }
  if (o->stdin_pipe) {
    if (pipe2(fds, O_CLOEXEC) < 0) goto fail_pipe;
    child_in = fds[0];
    parent_in = fds[1];
  }
  if (o->out) {
    if (pipe2(fds, O_CLOEXEC) < 0) goto fail_pipe;
    parent_out = fds[0];
    child_out = fds[1];
  }
  if (o->err) {
    if (pipe2(fds, O_CLOEXEC) < 0) goto fail_pipe;
    parent_err = fds[0];
    child_err = fds[1];
  }
  int piped = !atomic_load_explicit(&vfork_shares, memory_order_relaxed);
  if (piped && pipe2(report, O_CLOEXEC) < 0) goto fail_pipe;

  /* uv_timer_init cannot fail. */
  uv_timer_init(&loop->uv, &p->kill_timer);
  init_handle(p, (uv_handle_t *)&p->kill_timer);
  uv_timer_init(&loop->uv, &p->drain_timer);
  init_handle(p, (uv_handle_t *)&p->drain_timer);
  p->timers_open = 1;
  rc = reaper_add(p);
  if (rc) {
    rc = hg_err_set(err, rc, "cannot start '%s': %s", name, uv_strerror(rc));
    goto fail;
  }
  if (o->stdin_pipe && (rc = open_pipe(p, &p->in, &p->in_open, &parent_in, name, err))) goto fail;
  if (o->out && (rc = open_pipe(p, &p->out.pipe, &p->out.open, &parent_out, name, err))) goto fail;
  if (o->err && (rc = open_pipe(p, &p->err.pipe, &p->err.open, &parent_err, name, err))) goto fail;

  child_plan plan = {
      .fds = {o->stdin_pipe ? child_in : devnull, o->out ? child_out : devnull,
              o->err ? child_err : devnull},
      .report_fd = report[1],
      .parent = getpid(),
      .pgroup = p->pgroup,
      .cwd = o->cwd,
      .candidates = cands,
      .argv = (char *const *)o->argv,
      .envp = (char *const *)o->env,
  };
  /* With every signal blocked, no handler of ours can run in the child before it resets
   * them all. vfork: the child borrows our memory until exec instead of copying our page
   * tables (fork cost the agent about as much as the exec, and every page it wrote afterwards
   * took a copy-on-write fault); child_run only makes system calls and writes its own stack and
   * plan's report; this thread waits for the exec anyway. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = vfork();
  if (pid == 0) child_run(&plan);
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  close_fd(&child_in);
  close_fd(&child_out);
  close_fd(&child_err);
  close_fd(&devnull);
  close_fd(&report[1]);
  if (pid < 0) {
    rc = hg_err_set(err, -fork_errno, "cannot start '%s': fork: %s", name,
                    strerror(fork_errno));
    goto fail;
  }

  /* With the child's report in our memory, nothing to wait for: reading the pipe until its
   * close-on-exec held the loop ~60 us per spawn, while the new program's files were set up.
   * Else EOF means exec succeeded (the pipe is close-on-exec); a report means it did not. */
  spawn_report r = {plan.report.stage, plan.report.code};
  ssize_t n = r.stage ? (ssize_t)sizeof r : 0;
  if (plan.shared) {
    atomic_store_explicit(&vfork_shares, 1, memory_order_relaxed);
  } else if (piped) {
    do {
      n = read(report[0], &r, sizeof r);
    } while (n < 0 && errno == EINTR);
  }
  close_fd(&report[0]);
  if (n != 0) {
    if (n != (ssize_t)sizeof r) r = (spawn_report){STAGE_EXEC, EIO};
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    rc = report_error(&r, o, path, err);
    goto fail;
  }

  p->pid = pid;
  free_candidates(cands);
  /* The pipes grow once the child is on its way, not before the vfork: the resize allocates
   * the pipe's ring, which now and then took 70 us or more (the agent's dispatch, traced), all
   * of it before the child existed. The cost is moved off the child's way, not removed: this
   * thread still pays it, while the child's loader and libc start. A program that fills 64 KiB
   * before the resize waits for us as it would on any full pipe, and growing a pipe that holds
   * data keeps the data. */
  if (p->out.open) grow_pipe(&p->out.pipe);
  if (p->err.open) grow_pipe(&p->err.pipe);
  if (p->out.open) uv_read_start((uv_stream_t *)&p->out.pipe, on_alloc, on_read);
  if (p->err.open) uv_read_start((uv_stream_t *)&p->err.pipe, on_alloc, on_read);
  *out = p;
  return 0;

fail_pipe:
  rc = hg_err_set(err, -errno, "cannot start '%s': cannot create a pipe: %s", name,
                  strerror(errno));
fail:
  close_fd(&devnull);
  close_fd(&child_in);
  close_fd(&child_out);
  close_fd(&child_err);
  close_fd(&parent_in);
  close_fd(&parent_out);
  close_fd(&parent_err);
  close_fd(&report[0]);
  close_fd(&report[1]);
  free_candidates(cands);
  p->exited = 1; /* nothing (more) to reap */
  if (p->registered) {
    struct hg_proc_reaper *reaper = p->reaper;
    reaper_remove(p);
    reaper_close_if_idle(reaper);
  }
  if (p->handles) {
    release(p);
  } else {
    free(p);
  }
  return rc;
}

pid_t hg_proc_pid(const hg_proc *p) { return p->pid; }

/* ---- stdin ---- */

typedef struct stdin_write {
  uv_write_t req;
  char bytes[];
} stdin_write;

static void on_written(uv_write_t *req, int status) {
  hg_proc *p = req->data;
  free(req);
  p->in_pending--;
  /* EPIPE: the child closed its stdin; later writes would fail the same way. */
  if (status < 0 && status != UV_ECANCELED) stdin_close(p);
  if (p->in_ending && p->in_pending == 0) stdin_close(p);
}

int hg_proc_write(hg_proc *p, const char *data, size_t len) {
  if (!p || p->freed || !p->has_stdin) return HG_EINVAL;
  if (!p->in_open || p->in_ending) return -EPIPE;
  if (len == 0) {
    p->in_ending = 1;
    if (p->in_pending == 0) stdin_close(p);
    return 0;
  }
  if (len > (size_t)UINT32_MAX) return HG_ETOOBIG;
  stdin_write *w = malloc(sizeof *w + len);
  if (!w) return HG_ENOMEM;
  memcpy(w->bytes, data, len);
  w->req.data = p;
  uv_buf_t b = uv_buf_init(w->bytes, (unsigned)len);
  int rc = uv_write(&w->req, (uv_stream_t *)&p->in, &b, 1, on_written);
  if (rc) {
    free(w);
    return rc;
  }
  p->in_pending++;
  return 0;
}

/* ---- signals ---- */

int hg_proc_signal(hg_proc *p, int signum) {
  if (!p || p->freed || p->reported || p->pid <= 0) return -ESRCH;
  /* A reaped pid may be reused; a group id cannot be while any member is alive. */
  if (!p->pgroup && p->exited) return -ESRCH;
  if (kill(p->pgroup ? -p->pid : p->pid, signum) < 0) return -errno;
  return 0;
}

static void on_kill_timer(uv_timer_t *t) {
  hg_proc *p = t->data;
  hg_proc_signal(p, SIGKILL);
}

int hg_proc_kill(hg_proc *p, int64_t grace_ms) {
  int rc = hg_proc_signal(p, SIGTERM);
  if (rc) return rc;
  return uv_timer_start(&p->kill_timer, on_kill_timer, grace_ms > 0 ? (uint64_t)grace_ms : 0, 0);
}

void hg_proc_free(hg_proc *p) {
  if (!p || p->freed) return;
  if (!p->exited && p->pid > 0) {
    if (p->pgroup) kill(-p->pid, SIGKILL);
    kill(p->pid, SIGKILL);
  }
  release(p);
}
