//! Scans (cumsum, cumprod, cummax, cummin, logcumsumexp) and sorts along the last axis.
//!
//! Scans: many rows run one thread per row, in the CPU backend's order and arithmetic,
//! so the results are the same bits. A few long rows (fewer than 512 rows of more than
//! 2048 elements) run as a tiled scan instead: every 2048-element tile's total, a scan of
//! those totals per row, then every tile scanned after its carry. Integer, bool, max and
//! min scans are associative and stay bit-identical to the CPU; float sums, products and
//! logaddexp are then summed in another order (MLX_DIFFERENCES.md).
//!
//! Sorts: rows of up to 2048 elements are sorted by one block each (a bitonic network in
//! shared memory); longer rows are sorted as 2048-element tiles, then merged pairwise
//! (each element finds its place by a binary search in the other run). Ties break by
//! position in both, so every sort equals the CPU's stable sort.

use crate::kernels::{ctype, prelude_for};
use crate::{ffi, on_device, unsupported, CudaBackend};
use cudarc::driver::LaunchConfig;
use oxmx_core::backend::Input;
use oxmx_core::primitive::ScanOp;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};

/// Threads of a tiled-scan block and elements per thread (a tile is 2048 elements).
const SCAN_BLOCK: usize = 256;
const SCAN_VPT: usize = 8;
const SCAN_TILE: usize = SCAN_BLOCK * SCAN_VPT;

/// Longest row sorted in one block's shared memory; longer rows are merged from tiles.
pub const SORT_TILE: usize = 2048;

/// The pieces of a scan kernel for one (op, dtype): element and accumulator types, the
/// combining function, how an element is loaded into and stored from the accumulator.
struct ScanParts {
    t: &'static str,
    acc: &'static str,
    init: &'static str,
    comb: String,
    load: &'static str,
    store: &'static str,
}

/// None for combinations the CPU rejects (they fail there too).
fn scan_parts(op: ScanOp, d: Dtype) -> Option<ScanParts> {
    use ScanOp::*;
    let t = ctype(d)?;
    let plain = |acc: &'static str, init: &'static str, comb: String| ScanParts {
        t,
        acc,
        init,
        comb,
        load: "(ACC)(v)",
        store: "(T)(a)",
    };
    if d == Dtype::Complex64 {
        // oxmx-cpu's scan: lexicographic max/min where a NaN (in either part) wins
        let (init, comb) = match op {
            Sum => ("cplx(0.f, 0.f)", "a + b"),
            Prod => ("cplx(1.f, 0.f)", "a * b"),
            LogAddExp => ("cplx(-OX_INF, 0.f)", "clae(a, b)"),
            Max => (
                "cplx(-OX_INF, -OX_INF)",
                "(cnan(a) ? a : ((cnan(b) || a < b) ? b : a))",
            ),
            Min => (
                "cplx(OX_INF, OX_INF)",
                "(cnan(a) ? a : ((cnan(b) || b < a) ? b : a))",
            ),
        };
        return Some(plain("cplx", init, comb.into()));
    }
    if d == Dtype::Bool {
        let (init, comb) = match op {
            Max | Sum => ("0", "(a | b)"),
            Min | Prod => ("1", "(a & b)"),
            LogAddExp => return None,
        };
        return Some(ScanParts {
            load: "(ACC)((v) != 0)",
            store: "(unsigned char)((a) != 0)",
            ..plain("int", init, comb.into())
        });
    }
    if d.is_float() {
        // in double, rounded to the dtype at every step (as the CPU)
        let round = format!("(double)({t})");
        let comb = match op {
            Sum => format!("{round}(a + b)"),
            Prod => format!("{round}(a * b)"),
            Max => "((isnan(a) || a >= b) ? a : b)".into(),
            Min => "((isnan(a) || a <= b) ? a : b)".into(),
            LogAddExp => format!("{round}((isnan(a) || isnan(b)) ? a + b : (isinf(fmax(a, b)) ? fmax(a, b) : fmax(a, b) + log1p(exp(-fabs(a - b)))))"),
        };
        let init = match op {
            Sum => "0.0",
            Prod => "1.0",
            Max | LogAddExp => "-(double)OX_INF",
            Min => "(double)OX_INF",
        };
        return Some(plain("double", init, comb));
    }
    // Integers wrap (computed unsigned: signed overflow is undefined in C).
    let (lo, hi) = match d {
        Dtype::Int8 => ("-128", "127"),
        Dtype::Int16 => ("-32768", "32767"),
        Dtype::Int32 => ("(-2147483647-1)", "2147483647"),
        Dtype::Int64 => ("(-9223372036854775807LL-1)", "9223372036854775807LL"),
        _ => ("0", "(T)~0ull"),
    };
    let (init, comb) = match op {
        Sum => ("0", "(T)((unsigned long long)a + (unsigned long long)b)"),
        Prod => ("1", "(T)((unsigned long long)a * (unsigned long long)b)"),
        Max => (lo, "(a >= b ? a : b)"),
        Min => (hi, "(a <= b ? a : b)"),
        LogAddExp => return None,
    };
    Some(plain(t, init, comb.into()))
}

/// Types, `comb`, `LD`/`ST`, `INIT` and `POS(j)` (the j-th element in scan order).
fn scan_header(op: ScanOp, d: Dtype, reverse: bool) -> Option<String> {
    let p = scan_parts(op, d)?;
    Some(format!(
        "{pre}\ntypedef {t} T;\ntypedef {acc} ACC;\n\
__device__ __forceinline__ ACC comb(ACC a, ACC b) {{ return {comb}; }}\n\
#define LD(v) {load}\n#define ST(a) {store}\n#define INIT ((ACC)({init}))\n\
#define POS(j) ({rev} ? len - 1 - (j) : (j))\n\
#define BS {SCAN_BLOCK}\n#define VPT {SCAN_VPT}\n{BLOCK_SCAN}",
        pre = prelude_for(&[d]),
        t = p.t,
        acc = p.acc,
        comb = p.comb,
        load = p.load,
        store = p.store,
        init = p.init,
        rev = i32::from(reverse),
    ))
}

/// An in-order inclusive scan of one block's `BS * VPT` values, after an optional carry.
/// Valid values form a prefix of the chunk, so a valid result never reads an invalid one.
const BLOCK_SCAN: &str = r#"
template <typename X> __device__ __forceinline__ X shup(X v, int o) {
  X r;
  if constexpr (sizeof(X) <= 4) { unsigned u = 0; memcpy(&u, &v, sizeof(X)); u = __shfl_up_sync(0xffffffffu, u, o); memcpy(&r, &u, sizeof(X)); }
  else { unsigned long long u; memcpy(&u, &v, 8); u = __shfl_up_sync(0xffffffffu, u, o); memcpy(&r, &u, 8); }
  return r;
}
// On return v[k] = carry (if any) combined with the chunk's values up to thread t's k-th.
__device__ __forceinline__ void block_scan(ACC* v, int nv, bool has_carry, ACC carry) {
  __shared__ ACC wsum[BS / 32];
  #pragma unroll
  for (int k = 1; k < VPT; ++k) if (k < nv) v[k] = comb(v[k - 1], v[k]);
  ACC incl = v[nv > 0 ? nv - 1 : 0];
  int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  #pragma unroll
  for (int o = 1; o < 32; o <<= 1) { ACC y = shup(incl, o); if (lane >= o) incl = comb(y, incl); }
  if (lane == 31) wsum[w] = incl;
  __syncthreads();
  if (w == 0) {
    ACC s = wsum[lane < BS / 32 ? lane : 0];
    #pragma unroll
    for (int o = 1; o < BS / 32; o <<= 1) { ACC y = shup(s, o); if (lane >= o) s = comb(y, s); }
    if (lane < BS / 32) wsum[lane] = s;
  }
  __syncthreads();
  ACC pre = shup(incl, 1);
  bool has = lane > 0;
  if (w > 0) { pre = has ? comb(wsum[w - 1], pre) : wsum[w - 1]; has = true; }
  if (has_carry) { pre = has ? comb(carry, pre) : carry; has = true; }
  if (has) {
    #pragma unroll
    for (int k = 0; k < VPT; ++k) if (k < nv) v[k] = comb(pre, v[k]);
  }
  __syncthreads();
}
"#;

/// One thread per row, in the CPU's order: the same bits.
fn scan_rows_src(op: ScanOp, d: Dtype, reverse: bool, inclusive: bool) -> Option<String> {
    let step = if inclusive {
        "acc = j == 0 ? v : comb(acc, v); y[i] = ST(acc);"
    } else {
        "y[i] = ST(acc); acc = comb(acc, v);"
    };
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const T* __restrict__ in, T* __restrict__ out, long long rows, long long len) {{\n\
  for (long long r = (long long)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += (long long)gridDim.x * blockDim.x) {{\n\
    const T* x = in + r * len; T* y = out + r * len; ACC acc = INIT;\n\
    for (long long j = 0; j < len; ++j) {{ long long i = POS(j); ACC v = LD(x[i]); {step} }}\n\
  }}\n}}\n",
        scan_header(op, d, reverse)?
    ))
}

/// Tiled scan, pass 1: the total of every full tile but the last of each row (an
/// exclusive scan starts its first tile from INIT, as the CPU does).
fn scan_totals_src(op: ScanOp, d: Dtype, reverse: bool, inclusive: bool) -> Option<String> {
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const T* __restrict__ in, ACC* __restrict__ tot, long long len, long long ntiles) {{\n\
  long long t = blockIdx.x, r = blockIdx.y;\n\
  const T* x = in + r * len;\n\
  long long base = t * (BS * VPT) + (long long)threadIdx.x * VPT;\n\
  ACC v[VPT];\n\
  #pragma unroll\n\
  for (int k = 0; k < VPT; ++k) v[k] = LD(x[POS(base + k)]);\n\
  block_scan(v, VPT, {excl} && t == 0, INIT);\n\
  if (threadIdx.x == BS - 1) tot[r * (ntiles - 1) + t] = v[VPT - 1];\n}}\n",
        scan_header(op, d, reverse)?,
        excl = i32::from(!inclusive),
    ))
}

/// Tiled scan, pass 2: each row's tile totals scanned in place (one block per row).
fn scan_carries_src(op: ScanOp, d: Dtype) -> Option<String> {
    Some(format!(
        "{}\nextern \"C\" __global__ void k(ACC* tot, long long ntot) {{\n\
  __shared__ ACC last;\n\
  ACC* p = tot + (long long)blockIdx.x * ntot;\n\
  ACC carry = INIT;\n\
  for (long long c = 0; c < ntot; c += BS * VPT) {{\n\
    long long base = c + (long long)threadIdx.x * VPT;\n\
    long long left = ntot - base;\n\
    int nv = left <= 0 ? 0 : (left < VPT ? (int)left : VPT);\n\
    ACC v[VPT];\n\
    #pragma unroll\n\
    for (int k = 0; k < VPT; ++k) v[k] = k < nv ? p[base + k] : INIT;\n\
    block_scan(v, nv, c > 0, carry);\n\
    for (int k = 0; k < nv; ++k) p[base + k] = v[k];\n\
    long long end = ntot < c + BS * VPT ? ntot : c + BS * VPT;\n\
    if (nv > 0 && base + nv == end) last = v[nv - 1];\n\
    __syncthreads();\n\
    carry = last;\n\
    __syncthreads();\n\
  }}\n}}\n",
        scan_header(op, d, false)?
    ))
}

/// Tiled scan, pass 3: every tile scanned after its carry. An exclusive scan writes each
/// prefix one place on, and the row's first place gets INIT.
fn scan_tiles_src(op: ScanOp, d: Dtype, reverse: bool, inclusive: bool) -> Option<String> {
    let put = if inclusive {
        "y[POS(j)] = ST(v[k]);"
    } else {
        "if (j + 1 < len) y[POS(j + 1)] = ST(v[k]);"
    };
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const T* __restrict__ in, T* __restrict__ out, const ACC* __restrict__ tot, long long len, long long ntiles) {{\n\
  long long t = blockIdx.x, r = blockIdx.y;\n\
  const T* x = in + r * len; T* y = out + r * len;\n\
  long long base = t * (BS * VPT) + (long long)threadIdx.x * VPT;\n\
  long long left = len - base;\n\
  int nv = left <= 0 ? 0 : (left < VPT ? (int)left : VPT);\n\
  ACC v[VPT];\n\
  #pragma unroll\n\
  for (int k = 0; k < VPT; ++k) v[k] = k < nv ? LD(x[POS(base + k)]) : INIT;\n\
  block_scan(v, nv, t > 0 || {excl}, t > 0 ? tot[r * (ntiles - 1) + t - 1] : INIT);\n\
  for (int k = 0; k < nv; ++k) {{ long long j = base + k; {put} }}\n\
  if ({excl} && t == 0 && threadIdx.x == 0) y[POS(0)] = ST(INIT);\n}}\n",
        scan_header(op, d, reverse)?,
        excl = i32::from(!inclusive),
    ))
}

/// The comparison of sort keys: NaN last, complex by real then imaginary part, ties by
/// position (`PAD` marks the padding of a bitonic network).
fn sort_header(d: Dtype) -> Option<String> {
    let t = ctype(d)?;
    let less = if d == Dtype::Complex64 {
        "fless(a.re, b.re) || (!fless(b.re, a.re) && fless(a.im, b.im))"
    } else if d.is_float() {
        "fless((float_t)a, (float_t)b)"
    } else {
        "a < b"
    };
    let ft = if d == Dtype::Float64 {
        "double"
    } else {
        "float"
    };
    Some(format!(
        "{pre}\ntypedef {t} T;\ntypedef {ft} float_t;\n\
__device__ __forceinline__ bool fless(float_t x, float_t y) {{ if (isnan(x)) return false; if (isnan(y)) return true; return x < y; }}\n\
__device__ __forceinline__ bool less_key(T a, T b) {{ return {less}; }}\n\
#define PAD 0xffffffffu\n\
__device__ __forceinline__ bool before(T a, unsigned ia, T b, unsigned ib) {{\n\
  if (ia == PAD) return false; if (ib == PAD) return true;\n\
  if (less_key(a, b)) return true; if (less_key(b, a)) return false; return ia < ib; }}\n",
        pre = prelude_for(&[d]),
    ))
}

/// Sorts segments of `seg` elements of each row (block b: row b / segs, segment b % segs)
/// by a bitonic network over (key, position) pairs. `mode`: 0 writes the values, 1 the
/// positions in the row, 2 both.
fn sort_tiles_src(d: Dtype) -> Option<String> {
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const T* __restrict__ in, T* __restrict__ outv, unsigned* __restrict__ outi, long long len, long long seg, long long segs, int p, int mode) {{\n\
  __shared__ T sk[{SORT_TILE}]; __shared__ unsigned si[{SORT_TILE}];\n\
  long long row = blockIdx.x / segs, start = (blockIdx.x % segs) * seg;\n\
  long long n = len - start < seg ? len - start : seg;\n\
  const T* x = in + row * len + start;\n\
  for (int i = threadIdx.x; i < p; i += blockDim.x) {{ if (i < n) {{ sk[i] = x[i]; si[i] = (unsigned)(start + i); }} else si[i] = PAD; }}\n\
  __syncthreads();\n\
  for (int kk = 2; kk <= p; kk <<= 1)\n\
    for (int j = kk >> 1; j > 0; j >>= 1) {{\n\
      for (int i = threadIdx.x; i < p; i += blockDim.x) {{\n\
        int l = i ^ j;\n\
        if (l > i) {{\n\
          bool up = (i & kk) == 0;\n\
          if (before(sk[l], si[l], sk[i], si[i]) == up) {{ T tk = sk[i]; sk[i] = sk[l]; sk[l] = tk; unsigned ti = si[i]; si[i] = si[l]; si[l] = ti; }}\n\
        }}\n\
      }}\n\
      __syncthreads();\n\
    }}\n\
  for (int i = threadIdx.x; i < n; i += blockDim.x) {{\n\
    long long o = row * len + start + i;\n\
    if (mode != 1) outv[o] = sk[i];\n\
    if (mode != 0) outi[o] = si[i];\n\
  }}\n}}\n",
        sort_header(d)?
    ))
}

/// Merges neighbouring sorted runs of `w` elements of every row into runs of `2w`:
/// each element's new place is its own rank plus the number of elements of the other run
/// that sort before it (binary search; positions break ties, so places never collide).
fn sort_merge_src(d: Dtype) -> Option<String> {
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const T* __restrict__ iv, const unsigned* __restrict__ ii, T* __restrict__ ov, unsigned* __restrict__ oi, long long rows, long long len, long long w, int mode) {{\n\
  long long n = rows * len;\n\
  for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < n; g += (long long)gridDim.x * blockDim.x) {{\n\
    long long r = g / len, p = g - r * len;\n\
    long long s = (p / (2 * w)) * (2 * w);\n\
    long long ea = s + w < len ? s + w : len, eb = s + 2 * w < len ? s + 2 * w : len;\n\
    const T* rv = iv + r * len; const unsigned* ri = ii + r * len;\n\
    T key = rv[p]; unsigned kidx = ri[p];\n\
    long long lo, hi, dst;\n\
    if (p < ea) {{ lo = ea; hi = eb; }} else {{ lo = s; hi = ea; }}\n\
    while (lo < hi) {{ long long m = (lo + hi) >> 1; if (before(rv[m], ri[m], key, kidx)) lo = m + 1; else hi = m; }}\n\
    dst = p < ea ? p + (lo - ea) : (p - ea) + lo;\n\
    if (mode != 1) ov[r * len + dst] = key;\n\
    if (mode != 0) oi[r * len + dst] = kidx;\n\
  }}\n}}\n",
        sort_header(d)?
    ))
}

impl CudaBackend {
    pub(crate) fn scan(
        &self,
        op: &str,
        x: Input,
        (sop, reverse, inclusive): (ScanOp, bool, bool),
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let len = shape.last().copied().unwrap_or(1);
        let n = size_of(shape);
        let rows = n.checked_div(len).unwrap_or(0);
        let rejected = || unsupported(op, format!("This scan on {dtype}"));
        if x.dtype != dtype || scan_parts(sop, dtype).is_none() {
            return Err(rejected());
        }
        let x = self.contiguous_input(op, x)?;
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        if n == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let input = self.device_of(op, &x)?;
        let stream = &self.alloc.stream;
        let (r, l) = (rows as i64, len as i64);
        if rows >= 512 || len <= SCAN_TILE {
            let src = scan_rows_src(sop, dtype, reverse, inclusive).ok_or_else(rejected)?;
            let f = self.compiler.get_exact(op, src)?;
            let dst = out.slice_mut()?;
            let cfg = LaunchConfig {
                grid_dim: (rows.div_ceil(128).clamp(1, 65_535) as u32, 1, 1),
                block_dim: (128, 1, 1),
                shared_mem_bytes: 0,
            };
            ffi::launch(op, stream, &f, cfg, |b| {
                ffi::arg(b, input);
                ffi::arg(b, &*dst);
                ffi::arg(b, &r);
                ffi::arg(b, &l);
            })?;
            return Ok(on_device(out, nbytes, shape));
        }
        let ntiles = len.div_ceil(SCAN_TILE);
        let tiles32 = u32::try_from(ntiles).map_err(|_| unsupported(op, "A row this long"))?;
        let (rows32, nt) = (rows as u32, ntiles as i64);
        // tile totals: at most 8 bytes each (double, complex64 or the integer type)
        let tbytes = rows
            .checked_mul(ntiles - 1)
            .and_then(|c| c.checked_mul(8))
            .ok_or_else(|| Error::overflow(op))?;
        let mut tot = self.alloc.alloc(op, tbytes.max(8))?;
        let tot = tot.slice_mut()?;
        let block = (SCAN_BLOCK as u32, 1, 1);
        let totals = self.compiler.get_exact(
            op,
            scan_totals_src(sop, dtype, reverse, inclusive).ok_or_else(rejected)?,
        )?;
        let carries = self
            .compiler
            .get_exact(op, scan_carries_src(sop, dtype).ok_or_else(rejected)?)?;
        let tiles = self.compiler.get_exact(
            op,
            scan_tiles_src(sop, dtype, reverse, inclusive).ok_or_else(rejected)?,
        )?;
        let cfg = |gx: u32, gy: u32| LaunchConfig {
            grid_dim: (gx, gy, 1),
            block_dim: block,
            shared_mem_bytes: 0,
        };
        // len > SCAN_TILE here, so there are at least two tiles and one total per row
        ffi::launch(op, stream, &totals, cfg(tiles32 - 1, rows32), |b| {
            ffi::arg(b, input);
            ffi::arg(b, &*tot);
            ffi::arg(b, &l);
            ffi::arg(b, &nt);
        })?;
        let ntot = nt - 1;
        ffi::launch(op, stream, &carries, cfg(rows32, 1), |b| {
            ffi::arg(b, &*tot);
            ffi::arg(b, &ntot);
        })?;
        let dst = out.slice_mut()?;
        ffi::launch(op, stream, &tiles, cfg(tiles32, rows32), |b| {
            ffi::arg(b, input);
            ffi::arg(b, &*dst);
            ffi::arg(b, &*tot);
            ffi::arg(b, &l);
            ffi::arg(b, &nt);
        })?;
        Ok(on_device(out, nbytes, shape))
    }

    pub(crate) fn sort(
        &self,
        op: &str,
        x: Input,
        arg: bool,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let len = shape.last().copied().unwrap_or(1);
        let d = x.dtype;
        let rejected = || unsupported(op, format!("Sorting {d}"));
        let tiles_src = sort_tiles_src(d).ok_or_else(rejected)?;
        // positions are stored as uint32, with u32::MAX kept for the padding
        if u32::try_from(len).map_or(true, |l| l == u32::MAX) {
            return Err(unsupported(op, "Sorting rows of 2^32 or more elements"));
        }
        let x = self.contiguous_input(op, x)?;
        let n = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        let rows = n.checked_div(len).unwrap_or(0);
        if n == 0 {
            return Ok(on_device(out, nbytes, shape));
        }
        let seg = len.min(SORT_TILE);
        let segs = len.div_ceil(seg);
        let blocks = rows
            .checked_mul(segs)
            .and_then(|b| u32::try_from(b).ok())
            .filter(|&b| b < i32::MAX as u32)
            .ok_or_else(|| unsupported(op, "Sorting more than 2^31 tiles"))?;
        let input = self.device_of(op, &x)?;
        let stream = &self.alloc.stream;
        let tile_sort = self.compiler.get(op, tiles_src)?;
        let p = seg.next_power_of_two().max(2);
        let (l, sg, ns, p32) = (len as i64, seg as i64, segs as i64, p as i32);
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: ((p / 2).clamp(32, 1024) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mode = i32::from(arg);
        if segs == 1 {
            // The output doubles as both the values and the positions buffer: the kernel
            // writes only the one `mode` selects.
            let dst = out.slice_mut()?;
            ffi::launch(op, stream, &tile_sort, cfg, |b| {
                ffi::arg(b, input);
                ffi::arg(b, &*dst);
                ffi::arg(b, &*dst);
                ffi::arg(b, &l);
                ffi::arg(b, &sg);
                ffi::arg(b, &ns);
                ffi::arg(b, &p32);
                ffi::arg(b, &mode);
            })?;
            return Ok(on_device(out, nbytes, shape));
        }
        // sorted tiles (values and positions), then merge passes between two pairs of
        // scratch buffers; the last pass writes the output
        let vbytes = n.checked_mul(d.size()).ok_or_else(|| Error::overflow(op))?;
        let ibytes = n.checked_mul(4).ok_or_else(|| Error::overflow(op))?;
        let mut bufs = [
            (self.alloc.alloc(op, vbytes)?, self.alloc.alloc(op, ibytes)?),
            (self.alloc.alloc(op, vbytes)?, self.alloc.alloc(op, ibytes)?),
        ];
        {
            let (v0, i0) = &mut bufs[0];
            let (v0, i0) = (v0.slice_mut()?, i0.slice_mut()?);
            let both = 2i32;
            ffi::launch(op, stream, &tile_sort, cfg, |b| {
                ffi::arg(b, input);
                ffi::arg(b, &*v0);
                ffi::arg(b, &*i0);
                ffi::arg(b, &l);
                ffi::arg(b, &sg);
                ffi::arg(b, &ns);
                ffi::arg(b, &p32);
                ffi::arg(b, &both);
            })?;
        }
        let merge = self
            .compiler
            .get(op, sort_merge_src(d).ok_or_else(rejected)?)?;
        let grid = self.grid(n);
        let nr = rows as i64;
        let mut w = seg;
        let mut cur = 0usize;
        while w < len {
            let last = w.checked_mul(2).is_none_or(|w2| w2 >= len);
            let [a, b2] = &mut bufs;
            let (src, nxt) = if cur == 0 { (a, b2) } else { (b2, a) };
            let (sv, si) = (src.0.slice()?, src.1.slice()?);
            let w64 = w as i64;
            if last {
                let dst = out.slice_mut()?;
                ffi::launch(op, stream, &merge, grid, |b| {
                    ffi::arg(b, sv);
                    ffi::arg(b, si);
                    ffi::arg(b, &*dst);
                    ffi::arg(b, &*dst);
                    ffi::arg(b, &nr);
                    ffi::arg(b, &l);
                    ffi::arg(b, &w64);
                    ffi::arg(b, &mode);
                })?;
                break;
            }
            let (nv, ni) = (nxt.0.slice_mut()?, nxt.1.slice_mut()?);
            let both = 2i32;
            ffi::launch(op, stream, &merge, grid, |b| {
                ffi::arg(b, sv);
                ffi::arg(b, si);
                ffi::arg(b, &*nv);
                ffi::arg(b, &*ni);
                ffi::arg(b, &nr);
                ffi::arg(b, &l);
                ffi::arg(b, &w64);
                ffi::arg(b, &both);
            })?;
            cur ^= 1;
            w *= 2;
        }
        Ok(on_device(out, nbytes, shape))
    }
}
