/* Unit tests for the core's HTTP server: listen addresses, binding, a port taken, shutdown. */
#include "core/httpd.h"

#include "check.h"

static void test_parse_listen(void) {
  static const struct {
    const char *text;
    bool any_host;
    const char *host; /* NULL: refused, and the message holds want */
    bool loopback, v6;
    const char *want;
  } cases[] = {
      {"127.0.0.1:9101", false, "127.0.0.1", true, false, NULL},
      {"localhost:0", false, "127.0.0.1", true, false, NULL},
      {"[::1]:8080", false, "::1", true, true, NULL},
      {"10.1.2.3:80", false, "10.1.2.3", false, false, NULL},
      {":8080", true, "0.0.0.0", false, false, NULL},
      {"*:8080", true, "0.0.0.0", false, false, NULL},
      {":8080", false, NULL, false, false, "x.listen: ':8080' names no host"},
      {"9101", false, NULL, false, false, "x.listen: '9101' is not HOST:PORT"},
      {"127.0.0.1:99999", true, NULL, false, false, "'127.0.0.1:99999' has no valid port"},
      {"127.0.0.1:", true, NULL, false, false, "has no valid port"},
      {"example.com:80", true, NULL, false, false, "'example.com' is not an IP address"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    hg_httpd_addr addr;
    hg_err err = {0};
    int rc = hg_httpd_parse_listen(cases[i].text, "x.listen", cases[i].any_host, &addr, &err);
    if (cases[i].host) {
      CHECK_EQ_INT(rc, 0);
      CHECK_EQ_STR(addr.host, cases[i].host);
      CHECK_EQ_INT(addr.loopback, cases[i].loopback);
      CHECK_EQ_INT(addr.v6, cases[i].v6);
    } else {
      CHECK_EQ_INT(rc, HG_EINVAL);
      CHECK_CONTAINS(err.msg, cases[i].want);
    }
  }
}

static int no_req(void *data, h2o_req_t *req) {
  (void)data;
  (void)req;
  return -1;
}

static void test_listen_and_free(void) {
  hg_loop loop;
  hg_err err = {0};
  CHECK_EQ_INT(hg_loop_init(&loop, &err), 0);
  hg_httpd_addr addr;
  CHECK_EQ_INT(hg_httpd_parse_listen("127.0.0.1:0", "listen", false, &addr, &err), 0);
  hg_httpd_opts opts = {.listen = "127.0.0.1:0", .server_name = "test", .backlog = 8,
                        .on_req = no_req};
  hg_httpd *h = NULL;
  CHECK_EQ_INT(hg_httpd_start(&loop, &addr, &opts, &h, &err), 0);
  CHECK(h != NULL);
  int port = h ? hg_httpd_port(h) : 0;
  CHECK(port > 0);
  CHECK_EQ_INT(h ? hg_httpd_conns(h) : 1, 0);

  /* The port is taken: the second listener fails, names the address and leaves nothing. */
  char text[32];
  snprintf(text, sizeof text, "127.0.0.1:%d", port);
  hg_httpd_addr again;
  CHECK_EQ_INT(hg_httpd_parse_listen(text, "listen", false, &again, &err), 0);
  opts.listen = text;
  hg_httpd *second = NULL;
  CHECK(hg_httpd_start(&loop, &again, &opts, &second, &err) < 0);
  CHECK(second == NULL);
  CHECK_CONTAINS(err.msg, "cannot listen on 127.0.0.1:");

  hg_httpd_shutdown(h, true);
  hg_httpd_shutdown(h, true); /* idempotent */
  CHECK(hg_httpd_free(h, 0));
  CHECK(hg_httpd_free(NULL, 0));
  hg_loop_close(&loop);
}

TEST_MAIN(T(test_parse_listen), T(test_listen_and_free))
