"""The quantized layers (QuantizedLinear, QuantizedEmbedding, QQLinear) and nn.quantize
against real MLX.

The same float weights go into both frameworks (copied in, or drawn from the same seed:
oxmx's random numbers match MLX's bit for bit); then the packed weights, scales and biases
must be bit-identical, the outputs equal to float32 rounding (1e-5 relative to the
output's largest magnitude; half-precision inputs to their own rounding), and parameters(),
trainable_parameters() after freeze/unfreeze, repr and training mode as MLX's. MLX's CPU
build cannot evaluate ``qqmm`` (it raises "NYI"), so QQLinear's products are compared with
``dequantize(quantize(x)) @ dequantize(quantize(W)).T`` computed by MLX itself.
"""

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten


def mlx_pair():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


def mlx_flatten(tree):
    from mlx.utils import tree_flatten as flatten

    return flatten(tree)


def dtype_name(a):
    return str(a.dtype).rsplit(".", 1)[-1]


def host(a, core):
    """NumPy copy of ``a`` (floats through float32, which holds every half value exactly)."""
    return np.array(a.astype(core.float32)) if core.issubdtype(a.dtype, core.floating) else np.array(a)


def flat_params(module, core, flatten, which="parameters"):
    return [(k, dtype_name(v), host(v, core)) for k, v in flatten(getattr(module, which)())]


def keys(module, flatten, which="trainable_parameters"):
    return [k for k, _ in flatten(getattr(module, which)())]


def assert_same_params(ours, theirs, mlx_core):
    """Same names in the same order, same dtypes, bit-identical values."""
    got, want = flat_params(ours, mx, tree_flatten), flat_params(theirs, mlx_core, mlx_flatten)
    assert [(k, d) for k, d, _ in got] == [(k, d) for k, d, _ in want]
    for (k, _, a), (_, _, b) in zip(got, want):
        assert a.shape == b.shape, k
        np.testing.assert_array_equal(a, b, err_msg=k)


def assert_same_output(y, r, mlx_core, rtol=1e-5):
    assert y.shape == r.shape and dtype_name(y) == dtype_name(r)
    a, b = host(y, mx), host(r, mlx_core)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(b).max(initial=0)))


def assert_same_freezing(ours, theirs):
    for which in ("parameters", "trainable_parameters"):
        assert keys(ours, tree_flatten, which) == keys(theirs, mlx_flatten, which), which


def rand(shape, seed, scale=1.0):
    r = np.random.default_rng(seed)
    # mixed magnitudes per row so that groups differ
    return (r.standard_normal(shape) * np.exp(0.5 * r.standard_normal(shape[:-1] + (1,))) * scale).astype(np.float32)


# (mode, group_size, bits); None takes the mode's default
CONFIGS = [
    ("affine", None, None),
    ("affine", 32, 2),
    ("affine", 64, 8),
    ("affine", 128, 4),
    ("affine", 32, 3),
    ("affine", 64, 5),
    ("affine", 128, 6),
    ("affine", 64, 1),
    ("mxfp4", None, None),
    ("mxfp8", None, None),
    ("nvfp4", None, None),
]
CONFIG_IDS = [f"{m}-{g}-{b}" for m, g, b in CONFIGS]
# Tolerances relative to the output's largest magnitude. MLX's CPU quantized_matmul
# accumulates half-precision inputs in half precision (relative errors near 3e-3 in float16
# and 2.5e-2 in bfloat16 on these sizes, against 5e-4 and 4e-3 for oxmx, which accumulates
# in float32): against MLX the bound is MLX's own error, against the exact product of the
# dequantized weight it is a few roundings of the output dtype.
MLX_TOL = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 6e-2}
EXACT_TOL = {"float32": 1e-5, "float16": 2e-3, "bfloat16": 1.6e-2}


def linear_pair(mlx_core, mlx_nn, w, b, dtype="float32"):
    """An oxmx and an MLX Linear holding the float32 weight ``w`` and bias ``b`` (or none)
    cast to ``dtype``."""
    out = []
    for core, nn_ in ((mx, nn), (mlx_core, mlx_nn)):
        lin = nn_.Linear(w.shape[1], w.shape[0], bias=b is not None)
        lin.weight = core.array(w).astype(getattr(core, dtype))
        if b is not None:
            lin.bias = core.array(b).astype(getattr(core, dtype))
        out.append(lin)
    return out


# ---------------------------------------------------------------- QuantizedLinear
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode, group_size, bits", CONFIGS, ids=CONFIG_IDS)
def test_quantized_linear_init_matches_mlx(mode, group_size, bits, bias):
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(21)
    mlx_core.random.seed(21)
    ours = nn.QuantizedLinear(128, 24, bias, group_size, bits, mode=mode)
    theirs = mlx_nn.QuantizedLinear(128, 24, bias, group_size, bits, mode=mode)
    assert_same_params(ours, theirs, mlx_core)
    assert repr(ours) == repr(theirs)
    assert_same_freezing(ours, theirs)
    assert keys(ours, tree_flatten) == []  # frozen
    x = rand((5, 128), 1)
    assert_same_output(ours(mx.array(x)), theirs(mlx_core.array(x)), mlx_core)


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("mode, group_size, bits", CONFIGS, ids=CONFIG_IDS)
def test_quantized_linear_from_linear_matches_mlx(mode, group_size, bits, bias, dtype):
    mlx_core, mlx_nn = mlx_pair()
    w, b = rand((40, 256), 2), (rand((1, 40), 3)[0] if bias else None)
    lin, their_lin = linear_pair(mlx_core, mlx_nn, w, b, dtype)
    for convert in (lambda layer, _: layer.to_quantized(group_size, bits, mode),
                    lambda layer, cls: cls.from_linear(layer, group_size, bits, mode)):
        ours, theirs = convert(lin, nn.QuantizedLinear), convert(their_lin, mlx_nn.QuantizedLinear)
        assert type(ours) is nn.QuantizedLinear
        assert_same_params(ours, theirs, mlx_core)
        assert repr(ours) == repr(theirs)
        # as in MLX, the quantized parameters are frozen and the copied bias is not
        assert_same_freezing(ours, theirs)
        assert keys(ours, tree_flatten) == (["bias"] if bias else [])
        if bias:
            assert ours.bias is lin.bias
        tol = MLX_TOL[dtype]
        for shape in [(3, 256), (2, 4, 256), (256,)]:
            x = rand((1,) + shape, 4)[0]
            y = ours(mx.array(x).astype(getattr(mx, dtype)))
            assert_same_output(y, theirs(mlx_core.array(x).astype(getattr(mlx_core, dtype))), mlx_core, tol)
        # an empty batch (MLX's CPU quantized_matmul dies of a floating point exception there)
        y = ours(mx.zeros((0, 256), dtype=getattr(mx, dtype)))
        assert y.shape == (0, 40) and dtype_name(y) == dtype_name(ours(mx.zeros((1, 256), dtype=getattr(mx, dtype))))
        # and the product is that of the dequantized weight
        x = rand((3, 256), 5)
        wd = host(mx.dequantize(ours.weight, ours.scales, ours.get("biases"), ours.group_size, ours.bits,
                                mode=ours.mode, dtype=mx.float32), mx)
        want = x.astype(np.float64) @ wd.T + (host(ours.bias, mx) if bias else 0)
        got = host(ours(mx.array(x).astype(getattr(mx, dtype))), mx)
        tol = EXACT_TOL[dtype]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())


def test_quantized_linear_keeps_its_input_checks():
    layer = nn.QuantizedLinear(64, 8)
    with pytest.raises(ValueError):
        layer(mx.ones((2, 32)))
    with pytest.raises(ValueError, match=r"divisible by the quantization group size 64"):
        nn.QuantizedLinear(40, 8)


# ---------------------------------------------------------------- QuantizedEmbedding
@pytest.mark.parametrize("mode, group_size, bits", CONFIGS, ids=CONFIG_IDS)
def test_quantized_embedding_matches_mlx(mode, group_size, bits):
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(22)
    mlx_core.random.seed(22)
    ours = nn.QuantizedEmbedding(30, 128, group_size, bits, mode=mode)
    theirs = mlx_nn.QuantizedEmbedding(30, 128, group_size, bits, mode=mode)
    assert_same_params(ours, theirs, mlx_core)
    assert repr(ours) == repr(theirs)
    table = rand((30, 128), 6)
    for convert in (lambda e, _: e.to_quantized(group_size, bits, mode),
                    lambda e, cls: cls.from_embedding(e, group_size, bits, mode)):
        emb, their_emb = nn.Embedding(30, 128), mlx_nn.Embedding(30, 128)
        emb.weight, their_emb.weight = mx.array(table), mlx_core.array(table)
        ours, theirs = convert(emb, nn.QuantizedEmbedding), convert(their_emb, mlx_nn.QuantizedEmbedding)
        assert type(ours) is nn.QuantizedEmbedding
        assert_same_params(ours, theirs, mlx_core)
        assert repr(ours) == repr(theirs)
        assert_same_freezing(ours, theirs)
        assert keys(ours, tree_flatten) == []
        for idx in ([[1, 2, 29], [0, 5, 5]], [7], [[[3]], [[4]]]):
            y, r = ours(mx.array(idx)), theirs(mlx_core.array(idx))
            assert y.shape == r.shape and dtype_name(y) == dtype_name(r)
            np.testing.assert_array_equal(host(y, mx), host(r, mlx_core))  # dequantized rows: exact
        for shape in [(4, 128), (2, 3, 128), (128,)]:
            x = rand((1,) + shape, 7)[0]
            assert_same_output(ours.as_linear(mx.array(x)), theirs.as_linear(mlx_core.array(x)), mlx_core)


# ---------------------------------------------------------------- argument errors, no-ops
def test_quantized_argument_errors():
    with pytest.raises(ValueError, match=r"\[QuantizedLinear\] Invalid quantization mode 'bogus'"):
        nn.QuantizedLinear(64, 8, mode="bogus")
    with pytest.raises(ValueError, match=r"\[QQLinear\] .* only supported for 'nvfp4' and 'mxfp8' modes, got affine"):
        nn.QQLinear(64, 8, mode="affine")
    with pytest.raises(ValueError, match=r"\[Linear.to_quantized\] .*got affine"):
        nn.Linear(64, 8, bias=False).to_quantized(quantize_input=True)
    with pytest.raises(ValueError, match=r"\[Embedding.to_quantized\] Quantized input is not supported"):
        nn.Embedding(10, 64).to_quantized(quantize_input=True)
    with pytest.raises(NotImplementedError, match=r"\[QQLinear\] QQLinear does not support bias yet"):
        nn.QQLinear.from_linear(nn.Linear(64, 8))


def test_quantize_without_quantizable_layers_is_a_no_op():
    model = nn.Sequential(nn.Identity(), nn.Dropout(0.1), nn.Sequential(nn.Identity()))
    layers = list(model.layers)
    assert nn.quantize(model) is None
    assert model.layers == layers
    lin = nn.Linear(64, 8)
    model = nn.Sequential(lin, nn.Identity())
    nn.quantize(model, class_predicate=lambda path, m: False)
    assert model.layers[0] is lin
    with pytest.raises(ValueError, match=r"\[quantize\] Unable to quantize model of type .*Identity"):
        nn.quantize(model, class_predicate=lambda path, m: path == "layers.1")
    seen = []
    nn.quantize(model, class_predicate=lambda path, m: seen.append((path, type(m).__name__)) and False)
    assert seen == [("layers.0", "Linear"), ("layers.1", "Identity")]


# ---------------------------------------------------------------- freezing, modes, repr
def quantized_layers(core, nn_):
    """Builders of quantized layers, each with its name, for the same-seed comparisons."""
    lin = lambda bias=True: nn_.Linear(64, 16, bias=bias)  # noqa: E731
    return [
        ("QuantizedLinear", lambda: nn_.QuantizedLinear(64, 16)),
        ("QuantizedLinear-nobias-mxfp8", lambda: nn_.QuantizedLinear(64, 16, bias=False, mode="mxfp8")),
        ("from_linear", lambda: lin().to_quantized(group_size=32, bits=8)),
        ("from_linear-nvfp4-nobias", lambda: lin(False).to_quantized(mode="nvfp4")),
        ("QuantizedEmbedding", lambda: nn_.QuantizedEmbedding(10, 64, group_size=32)),
        ("QQLinear", lambda: nn_.QQLinear(64, 16)),
        ("QQLinear-eval", lambda: nn_.QQLinear(64, 16, mode="mxfp8").eval()),
        ("QQLinear-from_linear-eval", lambda: lin(False).eval().to_quantized(mode="nvfp4", quantize_input=True)),
        ("Sequential", lambda: nn_.Sequential(nn_.QuantizedLinear(64, 16), nn_.Linear(16, 4), nn_.QQLinear(64, 16))),
    ]


def steps(*calls):
    """Apply ``(method, kwargs)`` calls in turn to a module."""

    def run(module):
        for name, kwargs in calls:
            getattr(module, name)(**kwargs)

    return run


FREEZE_STEPS = [
    ("as built", steps()),
    ("freeze", steps(("freeze", {}))),
    ("unfreeze", steps(("unfreeze", {}))),
    ("freeze+unfreeze(keys=bias)", steps(("freeze", {}), ("unfreeze", {"keys": ["bias"]}))),
    ("unfreeze+freeze(keys=scales)", steps(("unfreeze", {}), ("freeze", {"keys": "scales"}))),
    ("unfreeze(recurse=False)", steps(("unfreeze", {"recurse": False}))),
    ("eval", steps(("eval", {}))),
    ("eval+train", steps(("eval", {}), ("train", {}))),
    ("freeze+eval+train", steps(("freeze", {}), ("eval", {}), ("train", {}))),
]


@pytest.mark.parametrize("step", FREEZE_STEPS, ids=[s for s, _ in FREEZE_STEPS])
@pytest.mark.parametrize("index", range(len(quantized_layers(mx, nn))), ids=[n for n, _ in quantized_layers(mx, nn)])
def test_parameters_freezing_modes_and_repr_match_mlx(index, step):
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(23)
    mlx_core.random.seed(23)
    ours = quantized_layers(mx, nn)[index][1]()
    theirs = quantized_layers(mlx_core, mlx_nn)[index][1]()
    step[1](ours)
    step[1](theirs)
    assert_same_params(ours, theirs, mlx_core)
    assert_same_freezing(ours, theirs)
    assert repr(ours) == repr(theirs)
    assert [m.training for m in ours.modules()] == [m.training for m in theirs.modules()]


# ---------------------------------------------------------------- nn.quantize
def build_model(core, nn_):
    """A small model with quantizable leaves in a list and a dict, a tied embedding and
    layers quantize leaves alone (LayerNorm, GELU)."""

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn_.Embedding(40, 128)
            self.blocks = [nn_.Linear(128, 256), nn_.GELU(), nn_.Linear(256, 128, bias=False)]
            self.norm = nn_.LayerNorm(128)
            self.head = {"out": nn_.Linear(128, 32)}

        def __call__(self, tokens):
            h = self.emb(tokens).astype(core.float32)  # fp modes look up bfloat16 rows
            for layer in self.blocks:
                h = layer(h)
            h = self.norm(h)
            return self.head["out"](h) + self.emb.as_linear(h)[..., :32]

    return Net()


def model_pair(seed=24):
    """The model in both frameworks, with MLX's (seeded) weights copied into oxmx's."""
    mlx_core, mlx_nn = mlx_pair()
    mlx_core.random.seed(seed)
    theirs, ours = build_model(mlx_core, mlx_nn), build_model(mx, nn)
    ours.load_weights([(k, mx.array(np.array(v))) for k, v in mlx_flatten(theirs.parameters())])
    return ours, theirs, mlx_core, mlx_nn


TOKENS = [[1, 5, 39, 0], [7, 7, 2, 11]]


def assert_same_models(ours, theirs, mlx_core):
    assert repr(ours) == repr(theirs)
    assert_same_params(ours, theirs, mlx_core)
    assert_same_freezing(ours, theirs)
    assert_same_output(ours(mx.array(TOKENS)), theirs(mlx_core.array(TOKENS)), mlx_core)


@pytest.mark.parametrize("mode, group_size, bits", CONFIGS, ids=CONFIG_IDS)
def test_quantize_model_matches_mlx(mode, group_size, bits):
    ours, theirs, mlx_core, mlx_nn = model_pair()
    assert nn.quantize(ours, group_size, bits, mode=mode) is None
    mlx_nn.quantize(theirs, group_size, bits, mode=mode)
    assert type(ours.blocks[0]) is nn.QuantizedLinear and type(ours.emb) is nn.QuantizedEmbedding
    assert type(ours.norm) is nn.LayerNorm
    assert_same_models(ours, theirs, mlx_core)


def test_quantize_class_predicate_matches_mlx():
    def choose(path, module):
        calls.append((path, type(module).__name__))
        return {
            "blocks.0": {"group_size": 32, "bits": 8},
            # a dict replaces quantize's arguments: mxfp4 gets its own group size and bits
            "blocks.2": {"mode": "mxfp4"},
            "head.out": True,
        }.get(path, False)

    records = []
    ours, theirs, mlx_core, mlx_nn = model_pair()
    for model, quantize in ((ours, nn.quantize), (theirs, mlx_nn.quantize)):
        calls = []
        quantize(model, 128, 2, mode="affine", class_predicate=choose)
        records.append(calls)
    assert records[0] == records[1]
    assert [p for p, _ in records[0]] == ["emb", "blocks.0", "blocks.1", "blocks.2", "norm", "head.out"]
    assert type(ours.emb) is nn.Embedding and (ours.blocks[2].mode, ours.blocks[2].group_size) == ("mxfp4", 32)
    assert (ours.head["out"].group_size, ours.head["out"].bits) == (128, 2)
    assert_same_models(ours, theirs, mlx_core)


def test_quantize_indivisible_layers_raise_as_in_mlx():
    """MLX does not skip a layer whose input size the group size does not divide: quantize
    raises and leaves the model as it was. A class_predicate can skip such layers."""
    mlx_core, mlx_nn = mlx_pair()
    mlx_core.random.seed(25)
    theirs = mlx_nn.Sequential(mlx_nn.Linear(64, 32), mlx_nn.ReLU(), mlx_nn.Linear(32, 48), mlx_nn.Embedding(10, 40))
    ours = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 48), nn.Embedding(10, 40))
    ours.load_weights([(k, mx.array(np.array(v))) for k, v in mlx_flatten(theirs.parameters())])
    for args in ((), (32, 4), (None, None, "mxfp4")):
        kwargs = {"mode": args[2]} if len(args) == 3 else {}
        with pytest.raises(ValueError) as want:
            mlx_nn.quantize(theirs, *args[:2], **kwargs)
        with pytest.raises(ValueError) as got:
            nn.quantize(ours, *args[:2], **kwargs)
        assert str(got.value).split(". ")[0] == str(want.value).split(". ")[0]
        assert "divisible by the quantization group size" in str(got.value)
        assert repr(ours) == repr(theirs) and type(ours.layers[0]) is nn.Linear

    def divisible(path, module):
        return hasattr(module, "to_quantized") and module.weight.shape[-1] % 64 == 0

    nn.quantize(ours, class_predicate=divisible)
    mlx_nn.quantize(theirs, class_predicate=divisible)
    assert [type(m).__name__ for m in ours.layers] == ["QuantizedLinear", "ReLU", "Linear", "Embedding"]
    assert repr(ours) == repr(theirs)
    assert_same_params(ours, theirs, mlx_core)
    x = rand((3, 64), 8)
    h, r = ours.layers[2](ours.layers[1](ours.layers[0](mx.array(x)))), theirs.layers[2](
        theirs.layers[1](theirs.layers[0](mlx_core.array(x))))
    assert_same_output(h, r, mlx_core)


@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8"])
@pytest.mark.parametrize("training", [True, False])
def test_quantize_input_makes_qqlinear_as_in_mlx(mode, training):
    mlx_core, mlx_nn = mlx_pair()
    mlx_core.random.seed(26)
    theirs = mlx_nn.Sequential(mlx_nn.Linear(64, 32, bias=False), mlx_nn.Linear(32, 16))
    ours = nn.Sequential(nn.Linear(64, 32, bias=False), nn.Linear(32, 16))
    ours.load_weights([(k, mx.array(np.array(v))) for k, v in mlx_flatten(theirs.parameters())])
    ours.train(training)
    theirs.train(training)
    only_first = lambda path, m: path == "layers.0"  # noqa: E731
    nn.quantize(ours, mode=mode, quantize_input=True, class_predicate=only_first)
    mlx_nn.quantize(theirs, mode=mode, quantize_input=True, class_predicate=only_first)
    assert type(ours.layers[0]) is nn.QQLinear and ours.layers[0].training is training
    assert repr(ours) == repr(theirs)
    assert_same_params(ours, theirs, mlx_core)  # quantized (weight, scales) when evaluating
    assert_same_freezing(ours, theirs)
    # a Linear with a bias cannot become a QQLinear, in either framework
    with pytest.raises(NotImplementedError, match="QQLinear does not support bias yet"):
        mlx_nn.quantize(theirs, mode=mode, quantize_input=True)
    with pytest.raises(NotImplementedError, match="QQLinear does not support bias yet"):
        nn.quantize(ours, mode=mode, quantize_input=True)


# ---------------------------------------------------------------- QQLinear
def fake_quantized(core, a, mode):
    """``dequantize(quantize(a))`` in float32, as ``core`` computes it."""
    q, s = core.quantize(a, mode=mode)
    return core.dequantize(q, s, mode=mode, dtype=core.float32)


def mlx_qq_reference(mlx_core, x, w, mode, quantized_w=None):
    """What QQLinear computes, from MLX's own quantization: fq(x) @ fq(W).T (float32
    products of exactly representable operands)."""
    xq = np.array(fake_quantized(mlx_core, mlx_core.array(x), mode)).astype(np.float64)
    if quantized_w is None:
        wq = np.array(fake_quantized(mlx_core, mlx_core.array(w).astype(mlx_core.float32), mode))
    else:
        wq = np.array(mlx_core.dequantize(*quantized_w, mode=mode, dtype=mlx_core.float32))
    return xq @ wq.astype(np.float64).T


@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8"])
def test_qqlinear_matches_mlx_in_both_modes(mode):
    mlx_core, mlx_nn = mlx_pair()
    mx.random.seed(27)
    mlx_core.random.seed(27)
    ours, theirs = nn.QQLinear(128, 24, mode=mode), mlx_nn.QQLinear(128, 24, mode=mode)
    assert_same_params(ours, theirs, mlx_core)
    assert repr(ours) == repr(theirs) and keys(ours, tree_flatten) == ["weight"]
    x = rand((2, 5, 128), 9)
    w = np.array(theirs.weight)
    y = ours(mx.array(x))
    assert y.shape == (2, 5, 24) and y.dtype == mx.float32
    want = mlx_qq_reference(mlx_core, x, w, mode)
    np.testing.assert_allclose(np.array(y), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    # evaluation stores the weight quantized, as MLX packs it
    ours.eval()
    theirs.eval()
    assert ours.weight.dtype == mx.uint32 and ours.scales.dtype == mx.uint8
    assert_same_params(ours, theirs, mlx_core)
    assert_same_freezing(ours, theirs)
    assert repr(ours) == repr(theirs)
    y2 = ours(mx.array(x))
    want2 = mlx_qq_reference(mlx_core, x, None, mode, (theirs.weight, theirs.scales))
    np.testing.assert_allclose(np.array(y2), want2, rtol=1e-5, atol=1e-5 * np.abs(want2).max())
    np.testing.assert_allclose(np.array(y2), np.array(y), rtol=1e-6, atol=1e-6 * np.abs(want).max())
    # and training dequantizes it again (to bfloat16, MLX's default for these modes)
    ours.train()
    theirs.train()
    assert ours.weight.dtype == mx.bfloat16 and "scales" not in ours
    assert_same_params(ours, theirs, mlx_core)
    ours.eval()  # idempotent round trip: the dequantized weight quantizes to the same bits
    theirs.eval()
    assert_same_params(ours, theirs, mlx_core)


@pytest.mark.parametrize("mode", ["nvfp4", "mxfp8"])
def test_qqlinear_training_step(mode):
    """Training keeps a float weight whose gradient is straight-through,
    ``dL/dy^T @ fq(x)``; after an update, eval() quantizes the new weight as MLX does."""
    mlx_core, mlx_nn = mlx_pair()
    w, x, target = rand((16, 64), 10), rand((6, 64), 11), rand((6, 16), 12)
    lin, their_lin = linear_pair(mlx_core, mlx_nn, w, None)
    layer = lin.to_quantized(mode=mode, quantize_input=True)
    assert type(layer) is nn.QQLinear and layer.weight is lin.weight and layer.training

    def loss(a):
        return ((layer(a) - mx.array(target)) ** 2).mean()

    value, grads = nn.value_and_grad(layer, loss)(mx.array(x))
    y = mlx_qq_reference(mlx_core, x, w, mode)
    assert abs(float(value) - ((y - target) ** 2).mean()) <= 1e-5 * abs(float(value))
    xq = np.array(fake_quantized(mlx_core, mlx_core.array(x), mode)).astype(np.float64)
    want = (2 * (y - target) / y.size).T @ xq
    assert list(grads) == ["weight"]
    np.testing.assert_allclose(np.array(grads["weight"]), want, rtol=1e-4, atol=1e-6)
    # an SGD step, then the quantized weight is MLX's quantization of the updated weight
    layer.update({"weight": layer.weight - 0.5 * grads["weight"]})
    updated = np.array(layer.weight)
    layer.eval()
    wq, s = mlx_core.quantize(mlx_core.array(updated), mode=mode)
    np.testing.assert_array_equal(np.array(layer.weight), np.array(wq))
    np.testing.assert_array_equal(np.array(layer.scales), np.array(s))
    their_layer = their_lin.to_quantized(mode=mode, quantize_input=True)
    assert repr(layer) == repr(their_layer.eval())
    assert_same_freezing(layer, their_layer)


# ---------------------------------------------------------------- weight files
@pytest.mark.parametrize("ext", ["npz", "safetensors"])
@pytest.mark.parametrize("mode, group_size, bits", [("affine", 32, 4), ("mxfp4", None, None), ("nvfp4", None, None)])
def test_quantized_model_weights_round_trip(tmp_path, ext, mode, group_size, bits):
    """save_weights/load_weights of a quantized model: the packed uint32 weights, uint8 or
    float scales keep their dtypes and bits, into oxmx and into MLX, and back."""
    ours, theirs, mlx_core, mlx_nn = model_pair()
    nn.quantize(ours, group_size, bits, mode=mode)
    qq = nn.QQLinear(64, 8).eval()
    ours.extra = qq
    path = tmp_path / f"ours.{ext}"
    ours.save_weights(str(path))
    fresh, _, _, _ = model_pair(seed=99)  # different weights, the same structure
    nn.quantize(fresh, group_size, bits, mode=mode)
    fresh.extra = nn.QQLinear(64, 8).eval()
    assert not mx.array_equal(fresh.blocks[0].weight, ours.blocks[0].weight)
    fresh.load_weights(str(path))
    for (k, a), (k2, b) in zip(tree_flatten(ours.parameters()), tree_flatten(fresh.parameters())):
        assert k == k2 and a.dtype == b.dtype and mx.array_equal(a, b), k
    np.testing.assert_array_equal(np.array(fresh(mx.array(TOKENS))), np.array(ours(mx.array(TOKENS))))
    # MLX reads the file into its own quantized model, and oxmx reads MLX's
    mlx_nn.quantize(theirs, group_size, bits, mode=mode)
    theirs.extra = mlx_nn.QQLinear(64, 8).eval()
    theirs.load_weights(str(path))
    assert_same_params(ours, theirs, mlx_core)
    assert_same_output(ours(mx.array(TOKENS)), theirs(mlx_core.array(TOKENS)), mlx_core)
    theirs.save_weights(str(tmp_path / f"mlx.{ext}"))
    back, _, _, _ = model_pair(seed=98)
    nn.quantize(back, group_size, bits, mode=mode)
    back.extra = nn.QQLinear(64, 8).eval()
    back.load_weights(str(tmp_path / f"mlx.{ext}"))
    assert_same_params(back, theirs, mlx_core)
