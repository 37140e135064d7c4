//! Elementwise ops: dtype rules, broadcasting, and composites built from primitives.

use super::creation::scalar;
use crate::array::Array;
use crate::dtype::{promote, Dtype, Kind};
use crate::error::{Error, Result};
use crate::primitive::{BinaryOp, Primitive, UnaryOp};
use crate::scalar::Scalar;
use crate::shape::broadcast_shapes;

pub fn astype(a: &Array, dtype: Dtype) -> Result<Array> {
    if a.dtype() == dtype {
        return Ok(a.clone());
    }
    Ok(Array::pending(
        a.shape().to_vec(),
        dtype,
        Primitive::AsType(dtype),
        vec![a.clone()],
    ))
}

fn unary_name(op: UnaryOp) -> &'static str {
    use UnaryOp::*;
    match op {
        Abs => "abs",
        Negative => "negative",
        Sign => "sign",
        Square => "square",
        Sqrt => "sqrt",
        Rsqrt => "rsqrt",
        Reciprocal => "reciprocal",
        Exp => "exp",
        Expm1 => "expm1",
        Log => "log",
        Log2 => "log2",
        Log10 => "log10",
        Log1p => "log1p",
        Sin => "sin",
        Cos => "cos",
        Tan => "tan",
        ArcSin => "arcsin",
        ArcCos => "arccos",
        ArcTan => "arctan",
        Sinh => "sinh",
        Cosh => "cosh",
        Tanh => "tanh",
        ArcSinh => "arcsinh",
        ArcCosh => "arccosh",
        ArcTanh => "arctanh",
        Erf => "erf",
        ErfInv => "erfinv",
        Sigmoid => "sigmoid",
        Floor => "floor",
        Ceil => "ceil",
        Round => "round",
        Trunc => "trunc",
        IsNan => "isnan",
        IsInf => "isinf",
        IsPosInf => "isposinf",
        IsNegInf => "isneginf",
        IsFinite => "isfinite",
        LogicalNot => "logical_not",
        BitwiseInvert => "bitwise_invert",
        Conjugate => "conjugate",
        Real => "real",
        Imag => "imag",
    }
}

/// Apply a unary primitive with its dtype rule.
pub fn unary(op: UnaryOp, a: &Array) -> Result<Array> {
    use UnaryOp::*;
    let name = unary_name(op);
    let d = a.dtype();
    let out = match op {
        Abs | Sign | Square => {
            if op == Abs && d.is_complex() {
                Dtype::Float32
            } else {
                d
            }
        }
        Negative => {
            if d == Dtype::Bool {
                return Err(Error::value(
                    name,
                    "The negative operator on bool arrays is not supported; use logical_not.",
                ));
            }
            d
        }
        Floor | Ceil | Round | Trunc => {
            if d.is_complex() {
                return Err(Error::value(name, "Not supported for complex input."));
            }
            if !d.is_inexact() {
                return Ok(a.clone());
            }
            d
        }
        IsNan | IsInf | IsPosInf | IsNegInf | IsFinite => {
            if !d.is_inexact() {
                let v = matches!(op, IsFinite);
                return super::full_scalar(a.shape().to_vec(), Scalar::Bool(v), Dtype::Bool);
            }
            Dtype::Bool
        }
        LogicalNot => {
            let b = astype(a, Dtype::Bool)?;
            return Ok(Array::pending(
                a.shape().to_vec(),
                Dtype::Bool,
                Primitive::Unary(op),
                vec![b],
            ));
        }
        BitwiseInvert => {
            if !(d.is_integer() || d.is_bool()) {
                return Err(Error::value(name, format!("Bitwise operations are only allowed on integer and boolean types, got {d}.")));
            }
            d
        }
        Conjugate => {
            if !d.is_complex() {
                return Ok(a.clone());
            }
            d
        }
        Real => {
            if !d.is_complex() {
                return Ok(a.clone());
            }
            Dtype::Float32
        }
        Imag => {
            if !d.is_complex() {
                return super::zeros(a.shape().to_vec(), d);
            }
            Dtype::Float32
        }
        ErfInv | Erf | Sigmoid => {
            if d.is_complex() {
                return Err(Error::value(name, "Not supported for complex input."));
            }
            d.to_inexact()
        }
        _ => d.to_inexact(),
    };
    let input = if out.is_inexact() && !d.is_inexact() {
        astype(a, out)?
    } else {
        a.clone()
    };
    Ok(Array::pending(
        a.shape().to_vec(),
        out,
        Primitive::Unary(op),
        vec![input],
    ))
}

/// Broadcast both inputs to a common shape (views).
pub fn broadcast_pair(op: &str, a: &Array, b: &Array) -> Result<(Array, Array)> {
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    Ok((
        super::broadcast_to(a, &shape)?,
        super::broadcast_to(b, &shape)?,
    ))
}

/// Apply a binary primitive with its dtype rule and broadcasting.
pub fn binary(op: BinaryOp, a: &Array, b: &Array) -> Result<Array> {
    use BinaryOp::*;
    let name = op.name();
    let shape = broadcast_shapes(name, a.shape(), b.shape())?;
    let mut t = promote(a.dtype(), b.dtype());
    let out;
    match op {
        ArcTan2 if t.is_complex() => {
            return Err(Error::value(name, "Not supported for complex64."));
        }
        Divide | ArcTan2 | LogAddExp => {
            t = t.to_inexact();
            out = t;
        }
        Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual => out = Dtype::Bool,
        LogicalAnd | LogicalOr => {
            t = Dtype::Bool;
            out = Dtype::Bool;
        }
        BitwiseAnd | BitwiseOr | BitwiseXor | LeftShift | RightShift => {
            if !(t.is_integer() || t.is_bool()) {
                // MLX raises a RuntimeError here (a ValueError for the unary invert)
                return Err(Error::runtime(
                    name,
                    format!("Bitwise operations are only allowed on integer and boolean types, got {t}."),
                ));
            }
            if matches!(op, LeftShift | RightShift) && t.is_bool() {
                t = Dtype::Uint8;
            }
            out = t;
        }
        FloorDivide | Remainder => {
            if t.is_complex() {
                return Err(Error::value(name, "Not supported for complex input."));
            }
            out = t;
        }
        _ => out = t,
    }
    // complex numbers compare lexicographically (real part, then imaginary part), as in MLX
    let a = super::broadcast_to(&astype(a, t)?, &shape)?;
    let b = super::broadcast_to(&astype(b, t)?, &shape)?;
    Ok(Array::pending(
        shape,
        out,
        Primitive::Binary(op),
        vec![a, b],
    ))
}

macro_rules! unary_fns {
    ($($f:ident => $op:ident),* $(,)?) => {
        $(pub fn $f(a: &Array) -> Result<Array> { unary(UnaryOp::$op, a) })*
    };
}
unary_fns! {
    abs => Abs, negative => Negative, sign => Sign, square => Square, sqrt => Sqrt,
    rsqrt => Rsqrt, reciprocal => Reciprocal, exp => Exp, expm1 => Expm1, log => Log,
    log2 => Log2, log10 => Log10, log1p => Log1p, sin => Sin, cos => Cos, tan => Tan,
    arcsin => ArcSin, arccos => ArcCos, arctan => ArcTan, sinh => Sinh, cosh => Cosh,
    tanh => Tanh, arcsinh => ArcSinh, arccosh => ArcCosh, arctanh => ArcTanh, erf => Erf,
    erfinv => ErfInv, sigmoid => Sigmoid, floor => Floor, ceil => Ceil, trunc => Trunc,
    isnan => IsNan, isinf => IsInf, isposinf => IsPosInf, isneginf => IsNegInf,
    isfinite => IsFinite, logical_not => LogicalNot, bitwise_invert => BitwiseInvert,
    conjugate => Conjugate, real => Real, imag => Imag,
}

macro_rules! binary_fns {
    ($($f:ident => $op:ident),* $(,)?) => {
        $(pub fn $f(a: &Array, b: &Array) -> Result<Array> { binary(BinaryOp::$op, a, b) })*
    };
}
binary_fns! {
    add => Add, subtract => Subtract, multiply => Multiply, divide => Divide,
    floor_divide => FloorDivide, remainder => Remainder, power => Power,
    maximum => Maximum, minimum => Minimum, equal => Equal, not_equal => NotEqual,
    less => Less, less_equal => LessEqual, greater => Greater, greater_equal => GreaterEqual,
    logical_and => LogicalAnd, logical_or => LogicalOr, bitwise_and => BitwiseAnd,
    bitwise_or => BitwiseOr, bitwise_xor => BitwiseXor, left_shift => LeftShift,
    right_shift => RightShift, arctan2 => ArcTan2, logaddexp => LogAddExp,
}

pub fn logical_xor(a: &Array, b: &Array) -> Result<Array> {
    not_equal(&astype(a, Dtype::Bool)?, &astype(b, Dtype::Bool)?)
}

/// `round(a, decimals)`: round half to even after scaling by 10^decimals.
pub fn round(a: &Array, decimals: i64) -> Result<Array> {
    if decimals == 0 || (decimals > 0 && !a.dtype().is_inexact()) {
        return unary(UnaryOp::Round, a);
    }
    if !a.dtype().is_inexact() {
        // integers rounded to tens, hundreds…: through float64, back to the dtype
        return astype(&round(&astype(a, Dtype::Float64)?, decimals)?, a.dtype());
    }
    // MLX's formula and roundings: round(x * s) times 1 / s, both computed in x's dtype
    let d = a.dtype();
    let s = scalar(
        Scalar::Float(10f64.powi(decimals.clamp(-400, 400) as i32)),
        d,
    )?;
    let inv = divide(&scalar(Scalar::Float(1.0), d)?, &s)?;
    multiply(&unary(UnaryOp::Round, &multiply(a, &s)?)?, &inv)
}

/// `where(cond, x, y)`.
pub fn where_(cond: &Array, x: &Array, y: &Array) -> Result<Array> {
    let op = "where";
    let shape = crate::shape::broadcast_many(op, &[cond.shape(), x.shape(), y.shape()])?;
    let t = promote(x.dtype(), y.dtype());
    let c = super::broadcast_to(&astype(cond, Dtype::Bool)?, &shape)?;
    let x = super::broadcast_to(&astype(x, t)?, &shape)?;
    let y = super::broadcast_to(&astype(y, t)?, &shape)?;
    Ok(Array::pending(shape, t, Primitive::Select, vec![c, x, y]))
}

pub fn clip(a: &Array, lo: Option<&Array>, hi: Option<&Array>) -> Result<Array> {
    if lo.is_none() && hi.is_none() {
        return Err(Error::value("clip", "One of min or max must be provided."));
    }
    let mut r = a.clone();
    if let Some(lo) = lo {
        r = maximum(&r, lo)?;
    }
    if let Some(hi) = hi {
        r = minimum(&r, hi)?;
    }
    Ok(r)
}

pub fn degrees(a: &Array) -> Result<Array> {
    let d = a.dtype().to_inexact();
    multiply(
        &astype(a, d)?,
        &scalar(Scalar::Float(180.0 / std::f64::consts::PI), d)?,
    )
}

pub fn radians(a: &Array) -> Result<Array> {
    let d = a.dtype().to_inexact();
    multiply(
        &astype(a, d)?,
        &scalar(Scalar::Float(std::f64::consts::PI / 180.0), d)?,
    )
}

pub fn isclose(a: &Array, b: &Array, rtol: f64, atol: f64, equal_nan: bool) -> Result<Array> {
    let t = promote(a.dtype(), b.dtype()).to_inexact();
    let (a, b) = (astype(a, t)?, astype(b, t)?);
    let rt = scalar(Scalar::Float(rtol), t.real_part())?;
    let at = scalar(Scalar::Float(atol), t.real_part())?;
    let diff = abs(&subtract(&a, &b)?)?;
    let tol = add(&at, &multiply(&rt, &abs(&b)?)?)?;
    let close = less_equal(&diff, &tol)?;
    // infinities: equal when identical
    let both_inf = logical_and(&isinf(&a)?, &isinf(&b)?)?;
    let inf_eq = logical_and(&both_inf, &equal(&a, &b)?)?;
    let finite_ok = logical_and(&close, &logical_not(&both_inf)?)?;
    let mut r = logical_or(&finite_ok, &inf_eq)?;
    if equal_nan {
        r = logical_or(&r, &logical_and(&isnan(&a)?, &isnan(&b)?)?)?;
    }
    Ok(r)
}

pub fn nan_to_num(a: &Array, nan: f64, posinf: Option<f64>, neginf: Option<f64>) -> Result<Array> {
    let d = a.dtype();
    if !d.is_float() {
        return Ok(a.clone());
    }
    let (maxv, minv) = match d {
        Dtype::Float16 => (65504.0, -65504.0),
        Dtype::Bfloat16 => (3.3895313892515355e38, -3.3895313892515355e38),
        Dtype::Float32 => (f32::MAX as f64, f32::MIN as f64),
        _ => (f64::MAX, f64::MIN),
    };
    let s = |v: f64| scalar(Scalar::Float(v), d);
    let r = where_(&isnan(a)?, &s(nan)?, a)?;
    let r = where_(&isposinf(a)?, &s(posinf.unwrap_or(maxv))?, &r)?;
    where_(&isneginf(a)?, &s(neginf.unwrap_or(minv))?, &r)
}

pub fn positive(a: &Array) -> Result<Array> {
    Ok(a.clone())
}

/// Kinds accepted by float-only math.
pub fn require_kinds(op: &str, a: &Array, kinds: &[Kind]) -> Result<()> {
    crate::dtype::check_dtype_for(op, a.dtype(), kinds)
}
