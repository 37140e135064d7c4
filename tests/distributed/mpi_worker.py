"""One rank of the MPI and NCCL tests (tests/distributed/test_distributed.py starts it
with ``python -m oxmx.launch -n N`` or ``--backend nccl``). Every check compares with the
single-process result, computed here from every rank's inputs (each rank can build them
all: they depend only on the rank). Prints ``OK <rank> <checks> <backend>`` at the end;
any failure raises (non-zero exit). A group of one (NCCL on one GPU) skips what needs a
peer."""

import sys
import traceback

import numpy as np

import oxmx.core as mx

dist = mx.distributed
world = dist.init(strict=True)
rank, size = world.rank(), world.size()
checks = 0

DTYPES = [
    "float32", "float64", "float16", "bfloat16", "int32", "int64", "uint8", "int8", "int16", "uint16", "uint32",
    "bool", "complex64",
]
SHAPES = [(), (0,), (5,), (3, 4), (2, 3, 5)]


def np_dtype(name):
    import ml_dtypes

    return ml_dtypes.bfloat16 if name == "bfloat16" else np.dtype(name)


def data(r, shape, name, salt=0):
    g = np.random.default_rng(1000 * r + 17 * salt + len(shape))
    if name == "bool":
        return g.random(shape) > 0.5
    if name.startswith("complex"):
        return (g.standard_normal(shape) + 1j * g.standard_normal(shape)).astype(name)
    if name.startswith(("int", "uint")):
        return g.integers(0, 50, shape).astype(name)
    return g.standard_normal(shape).astype(np.float32).astype(np_dtype(name))


def same(got, want, name, what):
    global checks
    got = np.array(got.astype(mx.float32) if name == "bfloat16" else got)
    want = np.asarray(want)
    if name == "bfloat16":
        want = want.astype(np.float32)
    assert got.shape == want.shape, (what, name, got.shape, want.shape)
    if name in ("float16", "bfloat16"):
        # half types are summed in float32 and rounded once
        tol = 1e-2 if name == "bfloat16" else 2e-3
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol, err_msg=what)
    elif name.startswith(("float", "complex")):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)
    checks += 1


def reference_sum(xs, name):
    if name == "bool":
        return np.logical_or.reduce(xs)
    if name in ("float16", "bfloat16"):
        return np.sum([x.astype(np.float32) for x in xs], axis=0).astype(np_dtype(name))
    return np.sum(xs, axis=0).astype(xs[0].dtype)


def collectives():
    for name in DTYPES:
        dt = getattr(mx, name)
        for shape in SHAPES:
            xs = [data(r, shape, name) for r in range(size)]
            x = mx.array(xs[rank]).astype(dt) if name == "bfloat16" else mx.array(xs[rank])
            same(dist.all_sum(x), reference_sum(xs, name), name, f"all_sum {shape}")
            if name != "complex64":
                if name in ("float16", "bfloat16"):
                    mx_ = np.max([a.astype(np.float32) for a in xs], axis=0)
                    mn_ = np.min([a.astype(np.float32) for a in xs], axis=0)
                else:
                    mx_, mn_ = np.max(xs, axis=0), np.min(xs, axis=0)
                same(dist.all_max(x), mx_, name, f"all_max {shape}")
                same(dist.all_min(x), mn_, name, f"all_min {shape}")
            if shape == ():  # 0-d arrays gather into a vector (a group of one: itself)
                want = np.stack(xs) if size > 1 else xs[0]
            else:
                want = np.concatenate(xs, axis=0)
            same(dist.all_gather(x), want, name, f"all_gather {shape}")
            if shape and shape[0] % size == 0 or shape == (0,):
                full = reference_sum(xs, name)
                n = shape[0] // size
                same(dist.sum_scatter(x), full[rank * n:(rank + 1) * n], name, f"sum_scatter {shape}")
    # a multiple of the group size along the first axis
    xs = [data(r, (size * 3, 4), "float32") for r in range(size)]
    same(dist.sum_scatter(mx.array(xs[rank])), np.sum(xs, 0)[rank * 3:(rank + 1) * 3], "float32", "sum_scatter")
    # non-contiguous views and a large buffer
    xs = [data(r, (64, 48), "float32") for r in range(size)]
    v = mx.array(xs[rank]).T[::2]
    same(dist.all_sum(v), np.sum([a.T[::2] for a in xs], 0), "float32", "all_sum of a strided view")
    big = [np.full(1 << 20, r + 1, np.float32) for r in range(size)]
    same(dist.all_sum(mx.array(big[rank])), np.sum(big, 0), "float32", "all_sum 1M")
    # small integer sums wrap as NumPy's do
    xs = [np.full(6, 100 + r, np.int8) for r in range(size)]
    same(dist.all_sum(mx.array(xs[rank])), np.sum(xs, 0).astype(np.int8), "int8", "int8 sum wraps")
    xs = [np.full(6, 30000 + r, np.int16) for r in range(size)]
    same(dist.all_sum(mx.array(xs[rank])), np.sum(xs, 0).astype(np.int16), "int16", "int16 sum wraps")


def host_arrays():
    # arrays in host memory over any engine (NCCL moves them through the GPU)
    for name in ("float32", "int16", "bool", "complex64"):
        xs = [data(r, (3, 4), name) for r in range(size)]
        x = mx.array(xs[rank])
        same(dist.all_sum(x, stream=mx.cpu), reference_sum(xs, name), name, "all_sum on the cpu")
        same(dist.all_gather(x, stream=mx.cpu), np.concatenate(xs), name, "all_gather on the cpu")


def point_to_point():
    # a ring, in an order where every send meets a posted receive (NCCL's sends wait for
    # theirs; even ranks send first, odd ranks receive first)
    right, left = (rank + 1) % size, (rank - 1) % size
    x = mx.array(data(rank, (4, 3), "float32"))

    def send_right():
        same(dist.send(x, right), np.array(x), "float32", "send returns its input")

    def recv_left():
        got = dist.recv_like(x, left)
        same(got, data(left, (4, 3), "float32"), "float32", "recv_like from the left")

    for step in (send_right, recv_left) if rank % 2 == 0 else (recv_left, send_right):
        step()
    # a receiver expecting the wrong size gets a clear error, and the channel stays in step
    if rank == 0:
        mx.eval(dist.send(mx.arange(10, dtype=mx.int32), 1))
        mx.eval(dist.send(mx.arange(3, dtype=mx.int32), 1))
    elif rank == 1:
        try:
            mx.eval(dist.recv((4,), mx.int32, 0))
            raise AssertionError("a recv of the wrong size was accepted")
        except ValueError as e:
            assert "sent 40 bytes" in str(e), e
        same(dist.recv((3,), mx.int32, 0), np.arange(3), "int32", "recv after a refused one")
    for bad in (size, -1):
        try:
            dist.send(x, bad)
            raise AssertionError("send to a rank outside the group was accepted")
        except ValueError:
            pass


def disagreement():
    # ranks passing different shapes fail alike, without touching memory they do not own
    x = mx.ones((3 + rank,))
    try:
        mx.eval(dist.all_sum(x))
        raise AssertionError("all_sum of different sizes was accepted")
    except ValueError as e:
        assert "different sizes" in str(e), e
    # and the group still works afterwards
    same(dist.all_sum(mx.array([1.0])), np.array([float(size)]), "float32", "all_sum after a refused one")


def groups():
    sub = world.split(rank % 2)
    members = [r for r in range(size) if r % 2 == rank % 2]
    assert sub.size() == len(members) and sub.rank() == members.index(rank), (sub.size(), sub.rank())
    same(dist.all_sum(mx.array([float(rank)]), group=sub), np.array([float(sum(members))]), "float32", "split all_sum")
    rev = world.split(0, key=size - rank)
    assert rev.rank() == size - 1 - rank
    try:
        world.split(-1)
        raise AssertionError("a negative color was accepted")
    except ValueError:
        pass


def transforms():
    x = mx.array(data(rank, (3, 2), "float32"))
    g = mx.grad(lambda x: dist.all_sum(x * x).sum())(x)
    same(g, 2 * np.array(x), "float32", "grad all_sum")
    g = mx.grad(lambda x: (dist.all_gather(x) * mx.arange(size * 3).reshape(-1, 1)).sum())(x)
    rows = np.arange(size * 3).reshape(-1, 1)[rank * 3:(rank + 1) * 3] * np.ones((3, 2))
    same(g, rows, "float32", "grad all_gather")
    xb = mx.array(np.stack([data(rank, (4,), "float32", salt=s) for s in range(5)]))
    want = np.stack([np.sum([data(r, (4,), "float32", salt=s) for r in range(size)], 0) for s in range(5)])
    same(mx.vmap(dist.all_sum)(xb), want, "float32", "vmap all_sum")
    want = np.stack([np.concatenate([data(r, (4,), "float32", salt=s) for r in range(size)]) for s in range(5)])
    same(mx.vmap(dist.all_gather)(xb), want, "float32", "vmap all_gather")
    f = mx.compile(lambda a, b: dist.all_sum(a * 2) + dist.all_sum(b * 2))
    same(f(x, x), 4 * np.sum([data(r, (3, 2), "float32") for r in range(size)], 0), "float32", "compile")
    jv = mx.jvp(lambda a: dist.all_sum(a), [x], [mx.ones_like(x)])[1][0]
    same(jv, np.full((3, 2), float(size)), "float32", "jvp all_sum")


try:
    collectives()
    host_arrays()
    if size > 1:
        point_to_point()
        disagreement()
    groups()
    transforms()
except Exception:
    traceback.print_exc()
    sys.stdout.flush()
    sys.exit(1)
print(f"OK {rank} {checks} {world.backend}", flush=True)
