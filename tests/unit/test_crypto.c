/* The crypto module against published test vectors (FIPS 180-2, RFC 4231, RFC 5869, the GCM
 * specification, RFC 7748, RFC 4648), plus tampering, strict decoding and randomness. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "core/crypto.h"

/* getrandom as the kernel answers it, unless a test scripts it (single-threaded, and back to
 * 0 before it checks anything): this definition takes the place of libc's in this program,
 * so the tests can see where hg_crypto_x25519_keygen takes its private key from. */
enum { KERNEL_RANDOM, PATTERN_RANDOM, NO_GETRANDOM };
static int scripted_getrandom = KERNEL_RANDOM;
ssize_t getrandom(void *buf, size_t len, unsigned int flags) {
  if (scripted_getrandom == PATTERN_RANDOM) {
    memset(buf, 0x5a, len);
    return (ssize_t)len;
  }
  if (scripted_getrandom == NO_GETRANDOM) {
    errno = ENOSYS;
    return -1;
  }
  return syscall(SYS_getrandom, buf, len, flags);
}

/* Hex text to bytes; test vectors are written in hex. Returns the length. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
  hg_buf b = HG_BUF_INIT;
  hg_err err;
  if (hg_crypto_hex_decode(&b, hex, strlen(hex), &err) != 0 || b.len > cap) {
    fprintf(stderr, "bad test vector %s: %s\n", hex, err.msg);
    abort();
  }
  size_t n = b.len;
  if (n) memcpy(out, b.data, n);
  hg_buf_free(&b);
  return n;
}

/* Compares bytes with expected hex, printing both on a mismatch. */
#define CHECK_HEX(bytes, len, expected)                                    \
  do {                                                                     \
    hg_buf hex_ = HG_BUF_INIT;                                             \
    CHECK_EQ_INT(hg_crypto_hex_encode(&hex_, (bytes), (len), NULL), 0);   \
    CHECK_EQ_STR(hex_.data, (expected));                                   \
    hg_buf_free(&hex_);                                                    \
  } while (0)

/* ---- SHA-256 (FIPS 180-2 appendix B) ---- */

static const char abc_digest[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
static const char msg448[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg448_digest[] =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
static const char million_a_digest[] =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

static void sha256_fips_vectors(void) {
  uint8_t md[HG_CRYPTO_SHA256_LEN];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_sha256("abc", 3, md, &err), 0);
  CHECK_HEX(md, sizeof md, abc_digest);
  CHECK_EQ_INT(hg_crypto_sha256(msg448, strlen(msg448), md, &err), 0);
  CHECK_HEX(md, sizeof md, msg448_digest);

  char *million = malloc(1000000);
  memset(million, 'a', 1000000);
  CHECK_EQ_INT(hg_crypto_sha256(million, 1000000, md, &err), 0);
  CHECK_HEX(md, sizeof md, million_a_digest);
  free(million);
}

static void sha256_incremental_matches_one_shot(void) {
  hg_crypto_sha256_ctx *ctx = NULL;
  uint8_t md[HG_CRYPTO_SHA256_LEN];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_sha256_new(&ctx, &err), 0);
  /* One million 'a' in uneven pieces, as data would arrive from a stream. */
  char piece[997];
  memset(piece, 'a', sizeof piece);
  size_t left = 1000000;
  while (left) {
    size_t n = left < sizeof piece ? left : sizeof piece;
    CHECK_EQ_INT(hg_crypto_sha256_update(ctx, piece, n, &err), 0);
    left -= n;
  }
  CHECK_EQ_INT(hg_crypto_sha256_final(ctx, md, &err), 0);
  CHECK_HEX(md, sizeof md, million_a_digest);
  /* The context starts over after final. */
  CHECK_EQ_INT(hg_crypto_sha256_update(ctx, "ab", 2, &err), 0);
  CHECK_EQ_INT(hg_crypto_sha256_update(ctx, "", 0, &err), 0);
  CHECK_EQ_INT(hg_crypto_sha256_update(ctx, "c", 1, &err), 0);
  CHECK_EQ_INT(hg_crypto_sha256_final(ctx, md, &err), 0);
  CHECK_HEX(md, sizeof md, abc_digest);
  hg_crypto_sha256_free(ctx);
}

/* ---- HMAC-SHA256 (RFC 4231 section 4) ---- */

static void hmac_sha256_rfc4231(void) {
  struct {
    const char *key_hex, *data, *data_hex, *mac;
  } cases[] = {
      {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "Hi There", NULL,
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"4a656665", "what do ya want for nothing?", NULL,
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL,
       "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
       "dddddddddddddd",
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      {"0102030405060708090a0b0c0d0e0f10111213141516171819", NULL,
       "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"
       "cdcdcdcdcdcdcd",
       "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
      {NULL, "Test Using Larger Than Block-Size Key - Hash Key First", NULL,
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {NULL,
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       NULL, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t key[131], data[64], mac[HG_CRYPTO_SHA256_LEN];
    size_t key_len;
    if (cases[i].key_hex) {
      key_len = unhex(cases[i].key_hex, key, sizeof key);
    } else { /* cases 6 and 7: 131 bytes of 0xaa, longer than a SHA-256 block */
      key_len = 131;
      memset(key, 0xaa, key_len);
    }
    const void *msg = cases[i].data;
    size_t msg_len = msg ? strlen(cases[i].data) : unhex(cases[i].data_hex, data, sizeof data);
    if (!msg) msg = data;
    hg_err err;
    CHECK_EQ_INT(hg_crypto_hmac_sha256(key, key_len, msg, msg_len, mac, &err), 0);
    CHECK_HEX(mac, sizeof mac, cases[i].mac);
  }
}

/* ---- the algorithms fetched once, from several threads at a time ---- */

typedef struct hash_thread {
  pthread_barrier_t *start;
  int wrong;
} hash_thread;

static void *hash_in_thread(void *p) {
  hash_thread *t = p;
  static const uint8_t jefe_mac[] = {0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e};
  static const uint8_t abc_start[] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea};
  pthread_barrier_wait(t->start);
  for (int i = 0; i < 300; i++) {
    uint8_t out[HG_CRYPTO_SHA256_LEN];
    if (hg_crypto_sha256("abc", 3, out, NULL) || memcmp(out, abc_start, sizeof abc_start)) t->wrong++;
    const char *msg = "what do ya want for nothing?";
    if (hg_crypto_hmac_sha256("Jefe", 4, msg, strlen(msg), out, NULL) ||
        memcmp(out, jefe_mac, sizeof jefe_mac))
      t->wrong++;
  }
  return NULL;
}

/* The agent hashes in its thread pool as well as on its loop, and every HMAC starts from one
 * template shared by the process. Four threads at once must each get the right digests: a
 * context shared between them instead of copied per call corrupts the MACs (or the heap).
 * First in the list, so the threads also race for the first fetch; a fetch not done once
 * could still pass here, as such a race rarely shows. */
static void hashes_in_threads_at_once_are_right(void) {
  enum { N = 4 };
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, N);
  hash_thread t[N];
  pthread_t id[N];
  for (int i = 0; i < N; i++) {
    t[i] = (hash_thread){.start = &start};
    CHECK_EQ_INT(pthread_create(&id[i], NULL, hash_in_thread, &t[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    pthread_join(id[i], NULL);
    CHECK_EQ_INT(t[i].wrong, 0);
  }
  pthread_barrier_destroy(&start);
}

/* An empty key and an empty message are a key and a message, through the template too. */
static void hmac_sha256_empty_key_and_message(void) {
  uint8_t mac[HG_CRYPTO_SHA256_LEN];
  CHECK_EQ_INT(hg_crypto_hmac_sha256("", 0, "", 0, mac, NULL), 0);
  CHECK_HEX(mac, sizeof mac, "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

/* ---- HKDF-SHA256 (RFC 5869 appendix A, cases 1 to 3) ---- */

static void hkdf_rfc5869(void) {
  struct {
    const char *ikm, *salt, *info;
    size_t len;
    const char *prk, *okm;
  } cases[] = {
      {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c",
       "f0f1f2f3f4f5f6f7f8f9", 42,
       "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5",
       "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"},
      {"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
       "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
       "404142434445464748494a4b4c4d4e4f",
       "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
       "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
       "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
       "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
       "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
       "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
       82, "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244",
       "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
       "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
       "cc30c58179ec3e87c14c01d5c1f3434f1d87"},
      {"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
       "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04",
       "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t ikm[80], salt[80], info[80], prk[HG_CRYPTO_SHA256_LEN], okm[82];
    size_t ikm_len = unhex(cases[i].ikm, ikm, sizeof ikm);
    size_t salt_len = unhex(cases[i].salt, salt, sizeof salt);
    size_t info_len = unhex(cases[i].info, info, sizeof info);
    hg_err err;
    CHECK_EQ_INT(hg_crypto_hkdf_sha256_extract(ikm, ikm_len, salt, salt_len, prk, &err), 0);
    CHECK_HEX(prk, sizeof prk, cases[i].prk);
    memset(okm, 0, sizeof okm);
    CHECK_EQ_INT(hg_crypto_hkdf_sha256_expand(prk, info, info_len, okm, cases[i].len, &err), 0);
    CHECK_HEX(okm, cases[i].len, cases[i].okm);
    memset(okm, 0, sizeof okm);
    CHECK_EQ_INT(hg_crypto_hkdf_sha256(ikm, ikm_len, salt, salt_len, info, info_len, okm,
                                       cases[i].len, &err),
                 0);
    CHECK_HEX(okm, cases[i].len, cases[i].okm);
  }
}

static void hkdf_refuses_impossible_lengths(void) {
  uint8_t out[HG_CRYPTO_HKDF_MAX_LEN + 1];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_hkdf_sha256("k", 1, NULL, 0, NULL, 0, out, 0, &err), HG_EINVAL);
  CHECK_EQ_INT(hg_crypto_hkdf_sha256("k", 1, NULL, 0, NULL, 0, out, sizeof out, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "8161") != NULL);
  CHECK_EQ_INT(hg_crypto_hkdf_sha256("k", 1, NULL, 0, NULL, 0, out, sizeof out - 1, &err), 0);
}

/* ---- AES-256-GCM (the GCM specification's test cases 13 to 16, 256-bit keys) ---- */

struct gcm_case {
  const char *key, *iv, *plain, *aad, *cipher, *tag;
};

static const char k15[] = "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char p15[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
static const char c15[] =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
static const struct gcm_case gcm_cases[] = {
    /* 13: empty plaintext, no aad: the tag alone */
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    /* 14: one zero block */
    {"0000000000000000000000000000000000000000000000000000000000000000",
     "000000000000000000000000", "00000000000000000000000000000000", "",
     "cea7403d4d606b6e074ec5d3baf39d18", "d0d1c8a799996bf0265b98b5d48ab919"},
    /* 15: four blocks */
    {k15, "cafebabefacedbaddecaf888", p15, "", c15, "b094dac5d93471bdec1a502270e3cc6c"},
    /* 16: a partial last block, with associated data */
    {k15, "cafebabefacedbaddecaf888",
     "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
     "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
     "feedfacedeadbeeffeedfacedeadbeefabaddad2",
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

static void aesgcm_spec_vectors(void) {
  for (size_t i = 0; i < sizeof gcm_cases / sizeof gcm_cases[0]; i++) {
    const struct gcm_case *c = &gcm_cases[i];
    uint8_t key[32], iv[12], plain[64], aad[20];
    unhex(c->key, key, sizeof key);
    unhex(c->iv, iv, sizeof iv);
    size_t plain_len = unhex(c->plain, plain, sizeof plain);
    size_t aad_len = unhex(c->aad, aad, sizeof aad);
    char expected[300];
    snprintf(expected, sizeof expected, "%s%s", c->cipher, c->tag);

    hg_buf sealed = HG_BUF_INIT, opened = HG_BUF_INIT;
    hg_err err;
    CHECK_EQ_INT(hg_crypto_aesgcm_seal(key, iv, aad, aad_len, plain, plain_len, &sealed, &err), 0);
    CHECK_EQ_INT(sealed.len, plain_len + HG_CRYPTO_AESGCM_TAG_LEN);
    CHECK_HEX(sealed.data, sealed.len, expected);
    CHECK_EQ_INT(hg_crypto_aesgcm_open(key, iv, aad, aad_len, sealed.data, sealed.len, &opened,
                                       &err),
                 0);
    CHECK_EQ_INT(opened.len, plain_len);
    CHECK_EQ_MEM(opened.data, plain, plain_len);
    hg_buf_free(&sealed);
    hg_buf_free(&opened);
  }
}

/* Opening must fail on any change, and must then hand back nothing. */
static void expect_refused(const uint8_t *key, const uint8_t *iv, const uint8_t *aad,
                           size_t aad_len, const uint8_t *sealed, size_t sealed_len, int line) {
  hg_buf out = HG_BUF_INIT;
  hg_buf_appends(&out, "kept");
  hg_err err = {0};
  int rc = hg_crypto_aesgcm_open(key, iv, aad, aad_len, sealed, sealed_len, &out, &err);
  if (rc != HG_EINVAL || strstr(err.msg, "authentication failed") == NULL || out.len != 4 ||
      strcmp(out.data, "kept") != 0)
    fprintf(stderr, "  (tamper case at line %d: rc %d, msg '%s')\n", line, rc, err.msg);
  CHECK_EQ_INT(rc, HG_EINVAL);
  CHECK(strstr(err.msg, "authentication failed") != NULL);
  CHECK_EQ_STR(out.data, "kept");
  hg_buf_free(&out);
}

static void aesgcm_refuses_tampering(void) {
  const struct gcm_case *c = &gcm_cases[3];
  uint8_t key[32], iv[12], plain[64], aad[20];
  unhex(c->key, key, sizeof key);
  unhex(c->iv, iv, sizeof iv);
  size_t plain_len = unhex(c->plain, plain, sizeof plain);
  size_t aad_len = unhex(c->aad, aad, sizeof aad);
  hg_buf sealed = HG_BUF_INIT;
  CHECK_EQ_INT(hg_crypto_aesgcm_seal(key, iv, aad, aad_len, plain, plain_len, &sealed, NULL), 0);
  uint8_t *s = (uint8_t *)sealed.data;

  s[0] ^= 0x01; /* first ciphertext bit */
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  s[0] ^= 0x01;
  s[plain_len - 1] ^= 0x80; /* last ciphertext bit */
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  s[plain_len - 1] ^= 0x80;
  s[plain_len] ^= 0x01; /* first tag bit */
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  s[plain_len] ^= 0x01;
  s[sealed.len - 1] ^= 0x80; /* last tag bit */
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  s[sealed.len - 1] ^= 0x80;
  aad[5] ^= 0x04;
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  aad[5] ^= 0x04;
  expect_refused(key, iv, aad, aad_len - 1, s, sealed.len, __LINE__); /* aad cut short */
  expect_refused(key, iv, NULL, 0, s, sealed.len, __LINE__);          /* aad dropped */
  iv[11] ^= 0x01;
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  iv[11] ^= 0x01;
  key[31] ^= 0x01;
  expect_refused(key, iv, aad, aad_len, s, sealed.len, __LINE__);
  key[31] ^= 0x01;
  expect_refused(key, iv, aad, aad_len, s, sealed.len - 1, __LINE__); /* truncated tag */
  expect_refused(key, iv, aad, aad_len, s + plain_len, 16, __LINE__); /* ciphertext dropped */
  expect_refused(key, iv, aad, aad_len, s, 15, __LINE__);             /* shorter than a tag */

  /* Untouched, it still opens: the failures above came from the changes. */
  hg_buf out = HG_BUF_INIT;
  CHECK_EQ_INT(hg_crypto_aesgcm_open(key, iv, aad, aad_len, s, sealed.len, &out, NULL), 0);
  CHECK_EQ_INT(out.len, plain_len);
  hg_buf_free(&out);
  hg_buf_free(&sealed);
}

static void aesgcm_round_trips_large_input(void) {
  size_t n = 3 * 1000 * 1000 + 7;
  uint8_t key[32], iv[12];
  CHECK_EQ_INT(hg_crypto_random(key, sizeof key, NULL), 0);
  CHECK_EQ_INT(hg_crypto_random(iv, sizeof iv, NULL), 0);
  uint8_t *plain = malloc(n);
  for (size_t i = 0; i < n; i++) plain[i] = (uint8_t)(i * 31 + 7);
  hg_buf sealed = HG_BUF_INIT, opened = HG_BUF_INIT;
  CHECK_EQ_INT(hg_crypto_aesgcm_seal(key, iv, "run", 3, plain, n, &sealed, NULL), 0);
  CHECK_EQ_INT(sealed.len, n + 16);
  CHECK(memcmp(sealed.data, plain, 64) != 0);
  CHECK_EQ_INT(hg_crypto_aesgcm_open(key, iv, "run", 3, sealed.data, sealed.len, &opened, NULL), 0);
  CHECK_EQ_INT(opened.len, n);
  CHECK(opened.len == n && memcmp(opened.data, plain, n) == 0);
  free(plain);
  hg_buf_free(&sealed);
  hg_buf_free(&opened);
}

/* ---- X25519 (RFC 7748) ---- */

static void x25519_rfc7748_scalar_mult(void) {
  /* Section 5.2. The second u-coordinate has its top bit set, which must be ignored. */
  const char *cases[][3] = {
      {"a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
       "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
       "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"},
      {"4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
       "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
       "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"},
  };
  for (size_t i = 0; i < 2; i++) {
    uint8_t scalar[32], u[32], out[32];
    unhex(cases[i][0], scalar, sizeof scalar);
    unhex(cases[i][1], u, sizeof u);
    hg_err err = {0};
    CHECK_EQ_INT(hg_crypto_x25519_derive(scalar, u, out, &err), 0);
    CHECK_HEX(out, sizeof out, cases[i][2]);
  }
}

static void x25519_rfc7748_alice_and_bob(void) {
  /* Section 6.1 */
  uint8_t alice_priv[32], bob_priv[32], pub[32], shared_a[32], shared_b[32];
  uint8_t alice_pub[32], bob_pub[32];
  unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a", alice_priv, 32);
  unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb", bob_priv, 32);
  hg_err err;
  CHECK_EQ_INT(hg_crypto_x25519_public(alice_priv, pub, &err), 0);
  CHECK_HEX(pub, 32, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  memcpy(alice_pub, pub, 32);
  CHECK_EQ_INT(hg_crypto_x25519_public(bob_priv, pub, &err), 0);
  CHECK_HEX(pub, 32, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  memcpy(bob_pub, pub, 32);
  CHECK_EQ_INT(hg_crypto_x25519_derive(alice_priv, bob_pub, shared_a, &err), 0);
  CHECK_EQ_INT(hg_crypto_x25519_derive(bob_priv, alice_pub, shared_b, &err), 0);
  CHECK_HEX(shared_a, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  CHECK_HEX(shared_b, 32, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

static void x25519_generated_keys_agree(void) {
  uint8_t a_pub[32], a_priv[32], b_pub[32], b_priv[32], again[32], s1[32], s2[32];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_x25519_keygen(a_pub, a_priv, &err), 0);
  CHECK_EQ_INT(hg_crypto_x25519_keygen(b_pub, b_priv, &err), 0);
  CHECK(memcmp(a_priv, b_priv, 32) != 0);
  CHECK(memcmp(a_pub, b_pub, 32) != 0);
  CHECK_EQ_INT(hg_crypto_x25519_public(a_priv, again, &err), 0);
  CHECK_EQ_MEM(again, a_pub, 32);
  CHECK_EQ_INT(hg_crypto_x25519_derive(a_priv, b_pub, s1, &err), 0);
  CHECK_EQ_INT(hg_crypto_x25519_derive(b_priv, a_pub, s2, &err), 0);
  CHECK_EQ_MEM(s1, s2, 32);
}

/* The private key is the kernel's 32 bytes, and the public key is computed from it; where
 * getrandom is missing, OpenSSL's generator makes the pair instead. */
static void x25519_keygen_takes_the_kernels_bytes(void) {
  uint8_t pub[32], priv[32], want[32], pattern[32];
  memset(pattern, 0x5a, sizeof pattern);
  scripted_getrandom = PATTERN_RANDOM;
  int rc = hg_crypto_x25519_keygen(pub, priv, NULL);
  scripted_getrandom = KERNEL_RANDOM;
  CHECK_EQ_INT(rc, 0);
  CHECK_EQ_MEM(priv, pattern, 32);
  CHECK_EQ_INT(hg_crypto_x25519_public(pattern, want, NULL), 0);
  CHECK_EQ_MEM(pub, want, 32);

  scripted_getrandom = NO_GETRANDOM;
  rc = hg_crypto_x25519_keygen(pub, priv, NULL);
  scripted_getrandom = KERNEL_RANDOM;
  CHECK_EQ_INT(rc, 0);
  CHECK(memcmp(priv, pattern, 32) != 0);
  CHECK_EQ_INT(hg_crypto_x25519_public(priv, want, NULL), 0);
  CHECK_EQ_MEM(pub, want, 32);
}

static void x25519_refuses_small_order_points(void) {
  uint8_t pub[32], priv[32], shared[32];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  /* u = 0, u = 1 and u = p (which is 0 again once reduced) all give an all-zero secret. */
  const char *bad[] = {
      "0000000000000000000000000000000000000000000000000000000000000000",
      "0100000000000000000000000000000000000000000000000000000000000000",
      "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  };
  for (size_t i = 0; i < 3; i++) {
    uint8_t u[32];
    unhex(bad[i], u, sizeof u);
    memset(shared, 0x55, sizeof shared);
    hg_err err = {0};
    CHECK_EQ_INT(hg_crypto_x25519_derive(priv, u, shared, &err), HG_EINVAL);
    CHECK(strstr(err.msg, "small order") != NULL);
  }
}

/* ---- Base64 (RFC 4648 section 10) ---- */

static void check_b64(const char *data, int flags, const char *expected) {
  hg_buf enc = HG_BUF_INIT, dec = HG_BUF_INIT;
  hg_err err = {0};
  CHECK_EQ_INT(hg_crypto_b64_encode(&enc, data, strlen(data), flags, &err), 0);
  CHECK_EQ_STR(enc.data, expected);
  CHECK_EQ_INT(hg_crypto_b64_decode(&dec, expected, strlen(expected), flags, &err), 0);
  if (err.msg[0]) fprintf(stderr, "  decoding '%s' (flags %d): %s\n", expected, flags, err.msg);
  CHECK_EQ_STR(dec.data, data);
  CHECK_EQ_INT(dec.len, strlen(data));
  hg_buf_free(&enc);
  hg_buf_free(&dec);
}

static void base64_rfc4648_vectors(void) {
  const char *vec[][3] = {
      {"", "", ""},           {"f", "Zg==", "Zg"},         {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"}, {"foob", "Zm9vYg==", "Zm9vYg"}, {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
  };
  for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
    /* These bytes never reach the two characters where the alphabets differ. */
    check_b64(vec[i][0], HG_CRYPTO_B64_STD, vec[i][1]);
    check_b64(vec[i][0], HG_CRYPTO_B64_URL, vec[i][1]);
    check_b64(vec[i][0], HG_CRYPTO_B64_STD | HG_CRYPTO_B64_NOPAD, vec[i][2]);
    check_b64(vec[i][0], HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, vec[i][2]);
  }
}

static void base64_url_alphabet(void) {
  /* fb ff bf is 111110 111111 111110 111111: indexes 62 and 63, the two that differ. */
  check_b64("\xfb\xff\xbf", HG_CRYPTO_B64_STD, "+/+/");
  check_b64("\xfb\xff\xbf", HG_CRYPTO_B64_URL, "-_-_");
  check_b64("\xfb\xff", HG_CRYPTO_B64_STD, "+/8=");
  check_b64("\xfb\xff", HG_CRYPTO_B64_URL, "-_8=");
  check_b64("\xfb\xff", HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, "-_8");
  check_b64("\xff", HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, "_w");
  check_b64("\xf8", HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, "-A");

  /* Each alphabet refuses the other's two characters. */
  hg_buf out = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_crypto_b64_decode(&out, "-_-_", 4, HG_CRYPTO_B64_STD, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 0") != NULL);
  CHECK_EQ_INT(hg_crypto_b64_decode(&out, "+/+/", 4, HG_CRYPTO_B64_URL, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 0") != NULL);
  CHECK_EQ_INT(hg_crypto_b64_decode(&out, "ab_d", 4, HG_CRYPTO_B64_STD, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 2") != NULL);
  CHECK_EQ_INT(out.len, 0);
  hg_buf_free(&out);
}

static void base64_refuses_invalid_input(void) {
  struct {
    const char *text;
    int flags;
    const char *why;
  } bad[] = {
      {"Zg=", HG_CRYPTO_B64_STD, "multiple of 4"},
      {"Zg", HG_CRYPTO_B64_STD, "multiple of 4"}, /* padding required */
      {"Zm9vY", HG_CRYPTO_B64_STD, "multiple of 4"},
      {"Zg==", HG_CRYPTO_B64_NOPAD, "padding at offset 2"}, /* padding refused */
      {"Zg==", HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, "padding at offset 2"},
      {"Z===", HG_CRYPTO_B64_STD, "padding at offset 1"},
      {"=Zg=", HG_CRYPTO_B64_STD, "padding at offset 0"},
      {"Zg==Zg==", HG_CRYPTO_B64_STD, "padding at offset 2"},
      {"Zm9v!A==", HG_CRYPTO_B64_STD, "offset 4"},
      {"Zm9v\n", HG_CRYPTO_B64_NOPAD, "offset 4"}, /* no whitespace, not even a newline */
      {" Zm9v", HG_CRYPTO_B64_NOPAD, "offset 0"},
      {"Zm 9v", HG_CRYPTO_B64_NOPAD, "offset 2"},
      {"Zm9vY", HG_CRYPTO_B64_NOPAD, "5 characters"},
      {"Zh==", HG_CRYPTO_B64_STD, "non-canonical"}, /* "f" is Zg==; Zh== has a stray bit */
      {"Zm9=", HG_CRYPTO_B64_STD, "non-canonical"},
      {"Zm9", HG_CRYPTO_B64_STD | HG_CRYPTO_B64_NOPAD, "non-canonical"},
      {"Zh", HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD, "non-canonical"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    hg_buf out = HG_BUF_INIT;
    hg_buf_appends(&out, "prefix");
    hg_err err = {0};
    int rc = hg_crypto_b64_decode(&out, bad[i].text, strlen(bad[i].text), bad[i].flags, &err);
    CHECK_EQ_INT(rc, HG_EINVAL);
    if (!strstr(err.msg, bad[i].why))
      fprintf(stderr, "  '%s': message '%s' lacks '%s'\n", bad[i].text, err.msg, bad[i].why);
    CHECK(strstr(err.msg, bad[i].why) != NULL);
    CHECK_EQ_STR(out.data, "prefix"); /* nothing appended on failure */
    hg_buf_free(&out);
  }
}

static void base64_round_trips_every_length(void) {
  /* Lengths around the decoder's internal window (4096 characters, 3072 bytes) included. */
  uint8_t data[6200];
  CHECK_EQ_INT(hg_crypto_random(data, sizeof data, NULL), 0);
  size_t lens[] = {0, 1, 2, 3, 4, 5, 31, 32, 33, 3070, 3071, 3072, 3073, 3074, 3075, 6143, 6144, 6145, 6200};
  int flag_sets[] = {HG_CRYPTO_B64_STD, HG_CRYPTO_B64_URL, HG_CRYPTO_B64_NOPAD,
                     HG_CRYPTO_B64_URL | HG_CRYPTO_B64_NOPAD};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    for (size_t f = 0; f < 4; f++) {
      hg_buf enc = HG_BUF_INIT, dec = HG_BUF_INIT;
      CHECK_EQ_INT(hg_crypto_b64_encode(&enc, data, lens[i], flag_sets[f], NULL), 0);
      size_t want = (flag_sets[f] & HG_CRYPTO_B64_NOPAD) ? (lens[i] * 4 + 2) / 3
                                                          : (lens[i] + 2) / 3 * 4;
      CHECK_EQ_INT(enc.len, want);
      hg_err err = {0};
      CHECK_EQ_INT(hg_crypto_b64_decode(&dec, enc.data, enc.len, flag_sets[f], &err), 0);
      CHECK_EQ_INT(dec.len, lens[i]);
      CHECK(dec.len == lens[i] && memcmp(dec.data, data, lens[i]) == 0);
      hg_buf_free(&enc);
      hg_buf_free(&dec);
    }
  }
}

static void base64_appends(void) {
  hg_buf b = HG_BUF_INIT;
  hg_buf_appends(&b, "key=");
  CHECK_EQ_INT(hg_crypto_b64_encode(&b, "foo", 3, HG_CRYPTO_B64_STD, NULL), 0);
  CHECK_EQ_STR(b.data, "key=Zm9v");
  CHECK_EQ_INT(hg_crypto_b64_decode(&b, "YmFy", 4, HG_CRYPTO_B64_STD, NULL), 0);
  CHECK_EQ_STR(b.data, "key=Zm9vbar");
  hg_buf_free(&b);
}

/* ---- Hex ---- */

static void hex_encodes_and_decodes(void) {
  hg_buf b = HG_BUF_INIT;
  hg_err err;
  CHECK_EQ_INT(hg_crypto_hex_encode(&b, "\x00\x01\xab\xff", 4, &err), 0);
  CHECK_EQ_STR(b.data, "0001abff");
  hg_buf_reset(&b);
  CHECK_EQ_INT(hg_crypto_hex_decode(&b, "0001AbfF", 8, &err), 0);
  CHECK_EQ_INT(b.len, 4);
  CHECK_EQ_MEM(b.data, "\x00\x01\xab\xff", 4);
  hg_buf_reset(&b);
  CHECK_EQ_INT(hg_crypto_hex_decode(&b, "abc", 3, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "odd length") != NULL);
  CHECK_EQ_INT(hg_crypto_hex_decode(&b, "abxd", 4, &err), HG_EINVAL);
  CHECK(strstr(err.msg, "offset 2") != NULL);
  CHECK_EQ_INT(b.len, 0);
  hg_buf_free(&b);
}

/* ---- Randomness, comparison, wiping ---- */

static void random_draws_differ_and_honour_lengths(void) {
  uint8_t a[32], b[32];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_random(a, sizeof a, &err), 0);
  CHECK_EQ_INT(hg_crypto_random(b, sizeof b, &err), 0);
  CHECK(memcmp(a, b, sizeof a) != 0);

  /* Exactly n bytes are written: the guard bytes around them stay as they were. Each byte
   * left at the sentinel would have a 1/256 chance, so the whole block staying put is the
   * failure that counts. */
  uint8_t big[1 + 17 + 1];
  memset(big, 0xa5, sizeof big);
  CHECK_EQ_INT(hg_crypto_random(big + 1, 17, &err), 0);
  CHECK_EQ_INT(big[0], 0xa5);
  CHECK_EQ_INT(big[18], 0xa5);
  uint8_t sentinel[17];
  memset(sentinel, 0xa5, sizeof sentinel);
  CHECK(memcmp(big + 1, sentinel, 17) != 0);
  CHECK_EQ_INT(hg_crypto_random(big, 0, &err), 0);

  /* A larger draw is not mostly zeros (a quick sanity check, not a statistical test). */
  size_t n = 1 << 16, zeros = 0;
  uint8_t *many = calloc(1, n);
  CHECK_EQ_INT(hg_crypto_random(many, n, &err), 0);
  for (size_t i = 0; i < n; i++) zeros += many[i] == 0;
  CHECK(zeros < n / 64);
  free(many);
}

static void equal_compares_and_wipe_zeroes(void) {
  CHECK(hg_crypto_equal("abcd", "abcd", 4));
  CHECK(!hg_crypto_equal("abcd", "abce", 4));
  CHECK(!hg_crypto_equal("xbcd", "abcd", 4));
  CHECK(hg_crypto_equal("a", "b", 0));
  char secret[] = "hunter2";
  hg_crypto_wipe(secret, sizeof secret);
  CHECK_EQ_MEM(secret, "\0\0\0\0\0\0\0\0", sizeof secret);
  hg_crypto_wipe(NULL, 0);
}

TEST_MAIN(T(hashes_in_threads_at_once_are_right), T(sha256_fips_vectors),
          T(sha256_incremental_matches_one_shot), T(hmac_sha256_rfc4231),
          T(hmac_sha256_empty_key_and_message),
          T(hkdf_rfc5869), T(hkdf_refuses_impossible_lengths), T(aesgcm_spec_vectors),
          T(aesgcm_refuses_tampering), T(aesgcm_round_trips_large_input),
          T(x25519_rfc7748_scalar_mult), T(x25519_rfc7748_alice_and_bob),
          T(x25519_generated_keys_agree), T(x25519_keygen_takes_the_kernels_bytes),
          T(x25519_refuses_small_order_points),
          T(base64_rfc4648_vectors), T(base64_url_alphabet), T(base64_refuses_invalid_input),
          T(base64_round_trips_every_length), T(base64_appends), T(hex_encodes_and_decodes),
          T(random_draws_differ_and_honour_lengths), T(equal_compares_and_wipe_zeroes))
