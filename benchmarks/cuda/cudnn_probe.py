"""Whether cuDNN takes a few attention problems: prints, per problem, how many of the
project's own kernels launched (0: cuDNN ran it). With OXMX_CUDNN_DEBUG=1 oxmx prints why
cuDNN declined a problem; CUDNN_LOGLEVEL_DBG=1 CUDNN_LOGDEST_DBG=stderr adds cuDNN's own log.

    /opt/torch/.venv/bin/python benchmarks/cuda/cudnn_probe.py
"""

import oxmx.core as mx
from oxmx import _oxmx

CASES = [(True, (2, 4, 4, 256, 256, 64)), (False, (1, 32, 8, 1, 512, 128)), (True, (1, 8, 2, 128, 128, 64))]

for causal, (b, hq, hkv, lq, lk, d) in CASES:
    q = mx.random.normal((b, hq, lq, d)).astype(mx.bfloat16)
    k = mx.random.normal((b, hkv, lk, d)).astype(mx.bfloat16)
    v = mx.random.normal((b, hkv, lk, d)).astype(mx.bfloat16)
    mx.eval(q, k, v)
    before = _oxmx._kernel_launches(mx.gpu)
    kw = {"mask": "causal"} if causal else {}
    o = mx.fast.scaled_dot_product_attention(q, k, v, scale=d**-0.5, **kw)
    mx.eval(o)
    print("case", causal, (b, hq, hkv, lq, lk, d), "own launches:", _oxmx._kernel_launches(mx.gpu) - before, flush=True)
