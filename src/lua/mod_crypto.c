/* hangar.crypto: hashes, MAC, HKDF, encodings and randomness for Lua, all through
 * src/core/crypto (OpenSSL). Binary results are Lua strings of raw bytes unless hex is
 * asked for; decoders return nil and a message on bad input. */
#include "core/crypto.h"

#include "core/buf.h"
#include "lua/internal.h"

static const char *const formats[] = {"hex", "raw", NULL};

/* Pushes a digest as hex (format 0) or raw bytes (format 1). */
static int push_digest(lua_State *L, const uint8_t *d, size_t n, int format) {
  if (format == 1) {
    lua_pushlstring(L, (const char *)d, n);
    return 1;
  }
  static const char hexdigits[] = "0123456789abcdef";
  char out[2 * HG_CRYPTO_SHA256_LEN];
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexdigits[d[i] >> 4];
    out[2 * i + 1] = hexdigits[d[i] & 15];
  }
  lua_pushlstring(L, out, 2 * n);
  return 1;
}

/* crypto.sha256(data [, "hex"|"raw"]) -> digest (hex by default). */
static int l_sha256(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  int format = luaL_checkoption(L, 2, "hex", formats);
  uint8_t d[HG_CRYPTO_SHA256_LEN];
  hg_err err;
  if (hg_crypto_sha256(data, len, d, &err)) return luaL_error(L, "crypto.sha256: %s", err.msg);
  return push_digest(L, d, sizeof d, format);
}

/* crypto.hmac_sha256(key, data [, "hex"|"raw"]) -> MAC (hex by default). */
static int l_hmac_sha256(lua_State *L) {
  size_t klen, len;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &len);
  int format = luaL_checkoption(L, 3, "hex", formats);
  uint8_t d[HG_CRYPTO_SHA256_LEN];
  hg_err err;
  if (hg_crypto_hmac_sha256(key, klen, data, len, d, &err))
    return luaL_error(L, "crypto.hmac_sha256: %s", err.msg);
  return push_digest(L, d, sizeof d, format);
}

/* crypto.hkdf_sha256(ikm, salt, info, length) -> length raw bytes (RFC 5869). */
static int l_hkdf_sha256(lua_State *L) {
  size_t ilen, slen, flen;
  const char *ikm = luaL_checklstring(L, 1, &ilen);
  const char *salt = luaL_optlstring(L, 2, "", &slen);
  const char *info = luaL_optlstring(L, 3, "", &flen);
  lua_Integer n = luaL_checkinteger(L, 4);
  luaL_argcheck(L, n > 0 && n <= HG_CRYPTO_HKDF_MAX_LEN, 4, "length must be 1 to 8160");
  luaL_Buffer b;
  uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, (size_t)n);
  hg_err err;
  if (hg_crypto_hkdf_sha256(ikm, ilen, salt, slen, info, flen, out, (size_t)n, &err))
    return luaL_error(L, "crypto.hkdf_sha256: %s", err.msg);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* Base64 options: {url = true} for the URL-safe alphabet, {pad = false} for no padding. */
static int b64_flags(lua_State *L, int idx) {
  int flags = HG_CRYPTO_B64_STD;
  if (lua_isnoneornil(L, idx)) return flags;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "url") != LUA_TNIL && lua_toboolean(L, -1)) flags |= HG_CRYPTO_B64_URL;
  if (lua_getfield(L, idx, "pad") != LUA_TNIL && !lua_toboolean(L, -1)) flags |= HG_CRYPTO_B64_NOPAD;
  lua_pop(L, 2);
  return flags;
}

#define BUF_MT "hangar.crypto.buf"

static int buf_gc(lua_State *L) {
  hg_buf_wipe(luaL_checkudata(L, 1, BUF_MT));
  return 0;
}

/* A buffer owned by a userdata: freed (and wiped, as it may hold a secret) even when a
 * later call raises. */
static hg_buf *new_buf(lua_State *L) {
  hg_buf *b = lua_newuserdatauv(L, sizeof *b, 0);
  *b = (hg_buf)HG_BUF_INIT;
  if (luaL_newmetatable(L, BUF_MT)) {
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return b;
}

/* Pushes the codec's result, or raises (soft: returns nil and the message). */
static int codec_result(lua_State *L, int rc, hg_buf *b, const hg_err *err, const char *what,
                        int soft) {
  if (rc) {
    if (!soft) return luaL_error(L, "%s: %s", what, err->msg);
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", what, err->msg);
    return 2;
  }
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  hg_buf_wipe(b);
  return 1;
}

static int l_base64_encode(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  int flags = b64_flags(L, 2);
  hg_buf *b = new_buf(L);
  hg_err err;
  int rc = hg_crypto_b64_encode(b, data, len, flags, &err);
  return codec_result(L, rc, b, &err, "crypto.base64_encode", 0);
}

/* crypto.base64_decode(text [, opts]) -> bytes, or nil and where the text went wrong. */
static int l_base64_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int flags = b64_flags(L, 2);
  hg_buf *b = new_buf(L);
  hg_err err;
  int rc = hg_crypto_b64_decode(b, text, len, flags, &err);
  return codec_result(L, rc, b, &err, "crypto.base64_decode", 1);
}

static int l_hex_encode(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 1, &len);
  hg_buf *b = new_buf(L);
  hg_err err;
  int rc = hg_crypto_hex_encode(b, data, len, &err);
  return codec_result(L, rc, b, &err, "crypto.hex_encode", 0);
}

/* crypto.hex_decode(text) -> bytes, or nil and a message. */
static int l_hex_decode(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  hg_buf *b = new_buf(L);
  hg_err err;
  int rc = hg_crypto_hex_decode(b, text, len, &err);
  return codec_result(L, rc, b, &err, "crypto.hex_decode", 1);
}

/* crypto.random(n) -> n bytes from the system's CSPRNG. */
static int l_random(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 0 && n <= (1 << 20), 1, "must be 0 to 1048576");
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (size_t)n);
  hg_err err;
  if (n > 0 && hg_crypto_random(out, (size_t)n, &err))
    return luaL_error(L, "crypto.random: %s", err.msg);
  luaL_pushresultsize(&b, (size_t)n);
  return 1;
}

/* crypto.equal(a, b) -> whether the strings are equal, in time independent of where they
 * differ (for comparing MACs and tokens). */
static int l_equal(lua_State *L) {
  size_t la, lb;
  const char *a = luaL_checklstring(L, 1, &la);
  const char *b = luaL_checklstring(L, 2, &lb);
  lua_pushboolean(L, la == lb && hg_crypto_equal(a, b, la));
  return 1;
}

int hg_lua_open_crypto(lua_State *L) {
  static const luaL_Reg funcs[] = {{"sha256", l_sha256},
                                   {"hmac_sha256", l_hmac_sha256},
                                   {"hkdf_sha256", l_hkdf_sha256},
                                   {"base64_encode", l_base64_encode},
                                   {"base64_decode", l_base64_decode},
                                   {"hex_encode", l_hex_encode},
                                   {"hex_decode", l_hex_decode},
                                   {"random", l_random},
                                   {"equal", l_equal},
                                   {NULL, NULL}};
  luaL_newlib(L, funcs);
  return 1;
}
