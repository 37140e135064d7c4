// Tuning lab for the 4-bit tensor-core GEMV of crates/oxmx-cuda/src/quantized.rs
// (gemv_mma_src): the same kernel as a template over its launch shape (and a cp.async
// variant; a persistent-block variant was slower still and is gone), timed on 16
// distinct 4096x4096 / 14336x4096 / 4096x14336 matrices (more bytes than the L2 holds)
// next to a plain 16-byte streaming read of the same bytes. Standalone, for the GPU
// machine (it has nvcc):
//   nvcc -O3 -arch=sm_90 -std=c++17 -diag-suppress 128 -o /tmp/qgemv_lab benchmarks/cuda/qgemv_lab.cu
//   /tmp/qgemv_lab          the oxmx kernel and its neighbours (bfloat16, group 64)
//   /tmp/qgemv_lab v2       version 2, both half types, groups 32/64/128
//   /tmp/qgemv_lab v3       version 3 and its loads alone (the access pattern's ceiling)
//   /tmp/qgemv_lab prof     one shape for ncu
// What was found (H200, 2026-12-02): version 2 (levels into the mma
// undecoded, scales applied per 32 values outside it: ~2.2x fewer decode instructions)
// and version 3 (wider loads per lane, loads 2 steps ahead) run at the same 2.2-2.7 TB/s
// as the oxmx kernel, and so did two variants since removed (the next chunk's scales
// requested with its words; x loaded only by the lanes that use it, each warp on a
// contiguous run of K). Their loads alone reach 3.6-4.5 TB/s, so the access pattern is
// not the limit. ncu on version 2 (14336x4096 float16): ALU pipe 60% of elapsed cycles
// (the integer/logic pipe, at half rate: bit operations, byte permutes, masks and
// 64-bit address arithmetic), issue slots 49% busy, L1 85%, 9.6 cycles per issued
// instruction; so the next step is fewer ALU instructions per weight (x's B fragments
// pre-permuted and masked in shared memory, 32-bit scale offsets), not fewer FMAs.
// Fourth session (2026-12-02): ncu's source view of version 2 puts 26% of all stall
// samples (45% of stall cycles are long-scoreboard) on the first decode of the words
// requested one step ahead; so version 4 streams them through a cp.async ring in
// shared memory, S - 1 steps ahead, with the scales prefetched into L2. Its loads alone
// still reach 3.6-4.4 TB/s, but the whole kernel ran at 1.3-1.9 TB/s, slower with more
// stages (102 registers, 64-bit ring arithmetic, a divergent prefetch branch): more
// bytes in flight does not help while each warp's instruction stream is this long.
//   /tmp/qgemv_lab v4       version 4 next to version 2
// Version 5 (2026-12-03, written without a GPU: not yet compiled or timed; its indexing
// was checked against an exact reference by a CPU emulation of the kernel, threads, warp
// collectives and mma fragments included) cuts what the loop issues per weight. Each block
// converts x once into shared memory: times 2^S (max |x| 2^S in [2^14, 2^15), so bfloat16
// x is exact in float16 too), rounded to float16, laid out as the B registers of the lanes
// that take x (8 of 32 per mma; the others read a zero block), odd positions also divided
// by 16, so that (1024 + 16 q) x / 16 and (1024 + q) x share a column; per group it keeps
// X = sum x and Y = 1024 (sum of even x + sum of odd x / 16). The loop is then loads, one
// shift and four lop3 per word (8 weights, both dtypes; version 2 with 2 tiles: 7 ALU for
// float16 and 9 for bfloat16, x's masks and byte permutes included), and two mma per two
// words (rows g and g + 8). The 8 columns are groups of 2 (group 32) or 4 chunks, so lane
// t adds s (D - Y) + b X for its groups gb + 2t, gb + 2t + 1 (gb + t for group 128) once
// per group and row, scales loaded one flush ahead. Warps: WR row sets x WK contiguous K ranges, 32-bit offsets, 16 bytes
// per lane and row PF chunks ahead (ld.global.nc.L1::no_allocate.L2::256B), the first
// ones and the first scales requested before x is prepared. Accuracy as version 2 (f32
// sums of 1024 X + sum q x, 1024 X taken off per group); "unscaled" skips the max pass.
//   /tmp/qgemv_lab v5       version 5 configurations next to version 2, groups 64/32/128
//   /tmp/qgemv_lab single   one matrix per launch, launches back to back (decode as a model
//                           runs it): version 5 with row blocks small enough to fill the GPU
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
#include <cstring>
#include <algorithm>
#include <type_traits>

#define CK(x) do { cudaError_t e = (x); if (e != cudaSuccess) { printf("CUDA error %s at %d\n", cudaGetErrorString(e), __LINE__); exit(1); } } while (0)

__device__ __forceinline__ unsigned fma2(unsigned a, unsigned b, unsigned c) {
  unsigned d;
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ unsigned deq(unsigned v, int i, unsigned sc, unsigned bi) {
  unsigned p = ((v >> (4 * i)) & 0x000F000Fu) | 0x43004300u;
  return fma2(fma2(p, 0x3F803F80u, 0xC300C300u), sc, bi);
}
// the decode without its two FMAs: what the decode costs (results are wrong)
__device__ __forceinline__ unsigned deq_raw(unsigned v, int i, unsigned, unsigned) {
  return ((v >> (4 * i)) & 0x000F000Fu) | 0x43004300u;
}
template <bool RAW>
__device__ __forceinline__ unsigned dq(unsigned v, int i, unsigned sc, unsigned bi) {
  return RAW ? deq_raw(v, i, sc, bi) : deq(v, i, sc, bi);
}
__device__ __forceinline__ unsigned both(unsigned short h) { return (unsigned)h | ((unsigned)h << 16); }
__device__ __forceinline__ void mma(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// KW warps split K; each warp owns TILES x 16 rows; UNR chunks (128 values of K) per
// iteration; PIPE: the next iteration's words are requested before this one is decoded.
template <int M, int KW, int UNR, int TILES, bool PIPE, int GS, bool RAW = false, int MINB = 1>
__global__ void __launch_bounds__(KW * 32, MINB) gemv(const __nv_bfloat16* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, __nv_bfloat16* __restrict__ out,
    long long N, long long K) {
  constexpr int R = 16 * TILES;
  __shared__ float red[KW][R][8];
  long long packed = K / 8, groups = K / GS;
  long long tiles = (N + R - 1) / R;
  long long bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * R;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  long long ra[TILES], rb[TILES];
  const unsigned* wa[TILES];
  const unsigned* wb[TILES];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {
    ra[tt] = bi * N + min(n0 + 16 * tt + g, N - 1);
    rb[tt] = bi * N + min(n0 + 16 * tt + g + 8, N - 1);
    wa[tt] = w + ra[tt] * packed + t * 4;
    wb[tt] = w + rb[tt] * packed + t * 4;
  }
  bool xon = g < M;
  const __nv_bfloat16* xr = x + (bi * M + (xon ? g : 0)) * K + t * 32;
  float c[TILES][4];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
  long long chunks = K / 128;
  const long long step = (long long)KW * UNR;
  uint4 va[UNR][TILES], vb[UNR][TILES];
  auto load = [&](long long c0, uint4 (&da)[UNR][TILES], uint4 (&db)[UNR][TILES]) {
#pragma unroll
    for (int u = 0; u < UNR; ++u) {
      long long ch = c0 + (long long)u * KW;
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt) {
        if (ch < chunks) {
          da[u][tt] = *reinterpret_cast<const uint4*>(wa[tt] + ch * 16);
          db[u][tt] = *reinterpret_cast<const uint4*>(wb[tt] + ch * 16);
        } else {
          da[u][tt] = make_uint4(0u, 0u, 0u, 0u);
          db[u][tt] = da[u][tt];
        }
      }
    }
  };
  load(warp, va, vb);
  for (long long c0 = warp; c0 < chunks; c0 += step) {
    uint4 na[UNR][TILES], nb[UNR][TILES];
    if (PIPE) load(c0 + step, na, nb);
#pragma unroll
    for (int u = 0; u < UNR; ++u) {
      long long ch = c0 + (long long)u * KW;
      if (ch >= chunks) break;
      long long gi = (ch * 128 + t * 32) / GS;
      unsigned sa[TILES], ba[TILES], sb[TILES], bb[TILES];
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt) {
        sa[tt] = both(s[ra[tt] * groups + gi]); ba[tt] = both(b[ra[tt] * groups + gi]);
        sb[tt] = both(s[rb[tt] * groups + gi]); bb[tt] = both(b[rb[tt] * groups + gi]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint4 xv = xon ? *reinterpret_cast<const uint4*>(xr + ch * 128 + 8 * j) : make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          unsigned lo = h ? xv.y : xv.x, hi = h ? xv.w : xv.z;
          unsigned b0 = __byte_perm(lo, hi, 0x5410), b1 = __byte_perm(lo, hi, 0x7632);
#pragma unroll
          for (int tt = 0; tt < TILES; ++tt) {
            unsigned wa4 = j == 0 ? va[u][tt].x : j == 1 ? va[u][tt].y : j == 2 ? va[u][tt].z : va[u][tt].w;
            unsigned wb4 = j == 0 ? vb[u][tt].x : j == 1 ? vb[u][tt].y : j == 2 ? vb[u][tt].z : vb[u][tt].w;
            mma(c[tt], dq<RAW>(wa4, 2 * h, sa[tt], ba[tt]), dq<RAW>(wb4, 2 * h, sb[tt], bb[tt]),
                dq<RAW>(wa4, 2 * h + 1, sa[tt], ba[tt]), dq<RAW>(wb4, 2 * h + 1, sb[tt], bb[tt]), b0, b1);
          }
        }
      }
    }
    if (PIPE) {
#pragma unroll
      for (int u = 0; u < UNR; ++u)
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt) { va[u][tt] = na[u][tt]; vb[u][tt] = nb[u][tt]; }
    } else if (c0 + step < chunks) {
      load(c0 + step, va, vb);
    }
  }
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {
    red[warp][16 * tt + g][2 * t] = c[tt][0];
    red[warp][16 * tt + g][2 * t + 1] = c[tt][1];
    red[warp][16 * tt + g + 8][2 * t] = c[tt][2];
    red[warp][16 * tt + g + 8][2 * t + 1] = c[tt][3];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < R * 8; i += KW * 32) {
    int row = i >> 3, n = i & 7;
    float v = 0.f;
#pragma unroll
    for (int q = 0; q < KW; ++q) v += red[q][row][n];
    if (n < M && n0 + row < N) out[(bi * M + n) * N + n0 + row] = __float2bfloat16_rn(v);
  }
}


template <bool F16> __device__ __forceinline__ float h2f(unsigned h) {
  if (F16) return __half2float(__ushort_as_half((unsigned short)h));
  return __uint_as_float(h << 16);
}
template <bool F16> __device__ __forceinline__ unsigned short f2h_dev(float f) {
  if (F16) return __half_as_ushort(__float2half_rn(f));
  return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}
template <bool F16>
__device__ __forceinline__ void mma_t(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  if (F16)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  else
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Shared by versions 3 and 4.
// Sums of x's even and odd values over each 32-value slot, into xs[2 slot + parity].
template <bool F16>
__device__ __forceinline__ void slot_sums(const unsigned short* xb, long long K, float* xs, int tid, int nthreads) {
  for (long long i = tid; i < K / 32; i += nthreads) {
    const uint4* p = reinterpret_cast<const uint4*>(xb + i * 32);
    float ev = 0.f, od = 0.f;
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      uint4 v = p[q];
      unsigned u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
      for (int e = 0; e < 4; ++e) { ev += h2f<F16>(u[e] & 0xFFFFu); od += h2f<F16>(u[e] >> 16); }
    }
    xs[2 * i] = ev;
    xs[2 * i + 1] = od;
  }
}

// A lane's column role in versions 3 and 4: which half of x it keeps (its D column), whether
// its column sums are the odd nibbles, and the first of the two column slots it scales.
struct SlotLane {
  unsigned xmask;
  bool hi;
  int sl0;
  __device__ SlotLane(int g, int t)
      : xmask(g == t ? 0x0000FFFFu : g == t + 4 ? 0xFFFF0000u : 0u), hi(t >= 2), sl0((2 * t) & 3) {}
};

// One 32-value slot per lane: the slot's x (at xr, masked to this lane's column) against
// the words of its rows (cur[2 tt + r]: row g + 8 r of tile tt), levels undecoded.
template <bool F16, int TILES>
__device__ __forceinline__ void slot_mma(float (&c)[TILES][4], const unsigned short* xr, unsigned xmask, const uint4* cur) {
  constexpr unsigned MAGIC = F16 ? 0x64006400u : 0x43004300u;
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    uint4 xv = *reinterpret_cast<const uint4*>(xr + 8 * j);
    xv.x &= xmask; xv.y &= xmask; xv.z &= xmask; xv.w &= xmask;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      unsigned lo = h ? xv.y : xv.x, hx = h ? xv.w : xv.z;
      unsigned b0 = __byte_perm(lo, hx, 0x5410), b1 = __byte_perm(lo, hx, 0x7632);
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt) {
        unsigned a[2], bb[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          const uint4& V = cur[2 * tt + r];
          unsigned wd = j == 0 ? V.x : j == 1 ? V.y : j == 2 ? V.z : V.w;
          unsigned uu = h ? wd >> 8 : wd;
          a[r] = (uu & 0x000F000Fu) | MAGIC;
          bb[r] = F16 ? ((uu & 0x00F000F0u) | MAGIC) : (((uu >> 4) & 0x000F000Fu) | MAGIC);
        }
        mma_t<F16>(c[tt], a[0], a[1], bb[0], bb[1], b0, b1);
      }
    }
  }
}

// Scales and biases applied to one slot pair's column sums (slots s0 and s1 = s0 + STEP).
template <bool F16, int TILES, int GS, int STEP>
__device__ __forceinline__ void slot_scale(float (&acc)[TILES][2], const float (&c)[TILES][4], const long long (&rows)[TILES][2],
    long long groups, const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, const float* xs,
    long long s0, bool hi) {
  constexpr float M0 = F16 ? 1024.f : 128.f;
  constexpr float FH = F16 ? 1.f / 16.f : 1.f;
  long long s1 = s0 + STEP;
  float fh = hi ? FH : 1.f;
  float X0 = xs[2 * s0 + hi], X1 = xs[2 * s1 + hi];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      long long base = rows[tt][r] * groups;
      float d0 = c[tt][2 * r], d1 = c[tt][2 * r + 1];
      if (GS >= 64 * STEP) {
        long long gi = s0 * 32 / GS;
        float sc = h2f<F16>(s[base + gi]) * fh, bv = h2f<F16>(b[base + gi]);
        float xx = X0 + X1;
        acc[tt][r] = fmaf(sc, fmaf(-M0, xx, d0 + d1), acc[tt][r]);
        acc[tt][r] = fmaf(bv, xx, acc[tt][r]);
      } else if (GS == 32 && STEP == 1) {
        unsigned sp = *reinterpret_cast<const unsigned*>(s + base + s0);
        unsigned bp = *reinterpret_cast<const unsigned*>(b + base + s0);
        acc[tt][r] = fmaf(h2f<F16>(sp & 0xFFFFu) * fh, fmaf(-M0, X0, d0), acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(bp & 0xFFFFu), X0, acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(sp >> 16) * fh, fmaf(-M0, X1, d1), acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(bp >> 16), X1, acc[tt][r]);
      } else {
        long long g0 = s0 * 32 / GS, g1 = s1 * 32 / GS;
        acc[tt][r] = fmaf(h2f<F16>(s[base + g0]) * fh, fmaf(-M0, X0, d0), acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(b[base + g0]), X0, acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(s[base + g1]) * fh, fmaf(-M0, X1, d1), acc[tt][r]);
        acc[tt][r] = fmaf(h2f<F16>(b[base + g1]), X1, acc[tt][r]);
      }
    }
}

// The warps' row sums added through shared memory and stored.
template <bool F16, int KW, int TILES>
__device__ __forceinline__ void store_rows(float (&acc)[TILES][2], float (&red)[KW][16 * TILES], int warp, int g, int t,
    long long n0, long long N, long long bi, unsigned short* __restrict__ out) {
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float a = acc[tt][r];
      a += __shfl_xor_sync(0xffffffffu, a, 1);
      a += __shfl_xor_sync(0xffffffffu, a, 2);
      if (t == 0) red[warp][16 * tt + g + 8 * r] = a;
    }
  __syncthreads();
  for (int i = threadIdx.x; i < 16 * TILES; i += KW * 32) {
    float a = 0.f;
#pragma unroll
    for (int q = 0; q < KW; ++q) a += red[q][i];
    if (n0 + i < N) out[bi * N + n0 + i] = f2h_dev<F16>(a);
  }
}

// Version 2 (batch 1; it is version 3 below with W = PF = 1): the levels go into the mma
// undecoded, (2^p + level) straight from
// one bit operation, and scale and bias are applied once per 32 values, outside the mma.
// The trick: x has one row, so 7 of the mma's 8 columns were zeros. Column c < 4 now
// takes x only at the "lo" k-slots of lane t = c, column 4 + c only at its "hi" k-slots,
// so after a chunk's 8 steps D[r][c] holds 2^p * X + F * sum(q x) for one 32-value slot
// (one group) and one half of its nibbles; X (sums of x over each slot's even and odd
// values) is computed once per block into shared memory. float16: the odd nibbles come
// from the same word masked with 0x00F0 (level * 16 + 2^10, exact), so a word costs one
// shift and four bit operations; bfloat16 has 7 mantissa bits, so its odd nibbles are
// shifted down (F = 1).

// Version 3: version 2 with W 16-byte words per lane and row (a quad of lanes reads 64 W
// contiguous bytes of a row per step) and loads requested PF steps ahead. Lane t, sub-step
// u covers the 32-value slot it * 4W + t W + u; X is indexed by slot. READ: only the loads
// (the access pattern's own ceiling; results are wrong).
template <bool F16, int KW, int TILES, int GS, int W, int PF, bool READ = false>
__global__ void __launch_bounds__(KW * 32) gemv3(const unsigned short* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, unsigned short* __restrict__ out,
    long long N, long long K) {
  constexpr int R = 16 * TILES;
  extern __shared__ float xs[];  // [slot][lo, hi]
  __shared__ float red[KW][R];
  long long packed = K / 8, groups = K / GS, steps = K / (128 * W);
  long long tiles = (N + R - 1) / R;
  long long bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * R;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const unsigned short* xb = x + bi * K;
  if (!READ) {
    slot_sums<F16>(xb, K, xs, threadIdx.x, KW * 32);
    __syncthreads();
  }
  long long rows[TILES][2];
  const unsigned* wp[TILES][2];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[tt][r] = bi * N + min(n0 + 16 * tt + g + 8 * r, N - 1);
      wp[tt][r] = w + rows[tt][r] * packed + t * 4 * W;
    }
  const SlotLane sl(g, t);
  const unsigned xmask = sl.xmask;
  const bool hi = sl.hi;
  const int sl0 = sl.sl0;
  float acc[TILES][2] = {};
  float c[TILES][4];
  unsigned sink = 0;
  uint4 v[PF][TILES][2][W];
  auto load = [&](long long it, uint4 (&d)[TILES][2][W]) {
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
      for (int r = 0; r < 2; ++r)
#pragma unroll
        for (int u = 0; u < W; ++u)
          d[tt][r][u] = it < steps ? *reinterpret_cast<const uint4*>(wp[tt][r] + it * 16 * W + 4 * u) : make_uint4(0u, 0u, 0u, 0u);
  };
#pragma unroll
  for (int q = 0; q < PF; ++q) load(warp + (long long)q * KW, v[q]);
  for (long long it0 = warp; it0 < steps; it0 += (long long)KW * PF) {
#pragma unroll
    for (int q = 0; q < PF; ++q) {
      long long it = it0 + (long long)q * KW;
      uint4 cur[TILES][2][W];
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
        for (int r = 0; r < 2; ++r)
#pragma unroll
          for (int u = 0; u < W; ++u) cur[tt][r][u] = v[q][tt][r][u];
      load(it + (long long)KW * PF, v[q]);
      if (it >= steps) break;
      if (READ) {
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
          for (int r = 0; r < 2; ++r)
#pragma unroll
            for (int u = 0; u < W; ++u) sink ^= cur[tt][r][u].x ^ cur[tt][r][u].y ^ cur[tt][r][u].z ^ cur[tt][r][u].w;
        continue;
      }
#pragma unroll
      for (int u = 0; u < W; ++u) {
        long long slot = it * 4 * W + (long long)t * W + u;  // this lane's slot (its x)
        uint4 words[2 * TILES];
#pragma unroll
        for (int e = 0; e < 2 * TILES; ++e) words[e] = cur[e / 2][e % 2][u];
        slot_mma<F16, TILES>(c, xb + slot * 32, xmask, words);
        // the two column slots of this lane: lanes sl0 and sl0 + 1 of this sub-step
        slot_scale<F16, TILES, GS, W>(acc, c, rows, groups, s, b, xs, it * 4 * W + (long long)sl0 * W + u, hi);
      }
    }
  }
  if (READ) acc[0][0] = (float)(sink & 1u);
  store_rows<F16, KW, TILES>(acc, red, warp, g, t, n0, N, bi, out);
}


// Version 4: version 2 (W = 1) with each lane's 16-byte words of W streamed through a
// ring of S stages in shared memory by cp.async, S - 1 steps ahead (ncu on version 2:
// 45% of warp stalls wait on the words requested one step ahead, and registers cap the
// warps per SM; a ring holds more bytes in flight without registers). Each lane reads
// back only what it copied itself, so no barrier is needed. The scales' lines are
// prefetched into L2 with the words. XSM: the block sums x into shared memory after
// its first requests are out.
__device__ __forceinline__ void cp16(void* smem, const void* gmem, bool on) {
  unsigned a = (unsigned)__cvta_generic_to_shared(smem);
  int n = on ? 16 : 0;  // src-size 0: fills zeros, reads nothing
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(a), "l"(gmem), "r"(n));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;"); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N)); }

template <bool F16, int KW, int TILES, int GS, int S, bool READ = false>
__global__ void __launch_bounds__(KW * 32) gemv4(const unsigned short* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, unsigned short* __restrict__ out,
    long long N, long long K) {
  constexpr int R = 16 * TILES, Q = 2 * TILES;
  extern __shared__ float xs[];  // [slot][lo, hi], then the rings
  __shared__ float red[KW][R];
  long long packed = K / 8, groups = K / GS, steps = K / 128;
  long long tiles = (N + R - 1) / R;
  long long bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * R;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const unsigned short* xb = x + bi * K;
  uint4* ring = reinterpret_cast<uint4*>(xs + K / 16) + (long long)warp * S * Q * 32 + lane;  // [S][Q][32 lanes]
  long long rows[TILES][2];
  const unsigned* wp[Q];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      rows[tt][r] = bi * N + min(n0 + 16 * tt + g + 8 * r, N - 1);
      wp[2 * tt + r] = w + rows[tt][r] * packed + t * 4;
    }
  auto issue = [&](long long i) {  // step warp + i KW into stage i % S
    long long it = warp + i * KW;
    bool on = it < steps;
    long long itc = on ? it : 0;
    uint4* d = ring + (int)(i % S) * Q * 32;
#pragma unroll
    for (int q = 0; q < Q; ++q) cp16(d + q * 32, wp[q] + itc * 16, on);
    if (!READ && on && t == 0) {
#pragma unroll
      for (int q = 0; q < Q; ++q) {
        const unsigned short* sp = s + rows[q / 2][q % 2] * groups + itc * 128 / GS;
        asm volatile("prefetch.global.L2 [%0];" ::"l"(sp));
        asm volatile("prefetch.global.L2 [%0];" ::"l"(b + (sp - s)));
      }
    }
    cp_commit();
  };
#pragma unroll
  for (int i = 0; i < S - 1; ++i) issue(i);
  if (!READ) {
    slot_sums<F16>(xb, K, xs, threadIdx.x, KW * 32);
    __syncthreads();
  }
  const SlotLane sl(g, t);
  const unsigned xmask = sl.xmask;
  const bool hi = sl.hi;
  const int sl0 = sl.sl0;
  float acc[TILES][2] = {};
  float c[TILES][4];
  unsigned sink = 0;
  long long i = 0;
  for (long long it = warp; it < steps; it += KW, ++i) {
    cp_wait<S - 2>();
    uint4 cur[Q];
    const uint4* sr = ring + (int)(i % S) * Q * 32;
#pragma unroll
    for (int q = 0; q < Q; ++q) cur[q] = sr[q * 32];
    if (READ) {
#pragma unroll
      for (int q = 0; q < Q; ++q) sink ^= cur[q].x ^ cur[q].y ^ cur[q].z ^ cur[q].w;
      issue(i + S - 1);
      continue;
    }
    slot_mma<F16, TILES>(c, xb + (it * 4 + t) * 32, xmask, cur);  // this lane's slot
    issue(i + S - 1);
    slot_scale<F16, TILES, GS, 1>(acc, c, rows, groups, s, b, xs, it * 4 + sl0, hi);
  }
  cp_wait<0>();
  if (READ) acc[0][0] = (float)(sink & 1u);
  store_rows<F16, KW, TILES>(acc, red, warp, g, t, n0, N, bi, out);
}

// the memory ceiling with 4 loads in flight per thread
__global__ void readall4(const uint4* __restrict__ p, long long n, unsigned* sink) {
  unsigned acc = 0;
  long long stride = (long long)gridDim.x * blockDim.x;
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    uint4 a = p[i], b2 = p[i + stride], c2 = p[i + 2 * stride], d = p[i + 3 * stride];
    acc ^= a.x ^ a.y ^ a.z ^ a.w ^ b2.x ^ b2.y ^ b2.z ^ b2.w ^ c2.x ^ c2.y ^ c2.z ^ c2.w ^ d.x ^ d.y ^ d.z ^ d.w;
  }
  for (; i < n; i += stride) { uint4 a = p[i]; acc ^= a.x ^ a.y ^ a.z ^ a.w; }
  if (acc == 0x12345678u) sink[0] = acc;
}

// cp.async form: each lane streams its own 16-byte pieces of W through a ring of S
// stages in shared memory (S - 1 steps requested ahead, no registers held for them);
// the scales and x of the next step are loaded into registers one step ahead.
template <int M, int KW, int TILES, int S, int GS, int MINB = 1>
__global__ void __launch_bounds__(KW * 32, MINB) gemva(const __nv_bfloat16* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, __nv_bfloat16* __restrict__ out,
    long long N, long long K) {
  constexpr int R = 16 * TILES;
  __shared__ float red[KW][R][8];
  __shared__ __align__(16) uint4 ring[KW][S][2 * TILES][32];
  long long packed = K / 8, groups = K / GS;
  long long tiles = (N + R - 1) / R;
  long long bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * R;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  long long rows[2 * TILES];
  const unsigned* wp[2 * TILES];
#pragma unroll
  for (int q = 0; q < 2 * TILES; ++q) {
    rows[q] = bi * N + min(n0 + 16 * (q >> 1) + g + 8 * (q & 1), N - 1);
    wp[q] = w + rows[q] * packed + t * 4;
  }
  bool xon = g < M;
  const __nv_bfloat16* xr = x + (bi * M + (xon ? g : 0)) * K + t * 32;
  long long chunks = K / 128;
  long long steps = warp < chunks ? (chunks - warp + KW - 1) / KW : 0;
  auto issue = [&](long long i) {
    int st = (int)(i % S);
    bool ok = i < steps;
    long long ch = warp + i * KW;
#pragma unroll
    for (int q = 0; q < 2 * TILES; ++q) {
      const unsigned* src = wp[q] + (ok ? ch * 16 : 0);
      unsigned dst = (unsigned)__cvta_generic_to_shared(&ring[warp][st][q][lane]);
      asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(ok ? 16 : 0));
    }
    asm volatile("cp.async.commit_group;");
  };
  unsigned short sc[2 * TILES], bs[2 * TILES];
  uint4 xv[4];
  auto side = [&](long long i, unsigned short (&sc_)[2 * TILES], unsigned short (&bs_)[2 * TILES], uint4 (&xv_)[4]) {
    long long ch = warp + min(i, steps - 1) * KW;
    long long gi = (ch * 128 + t * 32) / GS;
#pragma unroll
    for (int q = 0; q < 2 * TILES; ++q) { sc_[q] = s[rows[q] * groups + gi]; bs_[q] = b[rows[q] * groups + gi]; }
#pragma unroll
    for (int j = 0; j < 4; ++j) xv_[j] = xon ? *reinterpret_cast<const uint4*>(xr + ch * 128 + 8 * j) : make_uint4(0u, 0u, 0u, 0u);
  };
  float c[TILES][4];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
#pragma unroll
  for (int i = 0; i < S - 1; ++i) issue(i);
  if (steps > 0) side(0, sc, bs, xv);
  for (long long i = 0; i < steps; ++i) {
    issue(i + S - 1);
    unsigned short nsc[2 * TILES], nbs[2 * TILES];
    uint4 nxv[4];
    side(i + 1, nsc, nbs, nxv);
    asm volatile("cp.async.wait_group %0;" ::"n"(S - 1));
    int st = (int)(i % S);
    uint4 v[2 * TILES];
#pragma unroll
    for (int q = 0; q < 2 * TILES; ++q) v[q] = ring[warp][st][q][lane];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        unsigned lo = h ? xv[j].y : xv[j].x, hi = h ? xv[j].w : xv[j].z;
        unsigned b0 = __byte_perm(lo, hi, 0x5410), b1 = __byte_perm(lo, hi, 0x7632);
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt) {
          const uint4& A = v[2 * tt];
          const uint4& B = v[2 * tt + 1];
          unsigned wa4 = j == 0 ? A.x : j == 1 ? A.y : j == 2 ? A.z : A.w;
          unsigned wb4 = j == 0 ? B.x : j == 1 ? B.y : j == 2 ? B.z : B.w;
          unsigned sa = both(sc[2 * tt]), ba = both(bs[2 * tt]), sb = both(sc[2 * tt + 1]), bb = both(bs[2 * tt + 1]);
          mma(c[tt], deq(wa4, 2 * h, sa, ba), deq(wb4, 2 * h, sb, bb), deq(wa4, 2 * h + 1, sa, ba),
              deq(wb4, 2 * h + 1, sb, bb), b0, b1);
        }
      }
    }
#pragma unroll
    for (int q = 0; q < 2 * TILES; ++q) { sc[q] = nsc[q]; bs[q] = nbs[q]; }
#pragma unroll
    for (int j = 0; j < 4; ++j) xv[j] = nxv[j];
  }
  asm volatile("cp.async.wait_group 0;");
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {
    red[warp][16 * tt + g][2 * t] = c[tt][0];
    red[warp][16 * tt + g][2 * t + 1] = c[tt][1];
    red[warp][16 * tt + g + 8][2 * t] = c[tt][2];
    red[warp][16 * tt + g + 8][2 * t + 1] = c[tt][3];
  }
  __syncthreads();
  for (int i = threadIdx.x; i < R * 8; i += KW * 32) {
    int row = i >> 3, n = i & 7;
    float v = 0.f;
#pragma unroll
    for (int q = 0; q < KW; ++q) v += red[q][row][n];
    if (n < M && n0 + row < N) out[(bi * M + n) * N + n0 + row] = __float2bfloat16_rn(v);
  }
}

// Version 5 (batch 1): version 2's undecoded levels with everything but the decode moved
// out of the streaming loop (see the header). Block: WR x WK warps; warp (wr, wk) owns
// rows n0 + 16 (TILES wr + tt) + g + 8 r and the contiguous chunks wk CW .. (wk + 1) CW - 1
// (a chunk: 128 values of K, 16 bytes of each row per lane t, slot t of the chunk).
// The mma's 8 columns are groups: column col(p, h) takes group h of the p-th chunk of a
// flush (CPF chunks), so lane (g, t) takes x in a chunk of phase p only when g == col(p, h)
// (pa below); the other lanes read a zero block. After a flush lane t holds, for rows g
// and g + 8, the groups gb + 2t and gb + 2t + 1 (gb + t for group 128) in c[2r], c[2r+1].

// f32 pair -> f16x2, lo in the low half (cvt puts its first source in the high half)
__device__ __forceinline__ unsigned pack_h2(float lo, float hi) {
  unsigned d;
  asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(d) : "f"(hi), "f"(lo));
  return d;
}
// (v & MASK) | 0x64006400 in one lop3 (0xEA = (a & b) | c): the f16 pairs 1024 + level
// (MASK 0x000F000F: levels 0 and 4 of v) or 1024 + 16 level (0x00F000F0: levels 1 and 5)
template <unsigned MASK>
__device__ __forceinline__ unsigned lvl(unsigned v) {
  unsigned d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;" : "=r"(d) : "r"(v), "n"(MASK), "n"(0x64006400u));
  return d;
}
// 16 bytes of W; NC: past L1, and L2 fetches the whole 256-byte block (the next 3 chunks)
template <bool NC>
__device__ __forceinline__ uint4 ldw(const uint4* p) {
  if constexpr (NC) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
  } else {
    return *p;
  }
}

// A flush's scales and biases: for each row, group gb + so (NGL = 2: that group and the
// next, one 32-bit load, so is even)
template <int NGL, int TILES>
__device__ __forceinline__ void v5_scales(unsigned (&sc)[TILES][2], unsigned (&bc)[TILES][2], const int (&so)[TILES][2], int gb,
    const unsigned short* __restrict__ sg, const unsigned short* __restrict__ bg) {
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int i = so[tt][r] + gb;
      if constexpr (NGL == 2) {
        sc[tt][r] = *reinterpret_cast<const unsigned*>(sg + i);
        bc[tt][r] = *reinterpret_cast<const unsigned*>(bg + i);
      } else {
        sc[tt][r] = sg[i];
        bc[tt][r] = bg[i];
      }
    }
}

// SCALE: x scaled by 2^S first (false: S = 0, wrong for |x| past the float16 range or
// mostly below 2^-10; only to time the max pass). Host checks: M = 1, K % (512 WK) == 0,
// N K / 8 < 2^31 (32-bit offsets within a matrix).
template <bool F16, int GS, int WR, int WK, int TILES, int PF, int MINB = 1, bool SCALE = true, bool NC = true>
__global__ void __launch_bounds__(WR * WK * 32, MINB) gemv5(const unsigned short* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, unsigned short* __restrict__ out,
    long long N_, long long K_) {
  static_assert(GS == 32 || GS == 64 || GS == 128, "group size 32, 64 or 128");
  static_assert(PF == 1 || PF == 2 || PF == 4, "PF divides the 4 chunks of an iteration");
  constexpr int NT = WR * WK * 32, R = 16 * TILES * WR, U = 4;  // U: chunks per loop iteration
  constexpr int G = 128 / GS;             // groups per chunk
  constexpr int CPF = GS == 32 ? 2 : 4;   // chunks per flush (8 columns: G CPF groups, 4 for group 128)
  constexpr int NFI = U / CPF;            // flushes per iteration
  constexpr int NGL = GS == 128 ? 1 : 2;  // groups per lane per flush
  extern __shared__ __align__(16) unsigned char v5sm[];
  const int N = (int)N_, K = (int)K_;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const int wr = warp % WR, wk = warp / WR;
  const int tiles = (N + R - 1) / R;
  const int bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * R;
  const int packed = K / 8, groups = K / GS;
  const int CW = K / 128 / WK, cbeg = wk * CW, NIT = CW / U;
  // shared memory (bytes): x's fragments [chunk][even 128 | odd 128] at 0, zeros at XF (ZB is
  // bank-shifted from the fragments' 32t), (X, Y) per group at XYO, row sums [WK][R] at REDO
  const int XF = 2 * K, ZB = XF + 16, XYO = XF + 192, REDO = XYO + 8 * groups;
  const unsigned short* xb = x + (size_t)bi * K;
  const unsigned* wm = w + (size_t)bi * N * packed;
  const unsigned short* sg = s + (size_t)bi * N * groups;
  const unsigned short* bg = b + (size_t)bi * N * groups;
  const uint4* wp[TILES][2];
  int so[TILES][2];  // this lane's first scale of each row, less the flush's group base
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = min(n0 + 16 * (TILES * wr + tt) + 8 * r + g, N - 1);  // past N: read N - 1, not stored
      wp[tt][r] = reinterpret_cast<const uint4*>(wm + (size_t)row * packed) + 4 * cbeg + t;
      so[tt][r] = row * groups + (NGL == 2 ? 2 * t : t);
    }
  // the first PF chunks' words and the first flush's scales are requested before x is prepared
  uint4 buf[PF][TILES][2];
#pragma unroll
  for (int q = 0; q < PF; ++q)
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
      for (int r = 0; r < 2; ++r) buf[q][tt][r] = ldw<NC>(wp[tt][r] + 4 * q);
  unsigned sc[TILES][2], bc[TILES][2];
  v5_scales<NGL>(sc, bc, so, G * cbeg, sg, bg);

  // x, once per block: times 2^S (max |x| 2^S in [2^14, 2^15): bfloat16 and float16 values
  // are then exact in float16), rounded to float16, odd positions also divided by 16.
  // Piece i = 8 values = word i % 4 of slot (i / 4) % 4 of chunk i / 16; its B registers
  // (levels 0,4 | 2,6 and 1,5 | 3,7 of the word) go to 8 i + 128 (i / 16) and + 128.
  int S = 0;
  if constexpr (SCALE) {
    unsigned mh = 0u, ml = 0u;  // largest |x| bit pattern, high and low halves
    for (int i = threadIdx.x; i < K / 8; i += NT) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(xb) + i);
      mh = max(mh, max(max(v.x & 0x7FFF0000u, v.y & 0x7FFF0000u), max(v.z & 0x7FFF0000u, v.w & 0x7FFF0000u)));
      ml = max(ml, max(max(v.x << 17, v.y << 17), max(v.z << 17, v.w << 17)));
    }
    unsigned m = __reduce_max_sync(0xffffffffu, max(mh >> 16, ml >> 17));
    unsigned* mx = reinterpret_cast<unsigned*>(v5sm + REDO + 4 * WK * R);
    if (lane == 0) mx[warp] = m;
    __syncthreads();
#pragma unroll
    for (int q = 0; q < NT / 32; ++q) m = max(m, mx[q]);
    // exponent e of max |x| (subnormal: below its field's); S in [-114, 126] for any input
    if (m != 0u) S = min(126, 14 - (F16 ? (int)(m >> 10) - 15 : (int)(m >> 7) - 127));
  }
  const float fe = __int_as_float((127 + S) << 23), fo = __int_as_float((123 + S) << 23);  // 2^S, 2^(S-4)
  for (int i = threadIdx.x; i < K / 8; i += NT) {  // K / 8 and NT are multiples of 32: whole warps
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(xb) + i);
    const float x0 = h2f<F16>(v.x & 0xFFFFu) * fe, x2 = h2f<F16>(v.y & 0xFFFFu) * fe;
    const float x4 = h2f<F16>(v.z & 0xFFFFu) * fe, x6 = h2f<F16>(v.w & 0xFFFFu) * fe;
    const float x1 = h2f<F16>(v.x >> 16) * fo, x3 = h2f<F16>(v.y >> 16) * fo;
    const float x5 = h2f<F16>(v.z >> 16) * fo, x7 = h2f<F16>(v.w >> 16) * fo;
    unsigned char* dst = v5sm + 8 * i + 128 * (i >> 4);
    *reinterpret_cast<uint2*>(dst) = make_uint2(pack_h2(x0, x4), pack_h2(x2, x6));
    *reinterpret_cast<uint2*>(dst + 128) = make_uint2(pack_h2(x1, x5), pack_h2(x3, x7));
    // X: sum of (scaled) x; Y = 1024 (even + odd / 16), what the offsets add to a column
    const float ev = (x0 + x2) + (x4 + x6), od = (x1 + x3) + (x5 + x7);
    float X = fmaf(16.f, od, ev), Y = 1024.f * (ev + od);
#pragma unroll
    for (int m = 1; m < GS / 8; m <<= 1) {  // a group's GS / 8 pieces are adjacent lanes
      X += __shfl_xor_sync(0xffffffffu, X, m);
      Y += __shfl_xor_sync(0xffffffffu, Y, m);
    }
    if ((i & (GS / 8 - 1)) == 0) reinterpret_cast<float2*>(v5sm + XYO)[i / (GS / 8)] = make_float2(X, Y);
  }
  if (threadIdx.x < 12) reinterpret_cast<uint4*>(v5sm + XF)[threadIdx.x] = make_uint4(0u, 0u, 0u, 0u);
  __syncthreads();

  // the phase (chunk of a flush) at which column g takes this lane's x, if any
  int pa = -1;
#pragma unroll
  for (int p = 0; p < CPF; ++p)
    if (g == (GS == 32 ? 4 * p + t : GS == 64 ? 2 * p + (t >> 1) : 2 * p)) pa = p;
  float c[TILES][4], y[TILES][2];
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {
    c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
    y[tt][0] = y[tt][1] = 0.f;
  }
  for (int it = 0; it < NIT; ++it) {
    const int ib = 256 * (cbeg + U * it) + 32 * t;  // this lane's fragments in the iteration's first chunk
#pragma unroll
    for (int u = 0; u < U; ++u) {
      uint4 cur[TILES][2];
#pragma unroll
      for (int tt = 0; tt < TILES; ++tt) { cur[tt][0] = buf[u % PF][tt][0]; cur[tt][1] = buf[u % PF][tt][1]; }
      if (u + PF < U || it + 1 < NIT) {  // chunk U it + u + PF
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
          for (int r = 0; r < 2; ++r) buf[u % PF][tt][r] = ldw<NC>(wp[tt][r] + 4 * (u + PF));
      }
      const uint4* bq = reinterpret_cast<const uint4*>(v5sm + (pa == u % CPF ? ib + 256 * u : ZB));
      const uint4 e0 = bq[0], e1 = bq[1], o0 = bq[8], o1 = bq[9];
      const unsigned be[8] = {e0.x, e0.y, e0.z, e0.w, e1.x, e1.y, e1.z, e1.w};
      const unsigned bo[8] = {o0.x, o0.y, o0.z, o0.w, o1.x, o1.y, o1.z, o1.w};
#pragma unroll
      for (int j = 0; j < 4; ++j)
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt) {
          const uint4& A = cur[tt][0];
          const uint4& B = cur[tt][1];
          const unsigned va = j == 0 ? A.x : j == 1 ? A.y : j == 2 ? A.z : A.w;  // row g, word j
          const unsigned vb = j == 0 ? B.x : j == 1 ? B.y : j == 2 ? B.z : B.w;  // row g + 8
          const unsigned ha = va >> 8, hb = vb >> 8;
          // k 2t, 2t+1: levels (0, 4) then (2, 6); k 2t+8, 2t+9: (1, 5) then (3, 7), times 16
          mma_t<true>(c[tt], lvl<0x000F000Fu>(va), lvl<0x000F000Fu>(vb), lvl<0x00F000F0u>(va), lvl<0x00F000F0u>(vb),
                      be[2 * j], bo[2 * j]);
          mma_t<true>(c[tt], lvl<0x000F000Fu>(ha), lvl<0x000F000Fu>(hb), lvl<0x00F000F0u>(ha), lvl<0x00F000F0u>(hb),
                      be[2 * j + 1], bo[2 * j + 1]);
        }
      if ((u + 1) % CPF == 0) {  // flush: y += s (D - Y) + b X per group, then the next flush's scales
        const int gb = G * (cbeg + CPF * (NFI * it + u / CPF));
        if constexpr (NGL == 2) {
          const float4 q = *reinterpret_cast<const float4*>(v5sm + XYO + 8 * (gb + 2 * t));
#pragma unroll
          for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              float a = y[tt][r];
              a = fmaf(h2f<F16>(sc[tt][r] & 0xFFFFu), c[tt][2 * r] - q.y, a);
              a = fmaf(h2f<F16>(bc[tt][r] & 0xFFFFu), q.x, a);
              a = fmaf(h2f<F16>(sc[tt][r] >> 16), c[tt][2 * r + 1] - q.w, a);
              a = fmaf(h2f<F16>(bc[tt][r] >> 16), q.z, a);
              y[tt][r] = a;
            }
        } else {
          const float2 q = *reinterpret_cast<const float2*>(v5sm + XYO + 8 * (gb + t));
#pragma unroll
          for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              float a = y[tt][r];
              a = fmaf(h2f<F16>(sc[tt][r]), c[tt][2 * r] - q.y, a);
              a = fmaf(h2f<F16>(bc[tt][r]), q.x, a);
              y[tt][r] = a;
            }
        }
#pragma unroll
        for (int tt = 0; tt < TILES; ++tt) c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
        if (u / CPF + 1 < NFI || it + 1 < NIT) v5_scales<NGL>(sc, bc, so, gb + CPF * G, sg, bg);
      }
    }
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt) { wp[tt][0] += 4 * U; wp[tt][1] += 4 * U; }
  }
  // the quad's groups, then the WK warps of a row, through shared memory
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float a = y[tt][r];
      a += __shfl_xor_sync(0xffffffffu, a, 1);
      a += __shfl_xor_sync(0xffffffffu, a, 2);
      y[tt][r] = a;
    }
  float* red = reinterpret_cast<float*>(v5sm + REDO);
  if (t == 0) {
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
      for (int r = 0; r < 2; ++r) red[R * wk + 16 * (TILES * wr + tt) + 8 * r + g] = y[tt][r];
  }
  __syncthreads();
  const float inv = __int_as_float((127 - S) << 23);  // 2^-S
  for (int i = threadIdx.x; i < R; i += NT) {
    float a = 0.f;
#pragma unroll
    for (int q = 0; q < WK; ++q) a += red[R * q + i];
    if (n0 + i < N) out[(size_t)bi * N + n0 + i] = f2h_dev<F16>(a * inv);
  }
}

static unsigned short f2bf(float f) { unsigned u; memcpy(&u, &f, 4); u += 0x7FFF + ((u >> 16) & 1); return (unsigned short)(u >> 16); }
static float bf2f(unsigned short h) { unsigned u = (unsigned)h << 16; float f; memcpy(&f, &u, 4); return f; }

static unsigned short f2h_host(float f) { return __half_as_ushort(__float2half_rn(f)); }
static float h2f_host(unsigned short h) { return __half2float(__ushort_as_half(h)); }

struct Problem {
  int E, N, K, M, GS;
  bool f16;
  std::vector<unsigned> w; std::vector<unsigned short> s, b, x;
  unsigned* dw; unsigned short *ds, *db, *dx, *dout;
  double bytes;
  unsigned short enc(float f) const { return f16 ? f2h_host(f) : f2bf(f); }
  float dec(unsigned short h) const { return f16 ? h2f_host(h) : bf2f(h); }
};

static Problem make(int E, int N, int K, int M, bool f16 = false, int GS = 64) {
  Problem p{E, N, K, M, GS, f16};
  size_t words = (size_t)E * N * K / 8, groups = (size_t)E * N * K / GS;
  p.w.resize(words); p.s.resize(groups); p.b.resize(groups); p.x.resize((size_t)E * M * K);
  unsigned r = 12345;
  auto rnd = [&]() { r = r * 1664525u + 1013904223u; return r; };
  for (auto& v : p.w) v = rnd();
  for (size_t i = 0; i < groups; ++i) { p.s[i] = p.enc(0.001f + (rnd() % 1000) * 1e-5f); p.b[i] = p.enc(-0.01f * ((rnd() % 200) / 100.f)); }
  for (auto& v : p.x) v = p.enc(((int)(rnd() % 2001) - 1000) / 1000.f);
  CK(cudaMalloc(&p.dw, words * 4)); CK(cudaMalloc(&p.ds, groups * 2)); CK(cudaMalloc(&p.db, groups * 2));
  CK(cudaMalloc(&p.dx, p.x.size() * 2)); CK(cudaMalloc(&p.dout, (size_t)E * M * N * 2));
  CK(cudaMemcpy(p.dw, p.w.data(), words * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(p.ds, p.s.data(), groups * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(p.db, p.b.data(), groups * 2, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(p.dx, p.x.data(), p.x.size() * 2, cudaMemcpyHostToDevice));
  p.bytes = (double)words * 4 + 2.0 * groups * 2;
  return p;
}

static bool g_more_rows = false;  // set by version 5: also rows of later warps and blocks

// max |got - want| / sum |x||w| over a few rows of the first and last matrix, against
// the exact sum of x * (s * q + b)
static double verify(Problem& p) {
  std::vector<unsigned short> out((size_t)p.E * p.M * p.N);
  CK(cudaMemcpy(out.data(), p.dout, out.size() * 2, cudaMemcpyDeviceToHost));
  std::vector<int> rows = {0, 1, 7, 8, 15, 16, 31, p.N - 1};
  if (g_more_rows)
    for (int row : {32, 47, 63, 64, 77, 96, 127, 128, 200, p.N / 2 + 9, p.N - 2})
      if (row < p.N) rows.push_back(row);
  double worst = 0;
  for (int e : {0, p.E - 1})
    for (int row : rows)
      for (int m = 0; m < p.M; ++m) {
        double acc = 0, mag = 0;
        size_t wr = ((size_t)e * p.N + row);
        for (int k = 0; k < p.K; ++k) {
          unsigned q = (p.w[wr * (p.K / 8) + k / 8] >> (4 * (k % 8))) & 15u;
          size_t gi = wr * (p.K / p.GS) + k / p.GS;
          double wv = (double)q * p.dec(p.s[gi]) + p.dec(p.b[gi]);
          double xv = p.dec(p.x[((size_t)e * p.M + m) * p.K + k]);
          acc += xv * wv; mag += fabs(xv * wv);
        }
        double got = p.dec(out[((size_t)e * p.M + m) * p.N + row]);
        worst = fmax(worst, fabs(got - acc) / (mag + 1e-30));
      }
  return worst;
}

// Best time of one launch in ms (10 runs after 2 warm-ups).
template <class L>
static float best_ms(L launch) {
  cudaEvent_t a, z; cudaEventCreate(&a); cudaEventCreate(&z);
  float best = 1e30f;
  for (int rep = 0; rep < 12; ++rep) {
    cudaEventRecord(a);
    launch();
    cudaEventRecord(z); CK(cudaEventSynchronize(z));
    float ms; cudaEventElapsedTime(&ms, a, z);
    if (rep >= 2) best = fminf(best, ms);
  }
  CK(cudaGetLastError());
  return best;
}

// Times one GEMV kernel over the problem and checks its result.
template <class T>
static void report(Problem& p, const char* name,
                   void (*kernel)(const T*, const unsigned*, const unsigned short*, const unsigned short*, T*, long long, long long),
                   int threads, long long rows_per_block, size_t dyn = 0) {
  cudaFuncAttributes at; CK(cudaFuncGetAttributes(&at, kernel));
  int occ = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, threads, dyn));
  CK(cudaMemset(p.dout, 0, (size_t)p.E * p.M * p.N * 2));
  dim3 grid((unsigned)(p.E * ((p.N + rows_per_block - 1) / rows_per_block))), block(threads);
  float best = best_ms([&] {
    kernel<<<grid, block, dyn>>>((const T*)p.dx, p.dw, p.ds, p.db, (T*)p.dout, p.N, p.K);
  });
  double err = verify(p);
  printf("  %-28s regs %3d blocks/SM %2d  %7.2f us/matrix  %5.2f TB/s  err %.1e%s\n", name, at.numRegs, occ,
         best * 1e3 / p.E, p.bytes / (best * 1e-3) / 1e12, err, err > 5e-3 ? "  (wrong)" : "");
}

template <int M, int KW, int UNR, int TILES, bool PIPE, bool RAW = false, int MINB = 1>
static void trial(Problem& p, const char* name) {
  report(p, name, gemv<M, KW, UNR, TILES, PIPE, 64, RAW, MINB>, KW * 32, 16 * TILES);
}

template <int M, int KW, int TILES, int S, int MINB = 1>
static void triala(Problem& p, const char* name) {
  report(p, name, gemva<M, KW, TILES, S, 64, MINB>, KW * 32, 16 * TILES);
}

template <bool F16, int KW, int TILES, int GS>
static void trial2(Problem& p, const char* name) {
  report(p, name, gemv3<F16, KW, TILES, GS, 1, 1>, KW * 32, 16 * TILES, (size_t)p.K / 32 * 2 * sizeof(float));
}

template <bool F16, int KW, int TILES, int GS, int W, int PF, bool READ = false>
static void trial3(Problem& p, const char* name) {
  report(p, name, gemv3<F16, KW, TILES, GS, W, PF, READ>, KW * 32, 16 * TILES, (size_t)p.K / 32 * 2 * sizeof(float));
}

static void ceiling(Problem& p) {
  unsigned* sink; CK(cudaMalloc(&sink, 4));
  long long n = (long long)p.E * p.N * p.K / 8 / 4;
  float best = best_ms([&] { readall4<<<132 * 8, 256>>>((const uint4*)p.dw, n, sink); });
  printf("  %-28s %7.2f us/matrix  %5.2f TB/s (packed words only)\n", "read ceiling", best * 1e3 / p.E, n * 16.0 / (best * 1e-3) / 1e12);
  cudaFree(sink);
}

template <int M>
static void run_shape(int E, int N, int K) {
  Problem p = make(E, N, K, M);
  printf("%d x (%d x %d), M = %d, %.1f MB\n", E, N, K, M, p.bytes / 1e6);
  ceiling(p);
  // the first tensor-core version, then the one in oxmx (gemv_mma_src) and its neighbours
  trial<M, 8, 4, 1, false>(p, "KW8 UNR4 T1");
  trial<M, 4, 1, 2, true>(p, "KW4 UNR1 T2 pipe (oxmx)");
  trial<M, 4, 1, 2, true, false, 6>(p, "KW4 UNR1 T2 pipe min6");
  trial<M, 4, 1, 2, true, true>(p, "KW4 UNR1 T2 pipe no FMAs");
  trial<M, 4, 4, 1, false>(p, "KW4 UNR4 T1");
  trial<M, 2, 4, 1, true>(p, "KW2 UNR4 T1 pipe");
  triala<M, 4, 2, 2>(p, "async KW4 T2 S2");
  triala<M, 4, 2, 4>(p, "async KW4 T2 S4");
  triala<M, 4, 1, 6>(p, "async KW4 T1 S6");
  cudaFree(p.dw); cudaFree(p.ds); cudaFree(p.db); cudaFree(p.dx); cudaFree(p.dout);
}

// the batch-1 version 2 for both half types and every group size, next to the oxmx kernel
static void run_v2(int E, int N, int K) {
  for (int gs : {32, 64, 128})
    for (bool f16 : {false, true}) {
      Problem p = make(E, N, K, 1, f16, gs);
      printf("%d x (%d x %d), %s, group %d, %.1f MB\n", E, N, K, f16 ? "float16" : "bfloat16", gs, p.bytes / 1e6);
      if (gs == 32) ceiling(p);
      if (!f16 && gs == 64) trial<1, 4, 1, 2, true>(p, "KW4 UNR1 T2 pipe (oxmx)");
#define V2(KW_, T_, NAME)                                                              \
      if (f16) { if (gs == 32) trial2<true, KW_, T_, 32>(p, NAME); else if (gs == 64) trial2<true, KW_, T_, 64>(p, NAME); else trial2<true, KW_, T_, 128>(p, NAME); } \
      else { if (gs == 32) trial2<false, KW_, T_, 32>(p, NAME); else if (gs == 64) trial2<false, KW_, T_, 64>(p, NAME); else trial2<false, KW_, T_, 128>(p, NAME); }
      V2(4, 2, "v2 KW4 T2")
      V2(4, 1, "v2 KW4 T1")
      V2(8, 1, "v2 KW8 T1")
      V2(2, 2, "v2 KW2 T2")
#undef V2
      cudaFree(p.dw); cudaFree(p.ds); cudaFree(p.db); cudaFree(p.dx); cudaFree(p.dout);
    }
}

// version 3's shapes, float16 and bfloat16, group 64 and 32
template <bool F16, int GS>
static void run_v3_for(Problem& p) {
  trial2<F16, 4, 2, GS>(p, "v2 KW4 T2");
  trial3<F16, 4, 2, GS, 1, 1, true>(p, "v3 read only W1 PF1");
  trial3<F16, 4, 2, GS, 2, 1, true>(p, "v3 read only W2 PF1");
  trial3<F16, 4, 2, GS, 1, 2, true>(p, "v3 read only W1 PF2");
  trial3<F16, 4, 2, GS, 2, 2, true>(p, "v3 read only W2 PF2");
  trial3<F16, 4, 1, GS, 2, 2, true>(p, "v3 read only T1 W2 PF2");
  trial3<F16, 8, 1, GS, 2, 2, true>(p, "v3 read only KW8 T1 W2 PF2");
  trial3<F16, 4, 2, GS, 1, 1>(p, "v3 W1 PF1");
  trial3<F16, 4, 2, GS, 2, 1>(p, "v3 W2 PF1");
  trial3<F16, 4, 2, GS, 1, 2>(p, "v3 W1 PF2");
  trial3<F16, 4, 2, GS, 2, 2>(p, "v3 W2 PF2");
  trial3<F16, 4, 1, GS, 2, 2>(p, "v3 T1 W2 PF2");
  trial3<F16, 8, 1, GS, 2, 2>(p, "v3 KW8 T1 W2 PF2");
  trial3<F16, 8, 1, GS, 1, 2>(p, "v3 KW8 T1 W1 PF2");
}

template <bool F16, int KW, int TILES, int GS, int S, bool READ = false>
static void trial4(Problem& p, const char* name) {
  size_t dyn = (size_t)p.K / 32 * 2 * sizeof(float) + (size_t)KW * S * 2 * TILES * 32 * 16;
  auto k = gemv4<F16, KW, TILES, GS, S, READ>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn));
  report(p, name, k, KW * 32, 16 * TILES, dyn);
}

// version 4's shapes next to version 2
template <bool F16, int GS>
static void run_v4_for(Problem& p) {
  trial2<F16, 4, 2, GS>(p, "v2 KW4 T2");
  trial4<F16, 4, 2, GS, 4, true>(p, "v4 read only T2 S4");
  trial4<F16, 4, 2, GS, 3>(p, "v4 KW4 T2 S3");
  trial4<F16, 4, 2, GS, 4>(p, "v4 KW4 T2 S4");
  trial4<F16, 4, 2, GS, 6>(p, "v4 KW4 T2 S6");
  trial4<F16, 4, 1, GS, 4>(p, "v4 KW4 T1 S4");
  trial4<F16, 4, 1, GS, 8>(p, "v4 KW4 T1 S8");
  trial4<F16, 8, 1, GS, 4>(p, "v4 KW8 T1 S4");
  trial4<F16, 2, 2, GS, 6>(p, "v4 KW2 T2 S6");
}

// A version's trials (VER = 3 or 4) over both half types and groups 64 and 32.
template <int VER>
static void run_version(int E, int N, int K) {
  for (int gs : {64, 32})
    for (bool f16 : {true, false}) {
      Problem p = make(E, N, K, 1, f16, gs);
      printf("%d x (%d x %d), %s, group %d, %.1f MB\n", E, N, K, f16 ? "float16" : "bfloat16", gs, p.bytes / 1e6);
      if (gs == 64 && f16) ceiling(p);
      auto run = [&](auto f16c, auto gsc) {
        if (VER == 3) run_v3_for<decltype(f16c)::value, decltype(gsc)::value>(p);
        else run_v4_for<decltype(f16c)::value, decltype(gsc)::value>(p);
      };
      using T = std::true_type;
      using F = std::false_type;
      using G64 = std::integral_constant<int, 64>;
      using G32 = std::integral_constant<int, 32>;
      if (f16) { if (gs == 64) run(T{}, G64{}); else run(T{}, G32{}); }
      else { if (gs == 64) run(F{}, G64{}); else run(F{}, G32{}); }
      cudaFree(p.dw); cudaFree(p.ds); cudaFree(p.db); cudaFree(p.dx); cudaFree(p.dout);
    }
}

// Version 5 with its shared memory and the host's checks (32-bit offsets within a matrix).
template <bool F16, int GS, int WR, int WK, int TILES, int PF, int MINB, bool SCALE = true, bool NC = true>
static void trial5(Problem& p, const char* name) {
  constexpr int NT = WR * WK * 32, R = 16 * TILES * WR;
  if (p.M != 1 || p.K % (512 * WK) != 0 || (long long)p.N * p.K / 8 >= (1LL << 31)) {
    printf("  %-28s skipped (needs M = 1, K %% %d == 0, N K / 8 < 2^31)\n", name, 512 * WK);
    return;
  }
  const size_t dyn = (size_t)2 * p.K + 192 + (size_t)8 * (p.K / GS) + (size_t)4 * WK * R + (size_t)4 * (NT / 32);
  auto k = gemv5<F16, GS, WR, WK, TILES, PF, MINB, SCALE, NC>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn));
  report(p, name, k, NT, R, dyn);
}

// version 5's shapes next to version 2 (WR x WK warps, TILES x 16 rows each, PF chunks ahead)
template <bool F16, int GS>
static void run_v5_for(Problem& p) {
  trial2<F16, 4, 2, GS>(p, "v2 KW4 T2");
  trial5<F16, GS, 4, 1, 2, 2, 4>(p, "v5 WR4 WK1 T2 PF2");
  trial5<F16, GS, 4, 2, 2, 2, 2>(p, "v5 WR4 WK2 T2 PF2");
  trial5<F16, GS, 4, 4, 2, 2, 1>(p, "v5 WR4 WK4 T2 PF2");
  trial5<F16, GS, 2, 4, 2, 2, 2>(p, "v5 WR2 WK4 T2 PF2");
  trial5<F16, GS, 4, 2, 2, 1, 2>(p, "v5 WR4 WK2 T2 PF1");
  trial5<F16, GS, 8, 2, 1, 4, 1>(p, "v5 WR8 WK2 T1 PF4");
  trial5<F16, GS, 4, 2, 2, 2, 2, true, false>(p, "v5 WR4 WK2 T2 PF2 plain ld");
  trial5<F16, GS, 4, 2, 2, 2, 2, false>(p, "v5 WR4 WK2 T2 PF2 unscaled");
}

// Version 5 over both half types and groups 64, 32 and 128 (more rows checked).
static void run_v5(int E, int N, int K) {
  g_more_rows = true;
  for (int gs : {64, 32, 128})
    for (bool f16 : {false, true}) {
      Problem p = make(E, N, K, 1, f16, gs);
      printf("%d x (%d x %d), %s, group %d, %.1f MB\n", E, N, K, f16 ? "float16" : "bfloat16", gs, p.bytes / 1e6);
      if (gs == 64 && !f16) ceiling(p);
      if (gs == 32) { if (f16) run_v5_for<true, 32>(p); else run_v5_for<false, 32>(p); }
      else if (gs == 64) { if (f16) run_v5_for<true, 64>(p); else run_v5_for<false, 64>(p); }
      else { if (f16) run_v5_for<true, 128>(p); else run_v5_for<false, 128>(p); }
      cudaFree(p.dw); cudaFree(p.ds); cudaFree(p.db); cudaFree(p.dx); cudaFree(p.dout);
    }
}

// Decode as a model runs it: E one-matrix launches back to back, each over its own
// matrix (so each launch's grid is one matrix's, and its bytes come from HBM), timed
// together with CUDA events; per-launch time = total / E (launch gaps included).
template <class T>
static void report_seq(Problem& p, const char* name,
                       void (*kernel)(const T*, const unsigned*, const unsigned short*, const unsigned short*, T*, long long, long long),
                       int threads, long long rows_per_block, size_t dyn = 0) {
  cudaFuncAttributes at; CK(cudaFuncGetAttributes(&at, kernel));
  int occ = 0; CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, threads, dyn));
  CK(cudaMemset(p.dout, 0, (size_t)p.E * p.M * p.N * 2));
  const size_t words = (size_t)p.N * p.K / 8, groups = (size_t)p.N * p.K / p.GS;
  dim3 grid((unsigned)((p.N + rows_per_block - 1) / rows_per_block)), block(threads);
  float best = best_ms([&] {
    for (int e = 0; e < p.E; ++e)
      kernel<<<grid, block, dyn>>>((const T*)(p.dx + (size_t)e * p.M * p.K), p.dw + e * words, p.ds + e * groups,
                                   p.db + e * groups, (T*)(p.dout + (size_t)e * p.M * p.N), p.N, p.K);
  });
  double err = verify(p);
  printf("  %-28s regs %3d blocks/SM %2d grid %4u  %7.2f us/launch  %5.2f TB/s  err %.1e%s\n", name, at.numRegs, occ,
         grid.x, best * 1e3 / p.E, p.bytes / (best * 1e-3) / 1e12, err, err > 5e-3 ? "  (wrong)" : "");
}

template <bool F16, int GS, int WR, int WK, int TILES, int PF, int MINB>
static void trial5s(Problem& p, const char* name) {
  constexpr int NT = WR * WK * 32, R = 16 * TILES * WR;
  if (p.M != 1 || p.K % (512 * WK) != 0) {
    printf("  %-28s skipped (K %% %d != 0)\n", name, 512 * WK);
    return;
  }
  const size_t dyn = (size_t)2 * p.K + 192 + (size_t)8 * (p.K / GS) + (size_t)4 * WK * R + (size_t)4 * (NT / 32);
  auto k = gemv5<F16, GS, WR, WK, TILES, PF, MINB>;
  CK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)dyn));
  report_seq(p, name, k, NT, R, dyn);
}

// one-matrix launches: version 5 with small row blocks (a grid that fills the GPU from
// one matrix) next to the kernel oxmx uses for single products (gemv_mma_src)
template <bool F16, int GS>
static void run_single_for(Problem& p) {
  if (!F16 && GS == 64) report_seq(p, "oxmx KW4 UNR1 T2 pipe", gemv<1, 4, 1, 2, true, 64>, 128, 32);
  report_seq(p, "v2 KW4 T2", gemv3<F16, 4, 2, GS, 1, 1>, 128, 32, (size_t)p.K / 32 * 2 * sizeof(float));
  trial5s<F16, GS, 4, 1, 2, 2, 4>(p, "v5 WR4 WK1 T2 PF2 (batches)");
  trial5s<F16, GS, 8, 2, 1, 4, 1>(p, "v5 WR8 WK2 T1 PF4 (batches)");
  trial5s<F16, GS, 1, 4, 1, 4, 4>(p, "v5 WR1 WK4 T1 PF4");
  trial5s<F16, GS, 1, 4, 1, 2, 4>(p, "v5 WR1 WK4 T1 PF2");
  trial5s<F16, GS, 1, 2, 1, 4, 8>(p, "v5 WR1 WK2 T1 PF4");
  trial5s<F16, GS, 1, 8, 1, 2, 2>(p, "v5 WR1 WK8 T1 PF2");
  trial5s<F16, GS, 2, 4, 1, 4, 2>(p, "v5 WR2 WK4 T1 PF4");
  trial5s<F16, GS, 2, 2, 1, 4, 4>(p, "v5 WR2 WK2 T1 PF4");
  trial5s<F16, GS, 1, 4, 2, 2, 4>(p, "v5 WR1 WK4 T2 PF2");
  trial5s<F16, GS, 2, 4, 2, 2, 2>(p, "v5 WR2 WK4 T2 PF2");
  trial5s<F16, GS, 4, 2, 1, 4, 2>(p, "v5 WR4 WK2 T1 PF4");
}

static void run_single(int E, int N, int K) {
  g_more_rows = true;
  for (int gs : {64, 32, 128})
    for (bool f16 : {false, true}) {
      if (gs != 64 && !f16) continue;
      Problem p = make(E, N, K, 1, f16, gs);
      printf("%d launches of one (%d x %d), %s, group %d, %.1f MB in all\n", E, N, K, f16 ? "float16" : "bfloat16", gs, p.bytes / 1e6);
      if (gs == 32) run_single_for<true, 32>(p);
      else if (gs == 128) run_single_for<true, 128>(p);
      else if (f16) run_single_for<true, 64>(p);
      else run_single_for<false, 64>(p);
      cudaFree(p.dw); cudaFree(p.ds); cudaFree(p.db); cudaFree(p.dx); cudaFree(p.dout);
    }
}

int main(int argc, char** argv) {
  if (argc > 1 && !strcmp(argv[1], "single")) {
    run_single(16, 4096, 4096);
    run_single(4, 14336, 4096);
    run_single(4, 4096, 14336);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "v5")) {
    run_v5(16, 4096, 4096);
    run_v5(4, 14336, 4096);
    run_v5(4, 4096, 14336);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "v4")) {
    run_version<4>(16, 4096, 4096);
    run_version<4>(4, 14336, 4096);
    run_version<4>(4, 4096, 14336);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "prof")) {  // for ncu: one shape, the kernels compared
    Problem p = make(4, 14336, 4096, 1, true, 64);
    trial2<true, 4, 2, 64>(p, "v2 KW4 T2");
    trial3<true, 4, 2, 64, 1, 1, true>(p, "v3 read only W1 PF1");
    Problem q = make(4, 14336, 4096, 1, false, 64);
    trial<1, 4, 1, 2, true>(q, "KW4 UNR1 T2 pipe (oxmx)");
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "v3")) {
    run_version<3>(16, 4096, 4096);
    run_version<3>(4, 14336, 4096);
    run_version<3>(4, 4096, 14336);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "v2")) {
    run_v2(16, 4096, 4096);
    run_v2(4, 14336, 4096);
    run_v2(4, 4096, 14336);
    return 0;
  }
  run_shape<1>(16, 4096, 4096);
  run_shape<1>(4, 14336, 4096);
  run_shape<1>(4, 4096, 14336);
  run_shape<4>(16, 4096, 4096);
  return 0;
}
