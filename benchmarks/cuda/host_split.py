"""Where the host time of one GPU benchmark call goes: building the graph (Python and
the transforms) against evaluating it, and a cProfile of the slowest part.

    /opt/torch/.venv/bin/python benchmarks/cuda/host_split.py ["sdpa causal fwd+bwd"]
"""

import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main():
    import oxmx.core as mx
    import kernel_times

    name = sys.argv[1] if len(sys.argv) > 1 else "sdpa causal fwd+bwd"
    build = kernel_times.builders(mx)[name]
    out = build()
    mx.eval(out)
    mx.synchronize()
    b, e, s = [], [], []
    for _ in range(10):
        t0 = time.perf_counter()
        out = build()
        t1 = time.perf_counter()
        mx.eval(out)
        t2 = time.perf_counter()
        mx.synchronize()
        t3 = time.perf_counter()
        b.append(t1 - t0)
        e.append(t2 - t1)
        s.append(t3 - t2)
    med = lambda v: statistics.median(v) * 1e3
    print(f"{name}: build {med(b):.3f} ms, eval {med(e):.3f} ms, then synchronize {med(s):.3f} ms")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(5):
        mx.eval(build())
        mx.synchronize()
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
