/* The asynchronous HTTP client: libcurl's multi interface driven by the libuv loop. */
#include "core/http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/clock.h"

#ifndef HANGAR_VERSION
#define HANGAR_VERSION "dev"
#endif

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_MAX_BODY ((size_t)64 << 20)

#ifndef CURL_WRITEFUNC_ERROR
#define CURL_WRITEFUNC_ERROR 0xFFFFFFFF
#endif

/* One per socket curl asked us to watch; libcurl keeps the pointer (curl_multi_assign), so
 * a socket never gets a second poll handle. When curl stops watching a socket (a keep-alive
 * connection between requests), its handle is stopped and kept, idle, for the next socket
 * curl hands over with the same descriptor number, which is most often the same connection:
 * initialising and closing a poll handle per request cost four system calls (a trial
 * epoll_ctl add and delete, a FIONBIO and a second delete) and an allocation. A handle only
 * holds the number, so reusing it for another socket of that number is as good as a new one. */
typedef struct hg_http_sock {
  uv_poll_t poll;
  hg_http *h;
  curl_socket_t fd;
  bool idle; /* stopped, not assigned to a socket in curl */
  struct hg_http_sock *prev, *next;
} hg_http_sock;

/* Idle poll handles kept at most; libcurl's connection cache rarely holds more. */
#define MAX_IDLE_SOCKS 8

/* Finished easy handles kept for the next requests: taking one back with curl_easy_reset
 * costs a fraction of a curl_easy_init and curl_easy_cleanup (~9,000 instructions a request
 * under callgrind). A client rarely has more requests in flight than this. */
#define MAX_IDLE_EASY 4

/* Room for "host:port" (or a proxy's) in messages; longer ones are cut. */
#define WHERE_SIZE 300

struct hg_http_req {
  hg_http *h;
  CURL *easy;
  struct curl_slist *headers;
  char *body; /* our copy; wiped when freed, as it may hold credentials */
  size_t body_len;
  bool body_kept; /* body is the caller's: neither wiped nor freed here */
  hg_http_done_cb done;
  void *data;
  hg_sink *sink;
  size_t max_body;
  int64_t timeout_ms, connect_timeout_ms;
  char where[WHERE_SIZE]; /* "host:port", for messages: never the path or query */
  char proxy[WHERE_SIZE]; /* "proxy host[:port] " when one is used, likewise */
  char errbuf[CURL_ERROR_SIZE];
  hg_http_response res;
  size_t nheaders, headers_cap;
  int sink_rc;       /* the sink's failure, if it failed */
  bool added;        /* in the multi handle */
  bool queued;       /* in the deferred-work queue */
  bool canceled;
  bool finished;     /* the done callback has started */
  bool streaming;    /* a 2xx arrived and a sink is set */
  bool sink_paused;  /* the sink asked us to hold back */
  bool curl_paused;  /* curl holds bytes we refused with CURL_WRITEFUNC_PAUSE */
  bool want_cont;    /* the sink resumed: unpause curl once outside its callbacks */
  bool too_big, oom;
  bool https, client_cert; /* for explaining failures */
  struct hg_http_req *prev, *next; /* h->reqs */
  struct hg_http_req *qnext;       /* h->queue */
};

struct hg_http {
  hg_loop *loop;
  CURLM *multi;
  uv_timer_t timer; /* curl's own timeout */
  uv_timer_t defer; /* work that must not run inside a libcurl callback */
  hg_http_sock *socks; /* idle ones included */
  int idle_socks;
  hg_http_req *reqs; /* every request whose callback has not run yet */
  hg_http_req *qhead, *qtail;
  int in_curl; /* > 0 while libcurl is on the stack: its callbacks may be running */
  bool in_timeout; /* handling curl's timeout (on_timeout) */
  bool freeing, torn_down;
  int open_handles; /* libuv handles not yet closed; h is freed when it reaches 0 */
  CURL *idle_easy[MAX_IDLE_EASY]; /* reset: no option of the requests they served is set */
  int n_idle_easy;
  /* The scheme and authority ("https://host:port") of the last URL parse_url took apart,
   * and what it found there: a client talks to one server, and this spares each request a
   * parse of its own (~7,000 instructions). */
  char *origin;
  size_t origin_len;
  char origin_where[WHERE_SIZE];
  bool origin_https;
};

/* ---- handle lifetime ---- */

static void maybe_free(hg_http *h) {
  if (h->torn_down && h->open_handles == 0) free(h);
}

static void on_sock_closed(uv_handle_t *handle) {
  hg_http_sock *s = handle->data;
  hg_http *h = s->h;
  free(s);
  h->open_handles--;
  maybe_free(h);
}

static void on_timer_closed(uv_handle_t *handle) {
  hg_http *h = handle->data;
  h->open_handles--;
  maybe_free(h);
}

static void sock_close(hg_http_sock *s) {
  hg_http *h = s->h;
  if (s->idle) h->idle_socks--;
  if (s->prev) s->prev->next = s->next;
  else h->socks = s->next;
  if (s->next) s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- libcurl → libuv ---- */

static void settle(hg_http *h);
static void on_timeout(uv_timer_t *t);

static void arm_timer(hg_http *h, long timeout_ms) {
  if (timeout_ms < 0) {
    uv_timer_stop(&h->timer);
    return;
  }
  /* libuv measures from the time cached at the start of this loop turn, which may be well
   * in the past: refresh it, or the timer fires before curl thinks the timeout is due. */
  uv_update_time(&h->loop->uv);
  /* 0 ms means "as soon as possible": a timer due now runs from the loop's next timer pass
   * (never from inside this callback), without sleeping first. A new request asks for it,
   * and a 1 ms rounding here cost each request a millisecond of sleep. A 0 asked for while
   * handling curl's timeout waits 1 ms, so that libcurl asking again and again cannot keep
   * the loop from polling sockets. */
  uint64_t due = (uint64_t)timeout_ms;
  if (timeout_ms == 0 && h->in_timeout) due = 1;
  uv_timer_start(&h->timer, on_timeout, due, 0);
}

/* curl calls the timer callback only when its earliest timeout changes. Should our timer
 * have fired a little early, that timeout is still pending and unchanged, and no callback
 * would ever come for it: ask curl again after every call that may have moved it. */
static void sync_timer(hg_http *h) {
  long timeout_ms = -1;
  if (curl_multi_timeout(h->multi, &timeout_ms) == CURLM_OK) arm_timer(h, timeout_ms);
}

static void drive(hg_http *h, curl_socket_t fd, int flags) {
  int running = 0;
  h->in_curl++;
  curl_multi_socket_action(h->multi, fd, flags, &running);
  h->in_curl--;
  settle(h);
}

static void on_poll(uv_poll_t *p, int status, int events) {
  hg_http_sock *s = p->data;
  int flags = 0;
  if (status < 0) {
    /* libuv reports a socket error (POLLERR) without saying which: let curl read or write
     * the socket and find it, so the message names it ("Connection refused", "reset by
     * peer") rather than "select/poll returned error". */
    flags = CURL_CSELECT_IN | CURL_CSELECT_OUT;
  } else {
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  }
  drive(s->h, s->fd, flags);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)easy;
  hg_http *h = userp;
  hg_http_sock *s = socketp;
  if (what == CURL_POLL_REMOVE || h->torn_down) {
    if (s) {
      if (!h->torn_down) curl_multi_assign(h->multi, fd, NULL);
      if (h->torn_down || h->idle_socks >= MAX_IDLE_SOCKS) {
        sock_close(s);
      } else {
        uv_poll_stop(&s->poll);
        s->idle = true;
        h->idle_socks++;
      }
    }
    return 0;
  }
  if (!s) {
    for (hg_http_sock *i = h->socks; i; i = i->next) {
      if (i->idle && i->fd == fd) {
        s = i;
        s->idle = false;
        h->idle_socks--;
        curl_multi_assign(h->multi, fd, s);
        break;
      }
    }
  }
  if (!s) {
    s = calloc(1, sizeof *s);
    if (!s) return -1;
    if (uv_poll_init_socket(&h->loop->uv, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = s;
    s->h = h;
    s->fd = fd;
    s->next = h->socks;
    if (h->socks) h->socks->prev = s;
    h->socks = s;
    h->open_handles++;
    curl_multi_assign(h->multi, fd, s);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timeout(uv_timer_t *t) {
  hg_http *h = t->data;
  h->in_timeout = true;
  drive(h, CURL_SOCKET_TIMEOUT, 0);
  h->in_timeout = false;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  hg_http *h = userp;
  if (!h->torn_down) arm_timer(h, timeout_ms);
  return 0;
}

/* ---- requests ---- */

static void on_defer(uv_timer_t *t);

static void enqueue(hg_http_req *req) {
  hg_http *h = req->h;
  if (!req->queued) {
    req->queued = true;
    req->qnext = NULL;
    if (h->qtail) h->qtail->qnext = req;
    else h->qhead = req;
    h->qtail = req;
  }
  if (!h->torn_down) uv_timer_start(&h->defer, on_defer, 0, 0);
}

static void dequeue(hg_http_req *req) {
  hg_http *h = req->h;
  if (!req->queued) return;
  hg_http_req **pp = &h->qhead, *prev = NULL;
  while (*pp != req) {
    prev = *pp;
    pp = &(*pp)->qnext;
  }
  *pp = req->qnext;
  if (h->qtail == req) h->qtail = prev;
  req->queued = false;
}

/* Takes req out of curl and out of h's books; its memory stays until req_free. */
static void detach(hg_http_req *req) {
  hg_http *h = req->h;
  if (req->added) {
    curl_multi_remove_handle(h->multi, req->easy);
    req->added = false;
  }
  dequeue(req);
  if (req->prev) req->prev->next = req->next;
  else if (h->reqs == req) h->reqs = req->next;
  if (req->next) req->next->prev = req->prev;
  req->prev = req->next = NULL;
}

/* What res.headers points at before any header arrived: callers may always iterate it. */
static char *no_headers[] = {NULL};

static void free_headers(hg_http_req *req) {
  for (size_t i = 0; i < req->nheaders; i++) free(req->res.headers[i]);
  if (req->headers_cap) req->res.headers[0] = NULL;
  req->nheaders = 0;
}

/* Keeps a finished request's easy handle for the next one, reset at once so that no option
 * points at this request's headers, body or error buffer (all freed below). What libcurl
 * keeps across a reset (its TLS session cache; what it derived from the last URL, until the
 * next transfer) it kept until curl_easy_cleanup before, and freed without wiping then. */
static void release_easy(hg_http *h, CURL *easy) {
  if (!easy) return;
  if (h->torn_down || h->n_idle_easy == MAX_IDLE_EASY) {
    curl_easy_cleanup(easy);
    return;
  }
  curl_easy_reset(easy);
  h->idle_easy[h->n_idle_easy++] = easy;
}

static CURL *take_easy(hg_http *h) {
  return h->n_idle_easy ? h->idle_easy[--h->n_idle_easy] : curl_easy_init();
}

static void req_free(hg_http_req *req) {
  release_easy(req->h, req->easy);
  curl_slist_free_all(req->headers);
  if (req->body && !req->body_kept) {
    OPENSSL_cleanse(req->body, req->body_len);
    free(req->body);
  }
  hg_buf_wipe(&req->res.body); /* a response may carry a token */
  free_headers(req);
  if (req->headers_cap) free(req->res.headers);
  free(req);
}

static void on_sink_resume(void *producer) {
  hg_http_req *req = producer;
  req->sink_paused = false;
  if (req->curl_paused) {
    req->want_cont = true;
    enqueue(req);
  }
}

/* Runs the user's side of the end: the sink's eof, then the done callback, exactly once. */
static void finish(hg_http_req *req, int rc, const char *msg) {
  req->finished = true;
  if (req->sink && req->sink->producer == req) {
    req->sink->resume = NULL;
    req->sink->producer = NULL;
  }
  if (req->streaming && req->sink_rc == 0) hg_sink_eof(req->sink, hg_clock_now_ms());
  req->done(req, rc, rc ? msg : "", &req->res, req->data);
}

static int outcome(hg_http_req *req, CURLcode cc, char *msg, size_t cap) {
  const char *where = req->where;
  const char *detail = req->errbuf[0] ? req->errbuf : curl_easy_strerror(cc);
  if (req->canceled) {
    snprintf(msg, cap, "request to %s cancelled", where);
    return HG_ECANCELED;
  }
  if (req->sink_rc) {
    snprintf(msg, cap, "streaming the response from %s: the sink failed (code %d)", where,
             req->sink_rc);
    return req->sink_rc;
  }
  if (req->too_big) {
    snprintf(msg, cap, "response body from %s is over the %zu-byte limit", where,
             req->max_body);
    return HG_ETOOBIG;
  }
  if (req->oom || cc == CURLE_OUT_OF_MEMORY) {
    snprintf(msg, cap, "out of memory receiving from %s", where);
    return HG_ENOMEM;
  }
  switch (cc) {
  case CURLE_OK:
    /* libcurl (7.88) ends a transfer on a reused connection that closed within the
     * response's headers with CURLE_OK and no status: that is no answer. */
    if (req->res.status == 0) {
      snprintf(msg, cap, "%s closed the connection before a complete answer", where);
      return HG_EIO;
    }
    msg[0] = '\0';
    return 0;
  case CURLE_OPERATION_TIMEDOUT: {
    curl_off_t connected_us = 0;
    curl_easy_getinfo(req->easy, CURLINFO_CONNECT_TIME_T, &connected_us);
    int64_t limit = req->timeout_ms;
    if (connected_us == 0) {
      if (!limit || req->connect_timeout_ms < limit) limit = req->connect_timeout_ms;
      snprintf(msg, cap, "connecting to %s%s: timed out after %lld ms", req->proxy, where,
               (long long)limit);
    } else {
      snprintf(msg, cap, "request to %s timed out after %lld ms", where, (long long)limit);
    }
    return HG_ETIMEDOUT;
  }
  case CURLE_COULDNT_CONNECT: {
    long os_errno = 0;
    curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
    snprintf(msg, cap, "connecting to %s%s: %s", req->proxy, where,
             os_errno ? strerror((int)os_errno) : detail);
    return HG_EIO;
  }
  case CURLE_COULDNT_RESOLVE_HOST:
    snprintf(msg, cap, "resolving %s: %s", where, detail);
    return HG_EIO;
  case CURLE_COULDNT_RESOLVE_PROXY:
    snprintf(msg, cap, "resolving %s%s: %s", req->proxy, where, detail);
    return HG_EIO;
  case CURLE_PEER_FAILED_VERIFICATION: {
    long verify = X509_V_OK;
    curl_easy_getinfo(req->easy, CURLINFO_SSL_VERIFYRESULT, &verify);
    if (verify != X509_V_OK)
      snprintf(msg, cap, "TLS with %s: certificate verify failed (%s)", where,
               X509_verify_cert_error_string(verify));
    else
      snprintf(msg, cap, "TLS with %s: %s", where, detail);
    return HG_EIO;
  }
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_CRL_BADFILE:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_INVALIDCERTSTATUS:
  case CURLE_SSL_ENGINE_INITFAILED:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
    snprintf(msg, cap, "TLS with %s: %s", where, detail);
    return HG_EIO;
  case CURLE_GOT_NOTHING:
    snprintf(msg, cap, "%s closed the connection without answering", where);
    return HG_EIO;
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    snprintf(msg, cap, "%s sent an invalid HTTP response: %s", where, detail);
    return HG_EPROTO;
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR: {
    long os_errno = 0;
    curl_easy_getinfo(req->easy, CURLINFO_OS_ERRNO, &os_errno);
    /* A server that wants a client certificate accepts the TLS 1.3 handshake and then
     * drops the connection: say so, since nothing else in the error would. */
    bool hint = req->https && !req->client_cert && req->res.status == 0;
    snprintf(msg, cap, "%s %s: %s%s", cc == CURLE_SEND_ERROR ? "sending to" : "receiving from",
             where, os_errno ? strerror((int)os_errno) : detail,
             hint ? " (the server may require a TLS client certificate)" : "");
    return HG_EIO;
  }
  case CURLE_PARTIAL_FILE:
    snprintf(msg, cap, "receiving from %s: the response ended early (%s)", where, detail);
    return HG_EIO;
  default:
    snprintf(msg, cap, "request to %s failed: %s", where, detail);
    return HG_EIO;
  }
}

/* A transfer ended inside curl: report it and release it. Never inside a curl callback. */
static void complete(hg_http_req *req, CURLcode cc) {
  char msg[1024];
  detach(req);
  int rc = outcome(req, cc, msg, sizeof msg);
  finish(req, rc, msg);
  req_free(req);
}

static void drain(hg_http *h) {
  CURLMsg *m;
  int left;
  while (!h->freeing && (m = curl_multi_info_read(h->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    CURL *easy = m->easy_handle;
    CURLcode cc = m->data.result;
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    complete((hg_http_req *)(void *)priv, cc);
  }
}

static void teardown(hg_http *h) {
  if (h->torn_down) return;
  h->torn_down = true;
  while (h->reqs) {
    hg_http_req *req = h->reqs;
    detach(req);
    req_free(req);
  }
  h->qhead = h->qtail = NULL;
  while (h->n_idle_easy) curl_easy_cleanup(h->idle_easy[--h->n_idle_easy]);
  free(h->origin);
  h->origin = NULL;
  curl_multi_cleanup(h->multi);
  h->multi = NULL;
  while (h->socks) sock_close(h->socks);
  uv_close((uv_handle_t *)&h->timer, on_timer_closed);
  uv_close((uv_handle_t *)&h->defer, on_timer_closed);
  curl_global_cleanup();
}

/* Called whenever libcurl has left the stack: report finished transfers, or complete a
 * hg_http_free that arrived while curl could not be touched. */
static void settle(hg_http *h) {
  if (h->in_curl) return;
  if (!h->freeing) drain(h);
  if (h->freeing) teardown(h);
  else sync_timer(h);
}

/* Lets libcurl put a request just added on the wire now, from its timeout handling, rather
 * than from our timer on the loop's next pass: until then the loop runs whatever else is
 * ready first (an agent's accept waited ~30 us behind the set-up of its next work poll).
 * Transfers that ended meanwhile are reported from the loop (on_defer), never before the
 * caller has its request. */
static void send_now(hg_http *h) {
  int running = 0;
  h->in_curl++;
  curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  h->in_curl--;
  /* on_defer settles: reports what ended, re-arms curl's timer, completes a hg_http_free. */
  uv_timer_start(&h->defer, on_defer, 0, 0);
}

static void on_defer(uv_timer_t *t) {
  hg_http *h = t->data;
  while (!h->freeing && h->qhead) {
    hg_http_req *req = h->qhead;
    h->qhead = req->qnext;
    if (!h->qhead) h->qtail = NULL;
    req->queued = false;
    if (req->canceled) {
      complete(req, CURLE_OK); /* outcome() reports the cancel */
      continue;
    }
    if (!req->added) {
      CURLMcode mc = curl_multi_add_handle(h->multi, req->easy);
      if (mc != CURLM_OK) {
        char msg[1024];
        snprintf(msg, sizeof msg, "request to %s could not start: %s", req->where,
                 curl_multi_strerror(mc));
        detach(req);
        finish(req, HG_ENOMEM, msg);
        req_free(req);
        continue;
      }
      req->added = true;
    }
    if (req->want_cont) {
      req->want_cont = false;
      if (req->curl_paused && !req->sink_paused) {
        req->curl_paused = false;
        /* Unpausing hands curl's held bytes to our write callback right here. */
        h->in_curl++;
        CURLcode cc = curl_easy_pause(req->easy, CURLPAUSE_CONT);
        h->in_curl--;
        if (cc != CURLE_OK && !h->freeing) complete(req, cc);
      }
    }
  }
  settle(h);
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userp) {
  hg_http_req *req = userp;
  size_t len = size * nmemb;
  if (req->finished || req->canceled) return CURL_WRITEFUNC_ERROR;
  if (len == 0) return 0;
  if (req->streaming) {
    if (req->sink_paused) {
      /* The sink took its last bytes but wants no more: curl keeps these and hands them
       * over again after curl_easy_pause(CONT). */
      req->curl_paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    int rc = hg_sink_write(req->sink, ptr, len, hg_clock_now_ms());
    if (rc < 0) {
      req->sink_rc = rc;
      return CURL_WRITEFUNC_ERROR;
    }
    if (rc == HG_SINK_PAUSE) {
      req->sink_paused = true;
      req->sink->resume = on_sink_resume;
      req->sink->producer = req;
    }
    return len;
  }
  if (len > req->max_body || req->res.body.len > req->max_body - len) {
    req->too_big = true;
    return CURL_WRITEFUNC_ERROR;
  }
  if (hg_buf_append(&req->res.body, ptr, len) != 0) {
    req->oom = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return len;
}

static int add_header(hg_http_req *req, const char *line, size_t len) {
  if ((line[0] == ' ' || line[0] == '\t') && req->nheaders > 0) {
    /* An obsolete folded continuation: join it to the header it continues. */
    while (len && (*line == ' ' || *line == '\t')) line++, len--;
    char **last = &req->res.headers[req->nheaders - 1];
    size_t old = strlen(*last);
    char *joined = realloc(*last, old + 1 + len + 1);
    if (!joined) return -1;
    joined[old] = ' ';
    memcpy(joined + old + 1, line, len);
    joined[old + 1 + len] = '\0';
    *last = joined;
    return 0;
  }
  const char *colon = memchr(line, ':', len);
  if (!colon || colon == line) return 0; /* not a header line: nothing to keep */
  size_t nlen = (size_t)(colon - line);
  const char *v = colon + 1, *end = line + len;
  while (v < end && (*v == ' ' || *v == '\t')) v++;
  while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
  size_t vlen = (size_t)(end - v);
  if (req->nheaders + 2 > req->headers_cap) {
    size_t cap = req->headers_cap ? req->headers_cap * 2 : 16;
    char **grown = realloc(req->headers_cap ? req->res.headers : NULL, cap * sizeof *grown);
    if (!grown) return -1;
    req->res.headers = grown;
    req->headers_cap = cap;
  }
  char *h = malloc(nlen + 2 + vlen + 1);
  if (!h) return -1;
  for (size_t i = 0; i < nlen; i++)
    h[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] + ('a' - 'A') : line[i]);
  memcpy(h + nlen, ": ", 2);
  memcpy(h + nlen + 2, v, vlen);
  h[nlen + 2 + vlen] = '\0';
  req->res.headers[req->nheaders++] = h;
  req->res.headers[req->nheaders] = NULL;
  return 0;
}

static size_t on_header(char *buf, size_t size, size_t nmemb, void *userp) {
  hg_http_req *req = userp;
  size_t len = size * nmemb;
  if (req->finished || req->canceled) return CURL_WRITEFUNC_ERROR;
  size_t n = len;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) n--;
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    /* A new status line: headers of an interim (1xx) response are not this response's. */
    free_headers(req);
    req->streaming = false;
    return len;
  }
  if (n == 0) {
    long status = 0;
    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    req->res.status = status;
    if (req->sink && status >= 200 && status < 300) req->streaming = true;
    return len;
  }
  if (add_header(req, buf, n) != 0) {
    req->oom = true;
    return CURL_WRITEFUNC_ERROR;
  }
  return len;
}

/* ---- public API ---- */

int hg_http_new(hg_loop *loop, hg_http **out, hg_err *err) {
  CURLcode gc = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (gc != CURLE_OK)
    return hg_err_set(err, HG_EIO, "cannot initialise libcurl: %s", curl_easy_strerror(gc));
  hg_http *h = calloc(1, sizeof *h);
  CURLM *multi = h ? curl_multi_init() : NULL;
  if (!multi) {
    free(h);
    curl_global_cleanup();
    return hg_err_set(err, HG_ENOMEM, "out of memory creating the HTTP client");
  }
  h->loop = loop;
  h->multi = multi;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, h);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, h);
  /* libcurl's default keeps 4 idle connections per request in flight when one comes back:
   * after a burst (an agent's runs finishing together) most were closed, and one request in
   * four reconnected, costing both ends a TCP and HTTP set-up. Idle ones still close after
   * curl's connection age limit. */
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)HG_HTTP_KEEP_CONNECTIONS);
  uv_timer_init(&loop->uv, &h->timer);
  uv_timer_init(&loop->uv, &h->defer);
  h->timer.data = h;
  h->defer.data = h;
  h->open_handles = 2;
  *out = h;
  return 0;
}

void hg_http_free(hg_http *h) {
  if (!h || h->freeing) return;
  h->freeing = true;
  /* Callbacks may start (refused now) or cancel (a no-op now) requests, but only we unlink
   * them, so walking the list is safe. */
  for (hg_http_req *req = h->reqs; req; req = req->next) {
    if (req->finished) continue;
    char msg[1024];
    snprintf(msg, sizeof msg, "request to %s cancelled: the HTTP client is closing",
             req->where);
    req->canceled = true;
    finish(req, HG_ECANCELED, msg);
  }
  /* Inside a curl callback (a sink's write) the multi handle is still in use: teardown
   * waits until curl has returned. */
  if (!h->in_curl) teardown(h);
}

static bool is_token(const char *s) {
  if (!*s) return false;
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
          strchr("!#$%&'*+-.^_`|~", c)))
      return false;
  }
  return true;
}

static bool has_header(const char *const *headers, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; headers && headers[i]; i++)
    if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':') return true;
  return false;
}

static int check_file(const char *what, const char *path, hg_err *err) {
  if (path && access(path, R_OK) != 0)
    return hg_err_set(err, HG_EINVAL, "%s %s: %s", what, path, strerror(errno));
  return 0;
}

/* The length of url's scheme and authority: up to the first '/', '?' or '#' after "://". */
static size_t origin_length(const char *url) {
  const char *sep = strstr(url, "://");
  if (!sep) return 0;
  return (size_t)(sep + 3 - url) + strcspn(sep + 3, "/?#");
}

/* True when url is on the origin parse_url last took apart, and the rest holds nothing
 * libcurl's parser would refuse (a control character or a space), so that parsing it again
 * would find the same. */
static bool on_known_origin(const hg_http *h, const char *url) {
  if (!h->origin || strncmp(url, h->origin, h->origin_len) != 0) return false;
  const char *rest = url + h->origin_len;
  if (*rest != '/' && *rest != '?' && *rest != '#' && *rest != '\0') return false;
  for (const unsigned char *c = (const unsigned char *)rest; *c; c++)
    if (*c <= ' ' || *c == 0x7f) return false;
  return true;
}

/* Fills req->where from the URL and checks that it is one we will fetch. */
static int parse_url(hg_http_req *req, const char *url, hg_err *err) {
  if (!url) return hg_err_set(err, HG_EINVAL, "request has no URL");
  hg_http *h = req->h;
  if (on_known_origin(h, url)) {
    memcpy(req->where, h->origin_where, sizeof req->where);
    req->https = h->origin_https;
    return 0;
  }
  CURLU *u = curl_url();
  if (!u) return hg_err_set(err, HG_ENOMEM, "out of memory parsing a URL");
  char *scheme = NULL, *host = NULL, *port = NULL;
  int rc = 0;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
  if (uc != CURLUE_OK) {
    rc = hg_err_set(err, HG_EINVAL, "invalid URL: %s", curl_url_strerror(uc));
  } else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
    rc = hg_err_set(err, HG_EINVAL, "URL scheme %s is not supported (http or https only)",
                    scheme);
  } else {
    snprintf(req->where, sizeof req->where, "%s:%s", host, port);
    req->https = strcmp(scheme, "https") == 0;
    /* Remembered only when it fits whole (a "where" cut short is parsed afresh each time),
     * and never when it holds credentials (user:password@). */
    size_t n = origin_length(url);
    char *origin = n && !memchr(url, '@', n) && strlen(req->where) + 1 < sizeof req->where
                       ? strndup(url, n)
                       : NULL;
    if (origin) {
      free(h->origin);
      h->origin = origin;
      h->origin_len = n;
      memcpy(h->origin_where, req->where, sizeof req->where);
      h->origin_https = req->https;
    }
  }
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

/* Fills req->proxy with where the proxy is, leaving out any credentials in its URL. */
static int parse_proxy(hg_http_req *req, const char *proxy, hg_err *err) {
  if (!proxy) return 0;
  CURLU *u = curl_url();
  if (!u) return hg_err_set(err, HG_ENOMEM, "out of memory parsing a URL");
  char *host = NULL, *port = NULL;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, proxy, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME);
  if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
  if (uc == CURLUE_OK && curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK) port = NULL;
  int rc = 0;
  if (uc != CURLUE_OK)
    rc = hg_err_set(err, HG_EINVAL, "invalid proxy URL: %s", curl_url_strerror(uc));
  else
    snprintf(req->proxy, sizeof req->proxy, "proxy %s%s%s for ", host, port ? ":" : "",
             port ? port : "");
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return rc;
}

static int build_headers(hg_http_req *req, const hg_http_request *r, hg_err *err) {
  for (size_t i = 0; r->headers && r->headers[i]; i++) {
    const char *line = r->headers[i];
    const char *colon = strchr(line, ':');
    /* Never echo the value: it may well be a credential. */
    if (!colon || colon == line || strpbrk(line, "\r\n"))
      return hg_err_set(err, HG_EINVAL,
                        "request header %zu is not a single \"Name: value\" line", i + 1);
    struct curl_slist *next = curl_slist_append(req->headers, line);
    if (!next) return hg_err_set(err, HG_ENOMEM, "out of memory building request headers");
    req->headers = next;
  }
  /* No 100-continue round trip before a body, and no made-up form content type. */
  static const char *const suppress[] = {"Expect", "Content-Type"};
  for (size_t i = 0; i < sizeof suppress / sizeof suppress[0]; i++) {
    if (has_header(r->headers, suppress[i])) continue;
    char line[32];
    snprintf(line, sizeof line, "%s:", suppress[i]);
    struct curl_slist *next = curl_slist_append(req->headers, line);
    if (!next) return hg_err_set(err, HG_ENOMEM, "out of memory building request headers");
    req->headers = next;
  }
  return 0;
}

static int configure(hg_http_req *req, const hg_http_request *r, hg_err *err) {
  CURL *e = req->easy;
  const char *method = r->method ? r->method : "GET";
  CURLcode cc = curl_easy_setopt(e, CURLOPT_URL, r->url);
  if (cc != CURLE_OK)
    return hg_err_set(err, HG_EINVAL, "invalid URL: %s", curl_easy_strerror(cc));
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(void *)req);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "hangar/" HANGAR_VERSION);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)req->connect_timeout_ms);

  /* Verification is not an option. */
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (r->tls.ca_file) {
    /* The bundle replaces the system's trust: drop the built-in CA directory too. */
    curl_easy_setopt(e, CURLOPT_CAINFO, r->tls.ca_file);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
  }
  if (r->tls.cert_file) {
    curl_easy_setopt(e, CURLOPT_SSLCERT, r->tls.cert_file);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    if (r->tls.key_file) curl_easy_setopt(e, CURLOPT_SSLKEY, r->tls.key_file);
  }
  /* "" switches off curl's reading of proxy environment variables. */
  if (curl_easy_setopt(e, CURLOPT_PROXY, r->proxy ? r->proxy : "") != CURLE_OK)
    return hg_err_set(err, HG_ENOMEM, "out of memory setting the proxy");
  curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);

  if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
             strcmp(method, "PATCH") == 0) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    if (strcmp(method, "POST") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  } else if (strcmp(method, "GET") == 0) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
  return 0;
}

int hg_http_start(hg_http *h, const hg_http_request *r, hg_http_done_cb done, void *data,
                  hg_http_req **out, hg_err *err) {
  if (h->freeing)
    return hg_err_set(err, HG_ECANCELED, "the HTTP client is closing; request not started");
  if (!done) return hg_err_set(err, HG_EINVAL, "request has no completion callback");
  if (r->method && !is_token(r->method))
    return hg_err_set(err, HG_EINVAL, "invalid HTTP method \"%s\"", r->method);
  if (r->body_len && !r->body)
    return hg_err_set(err, HG_EINVAL, "request body_len is %zu but body is NULL", r->body_len);
  if (r->timeout_ms < 0 || r->connect_timeout_ms < 0)
    return hg_err_set(err, HG_EINVAL, "request timeouts must not be negative");
  if (r->tls.key_file && !r->tls.cert_file)
    return hg_err_set(err, HG_EINVAL, "a TLS client key was given without its certificate");
  int rc;
  if ((rc = check_file("TLS CA bundle", r->tls.ca_file, err)) ||
      (rc = check_file("TLS client certificate", r->tls.cert_file, err)) ||
      (rc = check_file("TLS client key", r->tls.key_file, err)))
    return rc;

  hg_http_req *req = calloc(1, sizeof *req);
  if (!req) return hg_err_set(err, HG_ENOMEM, "out of memory starting a request");
  req->h = h;
  req->res.headers = no_headers;
  req->done = done;
  req->data = data;
  req->sink = r->sink;
  req->client_cert = r->tls.cert_file != NULL;
  req->max_body = r->max_body ? r->max_body : DEFAULT_MAX_BODY;
  req->timeout_ms = r->timeout_ms;
  req->connect_timeout_ms = r->connect_timeout_ms ? r->connect_timeout_ms
                                                  : DEFAULT_CONNECT_TIMEOUT_MS;
  if ((rc = parse_url(req, r->url, err)) != 0 || (rc = parse_proxy(req, r->proxy, err)) != 0)
    goto fail;
  if (r->body && r->body_kept) {
    req->body = (char *)r->body; /* read only: curl sends it from there */
    req->body_len = r->body_len;
    req->body_kept = true;
  } else if (r->body) {
    req->body = malloc(r->body_len ? r->body_len : 1);
    if (!req->body) {
      rc = hg_err_set(err, HG_ENOMEM, "out of memory copying a %zu-byte body", r->body_len);
      goto fail;
    }
    if (r->body_len) memcpy(req->body, r->body, r->body_len);
    req->body_len = r->body_len;
  }
  if ((rc = build_headers(req, r, err)) != 0) goto fail;
  req->easy = take_easy(h);
  if (!req->easy) {
    rc = hg_err_set(err, HG_ENOMEM, "out of memory starting a request");
    goto fail;
  }
  if ((rc = configure(req, r, err)) != 0) goto fail;

  if (h->in_curl) {
    /* Started from a sink's write: the multi handle is busy on the stack below us. */
    enqueue(req);
  } else {
    CURLMcode mc = curl_multi_add_handle(h->multi, req->easy);
    if (mc != CURLM_OK) {
      rc = hg_err_set(err, HG_ENOMEM, "request to %s could not start: %s", req->where,
                      curl_multi_strerror(mc));
      goto fail;
    }
    req->added = true;
    send_now(h);
    if (h->freeing) {
      /* curl ran another transfer's due work in send_now, and that one's sink closed the
       * client: this request was not in the list hg_http_free cancelled, so it would never
       * hear back. It fails here instead (teardown follows from the loop). */
      rc = hg_err_set(err, HG_ECANCELED,
                      "the HTTP client was closed while the request to %s started", req->where);
      detach(req);
      goto fail;
    }
  }
  req->next = h->reqs;
  if (h->reqs) h->reqs->prev = req;
  h->reqs = req;
  if (out) *out = req;
  return 0;

fail:
  dequeue(req);
  req_free(req);
  return rc;
}

void hg_http_cancel(hg_http_req *req) {
  if (!req || req->finished || req->canceled) return;
  req->canceled = true;
  enqueue(req);
}

const char *hg_http_header(const hg_http_response *res, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; res->headers && res->headers[i]; i++) {
    const char *line = res->headers[i];
    if (strncasecmp(line, name, n) == 0 && line[n] == ':') return line + n + 2;
  }
  return NULL;
}
