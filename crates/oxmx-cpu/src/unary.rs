//! Unary elementwise kernels for every dtype.

use crate::elem::{Elem, TypedMut};
use crate::inplace::map1_inplace;
use crate::special::{erfinv_f32, erfinv_f64};
use crate::strided::{map1, map1_runs, Src, View};
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::primitive::UnaryOp;
use oxmx_core::{Dtype, Error, Result};

/// Float math written once for f32 and f64: expands to one monomorphized kernel call per
/// op (closures, not function pointers, so the loops vectorize).
macro_rules! float_unary {
    ($op:expr, $t:ty, $erf:path, $erfinv:path, $go:ident) => {{
        use UnaryOp::*;
        match $op {
            Abs => $go!(|x: $t| x.abs()),
            Negative => $go!(|x: $t| -x),
            // sign(-0) is +0 (NumPy, MLX and the GPU kernel); NaN stays NaN
            Sign => $go!(|x: $t| if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else if x == 0.0 {
                0.0
            } else {
                x
            }),
            Square => $go!(|x: $t| x * x),
            Sqrt => $go!(|x: $t| x.sqrt()),
            Rsqrt => $go!(|x: $t| 1.0 / x.sqrt()),
            Reciprocal => $go!(|x: $t| 1.0 / x),
            Exp => $go!(|x: $t| x.exp()),
            Expm1 => $go!(|x: $t| x.exp_m1()),
            Log => $go!(|x: $t| x.ln()),
            Log2 => $go!(|x: $t| x.log2()),
            Log10 => $go!(|x: $t| x.log10()),
            Log1p => $go!(|x: $t| x.ln_1p()),
            Sin => $go!(|x: $t| x.sin()),
            Cos => $go!(|x: $t| x.cos()),
            Tan => $go!(|x: $t| x.tan()),
            ArcSin => $go!(|x: $t| x.asin()),
            ArcCos => $go!(|x: $t| x.acos()),
            ArcTan => $go!(|x: $t| x.atan()),
            Sinh => $go!(|x: $t| x.sinh()),
            Cosh => $go!(|x: $t| x.cosh()),
            Tanh => $go!(|x: $t| x.tanh()),
            ArcSinh => $go!(|x: $t| x.asinh()),
            ArcCosh => $go!(|x: $t| x.acosh()),
            ArcTanh => $go!(|x: $t| x.atanh()),
            Erf => $go!(|x: $t| $erf(x)),
            ErfInv => $go!(|x: $t| $erfinv(x)),
            Sigmoid => $go!(|x: $t| 1.0 / (1.0 + (-x).exp())),
            Floor => $go!(|x: $t| x.floor()),
            Ceil => $go!(|x: $t| x.ceil()),
            Round => $go!(|x: $t| x.round_ties_even()),
            Trunc => $go!(|x: $t| x.trunc()),
            Conjugate | Real => $go!(|x: $t| x),
            Imag => $go!(|_x: $t| 0.0),
            _ => return Err(unsupported($op, <$t as DtypeHint>::dtype_hint())),
        }
    }};
}

trait DtypeHint {
    fn dtype_hint() -> Dtype;
}
impl DtypeHint for f32 {
    fn dtype_hint() -> Dtype {
        Dtype::Float32
    }
}
impl DtypeHint for f64 {
    fn dtype_hint() -> Dtype {
        Dtype::Float64
    }
}

fn float_pred(op: UnaryOp) -> Option<fn(f64) -> bool> {
    use UnaryOp::*;
    Some(match op {
        IsNan => |x: f64| x.is_nan(),
        IsInf => |x: f64| x.is_infinite(),
        IsPosInf => |x: f64| x == f64::INFINITY,
        IsNegInf => |x: f64| x == f64::NEG_INFINITY,
        IsFinite => |x: f64| x.is_finite(),
        _ => return None,
    })
}

fn unsupported(op: UnaryOp, d: Dtype) -> Error {
    Error::value("unary", format!("{op:?} is not supported for {d}."))
}

pub fn run(op: UnaryOp, x: &Src, out_dtype: Dtype, out: &mut [u8]) -> Result<()> {
    let shape = &x.shape;
    let d = x.dtype;
    // predicates → bool
    if let Some(p) = float_pred(op) {
        let o = out.typed_mut::<u8>();
        match d {
            Dtype::Complex64 => {
                let v = View::<Complex32>::of(x);
                map1(shape, v, o, |c| {
                    let (re, im) = (c.re as f64, c.im as f64);
                    match op {
                        UnaryOp::IsNan => (re.is_nan() || im.is_nan()) as u8,
                        UnaryOp::IsFinite => (re.is_finite() && im.is_finite()) as u8,
                        _ => (p(re) || p(im)) as u8,
                    }
                });
            }
            _ => crate::with_dtype!(d, T, {
                let v = View::<T>::of(x);
                map1(shape, v, o, |e| p(e.to_f64()) as u8);
            }),
        }
        return Ok(());
    }
    if crate::vmath::has_unary(op, d) {
        match d {
            Dtype::Float32 => vector_unary::<f32>(op, x, out),
            Dtype::Float64 => vector_unary::<f64>(op, x, out),
            Dtype::Float16 => vector_unary::<f16>(op, x, out),
            _ => vector_unary::<bf16>(op, x, out),
        }
        return Ok(());
    }
    match d {
        Dtype::Float32 => {
            let (v, o) = (View::<f32>::of(x), out.typed_mut::<f32>());
            macro_rules! go {
                ($f:expr) => {
                    map1(shape, v, o, $f)
                };
            }
            float_unary!(op, f32, libm::erff, erfinv_f32, go)
        }
        Dtype::Float64 => {
            let (v, o) = (View::<f64>::of(x), out.typed_mut::<f64>());
            macro_rules! go {
                ($f:expr) => {
                    map1(shape, v, o, $f)
                };
            }
            float_unary!(op, f64, libm::erf, erfinv_f64, go)
        }
        Dtype::Float16 => {
            let (v, o) = (View::<f16>::of(x), out.typed_mut::<f16>());
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map1(shape, v, o, |e: f16| f16::from_f32(f(e.to_f32())))
                }};
            }
            float_unary!(op, f32, libm::erff, erfinv_f32, go)
        }
        Dtype::Bfloat16 => {
            let (v, o) = (View::<bf16>::of(x), out.typed_mut::<bf16>());
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map1(shape, v, o, |e: bf16| crate::elem::bf16_of(f(e.to_f32())))
                }};
            }
            float_unary!(op, f32, libm::erff, erfinv_f32, go)
        }
        Dtype::Complex64 => complex(op, x, out_dtype, out)?,
        Dtype::Bool => {
            let o = out.typed_mut::<u8>();
            let v = View::<u8>::of(x);
            match op {
                UnaryOp::LogicalNot | UnaryOp::BitwiseInvert => {
                    map1(shape, v, o, |b| (b == 0) as u8)
                }
                UnaryOp::Abs | UnaryOp::Sign | UnaryOp::Square => map1(shape, v, o, |b| b),
                _ => return Err(unsupported(op, d)),
            }
        }
        _ => crate::with_dtype!(d, T, int_unary::<T>(op, x, out)?),
    }
    Ok(())
}

/// A float op with a `vmath` kernel, run over contiguous runs of the input.
fn vector_unary<T: Elem>(op: UnaryOp, x: &Src, out: &mut [u8]) {
    map1_runs(x.shape, View::<T>::of(x), out.typed_mut::<T>(), |s, o| {
        crate::vmath::unary_run(op, s, o)
    });
}

/// Integer ops through a small trait implemented for every integer type.
pub trait IntOps: Elem + Copy {
    fn wabs(self) -> Self;
    fn wneg(self) -> Self;
    fn sign(self) -> Self;
    fn wsq(self) -> Self;
    fn inv(self) -> Self;
}
macro_rules! int_ops_signed {
    ($($t:ty),*) => {$(
        impl IntOps for $t {
            fn wabs(self) -> Self { self.wrapping_abs() }
            fn wneg(self) -> Self { self.wrapping_neg() }
            fn sign(self) -> Self { self.signum() }
            fn wsq(self) -> Self { self.wrapping_mul(self) }
            fn inv(self) -> Self { !self }
        }
    )*};
}
macro_rules! int_ops_unsigned {
    ($($t:ty),*) => {$(
        impl IntOps for $t {
            fn wabs(self) -> Self { self }
            fn wneg(self) -> Self { self.wrapping_neg() }
            fn sign(self) -> Self { (self != 0) as $t }
            fn wsq(self) -> Self { self.wrapping_mul(self) }
            fn inv(self) -> Self { !self }
        }
    )*};
}
int_ops_signed!(i8, i16, i32, i64);
int_ops_unsigned!(u8, u16, u32, u64);
// Float/complex types are never reached by int_unary, but with_dtype! instantiates all.
macro_rules! int_ops_none {
    ($($t:ty),*) => {$(
        impl IntOps for $t {
            fn wabs(self) -> Self { self }
            fn wneg(self) -> Self { self }
            fn sign(self) -> Self { self }
            fn wsq(self) -> Self { self }
            fn inv(self) -> Self { self }
        }
    )*};
}
int_ops_none!(f16, bf16, f32, f64, Complex32);

fn int_unary<T: IntOps>(op: UnaryOp, x: &Src, out: &mut [u8]) -> Result<()> {
    use UnaryOp::*;
    let v = View::<T>::of(x);
    let o = out.typed_mut::<T>();
    let shape = &x.shape;
    match op {
        Abs => map1(shape, v, o, |e: T| e.wabs()),
        Negative => map1(shape, v, o, |e: T| e.wneg()),
        Sign => map1(shape, v, o, |e: T| e.sign()),
        Square => map1(shape, v, o, |e: T| e.wsq()),
        BitwiseInvert => map1(shape, v, o, |e: T| e.inv()),
        Floor | Ceil | Round | Trunc | Conjugate | Real => map1(shape, v, o, |e: T| e),
        _ => return Err(unsupported(op, x.dtype)),
    }
    Ok(())
}

fn complex(op: UnaryOp, x: &Src, out_dtype: Dtype, out: &mut [u8]) -> Result<()> {
    use UnaryOp::*;
    let v = View::<Complex32>::of(x);
    let shape = &x.shape;
    if out_dtype == Dtype::Float32 {
        let o = out.typed_mut::<f32>();
        match op {
            Abs => map1(shape, v, o, |c| c.norm()),
            Real => map1(shape, v, o, |c| c.re),
            Imag => map1(shape, v, o, |c| c.im),
            _ => return Err(unsupported(op, x.dtype)),
        }
        return Ok(());
    }
    let o = out.typed_mut::<Complex32>();
    let one = Complex32::new(1.0, 0.0);
    let f: fn(Complex32) -> Complex32 = match op {
        Negative => |c| -c,
        Sign => |c| {
            let n = c.norm();
            if n == 0.0 {
                Complex32::new(0.0, 0.0)
            } else {
                c / n
            }
        },
        Square => |c| c * c,
        Sqrt => |c| c.sqrt(),
        Rsqrt => |c| Complex32::new(1.0, 0.0) / c.sqrt(),
        Reciprocal => |c| Complex32::new(1.0, 0.0) / c,
        Exp => |c| c.exp(),
        Expm1 => |c| c.exp() - Complex32::new(1.0, 0.0),
        Log => |c| c.ln(),
        Log2 => |c| c.ln() / std::f32::consts::LN_2,
        Log10 => |c| c.ln() / std::f32::consts::LN_10,
        Log1p => crate::binary::c_log1p,
        Sin => |c| c.sin(),
        Cos => |c| c.cos(),
        Tan => |c| c.tan(),
        ArcSin => |c| c.asin(),
        ArcCos => |c| c.acos(),
        ArcTan => |c| c.atan(),
        Sinh => |c| c.sinh(),
        Cosh => |c| c.cosh(),
        Tanh => |c| c.tanh(),
        ArcSinh => |c| c.asinh(),
        ArcCosh => |c| c.acosh(),
        ArcTanh => |c| c.atanh(),
        Sigmoid => |c| Complex32::new(1.0, 0.0) / (Complex32::new(1.0, 0.0) + (-c).exp()),
        Conjugate => |c| c.conj(),
        _ => return Err(unsupported(op, x.dtype)),
    };
    let _ = one;
    map1(shape, v, o, f);
    Ok(())
}

/// `op` written over `acc` (a donated input's buffer holding `n` floats of `dtype`, see
/// `inplace`); false for predicates and non-float dtypes.
pub fn run_inplace(
    op: UnaryOp,
    acc: &mut oxmx_core::memory::Buffer,
    n: usize,
    dtype: Dtype,
) -> Result<bool> {
    if float_pred(op).is_some() {
        return Ok(false);
    }
    if crate::vmath::has_unary(op, dtype) {
        match dtype {
            Dtype::Float32 => vector_inplace::<f32>(op, acc, n),
            Dtype::Float64 => vector_inplace::<f64>(op, acc, n),
            Dtype::Float16 => vector_inplace::<f16>(op, acc, n),
            _ => vector_inplace::<bf16>(op, acc, n),
        }
        return Ok(true);
    }
    macro_rules! typed {
        ($t:ty, $math:ty, $erf:path, $erfinv:path, $widen:expr, $narrow:expr) => {{
            let Some(acc) = acc.typed_mut::<$t>().get_mut(..n) else {
                return Ok(false);
            };
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map1_inplace(acc, |x: $t| $narrow(f($widen(x))))
                }};
            }
            float_unary!(op, $math, $erf, $erfinv, go)
        }};
    }
    match dtype {
        Dtype::Float32 => typed!(f32, f32, libm::erff, erfinv_f32, |x| x, |x| x),
        Dtype::Float64 => typed!(f64, f64, libm::erf, erfinv_f64, |x| x, |x| x),
        Dtype::Float16 => typed!(f16, f32, libm::erff, erfinv_f32, f16::to_f32, f16::from_f32),
        Dtype::Bfloat16 => typed!(
            bf16,
            f32,
            libm::erff,
            erfinv_f32,
            bf16::to_f32,
            crate::elem::bf16_of
        ),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `vector_unary` over a donated buffer of `n` elements.
fn vector_inplace<T: Elem>(op: UnaryOp, acc: &mut oxmx_core::memory::Buffer, n: usize) {
    let acc = acc.typed_mut::<T>();
    let n = n.min(acc.len());
    crate::inplace::runs_inplace(&mut acc[..n], |s, o| crate::vmath::unary_run(op, s, o));
}
