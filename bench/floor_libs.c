/* The floor of memory: a program that only loads and initialises the libraries a Hangar
 * process cannot do without, then reports its own resident and private dirty memory
 * (/proc/self/smaps_rollup, KiB) as "name value" lines.
 *
 * Built twice: floor_agent (libcurl with OpenSSL, Lua, libuv: what the agent needs) and
 * floor_hub (those, plus SQLite and h2o: what the hub needs). */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>
#ifdef FLOOR_HUB
#include <h2o.h>
#include <sqlite3.h>
#endif

static void report(void) {
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  if (!f) return;
  char line[256];
  long kb;
  while (fgets(line, sizeof line, f)) {
    if (sscanf(line, "Rss: %ld kB", &kb) == 1) printf("rss_kib %ld\n", kb);
    if (sscanf(line, "Private_Dirty: %ld kB", &kb) == 1) printf("private_dirty_kib %ld\n", kb);
    if (sscanf(line, "Anonymous: %ld kB", &kb) == 1) printf("anonymous_kib %ld\n", kb);
  }
  fclose(f);
}

int main(void) {
  /* libcurl with OpenSSL (its configuration and default providers loaded), a multi handle
   * and one easy handle, as an HTTP client keeps. */
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
  CURLM *multi = curl_multi_init();
  CURL *easy = curl_easy_init();
  /* Lua with its standard libraries. */
  lua_State *L = luaL_newstate();
  if (!multi || !easy || !L) return 1;
  luaL_openlibs(L);
  /* A libuv loop that has run once. */
  uv_loop_t loop;
  if (uv_loop_init(&loop)) return 1;
  uv_run(&loop, UV_RUN_NOWAIT);
#ifdef FLOOR_HUB
  /* SQLite initialised with a database open; h2o's configuration and a context on the loop. */
  sqlite3 *db;
  if (sqlite3_initialize() != SQLITE_OK || sqlite3_open(":memory:", &db) != SQLITE_OK) return 1;
  static h2o_globalconf_t conf;
  static h2o_context_t ctx;
  h2o_config_init(&conf);
  h2o_config_register_host(&conf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_context_init(&ctx, &loop, &conf);
#endif
  report();
  fflush(stdout);
  /* Everything given back, so that a sanitizer build finds no leak. */
#ifdef FLOOR_HUB
  h2o_context_dispose(&ctx);
  h2o_config_dispose(&conf);
  sqlite3_close(db);
#endif
  uv_run(&loop, UV_RUN_DEFAULT);
  int busy = uv_loop_close(&loop);
  lua_close(L);
  curl_easy_cleanup(easy);
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return busy ? 1 : 0;
}
