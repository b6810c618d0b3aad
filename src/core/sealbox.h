/* Sealed secrets: encrypting a run's secrets to one agent's session key (PROTOCOL.md). */
#pragma once

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"

#define HG_SEALBOX_ALG "X25519-HKDF-SHA256-A256GCM"
#define HG_SEALBOX_INFO "hangar-secrets-v1"

/* Seals plaintext to the recipient's raw X25519 public key under a fresh ephemeral key and
 * nonce, binding it to aad (the run id), and sets *out to a new cJSON object
 * {"alg", "epk", "nonce", "ciphertext"} (standard padded base64) that the caller deletes. */
int hg_sealbox_seal(const void *plain, size_t plain_len,
                    const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN], const char *aad,
                    cJSON **out, hg_err *err);

/* Opens a SEALED object with the recipient's raw private key and the same aad, appending the
 * plaintext to *plain (the caller wipes it with hg_buf_wipe). A malformed object fails with
 * HG_EINVAL naming the field ("sealed.nonce: ..."); a wrong key, wrong aad or any tampering
 * fails with HG_EINVAL "authentication failed", and then *plain is left as it was. */
int hg_sealbox_open(const cJSON *sealed, const uint8_t recipient_priv[HG_CRYPTO_X25519_LEN],
                    const char *aad, hg_buf *plain, hg_err *err);

/* hg_sealbox_seal with a caller-chosen ephemeral private key and nonce, so that a known-answer
 * test can pin the output. Reusing either value across two seals breaks the box's secrecy:
 * nothing but tests may call this. */
int hg_sealbox_seal_unsafe_fixed_ephemeral(const void *plain, size_t plain_len,
                                           const uint8_t recipient_pub[HG_CRYPTO_X25519_LEN],
                                           const char *aad,
                                           const uint8_t ephemeral_priv[HG_CRYPTO_X25519_LEN],
                                           const uint8_t nonce[HG_CRYPTO_AESGCM_NONCE_LEN],
                                           cJSON **out, hg_err *err);
