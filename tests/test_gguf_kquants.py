"""GGUF block types beyond Q4_0/Q4_1/Q8_0 (Q5_0, Q5_1, Q2_K…Q8_K, IQ4_NL, IQ4_XS, MXFP4):
files written by the `gguf` package load as float16 arrays of the tensor's shape, equal
bit for bit to the package's reference dequantization rounded once to float16 (oxmx
decodes in float32 in the reference's operation order and rounds once, so no tolerance
is needed). Types oxmx does not convert, unknown type codes, rows that are not whole
blocks, more than 4 dimensions and truncated files are clear `FormatError`s naming the
tensor."""

import struct

import gguf
import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as T

import oxmx.core as mx

FormatError = mx.FormatError

# type -> byte offsets of its float16 scale fields (the rest of each block is random)
F16_FIELDS = {
    T.Q5_0: [0], T.Q5_1: [0, 2], T.IQ4_NL: [0], T.Q2_K: [80, 82], T.Q3_K: [108],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_XS: [0], T.Q8_K: [], T.MXFP4: [],
}


def random_blocks(qt, rng, n):
    """`n` blocks of random bytes whose scale fields are small finite numbers (zero and a
    float16 subnormal among them), so the reference is finite."""
    _, bb = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, (n, bb), dtype=np.uint8)
    d = (rng.standard_normal(n) * 0.05).astype(np.float16)
    d[0], d[-1] = np.float16(0), np.float16(3e-6)
    for off in F16_FIELDS[qt]:
        raw[:, off:off + 2] = rng.permutation(d).view(np.uint8).reshape(n, 2)
    if qt == T.Q8_K:  # d is a float32
        raw[:, 0:4] = (rng.standard_normal(n) * 0.01).astype(np.float32).view(np.uint8).reshape(n, 4)
    if qt == T.MXFP4:  # E8M0 exponent: 2^(e-128) x levels up to 12 stays within float16
        raw[:, 0] = rng.integers(100, 140, n)
    return raw


def reference_f16(qt, raw):
    """Per-block values as float16. gguf-py has no Q8_K dequantizer: Q8_K is d(f32)·q(i8)
    by the format's definition."""
    if qt == T.Q8_K:
        d = raw[:, 0:4].copy().view(np.float32)
        return (d * raw[:, 4:260].view(np.int8).astype(np.float32)).astype(np.float16)
    return gguf.quants.dequantize(raw, qt).astype(np.float32).astype(np.float16)


def write_gguf(path, tensors):
    """tensors: name -> (raw uint8 blocks shaped (..., blocks_per_row * block_bytes), type)."""
    w = gguf.GGUFWriter(str(path), "llama")
    for name, (raw, qt) in tensors.items():
        w.add_tensor(name, raw, raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def bits(x):
    return np.asarray(x).view(np.uint16)


def bad(path, *needles):
    with pytest.raises(FormatError) as e:
        mx.load(path)
    msg = str(e.value)
    for n in needles:
        assert n in msg, msg
    return msg


@pytest.mark.parametrize("qt", list(F16_FIELDS), ids=lambda t: t.name)
def test_block_types_load_as_float16_equal_to_the_reference(tmp_path, qt):
    rng = np.random.default_rng(int(qt))
    bl, bb = GGML_QUANT_SIZES[qt]
    per_row = 2 if bl == 256 else 3
    shapes = {"blk.0.ffn_down.weight": (3,), "cube": (2, 2), "row": ()}  # leading dims
    tensors, want = {}, {}
    for name, lead in shapes.items():
        n = int(np.prod(lead, dtype=np.int64)) * per_row
        raw = random_blocks(qt, rng, n)
        tensors[name] = (raw.reshape(*lead, per_row * bb), qt)
        want[name] = reference_f16(qt, raw).reshape(*lead, per_row * bl)
    write_gguf(tmp_path / "k.gguf", tensors)
    got = mx.load(tmp_path / "k.gguf")
    # converted tensors keep their names: no scales/biases triplet
    assert set(got) == set(shapes)
    for name, w in want.items():
        a = got[name]
        assert a.dtype == mx.float16 and a.shape == w.shape, (name, a.dtype, a.shape)
        g = np.array(a)
        assert np.isfinite(w).all()
        mism = np.flatnonzero(bits(g) != bits(w))
        assert mism.size == 0, (name, mism[:5], g.ravel()[mism[:5]], w.ravel()[mism[:5]])


def test_mixed_file_keeps_q4_0_quantized_and_converts_the_rest(tmp_path):
    rng = np.random.default_rng(3)
    data = rng.standard_normal((2, 64)).astype(np.float32)
    q40 = gguf.quants.quantize(data, T.Q4_0)
    k6 = random_blocks(T.Q6_K, rng, 2)
    write_gguf(tmp_path / "m.gguf", {"a.weight": (q40, T.Q4_0), "b.weight": (k6, T.Q6_K)})
    got = mx.load(tmp_path / "m.gguf")
    assert set(got) == {"a.weight", "a.scales", "a.biases", "b.weight"}
    assert got["a.weight"].dtype == mx.uint32 and got["b.weight"].dtype == mx.float16
    assert (bits(np.array(got["b.weight"])) == bits(reference_f16(T.Q6_K, k6))).all()


def test_q2_k_and_q6_k_match_mlx(tmp_path):
    """MLX converts Q2_K, Q4_K and Q6_K to float16 (and refuses the others). Q2_K and Q6_K
    agree bit for bit. MLX's Q4_K does not match the reference: it applies each even
    sub-block's scale and min to the following odd sub-block as well (elements 32-63,
    96-127, ... of every 256), so oxmx follows the reference there, not MLX."""
    mlx = pytest.importorskip("mlx.core")
    rng = np.random.default_rng(11)
    tensors = {"q2": (random_blocks(T.Q2_K, rng, 4), T.Q2_K), "q6": (random_blocks(T.Q6_K, rng, 4), T.Q6_K)}
    write_gguf(tmp_path / "x.gguf", tensors)
    ours, theirs = mx.load(tmp_path / "x.gguf"), mlx.load(str(tmp_path / "x.gguf"))
    for k in tensors:
        assert ours[k].shape == tuple(theirs[k].shape)
        assert (bits(np.array(ours[k])) == bits(np.array(theirs[k]))).all(), k


# ---------------------------------------------------------------- malformed files
def patch_tensor_info(data, name, ndim_dims=None, code=None):
    """Rewrite the dims and/or type code of tensor `name` in GGUF bytes (the info is the
    name's bytes, ndim u32, dims u64 x ndim, type u32, offset u64)."""
    d = bytearray(data)
    key = struct.pack("<Q", len(name)) + name.encode()
    at = d.index(key) + len(key)
    ndim = struct.unpack_from("<I", d, at)[0]
    type_at = at + 4 + 8 * ndim
    if code is not None:
        struct.pack_into("<I", d, type_at, code)
    if ndim_dims is not None:
        assert len(ndim_dims) == ndim
        struct.pack_into(f"<{ndim}Q", d, at + 4, *ndim_dims)
    return bytes(d)


@pytest.fixture
def q4_k_file(tmp_path):
    raw = random_blocks(T.Q4_K, np.random.default_rng(5), 2).reshape(2, 144)
    write_gguf(tmp_path / "g.gguf", {"blk.7.attn_k.weight": (raw, T.Q4_K)})
    return (tmp_path / "g.gguf").read_bytes()


@pytest.mark.parametrize("code,says", [(16, "IQ2_XXS"), (19, "IQ1_S"), (34, "TQ1_0"), (99, "99"), (2**32 - 1, "4294967295")])
def test_unsupported_and_unknown_type_codes_name_the_tensor(tmp_path, q4_k_file, code, says):
    p = tmp_path / "u.gguf"
    p.write_bytes(patch_tensor_info(q4_k_file, "blk.7.attn_k.weight", code=code))
    msg = bad(p, '"blk.7.attn_k.weight"', says, "unsupported GGUF tensor type", "u.gguf")
    assert "Q4_K" in msg  # the list of what oxmx reads


def test_iq2_written_by_the_package_is_refused_by_name(tmp_path):
    raw = np.random.default_rng(2).integers(0, 256, (1, GGML_QUANT_SIZES[T.IQ2_XXS][1]), dtype=np.uint8)
    write_gguf(tmp_path / "i.gguf", {"tok_embd.weight": (raw, T.IQ2_XXS)})
    bad(tmp_path / "i.gguf", '"tok_embd.weight"', "IQ2_XXS")


def test_rows_that_are_not_whole_blocks_are_refused(tmp_path, q4_k_file):
    # GGUF dims are innermost first: [256, 2] -> [128, 4] (same bytes, half-block rows)
    p = tmp_path / "r.gguf"
    p.write_bytes(patch_tensor_info(q4_k_file, "blk.7.attn_k.weight", ndim_dims=[128, 4]))
    bad(p, '"blk.7.attn_k.weight"', "256-element block")
    p.write_bytes(patch_tensor_info(q4_k_file, "blk.7.attn_k.weight", ndim_dims=[512, 1]))
    assert mx.load(p)["blk.7.attn_k.weight"].shape == (1, 512)


def test_truncated_k_quant_files_are_clean_errors(tmp_path, q4_k_file):
    # the file ends with the tensor's last byte, so every shorter prefix is truncated
    assert len(q4_k_file) % 32 == 0 and q4_k_file[-144:] != b"\0" * 144
    for n in range(len(q4_k_file)):
        p = tmp_path / "t.gguf"
        p.write_bytes(q4_k_file[:n])
        bad(p, "t.gguf")


def test_more_than_four_dimensions(tmp_path, q4_k_file):
    # a five-dimensional tensor info: the file is refused naming the tensor
    d = bytearray(q4_k_file)
    name = "blk.7.attn_k.weight"
    key = struct.pack("<Q", len(name)) + name.encode()
    at = d.index(key) + len(key)
    assert struct.unpack_from("<I", d, at)[0] == 2
    d[at:at + 4 + 16] = struct.pack("<I5Q", 5, 256, 2, 1, 1, 1)
    p = tmp_path / "d.gguf"
    p.write_bytes(bytes(d))
    bad(p, '"blk.7.attn_k.weight"', "5 dimensions")
    # and the writer does not produce such files
    with pytest.raises(ValueError, match="5 dimensions"):
        mx.save_gguf(tmp_path / "w.gguf", {"x": mx.zeros((1, 1, 1, 1, 2))})
    mx.save_gguf(tmp_path / "w.gguf", {"x": mx.zeros((1, 1, 1, 2))})
    assert mx.load(tmp_path / "w.gguf")["x"].shape == (1, 1, 1, 2)
