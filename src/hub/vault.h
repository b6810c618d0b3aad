/* The hub's master key and what it protects: config-variable secrets at rest (AES-256-GCM) and
 * run tokens. The master key itself never leaves this module's keys. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "hub/apikey.h"

#define HG_VAULT_KEY_LEN 32

typedef struct hg_vault {
  uint8_t at_rest[HG_VAULT_KEY_LEN]; /* derived: encrypts config variables */
  uint8_t tokens[HG_VAULT_KEY_LEN];  /* derived: makes run tokens */
} hg_vault;

/* Creates path with 32 random bytes, mode 0600, unless it exists (then returns HG_EEXIST and
 * leaves it alone). */
int hg_vault_create_master(const char *path, hg_err *err);
/* Reads a master key file: 32 raw bytes, or 64 hex digits, or base64 of 32 bytes (surrounding
 * whitespace ignored). */
int hg_vault_load_master(const char *path, uint8_t master[HG_VAULT_KEY_LEN], hg_err *err);
/* Derives the working keys from the master key (HKDF-SHA256, one label per purpose). */
int hg_vault_init(hg_vault *v, const uint8_t master[HG_VAULT_KEY_LEN], hg_err *err);
void hg_vault_wipe(hg_vault *v);

/* Encrypts a value for the store: version byte 1, 12-byte random nonce, ciphertext and tag;
 * name is the associated data, so a sealed value cannot be moved to another name. */
int hg_vault_seal(const hg_vault *v, const char *name, const void *plain, size_t len,
                  hg_buf *out, hg_err *err);
/* Appends the plaintext of a sealed value to plain (which the caller wipes); HG_EINVAL when it
 * does not open with this key and name. */
int hg_vault_open(const hg_vault *v, const char *name, const void *sealed, size_t len,
                  hg_buf *plain, hg_err *err);

/* The token of one attempt of a run: the same every time it is asked for (a repeated accept
 * gets the same run), unguessable without the master key. */
int hg_vault_run_token(const hg_vault *v, const char *run_id, int64_t attempt,
                       char token[HG_APIKEY_TOKEN_LEN + 1], uint8_t hash[HG_APIKEY_HASH_LEN],
                       hg_err *err);
