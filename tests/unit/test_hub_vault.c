/* The vault's config-variable encryption at rest: bound to the variable's name, a fresh nonce per
 * value, tampering and a wrong master key refused, and no plaintext in what is stored. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/crypto.h"
#include "hub/vault.h"

#define HEADER_LEN (1 + HG_CRYPTO_AESGCM_NONCE_LEN)

static const char value[] = "hunter2-db-password-Zq7x";

/* A vault from a fixed master key whose bytes all equal fill. */
static void vault_from(hg_vault *v, uint8_t fill) {
  uint8_t master[HG_VAULT_KEY_LEN];
  memset(master, fill, sizeof master);
  hg_err err;
  if (hg_vault_init(v, master, &err) != 0) {
    fprintf(stderr, "hg_vault_init: %s\n", err.msg);
    abort();
  }
}

static void seal_value(const hg_vault *v, const char *name, hg_buf *out) {
  hg_err err;
  if (hg_vault_seal(v, name, value, strlen(value), out, &err) != 0) {
    fprintf(stderr, "hg_vault_seal: %s\n", err.msg);
    abort();
  }
}

/* Opens sealed; returns the result code and checks that a refusal leaves nothing behind and
 * that no message carries the value. */
static int try_open(const hg_vault *v, const char *name, const void *sealed, size_t len,
                    hg_buf *plain) {
  hg_err err;
  hg_err_clear(&err);
  int rc = hg_vault_open(v, name, sealed, len, plain, &err);
  if (rc != 0) {
    CHECK_EQ_INT(plain->len, 0);
    CHECK(strstr(err.msg, value) == NULL);
  }
  return rc;
}

static void opens_under_its_name_and_not_another(void) {
  hg_vault v;
  vault_from(&v, 0x42);
  hg_buf sealed = HG_BUF_INIT, plain = HG_BUF_INIT;
  seal_value(&v, "DB_PASSWORD", &sealed);
  CHECK_EQ_INT(sealed.len, HEADER_LEN + strlen(value) + HG_CRYPTO_AESGCM_TAG_LEN);

  CHECK_EQ_INT(try_open(&v, "DB_PASSWORD", sealed.data, sealed.len, &plain), 0);
  CHECK_EQ_INT(plain.len, strlen(value));
  CHECK_EQ_MEM(plain.data, value, strlen(value));
  hg_buf_wipe(&plain);

  /* Moving the stored value to another variable (or one a byte away) must not reveal it. */
  const char *others[] = {"API_TOKEN", "DB_PASSWORd", "DB_PASSWORD_", "DB_PASSWOR", ""};
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    CHECK_EQ_INT(try_open(&v, others[i], sealed.data, sealed.len, &plain), HG_EINVAL);
    hg_buf_wipe(&plain);
  }
  hg_buf_free(&sealed);
  hg_vault_wipe(&v);
}

static void sealing_twice_uses_a_fresh_nonce(void) {
  hg_vault v;
  vault_from(&v, 0x42);
  hg_buf a = HG_BUF_INIT, b = HG_BUF_INIT, plain = HG_BUF_INIT;
  seal_value(&v, "DB_PASSWORD", &a);
  seal_value(&v, "DB_PASSWORD", &b);
  CHECK_EQ_INT(a.len, b.len);
  CHECK(memcmp(a.data + 1, b.data + 1, HG_CRYPTO_AESGCM_NONCE_LEN) != 0);
  CHECK(memcmp(a.data + HEADER_LEN, b.data + HEADER_LEN, a.len - HEADER_LEN) != 0);
  /* Both still open: the difference comes from the nonce, not from a broken seal. */
  CHECK_EQ_INT(try_open(&v, "DB_PASSWORD", a.data, a.len, &plain), 0);
  CHECK_EQ_INT(try_open(&v, "DB_PASSWORD", b.data, b.len, &plain), 0);
  CHECK_EQ_INT(plain.len, 2 * strlen(value));
  hg_buf_wipe(&plain);

  /* Across many seals no nonce repeats (a counter reset or a constant would show here). */
  enum { N = 64 };
  uint8_t nonces[N][HG_CRYPTO_AESGCM_NONCE_LEN];
  for (int i = 0; i < N; i++) {
    hg_buf s = HG_BUF_INIT;
    seal_value(&v, "DB_PASSWORD", &s);
    memcpy(nonces[i], s.data + 1, HG_CRYPTO_AESGCM_NONCE_LEN);
    hg_buf_free(&s);
  }
  int repeats = 0;
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N; j++) repeats += !memcmp(nonces[i], nonces[j], sizeof nonces[i]);
  CHECK_EQ_INT(repeats, 0);
  hg_buf_free(&a);
  hg_buf_free(&b);
  hg_vault_wipe(&v);
}

static void any_flipped_bit_is_refused(void) {
  hg_vault v;
  vault_from(&v, 0x42);
  hg_buf sealed = HG_BUF_INIT, plain = HG_BUF_INIT;
  seal_value(&v, "DB_PASSWORD", &sealed);
  /* Every bit of every byte: version, nonce, ciphertext and tag. */
  size_t opened = 0;
  for (size_t i = 0; i < sealed.len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      sealed.data[i] ^= (char)(1u << bit);
      if (try_open(&v, "DB_PASSWORD", sealed.data, sealed.len, &plain) == 0) {
        opened++;
        fprintf(stderr, "bit %d of byte %zu flipped and the value still opened\n", bit, i);
      }
      hg_buf_wipe(&plain);
      sealed.data[i] ^= (char)(1u << bit);
    }
  }
  CHECK_EQ_INT(opened, 0);
  /* Cut short or lengthened: refused too. */
  for (size_t n = 0; n < sealed.len; n++)
    CHECK(try_open(&v, "DB_PASSWORD", sealed.data, n, &plain) != 0);
  hg_buf longer = HG_BUF_INIT;
  hg_buf_append(&longer, sealed.data, sealed.len);
  hg_buf_appendc(&longer, 0);
  CHECK(try_open(&v, "DB_PASSWORD", longer.data, longer.len, &plain) != 0);
  /* And the untouched value still opens: the refusals above were the flips. */
  CHECK_EQ_INT(try_open(&v, "DB_PASSWORD", sealed.data, sealed.len, &plain), 0);
  CHECK_EQ_MEM(plain.data, value, strlen(value));
  hg_buf_wipe(&plain);
  hg_buf_free(&longer);
  hg_buf_free(&sealed);
  hg_vault_wipe(&v);
}

static void another_master_key_is_refused(void) {
  hg_vault v, other, again;
  vault_from(&v, 0x42);
  vault_from(&other, 0x43);
  vault_from(&again, 0x42);
  hg_buf sealed = HG_BUF_INIT, plain = HG_BUF_INIT;
  seal_value(&v, "DB_PASSWORD", &sealed);
  CHECK_EQ_INT(try_open(&other, "DB_PASSWORD", sealed.data, sealed.len, &plain), HG_EINVAL);
  /* The same master key loaded again (a hub restart) opens it. */
  CHECK_EQ_INT(try_open(&again, "DB_PASSWORD", sealed.data, sealed.len, &plain), 0);
  CHECK_EQ_MEM(plain.data, value, strlen(value));
  hg_buf_wipe(&plain);
  hg_buf_free(&sealed);
  hg_vault_wipe(&v);
  hg_vault_wipe(&other);
  hg_vault_wipe(&again);
}

/* True when needle occurs in hay as bytes. */
static int contains(const void *hay, size_t hay_len, const void *needle, size_t needle_len) {
  for (size_t i = 0; i + needle_len <= hay_len; i++)
    if (!memcmp((const char *)hay + i, needle, needle_len)) return 1;
  return 0;
}

static void plaintext_never_in_the_sealed_bytes(void) {
  hg_vault v;
  vault_from(&v, 0x42);
  /* Not even a 4-byte piece of the value, in many seals, nor the name, nor the master key. */
  uint8_t master[HG_VAULT_KEY_LEN];
  memset(master, 0x42, sizeof master);
  size_t leaks = 0;
  for (int round = 0; round < 32; round++) {
    hg_buf sealed = HG_BUF_INIT;
    seal_value(&v, "DB_PASSWORD", &sealed);
    for (size_t i = 0; i + 4 <= strlen(value); i++)
      leaks += contains(sealed.data, sealed.len, value + i, 4);
    leaks += contains(sealed.data, sealed.len, "DB_PASSWORD", 11);
    leaks += contains(sealed.data, sealed.len, master, 8);
    hg_buf_free(&sealed);
  }
  CHECK_EQ_INT(leaks, 0);
  hg_vault_wipe(&v);
}

TEST_MAIN(T(opens_under_its_name_and_not_another), T(sealing_twice_uses_a_fresh_nonce),
          T(any_flipped_bit_is_refused), T(another_master_key_is_refused),
          T(plaintext_never_in_the_sealed_bytes))
