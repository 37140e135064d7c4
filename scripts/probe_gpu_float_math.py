"""Measures CUDA's own float32 math functions (expf, sinf, ...) against the ulp bounds of
tests/test_math_ulp.py, on the same inputs, through custom kernels: which of them could
serve oxmx's float32 kernels directly instead of the double-precision route (see
`via_double` in crates/oxmx-cuda/src/kernels.rs). For the GPU machine:

    python scripts/probe_gpu_float_math.py
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import oxmx.core as mx  # noqa: E402
import test_math_ulp as t  # noqa: E402

FLOAT = {
    "exp": "expf(a)", "expm1": "expm1f(a)", "log": "logf(a)", "log2": "log2f(a)",
    "log10": "log10f(a)", "log1p": "log1pf(a)", "sin": "sinf(a)", "cos": "cosf(a)",
    "tan": "tanf(a)", "tanh": "tanhf(a)", "sinh": "sinhf(a)", "cosh": "coshf(a)",
    "arcsin": "asinf(a)", "arccos": "acosf(a)", "arctan": "atanf(a)", "arcsinh": "asinhf(a)",
    "arccosh": "acoshf(a)", "arctanh": "atanhf(a)", "erf": "erff(a)",
    "sigmoid": "(a < 0.f ? expf(a) / (1.f + expf(a)) : 1.f / (1.f + expf(-a)))",
    "arctan2": "atan2f(a, b)", "power": "powf(a, b)",
}


def run(name, args):
    expr = FLOAT[name]
    names = ["a", "b"][: len(args)]
    src = ("long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;\n"
           "if (i < a_shape[0]) { " + " ".join(f"float {n} = {n}_in[i];" for n in names)
           + f" out[i] = {expr}; }}")
    src = src.replace("a_shape", "a_in_shape")
    k = mx.fast.cuda_kernel(f"probe_{name}", [f"{n}_in" for n in names], ["out"], src)
    arrs = [mx.array(np.asarray(a, np.float32)) for a in args]
    n = len(args[0])
    (y,) = k(inputs=arrs, output_shapes=[(n,)], output_dtypes=[mx.float32], grid=(n, 1, 1), threadgroup=(256, 1, 1))
    return np.array(y)


def main():
    rng = np.random.default_rng(0)
    print(f"{'function':<10} {'CUDA float max ulp':>20}  (bound 1)")
    for name in FLOAT:
        args = t.binary_inputs(name, "float32", rng) if name in t.BINARY else t.unary_inputs(name, "float32", rng)
        got = run(name, args)
        max_err, worst, bad = t.measure(name, "float32", args, got)
        flag = "" if max_err <= 1.0 and not bad else "  over"
        print(f"{name:<10} {max_err:>20.3f}  at {worst['args']}{flag}")


if __name__ == "__main__":
    main()
