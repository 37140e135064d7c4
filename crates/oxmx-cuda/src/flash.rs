//! Flash attention forward on the tensor cores (float16/bfloat16, head size 64 or 128,
//! no mask or causal, optional sinks): 64 query rows per block of 4 warps, 64-key tiles
//! of K and V in shared memory (`cp.async`, double-buffered for head size 64; operands
//! by `ldmatrix`), `mma.sync.m16n8k16` for Q·Kᵀ and P·V with float32 accumulators,
//! masks only on the tiles that need them, and the online softmax in base 2 on the accumulator
//! fragments (the probabilities go from the score fragments straight into the A
//! operand of P·V, as FlashAttention-2 does).
//!
//! Few blocks (decode: one query row against a long cache) split the keys over
//! `blockIdx.z`: each split writes its unnormalised output with its running max and sum,
//! and a second kernel combines the splits.
//!
//! The semantics are the generic kernel's (`fast.rs::sdpa_src`): causal masking aligns
//! the last query with the last key, masked scores are the lowest float (so a row that
//! sees no key averages every value, as MLX), a sink is one more logit in every row's
//! denominator.

use crate::kernels::{ctype, PRELUDE};
use crate::{ffi, unsupported, CudaBackend};
use cudarc::driver::{CudaSlice, LaunchConfig};
use oxmx_core::backend::Input;
use oxmx_core::primitive::SdpaMask;
use oxmx_core::{Dtype, Error, Result};

/// Query rows and keys per tile.
const BR: usize = 64;
const BC: usize = 64;
/// Blocks of this kernel resident per multiprocessor (about 165 registers x 128 threads):
/// keys are split when fewer than that many blocks per multiprocessor would run.
const BLOCKS_PER_SM: usize = 3;
const MAX_SPLITS: usize = 64;

/// Whether the tensor-core kernel takes this attention (`cc_major`: the GPU's compute
/// capability; float16/bfloat16 `mma.m16n8k16` needs sm_80 or newer).
pub(crate) fn eligible(cc_major: i32, d: Dtype, dk: usize, dv: usize, mask: SdpaMask) -> bool {
    cc_major >= 8
        && matches!(d, Dtype::Float16 | Dtype::Bfloat16)
        && dk == dv
        && matches!(dk, 64 | 128)
        && matches!(mask, SdpaMask::None | SdpaMask::Causal)
}

fn header(d: Dtype, dh: usize) -> Option<String> {
    let t = ctype(d)?;
    let (mty, pack, st) = match d {
        Dtype::Bfloat16 => (
            "bf16",
            "__nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);",
            "st_bf16",
        ),
        Dtype::Float16 => ("f16", "__half2 h = __floats2half2_rn(lo, hi);", "st_half"),
        _ => return None,
    };
    let bits = if d == Dtype::Bfloat16 {
        "__bfloat16_as_ushort"
    } else {
        "__half_as_ushort"
    };
    Some(format!(
        "{PRELUDE}\ntypedef {t} T;\n#define D {dh}\n#define BR {BR}\n#define BC {BC}\n\
#define KS (D + 8)\n#define NEG_INF (-OX_INF)\n#define LOWEST (-3.402823466e38f)\n\
// two values as the A/B operand register of the mma (low half = lower index)\n\
__device__ __forceinline__ unsigned pack2(float lo, float hi) {{ {pack} return *reinterpret_cast<unsigned*>(&h); }}\n\
// two outputs rounded as the other kernels round them (NaN payloads included)\n\
__device__ __forceinline__ unsigned store2(float lo, float hi) {{ return (unsigned){bits}({st}(lo)) | ((unsigned){bits}({st}(hi)) << 16); }}\n\
__device__ __forceinline__ void mma(float* c, const unsigned* a, unsigned b0, unsigned b1) {{\n\
  asm volatile(\"mma.sync.aligned.m16n8k16.row.col.f32.{mty}.{mty}.f32 {{%0,%1,%2,%3}}, {{%4,%5,%6,%7}}, {{%8,%9}}, {{%0,%1,%2,%3}};\\n\"\n\
    : \"+f\"(c[0]), \"+f\"(c[1]), \"+f\"(c[2]), \"+f\"(c[3])\n\
    : \"r\"(a[0]), \"r\"(a[1]), \"r\"(a[2]), \"r\"(a[3]), \"r\"(b0), \"r\"(b1));\n}}\n"
    ))
}

/// The attention kernel. Thread (warp w, lane = 4g + t) owns query rows r0 = q0 + 16w + g
/// and r1 = r0 + 8, and in each 8-wide tile the columns 2t and 2t + 1 (the mma's
/// accumulator layout). K and V tiles are copied to shared memory as they are (rows of
/// D, `cp.async`, the next tile loading while this one computes where two stages fit in
/// the 48 KB of static shared memory: head size 64), and their mma operands are read
/// with `ldmatrix` (V transposed by `ldmatrix.trans`).
fn attention_src(d: Dtype, dh: usize, causal: bool, sinks: bool) -> Option<String> {
    let stages = if dh <= 64 { 2 } else { 1 };
    Some(format!(
        "{}\n#define CAUSAL {}\n#define SINKS {}\n#define STAGES {stages}\n{ATTENTION_BODY}",
        header(d, dh)?,
        i32::from(causal),
        i32::from(sinks),
    ))
}

const ATTENTION_BODY: &str = r#"
__device__ __forceinline__ unsigned smem_addr(const void* p) {
  unsigned r; asm("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p)); return r;
}
// 16 bytes global -> shared without registers; zeros where `ok` is false (nothing read)
__device__ __forceinline__ void cp16(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" :: "r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_wait() { asm volatile("cp.async.wait_group %0;\n" :: "n"(N)); }
// four 8x8 b16 matrices; lanes 8i..8i+7 give the rows of matrix i
__device__ __forceinline__ void ldm4(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
    : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldm4t(unsigned* r, const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
    : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}
// keys [t0, t0 + BC) of K and V into a stage; keys at or past ke load as zeros (their
// weight is 0, and 0 * a NaN would not be)
__device__ __forceinline__ void load_tile(unsigned short* ks, unsigned short* vs, const unsigned short* kbase,
    const unsigned short* vbase, long long t0, long long ke) {
  for (int e = threadIdx.x; e < BC * D / 8; e += blockDim.x) {
    int j = e / (D / 8), c = (e % (D / 8)) * 8; long long key = t0 + j; bool ok = key < ke;
    long long at = ok ? key * D + c : 0;
    cp16(ks + j * KS + c, kbase + at, ok);
    cp16(vs + j * KS + c, vbase + at, ok);
  }
}
extern "C" __global__ void __launch_bounds__(128) k(const unsigned short* __restrict__ q, const unsigned short* __restrict__ kk,
    const unsigned short* __restrict__ v, const T* __restrict__ sinks, T* __restrict__ out, float* __restrict__ opart,
    float* __restrict__ mlpart, long long Hq, long long Hkv, long long Lq, long long Lk, float sl2, int splits, long long chunk) {
  __shared__ __align__(128) unsigned short Ks[STAGES][BC * KS];
  __shared__ __align__(128) unsigned short Vs[STAGES][BC * KS];
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
  long long bh = blockIdx.y, b = bh / Hq, h = bh % Hq, kvh = b * Hkv + h / (Hq / Hkv);
  int z = blockIdx.z;
  long long q0 = (long long)blockIdx.x * BR, r0 = q0 + warp * 16 + g, r1 = r0 + 8, shift = Lk - Lq;
  // causal: keys past the block's last row are hidden from all its rows when each row
  // sees at least one key (otherwise a row averages every value)
  long long kend = Lk;
  if (CAUSAL && q0 + shift >= 0) { long long last = q0 + BR - 1; if (last > Lq - 1) last = Lq - 1; if (last + shift + 1 < kend) kend = last + shift + 1; }
  long long kb = (long long)z * chunk, ke = kb + chunk < kend ? kb + chunk : kend;
  const unsigned short* kbase = kk + kvh * Lk * D;
  const unsigned short* vbase = v + kvh * Lk * D;
  int ntiles = ke > kb ? (int)((ke - kb + BC - 1) / BC) : 0;
  if (ntiles > 0) { load_tile(Ks[0], Vs[0], kbase, vbase, kb, ke); cp_commit(); }
  const unsigned short* qb = q + bh * Lq * D;
  unsigned qa[D / 16][4];
  #pragma unroll
  for (int s = 0; s < D / 16; ++s) {
    int c = s * 16 + 2 * t4;
    qa[s][0] = r0 < Lq ? *reinterpret_cast<const unsigned*>(qb + r0 * D + c) : 0u;
    qa[s][1] = r1 < Lq ? *reinterpret_cast<const unsigned*>(qb + r1 * D + c) : 0u;
    qa[s][2] = r0 < Lq ? *reinterpret_cast<const unsigned*>(qb + r0 * D + c + 8) : 0u;
    qa[s][3] = r1 < Lq ? *reinterpret_cast<const unsigned*>(qb + r1 * D + c + 8) : 0u;
  }
  float o[D / 8][4];
  #pragma unroll
  for (int n = 0; n < D / 8; ++n) { o[n][0] = 0.f; o[n][1] = 0.f; o[n][2] = 0.f; o[n][3] = 0.f; }
  // running max (base 2) and this thread's part of the running sum, for rows r0 and r1
  float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.f, l1 = 0.f;
  if (SINKS && z == 0) { m0 = m1 = ld(sinks[h]) * 1.4426950408889634f; if (t4 == 0) { l0 = 1.f; l1 = 1.f; } }
  // this lane's row and column offsets in the ldmatrix tiles
  const int lrow = lane & 7, lmat = lane >> 3;
  for (int it = 0; it < ntiles; ++it) {
    long long t0 = kb + (long long)it * BC;
    int st = STAGES == 2 ? (it & 1) : 0;
    if (STAGES == 2 && it + 1 < ntiles) { load_tile(Ks[st ^ 1], Vs[st ^ 1], kbase, vbase, t0 + BC, ke); cp_commit(); cp_wait<1>(); }
    else cp_wait<0>();
    __syncthreads();
    const unsigned short* kst = Ks[st];
    const unsigned short* vst = Vs[st];
    float s[BC / 8][4];
    #pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
      s[n][0] = 0.f; s[n][1] = 0.f; s[n][2] = 0.f; s[n][3] = 0.f;
      #pragma unroll
      for (int c = 0; c < D / 16; c += 2) {
        unsigned kf[4];
        ldm4(kf, kst + (n * 8 + lrow) * KS + c * 16 + lmat * 8);
        mma(s[n], qa[c], kf[0], kf[1]);
        mma(s[n], qa[c + 1], kf[2], kf[3]);
      }
    }
    // only tiles that reach past the keys or across the causal diagonal need masks
    const bool edge = t0 + BC > ke || (CAUSAL && t0 + BC - 1 > q0 + shift);
    float tm0 = NEG_INF, tm1 = NEG_INF;
    #pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
      #pragma unroll
      for (int e = 0; e < 4; ++e) {
        float x = s[n][e] * sl2;
        if (edge) {
          long long key = t0 + n * 8 + 2 * t4 + (e & 1), row = e < 2 ? r0 : r1;
          if (key >= ke) x = NEG_INF;
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
    m0 = mn0; m1 = mn1;
    float ps0 = 0.f, ps1 = 0.f;
    #pragma unroll
    for (int n = 0; n < BC / 8; ++n) {
      s[n][0] = m0 == NEG_INF ? 0.f : exp2f(s[n][0] - m0); s[n][1] = m0 == NEG_INF ? 0.f : exp2f(s[n][1] - m0);
      s[n][2] = m1 == NEG_INF ? 0.f : exp2f(s[n][2] - m1); s[n][3] = m1 == NEG_INF ? 0.f : exp2f(s[n][3] - m1);
      ps0 += s[n][0] + s[n][1]; ps1 += s[n][2] + s[n][3];
    }
    l0 = l0 * c0 + ps0; l1 = l1 * c1 + ps1;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) { o[n][0] *= c0; o[n][1] *= c0; o[n][2] *= c1; o[n][3] *= c1; }
    #pragma unroll
    for (int c = 0; c < BC / 16; ++c) {
      unsigned pa[4] = { pack2(s[2 * c][0], s[2 * c][1]), pack2(s[2 * c][2], s[2 * c][3]), pack2(s[2 * c + 1][0], s[2 * c + 1][1]), pack2(s[2 * c + 1][2], s[2 * c + 1][3]) };
      #pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        // matrices: keys (c16, c16 + 8) x values (n8, n8 + 8), transposed into B operands
        unsigned vf[4];
        ldm4t(vf, vst + (c * 16 + (lmat & 1) * 8 + lrow) * KS + n * 8 + (lmat >> 1) * 8);
        mma(o[n], pa, vf[0], vf[1]);
        mma(o[n + 1], pa, vf[2], vf[3]);
      }
    }
    __syncthreads();
    if (STAGES == 1 && it + 1 < ntiles) { load_tile(Ks[0], Vs[0], kbase, vbase, t0 + BC, ke); cp_commit(); }
  }
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1); l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1); l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  if (splits == 1) {
    float i0 = Lk == 0 ? 0.f : 1.f / l0, i1 = Lk == 0 ? 0.f : 1.f / l1;
    T* ob = out + bh * Lq * D;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      int c = n * 8 + 2 * t4;
      if (r0 < Lq) *reinterpret_cast<unsigned*>(ob + r0 * D + c) = store2(o[n][0] * i0, o[n][1] * i0);
      if (r1 < Lq) *reinterpret_cast<unsigned*>(ob + r1 * D + c) = store2(o[n][2] * i1, o[n][3] * i1);
    }
  } else {
    // row p of the partials: split z, then (batch x head, query row)
    long long p0 = ((long long)z * gridDim.y + bh) * Lq + r0, p1 = p0 + 8;
    #pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      int c = n * 8 + 2 * t4;
      if (r0 < Lq) { opart[p0 * D + c] = o[n][0]; opart[p0 * D + c + 1] = o[n][1]; }
      if (r1 < Lq) { opart[p1 * D + c] = o[n][2]; opart[p1 * D + c + 1] = o[n][3]; }
    }
    if (t4 == 0 && r0 < Lq) { mlpart[2 * p0] = m0; mlpart[2 * p0 + 1] = l0; }
    if (t4 == 0 && r1 < Lq) { mlpart[2 * p1] = m1; mlpart[2 * p1 + 1] = l1; }
  }
}
"#;

/// Combines the splits of each output row: weights 2^(m_z - max) on every split's sum and
/// unnormalised output.
fn combine_src(d: Dtype, dh: usize) -> Option<String> {
    Some(format!(
        "{}\nextern \"C\" __global__ void k(const float* __restrict__ opart, const float* __restrict__ mlpart, T* __restrict__ out, long long rows, int splits, long long Lk) {{\n\
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < rows * D; i += (long long)gridDim.x * blockDim.x) {{\n\
    long long row = i / D, c = i % D;\n\
    float M = NEG_INF;\n\
    for (int z = 0; z < splits; ++z) M = fmaxf(M, mlpart[2 * (z * rows + row)]);\n\
    float L = 0.f, acc = 0.f;\n\
    for (int z = 0; z < splits; ++z) {{\n\
      long long p = z * rows + row; float mz = mlpart[2 * p];\n\
      float w = mz == NEG_INF ? 0.f : exp2f(mz - M);\n\
      L += mlpart[2 * p + 1] * w; acc += opart[p * D + c] * w;\n\
    }}\n\
    float r = (Lk == 0 || L == 0.f) ? 0.f : acc / L;\n\
    unsigned two = store2(r, 0.f);\n\
    unsigned short bits = (unsigned short)(two & 0xffffu);\n\
    *reinterpret_cast<unsigned short*>(out + i) = bits;\n\
  }}\n}}\n",
        header(d, dh)?
    ))
}

/// How many key splits, and the keys per split: enough blocks to fill `sms`
/// multiprocessors, each split at least one tile.
fn splits_for(blocks: usize, lk: usize, sms: usize) -> (usize, usize) {
    let tiles = lk.div_ceil(BC).max(1);
    let fill = sms.max(1) * BLOCKS_PER_SM;
    let want = if blocks >= fill {
        1
    } else {
        fill.div_ceil(blocks.max(1))
    };
    let splits = want.clamp(1, MAX_SPLITS).min(tiles);
    let chunk = tiles.div_ceil(splits) * BC;
    (lk.div_ceil(chunk).max(1), chunk)
}

pub(crate) struct FlashArgs<'a> {
    pub q: &'a Input,
    pub k: &'a Input,
    pub v: &'a Input,
    pub sinks: Option<&'a Input>,
    pub scale: f64,
    pub causal: bool,
}

impl CudaBackend {
    /// Runs the tensor-core attention into `dst` (the [B, Hq, Lq, D] output).
    pub(crate) fn flash_sdpa(
        &self,
        op: &str,
        a: &FlashArgs,
        dst: &mut CudaSlice<u8>,
    ) -> Result<()> {
        let d = a.q.dtype;
        let (bsz, hq, lq, dh) = (a.q.shape[0], a.q.shape[1], a.q.shape[2], a.q.shape[3]);
        let (hkv, lk) = (a.k.shape[1], a.k.shape[2]);
        let rejected = || unsupported(op, format!("Tensor-core attention in {d}"));
        let bhs = bsz.checked_mul(hq).ok_or_else(|| Error::overflow(op))?;
        if bhs > 65_535 {
            return Err(unsupported(op, "More than 65535 batch x heads"));
        }
        if hkv == 0 || hq % hkv != 0 {
            return Err(Error::value(
                op,
                format!("{hq} query heads are not a multiple of {hkv} key/value heads."),
            ));
        }
        let qtiles = lq.div_ceil(BR);
        let blocks = qtiles.checked_mul(bhs).ok_or_else(|| Error::overflow(op))?;
        let (sms, _) = self.limits();
        let (splits, chunk) = splits_for(blocks, lk, sms);
        let key = format!("flash {d:?} {dh} {} {}", a.causal, a.sinks.is_some());
        let f = self.compiler.memo(key, || {
            let src = attention_src(d, dh, a.causal, a.sinks.is_some()).ok_or_else(rejected)?;
            self.compiler.get(op, src)
        })?;
        let (qs, ks, vs) = (
            self.device_of(op, a.q)?,
            self.device_of(op, a.k)?,
            self.device_of(op, a.v)?,
        );
        let sp = match a.sinks {
            Some(s) => self.device_of(op, s)?,
            None => qs,
        };
        let to64 = |x: usize| i64::try_from(x).map_err(|_| Error::overflow(op));
        let (hq64, hkv64, lq64, lk64) = (to64(hq)?, to64(hkv)?, to64(lq)?, to64(lk)?);
        let sl2 = (a.scale * std::f64::consts::LOG2_E) as f32;
        let (sp32, chunk64) = (splits as i32, to64(chunk)?);
        let cfg = LaunchConfig {
            grid_dim: (
                u32::try_from(qtiles).map_err(|_| rejected())?,
                bhs as u32,
                splits as u32,
            ),
            block_dim: (128, 1, 1),
            shared_mem_bytes: 0,
        };
        let stream = &self.alloc.stream;
        // the partials of a split run: float outputs, then (max, sum) per row
        let rows = bhs.checked_mul(lq).ok_or_else(|| Error::overflow(op))?;
        let part_rows = rows
            .checked_mul(splits)
            .ok_or_else(|| Error::overflow(op))?;
        let (obytes, mbytes) = if splits > 1 {
            (
                part_rows
                    .checked_mul(dh * 4)
                    .ok_or_else(|| Error::overflow(op))?,
                part_rows
                    .checked_mul(8)
                    .ok_or_else(|| Error::overflow(op))?,
            )
        } else {
            (4, 8)
        };
        let mut opart = self.alloc.alloc(op, obytes)?;
        let mut mlpart = self.alloc.alloc(op, mbytes)?;
        let (op_s, ml_s) = (opart.slice_mut()?, mlpart.slice_mut()?);
        ffi::launch(op, stream, &f, cfg, |b| {
            ffi::arg(b, qs);
            ffi::arg(b, ks);
            ffi::arg(b, vs);
            ffi::arg(b, sp);
            ffi::arg(b, &*dst);
            ffi::arg(b, &*op_s);
            ffi::arg(b, &*ml_s);
            ffi::arg(b, &hq64);
            ffi::arg(b, &hkv64);
            ffi::arg(b, &lq64);
            ffi::arg(b, &lk64);
            ffi::arg(b, &sl2);
            ffi::arg(b, &sp32);
            ffi::arg(b, &chunk64);
        })?;
        if splits > 1 {
            let comb = self
                .compiler
                .get(op, combine_src(d, dh).ok_or_else(rejected)?)?;
            let rows64 = to64(rows)?;
            let n = rows.checked_mul(dh).ok_or_else(|| Error::overflow(op))?;
            ffi::launch(op, stream, &comb, self.grid(n), |b| {
                ffi::arg(b, &*op_s);
                ffi::arg(b, &*ml_s);
                ffi::arg(b, &*dst);
                ffi::arg(b, &rows64);
                ffi::arg(b, &sp32);
                ffi::arg(b, &lk64);
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fill_the_gpu_and_cover_every_key() {
        // training shapes: enough blocks, one split
        assert_eq!(splits_for(32 * 128, 2048, 132), (1, 2048));
        // decode: 32 heads, one query, 8192 keys on 132 multiprocessors
        let (s, c) = splits_for(32, 8192, 132);
        assert!(s * c >= 8192 && (s - 1) * c < 8192 && c % BC == 0);
        assert!(s * 32 >= 132 * BLOCKS_PER_SM);
        // fewer keys than a tile, and no keys
        assert_eq!(splits_for(1, 10, 132), (1, 64));
        assert_eq!(splits_for(1, 0, 132), (1, 64));
    }
}
