/* Cryptographic primitives (hashes, MAC, KDF, AEAD, X25519, encodings), all through OpenSSL 3. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define HG_CRYPTO_SHA256_LEN 32
#define HG_CRYPTO_AESGCM_KEY_LEN 32
#define HG_CRYPTO_AESGCM_NONCE_LEN 12
#define HG_CRYPTO_AESGCM_TAG_LEN 16
#define HG_CRYPTO_X25519_LEN 32
/* RFC 5869: at most 255 blocks of the hash's output. */
#define HG_CRYPTO_HKDF_MAX_LEN (255 * HG_CRYPTO_SHA256_LEN)

/* Every function that can fail returns 0 or a negative HG_E* code and explains why in err
 * (which may be NULL). Functions that write to an hg_buf append to what it already holds. */

/* ---- SHA-256 and HMAC-SHA256 ---- */

int hg_crypto_sha256(const void *data, size_t len, uint8_t out[HG_CRYPTO_SHA256_LEN], hg_err *err);

/* Incremental hashing for data that arrives in pieces. After final the context starts over,
 * so it can hash the next message. */
typedef struct hg_crypto_sha256_ctx hg_crypto_sha256_ctx;
int hg_crypto_sha256_new(hg_crypto_sha256_ctx **out, hg_err *err);
int hg_crypto_sha256_update(hg_crypto_sha256_ctx *ctx, const void *data, size_t len, hg_err *err);
int hg_crypto_sha256_final(hg_crypto_sha256_ctx *ctx, uint8_t out[HG_CRYPTO_SHA256_LEN],
                           hg_err *err);
void hg_crypto_sha256_free(hg_crypto_sha256_ctx *ctx);

int hg_crypto_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                          uint8_t out[HG_CRYPTO_SHA256_LEN], hg_err *err);

/* ---- HKDF-SHA256 (RFC 5869) ---- */

/* Extract then expand: out_len bytes (at most HG_CRYPTO_HKDF_MAX_LEN) of key material.
 * An empty salt means the RFC's default (a block of zeros); info may be empty. */
int hg_crypto_hkdf_sha256(const void *ikm, size_t ikm_len, const void *salt, size_t salt_len,
                          const void *info, size_t info_len, uint8_t *out, size_t out_len,
                          hg_err *err);
/* The two halves separately, for protocols that reuse one pseudorandom key. */
int hg_crypto_hkdf_sha256_extract(const void *ikm, size_t ikm_len, const void *salt,
                                  size_t salt_len, uint8_t prk[HG_CRYPTO_SHA256_LEN], hg_err *err);
int hg_crypto_hkdf_sha256_expand(const uint8_t prk[HG_CRYPTO_SHA256_LEN], const void *info,
                                 size_t info_len, uint8_t *out, size_t out_len, hg_err *err);

/* ---- Comparison, randomness, wiping ---- */

/* True when the n bytes are equal; the time taken does not depend on where they differ. */
bool hg_crypto_equal(const void *a, const void *b, size_t n);
/* n bytes from the operating system's CSPRNG (through OpenSSL's DRBG). */
int hg_crypto_random(void *out, size_t n, hg_err *err);
/* Zeroes n bytes in a way the compiler may not optimise away. */
void hg_crypto_wipe(void *p, size_t n);

/* ---- Encodings ---- */

/* Base64 variants, combined as flags: the standard alphabet with padding is 0. */
enum {
  HG_CRYPTO_B64_STD = 0,
  HG_CRYPTO_B64_URL = 1 << 0,   /* '-' and '_' instead of '+' and '/' (RFC 4648 section 5) */
  HG_CRYPTO_B64_NOPAD = 1 << 1, /* no trailing '=': encode omits it, decode refuses it */
};

int hg_crypto_b64_encode(hg_buf *out, const void *data, size_t len, int flags, hg_err *err);
/* Strict: refuses characters outside the chosen alphabet (whitespace included), misplaced or
 * missing padding, impossible lengths and non-canonical trailing bits. On failure out is left
 * as it was and the message gives the offset of the problem. */
int hg_crypto_b64_decode(hg_buf *out, const char *text, size_t len, int flags, hg_err *err);

/* Lowercase hex. */
int hg_crypto_hex_encode(hg_buf *out, const void *data, size_t len, hg_err *err);
/* Either case; refuses odd lengths and non-hex characters. */
int hg_crypto_hex_decode(hg_buf *out, const char *text, size_t len, hg_err *err);

/* ---- AES-256-GCM ---- */

/* Appends ciphertext followed by the 16-byte tag (plain_len + 16 bytes) to out. A nonce must
 * never be used twice with one key. */
int hg_crypto_aesgcm_seal(const uint8_t key[HG_CRYPTO_AESGCM_KEY_LEN],
                          const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *plain, size_t plain_len, hg_buf *out,
                          hg_err *err);
/* Takes ciphertext with the tag appended and appends the plaintext to out. Any change to key,
 * nonce, aad, ciphertext or tag fails with HG_EINVAL "authentication failed", and then out is
 * left as it was (no unauthenticated byte is ever handed back). */
int hg_crypto_aesgcm_open(const uint8_t key[HG_CRYPTO_AESGCM_KEY_LEN],
                          const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN], const void *aad,
                          size_t aad_len, const void *sealed, size_t sealed_len, hg_buf *out,
                          hg_err *err);

/* ---- X25519 (RFC 7748), raw 32-byte keys ---- */

int hg_crypto_x25519_keygen(uint8_t pub[HG_CRYPTO_X25519_LEN], uint8_t priv[HG_CRYPTO_X25519_LEN],
                            hg_err *err);
/* The public key that belongs to a raw private key. */
int hg_crypto_x25519_public(const uint8_t priv[HG_CRYPTO_X25519_LEN],
                            uint8_t pub[HG_CRYPTO_X25519_LEN], hg_err *err);
/* shared = X25519(priv, peer_pub). Refuses a peer key of small order (an all-zero result),
 * which would let a peer force a known secret. */
int hg_crypto_x25519_derive(const uint8_t priv[HG_CRYPTO_X25519_LEN],
                            const uint8_t peer_pub[HG_CRYPTO_X25519_LEN],
                            uint8_t shared[HG_CRYPTO_X25519_LEN], hg_err *err);
