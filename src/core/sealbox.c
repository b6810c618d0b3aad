/* Sealed secrets: ephemeral X25519, HKDF-SHA256 and AES-256-GCM, as PROTOCOL.md specifies. */
#include "core/sealbox.h"

#include <string.h>

/* key = HKDF-SHA256(ikm = shared, salt = epk || recipient_pub, info, 32 bytes). Binding both
 * public keys into the salt ties the key to this exact pair of parties. */
static int derive_key(const uint8_t shared[HG_CRYPTO_X25519_LEN],
                      const uint8_t epk[HG_CRYPTO_X25519_LEN],
                      const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN],
                      uint8_t key[HG_CRYPTO_AESGCM_KEY_LEN], hg_err *err) {
  uint8_t salt[2 * HG_CRYPTO_X25519_LEN];
  memcpy(salt, epk, HG_CRYPTO_X25519_LEN);
  memcpy(salt + HG_CRYPTO_X25519_LEN, recipient_pub, HG_CRYPTO_X25519_LEN);
  return hg_crypto_hkdf_sha256(shared, HG_CRYPTO_X25519_LEN, salt, sizeof salt, HG_SEALBOX_INFO,
                               strlen(HG_SEALBOX_INFO), key, HG_CRYPTO_AESGCM_KEY_LEN, err);
}

static int add_b64(cJSON *obj, const char *name, const void *data, size_t len, hg_err *err) {
  hg_buf text = HG_BUF_INIT;
  int rc = hg_crypto_b64_encode(&text, data, len, HG_CRYPTO_B64_STD, err);
  if (rc == 0 && !cJSON_AddStringToObject(obj, name, text.data))
    rc = hg_err_set(err, HG_ENOMEM, "sealbox: out of memory");
  hg_buf_free(&text);
  return rc;
}

static int seal_with(const void *plain, size_t plain_len,
                     const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN], const char *aad,
                     const uint8_t esk[HG_CRYPTO_X25519_LEN],
                     const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN], cJSON **out, hg_err *err) {
  *out = NULL;
  if (!aad) return hg_err_set(err, HG_EINVAL, "sealbox: the run id (associated data) is missing");
  uint8_t epk[HG_CRYPTO_X25519_LEN], shared[HG_CRYPTO_X25519_LEN], key[HG_CRYPTO_AESGCM_KEY_LEN];
  hg_buf ciphertext = HG_BUF_INIT;
  cJSON *box = NULL;
  int rc = hg_crypto_x25519_public(esk, epk, err);
  if (rc == 0 && (rc = hg_crypto_x25519_derive(esk, recipient_pub, shared, err)) != 0)
    hg_err_prefix(err, "sealbox: recipient public key");
  if (rc == 0) rc = derive_key(shared, epk, recipient_pub, key, err);
  if (rc == 0)
    rc = hg_crypto_aesgcm_seal(key, nonce, aad, strlen(aad), plain, plain_len, &ciphertext, err);
  hg_crypto_wipe(shared, sizeof shared);
  hg_crypto_wipe(key, sizeof key);
  if (rc == 0 && !(box = cJSON_CreateObject()))
    rc = hg_err_set(err, HG_ENOMEM, "sealbox: out of memory");
  if (rc == 0 && !cJSON_AddStringToObject(box, "alg", HG_SEALBOX_ALG))
    rc = hg_err_set(err, HG_ENOMEM, "sealbox: out of memory");
  if (rc == 0) rc = add_b64(box, "epk", epk, sizeof epk, err);
  if (rc == 0) rc = add_b64(box, "nonce", nonce, HG_CRYPTO_AESGCM_NONCE_LEN, err);
  if (rc == 0) rc = add_b64(box, "ciphertext", ciphertext.data, ciphertext.len, err);
  hg_buf_free(&ciphertext);
  if (rc) {
    cJSON_Delete(box);
    return rc;
  }
  *out = box;
  return 0;
}

int hg_sealbox_seal(const void *plain, size_t plain_len,
                    const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN], const char *aad,
                    cJSON **out, hg_err *err) {
  uint8_t esk[HG_CRYPTO_X25519_LEN], epk[HG_CRYPTO_X25519_LEN];
  uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN];
  *out = NULL;
  int rc = hg_crypto_x25519_keygen(epk, esk, err);
  if (rc == 0) rc = hg_crypto_random(nonce, sizeof nonce, err);
  if (rc == 0) rc = seal_with(plain, plain_len, recipient_pub, aad, esk, nonce, out, err);
  /* The ephemeral private key must not outlive this call: with it, anyone could open the box. */
  hg_crypto_wipe(esk, sizeof esk);
  return rc;
}

int hg_sealbox_seal_unsafe_fixed_ephemeral(const void *plain, size_t plain_len,
                                           const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN],
                                           const char *aad,
                                           const uint8_t ephemeral_priv[HG_CRYPTO_X25519_LEN],
                                           const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN],
                                           cJSON **out, hg_err *err) {
  return seal_with(plain, plain_len, recipient_pub, aad, ephemeral_priv, nonce, out, err);
}

/* Decodes the base64 string in sealed[name] into out. */
static int b64_field(const cJSON *sealed, const char *name, hg_buf *out, hg_err *err) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(sealed, name);
  if (!v) return hg_err_set(err, HG_EINVAL, "sealed.%s: missing", name);
  if (!cJSON_IsString(v) || !v->valuestring)
    return hg_err_set(err, HG_EINVAL, "sealed.%s: expected a base64 string", name);
  int rc = hg_crypto_b64_decode(out, v->valuestring, strlen(v->valuestring), HG_CRYPTO_B64_STD,
                                err);
  if (rc) hg_err_prefix(err, "sealed.%s", name);
  return rc;
}

/* The same for a field of exactly len bytes (a key or a nonce). */
static int b64_fixed_field(const cJSON *sealed, const char *name, uint8_t *dst, size_t len,
                           hg_err *err) {
  hg_buf raw = HG_BUF_INIT;
  int rc = b64_field(sealed, name, &raw, err);
  if (rc == 0 && (raw.len != len || !raw.data)) {
    hg_err_set(err, HG_EINVAL, "sealed.%s: expected %zu bytes, got %zu", name, len, raw.len);
    rc = HG_EINVAL;
  }
  if (rc == 0) memcpy(dst, raw.data, len);
  hg_buf_free(&raw);
  return rc;
}

int hg_sealbox_open(const cJSON *sealed, const uint8_t recipient_priv[HG_CRYPTO_X25519_LEN],
                    const char *aad, hg_buf *plain, hg_err *err) {
  if (!cJSON_IsObject(sealed)) return hg_err_set(err, HG_EINVAL, "sealed: expected an object");
  if (!aad) return hg_err_set(err, HG_EINVAL, "sealbox: the run id (associated data) is missing");
  const cJSON *alg = cJSON_GetObjectItemCaseSensitive(sealed, "alg");
  if (!alg) return hg_err_set(err, HG_EINVAL, "sealed.alg: missing");
  if (!cJSON_IsString(alg) || !alg->valuestring)
    return hg_err_set(err, HG_EINVAL, "sealed.alg: expected the string \"%s\"", HG_SEALBOX_ALG);
  if (strcmp(alg->valuestring, HG_SEALBOX_ALG) != 0)
    return hg_err_set(err, HG_EINVAL, "sealed.alg: expected \"%s\", got \"%.64s\"",
                      HG_SEALBOX_ALG, alg->valuestring);

  uint8_t epk[HG_CRYPTO_X25519_LEN], nonce[HG_CRYPTO_AESGCM_NONCE_LEN];
  uint8_t pub[HG_CRYPTO_X25519_LEN], shared[HG_CRYPTO_X25519_LEN], key[HG_CRYPTO_AESGCM_KEY_LEN];
  hg_buf ciphertext = HG_BUF_INIT;
  int rc = b64_fixed_field(sealed, "epk", epk, sizeof epk, err);
  if (rc == 0) rc = b64_fixed_field(sealed, "nonce", nonce, sizeof nonce, err);
  if (rc == 0) rc = b64_field(sealed, "ciphertext", &ciphertext, err);
  if (rc == 0 && ciphertext.len < HG_CRYPTO_AESGCM_TAG_LEN)
    rc = hg_err_set(err, HG_EINVAL, "sealed.ciphertext: %zu bytes is shorter than the %d-byte tag",
                    ciphertext.len, HG_CRYPTO_AESGCM_TAG_LEN);
  if (rc == 0) rc = hg_crypto_x25519_public(recipient_priv, pub, err);
  if (rc == 0 && (rc = hg_crypto_x25519_derive(recipient_priv, epk, shared, err)) != 0)
    hg_err_prefix(err, "sealed.epk");
  if (rc == 0) rc = derive_key(shared, epk, pub, key, err);
  if (rc == 0 && (rc = hg_crypto_aesgcm_open(key, nonce, aad, strlen(aad),
                                             ciphertext.data, ciphertext.len, plain, err)) != 0) {
    if (rc == HG_EINVAL)
      hg_err_set(err, rc, "sealed box: authentication failed (wrong key, wrong run id, or altered)");
    else
      hg_err_prefix(err, "sealed.ciphertext");
  }
  hg_crypto_wipe(shared, sizeof shared);
  hg_crypto_wipe(key, sizeof key);
  hg_buf_free(&ciphertext);
  return rc;
}
