#!/usr/bin/env python3
"""A second, independent implementation of Hangar's sealed box, for interoperability tests.

Built on python3-cryptography, so that the C code (OpenSSL) and this agree only if both
follow the protocol. Keys and binary values travel as standard padded base64.

  sealbox.py check                          exit 0 when the cryptography module works
  sealbox.py keygen                         {"public": B64, "private": B64}
  sealbox.py seal PUB_B64 AAD [--esk B64 --nonce B64]
                                            plaintext on stdin, SEALED JSON on stdout
  sealbox.py open PRIV_B64 AAD              SEALED JSON on stdin, plaintext on stdout

Failures print one line on stderr and exit 1 (2 for usage, 3 when cryptography is missing).
"""

import base64
import binascii
import json
import os
import sys

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import x25519
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    from cryptography.hazmat.primitives.serialization import (
        Encoding, NoEncryption, PrivateFormat, PublicFormat)
except ImportError as exc:
    sys.stderr.write("sealbox.py: the Python 'cryptography' module is missing (%s); "
                     "install python3-cryptography\n" % exc)
    sys.exit(3)

ALG = "X25519-HKDF-SHA256-A256GCM"
INFO = b"hangar-secrets-v1"


class BoxError(Exception):
    pass


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text, field, size=None):
    """Standard alphabet, padded, canonical; anything else is refused."""
    if not isinstance(text, str):
        raise BoxError("%s: not a string" % field)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BoxError("%s: invalid base64" % field) from None
    if b64(raw) != text:
        raise BoxError("%s: non-canonical base64" % field)
    if size is not None and len(raw) != size:
        raise BoxError("%s: %d bytes, expected %d" % (field, len(raw), size))
    return raw


def raw_public(private_key):
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def box_key(shared, epk, recipient_pub):
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + recipient_pub, info=INFO)
    return hkdf.derive(shared)


def seal(plaintext, recipient_pub, aad, esk=None, nonce=None):
    if esk is None:
        esk = x25519.X25519PrivateKey.generate()
    if nonce is None:
        nonce = os.urandom(12)
    epk = raw_public(esk)
    shared = esk.exchange(x25519.X25519PublicKey.from_public_bytes(recipient_pub))
    ciphertext = AESGCM(box_key(shared, epk, recipient_pub)).encrypt(nonce, plaintext, aad)
    return {"alg": ALG, "epk": b64(epk), "nonce": b64(nonce), "ciphertext": b64(ciphertext)}


def open_box(box, priv, aad):
    if not isinstance(box, dict):
        raise BoxError("sealed: not an object")
    if box.get("alg") != ALG:
        raise BoxError("alg: expected %s" % ALG)
    epk = unb64(box.get("epk"), "epk", 32)
    nonce = unb64(box.get("nonce"), "nonce", 12)
    ciphertext = unb64(box.get("ciphertext"), "ciphertext")
    if len(ciphertext) < 16:
        raise BoxError("ciphertext: shorter than the tag")
    try:
        shared = priv.exchange(x25519.X25519PublicKey.from_public_bytes(epk))
    except ValueError:
        raise BoxError("epk: unusable public key") from None
    try:
        return AESGCM(box_key(shared, epk, raw_public(priv))).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise BoxError("authentication failed") from None


def main(argv):
    if not argv:
        sys.stderr.write(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "check" and not args:
        x25519.X25519PrivateKey.generate()  # proves the backend works, not just imports
        return 0
    if cmd == "keygen" and not args:
        key = x25519.X25519PrivateKey.generate()
        private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        print(json.dumps({"public": b64(raw_public(key)), "private": b64(private)}))
        return 0
    if cmd == "seal" and len(args) in (2, 6):
        pub = unb64(args[0], "public key", 32)
        esk = nonce = None
        opts = dict(zip(args[2::2], args[3::2]))
        if set(opts) - {"--esk", "--nonce"}:
            sys.stderr.write("sealbox.py: seal takes only --esk and --nonce\n")
            return 2
        if "--esk" in opts:
            esk = x25519.X25519PrivateKey.from_private_bytes(unb64(opts["--esk"], "--esk", 32))
        if "--nonce" in opts:
            nonce = unb64(opts["--nonce"], "--nonce", 12)
        box = seal(sys.stdin.buffer.read(), pub, args[1].encode("utf-8"), esk, nonce)
        print(json.dumps(box))
        return 0
    if cmd == "open" and len(args) == 2:
        priv = x25519.X25519PrivateKey.from_private_bytes(unb64(args[0], "private key", 32))
        try:
            box = json.loads(sys.stdin.buffer.read())
        except ValueError as exc:
            raise BoxError("input is not JSON (%s)" % exc) from None
        sys.stdout.buffer.write(open_box(box, priv, args[1].encode("utf-8")))
        return 0
    sys.stderr.write("sealbox.py: unknown command or wrong arguments; run without any for help\n")
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BoxError as exc:
        sys.stderr.write("sealbox.py: %s\n" % exc)
        sys.exit(1)
