//! `Dequantize` and `QuantizedMatmul` on the GPU. Packed rows are read 32 values at a
//! time (`bits` consecutive words); a value becomes a float through its mode (the level
//! for affine, an E2M1/E4M3 value for mx/nv) and its group's scale (and bias).
//!
//! - Products with at most `GEMV_ROWS` rows of x against `x @ W^T` run one warp per row
//!   of W: the lanes stride over the row's 32-value chunks, decode once and take the dot
//!   products for every row of x, then reduce across the warp. This is the decode path
//!   of a language model, bound by reading the packed matrix once.
//! - With 4-bit affine weights and x in float16/bfloat16 the same products run on the
//!   tensor cores instead (`gemv_mma_src`): decoding is then the whole cost, and a pair
//!   of levels costs one bit operation and two paired FMAs.
//! - Other products expand W to x's dtype (one kernel) and multiply with cuBLASLt.
//!
//! Every extent was checked by the op (`oxmx-core/src/ops/quantized.rs`); the buffers'
//! sizes are checked against them again here before a launch.

use crate::kernels::{ctype, PRELUDE};
use crate::{ffi, on_device, unsupported, CudaBackend};
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
/// i and i+4, regrouped with byte permutes.
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
        let src = if mma {
            gemv_mma_src(ot, s.group_size, m, grouped)
        } else if vector {
            gemv_vec_src(s, st, ot, m)
        } else {
            gemv_src(s, st, ot, m)
        };
        let f = self.compiler.get(op, src)?;
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
        let (blocks, threads) = if mma {
            let units = if grouped { batch.div_ceil(8) } else { batch };
            (units * n.div_ceil(MMA_ROWS), (MMA_WARPS * 32) as u32)
        } else {
            let warps = if vector {
                batch * n.div_ceil(WARP_ROWS)
            } else {
                batch * n
            };
            ((warps * 32).div_ceil(128), 128u32)
        };
        let cfg = LaunchConfig {
            grid_dim: (
                u32::try_from(blocks).map_err(|_| Error::value(op, "Too many rows."))?,
                1,
                1,
            ),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
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
