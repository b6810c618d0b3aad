/* API keys and tokens: the shape PROTOCOL.md gives them, parsing that accepts exactly that
 * shape, hashes of the secret part only, and randomness where it must be. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/crypto.h"
#include "hub/apikey.h"

static bool all_in(const char *s, size_t n, const char *alphabet) {
  for (size_t i = 0; i < n; i++)
    if (!s[i] || !strchr(alphabet, s[i])) return false;
  return true;
}

static const char ID_CHARS[] = "abcdefghijklmnopqrstuvwxyz0123456789";
static const char B64URL[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void generated_keys_have_the_protocol_shape(void) {
  char id[HG_APIKEY_ID_LEN + 1], key[HG_APIKEY_LEN + 1];
  uint8_t hash[HG_APIKEY_HASH_LEN];
  hg_err err;
  CHECK_EQ_INT(hg_apikey_generate(id, key, hash, &err), 0);
  CHECK_EQ_INT(strlen(key), 4 + 12 + 1 + 43);
  CHECK(strncmp(key, "hgr_", 4) == 0);
  CHECK(all_in(key + 4, 12, ID_CHARS));
  CHECK(memcmp(key + 4, id, 12) == 0 && id[12] == '\0');
  CHECK_EQ_INT(key[16], '_');
  CHECK(all_in(key + 17, 43, B64URL));
  /* The hash is of the 43 secret characters, not of the whole key. */
  uint8_t want[HG_APIKEY_HASH_LEN];
  CHECK_EQ_INT(hg_apikey_hash(key + 17, 43, want), 0);
  CHECK(memcmp(hash, want, sizeof want) == 0);
  CHECK_EQ_INT(hg_apikey_hash(key, strlen(key), want), 0);
  CHECK(memcmp(hash, want, sizeof want) != 0);
  /* Two keys share neither id nor secret. */
  char id2[HG_APIKEY_ID_LEN + 1], key2[HG_APIKEY_LEN + 1];
  uint8_t hash2[HG_APIKEY_HASH_LEN];
  CHECK_EQ_INT(hg_apikey_generate(id2, key2, hash2, &err), 0);
  CHECK(strcmp(id, id2) != 0);
  CHECK(strcmp(key + 17, key2 + 17) != 0);
}

static void parse_accepts_exactly_the_shape(void) {
  char id[HG_APIKEY_ID_LEN + 1], key[HG_APIKEY_LEN + 1];
  uint8_t hash[HG_APIKEY_HASH_LEN];
  hg_err err;
  CHECK_EQ_INT(hg_apikey_generate(id, key, hash, &err), 0);
  char got[HG_APIKEY_ID_LEN + 1];
  const char *secret = NULL;
  CHECK(hg_apikey_parse(key, strlen(key), got, &secret));
  CHECK_EQ_STR(got, id);
  CHECK(secret == key + 17);
  /* One character short or long, a wrong prefix or separator, a character outside an
   * alphabet anywhere: refused. */
  CHECK(!hg_apikey_parse(key, strlen(key) - 1, got, &secret));
  char longer[HG_APIKEY_LEN + 2];
  snprintf(longer, sizeof longer, "%sA", key);
  CHECK(!hg_apikey_parse(longer, strlen(longer), got, &secret));
  for (size_t i = 0; i < strlen(key); i++) {
    const char *bad = i < 4 ? "X" : i < 16 ? "A" : i == 16 ? "-" : "=";
    char copy[HG_APIKEY_LEN + 1];
    memcpy(copy, key, sizeof copy);
    copy[i] = bad[0];
    if (!strcmp(copy, key)) continue;
    CHECK(!hg_apikey_parse(copy, strlen(copy), got, &secret));
  }
  CHECK(!hg_apikey_parse("", 0, got, &secret));
  /* A session or run token is not a key. */
  char token[HG_APIKEY_TOKEN_LEN + 1];
  CHECK_EQ_INT(hg_apikey_token(HG_APIKEY_SESSION_PREFIX, token, hash, &err), 0);
  CHECK(!hg_apikey_parse(token, strlen(token), got, &secret));
}

static void tokens_and_ids_have_their_shapes(void) {
  char token[HG_APIKEY_TOKEN_LEN + 1], token2[HG_APIKEY_TOKEN_LEN + 1];
  uint8_t hash[HG_APIKEY_HASH_LEN], want[HG_APIKEY_HASH_LEN];
  hg_err err;
  CHECK_EQ_INT(hg_apikey_token(HG_APIKEY_RUN_PREFIX, token, hash, &err), 0);
  CHECK_EQ_INT(strlen(token), 4 + 43);
  CHECK(strncmp(token, "hrt_", 4) == 0);
  CHECK(all_in(token + 4, 43, B64URL));
  /* A token's hash is of the whole token. */
  CHECK_EQ_INT(hg_apikey_hash(token, strlen(token), want), 0);
  CHECK(memcmp(hash, want, sizeof want) == 0);
  CHECK_EQ_INT(hg_apikey_token(HG_APIKEY_RUN_PREFIX, token2, hash, &err), 0);
  CHECK(strcmp(token, token2) != 0);

  char run_id[64], other[64];
  CHECK_EQ_INT(hg_apikey_random_id("run_", 20, run_id, sizeof run_id, &err), 0);
  CHECK_EQ_INT(strlen(run_id), 24);
  CHECK(strncmp(run_id, "run_", 4) == 0);
  CHECK(all_in(run_id + 4, 20, ID_CHARS));
  CHECK_EQ_INT(hg_apikey_random_id("run_", 20, other, sizeof other, &err), 0);
  CHECK(strcmp(run_id, other) != 0);
  /* Too small a buffer is an error, not a cut id. */
  char tiny[8];
  CHECK(hg_apikey_random_id("run_", 20, tiny, sizeof tiny, &err) < 0);
}

/* Ids come from random bytes drawn ahead: many in a row (past any refill) are all different,
 * and a forked child never hands out the ids its parent is about to. */
static void ids_never_repeat_across_refills_or_fork(void) {
  enum { N = 300 };
  static char ids[N][32];
  hg_err err;
  for (int i = 0; i < N; i++) {
    CHECK_EQ_INT(hg_apikey_random_id("lease_", 24, ids[i], sizeof ids[i], &err), 0);
    CHECK(all_in(ids[i] + 6, 24, ID_CHARS));
    int repeated = 0;
    for (int j = 0; j < i; j++) repeated += !strcmp(ids[i], ids[j]);
    CHECK_EQ_INT(repeated, 0);
  }
  int fds[2];
  CHECK_EQ_INT(pipe(fds), 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    static char child[N][32]; /* zeroed: the bytes after each id are written too */
    int ok = 1;
    for (int i = 0; i < N && ok; i++)
      ok = hg_apikey_random_id("lease_", 24, child[i], sizeof child[i], NULL) == 0;
    ssize_t w = ok ? write(fds[1], child, sizeof child) : 0;
    _exit(w == (ssize_t)sizeof child ? 0 : 1);
  }
  close(fds[1]);
  static char parent[N][32], child[N][32];
  for (int i = 0; i < N; i++)
    CHECK_EQ_INT(hg_apikey_random_id("lease_", 24, parent[i], sizeof parent[i], &err), 0);
  size_t got = 0;
  ssize_t n;
  while (got < sizeof child && (n = read(fds[0], (char *)child + got, sizeof child - got)) > 0)
    got += (size_t)n;
  close(fds[0]);
  int status = 0;
  CHECK_EQ_INT(waitpid(pid, &status, 0), pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_EQ_INT(got, sizeof child);
  int repeated = 0;
  for (int i = 0; i < N; i++)
    for (int j = 0; j < N; j++) repeated += !strcmp(child[i], parent[j]);
  CHECK_EQ_INT(repeated, 0);
}

TEST_MAIN(T(generated_keys_have_the_protocol_shape), T(parse_accepts_exactly_the_shape),
          T(tokens_and_ids_have_their_shapes), T(ids_never_repeat_across_refills_or_fork))
