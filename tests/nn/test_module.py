"""nn.Module: attribute storage, parameter trees, update/freeze/train, weight files.

Behaviour is checked against real MLX (same structure built with ``mlx.nn``) where MLX
is installed, and against hand-computed expectations everywhere.
"""

import copy
import pathlib

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.nn as nn
from oxmx.utils import tree_flatten, tree_map


def build(mx_, nn_):
    """The same small network for either framework (``mx_``/``nn_`` = oxmx or mlx)."""

    class Net(nn_.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn_.Linear(2, 3), nn_.Dropout(0.5), nn_.Linear(3, 1, bias=False)]
            self.extra = {"emb": nn_.Embedding(4, 2), "scale": mx_.ones(2), "n": 3, "seq": nn_.Sequential(nn_.Identity())}
            self.buf = mx_.zeros(1)
            self._private = mx_.zeros(2)
            self.tup = (mx_.ones(1),)
            self.k = 5

        def __call__(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    return Net()


def shapes(tree):
    """A tree with every array replaced by ``("array", shape)`` and every module by
    its class name, comparable across frameworks."""

    def leaf(v):
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            return ("array", tuple(v.shape))
        if isinstance(v, dict) and hasattr(v, "children"):
            return type(v).__name__
        return v

    return tree_map(leaf, tree, is_leaf=lambda v: hasattr(v, "children") or hasattr(v, "shape"))


@pytest.fixture
def mlx():
    mlx_core = pytest.importorskip("mlx.core")
    import mlx.nn as mlx_nn

    return mlx_core, mlx_nn


# ---------------------------------------------------------------- attributes
def test_tree_valued_attributes_are_dict_items():
    m = nn.Module()
    m.w = mx.zeros(2)
    m.d = {"a": mx.ones(1)}
    m.l = [nn.Identity()]
    m.t = (mx.ones(1),)
    m.sub = nn.Linear(2, 2)
    m.n = 3
    m.s = "text"
    m.none = None
    assert isinstance(m, dict)
    assert list(m.keys()) == ["w", "d", "l", "t", "sub"]
    assert m["w"] is m.w and m["sub"] is m.sub
    assert m.n == 3 and m.s == "text" and m.none is None
    assert "n" not in m and "none" not in m


def test_reassignment_moves_between_dict_and_attributes():
    m = nn.Linear(2, 3)
    m.weight = None  # a non-tree value replaces the parameter
    assert "weight" not in m and m.weight is None
    m.foo = 1
    m.foo = mx.zeros(1)
    assert "foo" in m and "foo" not in m.__dict__
    m.foo = 5
    assert "foo" not in m and m.foo == 5
    m["bar"] = 4  # items set directly are still readable as attributes
    assert m.bar == 4


def test_missing_attribute_and_delattr():
    m = nn.Linear(2, 3)
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'nope'"):
        m.nope
    with pytest.raises(AttributeError):
        del m.nope
    m.k = 1
    del m.k
    assert not hasattr(m, "k")
    del m.bias
    assert "bias" not in m and not hasattr(m, "bias")


def test_training_and_state_properties():
    m = nn.Linear(2, 2)
    assert m.training is True
    assert m.state is m
    with pytest.raises(AttributeError):
        m.training = False


def test_module_is_unhashable_dict_and_deepcopies():
    m = build(mx, nn)
    with pytest.raises(TypeError):
        hash(m)
    c = copy.deepcopy(m)
    c.layers[0].weight = mx.zeros((3, 2))
    assert not np.array_equal(np.array(m.layers[0].weight), np.zeros((3, 2)))
    assert type(c.layers[0]) is nn.Linear and c.k == 5 and c._no_grad == set()


# ---------------------------------------------------------------- trees
def test_parameters_structure():
    m = build(mx, nn)
    p = m.parameters()
    assert type(p) is dict
    assert shapes(p) == {
        "layers": [{"weight": ("array", (3, 2)), "bias": ("array", (3,))}, {}, {"weight": ("array", (1, 3))}],
        "extra": {"emb": {"weight": ("array", (4, 2))}, "scale": ("array", (2,)), "n": {}, "seq": {"layers": [{}]}},
        "buf": ("array", (1,)),
    }
    assert p["layers"][0]["weight"] is m.layers[0].weight


def test_children_leaf_modules_named_modules():
    m = build(mx, nn)
    assert shapes(m.children()) == {
        "layers": ["Linear", "Dropout", "Linear"],
        "extra": {"emb": "Embedding", "scale": {}, "n": {}, "seq": "Sequential"},
    }
    leaves = m.leaf_modules()
    # a leaf module has no sub-modules: Sequential(Identity()) is not one (MLX 0.32
    # calls it a leaf because its child holds no parameters)
    assert shapes(leaves) == {
        "layers": ["Linear", "Dropout", "Linear"],
        "extra": {"emb": "Embedding", "scale": {}, "n": {}, "seq": {"layers": ["Identity"]}},
    }
    names = [n for n, _ in m.named_modules()]
    assert names[0] == "" and sorted(names) == sorted(
        ["", "layers.0", "layers.1", "layers.2", "extra.emb", "extra.seq", "extra.seq.layers.0"]
    )
    assert [id(x) for x in m.modules()] == [id(x) for _, x in m.named_modules()]


def test_trees_match_mlx(mlx):
    mlx_core, mlx_nn = mlx
    ours, theirs = build(mx, nn), build(mlx_core, mlx_nn)
    assert shapes(ours.parameters()) == shapes(theirs.parameters())
    assert shapes(ours.trainable_parameters()) == shapes(theirs.trainable_parameters())
    assert shapes(ours.children()) == shapes(theirs.children())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [type(x).__name__ for x in ours.modules()] == [type(x).__name__ for x in theirs.modules()]
    assert repr(ours) == repr(theirs)
    assert list(ours.keys()) == list(theirs.keys())


def test_filter_and_map():
    m = build(mx, nn)
    # keep only float arrays with 2 dims; map them to their shapes
    got = m.filter_and_map(
        lambda mod, k, v: isinstance(v, (dict, list)) or (isinstance(v, mx.array) and v.ndim == 2),
        map_fn=lambda v: v.shape,
    )
    assert got["layers"][0] == {"weight": (3, 2)}
    assert got["extra"]["emb"] == {"weight": (4, 2)} and got["extra"]["scale"] == {}
    # keys inside containers are dotted paths
    seen = []
    m.filter_and_map(lambda mod, k, v: seen.append(k) or True, is_leaf_fn=lambda mod, k, v: not isinstance(v, (dict, list)))
    assert "extra.scale" in seen and "extra.n" in seen and "tup" in seen
    with pytest.raises(RuntimeError, match="Unexpected leaf"):
        m.filter_and_map(lambda mod, k, v: True, is_leaf_fn=lambda mod, k, v: isinstance(v, mx.array))


def test_static_filters():
    m = nn.Module()
    assert nn.Module.valid_parameter_filter(m, "w", mx.zeros(1))
    assert not nn.Module.valid_parameter_filter(m, "_w", mx.zeros(1))
    assert not nn.Module.valid_parameter_filter(m, "w", (mx.zeros(1),))
    assert nn.Module.valid_child_filter(m, "w", [])
    assert not nn.Module.valid_child_filter(m, "w", mx.zeros(1))
    assert nn.Module.is_module(m) and not nn.Module.is_module({})
    m._no_grad.add("w")
    assert not nn.Module.trainable_parameter_filter(m, "w", mx.zeros(1))
    assert nn.Module.trainable_parameter_filter(m, "v", mx.zeros(1))


# ---------------------------------------------------------------- update
def test_update_replaces_arrays_and_returns_self():
    m = build(mx, nn)
    new = mx.full((3, 2), 7.0)
    assert m.update({"layers": [{"weight": new}]}) is m
    assert m.layers[0].weight is new
    m.update({"extra": {"scale": mx.zeros(2)}, "buf": mx.ones(1)})
    assert m.extra["scale"].tolist() == [0, 0] and m.buf.tolist() == [1]
    # shapes are not checked by update (MLX does not either)
    m.update({"buf": mx.zeros((4, 4))})
    assert m.buf.shape == (4, 4)
    # the parameter tree itself (with its {} placeholders) round-trips
    before = tree_flatten(m.parameters())
    m.update(m.parameters())
    assert [(k, id(v)) for k, v in tree_flatten(m.parameters())] == [(k, id(v)) for k, v in before]


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"zzz": mx.zeros(1)}, 'does not have parameter named "zzz"'),
        ({"layers": [{"nope": mx.zeros(1)}]}, 'does not have parameter named "layers.0.nope"'),
        ({"k": mx.zeros(1)}, 'does not have parameter named "k"'),
        ({"layers": [{}, {}, {}, {}]}, "List index 3 is out of bounds"),
        ({"layers": [{"weight": 3}]}, r"invalid type: int for parameter \"layers.0.weight\""),
        ({"layers": [{"weight": np.zeros((3, 2))}]}, "invalid type: ndarray"),
        ({"layers": [None]}, "invalid type: NoneType"),
        ({"buf": {"a": mx.zeros(1)}}, "invalid type: dict"),
        ({"layers": [mx.zeros(2)]}, 'invalid type: array for parameter "layers.0"'),
    ],
)
def test_update_strict_errors(bad, message):
    m = build(mx, nn)
    with pytest.raises(ValueError, match=r"\[Module.update\].*" + message):
        m.update(bad)
    # non-strict skips what does not fit, leaving the model intact
    before = shapes(m.parameters())
    m.update(bad, strict=False)
    assert shapes(m.parameters()) == before


def test_update_errors_match_mlx_types(mlx):
    mlx_core, mlx_nn = mlx
    for bad in ({"zzz": 1}, {"layers": [{"weight": 3}]}, {"layers": [{}, {}, {}, {}]}):
        with pytest.raises(ValueError):
            build(mlx_core, mlx_nn).update(tree_map(lambda v: v, bad))
        with pytest.raises(ValueError):
            build(mx, nn).update(bad)


def test_update_modules():
    m = build(mx, nn)
    new = nn.Linear(2, 5)
    assert m.update_modules({"layers": [new]}) is m
    assert m.layers[0] is new and isinstance(m.layers[1], nn.Dropout)
    m.update_modules({"extra": {"emb": nn.Identity()}})
    assert isinstance(m.extra["emb"], nn.Identity)
    m.update_modules(m.leaf_modules())  # placeholders {} are ignored
    with pytest.raises(ValueError, match=r'\[Module.update_modules\].*sub-module named "zz"'):
        m.update_modules({"zz": nn.Identity()})
    with pytest.raises(ValueError, match="List index 3 is out of bounds"):
        m.update_modules({"layers": [nn.Identity()] * 4})
    m = build(mx, nn)
    with pytest.raises(ValueError, match='invalid type: array for "layers.0.weight"'):
        m.update_modules({"layers": [{"weight": mx.zeros(1)}]})
    with pytest.raises(ValueError, match='invalid type: Identity for "buf"'):
        m.update_modules({"buf": nn.Identity()})
    m.update_modules({"zz": nn.Identity(), "buf": nn.Identity()}, strict=False)
    assert "zz" not in m and isinstance(m.buf, mx.array)


def test_apply_and_apply_to_modules():
    m = build(mx, nn)
    m.apply(lambda x: x * 0)
    assert all(float(mx.abs(v).sum()) == 0 for _, v in tree_flatten(m.parameters()))
    assert m._private.shape == (2,)
    m.apply(lambda x: x + 1, filter_fn=lambda mod, k, v: k != "bias" and nn.Module.valid_parameter_filter(mod, k, v))
    assert m.layers[0].bias.tolist() == [0, 0, 0] and m.layers[0].weight.tolist() == [[1, 1]] * 3
    seen = []
    assert m.apply_to_modules(lambda name, mod: seen.append((name, type(mod).__name__))) is m
    assert seen == [(n, type(x).__name__) for n, x in m.named_modules()]


# ---------------------------------------------------------------- freeze
def frozen(m):
    return {n: sorted(x._no_grad) for n, x in m.named_modules()}


def test_freeze_everything_and_unfreeze():
    m = build(mx, nn)
    assert m.freeze() is m
    assert m.trainable_parameters() == {
        "layers": [{}, {}, {}],
        "extra": {"emb": {}, "scale": {}, "n": {}, "seq": {"layers": [{}]}},
    }
    assert frozen(m)[""] == ["buf", "extra.scale"]
    assert frozen(m)["layers.0"] == ["bias", "weight"]
    m.freeze()  # idempotent
    assert frozen(m)[""] == ["buf", "extra.scale"]
    assert m.unfreeze() is m
    assert all(v == [] for v in frozen(m).values())
    assert shapes(m.trainable_parameters()) == shapes(m.parameters())


def test_freeze_keys_recurse_strict():
    m = build(mx, nn)
    m.freeze(keys="bias")
    t = m.trainable_parameters()
    assert "bias" not in t["layers"][0] and "weight" in t["layers"][0]
    m.unfreeze(keys=["bias"])
    assert "bias" in m.trainable_parameters()["layers"][0]
    m.freeze(recurse=False)
    assert frozen(m)[""] == ["buf", "extra.scale"] and frozen(m)["layers.0"] == []
    m.unfreeze()
    m.freeze(keys=["extra"], recurse=False)
    assert "extra" not in m.trainable_parameters()
    m.unfreeze()
    with pytest.raises(KeyError, match=r"\[Module.freeze\] Module doesn't contain member zz"):
        m.freeze(keys=["zz"], strict=True)
    with pytest.raises(KeyError, match=r"\[Module.unfreeze\] Module doesn't contain member zz"):
        m.unfreeze(keys="zz", strict=True)
    m.freeze(keys=["buf"], strict=True)  # a member of the top module passes strict
    assert "buf" not in m.trainable_parameters()
    m.freeze()
    m.unfreeze(keys="weight")
    t = m.trainable_parameters()
    assert list(t["layers"][0]) == ["weight"] and "buf" not in t


def test_freeze_matches_mlx(mlx):
    mlx_core, mlx_nn = mlx
    for kwargs in ({}, {"recurse": False}, {"keys": "bias"}, {"keys": ["extra"], "recurse": False}, {"keys": ["buf"], "strict": True}):
        ours, theirs = build(mx, nn), build(mlx_core, mlx_nn)
        ours.freeze(**kwargs)
        theirs.freeze(**kwargs)
        assert frozen(ours) == frozen(theirs), kwargs
        assert shapes(ours.trainable_parameters()) == shapes(theirs.trainable_parameters()), kwargs
        ours.unfreeze(keys="weight")
        theirs.unfreeze(keys="weight")
        assert frozen(ours) == frozen(theirs), kwargs


# ---------------------------------------------------------------- modes and dtypes
def test_train_eval_propagate():
    m = build(mx, nn)
    assert m.eval() is m
    assert all(not x.training for x in m.modules())
    x = mx.ones((4, 2))
    assert mx.array_equal(m.layers[1](x), x)  # dropout is the identity in eval mode
    assert m.train() is m and all(x.training for x in m.modules())
    m.layers[1].train(False)
    assert not m.layers[1].training and m.training


def test_set_dtype():
    m = build(mx, nn)
    m.ints = mx.zeros(2, dtype=mx.int32)
    assert m.set_dtype(mx.float16) is None
    assert m.layers[0].weight.dtype == mx.float16 and m.buf.dtype == mx.float16
    assert m.ints.dtype == mx.int32
    m.set_dtype(mx.bfloat16, predicate=lambda d: d == mx.int32)
    assert m.ints.dtype == mx.bfloat16 and m.buf.dtype == mx.float16
    m.set_dtype(mx.float32, predicate=None)
    assert all(v.dtype == mx.float32 for _, v in tree_flatten(m.parameters()))


# ---------------------------------------------------------------- weight files
@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_save_load_round_trip(tmp_path, ext):
    src, dst = build(mx, nn), build(mx, nn)
    src.layers[0].weight = src.layers[0].weight.astype(mx.bfloat16)
    dst.layers[0].weight = dst.layers[0].weight.astype(mx.bfloat16)
    path = tmp_path / f"w.{ext}"
    src.save_weights(str(path))
    assert dst.load_weights(str(path)) is dst
    for (k, a), (k2, b) in zip(tree_flatten(src.parameters()), tree_flatten(dst.parameters())):
        assert k == k2 and a.dtype == b.dtype and mx.array_equal(a, b)
    # a pathlib.Path works as well
    dst2 = build(mx, nn).load_weights(pathlib.Path(path))
    assert mx.array_equal(dst2.layers[2].weight, src.layers[2].weight)


def test_load_weights_from_list_and_dict():
    m = nn.Linear(2, 3)
    w, b = mx.ones((3, 2)), mx.zeros(3)
    m.load_weights([("weight", w), ("bias", b)])
    assert m.weight is w and m.bias is b
    m.load_weights({"weight": w + 1, "bias": b})
    assert m.weight.tolist() == [[2, 2]] * 3
    m2 = build(mx, nn)
    m2.load_weights([("layers.2.weight", mx.zeros((1, 3))), ("extra.emb.weight", mx.ones((4, 2)))], strict=False)
    assert m2.layers[2].weight.tolist() == [[0, 0, 0]] and m2.extra["emb"].weight.tolist() == [[1, 1]] * 4


@pytest.mark.parametrize(
    "weights, message",
    [
        ([("weight", mx.zeros((3, 2)))], r"Missing 1 parameters: bias\."),
        (
            [("weight", mx.zeros((3, 2))), ("bias", mx.zeros(3)), ("zz", mx.zeros(1)), ("yy", mx.zeros(1))],
            r"Received 2 parameters not in model: yy, zz\.",
        ),
        ([("weight", mx.zeros((3, 3))), ("bias", mx.zeros(3))], r"Expected shape \(3, 2\) but received shape \(3, 3\) for parameter weight"),
        ([("weight", 3), ("bias", mx.zeros(3))], r"Expected mx.array but received <class 'int'> for parameter weight"),
        ([("weight",)], r"Expected \(name, array\) pairs"),
    ],
)
def test_load_weights_strict_errors(weights, message):
    m = nn.Linear(2, 3)
    old = m.weight
    with pytest.raises(ValueError, match=r"\[Module.load_weights\] " + message):
        m.load_weights(weights)
    assert m.weight is old  # nothing was loaded


def test_load_weights_non_strict():
    m = nn.Linear(2, 3)
    m.load_weights([("weight", mx.zeros((5, 5))), ("zz", mx.ones(1))], strict=False)
    assert m.weight.shape == (5, 5) and "zz" not in m
    with pytest.raises(ValueError, match="for parameter weight"):
        m.load_weights([("weight", 3)], strict=False)


def test_weight_file_errors(tmp_path):
    m = nn.Linear(2, 3)
    with pytest.raises(ValueError, match=r"\[Module.save_weights\] Unsupported file extension .*w\.bin"):
        m.save_weights(str(tmp_path / "w.bin"))
    with pytest.raises((ValueError, OSError, FileNotFoundError)):
        m.load_weights(str(tmp_path / "missing.npz"))
    mx.save(str(tmp_path / "one.npy"), mx.zeros(2))
    with pytest.raises(ValueError, match=r"\[Module.load_weights\] .*one\.npy holds a single array"):
        m.load_weights(str(tmp_path / "one.npy"))


@pytest.mark.parametrize("ext", ["npz", "safetensors"])
def test_weight_files_interchange_with_mlx(tmp_path, mlx, ext):
    mlx_core, mlx_nn = mlx
    theirs, ours = build(mlx_core, mlx_nn), build(mx, nn)
    theirs.save_weights(str(tmp_path / f"mlx.{ext}"))
    ours.load_weights(str(tmp_path / f"mlx.{ext}"))
    ours.apply(lambda x: x * 2)
    ours.save_weights(str(tmp_path / f"ours.{ext}"))
    theirs.load_weights(str(tmp_path / f"ours.{ext}"))
    back = dict(tree_flatten(theirs.parameters()))
    for k, v in tree_flatten(ours.parameters()):
        np.testing.assert_array_equal(np.array(back[k]), np.array(v))


def test_repr():
    m = build(mx, nn)
    assert repr(m) == (
        "Net(\n"
        "  (layers.0): Linear(input_dims=2, output_dims=3, bias=True)\n"
        "  (layers.1): Dropout(p=0.5)\n"
        "  (layers.2): Linear(input_dims=3, output_dims=1, bias=False)\n"
        "  (extra.emb): Embedding(4, 2)\n"
        "  (extra.seq): Sequential(\n"
        "    (layers.0): Identity()\n"
        "  )\n"
        ")"
    )
    assert repr(nn.Module()) == "Module()"
