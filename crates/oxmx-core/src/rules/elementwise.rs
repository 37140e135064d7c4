//! Rules for unary and binary elementwise primitives, `where` and `astype`.
//!
//! Each differentiable op has one derivative function shared by vjp (`g * d`) and jvp
//! (`t * d`). Non-differentiable points follow MLX: `abs'(0) = 0`, `maximum` sends a
//! tie to its second operand, `minimum` too.

use super::{add, cast_like, div, fs, mul, sub, tangent_or_zeros};
use crate::array::Array;
use crate::error::Result;
use crate::ops;
use crate::primitive::{BinaryOp, UnaryOp};

fn u(op: UnaryOp, x: &Array) -> Result<Array> {
    ops::unary(op, x)
}

/// What the input tangent is multiplied by: a derivative array, a linear map, or zero.
enum Deriv {
    Zero,
    Factor(Array),
    Linear(fn(&Array) -> Result<Array>),
}

fn neg(x: &Array) -> Result<Array> {
    u(UnaryOp::Negative, x)
}
fn conj(x: &Array) -> Result<Array> {
    u(UnaryOp::Conjugate, x)
}
/// `conj(x)` for complex `x`, else `x`. MLX's vjps (as PyTorch's) multiply the cotangent
/// by the conjugate derivative, `g * conj(f'(z))`; its jvps use `f'(z)` itself.
pub(crate) fn conj_complex(x: &Array) -> Result<Array> {
    if x.dtype().is_complex() {
        conj(x)
    } else {
        Ok(x.clone())
    }
}
fn real(x: &Array) -> Result<Array> {
    u(UnaryOp::Real, x)
}
fn imag(x: &Array) -> Result<Array> {
    u(UnaryOp::Imag, x)
}

fn unary_deriv(op: UnaryOp, x: &Array, out: &Array) -> Result<Deriv> {
    use UnaryOp::*;
    if !x.dtype().is_inexact() {
        return Ok(Deriv::Zero);
    }
    let d = x.dtype();
    let c = |v: f64| fs(v, d);
    let one = || c(1.0);
    let f = match op {
        Negative => return Ok(Deriv::Linear(neg)),
        Conjugate => return Ok(Deriv::Linear(conj)),
        Real | Imag => return Ok(Deriv::Zero), // handled by the callers
        Sign | Floor | Ceil | Round | Trunc | IsNan | IsInf | IsPosInf | IsNegInf | IsFinite
        | LogicalNot | BitwiseInvert => return Ok(Deriv::Zero),
        // sign(x), with 0 at zeros and NaNs (as MLX).
        Abs if !d.is_complex() => {
            let pos = ops::astype(&ops::binary(BinaryOp::Greater, x, &c(0.0)?)?, d)?;
            let below = ops::astype(&ops::binary(BinaryOp::Less, x, &c(0.0)?)?, d)?;
            sub(&pos, &below)?
        }
        Abs => u(Sign, x)?,
        Square => mul(&c(2.0)?, x)?,
        Sqrt => div(&c(0.5)?, out)?,
        Rsqrt => div(&mul(&c(-0.5)?, out)?, x)?,
        Reciprocal => neg(&u(Square, out)?)?,
        Exp => out.clone(),
        Expm1 => add(out, &one()?)?,
        Log => u(Reciprocal, x)?,
        Log2 => u(Reciprocal, &mul(x, &c(std::f64::consts::LN_2)?)?)?,
        Log10 => u(Reciprocal, &mul(x, &c(std::f64::consts::LN_10)?)?)?,
        Log1p => u(Reciprocal, &add(x, &one()?)?)?,
        Sin => u(Cos, x)?,
        Cos => neg(&u(Sin, x)?)?,
        Tan => add(&one()?, &u(Square, out)?)?,
        ArcSin => u(Rsqrt, &sub(&one()?, &u(Square, x)?)?)?,
        ArcCos => neg(&u(Rsqrt, &sub(&one()?, &u(Square, x)?)?)?)?,
        ArcTan => u(Reciprocal, &add(&one()?, &u(Square, x)?)?)?,
        Sinh => u(Cosh, x)?,
        Cosh => u(Sinh, x)?,
        Tanh => sub(&one()?, &u(Square, out)?)?,
        ArcSinh => u(Rsqrt, &add(&u(Square, x)?, &one()?)?)?,
        ArcCosh => u(Rsqrt, &sub(&u(Square, x)?, &one()?)?)?,
        ArcTanh => u(Reciprocal, &sub(&one()?, &u(Square, x)?)?)?,
        Erf => mul(
            &c(std::f64::consts::FRAC_2_SQRT_PI)?,
            &u(Exp, &neg(&u(Square, x)?)?)?,
        )?,
        ErfInv => mul(
            &c(std::f64::consts::PI.sqrt() / 2.0)?,
            &u(Exp, &u(Square, out)?)?,
        )?,
        Sigmoid => mul(out, &sub(&one()?, out)?)?,
    };
    Ok(Deriv::Factor(f))
}

pub fn vjp_unary(
    op: UnaryOp,
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let x = &inputs[0];
    let r = match op {
        // real/imag of a complex input: the cotangent is real(g) + 0j / 0 + real(g)j.
        UnaryOp::Real if x.dtype().is_complex() => Some(ops::astype(g, x.dtype())?),
        UnaryOp::Imag if x.dtype().is_complex() => {
            let j = ops::scalar(crate::scalar::Scalar::Complex(0.0, 1.0), x.dtype())?;
            Some(mul(&ops::astype(g, x.dtype())?, &j)?)
        }
        UnaryOp::Real => cast_like(g.clone(), x)?,
        UnaryOp::Imag => None,
        _ => match unary_deriv(op, x, out)? {
            Deriv::Zero => None,
            // |z| is not holomorphic: its gradient is g z/|z| as it stands
            Deriv::Factor(f) if op == UnaryOp::Abs => cast_like(mul(g, &f)?, x)?,
            Deriv::Factor(f) => cast_like(mul(g, &conj_complex(&f)?)?, x)?,
            Deriv::Linear(l) => cast_like(l(g)?, x)?,
        },
    };
    Ok(vec![r])
}

pub fn jvp_unary(
    op: UnaryOp,
    inputs: &[Array],
    out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let x = &inputs[0];
    let Some(t) = t.first().and_then(Option::as_ref) else {
        return Ok(None);
    };
    Ok(match op {
        UnaryOp::Real => Some(real(t)?),
        UnaryOp::Imag if x.dtype().is_complex() => Some(imag(t)?),
        UnaryOp::Imag => None,
        _ => match unary_deriv(op, x, out)? {
            Deriv::Zero => None,
            Deriv::Factor(f) => Some(ops::astype(&mul(t, &f)?, out.dtype())?),
            Deriv::Linear(l) => Some(l(t)?),
        },
    })
}

/// (d out / d a, d out / d b) for a differentiable binary op; None = zero.
fn binary_partials(
    op: BinaryOp,
    a: &Array,
    b: &Array,
    out: &Array,
) -> Result<(Option<Array>, Option<Array>)> {
    use BinaryOp::*;
    let d = out.dtype();
    let c = |v: f64| fs(v, d);
    let mask = |m: Array| ops::astype(&m, d);
    Ok(match op {
        Add => (Some(c(1.0)?), Some(c(1.0)?)),
        Subtract => (Some(c(1.0)?), Some(c(-1.0)?)),
        Multiply => (Some(b.clone()), Some(a.clone())),
        Divide => (Some(u(UnaryOp::Reciprocal, b)?), Some(neg(&div(out, b)?)?)),
        Power => {
            let da = mul(b, &ops::binary(Power, a, &sub(b, &c(1.0)?)?)?)?;
            // d/db a^b = a^b log a, taken as 0 where a^b == 0 (as MLX), so 0^b for
            // b > 0 and underflows to 0 give 0 rather than 0 * -inf.
            let zero_out = ops::binary(Equal, out, &c(0.0)?)?;
            let db = ops::where_(&zero_out, &c(0.0)?, &mul(out, &u(UnaryOp::Log, a)?)?)?;
            (Some(da), Some(db))
        }
        Maximum => (
            Some(mask(ops::binary(Greater, a, b)?)?),
            Some(mask(ops::binary(LessEqual, a, b)?)?),
        ),
        Minimum => (
            Some(mask(ops::binary(Less, a, b)?)?),
            Some(mask(ops::binary(GreaterEqual, a, b)?)?),
        ),
        ArcTan2 => {
            let den = add(&u(UnaryOp::Square, a)?, &u(UnaryOp::Square, b)?)?;
            (Some(div(b, &den)?), Some(neg(&div(a, &den)?)?))
        }
        // sigmoid(a - b) and sigmoid(b - a): finite where one operand is infinite.
        LogAddExp => (
            Some(u(UnaryOp::Sigmoid, &sub(a, b)?)?),
            Some(u(UnaryOp::Sigmoid, &sub(b, a)?)?),
        ),
        Remainder => (Some(c(1.0)?), Some(neg(&u(UnaryOp::Floor, &div(a, b)?)?)?)),
        FloorDivide => (None, None),
        Equal | NotEqual | Less | LessEqual | Greater | GreaterEqual | LogicalAnd | LogicalOr
        | BitwiseAnd | BitwiseOr | BitwiseXor | LeftShift | RightShift => (None, None),
    })
}

/// Whether the partial for operand `x` is exactly 1 (add, and the first operand of
/// subtract and remainder): the cotangent passes through.
fn is_one(op: BinaryOp, first: bool) -> bool {
    matches!(op, BinaryOp::Add) || (first && matches!(op, BinaryOp::Subtract | BinaryOp::Remainder))
}

pub fn vjp_binary(
    op: BinaryOp,
    inputs: &[Array],
    out: &Array,
    g: &Array,
) -> Result<Vec<Option<Array>>> {
    let (a, b) = (&inputs[0], &inputs[1]);
    if !out.dtype().is_inexact() {
        return Ok(vec![None, None]);
    }
    let (da, db) = binary_partials(op, a, b, out)?;
    let one = |p: Option<Array>, x: &Array, first: bool| -> Result<Option<Array>> {
        match p {
            None => Ok(None),
            Some(_) if is_one(op, first) => cast_like(g.clone(), x),
            Some(p) => cast_like(mul(g, &conj_complex(&p)?)?, x),
        }
    };
    Ok(vec![one(da, a, true)?, one(db, b, false)?])
}

pub fn jvp_binary(
    op: BinaryOp,
    inputs: &[Array],
    out: &Array,
    t: &[Option<Array>],
) -> Result<Option<Array>> {
    let (a, b) = (&inputs[0], &inputs[1]);
    let (da, db) = binary_partials(op, a, b, out)?;
    let mut acc: Option<Array> = None;
    for (p, tan) in [(da, t.first()), (db, t.get(1))] {
        if let (Some(p), Some(Some(tan))) = (p, tan) {
            let term = mul(tan, &p)?;
            acc = Some(match acc {
                None => term,
                Some(a) => add(&a, &term)?,
            });
        }
    }
    acc.map(|a| ops::astype(&ops::broadcast_to(&a, out.shape())?, out.dtype()))
        .transpose()
}

pub fn vjp_select(inputs: &[Array], g: &Array) -> Result<Vec<Option<Array>>> {
    let (c, x, y) = (&inputs[0], &inputs[1], &inputs[2]);
    let z = super::zeros_like(g)?;
    Ok(vec![
        None,
        cast_like(ops::where_(c, g, &z)?, x)?,
        cast_like(ops::where_(c, &z, g)?, y)?,
    ])
}

pub fn jvp_select(inputs: &[Array], t: &[Option<Array>]) -> Result<Option<Array>> {
    let (c, x, y) = (&inputs[0], &inputs[1], &inputs[2]);
    let tx = tangent_or_zeros(x, t.get(1).and_then(Option::as_ref))?;
    let ty = tangent_or_zeros(y, t.get(2).and_then(Option::as_ref))?;
    Ok(Some(ops::where_(c, &tx, &ty)?))
}

pub fn vjp_astype(inputs: &[Array], out: &Array, g: &Array) -> Result<Vec<Option<Array>>> {
    if !out.dtype().is_inexact() {
        return Ok(vec![None]);
    }
    Ok(vec![cast_like(g.clone(), &inputs[0])?])
}
