"""Integrity of weight files: SHA-256 digests and Ed25519 signatures.

Keys and signature files are small text files (formats documented in
``crates/oxmx-io/src/sign.rs`` and ``docs/SECURITY.md``)::

    python -m oxmx.security keygen KEY            # writes KEY (secret, mode 0600) and KEY.pub
    python -m oxmx.security sign --key KEY FILE   # writes FILE.sig
    python -m oxmx.security verify --key KEY.pub FILE   # exit status 0 only if valid

From Python::

    from oxmx import security
    secret, public = security.generate_keypair()
    security.sign("model.safetensors", secret)           # model.safetensors.sig
    security.verify("model.safetensors", public)         # raises IntegrityError if not
    mx.load("model.safetensors", verify=public)          # refuses before parsing if not

The signature covers the file's SHA-256 and length under a domain-separation prefix; a
single changed bit anywhere in the file (or in the signature) fails verification.
"""

import argparse
import os
import secrets
import sys

from oxmx import _oxmx as _native
from oxmx._errors import IntegrityError

__all__ = [
    "IntegrityError",
    "generate_keypair",
    "public_key",
    "save_keypair",
    "load_secret_key",
    "load_public_key",
    "digest",
    "sign",
    "verify",
    "main",
]


def generate_keypair():
    """A new (secret, public) pair of 32-byte keys (the secret from ``secrets``)."""
    seed = secrets.token_bytes(32)
    return seed, bytes(_native._sec_public_key(seed))


def public_key(secret):
    """The public key of a secret key (bytes, or anything ``load_secret_key`` takes)."""
    return bytes(_native._sec_public_key(_secret_key_bytes(secret)))


def _read_small(path, limit=4096):
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"[security] {os.fspath(path)} is too large to be a key or signature file")
    return data


def _secret_key_bytes(key):
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    if isinstance(key, os.PathLike) or (isinstance(key, str) and os.path.isfile(key)):
        key = _read_small(key).decode("ascii", "replace")
    if isinstance(key, str):
        return bytes(_native._sec_parse_key(key, True))
    raise TypeError("[security] a secret key is 32 bytes, key-file text, or a key-file path")


def _public_key_bytes(key):
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return bytes(key)
    if isinstance(key, os.PathLike) or (isinstance(key, str) and os.path.isfile(key)):
        key = _read_small(key).decode("ascii", "replace")
    if isinstance(key, (bytes, bytearray)):
        key = bytes(key).decode("ascii", "replace")
    if isinstance(key, str):
        return bytes(_native._sec_parse_key(key, False))
    raise TypeError("[security] a public key is 32 bytes, 64 hex digits, key-file text, or a key-file path")


def _signature_bytes(sig):
    if isinstance(sig, (bytes, bytearray)):
        return bytes(sig)
    if isinstance(sig, (str, os.PathLike)):
        return _read_small(sig)
    raise TypeError("[security] signature must be the signature file's bytes or its path")


def load_secret_key(path):
    return _secret_key_bytes(os.fspath(path) if isinstance(path, os.PathLike) else path)


def load_public_key(path):
    return _public_key_bytes(os.fspath(path) if isinstance(path, os.PathLike) else path)


def save_keypair(path, secret=None):
    """Write a secret key file at ``path`` (created new, mode 0600) and ``path + '.pub'``.
    Returns the public key."""
    path = os.fspath(path)
    if secret is None:
        secret, _ = generate_keypair()
    secret = _secret_key_bytes(secret)
    pub = public_key(secret)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_native._sec_key_text(secret, True))
    with open(path + ".pub", "w") as f:
        f.write(_native._sec_key_text(pub, False))
    return pub


def digest(file):
    """SHA-256 of a file, as hex."""
    return _native._sec_digest(os.fspath(file))[0]


def _sig_path(file, signature):
    return os.fspath(signature) if signature is not None else os.fspath(file) + ".sig"


def sign(file, secret_key, signature=None):
    """Sign ``file``; writes the detached signature (default ``file + '.sig'``) atomically
    and returns its path."""
    text = _native._sec_sign(os.fspath(file), _secret_key_bytes(secret_key))
    out = _sig_path(file, signature)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return out


def verify(file, public_key, signature=None):
    """Check ``file`` against its detached signature and ``public_key``. Returns True or
    raises ``IntegrityError`` (digest, size, key or signature mismatch, or a missing or
    malformed signature file)."""
    key = _public_key_bytes(public_key)
    if isinstance(signature, (bytes, bytearray)):
        sig = bytes(signature)
    else:
        sp = _sig_path(file, signature)
        try:
            sig = _read_small(sp)
        except (OSError, ValueError) as e:
            raise IntegrityError(f"[verify] {os.fspath(file)}: cannot read the signature file {sp}: {e}") from e
    _native._sec_verify(os.fspath(file), key, sig)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m oxmx.security", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="create a key pair: KEY (secret, 0600) and KEY.pub")
    k.add_argument("key")
    s = sub.add_parser("sign", help="write FILE.sig for each FILE")
    s.add_argument("--key", required=True, help="secret key file")
    s.add_argument("files", nargs="+")
    v = sub.add_parser("verify", help="check each FILE against FILE.sig")
    v.add_argument("--key", required=True, help="public key file (or 64 hex digits)")
    v.add_argument("files", nargs="+")
    d = sub.add_parser("digest", help="print the SHA-256 of each FILE")
    d.add_argument("files", nargs="+")
    a = p.parse_args(argv)
    try:
        if a.cmd == "keygen":
            pub = save_keypair(a.key)
            print(f"secret key: {a.key}\npublic key: {a.key}.pub ({pub.hex()})")
            return 0
        if a.cmd == "digest":
            for f in a.files:
                print(f"{digest(f)}  {f}")
            return 0
        if a.cmd == "sign":
            secret = load_secret_key(a.key)
            for f in a.files:
                print(f"signed {f} -> {sign(f, secret)}")
            return 0
        key = load_public_key(a.key)
        bad = 0
        for f in a.files:
            try:
                verify(f, key)
                print(f"OK {f}")
            except (IntegrityError, OSError) as e:
                bad += 1
                print(f"FAILED {f}: {e}")
        return 1 if bad else 0
    except (OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
