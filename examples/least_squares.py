"""The lazy array engine at work: `python examples/least_squares.py`.

Shows a lazy graph, broadcasting, reductions, matmul and indexing, then fits a small
least-squares model by gradient descent with `mx.value_and_grad` (checked once against
the gradient written out by hand), compiled with `mx.compile`. Every result is checked
against NumPy at the end of its section.
"""

import time

import numpy as np

import oxmx.core as mx


def section(title):
    print(f"\n== {title} " + "=" * max(0, 60 - len(title)))


def check(name, got, want, tol=1e-5):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    ok = got.shape == want.shape and err <= tol * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    print(f"   check {name:<34} {'ok' if ok else 'MISMATCH'} (max abs err {err:.2e})")
    if not ok:
        raise SystemExit(f"least_squares: {name} disagrees with NumPy")


def lazy_graph():
    section("1. lazy graph")
    x = mx.arange(12, dtype=mx.float32).reshape(3, 4)
    y = (x * 2 + 1) / 3  # recorded, not computed
    print(f"   y is described before it exists: shape={y.shape}, dtype={y.dtype}")
    z = y
    t0 = time.perf_counter()
    for _ in range(10_000):  # a chain of 20,000 more lazy ops
        z = z * 0.5 + 0.5
    t1 = time.perf_counter()
    mx.eval(z)  # one evaluation runs the whole chain
    t2 = time.perf_counter()
    print(f"   built 20,000 ops in {1e3 * (t1 - t0):.1f} ms, evaluated them in {1e3 * (t2 - t1):.1f} ms")
    print("   y =", str(y).replace("\n", "\n       "))
    xn = np.arange(12, dtype=np.float32).reshape(3, 4)
    check("y = (2x + 1) / 3", np.array(y), (xn * 2 + 1) / 3)
    check("z (fixed point 1.0)", np.array(z), np.ones((3, 4)))


def broadcasting():
    section("2. broadcasting")
    col = mx.arange(3, dtype=mx.float32).reshape(3, 1)  # (3, 1)
    row = mx.linspace(0, 1, 4)  # (4,)
    grid = col * 10 + row  # (3, 4)
    print(f"   (3, 1) * 10 + (4,) -> {grid.shape}")
    print("  ", str(grid).replace("\n", "\n   "))
    check("grid", np.array(grid), np.arange(3, dtype=np.float32)[:, None] * 10 + np.linspace(0, 1, 4))
    half = mx.ones((2, 3), dtype=mx.float16) * 2.5  # a Python float stays weak: float16 out
    print(f"   float16 array * 2.5 keeps dtype {half.dtype}")


def reductions():
    section("3. reductions")
    xn = np.sin(np.arange(24, dtype=np.float32)).reshape(2, 3, 4)
    x = mx.array(xn)
    print(f"   sum={x.sum().item():.5f}  mean={mx.mean(x).item():.5f}  max={mx.max(x).item():.5f}")
    check("sum over axis 1", mx.sum(x, axis=1), xn.sum(axis=1))
    check("mean over (0, 2), keepdims", mx.mean(x, axis=(0, 2), keepdims=True), xn.mean(axis=(0, 2), keepdims=True))
    check("max over last axis", mx.max(x, axis=-1), xn.max(axis=-1))
    check("argmax over last axis", mx.argmax(x, axis=-1), xn.argmax(axis=-1), tol=0)
    check("var (ddof=1)", mx.var(x, axis=2, ddof=1), xn.var(axis=2, ddof=1))
    check("logsumexp", mx.logsumexp(x, axis=-1), np.log(np.exp(xn).sum(axis=-1)))
    check("softmax rows sum to 1", mx.sum(mx.softmax(x, axis=-1), axis=-1), np.ones((2, 3)))


def matmul():
    section("4. matmul")
    an = np.cos(np.arange(6 * 5, dtype=np.float32)).reshape(6, 5)
    bn = np.sin(np.arange(5 * 4, dtype=np.float32)).reshape(5, 4)
    a, b = mx.array(an), mx.array(bn)
    c = a @ b
    print(f"   (6, 5) @ (5, 4) -> {c.shape}")
    check("a @ b", c, an @ bn)
    batch = mx.broadcast_to(a, (3, 6, 5))  # a view: no copy
    check("batched (3, 6, 5) @ (5, 4)", mx.matmul(batch, b), np.broadcast_to(an, (3, 6, 5)) @ bn)
    check("a.T @ a", a.T @ a, an.T @ an)


def indexing():
    section("5. indexing")
    xn = np.arange(20, dtype=np.int32).reshape(4, 5)
    x = mx.array(xn)
    check("x[1, ::2]", x[1, ::2], xn[1, ::2], tol=0)
    check("x[::-1, -1]", x[::-1, -1], xn[::-1, -1], tol=0)
    check("x[:, None, 2]", x[:, None, 2], xn[:, None, 2], tol=0)
    check("x[..., 1:3]", x[..., 1:3], xn[..., 1:3], tol=0)
    idx = mx.array([3, 0, 2])
    check("x[idx] (integer array)", x[idx], xn[np.array([3, 0, 2])], tol=0)
    check("take(x, idx, axis=1)", mx.take(x, idx, axis=1), np.take(xn, [3, 0, 2], axis=1), tol=0)
    check("where(x % 2 == 0, x, -x)", mx.where(x % 2 == 0, x, -x), np.where(xn % 2 == 0, xn, -xn), tol=0)


def least_squares():
    section("6. least squares by gradient descent (mx.value_and_grad, mx.compile)")
    n = 256
    t = mx.linspace(-1, 1, n)
    X = mx.stack([mx.ones_like(t), t, t * t, mx.sin(3 * t)], axis=1)  # (n, 4) features
    w_true = mx.array([0.5, -2.0, 1.5, 0.8])
    noise = 0.05 * mx.sin(37 * t * t + 11 * t)  # deterministic "noise"
    y = X @ w_true + noise

    # Step size 1/L, with L the largest eigenvalue of the loss Hessian 2 XᵀX / n,
    # found by power iteration (matmuls only).
    H = (X.T @ X) * (2.0 / n)
    v = mx.ones((4,))
    for _ in range(50):
        v = H @ v
        v = v / mx.sqrt(mx.sum(v * v))
    L = mx.sum(v * (H @ v)).item()
    lr = 1.0 / L
    print(f"   n={n}, 4 features, Lipschitz constant L={L:.3f}, step 1/L={lr:.3f}")

    def mse(w):
        r = X @ w - y  # residual
        return mx.mean(r * r)

    w = mx.zeros((4,))
    w0 = mx.array([0.1, 0.2, -0.3, 0.4])
    by_hand = (X.T @ (X @ w0 - y)) * (2.0 / n)  # d/dw mean((Xw - y)²)
    check("mx.grad vs the hand-written gradient", mx.grad(mse)(w0), np.array(by_hand))

    step_fn = mx.compile(mx.value_and_grad(mse))  # traced once, replayed every step
    for step in range(301):
        loss, grad = step_fn(w)
        w = w - lr * grad
        mx.eval(w, loss)  # keep the graph one step deep
        if step % 50 == 0:
            print(f"   step {step:3d}  loss {loss.item():.6f}  |grad| {mx.sqrt(mx.sum(grad * grad)).item():.2e}")

    Xn, yn = np.array(X), np.array(y)
    w_np = np.linalg.lstsq(Xn.astype(np.float64), yn.astype(np.float64), rcond=None)[0]
    print("   oxmx  w =", np.round(np.array(w), 4))
    print("   NumPy w =", np.round(w_np, 4), "(np.linalg.lstsq)")
    check("fitted weights vs lstsq", w, w_np, tol=1e-3)


def main():
    print("oxmx least squares — default device:", mx.default_device())
    lazy_graph()
    broadcasting()
    reductions()
    matmul()
    indexing()
    least_squares()
    print("\nAll sections agree with NumPy; the fitted weights match np.linalg.lstsq (no files written).")


if __name__ == "__main__":
    main()
