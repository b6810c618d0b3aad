/* hangar.http: HTTP requests from Lua over src/core/http (libcurl on the loop). A request
 * suspends the calling task until the response is in; a body can stream into a sink
 * instead of into Lua; http.lines iterates over a streamed body's lines (watch streams).
 *
 *   local res, err = http.request{ method = "POST", url = url, headers = { ["X-A"] = "b" },
 *                                  body = text | json = value, timeout_ms = 5000,
 *                                  connect_timeout_ms, ca_file, cert_file, key_file,
 *                                  sink = s, max_body = bytes, proxy = "http://h:p" }
 *   res = { status = 200, headers = { ["content-type"] = "..." }, body = "..." }
 *
 * Any status is a response (check res.status); nil and a message mean no response came
 * (refused, TLS, timeout: the message names method, URL and cause). With `sink`, a 2xx body
 * goes to the sink and res.body is nil; another status's body is still in res.body.
 * Repeated response headers are joined with ", ". Bad arguments raise, an unknown option
 * too. TLS verification is always on: no option turns it off. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/http.h"
#include "lua/internal.h"

#define LINES_MT "hangar.http.lines"
#define LINES_HIGH ((size_t)1 << 20)  /* pause the transfer above this, if a line is ready */
#define LINES_LOW ((size_t)256 << 10) /* resume it below this */
#define LINES_MAX ((size_t)16 << 20)  /* the longest line accepted */

hg_http *hg_lua_http_client(hg_lua *rt, hg_err *err) {
  if (!rt->http) {
    if (hg_http_new(rt->loop, &rt->http, err)) return NULL;
    rt->own_http = 1;
  }
  return rt->http;
}

/* ---- building a request from the argument table ---- */

typedef struct {
  hg_http_request r;
  const char **headers; /* in a userdata on the stack, alive for the call */
  int has_sink;
  hg_sink *sink;
} built;

static const char *opt_string(lua_State *L, int t, const char *key) {
  int type = lua_getfield(L, t, key);
  const char *s = NULL;
  if (type == LUA_TSTRING) {
    s = lua_tostring(L, -1);
  } else if (type != LUA_TNIL) {
    luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a string", key));
  }
  lua_pop(L, 1); /* the table keeps the string alive */
  return s;
}

static int64_t opt_ms(lua_State *L, int t, const char *key) {
  lua_getfield(L, t, key);
  int64_t v = 0;
  if (!lua_isnil(L, -1)) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0)
      luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a non-negative integer", key));
    v = (int64_t)lua_tointeger(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

static int bad_header_text(const char *s) { return strpbrk(s, "\r\n") != NULL; }

static const char *const OPTIONS[] = {
    "url", "method", "headers", "body", "json", "timeout_ms", "connect_timeout_ms", "max_body",
    "ca_file", "cert_file", "key_file", "proxy", "sink", NULL};

/* A misspelt option, or one that does not exist (insecure = true, verify = false), is an
 * error rather than silently ignored: nobody should believe they turned something off. */
static void check_options(lua_State *L) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    const char *name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int known = 0;
    for (size_t i = 0; name && OPTIONS[i] && !known; i++) known = strcmp(name, OPTIONS[i]) == 0;
    if (!known) {
      if (!name) name = luaL_typename(L, -1);
      luaL_argerror(L, 1, lua_pushfstring(L, "unknown option '%s'", name));
    }
  }
}

/* Reads the request table at index 1 into b; leaves helper values on the stack. */
static void build_request(lua_State *L, built *b) {
  luaL_checktype(L, 1, LUA_TTABLE);
  check_options(L);
  memset(b, 0, sizeof *b);
  b->r.url = opt_string(L, 1, "url");
  if (!b->r.url) luaL_argerror(L, 1, "'url' is required");
  b->r.method = opt_string(L, 1, "method");
  if (b->r.method && (!*b->r.method || bad_header_text(b->r.method) || strchr(b->r.method, ' ')))
    luaL_argerror(L, 1, "'method' is not a method name");
  lua_getfield(L, 1, "body");
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 1, "'body' must be a string");
    b->r.body = lua_tolstring(L, -1, &b->r.body_len);
  }
  lua_pop(L, 1);
  int json_body = 0;
  if (lua_getfield(L, 1, "json") != LUA_TNIL) {
    if (b->r.body) luaL_argerror(L, 1, "give 'body' or 'json', not both");
    /* json.encode as loaded by the runtime, whatever the caller did to globals. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "hangar.json");
    lua_getfield(L, -1, "encode");
    lua_pushvalue(L, -4);
    lua_call(L, 1, 1);
    lua_replace(L, -4);
    lua_pop(L, 2);
    /* The text stays on the stack for the call's duration. */
    b->r.body = lua_tolstring(L, -1, &b->r.body_len);
    json_body = 1;
  } else {
    lua_pop(L, 1);
  }
  b->r.timeout_ms = opt_ms(L, 1, "timeout_ms");
  b->r.connect_timeout_ms = opt_ms(L, 1, "connect_timeout_ms");
  b->r.max_body = (size_t)opt_ms(L, 1, "max_body");
  b->r.tls.ca_file = opt_string(L, 1, "ca_file");
  b->r.tls.cert_file = opt_string(L, 1, "cert_file");
  b->r.tls.key_file = opt_string(L, 1, "key_file");
  b->r.proxy = opt_string(L, 1, "proxy");

  /* Headers: a map of name -> value, turned into "Name: value" lines. */
  int t = lua_getfield(L, 1, "headers");
  size_t n = 0;
  if (t != LUA_TNIL) {
    if (t != LUA_TTABLE) luaL_argerror(L, 1, "'headers' must be a table of name = value");
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      n++;
      lua_pop(L, 1);
    }
  }
  const char **lines = lua_newuserdatauv(L, (n + 2) * sizeof *lines, 1);
  lua_newtable(L); /* keeps the formatted lines alive */
  lua_setiuservalue(L, -2, 1);
  lua_getiuservalue(L, -1, 1);
  int keep = lua_gettop(L);
  size_t i = 0;
  int has_ctype = 0;
  if (t == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, keep - 2)) {
      if (lua_type(L, -2) != LUA_TSTRING || (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER))
        luaL_argerror(L, 1, "'headers' must map names to strings");
      const char *name = lua_tostring(L, -2);
      const char *value = lua_tostring(L, -1);
      if (!*name || bad_header_text(name) || strchr(name, ':') || bad_header_text(value))
        luaL_argerror(L, 1, lua_pushfstring(L, "header '%s' has a forbidden character", name));
      if (strcasecmp(name, "content-type") == 0) has_ctype = 1;
      lines[i] = lua_pushfstring(L, "%s: %s", name, value);
      lua_rawseti(L, keep, (lua_Integer)i + 1);
      i++;
      lua_pop(L, 1);
    }
  }
  if (json_body && !has_ctype) lines[i++] = "Content-Type: application/json";
  lines[i] = NULL;
  lua_pop(L, 1); /* the keep table: the userdata's uservalue holds it */
  b->headers = lines;
  b->r.headers = lines;

  if (lua_getfield(L, 1, "sink") != LUA_TNIL) {
    int why = hg_lua_sink_at(L, -1, &b->sink);
    if (why == 1) luaL_argerror(L, 1, "'sink' must be a sink (hangar.sink or a run's stream)");
    if (why == 2) luaL_argerror(L, 1, "'sink' is no longer valid (its run has ended)");
    b->has_sink = 1;
  }
  lua_pop(L, 1); /* the request table keeps the sink object alive */
}

static void push_headers(lua_State *L, char **headers) {
  lua_newtable(L);
  for (size_t i = 0; headers && headers[i]; i++) {
    const char *colon = strchr(headers[i], ':');
    if (!colon) continue;
    const char *value = colon + 1;
    while (*value == ' ' || *value == '\t') value++;
    lua_pushlstring(L, headers[i], (size_t)(colon - headers[i]));
    lua_pushvalue(L, -1);
    if (lua_rawget(L, -3) == LUA_TSTRING) {
      lua_pushfstring(L, "%s, %s", lua_tostring(L, -1), value);
      lua_remove(L, -2);
    } else {
      lua_pop(L, 1);
      lua_pushstring(L, value);
    }
    lua_rawset(L, -3);
  }
}

/* A copy of what the response callback saw; the callback's own storage dies with it. */
typedef struct {
  int rc;
  char *msg;
  long status;
  hg_buf body;
  char **headers;
} outcome;

static void outcome_take(outcome *o, int rc, const char *msg, hg_http_response *res) {
  o->rc = rc;
  o->msg = msg ? strdup(msg) : NULL;
  o->status = res ? res->status : 0;
  if (res) o->body = res->body, res->body = (hg_buf)HG_BUF_INIT;
  size_t n = 0;
  while (res && res->headers && res->headers[n]) n++;
  o->headers = calloc(n + 1, sizeof *o->headers);
  for (size_t i = 0; o->headers && i < n; i++) o->headers[i] = strdup(res->headers[i]);
}

static void outcome_free(outcome *o) {
  free(o->msg);
  hg_buf_free(&o->body);
  for (size_t i = 0; o->headers && o->headers[i]; i++) free(o->headers[i]);
  free(o->headers);
  memset(o, 0, sizeof *o);
}

/* Pushes res, or nil and the message. */
static int push_outcome(lua_State *L, const outcome *o, const char *method, const char *url,
                        int streamed) {
  if (o->rc) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", method ? method : "GET", url, o->msg ? o->msg : "failed");
    return 2;
  }
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, o->status);
  lua_setfield(L, -2, "status");
  push_headers(L, o->headers);
  lua_setfield(L, -2, "headers");
  if (!(streamed && o->status >= 200 && o->status < 300)) {
    lua_pushlstring(L, o->body.data ? o->body.data : "", o->body.len);
    lua_setfield(L, -2, "body");
  }
  return 1;
}

/* ---- http.request ---- */

typedef struct {
  hg_lua_wait *w;
  hg_http_req *req;
  int finished;
  int abandoned;
  int streamed;
  outcome out;
  char *method, *url;
  hg_lua_sink_guard guard;
} request_op;

static void request_op_free(request_op *op) {
  outcome_free(&op->out);
  free(op->method);
  free(op->url);
  free(op);
}

static void on_response(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                        void *data) {
  (void)req;
  request_op *op = data;
  op->finished = 1;
  op->req = NULL;
  if (op->abandoned) {
    request_op_free(op);
    return;
  }
  outcome_take(&op->out, rc, msg, res);
  hg_lua_wait_done(op->w);
}

static int request_push(lua_State *L, void *data) {
  request_op *op = data;
  return push_outcome(L, &op->out, op->method, op->url, op->streamed);
}

static void request_abandon(void *data) {
  request_op *op = data;
  hg_lua_sink_guard_detach(&op->guard);
  if (op->finished) {
    request_op_free(op);
    return;
  }
  op->abandoned = 1;
  hg_http_cancel(op->req); /* on_response frees it */
}

static void request_release(void *data) { request_op_free(data); }

static const hg_lua_wait_ops request_ops = {request_push, request_abandon, request_release};

static int l_request(lua_State *L) {
  built b;
  build_request(L, &b);
  hg_lua *rt = hg_lua_from(L);
  hg_lua_wait *w = hg_lua_wait_new(L, "hangar.http.request");
  hg_err err;
  hg_http *h = hg_lua_http_client(rt, &err);
  request_op *op = h ? calloc(1, sizeof *op) : NULL;
  if (op) {
    op->method = strdup(b.r.method ? b.r.method : "GET");
    op->url = strdup(b.r.url);
  }
  if (!op || !op->method || !op->url) {
    if (op) request_op_free(op);
    hg_lua_wait_discard(w);
    if (!h) {
      lua_pushnil(L);
      lua_pushstring(L, err.msg);
      return 2;
    }
    return luaL_error(L, "hangar.http.request: out of memory");
  }
  op->w = w;
  if (b.has_sink) {
    hg_lua_sink_guard_init(&op->guard, b.sink);
    b.r.sink = &op->guard.sink;
    op->streamed = 1;
  }
  if (hg_http_start(h, &b.r, on_response, op, &op->req, &err)) {
    request_op_free(op);
    hg_lua_wait_discard(w);
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", b.r.method ? b.r.method : "GET", b.r.url, err.msg);
    return 2;
  }
  return hg_lua_wait_yield(L, w, &request_ops, op);
}

/* ---- http.lines ---- */

typedef struct lines_state {
  hg_sink sink;
  hg_http_req *req;
  hg_lua_wait *w;     /* a reader waiting for a line or the end */
  hg_buf buf;         /* bytes not yet handed out */
  int paused;
  int finished;
  int detached;       /* the Lua object is gone: free on completion */
  outcome out;
  char *method, *url;
} lines_state;

typedef struct {
  lines_state *s;
} lines_obj;

static void lines_free(lines_state *s) {
  hg_buf_free(&s->buf);
  outcome_free(&s->out);
  free(s->method);
  free(s->url);
  free(s);
}

static int has_newline(const hg_buf *b) { return b->len && memchr(b->data, '\n', b->len) != NULL; }

static void wake(lines_state *s) {
  hg_lua_wait *w = s->w;
  s->w = NULL;
  if (w) hg_lua_wait_done(w);
}

static int lines_write(hg_sink *sk, const char *bytes, size_t len, int64_t ts_ms) {
  (void)ts_ms;
  lines_state *s = sk->data;
  if (s->detached) return HG_ECANCELED;
  int rc = hg_buf_append(&s->buf, bytes, len);
  if (rc) return rc;
  int ready = memchr(bytes, '\n', len) != NULL || has_newline(&s->buf);
  if (!ready && s->buf.len > LINES_MAX) return HG_ETOOBIG;
  if (ready) wake(s);
  if (ready && s->buf.len > LINES_HIGH) {
    s->paused = 1;
    return HG_SINK_PAUSE;
  }
  return 0;
}

static void lines_eof(hg_sink *sk, int64_t ts_ms) {
  (void)sk;
  (void)ts_ms;
}

static const hg_sink_ops lines_sink_ops = {lines_write, lines_eof};

static void on_lines_done(hg_http_req *req, int rc, const char *msg, hg_http_response *res,
                          void *data) {
  (void)req;
  lines_state *s = data;
  s->req = NULL;
  s->finished = 1;
  if (s->detached) {
    lines_free(s);
    return;
  }
  outcome_take(&s->out, rc, msg, res);
  wake(s);
}

/* Pushes the next line (without its "\n" or "\r\n"), or nil at the end. */
static int next_line(lua_State *L, lines_state *s) {
  char *nl = s->buf.len ? memchr(s->buf.data, '\n', s->buf.len) : NULL;
  size_t take, len;
  if (nl) {
    len = (size_t)(nl - s->buf.data);
    take = len + 1;
  } else if (s->finished && s->buf.len) {
    len = take = s->buf.len;
  } else {
    lua_pushnil(L);
    return 1;
  }
  if (len && s->buf.data[len - 1] == '\r') len--;
  lua_pushlstring(L, s->buf.data, len);
  hg_buf_consume(&s->buf, take);
  if (s->paused && s->buf.len < LINES_LOW) {
    s->paused = 0;
    hg_sink_resume(&s->sink);
  }
  return 1;
}

static lines_state *check_lines(lua_State *L, int idx) {
  lines_obj *o = luaL_checkudata(L, idx, LINES_MT);
  if (!o->s) luaL_argerror(L, idx, "the stream is closed");
  return o->s;
}

static int lines_push(lua_State *L, void *data) { return next_line(L, data); }

/* A reader can only be abandoned when the runtime closes; the object's __gc then cancels. */
static void lines_abandon(void *data) {
  lines_state *s = data;
  s->w = NULL;
}

static const hg_lua_wait_ops lines_wait_ops = {lines_push, lines_abandon, NULL};

/* stream() -> the next line, waiting for it; nil once the body has ended. */
static int l_lines_call(lua_State *L) {
  lines_state *s = check_lines(L, 1);
  if (has_newline(&s->buf) || s->finished) return next_line(L, s);
  if (s->w) return luaL_error(L, "http.lines: another task is already reading this stream");
  hg_lua_wait *w = hg_lua_wait_new(L, "hangar.http.lines");
  s->w = w;
  return hg_lua_wait_yield(L, w, &lines_wait_ops, s);
}

/* stream:result() -> res (status, headers, body when not 2xx) or nil and a message, once
 * the stream has ended; before that, nil and "still streaming". */
static int l_lines_result(lua_State *L) {
  lines_state *s = check_lines(L, 1);
  if (!s->finished) {
    lua_pushnil(L);
    lua_pushliteral(L, "still streaming");
    return 2;
  }
  return push_outcome(L, &s->out, s->method, s->url, 1);
}

/* stream:close(): stops the transfer; idempotent (also __close and __gc). */
static int l_lines_close(lua_State *L) {
  lines_obj *o = luaL_checkudata(L, 1, LINES_MT);
  lines_state *s = o->s;
  o->s = NULL;
  if (!s) return 0;
  if (s->finished) {
    lines_free(s);
  } else {
    s->detached = 1;
    s->w = NULL;
    hg_http_cancel(s->req); /* on_lines_done frees it */
  }
  return 0;
}

/* http.lines(request) -> a stream: call it (or use it in a for loop) for each line of a 2xx
 * body as it arrives. When the loop ends, stream:result() tells how the response ended
 * (a non-2xx status comes with its body; a failed request as nil and a message). */
static int l_lines(lua_State *L) {
  built b;
  build_request(L, &b);
  if (b.has_sink) return luaL_argerror(L, 1, "http.lines takes no 'sink'");
  hg_lua *rt = hg_lua_from(L);
  hg_err err;
  hg_http *h = hg_lua_http_client(rt, &err);
  if (!h) return luaL_error(L, "hangar.http.lines: %s", err.msg);
  lines_obj *o = lua_newuserdatauv(L, sizeof *o, 0);
  o->s = NULL;
  luaL_setmetatable(L, LINES_MT);
  lines_state *s = calloc(1, sizeof *s);
  if (!s) return luaL_error(L, "hangar.http.lines: out of memory");
  s->method = strdup(b.r.method ? b.r.method : "GET");
  s->url = strdup(b.r.url);
  s->sink.ops = &lines_sink_ops;
  s->sink.data = s;
  s->finished = 1; /* until started, so a failed start frees cleanly */
  o->s = s;
  if (!s->method || !s->url) return luaL_error(L, "hangar.http.lines: out of memory");
  b.r.sink = &s->sink;
  if (hg_http_start(h, &b.r, on_lines_done, s, &s->req, &err))
    return luaL_error(L, "hangar.http.lines: %s %s: %s", s->method, s->url, err.msg);
  s->finished = 0;
  return 1;
}

int hg_lua_open_http(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"result", l_lines_result}, {"close", l_lines_close}, {NULL, NULL}};
  luaL_newmetatable(L, LINES_MT);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_lines_call);
  lua_setfield(L, -2, "__call");
  lua_pushcfunction(L, l_lines_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, l_lines_close);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg funcs[] = {{"request", l_request}, {"lines", l_lines}, {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
