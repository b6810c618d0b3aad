/* API keys (hgr_<id>_<secret>) and bearer tokens: generating, parsing, hashing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define HG_APIKEY_ID_LEN 12     /* [a-z0-9] */
#define HG_APIKEY_SECRET_LEN 43 /* 32 random bytes, base64url without padding */
#define HG_APIKEY_LEN (4 + HG_APIKEY_ID_LEN + 1 + HG_APIKEY_SECRET_LEN)
#define HG_APIKEY_HASH_LEN 32
/* Session and run tokens: a prefix and 32 random bytes in base64url. */
#define HG_APIKEY_TOKEN_LEN (4 + HG_APIKEY_SECRET_LEN)
#define HG_APIKEY_SESSION_PREFIX "hst_"
#define HG_APIKEY_RUN_PREFIX "hrt_"

/* A new key: its id, the whole key text (shown once) and the SHA-256 of its secret. */
int hg_apikey_generate(char id[HG_APIKEY_ID_LEN + 1], char key[HG_APIKEY_LEN + 1],
                       uint8_t hash[HG_APIKEY_HASH_LEN], hg_err *err);
/* Splits text (not NUL-terminated) into id and secret when it has the exact key shape. */
bool hg_apikey_parse(const char *text, size_t len, char id[HG_APIKEY_ID_LEN + 1],
                     const char **secret);
/* SHA-256 of a key's secret or of a whole token. */
int hg_apikey_hash(const char *text, size_t len, uint8_t hash[HG_APIKEY_HASH_LEN]);
/* A new random token with the given 4-character prefix, and its hash. */
int hg_apikey_token(const char *prefix, char token[HG_APIKEY_TOKEN_LEN + 1],
                    uint8_t hash[HG_APIKEY_HASH_LEN], hg_err *err);
/* A random opaque id: prefix then n characters of [a-z0-9] (ids for runs, agents, leases). */
int hg_apikey_random_id(const char *prefix, size_t n, char *out, size_t out_size, hg_err *err);
