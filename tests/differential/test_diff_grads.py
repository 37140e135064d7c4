"""Gradients of the same generated calls: ``grad`` of a weighted sum (the vjp with a fixed
cotangent), ``jvp`` with a fixed tangent and ``vmap`` over a new leading axis, in MLX and
in oxmx, for every spec marked differentiable. Only calls whose float array arguments are
float32/float64 and whose outputs are floating take part."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import examples, phases
from diffkit import FRAMEWORKS, A, DifferenceError, build, compare, has_out_of_bounds, normalise
from gen import Draw
from known import classify
from specs import SPECS

class GradDraw(Draw):
    """Array arguments drawn as float32/float64 whenever the spec allows them."""

    def dtype(self, dtypes=None):
        dtypes = list(dtypes or ["float32"])
        fl = [d for d in dtypes if d in ("float32", "float64")]
        return self.one(fl or dtypes, label="dtype")


MLX_SEGFAULTS = {"cummax", "cummin"}


def _mlx_conv_sigfpe(name, call):
    """MLX's convolution vjp dies of SIGFPE for an empty batch (docs/MLX_DIFFERENCES.md);
    such calls never go to MLX (tests/test_conv.py checks oxmx's against finite
    differences)."""
    if not name.startswith("conv"):
        return False
    x = call.args[0] if call.args else None
    return isinstance(x, A) and x.data.ndim > 0 and x.shape[0] == 0
GRAD_SPECS = sorted(n for n, s in SPECS.items() if s.grad)


def _pattern(m, shape, dtype):
    n = int(np.prod(shape, dtype=np.int64))
    return (m.arange(n) % 7 - 3).astype(dtype).reshape(shape) / 4


def _is_leaf(a):
    return isinstance(a, A) and a.dtype in ("float32", "float64") and a.data.size


def _leaves(call):
    """Paths of float32/float64 array arguments: ``i`` for a positional argument,
    ``(i, j)`` for element ``j`` of a list argument (concatenate, stack)."""
    out = []
    for i, a in enumerate(call.args):
        if _is_leaf(a):
            out.append(i)
        elif isinstance(a, list):
            out += [(i, j) for j, b in enumerate(a) if _is_leaf(b)]
    return out


def _get(args, p):
    return args[p[0]][p[1]] if isinstance(p, tuple) else args[p]


def _set(args, p, v):
    if isinstance(p, tuple):
        args[p[0]] = list(args[p[0]])
        args[p[0]][p[1]] = v
    else:
        args[p] = v


def _run(call, fw, pos, mode):
    m = FRAMEWORKS[fw]
    try:
        fn = call.resolve(fw)
        args = list(build(call.args, fw))
        kwargs = build(call.kwargs, fw)
        primals = [_get(args, i) for i in pos]

        def f(*ps):
            a = list(args)
            for i, p in zip(pos, ps):
                _set(a, i, p)
            out = fn(*a, **kwargs)
            return out if isinstance(out, m.array) else out[0]

        out0 = f(*primals)
        if not m.issubdtype(out0.dtype, m.floating):
            return "non-float output"
        if mode == "vjp":
            w = _pattern(m, out0.shape, out0.dtype)
            g = m.grad(lambda *ps: m.sum(f(*ps) * w), argnums=tuple(range(len(primals))))(*primals)
            return normalise(list(g), fw)
        if mode == "jvp":
            tangents = [_pattern(m, p.shape, p.dtype) for p in primals]
            _, t = m.jvp(lambda *ps: f(*ps), primals, tangents)
            return normalise(list(t), fw)
        stacked = [m.stack([p, p * 0.5]) for p in primals]
        return normalise(m.vmap(f)(*stacked), fw)
    except Exception as e:  # noqa: BLE001
        from diffkit import Raised

        return Raised(e)


@pytest.mark.parametrize("mode", ["vjp", "jvp", "vmap"])
@pytest.mark.parametrize("name", GRAD_SPECS)
def test_gradients_match_mlx(name, mode):
    spec = SPECS[name]

    @settings(max_examples=max(3, examples() // 3), database=None, phases=phases(),
              suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
    @given(st.data())
    def run(data):
        call = spec.gen(GradDraw(data))
        pos = _leaves(call)
        assume(pos)
        assume(not has_out_of_bounds(call))
        assume(not _mlx_conv_sigfpe(name, call))
        if name.lstrip(".") in MLX_SEGFAULTS:
            # MLX's vjp of cummax/cummin segfaults on NaN inputs (docs/MLX_DIFFERENCES.md)
            assume(not any(np.isnan(_get(call.args, i).data).any() for i in pos))
        ref = _run(call, "mlx", pos, mode)
        assume(ref != "non-float output")
        got = _run(call, "oxmx", pos, mode)
        try:
            compare(call, ref, got, exact=False, rtol=1e-3, atol=1e-4, where=mode)
        except DifferenceError as e:
            if classify(name, str(e)) is None and classify(f"{mode}:{name}", str(e)) is None:
                raise

    run()
