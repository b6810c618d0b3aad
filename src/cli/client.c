/* The CLI's blocking HTTP client for the hub's user API, on libcurl's easy interface. */
#include "cli/client.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64u << 20)
#define CONNECT_TIMEOUT_S 10

static int ensure_global(void) {
  static int done;
  if (!done) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    done = 1;
  }
  return 0;
}

int hg_client_is_loopback(const char *url) {
  CURLU *u = curl_url();
  char *host = NULL;
  int yes = 0;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    /* An address in 127/8, not any name that starts with "127." (127.0.0.1.example.com). */
    struct in_addr v4;
    yes = strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0 ||
          (inet_pton(AF_INET, host, &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127);
  }
  curl_free(host);
  curl_url_cleanup(u);
  return yes;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

int hg_client_init(hg_client *c, const char *hub_url, const char *token, const char *ca_file,
                   int allow_http, hg_err *err) {
  memset(c, 0, sizeof *c);
  if (ensure_global() < 0) return hg_err_set(err, HG_EIO, "libcurl failed to initialise");
  int https = strncmp(hub_url, "https://", 8) == 0, http = strncmp(hub_url, "http://", 7) == 0;
  if (!https && !http)
    return hg_err_set(err, HG_EINVAL, "hub URL '%s' must start with https:// (or http:// on loopback)",
                      hub_url);
  if (http && !allow_http && !hg_client_is_loopback(hub_url))
    return hg_err_set(err, HG_EINVAL,
                      "hub URL '%s' is plain http to a host that is not loopback: the key would "
                      "travel in clear; use https:// (or --allow-http if you must)",
                      hub_url);
  size_t len = strlen(hub_url);
  while (len > 0 && hub_url[len - 1] == '/') len--;
  c->base = strndup(hub_url, len);
  c->ca_file = dup_or_null(ca_file);
  if (token) {
    hg_buf b = HG_BUF_INIT;
    if (hg_buf_printf(&b, "Authorization: Bearer %s", token) == 0) c->auth = hg_buf_steal(&b);
  }
  c->curl = curl_easy_init();
  if (!c->base || !c->curl || (ca_file && !c->ca_file) || (token && !c->auth)) {
    hg_client_free(c);
    return hg_err_set(err, HG_ENOMEM, "out of memory");
  }
  return 0;
}

void hg_client_free(hg_client *c) {
  if (c->curl) curl_easy_cleanup(c->curl);
  if (c->auth) {
    memset(c->auth, 0, strlen(c->auth));
    free(c->auth);
  }
  free(c->base);
  free(c->ca_file);
  memset(c, 0, sizeof *c);
}

void hg_client_res_free(hg_client_res *res) {
  cJSON_Delete(res->json);
  res->json = NULL;
  res->status = 0;
}

int hg_client_escape(hg_buf *b, const char *s) {
  char *e = curl_easy_escape(NULL, s, 0);
  if (!e) return HG_ENOMEM;
  int rc = hg_buf_appends(b, e);
  curl_free(e);
  return rc;
}

static size_t on_body(char *data, size_t size, size_t n, void *userdata) {
  hg_buf *b = userdata;
  size_t len = size * n;
  if (b->len + len > MAX_BODY || hg_buf_append(b, data, len) < 0) return 0;
  return len;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow) {
  const volatile sig_atomic_t *stop = userdata;
  return stop && *stop ? 1 : 0;
}

/* Why no answer came, in the words a person needs: the system's reason for a refused or
 * unreachable connection, libcurl's own message for TLS and the rest. */
static int transport_error(hg_client *c, CURLcode code, const char *errbuf, hg_err *err) {
  if (code == CURLE_ABORTED_BY_CALLBACK) return hg_err_set(err, HG_ECANCELED, "interrupted");
  if (code == CURLE_OPERATION_TIMEDOUT)
    return hg_err_set(err, HG_ETIMEDOUT, "hub at %s did not answer in time", c->base);
  if (code == CURLE_WRITE_ERROR)
    return hg_err_set(err, HG_ETOOBIG, "the hub's answer is over %u MiB", MAX_BODY >> 20);
  long os_errno = 0;
  curl_easy_getinfo(c->curl, CURLINFO_OS_ERRNO, &os_errno);
  const char *why = errbuf[0] ? errbuf : curl_easy_strerror(code);
  if (code == CURLE_COULDNT_CONNECT && os_errno) why = strerror((int)os_errno);
  return hg_err_set(err, HG_EIO, "cannot reach hub at %s: %s", c->base, why);
}

/* "hub said 400 bad_request: message", or the start of whatever else came back. */
static int status_error(const hg_client_res *res, const hg_buf *body, hg_err *err) {
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(res->json, "error");
  const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
  const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
  if (cJSON_IsString(code) && cJSON_IsString(msg))
    return hg_err_set(err, HG_EPROTO, "hub said %ld %s: %s", res->status, code->valuestring,
                      msg->valuestring);
  char text[121] = "";
  size_t n = 0;
  for (size_t i = 0; body->data && i < body->len && n + 1 < sizeof text; i++)
    text[n++] = (body->data[i] >= 0x20 && body->data[i] < 0x7F) ? body->data[i] : ' ';
  text[n] = '\0';
  return hg_err_set(err, HG_EPROTO, "hub said %ld%s%s (not an error in Hangar's format: is "
                    "the URL a Hangar hub?)", res->status, n ? ": " : "", text);
}

int hg_client_call(hg_client *c, const char *method, const char *path, const cJSON *body,
                   long timeout_s, hg_client_res *res, hg_err *err) {
  res->status = 0;
  res->json = NULL;
  hg_buf url = HG_BUF_INIT, in = HG_BUF_INIT;
  char *out = NULL;
  struct curl_slist *headers = NULL, *h;
  char errbuf[CURL_ERROR_SIZE] = "";
  int rc = 0;
  if (hg_buf_printf(&url, "%s%s", c->base, path) < 0 ||
      (body && !(out = cJSON_PrintUnformatted(body)))) {
    rc = hg_err_set(err, HG_ENOMEM, "out of memory");
    goto done;
  }
  const char *fixed[] = {"Accept: application/json", "Content-Type: application/json",
                         "User-Agent: hangar-cli/" HANGAR_VERSION, "Expect:", c->auth};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (!fixed[i] || (i == 1 && !body)) continue;
    if (!(h = curl_slist_append(headers, fixed[i]))) {
      rc = hg_err_set(err, HG_ENOMEM, "out of memory");
      goto done;
    }
    headers = h;
  }
  CURL *curl = c->curl;
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.data);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "GET") == 0) curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  if (out) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, out);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(out));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  /* A redirect would carry the key to wherever it points: never follow one. */
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (c->ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, c->ca_file);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, timeout_s > 0 ? timeout_s : (long)HG_CLIENT_TIMEOUT_S);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &in);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, (void *)c->stop);
  CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    rc = transport_error(c, code, errbuf, err);
    goto done;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &res->status);
  if (in.len) res->json = cJSON_ParseWithOpts(in.data, NULL, 1);
  if (res->status < 200 || res->status > 299) {
    rc = status_error(res, &in, err);
  } else if (in.len && !res->json) {
    rc = hg_err_set(err, HG_EPROTO, "hub at %s answered %ld with a body that is not JSON", c->base,
                    res->status);
  }
done:
  /* Bodies may hold a secret (config set --secret): do not leave it in freed memory. */
  if (out) {
    memset(out, 0, strlen(out));
    cJSON_free(out);
  }
  for (h = headers; h; h = h->next) memset(h->data, 0, strlen(h->data));
  curl_slist_free_all(headers);
  hg_buf_free(&url);
  hg_buf_wipe(&in);
  return rc;
}
