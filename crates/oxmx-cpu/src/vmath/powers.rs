//! `x ** 2` and `x ** 3` as products, the formulas the GPU uses (`fpow` in the CUDA
//! prelude), so both backends give the same bits and squares and cubes cost a multiply
//! instead of a logarithm and an exponential. float32 is computed in float64 (the square
//! is exact there, the cube rounded once before the float32 rounding); the half types in
//! float32 (their squares are exact there). Each element follows its own exponent: runs
//! of one exponent (a Python number) take a plain loop, mixed runs the general kernel
//! with the squares and cubes written over it. float64 keeps `pow64` (as the GPU keeps
//! `pow` for it).

use super::Elem;
use half::{bf16, f16};
use std::any::TypeId;

/// Squares and cubes of one float type: `wide` is the exponent as float32; `PRODUCTS`
/// is false for float64 (which keeps `pow64`).
pub trait SmallPower: Copy + 'static {
    const PRODUCTS: bool = true;
    fn wide(self) -> f32;
    fn square(self) -> Self;
    fn cube(self) -> Self;
}

impl SmallPower for f64 {
    const PRODUCTS: bool = false;
    fn wide(self) -> f32 {
        self as f32
    }
    fn square(self) -> f64 {
        self * self
    }
    fn cube(self) -> f64 {
        self * self * self
    }
}

/// Which product `x ** y` is for one exponent `y`: `Some(2)` or `Some(3)` (when the
/// type has the product rule), None otherwise.
pub fn of_exponent<T: SmallPower>(y: T) -> Option<u8> {
    if !T::PRODUCTS {
        return None;
    }
    let e = y.wide();
    if e == 2.0 {
        Some(2)
    } else if e == 3.0 {
        Some(3)
    } else {
        None
    }
}

impl SmallPower for f32 {
    #[inline(always)]
    fn wide(self) -> f32 {
        self
    }
    #[inline(always)]
    fn square(self) -> f32 {
        let d = f64::from(self);
        (d * d) as f32
    }
    #[inline(always)]
    fn cube(self) -> f32 {
        let d = f64::from(self);
        (d * d * d) as f32
    }
}

macro_rules! half_power {
    ($t:ty) => {
        impl SmallPower for $t {
            #[inline(always)]
            fn wide(self) -> f32 {
                self.to_f32()
            }
            #[inline(always)]
            fn square(self) -> $t {
                let x = self.to_f32();
                <$t>::from_f32(x * x)
            }
            #[inline(always)]
            fn cube(self) -> $t {
                let x = self.to_f32();
                <$t>::from_f32(x * x * x)
            }
        }
    };
}
half_power!(f16);
half_power!(bf16);

/// `x ** y` over runs when the element type has the product rule (float32, float16,
/// bfloat16; `general` computes the other exponents); false, with nothing written, for
/// other types.
pub(super) fn run<A: Elem, O: Elem>(
    xs: &[A],
    ys: &[A],
    dst: &mut [O],
    general: impl FnOnce(&[A], &[A], &mut [O]),
) -> bool {
    if TypeId::of::<A>() != TypeId::of::<O>() {
        return false;
    }
    use bytemuck::{cast_slice as cast, cast_slice_mut as cast_mut};
    let id = TypeId::of::<A>();
    if id == TypeId::of::<f32>() {
        typed::<f32>(cast(xs), cast(ys), cast_mut(dst), |x, y, d| {
            general(cast(x), cast(y), cast_mut(d))
        });
    } else if id == TypeId::of::<f16>() {
        typed::<f16>(cast(xs), cast(ys), cast_mut(dst), |x, y, d| {
            general(cast(x), cast(y), cast_mut(d))
        });
    } else if id == TypeId::of::<bf16>() {
        typed::<bf16>(cast(xs), cast(ys), cast_mut(dst), |x, y, d| {
            general(cast(x), cast(y), cast_mut(d))
        });
    } else {
        return false;
    }
    true
}

fn typed<T: SmallPower>(
    xs: &[T],
    ys: &[T],
    dst: &mut [T],
    general: impl FnOnce(&[T], &[T], &mut [T]),
) {
    let first = ys.first().map(|y| y.wide());
    let one = |e: f32| ys.iter().all(|y| y.wide() == e);
    match first {
        Some(e) if e == 2.0 && one(2.0) => {
            dst.iter_mut().zip(xs).for_each(|(d, &x)| *d = x.square());
        }
        Some(e) if e == 3.0 && one(3.0) => {
            dst.iter_mut().zip(xs).for_each(|(d, &x)| *d = x.cube());
        }
        _ => {
            general(xs, ys, dst);
            for ((d, &x), &y) in dst.iter_mut().zip(xs).zip(ys) {
                let e = y.wide();
                if e == 2.0 {
                    *d = x.square();
                } else if e == 3.0 {
                    *d = x.cube();
                }
            }
        }
    }
}
