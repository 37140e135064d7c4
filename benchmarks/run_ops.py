#!/usr/bin/env python3
"""Benchmarks of issue #12's ops: oxmx side by side with NumPy, JAX, real MLX and PyTorch (CPU), or torch CUDA (--gpu).

Workloads (float32 unless said; `--quick` shrinks every size):

* ``conv_fwd`` / ``conv_fwdbwd`` - 2-D convolution, input 16x56x56x64 (NHWC), 3x3 kernel,
  64 output channels, padding 1, stride 1: forward; forward + gradients w.r.t. the input
  and the weight. GFLOP/s (2*N*H*W*Cin*Cout*9 forward, 3x that for forward+backward).
  Peers: JAX (``lax.conv_general_dilated`` under ``jax.jit``, NHWC/HWIO), MLX
  (``mx.conv2d``), torch (``F.conv2d`` in NCHW; layouts converted outside the timed region).
  NumPy has no convolution.
* ``resnet_fwd`` / ``resnet_fwdbwd`` - a ResNet-50-sized stack of 17 convolutions
  (benchmarks/ops_resnet.py): the stem (7x7/2, 64) and the first bottleneck of each of the 4
  stages (1x1 reduce, 3x3 - stride 2 in stages 2-4 -, 1x1 expand, plus the 1x1 projection
  shortcut), ReLU between, no batch norm; input Nx224x224x3, NHWC (torch: NCHW). N = 2 on
  the CPU (``--quick``: 1x64x64), 32 on the GPU (``--quick``: 2). Forward; forward +
  gradients w.r.t. the input and all weights (``mx.vjp``, ``jax.vjp``,
  ``torch.autograd.grad``). GFLOP/s (the convs' flops, 2.93 GFLOP per 224x224 image
  forward, 3x for forward+backward) and images/s. Peers: JAX (jitted), torch; not MLX (its
  CPU convolution would take minutes per run).
* ``cfft`` / ``rfft`` - 2^20 points, complex64 / float32. GFLOP/s counted the usual way
  (5 N log2 N for a complex FFT, half for a real one). Peers: NumPy 2 (``np.fft``,
  complex64 natively), JAX (jitted), MLX, torch.
* ``svd``, ``eigh``, ``solve`` (1024x16 right-hand side), ``inv``, ``cholesky``, ``qr`` - on
  1024x1024, float32 and float64 (keys ``svd32``, ``svd64``, ...). Median time (ms).
  Peers: NumPy (LAPACK), MLX (``stream=mx.cpu``), torch.
* ``einsum_chain`` - ``'ab,bc,cd,de->ae'`` with a=e=256, b=d=64, c=1024 (the contraction order
  matters: left to right costs 4x the best order) and ``einsum_batched`` -
  ``'bij,bjk,bkl->bil'`` with b=32, i=k=256, j=l=32 (8x between the orders). Median time
  (ms). Peers: ``np.einsum(..., optimize=True)``, MLX, torch (``torch.einsum``, which
  orders contractions with opt_einsum when it is installed).

Bars (issue #12), CPU: conv and the ResNet stack >= 1.0x JAX; cfft, rfft >= 0.8x NumPy; svd,
eigh, solve >= 0.7x NumPy; einsum >= 1.0x NumPy; inv, cholesky and qr without a bar. GPU:
conv and the ResNet stack >= 0.8x torch; every other row against torch without a bar.

Every case first checks each framework's result against NumPy in float64 (computed on the
same, already rounded inputs); for svd, eigh and qr, whose factors are unique only up to
signs, it compares invariants: the singular values / eigenvalues / |R|, the reconstruction
and the orthogonality of the factors. The ResNet stack's gradients are compared by relative
2-norm (a ReLU input within float32 rounding of zero may flip its gradient: a correct
float32 result that a max-norm would call wrong). A framework that raises or disagrees gets
"fails" (the error is listed under the table); one that is not run gets "—".

Usage:
    python benchmarks/run_ops.py                    # full run, prints the table, updates BENCHMARKS.md
    python benchmarks/run_ops.py --quick            # small sizes, few repeats (smoke test; prints only)
    python benchmarks/run_ops.py --only conv,svd32 --no-write   # keys or groups (conv, resnet, fft, linalg, einsum)
    python benchmarks/run_ops.py --threads 1 --no-write
    python benchmarks/run_ops.py --gpu              # oxmx GPU vs torch CUDA; updates BENCHMARKS.md's GPU block
    python benchmarks/run_ops.py --gpu --out r.json # the same, merged results to r.json instead (device machine)
    python benchmarks/run_ops.py --from-json r.json # the GPU block of BENCHMARKS.md from such a file

CPU method: one process; inputs are moved into every framework before timing; after the
check and one warm-up run, the frameworks are timed round-robin (one run of each in turn, so
that all columns share whatever else the machine is doing) until every one has at least 5
runs (3 for the slow cases) and the case's time budget is spent; the cells are medians. Lazy
frameworks are forced inside the timed region (``mx.eval``, ``block_until_ready``). Python's
garbage collector is paused during each round and run between rounds.

GPU method (``--gpu``): oxmx and torch load different cuDNN copies, so each runs in its own
process (``--framework torch``, then ``--framework oxmx``; as ``run_nn.py --gpu``), which runs
every case at the GPU sizes, checks each result on its host copy, and prints ``run_cases``'
results as JSON on its last line; this process merges them into the table. oxmx runs with
``mx.set_default_device(mx.gpu)`` and every timed run ends with ``mx.eval`` and
``mx.synchronize()``; torch's with ``torch.cuda.synchronize()``, TF32 off (oxmx's default is
full float32). JAX, NumPy and MLX are not GPU peers here. ``--quick`` and ``--only`` pass
through to both processes. Without a GPU each process stops with a one-line reason and
the run exits with status 1. (``--device cpu`` runs the same processes on the CPU, to test
this plumbing on a machine without a GPU; its table is never written to BENCHMARKS.md.)
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import gpu_processes  # noqa: E402  (one framework per process on the GPU)
import ops_resnet  # noqa: E402  (the ResNet-50 conv stack, NumPy convolution references)
import run_cpu  # noqa: E402  (machine description, error formatting)

ROOT = HERE.parent
MARKERS = {
    "cpu": ("<!-- BENCH:OPS:CPU:BEGIN (generated by benchmarks/run_ops.py; re-runs replace this block) -->",
            "<!-- BENCH:OPS:CPU:END -->"),
    "gpu": ("<!-- BENCH:OPS:GPU:BEGIN (generated by benchmarks/run_ops.py --gpu; re-runs replace this block) -->",
            "<!-- BENCH:OPS:GPU:END -->"),
}
FRAMEWORK_ORDER = ("oxmx", "numpy", "jax", "mlx", "torch")
GPU_FRAMEWORKS = ("torch", "oxmx")  # the order their processes run in (see gpu_main)
GROUPS = ("conv", "resnet", "fft", "linalg", "einsum")


# --------------------------------------------------------------------------------------
# Frameworks. Each has `prepare(op, *inputs)` -> (run, fetch) or None when it lacks the op:
# run() does the work once and forces it; fetch(result) gives NumPy arrays in the case's
# canonical layout (NHWC input, OHWI weight - oxmx's and MLX's), outside the timed region.
# --------------------------------------------------------------------------------------
class Adapter:
    name = "?"
    version = "?"

    def prepare(self, op, *inputs):
        method = getattr(self, f"op_{op}", None)
        return None if method is None else method(*inputs)

    def device_name(self):
        return "cpu"


def _as_tuple(y):
    return tuple(y) if isinstance(y, (list, tuple)) else (y,)


class MLXLike(Adapter):
    """oxmx.core and mlx.core share one API: the same code drives both."""

    def __init__(self, name, pkg, device="cpu"):
        self.name = name
        self.mx = importlib.import_module(f"{pkg}.core")
        self.version = getattr(self.mx, "__version__", None) or getattr(sys.modules.get(pkg), "__version__", "?")
        self.dev = self.mx.gpu if device == "gpu" else self.mx.cpu
        self.mx.set_default_device(self.dev)
        self.on_gpu = device == "gpu"
        # MLX's linalg runs on the CPU stream only (it raises elsewhere).
        self.linalg_stream = self.dev if name == "oxmx" else self.mx.cpu

    def device_name(self):
        name = str(self.mx.default_device())
        if self.on_gpu:
            try:
                name += f" ({self.mx.device_info()['device_name']})"
            except Exception:  # noqa: BLE001 - the name is decoration only
                pass
        return name

    def put(self, x):
        # mx.array(float64 ndarray) gives float32: ask for the dtype explicitly.
        a = self.mx.array(x, dtype=getattr(self.mx, x.dtype.name))
        self.mx.eval(a)
        return a

    def _runner(self, fn, *inputs):
        args = [self.put(x) for x in inputs]

        def run():
            y = fn(*args)
            self.mx.eval(y)
            if self.on_gpu:
                self.mx.synchronize()
            return y

        return run, lambda y: tuple(np.array(t) for t in _as_tuple(y))

    def op_conv2d(self, x, w):
        mx = self.mx
        return self._runner(lambda a, b: mx.conv2d(a, b, stride=1, padding=1), x, w)

    def op_conv2d_vjp(self, x, w, ct):
        mx = self.mx

        def fwd_bwd(a, b, c):
            outs, grads = mx.vjp(lambda p, q: mx.conv2d(p, q, stride=1, padding=1), [a, b], [c])
            return [outs[0], grads[0], grads[1]]

        return self._runner(fwd_bwd, x, w, ct)

    def _resnet_ops(self):
        mx = self.mx
        return ops_resnet.make_ops(lambda x, w, s, p: mx.conv2d(x, w, stride=s, padding=p),
                                   lambda t: mx.maximum(t, 0.0))

    def op_resnet(self, x, *weights):
        ops = self._resnet_ops()
        return self._runner(lambda a, *ws: ops_resnet.forward(ops, a, ws), x, *weights)

    def op_resnet_vjp(self, x, *weights_and_ct):
        mx, ops = self.mx, self._resnet_ops()

        def fwd_bwd(*args):
            primals, ct = list(args[:-1]), args[-1]
            outs, grads = mx.vjp(lambda a, *ws: ops_resnet.forward(ops, a, ws), primals, [ct])
            return [outs[0], *grads]

        return self._runner(fwd_bwd, x, *weights_and_ct)

    def op_fft(self, x):
        return self._runner(self.mx.fft.fft, x)

    def op_rfft(self, x):
        return self._runner(self.mx.fft.rfft, x)

    def _linalg(self, fname, *inputs):
        f = getattr(self.mx.linalg, fname)
        return self._runner(lambda *a: f(*a, stream=self.linalg_stream), *inputs)

    def op_svd(self, a):
        return self._linalg("svd", a)

    def op_eigh(self, a):
        return self._linalg("eigh", a)

    def op_solve(self, a, b):
        return self._linalg("solve", a, b)

    def op_inv(self, a):
        return self._linalg("inv", a)

    def op_cholesky(self, a):
        return self._linalg("cholesky", a)

    def op_qr(self, a):
        return self._linalg("qr", a)

    def op_einsum(self, subscripts, *operands):
        return self._runner(lambda *a: self.mx.einsum(subscripts, *a), *operands)


class NumPyFw(Adapter):
    name = "numpy"
    version = np.__version__

    def _runner(self, fn, *inputs):
        return (lambda: fn(*inputs)), (lambda y: tuple(np.asarray(t) for t in _as_tuple(y)))

    def op_fft(self, x):
        return self._runner(np.fft.fft, x)

    def op_rfft(self, x):
        return self._runner(np.fft.rfft, x)

    def op_svd(self, a):
        return self._runner(np.linalg.svd, a)

    def op_eigh(self, a):
        return self._runner(np.linalg.eigh, a)

    def op_solve(self, a, b):
        return self._runner(np.linalg.solve, a, b)

    def op_inv(self, a):
        return self._runner(np.linalg.inv, a)

    def op_cholesky(self, a):
        return self._runner(np.linalg.cholesky, a)

    def op_qr(self, a):
        return self._runner(np.linalg.qr, a)

    def op_einsum(self, subscripts, *operands):
        return self._runner(lambda *a: np.einsum(subscripts, *a, optimize=True), *operands)


class Jax(Adapter):
    """Jitted functions (JAX's best CPU path); the peer of conv and fft only."""

    name = "jax"

    def __init__(self, device="cpu"):
        os.environ.setdefault("JAX_PLATFORMS", "cuda" if device == "gpu" else "cpu")
        self.jax = importlib.import_module("jax")
        self.jnp = importlib.import_module("jax.numpy")
        self.version = self.jax.__version__

    def device_name(self):
        return str(self.jax.devices()[0])

    def _runner(self, fn, *inputs, post=None):
        jitted = self.jax.jit(fn)
        args = [self.jax.device_put(x).block_until_ready() for x in inputs]

        def run():
            return self.jax.block_until_ready(jitted(*args))

        def fetch(y):
            out = tuple(np.asarray(t) for t in _as_tuple(y))
            return post(out) if post else out

        return run, fetch

    def _conv(self, x, w, stride=1, padding=1):
        return self.jax.lax.conv_general_dilated(x, w, (stride, stride), ((padding, padding), (padding, padding)),
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def op_conv2d(self, x, w):
        return self._runner(self._conv, x, w.transpose(1, 2, 3, 0))  # OHWI -> HWIO

    def op_conv2d_vjp(self, x, w, ct):
        def fwd_bwd(a, b, c):
            y, pull = self.jax.vjp(self._conv, a, b)
            return (y,) + tuple(pull(c))

        # The weight's gradient comes back HWIO: to OHWI for the check.
        return self._runner(fwd_bwd, x, w.transpose(1, 2, 3, 0), ct,
                            post=lambda r: (r[0], r[1], r[2].transpose(3, 0, 1, 2)))

    def _resnet(self, x, *weights):
        ops = ops_resnet.make_ops(self._conv, lambda t: self.jnp.maximum(t, 0.0))
        return ops_resnet.forward(ops, x, weights)

    def op_resnet(self, x, *weights):
        return self._runner(self._resnet, x, *(w.transpose(1, 2, 3, 0) for w in weights))

    def op_resnet_vjp(self, x, *weights_and_ct):
        *weights, ct = weights_and_ct

        def fwd_bwd(*args):
            y, pull = self.jax.vjp(self._resnet, *args[:-1])
            return (y,) + tuple(pull(args[-1]))

        # Weight gradients come back HWIO: to OHWI for the check.
        return self._runner(fwd_bwd, x, *(w.transpose(1, 2, 3, 0) for w in weights), ct,
                            post=lambda r: r[:2] + tuple(g.transpose(3, 0, 1, 2) for g in r[2:]))

    def op_fft(self, x):
        return self._runner(self.jnp.fft.fft, x)

    def op_rfft(self, x):
        return self._runner(self.jnp.fft.rfft, x)


class Torch(Adapter):
    name = "torch"

    def __init__(self, device="cpu", threads=None):
        self.torch = importlib.import_module("torch")
        self.version = self.torch.__version__
        if threads:
            self.torch.set_num_threads(threads)
        self.dev = self.torch.device("cuda" if device == "gpu" else "cpu")
        if self.dev.type == "cuda" and not self.torch.cuda.is_available():
            raise RuntimeError(f"torch {self.version} sees no CUDA device (built for CUDA {self.torch.version.cuda})")
        if self.dev.type == "cuda":
            # Full float32, as oxmx's default.
            self.torch.backends.cuda.matmul.allow_tf32 = False
            self.torch.backends.cudnn.allow_tf32 = False

    def device_name(self):
        if self.dev.type == "cuda":
            return self.torch.cuda.get_device_name(0)
        return f"cpu ({self.torch.get_num_threads()} threads)"

    def put(self, x):
        return self.torch.from_numpy(np.ascontiguousarray(x)).to(self.dev)

    def _runner(self, fn, *inputs, post=None):
        return self._make(fn, [self.put(x) for x in inputs], post)

    def _make(self, fn, args, post=None):
        def run():
            y = fn(*args)
            if self.dev.type == "cuda":
                self.torch.cuda.synchronize()
            return y

        def fetch(y):
            out = tuple(t.detach().cpu().numpy() for t in _as_tuple(y))
            return post(out) if post else out

        return run, fetch

    @staticmethod
    def _nchw_to_nhwc(out):
        return tuple(t.transpose(0, 2, 3, 1) for t in out)  # also OIHW -> OHWI

    def op_conv2d(self, x, w):
        F = self.torch.nn.functional
        return self._runner(lambda a, b: F.conv2d(a, b, stride=1, padding=1),
                            x.transpose(0, 3, 1, 2), w.transpose(0, 3, 1, 2), post=self._nchw_to_nhwc)

    def op_conv2d_vjp(self, x, w, ct):
        torch = self.torch
        F = torch.nn.functional
        a, b, c = (self.put(t.transpose(0, 3, 1, 2)) for t in (x, w, ct))
        a.requires_grad_(True)
        b.requires_grad_(True)

        def fwd_bwd(a, b, c):
            y = F.conv2d(a, b, stride=1, padding=1)
            dx, dw = torch.autograd.grad(y, (a, b), c)
            return y.detach(), dx, dw

        return self._make(fwd_bwd, [a, b, c], post=self._nchw_to_nhwc)

    def _resnet_ops(self):
        F = self.torch.nn.functional
        return ops_resnet.make_ops(lambda x, w, s, p: F.conv2d(x, w, stride=s, padding=p), F.relu,
                                   channels_first=True)

    def op_resnet(self, x, *weights):
        ops = self._resnet_ops()
        return self._runner(lambda a, *ws: ops_resnet.forward(ops, a, ws),
                            *(t.transpose(0, 3, 1, 2) for t in (x, *weights)), post=self._nchw_to_nhwc)

    def op_resnet_vjp(self, x, *weights_and_ct):
        ops = self._resnet_ops()
        *primals, ct = (self.put(t.transpose(0, 3, 1, 2)) for t in (x, *weights_and_ct))
        for t in primals:
            t.requires_grad_(True)

        def fwd_bwd(*args):
            y = ops_resnet.forward(ops, args[0], args[1:-1])
            return (y.detach(),) + self.torch.autograd.grad(y, args[:-1], args[-1])

        # NCHW -> NHWC and OIHW -> OHWI are the same transposition.
        return self._make(fwd_bwd, [*primals, ct], post=self._nchw_to_nhwc)

    def op_fft(self, x):
        return self._runner(self.torch.fft.fft, x)

    def op_rfft(self, x):
        return self._runner(self.torch.fft.rfft, x)

    def op_svd(self, a):
        return self._runner(self.torch.linalg.svd, a)

    def op_eigh(self, a):
        return self._runner(self.torch.linalg.eigh, a)

    def op_solve(self, a, b):
        return self._runner(self.torch.linalg.solve, a, b)

    def op_inv(self, a):
        return self._runner(self.torch.linalg.inv, a)

    def op_cholesky(self, a):
        return self._runner(self.torch.linalg.cholesky, a)

    def op_qr(self, a):
        return self._runner(self.torch.linalg.qr, a)

    def op_einsum(self, subscripts, *operands):
        return self._runner(lambda *a: self.torch.einsum(subscripts, *a), *operands)


# --------------------------------------------------------------------------------------
# Cases, their float64 references and checks
# --------------------------------------------------------------------------------------
class Case:
    """One row: framework op `op` on `inputs`. `reference()` (float64 NumPy, computed once)
    and `check(got, ref)` (raises AssertionError) judge a framework's result; `work` is
    in GFLOP for unit "GFLOP/s", None for unit "ms" (then only times are shown). `images`:
    also show images per second for this batch size. `frameworks`: the only ones run
    (None: all)."""

    def __init__(self, key, group, title, op, inputs, reference, check, work=None, bar=None, slow=False,
                 images=None, frameworks=None):
        self.key, self.group, self.title, self.op, self.inputs = key, group, title, op, inputs
        self._reference, self.check = reference, check
        self.work, self.bar, self.slow = work, bar, slow  # bar: (peer, ratio, text)
        self.images, self.frameworks = images, frameworks
        self.unit = ("GFLOP/s, img/s" if images else "GFLOP/s") if work is not None else "ms"
        self._ref = None

    def reference(self):
        if self._ref is None:
            self._ref = self._reference()
        return self._ref


def _rng(seed=0):
    return np.random.default_rng(seed)


def _f64(x):
    return x.astype(np.complex128 if np.iscomplexobj(x) else np.float64)


def _rel_err(got, ref):
    """Max-norm error relative to the reference's largest entry."""
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    return float(np.max(np.abs(_f64(got) - ref))) / max(scale, 1e-300) if ref.size else 0.0


def _expect(got, shapes, dtype):
    """The right number of outputs, each with the reference's shape and the input's dtype."""
    assert len(got) == len(shapes), f"{len(got)} outputs, expected {len(shapes)}"
    for g, s in zip(got, shapes):
        assert g.shape == tuple(s), f"shape {g.shape}, expected {tuple(s)}"
        assert g.dtype == dtype, f"dtype {g.dtype}, expected {dtype}"


def _close(name, got, ref, tol):
    err = _rel_err(got, ref)
    assert err <= tol, f"{name}: relative error {err:.3g} > {tol:g}"


# Tolerances on max-norm relative errors: about 100x the largest error any framework showed
# (float32: 1e-6 to 1e-5 here), far below what a wrong result gives (errors of order 1).
TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.complex64): 2e-4, np.dtype(np.float64): 1e-10}
# Factorizations and inverses of 1024 x 1024 matrices accumulate more rounding (float32
# solve / inv: up to 1.4e-3 with condition number 10); a 1% error still fails.
LINALG_TOL = {np.dtype(np.float32): 5e-3, np.dtype(np.float64): 1e-9}
# ResNet stack gradients, by relative 2-norm: a ReLU whose input lies within float32 rounding
# of zero can flip its gradient between 0 and 1. Such flips are correct float32 results, and
# one of them (oxmx, --quick CPU size) moved the input's and stage 1's gradients by 2e-3 while
# every other error stayed below 1e-6. A wrong gradient (stride, padding, layout) errs by
# far more than 1e-2 on this norm.
RESNET_GRAD_TOL = 1e-2


# ---- conv2d ---------------------------------------------------------------------------
def conv_cases(n, hw, cin, cout):
    rng = _rng(1)
    x = rng.standard_normal((n, hw, hw, cin), dtype=np.float32)
    w = (rng.standard_normal((cout, 3, 3, cin)) / np.sqrt(9 * cin)).astype(np.float32)
    ct = rng.standard_normal((n, hw, hw, cout), dtype=np.float32)
    flops = 2.0 * n * hw * hw * cin * cout * 9
    shape = f"{n}x{hw}x{hw}x{cin} (NHWC), 3x3, {cout} out, pad 1"
    bar = ("jax", 1.0, ">= 1.0x JAX")

    def check_fwd(got, ref):
        _expect(got, [ref.shape], np.float32)
        _close("output", got[0], ref, TOL[np.dtype(np.float32)])

    def ref_bwd():
        return (ops_resnet.conv_ref(_f64(x), _f64(w)),) + ops_resnet.conv_grads_ref(_f64(x), _f64(w), _f64(ct))

    def check_bwd(got, ref):
        _expect(got, [r.shape for r in ref], np.float32)
        # The weight's gradient sums n*h*w products per entry: a looser bound.
        for name, g, r, tol in zip(("output", "grad x", "grad w"), got, ref, (2e-4, 2e-4, 1e-3)):
            _close(name, g, r, tol)

    return [
        Case("conv_fwd", "conv", f"conv2d forward, {shape}", "conv2d", (x, w),
             lambda: ops_resnet.conv_ref(_f64(x), _f64(w)), check_fwd, work=flops / 1e9, bar=bar),
        Case("conv_fwdbwd", "conv", f"conv2d forward+backward (grad x, w), {shape}", "conv2d_vjp", (x, w, ct),
             ref_bwd, check_bwd, work=3 * flops / 1e9, bar=bar, slow=True),
    ]


# ---- ResNet-50 conv stack --------------------------------------------------------------
def _rel_l2(got, ref):
    return float(np.linalg.norm(_f64(got) - ref) / max(np.linalg.norm(ref), 1e-300))


def resnet_cases(n, hw, frameworks=None):
    """ops_resnet's stack, forward and forward + gradients w.r.t. the input and all 17 weights."""
    x, weights, ct = ops_resnet.init(n, hw)
    _, flops = ops_resnet.shapes_and_flops(n, hw)
    shape = f"batch {n}, {hw}x{hw}x3, float32"
    title = f"ResNet-50 convs (stem + first bottleneck per stage, {len(ops_resnet.LAYERS)} convs)"
    bar = ("jax", 1.0, ">= 1.0x JAX")
    tol = TOL[np.dtype(np.float32)]  # the output: ReLU is continuous, flips do not show

    def check_fwd(got, ref):
        _expect(got, [ref.shape], np.float32)
        _close("output", got[0], ref, tol)

    def check_bwd(got, ref):
        _expect(got, [r.shape for r in ref], np.float32)
        _close("output", got[0], ref[0], tol)
        names = ["grad x"] + [f"grad {layer[0]}" for layer in ops_resnet.LAYERS]
        for name, g, r in zip(names, got[1:], ref[1:]):
            err = _rel_l2(g, r)
            assert err <= RESNET_GRAD_TOL, f"{name}: relative 2-norm error {err:.3g} > {RESNET_GRAD_TOL:g}"

    return [
        Case("resnet_fwd", "resnet", f"{title} forward, {shape}", "resnet", (x, *weights),
             lambda: ops_resnet.reference_forward(x, weights), check_fwd, work=flops / 1e9, bar=bar,
             images=n, frameworks=frameworks),
        Case("resnet_fwdbwd", "resnet", f"{title} forward+backward (grad x, all weights), {shape}", "resnet_vjp",
             (x, *weights, ct), lambda: ops_resnet.reference_vjp(x, weights, ct), check_bwd, work=3 * flops / 1e9,
             bar=bar, slow=True, images=n, frameworks=frameworks),
    ]


# ---- fft ------------------------------------------------------------------------------
def fft_cases(log2n):
    rng = _rng(2)
    n = 1 << log2n
    z = (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)
    r = rng.standard_normal(n, dtype=np.float32)
    bar = ("numpy", 0.8, ">= 0.8x NumPy")

    def check(got, ref):
        _expect(got, [ref.shape], np.complex64)
        _close("spectrum", got[0], ref, TOL[np.dtype(np.complex64)])

    return [
        Case("cfft", "fft", f"fft, complex64, 2^{log2n}", "fft", (z,), lambda: np.fft.fft(_f64(z)), check,
             work=5.0 * n * log2n / 1e9, bar=bar),
        Case("rfft", "fft", f"rfft, float32, 2^{log2n}", "rfft", (r,), lambda: np.fft.rfft(_f64(r)), check,
             work=2.5 * n * log2n / 1e9, bar=bar),
    ]


# ---- linalg ---------------------------------------------------------------------------
def _orthogonal(n, rng):
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def _orth_err(q):
    return _rel_err(q.T @ q, np.eye(q.shape[1]))


def _check_svd(tol):
    def check(got, ref):
        a, s_ref = ref
        n = a.shape[0]
        _expect(got, [(n, n), (n,), (n, n)], got[0].dtype)
        u, s, vt = (_f64(t) for t in got)
        _close("singular values", np.sort(s)[::-1], s_ref, tol)
        _close("U S Vt", (u * s) @ vt, a, tol)
        assert _orth_err(u) <= tol and _orth_err(vt.T) <= tol, "U or V not orthogonal"

    return check


def _check_eigh(tol):
    def check(got, ref):
        a, w_ref = ref
        n = a.shape[0]
        _expect(got, [(n,), (n, n)], got[0].dtype)
        w, v = (_f64(t) for t in got)
        _close("eigenvalues", np.sort(w), w_ref, tol)
        _close("V diag(w) Vt", (v * w) @ v.T, a, tol)
        assert _orth_err(v) <= tol, "eigenvectors not orthogonal"

    return check


def _check_qr(tol):
    def check(got, ref):
        a, r_ref = ref
        n = a.shape[0]
        _expect(got, [(n, n), (n, n)], got[0].dtype)
        q, r = (_f64(t) for t in got)
        # Q and R are unique up to the signs of R's rows (Q's columns).
        _close("|R|", np.abs(r), np.abs(r_ref), tol)
        assert np.all(np.tril(r, -1) == 0), "R is not upper triangular"
        _close("Q R", q @ r, a, tol)
        assert _orth_err(q) <= tol, "Q not orthogonal"

    return check


def _check_direct(tol):
    """Results unique for these inputs (well-conditioned solve / inv, SPD Cholesky)."""
    def check(got, ref):
        _expect(got, [ref.shape], got[0].dtype)
        _close("result", got[0], ref, tol)

    return check


def linalg_cases(n, dtypes=(np.float32, np.float64)):
    rng = _rng(3)
    g = rng.standard_normal((n, n))
    spectrum = np.linspace(1.0, 10.0, n)  # condition number 10: results comparable to float64
    u, v = _orthogonal(n, rng), _orthogonal(n, rng)
    well = (u * spectrum) @ v.T
    spd = (u * spectrum) @ u.T
    spd = (spd + spd.T) / 2
    rhs = rng.standard_normal((n, 16))
    cases = []
    bar = ("numpy", 0.7, ">= 0.7x NumPy")
    for dt in dtypes:
        dt = np.dtype(dt)
        bits = dt.itemsize * 8
        tol = LINALG_TOL[dt]
        a_gen, a_sym = g.astype(dt), ((g + g.T) / 2).astype(dt)
        a_well, a_spd, b = well.astype(dt), spd.astype(dt), rhs.astype(dt)
        size = f"{n}x{n} float{bits}"
        specs = [
            ("svd", f"svd (compute_uv), {size}", (a_gen,),
             lambda a=a_gen: (_f64(a), np.linalg.svd(_f64(a), compute_uv=False)), _check_svd(tol), bar),
            ("eigh", f"eigh, {size} symmetric", (a_sym,),
             lambda a=a_sym: (_f64(a), np.linalg.eigvalsh(_f64(a))), _check_eigh(tol), bar),
            ("solve", f"solve, {size}, {n}x16 right-hand side", (a_well, b),
             lambda a=a_well, b=b: np.linalg.solve(_f64(a), _f64(b)), _check_direct(tol), bar),
            ("inv", f"inv, {size}", (a_well,), lambda a=a_well: np.linalg.inv(_f64(a)), _check_direct(tol), None),
            ("cholesky", f"cholesky, {size} SPD", (a_spd,),
             lambda a=a_spd: np.linalg.cholesky(_f64(a)), _check_direct(tol), None),
            ("qr", f"qr, {size}", (a_gen,),
             lambda a=a_gen: (_f64(a), np.linalg.qr(_f64(a))[1]), _check_qr(tol), None),
        ]
        for op, title, inputs, ref, check, case_bar in specs:
            cases.append(Case(f"{op}{bits}", "linalg", title, op, inputs, ref, _typed(check, dt), bar=case_bar,
                              slow=op in ("svd", "eigh")))
    return cases


def _typed(check, dtype):
    """Also require the input's dtype back (a float32 answer to a float64 question fails)."""
    def typed(got, ref):
        for g in got:
            assert g.dtype == dtype, f"dtype {g.dtype}, expected {dtype}"
        check(got, ref)

    return typed


# ---- einsum ---------------------------------------------------------------------------
def einsum_cases(scale):
    rng = _rng(4)
    a, b, c, d = 256 // scale, 64 // scale, 1024 // scale, 64 // scale
    chain = tuple(rng.standard_normal(s, dtype=np.float32) for s in ((a, b), (b, c), (c, d), (d, a)))
    bb, i, j = 32 // scale, 256 // scale, 32 // scale
    batched = tuple(rng.standard_normal(s, dtype=np.float32) for s in ((bb, i, j), (bb, j, i), (bb, i, j)))
    bar = ("numpy", 1.0, ">= 1.0x NumPy")

    def make(key, subscripts, ops, title):
        def ref():
            return np.einsum(subscripts, *(_f64(o) for o in ops), optimize=True)

        def check(got, r):
            _expect(got, [r.shape], np.float32)
            _close("result", got[0], r, TOL[np.dtype(np.float32)])

        return Case(key, "einsum", title, "einsum", (subscripts,) + ops, ref, check, bar=bar)

    return [
        make("einsum_chain", "ab,bc,cd,de->ae", chain,
             f"einsum 'ab,bc,cd,de->ae', a=e={a}, b=d={b}, c={c}"),
        make("einsum_batched", "bij,bjk,bkl->bil", batched,
             f"einsum 'bij,bjk,bkl->bil', b={bb}, i=k={i}, j=l={j}"),
    ]


# ResNet stack (batch, image side): CPU runs it at batch 2 to stay short; --quick CPU is tiny.
RESNET_SIZES = {("cpu", False): (2, 224), ("cpu", True): (1, 64), ("gpu", False): (32, 224), ("gpu", True): (2, 224)}
# GPU bars (issue #12): convolutions against torch (cuDNN); the other rows are shown without one.
GPU_BARS = {"conv": ("torch", 0.8, ">= 0.8x torch"), "resnet": ("torch", 0.8, ">= 0.8x torch")}


def build_cases(quick, gpu=False):
    """Every case; on the GPU with GPU_BARS. On the CPU, MLX sits out the ResNet stack (its
    CPU convolution, ~2 GFLOP/s, would take minutes per run)."""
    n, hw = RESNET_SIZES["gpu" if gpu else "cpu", quick]
    resnet = resnet_cases(n, hw, frameworks=None if gpu else ("oxmx", "jax", "torch"))
    if quick:
        cases = conv_cases(2, 28, 32, 32) + resnet + fft_cases(16) + linalg_cases(128) + einsum_cases(4)
    else:
        cases = conv_cases(16, 56, 64, 64) + resnet + fft_cases(20) + linalg_cases(1024) + einsum_cases(1)
    if gpu:
        for case in cases:
            case.bar = GPU_BARS.get(case.group)
    return cases


def select(cases, only):
    """--only: case keys (svd32) or groups (conv, resnet, fft, linalg, einsum)."""
    if not only:
        return cases
    keys = set(only.split(","))
    unknown = keys - {c.key for c in cases} - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown --only keys {sorted(unknown)}; groups: {', '.join(GROUPS)}; cases: "
                         + ", ".join(c.key for c in cases))
    return [c for c in cases if c.key in keys or c.group in keys]


# --------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------
def repeats(quick, slow, gpu=False):
    if quick:
        return dict(min_repeats=2, max_repeats=5, budget_s=0.5)
    if gpu:
        # One framework per process, no machine noise to average over: shorter budgets.
        return dict(min_repeats=5 if slow else 10, max_repeats=50, budget_s=1.5 if slow else 1.0)
    return dict(min_repeats=5, max_repeats=30, budget_s=4.0 if slow else 3.0, settle_s=SETTLE_S)


# Untimed pause before each CPU run: a framework's worker threads spin for a while after
# its call (OpenBLAS about 0.1 s), and on a 2-core machine the framework timed next would
# share the cores with them (measured: oxmx's eigh 209 ms right after NumPy's, 184 ms
# after a pause). Nobody runs two frameworks' pools at once in real use.
SETTLE_S = 0.2


def timed_rounds(runners, min_repeats, max_repeats, budget_s, settle_s=0.0):
    """Round-robin: one run of each runner per round (rotating which goes first), until every
    runner has `min_repeats` runs and `budget_s` has passed; `settle_s` of untimed sleep
    before each run. Returns ({index: [seconds]}, {index: error}). The garbage collector is
    paused during a round and collects between rounds."""
    times = {k: [] for k in range(len(runners))}
    errors = {}
    if not runners:
        return times, errors
    start = time.perf_counter()
    for i in range(1, max_repeats + 1):
        gc.collect()
        gc.disable()
        try:
            # Each round starts with the next framework: none always follows the same one
            # (whose worker threads may still be spinning).
            for j in range(len(runners)):
                k = (i + j) % len(runners)
                if k in errors:
                    continue
                try:
                    if settle_s:
                        time.sleep(settle_s)
                    t0 = time.perf_counter()
                    runners[k]()
                    times[k].append(time.perf_counter() - t0)
                except Exception as e:  # noqa: BLE001 - a failing run is reported, not fatal
                    errors[k] = run_cpu._short_err(e)
        finally:
            gc.enable()
        if i >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return times, errors


def prepare_checked(case, fw):
    """(run, None) ready to time, (None, error) when the op raised or disagreed with the
    reference, (None, None) when the framework has no such op."""
    try:
        prepared = fw.prepare(case.op, *case.inputs)
        if prepared is None:
            return None, None
        run, fetch = prepared
        case.check(fetch(run()), case.reference())
        run()  # warm-up (caches, thread pools; JAX compiled in the check run)
        return run, None
    except Exception as e:  # noqa: BLE001
        return None, run_cpu._short_err(e)


def run_cases(fws, cases, quick, log=print, gpu=False):
    """{case key: {framework: {seconds, best, repeats} | {error}}} (JSON-able); a framework
    without the op, or not among the case's frameworks, has no entry."""
    out = {}
    for case in cases:
        out[case.key] = {}
        names, runners = [], []
        for fw in fws:
            if case.frameworks is not None and fw.name not in case.frameworks:
                continue
            run, err = prepare_checked(case, fw)
            if err is not None:
                out[case.key][fw.name] = dict(error=err)
                log(f"  {case.title} / {fw.name:<6} FAILED: {err}")
            elif run is not None:
                names.append(fw.name)
                runners.append(run)
        times, errors = timed_rounds(runners, **repeats(quick, case.slow, gpu))
        for k, name in enumerate(names):
            if k in errors:
                out[case.key][name] = dict(error=errors[k])
                log(f"  {case.title} / {name:<6} FAILED: {errors[k]}")
                continue
            sec = statistics.median(times[k])
            out[case.key][name] = dict(seconds=sec, best=min(times[k]), repeats=len(times[k]))
            rate = f"{case.work / sec:10.4g} GFLOP/s, " if case.work else ""
            log(f"  {case.title} / {name:<6} {rate}median {sec * 1e3:.3f} ms of {len(times[k])}")
        del runners
        gc.collect()
    return out


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def _fmt_ms(s):
    ms = s * 1e3
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:,.0f} ms"


def _cell(case, r):
    if r is None:
        return "—"
    if "error" in r:
        return "fails"
    if case.work is None:
        return _fmt_ms(r["seconds"])
    images = f", {run_cpu._fmt_rate(case.images / r['seconds'])}" if case.images else ""
    return f"{run_cpu._fmt_rate(case.work / r['seconds'])}{images} ({_fmt_ms(r['seconds'])})"


def _speedup(results, case, peer):
    """peer's time / oxmx's time (> 1: oxmx is faster), or None."""
    ox, p = results.get(case.key, {}).get("oxmx"), results.get(case.key, {}).get(peer)
    if ox and p and "seconds" in ox and "seconds" in p:
        return p["seconds"] / ox["seconds"]
    return None


def make_table(cases, names, results):
    peers = [n for n in names if n != "oxmx"]
    head = ["benchmark", "unit"] + names + [f"oxmx vs {p}" for p in peers] + ["bar", "meets bar"]
    lines = ["| " + " | ".join(head) + " |",
             "|---|---|" + "---:|" * (len(names) + len(peers)) + "---|---|"]
    for case in cases:
        per = results.get(case.key, {})
        row = [case.title, case.unit] + [_cell(case, per.get(n)) for n in names]
        for p in peers:
            r = _speedup(results, case, p)
            row.append("—" if r is None else f"{r:.2f}x")
        row += _bar_cells(case, per, names)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def _bar_cells(case, per, names):
    if not case.bar:
        return ["", ""]
    peer, ratio, text = case.bar
    ox, p = per.get("oxmx"), per.get(peer)
    if ox is None:
        verdict = "n/a (no oxmx)"
    elif "error" in ox:
        verdict = "no (oxmx fails)"
    elif peer not in names or p is None or "error" in p:
        verdict = f"n/a (no {peer})"
    else:
        verdict = "**yes**" if p["seconds"] / ox["seconds"] >= ratio else "no"
    return [text, verdict]


def failures_text(cases, names, results):
    out = []
    for case in cases:
        for n in names:
            r = results.get(case.key, {}).get(n)
            if r and "error" in r:
                out.append(f"- {case.title} / {n}: `{r['error']}`")
    return "\n".join(out)


def write_block(kind, block):
    """Replace this kind's marked block in BENCHMARKS.md (appended when absent)."""
    run_cpu.write_marked_block(*MARKERS[kind], block)


# --------------------------------------------------------------------------------------
# Threads and frameworks
# --------------------------------------------------------------------------------------
def pin_threads(n):
    """Every framework's CPU pool to n threads; before oxmx, MLX, torch and JAX are imported.

    NumPy (imported already, its OpenBLAS sized at load) is limited through threadpoolctl.
    OpenMP workers (torch's) wait passively: spinning workers on a small shared machine
    wait for descheduled peers (see run_nn.py). Returns a description for the report."""
    for k in ("OXMX_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(n)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    notes = ["OXMX_NUM_THREADS, OMP/OPENBLAS/MKL_NUM_THREADS", "torch.set_num_threads"]
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=n)
        notes.append("threadpoolctl (NumPy's BLAS)")
    except ImportError:
        if n != os.cpu_count():
            print("warning: threadpoolctl is missing; NumPy's BLAS keeps its own thread count.", file=sys.stderr)
    if n == 1:
        # XLA's CPU pool has no size setting besides "one thread".
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1").strip()
        notes.append("XLA_FLAGS (JAX)")
    elif n != os.cpu_count():
        notes.append("not JAX (XLA uses every core)")
    return ", ".join(notes) + f"; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"


def load_frameworks(device, threads, log=print):
    """The adapters that import, in FRAMEWORK_ORDER; a missing peer drops its column."""
    makers = {
        "oxmx": lambda: MLXLike("oxmx", "oxmx", device),
        "numpy": NumPyFw,
        "jax": lambda: Jax(device),
        "mlx": lambda: MLXLike("mlx", "mlx", device),
        "torch": lambda: Torch(device, threads),
    }
    fws, versions, missing = [], {}, {}
    for name in FRAMEWORK_ORDER:
        try:
            fw = makers[name]()
            fws.append(fw)
            versions[name] = fw.version
        except Exception as e:  # noqa: BLE001 - any import failure means "column absent"
            missing[name] = run_cpu._short_err(e)
    log(f"frameworks: {', '.join(f'{f.name} ({f.device_name()})' for f in fws)}"
        + (f"; skipped: {', '.join(missing)}" if missing else ""))
    return fws, versions, missing


# --------------------------------------------------------------------------------------
# Modes: CPU (every framework in this process) and GPU (oxmx and torch each in its own
# process - they load different cuDNN copies -, their results merged from JSON)
# --------------------------------------------------------------------------------------
def publish(kind, block, cases, names, results, block_out, write):
    """Print the block (with the failures under it); write it to `block_out` and, when
    `write`, into BENCHMARKS.md between this kind's markers."""
    fails = failures_text(cases, names, results)
    if fails:
        block += "\n\nFailures (the op raised or gave a wrong result; no number is shown):\n\n" + fails
    print()
    print(block)
    if block_out:
        Path(block_out).write_text(block + "\n")
    if write:
        write_block(kind, block)
        print(f"\nwrote {run_cpu.BENCH_MD.relative_to(ROOT)}")


def cpu_main(args):
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if k in os.environ:
            print(f"warning: {k}={os.environ[k]} is set; NumPy's OpenBLAS may run a slow generic kernel. "
                  f"Use `make bench-ops` (it unsets it) for numbers worth publishing.", file=sys.stderr)
    run_cpu.LOAD_AT_START = os.getloadavg()
    if run_cpu.LOAD_AT_START[0] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {run_cpu.LOAD_AT_START[0]:.2f} — other work is running; "
              f"numbers will be noisy.", file=sys.stderr)
    threads_note = pin_threads(args.threads)
    cases = select(build_cases(args.quick), args.only)
    fws, versions, missing = load_frameworks("cpu", args.threads)
    results = run_cases(fws, cases, args.quick)
    names = [f.name for f in fws]
    load_after = os.getloadavg()
    block = "\n".join([
        "### CPU, one process, medians" + (" (--quick sizes)" if args.quick else ""),
        "",
        run_cpu.machine_text(versions, missing),
        f"- load average after the run (1/5/15 min): {'/'.join(f'{x:.2f}' for x in load_after)}",
        f"- threads: every framework pinned to {args.threads} ({threads_note})",
        "",
        make_table(cases, names, results),
        "",
        "Cells: throughput (median time per run; the ResNet rows also in images/s), or the median time for "
        "the \"ms\" rows. \"oxmx vs X\": X's time / oxmx's time (above 1: oxmx is faster). \"—\": not run "
        "(NumPy has no convolution; JAX is run for conv, the ResNet stack and fft only; MLX not for the "
        "ResNet stack, whose run would take minutes with its CPU convolution).",
    ])
    publish("cpu", block, cases, names, results, args.block_out, not (args.quick or args.no_write or args.only))


def one_framework_main(args):
    """--framework X (what --gpu starts): X alone on --device, the GPU mode's cases; its
    results as JSON on the last stdout line."""
    pin_threads(args.threads)
    try:
        fw = MLXLike("oxmx", "oxmx", args.device) if args.framework == "oxmx" else Torch(args.device, args.threads)
    except Exception as e:  # noqa: BLE001 - no GPU, no CUDA build, ...: say so in one line
        raise SystemExit(f"{args.framework}: cannot run on the {args.device}: {run_cpu._short_err(e)}")
    cases = select(build_cases(args.quick, gpu=True), args.only)
    log = lambda s: print(s, flush=True)  # noqa: E731
    log(f"{fw.name} {fw.version} on {fw.device_name()}")
    results = run_cases([fw], cases, args.quick, log=log, gpu=args.device == "gpu")
    print(json.dumps(dict(name=fw.name, version=fw.version, device=fw.device_name(), results=results)))


def gpu_main(args):
    """--gpu: torch's process first, then oxmx's (torch's run is short and predictable, so
    a slow first oxmx run - kernels compiled on a fresh machine - cannot cost both columns).
    With --out the merged results go to a JSON file (--from-json makes the table later)."""
    if args.only:
        select(build_cases(args.quick, gpu=True), args.only)  # unknown keys: fail here, not twice below
    saved = dict(gpu_processes.machine_info(), device=args.device, quick=args.quick, only=args.only, frameworks={})
    for name in GPU_FRAMEWORKS:
        cmd = [sys.executable, __file__, "--framework", name, "--device", args.device, "--threads", str(args.threads)]
        cmd += (["--quick"] if args.quick else []) + (["--only", args.only] if args.only else [])
        got = gpu_processes.run_json_process(name, cmd, args.process_timeout)
        if got is not None:
            saved["frameworks"][name] = got
    if not saved["frameworks"]:
        raise SystemExit(f"run_ops.py --gpu: neither torch nor oxmx ran on the {args.device} (their errors are above)")
    if args.out:
        Path(args.out).write_text(json.dumps(saved, indent=1) + "\n")
        print(f"wrote {args.out}")
    publish_gpu(saved, args.block_out, not (args.quick or args.no_write or args.only or args.out))


def from_json_main(args):
    """--from-json FILE: the GPU table of a run saved with --gpu --out FILE."""
    publish_gpu(json.loads(Path(args.from_json).read_text()), args.block_out, not args.no_write)


def publish_gpu(saved, block_out, write):
    cases = select(build_cases(saved["quick"], gpu=True), saved["only"])
    runs = saved["frameworks"]
    names = [n for n in ("oxmx", "torch") if n in runs]
    results = {}
    for name in names:
        for key, r in runs[name]["results"].items():
            results.setdefault(key, {}).update(r)
    versions = {n: runs[n]["version"] for n in names}
    devices = {n: runs[n]["device"] for n in names}
    on_gpu = saved["device"] == "gpu"
    notes = [" (--quick sizes)" if saved["quick"] else "", f" (--only {saved['only']})" if saved["only"] else "",
             "" if on_gpu else " (--device cpu: a test of the plumbing, not GPU numbers)"]
    block = "\n".join([
        "### GPU, oxmx and torch each in its own process, medians" + "".join(notes),
        "",
        *gpu_processes.machine_lines(saved, versions, devices),
        "- float32 at full precision: torch's TF32 off (cuBLAS and cuDNN), as oxmx's default; torch eager, "
        "cuDNN's own algorithm choice (`cudnn.benchmark` off, the default); every timed run ends with a device "
        "synchronization (`mx.synchronize()`, `torch.cuda.synchronize()`)",
        *[f"- column `{n}` missing: its process failed" for n in GPU_FRAMEWORKS if n not in runs],
        "",
        make_table(cases, names, results),
        "",
        "Cells: throughput (median time per run; the ResNet rows also in images/s), or the median time for "
        "the \"ms\" rows. \"oxmx vs torch\": torch's time / oxmx's time (above 1: oxmx is faster). Every "
        "result was first checked against NumPy in float64 (on the host, outside the timed region).",
    ])
    if write and not on_gpu:
        print("not writing BENCHMARKS.md: these are CPU numbers (--device cpu)")
    publish("gpu", block, cases, names, results, block_out, write and on_gpu)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke test); implies --no-write")
    ap.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    ap.add_argument("--only", default="", help="comma-separated case keys or groups (conv, resnet, fft, linalg, "
                                               "einsum); implies --no-write")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads for every framework")
    ap.add_argument("--block-out", help="also write the markdown block to this file")
    ap.add_argument("--gpu", action="store_true", help="oxmx on its GPU against torch CUDA, each in its own process")
    ap.add_argument("--out", help="--gpu: write the merged results as JSON to this file instead of updating "
                                  "BENCHMARKS.md (see --from-json)")
    ap.add_argument("--from-json", help="write the GPU table of a run saved with --gpu --out into BENCHMARKS.md")
    ap.add_argument("--process-timeout", type=float, default=600, help="--gpu: seconds each framework's process may run")
    ap.add_argument("--framework", choices=GPU_FRAMEWORKS, help="run one framework alone on --device and print its "
                                                                "results as JSON (what --gpu starts)")
    # Testing the GPU mode's processes on a machine without a GPU: --gpu --device cpu.
    ap.add_argument("--device", choices=("gpu", "cpu"), default="gpu", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.from_json:
        from_json_main(args)
    elif args.framework:
        one_framework_main(args)
    elif args.gpu:
        gpu_main(args)
    else:
        cpu_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
