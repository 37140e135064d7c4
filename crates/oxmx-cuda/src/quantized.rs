//! `Dequantize` and `QuantizedMatmul` on the GPU. Packed rows are read 32 values at a
//! time (`bits` consecutive words); a value becomes a float through its mode (the level
//! for affine, an E2M1/E4M3 value for mx/nv) and its group's scale (and bias).
//!
//! - Products with at most `GEMV_ROWS` rows of x against `x @ W^T` run one warp per row
//!   of W: the lanes stride over the row's 32-value chunks, decode once and take the dot
//!   products for every row of x, then reduce across the warp. This is the decode path
//!   of a language model, bound by reading the packed matrix once.
//! - With 4-bit affine weights and x in float16/bfloat16 the same products run on the
//!   tensor cores instead: one row of x per product (the decode step) through
//!   `gemv_v5_src` (x pre-scaled to float16 in shared memory, levels into the mma
//!   undecoded, scale and bias applied once per group), other products, and shapes
//!   version 5 cannot take, through `gemv_mma_src` (a pair of levels dequantized with one
//!   bit operation and two paired FMAs). Decoding is the whole cost of both.
//! - Other products expand W to x's dtype (one kernel) and multiply with cuBLASLt.
//!
//! Every extent was checked by the op (`oxmx-core/src/ops/quantized.rs`); the buffers'
//! sizes are checked against them again here before a launch.

use crate::kernels::{ctype, PRELUDE};
use crate::{ffi, on_device, unsupported, CudaBackend};
use cudarc::driver::sys::CUfunction_attribute;
use cudarc::driver::LaunchConfig;
use oxmx_core::backend::Input;
use oxmx_core::primitive::{QuantMode, QuantSpec};
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};
use std::sync::Arc;

/// Rows of x up to which `x @ W^T` uses the warp-per-row kernel.
pub(crate) const GEMV_ROWS: usize = 8;

fn mode_id(m: QuantMode) -> u8 {
    match m {
        QuantMode::Affine => 0,
        QuantMode::Mxfp4 => 1,
        QuantMode::Mxfp8 => 2,
        QuantMode::Nvfp4 => 3,
    }
}

/// Kernel parameters and the device function of the GEMV kernels' optional gather
/// (`GatherQmm`): with `lidx` null, product `bi` reads x and W matrix `bi`; otherwise
/// matrices `lidx[bi]` and `ridx[bi]`, wrapped NumPy-style and checked against `nx`/`nw`
/// first. A bad index is recorded in `err` (as the gather kernels do) and its product
/// is not computed.
const PICK: &str = r#"
#define PICK_PARAMS const long long* __restrict__ lidx, const long long* __restrict__ ridx, long long nx, long long nw, unsigned long long* err
#define PICK_ARGS lidx, ridx, nx, nw, err
__device__ __forceinline__ bool pick_one(long long i, long long dim, unsigned long long* err, long long* out) {
  long long j = i < 0 ? i + dim : i;
  if (j < 0 || j >= dim) {
    if (atomicCAS(err, 0ull, 1ull) == 0ull) { err[1] = (unsigned long long)i; err[2] = 0ull; err[3] = (unsigned long long)dim; }
    return false;
  }
  *out = j;
  return true;
}
__device__ __forceinline__ bool pick(PICK_PARAMS, long long bi, long long* xi, long long* wi) {
  if (!lidx) return true;
  return pick_one(lidx[bi], nx, err, xi) && pick_one(ridx[bi], nw, err, wi);
}
"#;

/// Decoding helpers shared by both kernels, for one format and storage types.
fn common(s: &QuantSpec, st: &str, ot: &str) -> String {
    let (bits, gs, mode) = (s.bits, s.group_size, mode_id(s.mode));
    format!(
        r#"{PRELUDE}{PICK}
#define BITS {bits}
#define GS {gs}
#define MODE {mode}
#define MASK ((1u << BITS) - 1u)
typedef {st} ST;
typedef {ot} OT;
__device__ __forceinline__ float ldf(float v) {{ return v; }}
__device__ __forceinline__ float ldf(__half v) {{ return ld(v); }}
__device__ __forceinline__ float ldf(__nv_bfloat16 v) {{ return ld(v); }}
__device__ __forceinline__ void sto(float* p, float v) {{ *p = v; }}
__device__ __forceinline__ void sto(__half* p, float v) {{ *p = st_half(v); }}
__device__ __forceinline__ void sto(__nv_bfloat16* p, float v) {{ *p = st_bf16(v); }}
__device__ __forceinline__ float rnd(float* , float v) {{ return v; }}
__device__ __forceinline__ float rnd(__half*, float v) {{ return ld(st_half(v)); }}
__device__ __forceinline__ float rnd(__nv_bfloat16*, float v) {{ return ld(st_bf16(v)); }}
// E4M3 from its bits: a normal value's exponent is rebased (bias 7 -> 127), subnormals
// are m * 2^-9, 0x7f/0xff are NaN.
__device__ __forceinline__ float e4m3(unsigned c) {{
  unsigned e = (c >> 3) & 15u, m = c & 7u;
  float v = e == 0u ? (float)m * 0.001953125f : __uint_as_float(((e + 120u) << 23) | (m << 20));
  v = (e == 15u && m == 7u) ? __int_as_float(0x7fc00000) : v;
  return (c & 128u) ? -v : v;
}}
// A level as float without an int-to-float conversion (a quarter-rate instruction):
// 2^23 + q has q in its low mantissa bits.
__device__ __forceinline__ float qf(unsigned q) {{ return __uint_as_float(0x4B000000u | q) - 8388608.0f; }}
__device__ __forceinline__ float fp4(unsigned c) {{
  float t = (c & 4u) ? ((c & 2u) ? ((c & 1u) ? 6.f : 4.f) : ((c & 1u) ? 3.f : 2.f)) : (float)(c & 3u) * 0.5f;
  return (c & 8u) ? -t : t;
}}
__device__ __forceinline__ float scale_of(const ST* s, long long g) {{
#if MODE == 0
  return ldf(s[g]);
#elif MODE == 3
  return e4m3((unsigned)s[g]);
#else
  unsigned c = (unsigned)s[g];
  return c == 0u ? __uint_as_float(0x00400000u) : (c == 255u ? __int_as_float(0x7fc00000) : __uint_as_float(c << 23));
#endif
}}
__device__ __forceinline__ float level(unsigned q) {{
#if MODE == 0
  return qf(q);
#elif MODE == 2
  return e4m3(q);
#else
  return fp4(q);
#endif
}}
// n (a multiple of 8) values of x from 16-byte-aligned p, with 16-byte loads.
__device__ __forceinline__ void ldx(const float* p, float* o, int n) {{
  for (int i = 0; i < n; i += 4) {{ float4 v = *reinterpret_cast<const float4*>(p + i); o[i] = v.x; o[i + 1] = v.y; o[i + 2] = v.z; o[i + 3] = v.w; }}
}}
__device__ __forceinline__ void ldx(const __nv_bfloat16* p, float* o, int n) {{
  for (int i = 0; i < n; i += 8) {{
    uint4 v = *reinterpret_cast<const uint4*>(p + i); unsigned u[4] = {{v.x, v.y, v.z, v.w}};
    for (int j = 0; j < 4; ++j) {{ o[i + 2 * j] = __uint_as_float(u[j] << 16); o[i + 2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u); }}
  }}
}}
__device__ __forceinline__ void ldx(const __half* p, float* o, int n) {{
  for (int i = 0; i < n; i += 8) {{
    uint4 v = *reinterpret_cast<const uint4*>(p + i); unsigned u[4] = {{v.x, v.y, v.z, v.w}};
    for (int j = 0; j < 4; ++j) {{ o[i + 2 * j] = __half2float(__ushort_as_half((unsigned short)(u[j] & 0xffffu))); o[i + 2 * j + 1] = __half2float(__ushort_as_half((unsigned short)(u[j] >> 16))); }}
  }}
}}
// The 32 levels stored in `avail` (<= BITS) words at w; missing words read as 0.
__device__ __forceinline__ void unpack32(const unsigned* __restrict__ w, int avail, unsigned* q) {{
  unsigned words[BITS];
#if BITS == 4
  if (avail == 4) {{ uint4 v = *reinterpret_cast<const uint4*>(w); words[0] = v.x; words[1] = v.y; words[2] = v.z; words[3] = v.w; }} else
#elif BITS == 8
  if (avail == 8) {{ uint4 v = *reinterpret_cast<const uint4*>(w); uint4 u = *reinterpret_cast<const uint4*>(w + 4);
    words[0] = v.x; words[1] = v.y; words[2] = v.z; words[3] = v.w; words[4] = u.x; words[5] = u.y; words[6] = u.z; words[7] = u.w; }} else
#endif
  {{
    #pragma unroll
    for (int j = 0; j < BITS; ++j) words[j] = j < avail ? w[j] : 0u;
  }}
#if 32 % BITS == 0
  #pragma unroll
  for (int j = 0; j < BITS; ++j) {{
    #pragma unroll
    for (int i = 0; i < 32 / BITS; ++i) q[j * (32 / BITS) + i] = (words[j] >> (i * BITS)) & MASK;
  }}
#else
  unsigned long long acc = 0; int have = 0, wi = 0;
  #pragma unroll
  for (int i = 0; i < 32; ++i) {{
    if (have < BITS) {{ acc |= (unsigned long long)words[wi++] << have; have += 32; }}
    q[i] = (unsigned)acc & MASK; acc >>= BITS; have -= BITS;
  }}
#endif
}}
"#
    )
}

/// `exact`: MLX's rounding (q*s, then +b, each rounded to the output dtype) for
/// `dequantize`; otherwise one fused multiply-add, for the temporary of a product.
fn dequantize_src(s: &QuantSpec, st: &str, ot: &str, exact: bool) -> String {
    let body = if 32 % s.bits == 0 {
        // One thread per word: neighbouring threads write neighbouring values (coalesced).
        r#"
  const int VPW = 32 / BITS;
  long long words = cols / VPW, total = rows * words, groups = cols / GS;
  // 32-bit division when the indices fit (64-bit division is a long software routine)
  bool small = total < 0x7fffffffll;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (long long)gridDim.x * blockDim.x) {
    long long r = small ? (long long)((unsigned)t / (unsigned)words) : t / words;
    long long c0 = (t - r * words) * VPW;
    unsigned wv = w[r * packed + c0 / VPW];
    long long g = r * groups + c0 / GS;
    float sc = scale_of(s, g);
#if MODE == 0
    float bb = ldf(b[g]);
#endif
    OT* o = out + r * cols + c0;
    __align__(16) OT tmp[VPW];
    #pragma unroll
    for (int i = 0; i < VPW; ++i) {
      unsigned q = (wv >> (i * BITS)) & MASK;
#if MODE == 0 && EXACT
      float v = rnd(o, __fadd_rn(rnd(o, __fmul_rn(qf(q), sc)), bb));
#elif MODE == 0
      float v = fmaf(qf(q), sc, bb);
#else
      float v = __fmul_rn(level(q), sc);
#endif
      sto(tmp + i, v);
    }
    // one wide store per thread (the word's values are contiguous and aligned to their size)
    const int BYTES = VPW * (int)sizeof(OT);
    if (BYTES % 16 == 0) {
      #pragma unroll
      for (int j = 0; j < BYTES / 16; ++j) reinterpret_cast<uint4*>(o)[j] = reinterpret_cast<const uint4*>(tmp)[j];
    } else if (BYTES % 8 == 0) {
      #pragma unroll
      for (int j = 0; j < BYTES / 8; ++j) reinterpret_cast<uint2*>(o)[j] = reinterpret_cast<const uint2*>(tmp)[j];
    } else {
      #pragma unroll
      for (int i = 0; i < VPW; ++i) o[i] = tmp[i];
    }
  }"#
    } else {
        r#"
  long long chunks = (cols + 31) / 32, total = rows * chunks, groups = cols / GS;
  for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (long long)gridDim.x * blockDim.x) {
    long long r = t / chunks, c0 = (t % chunks) * 32;
    int n = (int)min(32ll, cols - c0);
    unsigned q[32];
    unpack32(w + r * packed + c0 * BITS / 32, (n * BITS + 31) / 32, q);
    OT* o = out + r * cols + c0;
    for (int i = 0; i < n; ++i) {
      long long g = r * groups + (c0 + i) / GS;
      float sc = scale_of(s, g);
#if MODE == 0
      float v = rnd(o, __fadd_rn(rnd(o, __fmul_rn((float)q[i], sc)), ldf(b[g])));
#else
      float v = __fmul_rn(level(q[i]), sc);
#endif
      sto(o + i, v);
    }
  }"#
    };
    let exact = exact as u8;
    format!(
        r#"{}
#define EXACT {exact}
extern "C" __global__ void k(const unsigned* __restrict__ w, const ST* __restrict__ s, const ST* __restrict__ b, OT* __restrict__ out,
    long long rows, long long cols, long long packed) {{{body}
}}
"#,
        common(s, st, ot)
    )
}

/// Rows of W one warp of the vector GEMV kernel handles (x is loaded once for them).
const WARP_ROWS: usize = 4;

/// `x @ W^T` for power-of-two bits: each lane reads 16 bytes (4 words) of each of the
/// warp's `WARP_ROWS` rows per step, neighbouring lanes neighbouring words (coalesced),
/// and the matching values of x once for all of those rows.
fn gemv_vec_src(s: &QuantSpec, st: &str, ot: &str, m: usize) -> String {
    format!(
        r#"{}
#define MROWS {m}
#define WROWS {WARP_ROWS}
#define VPL (128 / BITS)
#define SUBG (GS < VPL ? GS : VPL)
extern "C" __global__ void k(const OT* __restrict__ x, const unsigned* __restrict__ w, const ST* __restrict__ s, const ST* __restrict__ b,
    OT* __restrict__ out, long long batch, long long N, long long K, long long packed, PICK_PARAMS) {{
  long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  long long row_blocks = (N + WROWS - 1) / WROWS;
  if (warp >= batch * row_blocks) return;
  long long bi = warp / row_blocks, n0 = (warp % row_blocks) * WROWS;
  long long xi = bi, wi = bi;
  if (!pick(PICK_ARGS, bi, &xi, &wi)) return;
  long long groups = K / GS;
  const OT* xb = x + xi * MROWS * K;
  float acc[WROWS][MROWS];
  #pragma unroll
  for (int r = 0; r < WROWS; ++r)
    #pragma unroll
    for (int mm = 0; mm < MROWS; ++mm) acc[r][mm] = 0.f;
  long long steps = K / VPL;  // K is a multiple of VPL (checked by the launcher)
  // Two steps per iteration: both steps' words are requested before either is used, so
  // each lane keeps 2 * WROWS 16-byte loads in flight.
  for (long long st0 = lane; st0 < steps; st0 += 64) {{
    uint4 wv2[2][WROWS];
    #pragma unroll
    for (int u = 0; u < 2; ++u) {{
      long long st = st0 + 32 * u;
      if (st >= steps) break;
      #pragma unroll
      for (int r = 0; r < WROWS; ++r) {{
        long long row = wi * N + min(n0 + r, N - 1);
        wv2[u][r] = *reinterpret_cast<const uint4*>(w + row * packed + st * VPL / (32 / BITS));
      }}
    }}
    #pragma unroll
    for (int u = 0; u < 2; ++u) {{
    long long st = st0 + 32 * u;
    if (st >= steps) break;
    long long c0 = st * VPL;
    uint4* wv = wv2[u];
    #pragma unroll
    for (int mm = 0; mm < MROWS; ++mm) {{
      float xv[VPL];
      ldx(xb + mm * K + c0, xv, VPL);
      float sx[VPL / SUBG];
      #pragma unroll
      for (int h = 0; h < VPL; h += SUBG) {{
        float t = 0.f;
        #pragma unroll
        for (int i = h; i < h + SUBG; ++i) t += xv[i];
        sx[h / SUBG] = t;
      }}
      #pragma unroll
      for (int r = 0; r < WROWS; ++r) {{
        long long row = wi * N + min(n0 + r, N - 1);
        unsigned words[4] = {{wv[r].x, wv[r].y, wv[r].z, wv[r].w}};
        #pragma unroll
        for (int h = 0; h < VPL; h += SUBG) {{
          long long g = row * groups + (c0 + h) / GS;
          float sc = scale_of(s, g);
          float d = 0.f;
          #pragma unroll
          for (int i = h; i < h + SUBG; ++i) {{
            unsigned q = (words[i / (32 / BITS)] >> ((i % (32 / BITS)) * BITS)) & MASK;
            d = fmaf(level(q), xv[i], d);
          }}
#if MODE == 0
          acc[r][mm] += sc * d + ldf(b[g]) * sx[h / SUBG];
#else
          acc[r][mm] += sc * d;
#endif
        }}
      }}
    }}
    }}
  }}
  #pragma unroll
  for (int r = 0; r < WROWS; ++r)
    #pragma unroll
    for (int mm = 0; mm < MROWS; ++mm) {{
      float v = acc[r][mm];
      #pragma unroll
      for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
      if (lane == 0 && n0 + r < N) sto(out + (bi * MROWS + mm) * N + n0 + r, v);
    }}
}}
"#,
        common(s, st, ot)
    )
}

/// Warps of one block of the tensor-core GEMV; they split K and add up through shared
/// memory. Rows of W per block: `MMA_ROWS` (two 16-row mma tiles share each load of x).
/// Four warps and two tiles measured fastest on an H200 among 30 shapes of this kernel
/// (benchmarks/cuda/qgemv_lab.cu: deeper prefetch through shared memory, persistent
/// blocks and higher occupancy were all slower).
const MMA_WARPS: usize = 4;
const MMA_ROWS: usize = 32;
/// Products from which a gathered tensor-core GEMV groups them 8 to a block.
const GROUP_MIN: usize = 16;

/// `x @ W^T` on the tensor cores for 4-bit affine weights, x and scales both float16 or
/// both bfloat16, K a multiple of 128. A block owns 32 rows of W (two mma tiles: the M
/// side); x's rows are the N side (8 columns, `MROWS` of them real). Each lane reads 16
/// bytes of four rows per 128 values of K (32 levels each), requesting the next 128
/// values' words before decoding these. A pair of levels becomes a half2 with one bit
/// operation (level | exponent of 2^7 or 2^10 is that power plus the level, exactly),
/// then two paired FMAs remove the power and apply scale and bias (the dequantized
/// weight rounded once to x's dtype, as the dequantize-then-matmul path of longer
/// products); the mma accumulates in float32. The order of K inside an mma step is free
/// as long as x follows it: a lane's pair (level i, level i+4) of a word meets x's values
/// i and i+4, regrouped with byte permutes. Products with one row of x run
/// `gemv_v5_src` instead where `v5_plan` allows; this kernel takes 2 to 8 rows, the
/// grouped batches (`GROUPED`) and the shapes version 5 declines. (It is the lab's
/// "oxmx" kernel, `gemv` `KW4 UNR1 T2 pipe`, not the lab's version 2.)
fn gemv_mma_src(ot: &str, gs: usize, m: usize, grouped: bool) -> String {
    let grouped = u8::from(grouped);
    let bf16 = ot.contains("bfloat16");
    let (magic, neg, one, t) = if bf16 {
        ("0x43004300u", "0xC300C300u", "0x3F803F80u", "bf16")
    } else {
        ("0x64006400u", "0xE400E400u", "0x3C003C00u", "f16")
    };
    let tiles = MMA_ROWS / 16;
    format!(
        r#"{PRELUDE}{PICK}
#define MROWS {m}
#define GROUPED {grouped}
#define GS {gs}
#define KW {MMA_WARPS}
#define TILES {tiles}
typedef {ot} OT;
__device__ __forceinline__ void sto(float* p, float v) {{ *p = v; }}
__device__ __forceinline__ void sto(__half* p, float v) {{ *p = st_half(v); }}
__device__ __forceinline__ void sto(__nv_bfloat16* p, float v) {{ *p = st_bf16(v); }}
__device__ __forceinline__ unsigned fma2(unsigned a, unsigned b, unsigned c) {{
  unsigned d;
  asm("fma.rn.{t}x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}}
// Levels i and i+4 of word v (i = 0..3) as a dequantized pair: (q | 2^p) - 2^p, then q*s + b.
__device__ __forceinline__ unsigned deq(unsigned v, int i, unsigned sc, unsigned bi) {{
  unsigned p = ((v >> (4 * i)) & 0x000F000Fu) | {magic};
  return fma2(fma2(p, {one}, {neg}), sc, bi);
}}
__device__ __forceinline__ unsigned both(unsigned short h) {{ return (unsigned)h | ((unsigned)h << 16); }}
// One pass of a block over its rows n0.. of W matrix wi: column g of the mma takes x
// row xr (lanes with xon) and the column sums land in red.
__device__ __forceinline__ void pass(const OT* __restrict__ xr, bool xon, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b, long long wi, long long n0,
    long long N, long long K, long long packed, float (&red)[KW][16 * TILES][8], int warp, int g, int t) {{
  long long groups = K / GS;
  // rows past N (the last tile) read row N-1 and are not stored
  long long ra[TILES], rb[TILES];
  const unsigned* wa[TILES];
  const unsigned* wb[TILES];
  #pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {{
    ra[tt] = wi * N + min(n0 + 16 * tt + g, N - 1);
    rb[tt] = wi * N + min(n0 + 16 * tt + g + 8, N - 1);
    wa[tt] = w + ra[tt] * packed + t * 4;
    wb[tt] = w + rb[tt] * packed + t * 4;
  }}
  float c[TILES][4];
  #pragma unroll
  for (int tt = 0; tt < TILES; ++tt) c[tt][0] = c[tt][1] = c[tt][2] = c[tt][3] = 0.f;
  long long chunks = K / 128;
  uint4 va[TILES], vb[TILES];
  #pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {{
    va[tt] = warp < chunks ? *reinterpret_cast<const uint4*>(wa[tt] + warp * 16) : make_uint4(0u, 0u, 0u, 0u);
    vb[tt] = warp < chunks ? *reinterpret_cast<const uint4*>(wb[tt] + warp * 16) : make_uint4(0u, 0u, 0u, 0u);
  }}
  for (long long ch = warp; ch < chunks; ch += KW) {{
    // the next chunk's words are requested before this chunk is decoded
    long long nx = ch + KW;
    uint4 na[TILES], nb[TILES];
    #pragma unroll
    for (int tt = 0; tt < TILES; ++tt) {{
      na[tt] = nx < chunks ? *reinterpret_cast<const uint4*>(wa[tt] + nx * 16) : make_uint4(0u, 0u, 0u, 0u);
      nb[tt] = nx < chunks ? *reinterpret_cast<const uint4*>(wb[tt] + nx * 16) : make_uint4(0u, 0u, 0u, 0u);
    }}
    // a lane's 32 values lie in one group (groups are 32+ values, 32-aligned)
    long long gi = (ch * 128 + t * 32) / GS;
    unsigned sa[TILES], ba[TILES], sb[TILES], bb[TILES];
    #pragma unroll
    for (int tt = 0; tt < TILES; ++tt) {{
      sa[tt] = both(s[ra[tt] * groups + gi]); ba[tt] = both(b[ra[tt] * groups + gi]);
      sb[tt] = both(s[rb[tt] * groups + gi]); bb[tt] = both(b[rb[tt] * groups + gi]);
    }}
    #pragma unroll
    for (int j = 0; j < 4; ++j) {{
      uint4 xv = xon ? *reinterpret_cast<const uint4*>(xr + ch * 128 + 8 * j) : make_uint4(0u, 0u, 0u, 0u);
      #pragma unroll
      for (int h = 0; h < 2; ++h) {{
        unsigned lo = h ? xv.y : xv.x, hi = h ? xv.w : xv.z;
        unsigned b0 = __byte_perm(lo, hi, 0x5410), b1 = __byte_perm(lo, hi, 0x7632);
        #pragma unroll
        for (int tt = 0; tt < TILES; ++tt) {{
          unsigned wa4 = j == 0 ? va[tt].x : j == 1 ? va[tt].y : j == 2 ? va[tt].z : va[tt].w;
          unsigned wb4 = j == 0 ? vb[tt].x : j == 1 ? vb[tt].y : j == 2 ? vb[tt].z : vb[tt].w;
          unsigned a0 = deq(wa4, 2 * h, sa[tt], ba[tt]), a2 = deq(wa4, 2 * h + 1, sa[tt], ba[tt]);
          unsigned a1 = deq(wb4, 2 * h, sb[tt], bb[tt]), a3 = deq(wb4, 2 * h + 1, sb[tt], bb[tt]);
          asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.{t}.{t}.f32 {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, {{%8,%9}}, {{%0,%1,%2,%3}};"
                       : "+f"(c[tt][0]), "+f"(c[tt][1]), "+f"(c[tt][2]), "+f"(c[tt][3])
                       : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
        }}
      }}
    }}
    #pragma unroll
    for (int tt = 0; tt < TILES; ++tt) {{ va[tt] = na[tt]; vb[tt] = nb[tt]; }}
  }}
  #pragma unroll
  for (int tt = 0; tt < TILES; ++tt) {{
    red[warp][16 * tt + g][2 * t] = c[tt][0];
    red[warp][16 * tt + g][2 * t + 1] = c[tt][1];
    red[warp][16 * tt + g + 8][2 * t] = c[tt][2];
    red[warp][16 * tt + g + 8][2 * t + 1] = c[tt][3];
  }}
}}
// The warps' sums of mma columns in `cols` stored as rows n0.. of out rows 0..7.
__device__ __forceinline__ void store_cols(OT* __restrict__ out, unsigned cols, long long n0, long long N,
    const float (&red)[KW][16 * TILES][8]) {{
  for (int i = threadIdx.x; i < 16 * TILES * 8; i += KW * 32) {{
    int row = i >> 3, n = i & 7;
    float v = 0.f;
    #pragma unroll
    for (int q = 0; q < KW; ++q) v += red[q][row][n];
    if (((cols >> n) & 1u) && n0 + row < N) sto(out + n * N + n0 + row, v);
  }}
}}
extern "C" __global__ void __launch_bounds__(KW * 32) k(const OT* __restrict__ x, const unsigned* __restrict__ w,
    const unsigned short* __restrict__ s, const unsigned short* __restrict__ b,
    OT* __restrict__ out, long long batch, long long N, long long K, long long packed, PICK_PARAMS) {{
  __shared__ float red[KW][16 * TILES][8];
  long long tiles = (N + 16 * TILES - 1) / (16 * TILES);
  long long bi = blockIdx.x / tiles, n0 = (blockIdx.x % tiles) * (16 * TILES);
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#if GROUPED
  // Block bi serves products 8 bi .. 8 bi + 7 (one x row each), one pass per distinct W
  // matrix among them, that matrix's products as the mma's columns: a sorted batch
  // reads each expert's rows once per 8 products. Every thread reads the same indices,
  // so the passes and barriers are uniform.
  long long xs[8], ws[8];
  unsigned todo = 0;
  #pragma unroll
  for (int c = 0; c < 8; ++c) {{
    long long p = 8 * bi + c;
    xs[c] = 0; ws[c] = 0;
    if (p < batch && pick_one(lidx[p], nx, err, &xs[c]) && pick_one(ridx[p], nw, err, &ws[c])) todo |= 1u << c;
  }}
  while (todo) {{
    long long wi = ws[__ffs(todo) - 1];
    unsigned cols = 0;
    #pragma unroll
    for (int c = 0; c < 8; ++c) if (((todo >> c) & 1u) && ws[c] == wi) cols |= 1u << c;
    todo &= ~cols;
    bool xon = (cols >> g) & 1u;
    pass(x + (xon ? xs[g] : 0) * K + t * 32, xon, w, s, b, wi, n0, N, K, packed, red, warp, g, t);
    __syncthreads();
    store_cols(out + 8 * bi * N, cols, n0, N, red);
    __syncthreads();
  }}
#else
  long long xi = bi, wi = bi;
  // the whole block returns together (one bi per block), before its __syncthreads
  if (!pick(PICK_ARGS, bi, &xi, &wi)) return;
  bool xon = g < MROWS;
  pass(x + (xi * MROWS + (xon ? g : 0)) * K + t * 32, xon, w, s, b, wi, n0, N, K, packed, red, warp, g, t);
  __syncthreads();
  store_cols(out + bi * MROWS * N, (1u << MROWS) - 1u, n0, N, red);
#endif
}}
"#
    )
}

/// A launch shape of the version 5 tensor-core GEMV (`gemv_v5_src`): `wr` x `wk` warps
/// per block (`wr` row sets of `tiles` 16-row mma tiles, `wk` contiguous ranges of K),
/// words requested `pf` chunks (128 values) ahead, `minb` blocks per SM for the register
/// budget (`__launch_bounds__`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V5Shape {
    wr: usize,
    wk: usize,
    tiles: usize,
    pf: usize,
    minb: usize,
}

impl V5Shape {
    fn threads(self) -> usize {
        self.wr * self.wk * 32
    }
    /// Rows of W per block.
    fn rows(self) -> usize {
        16 * self.tiles * self.wr
    }
    /// K is a whole number of these: each of the `wk` warps of a row set streams whole
    /// loop iterations of 4 chunks.
    fn k_step(self) -> usize {
        512 * self.wk
    }
    /// Dynamic shared memory of a block, in bytes (the lab's `trial5`): x's fragments
    /// (2 K), a zero block (192), (X, Y) per group (8 K / GS), the warps' row sums
    /// (4 WK R) and their largest |x| (4 per warp).
    fn shared_bytes(self, k: usize, gs: usize) -> Option<usize> {
        k.checked_mul(2)?
            .checked_add(192)?
            .checked_add((k / gs).checked_mul(8)?)?
            .checked_add(4 * self.wk * self.rows())?
            .checked_add(4 * (self.threads() / 32))
    }
}

/// `WR4 WK1 T2 PF2` (4 blocks of 4 warps per SM): the best of version 5 where the grid
/// fills the GPU and each row is long enough per warp.
const V5_ROWS: V5Shape = V5Shape {
    wr: 4,
    wk: 1,
    tiles: 2,
    pf: 2,
    minb: 4,
};
/// `WR8 WK2 T1 PF4` (one block of 16 warps per SM): the best where K is long against N,
/// where the grid is about one block per SM, and for group 32.
const V5_SPLIT_K: V5Shape = V5Shape {
    wr: 8,
    wk: 2,
    tiles: 1,
    pf: 4,
    minb: 1,
};

/// One-row products whose grid would not fill the GPU with the shapes above (a single
/// matrix: decode): 16-row blocks, K split over the warps. One 4096x4096 product per
/// launch, launches back to back (lab `single`, H200, log
/// benchmarks/cuda/results/qgemv_single_h200_2026-12-03.log): `WR1 WK4 T1 PF2` 7.1 us
/// per launch where `gemv_mma_src` takes 11.3 (14336x4096: 14.1 against 17.7); `WR1 WK2
/// T1 PF4` (7.9 / 14.0) where K is a multiple of 1024 but not of 2048.
const V5_SMALL: [V5Shape; 2] = [
    V5Shape {
        wr: 1,
        wk: 4,
        tiles: 1,
        pf: 2,
        minb: 4,
    },
    V5Shape {
        wr: 1,
        wk: 2,
        tiles: 1,
        pf: 4,
        minb: 8,
    },
];

/// Dynamic shared memory every kernel may use without opting in.
const DEFAULT_SHARED: usize = 48 * 1024;

/// How version 5 runs one launch: its shape, dynamic shared memory and blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V5Plan {
    shape: V5Shape,
    shared: usize,
    blocks: usize,
}

/// The version 5 launch of `batch` one-row products against N x K matrices (group
/// `gs`) on a GPU of `sms` multiprocessors whose blocks may opt into `max_shared` bytes
/// of shared memory; None where version 5 cannot run them (the caller then uses
/// `gemv_mma_src`).
///
/// The shape (H200, benchmarks/cuda/results/qgemv_v5_h200_2026-12-03.log; TB/s of packed
/// words + scales + biases, both half types; the lab's version 2, as fast as
/// `gemv_mma_src` there, ran 2.2-2.6):
/// - 4096x4096 (16 matrices, 512 blocks): `WR4 WK1 T2 PF2` 3.45-3.50 (group 64),
///   3.43-3.54 (group 128); group 32: `WR8 WK2 T1 PF4` 3.16-3.22 (`WR4 WK1` 2.70-3.21).
/// - 14336x4096 (N x K, 4 matrices, 448 blocks): `WR4 WK1 T2 PF2` 3.36-3.46 (group 64),
///   3.26-3.27 (group 128), 2.90-3.14 (group 32; `WR8 WK2 T1 PF4` 2.93-2.97).
/// - 4096x14336 (4 matrices, 128 blocks): `WR8 WK2 T1 PF4` 3.41 (group 64), 3.65-3.77
///   (group 32), 3.34 (group 128), where `WR4 WK1` ran 2.0-2.5.
///
/// So `WR8 WK2 T1 PF4` for group 32, for K >= 2 N, and where `WR4 WK1`'s grid would have
/// at most one block per SM (its 4 warps per SM starve then; at the same block count
/// `WR8 WK2` has 16), else `WR4 WK1 T2 PF2`; whichever K does not divide (K a multiple
/// of 512, not of 1024) gives way to the other. Neither was timed with one block per SM
/// or fewer against `gemv_mma_src`, which spreads the same rows over 4x the blocks
/// (32 rows each).
fn v5_plan(
    n: usize,
    k: usize,
    gs: usize,
    batch: usize,
    sms: usize,
    max_shared: usize,
) -> Option<V5Plan> {
    if !matches!(gs, 32 | 64 | 128) || n == 0 || k == 0 {
        return None;
    }
    let blocks_of = |v: V5Shape| batch.checked_mul(n.div_ceil(v.rows()));
    let split_k = gs == 32 || k / 2 >= n || blocks_of(V5_ROWS)? <= sms;
    let (first, second) = if split_k {
        (V5_SPLIT_K, V5_ROWS)
    } else {
        (V5_ROWS, V5_SPLIT_K)
    };
    let shape = [first, second]
        .into_iter()
        .find(|v| k.is_multiple_of(v.k_step()))?;
    // 32-bit offsets within one matrix: the kernel indexes words and scales of a matrix,
    // and its rows and blocks, with int
    let words = n.checked_mul(k / 8)?;
    let blocks = blocks_of(shape)?;
    if words >= 1 << 31 || k >= 1 << 31 || blocks >= 1 << 31 {
        return None;
    }
    // Those shapes give each block 128 rows, so one matrix makes a small grid (32 blocks
    // for 4096 rows): below a block and 8 warps per multiprocessor, the 16-row blocks of
    // `V5_SMALL` instead.
    let warps = blocks.checked_mul(shape.threads() / 32)?;
    if blocks < sms || warps < sms.checked_mul(8)? {
        return v5_small_plan(n, k, gs, batch, max_shared);
    }
    let shared = shape.shared_bytes(k, gs)?;
    if shared > DEFAULT_SHARED.max(max_shared) {
        return None;
    }
    Some(V5Plan {
        shape,
        shared,
        blocks,
    })
}

/// The `V5_SMALL` launch of products whose grid is small for the batch shapes; None if
/// K divides by neither shape's step (then `gemv_mma_src`).
fn v5_small_plan(n: usize, k: usize, gs: usize, batch: usize, max_shared: usize) -> Option<V5Plan> {
    let shape = V5_SMALL
        .into_iter()
        .find(|v| k.is_multiple_of(v.k_step()))?;
    let blocks = batch.checked_mul(n.div_ceil(shape.rows()))?;
    let shared = shape.shared_bytes(k, gs)?;
    // 32-bit offsets within one matrix, as in `v5_plan`
    let words = n.checked_mul(k / 8)?;
    if words >= 1 << 31
        || k >= 1 << 31
        || blocks >= 1 << 31
        || shared > DEFAULT_SHARED.max(max_shared)
    {
        return None;
    }
    Some(V5Plan {
        shape,
        shared,
        blocks,
    })
}

/// Version 5 of the tensor-core GEMV (benchmarks/cuda/qgemv_lab.cu, `gemv5`, ported
/// with its launch shape as compile-time constants): `x @ W^T` for one row of x per
/// product, 4-bit affine weights, x, scales and biases all float16 or all bfloat16, K a
/// multiple of 512 WK (host checks in `v5_plan`). It cuts what the streaming loop issues
/// per weight:
/// - Each block first converts its x row once into shared memory: times 2^S (S from the
///   largest |x|, so that it lies in [2^14, 2^15): bfloat16 and float16 values are then
///   exact in float16, down to 2^-24 of the largest), rounded to float16, odd positions
///   also divided by 16, laid out as the mma B registers of the lanes that take x (8 of
///   32 per mma; the others read a zero block). Per group it keeps X = sum x and
///   Y = 1024 (sum of even x + sum of odd x / 16).
/// - The loop is then loads, one shift and four `lop3` per word (8 weights; both
///   dtypes: the weights enter the float16 mma as 1024 + q, or 1024 + 16 q against x / 16,
///   exact), and two mma per two words (rows g and g + 8). The mma's 8 columns are
///   groups, so after 2 (group 32) or 4 chunks lane t adds s (D - Y) + b X for its
///   groups, D = sum (1024 + q) x, scales loaded one flush ahead.
/// - Warps: `wr` row sets x `wk` contiguous ranges of K, 32-bit offsets within a matrix,
///   16 bytes per lane and row `pf` chunks ahead (`ld.global.nc.L1::no_allocate.L2::256B`),
///   the first ones and the first scales requested before x is prepared; the `wk` warps
///   of a row add up through shared memory.
///
/// Precision: the result is the sum over groups of s (sum q x) + b (sum x) in float32
/// (no weight is rounded to the half type, unlike `gemv_mma_src`: as the CPU computes
/// it), times 2^-S, rounded once to x's dtype. x is exact in float16 down to about
/// 2^-24 of its largest |x| (smaller values keep fewer bits or vanish); the mma's
/// products are exact and it sums them in float32, but its sums carry the 1024 X that
/// D - Y takes off again, so each of their roundings costs up to 2^-24 * 1039 ~ 2^-14 of
/// the group's sum |x| (the weights' own rounding to a half type would cost 2^-11 or
/// 2^-8 of sum |x w|). The lab measured max |error| / sum |x w| of 0.55-1.7e-5 (float16)
/// and 0.5-1.8e-4 (bfloat16, mostly the output's rounding), the same as its version 2;
/// tests/test_quantize.py allows an ulp of the output and of each weight. Edge cases
/// that differ from `gemv_mma_src`: an infinite x gives NaN (inf - inf in D - Y) where
/// that kernel may give an infinity, and a result that fits float32 but not once
/// multiplied by 2^S (S up to 126, for tiny bfloat16 x) overflows.
///
/// The lab's `__reduce_max_sync` is a shuffle butterfly here (plain NVRTC builtins), and
/// the kernel takes the GEMV kernels' parameters, `picks` included (one product per
/// block, as `gemv_mma_src` without `GROUPED`).
fn gemv_v5_src(ot: &str, gs: usize, v: V5Shape) -> String {
    let f16 = u8::from(!ot.contains("bfloat16"));
    let V5Shape {
        wr,
        wk,
        tiles,
        pf,
        minb,
    } = v;
    format!(
        r#"{PRELUDE}{PICK}
#define V5_F16 {f16}
#define V5_GS {gs}
#define V5_WR {wr}
#define V5_WK {wk}
#define V5_TILES {tiles}
#define V5_PF {pf}
#define V5_MINB {minb}
typedef {ot} OT;
__device__ __forceinline__ void sto(__half* p, float v) {{ *p = st_half(v); }}
__device__ __forceinline__ void sto(__nv_bfloat16* p, float v) {{ *p = st_bf16(v); }}
{GEMV_V5}"#
    )
}

/// The kernel of `gemv_v5_src` after its constants (`V5_*`, `OT`, `sto`).
const GEMV_V5: &str = r#"
// ---- version 5 (benchmarks/cuda/qgemv_lab.cu, gemv5 with SCALE and NC; see gemv_v5_src)
__device__ __forceinline__ float h2f(unsigned h) {
  if (V5_F16) return __half2float(__ushort_as_half((unsigned short)h));
  return __uint_as_float(h << 16);
}
__device__ __forceinline__ void mma_f16(float* c, unsigned a0, unsigned a1, unsigned a2, unsigned a3, unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
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
// 16 bytes of W, past L1; L2 fetches the whole 256-byte block (the next 3 chunks)
__device__ __forceinline__ uint4 ldw(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
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

// Block: WR x WK warps; warp (wr, wk) owns rows n0 + 16 (TILES wr + tt) + g + 8 r and the
// contiguous chunks wk CW .. (wk + 1) CW - 1 (a chunk: 128 values of K, 16 bytes of each
// row per lane t, slot t of the chunk). The mma's 8 columns are groups: column col(p, h)
// takes group h of the p-th chunk of a flush (CPF chunks), so lane (g, t) takes x in a
// chunk of phase p only when g == col(p, h) (pa below); the other lanes read a zero
// block. After a flush lane t holds, for rows g and g + 8, the groups gb + 2t and
// gb + 2t + 1 (gb + t for group 128) in c[2r], c[2r+1].
// The host checks: one row of x per product, K % (512 WK) == 0, N K / 8 < 2^31 (32-bit
// offsets within a matrix), the shared memory size.
extern "C" __global__ void __launch_bounds__(V5_WR * V5_WK * 32, V5_MINB) k(const unsigned short* __restrict__ x,
    const unsigned* __restrict__ w, const unsigned short* __restrict__ s, const unsigned short* __restrict__ b,
    OT* __restrict__ out, long long batch, long long N_, long long K_, long long packed_, PICK_PARAMS) {
  constexpr bool F16 = V5_F16 != 0;
  constexpr int GS = V5_GS, WR = V5_WR, WK = V5_WK, TILES = V5_TILES, PF = V5_PF;
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
  long long xi = bi, wi = bi;
  // the whole block returns together (one bi per block), before its first barrier
  if (bi >= batch || !pick(PICK_ARGS, bi, &xi, &wi)) return;
  const int packed = K / 8, groups = K / GS;
  const int CW = K / 128 / WK, cbeg = wk * CW, NIT = CW / U;
  // shared memory (bytes): x's fragments [chunk][even 128 | odd 128] at 0, zeros at XF (ZB is
  // bank-shifted from the fragments' 32t), (X, Y) per group at XYO, row sums [WK][R] at REDO,
  // then the warps' largest |x|
  const int XF = 2 * K, ZB = XF + 16, XYO = XF + 192, REDO = XYO + 8 * groups;
  const unsigned short* xb = x + xi * K;
  const unsigned* wm = w + wi * N * packed;
  const unsigned short* sg = s + wi * N * groups;
  const unsigned short* bg = b + wi * N * groups;
  const uint4* wp[TILES][2];
  int so[TILES][2];  // this lane's first scale of each row, less the flush's group base
#pragma unroll
  for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = min(n0 + 16 * (TILES * wr + tt) + 8 * r + g, N - 1);  // past N: read N - 1, not stored
      wp[tt][r] = reinterpret_cast<const uint4*>(wm + (long long)row * packed) + 4 * cbeg + t;
      so[tt][r] = row * groups + (NGL == 2 ? 2 * t : t);
    }
  // the first PF chunks' words and the first flush's scales are requested before x is prepared
  uint4 buf[PF][TILES][2];
#pragma unroll
  for (int q = 0; q < PF; ++q)
#pragma unroll
    for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
      for (int r = 0; r < 2; ++r) buf[q][tt][r] = ldw(wp[tt][r] + 4 * q);
  unsigned sc[TILES][2], bc[TILES][2];
  v5_scales<NGL>(sc, bc, so, G * cbeg, sg, bg);

  // x, once per block: times 2^S (max |x| 2^S in [2^14, 2^15): bfloat16 and float16 values
  // are then exact in float16), rounded to float16, odd positions also divided by 16.
  // Piece i = 8 values = word i % 4 of slot (i / 4) % 4 of chunk i / 16; its B registers
  // (levels 0,4 | 2,6 and 1,5 | 3,7 of the word) go to 8 i + 128 (i / 16) and + 128.
  int S = 0;
  {
    unsigned mh = 0u, ml = 0u;  // largest |x| bit pattern, high and low halves
    for (int i = threadIdx.x; i < K / 8; i += NT) {
      const uint4 v = __ldg(reinterpret_cast<const uint4*>(xb) + i);
      mh = max(mh, max(max(v.x & 0x7FFF0000u, v.y & 0x7FFF0000u), max(v.z & 0x7FFF0000u, v.w & 0x7FFF0000u)));
      ml = max(ml, max(max(v.x << 17, v.y << 17), max(v.z << 17, v.w << 17)));
    }
    unsigned m = max(mh >> 16, ml >> 17);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) m = max(m, __shfl_xor_sync(0xffffffffu, m, o));
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
    const float x0 = h2f(v.x & 0xFFFFu) * fe, x2 = h2f(v.y & 0xFFFFu) * fe;
    const float x4 = h2f(v.z & 0xFFFFu) * fe, x6 = h2f(v.w & 0xFFFFu) * fe;
    const float x1 = h2f(v.x >> 16) * fo, x3 = h2f(v.y >> 16) * fo;
    const float x5 = h2f(v.z >> 16) * fo, x7 = h2f(v.w >> 16) * fo;
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
          for (int r = 0; r < 2; ++r) buf[u % PF][tt][r] = ldw(wp[tt][r] + 4 * (u + PF));
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
          mma_f16(c[tt], lvl<0x000F000Fu>(va), lvl<0x000F000Fu>(vb), lvl<0x00F000F0u>(va), lvl<0x00F000F0u>(vb),
                  be[2 * j], bo[2 * j]);
          mma_f16(c[tt], lvl<0x000F000Fu>(ha), lvl<0x000F000Fu>(hb), lvl<0x00F000F0u>(ha), lvl<0x00F000F0u>(hb),
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
              a = fmaf(h2f(sc[tt][r] & 0xFFFFu), c[tt][2 * r] - q.y, a);
              a = fmaf(h2f(bc[tt][r] & 0xFFFFu), q.x, a);
              a = fmaf(h2f(sc[tt][r] >> 16), c[tt][2 * r + 1] - q.w, a);
              a = fmaf(h2f(bc[tt][r] >> 16), q.z, a);
              y[tt][r] = a;
            }
        } else {
          const float2 q = *reinterpret_cast<const float2*>(v5sm + XYO + 8 * (gb + t));
#pragma unroll
          for (int tt = 0; tt < TILES; ++tt)
#pragma unroll
            for (int r = 0; r < 2; ++r) {
              float a = y[tt][r];
              a = fmaf(h2f(sc[tt][r]), c[tt][2 * r] - q.y, a);
              a = fmaf(h2f(bc[tt][r]), q.x, a);
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
    if (n0 + i < N) sto(out + (long long)bi * N + n0 + i, a * inv);
  }
}
"#;

fn gemv_src(s: &QuantSpec, st: &str, ot: &str, m: usize) -> String {
    let sub = s.group_size.min(32);
    format!(
        r#"{}
#define MROWS {m}
#define SUB {sub}
// one warp per (matrix, row of W): out[b, :, n] = x[b] @ W[b, n, :]
extern "C" __global__ void k(const OT* __restrict__ x, const unsigned* __restrict__ w, const ST* __restrict__ s, const ST* __restrict__ b,
    OT* __restrict__ out, long long batch, long long N, long long K, long long packed, PICK_PARAMS) {{
  long long warp = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
  int lane = threadIdx.x & 31;
  if (warp >= batch * N) return;
  long long bi = warp / N, r = warp - bi * N;
  long long xi = bi, wi = bi;
  if (!pick(PICK_ARGS, bi, &xi, &wi)) return;
  long long row = wi * N + r;
  const unsigned* wr = w + row * packed;
  long long groups = K / GS;
  const OT* xb = x + xi * MROWS * K;
  float acc[MROWS];
  #pragma unroll
  for (int m = 0; m < MROWS; ++m) acc[m] = 0.f;
  long long chunks = (K + 31) / 32;
  for (long long c = lane; c < chunks; c += 32) {{
    long long c0 = c * 32;
    int n = (int)min(32ll, K - c0);
    unsigned q[32];
    unpack32(wr + c0 * BITS / 32, (n * BITS + 31) / 32, q);
    #pragma unroll
    for (int h = 0; h < 32; h += SUB) {{
      if (h >= n) break;
      long long g = row * groups + (c0 + h) / GS;
      float sc = scale_of(s, g);
#if MODE == 0
      float bb = ldf(b[g]);
#endif
      #pragma unroll
      for (int m = 0; m < MROWS; ++m) {{
        const OT* xr = xb + m * K + c0 + h;
        float d = 0.f, sx = 0.f;
        #pragma unroll
        for (int i = 0; i < SUB; ++i) {{
          float xv = ldf(xr[i]);
          d = fmaf(level(q[h + i]), xv, d);
          sx += xv;
        }}
#if MODE == 0
        acc[m] += sc * d + bb * sx;
#else
        acc[m] += sc * d;
#endif
      }}
    }}
  }}
  #pragma unroll
  for (int m = 0; m < MROWS; ++m) {{
    float v = acc[m];
    #pragma unroll
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    if (lane == 0) sto(out + (bi * MROWS + m) * N + r, v);
  }}
}}
"#,
        common(s, st, ot)
    )
}

/// The C storage type of the scales (uint8 codes for mx/nv).
fn scale_type(op: &str, s: &QuantSpec, d: Dtype) -> Result<&'static str> {
    match (s.mode, d) {
        (QuantMode::Affine, Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16) => {
            ctype(d).ok_or_else(|| unsupported(op, format!("scales of {d}")))
        }
        (QuantMode::Affine, _) => Err(unsupported(op, format!("scales of {d}"))),
        (_, Dtype::Uint8) => Ok("unsigned char"),
        _ => Err(Error::runtime(op, "mx/nv scales must be uint8")),
    }
}

fn float_type(op: &str, d: Dtype) -> Result<&'static str> {
    match d {
        Dtype::Float32 | Dtype::Float16 | Dtype::Bfloat16 => {
            ctype(d).ok_or_else(|| unsupported(op, format!("The dtype {d}")))
        }
        _ => Err(unsupported(op, format!("quantized kernels in {d}"))),
    }
}

/// (rows, packed, cols) of the packed matrix `w` (all leading dims as rows).
pub(crate) fn packed_dims(op: &str, w: &Input, s: &QuantSpec) -> Result<(usize, usize, usize)> {
    let nd = w.shape.len();
    if nd < 2 || w.dtype != Dtype::Uint32 {
        return Err(Error::runtime(
            op,
            "packed matrix must be uint32 with 2+ dims",
        ));
    }
    let packed = w.shape[nd - 1];
    let bits_total = packed.checked_mul(32).ok_or_else(|| Error::overflow(op))?;
    if !bits_total.is_multiple_of(s.bits) || !(bits_total / s.bits).is_multiple_of(s.group_size) {
        return Err(Error::runtime(op, "packed width does not match the format"));
    }
    Ok((size_of(&w.shape[..nd - 1]), packed, bits_total / s.bits))
}

fn i64_of(op: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::overflow(op))
}

/// Device index arrays of a gathered GEMV (`GatherQmm`): int64 `lhs`/`rhs` into `nx`
/// x matrices and `nw` W matrices, and the error word a bad index is recorded in.
pub(crate) struct Picks<'a> {
    pub lhs: &'a cudarc::driver::CudaSlice<u8>,
    pub rhs: &'a cudarc::driver::CudaSlice<u8>,
    pub nx: usize,
    pub nw: usize,
    pub err: &'a cudarc::driver::CudaSlice<u8>,
}

impl CudaBackend {
    /// Buffers of w, scales and (affine) biases, contiguous, with sizes checked against
    /// `rows` x `packed` words and `rows` x `cols / group` scales.
    pub(crate) fn packed_inputs(
        &self,
        op: &str,
        s: &QuantSpec,
        ins: Vec<Input>,
        first: usize,
    ) -> Result<Vec<Input>> {
        let ins = ins
            .into_iter()
            .map(|x| self.contiguous_input(op, x))
            .collect::<Result<Vec<_>>>()?;
        let w = ins
            .get(first)
            .ok_or_else(|| Error::runtime(op, "missing w"))?;
        let (rows, packed, cols) = packed_dims(op, w, s)?;
        let groups = rows
            .checked_mul(cols / s.group_size)
            .ok_or_else(|| Error::overflow(op))?;
        let need_w = rows
            .checked_mul(packed)
            .ok_or_else(|| Error::overflow(op))?
            * 4;
        let sc = ins
            .get(first + 1)
            .ok_or_else(|| Error::runtime(op, "missing scales"))?;
        let mut ok = w.data.buffer.nbytes() >= need_w
            && size_of(&sc.shape) == groups
            && sc.data.buffer.nbytes() >= groups * sc.dtype.size();
        if s.mode == QuantMode::Affine {
            let b = ins
                .get(first + 2)
                .ok_or_else(|| Error::runtime(op, "missing biases"))?;
            ok &= size_of(&b.shape) == groups
                && b.dtype == sc.dtype
                && b.data.buffer.nbytes() >= groups * b.dtype.size();
        }
        if !ok {
            return Err(Error::runtime(op, "packed operand sizes disagree"));
        }
        Ok(ins)
    }

    pub(crate) fn dequantize(
        &self,
        s: &QuantSpec,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
        exact: bool,
    ) -> Result<ArrayData> {
        let op = "dequantize";
        let ins = self.packed_inputs(op, s, ins, 0)?;
        let (w, sc) = (&ins[0], &ins[1]);
        let (rows, packed, cols) = packed_dims(op, w, s)?;
        let src = dequantize_src(
            s,
            scale_type(op, s, sc.dtype)?,
            float_type(op, out_dtype)?,
            exact,
        );
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        if size_of(shape) != rows * cols {
            return Err(Error::runtime(op, "output shape disagrees with w"));
        }
        if rows * cols > 0 {
            let f = self.compiler.get(op, src)?;
            let (wd, sd) = (self.device_of(op, w)?, self.device_of(op, sc)?);
            let bd = match ins.get(2) {
                Some(b) => self.device_of(op, b)?,
                None => sd,
            };
            let dst = out.slice_mut()?;
            let a = [rows, cols, packed]
                .into_iter()
                .map(|v| i64_of(op, v))
                .collect::<Result<Vec<_>>>()?;
            let per_thread = if 32 % s.bits == 0 { 32 / s.bits } else { 32 };
            let cfg = self.grid(rows * cols.div_ceil(per_thread));
            ffi::launch(op, &self.alloc.stream, &f, cfg, |b| {
                ffi::arg(b, wd);
                ffi::arg(b, sd);
                ffi::arg(b, bd);
                ffi::arg(b, &*dst);
                ffi::arg(b, &a[0]);
                ffi::arg(b, &a[1]);
                ffi::arg(b, &a[2]);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }

    pub(crate) fn quantized_matmul(
        &self,
        s: &QuantSpec,
        transpose: bool,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = "quantized_matmul";
        let nd = shape.len();
        float_type(op, out_dtype)?;
        let mut ins = ins.into_iter();
        let x = ins.next().ok_or_else(|| Error::runtime(op, "missing x"))?;
        if nd < 2 || x.shape.len() != nd || x.dtype != out_dtype {
            return Err(Error::runtime(op, "x and the output disagree"));
        }
        let (m, n) = (shape[nd - 2], shape[nd - 1]);
        let k = x.shape[nd - 1];
        if !transpose || m > GEMV_ROWS || size_of(shape) == 0 {
            return self.dequantized_matmul(op, s, transpose, x, ins.collect(), shape, out_dtype);
        }
        let x = self.contiguous_input(op, x)?;
        let params = self.packed_inputs(op, s, ins.collect(), 0)?;
        let batch = size_of(&shape[..nd - 2]);
        let (rows, _, cols) = packed_dims(op, &params[0], s)?;
        if cols != k || rows != batch * n {
            return Err(Error::runtime(op, "x does not match the quantized matrix"));
        }
        self.gemv(op, s, &x, &params, shape, out_dtype, None)
    }

    /// The GEMV kernels: `shape` (.., m, n) products of x (.., m, k) rows against W^T;
    /// product b reads x and W matrix b, or those `picks` names. x and the packed
    /// params are contiguous; their sizes are checked here against the matrices the
    /// kernel may read.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn gemv(
        &self,
        op: &str,
        s: &QuantSpec,
        x: &Input,
        params: &[Input],
        shape: &[usize],
        out_dtype: Dtype,
        picks: Option<&Picks<'_>>,
    ) -> Result<ArrayData> {
        let nd = shape.len();
        let (m, n) = (shape[nd - 2], shape[nd - 1]);
        let batch = size_of(&shape[..nd - 2]);
        let w = params
            .first()
            .ok_or_else(|| Error::runtime(op, "missing w"))?;
        let sc = params
            .get(1)
            .ok_or_else(|| Error::runtime(op, "missing scales"))?;
        let (rows, packed, k) = packed_dims(op, w, s)?;
        // the x and W matrices the kernel may read
        let (x_mats, w_mats) = match picks {
            Some(p) => (p.nx, p.nw),
            None => (batch, batch),
        };
        if rows != w_mats * n
            || x.shape.last() != Some(&k)
            || x.data.buffer.nbytes() < x_mats * m * k * out_dtype.size()
        {
            return Err(Error::runtime(op, "x does not match the quantized matrix"));
        }
        // The vector kernel reads 16-byte words: 4 or 8 bits (wider runs of values would
        // not fit in registers), K a multiple of the
        // values those hold, and rows whose packed width keeps them 16-byte aligned.
        let vpl = 128 / s.bits;
        let vector =
            (s.bits == 4 || s.bits == 8) && k.is_multiple_of(vpl) && packed.is_multiple_of(4);
        let st = scale_type(op, s, sc.dtype)?;
        let ot = float_type(op, out_dtype)?;
        // The tensor-core kernel: 4-bit affine, x and scales in one half type.
        let mma = s.mode == QuantMode::Affine
            && s.bits == 4
            && matches!(out_dtype, Dtype::Float16 | Dtype::Bfloat16)
            && sc.dtype == out_dtype
            && k.is_multiple_of(128);
        // Many single-row products (a mixture-of-experts batch): blocks of 8 products,
        // each matrix among them read once for all its products (a sorted batch shares
        // experts); few products keep one block per product, for parallelism.
        let grouped = mma && m == 1 && batch >= GROUP_MIN && picks.is_some();
        // One row of x per product (not grouped): version 5 where its shape allows.
        let mut v5 = if mma && m == 1 && !grouped && params.get(2).is_some() {
            let (sms, max_shared) = self.limits();
            v5_plan(n, k, s.group_size, batch, sms, max_shared).map(|p| (p, max_shared))
        } else {
            None
        };
        // Kernels are found by a short key (`Compiler::memo`) rather than by generating
        // and hashing their source on every call: a decode calls this per layer.
        let mut f = None;
        if let Some((p, max_shared)) = v5 {
            let key = format!("qgemv5 {ot} {} {:?} {}", s.group_size, p.shape, p.shared);
            let got = self.compiler.memo(key, || {
                let g = self
                    .compiler
                    .get(op, gemv_v5_src(ot, s.group_size, p.shape))?;
                // Past 48 KiB a kernel must opt in: to the device's limit, the same for
                // every launch (v5_plan checked p.shared against it); if the driver
                // refuses, `gemv_mma_src` runs instead.
                let allowed = p.shared <= DEFAULT_SHARED
                    || i32::try_from(max_shared).is_ok_and(|v| {
                        g.set_attribute(
                            CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                            v,
                        )
                        .is_ok()
                    });
                if allowed {
                    Ok(g)
                } else {
                    Err(unsupported(op, "the shared memory of GEMV version 5"))
                }
            });
            match got {
                Ok(g) => f = Some(g),
                Err(Error::Unsupported { .. }) => v5 = None,
                Err(e) => return Err(e),
            }
        }
        let f = match f {
            Some(f) => f,
            None => {
                let key = format!(
                    "qgemv {mma} {vector} {grouped} {m} {ot} {st} {:?} {} {}",
                    s.mode, s.bits, s.group_size
                );
                self.compiler.memo(key, || {
                    let src = if mma {
                        gemv_mma_src(ot, s.group_size, m, grouped)
                    } else if vector {
                        gemv_vec_src(s, st, ot, m)
                    } else {
                        gemv_src(s, st, ot, m)
                    };
                    self.compiler.get(op, src)
                })?
            }
        };
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        if batch * m * n == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let (xd, wd, sd) = (
            self.device_of(op, x)?,
            self.device_of(op, w)?,
            self.device_of(op, sc)?,
        );
        let bd = match params.get(2) {
            Some(b) => self.device_of(op, b)?,
            None => sd,
        };
        let dst = out.slice_mut()?;
        let (blocks, threads, shared) = if let Some((p, _)) = v5 {
            (p.blocks, p.shape.threads() as u32, p.shared)
        } else if mma {
            let units = if grouped { batch.div_ceil(8) } else { batch };
            (units * n.div_ceil(MMA_ROWS), (MMA_WARPS * 32) as u32, 0)
        } else {
            let warps = if vector {
                batch * n.div_ceil(WARP_ROWS)
            } else {
                batch * n
            };
            ((warps * 32).div_ceil(128), 128u32, 0)
        };
        let cfg = LaunchConfig {
            grid_dim: (
                u32::try_from(blocks).map_err(|_| Error::value(op, "Too many rows."))?,
                1,
                1,
            ),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: u32::try_from(shared).map_err(|_| Error::overflow(op))?,
        };
        let a = [batch, n, k, packed, x_mats, w_mats]
            .into_iter()
            .map(|v| i64_of(op, v))
            .collect::<Result<Vec<_>>>()?;
        let null = 0u64;
        ffi::launch(op, &self.alloc.stream, &f, cfg, |b| {
            ffi::arg(b, xd);
            ffi::arg(b, wd);
            ffi::arg(b, sd);
            ffi::arg(b, bd);
            ffi::arg(b, &*dst);
            ffi::arg(b, &a[0]);
            ffi::arg(b, &a[1]);
            ffi::arg(b, &a[2]);
            ffi::arg(b, &a[3]);
            match picks {
                Some(p) => {
                    ffi::arg(b, p.lhs);
                    ffi::arg(b, p.rhs);
                }
                None => {
                    ffi::arg(b, &null);
                    ffi::arg(b, &null);
                }
            }
            ffi::arg(b, &a[4]);
            ffi::arg(b, &a[5]);
            match picks {
                Some(p) => ffi::arg(b, p.err),
                None => ffi::arg(b, &null),
            }
        })?;
        Ok(on_device(out, nbytes, shape))
    }

    /// W expanded to x's dtype, then a cuBLASLt product (`W^T` as a column-major view).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn dequantized_matmul(
        &self,
        op: &str,
        s: &QuantSpec,
        transpose: bool,
        x: Input,
        params: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let w = params
            .first()
            .ok_or_else(|| Error::runtime(op, "missing w"))?;
        let (_, _, cols) = packed_dims(op, w, s)?;
        let mut dshape = w.shape.clone();
        let last = dshape.len() - 1;
        dshape[last] = cols;
        let dense = self.dequantize(s, params, &dshape, out_dtype, false)?;
        let nd = dshape.len();
        let (vshape, strides) = if transpose {
            let mut vs = dshape.clone();
            vs.swap(nd - 2, nd - 1);
            let mut st = dense.strides.clone();
            st.swap(nd - 2, nd - 1);
            (vs, st)
        } else {
            (dshape.clone(), dense.strides.clone())
        };
        let view = ArrayData::new(
            op,
            Arc::clone(&dense.buffer),
            0,
            strides,
            &vshape,
            out_dtype,
        )?;
        let wi = Input {
            shape: vshape,
            dtype: out_dtype,
            data: view,
            donatable: false,
        };
        self.matmul(op, vec![x, wi], shape, out_dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H200: (usize, usize) = (132, 232_448);

    fn plan(n: usize, k: usize, gs: usize, batch: usize) -> Option<V5Plan> {
        v5_plan(n, k, gs, batch, H200.0, H200.1)
    }

    #[test]
    fn v5_shape_follows_the_lab() {
        // the lab's batches: 16 x 4096x4096, 4 x 14336x4096, 4 x 4096x14336 (the last one
        // has 128 blocks, fewer than the 132 SMs: 8 matrices here)
        let shape = |n, k, gs, batch| plan(n, k, gs, batch).map(|p| p.shape);
        for gs in [64, 128] {
            assert_eq!(shape(4096, 4096, gs, 16), Some(V5_ROWS));
            assert_eq!(shape(14336, 4096, gs, 4), Some(V5_ROWS));
            assert_eq!(shape(4096, 14336, gs, 8), Some(V5_SPLIT_K));
        }
        assert_eq!(shape(4096, 4096, 32, 16), Some(V5_SPLIT_K));
        assert_eq!(shape(14336, 4096, 32, 4), Some(V5_SPLIT_K));
        // a single matrix makes too small a grid on an H200 for those: 16-row blocks
        for (n, k) in [(4096, 4096), (14336, 4096), (4096, 14336)] {
            assert_eq!(shape(n, k, 64, 1), Some(V5_SMALL[0]));
        }
        assert_eq!(shape(4096, 3072, 64, 1), Some(V5_SMALL[1]));
        assert_eq!(plan(4096, 4096, 64, 1).map(|p| p.blocks), Some(256));
        // one block per SM exactly (here a GPU of 8): the 16-warp blocks
        let small = |n, k, batch| v5_plan(n, k, 64, batch, 8, H200.1).map(|p| p.shape);
        assert_eq!(small(1024, 4096, 1), Some(V5_SPLIT_K));
        assert_eq!(small(4096, 4096, 1), Some(V5_ROWS));
        // K a multiple of 512 but not of 1024: the shape that divides it
        assert_eq!(shape(4096, 1536, 32, 16), Some(V5_ROWS));
        assert_eq!(small(2048, 1536, 1), Some(V5_ROWS));
        // small grids with K a multiple of 512 only: the previous kernel
        assert_eq!(shape(4096, 1536, 64, 1), None);
    }

    #[test]
    fn v5_declines_what_it_cannot_run() {
        for k in [0, 128, 256, 384, 4352, 8224, 8256, 8320] {
            assert_eq!(plan(70, k, 64, 2), None, "k = {k}");
        }
        assert_eq!(plan(0, 4096, 64, 1), None);
        assert_eq!(plan(4096, 4096, 16, 1), None);
        // 32-bit offsets within a matrix: N K / 8 < 2^31
        assert!(plan((1 << 20) - 1, 1 << 14, 64, 1).is_some());
        assert_eq!(plan(1 << 20, 1 << 14, 64, 1), None);
        assert_eq!(plan(usize::MAX, 4096, 64, 1), None);
        // a single product past 32-bit offsets: the previous kernel
        assert_eq!(plan(1 << 20, 1 << 14, 64, 1), None);
        assert!(plan(1 << 12, 1 << 14, 64, 1).is_some());
        assert_eq!(plan(4096, 4096, 64, usize::MAX), None);
        // shared memory past 48 KiB only where the device lets a block opt into it
        let big = plan(4096, 65536, 32, 16).map(|p| p.shared);
        assert!(big.is_some_and(|s| s > DEFAULT_SHARED && s <= H200.1));
        assert_eq!(v5_plan(4096, 65536, 32, 16, 132, 0), None);
        assert_eq!(plan(4096, 1 << 20, 32, 1), None);
    }

    #[test]
    fn v5_launch_sizes() {
        // K = 4096, group 64, WR4 WK1 T2 PF2: 8 KiB of x, 192, 64 groups x 8, 128 row
        // sums, 4 warps
        let p = plan(4096, 4096, 64, 16);
        assert_eq!(
            p,
            Some(V5Plan {
                shape: V5_ROWS,
                shared: 8192 + 192 + 512 + 512 + 16,
                blocks: 16 * 32,
            })
        );
        assert_eq!((V5_ROWS.threads(), V5_ROWS.rows()), (128, 128));
        assert_eq!((V5_SPLIT_K.threads(), V5_SPLIT_K.rows()), (512, 128));
        // 70 rows: one partial block per matrix (on a GPU small enough to take it)
        let p = v5_plan(70, 14336, 32, 2, 1, H200.1);
        assert_eq!(p.map(|p| p.blocks), Some(2));
    }

    #[test]
    fn v5_source_has_its_constants() {
        let src = gemv_v5_src("__nv_bfloat16", 32, V5_SPLIT_K);
        for want in [
            "#define V5_F16 0",
            "#define V5_GS 32",
            "#define V5_WR 8",
            "#define V5_WK 2",
            "#define V5_TILES 1",
            "#define V5_PF 4",
            "#define V5_MINB 1",
            "typedef __nv_bfloat16 OT;",
            "extern \"C\" __global__ void __launch_bounds__(V5_WR * V5_WK * 32, V5_MINB) k(",
        ] {
            assert!(src.contains(want), "{want}");
        }
        assert!(gemv_v5_src("__half", 64, V5_ROWS).contains("#define V5_F16 1"));
    }
}
