"""ResNet-50-sized convolution stack of run_ops.py, and NumPy float64 convolution references.

The stack: ResNet-50's stem (7x7/2, 64 channels) and the first bottleneck of each of its 4
stages (1x1 reduce, 3x3 - stride 2 in stages 2-4 -, 1x1 expand, plus the 1x1 projection
shortcut added to the expand), ReLU after every conv but the expand and after the sum.
No batch norm. The stem's 3x3/2 max pool becomes a stride-2 subsample (every second row
and column): the same shapes, and a gradient that does not depend on how a framework
breaks ties between equal maxima (frequent after a ReLU).

`forward(ops, x, weights)` is written once for every framework: `ops` supplies conv, relu,
add and subsample in the framework's own layout. Weights come in layer order (`LAYERS`),
OHWI (oxmx's / MLX's layout); the input is NHWC.
"""

from __future__ import annotations

import math
import operator
from types import SimpleNamespace

import numpy as np

# (output channels, bottleneck width, stride of the 3x3 and of the shortcut) per stage.
STAGES = ((256, 64, 1), (512, 128, 2), (1024, 256, 2), (2048, 512, 2))


def _layers():
    """(name, cin, cout, kernel, stride, padding) of every conv, in weight order."""
    out = [("stem 7x7/2", 3, 64, 7, 2, 3)]
    cin = 64
    for i, (cout, width, stride) in enumerate(STAGES, 1):
        out += [(f"stage {i} reduce", cin, width, 1, 1, 0),
                (f"stage {i} 3x3", width, width, 3, stride, 1),
                (f"stage {i} expand", width, cout, 1, 1, 0),
                (f"stage {i} projection", cin, cout, 1, stride, 0)]
        cin = cout
    return tuple(out)


LAYERS = _layers()


def forward(ops, x, weights):
    """The stack's output (N x H/32 x W/32 x 2048 in NHWC) on any framework."""
    params = iter(zip(LAYERS, weights))

    def conv(t):
        (_, _, _, _, stride, padding), w = next(params)
        return ops.conv(t, w, stride, padding)

    x = ops.subsample(ops.relu(conv(x)))
    for _ in STAGES:
        h = ops.relu(conv(x))
        h = ops.relu(conv(h))
        h = conv(h)
        x = ops.relu(ops.add(h, conv(x)))  # conv(x): the projection shortcut
    return x


def make_ops(conv, relu, channels_first=False):
    """`forward`'s ops from a framework's conv(x, w, stride, padding) and relu."""
    if channels_first:
        subsample = lambda t: t[:, :, ::2, ::2]  # noqa: E731
    else:
        subsample = lambda t: t[:, ::2, ::2, :]  # noqa: E731
    return SimpleNamespace(conv=conv, relu=relu, add=operator.add, subsample=subsample)


def init(n, hw, seed=5):
    """float32 input (NHWC), He-initialised OHWI weights, and a cotangent for the output."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, hw, hw, 3), dtype=np.float32)
    weights = tuple((rng.standard_normal((cout, k, k, cin)) * math.sqrt(2.0 / (k * k * cin))).astype(np.float32)
                    for _, cin, cout, k, _, _ in LAYERS)
    out_shape, _ = shapes_and_flops(n, hw)
    ct = rng.standard_normal(out_shape, dtype=np.float32)
    return x, weights, ct


# --------------------------------------------------------------------------------------
# Shapes and work: `forward` run on shapes
# --------------------------------------------------------------------------------------
def conv_shapes(n, hw):
    """(output shape, [(x NHWC, w OHWI, stride, padding) of every conv, in order])."""
    convs = []

    def conv(x, w, stride, padding):
        cout, k, _, _ = w
        ho, wo = ((d + 2 * padding - k) // stride + 1 for d in x[1:3])
        convs.append((x, w, stride, padding))
        return (x[0], ho, wo, cout)

    ops = SimpleNamespace(conv=conv, relu=lambda s: s, add=lambda a, b: a,
                          subsample=lambda s: (s[0], -(-s[1] // 2), -(-s[2] // 2), s[3]))
    out = forward(ops, (n, hw, hw, 3), [(cout, k, k, cin) for _, cin, cout, k, _, _ in LAYERS])
    return out, convs


def shapes_and_flops(n, hw):
    """(output shape, forward flops: 2 * N * Ho * Wo * Cout * k * k * Cin summed over the convs)."""
    out, convs = conv_shapes(n, hw)
    flops = 0
    for x, (cout, k, _, cin), stride, padding in convs:
        ho, wo = ((d + 2 * padding - k) // stride + 1 for d in x[1:3])
        flops += 2 * x[0] * ho * wo * cout * k * k * cin
    return out, float(flops)


# --------------------------------------------------------------------------------------
# NumPy float64 references
# --------------------------------------------------------------------------------------
def _taps(xp, i, j, ho, wo, stride):
    """The input rows and columns kernel tap (i, j) sees, for every output position."""
    return xp[:, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride, :]


def _out_size(x, w, stride, padding):
    k = w.shape[1]
    return tuple((d + 2 * padding - k) // stride + 1 for d in x.shape[1:3])


def conv_ref(x, w, stride=1, padding=1):
    """NHWC x OHWI convolution: the sum over the kernel taps of strided-slice matmuls."""
    cout, kh, kw, _ = w.shape
    ho, wo = _out_size(x, w, stride, padding)
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    out = np.zeros((x.shape[0], ho, wo, cout))
    for i in range(kh):
        for j in range(kw):
            out += _taps(xp, i, j, ho, wo, stride) @ w[:, i, j, :].T
    return out


def conv_grads_ref(x, w, ct, stride=1, padding=1):
    """Gradients of sum(conv_ref(x, w) * ct) w.r.t. x and w."""
    cin = x.shape[-1]
    _, kh, kw, _ = w.shape
    ho, wo = ct.shape[1:3]
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    ct2 = ct.reshape(-1, ct.shape[-1])
    for i in range(kh):
        for j in range(kw):
            _taps(dxp, i, j, ho, wo, stride)[...] += ct @ w[:, i, j, :]
            dw[:, i, j, :] = ct2.T @ _taps(xp, i, j, ho, wo, stride).reshape(-1, cin)
    h, wd = x.shape[1:3]
    return dxp[:, padding:padding + h, padding:padding + wd, :], dw


NUMPY_OPS = make_ops(conv_ref, lambda t: np.maximum(t, 0.0))


class _Node:
    """A value of the traced NumPy forward: its inputs and how to pull a cotangent back to them."""

    def __init__(self, value, inputs=(), pull=None):
        self.value, self.inputs, self.pull = value, inputs, pull


class _Tape:
    """`forward`'s ops on float64 NumPy values, recorded in order for a reverse sweep."""

    def __init__(self):
        self.nodes = []

    def node(self, value, inputs=(), pull=None):
        self.nodes.append(_Node(value, inputs, pull))
        return self.nodes[-1]

    def conv(self, x, w, stride, padding):
        return self.node(conv_ref(x.value, w.value, stride, padding), (x, w),
                         lambda ct: conv_grads_ref(x.value, w.value, ct, stride, padding))

    def relu(self, x):
        return self.node(np.maximum(x.value, 0.0), (x,), lambda ct: (ct * (x.value > 0),))

    def add(self, a, b):
        return self.node(a.value + b.value, (a, b), lambda ct: (ct, ct))

    def subsample(self, x):
        def pull(ct):
            dx = np.zeros_like(x.value)
            dx[:, ::2, ::2, :] = ct
            return (dx,)

        return self.node(x.value[:, ::2, ::2, :], (x,), pull)


def reference_forward(x, weights):
    return forward(NUMPY_OPS, np.asarray(x, np.float64), [np.asarray(w, np.float64) for w in weights])


def reference_vjp(x, weights, ct):
    """float64 (output, grad x, grad of every weight) for the cotangent `ct`."""
    tape = _Tape()
    leaves = [tape.node(np.asarray(a, np.float64)) for a in (x, *weights)]
    out = forward(tape, leaves[0], leaves[1:])
    grads = {id(out): np.asarray(ct, np.float64)}
    for node in reversed(tape.nodes):
        if not node.inputs or id(node) not in grads:
            continue
        for parent, g in zip(node.inputs, node.pull(grads.pop(id(node)))):
            grads[id(parent)] = grads[id(parent)] + g if id(parent) in grads else g
    return (out.value,) + tuple(grads[id(leaf)] for leaf in leaves)
