"""all_sum bandwidth over MPI: oxmx's ``mx.distributed.all_sum`` against mpi4py's
``Allreduce`` on the same float32 buffers, in the same processes (issue #16).

    python -m oxmx.launch -n 2 benchmarks/run_distributed.py [--mib 256] [--repeat 7]

Rank 0 prints one line per buffer size: medians of both, the ratio, and the bus
bandwidth (2 (n-1)/n x bytes / time, the convention of NCCL's tests).
"""

import argparse
import statistics
import time

import numpy as np

import oxmx.core as mx

try:
    from mpi4py import MPI
except ImportError:  # the oxmx side alone
    MPI = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--repeat", type=int, default=7)
    a = ap.parse_args()
    g = mx.distributed.init(strict=True)
    n, rank = g.size(), g.rank()
    if rank == 0:
        peer = "mpi4py " + MPI.Get_library_version().splitlines()[0] if MPI else "no mpi4py"
        print(f"{n} ranks; {peer}")
        print(f"{'MiB':>6} {'oxmx ms':>9} {'mpi4py ms':>10} {'ratio':>6} {'oxmx bus GB/s':>14}")
    for mib in a.mib:
        count = mib * 2**20 // 4
        host = np.full(count, rank + 1, np.float32)
        x = mx.array(host)
        mx.eval(x)
        t_ox, t_mpi = [], []
        # one output buffer for mpi4py, touched once (as oxmx reuses its cached buffers)
        out = np.zeros_like(host)
        for _ in range(a.repeat):
            g_sync = mx.distributed.all_sum(mx.array([0.0]))  # line the ranks up
            mx.eval(g_sync)
            t0 = time.perf_counter()
            y = mx.distributed.all_sum(x)
            mx.eval(y)
            t_ox.append(time.perf_counter() - t0)
            if MPI is not None:
                MPI.COMM_WORLD.Barrier()
                t0 = time.perf_counter()
                MPI.COMM_WORLD.Allreduce(host, out, op=MPI.SUM)
                t_mpi.append(time.perf_counter() - t0)
        assert np.array(y)[0] == n * (n + 1) / 2
        to = statistics.median(t_ox)
        tm = statistics.median(t_mpi) if t_mpi else float("nan")
        if rank == 0:
            bus = 2 * (n - 1) / n * mib * 2**20 / to / 1e9
            print(f"{mib:>6} {to * 1e3:>9.2f} {tm * 1e3:>10.2f} {tm / to:>6.2f} {bus:>14.2f}", flush=True)


if __name__ == "__main__":
    main()
