//! `erfinv` on the GPU with the CPU's bits (what `random.normal` is built on).
//!
//! The CPU kernel (`oxmx-cpu/src/special.rs`) evaluates a fixed polynomial in
//! `t = logf(1 - x²)` with fused multiply-adds, where `logf` is the C library's; that is
//! what makes it equal to MLX's. Everything but the logarithm is exact IEEE arithmetic
//! that a CUDA kernel repeats operation for operation. For the logarithm the kernel takes
//! `log` in double precision rounded to float, which differs from the C library's
//! `logf` only near the midpoints between floats (about 2·10^5 of the 1.07·10^9 floats
//! in (0, 1] with glibc). Those inputs are found once per process by comparing the two
//! on every float in (0, 1] (a parallel pass over the host's cores, about a second on 16
//! of them), and kept in a hash table on the device: the kernel looks an input up only
//! when its double-precision logarithm lies within the measured distance of a midpoint,
//! and then returns the C library's bits. Inputs whose double logarithm lies almost on
//! a midpoint (where the device's `log`, good to one double ulp, could round the other
//! way) are put in the table too.

use crate::device::CudaMem;
use crate::{kernels, on_device, unsupported, CudaBackend};
use oxmx_core::backend::Input;
use oxmx_core::shape::size_of;
use oxmx_core::{ArrayData, Dtype, Error, Result};
use rayon::prelude::*;

/// Inputs closer than this (in float ulps) to a midpoint are always tabled.
const NEAR_MIDPOINT: f64 = 1e-8;

/// Distance of `d` from the midpoint between the two floats around it, in float ulps
/// (0.5 when `d` is a float).
fn midpoint_distance(d: f64) -> f64 {
    let f = d as f32;
    let other = if d > f64::from(f) {
        f.next_up()
    } else {
        f.next_down()
    };
    let ulp = (f64::from(other) - f64::from(f)).abs();
    let mid = (f64::from(f) + f64::from(other)) * 0.5;
    if ulp == 0.0 || !ulp.is_finite() {
        return 0.5;
    }
    (d - mid).abs() / ulp
}

/// The inputs of (0, 1] whose C-library `logf` is not `log` rounded to float (or that lie
/// almost on a midpoint), with the C library's result; and the largest midpoint distance
/// among the mismatches.
fn scan() -> (Vec<(u32, u32)>, f64) {
    (1u32..=0x3f80_0000)
        .into_par_iter()
        .fold(
            || (Vec::new(), 0.0f64),
            |(mut v, worst), bits| {
                let x = f32::from_bits(bits);
                let lib = x.ln();
                let d = f64::from(x).ln();
                let dist = midpoint_distance(d);
                let differs = lib.to_bits() != (d as f32).to_bits();
                if differs || dist < NEAR_MIDPOINT {
                    v.push((bits, lib.to_bits()));
                }
                (v, if differs { worst.max(dist) } else { worst })
            },
        )
        .reduce(
            || (Vec::new(), 0.0),
            |(mut a, wa), (b, wb)| {
                a.extend(b);
                (a, wa.max(wb))
            },
        )
}

fn slot_of(key: u32, bits: u32) -> usize {
    (key.wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
}

/// Open addressing, linear probing: each slot holds `key << 32 | value`, 0 when empty
/// (no key is 0: the scan starts at 1).
fn hash_table(entries: &[(u32, u32)]) -> (Vec<u64>, u32) {
    let mut bits = 10u32;
    while (1usize << bits) < entries.len().saturating_mul(5) / 2 {
        bits += 1;
    }
    let n = 1usize << bits;
    let mut slots = vec![0u64; n];
    for &(k, v) in entries {
        let mut s = slot_of(k, bits);
        while slots[s] != 0 {
            s = (s + 1) & (n - 1);
        }
        slots[s] = (u64::from(k) << 32) | u64::from(v);
    }
    (slots, bits)
}

/// The device table, its size in bits, and the midpoint distance below which the
/// kernel looks an input up.
pub(crate) struct LogfTable {
    mem: CudaMem,
    bits: u32,
    threshold: f64,
}

/// float64 erfinv: `ox_erfinv`'s float32 start and the CPU's Newton steps
/// (`erfinv_f64` in oxmx-cpu/src/special.rs), operation for operation.
const SRC64: &str = r#"
__device__ double ox_erfinv64(double x, const unsigned long long* tbl, unsigned bits, double thr) {
  if (isnan(x) || x < -1.0 || x > 1.0) return __longlong_as_double(0x7ff8000000000000ll);
  if (x == 1.0) return __longlong_as_double(0x7ff0000000000000ll);
  if (x == -1.0) return __longlong_as_double(0xfff0000000000000ll);
  double y = (double)ox_erfinv((float)x, tbl, bits, thr);
  if (!isfinite(y)) return y;
  double c = 2.0 / sqrt(3.141592653589793);
  for (int k = 0; k < 3; ++k) {
    double err = erf(y) - x;
    double d = c * exp(-y * y);
    if (d == 0.0) break;
    y -= err / d;
  }
  return y;
}
"#;

const SRC: &str = r#"
__device__ __forceinline__ float host_logf(float v, const unsigned long long* tbl,
                                           unsigned bits, double thr) {
  double d = log((double)v);
  float f = (float)d;
  float o = nextafterf(f, d > (double)f ? __int_as_float(0x7f800000) : __int_as_float(0xff800000));
  double ulp = fabs((double)o - (double)f);
  double mid = ((double)f + (double)o) * 0.5;
  if (ulp > 0.0 && fabs(d - mid) < thr * ulp) {
    unsigned key = __float_as_uint(v);
    unsigned mask = (1u << bits) - 1u;
    unsigned s = (key * 0x9e3779b1u) >> (32u - bits);
    for (;;) {
      unsigned long long e = tbl[s];
      if (e == 0ull) break;
      if ((unsigned)(e >> 32) == key) return __uint_as_float((unsigned)e);
      s = (s + 1u) & mask;
    }
  }
  return f;
}
__device__ __forceinline__ float ox_erfinv(float x, const unsigned long long* tbl,
                                           unsigned bits, double thr) {
  if (!(x >= -1.0f && x <= 1.0f)) return __int_as_float(0x7fc00000);
  if (x == 1.0f) return __int_as_float(0x7f800000);
  if (x == -1.0f) return __int_as_float(0xff800000);
  float t = host_logf(fmaf(x, -x, 1.0f), tbl, bits, thr);
  float p;
  if (fabsf(t) > 6.125f) {
    p = 3.03697567e-10f;
    p = fmaf(p, t, 2.93243101e-8f);
    p = fmaf(p, t, 1.22150334e-6f);
    p = fmaf(p, t, 2.84108955e-5f);
    p = fmaf(p, t, 3.93552968e-4f);
    p = fmaf(p, t, 3.02698812e-3f);
    p = fmaf(p, t, 4.83185798e-3f);
    p = fmaf(p, t, -2.64646143e-1f);
    p = fmaf(p, t, 8.40016484e-1f);
  } else {
    p = 5.43877832e-9f;
    p = fmaf(p, t, 1.43285448e-7f);
    p = fmaf(p, t, 1.22774793e-6f);
    p = fmaf(p, t, 1.12963626e-7f);
    p = fmaf(p, t, -5.61530760e-5f);
    p = fmaf(p, t, -1.47697632e-4f);
    p = fmaf(p, t, 2.31468678e-3f);
    p = fmaf(p, t, 1.15392581e-2f);
    p = fmaf(p, t, -2.32015476e-1f);
    p = fmaf(p, t, 8.86226892e-1f);
  }
  return __fmul_rn(x, p);
}
"#;

fn kernel_src(dtype: Dtype) -> Option<String> {
    let t = kernels::ctype(dtype)?;
    let (load, store) = match dtype {
        Dtype::Float32 => ("x[i]", "r"),
        Dtype::Float16 => ("ld(x[i])", "st_half(r)"),
        Dtype::Bfloat16 => ("ld(x[i])", "st_bf16(r)"),
        Dtype::Float64 => ("x[i]", "r"),
        _ => return None,
    };
    let (rt, f) = if dtype == Dtype::Float64 {
        ("double", "ox_erfinv64")
    } else {
        ("float", "ox_erfinv")
    };
    let pre = kernels::prelude_for(&[dtype]);
    // float64: the CPU's float32 start (the same bits), then its three Newton steps on
    // erf with CUDA's erf and exp (within 2 and 1 ulp of the C library's: the result
    // agrees with the CPU to a few ulp, not bit for bit)
    Some(format!(
        "{pre}\n{SRC}\n{SRC64}\nextern \"C\" __global__ void k(const {t}* __restrict__ x, {t}* __restrict__ out, long long n, const unsigned long long* __restrict__ tbl, unsigned bits, double thr) {{\n  long long stride = (long long)gridDim.x * blockDim.x;\n  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {{\n    {rt} r = {f}({load}, tbl, bits, thr);\n    out[i] = {store};\n  }}\n}}\n"
    ))
}

impl CudaBackend {
    fn logf_table(&self, op: &str) -> Result<&LogfTable> {
        let t = self.logf_table.get_or_init(|| {
            let (entries, worst) = scan();
            let (slots, bits) = hash_table(&entries);
            let bytes: Vec<u8> = slots.iter().flat_map(|s| s.to_le_bytes()).collect();
            let mut mem = self
                .alloc
                .alloc(op, bytes.len())
                .map_err(|e| e.to_string())?;
            let dst = mem.slice_mut().map_err(|e| e.to_string())?;
            let mut view = dst.slice_mut(..bytes.len());
            self.alloc
                .stream
                .memcpy_htod(&bytes, &mut view)
                .map_err(|e| format!("host to device copy: {e:?}"))?;
            Ok(LogfTable {
                mem,
                bits,
                // the mismatches measured here, with room for the device log's last bit
                threshold: worst + 0.01,
            })
        });
        t.as_ref().map_err(|e| Error::runtime(op, e.clone()))
    }

    /// erfinv of float32, float16 or bfloat16 `x`, as the CPU computes it.
    pub(crate) fn erfinv(
        &self,
        op: &str,
        ins: Vec<Input>,
        shape: &[usize],
        dtype: Dtype,
    ) -> Result<ArrayData> {
        let x = ins
            .into_iter()
            .next()
            .ok_or_else(|| Error::runtime(op, "missing input"))?;
        let src = kernel_src(dtype).ok_or_else(|| {
            unsupported(op, format!("erfinv in {dtype} (bit-identical to the CPU)"))
        })?;
        let x = self.contiguous_input(op, x)?;
        let n = size_of(shape);
        let (mut out, nbytes) = self.new_output(op, shape, dtype)?;
        if n > 0 {
            let table = self.logf_table(op)?;
            let f = self.compiler.memo(format!("erfinv {dtype:?}"), || {
                self.compiler.get_exact(op, src)
            })?;
            let xs = self.device_of(op, &x)?;
            let tbl = table.mem.slice()?;
            let dst = out.slice_mut()?;
            let n64 = n as i64;
            crate::ffi::launch(op, &self.alloc.stream, &f, self.grid(n), |b| {
                crate::ffi::arg(b, xs);
                crate::ffi::arg(b, &*dst);
                crate::ffi::arg(b, &n64);
                crate::ffi::arg(b, tbl);
                crate::ffi::arg(b, &table.bits);
                crate::ffi::arg(b, &table.threshold);
            })?;
        }
        Ok(on_device(out, nbytes, shape))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midpoint_distance_measures_in_float_ulps() {
        assert_eq!(midpoint_distance(1.0), 0.5);
        let f = 1.5f32;
        let ulp = f64::from(f.next_up() - f);
        let d = f64::from(f) + 0.5 * ulp;
        assert!(midpoint_distance(d) < 1e-9);
        assert!((midpoint_distance(f64::from(f) + 0.25 * ulp) - 0.25).abs() < 1e-9);
    }

    #[test]
    fn hash_table_finds_every_entry() {
        let entries: Vec<(u32, u32)> = (1..5000u32).map(|k| (k * 7919, k)).collect();
        let (slots, bits) = hash_table(&entries);
        let n = slots.len();
        for &(k, v) in &entries {
            let mut s = slot_of(k, bits);
            loop {
                let e = slots[s];
                assert_ne!(e, 0, "key {k} missing");
                if (e >> 32) as u32 == k {
                    assert_eq!(e as u32, v);
                    break;
                }
                s = (s + 1) & (n - 1);
            }
        }
    }
}
