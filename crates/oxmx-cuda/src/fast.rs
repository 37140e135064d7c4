//! The fused kernels of `oxmx.core.fast` on the GPU: one block per row for the norms and
//! cross-entropy, one thread per rotated pair for rope, and a tiled attention kernel
//! (one warp per query row, key/value tiles in shared memory, online softmax in f32 or
//! f64) that never materialises the score matrix.

use crate::kernels::{ctype, BLOCK_REDUCE, PRELUDE};
use crate::{ffi, on_device, red_cfg, unsupported, CudaBackend};
use cudarc::driver::LaunchConfig;
use oxmx_core::backend::Input;
use oxmx_core::primitive::{FastKernel, SdpaMask};
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};

/// Loads to the compute type and stores rounded once (halves as the CPU rounds them).
const LDST: &str = r#"
__device__ __forceinline__ float ldf(float v) { return v; }
__device__ __forceinline__ double ldf(double v) { return v; }
__device__ __forceinline__ float ldf(__half v) { return ld(v); }
__device__ __forceinline__ float ldf(__nv_bfloat16 v) { return ld(v); }
__device__ __forceinline__ void sto(float* p, float v) { *p = v; }
__device__ __forceinline__ void sto(double* p, double v) { *p = v; }
__device__ __forceinline__ void sto(__half* p, float v) { *p = st_half(v); }
__device__ __forceinline__ void sto(__nv_bfloat16* p, float v) { *p = st_bf16(v); }
__device__ __forceinline__ ACC nmax(ACC a, ACC b) { return (isnan(a) || a > b) ? a : b; }
"#;

/// Shared memory the attention kernel may use per block.
const SDPA_SMEM: usize = 40 * 1024;
/// Query rows (warps) per attention block.
const SDPA_WARPS: usize = 4;

fn types(op: &str, d: Dtype) -> Result<(&'static str, &'static str)> {
    if !d.is_float() {
        return Err(unsupported(op, format!("The dtype {d}")));
    }
    let t = ctype(d).ok_or_else(|| unsupported(op, format!("The dtype {d}")))?;
    Ok((
        t,
        if d == Dtype::Float64 {
            "double"
        } else {
            "float"
        },
    ))
}

fn norm_src(d: Dtype, rms: bool, weight: bool, bias: bool) -> Result<String> {
    let (t, acc) = types("norm", d)?;
    let (w, b) = (weight as u8, bias as u8);
    let mean = if rms {
        "ACC mean = 0;"
    } else {
        "ACC s = 0; for (long long j = threadIdx.x; j < n; j += blockDim.x) s += ldf(x[j]); ACC mean = block_sum(s, sh) / (ACC)n;"
    };
    Ok(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n{BLOCK_REDUCE}\n{LDST}\n#define HAS_W {w}\n#define HAS_B {b}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, const {t}* __restrict__ wt, const {t}* __restrict__ bs, {t}* __restrict__ out, long long n, double eps) {{\n\
  __shared__ ACC sh[32];\n\
  const {t}* x = in + (long long)blockIdx.x * n; {t}* y = out + (long long)blockIdx.x * n;\n\
  {mean}\n\
  ACC q = 0; for (long long j = threadIdx.x; j < n; j += blockDim.x) {{ ACC v = ldf(x[j]) - mean; q += v * v; }}\n\
  ACC inv = (ACC)1 / sqrt(block_sum(q, sh) / (ACC)n + (ACC)eps);\n\
  for (long long j = threadIdx.x; j < n; j += blockDim.x) {{\n\
    ACC v = (ldf(x[j]) - mean) * inv;\n\
    if (HAS_W) v = v * ldf(wt[j]);\n\
    if (HAS_B) v = v + ldf(bs[j]);\n\
    sto(&y[j], v);\n\
  }}\n\
}}\n"
    ))
}

/// Gradient outputs from this many elements get 16-byte-padded rows.
const PAD_GRAD_MIN: usize = 1 << 22;

/// `(offset, row stride)` in elements when `x`'s rows (its last axis) are contiguous and
/// evenly spaced (a contiguous array, a slice of columns, a padded matrix), else None.
fn row_layout(x: &Input) -> Option<(usize, usize)> {
    let nd = x.shape.len();
    let n = x.shape.last().copied().unwrap_or(1);
    let st = &x.data.strides;
    if nd == 0 {
        return Some((x.data.offset, 1));
    }
    if n > 1 && st.get(nd - 1).copied() != Some(1) {
        return None;
    }
    let ld = if nd >= 2 {
        usize::try_from(*st.get(nd - 2)?).ok()?
    } else {
        n
    };
    let ld = if nd >= 2 && x.shape.get(nd - 2) == Some(&1) {
        n
    } else {
        ld
    };
    if ld < n {
        return None;
    }
    // the rows: every leading axis steps by whole rows
    let mut expect = ld;
    for d in (0..nd - 1).rev() {
        let len = *x.shape.get(d)?;
        if len != 1 && usize::try_from(*st.get(d)?).ok()? != expect {
            return None;
        }
        expect = expect.checked_mul(len)?;
    }
    Some((x.data.offset, ld))
}

/// Most threads per row of the norm kernels: 256, or `OXMX_NORM_THREADS` (a multiple of
/// 32 from 32 to 1024; for measuring other block shapes on a GPU).
fn norm_threads() -> usize {
    static T: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        std::env::var("OXMX_NORM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|t| t % 32 == 0 && (32..=1024).contains(t))
            .unwrap_or(256)
    })
}

/// Most row elements per thread of the register norm kernel (256 threads: rows of up to
/// 16384 elements).
const NORM_MAX_PER_THREAD: usize = 64;

/// Combines row statistics (count, mean, sum of squared deviations) across a block in
/// one reduction (Chan et al.'s pairwise update), every thread getting the same bits: at
/// each butterfly step both lanes join the lower lane's part with the higher lane's.
const BLOCK_MEAN_VAR: &str = r#"
__device__ __forceinline__ void mv_join(ACC& c, ACC& m, ACC& q, ACC c2, ACC m2, ACC q2) {
  // an empty part changes nothing (and must not: 0 * an overflowed d*d would be NaN)
  if (c2 == (ACC)0) return;
  if (c == (ACC)0) { c = c2; m = m2; q = q2; return; }
  ACC n = c + c2;
  ACC d = m2 - m, f = c2 / n;
  m = m + d * f; q = q + q2 + d * d * c * f; c = n;
}
__device__ __forceinline__ void warp_mean_var(ACC& c, ACC& m, ACC& q) {
  const int l = threadIdx.x & 31;
  for (int o = 16; o > 0; o >>= 1) {
    ACC c2 = __shfl_xor_sync(0xffffffffu, c, o), m2 = __shfl_xor_sync(0xffffffffu, m, o), q2 = __shfl_xor_sync(0xffffffffu, q, o);
    if (l & o) { ACC t; t = c; c = c2; c2 = t; t = m; m = m2; m2 = t; t = q; q = q2; q2 = t; }
    mv_join(c, m, q, c2, m2, q2);
  }
}
__device__ __forceinline__ void block_mean_var(ACC& c, ACC& m, ACC& q, ACC* sh) {
  warp_mean_var(c, m, q);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31, nw = blockDim.x >> 5;
  if (l == 0) { sh[w] = c; sh[32 + w] = m; sh[64 + w] = q; }
  __syncthreads();
  c = l < nw ? sh[l] : (ACC)0; m = l < nw ? sh[32 + l] : (ACC)0; q = l < nw ? sh[64 + l] : (ACC)0;
  warp_mean_var(c, m, q);
}
"#;

/// The norms with each thread's part of the row read once into registers (`vw`-element
/// vector loads and stores: 16 bytes for halves, `vpt` vectors per thread), for rows of
/// a multiple of `vw` up to 16384 elements. Where they fit in a few registers (at most 64
/// bytes of each per thread), the weight and bias are loaded with the row, before the
/// reduction waits; otherwise after it. rms_norm takes the mean of squares in one block sum;
/// layer_norm takes each thread's mean and squared deviations from it (two passes over
/// registers) and joins them across the block in one reduction (`BLOCK_MEAN_VAR`): one
/// block-wide wait instead of two, accurate for rows far from zero.
fn norm_regs_src(
    d: Dtype,
    rms: bool,
    weight: bool,
    bias: bool,
    vw: usize,
    vpt: usize,
) -> Result<String> {
    let (t, acc) = types("norm", d)?;
    let (w, b, r) = (weight as u8, bias as u8, rms as u8);
    let early = u8::from(vpt * vw * d.size() <= 64);
    Ok(format!(
        "{PRELUDE}\n#define VW {vw}\ntemplate <typename T> struct alignas(VW * sizeof(T)) VN {{ T v[VW]; }};\ntypedef {acc} ACC;\n{BLOCK_REDUCE}\n{BLOCK_MEAN_VAR}\n{LDST}\n\
#define HAS_W {w}\n#define HAS_B {b}\n#define RMS {r}\n#define VPT {vpt}\n#define EARLY {early}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, const {t}* __restrict__ wt, const {t}* __restrict__ bs, {t}* __restrict__ out, long long n, double eps) {{\n\
  __shared__ ACC sh[96];\n\
  const long long nv = n / VW;\n\
  const VN<{t}>* x = reinterpret_cast<const VN<{t}>*>(in + (long long)blockIdx.x * n);\n\
  VN<{t}>* y = reinterpret_cast<VN<{t}>*>(out + (long long)blockIdx.x * n);\n\
  ACC v[VPT * VW]; VN<{t}> w4[VPT], b4[VPT]; ACC s = 0, cnt = 0;\n\
  #pragma unroll\n\
  for (int i = 0; i < VPT; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
    w4[i] = VN<{t}>{{}}; b4[i] = VN<{t}>{{}};\n\
    if (j < nv) {{ VN<{t}> q = x[j];\n\
      if (HAS_W && EARLY) w4[i] = reinterpret_cast<const VN<{t}>*>(wt)[j];\n\
      if (HAS_B && EARLY) b4[i] = reinterpret_cast<const VN<{t}>*>(bs)[j];\n\
      cnt += (ACC)VW;\n\
      #pragma unroll\n      for (int e = 0; e < VW; ++e) {{ v[i * VW + e] = ldf(q.v[e]); s += v[i * VW + e]; }} }}\n\
    else {{\n      #pragma unroll\n      for (int e = 0; e < VW; ++e) v[i * VW + e] = 0; }} }}\n\
  ACC mean = 0, var;\n\
  if (RMS) {{\n\
    ACC q2 = 0;\n\
    #pragma unroll\n\
    for (int i = 0; i < VPT * VW; ++i) q2 += v[i] * v[i];\n\
    var = block_sum(q2, sh) / (ACC)n;\n\
  }} else {{\n\
    ACC m = cnt > (ACC)0 ? s / cnt : (ACC)0, q2 = 0;\n\
    #pragma unroll\n\
    for (int i = 0; i < VPT; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
      if (j < nv) {{\n        #pragma unroll\n        for (int e = 0; e < VW; ++e) {{ ACC c = v[i * VW + e] - m; q2 += c * c; }} }} }}\n\
    block_mean_var(cnt, m, q2, sh);\n\
    mean = m; var = q2 / (ACC)n;\n\
  }}\n\
  ACC inv = (ACC)1 / sqrt(var + (ACC)eps);\n\
  #pragma unroll\n\
  for (int i = 0; i < VPT; ++i) {{ long long j = threadIdx.x + (long long)i * blockDim.x;\n\
    if (j < nv) {{ VN<{t}> r;\n\
      if (HAS_W && !EARLY) w4[i] = reinterpret_cast<const VN<{t}>*>(wt)[j];\n\
      if (HAS_B && !EARLY) b4[i] = reinterpret_cast<const VN<{t}>*>(bs)[j];\n\
      #pragma unroll\n      for (int e = 0; e < VW; ++e) {{ ACC c = (v[i * VW + e] - mean) * inv;\n\
        if (HAS_W) c = c * ldf(w4[i].v[e]);\n\
        if (HAS_B) c = c + ldf(b4[i].v[e]);\n\
        sto(&r.v[e], c); }}\n\
      y[j] = r; }} }}\n\
}}\n"
    ))
}

fn rope_src(d: Dtype, traditional: bool, freqs: bool) -> Result<String> {
    let (t, acc) = types("rope", d)?;
    let (tr, fr) = (traditional as u8, freqs as u8);
    Ok(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n{LDST}\n#define TRAD {tr}\n#define FREQS {fr}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ x, const long long* __restrict__ offs, const ACC* __restrict__ freqs, {t}* __restrict__ y,\n\
    long long rows, long long T, long long D, long long dims, long long per_batch, long long n_offs, double step, double ln_base, double scale) {{\n\
  long long half = dims / 2, work = half + (D - dims);\n\
  long long total = rows * work;\n\
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < total; g += (long long)gridDim.x * blockDim.x) {{\n\
    long long row = g / work, i = g % work;\n\
    const {t}* r = x + row * D; {t}* o = y + row * D;\n\
    if (i >= half) {{ long long j = dims + (i - half); o[j] = r[j]; continue; }}\n\
    long long t = row % T, b = row / T / per_batch;\n\
    long long off = n_offs == 1 ? offs[0] : offs[b];\n\
    ACC invf = FREQS ? (ACC)1 / freqs[i] : exp(-((ACC)i * (ACC)step) * (ACC)ln_base);\n\
    ACC pos = ((ACC)t + (ACC)off) * (ACC)scale;\n\
    ACC th = pos * (ACC)invf;\n\
    ACC s = sin(th), c = cos(th);\n\
    long long a = TRAD ? 2 * i : i, bb = TRAD ? 2 * i + 1 : i + half;\n\
    ACC x1 = ldf(r[a]), x2 = ldf(r[bb]);\n\
    sto(&o[a], x1 * c - x2 * s);\n\
    sto(&o[bb], x1 * s + x2 * c);\n\
  }}\n\
}}\n"
    ))
}

fn cross_entropy_src(d: Dtype) -> Result<String> {
    let (t, acc) = types("cross_entropy", d)?;
    Ok(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n{LDST}\n{ROW_LSE}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, const long long* __restrict__ tg, float* __restrict__ out, long long n, long long axis, long long* err, long long off, long long ld) {{\n\
  const {t}* x = in + off + (long long)blockIdx.x * ld;\n\
  const ACC lse = row_lse(x, n);\n\
  if (threadIdx.x == 0) {{\n\
    long long t = tg[blockIdx.x];\n\
    if (t >= 0 && t < n) out[blockIdx.x] = (float)(lse - ldf(x[t]));\n\
    else {{ out[blockIdx.x] = __int_as_float(0x7fc00000); if (atomicCAS((unsigned long long*)err, 0ull, 1ull) == 0ull) {{ err[1] = t; err[2] = axis; err[3] = n; }} }}\n\
  }}\n\
}}\n"
    ))
}

/// A block's online logsumexp of the row `x` of `n` elements (running max and sum of
/// exponentials per thread, merged across the block): `row_lse(x, n)` is the same value
/// in every thread: NaN if the row holds one, else +-inf where the max is infinite (as
/// the CPU's max-then-sum). Needs `ACC`, `ldf` and a block of whole warps.
const ROW_LSE: &str = r#"
__device__ __forceinline__ void ms_merge(ACC& m, ACC& s, ACC m2, ACC s2) {
  ACC hi = (isnan(m) || m > m2) ? m : m2;
  ACC a = m == -OX_INF ? (ACC)0 : s * exp(m - hi);
  ACC b = m2 == -OX_INF ? (ACC)0 : s2 * exp(m2 - hi);
  m = hi; s = a + b;
}
__device__ __forceinline__ void ms_warp(ACC& m, ACC& s) {
  for (int off = 16; off > 0; off >>= 1) ms_merge(m, s, __shfl_xor_sync(0xffffffffu, m, off), __shfl_xor_sync(0xffffffffu, s, off));
}
__device__ __forceinline__ void ms_add(ACC& m, ACC& s, ACC v) {
  // a NaN becomes the max for good; -inf adds nothing
  if (v > m || isnan(v)) { s = s * exp(m - v) + (ACC)1; m = v; }
  else s += v == -OX_INF ? (ACC)0 : exp(v - m);
}
template <typename T> struct alignas(4 * sizeof(T)) V4 { T v[4]; };
// Thread t takes the row's groups of 4 elements t, t + blockDim, ... (from the row's
// start), then the tail one by one: the order of every sum depends only on the row's
// length, never on its alignment or element type (a float32 row and its bfloat16 source
// give the same bits). Groups load as one vector where the row starts aligned.
template <typename T>
__device__ __forceinline__ bool row_aligned(const T* p) {
  return (unsigned long long)p % (4 * sizeof(T)) == 0;
}
template <typename T>
__device__ __forceinline__ void group4(const T* __restrict__ x, long long v, bool vec, ACC* a) {
  if (vec) { V4<T> q = reinterpret_cast<const V4<T>*>(x)[v]; a[0] = ldf(q.v[0]); a[1] = ldf(q.v[1]); a[2] = ldf(q.v[2]); a[3] = ldf(q.v[3]); }
  else { a[0] = ldf(x[4 * v]); a[1] = ldf(x[4 * v + 1]); a[2] = ldf(x[4 * v + 2]); a[3] = ldf(x[4 * v + 3]); }
}
template <typename T>
__device__ ACC row_lse(const T* __restrict__ x, long long n) {
  __shared__ ACC shm[32], shs[32];
  ACC m = -OX_INF, s = 0;
  const long long ng = n / 4;
  const bool vec = row_aligned(x);
  #pragma unroll 2
  for (long long v = threadIdx.x; v < ng; v += blockDim.x) {
    ACC a[4]; group4(x, v, vec, a);
    ms_add(m, s, a[0]); ms_add(m, s, a[1]); ms_add(m, s, a[2]); ms_add(m, s, a[3]);
  }
  for (long long j = ng * 4 + threadIdx.x; j < n; j += blockDim.x) ms_add(m, s, ldf(x[j]));
  ms_warp(m, s);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  if (l == 0) { shm[w] = m; shs[w] = s; }
  __syncthreads();
  if (w == 0) {
    const int nw = blockDim.x >> 5;
    m = l < nw ? shm[l] : -OX_INF; s = l < nw ? shs[l] : (ACC)0;
    ms_warp(m, s);
    if (l == 0) { shm[0] = m; shs[0] = s; }
  }
  __syncthreads();
  m = shm[0]; s = shs[0];
  return isinf(m) ? m : m + log(s);
}
"#;

/// `CrossEntropyGrad`: one block per row; the row's logsumexp, then `exp(x - lse) * g`,
/// minus `g` at the target, plus `lse - lse` (NaN for a row whose logsumexp is not
/// finite).
fn cross_entropy_grad_src(d: Dtype) -> Result<String> {
    let (t, acc) = types("cross_entropy_grad", d)?;
    Ok(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n{LDST}\n{ROW_LSE}\n\
extern \"C\" __global__ void k(const {t}* __restrict__ in, const long long* __restrict__ tg, const ACC* __restrict__ g, {t}* __restrict__ out, long long n, long long off, long long ld, long long old) {{\n\
  const {t}* x = in + off + (long long)blockIdx.x * ld;\n\
  {t}* o = out + (long long)blockIdx.x * old;\n\
  const ACC lse = row_lse(x, n);\n\
  const ACC gv = g[blockIdx.x], nan_row = lse - lse;\n\
  const long long t = tg[blockIdx.x];\n\
  const long long ng = n / 4;\n\
  const bool vec = row_aligned(x) && row_aligned(o);\n\
  #define GRAD(j, v) (exp((v) - lse) * gv + ((j) == t ? -gv : (ACC)0) + nan_row)\n\
  #pragma unroll 2\n\
  for (long long v = threadIdx.x; v < ng; v += blockDim.x) {{\n\
    ACC a[4]; group4(x, v, vec, a);\n\
    if (vec) {{\n\
      V4<{t}> r;\n\
      #pragma unroll\n\
      for (int e = 0; e < 4; ++e) sto(&r.v[e], GRAD(v * 4 + e, a[e]));\n\
      reinterpret_cast<V4<{t}>*>(o)[v] = r;\n\
    }} else {{\n\
      #pragma unroll\n\
      for (int e = 0; e < 4; ++e) sto(o + v * 4 + e, GRAD(v * 4 + e, a[e]));\n\
    }}\n\
  }}\n\
  for (long long j = ng * 4 + threadIdx.x; j < n; j += blockDim.x) sto(o + j, GRAD(j, ldf(x[j])));\n\
  for (long long j = n + threadIdx.x; j < old; j += blockDim.x) sto(o + j, (ACC)0);\n\
}}\n"
    ))
}

/// Keys per shared-memory tile for head sizes `dk`/`dv` (0: too large for the kernel).
fn sdpa_tile(dk: usize, dv: usize, acc_size: usize) -> usize {
    let q = SDPA_WARPS * dk * acc_size;
    [32usize, 16, 8, 4, 2, 1]
        .into_iter()
        .find(|&tk| q + tk * (dk + 1 + dv) * acc_size <= SDPA_SMEM)
        .unwrap_or(0)
}

fn sdpa_src(
    d: Dtype,
    dk: usize,
    dv: usize,
    tk: usize,
    mask: SdpaMask,
    sinks: bool,
) -> Result<String> {
    let (t, acc) = types("scaled_dot_product_attention", d)?;
    let nc = dv.div_ceil(32);
    let mk = match mask {
        SdpaMask::None => 0,
        SdpaMask::Causal => 1,
        SdpaMask::Bool => 2,
        SdpaMask::Additive => 3,
    };
    let mt = if mask == SdpaMask::Bool {
        "unsigned char"
    } else {
        t
    };
    let sk = sinks as u8;
    let lowest = if d == Dtype::Float64 {
        "-1.7976931348623157e308"
    } else {
        "-3.402823466e38"
    };
    Ok(format!(
        "{PRELUDE}\ntypedef {acc} ACC;\n{LDST}\n#define DK {dk}\n#define DKP (DK > 0 ? DK : 1)\n#define DV {dv}\n#define TK {tk}\n#define NC {nc}\n#define NW {SDPA_WARPS}\n#define MASK {mk}\n#define SINKS {sk}\n#define LOWEST ((ACC){lowest})\n\
extern \"C\" __global__ void k(const {t}* __restrict__ q, const {t}* __restrict__ kk, const {t}* __restrict__ v, const {mt}* __restrict__ mask, const {t}* __restrict__ sinks, {t}* __restrict__ out,\n\
    long long Hq, long long Hkv, long long Lq, long long Lk, double scale, long long ms0, long long ms1, long long ms2, long long ms3) {{\n\
  __shared__ ACC ks[TK][DK + 1]; __shared__ ACC vs[TK][DV]; __shared__ ACC qs[NW][DKP];\n\
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;\n\
  long long bh = blockIdx.y, b = bh / Hq, h = bh % Hq, kvh = b * Hkv + h / (Hq / Hkv);\n\
  long long i = (long long)blockIdx.x * NW + warp;\n\
  bool active = i < Lq;\n\
  long long shift = Lk - Lq;\n\
  if (active) for (int d = lane; d < DK; d += 32) qs[warp][d] = ldf(q[(bh * Lq + i) * DK + d]) * (ACC)scale;\n\
  ACC m = SINKS ? ldf(sinks[h]) : -OX_INF, l = SINKS ? (ACC)1 : (ACC)0;\n\
  ACC acc[NC];\n\
  #pragma unroll\n\
  for (int c = 0; c < NC; ++c) acc[c] = 0;\n\
  long long kend = Lk;\n\
  // causal: keys past the block's last row are hidden from all its rows, unless a row\n\
  // sees no key at all (it then averages every value, as MLX)\n\
  if (MASK == 1 && (long long)blockIdx.x * NW + shift >= 0) {{ long long last = (long long)blockIdx.x * NW + NW - 1; if (last > Lq - 1) last = Lq - 1; long long e = last + shift + 1; if (e < kend) kend = e; }}\n\
  const {t}* kb = kk + kvh * Lk * DK; const {t}* vb = v + kvh * Lk * DV;\n\
  for (long long t0 = 0; t0 < kend; t0 += TK) {{\n\
    __syncthreads();\n\
    for (int e = threadIdx.x; e < TK * DK; e += blockDim.x) {{ int j = e / DKP, dd = e % DKP; long long key = t0 + j; ks[j][dd] = key < Lk ? ldf(kb[key * DK + dd]) : (ACC)0; }}\n\
    for (int e = threadIdx.x; e < TK * DV; e += blockDim.x) {{ int j = e / DV, dd = e % DV; long long key = t0 + j; vs[j][dd] = key < Lk ? ldf(vb[key * DV + dd]) : (ACC)0; }}\n\
    __syncthreads();\n\
    if (!active) continue;\n\
    long long key = t0 + lane;\n\
    ACC s = -OX_INF;\n\
    if (lane < TK && key < Lk) {{\n\
      ACC dot = 0;\n\
      #pragma unroll 8\n\
      for (int dd = 0; dd < DK; ++dd) dot += qs[warp][dd] * ks[lane][dd];\n\
      s = dot;\n\
      long long mo = b * ms0 + h * ms1 + i * ms2 + key * ms3;\n\
      (void)mo;\n\
#if MASK == 1\n\
      if (key > i + shift) s = LOWEST;\n\
#elif MASK == 2\n\
      if (!mask[mo]) s = LOWEST;\n\
#elif MASK == 3\n\
      s = s + ldf(mask[mo]);\n\
#endif\n\
    }}\n\
    ACC tm = s;\n\
    for (int o = 16; o > 0; o >>= 1) tm = nmax(tm, __shfl_xor_sync(0xffffffffu, tm, o));\n\
    ACC mn = nmax(m, tm);\n\
    ACC corr = (m == mn) ? (ACC)1 : exp(m - mn);\n\
    ACC p = (lane < TK && key < Lk && mn != -OX_INF) ? exp(s - mn) : (ACC)0;\n\
    ACC ps = p;\n\
    for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);\n\
    l = l * corr + ps; m = mn;\n\
    #pragma unroll\n\
    for (int c = 0; c < NC; ++c) acc[c] *= corr;\n\
    for (int j = 0; j < TK; ++j) {{\n\
      ACC pj = __shfl_sync(0xffffffffu, p, j);\n\
      #pragma unroll\n\
      for (int c = 0; c < NC; ++c) {{ int dd = lane + 32 * c; if (dd < DV) acc[c] += pj * vs[j][dd]; }}\n\
    }}\n\
  }}\n\
  if (!active) return;\n\
  ACC inv = Lk == 0 ? (ACC)0 : (ACC)1 / l;\n\
  #pragma unroll\n\
  for (int c = 0; c < NC; ++c) {{ int dd = lane + 32 * c; if (dd < DV) sto(&out[(bh * Lq + i) * DV + dd], acc[c] * inv); }}\n\
}}\n"
    ))
}

/// Strides (elements) of a contiguous 4-d mask broadcast over [B, H, Lq, Lk].
fn bcast_strides(shape: &[usize]) -> [i64; 4] {
    let mut st = [0i64; 4];
    let mut acc = 1i64;
    for i in (0..4).rev() {
        let s = shape.get(i).copied().unwrap_or(1);
        st[i] = if s == 1 { 0 } else { acc };
        acc = acc.saturating_mul(s as i64);
    }
    st
}

fn to_i64(op: &str, v: usize) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::overflow(op))
}

fn blocks(op: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| unsupported(op, "More than 2^32 rows"))
}

/// The optimizer update with every operation rounded as the composite's separate kernels
/// round it (`__f*_rn` intrinsics: no FMA contraction), reading contiguous inputs at
/// their element offsets (the state is a view into the previous step's packed output).
/// `AdamStep`: every operation rounded as the composite's separate ops round it (no
/// contraction; for half types each result computed in float and stored to the half
/// type, `R`, as the elementwise kernels store it).
fn adam_src(d: Dtype) -> Result<String> {
    let (t, c, sfx, round) = match d {
        Dtype::Float32 => ("float", "float", "f", "x"),
        Dtype::Float64 => ("double", "double", "d", "x"),
        Dtype::Float16 => ("__half", "float", "f", "ld(st_half(x))"),
        Dtype::Bfloat16 => ("__nv_bfloat16", "float", "f", "rt_bf16(x)"),
        _ => return Err(unsupported("adam_step", format!("The dtype {d}"))),
    };
    Ok(format!(
        "{PRELUDE}\ntypedef {t} T;\ntypedef {c} C;\ntypedef C ACC;\n{LDST}\n\
__device__ __forceinline__ C R(C x) {{ return {round}; }}\n\
#define MUL(a, b) R(__{sfx}mul_rn(a, b))\n#define ADD(a, b) R(__{sfx}add_rn(a, b))\n#define SUB(a, b) R(__{sfx}sub_rn(a, b))\n#define DIV(a, b) R(__{sfx}div_rn(a, b))\n#define SQRT(a) R(__{sfx}sqrt_rn(a))\n\
extern \"C\" __global__ void k(const T* __restrict__ p, const T* __restrict__ g, const T* __restrict__ m, const T* __restrict__ v,\n\
    const T* __restrict__ s1p, const T* __restrict__ s2p, const T* __restrict__ dp, T* __restrict__ out, long long n,\n\
    long long op, long long og, long long om, long long ov, long long o1, long long o2, long long o3,\n\
    double b1d, double omb1d, double b2d, double omb2d, double epsd) {{\n\
  const C s1 = ldf(s1p[o1]), s2 = ldf(s2p[o2]), dc = ldf(dp[o3]);\n\
  const C b1 = (C)b1d, omb1 = (C)omb1d, b2 = (C)b2d, omb2 = (C)omb2d, eps = (C)epsd;\n\
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {{\n\
    C gi = ldf(g[og + i]);\n\
    C mi = ADD(MUL(b1, ldf(m[om + i])), MUL(omb1, gi));\n\
    C vi = ADD(MUL(b2, ldf(v[ov + i])), MUL(omb2, MUL(gi, gi)));\n\
    sto(&out[i], SUB(MUL(ldf(p[op + i]), dc), DIV(MUL(s1, mi), ADD(MUL(SQRT(vi), s2), eps))));\n\
    sto(&out[n + i], mi); sto(&out[2 * n + i], vi);\n\
  }}\n\
}}\n"
    ))
}

impl CudaBackend {
    fn adam_step(
        &self,
        c: &[f64; 5],
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = "adam_step";
        // contiguous views keep their offset; anything else is copied once
        let ins = ins
            .into_iter()
            .map(|x| {
                if x.is_contiguous() {
                    Ok(x)
                } else {
                    self.contiguous_input(op, x)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if ins.len() != 7 {
            return Err(Error::runtime(op, "expected 7 inputs"));
        }
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        let n = ins[0].size();
        if n == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let f = self
            .compiler
            .get_keyed(op, format!("{op} {out_dtype:?}"), || adam_src(out_dtype))?;
        let ptrs = ins
            .iter()
            .map(|x| self.device_of(op, x))
            .collect::<Result<Vec<_>>>()?;
        let offs = ins
            .iter()
            .map(|x| to_i64(op, x.data.offset))
            .collect::<Result<Vec<_>>>()?;
        let nn = to_i64(op, n)?;
        // the coefficients as the composite's scalar operands hold them: a Python
        // number becomes a value of the parameter's dtype
        let consts = c.map(|x| match out_dtype {
            Dtype::Bfloat16 if x.is_nan() => x,
            Dtype::Bfloat16 => half::bf16::from_f64(x).to_f64(),
            Dtype::Float16 => half::f16::from_f64(x).to_f64(),
            _ => x,
        });
        let dst = out.slice_mut()?;
        ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
            for p in &ptrs {
                ffi::arg(b, *p);
            }
            ffi::arg(b, &*dst);
            ffi::arg(b, &nn);
            for o in &offs {
                ffi::arg(b, o);
            }
            for v in &consts {
                ffi::arg(b, v);
            }
        })?;
        Ok(on_device(out, nbytes, shape))
    }

    /// `CrossEntropyGrad`, shaped and typed as the logits. Large outputs whose rows are
    /// not whole 16-byte units get rows padded to them, returned as a strided view: the
    /// products that read the gradient next (the LM head's) then need no aligned copy.
    fn cross_entropy_grad(
        &self,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = "cross_entropy_grad";
        let [x, t, g] = ins.as_slice() else {
            return Err(Error::runtime(op, "expected 3 inputs"));
        };
        let n = x.shape.last().copied().unwrap_or(1);
        let n_out = size_of(shape);
        if n_out == 0 || n == 0 {
            let (out, nbytes) = self.new_output(op, shape, out_dtype)?;
            return Ok(on_device(out, nbytes, shape));
        }
        let rows = n_out / n;
        let unit = (16 / out_dtype.size()).max(1);
        let old = if n % unit != 0 && n_out >= PAD_GRAD_MIN && shape.len() >= 2 {
            n.next_multiple_of(unit)
        } else {
            n
        };
        let nbytes = rows
            .checked_mul(old)
            .and_then(|e| e.checked_mul(out_dtype.size()))
            .ok_or_else(|| Error::overflow(op))?;
        let mut out = self.alloc.alloc(op, nbytes)?;
        let f = self
            .compiler
            .get_keyed(op, format!("{op} grad {:?}", x.dtype), || {
                cross_entropy_grad_src(x.dtype)
            })?;
        let (off, ld) = row_layout(x).ok_or_else(|| Error::runtime(op, "row layout"))?;
        let [nn, off, ld, oldi] = [n, off, ld, old].map(|v| to_i64(op, v));
        let (nn, off, ld, oldi) = (nn?, off?, ld?, oldi?);
        let (xs, ts, gs) = (
            self.device_of(op, x)?,
            self.device_of(op, t)?,
            self.device_of(op, g)?,
        );
        let dst = out.slice_mut()?;
        ffi::launch(
            op,
            &self.alloc.stream,
            &f,
            red_cfg(blocks(op, rows)?, 1),
            |b| {
                ffi::arg(b, xs);
                ffi::arg(b, ts);
                ffi::arg(b, gs);
                ffi::arg(b, &*dst);
                ffi::arg(b, &nn);
                ffi::arg(b, &off);
                ffi::arg(b, &ld);
                ffi::arg(b, &oldi);
            },
        )?;
        if old == n {
            return Ok(on_device(out, nbytes, shape));
        }
        let second_last = shape.len().checked_sub(2).and_then(|d| shape.get(d));
        let m = second_last
            .copied()
            .ok_or_else(|| Error::runtime(op, "padded rank"))?;
        // the kernel zeroed each row's padding: products read the rows as they are
        let data = self.lt_unpad(op, out, nbytes, shape, out_dtype, (m, old))?;
        self.pad_cache.mark_zero_padded(&data.buffer, n, old);
        Ok(data)
    }

    pub(crate) fn fast(
        &self,
        k: &FastKernel,
        ins: Vec<Input>,
        shape: &[usize],
        out_dtype: Dtype,
    ) -> Result<ArrayData> {
        let op = k.name();
        if let FastKernel::AdamStep { c } = k {
            return self.adam_step(c, ins, shape, out_dtype);
        }
        // attention on strided q, k, v (heads of a fused projection): cuDNN reads them in
        // place; None sends them through the copies below
        if let Some(data) = self.sdpa_strided(k, &ins, shape, out_dtype)? {
            return Ok(data);
        }
        // the cross-entropy kernels read rows at any stride (padded logits, slices)
        let strided_rows = matches!(k, FastKernel::CrossEntropy | FastKernel::CrossEntropyGrad);
        let ins = ins
            .into_iter()
            .enumerate()
            .map(|(i, x)| {
                if strided_rows && i == 0 && row_layout(&x).is_some() {
                    Ok(x)
                } else {
                    self.contiguous_input(op, x)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        if let FastKernel::CrossEntropyGrad = k {
            return self.cross_entropy_grad(ins, shape, out_dtype);
        }
        let (mut out, nbytes) = self.new_output(op, shape, out_dtype)?;
        let x = ins
            .first()
            .ok_or_else(|| Error::runtime(op, "missing input"))?;
        let get = |i: usize| {
            ins.get(i)
                .ok_or_else(|| Error::runtime(op, "missing input"))
        };
        let n_out = size_of(shape);
        if n_out == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let dtype = x.dtype;
        let stream = &self.alloc.stream;
        match *k {
            FastKernel::RmsNorm { eps, weight } | FastKernel::LayerNorm { eps, weight, .. } => {
                let rms = matches!(k, FastKernel::RmsNorm { .. });
                let bias = matches!(k, FastKernel::LayerNorm { bias: true, .. });
                let n = x.shape.last().copied().unwrap_or(1);
                // rows of a multiple of 4 up to 16384: read once into registers, in
                // 16-byte vectors where the row allows (8 halves)
                let vw = if dtype.size() == 2 && n % 8 == 0 {
                    8
                } else {
                    4
                };
                let vecs = n / vw;
                let threads = vecs.next_multiple_of(32).clamp(32, norm_threads());
                let vpt = vecs.div_ceil(threads);
                let regs = n % 4 == 0 && n > 0 && vpt * vw <= NORM_MAX_PER_THREAD;
                let cfg = if regs {
                    let mut cfg = red_cfg(blocks(op, n_out / n)?, 1);
                    cfg.block_dim = (threads as u32, 1, 1);
                    cfg
                } else {
                    red_cfg(blocks(op, n_out / n.max(1))?, 1)
                };
                let key = format!("{op} {dtype:?} {rms} {weight} {bias} {regs} {vw} {vpt}");
                let f = self.compiler.get_keyed(op, key, || {
                    if regs {
                        norm_regs_src(dtype, rms, weight, bias, vw, vpt)
                    } else {
                        norm_src(dtype, rms, weight, bias)
                    }
                })?;
                let xs = self.device_of(op, x)?;
                let ws = if weight {
                    self.device_of(op, get(1)?)?
                } else {
                    xs
                };
                let bs = if bias {
                    self.device_of(op, get(1 + weight as usize)?)?
                } else {
                    xs
                };
                let dst = out.slice_mut()?;
                let nn = to_i64(op, n)?;
                ffi::launch(op, stream, &f, cfg, |b| {
                    ffi::arg(b, xs);
                    ffi::arg(b, ws);
                    ffi::arg(b, bs);
                    ffi::arg(b, &*dst);
                    ffi::arg(b, &nn);
                    ffi::arg(b, &eps);
                })?;
            }
            FastKernel::Rope {
                dims,
                traditional,
                base,
                scale,
            } => {
                let nd = x.shape.len();
                let (t_len, d_len) = (x.shape[nd - 2], x.shape[nd - 1]);
                let rows = n_out / d_len;
                let per_batch = (rows / t_len).checked_div(x.shape[0]).unwrap_or(1).max(1);
                let offs = get(1)?;
                let freqs = base.is_none();
                let f = self.compiler.get_keyed(
                    op,
                    format!("{op} {dtype:?} {traditional} {freqs}"),
                    || rope_src(dtype, traditional, freqs),
                )?;
                let xs = self.device_of(op, x)?;
                let os = self.device_of(op, offs)?;
                let fs = if freqs {
                    self.device_of(op, get(2)?)?
                } else {
                    xs
                };
                let dst = out.slice_mut()?;
                let work = dims / 2 + (d_len - dims);
                let cfg = self.grid(rows.saturating_mul(work));
                let args = [rows, t_len, d_len, dims, per_batch, offs.size()]
                    .into_iter()
                    .map(|v| to_i64(op, v))
                    .collect::<Result<Vec<_>>>()?;
                let (step, ln_base) = (2.0 / dims as f64, base.unwrap_or(1.0).ln());
                ffi::launch(op, stream, &f, cfg, |b| {
                    ffi::arg(b, xs);
                    ffi::arg(b, os);
                    ffi::arg(b, fs);
                    ffi::arg(b, &*dst);
                    for a in &args {
                        ffi::arg(b, a);
                    }
                    ffi::arg(b, &step);
                    ffi::arg(b, &ln_base);
                    ffi::arg(b, &scale);
                })?;
            }
            FastKernel::Sdpa { scale, mask, sinks } => {
                let (qi, ki, vi) = (get(0)?, get(1)?, get(2)?);
                let (bsz, hq, lq, dk) = (qi.shape[0], qi.shape[1], qi.shape[2], qi.shape[3]);
                let (hkv, lk, dv) = (ki.shape[1], ki.shape[2], vi.shape[3]);
                // float16/bfloat16 with head size 64/128, no mask or causal: tensor cores
                // (OXMX_CUDA_NO_FLASH=1 keeps the generic kernel, for comparisons)
                let cc = self.ctx.compute_capability().map_or(0, |c| c.0);
                // cuDNN's fused attention first where it has an engine for the problem
                // (OXMX_CUDA_NO_CUDNN_SDPA=1 skips it, for comparisons)
                let shapes = (&qi.shape[..], &ki.shape[..], &vi.shape[..]);
                if cc >= 8
                    && crate::cudnn_sdpa::eligible(dtype, shapes, mask, sinks)
                    && std::env::var_os("OXMX_CUDA_NO_CUDNN_SDPA").is_none()
                {
                    let key = crate::cudnn_sdpa::SdpaKey::packed(
                        dtype == Dtype::Bfloat16,
                        (bsz, hq, hkv, lq, lk, dk),
                        mask == SdpaMask::Causal,
                    )
                    .ok_or_else(|| Error::overflow(op))?
                    .forward_key();
                    // contiguous inputs here (copied above), at offset 0
                    let qkv = (
                        (self.device_of(op, qi)?, 0),
                        (self.device_of(op, ki)?, 0),
                        (self.device_of(op, vi)?, 0),
                    );
                    if let Some(stats) = self.cudnn_sdpa(&key, scale, qkv, out.slice_mut()?)? {
                        let data = on_device(out, nbytes, shape);
                        let bufs = [
                            &data.buffer,
                            &qi.data.buffer,
                            &ki.data.buffer,
                            &vi.data.buffer,
                        ];
                        self.sdpa_stats.put(key, scale, (bufs, [0; 4]), stats);
                        return Ok(data);
                    }
                }
                if crate::flash::eligible(cc, dtype, dk, dv, mask)
                    && std::env::var_os("OXMX_CUDA_NO_FLASH").is_none()
                {
                    let args = crate::flash::FlashArgs {
                        q: qi,
                        k: ki,
                        v: vi,
                        sinks: if sinks { Some(get(3)?) } else { None },
                        scale,
                        causal: mask == SdpaMask::Causal,
                    };
                    self.flash_sdpa(op, &args, out.slice_mut()?)?;
                    return Ok(on_device(out, nbytes, shape));
                }
                let tk = sdpa_tile(dk, dv, if dtype == Dtype::Float64 { 8 } else { 4 });
                // head size 0 is fine: every score is 0 (arrays are sized by DKP)
                if tk == 0 {
                    return Err(unsupported(
                        op,
                        format!("Fused attention with head sizes {dk}/{dv}"),
                    ));
                }
                let mut next = 3;
                let mask_in = if matches!(mask, SdpaMask::Bool | SdpaMask::Additive) {
                    next += 1;
                    Some(get(3)?)
                } else {
                    None
                };
                let ms = mask_in.map_or([0; 4], |m| bcast_strides(&m.shape));
                let f = self
                    .compiler
                    .get(op, sdpa_src(dtype, dk, dv, tk, mask, sinks)?)?;
                let (qs, ks, vs) = (
                    self.device_of(op, qi)?,
                    self.device_of(op, ki)?,
                    self.device_of(op, vi)?,
                );
                let mptr = match mask_in {
                    Some(m) => self.device_of(op, m)?,
                    None => qs,
                };
                let sptr = if sinks {
                    self.device_of(op, get(next)?)?
                } else {
                    qs
                };
                let dst = out.slice_mut()?;
                let dims = [hq, hkv, lq, lk]
                    .into_iter()
                    .map(|v| to_i64(op, v))
                    .collect::<Result<Vec<_>>>()?;
                let cfg = LaunchConfig {
                    grid_dim: (
                        blocks(op, lq.div_ceil(SDPA_WARPS))?,
                        blocks(op, bsz * hq)?.min(65_535),
                        1,
                    ),
                    block_dim: (32 * SDPA_WARPS as u32, 1, 1),
                    shared_mem_bytes: 0,
                };
                if bsz * hq > 65_535 {
                    return Err(unsupported(op, "More than 65535 batch x heads"));
                }
                ffi::launch(op, stream, &f, cfg, |b| {
                    ffi::arg(b, qs);
                    ffi::arg(b, ks);
                    ffi::arg(b, vs);
                    ffi::arg(b, mptr);
                    ffi::arg(b, sptr);
                    ffi::arg(b, &*dst);
                    for a in &dims {
                        ffi::arg(b, a);
                    }
                    ffi::arg(b, &scale);
                    for s in &ms {
                        ffi::arg(b, s);
                    }
                })?;
            }
            FastKernel::AdamStep { .. } => return Err(Error::runtime(op, "dispatched above")),
            // the GPU's norm gradient is `_norm_bwd.py`'s kernel; Python asks for this
            // node only on the CPU
            FastKernel::NormGrad { .. } => {
                return Err(unsupported(op, "The norm gradient as one node"))
            }
            FastKernel::SdpaGrad { scale, causal } => {
                let (qi, ki) = (get(0)?, get(1)?);
                let key = crate::cudnn_sdpa::SdpaKey::packed(
                    dtype == Dtype::Bfloat16,
                    (
                        qi.shape[0],
                        qi.shape[1],
                        ki.shape[1],
                        qi.shape[2],
                        ki.shape[2],
                        qi.shape[3],
                    ),
                    causal,
                )
                .ok_or_else(|| Error::overflow(op))?;
                // contiguous inputs here (copied above), at offset 0
                let ins = (
                    (self.device_of(op, qi)?, 0),
                    (self.device_of(op, ki)?, 0),
                    (self.device_of(op, get(2)?)?, 0),
                    (self.device_of(op, get(3)?)?, 0),
                    (self.device_of(op, get(4)?)?, 0),
                );
                let (vi, oi) = (get(2)?, get(3)?);
                let bufs = [
                    &oi.data.buffer,
                    &qi.data.buffer,
                    &ki.data.buffer,
                    &vi.data.buffer,
                ];
                let kept = self
                    .sdpa_stats
                    .take(&key.forward_key(), scale, (bufs, [0; 4]));
                // only asked for where `cudnn_sdpa_grad_ready` said yes
                if !crate::cudnn_sdpa::grad_eligible(dtype, &key)
                    || !self.cudnn_sdpa_grad(&key, scale, ins, kept, out.slice_mut()?)?
                {
                    return Err(unsupported(op, "This attention gradient"));
                }
            }
            FastKernel::CrossEntropyGrad => {
                return Err(Error::runtime(op, "routed to cross_entropy_grad"));
            }
            FastKernel::CrossEntropy => {
                let n = x.shape.last().copied().unwrap_or(0);
                let f = self
                    .compiler
                    .get_keyed(op, format!("{op} {dtype:?}"), || cross_entropy_src(dtype))?;
                let xs = self.device_of(op, x)?;
                let ts = self.device_of(op, get(1)?)?;
                let dst = out.slice_mut()?;
                let nn = to_i64(op, n)?;
                let axis = to_i64(op, x.shape.len() - 1)?;
                let (off, ld) = row_layout(x).ok_or_else(|| Error::runtime(op, "row layout"))?;
                let (off, ld) = (to_i64(op, off)?, to_i64(op, ld)?);
                let mut err = self.error_word(op)?;
                let ew = err.slice_mut()?;
                ffi::launch(op, stream, &f, red_cfg(blocks(op, n_out)?, 1), |b| {
                    ffi::arg(b, xs);
                    ffi::arg(b, ts);
                    ffi::arg(b, &*dst);
                    ffi::arg(b, &nn);
                    ffi::arg(b, &axis);
                    ffi::arg(b, &*ew);
                    ffi::arg(b, &off);
                    ffi::arg(b, &ld);
                })?;
                // a class index outside [0, C) is the CPU's IndexError, not a NaN loss
                self.defer_check(op, err);
            }
        }
        Ok(on_device(out, nbytes, shape))
    }
}

#[cfg(test)]
mod tests {
    //! The generated CUDA sources compile (see `nvrtc_check`).
    use super::*;
    use crate::kernels::PRELUDE;
    use crate::nvrtc_check::check;

    #[test]
    fn fast_kernel_sources_compile() {
        let floats = [
            Dtype::Float32,
            Dtype::Float64,
            Dtype::Float16,
            Dtype::Bfloat16,
        ];
        for d in floats {
            if !check("cross_entropy_grad", cross_entropy_grad_src(d).ok()) {
                return;
            }
            check("cross_entropy", cross_entropy_src(d).ok());
            check("adam", adam_src(d).ok());
            for (rms, w, b) in [
                (false, true, true),
                (false, false, false),
                (true, true, false),
            ] {
                check("norm", norm_src(d, rms, w, b).ok());
                for (vw, vpt) in [(4, 1), (8, 2), (4, 16)] {
                    check("norm_regs", norm_regs_src(d, rms, w, b, vw, vpt).ok());
                }
            }
        }
        // the general power as a call, for each compute type
        let pow = format!(
            "{PRELUDE}\nextern \"C\" __global__ void k(float* f, double* d) {{ f[0] = fpow(f[1], f[2]); d[0] = fpow(d[1], d[2]); }}\n"
        );
        check("fpow", Some(pow));
    }
}
