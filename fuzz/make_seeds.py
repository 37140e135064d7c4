"""Write small valid seed files for each fuzz target into fuzz/seeds/<target>/ (committed:
libFuzzer mutates them instead of rediscovering each format's magic)."""

import io
import json
import os
import struct

import gguf
import numpy as np

import oxmx.core as mx
from oxmx import security

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def npy(a, **kw):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, **kw)
    return b.getvalue()


put("npy", "f32.npy", npy(np.arange(6, dtype=np.float32).reshape(2, 3)))
put("npy", "be_fortran.npy", npy(np.asfortranarray(np.arange(6, dtype=">i2").reshape(2, 3))))
put("npy", "v3_c8.npy", npy(np.ones(2, np.complex64), version=(3, 0)))
put("npy", "bool0d.npy", npy(np.array(True)))
for comp in (False, True):
    b = io.BytesIO()
    (np.savez_compressed if comp else np.savez)(b, a=np.arange(4, dtype=np.int8), b=np.ones((2, 2)))
    put("npz", f"numpy_{'deflate' if comp else 'stored'}.npz", b.getvalue())
    f = io.BytesIO()
    (mx.savez_compressed if comp else mx.savez)(f, a=mx.arange(3), b=mx.ones((2,)))
    put("npz", f"oxmx_{'deflate' if comp else 'stored'}.npz", f.getvalue())
f = io.BytesIO()
mx.save_safetensors(f, {"w": mx.ones((2, 2)), "b": mx.arange(3, dtype=mx.bfloat16)}, {"format": "mlx"})
put("safetensors", "small.safetensors", f.getvalue())
h = json.dumps({"x": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}}).encode()
put("safetensors", "fp8.safetensors", struct.pack("<Q", len(h)) + h + b"\1\2\3\4")
put("safetensors_index", "index.json", json.dumps({
    "metadata": {"total_size": 20, "x": [1, {"y": None}]},
    "weight_map": {"w": "model-00001-of-00002.safetensors", "b": "sub/model-00002-of-00002.safetensors"},
}).encode())
f = io.BytesIO()
mx.save_gguf(f, {"w": mx.ones((2, 3)), "i": mx.arange(4)},
             {"name": "x", "toks": ["a", "b"], "n": mx.array(3, dtype=mx.uint32), "v": mx.array([1.0, 2.0])})
put("gguf", "oxmx.gguf", f.getvalue())
for qt in ("Q4_0", "Q4_1", "Q8_0"):
    t = getattr(gguf.GGMLQuantizationType, qt)
    w = gguf.GGUFWriter(os.path.join(HERE, "seeds", "gguf", f"{qt}.gguf"), "llama")
    w.add_tensor("blk.0.weight", gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), t),
                 raw_dtype=t)
    w.add_array("ints", [1, 2, 3])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
secret = bytes(range(32))
tmp = os.path.join(HERE, "seeds", "x.bin")
with open(tmp, "wb") as fh:
    fh.write(b"weights")
security.sign(tmp, secret, signature=tmp + ".sig")
with open(tmp + ".sig", "rb") as fh:
    put("signature", "x.sig", fh.read())
os.remove(tmp)
os.remove(tmp + ".sig")
