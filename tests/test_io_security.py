"""Signed weights (SHA-256 + Ed25519) and atomic saves."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import oxmx.core as mx
from io_helpers import no_fsync  # noqa: F401
from oxmx import security

IntegrityError = mx.IntegrityError


@pytest.fixture
def keys():
    return security.generate_keypair()


def _model(tmp_path, name="m.safetensors"):
    p = tmp_path / name
    mx.save_safetensors(p, {"w": mx.arange(16, dtype=mx.float32).reshape(4, 4), "b": mx.ones((3,))}, {"a": "b"})
    return p


def test_sign_verify_and_every_single_bit_flip_rejected(tmp_path, keys):
    secret, public = keys
    p = _model(tmp_path)
    sig = security.sign(p, secret)
    assert sig == str(p) + ".sig"
    assert security.verify(p, public) is True
    assert set(mx.load(p, verify=public)) == {"w", "b"}
    good = p.read_bytes()
    for i in range(len(good) * 8):
        d = bytearray(good)
        d[i // 8] ^= 1 << (i % 8)
        p.write_bytes(bytes(d))
        with pytest.raises(IntegrityError):
            security.verify(p, public)
        if i % 97 == 0:  # through load too (slower: it reads the file each time)
            with pytest.raises(IntegrityError, match="SHA-256 mismatch"):
                mx.load(p, verify=public)
    p.write_bytes(good + b"\0")
    with pytest.raises(IntegrityError, match="size mismatch"):
        mx.load(p, verify=public)
    p.write_bytes(good)
    assert security.verify(p, public)


def test_signature_file_tampering(tmp_path, keys):
    secret, public = keys
    p = _model(tmp_path)
    security.sign(p, secret)
    sig_path = tmp_path / "m.safetensors.sig"
    good = sig_path.read_bytes()
    # flip one bit in each hex digit of the signature line (still hex: a wrong signature)
    lines = good.decode().splitlines(keepends=True)
    sig_line = next(i for i, l in enumerate(lines) if l.startswith("signature: "))
    for j in range(len("signature: "), len(lines[sig_line]) - 1, 9):
        ch = lines[sig_line][j]
        alt = "0" if ch != "0" else "1"
        tampered = lines[:]
        tampered[sig_line] = lines[sig_line][:j] + alt + lines[sig_line][j + 1:]
        sig_path.write_text("".join(tampered))
        with pytest.raises(IntegrityError, match="signature is invalid"):
            mx.load(p, verify=public)
    for broken in [b"", b"garbage", good + b"extra\n", good.replace(b"size: ", b"size: -"), b"x" * 5000]:
        sig_path.write_bytes(broken)
        with pytest.raises(IntegrityError):
            mx.load(p, verify=public)
    sig_path.unlink()
    with pytest.raises(IntegrityError, match="signature file"):
        mx.load(p, verify=public)
    with pytest.raises(IntegrityError):
        security.verify(p, public)


def test_wrong_key_and_key_forms(tmp_path, keys):
    secret, public = keys
    p = _model(tmp_path)
    security.sign(p, secret)
    _, other = security.generate_keypair()
    with pytest.raises(IntegrityError, match="not by the expected key"):
        mx.load(p, verify=other)
    # the public key as hex, as key-file text, as a key file path
    pub_file = tmp_path / "k"
    security.save_keypair(pub_file, secret)
    assert (os.stat(pub_file).st_mode & 0o777) == 0o600
    for k in (public.hex(), (tmp_path / "k.pub").read_text(), str(tmp_path / "k.pub"), tmp_path / "k.pub"):
        assert set(mx.load(p, verify=k)) == {"w", "b"}
    assert security.public_key(str(pub_file)) == public
    with pytest.raises(ValueError):
        mx.load(p, verify="not a key")


def test_verification_happens_before_parsing(tmp_path, keys):
    secret, public = keys
    p = tmp_path / "evil.safetensors"
    p.write_bytes(b"\xff" * 8 + b"{}")
    security.sign(p, secret)
    # correctly signed but malformed: verification passes, then parsing refuses it
    with pytest.raises(mx.FormatError) as e:
        mx.load(p, verify=public)
    assert not isinstance(e.value, IntegrityError)
    # malformed and not signed by this key: refused as an integrity failure, before parsing
    _, other = security.generate_keypair()
    with pytest.raises(IntegrityError):
        mx.load(p, verify=other)


@pytest.mark.parametrize("fmt", ["npy", "npz", "gguf"])
def test_verify_every_format_and_file_objects(tmp_path, keys, fmt):
    secret, public = keys
    x = mx.arange(10, dtype=mx.float32)
    p = tmp_path / f"f.{fmt}"
    {"npy": lambda: mx.save(p, x), "npz": lambda: mx.savez(p, x=x), "gguf": lambda: mx.save_gguf(p, {"x": x})}[fmt]()
    security.sign(p, secret)
    got = mx.load(p, verify=public)
    got = got if fmt == "npy" else got["x"]
    assert got.tolist() == list(range(10))
    sig = (tmp_path / f"f.{fmt}.sig").read_bytes()
    with open(p, "rb") as f:
        assert mx.load(f, format=fmt, verify=public, signature=sig) is not None
    with open(p, "rb") as f:
        with pytest.raises(IntegrityError, match="signature="):
            mx.load(f, format=fmt, verify=public)
    d = bytearray(p.read_bytes())
    d[-1] ^= 1
    p.write_bytes(bytes(d))
    with pytest.raises(IntegrityError):
        mx.load(p, verify=public)


def test_sharded_checkpoint_verification(tmp_path, keys, no_fsync):
    secret, public = keys
    mx.save_safetensors(tmp_path / "a.safetensors", {"x": mx.ones((2,))})
    mx.save_safetensors(tmp_path / "b.safetensors", {"y": mx.zeros((2,))})
    idx = tmp_path / "model.safetensors.index.json"
    idx.write_text(json.dumps({"weight_map": {"x": "a.safetensors", "y": "b.safetensors"}}))
    for f in ("a.safetensors", "b.safetensors", "model.safetensors.index.json"):
        security.sign(tmp_path / f, secret)
    assert set(mx.load(idx, verify=public)) == {"x", "y"}
    d = bytearray((tmp_path / "b.safetensors").read_bytes())
    d[-1] ^= 0x40
    (tmp_path / "b.safetensors").write_bytes(bytes(d))
    with pytest.raises(IntegrityError, match="b.safetensors"):
        mx.load(idx, verify=public)
    # the index itself is covered
    idx.write_text(json.dumps({"weight_map": {"x": "a.safetensors"}}))
    with pytest.raises(IntegrityError):
        mx.load(idx, verify=public)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "oxmx.security", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_command_line(tmp_path):
    p = _model(tmp_path)
    r = _cli("keygen", tmp_path / "key")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "key").exists() and (tmp_path / "key.pub").exists()
    assert _cli("sign", "--key", tmp_path / "key", p).returncode == 0
    r = _cli("verify", "--key", tmp_path / "key.pub", p)
    assert r.returncode == 0 and "OK" in r.stdout
    r = _cli("digest", p)
    assert r.stdout.split()[0] == security.digest(p)
    import hashlib

    assert security.digest(p) == hashlib.sha256(p.read_bytes()).hexdigest()
    d = bytearray(p.read_bytes())
    d[10] ^= 1
    p.write_bytes(bytes(d))
    r = _cli("verify", "--key", tmp_path / "key.pub", p)
    assert r.returncode == 1 and "FAILED" in r.stdout
    assert _cli("keygen", tmp_path / "key").returncode == 2  # never overwrites a key


# ---------------------------------------------------------------- atomic saves
def _listing(d):
    return sorted(os.listdir(d))


def test_failed_save_keeps_old_file_and_leaves_nothing(tmp_path):
    p = tmp_path / "w.safetensors"
    mx.save_safetensors(p, {"a": mx.ones((4,))})
    old = p.read_bytes()
    bad = mx.take(mx.arange(4), mx.array([100]))  # fails when evaluated, during the save
    for save in [
        lambda: mx.save_safetensors(p, {"a": mx.ones((1000,)), "b": bad}),
        lambda: mx.save(tmp_path / "w.safetensors", bad),
    ]:
        with pytest.raises(IndexError):
            save()
        assert p.read_bytes() == old
        assert _listing(tmp_path) == ["w.safetensors"]
    with pytest.raises(ValueError):  # duplicate-free, bad metadata: refused
        mx.save_gguf(tmp_path / "w.gguf", {"a": mx.ones((2,), dtype=mx.uint8)})
    assert _listing(tmp_path) == ["w.safetensors"]
    with pytest.raises(OSError):
        mx.save(tmp_path / "no" / "such" / "dir.npy", mx.ones((2,)))
    (tmp_path / "adir.npy").mkdir()
    with pytest.raises(OSError):
        mx.save(tmp_path / "adir.npy", mx.ones((2,)))
    assert _listing(tmp_path) == ["adir.npy", "w.safetensors"]


def test_file_object_failure_writes_nothing(tmp_path):
    import io

    f = io.BytesIO()
    with pytest.raises(IndexError):
        mx.savez(f, a=mx.ones((3,)), b=mx.take(mx.arange(4), mx.array([100])))
    assert f.getvalue() == b""


_CHILD = """
import sys, oxmx.core as mx
a = mx.ones((64, 1024, 1024), dtype=mx.float32)  # 256 MiB
mx.eval(a)
print("ready", flush=True)
sys.stdin.readline()
while True:
    mx.save(sys.argv[1], a)
"""


def test_killed_mid_save_leaves_old_or_new_file_never_partial(tmp_path):
    p = tmp_path / "big.npy"
    small = np.arange(10, dtype=np.float32)
    np.save(p, small)
    old = p.read_bytes()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(p)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.stdin.write("go\n")
        child.stdin.flush()
        deadline = time.time() + 60
        while time.time() < deadline and not any(".oxmx-tmp-" in n for n in os.listdir(tmp_path)):
            time.sleep(0.001)
        time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    got = np.load(p)  # a complete file: the old one or a whole new one
    if got.shape == small.shape:
        assert p.read_bytes() == old
    else:
        assert got.shape == (64, 1024, 1024) and bool(np.all(got == 1.0))
    # the killed process's temporary file (if any) is removed by the next save
    mx.save(p, mx.ones((2,)))
    assert _listing(tmp_path) == ["big.npy"]


def test_durable_saves_on_request(tmp_path, monkeypatch):
    # OXMX_SAVE_FSYNC=1 (here: the module flag it sets) fsyncs file and directory; the
    # result and the absence of stray files are the same as for the default save
    from oxmx.core import _io

    monkeypatch.setattr(_io, "_SYNC", True)
    a = mx.arange(10, dtype=mx.float32)
    mx.save(str(tmp_path / "d.npy"), a)
    mx.savez(str(tmp_path / "d.npz"), a=a)
    mx.save_safetensors(str(tmp_path / "d.safetensors"), {"a": a})
    assert mx.load(str(tmp_path / "d.npy")).tolist() == a.tolist()
    for name in ("d.npz", "d.safetensors"):
        assert mx.load(str(tmp_path / name))["a"].tolist() == a.tolist()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.npy", "d.npz", "d.safetensors"]
