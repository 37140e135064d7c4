#!/usr/bin/env python3
"""all_sum bandwidth over NCCL on several GPUs: oxmx's ``mx.distributed.all_sum`` against
``torch.distributed.all_reduce`` (issue #17), float32 buffers of 1 MiB to 1 GiB in GPU
memory, each library in its own processes (they load different CUDA library copies).

    python benchmarks/run_nccl.py -n 2            # both libraries on 2 GPUs, then a table
    python benchmarks/run_nccl.py -n 4 --mib 1 64 1024

Per size: the median of ``--repeat`` synchronized calls after two warm-ups, and the bus
bandwidth ``2 (n-1)/n x bytes / time`` (NCCL's tests' convention). NVLink multicast
(NVLS) stays off (``NCCL_NVLS_ENABLE=0``) for both. A rank's own role:

    python -m oxmx.launch --backend nccl -n 2 benchmarks/run_nccl.py --rank-oxmx ...
    torchrun --nproc_per_node 2 benchmarks/run_nccl.py --rank-torch ...

Without GPUs, ``--rank-oxmx`` under ``python -m oxmx.launch -n 2`` (MPI, CPU) runs the
oxmx side alone as a smoke test.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES_MIB = [1, 4, 16, 64, 256, 1024]


def bus_gbs(nbytes, n, seconds):
    return 2 * (n - 1) / n * nbytes / seconds / 1e9 if n > 1 else nbytes / seconds / 1e9


def time_calls(call, sync, repeat):
    for _ in range(2):
        call()
    sync()
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def rank_oxmx(mib_list, repeat):
    import oxmx.core as mx

    g = mx.distributed.init(strict=True)
    n, rank = g.size(), g.rank()
    if mx.cuda.is_available():
        mx.set_default_device(mx.gpu)
    out = {}
    for mib in mib_list:
        count = mib * 2**20 // 4
        x = mx.full((count,), float(rank + 1))
        mx.eval(x)
        want = n * (n + 1) / 2
        y = mx.distributed.all_sum(x)
        mx.eval(y)
        if abs(y[-1].item() - want) > 1e-3 * want:
            raise SystemExit(f"all_sum of {mib} MiB gave {y[-1].item()}, not {want}")
        sec = time_calls(lambda: mx.eval(mx.distributed.all_sum(x)), mx.synchronize, repeat)
        out[mib] = sec
        del x, y
    if rank == 0:
        print(json.dumps({"lib": "oxmx", "backend": g.backend, "n": n, "seconds": out}), flush=True)


def rank_torch(mib_list, repeat):
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    n, rank = dist.get_world_size(), dist.get_rank()
    out = {}
    for mib in mib_list:
        count = mib * 2**20 // 4
        x = torch.full((count,), float(rank + 1), device="cuda")
        dist.all_reduce(x)  # in place, as torch does
        want = n * (n + 1) / 2
        if abs(x[-1].item() - want) > 1e-3 * want:
            raise SystemExit(f"all_reduce of {mib} MiB gave {x[-1].item()}, not {want}")
        out[mib] = time_calls(lambda: dist.all_reduce(x), torch.cuda.synchronize, repeat)
        del x
    if rank == 0:
        print(json.dumps({"lib": "torch", "backend": "nccl", "n": n, "seconds": out}), flush=True)
    dist.destroy_process_group()


def last_json(cmd, env, timeout):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"{' '.join(cmd[:6])} ... failed (exit {r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return None


def driver(n, mib_list, repeat, timeout):
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    here = os.path.abspath(__file__)
    common = ["--mib", *map(str, mib_list), "--repeat", str(repeat)]
    ox = last_json([sys.executable, "-m", "oxmx.launch", "--backend", "nccl", "-n", str(n), here, "--rank-oxmx", *common],
                   env, timeout)
    th = last_json([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", here,
                    "--rank-torch", *common], env, timeout)
    print(f"\nall_sum / all_reduce over NCCL, {n} GPUs, float32, bus bandwidth (NVLS off)\n")
    print("| MiB | oxmx | torch | oxmx / torch |\n|---|---|---|---|")
    for mib in mib_list:
        o = ox and ox["seconds"].get(str(mib))
        t = th and th["seconds"].get(str(mib))
        cell = lambda s: "—" if s is None else f"{s * 1e3:.3f} ms, {bus_gbs(mib * 2**20, n, s):.0f} GB/s"
        ratio = f"{t / o:.2f}x" if o and t else "—"
        print(f"| {mib} | {cell(o)} | {cell(t)} | {ratio} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2, help="GPUs (driver)")
    ap.add_argument("--mib", type=int, nargs="+", default=SIZES_MIB)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--timeout", type=float, default=400, help="seconds each library's run may take")
    role = ap.add_mutually_exclusive_group()
    role.add_argument("--rank-oxmx", action="store_true")
    role.add_argument("--rank-torch", action="store_true")
    a = ap.parse_args()
    if a.rank_oxmx:
        rank_oxmx(a.mib, a.repeat)
    elif a.rank_torch:
        rank_torch(a.mib, a.repeat)
    else:
        driver(a.n, a.mib, a.repeat, a.timeout)


if __name__ == "__main__":
    main()
