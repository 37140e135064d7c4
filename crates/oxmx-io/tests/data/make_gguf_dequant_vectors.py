"""Regenerate gguf_dequant_vectors.bin: random GGUF blocks of every type oxmx converts to
float16, with the `gguf` package's reference dequantization rounded once to float16.

Run from the repository root: .venv/bin/python crates/oxmx-io/tests/data/make_gguf_dequant_vectors.py

Record layout (little-endian): type code u32, block count u32, the raw blocks, then one
float16 per element. Scale fields are set to finite values (random bytes elsewhere), so
the reference is finite and comparable bit for bit. Q8_K has no reference dequantizer in
gguf-py; its expectation is the format's definition d(f32) * q(i8), computed here."""

import pathlib
import struct

import gguf
import numpy as np
from gguf import GGML_QUANT_SIZES
from gguf import GGMLQuantizationType as T

# type -> byte offsets of its float16 scale fields
F16_FIELDS = {
    T.Q5_0: [0], T.Q5_1: [0, 2], T.IQ4_NL: [0], T.Q2_K: [80, 82], T.Q3_K: [108],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208], T.IQ4_XS: [0], T.Q8_K: [], T.MXFP4: [],
}
NBLOCKS = 5


def blocks(qt, rng):
    bl, bb = GGML_QUANT_SIZES[qt]
    raw = rng.integers(0, 256, (NBLOCKS, bb), dtype=np.uint8)
    # scales: normal ones, a negative, zero and a float16 subnormal
    d = (rng.standard_normal(NBLOCKS) * 0.05).astype(np.float16)
    d[1], d[2] = np.float16(0), np.float16(3e-6)
    for off in F16_FIELDS[qt]:
        raw[:, off:off + 2] = rng.permutation(d).view(np.uint8).reshape(NBLOCKS, 2)
    if qt == T.Q8_K:
        raw[:, 0:4] = (rng.standard_normal(NBLOCKS) * 0.01).astype(np.float32).view(np.uint8).reshape(NBLOCKS, 4)
    if qt == T.MXFP4:
        raw[:, 0] = [118, 127, 0, 1, 139]  # 2^(e-128) times levels up to 12: within float16
    return raw


def expected(qt, raw):
    if qt == T.Q8_K:
        d = raw[:, 0:4].copy().view(np.float32)
        return (d * raw[:, 4:260].view(np.int8).astype(np.float32)).astype(np.float16)
    return gguf.quants.dequantize(raw, qt).astype(np.float32).astype(np.float16)


def main():
    rng = np.random.default_rng(13)
    out = b""
    for qt in F16_FIELDS:
        raw = blocks(qt, rng)
        exp = expected(qt, raw)
        assert np.isfinite(exp).all(), qt.name
        assert exp.size == NBLOCKS * GGML_QUANT_SIZES[qt][0]
        out += struct.pack("<II", int(qt), NBLOCKS) + raw.tobytes() + exp.astype("<f2").tobytes()
    path = pathlib.Path(__file__).with_name("gguf_dequant_vectors.bin")
    path.write_bytes(out)
    print(f"{path}: {len(out)} bytes")


if __name__ == "__main__":
    main()
