//! Vector math: the elementary functions evaluated branch-free over blocks of float64
//! lanes, so that the compiler vectorizes them, under runtime dispatch to AVX-512/AVX2
//! (pulp; never `target-cpu=native`).
//!
//! Every kernel has three parts: `fast`, a polynomial evaluation that meets the
//! documented ulp bound on `in_domain`; and `exact`, the scalar float64 libm call used for
//! the rare lanes outside it (huge sin arguments, overflow edges, NaN...). A block is
//! computed with `fast`, and only when one of its lanes is outside the domain is it
//! scanned again to patch those lanes.
//!
//! Functions with float32-lane kernels (`fast32`) compute float32 in float32 lanes, and
//! float16/bfloat16 through them (`halves.rs`); the others compute float32 and the half
//! types in float64 lanes and round once, so those are correctly rounded except within
//! about 2^-20 ulp of a rounding boundary.
//! `mul_add` is a fused multiply-add everywhere (a libm call on CPUs without FMA), so the
//! results are the same bits on every x86-64 CPU.

/// The `fast`/`fast_narrow` pair of a kernel written once as `$body::<NARROW>(x)`.
macro_rules! both_precisions {
    ($body:ident) => {
        #[inline(always)]
        fn fast(x: f64) -> f64 {
            $body::<false>(x)
        }
        #[inline(always)]
        fn fast_narrow(x: f64) -> f64 {
            $body::<true>(x)
        }
    };
}

/// The float32-lane items of a `Unary`: a kernel and its domain in `vmath/single.rs` (or
/// in the module named first).
macro_rules! float32_lanes {
    ($kernel:ident, $domain:ident) => {
        float32_lanes!(single, $kernel, $domain);
    };
    ($module:ident, $kernel:ident, $domain:ident) => {
        const HAS_F32: bool = true;
        #[inline(always)]
        fn fast32(x: f32) -> f32 {
            super::$module::$kernel(x)
        }
        #[inline(always)]
        fn in_domain32(x: f32) -> bool {
            super::$module::$domain(x)
        }
    };
}

/// The float32-lane items of a `Binary`: a kernel and its domain in the module named.
macro_rules! float32_binary_lanes {
    ($module:ident, $kernel:ident, $domain:ident) => {
        const HAS_F32: bool = true;
        #[inline(always)]
        fn fast32(x: f32, y: f32) -> f32 {
            super::$module::$kernel(x, y)
        }
        #[inline(always)]
        fn in_domain32(x: f32, y: f32) -> bool {
            super::$module::$domain(x, y)
        }
    };
}

mod consts;
mod erf;
mod exp_log;
mod halves;
mod hyper;
mod powers;
pub use powers::{of_exponent as small_power, SmallPower};
mod single;
mod single_binary;
mod single_hyper;
mod single_trig;
mod trig;

use crate::elem::Elem;
use oxmx_core::primitive::{BinaryOp, UnaryOp};
use oxmx_core::Dtype;
use std::marker::PhantomData;

/// One-argument function in three parts (see the module comment).
pub trait Unary {
    fn fast(x: f64) -> f64;
    /// `fast` to about 2^-36 relative error: enough to round correctly to float32 and
    /// the half types (shorter series, fewer error-compensation steps).
    #[inline(always)]
    fn fast_narrow(x: f64) -> f64 {
        Self::fast(x)
    }
    fn in_domain(x: f64) -> bool;
    fn exact(x: f64) -> f64;
    /// Whether `fast32` is a float32-lane kernel for this function.
    const HAS_F32: bool = false;
    /// A float32 kernel within 1 ulp on `in_domain32`.
    #[inline(always)]
    fn fast32(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn in_domain32(_x: f32) -> bool {
        false
    }
}

/// Two-argument function in three parts.
pub trait Binary {
    fn fast(x: f64, y: f64) -> f64;
    #[inline(always)]
    fn fast_narrow(x: f64, y: f64) -> f64 {
        Self::fast(x, y)
    }
    fn in_domain(x: f64, y: f64) -> bool;
    fn exact(x: f64, y: f64) -> f64;
    /// Whether `fast32` is a float32-lane kernel for this function.
    const HAS_F32: bool = false;
    /// A float32 kernel within 1 ulp on `in_domain32`.
    #[inline(always)]
    fn fast32(x: f32, _y: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn in_domain32(_x: f32, _y: f32) -> bool {
        false
    }
}

/// Lanes per block: small enough for the L1 cache, large enough to amortize the
/// out-of-domain check.
const BLOCK: usize = 256;

/// Whether input and output are at most float32-wide (a compile-time constant).
#[inline(always)]
fn narrow<A, O>() -> bool {
    std::mem::size_of::<A>() <= 4 && std::mem::size_of::<O>() <= 4
}

#[inline(always)]
fn unary_blocks<K: Unary, A: Elem, O: Elem>(src: &[A], dst: &mut [O]) {
    let mut buf = [0f64; BLOCK];
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        let (s, d, b) = (&src[i..i + m], &mut dst[i..i + m], &mut buf[..m]);
        let mut outside = false;
        for j in 0..m {
            let x = s[j].to_f64();
            b[j] = if narrow::<A, O>() {
                K::fast_narrow(x)
            } else {
                K::fast(x)
            };
            outside |= !K::in_domain(x);
        }
        if outside {
            for j in 0..m {
                let x = s[j].to_f64();
                if !K::in_domain(x) {
                    b[j] = K::exact(x);
                }
            }
        }
        for j in 0..m {
            d[j] = O::from_f64(b[j]);
        }
        i += m;
    }
}

/// `unary_blocks` for float32 in and out with a float32-lane kernel; lanes outside its
/// domain take the float64 kernel (or libm).
#[inline(always)]
fn unary_blocks_f32<K: Unary>(src: &[f32], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        let (s, d) = (&src[i..i + m], &mut dst[i..i + m]);
        let mut outside = false;
        for j in 0..m {
            d[j] = K::fast32(s[j]);
            outside |= !K::in_domain32(s[j]);
        }
        if outside {
            for j in 0..m {
                if !K::in_domain32(s[j]) {
                    let x = s[j] as f64;
                    let v = if K::in_domain(x) {
                        K::fast_narrow(x)
                    } else {
                        K::exact(x)
                    };
                    d[j] = v as f32;
                }
            }
        }
        i += m;
    }
}

#[inline(always)]
fn binary_blocks<K: Binary, A: Elem, O: Elem>(xs: &[A], ys: &[A], dst: &mut [O]) {
    let mut buf = [0f64; BLOCK];
    let n = xs.len().min(ys.len()).min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        let (xs, ys) = (&xs[i..i + m], &ys[i..i + m]);
        let (d, b) = (&mut dst[i..i + m], &mut buf[..m]);
        let mut outside = false;
        for j in 0..m {
            let (x, y) = (xs[j].to_f64(), ys[j].to_f64());
            b[j] = if narrow::<A, O>() {
                K::fast_narrow(x, y)
            } else {
                K::fast(x, y)
            };
            outside |= !K::in_domain(x, y);
        }
        if outside {
            for j in 0..m {
                let (x, y) = (xs[j].to_f64(), ys[j].to_f64());
                if !K::in_domain(x, y) {
                    b[j] = K::exact(x, y);
                }
            }
        }
        for j in 0..m {
            d[j] = O::from_f64(b[j]);
        }
        i += m;
    }
}

/// `binary_blocks` for float32 in and out with a float32-lane kernel; lanes outside its
/// domain take the float64 kernel (or libm).
#[inline(always)]
fn binary_blocks_f32<K: Binary>(xs: &[f32], ys: &[f32], dst: &mut [f32]) {
    let n = xs.len().min(ys.len()).min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        let (xs, ys, d) = (&xs[i..i + m], &ys[i..i + m], &mut dst[i..i + m]);
        let mut outside = false;
        for j in 0..m {
            d[j] = K::fast32(xs[j], ys[j]);
            outside |= !K::in_domain32(xs[j], ys[j]);
        }
        if outside {
            for j in 0..m {
                if !K::in_domain32(xs[j], ys[j]) {
                    let (x, y) = (xs[j] as f64, ys[j] as f64);
                    let v = if K::in_domain(x, y) {
                        K::fast_narrow(x, y)
                    } else {
                        K::exact(x, y)
                    };
                    d[j] = v as f32;
                }
            }
        }
        i += m;
    }
}

/// `dst[i] = K(src[i])`, compiled for the best instruction set of this CPU.
pub fn unary<K: Unary, A: Elem, O: Elem>(src: &[A], dst: &mut [O]) {
    pulp::Arch::new().dispatch(UnaryTask::<K, A, O> {
        src,
        dst,
        kernel: PhantomData,
    });
}

/// `dst[i] = K(xs[i], ys[i])`, compiled for the best instruction set of this CPU.
pub fn binary<K: Binary, A: Elem, O: Elem>(xs: &[A], ys: &[A], dst: &mut [O]) {
    pulp::Arch::new().dispatch(BinaryTask::<K, A, O> {
        xs,
        ys,
        dst,
        kernel: PhantomData,
    });
}

/// Whether `T` is float32 (a compile-time constant after monomorphization).
#[inline(always)]
fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

// The work as `WithSimd` values whose `with_simd` is inlined into pulp's
// `#[target_feature]` function (a closure body is not, and its `mul_add`s then become
// calls to a software fma).
struct UnaryTask<'a, K, A, O> {
    src: &'a [A],
    dst: &'a mut [O],
    kernel: PhantomData<K>,
}

impl<K: Unary, A: Elem, O: Elem> pulp::WithSimd for UnaryTask<'_, K, A, O> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        if K::HAS_F32 && is_f32::<A>() && is_f32::<O>() {
            let src: &[f32] = bytemuck::cast_slice(self.src);
            let dst: &mut [f32] = bytemuck::cast_slice_mut(self.dst);
            unary_blocks_f32::<K>(src, dst)
        } else if !halves::unary::<K, A, O>(self.src, self.dst) {
            unary_blocks::<K, A, O>(self.src, self.dst)
        }
    }
}

struct BinaryTask<'a, K, A, O> {
    xs: &'a [A],
    ys: &'a [A],
    dst: &'a mut [O],
    kernel: PhantomData<K>,
}

impl<K: Binary, A: Elem, O: Elem> pulp::WithSimd for BinaryTask<'_, K, A, O> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _simd: S) {
        if K::HAS_F32 && is_f32::<A>() && is_f32::<O>() {
            let xs: &[f32] = bytemuck::cast_slice(self.xs);
            let ys: &[f32] = bytemuck::cast_slice(self.ys);
            let dst: &mut [f32] = bytemuck::cast_slice_mut(self.dst);
            binary_blocks_f32::<K>(xs, ys, dst)
        } else if !halves::binary::<K, A, O>(self.xs, self.ys, self.dst) {
            binary_blocks::<K, A, O>(self.xs, self.ys, self.dst)
        }
    }
}

/// Whether `op` on `dtype` has a vector kernel here (else the caller's scalar path runs).
pub fn has_unary(op: UnaryOp, dtype: Dtype) -> bool {
    matches!(
        dtype,
        Dtype::Float32 | Dtype::Float64 | Dtype::Float16 | Dtype::Bfloat16
    ) && op.is_transcendental()
}

/// Whether the binary `op` on `dtype` has a vector kernel.
pub fn has_binary(op: BinaryOp, dtype: Dtype) -> bool {
    use BinaryOp::*;
    matches!(
        dtype,
        Dtype::Float32 | Dtype::Float64 | Dtype::Float16 | Dtype::Bfloat16
    ) && matches!(op, ArcTan2 | LogAddExp | Power)
}

/// Applies `op` (for which `has_unary` holds) to a run of values.
pub fn unary_run<A: Elem, O: Elem>(op: UnaryOp, src: &[A], dst: &mut [O]) {
    use UnaryOp::*;
    match op {
        Exp => unary::<exp_log::Exp, A, O>(src, dst),
        Expm1 => unary::<exp_log::Expm1, A, O>(src, dst),
        Log => unary::<exp_log::Log, A, O>(src, dst),
        Log2 => unary::<exp_log::Log2, A, O>(src, dst),
        Log10 => unary::<exp_log::Log10, A, O>(src, dst),
        Log1p => unary::<exp_log::Log1p, A, O>(src, dst),
        Sin => unary::<trig::Sin, A, O>(src, dst),
        Cos => unary::<trig::Cos, A, O>(src, dst),
        Tan => unary::<trig::Tan, A, O>(src, dst),
        ArcSin => unary::<trig::ArcSin, A, O>(src, dst),
        ArcCos => unary::<trig::ArcCos, A, O>(src, dst),
        ArcTan => unary::<trig::ArcTan, A, O>(src, dst),
        Sinh => unary::<hyper::Sinh, A, O>(src, dst),
        Cosh => unary::<hyper::Cosh, A, O>(src, dst),
        Tanh => unary::<hyper::Tanh, A, O>(src, dst),
        ArcSinh => unary::<hyper::ArcSinh, A, O>(src, dst),
        ArcCosh => unary::<hyper::ArcCosh, A, O>(src, dst),
        ArcTanh => unary::<hyper::ArcTanh, A, O>(src, dst),
        Erf => unary::<erf::Erf, A, O>(src, dst),
        Sigmoid => unary::<hyper::Sigmoid, A, O>(src, dst),
        // has_unary() is false for the rest: copy so that a wrong call is visible in tests
        _ => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, s)| *d = O::from_f64(s.to_f64())),
    }
}

/// Applies the binary `op` (for which `has_binary` holds) to runs of values.
pub fn binary_run<A: Elem, O: Elem>(op: BinaryOp, xs: &[A], ys: &[A], dst: &mut [O]) {
    use BinaryOp::*;
    match op {
        ArcTan2 => binary::<trig::ArcTan2, A, O>(xs, ys, dst),
        LogAddExp => binary::<hyper::LogAddExp, A, O>(xs, ys, dst),
        Power => {
            // squares and cubes as products (the GPU's formulas); the rest through pow
            if !powers::run(xs, ys, dst, binary::<exp_log::Power, A, O>) {
                binary::<exp_log::Power, A, O>(xs, ys, dst)
            }
        }
        _ => dst
            .iter_mut()
            .zip(xs)
            .for_each(|(d, s)| *d = O::from_f64(s.to_f64())),
    }
}

// ---- shared building blocks -------------------------------------------------------

/// The float types the series are evaluated in (float64 lanes, and float32 lanes in
/// `single.rs`).
pub(super) trait Lane: Copy {
    fn fma(self, a: Self, b: Self) -> Self;
}
impl Lane for f64 {
    #[inline(always)]
    fn fma(self, a: f64, b: f64) -> f64 {
        self.mul_add(a, b)
    }
}
impl Lane for f32 {
    #[inline(always)]
    fn fma(self, a: f32, b: f32) -> f32 {
        self.mul_add(a, b)
    }
}

/// c[0] + x c[1] + x^2 c[2] + ... (Horner, fused).
#[inline(always)]
fn horner<T: Lane, const N: usize>(x: T, c: &[T; N]) -> T {
    horner_first::<T, N, N>(x, c)
}

/// The first M coefficients of `c`, by Horner (the narrow variants' shorter series).
#[inline(always)]
fn horner_first<T: Lane, const M: usize, const N: usize>(x: T, c: &[T; N]) -> T {
    const { assert!(M >= 1 && M <= N) };
    let mut acc = c[M - 1];
    let mut i = M - 1;
    while i > 0 {
        i -= 1;
        acc = acc.fma(x, c[i]);
    }
    acc
}

/// 1.5 * 2^52: adding it rounds a value below 2^51 to an integer held in the low
/// mantissa bits.
const ROUND_SHIFT: f64 = 6755399441055744.0;

/// (round(v) as a float, as an integer), for |v| < 2^51; garbage but no panic otherwise.
#[inline(always)]
fn round_int(v: f64) -> (f64, i64) {
    let t = v + ROUND_SHIFT;
    let k = (t.to_bits() as i64).wrapping_sub(ROUND_SHIFT.to_bits() as i64);
    (t - ROUND_SHIFT, k)
}

/// 2^k for -1022 <= k <= 1023.
#[inline(always)]
fn pow2i(k: i64) -> f64 {
    f64::from_bits((k.wrapping_add(1023) as u64).wrapping_shl(52))
}

/// a + b = s + e exactly (Knuth's TwoSum, any magnitudes).
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `x` itself where it is zero (keeps the sign of -0 in odd functions), else `r`.
#[inline(always)]
fn keep_zero(x: f64, r: f64) -> f64 {
    if x == 0.0 {
        x
    } else {
        r
    }
}

#[cfg(test)]
mod tests;
