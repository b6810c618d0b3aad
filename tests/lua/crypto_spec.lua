-- hangar.crypto: known-answer tests for the hashes and encodings Lua backends rely on.
local crypto = require "hangar.crypto"

describe("hangar.crypto", function()
  it("hashes with SHA-256 (FIPS 180-2 vectors)", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", crypto.sha256(""))
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", crypto.sha256("abc"))
    assert.equal(32, #crypto.sha256("abc", "raw"))
    assert.equal(crypto.sha256("abc"), crypto.hex_encode(crypto.sha256("abc", "raw")))
    assert.has_error(function() crypto.sha256("abc", "base32") end)
  end)

  it("computes HMAC-SHA256 (RFC 4231 test case 2)", function()
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      crypto.hmac_sha256("Jefe", "what do ya want for nothing?"))
  end)

  it("derives keys with HKDF-SHA256 (RFC 5869 test case 1)", function()
    local ikm = crypto.hex_decode(string.rep("0b", 22))
    local okm = crypto.hkdf_sha256(ikm, crypto.hex_decode("000102030405060708090a0b0c"),
      crypto.hex_decode("f0f1f2f3f4f5f6f7f8f9"), 42)
    assert.equal("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
      crypto.hex_encode(okm))
  end)

  it("encodes base64 in both alphabets, with and without padding", function()
    assert.equal("Zm9vYmFy", crypto.base64_encode("foobar"))
    assert.equal("Zm9vYg==", crypto.base64_encode("foob"))
    assert.equal("Zm9vYg", crypto.base64_encode("foob", { pad = false }))
    assert.equal("-_8", crypto.base64_encode("\251\255", { url = true, pad = false }))
    assert.equal("+/8=", crypto.base64_encode("\251\255"))
    assert.equal("foob", crypto.base64_decode("Zm9vYg=="))
    assert.equal("\251\255", crypto.base64_decode("-_8", { url = true, pad = false }))
  end)

  it("returns nil and a message for text that is not base64 or hex", function()
    local v, err = crypto.base64_decode("Zm9v!mFy")
    assert.is_nil(v)
    assert.matches("crypto.base64_decode: ", err)
    v, err = crypto.hex_decode("abc")
    assert.is_nil(v)
    assert.matches("crypto.hex_decode: ", err)
    assert.equal("\0\255", crypto.hex_decode("00FF"))
  end)

  it("gives random bytes and compares in constant time", function()
    local a, b = crypto.random(32), crypto.random(32)
    assert.equal(32, #a)
    assert.are_not.equal(a, b)
    assert.equal("", crypto.random(0))
    assert.is_true(crypto.equal("token", "token"))
    assert.is_false(crypto.equal("token", "tokex"))
    assert.is_false(crypto.equal("token", "tok"))
  end)
end)
