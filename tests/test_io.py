"""mx.load / mx.save / savez / savez_compressed / save_safetensors / save_gguf:
round trips for every format x dtype x shape x layout, and interoperability both ways
with NumPy, the `safetensors` package and the `gguf` package (bit for bit)."""

import io
import json
import os
import zlib

import gguf
import ml_dtypes
import numpy as np
import pytest
import safetensors.numpy as stnp

import oxmx.core as mx
from io_helpers import ALL_DTYPES, GGUF_DTYPES, SHAPES, no_fsync, np_raw, raw, same, special  # noqa: F401
from oxmx_testing import VIEW_KINDS, npdt, to_mx, view_of

NP_NATIVE = [d for d in ALL_DTYPES if d != "bfloat16"]


def _np_of(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else npdt(name)


# ---------------------------------------------------------------- round trips (oxmx -> oxmx)
@pytest.mark.parametrize("name", ALL_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_round_trip_npy_npz_safetensors(tmp_path, no_fsync, name, shape, kind):
    rng = np.random.default_rng(zlib.crc32(repr((name, shape, kind)).encode()))  # stable per case
    a = special(rng, shape, name)
    x = view_of(a, name, kind)
    mx.save(tmp_path / "a.npy", x)
    same(mx.load(tmp_path / "a.npy"), a, name)
    mx.savez(tmp_path / "z.npz", x, y=x)
    d = mx.load(str(tmp_path / "z.npz"))
    assert sorted(d) == ["arr_0", "y"]
    same(d["arr_0"], a, name)
    same(d["y"], a, name)
    mx.savez_compressed(tmp_path / "c.npz", w=x)
    same(mx.load(tmp_path / "c.npz")["w"], a, name)
    mx.save_safetensors(tmp_path / "s.safetensors", {"w": x, "b": x})
    d = mx.load(tmp_path / "s.safetensors")
    same(d["w"], a, name)
    same(d["b"], a, name)


@pytest.mark.parametrize("name", GGUF_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_round_trip_gguf(tmp_path, no_fsync, name, shape):
    rng = np.random.default_rng(3)
    a = special(rng, shape, name)
    for kind in VIEW_KINDS:
        mx.save_gguf(tmp_path / "g.gguf", {"t": view_of(a, name, kind), "u": to_mx(a, name)})
        d = mx.load(tmp_path / "g.gguf")
        same(d["t"], a, name)
        same(d["u"], a, name)


@pytest.mark.parametrize("name", sorted(set(ALL_DTYPES) - set(GGUF_DTYPES)))
def test_gguf_refuses_dtypes_it_cannot_store(tmp_path, name):
    with pytest.raises(ValueError, match="cannot be stored in GGUF"):
        mx.save_gguf(tmp_path / "g.gguf", {"t": mx.zeros((2,), dtype=getattr(mx, name))})
    assert os.listdir(tmp_path) == []


def test_file_objects_every_format():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = mx.array(a)
    for save, fmt in [
        (lambda f: mx.save(f, x), "npy"),
        (lambda f: mx.savez(f, x), "npz"),
        (lambda f: mx.savez_compressed(f, x), "npz"),
        (lambda f: mx.save_safetensors(f, {"arr_0": x}), "safetensors"),
        (lambda f: mx.save_gguf(f, {"arr_0": x}), "gguf"),
    ]:
        f = io.BytesIO()
        save(f)
        f.seek(0)
        got = mx.load(f, format=fmt)
        got = got if fmt == "npy" else got["arr_0"]
        assert np.array_equal(np.array(got), a)


def test_real_file_object_format_from_name(tmp_path, no_fsync):
    mx.save_safetensors(tmp_path / "m.safetensors", {"a": mx.ones((2,))})
    with open(tmp_path / "m.safetensors", "rb") as f:
        assert list(mx.load(f)) == ["a"]
    with pytest.raises(ValueError, match="infer"):
        mx.load(io.BytesIO(b"x"))


def test_mlx_semantics(tmp_path, no_fsync):
    x = mx.arange(3)
    mx.save(str(tmp_path / "a"), x)  # extension appended, as MLX
    mx.savez(tmp_path / "b", x)
    mx.save_safetensors(str(tmp_path / "c"), {"x": x})
    mx.save_gguf(str(tmp_path / "d"), {"x": x})
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npz", "c.safetensors", "d.gguf"]
    assert isinstance(mx.load(tmp_path / "a.npy"), mx.array)
    assert isinstance(mx.load(tmp_path / "b.npz"), dict)
    arrays, meta = mx.load(tmp_path / "c.safetensors", return_metadata=True)
    assert list(arrays) == ["x"] and meta == {}
    for f in ("a.npy", "b.npz"):
        with pytest.raises(ValueError, match="metadata not supported"):
            mx.load(tmp_path / f, return_metadata=True)
    with pytest.raises(ValueError, match="Cannot use un-named"):
        mx.savez(tmp_path / "e.npz", x, arr_0=x)
    with pytest.raises(ValueError, match="Unknown format"):
        mx.load(tmp_path / "a.npy", format="pickle")
    with pytest.raises(FileNotFoundError):
        mx.load(tmp_path / "missing.npy")
    # format= overrides the extension
    os.rename(tmp_path / "c.safetensors", tmp_path / "c.bin")
    assert list(mx.load(tmp_path / "c.bin", format="safetensors")) == ["x"]
    assert mx.load(tmp_path / "a.npy", stream=mx.cpu).tolist() == [0, 1, 2]


def test_safetensors_metadata_round_trip(tmp_path, no_fsync):
    meta = {"format": "mlx", "note": 'quotes " and \\ and\nnewlines, unicode é😀', "": ""}
    mx.save_safetensors(tmp_path / "m.safetensors", {"a": mx.ones((2,))}, metadata=meta)
    _, got = mx.load(tmp_path / "m.safetensors", return_metadata=True)
    assert got == meta
    with pytest.raises(TypeError):
        mx.save_safetensors(tmp_path / "n.safetensors", {"a": mx.ones((2,))}, metadata={"a": 1})
    with pytest.raises(ValueError, match="reserved"):
        mx.save_safetensors(tmp_path / "n.safetensors", {"__metadata__": mx.ones((2,))})


def test_gguf_metadata_round_trip(tmp_path, no_fsync):
    meta = {
        "general.name": "tiny",
        "tokens": ["<s>", "é", ""],
        "u8": mx.array(7, dtype=mx.uint8),
        "i64": mx.array(-5, dtype=mx.int64),
        "f32": mx.array(1.5),
        "b": mx.array(True),
        "vec": mx.array([1, 2, 3], dtype=mx.uint16),
        "fvec": mx.array([0.5, -1.0], dtype=mx.float64),
    }
    mx.save_gguf(tmp_path / "m.gguf", {"w": mx.ones((2, 3))}, meta)
    arrays, got = mx.load(tmp_path / "m.gguf", return_metadata=True)
    assert set(got) == set(meta)
    assert got["general.name"] == "tiny" and got["tokens"] == ["<s>", "é", ""]
    for k in ("u8", "i64", "f32", "b", "vec", "fvec"):
        assert got[k].dtype == meta[k].dtype and got[k].shape == meta[k].shape, k
        assert got[k].tolist() == meta[k].tolist(), k
    with pytest.raises(ValueError):
        mx.save_gguf(tmp_path / "x.gguf", {}, {"m": mx.ones((2, 2))})
    with pytest.raises(TypeError):
        mx.save_gguf(tmp_path / "x.gguf", {}, {"m": 3})


# ---------------------------------------------------------------- NumPy interop
@pytest.mark.parametrize("name", NP_NATIVE)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_numpy_npy_both_ways(tmp_path, no_fsync, name, shape):
    rng = np.random.default_rng(1)
    a = special(rng, shape, name)
    np.save(tmp_path / "np.npy", a)
    same(mx.load(tmp_path / "np.npy"), a, name)
    mx.save(tmp_path / "ox.npy", to_mx(a, name))
    b = np.load(tmp_path / "ox.npy", allow_pickle=False)
    assert b.dtype == a.dtype and b.shape == a.shape and np_raw(b) == np_raw(a)


@pytest.mark.parametrize("name", [d for d in NP_NATIVE if npdt(d).itemsize > 1])
def test_numpy_big_endian_and_fortran(tmp_path, name):
    rng = np.random.default_rng(2)
    a = special(rng, (3, 4, 2), name)
    for arr in (a.astype(a.dtype.newbyteorder(">")), np.asfortranarray(a),
                np.asfortranarray(a.astype(a.dtype.newbyteorder(">")))):
        np.save(tmp_path / "e.npy", arr)
        got = mx.load(tmp_path / "e.npy")
        same(got, a, name)


@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_numpy_header_versions(tmp_path, version):
    a = np.arange(10, dtype=np.int16).reshape(2, 5)
    with open(tmp_path / "v.npy", "wb") as f:
        np.lib.format.write_array(f, a, version=version)
    same(mx.load(tmp_path / "v.npy"), a, "int16")


def test_numpy_large_header_v2(tmp_path, no_fsync):
    # a shape whose header needs > 64 KiB is beyond our cap; a long but legal one works
    a = np.zeros((1,) * 32, dtype=np.float32)
    np.save(tmp_path / "d.npy", a)
    same(mx.load(tmp_path / "d.npy"), a, "float32")
    mx.save(tmp_path / "o.npy", mx.array(a))
    assert np.load(tmp_path / "o.npy").shape == a.shape


def test_bfloat16_npy_via_ml_dtypes(tmp_path, no_fsync):
    a = np.array([1.5, -2.0, np.inf, 3e38], dtype=ml_dtypes.bfloat16)
    np.save(tmp_path / "b.npy", a)
    same(mx.load(tmp_path / "b.npy"), a, "bfloat16")
    mx.save(tmp_path / "o.npy", to_mx(a, "bfloat16"))
    back = np.load(tmp_path / "o.npy")
    assert back.dtype.itemsize == 2 and back.view(ml_dtypes.bfloat16).tobytes() == a.tobytes()


@pytest.mark.parametrize("compressed", [False, True])
def test_numpy_npz_both_ways(tmp_path, no_fsync, compressed):
    rng = np.random.default_rng(4)
    arrays = {name: special(rng, (3, 5), name) for name in NP_NATIVE}
    arrays["empty"] = np.zeros((0, 3), np.float32)
    arrays["scalar"] = np.array(3.5)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "n.npz", *[arrays["int8"]], **arrays)
    got = mx.load(tmp_path / "n.npz")
    assert set(got) == set(arrays) | {"arr_0"}
    for k, v in arrays.items():
        assert np_raw(np.array(got[k])) == np_raw(v), k
    (mx.savez_compressed if compressed else mx.savez)(
        tmp_path / "o.npz", to_mx(arrays["int8"]), **{k: to_mx(v) for k, v in arrays.items()}
    )
    with np.load(tmp_path / "o.npz", allow_pickle=False) as back:
        assert set(back.files) == set(arrays) | {"arr_0"}
        for k, v in arrays.items():
            assert back[k].dtype == v.dtype and np_raw(back[k]) == np_raw(v), k


# ---------------------------------------------------------------- safetensors package interop
ST_DTYPES = ALL_DTYPES  # bfloat16 through ml_dtypes


@pytest.mark.parametrize("name", ST_DTYPES)
def test_safetensors_package_both_ways(tmp_path, no_fsync, name):
    rng = np.random.default_rng(5)
    arrays = {f"t{i}": special(rng, s, name) for i, s in enumerate(SHAPES)}
    meta = {"format": "np", "k": "v"}
    stnp.save_file(arrays, tmp_path / "p.safetensors", metadata=meta)
    got, gmeta = mx.load(tmp_path / "p.safetensors", return_metadata=True)
    assert gmeta == meta
    for k, v in arrays.items():
        same(got[k], v, name)
    mx.save_safetensors(tmp_path / "o.safetensors", {k: to_mx(v, name) for k, v in arrays.items()}, meta)
    back = stnp.load_file(tmp_path / "o.safetensors")
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np_raw(back[k]) == np_raw(v), k
    from safetensors import safe_open

    with safe_open(tmp_path / "o.safetensors", framework="numpy") as f:
        assert f.metadata() == meta


def test_safetensors_fp8_loads_as_uint8_bits(tmp_path):
    bits = np.arange(256, dtype=np.uint8)
    for dt in ("F8_E4M3", "F8_E5M2", "F8_E8M0"):
        hdr = json.dumps({"w": {"dtype": dt, "shape": [16, 16], "data_offsets": [0, 256]}}).encode()
        (tmp_path / "f.safetensors").write_bytes(len(hdr).to_bytes(8, "little") + hdr + bits.tobytes())
        w = mx.load(tmp_path / "f.safetensors")["w"]
        assert w.dtype == mx.uint8 and w.shape == (16, 16)
        assert np.array(w).tobytes() == bits.tobytes()
        if dt == "F8_E4M3":  # the bits are the real fp8 values
            ref = bits.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
            got = np.array(w).reshape(-1).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
            assert np.array_equal(ref, got, equal_nan=True)


# ---------------------------------------------------------------- sharded checkpoints
def _write_shards(d, tensors, n):
    names = sorted(tensors)
    weight_map = {}
    for s in range(n):
        part = {k: tensors[k] for k in names[s::n]}
        fn = f"model-{s + 1:05d}-of-{n:05d}.safetensors"
        mx.save_safetensors(d / fn, {k: mx.array(v) for k, v in part.items()}, {"shard": str(s)})
        weight_map.update({k: fn for k in part})
    idx = {"metadata": {"total_size": sum(v.nbytes for v in tensors.values())}, "weight_map": weight_map}
    (d / "model.safetensors.index.json").write_text(json.dumps(idx))
    return d / "model.safetensors.index.json"


def test_sharded_checkpoint(tmp_path, no_fsync):
    rng = np.random.default_rng(6)
    tensors = {f"layers.{i}.weight": rng.standard_normal((4, 3)).astype(np.float32) for i in range(7)}
    idx = _write_shards(tmp_path, tensors, 3)
    got = mx.load(idx)
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert np.array_equal(np.array(got[k]), v)
    got, meta = mx.load(str(idx), return_metadata=True)
    assert meta == {"shard": "0"}
    # the safetensors package reads the same shards
    for f in sorted(tmp_path.glob("*.safetensors")):
        for k, v in stnp.load_file(f).items():
            assert np.array_equal(v, tensors[k])


def test_sharded_in_subdirectory(tmp_path, no_fsync):
    (tmp_path / "shards").mkdir()
    mx.save_safetensors(tmp_path / "shards" / "a.safetensors", {"x": mx.ones((2,))})
    (tmp_path / "m.index.json").write_text(json.dumps({"weight_map": {"x": "shards/a.safetensors"}}))
    assert mx.load(tmp_path / "m.index.json")["x"].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- gguf package interop
def _gguf_writer(path):
    w = gguf.GGUFWriter(str(path), "llama")
    return w


def _finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_gguf_package_to_oxmx(tmp_path):
    rng = np.random.default_rng(7)
    tensors = {
        "f32": rng.standard_normal((3, 5)).astype(np.float32),
        "f16": rng.standard_normal((2, 4, 3)).astype(np.float16),
        "f64": rng.standard_normal((6,)),
        "i8": rng.integers(-100, 100, (4, 4)).astype(np.int8),
        "i16": rng.integers(-1000, 1000, (5,)).astype(np.int16),
        "i32": rng.integers(-(2**30), 2**30, (2, 3)).astype(np.int32),
        "i64": rng.integers(-(2**60), 2**60, (3,)).astype(np.int64),
    }
    w = _gguf_writer(tmp_path / "p.gguf")
    w.add_uint8("m.u8", 200)
    w.add_int8("m.i8", -3)
    w.add_uint16("m.u16", 60000)
    w.add_int16("m.i16", -30000)
    w.add_uint32("m.u32", 4_000_000_000)
    w.add_int32("m.i32", -2_000_000_000)
    w.add_float32("m.f32", 1.25)
    w.add_uint64("m.u64", 2**63 + 5)
    w.add_int64("m.i64", -(2**62))
    w.add_float64("m.f64", -2.5e300)
    w.add_bool("m.bool", True)
    w.add_string("m.str", "héllo")
    w.add_array("m.strs", ["a", "bc", ""])
    w.add_array("m.ints", [1, 2, 3])
    for k, v in tensors.items():
        w.add_tensor(k, v)
    _finish(w)
    got, meta = mx.load(tmp_path / "p.gguf", return_metadata=True)
    for k, v in tensors.items():
        assert np_raw(np.array(got[k])) == np_raw(v) and got[k].shape == v.shape, k
    expect = {
        "m.u8": (mx.uint8, 200), "m.i8": (mx.int8, -3), "m.u16": (mx.uint16, 60000),
        "m.i16": (mx.int16, -30000), "m.u32": (mx.uint32, 4_000_000_000),
        "m.i32": (mx.int32, -2_000_000_000), "m.f32": (mx.float32, 1.25),
        "m.u64": (mx.uint64, 2**63 + 5), "m.i64": (mx.int64, -(2**62)),
        "m.f64": (mx.float64, -2.5e300), "m.bool": (mx.bool_, True),
    }
    for k, (dt, v) in expect.items():
        assert meta[k].dtype == dt and meta[k].ndim == 0 and meta[k].item() == v, k
    assert meta["m.str"] == "héllo"
    assert meta["m.strs"] == ["a", "bc", ""]
    assert meta["m.ints"].ndim == 1 and meta["m.ints"].tolist() == [1, 2, 3]
    assert meta["general.architecture"] == "llama"


def test_oxmx_gguf_to_package(tmp_path, no_fsync):
    rng = np.random.default_rng(8)
    tensors = {
        "a": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal((7,)).astype(np.float16),
        "c": rng.integers(-5, 5, (2, 2, 2)).astype(np.int32),
    }
    mx.save_gguf(tmp_path / "o.gguf", {k: mx.array(v) for k, v in tensors.items()},
                 {"general.architecture": "llama", "n": mx.array(3, dtype=mx.uint32), "toks": ["x", "y"]})
    r = gguf.GGUFReader(str(tmp_path / "o.gguf"))
    got = {t.name: np.array(t.data) for t in r.tensors}
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and np_raw(got[k].reshape(v.shape)) == np_raw(v), k
    f = r.fields
    assert bytes(f["general.architecture"].parts[-1]).decode() == "llama"
    assert int(f["n"].parts[-1][0]) == 3
    assert [bytes(f["toks"].parts[i]).decode() for i in f["toks"].data] == ["x", "y"]


def _unpack(w, bits):
    w = np.array(w).astype(np.uint32)
    per = 32 // bits
    shifts = (np.arange(per, dtype=np.uint32) * bits)
    q = (w[..., None] >> shifts) & ((1 << bits) - 1)
    return q.reshape(*w.shape[:-1], w.shape[-1] * per).astype(np.float32)


@pytest.mark.parametrize("qtype,bits", [("Q4_0", 4), ("Q4_1", 4), ("Q8_0", 8)])
def test_gguf_quantized_triplets_match_reference_dequantization(tmp_path, qtype, bits):
    qt = getattr(gguf.GGMLQuantizationType, qtype)
    rng = np.random.default_rng(9)
    data = rng.standard_normal((3, 2, 96)).astype(np.float32)
    q = gguf.quants.quantize(data, qt)
    ref = gguf.quants.dequantize(q, qt).astype(np.float32)
    w = _gguf_writer(tmp_path / "q.gguf")
    w.add_tensor("blk.0.ffn.weight", q, raw_dtype=qt)
    w.add_tensor("plain", data)
    _finish(w)
    d = mx.load(tmp_path / "q.gguf")
    assert set(d) == {"blk.0.ffn.weight", "blk.0.ffn.scales", "blk.0.ffn.biases", "plain"}
    wq, s, b = d["blk.0.ffn.weight"], d["blk.0.ffn.scales"], d["blk.0.ffn.biases"]
    assert wq.dtype == mx.uint32 and wq.shape == (3, 2, 96 * bits // 32)
    assert s.dtype == mx.float16 and s.shape == (3, 2, 3) and b.shape == (3, 2, 3)
    qv = _unpack(wq, bits).reshape(3, 2, 3, 32)
    deq = qv * np.array(s).astype(np.float32)[..., None] + np.array(b).astype(np.float32)[..., None]
    assert np.array_equal(deq.reshape(data.shape), ref)
    assert np.array_equal(np.array(d["plain"]), data)
