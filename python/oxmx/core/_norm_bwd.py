"""The gradient of ``fast.rms_norm`` / ``fast.layer_norm`` on the GPU in one pass over the
rows (float32, float16, bfloat16; rows of a multiple of 4 up to 16384 elements), written
with ``fast.cuda_kernel``. Each block takes up to 16 rows: for each it reads x and the
cotangent g once into registers, computes the row's statistics and

    dx = r * (g w - mean(g w) - x_hat * mean(g w x_hat))      (rms_norm: no mean(g w))

with x_hat = (x - mean) r and r = 1 / sqrt(var + eps), and sums g x_hat (the weight's
gradient) and g (the bias's) for its rows in registers, added to float32 totals with one
atomic per column per block. Everything else differentiates the composite formula.
"""

import oxmx.core as _mx

_HEADER = r"""
template <int NW> __device__ __forceinline__ float block_sum(float v, float* sh) {
  #pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = v;
  __syncthreads();
  float t = 0.f;
  #pragma unroll
  for (int w = 0; w < NW; ++w) t += sh[w];
  return t;
}
"""

_BODY = r"""
constexpr int NW = THREADS / 32;
__shared__ float sh[32];
int tid = threadIdx.x;
long long nv = n / 4;
const float fn = (float)n;
float wv[VPT * 4], dwa[VPT * 4], dba[VPT * 4];
#pragma unroll
for (int i = 0; i < VPT; ++i) {
  long long j = tid + (long long)i * THREADS;
  #pragma unroll
  for (int e = 0; e < 4; ++e) {
    wv[i * 4 + e] = (HAS_W && j < nv) ? (float)w[j * 4 + e] : 1.f;
    dwa[i * 4 + e] = 0.f; dba[i * 4 + e] = 0.f;
  }
}
long long r_end = ((long long)blockIdx.x + 1) * RPB < rows ? ((long long)blockIdx.x + 1) * RPB : rows;
for (long long r = (long long)blockIdx.x * RPB; r < r_end; ++r) {
  const T* xr = x + r * n; const T* gr = g + r * n; T* dr = dx + r * n;
  float xv[VPT * 4], gv[VPT * 4];
  float s = 0.f;
  #pragma unroll
  for (int i = 0; i < VPT; ++i) {
    long long j = tid + (long long)i * THREADS;
    #pragma unroll
    for (int e = 0; e < 4; ++e) {
      bool ok = j < nv;
      xv[i * 4 + e] = ok ? (float)xr[j * 4 + e] : 0.f;
      gv[i * 4 + e] = ok ? (float)gr[j * 4 + e] : 0.f;
      s += xv[i * 4 + e];
    }
  }
  float mean = LN ? block_sum<NW>(s, sh) / fn : 0.f;
  float q = 0.f;
  #pragma unroll
  for (int i = 0; i < VPT; ++i) {
    long long j = tid + (long long)i * THREADS;
    #pragma unroll
    for (int e = 0; e < 4; ++e) { float c = j < nv ? xv[i * 4 + e] - mean : 0.f; q += c * c; }
  }
  float rinv = 1.f / sqrtf(block_sum<NW>(q, sh) / fn + eps);
  float a = 0.f, c2 = 0.f;
  #pragma unroll
  for (int k = 0; k < VPT * 4; ++k) {
    float xh = (xv[k] - mean) * rinv, gw = gv[k] * wv[k];
    a += gw; c2 += gw * xh;
  }
  // padding elements have g = 0: they add nothing to either sum
  float mgw = LN ? block_sum<NW>(a, sh) / fn : 0.f;
  float mgx = block_sum<NW>(c2, sh) / fn;
  // layer_norm with an infinite or NaN g * w: NaN across the row, as the composite's vjp
  // (its mean's gradient sums infinities of both signs) and the CPU's kernel
  const bool blank = LN && !(isfinite(mgw) && isfinite(mgx));
  #pragma unroll
  for (int i = 0; i < VPT; ++i) {
    long long j = tid + (long long)i * THREADS;
    if (j < nv) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        int k = i * 4 + e;
        float xh = (xv[k] - mean) * rinv;
        dr[j * 4 + e] = (T)(blank ? __int_as_float(0x7fc00000) : rinv * (gv[k] * wv[k] - mgw - xh * mgx));
        dwa[k] += gv[k] * xh; dba[k] += gv[k];
      }
    }
  }
}
#pragma unroll
for (int i = 0; i < VPT; ++i) {
  long long j = tid + (long long)i * THREADS;
  if (j < nv) {
    #pragma unroll
    for (int e = 0; e < 4; ++e) {
      if (HAS_W) atomicAdd(&dw[j * 4 + e], dwa[i * 4 + e]);
      if (HAS_B) atomicAdd(&db[j * 4 + e], dba[i * 4 + e]);
    }
  }
}
"""

_kernel = []
MAX_VPT = 16


def _get():
    if not _kernel:
        from .fast import cuda_kernel

        _kernel.append(cuda_kernel("norm_bwd", ["x", "w", "g", "n", "rows", "eps"], ["dx", "dw", "db"], _BODY,
                                   header=_HEADER))
    return _kernel[0]


def _plan(n):
    """Threads per block and float4 groups per thread. At most 256 threads: a kernel
    written with cuda_kernel has no launch bounds, so the compiler may give each thread
    up to 255 registers, and 256 threads is what a multiprocessor can then hold (rows
    past 4096 spill their registers instead)."""
    vecs = n // 4
    threads = min(256, max(32, -(-vecs // 32) * 32))
    return threads, -(-vecs // threads)


def _rows_per_block(rows):
    """Up to 16 rows per block (fewer atomics), but blocks enough to fill the GPU."""
    return max(1, min(16, rows // 264))


def applies(x, n, stream=None):
    """Whether the fused backward takes this norm (float32/16/bf16 rows of a multiple of
    4 up to 16384 on the GPU; otherwise the composite's)."""
    import os

    if os.environ.get("OXMX_CUDA_NO_FUSED_BWD") or x.dtype not in (_mx.float32, _mx.float16, _mx.bfloat16):
        return False
    from .fast import _op_device

    device = _op_device(stream)
    if device != _mx.gpu or not _mx.cuda.is_available():
        return False
    if n <= 0 or n % 4:
        return False
    threads, vpt = _plan(n)
    rows = x.size // n
    # the launch's thread count must fit 32 bits
    return vpt <= MAX_VPT and rows < 2**31 and -(-rows // _rows_per_block(rows)) * threads < 2**32


def norm_vjp(x, w, b, g, eps, layer, stream=None):
    """(dx, dw, db) of rms_norm (``layer`` False) or layer_norm; dw/db None when absent."""
    n = x.shape[-1]
    rows = x.size // n
    if rows == 0:
        return (_mx.zeros_like(x), None if w is None else _mx.zeros_like(w), None if b is None else _mx.zeros_like(b))
    threads, vpt = _plan(n)
    rpb = _rows_per_block(rows)
    tmpl = [("T", x.dtype), ("LN", bool(layer)), ("HAS_W", w is not None), ("HAS_B", b is not None),
            ("VPT", vpt), ("THREADS", threads), ("RPB", rpb)]
    dx, dw, db = _get()(
        inputs=[x, x if w is None else w.astype(x.dtype), g.astype(x.dtype), n, rows, float(eps)], template=tmpl,
        grid=(-(-rows // rpb) * threads, 1, 1), threadgroup=(threads, 1, 1),
        output_shapes=[x.shape, (n,), (n,)], output_dtypes=[x.dtype, _mx.float32, _mx.float32], stream=stream)
    return dx, (None if w is None else dw.astype(w.dtype)), (None if b is None else db.astype(b.dtype))
