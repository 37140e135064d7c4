//! Element types: the Rust type behind each dtype and the conversions between them.
//! bool is stored as a u8 holding 0 or 1.

use half::{bf16, f16};
use num_complex::Complex32;

/// Every storage type: conversions used by casts and scalar handling.
pub trait Elem: bytemuck::Pod + Send + Sync + PartialEq + 'static {
    fn to_f64(self) -> f64;
    fn to_i64(self) -> i64;
    fn to_u64(self) -> u64;
    fn to_c(self) -> (f64, f64) {
        (self.to_f64(), 0.0)
    }
    fn from_f64(v: f64) -> Self;
    fn from_i64(v: i64) -> Self;
    fn from_u64(v: u64) -> Self;
    fn from_c(re: f64, im: f64) -> Self {
        let _ = im;
        Self::from_f64(re)
    }
    fn is_zero(self) -> bool;
}

macro_rules! int_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            #[inline] fn to_i64(self) -> i64 { self as i64 }
            #[inline] fn to_u64(self) -> u64 { self as u64 }
            #[inline] fn from_f64(v: f64) -> Self { v as $t }
            #[inline] fn from_i64(v: i64) -> Self { v as $t }
            #[inline] fn from_u64(v: u64) -> Self { v as $t }
            #[inline] fn is_zero(self) -> bool { self == 0 }
        }
    )*};
}
int_elem!(u8, u16, u32, u64, i8, i16, i32, i64);

macro_rules! float_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            #[inline] fn to_f64(self) -> f64 { self as f64 }
            #[inline] fn to_i64(self) -> i64 { self as i64 }
            #[inline] fn to_u64(self) -> u64 { self as u64 }
            #[inline] fn from_f64(v: f64) -> Self { v as $t }
            #[inline] fn from_i64(v: i64) -> Self { v as $t }
            #[inline] fn from_u64(v: u64) -> Self { v as $t }
            #[inline] fn is_zero(self) -> bool { self == 0.0 }
        }
    )*};
}
float_elem!(f32, f64);

macro_rules! half_elem {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            #[inline] fn to_f64(self) -> f64 { self.to_f64() }
            #[inline] fn to_i64(self) -> i64 { self.to_f32() as i64 }
            #[inline] fn to_u64(self) -> u64 { self.to_f32() as u64 }
            #[inline] fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            #[inline] fn from_i64(v: i64) -> Self { <$t>::from_f64(v as f64) }
            #[inline] fn from_u64(v: u64) -> Self { <$t>::from_f64(v as f64) }
            #[inline] fn is_zero(self) -> bool { self.to_f32() == 0.0 }
        }
    )*};
}
half_elem!(f16);

/// f32 → bfloat16, round to nearest even; every NaN becomes the positive quiet NaN
/// 0x7FC0, as MLX stores it. Branch-free (the compiler vectorizes a loop of it): adding
/// 0x7FFF plus the kept bit's lowest rounds the dropped half to nearest even, and a carry
/// into the exponent gives the next binade or infinity, as it should.
#[inline(always)]
pub fn bf16_of(v: f32) -> bf16 {
    let b = v.to_bits();
    let r = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    bf16::from_bits(if v.is_nan() { 0x7FC0 } else { r })
}

impl Elem for bf16 {
    #[inline]
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self.to_f32() as i64
    }
    #[inline]
    fn to_u64(self) -> u64 {
        self.to_f32() as u64
    }
    #[inline]
    fn from_f64(v: f64) -> Self {
        if v.is_nan() {
            bf16::from_bits(0x7FC0)
        } else {
            bf16::from_f64(v)
        }
    }
    #[inline]
    fn from_i64(v: i64) -> Self {
        bf16::from_f64(v as f64)
    }
    #[inline]
    fn from_u64(v: u64) -> Self {
        bf16::from_f64(v as f64)
    }
    #[inline]
    fn is_zero(self) -> bool {
        self.to_f32() == 0.0
    }
}

impl Elem for Complex32 {
    fn to_f64(self) -> f64 {
        self.re as f64
    }
    fn to_i64(self) -> i64 {
        self.re as i64
    }
    fn to_u64(self) -> u64 {
        self.re as u64
    }
    fn to_c(self) -> (f64, f64) {
        (self.re as f64, self.im as f64)
    }
    fn from_f64(v: f64) -> Self {
        Complex32::new(v as f32, 0.0)
    }
    fn from_i64(v: i64) -> Self {
        Complex32::new(v as f32, 0.0)
    }
    fn from_u64(v: u64) -> Self {
        Complex32::new(v as f32, 0.0)
    }
    fn from_c(re: f64, im: f64) -> Self {
        Complex32::new(re as f32, im as f32)
    }
    fn is_zero(self) -> bool {
        self.re == 0.0 && self.im == 0.0
    }
}

/// Run `$body` with `$T` bound to the storage type of `$dt`.
#[macro_export]
macro_rules! with_dtype {
    ($dt:expr, $T:ident, $body:expr) => {{
        use oxmx_core::Dtype as __D;
        match $dt {
            __D::Bool | __D::Uint8 => {
                type $T = u8;
                $body
            }
            __D::Uint16 => {
                type $T = u16;
                $body
            }
            __D::Uint32 => {
                type $T = u32;
                $body
            }
            __D::Uint64 => {
                type $T = u64;
                $body
            }
            __D::Int8 => {
                type $T = i8;
                $body
            }
            __D::Int16 => {
                type $T = i16;
                $body
            }
            __D::Int32 => {
                type $T = i32;
                $body
            }
            __D::Int64 => {
                type $T = i64;
                $body
            }
            __D::Float16 => {
                type $T = half::f16;
                $body
            }
            __D::Bfloat16 => {
                type $T = half::bf16;
                $body
            }
            __D::Float32 => {
                type $T = f32;
                $body
            }
            __D::Float64 => {
                type $T = f64;
                $body
            }
            __D::Complex64 => {
                type $T = num_complex::Complex32;
                $body
            }
        }
    }};
}

/// Run `$body` with `$T` the unsigned integer type of the dtype's size (for copies).
#[macro_export]
macro_rules! with_size {
    ($size:expr, $T:ident, $body:expr) => {{
        match $size {
            1 => {
                type $T = u8;
                $body
            }
            2 => {
                type $T = u16;
                $body
            }
            4 => {
                type $T = u32;
                $body
            }
            _ => {
                type $T = u64;
                $body
            }
        }
    }};
}

/// Typed access to an output given as bytes (a whole buffer, or a fused node's block of
/// the output), as `Buffer::typed_mut` gives it: whole elements only, and nothing when
/// the bytes are not aligned for `T` (callers hand over aligned outputs).
pub trait TypedMut {
    fn typed_mut<T: bytemuck::Pod>(&mut self) -> &mut [T];
}

impl TypedMut for [u8] {
    fn typed_mut<T: bytemuck::Pod>(&mut self) -> &mut [T] {
        let size = std::mem::size_of::<T>().max(1);
        let whole = self.len() / size * size;
        bytemuck::try_cast_slice_mut(&mut self[..whole]).unwrap_or_default()
    }
}
