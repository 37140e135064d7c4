"""How far the GPU attention gradients are from a float64 reference: cuDNN's fused
backward against the project's own kernels (OXMX_CUDA_NO_CUDNN_SDPA=1), same inputs.

    /opt/torch/.venv/bin/python benchmarks/cuda/attention_grad_error.py
"""

import os

import numpy as np

import oxmx.core as mx


def grads(q, k, v, ct, causal):
    kw = {"mask": "causal"} if causal else {}
    f = lambda q, k, v: mx.fast.scaled_dot_product_attention(q, k, v, scale=q.shape[-1] ** -0.5, **kw)
    out = mx.vjp(f, [q, k, v], [ct])[1]
    mx.eval(out)
    return [np.array(g.astype(mx.float32)).astype(np.float64) for g in out]


def main():
    r = np.random.default_rng(0)
    for b, h, l, d, causal in [(2, 12, 1024, 64, True), (1, 16, 2048, 64, True), (2, 8, 512, 128, False)]:
        arrs = [r.standard_normal((b, h, l, d)).astype(np.float32) for _ in range(4)]
        q, k, v, ct = (mx.array(a).astype(mx.bfloat16) for a in arrs)
        with mx.stream(mx.cpu):
            ref = grads(*(x.astype(mx.float64) for x in (q, k, v, ct)), causal)
        os.environ.pop("OXMX_CUDA_NO_CUDNN_SDPA", None)
        cud = grads(q, k, v, ct, causal)
        os.environ["OXMX_CUDA_NO_CUDNN_SDPA"] = "1"
        own = grads(q, k, v, ct, causal)
        os.environ.pop("OXMX_CUDA_NO_CUDNN_SDPA", None)
        for name, w, a, o in zip("qkv", ref, cud, own):
            rel = lambda x: np.linalg.norm(x - w) / np.linalg.norm(w)
            bias = lambda x: float(np.mean(x - w) / np.std(w))
            print(f"{(b, h, l, d, causal)} d{name}: relative error cuDNN {rel(a):.2e} own {rel(o):.2e}; "
                  f"mean bias cuDNN {bias(a):+.1e} own {bias(o):+.1e}", flush=True)


if __name__ == "__main__":
    main()
