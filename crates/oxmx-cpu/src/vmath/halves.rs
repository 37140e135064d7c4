//! float16 and bfloat16 through the float32-lane kernels: a block is widened to float32
//! (exact), computed in float32 lanes (lanes outside the kernel's domain by its float64
//! kernel, as for float32), and rounded once to the half type. The float32 result is within
//! 1 float32 ulp, 2^-13 of a float16 ulp, so the half result is within 0.51 of its ulp
//! (correctly rounded except next to a rounding boundary), the half types' 1-ulp bound
//! with room to spare. The widening and rounding run on whole blocks (F16C where the CPU
//! has it for float16; integer operations the compiler vectorizes for bfloat16), not
//! through float64 per element.

use super::{binary_blocks_f32, unary_blocks_f32, Binary, Unary, BLOCK};
use crate::elem::{bf16_of, Elem};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use std::any::TypeId;

/// A half type's block conversions to and from float32.
pub(super) trait HalfLanes: Elem {
    fn widen(src: &[Self], dst: &mut [f32]);
    fn narrow(src: &[f32], dst: &mut [Self]);
}

impl HalfLanes for f16 {
    #[inline(always)]
    fn widen(src: &[f16], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst)
    }
    #[inline(always)]
    fn narrow(src: &[f32], dst: &mut [f16]) {
        dst.convert_from_f32_slice(src)
    }
}

impl HalfLanes for bf16 {
    #[inline(always)]
    fn widen(src: &[bf16], dst: &mut [f32]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits((s.to_bits() as u32) << 16);
        }
    }
    #[inline(always)]
    fn narrow(src: &[f32], dst: &mut [bf16]) {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = bf16_of(*s);
        }
    }
}

#[inline(always)]
fn unary_half<K: Unary, H: HalfLanes>(src: &[H], dst: &mut [H]) {
    let (mut a, mut r) = ([0f32; BLOCK], [0f32; BLOCK]);
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        H::widen(&src[i..i + m], &mut a[..m]);
        unary_blocks_f32::<K>(&a[..m], &mut r[..m]);
        H::narrow(&r[..m], &mut dst[i..i + m]);
        i += m;
    }
}

#[inline(always)]
fn binary_half<K: Binary, H: HalfLanes>(xs: &[H], ys: &[H], dst: &mut [H]) {
    let (mut a, mut b, mut r) = ([0f32; BLOCK], [0f32; BLOCK], [0f32; BLOCK]);
    let n = xs.len().min(ys.len()).min(dst.len());
    let mut i = 0;
    while i < n {
        let m = (n - i).min(BLOCK);
        H::widen(&xs[i..i + m], &mut a[..m]);
        H::widen(&ys[i..i + m], &mut b[..m]);
        binary_blocks_f32::<K>(&a[..m], &b[..m], &mut r[..m]);
        H::narrow(&r[..m], &mut dst[i..i + m]);
        i += m;
    }
}

/// Whether `A` and `O` are both `H` (compile-time constants after monomorphization).
#[inline(always)]
fn both<A: 'static, O: 'static, H: 'static>() -> bool {
    TypeId::of::<A>() == TypeId::of::<H>() && TypeId::of::<O>() == TypeId::of::<H>()
}

/// `dst = K(src)` for half types in and out when `K` has float32 lanes; false (nothing
/// done) otherwise.
#[inline(always)]
pub(super) fn unary<K: Unary, A: Elem, O: Elem>(src: &[A], dst: &mut [O]) -> bool {
    if !K::HAS_F32 {
        return false;
    }
    use bytemuck::{cast_slice as cast, cast_slice_mut as cast_mut};
    if both::<A, O, f16>() {
        unary_half::<K, f16>(cast(src), cast_mut(dst));
    } else if both::<A, O, bf16>() {
        unary_half::<K, bf16>(cast(src), cast_mut(dst));
    } else {
        return false;
    }
    true
}

/// `dst = K(xs, ys)` for half types in and out when `K` has float32 lanes; false
/// otherwise.
#[inline(always)]
pub(super) fn binary<K: Binary, A: Elem, O: Elem>(xs: &[A], ys: &[A], dst: &mut [O]) -> bool {
    if !K::HAS_F32 {
        return false;
    }
    use bytemuck::{cast_slice as cast, cast_slice_mut as cast_mut};
    if both::<A, O, f16>() {
        binary_half::<K, f16>(cast(xs), cast(ys), cast_mut(dst));
    } else if both::<A, O, bf16>() {
        binary_half::<K, bf16>(cast(xs), cast(ys), cast_mut(dst));
    } else {
        return false;
    }
    true
}
