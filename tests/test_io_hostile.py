"""Hostile model files: every class of malformed input must raise ``FormatError``
(a ``ValueError`` and a ``RuntimeError``) naming the file — never a crash, a Rust panic
(conftest fails any test that sees a PanicException), a huge allocation, code
execution, or a file written outside the checkpoint."""

import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

import oxmx.core as mx
from io_helpers import no_fsync  # noqa: F401

FormatError = mx.FormatError


def bad(path, fmt=None, match=None):
    """Loading `path` raises FormatError naming the file (and `match` when given)."""
    with pytest.raises(FormatError) as e:
        mx.load(path, format=fmt)
    msg = str(e.value)
    assert os.path.basename(str(path)) in msg, msg
    if match:
        assert match in msg, msg
    assert isinstance(e.value, ValueError) and isinstance(e.value, RuntimeError)
    return msg


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


# ============================================================== npy
def npy_bytes(header: str, data=b"", version=(1, 0), hlen=None):
    h = header.encode("latin1")
    if version == (1, 0):
        pre = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h) if hlen is None else hlen)
    else:
        pre = b"\x93NUMPY" + bytes(version) + struct.pack("<I", len(h) if hlen is None else hlen)
    return pre + h + data


def test_npy_truncated_at_every_length(tmp_path):
    good = io.BytesIO()
    np.save(good, np.arange(6, dtype=np.float64).reshape(2, 3))
    good = good.getvalue()
    for n in range(len(good)):
        bad(write(tmp_path, "t.npy", good[:n]))
    # trailing garbage is refused too (the file must hold exactly the data)
    bad(write(tmp_path, "t.npy", good + b"\0"), match="mismatch")


def test_npy_header_length_beyond_file(tmp_path):
    # CVE-2025-62608 (MLX): a header length larger than the file was read past the buffer
    for hlen, ver in [(0xFFFF, (1, 0)), (0xFFFFFFFF, (2, 0)), (60000, (3, 0)), (70000, (2, 0))]:
        p = write(tmp_path, "h.npy", npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4,
                                               version=ver, hlen=hlen))
        bad(p)


@pytest.mark.parametrize("header,match", [
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }", "overflows"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", "mismatch"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", "non-negative"),
    ("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", "unsupported dtype"),
    ("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", "unsupported dtype"),
    ("{'descr': '<U4', 'fortran_order': False, 'shape': (1,), }", "unsupported dtype"),
    ("{'descr': 'potato', 'fortran_order': False, 'shape': (1,), }", "unsupported dtype"),
    ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "structured"),
    ("{'descr': '|f4', 'fortran_order': False, 'shape': (1,), }", "byte order"),
    ("{'descr': '<f4', 'fortran_order': 1, 'shape': (1,), }", "True or False"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}", "unexpected key"),
    ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", "duplicate"),
    ("{'descr': '<f4', 'shape': (1,), }", "fortran_order"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1), }", "trailing comma"),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 100 + "1,)", ""),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 65 + "), }", "dimensions"),
    ("__import__('os').system('touch /tmp/oxmx_pwned')", ""),
    ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } trailing", "trailing"),
])
def test_npy_malformed_headers(tmp_path, header, match):
    bad(write(tmp_path, "m.npy", npy_bytes(header, b"\0" * 4)), match=match)
    assert not os.path.exists("/tmp/oxmx_pwned")


def test_npy_bad_magic_and_version(tmp_path):
    ok = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", b"\0" * 4)
    bad(write(tmp_path, "a.npy", b"\x93NUMPZ" + ok[6:]), match="magic")
    bad(write(tmp_path, "b.npy", ok[:6] + b"\x09\x09" + ok[8:]), match="version")
    bad(write(tmp_path, "c.npy", b""))


def test_npy_pickle_is_never_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    arr = np.array([Evil()], dtype=object)
    with open(tmp_path / "evil.npy", "wb") as f:
        np.lib.format.write_array(f, arr, allow_pickle=True)
    bad(tmp_path / "evil.npy", match="unsupported dtype")
    assert not (tmp_path / "pwned").exists()
    # a raw pickle stream under an .npy name is not an npy file
    write(tmp_path, "p.npy", pickle.dumps(Evil()))
    bad(tmp_path / "p.npy")
    assert not (tmp_path / "pwned").exists()


# ============================================================== npz
def npz_of(**arrays):
    b = io.BytesIO()
    np.savez(b, **arrays)
    return b.getvalue()


def test_npz_truncated_and_flipped(tmp_path):
    good = npz_of(a=np.arange(5, dtype=np.int32), b=np.ones(3))
    for n in range(0, len(good), 7):
        bad(write(tmp_path, "t.npz", good[:n]))
    # a flipped data byte: CRC mismatch (or an npy error), never silent garbage
    data_at = good.index(b"\x93NUMPY") + 128 + 2
    flipped = bytearray(good)
    flipped[data_at] ^= 0xFF
    bad(write(tmp_path, "f.npz", bytes(flipped)))


def test_npz_random_byte_flips_never_crash(tmp_path):
    good = io.BytesIO()
    np.savez_compressed(good, a=np.arange(50, dtype=np.int64), b=np.ones((3, 3)))
    good = good.getvalue()
    rng = np.random.default_rng(0)
    for _ in range(300):
        d = bytearray(good)
        for i in rng.integers(0, len(d), rng.integers(1, 4)):
            d[i] = rng.integers(0, 256)
        p = write(tmp_path, "r.npz", bytes(d))
        try:
            mx.load(p)
        except FormatError:
            pass


def _zip_with(tmp_path, name, members, method=zipfile.ZIP_STORED):
    p = tmp_path / name
    with zipfile.ZipFile(p, "w", compression=method) as z:
        for n, data in members:
            z.writestr(n, data)
    return p


def _npy(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def test_npz_member_rules(tmp_path):
    a = _npy(np.arange(3))
    bad(_zip_with(tmp_path, "x.npz", [("a.npy", a), ("README.txt", b"hi")]), match="not an .npy")
    with pytest.warns(UserWarning):
        p = _zip_with(tmp_path, "d.npz", [("a.npy", a), ("a.npy", a)])
    bad(p, match="duplicate")
    bad(_zip_with(tmp_path, "n.npz", [("a.npy", b"not npy at all")]))
    # bzip2 (method 12) is not accepted
    bad(_zip_with(tmp_path, "b.npz", [("a.npy", a)], zipfile.ZIP_BZIP2), match="method")


def test_npz_names_are_data_not_paths(tmp_path):
    a = _npy(np.arange(3))
    p = _zip_with(tmp_path, "t.npz", [("../../evil.npy", a), ("/abs/x.npy", a)])
    got = mx.load(p)
    assert set(got) == {"../../evil", "/abs/x"}
    assert not (tmp_path.parent.parent / "evil.npy").exists()
    assert sorted(os.listdir(tmp_path)) == ["t.npz"]


def _patch(data, old, new):
    i = data.index(old)
    return data[:i] + new + data[i + len(old):]


def test_npz_lying_sizes_and_bombs(tmp_path):
    a = _npy(np.zeros(1000))
    good = _zip_with(tmp_path, "g.npz", [("a.npy", a)], zipfile.ZIP_DEFLATED).read_bytes()
    # claim a huge uncompressed size in the central directory (a zip bomb's lie)
    cd = good.rindex(b"PK\x01\x02")
    d = bytearray(good)
    struct.pack_into("<I", d, cd + 24, 0xFFFFFFF0)
    bad(write(tmp_path, "bomb.npz", bytes(d)), match="ratio")
    # claim a smaller size than the data inflates to
    d = bytearray(good)
    struct.pack_into("<I", d, cd + 24, 100)
    bad(write(tmp_path, "small.npz", bytes(d)))
    # central directory offset beyond the file
    eocd = good.rindex(b"PK\x05\x06")
    d = bytearray(good)
    struct.pack_into("<I", d, eocd + 16, 0x7FFFFFFF)
    bad(write(tmp_path, "cdoff.npz", bytes(d)), match="outside")
    # entry count larger than the directory can hold
    d = bytearray(good)
    struct.pack_into("<HH", d, eocd + 8, 0xFFFE, 0xFFFE)
    bad(write(tmp_path, "count.npz", bytes(d)))
    # encrypted flag
    d = bytearray(good)
    struct.pack_into("<H", d, cd + 8, 1)
    bad(write(tmp_path, "enc.npz", bytes(d)), match="encrypted")
    # local header offset pointing elsewhere
    d = bytearray(good)
    struct.pack_into("<I", d, cd + 42, 5)
    bad(write(tmp_path, "loc.npz", bytes(d)))


def test_npz_overlapping_members(tmp_path):
    # Two central-directory entries whose data is the same bytes (the overlapping zip bomb).
    a = _npy(np.arange(4))
    good = _zip_with(tmp_path, "one.npz", [("a.npy", a)]).read_bytes()
    cd = good.rindex(b"PK\x01\x02")
    eocd = good.rindex(b"PK\x05\x06")
    entry = good[cd:eocd]
    entry2 = entry.replace(b"a.npy", b"b.npy")
    body = good[:cd] + entry + entry2
    end = bytearray(good[eocd:])
    struct.pack_into("<HHI", end, 8, 2, 2, len(entry) * 2)
    bad(write(tmp_path, "ov.npz", body + bytes(end)))


# ============================================================== safetensors
def st_bytes(header, data=b"", hlen=None):
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if hlen is None else hlen) + h + data


def test_safetensors_truncated_at_every_length(tmp_path, no_fsync):
    mx.save_safetensors(tmp_path / "g.safetensors", {"a": mx.ones((3, 2)), "b": mx.arange(4)}, {"m": "v"})
    good = (tmp_path / "g.safetensors").read_bytes()
    for n in range(len(good)):
        bad(write(tmp_path, "t.safetensors", good[:n]))


F32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("header,match", [
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}}, "span"),
    ({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, "past the end"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, "past the end"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [2**64 - 8, 2**64 - 1 + 1 - 1]}}, ""),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, "end before"),
    ({"x": {"dtype": "F32", "shape": [2**62, 2**3], "data_offsets": [0, 8]}}, "overflows"),
    ({"x": {"dtype": "F32", "shape": [2**40], "data_offsets": [0, 2**42]}}, "past the end"),
    ({"x": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, "integer"),
    ({"x": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, "fraction"),
    ({"x": {"dtype": "F99", "shape": [2], "data_offsets": [0, 8]}}, "unsupported dtype"),
    ({"x": {"dtype": "F4", "shape": [2], "data_offsets": [0, 8]}}, "unsupported dtype"),
    ({"x": {"dtype": 7, "shape": [2], "data_offsets": [0, 8]}}, "JSON"),
    ({"x": {"shape": [2], "data_offsets": [0, 8]}}, "no dtype"),
    ({"x": {"dtype": "F32", "data_offsets": [0, 8]}}, "no shape"),
    ({"x": {"dtype": "F32", "shape": [2]}}, "no data_offsets"),
    ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 9]}}, "longer than 2"),
    ({"x": {"dtype": "F32", "shape": [1] * 65, "data_offsets": [0, 4]}}, "longer than 64"),
    ({"x": F32, "y": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, "overlap"),
    ({"__metadata__": {"k": 1}, "x": F32}, "not a string"),
    ({"__metadata__": [], "x": F32}, "JSON"),
    ({"x": [1, 2]}, "JSON"),
])
def test_safetensors_malformed_headers(tmp_path, header, match):
    bad(write(tmp_path, "m.safetensors", st_bytes(header, b"\0" * 8)), match=match)


@pytest.mark.parametrize("raw,match", [
    (b'{"x":' + json.dumps(F32).encode() + b',"x":' + json.dumps(F32).encode() + b"}", "duplicate"),
    (b'{"x":' + json.dumps(F32).encode(), "JSON"),
    (b'{"x":' + json.dumps(F32).encode() + b"}}", "trailing"),
    (b'{"__metadata__":{"a":"b","a":"c"},"x":' + json.dumps(F32).encode() + b"}", "duplicate"),
    (b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"junk":' + b"[" * 100000 + b"]" * 100000 + b"}}",
     "nesting"),
    (b'{"\xff\xfe":' + json.dumps(F32).encode() + b"}", "UTF-8"),
    (b'{"x\\ud800":' + json.dumps(F32).encode() + b"}", "surrogate"),
    (b"[]", "start with"),
    (b"", ""),
])
def test_safetensors_malformed_json(tmp_path, raw, match):
    bad(write(tmp_path, "j.safetensors", st_bytes(raw, b"\0" * 8)), match=match)


def test_safetensors_header_length_lies(tmp_path):
    h = json.dumps({"x": F32}).encode()
    for hlen in [len(h) + 9, 2**63, 2**64 - 1, 100_000_001]:
        bad(write(tmp_path, "l.safetensors", st_bytes(h, b"\0" * 8, hlen=hlen)))


def test_safetensors_terabyte_claim_is_format_error_not_memory_error(tmp_path):
    # a 1 TiB tensor claimed by a tiny file is refused by the size check, before allocating
    h = {"x": {"dtype": "U8", "shape": [2**40], "data_offsets": [0, 2**40]}}
    bad(write(tmp_path, "tb.safetensors", st_bytes(h, b"\0" * 8)), match="past the end")


# ============================================================== sharded checkpoints
@pytest.mark.parametrize("shard", [
    "../outside.safetensors", "a/../../outside.safetensors", "/etc/passwd", "..", ".", "",
    "sub//x.safetensors", "./x.safetensors", "x\\..\\y", "x\x00y", "C:\\Windows\\x",
])
def test_index_path_traversal_refused(tmp_path, no_fsync, shard):
    ck = tmp_path / "ck"
    ck.mkdir()
    mx.save_safetensors(tmp_path / "outside.safetensors", {"w": mx.ones((2,))})
    idx = ck / "model.safetensors.index.json"
    idx.write_text(json.dumps({"weight_map": {"w": shard}}))
    bad(idx, match="shard name")


def test_index_malformed(tmp_path, no_fsync):
    mx.save_safetensors(tmp_path / "a.safetensors", {"w": mx.ones((2,))})
    cases = [
        ({"weight_map": {"w": 3}}, "not a file name"),
        ({"metadata": {}}, "weight_map"),
        ({"weight_map": {"missing": "a.safetensors"}}, "not found there"),
        ({"weight_map": {"w": "a.safetensors"}, "metadata": {"deep": json.loads("[" * 60 + "]" * 60)}}, None),
    ]
    for i, (obj, match) in enumerate(cases):
        idx = tmp_path / f"m{i}.index.json"
        idx.write_text(json.dumps(obj))
        if match is None:
            assert list(mx.load(idx)) == ["w"]
        else:
            bad(idx, match=match)
    deep = tmp_path / "deep.index.json"
    deep.write_text('{"metadata":' + "[" * 10000 + "]" * 10000 + ',"weight_map":{}}')
    bad(deep, match="nesting")
    dup = tmp_path / "dup.index.json"
    dup.write_text('{"weight_map":{"w":"a.safetensors","w":"a.safetensors"}}')
    bad(dup, match="duplicate")
    # a shard that is itself malformed is named in the error
    write(tmp_path, "broken.safetensors", b"\x05" + b"\0" * 7 + b"{}")
    idx = tmp_path / "b.index.json"
    idx.write_text(json.dumps({"weight_map": {"w": "broken.safetensors"}}))
    assert "broken.safetensors" in bad(idx)


# ============================================================== GGUF
class G:
    """A GGUF file builder that can lie about anything."""

    def __init__(self, version=3, n_tensors=None, n_kv=None):
        self.kv = []
        self.ti = []
        self.data = b""
        self.version, self.n_tensors, self.n_kv = version, n_tensors, n_kv
        self.align = 32

    @staticmethod
    def s(x, n=None):
        b = x.encode() if isinstance(x, str) else x
        return struct.pack("<Q", len(b) if n is None else n) + b

    def add_kv(self, key, vtype, payload):
        self.kv.append(self.s(key) + struct.pack("<I", vtype) + payload)
        return self

    def add_tensor(self, name, dims, ttype, offset, name_len=None):
        self.ti.append(self.s(name, name_len) + struct.pack("<I", len(dims))
                       + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<II", ttype, 0)[:4]
                       + struct.pack("<Q", offset))
        return self

    def bytes(self):
        out = b"GGUF" + struct.pack("<I", self.version)
        out += struct.pack("<QQ", len(self.ti) if self.n_tensors is None else self.n_tensors,
                           len(self.kv) if self.n_kv is None else self.n_kv)
        out += b"".join(self.kv) + b"".join(self.ti)
        out += b"\0" * (-len(out) % self.align)
        return out + self.data


def test_gguf_truncated_at_every_length(tmp_path, no_fsync):
    mx.save_gguf(tmp_path / "g.gguf", {"w": mx.ones((2, 3)), "b": mx.arange(5)}, {"a": "x", "t": ["p", "q"],
                                                                                   "n": mx.array(3)})
    good = (tmp_path / "g.gguf").read_bytes()
    for n in range(len(good)):
        bad(write(tmp_path, "t.gguf", good[:n]))


def ok_tensor(g):
    g.add_tensor("w", [4], 0, 0)
    g.data = b"\0" * 16
    return g


@pytest.mark.parametrize("build,match", [
    (lambda: G(n_tensors=2**63), "tensor count"),
    (lambda: G(n_kv=2**63), "metadata count"),
    (lambda: G(n_kv=10**6), "metadata count"),
    (lambda: G(version=1), "version"),
    (lambda: G(version=0x03000000), "big-endian"),
    (lambda: ok_tensor(G().add_kv("k", 8, G.s("x", 2**63))), "string length"),
    (lambda: ok_tensor(G().add_kv("k", 8, G.s("x", 1000))), "left in the file"),
    (lambda: ok_tensor(G().add_kv("k", 8, G.s(b"\xff\xfe"))), "UTF-8"),
    (lambda: ok_tensor(G().add_kv("k", 9, struct.pack("<IQ", 10, 2**40))), "array of"),
    (lambda: ok_tensor(G().add_kv("k", 9, struct.pack("<IQ", 10, 2**60))), "cap"),
    (lambda: ok_tensor(G().add_kv("k", 9, struct.pack("<IQ", 8, 2**20))), "strings cannot fit"),
    (lambda: ok_tensor(G().add_kv("k", 9, struct.pack("<IQ", 9, 1) + struct.pack("<IQ", 9, 1) * 50)), "nested"),
    (lambda: ok_tensor(G().add_kv("k", 13, b"\0" * 8)), "unknown value type"),
    (lambda: ok_tensor(G().add_kv("k", 9, struct.pack("<IQ", 99, 1))), "unknown array element"),
    (lambda: ok_tensor(G().add_kv("k", 4, b"\1\0\0\0").add_kv("k", 4, b"\1\0\0\0")), "duplicate metadata"),
    (lambda: ok_tensor(G().add_kv("general.alignment", 4, struct.pack("<I", 3))), "power of two"),
    (lambda: ok_tensor(G().add_kv("general.alignment", 4, struct.pack("<I", 0))), "power of two"),
    (lambda: ok_tensor(G().add_kv("general.alignment", 4, struct.pack("<I", 2**31))), "power of two"),
    (lambda: ok_tensor(G().add_kv("general.alignment", 8, G.s("32"))), "uint32"),
    (lambda: ok_tensor(G()).add_tensor("w", [4], 0, 0), "duplicate tensor"),
    (lambda: G().add_tensor("w", [4], 0, 2**63), "runs past"),
    (lambda: G().add_tensor("w", [2**62, 16], 0, 0), "overflows"),
    (lambda: G().add_tensor("w", [2**40], 0, 0), "runs past"),
    (lambda: G().add_tensor("w", [4], 0, 7), "alignment"),
    (lambda: G().add_tensor("w", [4], 16, 0), "unsupported GGUF tensor type IQ2_XXS"),
    (lambda: G().add_tensor("w", [4], 99, 0), "unsupported GGUF tensor type 99"),
    (lambda: G().add_tensor("w", [128], 12, 0), "256-element block"),
    (lambda: G().add_tensor("w", [4], 2, 0), "block"),
    (lambda: G().add_tensor("w", [1] * 100, 0, 0), "dimensions"),
    (lambda: G().add_tensor("w", [1] * 5, 0, 0), '"w": 5 dimensions'),
    (lambda: G().add_tensor("w", [2**63 + 1], 0, 0), "negative"),
    (lambda: G().add_tensor("w", [4], 0, 0, name_len=2**62), "string length"),
])
def test_gguf_malformed(tmp_path, build, match):
    bad(write(tmp_path, "m.gguf", build().bytes()), match=match)


def test_gguf_overlapping_tensors(tmp_path):
    g = G().add_tensor("a", [8], 0, 0).add_tensor("b", [8], 0, 0)
    g.data = b"\0" * 32
    bad(write(tmp_path, "o.gguf", g.bytes()), match="overlap")


def test_gguf_random_mutations_never_crash(tmp_path, no_fsync):
    mx.save_gguf(tmp_path / "g.gguf", {"w": mx.ones((4, 8)), "i": mx.arange(6)},
                 {"name": "n", "toks": ["a", "bb", "ccc"], "v": mx.array([1, 2, 3]), "f": mx.array(0.5)})
    good = (tmp_path / "g.gguf").read_bytes()
    rng = np.random.default_rng(1)
    specials = [0, 1, 0xFF, 0xFFFFFFFF, 2**63, 2**64 - 1]
    for _ in range(400):
        d = bytearray(good)
        i = int(rng.integers(0, len(d) - 8))
        if rng.random() < 0.5:
            struct.pack_into("<Q", d, i, specials[rng.integers(0, len(specials))])
        else:
            d[i] ^= 1 << int(rng.integers(0, 8))
        p = write(tmp_path, "r.gguf", bytes(d))
        try:
            mx.load(p, return_metadata=True)
        except FormatError:
            pass


# ============================================================== every format through file objects
def test_file_objects_are_validated_the_same(tmp_path):
    for fmt, data in [("npy", b"\x93NUMPY\x01\x00\xff\xff{"), ("npz", b"PK\x05\x06" + b"\0" * 4 + b"\x05\0\x05\0" + b"\0" * 10),
                      ("safetensors", struct.pack("<Q", 2**40) + b"{}"), ("gguf", b"GGUF" + b"\xff" * 20)]:
        f = io.BytesIO(data)
        f.name = f"obj.{fmt}"
        with pytest.raises(FormatError, match="obj"):
            mx.load(f)
