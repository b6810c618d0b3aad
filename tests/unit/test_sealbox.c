/* The sealed box: round trips, refusals, a pinned known answer, and interoperability in both
 * directions with the independent Python implementation in tests/interop/sealbox.py. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "core/crypto.h"
#include "core/sealbox.h"

static void to_b64(const void *data, size_t len, char *out, size_t cap) {
  hg_buf b = HG_BUF_INIT;
  if (hg_crypto_b64_encode(&b, data, len, HG_CRYPTO_B64_STD, NULL) || b.len >= cap) abort();
  memcpy(out, b.data, b.len + 1);
  hg_buf_free(&b);
}

static size_t from_b64(const char *text, uint8_t *out, size_t cap) {
  hg_buf b = HG_BUF_INIT;
  if (hg_crypto_b64_decode(&b, text, strlen(text), HG_CRYPTO_B64_STD, NULL) || b.len > cap)
    abort();
  size_t n = b.len;
  memcpy(out, b.data, n);
  hg_buf_free(&b);
  return n;
}

static const char *field(const cJSON *obj, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Opening must fail with a message containing want, and hand back nothing. */
static void expect_open_fails(const cJSON *box, const uint8_t *priv, const char *aad,
                              const char *want, int line) {
  hg_buf out = HG_BUF_INIT;
  hg_buf_appends(&out, "kept");
  hg_err err = {0};
  int rc = hg_sealbox_open(box, priv, aad, &out, &err);
  if (rc != HG_EINVAL || !strstr(err.msg, want))
    fprintf(stderr, "  line %d: rc %d, message '%s', wanted '%s'\n", line, rc, err.msg, want);
  CHECK_EQ_INT(rc, HG_EINVAL);
  CHECK(strstr(err.msg, want) != NULL);
  CHECK_EQ_STR(out.data, "kept");
  hg_buf_free(&out);
}

static const char secrets[] = "{\"DB_PASSWORD\":\"s3cr3t/Pa55+w0rd=\\\"x\\\"\",\"API\":\"t0k3n\"}";

static void round_trip(void) {
  uint8_t pub[32], priv[32];
  hg_err err;
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, &err), 0);
  cJSON *box = NULL, *box2 = NULL;
  CHECK_EQ_INT(hg_sealbox_seal(secrets, strlen(secrets), pub, "run_123", &box, &err), 0);
  CHECK_EQ_STR(field(box, "alg"), "X25519-HKDF-SHA256-A256GCM");
  CHECK_EQ_INT(cJSON_GetArraySize(box), 4);
  uint8_t raw[256];
  CHECK_EQ_INT(from_b64(field(box, "epk"), raw, sizeof raw), 32);
  CHECK_EQ_INT(from_b64(field(box, "nonce"), raw, sizeof raw), 12);
  /* The tag rides along; the plaintext does not. */
  size_t ct_len = from_b64(field(box, "ciphertext"), raw, sizeof raw);
  CHECK_EQ_INT(ct_len, strlen(secrets) + 16);
  CHECK(memmem(raw, ct_len, "s3cr3t", 6) == NULL);

  hg_buf plain = HG_BUF_INIT;
  CHECK_EQ_INT(hg_sealbox_open(box, priv, "run_123", &plain, &err), 0);
  CHECK_EQ_STR(plain.data, secrets);
  CHECK_EQ_INT(plain.len, strlen(secrets));
  hg_buf_wipe(&plain);

  /* A JSON round trip (as over the wire) still opens, and every seal is fresh. */
  char *text = cJSON_PrintUnformatted(box);
  cJSON *parsed = cJSON_Parse(text);
  CHECK_EQ_INT(hg_sealbox_open(parsed, priv, "run_123", &plain, &err), 0);
  CHECK_EQ_STR(plain.data, secrets);
  hg_buf_wipe(&plain);
  CHECK_EQ_INT(hg_sealbox_seal(secrets, strlen(secrets), pub, "run_123", &box2, &err), 0);
  CHECK(strcmp(field(box, "epk"), field(box2, "epk")) != 0);
  CHECK(strcmp(field(box, "nonce"), field(box2, "nonce")) != 0);
  CHECK(strcmp(field(box, "ciphertext"), field(box2, "ciphertext")) != 0);

  /* Empty plaintext is a valid box too. */
  cJSON *empty = NULL;
  CHECK_EQ_INT(hg_sealbox_seal("", 0, pub, "run_123", &empty, &err), 0);
  CHECK_EQ_INT(hg_sealbox_open(empty, priv, "run_123", &plain, &err), 0);
  CHECK_EQ_INT(plain.len, 0);
  hg_buf_free(&plain);
  cJSON_Delete(empty);
  cJSON_Delete(parsed);
  free(text);
  cJSON_Delete(box);
  cJSON_Delete(box2);
}

static void wrong_key_or_run_id_fails(void) {
  uint8_t pub[32], priv[32], other_pub[32], other_priv[32];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  CHECK_EQ_INT(hg_crypto_x25519_keygen(other_pub, other_priv, NULL), 0);
  cJSON *box = NULL;
  CHECK_EQ_INT(hg_sealbox_seal(secrets, strlen(secrets), pub, "run_123", &box, NULL), 0);
  expect_open_fails(box, other_priv, "run_123", "authentication failed", __LINE__);
  expect_open_fails(box, priv, "run_124", "authentication failed", __LINE__);
  expect_open_fails(box, priv, "run_12", "authentication failed", __LINE__);
  expect_open_fails(box, priv, "", "authentication failed", __LINE__);
  cJSON_Delete(box);
}

/* Replaces obj[name] by base64 of its decoded bytes with one bit flipped. */
static void flip_bit(cJSON *obj, const char *name, size_t byte) {
  uint8_t raw[512];
  char text[1024];
  size_t n = from_b64(field(obj, name), raw, sizeof raw);
  raw[byte % n] ^= 0x01;
  to_b64(raw, n, text, sizeof text);
  cJSON_ReplaceItemInObjectCaseSensitive(obj, name, cJSON_CreateString(text));
}

static void tampering_fails(void) {
  uint8_t pub[32], priv[32];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  cJSON *box = NULL;
  CHECK_EQ_INT(hg_sealbox_seal(secrets, strlen(secrets), pub, "run_123", &box, NULL), 0);
  size_t ct_len = strlen(secrets) + 16;
  size_t where[] = {0, 5, ct_len - 17 /* last ciphertext byte */, ct_len - 16, ct_len - 1};
  for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
    cJSON *t = cJSON_Duplicate(box, 1);
    flip_bit(t, "ciphertext", where[i]);
    expect_open_fails(t, priv, "run_123", "authentication failed", __LINE__);
    cJSON_Delete(t);
  }
  cJSON *t = cJSON_Duplicate(box, 1);
  flip_bit(t, "nonce", 3);
  expect_open_fails(t, priv, "run_123", "authentication failed", __LINE__);
  cJSON_Delete(t);
  /* A different ephemeral key gives a different shared secret and key. */
  t = cJSON_Duplicate(box, 1);
  flip_bit(t, "epk", 7);
  expect_open_fails(t, priv, "run_123", "authentication failed", __LINE__);
  cJSON_Delete(t);
  hg_buf plain = HG_BUF_INIT;
  CHECK_EQ_INT(hg_sealbox_open(box, priv, "run_123", &plain, NULL), 0);
  hg_buf_wipe(&plain);
  cJSON_Delete(box);
}

static void malformed_objects_are_refused(void) {
  uint8_t pub[32], priv[32];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  cJSON *box = NULL;
  CHECK_EQ_INT(hg_sealbox_seal(secrets, strlen(secrets), pub, "run_123", &box, NULL), 0);

  cJSON *arr = cJSON_CreateArray();
  expect_open_fails(arr, priv, "run_123", "sealed: expected an object", __LINE__);
  cJSON_Delete(arr);
  expect_open_fails(NULL, priv, "run_123", "sealed: expected an object", __LINE__);

  const char *names[] = {"alg", "epk", "nonce", "ciphertext"};
  for (size_t i = 0; i < 4; i++) {
    cJSON *t = cJSON_Duplicate(box, 1);
    cJSON_DeleteItemFromObjectCaseSensitive(t, names[i]);
    char want[64];
    snprintf(want, sizeof want, "sealed.%s: missing", names[i]);
    expect_open_fails(t, priv, "run_123", want, __LINE__);
    cJSON_Delete(t);
  }

  struct {
    const char *name;
    cJSON *value;
    const char *want;
  } bad[] = {
      {"alg", cJSON_CreateString("X25519-HKDF-SHA256-A128GCM"),
       "sealed.alg: expected \"X25519-HKDF-SHA256-A256GCM\", got \"X25519-HKDF-SHA256-A128GCM\""},
      {"alg", cJSON_CreateNumber(1), "sealed.alg: expected the string"},
      {"epk", cJSON_CreateString("not base64!!"), "sealed.epk: base64: invalid character"},
      {"epk", cJSON_CreateString("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"),
       "sealed.epk: base64: length 43"}, /* padding missing */
      {"epk", cJSON_CreateString("hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo="),
       "sealed.epk: base64: invalid character at offset 23"}, /* URL-safe alphabet */
      {"epk", cJSON_CreateString("hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTg=="),
       "sealed.epk: expected 32 bytes, got 31"},
      {"epk", cJSON_CreateString("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
       "sealed.epk: X25519: peer public key is of small order"},
      {"epk", cJSON_CreateNull(), "sealed.epk: expected a base64 string"},
      {"nonce", cJSON_CreateString("AAECAwQFBgc="), "sealed.nonce: expected 12 bytes, got 8"},
      {"nonce", cJSON_CreateString("AAECAwQFBgcICQoLDA=="), "sealed.nonce: expected 12 bytes, got 13"},
      {"nonce", cJSON_CreateString(""), "sealed.nonce: expected 12 bytes, got 0"},
      {"nonce", cJSON_CreateString("AAECAwQFBgcICQoL\n"), "sealed.nonce: base64"},
      {"ciphertext", cJSON_CreateString("AAECAwQFBgcICQoLDA0O"),
       "sealed.ciphertext: 15 bytes is shorter than the 16-byte tag"},
      {"ciphertext", cJSON_CreateTrue(), "sealed.ciphertext: expected a base64 string"},
      {"ciphertext", cJSON_CreateString("Zh=="), "sealed.ciphertext: base64: non-canonical"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cJSON *t = cJSON_Duplicate(box, 1);
    cJSON_ReplaceItemInObjectCaseSensitive(t, bad[i].name, bad[i].value);
    expect_open_fails(t, priv, "run_123", bad[i].want, __LINE__);
    cJSON_Delete(t);
  }

  /* Sealing to a small-order public key would hand the secret to anyone. */
  uint8_t zero[32] = {0};
  cJSON *out = (cJSON *)1;
  hg_err err = {0};
  CHECK_EQ_INT(hg_sealbox_seal("x", 1, zero, "run_123", &out, &err), HG_EINVAL);
  CHECK(out == NULL);
  CHECK(strstr(err.msg, "recipient public key") != NULL);
  cJSON_Delete(box);
}

/* ---- Known answer ---- */

/* esk = RFC 7748 Alice, recipient = RFC 7748 Bob, nonce = 00 01 .. 0b, run id "run_kat".
 * The expected ciphertext was computed once with tests/interop/sealbox.py. */
static const char kat_alice_priv[] = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
static const char kat_alice_pub[] = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
static const char kat_bob_priv[] = "XasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os=";
static const char kat_bob_pub[] = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";
static const char kat_nonce[] = "AAECAwQFBgcICQoL";
static const char kat_plain[] = "{\"DB_PASSWORD\":\"hunter2-hunter2\"}";
static const char kat_ciphertext[] =
    "oc+Ho7FcvHbKjTvr6BqstQ5xszGjlg+q6/eYNPmbWKXubUirI5UPAgl8MU/vWbncDw==";

static void known_answer(void) {
  uint8_t esk[32], bob_pub[32], bob_priv[32], nonce[12];
  from_b64(kat_alice_priv, esk, sizeof esk);
  from_b64(kat_bob_pub, bob_pub, sizeof bob_pub);
  from_b64(kat_bob_priv, bob_priv, sizeof bob_priv);
  from_b64(kat_nonce, nonce, sizeof nonce);
  cJSON *box = NULL;
  hg_err err = {0};
  CHECK_EQ_INT(hg_sealbox_seal_unsafe_fixed_ephemeral(kat_plain, strlen(kat_plain), bob_pub,
                                                      "run_kat", esk, nonce, &box, &err),
               0);
  CHECK_EQ_STR(field(box, "alg"), "X25519-HKDF-SHA256-A256GCM");
  CHECK_EQ_STR(field(box, "epk"), kat_alice_pub);
  CHECK_EQ_STR(field(box, "nonce"), kat_nonce);
  CHECK_EQ_STR(field(box, "ciphertext"), kat_ciphertext);
  hg_buf plain = HG_BUF_INIT;
  CHECK_EQ_INT(hg_sealbox_open(box, bob_priv, "run_kat", &plain, &err), 0);
  CHECK_EQ_STR(plain.data, kat_plain);
  hg_buf_wipe(&plain);
  cJSON_Delete(box);
}

/* ---- Interoperability with tests/interop/sealbox.py ---- */

static const char *helper_path(void) {
  static char path[4096];
  const char *src = getenv("HANGAR_SOURCE_DIR");
#ifdef HANGAR_SOURCE_DIR
  if (!src || !*src) src = HANGAR_SOURCE_DIR; /* run by hand or under valgrind, outside ctest */
#endif
  if (!src) src = ".";
  snprintf(path, sizeof path, "%s/tests/interop/sealbox.py", src);
  return path;
}

/* Runs python3 sealbox.py with args, feeding in on stdin and collecting stdout into out, and
 * stderr into errout (or passing it through when errout is NULL). Returns the exit status
 * (127 when python3 could not be started). */
static int run_helper_err(const char *const args[], const void *in, size_t in_len, hg_buf *out,
                          hg_buf *errout) {
  const char *argv[12] = {"python3", helper_path()};
  size_t argc = 2;
  for (size_t i = 0; args[i] && argc < 11; i++) argv[argc++] = args[i];
  argv[argc] = NULL;

  /* A file, not a pipe, for stdin: a 100 KB input could otherwise fill the pipe while we are
   * not yet reading the child's output. */
  FILE *input = tmpfile(), *errors = errout ? tmpfile() : NULL;
  int fds[2];
  if (!input || (errout && !errors) || pipe(fds) != 0) abort();
  if (in_len && fwrite(in, 1, in_len, input) != in_len) abort();
  fflush(input);
  rewind(input);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) abort();
  if (pid == 0) {
    dup2(fileno(input), 0);
    dup2(fds[1], 1);
    if (errors) dup2(fileno(errors), 2);
    close(fds[0]);
    close(fds[1]);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "cannot start python3: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  fclose(input);
  char chunk[8192];
  ssize_t n;
  while ((n = read(fds[0], chunk, sizeof chunk)) > 0) hg_buf_append(out, chunk, (size_t)n);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (errors) {
    rewind(errors);
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, errors)) > 0) hg_buf_append(errout, chunk, got);
    fclose(errors);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int run_helper(const char *const args[], const void *in, size_t in_len, hg_buf *out) {
  return run_helper_err(args, in, in_len, out, NULL);
}

/* The interop tests need python3 and its cryptography module; CI installs both. Their absence
 * is a failure, not a skip, so that a broken setup cannot pass unnoticed. */
static int helper_ready(void) {
  static int state = -1;
  if (state < 0) {
    hg_buf out = HG_BUF_INIT;
    const char *args[] = {"check", NULL};
    int rc = run_helper(args, NULL, 0, &out);
    hg_buf_free(&out);
    if (rc == 127)
      fprintf(stderr, "FAIL: interop tests need python3 on PATH (Debian: apt-get install "
                      "python3 python3-cryptography)\n");
    else if (rc == 3)
      fprintf(stderr, "FAIL: interop tests need the Python cryptography module (Debian: "
                      "apt-get install python3-cryptography)\n");
    else if (rc != 0)
      fprintf(stderr, "FAIL: %s check exited with %d\n", helper_path(), rc);
    state = rc == 0;
  }
  CHECK(state); /* in every interop test, so each one reports the failure */
  return state;
}

/* Plaintexts both implementations must agree on. Returned buffers are freed by the caller. */
static void interop_plaintexts(hg_buf cases[4]) {
  for (int i = 0; i < 4; i++) cases[i] = (hg_buf)HG_BUF_INIT;
  hg_buf_appends(&cases[0], "{}");
  hg_buf_appends(&cases[1], "{\"GREETING\":\"h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 "
                            "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x91\",\"Q\":\"\\\"\\\\\\n\"}");
  hg_buf_appends(&cases[2], "{\"BIG\":\"");
  for (size_t i = 0; cases[2].len < 100 * 1024 - 2; i++)
    hg_buf_appendc(&cases[2], "abcdefghijklmnopqrstuvwxyz0123456789+/="[i * 7 % 39]);
  hg_buf_appends(&cases[2], "\"}");
  /* An empty plaintext still carries a tag. */
}

static void c_seals_python_opens(void) {
  if (!helper_ready()) return;
  hg_buf keys = HG_BUF_INIT;
  const char *keygen[] = {"keygen", NULL};
  CHECK_EQ_INT(run_helper(keygen, NULL, 0, &keys), 0);
  cJSON *k = cJSON_Parse(keys.data ? keys.data : "");
  CHECK(k != NULL);
  if (!k) {
    hg_buf_free(&keys);
    return;
  }
  uint8_t pub[32];
  CHECK_EQ_INT(from_b64(field(k, "public"), pub, sizeof pub), 32);
  const char *priv_b64 = field(k, "private");

  hg_buf cases[4];
  interop_plaintexts(cases);
  for (int i = 0; i < 4; i++) {
    cJSON *box = NULL;
    hg_err err = {0};
    const char *aad = "run_01J9ZK4TQ8";
    CHECK_EQ_INT(hg_sealbox_seal(cases[i].data ? cases[i].data : "", cases[i].len, pub, aad, &box,
                                 &err),
                 0);
    char *text = cJSON_PrintUnformatted(box);
    hg_buf plain = HG_BUF_INIT;
    const char *open_args[] = {"open", priv_b64, aad, NULL};
    CHECK_EQ_INT(run_helper(open_args, text, strlen(text), &plain), 0);
    CHECK_EQ_INT(plain.len, cases[i].len);
    CHECK(plain.len == cases[i].len && (plain.len == 0 || memcmp(plain.data, cases[i].data, plain.len) == 0));
    hg_buf_free(&plain);
    /* Python refuses it under another run id as well. */
    const char *wrong[] = {"open", priv_b64, "run_01J9ZK4TQ9", NULL};
    hg_buf why = HG_BUF_INIT;
    CHECK_EQ_INT(run_helper_err(wrong, text, strlen(text), &plain, &why), 1);
    CHECK_EQ_INT(plain.len, 0);
    CHECK(why.data && strstr(why.data, "authentication failed") != NULL);
    hg_buf_free(&plain);
    hg_buf_free(&why);
    free(text);
    cJSON_Delete(box);
    hg_buf_free(&cases[i]);
  }
  cJSON_Delete(k);
  hg_buf_free(&keys);
}

static void python_seals_c_opens(void) {
  if (!helper_ready()) return;
  uint8_t pub[32], priv[32];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  char pub_b64[64];
  to_b64(pub, sizeof pub, pub_b64, sizeof pub_b64);

  hg_buf cases[4];
  interop_plaintexts(cases);
  for (int i = 0; i < 4; i++) {
    const char *aad = "run_01J9ZK4TQ8";
    hg_buf sealed = HG_BUF_INIT;
    const char *seal_args[] = {"seal", pub_b64, aad, NULL};
    CHECK_EQ_INT(run_helper(seal_args, cases[i].data, cases[i].len, &sealed), 0);
    cJSON *box = cJSON_Parse(sealed.data ? sealed.data : "");
    CHECK(box != NULL);
    hg_buf plain = HG_BUF_INIT;
    hg_err err = {0};
    CHECK_EQ_INT(hg_sealbox_open(box, priv, aad, &plain, &err), 0);
    if (err.msg[0]) fprintf(stderr, "  case %d: %s\n", i, err.msg);
    CHECK_EQ_INT(plain.len, cases[i].len);
    CHECK(plain.len == cases[i].len && (plain.len == 0 || memcmp(plain.data, cases[i].data, plain.len) == 0));
    hg_buf_wipe(&plain);
    expect_open_fails(box, priv, "run_01J9ZK4TQ9", "authentication failed", __LINE__);
    cJSON_Delete(box);
    hg_buf_free(&sealed);
    hg_buf_free(&cases[i]);
  }
}

/* With the same ephemeral key and nonce, both implementations must produce the same bytes. */
static void both_produce_identical_boxes(void) {
  if (!helper_ready()) return;
  uint8_t pub[32], priv[32], esk[32], epk[32], nonce[12];
  CHECK_EQ_INT(hg_crypto_x25519_keygen(pub, priv, NULL), 0);
  CHECK_EQ_INT(hg_crypto_x25519_keygen(epk, esk, NULL), 0);
  CHECK_EQ_INT(hg_crypto_random(nonce, sizeof nonce, NULL), 0);
  char pub_b64[64], esk_b64[64], nonce_b64[64];
  to_b64(pub, 32, pub_b64, sizeof pub_b64);
  to_b64(esk, 32, esk_b64, sizeof esk_b64);
  to_b64(nonce, 12, nonce_b64, sizeof nonce_b64);

  cJSON *mine = NULL;
  CHECK_EQ_INT(hg_sealbox_seal_unsafe_fixed_ephemeral(secrets, strlen(secrets), pub, "run_x", esk,
                                                      nonce, &mine, NULL),
               0);
  hg_buf out = HG_BUF_INIT;
  const char *args[] = {"seal", pub_b64, "run_x", "--esk", esk_b64, "--nonce", nonce_b64, NULL};
  CHECK_EQ_INT(run_helper(args, secrets, strlen(secrets), &out), 0);
  cJSON *theirs = cJSON_Parse(out.data ? out.data : "");
  CHECK(theirs != NULL);
  const char *names[] = {"alg", "epk", "nonce", "ciphertext"};
  for (int i = 0; i < 4; i++) CHECK_EQ_STR(field(mine, names[i]), field(theirs, names[i]));
  cJSON_Delete(mine);
  cJSON_Delete(theirs);
  hg_buf_free(&out);
}

TEST_MAIN(T(round_trip), T(wrong_key_or_run_id_fails), T(tampering_fails),
          T(malformed_objects_are_refused), T(known_answer), T(c_seals_python_opens),
          T(python_seals_c_opens), T(both_produce_identical_boxes))
