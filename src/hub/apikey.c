/* API keys (hgr_<id>_<secret>) and bearer tokens: generating, parsing, hashing. */
#include "hub/apikey.h"

#include <string.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/forks.h"

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

/* Random bytes for ids, drawn from the DRBG a block at a time: a call into it costs ~10 us on
 * a hub that slept since the last one (its code and state are cold), most of the work of
 * making a run id on the path from `POST /v1/runs` to the agent's assignment. Only ids take
 * from here (they are handed out anyway); secrets and keys still come from the DRBG
 * directly. Per thread, and dropped in a forked child so that it never repeats its parent's. */
typedef struct id_pool {
  uint8_t bytes[1024];
  size_t left;         /* unused bytes, at the end of `bytes` */
  unsigned long forks; /* hg_forks_generation() when it was filled */
} id_pool;

static _Thread_local id_pool pool;

static int pool_take(uint8_t *out, size_t n, hg_err *err) {
  /* A forked child's pool is its parent's copy: dropped, so that the child's ids are its own.
   * The generation costs no system call, unlike a getpid() per id on the run's path. */
  unsigned long forks = hg_forks_generation();
  if (pool.forks != forks) pool.left = 0;
  if (pool.left < n) {
    if (hg_crypto_random(pool.bytes, sizeof pool.bytes, err)) return err ? err->code : HG_EIO;
    pool.left = sizeof pool.bytes;
    pool.forks = forks;
  }
  uint8_t *from = pool.bytes + sizeof pool.bytes - pool.left;
  memcpy(out, from, n);
  hg_crypto_wipe(from, n); /* each byte is used once */
  pool.left -= n;
  return 0;
}

int hg_apikey_random_id(const char *prefix, size_t n, char *out, size_t out_size, hg_err *err) {
  size_t plen = strlen(prefix);
  if (plen + n + 1 > out_size) return hg_err_set(err, HG_EINVAL, "id buffer too small");
  memcpy(out, prefix, plen);
  size_t filled = 0;
  while (filled < n) {
    uint8_t bytes[32];
    int rc = pool_take(bytes, sizeof bytes, err);
    if (rc) return rc;
    /* 252 = 7 * 36: rejecting larger bytes keeps every character equally likely. */
    for (size_t i = 0; i < sizeof bytes && filled < n; i++)
      if (bytes[i] < 252) out[plen + filled++] = alphabet[bytes[i] % 36];
  }
  out[plen + n] = '\0';
  return 0;
}

/* 32 random bytes as 43 characters of unpadded base64url. */
static int random_secret(char out[HG_APIKEY_SECRET_LEN + 1], hg_err *err) {
  uint8_t raw[32];
  hg_buf b = HG_BUF_INIT;
  int rc = hg_crypto_random(raw, sizeof raw, err);
  if (!rc) rc = hg_crypto_b64_encode(&b, raw, sizeof raw, HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD,
                                     err);
  hg_crypto_wipe(raw, sizeof raw);
  if (!rc && b.len != HG_APIKEY_SECRET_LEN) rc = hg_err_set(err, HG_EIO, "bad secret length");
  if (!rc) memcpy(out, b.data, HG_APIKEY_SECRET_LEN + 1);
  hg_buf_wipe(&b);
  return rc;
}

int hg_apikey_hash(const char *text, size_t len, uint8_t hash[HG_APIKEY_HASH_LEN]) {
  return hg_crypto_sha256(text, len, hash, NULL);
}

int hg_apikey_generate(char id[HG_APIKEY_ID_LEN + 1], char key[HG_APIKEY_LEN + 1],
                       uint8_t hash[HG_APIKEY_HASH_LEN], hg_err *err) {
  char secret[HG_APIKEY_SECRET_LEN + 1];
  int rc = hg_apikey_random_id("", HG_APIKEY_ID_LEN, id, HG_APIKEY_ID_LEN + 1, err);
  if (!rc) rc = random_secret(secret, err);
  if (!rc) rc = hg_apikey_hash(secret, HG_APIKEY_SECRET_LEN, hash);
  if (!rc) {
    memcpy(key, "hgr_", 4);
    memcpy(key + 4, id, HG_APIKEY_ID_LEN);
    key[4 + HG_APIKEY_ID_LEN] = '_';
    memcpy(key + 5 + HG_APIKEY_ID_LEN, secret, HG_APIKEY_SECRET_LEN + 1);
  }
  hg_crypto_wipe(secret, sizeof secret);
  return rc;
}

static bool b64url_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

bool hg_apikey_parse(const char *text, size_t len, char id[HG_APIKEY_ID_LEN + 1],
                     const char **secret) {
  if (len != HG_APIKEY_LEN || memcmp(text, "hgr_", 4) != 0 || text[4 + HG_APIKEY_ID_LEN] != '_')
    return false;
  for (size_t i = 0; i < HG_APIKEY_ID_LEN; i++) {
    char c = text[4 + i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  for (size_t i = 5 + HG_APIKEY_ID_LEN; i < len; i++)
    if (!b64url_char(text[i])) return false;
  memcpy(id, text + 4, HG_APIKEY_ID_LEN);
  id[HG_APIKEY_ID_LEN] = '\0';
  *secret = text + 5 + HG_APIKEY_ID_LEN;
  return true;
}

int hg_apikey_token(const char *prefix, char token[HG_APIKEY_TOKEN_LEN + 1],
                    uint8_t hash[HG_APIKEY_HASH_LEN], hg_err *err) {
  if (strlen(prefix) != 4) return hg_err_set(err, HG_EINVAL, "token prefix must be 4 characters");
  memcpy(token, prefix, 4);
  int rc = random_secret(token + 4, err);
  if (!rc) rc = hg_apikey_hash(token, HG_APIKEY_TOKEN_LEN, hash);
  return rc;
}
