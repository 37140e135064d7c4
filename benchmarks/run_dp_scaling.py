#!/usr/bin/env python3
"""Data-parallel training over NCCL on 1, 2 and 4 GPUs (issue #17): samples per second and
the loss curve, for the demo transformer (``examples/train_lm.py``'s model) and GPT-2
small (``benchmarks/run_nn.py``'s ``gpt2`` case).

    python benchmarks/run_dp_scaling.py                   # every GPU count present, both models
    python benchmarks/run_dp_scaling.py --cases demo --gpus 1 2
    python benchmarks/run_dp_scaling.py --cpu --gpus 1 2  # MPI ranks on the CPU (smoke test)

Each GPU takes the per-GPU batch of its case (demo 32 x 96 characters, GPT-2 8 x 1024
tokens), so n GPUs train on an n times larger global batch; the gradients are averaged
with ``nn.average_gradients`` before each optimizer step. The loss curve of n GPUs is
checked against one process training on the whole global batch (the same mathematics),
and the speed-up is samples/s on n GPUs over samples/s on one GPU (bars: 1.8x on 2, 3.5x
on 4). A rank's own role: ``python -m oxmx.launch --backend nccl -n N
benchmarks/run_dp_scaling.py --rank --case demo --per-gpu 32``.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

CHECK_STEPS = 8
BARS = {2: 1.8, 4: 3.5}
LOSS_RTOL = {"demo": 2e-3, "gpt2": 2e-2}


def per_gpu_default(case):
    import run_nn

    return run_nn.DEMO["batch_size"] if case == "demo" else run_nn.GPT2["batch"]


def global_batches(case, global_batch, count):
    """``count`` (inputs, targets) token batches of ``global_batch`` rows, the same on
    every rank (seeded)."""
    import run_nn

    vocab, seq = (run_nn.DEMO["vocab"], run_nn.DEMO["seq_len"]) if case == "demo" else (run_nn.GPT2["vocab"], run_nn.GPT2["ctx"])
    rng = np.random.default_rng(5)
    out = []
    for _ in range(count):
        t = rng.integers(0, vocab, (global_batch, seq + 1)).astype(np.int32)
        out.append((t[:, :-1], t[:, 1:]))
    return out


def rank_main(case, per_gpu, steps):
    import oxmx.core as mx
    import oxmx.nn as nn
    import oxmx.optimizers as optim
    import run_nn

    g = mx.distributed.init(strict=True)
    n, rank = g.size(), g.rank()
    fw = run_nn.MLXLike("oxmx", "oxmx", gpu=mx.cuda.is_available())
    model, loss_fn, optimizer, clip = fw._model(case)
    model.load_weights([(k, mx.array(v)) for k, v in run_nn.init_weights(case).items()], strict=True)
    if case == "gpt2":
        model.set_dtype(mx.bfloat16)
    optimizer.init(model.trainable_parameters())
    data = [(mx.array(x[rank * per_gpu:(rank + 1) * per_gpu]), mx.array(y[rank * per_gpu:(rank + 1) * per_gpu]))
            for x, y in global_batches(case, n * per_gpu, 4)]
    mx.eval(model.parameters(), optimizer.state, data)
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    def step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        grads = nn.average_gradients(grads)
        if clip is not None:
            grads, _ = optim.clip_grad_norm(grads, max_norm=clip)
        optimizer.update(model, grads)
        loss = mx.distributed.all_sum(loss) / n
        mx.eval(loss, model.parameters(), optimizer.state)
        mx.synchronize()
        return loss.item()

    # the loss curve: the first steps on the first batch (as run_nn.py checks them)
    losses = [step(*data[0]) for _ in range(CHECK_STEPS)]
    times = []
    for i in range(steps):
        t = time.perf_counter()
        step(*data[i % len(data)])
        times.append(time.perf_counter() - t)
    if rank == 0:
        sec = statistics.median(times)
        print(json.dumps({"case": case, "n": n, "per_gpu": per_gpu, "seconds": sec,
                          "samples_per_s": n * per_gpu / sec, "losses": losses,
                          "device": str(mx.default_device()), "backend": g.backend}), flush=True)


def launch(n, case, per_gpu, steps, cpu, timeout):
    here = os.path.abspath(__file__)
    backend = [] if cpu else ["--backend", "nccl"]
    cmd = [sys.executable, "-m", "oxmx.launch", *backend, "-n", str(n), here, "--rank", "--case", case,
           "--per-gpu", str(per_gpu), "--steps", str(steps)]
    env = dict(os.environ, NCCL_NVLS_ENABLE="0")
    if cpu:
        env["OXMX_DISABLE_GPU"] = "1"
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    for line in reversed(r.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    print(f"{case} on {n}: failed (exit {r.returncode})\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}", flush=True)
    return None


def gpu_count():
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def driver(args):
    counts = args.gpus or [c for c in (1, 2, 4) if c <= max(1, gpu_count())]
    rows = []
    for case in args.cases:
        per_gpu = args.per_gpu or per_gpu_default(case)
        base = None
        for n in counts:
            r = launch(n, case, per_gpu, args.steps, args.cpu, args.timeout)
            if r is None:
                continue
            if n == 1:
                base = r
            # the same global batch in one process: the loss curve n GPUs must follow
            ref = r if n == 1 else launch(1, case, n * per_gpu, 1, args.cpu, args.timeout)
            same = ref is not None and np.allclose(r["losses"], ref["losses"], rtol=LOSS_RTOL[case], atol=1e-6)
            speed = r["samples_per_s"] / base["samples_per_s"] if base else None
            rows.append((case, n, r, same, speed, ref))
            print(f"{case} x{n}: {r['seconds'] * 1e3:.1f} ms/step, {r['samples_per_s']:.1f} samples/s"
                  + (f", {speed:.2f}x one GPU" if speed else "") + f"; loss curve {'equal' if same else 'DIFFERS'}: "
                  f"{[round(v, 4) for v in r['losses']]}" + ("" if n == 1 or ref is None else
                                                             f" vs {[round(v, 4) for v in ref['losses']]}"),
                  flush=True)
    print("\n| model | GPUs | global batch | step | samples/s | vs one GPU | bar | loss curve = one process |")
    print("|---|---|---|---|---|---|---|---|")
    for case, n, r, same, speed, _ in rows:
        bar = BARS.get(n)
        verdict = "—" if bar is None or speed is None else (f"≥ {bar}x: {'met' if speed >= bar else 'not met'}")
        print(f"| {case} | {n} | {n * r['per_gpu']} | {r['seconds'] * 1e3:.1f} ms | {r['samples_per_s']:.1f} | "
              f"{'—' if speed is None else f'{speed:.2f}x'} | {verdict} | {'yes' if same else 'no'} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=["demo", "gpt2"], choices=["demo", "gpt2"])
    ap.add_argument("--gpus", type=int, nargs="+", help="process counts (default: 1, 2, 4 as GPUs allow)")
    ap.add_argument("--per-gpu", type=int, help="batch rows per GPU (default: the case's)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps")
    ap.add_argument("--cpu", action="store_true", help="MPI ranks on the CPU instead of NCCL on GPUs")
    ap.add_argument("--timeout", type=float, default=500)
    ap.add_argument("--rank", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.rank:
        rank_main(a.case, a.per_gpu, a.steps)
    else:
        driver(a)


if __name__ == "__main__":
    main()
