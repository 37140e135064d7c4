//! Binary elementwise kernels. Inputs arrive broadcast to the output shape and cast to
//! one dtype by the op layer. Integer division by zero gives 0, `MIN // -1` wraps to
//! `MIN`, shifts by the bit width or more give 0 (or -1 for negative right shifts).

use crate::elem::TypedMut;
use crate::inplace::{map2_inplace, Other};
use crate::strided::{map2, map2_runs, Src, View};
use half::{bf16, f16};
use num_complex::Complex32;
use oxmx_core::backend::Input;
use oxmx_core::memory::Buffer;
use oxmx_core::primitive::BinaryOp;
use oxmx_core::{Dtype, Error, Result};

/// Comparison over every storage type (complex: lexicographic, used only for ==/!=
/// and max/min).
pub trait Cmp: Copy {
    fn lt(self, o: Self) -> bool;
    fn eqv(self, o: Self) -> bool;
}
macro_rules! cmp_prim {
    ($($t:ty),*) => {$(
        impl Cmp for $t {
            #[inline] fn lt(self, o: Self) -> bool { self < o }
            #[inline] fn eqv(self, o: Self) -> bool { self == o }
        }
    )*};
}
cmp_prim!(u8, u16, u32, u64, i8, i16, i32, i64, f16, bf16, f32, f64);
impl Cmp for Complex32 {
    fn lt(self, o: Self) -> bool {
        self.re < o.re || (self.re == o.re && self.im < o.im)
    }
    fn eqv(self, o: Self) -> bool {
        self == o
    }
}

/// A complex value with a NaN in either part.
#[inline]
pub(crate) fn c_is_nan(z: Complex32) -> bool {
    z.re.is_nan() || z.im.is_nan()
}

/// Complex maximum as MLX defines it: lexicographic order, a NaN first operand wins.
#[inline]
pub(crate) fn c_maximum(x: Complex32, y: Complex32) -> Complex32 {
    if c_is_nan(x) || y.lt(x) {
        x
    } else {
        y
    }
}

/// Complex minimum as MLX defines it: lexicographic order, a NaN first operand wins.
#[inline]
pub(crate) fn c_minimum(x: Complex32, y: Complex32) -> Complex32 {
    if c_is_nan(x) || x.lt(y) {
        x
    } else {
        y
    }
}

/// `log(1 + z)` for complex64 with MLX's rounding: near zero the real part comes from
/// `log1p(|1 + z|^2 - 1) / 2`, which keeps the small-argument accuracy.
#[inline]
pub(crate) fn c_log1p(z: Complex32) -> Complex32 {
    let (x, y) = (z.re, z.im);
    let xp1 = x + 1.0;
    let theta = y.atan2(xp1);
    let re = if x.hypot(y) < 0.5 {
        0.5 * (x * (2.0 + x) + y * y).ln_1p()
    } else {
        xp1.hypot(y).ln()
    };
    Complex32::new(re, theta)
}

/// `log(exp(x) + exp(y))` for complex64: `max + log1p(exp(min - max))` with MLX's
/// lexicographic max/min; `-inf` and `+inf` (real, zero imaginary part) short-circuit.
#[inline]
pub(crate) fn c_logaddexp(x: Complex32, y: Complex32) -> Complex32 {
    let hi = c_maximum(x, y);
    let lo = c_minimum(x, y);
    if lo == Complex32::new(f32::NEG_INFINITY, 0.0) || hi == Complex32::new(f32::INFINITY, 0.0) {
        return hi;
    }
    hi + c_log1p((lo - hi).exp())
}

fn compare<T: Cmp + Sync + bytemuck::Pod>(op: BinaryOp, a: &Src, b: &Src, out: &mut [u8]) {
    let (va, vb) = (View::<T>::of(a), View::<T>::of(b));
    let o = out.typed_mut::<u8>();
    let s = &a.shape;
    match op {
        BinaryOp::Equal => map2(s, va, vb, o, |x: T, y: T| x.eqv(y) as u8),
        BinaryOp::NotEqual => map2(s, va, vb, o, |x: T, y: T| !x.eqv(y) as u8),
        BinaryOp::Less => map2(s, va, vb, o, |x: T, y: T| x.lt(y) as u8),
        BinaryOp::LessEqual => map2(s, va, vb, o, |x: T, y: T| (x.lt(y) || x.eqv(y)) as u8),
        BinaryOp::Greater => map2(s, va, vb, o, |x: T, y: T| y.lt(x) as u8),
        _ => map2(s, va, vb, o, |x: T, y: T| (y.lt(x) || x.eqv(y)) as u8),
    }
}

/// Float binary math for one element type; expands to a monomorphized kernel per op.
macro_rules! float_binary {
    ($op:expr, $t:ty, $go:ident) => {{
        use BinaryOp::*;
        match $op {
            Add => $go!(|x: $t, y: $t| x + y),
            Subtract => $go!(|x: $t, y: $t| x - y),
            Multiply => $go!(|x: $t, y: $t| x * y),
            Divide => $go!(|x: $t, y: $t| x / y),
            FloorDivide => $go!(|x: $t, y: $t| (x / y).floor()),
            Remainder => $go!(|x: $t, y: $t| {
                let r = x % y;
                if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                    r + y
                } else {
                    r
                }
            }),
            Power => $go!(|x: $t, y: $t| x.powf(y)),
            Maximum => $go!(|x: $t, y: $t| if x.is_nan() || x > y { x } else { y }),
            Minimum => $go!(|x: $t, y: $t| if x.is_nan() || x < y { x } else { y }),
            ArcTan2 => $go!(|x: $t, y: $t| x.atan2(y)),
            LogAddExp => $go!(|x: $t, y: $t| {
                if x.is_nan() || y.is_nan() {
                    return <$t>::NAN;
                }
                let m = x.max(y);
                if m.is_infinite() {
                    return m;
                }
                m + (-(x - y).abs()).exp().ln_1p()
            }),
            _ => {
                return Err(Error::value(
                    $op.name(),
                    "Not supported for floating point inputs.",
                ))
            }
        }
    }};
}

/// A float op with a `vmath` kernel, run over contiguous runs of both inputs; `x ** 2`
/// and `x ** 3` with one exponent (a Python number) as an elementwise product.
fn vector_binary<T: crate::elem::Elem + crate::vmath::SmallPower>(
    op: BinaryOp,
    a: &Src,
    b: &Src,
    out: &mut [u8],
) {
    let (va, vb) = (View::<T>::of(a), View::<T>::of(b));
    if op == BinaryOp::Power && vb.strides.iter().all(|&s| s == 0) {
        let out = out.typed_mut::<T>();
        match vb
            .data
            .get(vb.offset)
            .and_then(|&y| crate::vmath::small_power(y))
        {
            Some(2) => return crate::strided::map1(a.shape, va, out, T::square),
            Some(3) => return crate::strided::map1(a.shape, va, out, T::cube),
            _ => {
                return map2_runs(a.shape, va, vb, out, |x, y, o| {
                    crate::vmath::binary_run(op, x, y, o)
                })
            }
        }
    }
    map2_runs(a.shape, va, vb, out.typed_mut::<T>(), |x, y, o| {
        crate::vmath::binary_run(op, x, y, o)
    });
}

/// Integer arithmetic with defined results for every input.
pub trait IntArith: Copy {
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn fdiv(self, o: Self) -> Self;
    fn rem(self, o: Self) -> Self;
    fn pow(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn min(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn or(self, o: Self) -> Self;
    fn xor(self, o: Self) -> Self;
    fn shl(self, o: Self) -> Self;
    fn shr(self, o: Self) -> Self;
}

macro_rules! int_arith {
    ($t:ty, $signed:expr) => {
        impl IntArith for $t {
            #[inline]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline]
            fn sub(self, o: Self) -> Self {
                self.wrapping_sub(o)
            }
            #[inline]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline]
            fn fdiv(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let q = self.wrapping_div(o);
                #[allow(unused_comparisons)]
                let neg = (self < 0) != (o < 0);
                if $signed && neg && q.wrapping_mul(o) != self {
                    q.wrapping_sub(1)
                } else {
                    q
                }
            }
            #[inline]
            fn rem(self, o: Self) -> Self {
                if o == 0 {
                    return 0;
                }
                let r = self.wrapping_rem(o);
                #[allow(unused_comparisons)]
                let fix = r != 0 && ((r < 0) != (o < 0));
                if $signed && fix {
                    r.wrapping_add(o)
                } else {
                    r
                }
            }
            #[inline]
            fn pow(self, o: Self) -> Self {
                #[allow(unused_comparisons)]
                if o < 0 {
                    // integer powers with negative exponents: only ±1 survive
                    return match self as i64 {
                        1 => 1 as $t,
                        -1 => {
                            if (o as i64) % 2 == 0 {
                                1 as $t
                            } else {
                                self
                            }
                        }
                        _ => 0,
                    };
                }
                let e = u32::try_from(o as u64).unwrap_or(u32::MAX);
                self.wrapping_pow(e)
            }
            #[inline]
            fn max(self, o: Self) -> Self {
                if self > o {
                    self
                } else {
                    o
                }
            }
            #[inline]
            fn min(self, o: Self) -> Self {
                if self < o {
                    self
                } else {
                    o
                }
            }
            #[inline]
            fn and(self, o: Self) -> Self {
                self & o
            }
            #[inline]
            fn or(self, o: Self) -> Self {
                self | o
            }
            #[inline]
            fn xor(self, o: Self) -> Self {
                self ^ o
            }
            #[inline]
            fn shl(self, o: Self) -> Self {
                #[allow(unused_comparisons)]
                if o < 0 || (o as u64) >= <$t>::BITS as u64 {
                    0
                } else {
                    self << (o as u32)
                }
            }
            #[inline]
            fn shr(self, o: Self) -> Self {
                #[allow(unused_comparisons)]
                let neg = self < 0;
                #[allow(unused_comparisons)]
                if o < 0 || (o as u64) >= <$t>::BITS as u64 {
                    if neg {
                        !0
                    } else {
                        0
                    }
                } else {
                    self >> (o as u32)
                }
            }
        }
    };
}
int_arith!(u8, false);
int_arith!(u16, false);
int_arith!(u32, false);
int_arith!(u64, false);
int_arith!(i8, true);
int_arith!(i16, true);
int_arith!(i32, true);
int_arith!(i64, true);

fn int_binary<T: IntArith + Sync + Send + bytemuck::Pod>(
    op: BinaryOp,
    a: &Src,
    b: &Src,
    out: &mut [u8],
) -> Result<()> {
    use BinaryOp::*;
    let (va, vb) = (View::<T>::of(a), View::<T>::of(b));
    let o = out.typed_mut::<T>();
    let s = &a.shape;
    match op {
        Add => map2(s, va, vb, o, T::add),
        Subtract => map2(s, va, vb, o, T::sub),
        Multiply => map2(s, va, vb, o, T::mul),
        FloorDivide | Divide => map2(s, va, vb, o, T::fdiv),
        Remainder => map2(s, va, vb, o, T::rem),
        Power => map2(s, va, vb, o, T::pow),
        Maximum => map2(s, va, vb, o, T::max),
        Minimum => map2(s, va, vb, o, T::min),
        BitwiseAnd | LogicalAnd => map2(s, va, vb, o, T::and),
        BitwiseOr | LogicalOr => map2(s, va, vb, o, T::or),
        BitwiseXor => map2(s, va, vb, o, T::xor),
        LeftShift => map2(s, va, vb, o, T::shl),
        RightShift => map2(s, va, vb, o, T::shr),
        _ => {
            return Err(Error::value(
                op.name(),
                format!("Not supported for {}.", a.dtype),
            ))
        }
    }
    Ok(())
}

fn bool_binary(op: BinaryOp, a: &Src, b: &Src, out: &mut [u8]) -> Result<()> {
    use BinaryOp::*;
    let (va, vb) = (View::<u8>::of(a), View::<u8>::of(b));
    let o = out.typed_mut::<u8>();
    let s = &a.shape;
    let f: fn(u8, u8) -> u8 = match op {
        Add | Maximum | BitwiseOr | LogicalOr => |x, y| x | y,
        Multiply | Minimum | BitwiseAnd | LogicalAnd => |x, y| x & y,
        Subtract | BitwiseXor => |x, y| x ^ y,
        Power => |x, y| x | (y ^ 1),
        FloorDivide | Divide => |x, y| x & y,
        Remainder => |_, _| 0,
        _ => return Err(Error::value(op.name(), "Not supported for bool.")),
    };
    map2(s, va, vb, o, f);
    Ok(())
}

fn complex_binary(op: BinaryOp, a: &Src, b: &Src, out: &mut [u8]) -> Result<()> {
    use BinaryOp::*;
    let (va, vb) = (View::<Complex32>::of(a), View::<Complex32>::of(b));
    let o = out.typed_mut::<Complex32>();
    let s = &a.shape;
    let f: fn(Complex32, Complex32) -> Complex32 = match op {
        Add => |x, y| x + y,
        Subtract => |x, y| x - y,
        Multiply => |x, y| x * y,
        Divide => |x, y| x / y,
        Power => |x, y| {
            if y.re == 0.0 && y.im == 0.0 {
                Complex32::new(1.0, 0.0)
            } else {
                x.powc(y)
            }
        },
        Maximum => c_maximum,
        Minimum => c_minimum,
        LogAddExp => c_logaddexp,
        _ => return Err(Error::value(op.name(), "Not supported for complex64.")),
    };
    map2(s, va, vb, o, f);
    Ok(())
}

pub fn run(op: BinaryOp, a: &Src, b: &Src, out: &mut [u8]) -> Result<()> {
    let d = a.dtype;
    if op.is_comparison() {
        crate::with_dtype!(d, T, compare::<T>(op, a, b, out));
        return Ok(());
    }
    let s = &a.shape;
    if crate::vmath::has_binary(op, d) {
        match d {
            Dtype::Float32 => vector_binary::<f32>(op, a, b, out),
            Dtype::Float64 => vector_binary::<f64>(op, a, b, out),
            Dtype::Float16 => vector_binary::<f16>(op, a, b, out),
            _ => vector_binary::<bf16>(op, a, b, out),
        }
        return Ok(());
    }
    match d {
        Dtype::Bool => bool_binary(op, a, b, out)?,
        Dtype::Float32 => {
            let (va, vb, o) = (
                View::<f32>::of(a),
                View::<f32>::of(b),
                out.typed_mut::<f32>(),
            );
            macro_rules! go {
                ($f:expr) => {
                    map2(s, va, vb, o, $f)
                };
            }
            float_binary!(op, f32, go)
        }
        Dtype::Float64 => {
            let (va, vb, o) = (
                View::<f64>::of(a),
                View::<f64>::of(b),
                out.typed_mut::<f64>(),
            );
            macro_rules! go {
                ($f:expr) => {
                    map2(s, va, vb, o, $f)
                };
            }
            float_binary!(op, f64, go)
        }
        Dtype::Float16 => {
            let (va, vb, o) = (
                View::<f16>::of(a),
                View::<f16>::of(b),
                out.typed_mut::<f16>(),
            );
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map2(s, va, vb, o, |x: f16, y: f16| {
                        f16::from_f32(f(x.to_f32(), y.to_f32()))
                    })
                }};
            }
            float_binary!(op, f32, go)
        }
        Dtype::Bfloat16 => {
            let (va, vb, o) = (
                View::<bf16>::of(a),
                View::<bf16>::of(b),
                out.typed_mut::<bf16>(),
            );
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map2(s, va, vb, o, |x: bf16, y: bf16| {
                        crate::elem::bf16_of(f(x.to_f32(), y.to_f32()))
                    })
                }};
            }
            float_binary!(op, f32, go)
        }
        Dtype::Complex64 => complex_binary(op, a, b, out)?,
        Dtype::Uint8 => int_binary::<u8>(op, a, b, out)?,
        Dtype::Uint16 => int_binary::<u16>(op, a, b, out)?,
        Dtype::Uint32 => int_binary::<u32>(op, a, b, out)?,
        Dtype::Uint64 => int_binary::<u64>(op, a, b, out)?,
        Dtype::Int8 => int_binary::<i8>(op, a, b, out)?,
        Dtype::Int16 => int_binary::<i16>(op, a, b, out)?,
        Dtype::Int32 => int_binary::<i32>(op, a, b, out)?,
        Dtype::Int64 => int_binary::<i64>(op, a, b, out)?,
    }
    Ok(())
}

/// `op` written over `acc` (a donated operand's buffer holding `n` elements of `dtype`,
/// see `inplace`); false when `other` has no supported layout or the dtype no kernel.
pub fn run_inplace(
    op: BinaryOp,
    acc: &mut Buffer,
    n: usize,
    other: &Input,
    acc_second: bool,
) -> Result<bool> {
    // the vector-math ops take the allocating path (their kernels read whole runs)
    if crate::vmath::has_binary(op, other.dtype) {
        return Ok(false);
    }
    macro_rules! typed {
        ($t:ty, $math:ty, $widen:expr, $narrow:expr) => {{
            let Some(o) = Other::<$t>::of(other, n) else {
                return Ok(false);
            };
            let Some(acc) = acc.typed_mut::<$t>().get_mut(..n) else {
                return Ok(false);
            };
            macro_rules! go {
                ($f:expr) => {{
                    let f = $f;
                    map2_inplace(acc, o, acc_second, |x: $t, y: $t| {
                        $narrow(f($widen(x), $widen(y)))
                    })
                }};
            }
            float_binary!(op, $math, go)
        }};
    }
    match other.dtype {
        Dtype::Float32 => typed!(f32, f32, |x| x, |x| x),
        Dtype::Float64 => typed!(f64, f64, |x| x, |x| x),
        Dtype::Float16 => typed!(f16, f32, f16::to_f32, f16::from_f32),
        Dtype::Bfloat16 => typed!(bf16, f32, bf16::to_f32, crate::elem::bf16_of),
        _ => return Ok(false),
    }
    Ok(true)
}
