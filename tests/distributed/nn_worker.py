"""One rank of the nn-level MPI tests: average_gradients, the sharded linear layers
against the unsharded layer, and data-parallel training against one process's
full-batch training (every rank computes that reference itself). Prints ``OK <rank>``."""

import sys
import traceback

import numpy as np

import oxmx.core as mx
import oxmx.nn as nn
import oxmx.optimizers as optim
from oxmx.utils import tree_flatten, tree_map

world = mx.distributed.init(strict=True)
rank, size = world.rank(), world.size()


def close(a, b, what, tol=1e-5):
    np.testing.assert_allclose(np.array(a, dtype=np.float64), np.array(b, dtype=np.float64), rtol=tol, atol=tol,
                               err_msg=what)


def grads_of(r):
    g = np.random.default_rng(r)
    return {
        "w": mx.array(g.standard_normal((5, 3)).astype(np.float32)),
        "layers": [{"b": mx.array(g.standard_normal((7,)).astype(np.float32))},
                   {"h": mx.array(g.standard_normal((2, 2)).astype(np.float16))}],
        "s": mx.array(g.standard_normal(()).astype(np.float32)),
    }


def average_gradients():
    per_rank = [[np.array(v, dtype=np.float64) for _, v in tree_flatten(grads_of(r))] for r in range(size)]
    want = [np.mean([p[i] for p in per_rank], axis=0) for i in range(len(per_rank[0]))]
    for batch in (32 * 1024**2, 16, 0):
        got = nn.average_gradients(grads_of(rank), all_reduce_size=batch)
        flat = tree_flatten(got)
        assert [k for k, _ in flat] == [k for k, _ in tree_flatten(grads_of(0))]
        for (k, v), w in zip(flat, want):
            assert v.dtype == dict(tree_flatten(grads_of(0)))[k].dtype, k
            close(v, w, f"average_gradients {k} batch {batch}", tol=2e-3 if v.dtype == mx.float16 else 1e-6)
    got = nn.average_gradients(grads_of(rank), communication_type=mx.bfloat16)
    close(got["w"], want[[k for k, _ in tree_flatten(grads_of(0))].index("w")], "bfloat16 communication", tol=3e-2)


def sharded_linear():
    mx.random.seed(7)  # the same full layer on every rank
    full = nn.Linear(8, 12)
    x = mx.random.normal((3, 8))
    y_full = full(x)
    a2s = nn.AllToShardedLinear.from_linear(full)
    s2a = nn.ShardedToAllLinear.from_linear(full)
    assert a2s.weight.shape == (12 // size, 8) and s2a.weight.shape == (12, 8 // size)
    close(mx.distributed.all_gather(a2s(x).T).T, y_full, "all-to-sharded forward")
    xs = x[:, rank * 8 // size:(rank + 1) * 8 // size]
    close(s2a(xs), y_full, "sharded-to-all forward")
    # gradients with respect to the input: the sharded pair computes what the full pair does
    full2 = nn.Linear(12, 8)
    s2a2 = nn.ShardedToAllLinear.from_linear(full2)
    gx_full = mx.grad(lambda x: (full2(full(x)) ** 2).sum())(x)
    gx = mx.grad(lambda x: (s2a2(a2s(x)) ** 2).sum())(x)
    close(gx, gx_full, "input gradient through all-to-sharded then sharded-to-all", tol=1e-4)
    # shard_linear of a quantized layer
    q = nn.QuantizedLinear.from_linear(nn.Linear(128 * size, 64), group_size=64, bits=4)
    xq = mx.random.normal((2, 128 * size))
    qs = nn.layers.distributed.shard_linear(q, "sharded-to-all")
    close(qs(xq[:, rank * 128:(rank + 1) * 128]), q(xq), "quantized sharded-to-all", tol=1e-4)
    qa = nn.layers.distributed.shard_linear(q, "all-to-sharded")
    close(mx.distributed.all_gather(qa(xq).T).T, q(xq), "quantized all-to-sharded", tol=1e-4)
    try:
        nn.AllToShardedLinear(8, 12 * size + 1)
        raise AssertionError("an indivisible output size was accepted")
    except ValueError:
        pass


def data_parallel_training():
    def make():
        mx.random.seed(3)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))

    g = np.random.default_rng(11)
    X = mx.array(g.standard_normal((8 * size, 6)).astype(np.float32))
    Y = mx.array(g.standard_normal((8 * size, 1)).astype(np.float32))
    loss = lambda m, x, y: nn.losses.mse_loss(m(x), y)

    # the reference: one process, the full batch
    ref, opt = make(), optim.SGD(learning_rate=0.1)
    step = nn.value_and_grad(ref, loss)
    ref_losses = []
    for _ in range(10):
        l, gr = step(ref, X, Y)
        opt.update(ref, gr)
        mx.eval(ref.parameters(), opt.state)
        ref_losses.append(l.item())

    # data parallel: each rank its slice of the batch, gradients averaged
    model, opt = make(), optim.SGD(learning_rate=0.1)
    step = nn.value_and_grad(model, loss)
    xs, ys = X[rank * 8:(rank + 1) * 8], Y[rank * 8:(rank + 1) * 8]
    losses = []
    for _ in range(10):
        l, gr = step(model, xs, ys)
        gr = nn.average_gradients(gr)
        opt.update(model, gr)
        mx.eval(model.parameters(), opt.state)
        losses.append(mx.distributed.all_sum(l).item() / size)
    close(losses, ref_losses, "data-parallel loss curve", tol=1e-5)
    assert ref_losses[-1] < ref_losses[0]


def fully_sharded_training():
    # every parameter's axis 0 divisible by 1, 2 and 4
    def make():
        mx.random.seed(5)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))

    g = np.random.default_rng(12)
    X = mx.array(g.standard_normal((8 * size, 6)).astype(np.float32))
    Y = mx.array(g.standard_normal((8 * size, 4)).astype(np.float32))
    loss = lambda m, x, y: nn.losses.mse_loss(m(x), y)

    ref, opt = make(), optim.Adam(learning_rate=0.01)
    step = nn.value_and_grad(ref, loss)
    ref_losses = []
    for _ in range(8):
        l, gr = step(ref, X, Y)
        opt.update(ref, gr)
        mx.eval(ref.parameters(), opt.state)
        ref_losses.append(l.item())

    model = nn.fully_shard(make())
    full_before = make()
    assert isinstance(model, nn.FullyShardedModule)
    w0 = np.array(full_before.layers[0].weight)
    k = 16 // size
    close(model.module.layers[0].weight, w0[rank * k:(rank + 1) * k], "this rank's shard")
    close(model(X), full_before(X), "forward with gathered parameters")
    opt = optim.Adam(learning_rate=0.01)
    step = nn.value_and_grad(model, loss)
    xs, ys = X[rank * 8:(rank + 1) * 8], Y[rank * 8:(rank + 1) * 8]
    losses = []
    for _ in range(8):
        l, gr = step(model, xs, ys)
        assert gr["module"]["layers"][0]["weight"].shape == (k, 6)
        opt.update(model, gr)
        mx.eval(model.parameters(), opt.state)
        losses.append(mx.distributed.all_sum(l).item() / size)
    close(losses, ref_losses, "fully sharded loss curve", tol=1e-5)
    whole = mx.distributed.all_gather(model.module.layers[2].weight)
    close(whole, ref.layers[2].weight, "gathered shards after training", tol=1e-5)
    # a lower-precision forward (a group of one computes as the module does)
    if size == 1:
        return
    half = nn.FullyShardedModule(make(), compute_dtype=mx.bfloat16)
    y = half(X.astype(mx.bfloat16))
    assert y.dtype == mx.bfloat16
    close(y.astype(mx.float32), full_before(X), "bfloat16 forward", tol=5e-2)


def tensor_parallel_llama():
    # examples/llama's model, sharded over the group: the same logits as unsharded
    # (grouped-query heads, two layers, a prompt and a cached next token)
    import os

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from examples.llama.model import Llama, LlamaConfig

    cfg = LlamaConfig(hidden_size=64, intermediate_size=96 * size, num_hidden_layers=2, num_attention_heads=8,
                      num_key_value_heads=4, vocab_size=50)
    mx.random.seed(9)  # the same weights on every rank
    model = Llama(cfg)
    model.update(tree_map(lambda p: p * 4, model.parameters()))  # livelier activations
    tokens = mx.array(np.random.default_rng(4).integers(0, 50, (2, 7)))
    cache = model.make_cache()
    want = model(tokens, cache)
    want_next = model(tokens[:, -1:], cache)
    mx.eval(want, want_next)
    model.shard()
    assert model.model.layers[0].self_attn.q_proj.weight.shape == (64 // size, 64)
    cache = model.make_cache()
    got = model(tokens, cache)
    close(got, want, "tensor-parallel Llama logits", tol=2e-4)
    close(model(tokens[:, -1:], cache), want_next, "tensor-parallel Llama, next token with a cache", tol=2e-4)
    try:
        Llama(LlamaConfig(hidden_size=18, intermediate_size=30, num_hidden_layers=1, num_attention_heads=3,
                          vocab_size=8)).shard()
        assert size == 1, "an indivisible head count was accepted"
    except ValueError:
        assert size > 1


try:
    average_gradients()
    sharded_linear()
    data_parallel_training()
    fully_sharded_training()
    tensor_parallel_llama()
except Exception:
    traceback.print_exc()
    sys.stdout.flush()
    sys.exit(1)
print(f"OK {rank}", flush=True)
