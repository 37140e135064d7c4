"""Learning-rate schedules against closed forms and real MLX, alone, inside optimizers
and inside a compiled training step."""

import math

import numpy as np
import pytest

import oxmx.core as mx
import oxmx.optimizers as optim

STEPS = [0, 1, 2, 5, 9, 10, 11, 25]


def closed_forms():
    """(name, factory(lib), reference(step)) for every schedule."""

    def cosine(init, decay_steps, end):
        return lambda s: end + (init - end) * 0.5 * (1 + math.cos(math.pi * min(s, decay_steps) / decay_steps))

    def linear(init, end, steps):
        return lambda s: init + (end - init) * min(s, steps) / steps

    def joined(s):
        if s < 4:
            return linear(0.0, 0.1, 4)(s)
        if s < 12:
            return cosine(0.1, 6, 0.01)(s - 4)
        return 0.05 * 0.5 ** (s - 12)

    return [
        ("exponential_decay", lambda o: o.exponential_decay(0.1, 0.9), lambda s: 0.1 * 0.9**s),
        ("step_decay", lambda o: o.step_decay(0.1, 0.5, 3), lambda s: 0.1 * 0.5 ** (s // 3)),
        ("cosine_decay", lambda o: o.cosine_decay(0.1, 10), cosine(0.1, 10, 0.0)),
        ("cosine_decay_end", lambda o: o.cosine_decay(0.1, 10, 0.02), cosine(0.1, 10, 0.02)),
        ("linear_schedule", lambda o: o.linear_schedule(0.0, 0.1, 10), linear(0.0, 0.1, 10)),
        ("linear_schedule_down", lambda o: o.linear_schedule(1.0, 0.5, 7), linear(1.0, 0.5, 7)),
        (
            "join_schedules",
            lambda o: o.join_schedules(
                [o.linear_schedule(0.0, 0.1, 4), o.cosine_decay(0.1, 6, 0.01), o.exponential_decay(0.05, 0.5)], [4, 12]
            ),
            joined,
        ),
    ]


CASES = closed_forms()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_schedule_matches_closed_form(name, make, reference):
    schedule = make(optim)
    expected = np.array([reference(s) for s in STEPS])
    # python ints, uint64 scalars (what the optimizer passes), and a vector of steps
    scalar = np.array([float(np.array(schedule(s))) for s in STEPS])
    unsigned = np.array([schedule(mx.array(s, mx.uint64)).item() for s in STEPS])
    vector = schedule(mx.array(STEPS, mx.uint64))
    assert vector.dtype == mx.float32 and vector.shape == (len(STEPS),)
    for got in (scalar, unsigned, np.array(vector)):
        np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-9)


@pytest.mark.parametrize("name,make,reference", CASES, ids=IDS)
def test_schedule_matches_mlx(name, make, reference):
    mlx_mx = pytest.importorskip("mlx.core")
    mlx_optim = pytest.importorskip("mlx.optimizers")
    ours, theirs = make(optim), make(mlx_optim)
    for step in STEPS + [3.5]:
        a, b = ours(step), theirs(step)
        assert isinstance(a, mx.array) == isinstance(b, mlx_mx.array), step
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6)
    a = ours(mx.array(STEPS, mx.uint64))
    b = theirs(mlx_mx.array(STEPS, mlx_mx.uint64))
    assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]
    np.testing.assert_allclose(np.array(a), np.array(b), rtol=1e-6)


def test_schedule_dtypes_follow_mlx():
    # integer arithmetic stays integer (exponential/step decay are plain expressions)
    assert optim.exponential_decay(1, 2)(mx.array(3)).dtype == mx.int32
    assert optim.exponential_decay(1, 2)(mx.array(3)).item() == 8
    assert optim.step_decay(1, 2, 2)(mx.array(3)).item() == 2
    # python steps give python numbers for those two, arrays for the others
    assert isinstance(optim.exponential_decay(0.1, 0.9)(3), float)
    assert isinstance(optim.linear_schedule(1, 2, 10)(3), mx.array)
    np.testing.assert_allclose(optim.linear_schedule(1, 2, 10)(3).item(), 1.3, rtol=1e-6)
    assert optim.cosine_decay(0.1, 10)(mx.array(4, mx.float16)).dtype == mx.float16


def test_schedule_errors():
    with pytest.raises(ValueError, match=r"\[step_decay\] step_size must be greater than 0, but got 0"):
        optim.step_decay(0.1, 0.9, 0)
    with pytest.raises(ValueError, match=r"\[cosine_decay\] decay_steps must be greater than 0, but got -3"):
        optim.cosine_decay(0.1, -3)
    with pytest.raises(ValueError, match=r"\[linear_schedule\] steps must be greater than 0, but got 0"):
        optim.linear_schedule(0.0, 0.1, 0)
    with pytest.raises(ValueError, match=r"\[join_schedules\] Must provide at least 1 schedule"):
        optim.join_schedules([], [])
    with pytest.raises(ValueError, match=r"\[join_schedules\] Received 1 boundaries but expected 0"):
        optim.join_schedules([optim.exponential_decay(0.1, 0.9)], [3])


@pytest.mark.parametrize(
    "make,updates,expected",
    [
        # the examples of MLX's docstrings
        (lambda: optim.SGD(optim.exponential_decay(1e-1, 0.9)), 5, 0.06561),
        (lambda: optim.SGD(optim.step_decay(1e-1, 0.9, 10)), 21, 0.081),
        (lambda: optim.SGD(optim.cosine_decay(1e-1, 1000)), 5, 0.0999961),
        (lambda: optim.Adam(optim.linear_schedule(0, 1e-1, 100)), 101, 0.1),
        (
            lambda: optim.Adam(
                optim.join_schedules([optim.linear_schedule(0, 1e-1, steps=10), optim.cosine_decay(1e-1, 200)], [10])
            ),
            12,
            0.0999938,
        ),
    ],
)
def test_optimizer_follows_schedule(make, updates, expected):
    opt = make()
    for _ in range(updates):
        opt.update({}, {})
    assert opt.step.item() == updates
    np.testing.assert_allclose(opt.learning_rate.item(), expected, rtol=1e-5)


def test_compiled_training_step_with_schedule_matches_eager():
    """A compiled step capturing the parameters and the optimizer state (inputs= /
    outputs=) gives the eager losses, rates, parameters and state, step by step."""
    rng = np.random.default_rng(0)
    x = mx.array(rng.standard_normal((16, 3)).astype(np.float32))
    y = mx.array(rng.standard_normal((16,)).astype(np.float32))
    w0 = rng.standard_normal((3,)).astype(np.float32)

    def loss_fn(params, x, y):
        return mx.mean(mx.square(x @ params["w"] + params["b"] - y))

    def train(compiled, init_first):
        params = {"w": mx.array(w0), "b": mx.array(0.0)}
        schedule = optim.join_schedules([optim.linear_schedule(0.0, 0.1, 3), optim.cosine_decay(0.1, 10, 0.01)], [3])
        opt = optim.AdamW(schedule, weight_decay=0.1, bias_correction=True)
        if init_first:
            opt.init(params)
        state = [params, opt.state]

        def step(x, y):
            loss, grads = mx.value_and_grad(loss_fn)(params, x, y)
            params.update(opt.apply_gradients(grads, params))
            return loss

        if compiled:
            step = mx.compile(step, inputs=state, outputs=state)
        trace = []
        for _ in range(8):
            loss = step(x, y)
            trace.append((loss.item(), opt.learning_rate.item()))
        return trace, np.array(params["w"]), np.array(opt.state["w"]["v"]), opt.step.item()

    eager = train(compiled=False, init_first=True)
    for init_first in (True, False):
        compiled = train(compiled=True, init_first=init_first)
        np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-6)
        np.testing.assert_allclose(compiled[1], eager[1], rtol=1e-6)
        np.testing.assert_allclose(compiled[2], eager[2], rtol=1e-6)
        assert compiled[3] == eager[3] == 8
    # the rates followed the schedule: warm-up then cosine decay
    rates = [r for _, r in eager[0]]
    np.testing.assert_allclose(rates[:4], [0.0, 0.1 / 3, 0.2 / 3, 0.1], rtol=1e-6)
    assert rates[4] < rates[3] and rates[-1] < rates[4]
