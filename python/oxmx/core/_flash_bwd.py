"""The gradient of ``fast.scaled_dot_product_attention`` on the GPU without the score
matrix (FlashAttention-2's backward), for float16/bfloat16, head size 64, no mask or the
causal mask, no sinks. Two kernels written with ``fast.cuda_kernel``:

* ``lse``: each query row's running max m and log2 of its sum l, in base 2, as the
  forward computes them (kept apart: a fully masked row has m = the lowest float, which
  would absorb log2 l);
* ``bwd``: one block per 64 keys of one key/value head. Each warp holds 16 keys' K and
  V rows as mma operands and, for every query head of the group and every 32-query tile,
  recomputes P^T = 2^(S^T - m - log2 l), then dV += P^T dO, dP^T = V dO^T,
  dS^T = P^T (dP^T - D) with D = rowsum(dO * O), dK += dS^T Q, and adds dS K into a
  float32 dQ with atomics. dK and dQ carry the softmax scale.

Where cuDNN has a fused backward for the sizes (lengths in whole 128-row tiles, see
``crates/oxmx-cuda/src/cudnn_sdpa.rs``), one ``FastKernel::SdpaGrad`` node runs it instead
of these two kernels. Everything else (other dtypes, head sizes, masks, sinks, the CPU)
differentiates the composite formula, as before.
"""

import math

import oxmx.core as _mx

_HEADER = r"""
#define NEG_INF (-__int_as_float(0x7f800000))
#define LOWEST (-3.402823466e38f)
template <bool B> __device__ __forceinline__ unsigned pack2(float lo, float hi) {
  if constexpr (B) { __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi); return *reinterpret_cast<unsigned*>(&h); }
  else { __half2 h = __floats2half2_rn(lo, hi); return *reinterpret_cast<unsigned*>(&h); }
}
template <bool B> __device__ __forceinline__ unsigned short bits1(float v) {
  if constexpr (B) return __bfloat16_as_ushort(__float2bfloat16_rn(v));
  else return __half_as_ushort(__float2half_rn(v));
}
__device__ __forceinline__ unsigned u32(const unsigned short* p) { return *reinterpret_cast<const unsigned*>(p); }
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  unsigned r; asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p)); return r;
}
// four 8x8 b16 matrices from shared memory (lanes 8i..8i+7 address the rows of matrix
// i), as mma operands; ldm4t transposed
__device__ __forceinline__ void ldm4(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
    : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldm4t(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
    : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
template <bool B> __device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {
  if constexpr (B)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
"""

# 4 warps x 16 query rows; 64-key tiles of K in shared memory. Thread (warp w, lane 4g + t)
# owns rows r0 = q0 + 16w + g and r1 = r0 + 8 (the mma accumulator layout).
_LSE = r"""
constexpr int BR = 64, BC = 64, KS = D + 8;
__shared__ __align__(16) unsigned short Ks[BC * KS];
const unsigned short* qp = reinterpret_cast<const unsigned short*>(q);
const unsigned short* kp = reinterpret_cast<const unsigned short*>(k);
int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
long long bh = blockIdx.y, b = bh / Hq, h = bh % Hq, kvh = b * Hkv + h / (Hq / Hkv);
long long q0 = (long long)blockIdx.x * BR, r0 = q0 + warp * 16 + g, r1 = r0 + 8, shift = (long long)Lk - Lq;
long long kend = Lk;
if (CAUSAL && q0 + shift >= 0) { long long last = q0 + BR - 1; if (last > Lq - 1) last = Lq - 1; if (last + shift + 1 < kend) kend = last + shift + 1; }
const unsigned short* qb = qp + bh * (long long)Lq * D;
unsigned qa[D / 16][4];
#pragma unroll
for (int s = 0; s < D / 16; ++s) {
  int c = s * 16 + 2 * t4;
  qa[s][0] = r0 < Lq ? u32(qb + r0 * D + c) : 0u;
  qa[s][1] = r1 < Lq ? u32(qb + r1 * D + c) : 0u;
  qa[s][2] = r0 < Lq ? u32(qb + r0 * D + c + 8) : 0u;
  qa[s][3] = r1 < Lq ? u32(qb + r1 * D + c + 8) : 0u;
}
float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;
const unsigned short* kbase = kp + kvh * (long long)Lk * D;
for (long long t0 = 0; t0 < kend; t0 += BC) {
  __syncthreads();
  for (int e = threadIdx.x; e < BC * D / 8; e += blockDim.x) {
    int j = e / (D / 8), c = (e % (D / 8)) * 8; long long key = t0 + j;
    uint4 w = key < kend ? *reinterpret_cast<const uint4*>(kbase + key * D + c) : make_uint4(0u, 0u, 0u, 0u);
    *reinterpret_cast<uint4*>(Ks + j * KS + c) = w;
  }
  __syncthreads();
  float s[BC / 8][4];
  #pragma unroll
  for (int n = 0; n < BC / 8; ++n) {
    s[n][0] = 0.f; s[n][1] = 0.f; s[n][2] = 0.f; s[n][3] = 0.f;
    #pragma unroll
    for (int c = 0; c < D / 16; c += 2) {
      unsigned kf[4];
      ldm4(kf, Ks + (n * 8 + (lane & 7)) * KS + c * 16 + (lane >> 3) * 8);
      mma<BF16>(s[n], qa[c], kf[0], kf[1]);
      mma<BF16>(s[n], qa[c + 1], kf[2], kf[3]);
    }
  }
  // only tiles past the keys or across the causal diagonal need masks
  const bool edge = t0 + BC > kend || (CAUSAL && t0 + BC - 1 > q0 + shift);
  float tm0 = NEG_INF, tm1 = NEG_INF;
  #pragma unroll
  for (int n = 0; n < BC / 8; ++n) {
    #pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[n][e] * sl2;
      if (edge) {
        long long key = t0 + n * 8 + 2 * t4 + (e & 1), row = e < 2 ? r0 : r1;
        if (key >= kend) x = NEG_INF;
        else if (CAUSAL && key > row + shift) x = LOWEST;
      }
      s[n][e] = x;
      if (e < 2) tm0 = fmaxf(tm0, x); else tm1 = fmaxf(tm1, x);
    }
  }
  tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 1)); tm0 = fmaxf(tm0, __shfl_xor_sync(0xffffffffu, tm0, 2));
  tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 1)); tm1 = fmaxf(tm1, __shfl_xor_sync(0xffffffffu, tm1, 2));
  float mn0 = fmaxf(m0, tm0), mn1 = fmaxf(m1, tm1);
  float c0 = mn0 == NEG_INF ? 1.f : exp2f(m0 - mn0), c1 = mn1 == NEG_INF ? 1.f : exp2f(m1 - mn1);
  float ps0 = 0.f, ps1 = 0.f;
  #pragma unroll
  for (int n = 0; n < BC / 8; ++n) {
    if (mn0 != NEG_INF) ps0 += exp2f(s[n][0] - mn0) + exp2f(s[n][1] - mn0);
    if (mn1 != NEG_INF) ps1 += exp2f(s[n][2] - mn1) + exp2f(s[n][3] - mn1);
  }
  l0 = l0 * c0 + ps0; l1 = l1 * c1 + ps1; m0 = mn0; m1 = mn1;
}
l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
if (t4 == 0 && r0 < Lq) { ml[2 * (bh * Lq + r0)] = m0; ml[2 * (bh * Lq + r0) + 1] = log2f(l0); }
if (t4 == 0 && r1 < Lq) { ml[2 * (bh * Lq + r1)] = m1; ml[2 * (bh * Lq + r1) + 1] = log2f(l1); }
"""

_BWD = r"""
constexpr int BQ = 32, BK = 64, QS = D + 8, SS = BK + 8;
__shared__ __align__(16) unsigned short Qs[BQ * QS];
__shared__ __align__(16) unsigned short Os[BQ * QS];
__shared__ __align__(16) unsigned short Ks[BK * QS];
__shared__ __align__(16) unsigned short Ss[BQ * SS];
__shared__ float mls[BQ * 2];
__shared__ float dls[BQ];
const unsigned short* qp = reinterpret_cast<const unsigned short*>(q);
const unsigned short* kp = reinterpret_cast<const unsigned short*>(k);
const unsigned short* vp = reinterpret_cast<const unsigned short*>(v);
const unsigned short* op = reinterpret_cast<const unsigned short*>(dout);
int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
long long bkv = blockIdx.y, b = bkv / Hkv, kvh = bkv % Hkv;
int grp = Hq / Hkv;
long long k0 = (long long)blockIdx.x * BK, kr0 = k0 + warp * 16 + g, kr1 = kr0 + 8, shift = (long long)Lk - Lq;
const unsigned short* kb = kp + bkv * (long long)Lk * D;
const unsigned short* vb = vp + bkv * (long long)Lk * D;
// this warp's 16 keys of K and V as A operands (k = head dimension)
unsigned ka[D / 16][4], va[D / 16][4];
#pragma unroll
for (int s = 0; s < D / 16; ++s) {
  int c = s * 16 + 2 * t4;
  ka[s][0] = kr0 < Lk ? u32(kb + kr0 * D + c) : 0u;     va[s][0] = kr0 < Lk ? u32(vb + kr0 * D + c) : 0u;
  ka[s][1] = kr1 < Lk ? u32(kb + kr1 * D + c) : 0u;     va[s][1] = kr1 < Lk ? u32(vb + kr1 * D + c) : 0u;
  ka[s][2] = kr0 < Lk ? u32(kb + kr0 * D + c + 8) : 0u; va[s][2] = kr0 < Lk ? u32(vb + kr0 * D + c + 8) : 0u;
  ka[s][3] = kr1 < Lk ? u32(kb + kr1 * D + c + 8) : 0u; va[s][3] = kr1 < Lk ? u32(vb + kr1 * D + c + 8) : 0u;
}
// the block's 64 keys of K in shared memory: dQ's B operand
for (int e = threadIdx.x; e < BK * D / 8; e += blockDim.x) {
  int j = e / (D / 8), c = (e % (D / 8)) * 8; long long key = k0 + j;
  uint4 w = key < Lk ? *reinterpret_cast<const uint4*>(kb + key * D + c) : make_uint4(0u, 0u, 0u, 0u);
  *reinterpret_cast<uint4*>(Ks + j * QS + c) = w;
}
float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
for (int n = 0; n < D / 8; ++n) { for (int e = 0; e < 4; ++e) { dk[n][e] = 0.f; dv[n][e] = 0.f; } }
// causal: queries before k0 - shift see none of these keys (with shift >= 0 no row is
// fully masked, so they contribute nothing here)
long long qstart = (CAUSAL && shift >= 0 && k0 - shift > 0) ? ((k0 - shift) / BQ) * BQ : 0;
for (int hh = 0; hh < grp; ++hh) {
  long long bh = b * Hq + kvh * grp + hh;
  const unsigned short* qb = qp + bh * (long long)Lq * D;
  const unsigned short* ob = op + bh * (long long)Lq * D;
  for (long long q0 = qstart; q0 < Lq; q0 += BQ) {
    __syncthreads();
    for (int e = threadIdx.x; e < BQ * D / 8; e += blockDim.x) {
      int j = e / (D / 8), c = (e % (D / 8)) * 8; long long qq = q0 + j;
      uint4 a = qq < Lq ? *reinterpret_cast<const uint4*>(qb + qq * D + c) : make_uint4(0u, 0u, 0u, 0u);
      uint4 o = qq < Lq ? *reinterpret_cast<const uint4*>(ob + qq * D + c) : make_uint4(0u, 0u, 0u, 0u);
      *reinterpret_cast<uint4*>(Qs + j * QS + c) = a;
      *reinterpret_cast<uint4*>(Os + j * QS + c) = o;
    }
    for (int j = threadIdx.x; j < BQ; j += blockDim.x) {
      long long qq = q0 + j; bool ok = qq < Lq;
      mls[2 * j] = ok ? ml[2 * (bh * Lq + qq)] : 0.f;
      mls[2 * j + 1] = ok ? ml[2 * (bh * Lq + qq) + 1] : 0.f;
      dls[j] = ok ? delta[bh * Lq + qq] : 0.f;
    }
    __syncthreads();
    // S^T = K Q^T and dP^T = V dO^T: 16 keys x 32 queries per warp
    float st[BQ / 8][4], dp[BQ / 8][4];
    #pragma unroll
    for (int n = 0; n < BQ / 8; ++n) {
      for (int e = 0; e < 4; ++e) { st[n][e] = 0.f; dp[n][e] = 0.f; }
      #pragma unroll
      for (int c = 0; c < D / 16; c += 2) {
        // matrices: queries n8 .. n8 + 7 x head columns c16, c16 + 8, c16 + 16, c16 + 24
        int at = (n * 8 + (lane & 7)) * QS + c * 16 + (lane >> 3) * 8;
        unsigned qf[4], of[4];
        ldm4(qf, Qs + at);
        ldm4(of, Os + at);
        mma<BF16>(st[n], ka[c], qf[0], qf[1]);
        mma<BF16>(st[n], ka[c + 1], qf[2], qf[3]);
        mma<BF16>(dp[n], va[c], of[0], of[1]);
        mma<BF16>(dp[n], va[c + 1], of[2], of[3]);
      }
    }
    // P^T (masked as the forward masks), then dS^T = P^T (dP^T - D); only tiles past
    // the keys or queries or across the causal diagonal need masks
    const bool edge = k0 + BK > Lk || q0 + BQ > Lq || (CAUSAL && k0 + BK - 1 > q0 + shift);
    #pragma unroll
    for (int n = 0; n < BQ / 8; ++n) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        int jq = n * 8 + 2 * t4 + (e & 1);
        // a masked score is a constant (the lowest float): it carries weight to dV in a
        // row that sees no key, but no gradient to q or k
        float p = 0.f; bool vis = true;
        if (edge) {
          long long key = e < 2 ? kr0 : kr1, qq = q0 + jq;
          vis = false;
          if (key < Lk && qq < Lq) {
            vis = !(CAUSAL && key > qq + shift);
            float x = vis ? st[n][e] * sl2 : LOWEST;
            p = exp2f((x - mls[2 * jq]) - mls[2 * jq + 1]);
          }
        } else {
          p = exp2f((st[n][e] * sl2 - mls[2 * jq]) - mls[2 * jq + 1]);
        }
        st[n][e] = p;
        dp[n][e] = vis ? p * (dp[n][e] - dls[jq]) : 0.f;
      }
    }
    // dV += P^T dO and dK += dS^T Q (k = queries, two steps of 16)
    #pragma unroll
    for (int c = 0; c < BQ / 16; ++c) {
      unsigned pa[4] = { pack2<BF16>(st[2 * c][0], st[2 * c][1]), pack2<BF16>(st[2 * c][2], st[2 * c][3]),
                         pack2<BF16>(st[2 * c + 1][0], st[2 * c + 1][1]), pack2<BF16>(st[2 * c + 1][2], st[2 * c + 1][3]) };
      unsigned sa[4] = { pack2<BF16>(dp[2 * c][0], dp[2 * c][1]), pack2<BF16>(dp[2 * c][2], dp[2 * c][3]),
                         pack2<BF16>(dp[2 * c + 1][0], dp[2 * c + 1][1]), pack2<BF16>(dp[2 * c + 1][2], dp[2 * c + 1][3]) };
      // matrices: queries (c16, c16 + 8) x head columns (n8, n8 + 8), transposed
      int at = (c * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * QS + (lane >> 4) * 8;
      #pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        unsigned of[4], qf[4];
        ldm4t(of, Os + at + n * 8);
        ldm4t(qf, Qs + at + n * 8);
        mma<BF16>(dv[n], pa, of[0], of[1]);
        mma<BF16>(dv[n + 1], pa, of[2], of[3]);
        mma<BF16>(dk[n], sa, qf[0], qf[1]);
        mma<BF16>(dk[n + 1], sa, qf[2], qf[3]);
      }
    }
    // dS as [query][key] in shared memory for dQ = dS K
    #pragma unroll
    for (int n = 0; n < BQ / 8; ++n) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        int jq = n * 8 + 2 * t4 + (e & 1), jk = warp * 16 + g + (e >= 2 ? 8 : 0);
        Ss[jq * SS + jk] = bits1<BF16>(dp[n][e]);
      }
    }
    __syncthreads();
    {
      // warp w: queries 16 (w & 1) .. + 15, head columns (w >> 1) D/2 .. + D/2 - 1
      int mq = (warp & 1) * 16, nd = (warp >> 1) * (D / 2);
      float dqf[D / 16][4];
      #pragma unroll
      for (int n = 0; n < D / 16; ++n) { dqf[n][0] = 0.f; dqf[n][1] = 0.f; dqf[n][2] = 0.f; dqf[n][3] = 0.f; }
      #pragma unroll
      for (int kk = 0; kk < BK / 16; ++kk) {
        const unsigned short* sr = Ss + (mq + g) * SS + kk * 16 + 2 * t4;
        unsigned a[4] = { u32(sr), u32(sr + 8 * SS), u32(sr + 8), u32(sr + 8 * SS + 8) };
        // matrices: keys (kk16, kk16 + 8) x head columns, transposed
        int at = (kk * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * QS + nd + (lane >> 4) * 8;
        #pragma unroll
        for (int n = 0; n < D / 16; n += 2) {
          unsigned kf[4];
          ldm4t(kf, Ks + at + n * 8);
          mma<BF16>(dqf[n], a, kf[0], kf[1]);
          mma<BF16>(dqf[n + 1], a, kf[2], kf[3]);
        }
      }
      #pragma unroll
      for (int n = 0; n < D / 16; ++n) {
        #pragma unroll
        for (int e = 0; e < 4; ++e) {
          long long qq = q0 + mq + g + (e >= 2 ? 8 : 0);
          int d = nd + n * 8 + 2 * t4 + (e & 1);
          if (qq < Lq) atomicAdd(&dq[(bh * Lq + qq) * D + d], dqf[n][e] * scale);
        }
      }
    }
  }
}
unsigned short* dkp = reinterpret_cast<unsigned short*>(dk_out);
unsigned short* dvp = reinterpret_cast<unsigned short*>(dv_out);
#pragma unroll
for (int n = 0; n < D / 8; ++n) {
  int d = n * 8 + 2 * t4;
  if (kr0 < Lk) {
    *reinterpret_cast<unsigned*>(dkp + (bkv * Lk + kr0) * D + d) = pack2<BF16>(dk[n][0] * scale, dk[n][1] * scale);
    *reinterpret_cast<unsigned*>(dvp + (bkv * Lk + kr0) * D + d) = pack2<BF16>(dv[n][0], dv[n][1]);
  }
  if (kr1 < Lk) {
    *reinterpret_cast<unsigned*>(dkp + (bkv * Lk + kr1) * D + d) = pack2<BF16>(dk[n][2] * scale, dk[n][3] * scale);
    *reinterpret_cast<unsigned*>(dvp + (bkv * Lk + kr1) * D + d) = pack2<BF16>(dv[n][2], dv[n][3]);
  }
}
"""

_kernels = {}


def _kernel(name):
    if name not in _kernels:
        from .fast import cuda_kernel

        if name == "lse":
            _kernels[name] = cuda_kernel("flash_lse", ["q", "k", "Hq", "Hkv", "Lq", "Lk", "sl2"], ["ml"], _LSE, header=_HEADER)
        else:
            _kernels[name] = cuda_kernel(
                "flash_bwd", ["q", "k", "v", "dout", "ml", "delta", "Hq", "Hkv", "Lq", "Lk", "sl2", "scale"],
                ["dq", "dk_out", "dv_out"], _BWD, header=_HEADER)
    return _kernels[name]


def applies(q, k, v, causal, has_mask, has_sinks, stream=None):
    """Whether this backward takes the attention (otherwise the composite's): the GPU
    (sm_80 or newer: float16/bfloat16 mma) is where the stream runs."""
    import os

    from oxmx import _oxmx

    if os.environ.get("OXMX_CUDA_NO_FLASH") or has_sinks or (has_mask and not causal):
        return False
    from .fast import _op_device

    device = _op_device(stream)
    if device != _mx.gpu or not _mx.cuda.is_available():
        return False
    cc = _oxmx._cuda_compute_capability()
    if cc is None or cc[0] < 8:
        return False
    if not (q.dtype in (_mx.bfloat16, _mx.float16) and k.dtype == q.dtype and v.dtype == q.dtype):
        return False
    if q.shape[3] == 128 and v.shape[3] == 128:
        # head size 128 only through cuDNN (the kernels below are written for 64)
        return _cudnn_ready(q, k, causal)
    return (q.shape[3] == 64 and v.shape[3] == 64 and q.shape[0] * q.shape[1] <= 65535
            and q.shape[0] * k.shape[1] <= 65535)


def _cudnn_ready(q, k, causal):
    """Whether cuDNN runs this gradient (OXMX_CUDA_NO_CUDNN_SDPA=1: never)."""
    import os

    from oxmx import _oxmx

    if os.environ.get("OXMX_CUDA_NO_CUDNN_SDPA") or q.dtype not in (_mx.bfloat16, _mx.float16):
        return False
    B, Hq, Lq, D = q.shape
    return _oxmx._cuda_sdpa_grad_ready(B, Hq, k.shape[1], Lq, k.shape[2], D, q.dtype == _mx.bfloat16, bool(causal))


def native_grad(q, k, v, out, dout, scale, causal):
    """(dq, dk, dv) from one ``SdpaGrad`` node (cuDNN on the GPU, GEMMs on the CPU): its
    flat output holds them one after another. ``out`` and ``dout`` take q's dtype."""
    from oxmx import _oxmx

    dt = q.dtype
    out = out if out.dtype == dt else out.astype(dt)
    dout = dout if dout.dtype == dt else dout.astype(dt)
    flat = _oxmx._fast_sdpa_grad(q, k, v, out, dout, float(scale), bool(causal))
    nq, nk = q.size, k.size
    return flat[:nq].reshape(q.shape), flat[nq:nq + nk].reshape(k.shape), flat[nq + nk:].reshape(v.shape)


def attention_vjp(q, k, v, out, dout, scale, causal):
    """(dq, dk, dv) of ``softmax(q k^T scale) v`` at ``out``, for the cotangent ``dout``."""
    B, Hq, Lq, D = q.shape
    Hkv, Lk = k.shape[1], k.shape[2]
    if Lq == 0 or Lk == 0 or B == 0 or Hq == 0:
        return _mx.zeros_like(q), _mx.zeros_like(k), _mx.zeros_like(v)
    dt = q.dtype
    if _cudnn_ready(q, k, causal):
        # cuDNN's fused backward (one node; the backend finds the row statistics the
        # forward kept for its output array)
        return native_grad(q, k, v, out, dout, scale, causal)
    tmpl = [("D", D), ("CAUSAL", bool(causal)), ("BF16", dt == _mx.bfloat16)]
    sl2 = float(scale * math.log2(math.e))
    (ml,) = _kernel("lse")(
        inputs=[q, k, Hq, Hkv, Lq, Lk, sl2], template=tmpl, grid=(-(-Lq // 64) * 128, B * Hq, 1),
        threadgroup=(128, 1, 1), output_shapes=[(B * Hq * Lq * 2,)], output_dtypes=[_mx.float32])
    dout = dout.astype(dt)
    delta = (dout.astype(_mx.float32) * out.astype(_mx.float32)).sum(axis=-1)
    dq, dk, dv = _kernel("bwd")(
        inputs=[q, k, v, dout, ml, delta, Hq, Hkv, Lq, Lk, sl2, float(scale)], template=tmpl,
        grid=(-(-Lk // 64) * 128, B * Hkv, 1), threadgroup=(128, 1, 1),
        output_shapes=[q.shape, k.shape, v.shape], output_dtypes=[_mx.float32, dt, dt])
    return dq.astype(dt), dk, dv
