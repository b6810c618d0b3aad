/* Cryptographic primitives, each a thin, checked wrapper over an OpenSSL 3 EVP interface. */
#include "core/crypto.h"

#include <errno.h>
#include <limits.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* OpenSSL's streaming calls take int lengths; larger inputs are fed in pieces of this size
 * (a multiple of 3 and of 4, so base64 quanta never straddle two pieces). */
#define CHUNK ((size_t)3 << 28)

/* Turns the most recent OpenSSL error into our message and empties OpenSSL's thread-local
 * queue, so that a stale entry is never blamed for a later, unrelated failure. */
static int ossl_fail(hg_err *err, int code, const char *what) {
  unsigned long e, last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (!last) return hg_err_set(err, code, "%s failed", what);
  char reason[256];
  ERR_error_string_n(last, reason, sizeof reason);
  return hg_err_set(err, code, "%s failed: %s", what, reason);
}

/* ---- SHA-256 and HMAC-SHA256 ---- */

/* The algorithms fetched once per process. EVP_sha256() and EVP_Q_mac look SHA-256 (and HMAC)
 * up in OpenSSL's provider store on every call, which cost more than hashing a token; the hub
 * hashes one per request. Fetched on first use under CRYPTO_THREAD_run_once (the agent
 * hashes in libuv's thread pool too) and freed at exit. The HMAC template holds only the
 * digest: each MAC is computed in a copy of it, so threads never share a context in use. */
static CRYPTO_ONCE fetch_once = CRYPTO_ONCE_STATIC_INIT;
static EVP_MD *fetched_sha256;
static EVP_MAC_CTX *hmac_sha256_template;

static void fetched_free(void) {
  EVP_MAC_CTX_free(hmac_sha256_template);
  EVP_MD_free(fetched_sha256);
  hmac_sha256_template = NULL;
  fetched_sha256 = NULL;
}

static void fetch_all(void) {
  fetched_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *tpl = mac ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac); /* the context keeps its own reference */
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
      OSSL_PARAM_construct_end(),
  };
  if (tpl && !EVP_MAC_CTX_set_params(tpl, params)) {
    EVP_MAC_CTX_free(tpl);
    tpl = NULL;
  }
  hmac_sha256_template = tpl;
  ERR_clear_error(); /* a failed fetch falls back to the per-call lookup below */
  /* Registered after OpenSSL's own exit handler, so it runs before OpenSSL cleans up. */
  atexit(fetched_free);
}

static const EVP_MD *sha256_md(void) {
  if (!CRYPTO_THREAD_run_once(&fetch_once, fetch_all) || !fetched_sha256) return EVP_sha256();
  return fetched_sha256;
}

static const EVP_MAC_CTX *hmac_template(void) {
  if (!CRYPTO_THREAD_run_once(&fetch_once, fetch_all)) return NULL;
  return hmac_sha256_template;
}

int hg_crypto_sha256(const void *data, size_t len, uint8_t out[HG_CRYPTO_SHA256_LEN],
                     hg_err *err) {
  static const uint8_t nothing = 0;
  if (!EVP_Digest(len ? data : &nothing, len, out, NULL, sha256_md(), NULL))
    return ossl_fail(err, HG_EIO, "SHA-256");
  return 0;
}

struct hg_crypto_sha256_ctx {
  EVP_MD_CTX *md;
};

int hg_crypto_sha256_new(hg_crypto_sha256_ctx **out, hg_err *err) {
  *out = NULL;
  hg_crypto_sha256_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return hg_err_set(err, HG_ENOMEM, "SHA-256: out of memory");
  ctx->md = EVP_MD_CTX_new();
  if (!ctx->md) {
    free(ctx);
    return ossl_fail(err, HG_ENOMEM, "SHA-256 context");
  }
  if (!EVP_DigestInit_ex2(ctx->md, sha256_md(), NULL)) {
    hg_crypto_sha256_free(ctx);
    return ossl_fail(err, HG_EIO, "SHA-256 init");
  }
  *out = ctx;
  return 0;
}

int hg_crypto_sha256_update(hg_crypto_sha256_ctx *ctx, const void *data, size_t len,
                            hg_err *err) {
  if (len && !EVP_DigestUpdate(ctx->md, data, len)) return ossl_fail(err, HG_EIO, "SHA-256");
  return 0;
}

int hg_crypto_sha256_final(hg_crypto_sha256_ctx *ctx, uint8_t out[HG_CRYPTO_SHA256_LEN],
                           hg_err *err) {
  if (!EVP_DigestFinal_ex(ctx->md, out, NULL)) return ossl_fail(err, HG_EIO, "SHA-256");
  if (!EVP_DigestInit_ex2(ctx->md, sha256_md(), NULL))
    return ossl_fail(err, HG_EIO, "SHA-256 reinit");
  return 0;
}

void hg_crypto_sha256_free(hg_crypto_sha256_ctx *ctx) {
  if (!ctx) return;
  EVP_MD_CTX_free(ctx->md);
  free(ctx);
}

int hg_crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                          uint8_t out[HG_CRYPTO_SHA256_LEN], hg_err *err) {
  /* A NULL key would mean "keep the previous key" to EVP_MAC_init; an empty key is a key. */
  static const uint8_t nothing = 0;
  size_t out_len = 0;
  const EVP_MAC_CTX *tpl = hmac_template();
  if (tpl) {
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(tpl);
    bool ok = ctx && EVP_MAC_init(ctx, key_len ? key : &nothing, key_len, NULL) &&
              (!len || EVP_MAC_update(ctx, data, len)) &&
              EVP_MAC_final(ctx, out, &out_len, HG_CRYPTO_SHA256_LEN) &&
              out_len == HG_CRYPTO_SHA256_LEN;
    EVP_MAC_CTX_free(ctx);
    if (!ok) return ossl_fail(err, HG_EIO, "HMAC-SHA256");
    return 0;
  }
  if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key_len ? key : &nothing, key_len,
                 len ? data : &nothing, len, out, HG_CRYPTO_SHA256_LEN, &out_len) ||
      out_len != HG_CRYPTO_SHA256_LEN)
    return ossl_fail(err, HG_EIO, "HMAC-SHA256");
  return 0;
}

/* ---- HKDF-SHA256 ---- */

static int hkdf(int mode, const void *key, size_t key_len, const void *salt, size_t salt_len,
                const void *info, size_t info_len, uint8_t *out, size_t out_len, hg_err *err) {
  static const uint8_t nothing = 0;
  char digest[] = "SHA256";
  OSSL_PARAM params[6], *p = params;
  *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  *p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                           (void *)(key_len ? key : &nothing), key_len);
  /* Leaving salt or info out is how OpenSSL spells the RFC's "not provided". */
  if (salt_len) *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len);
  if (info_len) *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
  *p = OSSL_PARAM_construct_end();

  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
  if (!kdf) return ossl_fail(err, HG_EIO, "HKDF");
  EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (!ctx) return ossl_fail(err, HG_ENOMEM, "HKDF context");
  int ok = EVP_KDF_derive(ctx, out, out_len, params) > 0;
  EVP_KDF_CTX_free(ctx);
  if (!ok) return ossl_fail(err, HG_EIO, "HKDF");
  return 0;
}

int hg_crypto_hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                          const void *info, size_t info_len, uint8_t *out, size_t out_len,
                          hg_err *err) {
  if (out_len == 0 || out_len > HG_CRYPTO_HKDF_MAX_LEN)
    return hg_err_set(err, HG_EINVAL, "HKDF: output length %zu is not between 1 and %d", out_len,
                      HG_CRYPTO_HKDF_MAX_LEN);
  return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, ikm_len, salt, salt_len, info, info_len,
              out, out_len, err);
}

int hg_crypto_hkdf_sha256_extract(const void *ikm, size_t ikm_len, const void *salt,
                                  size_t salt_len, uint8_t prk[HG_CRYPTO_SHA256_LEN],
                                  hg_err *err) {
  return hkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, ikm_len, salt, salt_len, NULL, 0, prk,
              HG_CRYPTO_SHA256_LEN, err);
}

int hg_crypto_hkdf_sha256_expand(const uint8_t prk[HG_CRYPTO_SHA256_LEN], const void *info,
                                 size_t info_len, uint8_t *out, size_t out_len, hg_err *err) {
  if (out_len == 0 || out_len > HG_CRYPTO_HKDF_MAX_LEN)
    return hg_err_set(err, HG_EINVAL, "HKDF: output length %zu is not between 1 and %d", out_len,
                      HG_CRYPTO_HKDF_MAX_LEN);
  return hkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, HG_CRYPTO_SHA256_LEN, NULL, 0, info, info_len,
              out, out_len, err);
}

/* ---- Comparison, randomness, wiping ---- */

bool hg_crypto_equal(const void *a, const void *b, size_t n) {
  return n == 0 || CRYPTO_memcmp(a, b, n) == 0;
}

int hg_crypto_random(void *out, size_t n, hg_err *err) {
  uint8_t *p = out;
  while (n > 0) {
    size_t step = n > INT_MAX ? INT_MAX : n;
    if (RAND_bytes(p, (int)step) != 1) return ossl_fail(err, HG_EIO, "random bytes");
    p += step;
    n -= step;
  }
  return 0;
}

void hg_crypto_wipe(void *p, size_t n) {
  if (p && n) OPENSSL_cleanse(p, n);
}

/* ---- Base64 ---- */

int hg_crypto_b64_encode(hg_buf *out, const void *data, size_t len, int flags, hg_err *err) {
  size_t quanta = len / 3 + (len % 3 != 0);
  if (quanta > (SIZE_MAX - 1) / 4) return hg_err_set(err, HG_ETOOBIG, "base64: input too large");
  if (hg_buf_reserve(out, quanta * 4)) return hg_err_set(err, HG_ENOMEM, "base64: out of memory");
  const uint8_t *src = data;
  char *start = out->data + out->len, *dst = start;
  for (size_t done = 0; done < len;) {
    size_t step = len - done > CHUNK ? CHUNK : len - done;
    dst += EVP_EncodeBlock((unsigned char *)dst, src + done, (int)step);
    done += step;
  }
  if (flags & HG_CRYPTO_B64_URL) {
    for (char *c = start; c < dst; c++) {
      if (*c == '+') *c = '-';
      else if (*c == '/') *c = '_';
    }
  }
  if (flags & HG_CRYPTO_B64_NOPAD)
    while (dst > start && dst[-1] == '=') dst--;
  out->len += (size_t)(dst - start);
  out->data[out->len] = '\0';
  return 0;
}

static bool b64_is_alpha(char c, bool url) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return url ? (c == '-' || c == '_') : (c == '+' || c == '/');
}

/* Checks the shape of the text; on success *data_len is the number of characters before any
 * padding and *pad how many '=' a padded form has (written or implied). */
static int b64_validate(const char *text, size_t len, int flags, size_t *data_len, size_t *pad,
                        hg_err *err) {
  bool url = flags & HG_CRYPTO_B64_URL, nopad = flags & HG_CRYPTO_B64_NOPAD;
  size_t n = len;
  if (!nopad) {
    if (len % 4 != 0)
      return hg_err_set(err, HG_EINVAL,
                        "base64: length %zu is not a multiple of 4 (padding missing?)", len);
    while (n > 0 && len - n < 2 && text[n - 1] == '=') n--;
  }
  for (size_t i = 0; i < n; i++) {
    if (!b64_is_alpha(text[i], url)) {
      if (text[i] == '=')
        return hg_err_set(err, HG_EINVAL, "base64: unexpected padding at offset %zu", i);
      return hg_err_set(err, HG_EINVAL, "base64: invalid character at offset %zu (not in the %s alphabet)",
                        i, url ? "URL-safe" : "standard");
    }
  }
  if (n % 4 == 1)
    return hg_err_set(err, HG_EINVAL, "base64: %zu characters cannot encode whole bytes", n);
  *data_len = n;
  *pad = (4 - n % 4) % 4;
  return 0;
}

int hg_crypto_b64_decode(hg_buf *out, const char *text, size_t len, int flags, hg_err *err) {
  size_t n = 0, pad = 0;
  int rc = b64_validate(text, len, flags, &n, &pad, err);
  if (rc) return rc;
  size_t full = n + pad; /* characters once padded: a multiple of 4 */
  if (hg_buf_reserve(out, full / 4 * 3)) return hg_err_set(err, HG_ENOMEM, "base64: out of memory");

  /* EVP_DecodeBlock knows only the standard, padded form, so the text is fed through a small
   * window translated to it; the window may hold key material and is wiped afterwards. */
  char window[4096];
  uint8_t *start = (uint8_t *)out->data + out->len, *dst = start;
  bool url = flags & HG_CRYPTO_B64_URL;
  for (size_t done = 0; done < full;) {
    size_t step = full - done > sizeof window ? sizeof window : full - done;
    for (size_t i = 0; i < step; i++) {
      size_t at = done + i;
      char c = at < n ? text[at] : '=';
      if (url) c = c == '-' ? '+' : c == '_' ? '/' : c;
      window[i] = c;
    }
    int got = EVP_DecodeBlock(dst, (const unsigned char *)window, (int)step);
    if (got < 0 || (size_t)got != step / 4 * 3) {
      hg_crypto_wipe(window, sizeof window);
      hg_crypto_wipe(start, (size_t)(dst - start));
      ERR_clear_error();
      return hg_err_set(err, HG_EINVAL, "base64: cannot decode near offset %zu", done);
    }
    dst += got;
    done += step;
  }
  dst -= pad; /* EVP_DecodeBlock counts padding as zero bytes */

  /* Canonical form only: the bits a padded quantum leaves over must be zero, or two different
   * texts would decode to the same bytes. Re-encoding the last bytes shows it. */
  if (pad) {
    unsigned char again[5];
    EVP_EncodeBlock(again, dst - (3 - pad), (int)(3 - pad));
    bool same = memcmp(again, window + (full - 1) % sizeof window - 3, 4 - pad) == 0;
    hg_crypto_wipe(again, sizeof again);
    if (!same) {
      hg_crypto_wipe(window, sizeof window);
      hg_crypto_wipe(start, (size_t)(dst - start) + pad);
      return hg_err_set(err, HG_EINVAL,
                        "base64: non-canonical encoding (stray bits in the character at offset %zu)",
                        n - 1);
    }
  }
  hg_crypto_wipe(window, sizeof window);
  out->len += (size_t)(dst - start);
  out->data[out->len] = '\0';
  return 0;
}

/* ---- Hex ---- */

int hg_crypto_hex_encode(hg_buf *out, const void *data, size_t len, hg_err *err) {
  static const char digits[] = "0123456789abcdef";
  if (len > (SIZE_MAX - 1) / 2) return hg_err_set(err, HG_ETOOBIG, "hex: input too large");
  if (hg_buf_reserve(out, len * 2)) return hg_err_set(err, HG_ENOMEM, "hex: out of memory");
  const uint8_t *src = data;
  char *dst = out->data + out->len;
  for (size_t i = 0; i < len; i++) {
    *dst++ = digits[src[i] >> 4];
    *dst++ = digits[src[i] & 15];
  }
  out->len += len * 2;
  out->data[out->len] = '\0';
  return 0;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int hg_crypto_hex_decode(hg_buf *out, const char *text, size_t len, hg_err *err) {
  if (len % 2) return hg_err_set(err, HG_EINVAL, "hex: odd length %zu", len);
  for (size_t i = 0; i < len; i++)
    if (hex_value(text[i]) < 0)
      return hg_err_set(err, HG_EINVAL, "hex: invalid character at offset %zu", i);
  if (hg_buf_reserve(out, len / 2)) return hg_err_set(err, HG_ENOMEM, "hex: out of memory");
  uint8_t *dst = (uint8_t *)out->data + out->len;
  for (size_t i = 0; i < len; i += 2)
    *dst++ = (uint8_t)(hex_value(text[i]) << 4 | hex_value(text[i + 1]));
  out->len += len / 2;
  out->data[out->len] = '\0';
  return 0;
}

/* ---- AES-256-GCM ---- */

/* Runs the cipher's update over arbitrarily long input; out NULL feeds associated data. */
static bool gcm_update(EVP_CIPHER_CTX *c, uint8_t *out, const void *in, size_t len) {
  const uint8_t *src = in;
  for (size_t done = 0; done < len;) {
    size_t step = len - done > CHUNK ? CHUNK : len - done;
    int wrote = 0;
    if (!EVP_CipherUpdate(c, out ? out + done : NULL, &wrote, src + done, (int)step)) return false;
    if (out && (size_t)wrote != step) return false; /* GCM is a stream mode: no buffering */
    done += step;
  }
  return true;
}

int hg_crypto_aesgcm_seal(const uint8_t key[HG_CRYPTO_AESGCM_KEY_LEN],
                          const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *plain, size_t plain_len, hg_buf *out,
                          hg_err *err) {
  if (plain_len > SIZE_MAX - HG_CRYPTO_AESGCM_TAG_LEN - 1)
    return hg_err_set(err, HG_ETOOBIG, "AES-GCM: plaintext too large");
  if (hg_buf_reserve(out, plain_len + HG_CRYPTO_AESGCM_TAG_LEN))
    return hg_err_set(err, HG_ENOMEM, "AES-GCM: out of memory");
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c) return ossl_fail(err, HG_ENOMEM, "AES-GCM context");
  uint8_t *dst = (uint8_t *)out->data + out->len;
  int tail = 0;
  OSSL_PARAM get_tag[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, dst + plain_len,
                                        HG_CRYPTO_AESGCM_TAG_LEN),
      OSSL_PARAM_construct_end()};
  bool ok = EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key, nonce, NULL) &&
            gcm_update(c, NULL, aad, aad_len) && gcm_update(c, dst, plain, plain_len) &&
            EVP_EncryptFinal_ex(c, dst + plain_len, &tail) && tail == 0 &&
            EVP_CIPHER_CTX_get_params(c, get_tag);
  EVP_CIPHER_CTX_free(c);
  if (!ok) return ossl_fail(err, HG_EIO, "AES-GCM encryption");
  out->len += plain_len + HG_CRYPTO_AESGCM_TAG_LEN;
  out->data[out->len] = '\0';
  return 0;
}

int hg_crypto_aesgcm_open(const uint8_t key[HG_CRYPTO_AESGCM_KEY_LEN],
                          const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *sealed, size_t sealed_len, hg_buf *out,
                          hg_err *err) {
  if (sealed_len < HG_CRYPTO_AESGCM_TAG_LEN)
    return hg_err_set(err, HG_EINVAL,
                      "authentication failed: ciphertext is shorter than its %d-byte tag",
                      HG_CRYPTO_AESGCM_TAG_LEN);
  size_t plain_len = sealed_len - HG_CRYPTO_AESGCM_TAG_LEN;
  if (hg_buf_reserve(out, plain_len)) return hg_err_set(err, HG_ENOMEM, "AES-GCM: out of memory");
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  if (!c) return ossl_fail(err, HG_ENOMEM, "AES-GCM context");
  uint8_t *dst = (uint8_t *)out->data + out->len;
  uint8_t tag[HG_CRYPTO_AESGCM_TAG_LEN];
  memcpy(tag, (const uint8_t *)sealed + plain_len, sizeof tag);
  OSSL_PARAM set_tag[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, sizeof tag),
      OSSL_PARAM_construct_end()};
  int tail = 0;
  bool ready = EVP_DecryptInit_ex2(c, EVP_aes_256_gcm(), key, nonce, NULL) &&
               gcm_update(c, NULL, aad, aad_len) && gcm_update(c, dst, sealed, plain_len) &&
               EVP_CIPHER_CTX_set_params(c, set_tag);
  bool authentic = ready && EVP_DecryptFinal_ex(c, dst + plain_len, &tail) > 0 && tail == 0;
  EVP_CIPHER_CTX_free(c);
  if (!authentic) {
    /* The bytes decrypted so far came from a forgery or a wrong key: erase them. */
    hg_crypto_wipe(dst, plain_len);
    out->data[out->len] = '\0';
    if (!ready) return ossl_fail(err, HG_EIO, "AES-GCM decryption");
    ERR_clear_error();
    return hg_err_set(err, HG_EINVAL, "authentication failed");
  }
  out->len += plain_len;
  out->data[out->len] = '\0';
  return 0;
}

/* ---- X25519 ---- */

static int x25519_raw(EVP_PKEY *k, uint8_t pub[HG_CRYPTO_X25519_LEN],
                      uint8_t priv[HG_CRYPTO_X25519_LEN], hg_err *err) {
  size_t pub_len = HG_CRYPTO_X25519_LEN, priv_len = HG_CRYPTO_X25519_LEN;
  if (pub && (!EVP_PKEY_get_raw_public_key(k, pub, &pub_len) || pub_len != HG_CRYPTO_X25519_LEN))
    return ossl_fail(err, HG_EIO, "X25519 public key");
  if (priv &&
      (!EVP_PKEY_get_raw_private_key(k, priv, &priv_len) || priv_len != HG_CRYPTO_X25519_LEN))
    return ossl_fail(err, HG_EIO, "X25519 private key");
  return 0;
}

/* The private key is 32 bytes from the kernel's generator (what OpenSSL's own generator is
 * seeded from), and OpenSSL computes the public key from it. Asking OpenSSL to generate the key
 * instead would set up its random generator, whose first use loads the cipher it is built on:
 * ~140 KiB of heap an idle agent, which needs no other random byte, would keep. */
int hg_crypto_x25519_keygen(uint8_t pub[HG_CRYPTO_X25519_LEN], uint8_t priv[HG_CRYPTO_X25519_LEN],
                            hg_err *err) {
  ssize_t n;
  do {
    n = getrandom(priv, HG_CRYPTO_X25519_LEN, 0);
  } while (n < 0 && errno == EINTR);
  int rc;
  if (n == HG_CRYPTO_X25519_LEN) {
    rc = hg_crypto_x25519_public(priv, pub, err);
  } else {
    /* No getrandom (a kernel before 3.17, or a filter that refuses it): OpenSSL's generator. */
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
    if (!k) return ossl_fail(err, HG_EIO, "X25519 key generation");
    rc = x25519_raw(k, pub, priv, err);
    EVP_PKEY_free(k);
  }
  if (rc) hg_crypto_wipe(priv, HG_CRYPTO_X25519_LEN);
  return rc;
}

int hg_crypto_x25519_public(const uint8_t priv[HG_CRYPTO_X25519_LEN],
                            uint8_t pub[HG_CRYPTO_X25519_LEN], hg_err *err) {
  EVP_PKEY *k = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, priv, HG_CRYPTO_X25519_LEN);
  if (!k) return ossl_fail(err, HG_EINVAL, "X25519 private key");
  int rc = x25519_raw(k, pub, NULL, err);
  EVP_PKEY_free(k);
  return rc;
}

int hg_crypto_x25519_derive(const uint8_t priv[HG_CRYPTO_X25519_LEN],
                            const uint8_t peer_pub[HG_CRYPTO_X25519_LEN],
                            uint8_t shared[HG_CRYPTO_X25519_LEN], hg_err *err) {
  static const uint8_t zeros[HG_CRYPTO_X25519_LEN] = {0};
  EVP_PKEY *mine = EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, priv,
                                                   HG_CRYPTO_X25519_LEN);
  if (!mine) return ossl_fail(err, HG_EINVAL, "X25519 private key");
  EVP_PKEY *peer = EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer_pub,
                                                  HG_CRYPTO_X25519_LEN);
  if (!peer) {
    EVP_PKEY_free(mine);
    return ossl_fail(err, HG_EINVAL, "X25519 peer public key");
  }
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
  size_t len = HG_CRYPTO_X25519_LEN;
  bool setup = ctx && EVP_PKEY_derive_init(ctx) > 0 && EVP_PKEY_derive_set_peer(ctx, peer) > 0;
  /* OpenSSL itself fails the derivation when the result is all zeros (RFC 7748 section 6.1);
   * the explicit check below keeps that guarantee whatever the provider does. */
  bool derived = setup && EVP_PKEY_derive(ctx, shared, &len) > 0 && len == HG_CRYPTO_X25519_LEN;
  EVP_PKEY_CTX_free(ctx);
  EVP_PKEY_free(peer);
  EVP_PKEY_free(mine);
  if (!setup) return ossl_fail(err, HG_EIO, "X25519 key agreement");
  if (!derived || CRYPTO_memcmp(shared, zeros, sizeof zeros) == 0) {
    hg_crypto_wipe(shared, HG_CRYPTO_X25519_LEN);
    ERR_clear_error();
    return hg_err_set(err, HG_EINVAL,
                      "X25519: peer public key is of small order (the shared secret would be all "
                      "zeros)");
  }
  return 0;
}
