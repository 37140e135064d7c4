#!/usr/bin/env python3
"""Transcendental functions on the CPU (issue #18): oxmx side by side with NumPy in one process.

Rows (16M = 2**24 elements; ``--quick``: 1M):

* float32 and float64, each of: exp, expm1, log, log2, log10, log1p, sin, cos, tan, tanh,
  sinh, cosh, arcsin, arccos, arctan, arcsinh, arccosh, arctanh, sigmoid, erf, arctan2,
  power (float exponent array), logaddexp. NumPy's sigmoid is the composed expression
  ``1 / (1 + np.exp(-x))``; NumPy has no erf, so its cell is "—" unless SciPy is importable
  (``scipy.special.erf``).
* float32 only: the eager chain ``exp(sin(x)) * 2 + 1`` (four oxmx ops, one ``mx.eval``) and
  the GELU tanh approximation ``0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3)))`` written
  out with oxmx ops, plus ``oxmx.nn.gelu_approx``; NumPy runs the same expression.

Real MLX (``mlx.core``, its CPU build) runs every row too when it is importable, as a third
column: for information, and for erf, which NumPy lacks, as the peer the bar is taken
against (marked "vs MLX").

Inputs are uniform in each function's natural domain (``DOMAINS``), seeded, and the same
arrays go to both frameworks (moved into oxmx and evaluated before timing).

Bars (issue #18): ratio = NumPy time / oxmx time (> 1: oxmx faster); >= 1.5x for float32,
>= 1.0x for float64, the chain >= 1.0x, GELU (both rows) >= 1.5x.

Threads: oxmx runs with its default pool (every core; ``--threads N`` sets
OXMX_NUM_THREADS). NumPy's ufuncs never use threads; OpenBLAS (unused here) is pinned to 1
thread all the same, and the script measures each framework's process CPU time / wall time
over its timed runs and prints it: about 1.0 for NumPy proves it ran on one core.

Method (as run_ops.py): each row first runs oxmx once and checks a strided sample of its
result against a float64 NumPy reference (``math.erf`` for erf), which also warms it up,
then warms NumPy up; then the two are timed round-robin (alternating which goes first,
garbage collector paused) until both have ``min_repeats`` runs and the row's time budget
is spent; cells are medians. ``mx.eval`` is inside oxmx's timed region. A row whose oxmx
result disagrees or raises shows "fails" and its error is listed under the table.

Usage:
    python benchmarks/run_math.py                    # full run (~100 s on 2 cores), text table
    python benchmarks/run_math.py --markdown         # the same as a Markdown table
    python benchmarks/run_math.py --quick            # 1M elements, few repeats (smoke test)
    python benchmarks/run_math.py --only exp,log,chain,gelu,gelu_approx
    python benchmarks/run_math.py --threads 1        # oxmx on one thread (per-core comparison)

Prints only; BENCHMARKS.md is not touched.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import time
import zlib

# NumPy's ufuncs are single-threaded; pin its BLAS too, before NumPy is imported.
for _k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_k] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_cpu  # noqa: E402  (machine description, error formatting)

FUNCS = ["exp", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "tanh", "sinh",
         "cosh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh", "arctanh", "sigmoid", "erf",
         "arctan2", "power", "logaddexp"]

# (low, high) of the uniform inputs, one pair per argument.
_OPEN1 = (np.nextafter(-1.0, 0.0), np.nextafter(1.0, 0.0))  # arctanh(+-1) is infinite
DOMAINS = {
    "exp": [(-10, 10)], "expm1": [(-10, 10)], "sinh": [(-10, 10)], "cosh": [(-10, 10)],
    "log": [(1e-6, 100)], "log2": [(1e-6, 100)], "log10": [(1e-6, 100)], "log1p": [(-0.99, 100)],
    "sin": [(-100, 100)], "cos": [(-100, 100)], "tan": [(-100, 100)],
    "tanh": [(-5, 5)], "erf": [(-5, 5)], "sigmoid": [(-5, 5)],
    "arcsin": [(-1, 1)], "arccos": [(-1, 1)], "arctanh": [_OPEN1],
    "arctan": [(-100, 100)], "arcsinh": [(-100, 100)], "arccosh": [(1, 100)],
    "arctan2": [(-100, 100), (-100, 100)], "power": [(1e-3, 10), (-4, 4)],
    "logaddexp": [(-50, 50), (-50, 50)],
    "chain": [(-10, 10)], "gelu": [(-5, 5)], "gelu_approx": [(-5, 5)],
}

BARS = {"float32": 1.5, "float64": 1.0, "chain": 1.0, "gelu": 1.5, "gelu_approx": 1.5}

SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_chain(x):
    return np.exp(np.sin(x)) * 2 + 1


def np_gelu(x):
    return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))


def numpy_fn(key):
    """NumPy's version of a row, or None when NumPy lacks it."""
    if key == "sigmoid":
        return np_sigmoid
    if key == "chain":
        return np_chain
    if key in ("gelu", "gelu_approx"):
        return np_gelu
    if key == "erf":
        try:
            from scipy.special import erf
        except ImportError:
            return None
        return erf
    return getattr(np, key)


def oxmx_fn(mx, key):
    if key == "chain":
        return lambda x: mx.exp(mx.sin(x)) * 2 + 1
    if key == "gelu":
        return lambda x: 0.5 * x * (1 + mx.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x**3)))
    if key == "gelu_approx":
        import oxmx.nn as nn

        return nn.gelu_approx
    return getattr(mx, key)


def mlx_module():
    """Real MLX's core module, or None when it is not installed."""
    try:
        import mlx.core as mlx
    except ImportError:
        return None
    return mlx


def mlx_fn(mlx, key):
    """MLX's version of a row (the same expressions as oxmx's)."""
    if key == "gelu_approx":
        import mlx.nn

        return mlx.nn.gelu_approx
    return oxmx_fn(mlx, key)


def reference(key, args):
    """float64 result of the row's formula on (a sample of) the same inputs."""
    a = [x.astype(np.float64) for x in args]
    if key == "erf":
        return np.array([math.erf(v) for v in a[0]])
    return numpy_fn(key)(*a)


# Sanity-check tolerances: |oxmx - ref| <= atol + rtol * |ref|, per dtype.
TOL = {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-14)}
LOOSE = {
    # tan near its poles amplifies one ulp of argument reduction.
    "tan": {"float32": (1e-4, 1e-6), "float64": (1e-9, 1e-14)},
    # 1 + tanh(.) cancels for x << 0 in float32 (NumPy's float32 expression as much as oxmx's).
    "gelu": {"float32": (1e-5, 1e-5)}, "gelu_approx": {"float32": (1e-5, 1e-5)},
}


def check(key, dtype, got, ref):
    rtol, atol = LOOSE.get(key, {}).get(dtype, TOL[dtype])
    got = got.astype(np.float64)
    both_inf = np.isinf(ref) & (got == ref)
    err = np.where(both_inf, 0.0, np.abs(got - ref))
    bad = ~(err <= atol + rtol * np.abs(ref))  # NaN counts as bad
    if bad.any():
        i = int(np.argmax(np.where(bad, err, -1.0)))
        raise AssertionError(f"{int(bad.sum())} of {bad.size} sampled values off; worst: got {got[i]!r}, "
                             f"want {ref[i]!r} (rtol {rtol:g}, atol {atol:g})")


def timed_rounds(runners, min_repeats, max_repeats, budget_s, settle_s):
    """Round-robin timing (one run of each runner per round, the first one alternating);
    returns per-runner lists of wall seconds and total process CPU seconds."""
    walls = [[] for _ in runners]
    cpus = [0.0 for _ in runners]
    start = time.perf_counter()
    for i in range(max_repeats):
        gc.collect()
        gc.disable()
        try:
            for j in range(len(runners)):
                k = (i + j) % len(runners)
                time.sleep(settle_s)  # let the other framework's worker threads go idle
                c0, t0 = time.process_time(), time.perf_counter()
                runners[k]()
                walls[k].append(time.perf_counter() - t0)
                cpus[k] += time.process_time() - c0
        finally:
            gc.enable()
        if i + 1 >= min_repeats and time.perf_counter() - start > budget_s:
            break
    return walls, cpus


def rows_wanted(only, has_gelu_approx):
    rows = [(f, dt) for dt in ("float32", "float64") for f in FUNCS]
    rows += [("chain", "float32"), ("gelu", "float32")]
    if has_gelu_approx:
        rows.append(("gelu_approx", "float32"))
    if only:
        keep = set(only.split(","))
        unknown = keep - {k for k, _ in rows}
        if unknown:
            sys.exit(f"--only: unknown keys {sorted(unknown)}; choose from {FUNCS + ['chain', 'gelu', 'gelu_approx']}")
        rows = [r for r in rows if r[0] in keep]
    return rows


def label(key):
    return {"chain": "exp(sin(x))*2+1 (eager)", "gelu": "GELU tanh approx (expression)",
            "gelu_approx": "nn.gelu_approx"}.get(key, key)


def run_row(mx, key, dtype, n, reps, sample_stride, mlx=None):
    rng = np.random.default_rng(zlib.crc32(f"{key}/{dtype}".encode()))  # same inputs every run
    args = [rng.uniform(lo, hi, n).astype(dtype) for lo, hi in DOMAINS[key]]
    xs = [mx.array(a, dtype=getattr(mx, dtype)) for a in args]
    mx.eval(*xs)
    f_ox, f_np = oxmx_fn(mx, key), numpy_fn(key)

    def run_ox():
        y = f_ox(*xs)
        mx.eval(y)
        return y

    out = {"key": key, "dtype": dtype}
    try:
        y = np.array(run_ox())  # the check run is oxmx's warm-up
        if str(y.dtype) != dtype:
            raise AssertionError(f"result dtype {y.dtype}, want {dtype}")
        check(key, dtype, y[::sample_stride], reference(key, [a[::sample_stride] for a in args]))
        del y
    except Exception as e:  # noqa: BLE001 - a failing row is reported, not fatal
        out["error"] = run_cpu._short_err(e)
    runners, names = [], []
    if "error" not in out:
        runners.append(run_ox)
        names.append("oxmx")
    if f_np is not None:
        f_np(*args)  # warm-up
        runners.append(lambda: f_np(*args))
        names.append("numpy")
    if mlx is not None:
        f_mlx = mlx_fn(mlx, key)
        xm = [mlx.array(a) for a in args]
        mlx.eval(*xm)

        def run_mlx():
            mlx.eval(f_mlx(*xm))

        run_mlx()  # warm-up
        runners.append(run_mlx)
        names.append("mlx")
    walls, cpus = timed_rounds(runners, **reps)
    for name, w, c in zip(names, walls, cpus):
        out[name] = statistics.median(w)
        out[name + "_cpu"] = c
        out[name + "_wall"] = sum(w)
        out["repeats"] = len(w)
    return out


def bar_for(key, dtype):
    return BARS.get(key, BARS[dtype])


def table(results, markdown):
    head = ["function", "dtype", "oxmx ms", "NumPy ms", "MLX ms", "ratio", "bar", "met"]
    rows = []
    for r in results:
        ox, npt, mlt = r.get("oxmx"), r.get("numpy"), r.get("mlx")
        bar = bar_for(r["key"], r["dtype"])
        ratio, peer = (npt / ox, "") if ox and npt else ((mlt / ox, " vs MLX") if ox and mlt else (None, ""))
        rows.append([
            label(r["key"]), r["dtype"],
            "fails" if "error" in r else f"{ox * 1e3:.1f}",
            f"{npt * 1e3:.1f}" if npt else "—",
            f"{mlt * 1e3:.1f}" if mlt else "—",
            f"{ratio:.2f}x{peer}" if ratio else "—",
            f"{bar:.1f}x",
            ("yes" if ratio >= bar else "no") if ratio else "—",
        ])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---|---|---:|---:|---:|---:|---:|---|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    else:
        w = [max(len(x) for x in col) for col in zip(head, *rows)]
        fmt = lambda row: "  ".join(c.ljust(w[i]) if i < 2 or i == 7 else c.rjust(w[i]) for i, c in enumerate(row))
        lines = [fmt(head), "  ".join("-" * x for x in w)] + [fmt(row) for row in rows]
    return "\n".join(lines)


def cpu_per_wall(results, name):
    cpu = sum(r.get(name + "_cpu", 0.0) for r in results)
    wall = sum(r.get(name + "_wall", 0.0) for r in results)
    return cpu / wall if wall else float("nan")


def print_rows(head, lines, markdown):
    """A header and rows of cells, as a Markdown table or space-separated."""
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        for line in [head] + lines:
            print("  ".join(line))


def build_stamp(oxmx):
    """Where oxmx's extension module was loaded from and when it was built: runs of
    different builds are told apart by it."""
    try:
        import datetime as dt

        path = oxmx.core._oxmx.__file__ if hasattr(oxmx.core, "_oxmx") else sys.modules["oxmx._oxmx"].__file__
        when = dt.datetime.fromtimestamp(os.path.getmtime(path), dt.timezone.utc)
        return f"{path}, built {when:%Y-%m-%d %H:%M:%S} UTC"
    except Exception:  # noqa: BLE001 - decoration only
        return "extension path unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1M elements, few repeats (smoke test)")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--only", default="", help="comma-separated keys: function names, chain, gelu, gelu_approx")
    ap.add_argument("--threads", type=int, help="oxmx's thread count (OXMX_NUM_THREADS); default: every core")
    args = ap.parse_args(argv)
    if args.threads:
        os.environ["OXMX_NUM_THREADS"] = str(args.threads)  # read when oxmx starts its pool
    import oxmx
    import oxmx.core as mx
    import oxmx.nn

    try:
        load = os.getloadavg()
    except OSError:
        load = (float("nan"),) * 3
    if load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load[0]:.2f} — other work is running; numbers will be noisy.", file=sys.stderr)

    n = 1 << 20 if args.quick else 1 << 24
    reps = (dict(min_repeats=2, max_repeats=4, budget_s=0.1, settle_s=0.005) if args.quick else
            dict(min_repeats=3, max_repeats=10, budget_s=1.0, settle_s=0.02))
    rows = rows_wanted(args.only, hasattr(oxmx.nn, "gelu_approx"))
    try:
        ox_threads = mx.device_info()["num_threads"]
    except Exception:  # noqa: BLE001 - decoration only
        ox_threads = os.environ.get("OXMX_NUM_THREADS", f"default ({os.cpu_count()} cores)")
    has_scipy = numpy_fn("erf") is not None
    mlx = mlx_module()

    t_start = time.perf_counter()
    results = []
    for key, dtype in rows:
        r = run_row(mx, key, dtype, n, reps, sample_stride=max(1, n // 65536), mlx=mlx)
        results.append(r)
        msg = "FAILED: " + r["error"] if "error" in r else f"oxmx {r['oxmx'] * 1e3:8.1f} ms"
        npm = f"numpy {r['numpy'] * 1e3:8.1f} ms" if "numpy" in r else "numpy —"
        npm += f"  mlx {r['mlx'] * 1e3:8.1f} ms" if "mlx" in r else ""
        # Cores busy during oxmx's runs: ~1 means the op ran on one thread.
        cores = f", oxmx busy cores {r['oxmx_cpu'] / r['oxmx_wall']:.2f}" if "oxmx" in r else ""
        print(f"  {label(key):<30} {dtype:<8} {msg}  {npm}  ({r.get('repeats', 0)} runs{cores})", file=sys.stderr)
        gc.collect()
    elapsed = time.perf_counter() - t_start

    machine = [
        f"### Transcendental functions (issue #18), CPU, {n / 2**20:g}M elements, medians",
        "",
        f"- CPU: {run_cpu.cpu_model()} — {os.cpu_count()} logical cores "
        f"({len(os.sched_getaffinity(0))} usable), L3 {run_cpu.l3_cache()}; flags: {run_cpu.cpu_flags()}",
        f"- threads: oxmx {ox_threads}; NumPy 1 (its ufuncs are single-threaded; OpenBLAS pinned to 1). "
        f"Measured process CPU time / wall time: oxmx {cpu_per_wall(results, 'oxmx'):.2f}, "
        f"NumPy {cpu_per_wall(results, 'numpy'):.2f}"
        + (f", MLX {cpu_per_wall(results, 'mlx'):.2f}" if mlx is not None else ""),
        f"- versions: oxmx {getattr(oxmx, '__version__', '?')} ({build_stamp(oxmx)}), numpy {np.__version__}"
        + (f", mlx {getattr(mlx, '__version__', '?')} (CPU)" if mlx is not None else ", MLX not installed")
        + ("" if has_scipy else "; SciPy not installed, so NumPy has no erf (—): its ratio is against MLX"),
        "- load average (1/5/15 min) before the run: " + "/".join(f"{x:.2f}" for x in load)
        + ", after: " + "/".join(f"{x:.2f}" for x in os.getloadavg()) + f"; run took {elapsed:.0f} s",
        "- ratio = NumPy ms / oxmx ms (> 1: oxmx faster); NumPy's sigmoid is 1/(1+np.exp(-x)), "
        "its chain and GELU rows the same expression with NumPy ops",
        "",
    ]
    text = "\n".join(machine) + table(results, args.markdown)
    fails = [f"- {label(r['key'])} {r['dtype']}: `{r['error']}`" for r in results if "error" in r]
    if fails:
        text += "\n\nFailures (oxmx raised or disagreed with the float64 reference; no time shown):\n\n" + "\n".join(fails)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
