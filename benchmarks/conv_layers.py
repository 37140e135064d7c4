"""Per-layer GPU timing of the ResNet stack's convolutions (benchmarks/ops_resnet.py).

For each of the stack's 17 convolutions: the forward, the input gradient and the weight
gradient alone, in oxmx (cuDNN, channels-last) and in torch (cuDNN, NCHW), each framework
in its own process (they load different cuDNN copies). oxmx runs channels-last (its
default) and channels-first (`OXMX_CUDNN_LAYOUT=nchw`), torch with `cudnn.benchmark` off
and on. The table shows where a whole-stack gap (run_ops.py's ResNet rows) comes from.

    python benchmarks/conv_layers.py [--batch 32] [--repeat 20]     # on the GPU machine

float32 at full precision in both (torch's TF32 off). Medians of `--repeat` runs, each
ending with a device synchronization.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gpu_processes  # noqa: E402
import ops_resnet  # noqa: E402
import run_gpu  # noqa: E402  (its timing loop)

OXMX_SETTINGS = {
    "oxmx": {},
    "oxmx nchw": {"OXMX_CUDNN_LAYOUT": "nchw"},
}
TORCH_SETTINGS = {"torch": "0", "torch benchmark": "1"}
KINDS = ("fwd", "dgrad", "wgrad")


def layer_shapes(n, hw):
    """(x NHWC, w OHWI, stride, padding) of every conv of the stack, in order."""
    return ops_resnet.conv_shapes(n, hw)[1]


def _median_ms(fn, sync, repeat):
    return run_gpu.timeit(fn, sync, repeat) * 1e3


def _out_hw(x, w, stride, padding):
    return [(d + 2 * padding - w[1]) // stride + 1 for d in x[1:3]]


def run_oxmx(shapes, repeat):
    import oxmx.core as mx
    from oxmx import _oxmx as n
    if mx.cuda.is_available():
        mx.set_default_device(mx.gpu)
    rng = np.random.default_rng(0)
    res = []
    for x_shape, w_shape, stride, pad in shapes:
        ho, wo = _out_hw(x_shape, w_shape, stride, pad)
        x = mx.array(rng.standard_normal(x_shape, dtype=np.float32))
        w = mx.array(rng.standard_normal(w_shape, dtype=np.float32))
        g = mx.array(rng.standard_normal((x_shape[0], ho, wo, w_shape[0]), dtype=np.float32))
        mx.eval(x, w, g)
        geo = ([stride, stride], [1, 1], [pad, pad], 1)
        fns = {
            "fwd": lambda: mx.eval(n._conv(x, w, *geo)),
            "dgrad": lambda: mx.eval(n._conv_input_grad(g, w, list(x_shape[1:3]), *geo)),
            "wgrad": lambda: mx.eval(n._conv_weight_grad(x, g, list(w_shape[1:3]), *geo)),
        }
        res.append({k: _median_ms(f, mx.synchronize, repeat) for k, f in fns.items()})
    return res


def run_torch(shapes, repeat, benchmark):
    import torch
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = benchmark
    dev = torch.device("cuda")
    gen = torch.Generator(device=dev).manual_seed(0)
    res = []
    for x_shape, w_shape, stride, pad in shapes:
        ho, wo = _out_hw(x_shape, w_shape, stride, pad)
        nb, h, wd, c = x_shape
        o, k, _, _ = w_shape
        x = torch.randn((nb, c, h, wd), device=dev, generator=gen)
        w = torch.randn((o, c, k, k), device=dev, generator=gen)
        g = torch.randn((nb, o, ho, wo), device=dev, generator=gen)
        back = torch.ops.aten.convolution_backward

        def bwd(mask):
            return back(g, x, w, None, [stride] * 2, [pad] * 2, [1, 1], False, [0, 0], 1, mask)

        fns = {
            "fwd": lambda: torch.nn.functional.conv2d(x, w, stride=stride, padding=pad),
            "dgrad": lambda: bwd([True, False, False]),
            "wgrad": lambda: bwd([False, True, False]),
        }
        res.append({kd: _median_ms(f, torch.cuda.synchronize, repeat) for kd, f in fns.items()})
    return res


def table(shapes, results):
    names = [k for k in (*OXMX_SETTINGS, *TORCH_SETTINGS) if results.get(k)]
    lines = ["| layer | kind | " + " | ".join(names) + " |", "|---|---|" + "---:|" * len(names)]
    totals = {k: 0.0 for k in names}
    for i, (layer, (x, w, stride, pad)) in enumerate(zip(ops_resnet.LAYERS, shapes)):
        for kd in KINDS:
            cells = []
            for k in names:
                t = results[k][i][kd]
                totals[k] += t
                cells.append(f"{t:.3f}")
            lines.append(f"| {layer[0]} ({x[1]}x{x[2]}x{x[3]} -> {w[0]}, {w[1]}x{w[1]}/{stride}) | {kd} | "
                         + " | ".join(cells) + " |")
    lines.append("| **sum** | | " + " | ".join(f"**{totals[k]:.2f}**" for k in names) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hw", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--settings", default=",".join((*OXMX_SETTINGS, *TORCH_SETTINGS)),
                    help="comma-separated columns to run (default: all)")
    ap.add_argument("--framework", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    shapes = layer_shapes(args.batch, args.hw)
    if args.framework:
        if args.framework.startswith("oxmx"):
            out = run_oxmx(shapes, args.repeat)
        else:
            out = run_torch(shapes, args.repeat, TORCH_SETTINGS[args.framework] == "1")
        print(json.dumps({"layers": out}))
        return 0
    results = {}
    base = [sys.executable, os.path.abspath(__file__), "--batch", str(args.batch), "--hw", str(args.hw),
            "--repeat", str(args.repeat), "--framework"]
    wanted = set(args.settings.split(","))
    for name, env in OXMX_SETTINGS.items():
        if name not in wanted:
            continue
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            results[name] = (gpu_processes.run_json_process(name, base + [name], timeout=300) or {}).get("layers")
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    for name in TORCH_SETTINGS:
        if name not in wanted:
            continue
        results[name] = (gpu_processes.run_json_process(name, base + [name], timeout=300) or {}).get("layers")
    print(f"\nms per call, batch {args.batch}, {args.hw}x{args.hw}, float32 (TF32 off)\n")
    print(table(shapes, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
