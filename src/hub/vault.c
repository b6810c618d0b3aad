/* The master key: loading and creating it, config-variable encryption at rest, run tokens. */
#include "hub/vault.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/crypto.h"

#define SEALED_VERSION 1

int hg_vault_create_master(const char *path, hg_err *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return hg_err_set(err, HG_EEXIST, "%s already exists", path);
    return hg_err_set(err, -errno, "cannot create the master key file %s: %s", path,
                      strerror(errno));
  }
  uint8_t key[HG_VAULT_KEY_LEN];
  int rc = hg_crypto_random(key, sizeof key, err);
  if (!rc && (write(fd, key, sizeof key) != (ssize_t)sizeof key || fsync(fd) != 0))
    rc = hg_err_set(err, HG_EIO, "cannot write the master key file %s: %s", path,
                    strerror(errno));
  hg_crypto_wipe(key, sizeof key);
  close(fd);
  if (rc) unlink(path);
  return rc;
}

int hg_vault_load_master(const char *path, uint8_t master[HG_VAULT_KEY_LEN], hg_err *err) {
  FILE *f = fopen(path, "rbe");
  if (!f)
    return hg_err_set(err, errno == ENOENT ? HG_ENOENT : -errno,
                      "cannot read the master key file %s: %s", path, strerror(errno));
  uint8_t raw[256];
  size_t n = fread(raw, 1, sizeof raw, f);
  int more = fgetc(f) != EOF;
  fclose(f);
  int rc = 0;
  if (more) {
    rc = hg_err_set(err, HG_EINVAL, "master key file %s: too long for a 32-byte key", path);
  } else if (n == HG_VAULT_KEY_LEN) {
    memcpy(master, raw, HG_VAULT_KEY_LEN);
  } else {
    size_t a = 0, b = n;
    while (a < b && (raw[a] == ' ' || raw[a] == '\n' || raw[a] == '\r' || raw[a] == '\t')) a++;
    while (b > a && (raw[b - 1] == ' ' || raw[b - 1] == '\n' || raw[b - 1] == '\r' ||
                     raw[b - 1] == '\t'))
      b--;
    hg_buf dec = HG_BUF_INIT;
    if (b - a == 64)
      rc = hg_crypto_hex_decode(&dec, (const char *)raw + a, b - a, NULL);
    else
      rc = hg_crypto_b64_decode(&dec, (const char *)raw + a, b - a, HG_CRYPTO_B64_STD, NULL);
    if (rc || dec.len != HG_VAULT_KEY_LEN)
      rc = hg_err_set(err, HG_EINVAL,
                      "master key file %s: expected 32 raw bytes, 64 hex digits or base64 of 32 "
                      "bytes",
                      path);
    else
      memcpy(master, dec.data, HG_VAULT_KEY_LEN);
    hg_buf_wipe(&dec);
  }
  hg_crypto_wipe(raw, sizeof raw);
  return rc;
}

int hg_vault_init(hg_vault *v, const uint8_t master[HG_VAULT_KEY_LEN], hg_err *err) {
  static const char salt[] = "hangar-hub";
  static const char rest[] = "hangar-config-vars-v1", tokens[] = "hangar-run-tokens-v1";
  int rc = hg_crypto_hkdf_sha256(master, HG_VAULT_KEY_LEN, salt, sizeof salt - 1, rest,
                                 sizeof rest - 1, v->at_rest, HG_VAULT_KEY_LEN, err);
  if (!rc)
    rc = hg_crypto_hkdf_sha256(master, HG_VAULT_KEY_LEN, salt, sizeof salt - 1, tokens,
                               sizeof tokens - 1, v->tokens, HG_VAULT_KEY_LEN, err);
  if (rc) hg_vault_wipe(v);
  return rc;
}

void hg_vault_wipe(hg_vault *v) { hg_crypto_wipe(v, sizeof *v); }

int hg_vault_seal(const hg_vault *v, const char *name, const void *plain, size_t len,
                  hg_buf *out, hg_err *err) {
  uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN];
  uint8_t version = SEALED_VERSION;
  int rc = hg_crypto_random(nonce, sizeof nonce, err);
  if (!rc && (hg_buf_append(out, &version, 1) || hg_buf_append(out, nonce, sizeof nonce)))
    rc = hg_err_set(err, HG_ENOMEM, "out of memory");
  if (!rc)
    rc = hg_crypto_aesgcm_seal(v->at_rest, nonce, name, strlen(name), plain, len, out, err);
  return rc;
}

int hg_vault_open(const hg_vault *v, const char *name, const void *sealed, size_t len,
                  hg_buf *plain, hg_err *err) {
  const uint8_t *p = sealed;
  if (len < 1 + HG_CRYPTO_AESGCM_NONCE_LEN + HG_CRYPTO_AESGCM_TAG_LEN || p[0] != SEALED_VERSION)
    return hg_err_set(err, HG_EINVAL, "the stored value of %s is not a sealed value", name);
  int rc = hg_crypto_aesgcm_open(v->at_rest, p + 1, name, strlen(name),
                                 p + 1 + HG_CRYPTO_AESGCM_NONCE_LEN,
                                 len - 1 - HG_CRYPTO_AESGCM_NONCE_LEN, plain, NULL);
  if (rc)
    return hg_err_set(err, HG_EINVAL,
                      "the stored value of %s does not open with this master key", name);
  return 0;
}

int hg_vault_run_token(const hg_vault *v, const char *run_id, int64_t attempt,
                       char token[HG_APIKEY_TOKEN_LEN + 1], uint8_t hash[HG_APIKEY_HASH_LEN],
                       hg_err *err) {
  char msg[128];
  int n = snprintf(msg, sizeof msg, "run-token:%s:%lld", run_id, (long long)attempt);
  uint8_t mac[HG_CRYPTO_SHA256_LEN];
  int rc = hg_crypto_hmac_sha256(v->tokens, HG_VAULT_KEY_LEN, msg, (size_t)n, mac, err);
  hg_buf b = HG_BUF_INIT;
  if (!rc)
    rc = hg_crypto_b64_encode(&b, mac, sizeof mac, HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, err);
  if (!rc && b.len != HG_APIKEY_SECRET_LEN) rc = hg_err_set(err, HG_EIO, "bad token length");
  if (!rc) {
    memcpy(token, HG_APIKEY_RUN_PREFIX, 4);
    memcpy(token + 4, b.data, HG_APIKEY_SECRET_LEN + 1);
    rc = hg_apikey_hash(token, HG_APIKEY_TOKEN_LEN, hash);
  }
  hg_crypto_wipe(mac, sizeof mac);
  hg_buf_wipe(&b);
  return rc;
}
