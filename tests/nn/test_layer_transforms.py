"""Every layer of ``oxmx.nn`` and every loss of ``oxmx.nn.losses`` through the transform
harness (tests/transform_harness.py), in float64:

* vjp and jvp with respect to the layer's inputs and, separately, to its flattened
  trainable parameters, against central finite differences (plus the identity
  <vjp(u), v> == <u, jvp(v)>);
* ``vmap`` over every axis of each input against a Python loop.

``test_every_layer_is_covered`` fails for a layer class of ``oxmx.nn`` that has no case
here and no entry in ``NOT_DIFFERENTIABLE``; ``test_every_loss_is_covered`` does the same
for the losses. Layers over ``mx.fast`` kernels are checked the same way (their rules
come from the composite formulas).

The quantized layers run in float32 (``quantized_matmul`` has no float64 kernel, like
MLX's, whose CPU build returns zeros in float64): their inputs and float parameters are
cast to float32 inside the op and the outputs back to float64, with finite differences
over a large step (the layers are linear in their inputs and in their scales, biases and
bias, so the step adds no truncation error, only float32 rounding). ``QQLinear``'s
gradients are straight-through by design (the derivative of its quantization is zero
almost everywhere), so finite differences cannot check them: ``test_straight_through``
compares them with those of the product of the fake-quantized operands instead.
"""

import inspect

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.nn import losses
from oxmx.utils import tree_flatten, tree_unflatten
from transform_harness import Op, _flat_outputs, check_vjp_jvp, check_vmap

# Layer classes with no differentiable forward to check here.
NOT_DIFFERENTIABLE = {
    "Module": "the abstract base class: it has no forward",
}

F64 = mx.float64
# float32 cases (the quantized layers): finite differences over a large step, float32
# rounding in every tolerance
F32 = {"dtype": mx.float32, "eps": 0.05, "rtol": 2e-4, "atol": 2e-5, "consistency": 2e-6}


class Case:
    """One layer configuration: ``build()`` makes the layer, ``args`` lists its float
    inputs as (shape, domain) (see the harness's DOMAINS), ``call(layer, *inputs)`` runs
    it (default: ``layer(*inputs)``). ``mode`` is "train" or "eval" (default: the
    module's own)."""

    def __init__(self, name, build, args, call=None, mode=None, dtype=F64, straight_through=False, **tolerances):
        self.name, self.build, self.args, self.mode = name, build, args, mode
        self.dtype, self.straight_through, self.tolerances = dtype, straight_through, tolerances
        self.call = call or (lambda layer, *xs: layer(*xs))

    def layer(self):
        mx.random.seed(0)
        layer = self.build()
        layer.set_dtype(self.dtype)
        if self.mode == "train":
            layer.train()
        elif self.mode == "eval":
            layer.eval()
        return layer

    def run(self, layer, *xs):
        """``call`` with the float64 inputs cast to the case's dtype and the outputs cast
        back to float64."""
        out = self.call(layer, *[x.astype(self.dtype) for x in xs])
        if isinstance(out, (list, tuple)):
            return type(out)(o.astype(F64) for o in out)
        return out.astype(F64)

    def input_op(self, layer):
        return Op(f"{self.name}/input", lambda *xs: self.run(layer, *xs), self.args, **self.tolerances)

    def __repr__(self):
        return self.name


class ParamOp(Op):
    """The layer's output as a function of its flattened trainable parameters (the
    inputs fixed): each call installs the given arrays with ``layer.update`` and puts
    the layer's own back afterwards. Its inputs are the layer's parameters plus a small
    random change, so that e.g. a norm's weight is not all ones."""

    def __init__(self, case, layer, xs):
        flat = tree_flatten(layer.trainable_parameters())
        self.xs = xs
        self.keys = [k for k, _ in flat]
        self.values = [v for _, v in flat]

        def fn(*ps):
            saved = layer.trainable_parameters()
            layer.update(tree_unflatten([(k, p.astype(v.dtype)) for k, p, v in zip(self.keys, ps, self.values)]))
            try:
                return case.run(layer, *xs)
            finally:
                layer.update(saved)

        super().__init__(
            f"{case.name}/params", fn, [(v.shape, "any") for v in self.values], vmap=False, **case.tolerances
        )

    def make(self, rng, dtype=np.float64):
        return [v + mx.array(0.1 * rng.standard_normal(v.shape), dtype=F64) for v in self.values]


_R = np.random.default_rng(42)
CAUSAL3 = nn.MultiHeadAttention.create_additive_causal_mask(3, F64)
CAUSAL4 = nn.MultiHeadAttention.create_additive_causal_mask(4, F64)
BOOL_MASK = mx.array(_R.uniform(size=(3, 4)) > 0.3) | mx.array(np.eye(3, 4, dtype=bool))
FLOAT_MASK = mx.array(_R.standard_normal((2, 1, 3, 4)), dtype=F64)
TOKENS = mx.array([[0, 3, 4, 3], [1, 1, 0, 2]])

C = Case
CASES = [
    # ---------------------------------------------------------------- linear, embedding
    C("Linear", lambda: nn.Linear(4, 3), [((2, 4), "any")]),
    C("Linear-nobias-unbatched", lambda: nn.Linear(4, 3, bias=False), [((4,), "any")]),
    C("Bilinear", lambda: nn.Bilinear(3, 2, 4), [((2, 3), "any"), ((2, 2), "any")]),
    C("Bilinear-nobias", lambda: nn.Bilinear(3, 2, 4, bias=False), [((3,), "any"), ((2,), "any")]),
    C("Embedding", lambda: nn.Embedding(5, 3), [], call=lambda m: m(TOKENS)),
    C("Embedding-as_linear", lambda: nn.Embedding(5, 3), [((2, 3), "any")], call=lambda m, x: m.as_linear(x)),
    C("Identity", lambda: nn.Identity(3, k=1), [((2, 3), "any")]),
    C("Sequential", lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Tanh()), [((2, 3), "any")]),
    C("Dropout-eval", lambda: nn.Dropout(0.5), [((2, 3), "any")], mode="eval"),
    C("Dropout2d-eval", lambda: nn.Dropout2d(0.5), [((1, 2, 2, 3), "any")], mode="eval"),
    C("Dropout3d-eval", lambda: nn.Dropout3d(0.5), [((1, 2, 2, 2, 3), "any")], mode="eval"),
    C("AllToShardedLinear", lambda: nn.AllToShardedLinear(4, 3), [((2, 4), "any")]),
    C("ShardedToAllLinear", lambda: nn.ShardedToAllLinear(4, 3, bias=False), [((2, 4), "any")]),
    C("FullyShardedModule", lambda: nn.FullyShardedModule(nn.Sequential(nn.Linear(4, 3), nn.GELU())), [((2, 4), "any")]),
    # ---------------------------------------------------------------- quantized (float32)
    C("QuantizedLinear", lambda: nn.QuantizedLinear(64, 3, group_size=32, bits=4), [((2, 64), "any")], **F32),
    C("QuantizedLinear-nobias-mxfp4-unbatched", lambda: nn.QuantizedLinear(64, 3, bias=False, mode="mxfp4"),
      [((64,), "any")], **F32),
    C("QuantizedLinear-nvfp4", lambda: nn.QuantizedLinear(32, 3, mode="nvfp4"), [((2, 1, 32), "any")], **F32),
    C("QuantizedLinear-mxfp8", lambda: nn.QuantizedLinear(64, 2, mode="mxfp8"), [((3, 64), "any")], **F32),
    # scales, biases and bias made trainable (the packed weight stays frozen)
    C("QuantizedLinear-unfrozen-8bit", lambda: nn.QuantizedLinear(64, 3, group_size=32, bits=8).unfreeze(
        keys=["scales", "biases", "bias"]), [((2, 64), "any")], **F32),
    # as in MLX, from_linear leaves the copied bias trainable
    C("QuantizedLinear-from_linear-3bit", lambda: nn.Linear(64, 3).to_quantized(group_size=32, bits=3),
      [((2, 64), "any")], **F32),
    C("QuantizedEmbedding", lambda: nn.QuantizedEmbedding(5, 64, group_size=32), [], call=lambda m: m(TOKENS), **F32),
    C("QuantizedEmbedding-unfrozen", lambda: nn.QuantizedEmbedding(5, 64, group_size=32, bits=6).unfreeze(
        keys=["scales", "biases"]), [], call=lambda m: m(TOKENS), **F32),
    C("QuantizedEmbedding-as_linear", lambda: nn.QuantizedEmbedding(5, 64), [((2, 64), "any")],
      call=lambda m, x: m.as_linear(x), **F32),
    C("QuantizedEmbedding-as_linear-mxfp4", lambda: nn.QuantizedEmbedding(5, 64, mode="mxfp4"), [((64,), "any")],
      call=lambda m, x: m.as_linear(x), **F32),
    C("QuantizedAllToShardedLinear", lambda: nn.QuantizedAllToShardedLinear(64, 3, group_size=32), [((2, 64), "any")],
      **F32),
    C("QuantizedShardedToAllLinear", lambda: nn.QuantizedShardedToAllLinear(64, 3, bias=False, bits=8),
      [((2, 64), "any")], **F32),
    C("QQLinear-train", lambda: nn.QQLinear(32, 3), [((2, 32), "any")], mode="train", straight_through=True, **F32),
    C("QQLinear-train-mxfp8", lambda: nn.QQLinear(64, 2, mode="mxfp8"), [((3, 64), "any")], mode="train",
      straight_through=True, **F32),
    C("QQLinear-eval", lambda: nn.QQLinear(32, 3), [((2, 1, 32), "any")], mode="eval", straight_through=True, **F32),
    # ---------------------------------------------------------------- convolutions
    C("Conv1d", lambda: nn.Conv1d(2, 4, 3, stride=2, padding=1, groups=2), [((2, 7, 2), "any")]),
    C("Conv1d-dilation-nobias", lambda: nn.Conv1d(3, 2, 2, dilation=2, bias=False), [((1, 6, 3), "any")]),
    C("Conv2d", lambda: nn.Conv2d(2, 3, (2, 3), stride=(2, 1), padding=1, dilation=(1, 2)), [((1, 5, 6, 2), "any")]),
    C("Conv2d-groups", lambda: nn.Conv2d(4, 2, 2, groups=2), [((1, 3, 3, 4), "any")]),
    C("Conv3d", lambda: nn.Conv3d(2, 2, 2, stride=(1, 2, 1), padding=(0, 1, 0)), [((1, 3, 4, 3, 2), "any")]),
    C("ConvTranspose1d", lambda: nn.ConvTranspose1d(2, 3, 3, stride=2, padding=1, output_padding=1), [((2, 4, 2), "any")]),
    C("ConvTranspose2d", lambda: nn.ConvTranspose2d(2, 2, (2, 3), stride=(2, 1), dilation=(1, 2)), [((1, 3, 3, 2), "any")]),
    C("ConvTranspose3d", lambda: nn.ConvTranspose3d(1, 2, 2, stride=2, padding=1, bias=False), [((1, 2, 3, 2, 1), "any")]),
    # ---------------------------------------------------------------- pooling, upsampling
    C("MaxPool1d", lambda: nn.MaxPool1d(3, stride=2, padding=1), [((2, 7, 2), "distinct")]),
    C("MaxPool2d", lambda: nn.MaxPool2d(2), [((1, 4, 5, 2), "distinct")]),
    C("MaxPool3d", lambda: nn.MaxPool3d((2, 2, 1), stride=1, padding=(1, 0, 0)), [((1, 3, 3, 2, 1), "distinct")]),
    C("AvgPool1d", lambda: nn.AvgPool1d(3, stride=2, padding=1), [((2, 7, 2), "any")]),
    C("AvgPool2d", lambda: nn.AvgPool2d((2, 3), stride=(1, 2)), [((1, 4, 5, 2), "any")]),
    C("AvgPool3d", lambda: nn.AvgPool3d(2, padding=1), [((1, 3, 2, 3, 1), "any")]),
    C("Upsample-nearest", lambda: nn.Upsample(2.0), [((1, 2, 3, 2), "any")]),
    C("Upsample-nearest-1d-shrink", lambda: nn.Upsample(0.6), [((2, 5, 2), "any")]),
    C("Upsample-linear", lambda: nn.Upsample((2.0, 1.5), mode="linear"), [((1, 2, 3, 2), "any")]),
    C("Upsample-linear-align", lambda: nn.Upsample(2.0, mode="linear", align_corners=True), [((1, 3, 2), "any")]),
    C("Upsample-linear-antialias", lambda: nn.Upsample(0.5, mode="linear", antialias=True), [((1, 4, 6, 1), "any")]),
    C("Upsample-cubic", lambda: nn.Upsample(1.5, mode="cubic"), [((1, 3, 3, 1), "any")]),
    C("Upsample-cubic-align", lambda: nn.Upsample((2.0, 2.0, 1.0), mode="cubic", align_corners=True), [((1, 2, 2, 2, 1), "any")]),
    C("Upsample-cubic-antialias", lambda: nn.Upsample(0.5, mode="cubic", antialias=True), [((1, 6, 2), "any")]),
    # ---------------------------------------------------------------- normalisation
    C("LayerNorm", lambda: nn.LayerNorm(4), [((2, 3, 4), "any")]),
    C("LayerNorm-nobias", lambda: nn.LayerNorm(4, bias=False), [((3, 4), "any")]),
    C("LayerNorm-noaffine", lambda: nn.LayerNorm(4, affine=False, eps=1e-3), [((3, 4), "any")]),
    C("RMSNorm", lambda: nn.RMSNorm(4), [((2, 3, 4), "any")]),
    C("GroupNorm", lambda: nn.GroupNorm(2, 4), [((2, 3, 4), "any")]),
    C("GroupNorm-pytorch", lambda: nn.GroupNorm(2, 4, pytorch_compatible=True), [((2, 3, 2, 4), "any")]),
    C("GroupNorm-noaffine", lambda: nn.GroupNorm(1, 4, affine=False), [((2, 3, 4), "any")]),
    C("InstanceNorm", lambda: nn.InstanceNorm(3), [((2, 4, 3), "any")]),
    C("InstanceNorm-affine", lambda: nn.InstanceNorm(3, affine=True), [((2, 2, 2, 3), "any")]),
    C("BatchNorm-train", lambda: nn.BatchNorm(3), [((4, 3), "any")], mode="train"),
    C("BatchNorm-train-3d", lambda: nn.BatchNorm(3, affine=False), [((2, 2, 3), "any")], mode="train"),
    C("BatchNorm-train-nostats", lambda: nn.BatchNorm(3, track_running_stats=False), [((2, 2, 2, 3), "any")], mode="train"),
    C("BatchNorm-eval", lambda: nn.BatchNorm(3), [((4, 3), "any")], mode="eval"),
    C("BatchNorm-eval-nostats", lambda: nn.BatchNorm(3, track_running_stats=False), [((2, 2, 3), "any")], mode="eval"),
    # ---------------------------------------------------------------- recurrent
    C("RNN", lambda: nn.RNN(2, 3), [((2, 4, 2), "any")]),
    C("RNN-relu-unbatched-hidden", lambda: nn.RNN(2, 3, nonlinearity=nn.relu, bias=False), [((4, 2), "any"), ((3,), "any")],
      call=lambda m, x, h: m(x, hidden=h)),
    C("GRU", lambda: nn.GRU(2, 3), [((2, 3, 2), "any")]),
    C("GRU-hidden-nobias", lambda: nn.GRU(2, 3, bias=False), [((2, 3, 2), "any"), ((2, 3), "any")], call=lambda m, x, h: m(x, h)),
    C("LSTM", lambda: nn.LSTM(2, 3), [((2, 3, 2), "any")]),
    C("LSTM-hidden-cell-unbatched", lambda: nn.LSTM(2, 3), [((3, 2), "any"), ((3,), "any"), ((3,), "any")],
      call=lambda m, x, h, c: m(x, hidden=h, cell=c)),
    # ---------------------------------------------------------------- attention, transformers
    C("MultiHeadAttention", lambda: nn.MultiHeadAttention(4, 2), [((2, 3, 4), "any"), ((2, 4, 4), "any"), ((2, 4, 4), "any")]),
    C("MultiHeadAttention-dims-bias-causal", lambda: nn.MultiHeadAttention(4, 2, 3, 5, 2, 6, 3, bias=True),
      [((2, 3, 3), "any"), ((2, 3, 5), "any"), ((2, 3, 2), "any")], call=lambda m, q, k, v: m(q, k, v, mask=CAUSAL3)),
    C("MultiHeadAttention-bool-mask", lambda: nn.MultiHeadAttention(4, 2), [((2, 3, 4), "any"), ((2, 4, 4), "any")],
      call=lambda m, q, kv: m(q, kv, kv, mask=BOOL_MASK)),
    C("MultiHeadAttention-float-mask", lambda: nn.MultiHeadAttention(4, 1), [((2, 3, 4), "any"), ((2, 4, 4), "any")],
      call=lambda m, q, kv: m(q, kv, kv, mask=FLOAT_MASK)),
    C("TransformerEncoderLayer", lambda: nn.TransformerEncoderLayer(4, 2, mlp_dims=6), [((2, 3, 4), "any")],
      call=lambda m, x: m(x, None)),
    C("TransformerEncoderLayer-postnorm-causal", lambda: nn.TransformerEncoderLayer(4, 2, 6, activation=nn.gelu, norm_first=False),
      [((2, 3, 4), "any")], call=lambda m, x: m(x, CAUSAL3)),
    C("TransformerDecoderLayer", lambda: nn.TransformerDecoderLayer(4, 2, mlp_dims=6), [((2, 3, 4), "any"), ((2, 4, 4), "any")],
      call=lambda m, x, mem: m(x, mem, CAUSAL3, None)),
    C("TransformerDecoderLayer-postnorm", lambda: nn.TransformerDecoderLayer(4, 2, 6, norm_first=False),
      [((2, 3, 4), "any"), ((2, 4, 4), "any")], call=lambda m, x, mem: m(x, mem, None, BOOL_MASK)),
    C("TransformerEncoder", lambda: nn.TransformerEncoder(2, 4, 2, mlp_dims=6), [((2, 3, 4), "any")],
      call=lambda m, x: m(x, CAUSAL3)),
    C("TransformerEncoder-postnorm-checkpoint", lambda: nn.TransformerEncoder(2, 4, 2, 6, norm_first=False, checkpoint=True),
      [((2, 3, 4), "any")], call=lambda m, x: m(x, None)),
    C("TransformerDecoder", lambda: nn.TransformerDecoder(2, 4, 2, mlp_dims=6), [((2, 3, 4), "any"), ((2, 4, 4), "any")],
      call=lambda m, x, mem: m(x, mem, CAUSAL3, None)),
    C("TransformerDecoder-checkpoint", lambda: nn.TransformerDecoder(1, 4, 2, 6, checkpoint=True),
      [((2, 3, 4), "any"), ((2, 4, 4), "any")], call=lambda m, x, mem: m(x, mem, CAUSAL3, None)),
    C("Transformer", lambda: nn.Transformer(4, 2, 1, 1, mlp_dims=6), [((2, 4, 4), "any"), ((2, 3, 4), "any")],
      call=lambda m, src, tgt: m(src, tgt, CAUSAL4, CAUSAL3, None)),
    # ---------------------------------------------------------------- positional encodings
    C("RoPE", lambda: nn.RoPE(4), [((2, 3, 4), "any")]),
    C("RoPE-partial-traditional-offset", lambda: nn.RoPE(4, traditional=True, base=100, scale=0.5), [((2, 1, 3, 6), "any")],
      call=lambda m, x: m(x, offset=2)),
    C("SinusoidalPositionalEncoding", lambda: nn.SinusoidalPositionalEncoding(6), [((2, 3), "any")]),
    C("SinusoidalPositionalEncoding-options", lambda: nn.SinusoidalPositionalEncoding(4, scale=0.7, cos_first=True, full_turns=True),
      [((3,), "unit")]),
    C("ALiBi", lambda: nn.ALiBi(), [((1, 2, 3, 3), "any")]),
    C("ALiBi-offset-mask", lambda: nn.ALiBi(), [((2, 4, 2, 4), "any")], call=lambda m, s: m(s, offset=2, mask=FLOAT_MASK[:, :, :2])),
    # ---------------------------------------------------------------- activations
    C("PReLU", lambda: nn.PReLU(), [((2, 3), "nonzero")]),
    C("PReLU-channels", lambda: nn.PReLU(3, init=0.1), [((2, 2, 3), "nonzero")]),
    C("GLU", lambda: nn.GLU(), [((2, 4), "any")]),
    C("GLU-axis0", lambda: nn.GLU(axis=0), [((4, 3), "any")]),
    C("Softmax", lambda: nn.Softmax(), [((2, 4), "any")]),
    C("LogSoftmax", lambda: nn.LogSoftmax(), [((2, 4), "any")]),
    C("Softmin", lambda: nn.Softmin(), [((2, 4), "any")]),
]
for approx in ("none", "precise", "tanh", "fast"):
    CASES.append(C(f"GELU-{approx}", lambda a=approx: nn.GELU(approx=a), [((2, 3), "any")]))
for cls, kwargs, dom in [
    ("ReLU", {}, "nonzero"), ("ReLU2", {}, "nonzero"), ("ReLU6", {}, "any"), ("LeakyReLU", {"negative_slope": 0.2}, "nonzero"),
    ("ELU", {"alpha": 0.7}, "nonzero"), ("CELU", {"alpha": 1.3}, "nonzero"), ("SELU", {}, "nonzero"), ("SiLU", {}, "any"),
    ("Sigmoid", {}, "any"), ("LogSigmoid", {}, "any"), ("Tanh", {}, "any"), ("Softplus", {}, "any"), ("Softsign", {}, "any"),
    ("Mish", {}, "any"), ("Hardswish", {}, "any"), ("HardTanh", {}, "any"), ("HardShrink", {"lambd": 0.3}, "any"),
    ("Softshrink", {"lambd": 0.3}, "any"), ("Step", {"threshold": 0.1}, "any"),
]:
    CASES.append(C(cls, lambda c=cls, k=kwargs: getattr(nn, c)(**k), [((2, 3), dom)]))


def assert_every_input_matters(op, rng):
    """Each input gets a nonzero gradient, so that the checks above cannot pass by
    comparing zeros (a parameter the layer ignores, say)."""
    xs = op.make(rng)
    outs = _flat_outputs(op(*xs))
    _, grads = mx.vjp(lambda *a: _flat_outputs(op(*a)), xs, [mx.array(rng.standard_normal(o.shape), dtype=F64) for o in outs])
    zero = [i for i, g in enumerate(grads) if not np.any(np.array(g))]
    assert not zero, f"{op}: inputs {zero} have an all-zero gradient"


@pytest.mark.parametrize("case", [c for c in CASES if c.args and not c.straight_through], ids=repr)
def test_input_vjp_jvp(case):
    op = case.input_op(case.layer())
    if case.name != "Step":  # its derivative is zero wherever it exists
        assert_every_input_matters(op, np.random.default_rng(0))
    check_vjp_jvp(op, np.random.default_rng(1))


def param_op(case):
    layer = case.layer()
    return ParamOp(case, layer, case.input_op(layer).make(np.random.default_rng(2))), layer


def has_parameters(case):
    return bool(tree_flatten(case.layer().trainable_parameters()))


@pytest.mark.parametrize("case", [c for c in CASES if has_parameters(c) and not c.straight_through], ids=repr)
def test_parameter_vjp_jvp(case):
    op, layer = param_op(case)
    before = [id(v) for v in op.values]
    assert_every_input_matters(op, np.random.default_rng(0))
    check_vjp_jvp(op, np.random.default_rng(3))
    # the layer's own arrays are back after every call
    assert [id(v) for _, v in tree_flatten(layer.trainable_parameters())] == before


@pytest.mark.parametrize("case", [c for c in CASES if c.args], ids=repr)
def test_vmap_matches_loop(case):
    check_vmap(case.input_op(case.layer()), np.random.default_rng(4), batch=2)


def fake_quantized(a, layer):
    """``dequantize(quantize(a))`` in ``layer``'s format (float32): what QQLinear multiplies."""
    q, s = mx.quantize(a, layer.group_size, layer.bits, mode=layer.mode)
    return mx.dequantize(q, s, group_size=layer.group_size, bits=layer.bits, mode=layer.mode, dtype=mx.float32)


def assert_same_vjp_jvp(op, surrogate, rng):
    """``op`` has the vjp and jvp of ``surrogate`` (a differentiable function of the same
    float64 inputs; its values may differ)."""
    xs = op.make(rng)
    f, g = (lambda *a: _flat_outputs(op(*a))), (lambda *a: _flat_outputs(surrogate(*a)))
    us = [mx.array(rng.standard_normal(o.shape), dtype=F64) for o in f(*xs)]
    vs = [mx.array(rng.standard_normal(x.shape), dtype=F64) for x in xs]
    (_, grads), (_, want_grads) = mx.vjp(f, xs, us), mx.vjp(g, xs, us)
    (_, tans), (_, want_tans) = mx.jvp(f, xs, vs), mx.jvp(g, xs, vs)
    for got, want in zip(grads + tans, want_grads + want_tans):
        assert got.shape == want.shape
        np.testing.assert_allclose(np.array(got), np.array(want), rtol=1e-5, atol=1e-5, err_msg=str(op))


@pytest.mark.parametrize("case", [c for c in CASES if c.straight_through], ids=repr)
def test_straight_through(case):
    """QQLinear: the gradient with respect to x is that of ``x @ fq(W).T`` and (training,
    with a float weight) the one with respect to W that of ``fq(x) @ W.T``, where ``fq``
    fake-quantizes, as if the quantization were the identity. (Its vmap is checked with
    the other layers'; in evaluation mode its parameters are the packed weight and scales,
    integers with no gradient.)"""
    layer = case.layer()
    rng = np.random.default_rng(7)
    w = fake_quantized(layer.weight, layer) if layer.training else mx.dequantize(
        layer.weight, layer.scales, group_size=layer.group_size, bits=layer.bits, mode=layer.mode, dtype=mx.float32)
    op = case.input_op(layer)
    assert_same_vjp_jvp(op, lambda x: (x.astype(mx.float32) @ w.T).astype(F64), rng)
    if layer.training:
        op, _ = param_op(case)
        xq = fake_quantized(op.xs[0].astype(mx.float32), layer)
        assert_same_vjp_jvp(op, lambda v: (xq @ v.astype(mx.float32).T).astype(F64), rng)


class WrongWeightGradient(nn.Linear):
    """A Linear whose custom vjp is 1% off for the weight."""

    def __call__(self, x):
        @mx.custom_function
        def f(w, x):
            return x @ w.T

        @f.vjp
        def f_vjp(primals, cotangent, output):
            w, x = primals
            return 1.01 * (cotangent.T @ x), cotangent @ w

        return f(self.weight, x)


def test_the_checks_catch_a_wrong_gradient():
    case = Case("WrongWeightGradient", lambda: WrongWeightGradient(3, 2, bias=False), [((2, 3), "any")])
    check_vjp_jvp(case.input_op(case.layer()), np.random.default_rng(1))  # right for the input
    op, _ = param_op(case)
    with pytest.raises(AssertionError, match="finite differences"):
        check_vjp_jvp(op, np.random.default_rng(3))


class WrongScalesGradient(nn.QuantizedLinear):
    """A QuantizedLinear whose custom vjp is 1% off for the scales."""

    def __call__(self, x):
        def qmm(x, s, b):
            return mx.quantized_matmul(x, self["weight"], s, b, group_size=self.group_size, bits=self.bits)

        @mx.custom_function
        def f(x, s, b):
            return qmm(x, s, b)

        @f.vjp
        def f_vjp(primals, cotangent, output):
            _, (gx, gs, gb) = mx.vjp(qmm, list(primals), [cotangent])
            return gx, 1.01 * gs, gb

        return f(x, self["scales"], self["biases"])


def test_the_float32_checks_catch_a_wrong_gradient():
    """The float32 tolerances (F32) still see a 1% error."""
    build = lambda: WrongScalesGradient(64, 3, bias=False, group_size=32).unfreeze(keys=["scales", "biases"])  # noqa: E731
    case = Case("WrongScalesGradient", build, [((2, 64), "any")], **F32)
    check_vjp_jvp(case.input_op(case.layer()), np.random.default_rng(1))  # right for the input
    op, _ = param_op(case)
    with pytest.raises(AssertionError, match="finite differences"):
        check_vjp_jvp(op, np.random.default_rng(3))


def layer_classes():
    return sorted(n for n, c in vars(nn).items() if inspect.isclass(c) and issubclass(c, nn.Module))


def test_every_layer_is_covered():
    tested = {type(c.layer()).__name__ for c in CASES}
    missing = [n for n in layer_classes() if n not in tested and n not in NOT_DIFFERENTIABLE]
    assert not missing, f"layers with no transform case and no NOT_DIFFERENTIABLE entry: {missing}"
    stale = [n for n in NOT_DIFFERENTIABLE if n not in layer_classes() or n in tested]
    assert not stale, f"NOT_DIFFERENTIABLE lists names that are tested or no longer exist: {stale}"


# -------------------------------------------------------------------- losses
def _prob(x):
    """(-0.8, 0.8) -> (0.1, 0.9): probabilities away from 0 and 1."""
    return 0.5 + 0.5 * x


LABELS = mx.array([2, 0, 3])
A23, A34 = ((2, 3), "any"), ((3, 4), "any")
# (loss, variant, fn(*float_inputs, reduction), float inputs); targets given as indices
# are fixed, probabilities are made from unconstrained inputs so they get a gradient too
LOSS_CASES = [
    ("cross_entropy", "indices", lambda x, r: losses.cross_entropy(x, LABELS, reduction=r), [A34]),
    ("cross_entropy", "probs-weights-smoothing",
     lambda x, t, w, r: losses.cross_entropy(x, mx.softmax(t, axis=-1), weights=w, label_smoothing=0.2, reduction=r),
     [A34, A34, ((3,), "pos")]),
    ("cross_entropy", "axis0", lambda x, r: losses.cross_entropy(x, LABELS[:2], axis=0, label_smoothing=0.1, reduction=r),
     [((4, 2), "any")]),
    ("binary_cross_entropy", "logits", lambda x, t, r: losses.binary_cross_entropy(x, _prob(t), reduction=r),
     [A23, ((2, 3), "unit")]),
    ("binary_cross_entropy", "probs-weights",
     lambda x, t, w, r: losses.binary_cross_entropy(_prob(x), _prob(t), weights=w, with_logits=False, reduction=r),
     [((4,), "unit"), ((4,), "unit"), ((4,), "pos")]),
    ("l1_loss", "", lambda x, t, r: losses.l1_loss(x, t, reduction=r), [A23, A23]),
    ("mse_loss", "", lambda x, t, r: losses.mse_loss(x, t, reduction=r), [A23, A23]),
    ("nll_loss", "", lambda x, r: losses.nll_loss(x, LABELS, reduction=r), [A34]),
    ("nll_loss", "axis0", lambda x, r: losses.nll_loss(x, LABELS, axis=0, reduction=r), [((4, 3), "any")]),
    ("gaussian_nll_loss", "", lambda x, t, v, r: losses.gaussian_nll_loss(x, t, v, reduction=r), [A23, A23, ((2, 3), "pos")]),
    ("gaussian_nll_loss", "full", lambda x, t, v, r: losses.gaussian_nll_loss(x, t, v, full=True, reduction=r),
     [((3,), "any"), ((3,), "any"), ((3,), "pos")]),
    ("kl_div_loss", "", lambda x, t, r: losses.kl_div_loss(x, t, reduction=r), [A34, A34]),
    ("kl_div_loss", "axis0",
     lambda x, t, r: losses.kl_div_loss(nn.log_softmax(x, axis=0), nn.log_softmax(t, axis=0), axis=0, reduction=r),
     [((3, 2), "any"), ((3, 2), "any")]),
    ("smooth_l1_loss", "", lambda x, t, r: losses.smooth_l1_loss(x, t, beta=0.5, reduction=r), [A23, A23]),
    ("triplet_loss", "", lambda a, p, n, r: losses.triplet_loss(a, p, n, margin=2.0, reduction=r), [A23] * 3),
    ("triplet_loss", "p1-axis0", lambda a, p, n, r: losses.triplet_loss(a, p, n, axis=0, p=1, margin=3.0, reduction=r),
     [((3, 2), "any")] * 3),
    ("hinge_loss", "", lambda x, t, r: losses.hinge_loss(x, t, reduction=r), [A23, ((2, 3), "nonzero")]),
    ("huber_loss", "", lambda x, t, r: losses.huber_loss(x, t, delta=0.7, reduction=r), [A23, A23]),
    ("log_cosh_loss", "", lambda x, t, r: losses.log_cosh_loss(x, t, reduction=r), [A23, A23]),
    ("cosine_similarity_loss", "", lambda a, b, r: losses.cosine_similarity_loss(a, b, reduction=r), [A23, A23]),
    ("cosine_similarity_loss", "axis-1", lambda a, b, r: losses.cosine_similarity_loss(a, b, axis=-1, reduction=r),
     [((2, 2, 3), "any")] * 2),
    ("margin_ranking_loss", "", lambda a, b, t, r: losses.margin_ranking_loss(a, b, t, margin=0.3, reduction=r),
     [((4,), "any"), ((4,), "any"), ((4,), "nonzero")]),
]
LOSS_OPS = [
    Op("-".join(filter(None, (name, variant, reduction))), lambda *xs, f=f, r=reduction: f(*xs, r), args)
    for name, variant, f, args in LOSS_CASES
    for reduction in ("none", "mean", "sum")
]


@pytest.mark.parametrize("op", LOSS_OPS, ids=repr)
def test_loss_vjp_jvp_and_vmap(op):
    assert_every_input_matters(op, np.random.default_rng(5))
    check_vjp_jvp(op, np.random.default_rng(5))
    check_vmap(op, np.random.default_rng(6), batch=2)


def test_every_loss_is_covered():
    public = {n for n, f in vars(losses).items() if inspect.isfunction(f) and f.__module__ == losses.__name__ and n[0] != "_"}
    tested = {name for name, *_ in LOSS_CASES}
    assert public == tested, f"losses with no case: {public - tested}; unknown names: {tested - public}"
